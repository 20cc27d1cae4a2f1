-- ARGV: P, cid, agent id, agent name, now. Claiming from the queue (manual mode, or
-- ahead of auto-assignment); the loser of a race gets conflict.
local cid, aid, aname, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
event_by = 'agent:' .. aid
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'agent', aid) then return fail('not_found', 'no such conversation') end
if c.status == 'closed' then return fail('conflict', 'conversation is closed') end
if c.assignee and c.assignee ~= '' and c.assignee ~= aid then
  return fail('conflict', 'conversation is held by another agent')
end
if c.assignee ~= aid then
  local was_queued = c.status == 'queued'
  assign_to(c, aid, now)
  if was_queued then queue_changed(c.site, c.team) end
end
return '{"conversation":' .. conv_json(c) .. '}'
