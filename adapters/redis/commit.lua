#!lua
-- The commit of a send on a Redis Cluster (docs/design/redis-cluster.md, section 3): in the
-- conversation's slot, atomically, the message's seq, its persistence record, the record of
-- the send by its client_msg_id, and the promise of its appends - an entry of the
-- conversation's pending hash (what to append: bucket_append.lua, one script per bucket of
-- the recipients) and of the bucket's outbox (when it was committed). The sender's gateway
-- makes the appends, then removes the promise (finish.lua); should it die first, the next
-- send into the conversation or the worker's relay makes them (each once: their markers).
--
-- Order: every send of the conversation committed before this one and not finished yet is
-- returned with it. The caller appends those first, bucket by bucket, so in every log the
-- conversation's messages come in seq order whichever gateway appends them.
--
-- The seq as deliver.lua takes it (NOSEED without the counter nor KEYS[2]; a seed from
-- ARGV[4] then; LARGE for a group switched to its stream), and with nothing written
-- before: NOSEED and LARGE answers change nothing.
--
-- KEYS[1]  the conversation's seq counter ({t}:seq:<C>)
-- KEYS[2]  {t}:seq-complete
-- KEYS[3]  {t}:persist (read by the persister)
-- KEYS[4]  {t}:pending:<C> (hash: seq -> the appends' work, ARGV[5])
-- KEYS[5]  {t}:outbox (sorted set: '<C> <seq>' by commit time, in milliseconds)
-- KEYS[6]  {t}:sent:<sender>:<digest>, only when ARGV[2] is '1'
-- ARGV[1]  the message's full record (JSON object, with client_msg_id, without seq)
-- ARGV[2]  '1' when the message has a client_msg_id (KEYS[6]), else ''
-- ARGV[3]  how long KEYS[6] is kept (seconds)
-- ARGV[4]  '' or the seed of a missing counter
-- ARGV[5]  the appends' work (adapters/redis/cluster_inbox.py: Work)
-- ARGV[6]  the conversation key
-- ARGV[7]  the message id
-- Returns {seq, {earlier seq, earlier work, ...}}, or {'DUP', message id, record with seq}
-- for a send committed before under the same client_msg_id.
if ARGV[2] == '1' then
  local sent = redis.call('GET', KEYS[6])
  if sent then
    local space = string.find(sent, ' ', 1, true)
    return {'DUP', string.sub(sent, 1, space - 1), string.sub(sent, space + 1)}
  end
end
if ARGV[4] == '' then
  if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
    return redis.error_reply('NOSEED the conversation has no seq counter')
  end
else
  redis.call('SET', KEYS[1], ARGV[4], 'NX')
end
local taken = redis.pcall('INCR', KEYS[1])
if type(taken) == 'table' and taken.err then
  if redis.call('GET', KEYS[1]) == 'L' then
    return redis.error_reply('LARGE the group has a stream of its own')
  end
  return taken
end
local seq = string.format('%d', taken)
local full = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
local earlier = redis.call('HGETALL', KEYS[4])
redis.call('HSET', KEYS[4], seq, ARGV[5])
local now = redis.call('TIME')
redis.call('ZADD', KEYS[5], tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), ARGV[6] .. ' ' .. seq)
redis.call('XADD', KEYS[3], '*', 'm', full)
if ARGV[2] == '1' then
  redis.call('SET', KEYS[6], ARGV[7] .. ' ' .. full, 'EX', ARGV[3])
end
return {seq, earlier}
