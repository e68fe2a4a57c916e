#!lua
-- Step 1 of a large group's switch on a Redis Cluster (docs/design/redis-cluster.md,
-- section 4): in the slot of the group's small counter (its conversation's bucket), the
-- counter switched off with 'L' - from here on commit.lua answers LARGE for the group,
-- before writing anything - and the last small seq S returned, for step 2 (lg_change.lua,
-- in the group's slot {G}) to start the group's stream at S + 1.
--
-- S is kept beside the counter (KEYS[3]): a switch made again (a relay, two announcers, a
-- crash between the two steps) gets the same S. Also returned: how many sends of the small
-- era are still being appended (the conversation's pending hash, commit.lua's promises),
-- which the adapter lets finish before it places the floor.
--
-- KEYS[1]  {t}:seq:g:<G>, the small path's counter, 'L' once switched off
-- KEYS[2]  {t}:seq-complete, the bucket's marker (a missing counter then starts at 0)
-- KEYS[3]  {t}:seq-closed:g:<G>, the last small seq S
-- KEYS[4]  {t}:pending:g:<G>, the small era's sends not appended everywhere yet
-- ARGV[1]  '' or the seed of a missing counter (the database's highest seq)
-- Returns {S, pending sends, '1' when the counter was switched off before this call else ''}.
-- Error replies: NOSEED (the counter and the marker both missing: call again with ARGV[1]),
-- LOST (the counter is 'L' but S is gone: a partial loss of Redis's data).
local seq = redis.call('GET', KEYS[1])
if seq == 'L' then
  local closed = redis.call('GET', KEYS[3])
  if not closed then
    return redis.error_reply('LOST the counter is switched off but its last seq is gone')
  end
  return {closed, redis.call('HLEN', KEYS[4]), '1'}
end
if not seq then
  if ARGV[1] ~= '' then
    seq = ARGV[1]
  elseif redis.call('EXISTS', KEYS[2]) == 1 then
    seq = '0'  -- the bucket's marker: a missing counter is a group without messages
  else
    return redis.error_reply('NOSEED the group has no seq counter')
  end
end
redis.call('SET', KEYS[3], seq)
redis.call('SET', KEYS[1], 'L')
return {seq, redis.call('HLEN', KEYS[4]), ''}
