#!lua
-- The whole fan-out of one event (an accepted message, a group change) into its
-- recipients' logs, in one round trip and atomically:
-- Redis runs one script at a time, so the order in which notifications are
-- published is the order in which the entries were appended, for every
-- recipient, whichever gateway sent them (the gateway relies on it).
-- The "#!lua" line makes Redis check for out-of-memory before the script
-- starts instead of failing it halfway through the appends.
--
-- One cursor for every recipient: the message gets ONE entry id, greater than
-- any id this script handed out before (KEYS[2] keeps the last one), and is
-- appended with that explicit id to every inbox. So every recipient's cursor
-- still strictly increases, and a gateway pushes the very same bytes (one JSON
-- encoding, one WebSocket frame) to every member of a group. Should an inbox
-- already hold a later id (KEYS[2] was lost, or the entry was appended by an
-- older Courier with '*' ids), that inbox alone gets the next id of its own
-- ('*'), and the generator moves past it.
--
-- Trimming: an inbox is trimmed on about one append in ARGV[8], chosen at
-- random (the microseconds of TIME): MAXLEN costs Redis about a quarter of a
-- plain XADD. RedisInbox makes that 1 for exact trimming or a small MAXLEN,
-- and at most 16 for a MAXLEN of 1,600 or more: between two trims an inbox
-- grows by about 1% of its bound, on top of the whole macro node (100 entries)
-- that '~' leaves anyway. read.lua tells a trimmed inbox by its counters,
-- however it was trimmed.
--
-- A message's seq: its place in its conversation (a private pair or a group) is
-- taken here, by INCR of the conversation's counter (KEYS[3]), in the same atomic
-- step as the appends: two gateways sending into one group at once get consecutive
-- seqs, in the order of acceptance, and every copy of the message carries the same.
-- A counter that does not exist starts from 0 when KEYS[4] (seq:complete) exists:
-- `courier worker` sets that marker only once every conversation with messages in the
-- database has a counter (adapters/redis/seq_counters.py says why it cannot be wrong),
-- so a missing counter is a conversation without any message yet. Without the marker
-- (Redis lost its data, the worker has not rebuilt the counters yet) a missing counter
-- is not started from 0: the script answers NOSEED and changes nothing, and RedisInbox
-- calls it again with ARGV[9], the highest seq the database holds for the conversation
-- (SET NX: of two gateways seeding at once, the first wins). An event that is not a
-- message (ARGV[9] is '-') takes no seq.
-- A group that became large (docs/design/large-groups.md, section 4.2) has its counter
-- switched off: lg_change.lua sets it to 'L', and its messages go to the group's own
-- stream (lg_deliver.lua). INCR fails on 'L', and the script then answers LARGE, having
-- written nothing: the checks above only read (a seed is SET NX, a no-op on 'L'), so the
-- sender's idempotency answer, the seq and the logs are untouched, and RedisInbox raises
-- GroupIsLarge for the caller to send the message again by the large path. (The INCR's
-- failure tells it, rather than a GET before it: no extra call on every send.)
-- The records in ARGV[3] and ARGV[4] come without their seq; it is added here, to them
-- and to the notification's tail.
--
-- KEYS[1]         stream:persist (read by the persister's consumer group)
-- KEYS[2]         the cursor generator: the last inbox entry id handed out
-- KEYS[3]         the conversation's seq counter (seq:p:<user id>:<user id>, seq:g:<group id>)
-- KEYS[4]         seq:complete, the marker (see above)
-- KEYS[5]         the sender's idempotency key (idem:...), only when ARGV[6] is not '';
--                 for a group change, its marker (appended:<event id>): see ARGV[12]
-- KEYS[5 or 6..]  stream:private:{user_id}, one per recipient
-- ARGV[1]         MAXLEN of an inbox stream
-- ARGV[2]         '~' (approximate trimming: whole macro nodes, cheap) or '=' (exact)
-- ARGV[3]         the event's record (JSON object, no seq) for inbox entries (a message's
--                 without client_msg_id)
-- ARGV[4]         a message's full record (JSON object, no seq, with client_msg_id) for the
--                 persister and the sender's own entry; '' for an event that is not persisted
-- ARGV[5]         the notification channel
-- ARGV[6]         the message id when it has a client_msg_id, else ''
-- ARGV[7]         how long a delivered idempotency answer is kept (seconds)
-- ARGV[8]         trim an inbox on one append in this many (1: on every append)
-- ARGV[9]         '' or the seed of a missing seq counter (see above); '-': no seq
-- ARGV[10]        the notification's head, up to its recipients (adapters/redis/envelope.py)
-- ARGV[11]        the sender's 1-based position among the recipients, whose entry gets
--                 ARGV[4]; 0 when the sender is none of them
-- ARGV[12]        '' or, for an event appended once per id (a group change, which a relay
--                 may append again after a crash), how long its marker KEYS[5] is kept
--                 (seconds): an event whose marker exists is not appended again
-- Returns {cursor, {position, own cursor, ...}, seq}: the cursor of every recipient but
-- those listed (1-based position among the recipients, and that one's cursor);
-- {'', {}, seq} when there is no recipient; seq is '' for an event without one. An
-- error reply NOSEED when KEYS[3] and KEYS[4] are missing and ARGV[9] is '', and LARGE
-- when KEYS[3] is 'L'.
-- Publishes the head with its tail: ,"seq": n, "cursor": id, "own": {id: cursor}}
-- ("seq" for a message, "own" only when some recipient has a cursor of its own).
local function parse_id(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function later(a, b)  -- is stream id a after stream id b?
  local a_ms, a_seq = parse_id(a)
  local b_ms, b_seq = parse_id(b)
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

local first_inbox = 5
if ARGV[6] ~= '' then
  first_inbox = 6
  -- The sender's idempotency key must be this message's pending answer, or free (that
  -- answer expired and nobody took the key). Held by another message, a retry took it
  -- after this attempt's pending answer expired: that retry delivers the message (or
  -- did), so this attempt appends nothing - a second copy would go out.
  local holder = redis.call('GET', KEYS[5])
  local ours = 'p:' .. ARGV[6] .. ':'
  if holder and string.sub(holder, 1, #ours) ~= ours then
    return redis.error_reply('SUPERSEDED a retry holds this client_msg_id')
  end
end
if ARGV[12] ~= '' then
  -- ARGV[6] is '' then: KEYS[5] is the event's marker, and the inboxes follow it.
  if redis.call('SET', KEYS[5], '1', 'NX', 'EX', ARGV[12]) == false then
    return {'', {}, ''}  -- appended before: nothing more to do
  end
  first_inbox = 6
end
local record, full, message_seq, seq_tail = ARGV[3], ARGV[4], '', ''
if ARGV[9] ~= '-' then
  if ARGV[9] == '' then
    if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('EXISTS', KEYS[4]) == 0 then
      return redis.error_reply('NOSEED the conversation has no seq counter')
    end
  else
    redis.call('SET', KEYS[3], ARGV[9], 'NX')
  end
  local taken = redis.pcall('INCR', KEYS[3])
  if type(taken) == 'table' and taken.err then
    if redis.call('GET', KEYS[3]) == 'L' then
      -- A large group (see LARGE above): nothing was written yet - not the seq, not the
      -- idempotency answer, not a marker - so the message can go again by the large path.
      return redis.error_reply('LARGE the group has a stream of its own')
    end
    return taken
  end
  message_seq = string.format('%d', taken)
  local seq_part = ',"seq":' .. message_seq .. '}'
  record = string.sub(ARGV[3], 1, -2) .. seq_part
  full = string.sub(ARGV[4], 1, -2) .. seq_part
  seq_tail = ',"seq":' .. message_seq
end
local id = ''
local own, own_json = {}, {}
local sender = tonumber(ARGV[11])
if #KEYS >= first_inbox then
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local seq = 0
  local last = redis.call('GET', KEYS[2])
  if last then
    local last_ms, last_seq = parse_id(last)
    if last_ms >= ms then
      ms, seq = last_ms, last_seq + 1
    end
  end
  id = string.format('%d-%d', ms, seq)
  local newest = id
  local trim_every = tonumber(ARGV[8])
  local trim_phase = tonumber(now[2]) % trim_every
  for i = first_inbox, #KEYS do
    local n = i - first_inbox + 1
    local entry = record
    if n == sender then
      entry = full
    end
    local added
    if (n + trim_phase) % trim_every == 0 then
      added = redis.pcall('XADD', KEYS[i], 'MAXLEN', ARGV[2], ARGV[1], id, 'm', entry)
    else
      added = redis.pcall('XADD', KEYS[i], id, 'm', entry)
    end
    if type(added) == 'table' and added.err then
      -- Only an inbox whose last id is at or after ours fails here (anything else,
      -- such as a key of another type, fails again below and aborts the script).
      added = redis.call('XADD', KEYS[i], 'MAXLEN', ARGV[2], ARGV[1], '*', 'm', entry)
      own[#own + 1] = n
      own[#own + 1] = added
      -- The user id out of its key, stream:private:{user_id} (ids are UUIDs: nothing to escape).
      own_json[#own_json + 1] = '"' .. string.sub(KEYS[i], 16) .. '":"' .. added .. '"'
      if later(added, newest) then
        newest = added
      end
    end
  end
  redis.call('SET', KEYS[2], newest)
end
if ARGV[4] ~= '' then
  redis.call('XADD', KEYS[1], '*', 'm', full)
end
if ARGV[6] ~= '' then
  -- The message is accepted: mark its idempotency answer delivered now, in the
  -- same atomic step (idempotency.lua's 'confirm'; the key is ours or free, checked
  -- above), so that no crash of the gateway before its own confirm can leave it
  -- pending - a retry after the pending TTL would deliver it again.
  redis.call('SET', KEYS[5], 'd:' .. ARGV[6] .. ':' .. full, 'EX', ARGV[7])
end
if id ~= '' then
  -- The tail of the envelope (envelope.py): seqs are digits, entry ids digits and a
  -- dash and user ids UUIDs, so nothing needs escaping here.
  local own_part = ''
  if #own_json > 0 then
    own_part = ',"own":{' .. table.concat(own_json, ',') .. '}'
  end
  redis.call('PUBLISH', ARGV[5], ARGV[10] .. seq_tail .. ',"cursor":"' .. id .. '"' .. own_part .. '}')
end
return {id, own, message_seq}
