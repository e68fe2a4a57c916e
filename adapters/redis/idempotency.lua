-- The two compare-and-set steps of an idempotency key (adapters/redis/idempotency.py):
-- they act on the answer of one message only, so a slow first attempt whose
-- pending answer expired never drops or overwrites the answer of the retry
-- that took the key since. deliver.lua inlines the 'confirm' branch.
-- KEYS[1]  idem:{sender}:{digest}, holding 'p:<message id>:<record>' (pending)
--          or 'd:<message id>:<record>' (delivered)
-- ARGV[1]  'confirm' or 'forget'
-- ARGV[2]  the message id
-- ARGV[3]  the message record (JSON), for 'confirm'
-- ARGV[4]  how long a delivered answer is kept (seconds), for 'confirm'
-- Returns 1 when the key was changed, else 0.
local value = redis.call('GET', KEYS[1])
local pending = 'p:' .. ARGV[2] .. ':'
local ours = value and string.sub(value, 1, #pending) == pending
if ARGV[1] == 'forget' then
  if ours then
    redis.call('DEL', KEYS[1])
    return 1
  end
  return 0
end
-- confirm: our pending answer, or a free key (a pending answer that expired)
if not value or ours then
  redis.call('SET', KEYS[1], 'd:' .. ARGV[2] .. ':' .. ARGV[3], 'EX', ARGV[4])
  return 1
end
return 0
