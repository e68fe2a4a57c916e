-- Revoke one token: refused until it expires, and announced, in one atomic step (a MULTI
-- would do on one Redis, but a cluster refuses a MULTI holding a PUBLISH: it has no key).
-- KEYS[1]  the token's key
-- ARGV[1]  when the token expires (Unix seconds)   ARGV[2] the channel   ARGV[3] the user id
redis.call('SET', KEYS[1], '1', 'EXAT', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
