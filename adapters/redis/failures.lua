-- Failures per key in a sliding window, shared by every gateway (same rules as
-- MemoryFailureThrottle): a sorted set of failure times, of which only the
-- newest `limit` inside the window matter. Redis' clock (TIME) is used.
-- KEYS[1]  the key's sorted set
-- ARGV[1]  'record' or 'check', ARGV[2] limit, ARGV[3] window (seconds), ARGV[4] a unique member
-- Returns the seconds until the key may try again, as a string ("0": not blocked).
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- Failures at or before now - window no longer count.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now - window))
if ARGV[1] == 'record' then
  redis.call('ZADD', KEYS[1], string.format('%.6f', now), ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))  -- keep the newest `limit`
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  return '0'
end
if redis.call('ZCARD', KEYS[1]) < limit then
  return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
return string.format('%.6f', math.max(0.001, tonumber(oldest[2]) + window - now))
