#!lua
-- A message's edit or deletion in a large group (docs/design/large-groups.md, section 10),
-- or the group's rename:
-- its event once in the group's stream, which the members read within their intervals,
-- and on the group's channel, in stream order with the messages, as lg_deliver.lua
-- publishes a message. It changes no membership: no member version, no interval.
--
-- KEYS[1]  lg:{G}                      the group's state (missing: not switched yet)
-- KEYS[2]  lg:{G}:log
-- KEYS[3]  lg:{G}:done:<event id>      where the event was appended (kept ARGV[4] s)
-- ARGV[1]  the event's record
-- ARGV[2]  MAXLEN of the log
-- ARGV[3]  '~' or '=' (approximate or exact trimming)
-- ARGV[4]  how long the done: marker is kept (seconds)
-- ARGV[5]  the group's channel (lg:{G}:n)
-- ARGV[6]  the envelope's head, up to ,"pos":"<id>"}
-- Returns {'APPLIED', position} (appended now, or before: the done: marker kept it), or
-- {'WAIT'} (the group's switch is not applied yet: nothing done).
local done = redis.call('GET', KEYS[3])
if done then
  return {'APPLIED', done}  -- a retried PATCH or DELETE, or the relay: nothing again
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'WAIT'}
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], ARGV[2], '*', 'm', ARGV[1])
redis.call('SET', KEYS[3], id, 'EX', ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. ',"pos":"' .. id .. '"}')
return {'APPLIED', id}
