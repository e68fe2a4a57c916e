#!lua flags=no-writes
-- One page of a large group's stream for one member (docs/design/large-groups.md,
-- section 5, and section 15, items 6-7): the entries after a position that fall in the
-- member's intervals, read across intervals, the internal markers passed over, and, in
-- the same atomic step, the checks that tell a cursor that lost entries (trimmed) or that
-- is after everything (unknown). Being atomic with the intervals, a leave applied after
-- the reader resolved its vector is never read past.
--
-- KEYS[1]  lg:{G}:log
-- KEYS[2]  lg:{G}:members   user id -> intervals 'join,leave;join,+' ('+': still open)
-- ARGV[1]  the user id
-- ARGV[2]  after: a stream id '<ms>-<n>' (exclusive)
-- ARGV[3]  COUNT: at most this many entries
-- Returns {'OK', entries} (entries as XRANGE gives them, only those whose field is 'm'),
-- {'EXPIRED'} when the effective start - after, or the join of the first interval that
-- reaches past it - is before what the log retains, {'UNKNOWN'} when after is after the
-- log's newest entry (or the log does not exist).

-- Ids compared exactly, as text: two unsigned 64-bit decimals without leading zeros
-- (a cursor may carry numbers that a Lua double cannot hold exactly).
local function parse_id(id)
  local dash = string.find(id, '-', 1, true)
  return string.sub(id, 1, dash - 1), string.sub(id, dash + 1)
end

local function less(a, b)  -- decimal strings
  if #a ~= #b then
    return #a < #b
  end
  return a < b
end

local function later(a, b)  -- is stream id a after stream id b?
  local a_ms, a_n = parse_id(a)
  local b_ms, b_n = parse_id(b)
  if a_ms ~= b_ms then
    return less(b_ms, a_ms)
  end
  return less(b_n, a_n)
end

local after, limit = ARGV[2], tonumber(ARGV[3])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 or later(after, newest[1][1]) then
  return {'UNKNOWN'}
end
local intervals = {}
local kept = redis.call('HGET', KEYS[2], ARGV[1])
if kept then
  for join, leave in string.gmatch(kept, '([^,;]+),([^;]+)') do
    intervals[#intervals + 1] = {join, leave}
  end
end
local first
for i, interval in ipairs(intervals) do
  if interval[2] == '+' or later(interval[2], after) then
    first = i
    break
  end
end
if not first or limit <= 0 then
  return {'OK', {}}
end
local start = after
if later(intervals[first][1], start) then
  start = intervals[first][1]
end
-- Where what is retained begins, as read.lua tells it: MAXLEN trimming is seen by
-- entries-added > length; XDEL by max-deleted-entry-id. A start before the first
-- retained entry counts as expired, even the one start (the last trimmed entry) that
-- lost nothing: a reader sent to history needlessly, never one that misses a message.
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local fields = {}
for i = 1, #info, 2 do
  fields[info[i]] = info[i + 1]
end
if tonumber(fields['entries-added']) > tonumber(fields['length'])
    and later(fields['recorded-first-entry-id'], start) then
  return {'EXPIRED'}
end
if later(fields['max-deleted-entry-id'], start) then
  return {'EXPIRED'}
end
local out = {}
for i = first, #intervals do
  local join, leave = intervals[i][1], intervals[i][2]
  local from = start
  if later(join, from) then
    from = join
  end
  -- (from, leave], in batches, until the page is full or the interval is read
  while #out < limit and (leave == '+' or later(leave, from)) do
    local batch = redis.call('XRANGE', KEYS[1], '(' .. from, leave, 'COUNT', limit - #out)
    if #batch == 0 then
      break
    end
    for _, entry in ipairs(batch) do
      from = entry[1]
      if entry[2][1] == 'm' then  -- not an internal marker (the switch's is 'x')
        out[#out + 1] = entry
      end
    end
  end
  if #out >= limit then
    break
  end
end
return {'OK', out}
