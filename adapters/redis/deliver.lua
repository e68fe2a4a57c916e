#!lua
-- The whole fan-out of one accepted message, in one round trip and atomically:
-- Redis runs one script at a time, so the order in which notifications are
-- published is the order in which the entries were appended, for every
-- recipient, whichever gateway sent them (the gateway relies on it).
-- The "#!lua" line makes Redis check for out-of-memory before the script
-- starts instead of failing it halfway through the appends.
--
-- KEYS[1]         stream:persist (read by the persister's consumer group)
-- KEYS[2]         the sender's idempotency key (idem:...), only when ARGV[6] is not ''
-- KEYS[2 or 3..]  stream:private:{user_id}, one per recipient
-- ARGV[1]         MAXLEN of an inbox stream
-- ARGV[2]         '~' (approximate trimming: whole macro nodes, cheap) or '=' (exact)
-- ARGV[3]         the compact message record (JSON) for inbox entries and the notification
-- ARGV[4]         the full record (JSON, with client_msg_id) for the persister
-- ARGV[5]         the notification channel
-- ARGV[6]         the message id when it has a client_msg_id, else ''
-- ARGV[7]         how long a delivered idempotency answer is kept (seconds)
-- ARGV[8..]       each recipient's id already encoded as a JSON string, in KEYS order
-- Returns each recipient's cursor (entry id), in KEYS order.
local first_inbox = 2
if ARGV[6] ~= '' then
  first_inbox = 3
end
local cursors = {}
local members = {}
for i = first_inbox, #KEYS do
  local n = i - first_inbox + 1
  local id = redis.call('XADD', KEYS[i], 'MAXLEN', ARGV[2], ARGV[1], '*', 'm', ARGV[3])
  cursors[n] = id
  members[n] = ARGV[n + 7] .. ':"' .. id .. '"'
end
redis.call('XADD', KEYS[1], '*', 'm', ARGV[4])
if ARGV[6] ~= '' then
  -- The message is accepted: mark its idempotency answer delivered now, in the
  -- same atomic step (idempotency.lua's 'confirm'), so that no crash of the
  -- gateway before its own confirm can leave it pending - a retry after the
  -- pending TTL would deliver it again. Another message's answer is left alone.
  local value = redis.call('GET', KEYS[2])
  local pending = 'p:' .. ARGV[6] .. ':'
  if not value or string.sub(value, 1, #pending) == pending then
    redis.call('SET', KEYS[2], 'd:' .. ARGV[6] .. ':' .. ARGV[4], 'EX', ARGV[7])
  end
end
if #cursors > 0 then
  -- Built by concatenation: the record is JSON already, ids are JSON strings and
  -- entry ids are digits and a dash, so nothing needs escaping here.
  redis.call('PUBLISH', ARGV[5],
    '{"message":' .. ARGV[3] .. ',"cursors":{' .. table.concat(members, ',') .. '}}')
end
return cursors
