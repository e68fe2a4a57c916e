-- A gateway's registration in a bucket on a Redis Cluster (bucket_gateways.lua says what
-- the keys hold): renews its lease, adds the users listed to those it serves there and
-- removes the others listed. One script, so the publishers of the bucket see the users and
-- the lease change at once.
--
-- Also sweeps the gateways whose lease ended more than ARGV[3] ms ago (killed, never
-- excluded their users) out of the bucket's keys: the `{t}:at` lists would otherwise keep
-- them for good. A gateway swept that was only stalled finds its lease gone at its next
-- renewal and registers its users again.
--
-- KEYS[1]  {t}:at
-- KEYS[2]  {t}:leases
-- ARGV[1]  the gateway's id
-- ARGV[2]  the lease (ms)
-- ARGV[3]  how long after its end a lease is swept (ms)
-- ARGV[4]  how many users to add; ARGV[5 .. 4 + n] those users, the rest the users to remove
-- Returns 1 when the gateway's lease was running until now (nothing of the bucket was
-- withheld from it), 0 when it had ended or never begun.
local now = clock_ms()
local gateway = ARGV[1]
local lease = redis.call('HGET', KEYS[2], gateway)
local running = lease and tonumber(lease) >= now
redis.call('HSET', KEYS[2], gateway, now + tonumber(ARGV[2]))

local function without(list, gone)
  local kept = {}
  for id in string.gmatch(list, '[^,]+') do
    if not gone[id] then
      kept[#kept + 1] = id
    end
  end
  return table.concat(kept, ',')
end

local function store(user, list)
  if list == '' then
    redis.call('HDEL', KEYS[1], user)
  else
    redis.call('HSET', KEYS[1], user, list)
  end
end

local adding = tonumber(ARGV[4])
for i = 5, 4 + adding do
  local list = redis.call('HGET', KEYS[1], ARGV[i])
  if not list then
    redis.call('HSET', KEYS[1], ARGV[i], gateway)
  elseif not string.find(',' .. list .. ',', ',' .. gateway .. ',', 1, true) then
    redis.call('HSET', KEYS[1], ARGV[i], list .. ',' .. gateway)
  end
end
local me = {[gateway] = true}
for i = 5 + adding, #ARGV do
  local list = redis.call('HGET', KEYS[1], ARGV[i])
  if list then
    store(ARGV[i], without(list, me))
  end
end

local dead, any_dead = {}, false
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < now - tonumber(ARGV[3]) then
    dead[all[i]] = true
    any_dead = true
    redis.call('HDEL', KEYS[2], all[i])
  end
end
if any_dead then
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do
      local kept = without(page[2][i + 1], dead)
      if kept ~= page[2][i + 1] then
        store(page[2][i], kept)
      end
    end
  until cursor == '0'
end
if running then
  return 1
end
return 0
