-- ARGV: P, cid, agent id (who transfers), agent name, target agent id or '', target team or '', note, note msg id, now, retain
-- To an agent: it becomes the assignee. To a team (escalation): the conversation leaves
-- its agent and waits in the team's queue (assigned at once when someone has capacity).
-- The note stays in the history as a private note.
local cid, aid, aname, target, team, note, note_id, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
event_by = 'agent:' .. aid
local retain = tonumber(ARGV[10])
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'agent', aid) then return fail('not_found', 'no such conversation') end
local e = do_transfer(c, aid, aname, target, team, note, note_id, now, retain)
if e then return e end
c = hgetall(key)
return '{"conversation":' .. conv_json(c) .. '}'
