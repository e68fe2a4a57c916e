-- Renew a gateway's lease, on the clock sockets_acquire.lua reads (the node's that holds
-- the leases: on a cluster the node of TIME's answer could be another one), and drop the
-- leases of gateways gone for longer than the counts live (their counts are gone too).
-- KEYS[1]  the gateways' leases (see sockets_acquire.lua)
-- ARGV[1]  this gateway's id, ARGV[2] the lease (ms), ARGV[3] the counts' TTL (s)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]) * 1000)
return 1
