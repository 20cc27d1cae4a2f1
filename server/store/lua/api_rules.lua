-- HTTP API: automation rules and team leads (docs/api.md "Automation rules",
-- docs/rules.md). Rules are validated in C (server/rules) before they get here; the
-- C side passes trigger/conditions/actions as JSON text (raw_trigger, raw_conditions,
-- raw_actions) so they are stored exactly as sent.
local ops = {}
local MAX_RULES = 100

local rules_site = admin_site_key
local function rule_key(site, id) return skey(site, 'rule:' .. id) end
-- what the audit log keeps of a rule (JSON texts decoded, so before/after read as JSON)
local function rule_audit(h)
  local out = {}
  for _, f in ipairs({'name', 'enabled', 'match', 'trigger', 'conditions', 'actions'}) do
    local ok, v = pcall(cjson.decode, h[f] or '')
    out[f] = (f ~= 'name' and f ~= 'match' and f ~= 'enabled' and ok) and v or h[f]
  end
  return out
end
local function store_fields(site, id, h)
  if p.name ~= nil then h.name = p.name end
  if p.enabled ~= nil then h.enabled = p.enabled and '1' or '0' end
  if p.match ~= nil then h.match = p.match end
  if p.raw_trigger then h.trigger = p.raw_trigger end
  if p.raw_conditions then h.conditions = p.raw_conditions end
  if p.raw_actions then h.actions = p.raw_actions end
  h.updated_at = now
  local flat = {}
  for k, v in pairs(h) do table.insert(flat, k) table.insert(flat, v) end
  redis.call('HSET', rule_key(site, id), unpack(flat))
  return h
end

ops.rules_list = function()
  local site = rules_site(p.site_key)
  return reply(200, '{"rules":[' .. table.concat(rules_of(site), ',') .. ']}')
end

