-- ARGV: P, cid, visitor id, now, the site's business intervals ('' unknown: the reply
-- says "sla":true for a ticket). The customer confirms a resolved conversation: closed;
-- a ticket's SLA clocks stop in this same call.
local cid, vid, now = ARGV[2], ARGV[3], ARGV[4]
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'visitor', vid) then return fail('not_found', 'no such conversation') end
if c.status == 'closed' then return '{"conversation":' .. conv_json(c) .. '}' end
if c.status ~= 'resolved' then return fail('conflict', 'only a resolved conversation can be confirmed') end
timer_clear(c.site, 'autoclose', cid)
event_by = 'visitor:' .. vid
emit('conversation.status_changed', c, now, '{"from":"resolved","to":"closed"}')
c.status, c.updated_at = 'closed', now
redis.call('HSET', key, 'status', 'closed', 'closed_at', now, 'updated_at', now)
release(c, now, true)
conv_updated(c, true)
local sla = c.ticket_number ~= nil and c.ticket_number ~= ''
if sla and (ARGV[5] or '') ~= '' then
  sla_sync(hgetall(key), iv_parse(ARGV[5]), now)
  sla = false
end
return '{"conversation":' .. conv_json(c) .. ',"sla":' .. tostring(sla) .. '}'
