-- One more open socket for a user, unless the user has ARGV[2] open on live gateways.
-- KEYS[1]  the user's counts: a hash, gateway id -> sockets open there
-- KEYS[2]  the gateways' leases: a sorted set, gateway id -> lease end (ms, Redis' clock)
-- ARGV[1]  this gateway's id, ARGV[2] the cap, ARGV[3] the lease (ms), ARGV[4] the counts' TTL (s)
-- Counts of a gateway whose lease ran out (killed: it never released them) no longer
-- count, and are dropped here. Returns 1 when counted, 0 when the cap is reached.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
local counts = redis.call('HGETALL', KEYS[1])
local total = 0
for i = 1, #counts, 2 do
  local lease = tonumber(redis.call('ZSCORE', KEYS[2], counts[i]) or '0')
  if lease > now then
    total = total + tonumber(counts[i + 1])
  else
    redis.call('HDEL', KEYS[1], counts[i])
  end
end
if total >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
