-- ARGV: P, now, node ('' for the periodic sweep), agent id ('' for all due)
-- Drops expired presence entries (or one node's entry for one agent, when its last
-- connection closed); an agent no node vouches for any more is offline. Returns the agents
-- that went offline: the caller updates their record in each of their sites (agent_site).
local now, node, only = tonumber(ARGV[2]), ARGV[3], ARGV[4]
local ids
if only ~= '' then
  redis.call('HDEL', P .. '{a}:presence:' .. only, node)
  ids = {only}
else
  ids = redis.call('ZRANGEBYSCORE', P .. '{a}:presence', '-inf', now, 'LIMIT', 0, 200)
end
local changed = {}
for _, aid in ipairs(ids) do
  local pkey = P .. '{a}:presence:' .. aid
  local r = redis.call('HGETALL', pkey)
  local best = 0
  for i = 1, #r, 2 do
    local exp = tonumber(r[i + 1])
    if exp <= now then redis.call('HDEL', pkey, r[i]) elseif exp > best then best = exp end
  end
  if best > 0 then
    redis.call('ZADD', P .. '{a}:presence', best, aid)
  else
    redis.call('ZREM', P .. '{a}:presence', aid)
    local akey = P .. '{a}:agent:' .. aid
    local a = hgetall(akey)
    if a and a.status ~= 'offline' then
      redis.call('HSET', akey, 'status', 'offline', 'status_at', ARGV[2])
      redis.call('HINCRBY', akey, 'sv', 1)
      table.insert(changed, S(aid))
    end
  end
end
return '{"changed":[' .. table.concat(changed, ',') .. ']}'
