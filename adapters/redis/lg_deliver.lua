#!lua
-- One message into a large group's stream (docs/design/large-groups.md, section 4.4),
-- atomically: the sender's right to post, the group's next seq, the append to the
-- group's log, the persistence record and the notification. Nothing per member: the
-- members read the one log, each within its intervals (lg_read.lua). Every key is in
-- the group's slot ({G}), so this stays one script on one node in a cluster.
-- Redis runs one script at a time, so the seqs follow the order of acceptance and the
-- notifications on lg:{G}:n the order of the log, whichever gateway sent each message.
-- "#!lua" makes Redis check for out-of-memory before the script starts.
--
-- Idempotency across gateways: a message with a client_msg_id leaves its record, with
-- its seq and its stream id, under lg:{G}:sent:<sender>:<digest> for a day. A retry
-- that took the sender's idempotency key after the pending answer expired (the first
-- attempt's gateway died before confirming it) finds it here and gets the original,
-- not a second copy (deliver.lua's SUPERSEDED does this job on the small path).
--
-- KEYS[1]  lg:{G}            hash: seq, owner, kind, ... (lg_change.lua's switch makes it)
-- KEYS[2]  lg:{G}:log        the group's stream
-- KEYS[3]  lg:{G}:persist    read by the persister
-- KEYS[4]  lg:{G}:members    user id -> intervals 'join,leave;join,+' (lg_change.lua)
-- KEYS[5]  lg:{G}:sent:<sender>:<digest>, or any key of the slot when ARGV[6] is ''
-- ARGV[1]  the message's full record (JSON object, with client_msg_id, without seq)
-- ARGV[2]  the sender's user id
-- ARGV[3]  MAXLEN of the log
-- ARGV[4]  '~' (approximate trimming) or '=' (exact)
-- ARGV[5]  trim the log on one append in this many (as deliver.lua's ARGV[8])
-- ARGV[6]  '1' when KEYS[5] is the message's sent: key, '' when it has no client_msg_id
-- ARGV[7]  how long the sent: key is kept (seconds)
-- ARGV[8]  the notification's head (adapters/redis/envelope.py: group_head)
-- ARGV[9]  the group's notification channel (lg:{G}:n)
-- Returns {id, seq}, or {'DUP', id, record with seq} for a message accepted before.
-- Error replies, with nothing written: NOSTATE (KEYS[1] is missing: the group's switch
-- is not applied yet), NOTMEMBER (the sender has no open interval), NOTALLOWED (a
-- channel, and the sender is not its owner).
local state = redis.call('HMGET', KEYS[1], 'owner', 'kind')
if not state[1] then
  return redis.error_reply('NOSTATE the group has no stream yet')
end
if ARGV[6] == '1' then
  -- Before the membership check: a retry of a message accepted before its sender left
  -- still gets that message, as it would have from the small path's idempotency key.
  local sent = redis.call('GET', KEYS[5])
  if sent then
    local space = string.find(sent, ' ', 1, true)
    return {'DUP', string.sub(sent, 1, space - 1), string.sub(sent, space + 1)}
  end
end
-- Checked here, atomically with the append: a removed member cannot post after its
-- removal in stream order, whatever a gateway's cache still says.
local intervals = redis.call('HGET', KEYS[4], ARGV[2])
if not intervals or string.sub(intervals, -2) ~= ',+' then
  return redis.error_reply('NOTMEMBER the sender is not a member of the group')
end
if state[2] == 'channel' and state[1] ~= ARGV[2] then
  return redis.error_reply('NOTALLOWED only the owner posts in a channel')
end
local seq = string.format('%d', redis.call('HINCRBY', KEYS[1], 'seq', 1))
local record = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
local now = redis.call('TIME')
local id
if tonumber(now[2]) % tonumber(ARGV[5]) == 0 then
  id = redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], ARGV[3], '*', 'm', record)
else
  id = redis.call('XADD', KEYS[2], '*', 'm', record)
end
redis.call('XADD', KEYS[3], '*', 'm', record)
if ARGV[6] == '1' then
  redis.call('SET', KEYS[5], id .. ' ' .. record, 'EX', ARGV[7])
end
-- Seqs are digits and stream ids digits and a dash: nothing to escape.
redis.call('PUBLISH', ARGV[9], ARGV[8] .. ',"seq":' .. seq .. ',"pos":"' .. id .. '"}')
return {id, seq}
