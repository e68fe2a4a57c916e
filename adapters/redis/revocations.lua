-- Log a user out everywhere: every token issued before ARGV[1] (ms) is refused until
-- ARGV[2] (Unix seconds, when the last of them expires). Never narrows an earlier one.
-- Then announce it on channel ARGV[3] (the user id, ARGV[4]), in the same atomic step.
-- KEYS[1]  the user's floor (a string: the issue time in ms before which tokens are refused)
local floor = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > floor then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
local expires_at = redis.call('EXPIRETIME', KEYS[1])
if expires_at < tonumber(ARGV[2]) then
  redis.call('EXPIREAT', KEYS[1], ARGV[2])
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
