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
-- when this site needs a poll again: its earliest timer or lease expiry (null: none)
local nt = redis.call('ZRANGE', tkey, 0, 0, 'WITHSCORES')
local nl = redis.call('ZRANGE', lkey, 0, 0, 'WITHSCORES')
local nxt = nil
if #nt == 2 then nxt = tonumber(nt[2]) end
if #nl == 2 and (not nxt or tonumber(nl[2]) < nxt) then nxt = tonumber(nl[2]) end
return '{"timers":[' .. table.concat(out, ',') .. '],"next":' .. (nxt and string.format('%d', nxt) or 'null') .. '}'
