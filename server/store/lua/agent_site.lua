-- KEYS: P{s:<site>}:agent:<id>. ARGV: P, site, agent id, sv, status, name, teams (JSON),
-- max_chats, disabled, now, role.
-- The agent's record in one site (what routing reads: status, teams, max_chats, disabled,
-- last_assigned_at), copied from its global record (agent_sync.lua) whenever its status or
-- settings change: one call per site. A copy older than the stored one (sv, moved on by
-- each status change) is ignored. Tells the site when the status changed and, while the
-- agent is online, drains the site's queues; returns the conversations that gave it. The
-- agent is in the site's agents set from then on (the admin CLI adds it in a step of its
-- own; this keeps membership following the record, whatever stopped in between).
local site, aid, sv, status, now = ARGV[2], ARGV[3], tonumber(ARGV[4]) or 0, ARGV[5], ARGV[10]
local key = sakey(site, aid)
local old = hgetall(key)
if old and tonumber(old.sv or '0') > sv then return '{"assigned":[]}' end
redis.call('HSET', key, 'id', aid, 'sv', I(sv), 'status', status, 'name', ARGV[6], 'teams', ARGV[7],
  'max_chats', ARGV[8], 'disabled', ARGV[9], 'role', ARGV[11] or 'agent')
redis.call('SADD', skey(site, 'agents'), aid)
if not old or old.status ~= status then
  pub('site:' .. site, 0, 'a', '-', '{"type":"presence.updated","agent_id":' .. S(aid) .. ',"status":' .. S(status) .. '}')
end
local given = {}
if status == 'online' and ARGV[9] ~= '1' then
  local before = {}
  for _, cid in ipairs(redis.call('SMEMBERS', key .. ':active')) do before[cid] = true end
  drain_site(site, now)
  for _, cid in ipairs(redis.call('SMEMBERS', key .. ':active')) do
    if not before[cid] then
      local c = hgetall(ckey(cid, site))
      if c then table.insert(given, '{"agent":' .. S(aid) .. ',"conversation":' .. conv_json(c) .. '}') end
    end
  end
end
return '{"assigned":[' .. table.concat(given, ',') .. ']}'
