-- ARGV: P, cid, agent id (who transfers), agent name, target agent id or '', target team or '', note, note msg id, now, retain
-- To an agent: it becomes the assignee. To a team (escalation): the conversation leaves
-- its agent and waits in the team's queue (assigned at once when someone has capacity).
-- The note stays in the history as a private note.
local cid, aid, aname, target, team, note, note_id, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local retain = tonumber(ARGV[10])
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'agent', aid) then return fail('forbidden', 'not a conversation of your sites') end
if c.status == 'closed' then return fail('conflict', 'conversation is closed') end
local text
if target ~= '' then
  local t = hgetall(P .. 'agent:' .. target)
  if not t or not may_access(c, 'agent', target) then return fail('not_found', 'no such agent on this site') end
  if t.disabled == '1' then return fail('conflict', 'agent is disabled') end
  local prev = c.assignee
  if c.status == 'queued' then redis.call('ZREM', qkey(c.site, c.team), cid) end
  if c.status == 'resolved' or c.status == 'queued' then c.status = 'open' end
  assign_to(c, target, now)
  if prev and prev ~= '' and prev ~= target then drain_agent_sites(prev, now) end
  text = 'Transferred to ' .. (t.name or target) .. ' by ' .. aname
else
  if redis.call('HEXISTS', P .. 'site:' .. c.site .. ':teams', team) == 0 then
    return fail('not_found', 'no such team on this site')
  end
  if c.status == 'queued' then redis.call('ZREM', qkey(c.site, c.team), cid) end
  if c.assignee ~= '' then release(c, now, true) end
  c.assignee, c.assignee_name, c.team = '', '', team
  redis.call('HSET', key, 'assignee', '', 'assignee_name', '', 'team', team, 'updated_at', now)
  enqueue(c, now)
  redis.call('HSET', key, 'status', 'queued')
  conv_updated(c, true)
  pub('site:' .. c.site, 0, 'a', '-', '{"type":"conversation.queued","conversation":' .. conv_json(c) .. '}')
  drain(c.site, team, now)
  queue_changed(c.site, team)
  text = 'Escalated to team ' .. team .. ' by ' .. aname
end
if note ~= '' then text = text .. ': ' .. note end
append_msg(c, note_id, '', 'agent', aid, aname, text, '1', now, retain)
c = hgetall(key)
return '{"conversation":' .. conv_json(c) .. '}'
