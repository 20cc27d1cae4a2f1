-- ARGV: P, agent id, status (online|away|offline), now
-- The agent's choice is kept in `chosen`; the effective `status` is the choice while the
-- agent has a live connection on some node, else offline.
local aid, status, now = ARGV[2], ARGV[3], ARGV[4]
local akey = P .. 'agent:' .. aid
local sites = redis.call('HGET', akey, 'sites')
if not sites then return fail('not_found', 'no such agent') end
local live = false
for _, exp in ipairs(redis.call('HVALS', P .. 'presence:' .. aid)) do
  if tonumber(exp) > tonumber(now) then live = true break end
end
local eff = live and status or 'offline'
local old = redis.call('HGET', akey, 'status')
redis.call('HSET', akey, 'chosen', status, 'status', eff, 'status_at', now)
if old ~= eff then
  local frame = '{"type":"presence.updated","agent_id":' .. S(aid) .. ',"status":' .. S(eff) .. '}'
  for _, s in ipairs(cjson.decode(sites)) do pub('site:' .. s, 0, 'a', '-', frame) end
end
if eff == 'online' then drain_agent_sites(aid, now) end
return '{"status":' .. S(eff) .. '}'
