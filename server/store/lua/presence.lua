-- ARGV: P, agent id, status (online|away|offline), now
local aid, status, now = ARGV[2], ARGV[3], ARGV[4]
local akey = P .. 'agent:' .. aid
local sites = redis.call('HGET', akey, 'sites')
if not sites then return fail('not_found', 'no such agent') end
redis.call('HSET', akey, 'status', status, 'status_at', now)
local frame = '{"type":"presence.updated","agent_id":' .. S(aid) .. ',"status":' .. S(status) .. '}'
for _, s in ipairs(cjson.decode(sites)) do pub('site:' .. s, 0, 'a', '-', frame) end
return '{"status":' .. S(status) .. '}'
