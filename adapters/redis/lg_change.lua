#!lua
-- A large group's switch, or a change of its membership, ordered against its messages
-- (docs/design/large-groups.md, sections 4.2 and 4.3): one script on the group's slot,
-- so a change falls between two messages of the log, and lg_deliver.lua's membership
-- check and lg_read.lua's clip see it from the next message on.
--
-- ARGV[1] is the kind: 'switch', 'join', 'leave' or 'owner'.
-- KEYS[1]  lg:{G}                      hash: sno, seq, mv, owner, kind, floor
-- KEYS[2]  lg:{G}:log
-- KEYS[3]  lg:{G}:members              user id -> intervals 'join,leave;join,+'
-- KEYS[4]  lg:{G}:done:<event id>      the place the change was given (kept ARGV[3] s)
-- switch on one Redis only (keys of the small path, outside the slot):
-- KEYS[5]  seq:g:<G>                   the small path's counter, 'L' once switched
-- KEYS[6]  seq:complete
-- KEYS[7]  stream:last-id              the last own-log entry id deliver.lua handed out
-- A switch given KEYS[1..4] alone is step 2 of a cluster's (docs/design/redis-cluster.md,
-- section 4): lg_close.lua switched the small counter off in its own slot and gave the
-- last small seq, ARGV[8]; ARGV[10] is the newest id of every bucket's generator, read
-- after that.
-- ARGV[2]  the change's member version
-- ARGV[3]  how long the done: marker is kept (seconds)
-- ARGV[4]  where to publish: the main channel (message_notifications) for a switch, the
--          group's (lg:{G}:n) for the others; '' for a cluster's switch (its adapter
--          publishes on the members' buckets' channels, outside this slot)
-- ARGV[5]  the owner from now on ('': unchanged; always given for a switch)
-- ARGV[6]  switch: the stream number (sno); join, leave: the change record for the
--          other members ('': none; never appended in a channel)
-- switch:      ARGV[7] 'group' or 'channel', ARGV[8] the counter's seed ('': none; on a
--              cluster the last small seq), ARGV[9] the envelope's head, ARGV[10] the
--              floor's lower bound on a cluster ('' on one Redis: KEYS[7]), ARGV[11..]
--              the member ids
-- join, leave: ARGV[7] the envelope's head ('': publish nothing), ARGV[8..] the user ids
-- Returns {'APPLIED', position} (now, or before: the done: marker or the floor kept it),
-- {'DONE'} (applied before; its place forgotten), {'WAIT'} (an earlier change of the
-- group is not applied yet: nothing done). Error replies: NOSEED (a switch, the counter
-- and seq:complete both missing: call again with ARGV[8], the seq the database holds),
-- LOST (a switch, the counter is 'L' but the group's state is gone).

local kind = ARGV[1]
local OPEN = '+'

local function parse_id(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)), tonumber(string.sub(id, dash + 1))
end

local function newest_id()
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  return last[1][1]  -- a switched group's log always holds an entry (MAXLEN ~ keeps some)
end

local function is_open(intervals)
  return intervals and string.sub(intervals, -2) == ',' .. OPEN
end

