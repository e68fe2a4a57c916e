-- A send's appends are all made (commit.lua): its promise goes, from the conversation's
-- pending hash and from the bucket's outbox, in one step (both in the conversation's slot).
-- KEYS[1]  {t}:pending:<C>
-- KEYS[2]  {t}:outbox
-- ARGV[1]  the seq
-- ARGV[2]  the conversation key
redis.call('HDEL', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[2] .. ' ' .. ARGV[1])
