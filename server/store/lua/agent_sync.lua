-- ARGV: P, agent id. Read-only (no-writes). What the agent's record in each of its sites
-- copies from its global record (agent_site.lua, one call per site, made by the caller).
local aid = ARGV[2]
local a = hgetall(P .. '{a}:agent:' .. aid)
if not a then return fail('not_found', 'no such agent') end
return '{"agent":{"id":' .. S(aid) .. ',"sites":' .. (a.sites or '[]') .. ',"sv":' .. I(tonumber(a.sv or '0')) ..
  ',"status":' .. S(a.status or 'offline') .. ',"name":' .. S(a.name or '') .. ',"teams":' .. S(a.teams or '[]') ..
  ',"max_chats":' .. S(a.max_chats or '5') .. ',"disabled":' .. S(a.disabled or '0') ..
  ',"role":' .. S(a.role or 'agent') .. '}}'
