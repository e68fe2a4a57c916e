#!lua
-- The whole fan-out of one accepted message, in one round trip and atomically:
-- Redis runs one script at a time, so the order in which notifications are
-- published is the order in which the entries were appended, for every
-- recipient, whichever gateway sent them (the gateway relies on it).
-- The "#!lua" line makes Redis check for out-of-memory before the script
-- starts instead of failing it halfway through the appends.
--
-- KEYS[1]         stream:persist (read by the persister's consumer group)
-- KEYS[2..n]      stream:private:{user_id}, one per recipient
-- ARGV[1]         MAXLEN of an inbox stream
-- ARGV[2]         '~' (approximate trimming: whole macro nodes, cheap) or '=' (exact)
-- ARGV[3]         the compact message record (JSON) for inbox entries and the notification
-- ARGV[4]         the full record (JSON, with client_msg_id) for the persister
-- ARGV[5]         the notification channel
-- ARGV[6..n+4]    each recipient's id already encoded as a JSON string, in KEYS order
-- Returns each recipient's cursor (entry id), in KEYS order.
local cursors = {}
local members = {}
for i = 2, #KEYS do
  local id = redis.call('XADD', KEYS[i], 'MAXLEN', ARGV[2], ARGV[1], '*', 'm', ARGV[3])
  cursors[i - 1] = id
  members[i - 1] = ARGV[i + 4] .. ':"' .. id .. '"'
end
redis.call('XADD', KEYS[1], '*', 'm', ARGV[4])
if #cursors > 0 then
  -- Built by concatenation: the record is JSON already, ids are JSON strings and
  -- entry ids are digits and a dash, so nothing needs escaping here.
  redis.call('PUBLISH', ARGV[5],
    '{"message":' .. ARGV[3] .. ',"cursors":{' .. table.concat(members, ',') .. '}}')
end
return cursors
