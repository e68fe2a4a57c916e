#!lua flags=no-writes
-- One page of an inbox and, in the same atomic step, where what is retained
-- begins, so a trim between the two can never hide a gap from the reader.
-- KEYS[1]  stream:private:{user_id}
-- ARGV[1]  start of the range: '-' or '(' .. cursor (exclusive)
-- ARGV[2]  COUNT
-- ARGV[3]  '1' to report the retention boundary (only needed when reading after a cursor)
-- Returns {first_retained, max_deleted, entries, newest}: first_retained is the
-- first entry's id when older entries were trimmed away ('' when none were),
-- max_deleted the newest id removed by XDEL ('' when unknown), newest the id of
-- the newest entry when reading after a cursor found nothing after it ('' when
-- the inbox is empty, or when it was not needed): a cursor after it is unknown.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'', '', {}, ''}
end
local first_retained, max_deleted = '', ''
if ARGV[3] == '1' then
  -- XINFO STREAM is a flat list of names and values (RESP2 inside scripts).
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local fields = {}
  for i = 1, #info, 2 do
    fields[info[i]] = info[i + 1]
  end
  -- MAXLEN trimming leaves max-deleted-entry-id alone on Redis 7.0 (only XDEL
  -- moves it), so trimming is told by entries-added > length instead.
  if tonumber(fields['entries-added']) > tonumber(fields['length']) then
    first_retained = fields['recorded-first-entry-id']
  end
  max_deleted = fields['max-deleted-entry-id']
end
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local newest = ''
if ARGV[3] == '1' and #entries == 0 then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if #last > 0 then
    newest = last[1][1]
  end
end
return {first_retained, max_deleted, entries, newest}
