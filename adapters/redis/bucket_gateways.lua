-- Shared by the scripts that publish a bucket's notifications on a Redis Cluster
-- (docs/design/redis-cluster.md, section 5; prepended to them by ClusterKeys.script).
--
-- Who hears a bucket: each gateway registers the users it serves in the bucket's `{t}:at`
-- hash (user id -> the ids of the gateways holding the user's sockets, comma-separated; the
-- field '*' lists gateways that hear every user of the bucket), under a lease in `{t}:leases`
-- (gateway id -> lease end, ms on this node's clock), and listens on `n:{t}:<gateway id>`.
-- A notification goes to the channel of every gateway with a running lease that holds one of
-- its recipients: with N gateways each hears about its share. Gateway ids hold no comma.
--
-- A gateway whose lease ran out hears nothing more here; its renewal says so
-- (bucket_here.lua), and it registers its users again and reads their gap.
local function publish_to_gateways(at_key, leases_key, channel_prefix, users, payload, now_ms)
  local seen, gateways = {}, {}
  local fields = {'*'}
  for i = 1, #users do
    fields[#fields + 1] = users[i]
  end
  for first = 1, #fields, 1000 do  -- unpack() is bounded by Lua's stack
    local lists = redis.call('HMGET', at_key, unpack(fields, first, math.min(first + 999, #fields)))
    for i = 1, #lists do
      if lists[i] then
        for gateway in string.gmatch(lists[i], '[^,]+') do
          if not seen[gateway] then
            seen[gateway] = true
            gateways[#gateways + 1] = gateway
          end
        end
      end
    end
  end
  if #gateways == 0 then
    return 0
  end
  local leases = redis.call('HMGET', leases_key, unpack(gateways))
  local published = 0
  for i = 1, #gateways do
    if leases[i] and tonumber(leases[i]) >= now_ms then
      redis.call('SPUBLISH', channel_prefix .. gateways[i], payload)
      published = published + 1
    end
  end
  return published
end

local function clock_ms()
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