if kind == 'switch' then
  -- Idempotent: a relay after a crash, or two announcers, find the group switched.
  local floor = redis.call('HGET', KEYS[1], 'floor')
  if floor then
    return {'APPLIED', floor}
  end
  local seq, last
  if #KEYS == 4 then
    -- A cluster's step 2: the counter was switched off by step 1, which gave its last seq.
    seq, last = ARGV[8], ARGV[10]
  else
    seq = redis.call('GET', KEYS[5])
    if seq == 'L' then
      return redis.error_reply('LOST the counter is switched off but the group has no state')
    end
    if not seq then
      if ARGV[8] ~= '' then
        seq = ARGV[8]
      elseif redis.call('EXISTS', KEYS[6]) == 1 then
        seq = '0'  -- seq:complete: a missing counter is a group without messages
      else
        return redis.error_reply('NOSEED the group has no seq counter')
      end
    end
    -- The message boundary: from here on deliver.lua answers LARGE for this group (its
    -- INCR fails on 'L'), before writing anything, and a gateway of the previous version
    -- fails its send (503) rather than doubling a seq. The counter moves into lg:{G}.
    redis.call('SET', KEYS[5], 'L')
    last = redis.call('GET', KEYS[7])
  end
  -- floor = max(TIME, stream:last-id) + 1: after every own-log entry of the group's
  -- small era, so the time merge keeps its seq order across the switch, and every later
  -- entry of the log ('*' ids) after it. (After the log's newest too, should a log
  -- outlive its state.)
  local now = redis.call('TIME')
  local ms, n = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000), 0
  local logged = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if not last or last == '' then
    last = '0-0'
  end
  for _, id in ipairs({last, logged[1] and logged[1][1] or '0-0'}) do
    local id_ms, id_n = parse_id(id)
    if id_ms > ms or (id_ms == ms and id_n >= n) then
      ms, n = id_ms, id_n + 1
    end
  end
  floor = string.format('%d-%d', ms, n)
  redis.call('XADD', KEYS[2], floor, 'x', 'switched')  -- readers pass over it (not 'm')
  redis.call('HSET', KEYS[1], 'sno', ARGV[6], 'seq', seq, 'mv', ARGV[2], 'owner', ARGV[5],
             'kind', ARGV[7], 'floor', floor)
  -- The floor is every present member's join; in chunks (unpack has a limit).
  local open = floor .. ',' .. OPEN
  local chunk = {}
  for i = 11, #ARGV do
    chunk[#chunk + 1] = ARGV[i]
    chunk[#chunk + 1] = open
    if #chunk >= 1000 or i == #ARGV then
      redis.call('HSET', KEYS[3], unpack(chunk))
      chunk = {}
    end
  end
  redis.call('SET', KEYS[4], floor, 'EX', ARGV[3])
  -- On the main channel: after every small-era notification of the group (section 6.2).
  if ARGV[4] ~= '' then
    redis.call('PUBLISH', ARGV[4], ARGV[9] .. ',"floor":"' .. floor .. '"}')
  end
  return {'APPLIED', floor}
end

local done = redis.call('GET', KEYS[4])
if done then
  return {'APPLIED', done}
end
local state = redis.call('HMGET', KEYS[1], 'mv', 'kind')
if not state[1] then
  return {'WAIT'}  -- the switch itself is not applied yet
end
local applied, version = tonumber(state[1]), tonumber(ARGV[2])
if applied >= version then
  return {'DONE'}
end
if applied ~= version - 1 then
  return {'WAIT'}  -- versions keep Redis in SQL's order, whichever gateway came first
end
-- A channel logs no joins and leaves: its members see posts only.
local record = ''
if state[2] ~= 'channel' then
  record = ARGV[6]
end
local position
local record_id  -- the change record's id, when one was logged
if kind == 'join' then
  -- The join is the member_added record itself: the joiner's interval starts after it,
  -- so the joiner reads it only in its own log (section 15, item 5).
  if record ~= '' then
    position = redis.call('XADD', KEYS[2], '*', 'm', record)
    record_id = position
  else
    position = newest_id()
  end
  for i = 8, #ARGV do
    local kept = redis.call('HGET', KEYS[3], ARGV[i])
    if not is_open(kept) then  -- an open interval stays as it is
      local opened = position .. ',' .. OPEN
      if kept then
        opened = kept .. ';' .. opened
      end
      redis.call('HSET', KEYS[3], ARGV[i], opened)
    end
  end
elseif kind == 'leave' then
  -- The leave is the entry before the member_removed record: the one leaving reads up
  -- to it, and not the record (its own log has its copy).
  position = newest_id()
  for i = 8, #ARGV do
    local kept = redis.call('HGET', KEYS[3], ARGV[i])
    if is_open(kept) then
      redis.call('HSET', KEYS[3], ARGV[i], string.sub(kept, 1, -2) .. position)
    end
  end
  if record ~= '' then
    record_id = redis.call('XADD', KEYS[2], '*', 'm', record)
  end
elseif kind == 'owner' then
  position = newest_id()
else
  return redis.error_reply('ERR unknown change ' .. kind)
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[1], 'owner', ARGV[5])
end
redis.call('HSET', KEYS[1], 'mv', ARGV[2])
redis.call('SET', KEYS[4], position, 'EX', ARGV[3])
if kind ~= 'owner' and ARGV[7] ~= '' then
  -- In group order, on the group's channel: a gateway pushes up to a leave, not past it.
  local side = 'join'
  if kind == 'leave' then
    side = 'leave'
  end
  -- The record rides along, so that the other members' sockets get it live (a gateway
  -- that pushed a later entry without it would have passed over it for good).
  local carried = ''
  if record_id then
    carried = ',"event":' .. record .. ',"pos":"' .. record_id .. '"'
  end
  redis.call('PUBLISH', ARGV[4], ARGV[7] .. ',"' .. side .. '":"' .. position .. '"' .. carried .. '}')
end
return {'APPLIED', position}
