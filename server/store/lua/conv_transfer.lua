-- ARGV: P, cid, agent id (who transfers), agent name, target agent id or '', target team or '', note, note msg id, now, retain,
--       the node's audit_retain_days
-- To an agent: it becomes the assignee. To a team (escalation): the conversation leaves
-- its agent and waits in the team's queue (assigned at once when someone has capacity).
-- The note stays in the history as a private note. To itself from another agent it is a
-- take-over: noted in the conversation ("Taken over from …") and in the site's audit log
-- (conversation.take_over).
local cid, aid, aname, target, team, note, note_id, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
event_by = 'agent:' .. aid
local retain = tonumber(ARGV[10])
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'agent', aid) then return fail('not_found', 'no such conversation') end
local prev, prev_name = c.assignee or '', c.assignee_name or ''
local e = do_transfer(c, aid, aname, target, team, note, note_id, now, retain)
if e then return e end
if target == aid and prev ~= '' and prev ~= aid then
  local who = {id = aid, now = now, retain_ms = audit_retain_ms(hgetall(sitekey(c.site)), ARGV[11])}
  audit_append(skey(c.site, 'audit'), who, 'conversation.take_over', cid, {assignee = prev, assignee_name = prev_name},
    {assignee = aid, assignee_name = aname})
end
c = hgetall(key)
return '{"conversation":' .. conv_json(c) .. '}'
