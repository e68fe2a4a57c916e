-- A token bucket shared by every gateway (same rules as adapters/memory/limits.py).
-- Redis' own clock (TIME) is used so gateways with skewed clocks agree.
-- KEYS[1]  the bucket (a hash: tokens, at)
-- ARGV[1]  rate (tokens per second, > 0), ARGV[2] burst (capacity)
-- Returns the seconds to wait as a string ("0" when a token was taken): a Lua
-- number would be truncated to an integer on the way out.
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(bucket[1]) or burst, tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens < 1 then
  wait = (1 - tokens) / rate
else
  tokens = tokens - 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
-- A bucket that has refilled is the same as no bucket: let it expire then.
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.6f', wait)
