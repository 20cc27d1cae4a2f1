-- ARGV: P, cid, agent id, agent name, now
local cid, aid, aname, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'agent', aid) then return fail('forbidden', 'not a conversation of your sites') end
if c.status == 'closed' then return fail('conflict', 'conversation is closed') end
if c.assignee and c.assignee ~= '' and c.assignee ~= aid then
  return fail('conflict', 'conversation is held by another agent')
end
if c.assignee ~= aid then
  c.assignee, c.assignee_name = aid, aname
  if c.status == 'queued' then c.status = 'open' end
  c.updated_at = now
  redis.call('HSET', key, 'assignee', aid, 'assignee_name', aname, 'status', c.status, 'updated_at', now)
  redis.call('ZREM', P .. 'site:' .. c.site .. ':queue', cid)
  redis.call('SADD', P .. 'agent:' .. aid .. ':convs', cid)
  conv_updated(c, true)
  pub('agent:' .. aid, 0, 'a', '-', '{"type":"conversation.assigned","conversation":' .. conv_json(c) .. '}')
end
return '{"conversation":' .. conv_json(c) .. '}'
