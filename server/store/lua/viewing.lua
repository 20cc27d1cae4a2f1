-- ARGV: P, cid, agent id, agent name, state (0/1), writing ('' | 'reply' | 'note'), now, ttl (ms)
-- Collision detection (docs/protocol.md "viewing"): who has the conversation open and
-- what they write. P{s:<site>}:conv:<cid>:viewers is a sorted set agent id -> expiry (ms),
-- :viewers:info a hash agent id -> {"id","name","typing"}. A viewer's dashboard sends the
-- frame again every third of ttl; an entry not refreshed in ttl is pruned by the next call
-- and both keys expire with the last viewer, so the agents of a node killed with -9
-- disappear without any clean-up, and a conversation nobody looks at has no key. The
-- "viewers" event goes to the conversation's agents only when the list changed: a refresh
-- that changes nothing publishes nothing.
local cid, aid, name, state, writing = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local key = ckey(cid)
local site = redis.call('HGET', key, 'site')
if not site then return fail('not_found', 'no such conversation') end
if not may_access({site = site}, 'agent', aid) then return fail('not_found', 'no such conversation') end
local vk, ik = key .. ':viewers', key .. ':viewers:info'
local function list()
  local ids = redis.call('ZRANGE', vk, 0, -1)
  table.sort(ids)
  local out = {}
  for _, id in ipairs(ids) do
    local v = redis.call('HGET', ik, id)
    if v then table.insert(out, v) end
  end
  return '[' .. table.concat(out, ',') .. ']'
end
local gone = redis.call('ZRANGEBYSCORE', vk, '-inf', now)
for _, id in ipairs(gone) do
  redis.call('ZREM', vk, id)
  redis.call('HDEL', ik, id)
end
local before = list()
if state == '1' then
  redis.call('ZADD', vk, now + ttl, aid)
  redis.call('HSET', ik, aid, '{"id":' .. S(aid) .. ',"name":' .. J(name) .. ',"typing":' .. J(writing) .. '}')
else
  redis.call('ZREM', vk, aid)
  redis.call('HDEL', ik, aid)
end
local after = list()
if redis.call('ZCARD', vk) > 0 then
  redis.call('PEXPIRE', vk, ttl)
  redis.call('PEXPIRE', ik, ttl)
else
  redis.call('DEL', vk, ik)
end
if after ~= before or #gone > 0 then
  pub('conv:' .. cid, 0, 'a', '-', '{"type":"viewers","conversation_id":' .. S(cid) .. ',"viewers":' .. after .. '}')
end
return '{"viewers":' .. after .. ',"refresh_ms":' .. I(math.floor(ttl / 3)) .. '}'
