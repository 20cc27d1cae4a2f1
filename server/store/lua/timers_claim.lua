-- ARGV: P, now, lease (ms), max
-- Claims due timers with a lease; a lease that expired (its node died) is claimed again.
-- Returns {"timers":["kind|id",...]}. Handlers are idempotent and end with timer_done.
local now, lease, max = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tkey, lkey = KEYS[1], KEYS[2] -- P{s:<site>}:timers, P{s:<site>}:timers:leased
for _, item in ipairs(redis.call('ZRANGEBYSCORE', lkey, '-inf', now, 'LIMIT', 0, max)) do
  redis.call('ZREM', lkey, item)
  redis.call('ZADD', tkey, now, item)
end
local due = redis.call('ZRANGEBYSCORE', tkey, '-inf', now, 'LIMIT', 0, max)
local out = {}
for _, item in ipairs(due) do
  redis.call('ZREM', tkey, item)
  redis.call('ZADD', lkey, now + lease, item)
  table.insert(out, S(item))
end
return '{"timers":[' .. table.concat(out, ',') .. ']}'
