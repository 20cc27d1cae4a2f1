-- ARGV: P, cid, agent id, status, priority, category, tags (JSON array or ''), now,
-- the site's business intervals (a ticket's SLA clocks follow a status change in this
-- same call; '' when the node does not know them: the reply then says "sla":true).
-- Empty strings leave a field unchanged.
local cid, aid, status, priority, category, tags, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
event_by = 'agent:' .. aid
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'agent', aid) then return fail('not_found', 'no such conversation') end
local old = c.status
local e = do_update(c, aid, status, priority, category, tags, now)
if e then return e end
c = hgetall(key)
local sla = c.ticket_number and c.ticket_number ~= '' and status ~= '' and status ~= old
if sla and (ARGV[9] or '') ~= '' then
  sla_sync(c, iv_parse(ARGV[9]), now) -- ARCHITECTURE invariant 3: one atomic step
  sla = false
  c = hgetall(key)
end
return '{"conversation":' .. conv_json(c) .. ',"sla":' .. tostring(sla or false) .. '}'
