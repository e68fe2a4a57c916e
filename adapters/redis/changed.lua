-- A message's current state after an edit or deletion (changed:{message_id}), kept only
-- if it is not older than the state kept already: a relay may append an old edit after a
-- newer edit or the deletion (its first append failed), and must not bring the old
-- content back. A deletion is final; between two edits the later edited_at wins, and of
-- two in the same second the one written last (which a relay of the older one can be:
-- seconds are all a change carries).
-- KEYS[1]  changed:{message_id}, holding {"content", "edited_at", "deleted_at"} (JSON)
-- ARGV[1]  the new state (the same JSON)
-- ARGV[2]  1 when the new state is a deletion, else 0
-- ARGV[3]  its deleted_at, or its edited_at
-- ARGV[4]  how long the state is kept (seconds)
-- Returns 1 when the state was written, 0 when a later one was kept.
local function rank(state)
  local deleted, edited = state['deleted_at'], state['edited_at']
  if deleted ~= nil and deleted ~= cjson.null then
    return 1, tonumber(deleted)
  end
  if edited ~= nil and edited ~= cjson.null then
    return 0, tonumber(edited)
  end
  return 0, 0
end

local kept = redis.call('GET', KEYS[1])
if kept then
  local ok, state = pcall(cjson.decode, kept)
  if ok and type(state) == 'table' then
    local kept_deleted, kept_at = rank(state)
    local new_deleted, new_at = tonumber(ARGV[2]), tonumber(ARGV[3])
    if kept_deleted > new_deleted or (kept_deleted == new_deleted and kept_at > new_at) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
return 1
