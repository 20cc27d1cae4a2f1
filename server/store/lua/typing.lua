-- ARGV: P, cid, author kind, author id, author name, state (0/1). Not stored.
local cid, kind, who, name, state = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local c = hgetall(ckey(cid))
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, kind, who) then return fail('not_found', 'no such conversation') end
if kind == 'visitor' and name == '' then name = c.visitor_name or '' end
pub('conv:' .. cid, 0, '*', kind .. ':' .. who, '{"type":"typing","conversation_id":' .. S(cid) ..
  ',"author":{"kind":' .. S(kind) .. ',"id":' .. S(who) .. ',"name":' .. J(name) .. '},"state":' ..
  (state == '1' and 'true' or 'false') .. '}')
return '{}'
