-- One gateway's changes to who is here, in the order the gateway made them (see
-- adapters/redis/presence_store.py for the whole layout). A "gateway" here is one
-- incarnation of a gateway process: once swept as dead it never writes again under
-- that name, so a sweep under way never races with the gateway's own writes.
-- KEYS[1]  presence:gateways, the live incarnations' leases: sorted set, name -> lease end (ms, Redis' clock)
-- KEYS[2]  presence:leaving, users within their grace: sorted set, user -> grace end (ms)
-- KEYS[3]  this incarnation's users: a set
-- ARGV[1]  this incarnation's name      ARGV[2]  the lease (ms)     ARGV[3]  the grace (ms)
-- ARGV[4]  '1' when this incarnation's lease is known to exist (a successful call made it):
--          its absence then means it was swept, and nothing is done
-- ARGV[5]  the prefix of a user's hash (fields online, version, last_seen, gateways)
-- ARGV[6..] the entries, each: kind, count, that many user ids; kinds:
--          a  arrived: the first socket of each opened here
--          l  left: the last socket of each here closed
--          s  sync: these are exactly the users here (arrive the missing, leave the others)
--          c  close: every user here leaves, the incarnation is gone
--          r  renew: nothing but the lease renewal every call makes
-- Returns {'swept'} or {'ok', entry index (0-based), user, version, last_seen or '', ...}:
-- the users who came online (the only change an arrival can make; leaving changes
-- nothing until the grace ends, which presence_expire.lua answers).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local name, lease, grace, prefix = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[5]
if ARGV[4] == '1' and not redis.call('ZSCORE', KEYS[1], name) then
  return {'swept'}
end
redis.call('ZADD', KEYS[1], now + lease, name)

local answer = {'ok'}

local function arrive(index, user)
  if redis.call('SADD', KEYS[3], user) == 0 then
    return  -- already counted here
  end
  local key = prefix .. user
  if redis.call('HINCRBY', key, 'gateways', 1) > 1 then
    return  -- online on another gateway already
  end
  if redis.call('ZREM', KEYS[2], user) == 1 then
    return  -- back within its grace: no change at all
  end
  if redis.call('HGET', key, 'online') == '1' then
    return
  end
  redis.call('HSET', key, 'online', '1')
  local version = redis.call('HINCRBY', key, 'version', 1)
  local last_seen = redis.call('HGET', key, 'last_seen') or ''
  table.insert(answer, index)
  table.insert(answer, user)
  table.insert(answer, version)
  table.insert(answer, last_seen)
end

local function leave(user)
  if redis.call('SREM', KEYS[3], user) == 0 then
    return
  end
  local key = prefix .. user
  if redis.call('HINCRBY', key, 'gateways', -1) > 0 then
    return  -- still has sockets on another gateway
  end
  redis.call('HSET', key, 'last_seen', math.floor(now / 1000))
  redis.call('ZADD', KEYS[2], now + grace, user)
end

local i, index = 6, 0
while i <= #ARGV do
  local kind, count = ARGV[i], tonumber(ARGV[i + 1])
  local first, last = i + 2, i + 1 + count
  if kind == 'a' then
    for j = first, last do arrive(index, ARGV[j]) end
  elseif kind == 'l' then
    for j = first, last do leave(ARGV[j]) end
  elseif kind == 's' then
    local here = {}
    for j = first, last do
      here[ARGV[j]] = true
      arrive(index, ARGV[j])
    end
    for _, user in ipairs(redis.call('SMEMBERS', KEYS[3])) do
      if not here[user] then leave(user) end
    end
  elseif kind == 'c' then
    for _, user in ipairs(redis.call('SMEMBERS', KEYS[3])) do leave(user) end
    redis.call('DEL', KEYS[3])
    redis.call('ZREM', KEYS[1], name)
  end
  i, index = last + 1, index + 1
end
return answer
