-- ARGV: P, agent id, status (online|away|offline), now
-- The agent's choice is kept in `chosen`; the effective `status` is the choice while the
-- agent has a live connection on some node, else offline. The agent's record of each of
-- its sites follows with one agent_site call per site (the caller's, when `changed`
-- names the agent): it tells the site and drains its queues.
local aid, status, now = ARGV[2], ARGV[3], ARGV[4]
local akey = P .. '{a}:agent:' .. aid
if not redis.call('HGET', akey, 'sites') then return fail('not_found', 'no such agent') end
local live = false
for _, exp in ipairs(redis.call('HVALS', P .. '{a}:presence:' .. aid)) do
  if tonumber(exp) > tonumber(now) then live = true break end
end
local eff = live and status or 'offline'
local old = redis.call('HGET', akey, 'status')
redis.call('HSET', akey, 'chosen', status, 'status', eff, 'status_at', now)
if old == eff then return '{"status":' .. S(eff) .. '}' end
redis.call('HINCRBY', akey, 'sv', 1)
return '{"status":' .. S(eff) .. ',"changed":[' .. S(aid) .. ']}'
