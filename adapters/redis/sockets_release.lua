-- One socket of a user closed on this gateway.
-- KEYS[1]  the user's counts (see sockets_acquire.lua); ARGV[1] this gateway's id
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return 1