ops.rules_create = function()
  local site = rules_site(p.site_key)
  local zk = skey(site, 'rules')
  if redis.call('ZCARD', zk) >= MAX_RULES then return fail('conflict', 'at most 100 rules per site') end
  local id = p.id or ('r' .. string.sub(fresh, 2))
  if not key_ok(id) then return fail('bad_request', 'id must be 1-64 of A-Z a-z 0-9 _ -') end
  if redis.call('EXISTS', rule_key(site, id)) == 1 then return fail('conflict', 'a rule with this id exists') end
  local last = redis.call('ZRANGE', zk, -1, -1, 'WITHSCORES')
  local pos = (#last == 2) and (tonumber(last[2]) + 1) or 1
  local h = store_fields(site, id, {id = id, enabled = '1', match = 'all', conditions = '[]', created_at = now})
  redis.call('ZADD', zk, pos, id)
  audit_site(site, 'rule.create', id, nil, rule_audit(h))
  return reply(201, '{"rule":' .. rule_json(h) .. '}')
end

ops.rules_patch = function()
  local site = rules_site(p.site_key)
  local h = hgetall(rule_key(site, tostring(p.rule_id)))
  if not h then return fail('not_found', 'no such rule') end
  -- a time rule whose trigger changes keeps no timers armed by its old anchor
  local before = rule_audit(h)
  h = store_fields(site, h.id, h)
  audit_site(site, 'rule.update', h.id, before, rule_audit(h))
  return reply(200, '{"rule":' .. rule_json(h) .. '}')
end

ops.rules_delete = function()
  local site = rules_site(p.site_key)
  local id = tostring(p.rule_id)
  local before = hgetall(rule_key(site, id))
  if redis.call('DEL', rule_key(site, id)) == 0 then return fail('not_found', 'no such rule') end
  audit_site(site, 'rule.delete', id, rule_audit(before), nil)
  redis.call('ZREM', skey(site, 'rules'), id)
  -- armed timers of the rule find it gone when they come due and are dropped
  return reply(204, 'null')
end

ops.rules_reorder = function()
  local site = rules_site(p.site_key)
  local zk = skey(site, 'rules')
  if type(p.ids) ~= 'table' then return fail('bad_request', 'ids must be an array of every rule id, in order') end
  local have = redis.call('ZRANGE', zk, 0, -1)
  if #p.ids ~= #have then return fail('bad_request', 'ids must list every rule of the site exactly once') end
  local seen = {}
  for _, id in ipairs(p.ids) do
    if type(id) ~= 'string' or seen[id] or not redis.call('ZSCORE', zk, id) then
      return fail('bad_request', 'ids must list every rule of the site exactly once')
    end
    seen[id] = true
  end
  for i, id in ipairs(p.ids) do redis.call('ZADD', zk, i, id) end
  audit_site(site, 'rule.reorder', site, {order = have}, {order = p.ids})
  return reply(200, '{"rules":[' .. table.concat(rules_of(site), ',') .. ']}')
end

-- The rules and one conversation of the site; C evaluates (api.c) and answers.
ops.rules_dry_run = function()
  local site = rules_site(p.site_key)
  local cid = p.conversation_id
  if type(cid) ~= 'string' or cid == '' then return fail('bad_request', 'conversation_id is required') end
  -- an id that names another site is not looked at (that site is another slot)
  local named = cid_site(cid)
  local c = (not named or named == site) and hgetall(ckey(cid, site))
  if not c or c.site ~= site then return fail('not_found', 'no such conversation on this site') end
  -- the latest visitor or agent message stands for a message.created event (as emit
  -- would describe it); system messages (acknowledgements, rule notes) are skipped
  local last = 'null'
  for _, m in ipairs(redis.call('XREVRANGE', ckey(cid, site) .. ':msgs', '+', '-', 'COUNT', 50)) do
    local f = {}
    for i = 1, #m[2], 2 do f[m[2][i]] = m[2][i + 1] end
    if f.ak ~= 'system' then
      last = '{"seq":' .. seq_of(m[1]) .. ',"id":' .. S(f.id) .. ',"author":{"kind":' .. S(f.ak) .. ',"id":' .. S(f.aid) ..
        '},"private":' .. (f.priv == '1' and 'true' or 'false') .. ',"body":' .. S(string.sub(f.body or '', 1, 2000)) .. '}'
      break
    end
  end
  -- the first message stands for a conversation.created event's text, as the rules
  -- consumer hands it over (rules_event_data in _ev_rules.lua)
  local first = 'null'
  local r1 = redis.call('XRANGE', ckey(cid, site) .. ':msgs', '0-1', '0-1')
  if #r1 == 1 then
    local f = {}
    for i = 1, #r1[1][2], 2 do f[r1[1][2][i]] = r1[1][2][i + 1] end
    if f.ak == 'visitor' and f.priv ~= '1' then first = '{"body":' .. S(string.sub(f.body or '', 1, 2000)) .. '}' end
  end
  -- the SLA settings as stored (their calendar gives business hours), JSON text
  return reply(200, '{"rules":[' .. table.concat(rules_of(site), ',') .. '],"conv":' .. rules_snapshot(c) ..
    ',"last_message":' .. last .. ',"first_message":' .. first .. ',"sla":' .. J(redis.call('HGET', sitekey(site), 'sla')) .. '}')
end

-- Team lead (notify_team_lead): PATCH admin/sites/:site_key/teams/:team {"lead": agent id | null}
ops.team_patch = function()
  local site = rules_site(p.site_key)
  local team = tostring(p.team)
  local name = redis.call('HGET', skey(site, 'teams'), team)
  if not name then return fail('not_found', 'no such team on this site') end
  local lk = skey(site, 'team_leads')
  local before = {name = name, lead = redis.call('HGET', lk, team) or ''}
  if p.lead == cjson.null then
    redis.call('HDEL', lk, team)
  elseif p.lead ~= nil then
    -- an agent of the site: in the site's agents set (the agent's sites, kept by admin_agent_patch)
    local ok = type(p.lead) == 'string' and redis.call('SISMEMBER', skey(site, 'agents'), p.lead) == 1
    if not ok then return fail('bad_request', 'lead must be the id of an agent of this site') end
    redis.call('HSET', lk, team, p.lead)
  end
  if p.name ~= nil then
    local nm = str(p.name, 200, 'name')
    if not nm or nm == '' then return fail('bad_request', 'name must be a non-empty string') end
    redis.call('HSET', skey(site, 'teams'), team, nm)
    name = nm
  end
  audit_site(site, 'team.update', team, before, {name = name, lead = redis.call('HGET', lk, team) or ''})
  return reply(200, '{"team":{"key":' .. S(team) .. ',"name":' .. S(name) .. ',"lead":' ..
    J(redis.call('HGET', lk, team)) .. '}}')
end

return dispatch(ops)
