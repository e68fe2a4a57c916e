-- Presence's clock, run by every gateway every few seconds; Redis runs one script at a
-- time, so each change below is made, and answered, by exactly one of the callers.
-- KEYS[1]  presence:gateways: live incarnations, name -> lease end (ms, Redis' clock)
-- KEYS[2]  presence:sweeping: incarnations found dead whose users are still being
--          taken off, name -> the lease end
-- KEYS[3]  presence:leaving: users within their grace, user -> grace end (ms)
-- ARGV[1]  the prefix of a user's hash     ARGV[2]  the prefix of an incarnation's set
-- ARGV[3]  at most this many leases, swept users and users gone offline per call
--          (Redis serves nobody else while a script runs)
-- ARGV[4]  the grace (ms)
-- Returns {more, user, version, last_seen or '', ...}: the users now offline; more is 1
-- when a limit was reached (call again), else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local users_prefix, sets_prefix = ARGV[1], ARGV[2]
local limit, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local more = 0

-- 1. Leases that ran out: those incarnations are dead (killed, or cut off for longer than a
-- lease). Moved aside at once, so that one coming back sees it was swept and starts anew.
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, limit)
if #dead == 2 * limit then more = 1 end
for i = 1, #dead, 2 do
  redis.call('ZREM', KEYS[1], dead[i])
  redis.call('ZADD', KEYS[2], dead[i + 1], dead[i])
end

-- 2. Their users leave, as if their last socket there had closed when the lease ended.
local budget = limit
local sweeping = redis.call('ZRANGE', KEYS[2], 0, limit - 1, 'WITHSCORES')
for i = 1, #sweeping, 2 do
  if budget <= 0 then
    more = 1
    break
  end
  local name, lease_end = sweeping[i], tonumber(sweeping[i + 1])
  local set = sets_prefix .. name
  local users = redis.call('SPOP', set, budget)
  budget = budget - #users
  for _, user in ipairs(users) do
    local key = users_prefix .. user
    if redis.call('HINCRBY', key, 'gateways', -1) <= 0 then
      redis.call('HSET', key, 'gateways', 0, 'last_seen', math.floor(lease_end / 1000))
      -- The grace counts from the lease's end: the sockets were gone by then at the latest.
      redis.call('ZADD', KEYS[3], lease_end + grace, user)
    end
  end
  if redis.call('EXISTS', set) == 0 then
    redis.call('ZREM', KEYS[2], name)
  elseif budget <= 0 then
    more = 1
  end
end

-- 3. Graces that ran out: offline, under a new version.
local answer = {0}
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
if #due == limit then more = 1 end
for _, user in ipairs(due) do
  redis.call('ZREM', KEYS[3], user)
  local key = users_prefix .. user
  local state = redis.call('HMGET', key, 'gateways', 'online', 'last_seen')
  if tonumber(state[1] or '0') <= 0 and state[2] == '1' then
    redis.call('HSET', key, 'online', '0')
    table.insert(answer, user)
    table.insert(answer, redis.call('HINCRBY', key, 'version', 1))
    table.insert(answer, state[3] or '')
  end
end
answer[1] = more
return answer
