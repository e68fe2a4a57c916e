-- A notification stored in no log (a large group's switch, adapters/redis/cluster_switch.py)
-- to the gateways that hold sockets of the bucket's users listed (bucket_gateways.lua).
-- KEYS[1]  {t}:at
-- KEYS[2]  {t}:leases
-- ARGV[1]  the bucket's channels' prefix (n:{t}:)
-- ARGV[2]  the notification
-- ARGV[3..] the users it concerns
-- Returns how many gateways it was published to.
local users = {}
for i = 3, #ARGV do
  users[#users + 1] = ARGV[i]
end
return publish_to_gateways(KEYS[1], KEYS[2], ARGV[1], users, ARGV[2], clock_ms())
