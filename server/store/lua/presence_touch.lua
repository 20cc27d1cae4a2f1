-- ARGV: P, node, expiry (ms), now, agent ids...
-- A node vouches for agents it has a live connection to until `expiry`; an agent that
-- comes back gets its chosen status again. Returns the agents whose status changed: the
-- node brings their record in each of their sites in line (agent_site, one call per
-- site), which drains the site's queues and returns what it gave them.
local node, expiry, now = ARGV[2], ARGV[3], ARGV[4]
local changed = {}
for i = 5, #ARGV do
  local aid = ARGV[i]
  local akey = P .. '{a}:agent:' .. aid
  local a = hgetall(akey)
  if a then
    redis.call('HSET', P .. '{a}:presence:' .. aid, node, expiry)
    local score = tonumber(redis.call('ZSCORE', P .. '{a}:presence', aid) or '0')
    if tonumber(expiry) > score then redis.call('ZADD', P .. '{a}:presence', expiry, aid) end
    local chosen = a.chosen or 'online'
    if (a.status or 'offline') ~= chosen then
      redis.call('HSET', akey, 'status', chosen, 'status_at', now)
      redis.call('HINCRBY', akey, 'sv', 1)
      table.insert(changed, S(aid))
    end
  end
end
return '{"changed":[' .. table.concat(changed, ',') .. ']}'
