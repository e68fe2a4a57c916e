#!lua
-- One event (a message, a group change, an edit, a read marker) into the logs of one
-- bucket's recipients on a Redis Cluster, with the bucket's notification
-- (docs/design/redis-cluster.md, section 3): every key and the channel are in the bucket's
-- slot, so this is one script on one node, as deliver.lua is on one Redis for every
-- recipient at once. Redis runs one script at a time: for each recipient, notifications
-- are published (SPUBLISH on the channel of each gateway holding a recipient's sockets:
-- bucket_gateways.lua, prepended) in cursor order.
--
-- Once per event and bucket: KEYS[2] marks it appended, and a second run (the sender's
-- gateway and a relay, or a later send of the conversation making this one's appends
-- first: commit.lua) appends nothing and answers no cursor.
--
-- Cursors as deliver.lua hands them out, from the bucket's generator (KEYS[1]): one id for
-- every recipient of the bucket, after any the bucket handed out before; an inbox that
-- already holds a later id gets one of its own ('*'). Trimming as in deliver.lua.
--
-- KEYS[1]     {t}:last-id, the bucket's cursor generator
-- KEYS[2]     {t}:appended:<event id>, the marker
-- KEYS[3]     {t}:at, KEYS[4] {t}:leases: who hears whom (bucket_gateways.lua)
-- KEYS[5..]   {t}:log:<user id>, one per recipient of the bucket
-- ARGV[1]     MAXLEN of a log
-- ARGV[2]     '~' or '=' (approximate or exact trimming)
-- ARGV[3]     the event's record for the logs (a message's: public, without seq)
-- ARGV[4]     the sender's own record (a message's full one, without seq), '' for none
-- ARGV[5]     the bucket's channels' prefix (n:{t}:, then a gateway's id)
-- ARGV[6]     trim a log on one append in this many
-- ARGV[7]     a message's seq, '' for an event without one
-- ARGV[8]     the notification's head, up to its recipients (adapters/redis/envelope.py)
-- ARGV[9]     the sender's 1-based position among KEYS[5..], 0 when none
-- ARGV[10]    how long the marker is kept (seconds)
-- Returns {cursor, {position, own cursor, ...}}: every recipient's cursor but those listed;
-- {'', {}} when the marker says it was appended before.
local function parse_id(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function later(a, b)  -- is stream id a after stream id b?
  local a_ms, a_seq = parse_id(a)
  local b_ms, b_seq = parse_id(b)
  return a_ms > b_ms or (a_ms == b_ms and a_seq > b_seq)
end

if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[10]) == false then
  return {'', {}}  -- appended before: nothing more to do
end

local record, own_record, seq_tail = ARGV[3], ARGV[4], ''
if ARGV[7] ~= '' then
  local seq_part = ',"seq":' .. ARGV[7] .. '}'
  record = string.sub(record, 1, -2) .. seq_part
  if own_record ~= '' then
    own_record = string.sub(own_record, 1, -2) .. seq_part
  end
  seq_tail = ',"seq":' .. ARGV[7]
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local now_ms = ms
local seq = 0
local last = redis.call('GET', KEYS[1])
if last then
  local last_ms, last_seq = parse_id(last)
  if last_ms >= ms then
    ms, seq = last_ms, last_seq + 1
  end
end
local id = string.format('%d-%d', ms, seq)
local newest = id
local trim_every = tonumber(ARGV[6])
local trim_phase = tonumber(now[2]) % trim_every
local sender = tonumber(ARGV[9])
local own, own_json, users = {}, {}, {}
for i = 5, #KEYS do
  local n = i - 4
  -- The user id out of its key, {t}:log:<user id> (ids are UUIDs: no colon, nothing to escape).
  users[n] = string.match(KEYS[i], '([^:]+)$')
  local entry = record
  if n == sender then
    entry = own_record
  end
  local added
  if (n + trim_phase) % trim_every == 0 then
    added = redis.pcall('XADD', KEYS[i], 'MAXLEN', ARGV[2], ARGV[1], id, 'm', entry)
  else
    added = redis.pcall('XADD', KEYS[i], id, 'm', entry)
  end
  if type(added) == 'table' and added.err then
    -- Only a log whose last id is at or after ours fails here (see deliver.lua).
    added = redis.call('XADD', KEYS[i], 'MAXLEN', ARGV[2], ARGV[1], '*', 'm', entry)
    own[#own + 1] = n
    own[#own + 1] = added
    own_json[#own_json + 1] = '"' .. users[n] .. '":"' .. added .. '"'
    if later(added, newest) then
      newest = added
    end
  end
end
redis.call('SET', KEYS[1], newest)
local own_part = ''
if #own_json > 0 then
  own_part = ',"own":{' .. table.concat(own_json, ',') .. '}'
end
publish_to_gateways(KEYS[3], KEYS[4], ARGV[5], users,
                    ARGV[8] .. seq_tail .. ',"cursor":"' .. id .. '"' .. own_part .. '}', now_ms)
return {id, own}
