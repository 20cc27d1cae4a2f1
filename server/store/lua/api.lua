-- The HTTP API's core operations (docs/api.md); shared part in _api.lua.
local ops = {}

-- The caller's record without its password hash, for the site calls that follow it
-- (_api.lua: token and record were checked above, in the caller's own slot {a}).
ops.auth = function()
  local c = {}
  for k, v in pairs(me) do if k ~= 'pw' then c[k] = v end end
  -- two-factor login on: each site call refuses an agent without it in a site that requires
  -- it (_api.lua), and only such an admin may require it
  c.totp = redis.call('HEXISTS', P .. '{a}:agent:' .. aid .. ':totp', 'secret') == 1 and '1' or '0'
  return reply(200, cjson.encode(c))
end

ops.me = function()
  if part then return site_facts() end
  return reply(200, '{"agent":' .. agent_json(me) .. '}')
end

-- A page of rows sorted by key (descending), as a list reply: in a part call the
-- site's first page * per rows and its total (the node merges the sites and pages).
local function paged_reply(name, rows, key, page, per)
  table.sort(rows, function(a, b) return tonumber(a[key] or 0) > tonumber(b[key] or 0) end)
  local tail = ',"page":' .. I(page) .. ',"per_page":' .. I(per) .. ',"total":' .. I(#rows)
  local prows = {}
  for i = 1, part and math.min(#rows, page * per) or 0 do
    table.insert(prows, {rows[i][key] or 0, rows[i].id, conv_json(rows[i])})
  end
  return list_reply(name, prows, tail, function()
    local out = {}
    for i = (page - 1) * per + 1, math.min(#rows, page * per) do table.insert(out, conv_json(rows[i])) end
    return '{"' .. name .. '":[' .. table.concat(out, ',') .. ']' .. tail .. '}'
  end)
end

ops.tickets_list = function()
  local page = math.max(1, math.floor(tonumber(p.page or 1) or 1))
  local per = math.min(100, math.max(1, math.floor(tonumber(p.per_page or 25) or 25)))
  local q = p.q and string.lower(tostring(p.q)) or nil
  local rows = {}
  for _, s in ipairs(list_sites()) do
    for _, cid in ipairs(redis.call('ZREVRANGE', skey(s, 'tickets'), 0, 4999)) do
      local c = hgetall(ckey(cid, s))
      if c then
        local keep = true
        if p.status and c.status ~= p.status then keep = false end
        if p.priority and c.priority ~= p.priority then keep = false end
        if p.team and (c.team or '') ~= p.team then keep = false end
        if p.assignee and (c.assignee or '') ~= (p.assignee == 'none' and '' or p.assignee) then keep = false end
        if p.breached ~= nil then
          local b = c.sla_breached and c.sla_breached ~= '' and c.sla_breached ~= '[]'
          if (p.breached == 'true' or p.breached == true) ~= (b and true or false) then keep = false end
        end
        if q and not string.find(string.lower(c.subject or ''), q, 1, true) then keep = false end
        if keep then table.insert(rows, c) end
      end
    end
  end
  return paged_reply('tickets', rows, 'ticket_number', page, per)
end

-- conversations of the agent's sites, most recent activity first
ops.conversations_list = function()
  local page = math.max(1, math.floor(tonumber(p.page or 1) or 1))
  local per = math.min(100, math.max(1, math.floor(tonumber(p.per_page or 25) or 25)))
  local want = nil
  if p.status and p.status ~= '' then
    want = {}
    for st in string.gmatch(tostring(p.status), '[^,]+') do want[st] = true end
  end
  local rows = {}
  for _, s in ipairs(list_sites()) do
    for _, cid in ipairs(redis.call('ZREVRANGE', skey(s, 'convs'), 0, 4999)) do
      local c = hgetall(ckey(cid, s))
      if c and (not want or want[c.status]) and (not p.team or (c.team or '') == p.team) and
         (not p.assignee or (c.assignee or '') == (p.assignee == 'none' and '' or p.assignee)) then
        table.insert(rows, c)
      end
    end
  end
  return paged_reply('conversations', rows, 'updated_at', page, per)
end

-- colleagues, for transfers (any agent of the site), from their records in the site
-- (agent_site.lua keeps them in line with the global records)
ops.agents_list = function()
  local seen, rows = {}, {}
  for _, s in ipairs(list_sites()) do
    for _, id in ipairs(redis.call('SMEMBERS', skey(s, 'agents'))) do
      local a = not seen[id] and hgetall(sakey(s, id))
      seen[id] = true
      if a and a.disabled ~= '1' then
        table.insert(rows, {0, id, '{"id":' .. S(id) .. ',"name":' .. S(a.name) .. ',"status":' .. S(a.status or 'offline') ..
          ',"load":' .. I(agent_load(s, id)) .. ',"max_chats":' .. N(a.max_chats) .. ',"teams":' .. (a.teams or '[]') .. '}'})
      end
    end
  end
  return list_reply('agents', rows, nil, function()
    local out = {}
    for _, r in ipairs(rows) do table.insert(out, r[3]) end
    return '{"agents":[' .. table.concat(out, ',') .. ']}'
  end)
end

-- The teams of the caller's sites (or of ?site=), for any agent: what the transfer and
-- escalation pickers show ({site,key,name}, by site in the caller's order, then by name).
ops.teams_list = function()
  local rows = {}
  for _, s in ipairs(list_sites()) do
    local r = redis.call('HGETALL', skey(s, 'teams'))
    local here = {}
    for i = 1, #r, 2 do here[#here + 1] = {r[i], r[i + 1]} end
    table.sort(here, function(x, y) return x[2] < y[2] or (x[2] == y[2] and x[1] < y[1]) end)
    for _, t in ipairs(here) do
      rows[#rows + 1] = {0, s .. '|' .. t[1], '{"site":' .. S(s) .. ',"key":' .. S(t[1]) .. ',"name":' .. S(t[2]) .. '}'}
    end
  end
  return list_reply('teams', rows, nil, function()
    local out = {}
    for _, r in ipairs(rows) do out[#out + 1] = r[3] end
    return '{"teams":[' .. table.concat(out, ',') .. ']}'
  end)
end

ops.ticket_get = function()
  local c = conv_of_ticket(p.number)
  if not c then return fail('not_found', 'no such ticket') end
  local msgs = {}
  local r = redis.call('XREVRANGE', ckey(c.id, c.site) .. ':msgs', '+', '-', 'COUNT', 100)
  for i = #r, 1, -1 do table.insert(msgs, (msg_json(seq_of(r[i][1]), r[i][2]))) end
  return reply(200, '{"ticket":' .. conv_json(c) .. ',"messages":[' .. table.concat(msgs, ',') .. ']}')
end

ops.ticket_patch = function()
  local c = conv_of_ticket(p.number)
  if not c then return fail('not_found', 'no such ticket') end
  local statuses = {queued = 1, open = 1, pending = 1, resolved = 1, closed = 1}
  local prios = {low = 1, normal = 1, high = 1, urgent = 1}
  local status = p.status and tostring(p.status) or ''
  local priority = p.priority and tostring(p.priority) or ''
  if status ~= '' and not statuses[status] then return fail('bad_request', 'status must be queued, open, pending, resolved or closed') end
  if priority ~= '' and not prios[priority] then return fail('bad_request', 'priority must be low, normal, high or urgent') end
  local tags = ''
  if p.tags ~= nil then
    if type(p.tags) ~= 'table' or #p.tags > 20 then return fail('bad_request', 'tags must be an array of at most 20 strings') end
    for _, t in ipairs(p.tags) do
      if type(t) ~= 'string' or #t < 1 or #t > 64 then return fail('bad_request', 'each tag is 1 to 64 bytes') end
    end
    tags = #p.tags == 0 and '[]' or cjson.encode(p.tags)
  end
  if p.assignee ~= nil and p.assignee ~= cjson.null then
    local e = do_transfer(c, aid, me.name or '', tostring(p.assignee), '', '', fresh, now, retain)
    if e then return e end
    c = hgetall(ckey(c.id, c.site))
  elseif p.team ~= nil and p.team ~= cjson.null then
    local e = do_transfer(c, aid, me.name or '', '', tostring(p.team), '', fresh, now, retain)
    if e then return e end
    c = hgetall(ckey(c.id, c.site))
  elseif p.assignee == cjson.null and status == '' then
    status = 'queued'
  end
  if status ~= '' or priority ~= '' or tags ~= '' then
    local e = do_update(c, aid, status, priority, '', tags, now)
    if e then return e end
  end
  -- the SLA clocks follow the new state in this same step (paused while pending, …)
  c = hgetall(ckey(c.id, c.site))
  if sla_sync(c, site_iv, now) then
    conv_updated(c, true)
    c = hgetall(ckey(c.id, c.site))
  end
  return reply(200, '{"ticket":' .. conv_json(c) .. '}')
end

ops.visitor_get = function()
  -- a site call looks in its own site; the node asks the caller's sites in turn
  local v = part and (my_site(CSITE) and hgetall(vkey(CSITE, tostring(p.id)))) or (not part and visitor_of(tostring(p.id)))
  if not v or not my_site(v.site) then return fail('not_found', 'no such visitor') end
  local convs = {}
  for _, cid in ipairs(redis.call('ZREVRANGE', vkey(v.site, v.id) .. ':convs', 0, 19)) do
    local c = hgetall(ckey(cid, v.site))
    if c then table.insert(convs, conv_json(c)) end
  end
  return reply(200, '{"visitor":{"id":' .. S(v.id) .. ',"site":' .. S(v.site) .. ',"name":' .. J(v.name) ..
    ',"email":' .. J(v.email) .. ',"user_id":' .. J(v.user_id) .. ',"attributes":' ..
    ((v.attributes and v.attributes ~= '') and v.attributes or '{}') .. ',"page_url":' .. J(v.page_url) ..
    ',"page_title":' .. J(v.page_title) .. ',"referrer":' .. J(v.referrer) .. ',"created_at":' .. N(v.created_at) ..
    ',"last_seen_at":' .. N(v.last_seen_at) .. '},"conversations":[' .. table.concat(convs, ',') .. ']}')
end

-- What the supervisor's view reads of its site: queues and tickets at risk, as
-- ,"queues":"<JSON>","at_risk":"<JSON>" (texts, so they reach the {a} call as they are).
local function supervisor_site(site)
  local queues, risk = {}, {}
  for _, t in ipairs(site_teams(site)) do
    local key = qkey(site, t)
    local head = redis.call('ZRANGE', key, 0, 0)
    local oldest = 'null'
    if #head > 0 then oldest = N(redis.call('HGET', ckey(head[1], site), 'created_at')) end
    table.insert(queues, '{"team":' .. J(t ~= '_' and t or nil) .. ',"size":' .. I(redis.call('ZCARD', key)) ..
      ',"oldest_created_at":' .. oldest .. '}')
  end
  local horizon = tonumber(now) + 30 * 60000
  for _, cid in ipairs(redis.call('ZREVRANGE', skey(site, 'tickets'), 0, 999)) do
    local c = hgetall(ckey(cid, site))
    if c and c.status ~= 'closed' and c.status ~= 'resolved' then
      local soon = c.sla_breached and c.sla_breached ~= '' and c.sla_breached ~= '[]'
      for _, k in ipairs(SLA_KINDS) do
        local d = tonumber(c['sla_' .. k .. '_due'] or '')
        if d and d <= horizon then soon = true end
      end
      if soon then table.insert(risk, conv_json(c)) end
    end
  end
  return ',"queues":' .. S('[' .. table.concat(queues, ',') .. ']') .. ',"at_risk":' .. S('[' .. table.concat(risk, ',') .. ']')
end
ops.supervisor = function()
  if part then return site_facts(supervisor_site) end
  local site = p.site or my_sites[1]
  if not site or not my_site(site) then return fail('not_found', 'no such site') end
  local agents = {}
  for _, id in ipairs(site_agents(site)) do
    local a = hgetall(P .. '{a}:agent:' .. id)
    if a then table.insert(agents, agent_json(a, site)) end
  end
  local g = gathered and gathered[site] or cjson.decode('{' .. string.sub(supervisor_site(site), 2) .. '}')
  return reply(200, '{"agents":[' .. table.concat(agents, ',') .. '],"queues":' .. g.queues .. ',"at_risk":' ..
    g.at_risk .. '}')
end

-- canned replies, in their site's slot: P{s:<site>}:canned:<id> hash; the site's shared ones
-- in P{s:<site>}:canned, an agent's own of the site in P{s:<site>}:agent:<id>:canned
local function canned_json(x)
  return '{"id":' .. S(x.id) .. ',"site":' .. S(x.site) .. ',"scope":' .. S(x.scope) .. ',"shortcut":' .. S(x.shortcut) ..
    ',"title":' .. S(x.title) .. ',"body":' .. S(x.body) .. '}'
end
local function canned_key(site, id) return skey(site, 'canned:' .. tostring(id)) end
-- what the audit log keeps of a shared canned reply
local function canned_audit(x) return {shortcut = x.shortcut, title = x.title, body = x.body} end
-- in a site call (the node asks the caller's sites in turn) the call's site, else the
-- caller's first site that has it
local function canned_mine(id)
  for _, s in ipairs(part and {CSITE} or my_sites) do
    local x = my_site(s) and hgetall(canned_key(s, id))
    if x and x.site == s and (x.scope ~= 'agent' or x.owner == aid) then return x end
  end
  return nil
end
ops.canned_list = function()
  local out = {}
  local q = p.q and string.lower(tostring(p.q)) or nil
  for _, s in ipairs(list_sites()) do
    local ids = redis.call('SMEMBERS', skey(s, 'canned'))
    for _, id in ipairs(redis.call('SMEMBERS', sakey(s, aid) .. ':canned')) do table.insert(ids, id) end
    for _, id in ipairs(ids) do
      local x = hgetall(canned_key(s, id))
      if x and x.site == s and (not q or string.find(string.lower(x.shortcut .. ' ' .. x.title .. ' ' .. x.body), q, 1, true)) then
        table.insert(out, x)
      end
    end
  end
  table.sort(out, function(a, b) return a.shortcut < b.shortcut end)
  local rows = {}
  for _, x in ipairs(out) do table.insert(rows, {S(x.shortcut), x.id, canned_json(x)}) end
  return list_reply('canned', rows, nil, function()
    local js = {}
    for _, r in ipairs(rows) do table.insert(js, r[3]) end
    return '{"canned":[' .. table.concat(js, ',') .. ']}'
  end)
end
-- A shortcut is typed after "/" in the composer: 1 to 64 bytes, no spaces, no "/". A body
-- names only known variables (canned_unknown in _common.lua): a misspelt {customer_nmae}
-- would otherwise reach a customer as written.
local function canned_shortcut(v)
  v = str(v, 64, 'shortcut')
  if v and (v == '' or string.find(v, '[%s/]')) then bad('shortcut must be 1 to 64 bytes without spaces or "/"') end
  return v
end
local function canned_body(v)
  v = str(v, 8192, 'body')
  local unknown = v and canned_unknown(v) or {}
  if #unknown > 0 then
    bad('body has unknown variables: ' .. table.concat(unknown, ' ') ..
      ' (known: {customer_name} {ticket_number} {agent_name} {attr.<key>})')
  end
  return v
end
ops.canned_create = function()
  local site, scope = p.site, p.scope or 'agent'
  if type(site) ~= 'string' or not my_site(site) then return fail('not_found', 'no such site') end
  if scope ~= 'site' and scope ~= 'agent' then return fail('bad_request', 'scope must be site or agent') end
  if scope == 'site' then need_admin() end
  local x = {id = fresh, site = site, scope = scope, owner = aid, shortcut = canned_shortcut(p.shortcut) or '',
    title = str(p.title, 200, 'title') or '', body = canned_body(p.body) or ''}
  if x.shortcut == '' or x.body == '' then return fail('bad_request', 'shortcut and body are required') end
  local flat = {}
  for k, v in pairs(x) do table.insert(flat, k) table.insert(flat, v) end
  redis.call('HSET', canned_key(site, x.id), unpack(flat))
  redis.call('SADD', scope == 'site' and skey(site, 'canned') or (sakey(site, aid) .. ':canned'), x.id)
  if scope == 'site' then audit_site(site, 'canned.create', x.id, nil, canned_audit(x)) end
  return reply(201, '{"canned":' .. canned_json(x) .. '}')
end
-- Edits a canned reply; scope moves it between the caller's own ("agent") and the site's
-- shared ones ("site"): an admin's step either way, since either way a shared reply
-- changes. A reply made the caller's own becomes theirs.
ops.canned_patch = function()
  local x = canned_mine(p.id)
  if not x then return fail('not_found', 'no such canned reply') end
  local scope = p.scope
  if scope ~= nil and scope ~= 'site' and scope ~= 'agent' then return fail('bad_request', 'scope must be site or agent') end
  if x.scope == 'site' or scope == 'site' then need_admin() end
  local before, was = canned_audit(x), x.scope
  local vals = {shortcut = canned_shortcut(p.shortcut), title = str(p.title, 200, 'title'), body = canned_body(p.body)}
  if vals.shortcut == '' or vals.body == '' then return fail('bad_request', 'shortcut and body are required') end
  for _, f in ipairs({'shortcut', 'title', 'body'}) do
    if vals[f] then x[f] = vals[f] redis.call('HSET', canned_key(x.site, x.id), f, vals[f]) end
  end
  if scope and scope ~= was then
    redis.call('SREM', skey(x.site, 'canned'), x.id)
    redis.call('SREM', sakey(x.site, x.owner or '') .. ':canned', x.id)
    x.scope, x.owner = scope, aid
    redis.call('HSET', canned_key(x.site, x.id), 'scope', scope, 'owner', aid)
    redis.call('SADD', scope == 'site' and skey(x.site, 'canned') or (sakey(x.site, aid) .. ':canned'), x.id)
  end
  if was == 'site' and x.scope == 'site' then audit_site(x.site, 'canned.update', x.id, before, canned_audit(x))
  elseif x.scope == 'site' then audit_site(x.site, 'canned.create', x.id, nil, canned_audit(x))
  elseif was == 'site' then audit_site(x.site, 'canned.delete', x.id, before, nil) end
  return reply(200, '{"canned":' .. canned_json(x) .. '}')
end
ops.canned_delete = function()
  local x = canned_mine(p.id)
  if not x then return fail('not_found', 'no such canned reply') end
  if x.scope == 'site' then need_admin() end
  redis.call('DEL', canned_key(x.site, x.id))
  redis.call('SREM', skey(x.site, 'canned'), x.id)
  redis.call('SREM', sakey(x.site, x.owner or '') .. ':canned', x.id)
  if x.scope == 'site' then audit_site(x.site, 'canned.delete', x.id, canned_audit(x), nil) end
  return reply(204, 'null')
end

-- admin
local function admin_site(key)
  need_admin()
  local s = hgetall(sitekey(tostring(key)))
  if not s or not my_site(s.key) then error({code = 'not_found', msg = 'no such site'}) end
  return s
end
ops.admin_sites_list = function()
  need_admin()
  local rows = {}
  for _, k in ipairs(part and list_sites() or my_sites) do
    local s = hgetall(sitekey(k))
    if s then table.insert(rows, {0, k, site_json(s)}) end
  end
  return list_reply('sites', rows, nil, function()
    local out = {}
    for _, r in ipairs(rows) do table.insert(out, r[3]) end
    return '{"sites":[' .. table.concat(out, ',') .. ']}'
  end)
end
-- ---- the admin CLI's single-slot steps (ARCHITECTURE invariant 4) ----
-- An operation that changes a site and state that spans sites (the sites set {g}, an
-- agent's own state {a}) is one call through the HTTP API, whose every call also reads the
-- caller's record in {a} (docs/keyspace.md "Where this is going"). The admin CLI, which
-- has no caller record, makes one call per slot with these steps; `stepwise` marks a call
-- that is one of them (only the operator's: the HTTP API never reaches the steps).
local stepwise = operator and p.stepwise == true
local function operator_only() if not operator then error({code = 'not_found', msg = 'no such operation'}) end end
local function site_create_values()
  key_of(p.key, 'key')
  return name_of(p.name, 'name'), origins_of(p.origins), secret_of(p.identity_secret)
end
-- An agent joins a site: its agents set, and a first record of the agent in the site
-- (name and role, offline) when it has none yet, so the site's calls never need the
-- global record (assign_to, site_admins); the nodes' sync (agent_site) completes it.
local function join_site(s, id, name, role)
  redis.call('SADD', skey(s, 'agents'), id)
  if redis.call('EXISTS', sakey(s, id)) == 0 then
    redis.call('HSET', sakey(s, id), 'id', id, 'name', type(name) == 'string' and name or '', 'role',
      type(role) == 'string' and role or 'agent', 'status', 'offline')
  end
end
-- Step 1 of site-add ({g}): the key joins the sites set, after the same checks as the
-- record's. Index first, record second, is the order that is safe to retry: a stop
-- between them leaves a key in the set without a record, which every reader skips
-- (sites_get answers no site for it, listings skip it) and which site-add run again
-- completes (SADD again is a no-op); the other order could leave a record no node loads
-- that site-add would then refuse as a duplicate.
-- Also the first step of POST admin/sites (an owner's site call in {g}; api.c
-- CD_API_NEW_SITE runs the three steps).
ops.admin_site_index = function()
  if as_caller then need_owner() else operator_only() end
  site_create_values()
  redis.call('SADD', P .. '{g}:sites', p.key)
  return reply(200, '{"site":{"key":' .. S(p.key) .. '}}')
end
ops.admin_site_create = function()
  -- a new tenant is the operator's decision: an admin of one site must not open others
  need_owner()
  local name, origins, secret = site_create_values()
  -- a step (the CLI's, or the HTTP API's site call): the sites set was written before
  local split = stepwise or as_caller
  if redis.call('EXISTS', sitekey(p.key)) == 1 or (not split and redis.call('SISMEMBER', P .. '{g}:sites', p.key) == 1) then
    return fail('conflict', 'site ' .. p.key .. ' already exists')
  end
  redis.call('HSET', sitekey(p.key), 'key', p.key, 'name', name, 'origins', cjson.encode(origins),
    'identity_secret', secret, 'created_at', now)
  if not split then redis.call('SADD', P .. '{g}:sites', p.key) end
  audit_site(p.key, 'site.create', p.key, nil, {name = name, origins = origins, identity_secret = secret})
  site_changed(p.key)
  -- the creating admin belongs to the new site (the operator is no agent); in the HTTP
  -- API's steps its own record names the site in the next one (admin_site_joined, {a})
  if as_caller then
    join_site(p.key, aid, me.name, me.role)
  elseif not operator then
    table.insert(my_sites, p.key)
    redis.call('HSET', P .. '{a}:agent:' .. aid, 'sites', cjson.encode(my_sites))
    redis.call('SADD', skey(p.key, 'agents'), aid)
    agent_changed(aid)
  end
  return reply(201, '{"site":' .. site_json(hgetall(sitekey(p.key))) .. '}')
end
-- The last step of POST admin/sites ({a}): the creating owner's record names the new site.
ops.admin_site_joined = function()
  need_owner()
  key_of(p.key, 'key')
  if not my_site(p.key) then
    table.insert(my_sites, p.key)
    redis.call('HSET', P .. '{a}:agent:' .. aid, 'sites', cjson.encode(my_sites))
  end
  agent_changed(aid)
  return reply(200, 'null')
end
-- The widget settings after a patch, as the JSON text stored in the site record (raises
-- bad_request). The patch merges into the stored settings (JSON merge patch, RFC 7386):
-- members it leaves out keep their values, null removes one, and survey merges the same
-- way, so saving the greeting never turns the survey off (issue 18).
local function widget_of(v, cur)
  if type(v) ~= 'table' then bad('widget must be an object') end
  local ok, w = pcall(cjson.decode, cur or '')
  if not ok or type(w) ~= 'table' then w = {} end
  local null = cjson.null
  if v.color == null then
    w.color = nil
  elseif v.color ~= nil then
    if type(v.color) ~= 'string' or not string.match(v.color, '^#%x%x%x%x%x%x$') then bad('widget.color must look like #1a73e8') end
    w.color = v.color
  end
  for _, f in ipairs({'title', 'greeting_en', 'greeting_zh'}) do
    if v[f] == null then w[f] = nil elseif v[f] ~= nil then w[f] = str(v[f], 500, 'widget.' .. f) end
  end
  for _, f in ipairs({'categories', 'required_fields'}) do
    if v[f] == null then
      w[f] = nil
    elseif v[f] ~= nil then
      if type(v[f]) ~= 'table' or #v[f] > 50 then bad('widget.' .. f .. ' must be an array') end
      for _, x in ipairs(v[f]) do
        if type(x) ~= 'string' or #x > 100 then bad('widget.' .. f .. ' holds short strings') end
      end
      w[f] = v[f]
    end
  end
  -- reports: the optional survey questions after CSAT (docs/reports.md)
  if v.survey == null then
    w.survey = nil
  elseif v.survey ~= nil then
    local sv = v.survey
    if type(sv) ~= 'table' or (sv.nps ~= nil and type(sv.nps) ~= 'boolean') or (sv.ces ~= nil and type(sv.ces) ~= 'boolean') then
      bad('widget.survey must be {"nps":bool,"ces":bool}')
    end
    local was = type(w.survey) == 'table' and w.survey or {}
    local function pick(x, old) if x ~= nil then return x end return old == true end
    w.survey = {nps = pick(sv.nps, was.nps), ces = pick(sv.ces, was.ces)}
  end
  local enc = cjson.encode(w)
  enc = string.gsub(enc, '"categories":{}', '"categories":[]')
  enc = string.gsub(enc, '"required_fields":{}', '"required_fields":[]')
  return enc
end
-- category -> team, each team one of the site's (teams: the site's teams hash)
local function category_teams_of(v, teams)
  if type(v) ~= 'table' then bad('category_teams must be an object') end
  for cat, t in pairs(v) do
    text(cat, 200, 'a category')
    if type(t) ~= 'string' or redis.call('HEXISTS', teams, t) == 0 then
      bad('unknown team ' .. tostring(t) .. ' for category ' .. cat)
    end
  end
  return next(v) and cjson.encode(v) or '{}'
end
-- A site's attachment categories: null (the node's: ''), or a list of known ones ('-' for
-- none, so the site takes no attachments).
local FILE_CATS = {image = true, pdf = true, office = true, text = true, archive = true}
local function file_types_of(v)
  if v == cjson.null then return '' end
  if type(v) ~= 'table' or (next(v) ~= nil and #v == 0) then bad('file_types must be a list of categories or null') end
  local seen, out = {}, {}
  for _, c in ipairs(v) do
    if not FILE_CATS[c] then bad('file_types: unknown category ' .. tostring(c) .. ' (image, pdf, office, text, archive)') end
    if not seen[c] then seen[c] = true out[#out + 1] = c end
  end
  return #out > 0 and table.concat(out, ',') or '-'
end
-- The patch's settings of the site record as field/value pairs, every value checked
-- (raises bad_request), so a refused patch changes nothing.
local function site_patch_fields(s_key, cur)
  local set = {}
  local function put(f, v) table.insert(set, f) table.insert(set, v) end
  if p.name ~= nil then put('name', name_of(p.name, 'name')) end
  if p.origins ~= nil then put('origins', cjson.encode(origins_of(p.origins))) end
  if p.identity_secret ~= nil then put('identity_secret', secret_of(p.identity_secret)) end
  if p.auto_assign ~= nil then
    if type(p.auto_assign) ~= 'boolean' then bad('auto_assign must be true or false') end
    put('auto_assign', p.auto_assign and '1' or '0')
  end
  -- agents of the site must use two-factor login (api_totp.lua; the node reads it from its site cache)
  if p.require_2fa ~= nil then
    if type(p.require_2fa) ~= 'boolean' then bad('require_2fa must be true or false') end
    put('require_2fa', p.require_2fa and '1' or '0')
  end
  -- only the assignee may reply (msg_send.lua); others take the conversation over first
  if p.only_assignee_reply ~= nil then
    if type(p.only_assignee_reply) ~= 'boolean' then bad('only_assignee_reply must be true or false') end
    put('only_assignee_reply', p.only_assignee_reply and '1' or '0')
  end
  if p.category_teams ~= nil then put('category_teams', category_teams_of(p.category_teams, skey(s_key, 'teams'))) end
  for _, f in ipairs({'auto_close_s', 'unanswered_after_s'}) do
    if p[f] ~= nil then put(f, I(whole(p[f], 0, 31536000, f))) end
  end
  for _, f in ipairs({'ack_text_en', 'ack_text_zh'}) do
    if p[f] ~= nil then put(f, p[f] == cjson.null and '' or text(p[f], 1000, f, true)) end
  end
  -- customer health alerts (health_apply.lua): more than N conversations in D days
  if p.health_threshold ~= nil then put('health_threshold', I(whole(p.health_threshold, 1, 1000, 'health_threshold'))) end
  if p.health_window_days ~= nil then put('health_window_days', I(whole(p.health_window_days, 1, 365, 'health_window_days'))) end
  -- reports (reports_apply.lua): the site's day starts at 00:00 of this UTC offset
  if p.report_utc_offset_min ~= nil then
    put('report_utc_offset_min', I(whole(p.report_utc_offset_min, -720, 840, 'report_utc_offset_min')))
  end
  if p.widget ~= nil then put('widget', widget_of(p.widget, cur and cur.widget)) end
  -- attachments (docs/attachments.md "Per-site limits"): below the node's limits, null for
  -- the node's; file_types [] takes attachments away from the site ('-')
  if p.file_max_bytes ~= nil then
    put('file_max_bytes', p.file_max_bytes == cjson.null and '' or I(whole(p.file_max_bytes, 1, 2147483647, 'file_max_bytes')))
  end
  if p.file_types ~= nil then put('file_types', file_types_of(p.file_types)) end
  -- the site's mail (docs/email.md): From address and name, the reply address that
  -- server/mail plus-addresses with a conversation's token (null: the node's default)
  for _, f in ipairs({'mail_from', 'mail_reply'}) do
    if p[f] ~= nil then put(f, p[f] == cjson.null and '' or mail_addr_of(p[f], f)) end
  end
  if p.mail_from_name ~= nil then
    put('mail_from_name', p.mail_from_name == cjson.null and '' or text(p.mail_from_name, 200, 'mail_from_name'))
  end
  -- the audit log's retention in the site (_audit.lua); absent: the node's audit_retain_days
  if p.audit_retain_days ~= nil then put('audit_retain_days', I(whole(p.audit_retain_days, 1, 3650, 'audit_retain_days'))) end
  return set
end
ops.admin_site_patch = function()
  local s = admin_site(p.site_key)
  local key = sitekey(s.key)
  local set = site_patch_fields(s.key, s)
  -- requiring two-factor login: only an admin who uses it (so the change does not lock its
  -- author out), and the site's agents without it are signed out at once on every node
  -- (sessions close with 4401; the next login sends them to enrolment)
  local require_now = p.require_2fa == true and s.require_2fa ~= '1'
  if require_now and me and me.totp ~= '1' then
    return fail('conflict', 'turn on your own two-factor login first (Security), then require it for the site')
  end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  if require_now then
    for _, aid in ipairs(redis.call('SMEMBERS', skey(s.key, 'agents'))) do
      pub('agent:' .. aid, 0, 'a', 'revoke:2fa', '{"type":"session.revoked","reason":"two-factor login required"}')
    end
  end
  local before, after = {}, {}
  for i = 1, #set, 2 do before[set[i]], after[set[i]] = s[set[i]] or '', set[i + 1] end
  if #set > 0 then audit_site(s.key, 'site.update', s.key, before, after) end
  site_changed(s.key)
  drain_site(s.key, now)
  return reply(200, '{"site":' .. site_json(hgetall(key)) .. '}')
end
ops.admin_teams_list = function()
  local s = admin_site(p.site_key)
  local r = redis.call('HGETALL', skey(s.key, 'teams'))
  local out = {}
  local leads = skey(s.key, 'team_leads') -- automation rules: notify_team_lead
  for i = 1, #r, 2 do
    table.insert(out, '{"key":' .. S(r[i]) .. ',"name":' .. S(r[i + 1]) .. ',"lead":' .. J(redis.call('HGET', leads, r[i])) .. '}')
  end
  return reply(200, '{"teams":[' .. table.concat(out, ',') .. ']}')
end
ops.admin_team_create = function()
  local s = admin_site(p.site_key)
  team_key_of(p.key)
  local name = name_of(p.name, 'name')
  if redis.call('HSETNX', skey(s.key, 'teams'), p.key, name) == 0 then
    return fail('conflict', 'team ' .. p.key .. ' already exists on site ' .. s.key)
  end
  audit_site(s.key, 'team.create', p.key, nil, {name = name})
  return reply(201, '{"team":{"key":' .. S(p.key) .. ',"name":' .. S(name) .. '}}')
end
ops.admin_agents_list = function()
  need_admin()
  if part then return site_facts() end
  local seen, out = {}, {}
  for _, s in ipairs(p.site and {p.site} or my_sites) do
    if my_site(s) then
      for _, id in ipairs(site_agents(s)) do
        if not seen[id] then
          seen[id] = true
          local a = hgetall(P .. '{a}:agent:' .. id)
          if a then table.insert(out, a) end
        end
      end
    end
  end
  table.sort(out, function(a, b) return (a.email or '') < (b.email or '') end)
  local js = {}
  for _, a in ipairs(out) do table.insert(js, agent_json(a)) end
  return reply(200, '{"agents":[' .. table.concat(js, ',') .. ']}')
end
-- an admin grants agent or admin; only an owner grants owner
local function check_role(role)
  if role ~= 'agent' and role ~= 'admin' and role ~= 'owner' then bad('role must be agent, admin or owner') end
  if role == 'owner' then need_owner() end
end
-- Stepwise, the sites were checked and the teams looked up in each site's own call
-- (admin_site_check) before the agent's call: p.teams_found lists the teams found there.
local function team_found(sites, t)
  if stepwise then
    for _, x in ipairs(type(p.teams_found) == 'table' and p.teams_found or {}) do if x == t then return true end end
    return false
  end
  for _, s in ipairs(sites) do
    if site_has_team(s, t) then return true end
  end
  return false
end
local function check_agent_fields(sites, teams)
  if type(sites) ~= 'table' or #sites == 0 then bad('sites must list at least one site') end
  for _, s in ipairs(sites) do
    if type(s) ~= 'string' or not (stepwise or my_site(s)) then bad('unknown site ' .. tostring(s)) end
  end
  for _, t in ipairs(teams or {}) do
    team_key_of(t)
    if not team_found(sites, t) then bad('unknown team ' .. tostring(t)) end
  end
end
-- Step 1 of agent-add and agent-set (once per site, reads only): the site exists, and
-- which of p.teams it has.
ops.admin_site_check = function()
  operator_only()
  if not my_site(p.site_key) then bad('unknown site ' .. tostring(p.site_key)) end
  local found = {}
  for _, t in ipairs(type(p.teams) == 'table' and p.teams or {}) do
    if type(t) == 'string' and redis.call('HEXISTS', skey(p.site_key, 'teams'), t) == 1 then table.insert(found, S(t)) end
  end
  return reply(200, '{"teams":[' .. table.concat(found, ',') .. ']}')
end
-- Step 3 of agent-add (once per site): the agent joins the site's agents set. Safe to
-- retry, and done again by every node that syncs the agent's record into the site
-- (agent_site.lua, on the agent.changed notice step 2 sends), so a stop after step 2
-- still ends with the agent in each of its sites.
ops.admin_agent_join = function()
  operator_only()
  local s = admin_site_key(p.site_key)
  join_site(s, tostring(p.agent_id), p.name, p.role)
  return reply(200, '{"site":{"key":' .. S(s) .. '}}')
end
-- What the stepwise agent calls answer: the agent's own record is all its slot holds
-- (its load and its teams per site are the sites'; the CLI shows the record).
-- After an HTTP API call in {a} (gathered), the sites the agent joins and leaves follow in
-- steps of their own (`then`: the node calls admin_agent_site in each, server/http/api/api.c).
local function agent_reply(status, key, join, leave, sv)
  if stepwise then return reply(status, '{"agent":{"id":' .. S(redis.call('HGET', key, 'id')) .. '}}') end
  local body = '{"agent":' .. agent_json(hgetall(key)) .. '}'
  if not gathered or (#(join or {}) == 0 and #(leave or {}) == 0) then return reply(status, body) end
  local steps = {}
  for _, s in ipairs(join or {}) do table.insert(steps, '{"site":' .. S(s) .. ',"join":true}') end
  for _, s in ipairs(leave or {}) do table.insert(steps, '{"site":' .. S(s) .. ',"join":false}') end
  local a = hgetall(key)
  return '{"status":' .. I(status) .. ',"then":{"agent_id":' .. S(a.id) .. ',"sv":' .. I(sv or 0) .. ',"name":' ..
    S(a.name) .. ',"role":' .. S(a.role) .. ',"steps":[' .. table.concat(steps, ',') .. ']},"body":' .. body .. '}'
end
-- The step in a site after an agent's change in {a}: it joins the site's agents set, or
-- leaves it with its record there made a tombstone of the change's sv (so a sync that
-- read the record before the change cannot bring it back; agent_site ignores older sv).
ops.admin_agent_site = function()
  need_admin()
  if not as_caller or not (is_owner or my_site(CSITE)) then return fail('not_found', 'no such site') end
  local id = tostring(p.agent_id)
  if p.join == true then
    join_site(CSITE, id, p.name, p.role)
  else
    redis.call('SREM', skey(CSITE, 'agents'), id)
    redis.call('HSET', sakey(CSITE, id), 'sv', I(tonumber(p.sv) or 0), 'status', 'offline', 'disabled', '1')
  end
  return reply(200, 'null')
end
-- The caller's token goes on its deny-list until it expires (entries of expired tokens are
-- dropped here), and a connection that said hello with it closes (4401).
ops.logout = function()
  local jti, exp = ARGV[9], tonumber(ARGV[10]) or 0
  if not jti or jti == '' then return fail('bad_request', 'no token to revoke') end
  local nowms, last = tonumber(now), exp
  local list = redis.call('HGETALL', KEYS[2])
  for i = 1, #list, 2 do
    local e = tonumber(list[i + 1]) or 0
    if e < nowms then redis.call('HDEL', KEYS[2], list[i]) elseif e > last then last = e end
  end
  redis.call('HSET', KEYS[2], jti, I(exp))
  redis.call('PEXPIREAT', KEYS[2], I(last + 60000))
  pub('agent:' .. aid, 0, 'a', 'revoke:jti:' .. jti, '{"type":"session.revoked","reason":"logged out"}')
  audit_account('logout', aid, nil, nil, my_sites)
  return reply(204, 'null')
end
-- What the audit log keeps of an agent record (pw: masked by _audit.lua), and the sites of
-- an entry about it: those of the agent before or after the change that the caller
-- administers (a change made by an admin of one tenant is not shown to another).
local function agent_audit(a)
  local sites, teams = agent_view(a) -- only what the caller may see of another tenant's agent
  return {name = a.name, email = a.email, role = a.role, sites = cjson.decode(sites), teams = cjson.decode(teams),
    max_chats = a.max_chats, disabled = a.disabled == '1', pw = a.pw}
end
local function agent_audit_sites(before, after)
  local out, seen = {}, {}
  for _, list in ipairs({before and before.sites or {}, after and after.sites or {}}) do
    for _, s in ipairs(list) do
      if not seen[s] and (operator or my_site(s)) then seen[s] = true table.insert(out, s) end
    end
  end
  return out
end
ops.admin_agent_create = function()
  need_admin()
  if part then return site_facts() end
  local email = email_of(p.email)
  local name = name_of(p.name, 'name')
  if not p.pw_hash or p.pw_hash == '' then return fail('bad_request', 'password must be 12 to 128 bytes') end
  local sites, teams = p.sites or {}, p.teams or {}
  check_agent_fields(sites, teams)
  local role = p.role or 'agent'
  check_role(role)
  local maxc = whole(p.max_chats or 5, 1, 100, 'max_chats')
  if redis.call('SETNX', P .. '{a}:agent:email:' .. email, fresh) == 0 then
    return fail('conflict', 'agent with e-mail ' .. email .. ' already exists')
  end
  local id = fresh
  redis.call('HSET', P .. '{a}:agent:' .. id, 'id', id, 'name', name, 'email', email, 'role', role, 'sites', cjson.encode(sites),
    'teams', #teams == 0 and '[]' or cjson.encode(teams), 'pw', p.pw_hash, 'status', 'offline', 'max_chats', I(maxc), 'created_at', now)
  redis.call('SADD', P .. '{a}:agents', id)
  audit_account('agent.create', id, nil, agent_audit(hgetall(P .. '{a}:agent:' .. id)), sites)
  if not stepwise and not gathered then
    for _, s in ipairs(sites) do redis.call('SADD', skey(s, 'agents'), id) end
  end
  agent_changed(id)
  return agent_reply(201, P .. '{a}:agent:' .. id, sites)
end
-- An admin controls an agent fully (password, role, disabled, name, capacity, any of its
-- sites) only when every site of the agent is one of the admin's (agent_view in _api.lua).
-- For an agent shared with another tenant the admin may only change what is scoped to its
-- own sites: the agent's teams there and its membership of them. Anything else is refused,
-- so an admin of site B can never take over an agent through which site A is reached.
local function agent_scope(a)
  if operator then return true, true end
  local shared = false
  for _, s in ipairs(json_list(a.sites)) do if my_site(s) then shared = true end end
  local _, _, full = agent_view(a)
  return shared, full
end
-- teams of the agent that belong to none of the caller's sites (kept as they are)
local function foreign_teams(a)
  local out = {}
  for _, t in ipairs(json_list(a.teams)) do
    local mine = false
    for _, s in ipairs(my_sites) do
      if site_has_team(s, t) then mine = true end
    end
    if not mine then table.insert(out, t) end
  end
  return out
end
local function patch_scoped(a)
  -- a form that sends every field back unchanged is fine; a change is not
  local same = {name = p.name == a.name, role = p.role == a.role, email = p.email == nil,
    max_chats = tonumber(p.max_chats) == tonumber(a.max_chats), disabled = p.disabled == (a.disabled == '1'),
    pw_hash = p.pw_hash == nil or p.pw_hash == ''}
  for f, unchanged in pairs(same) do
    if p[f] ~= nil and not unchanged then
      return nil, fail('forbidden', 'this agent also serves sites you do not administer: only its teams and its membership of your sites can change')
    end
  end
  local sites, teams = {}, foreign_teams(a)
  for _, s in ipairs(json_list(a.sites)) do if not my_site(s) then table.insert(sites, s) end end
  local mine = p.sites
  if mine == nil then
    mine = {}
    for _, s in ipairs(json_list(a.sites)) do if my_site(s) then table.insert(mine, s) end end
  elseif type(mine) ~= 'table' then
    return nil, fail('bad_request', 'sites must be a list')
  end
  for _, s in ipairs(mine) do
    if type(s) ~= 'string' or not my_site(s) then return nil, fail('bad_request', 'unknown site ' .. tostring(s)) end
    table.insert(sites, s)
  end
  local my_teams = p.teams
  if my_teams == nil and #mine == 0 then
    my_teams = {} -- removed from every site of the caller: its teams there go too
  elseif my_teams == nil then
    my_teams = {}
    local keep = {}
    for _, t in ipairs(teams) do keep[t] = true end
    for _, t in ipairs(json_list(a.teams)) do if not keep[t] then table.insert(my_teams, t) end end
  end
  if type(my_teams) ~= 'table' then return nil, fail('bad_request', 'teams must be a list') end
  check_agent_fields(#mine > 0 and mine or my_sites, my_teams)
  for _, t in ipairs(my_teams) do table.insert(teams, t) end
  return {sites = sites, teams = teams}
end
local function patch_full(a, key)
  -- every value is checked before the first write: a refused patch changes nothing
  local set, revoke = {}, nil
  local function put(f, v) table.insert(set, f) table.insert(set, v) end
  if p.name ~= nil then put('name', name_of(p.name, 'name')) end
  if p.role ~= nil then
    check_role(p.role)
    if p.role ~= a.role then revoke = 'role changed' end
    put('role', p.role)
  end
  if p.max_chats ~= nil then put('max_chats', I(whole(p.max_chats, 1, 100, 'max_chats'))) end
  if p.disabled ~= nil then
    if type(p.disabled) ~= 'boolean' then bad('disabled must be true or false') end
    put('disabled', p.disabled and '1' or '0')
    if p.disabled then
      put('status', 'offline')
      revoke = 'disabled'
    end
  end
  if p.pw_hash and p.pw_hash ~= '' then
    put('pw', p.pw_hash)
    revoke = 'password changed'
  end
  local sites = p.sites or json_list(a.sites)
  local teams = p.teams or json_list(a.teams)
  if p.sites ~= nil or p.teams ~= nil then check_agent_fields(sites, teams) end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  return {sites = p.sites ~= nil and sites or nil, teams = p.teams ~= nil and teams or nil, revoke = revoke}
end
-- The agent a patch is about: by id (the API's path), or for the operator by e-mail (the
-- CLI's agent-set names agents by e-mail).
local function patched_agent()
  if operator and p.agent_id == nil then
    local id = redis.call('GET', P .. '{a}:agent:email:' .. email_of(p.agent_email))
    return id and hgetall(P .. '{a}:agent:' .. id)
  end
  return hgetall(P .. '{a}:agent:' .. tostring(p.agent_id))
end
ops.admin_agent_patch = function()
  need_admin()
  if part then return site_facts() end
  local a = patched_agent()
  if not a then return fail('not_found', 'no such agent') end
  local shared, full = agent_scope(a)
  if not shared then return fail('not_found', 'no such agent') end
  local key = P .. '{a}:agent:' .. a.id
  local ch, refused
  if full then
    ch = patch_full(a, key)
  else
    ch, refused = patch_scoped(a)
    if not ch then return refused end
  end
  if ch.sites then
    if not gathered then
      for _, s in ipairs(json_list(a.sites)) do redis.call('SREM', skey(s, 'agents'), a.id) end
      for _, s in ipairs(ch.sites) do redis.call('SADD', skey(s, 'agents'), a.id) end
    end
    redis.call('HSET', key, 'sites', cjson.encode(ch.sites))
  end
  if ch.teams then redis.call('HSET', key, 'teams', #ch.teams == 0 and '[]' or cjson.encode(ch.teams)) end
  if ch.sites then
    local before, after = json_list(a.sites), {unpack(ch.sites)}
    table.sort(before)
    table.sort(after)
    if table.concat(before, ',') ~= table.concat(after, ',') then ch.revoke = ch.revoke or 'sites changed' end
  end
  if ch.revoke then revoke_agent(a.id, ch.revoke) end
  local sv = redis.call('HINCRBY', key, 'sv', 1)
  local before, after = agent_audit(a), agent_audit(hgetall(key))
  local asites = agent_audit_sites(before, after)
  audit_account('agent.update', a.id, before, after, asites)
  if ch.revoke then audit_account('tokens.revoke', a.id, nil, {reason = ch.revoke}, asites) end
  -- a site the agent left keeps its record there as a tombstone of this sv: a sync that read
  -- the record before this patch (older sv) cannot bring the agent back into the site
  -- (agent_site ignores older copies; may_access reads the site's agents set)
  local kept, had, join, leave = {}, {}, {}, {}
  for _, s in ipairs(ch.sites or {}) do kept[s] = true end
  for _, s in ipairs(ch.sites and json_list(a.sites) or {}) do
    had[s] = true
    if not kept[s] then
      table.insert(leave, s)
      if not gathered then redis.call('HSET', sakey(s, a.id), 'sv', I(sv), 'status', 'offline', 'disabled', '1') end
    end
  end
  for _, s in ipairs(ch.sites or {}) do if not had[s] then table.insert(join, s) end end
  agent_changed(a.id)
  return agent_reply(200, key, join, leave, sv)
end
-- The targets that apply, each with where it comes from: the site's policy ("site") or the
-- built-in default ("default", SLA_DEFAULT), which applies to any target the site leaves
-- empty; the same resolution as sla_targets, so the admin page never says "no target"
-- while a default runs.
local function sla_effective(cfg)
  local rows = {}
  for _, prio in ipairs({'low', 'normal', 'high', 'urgent'}) do
    local own = type(cfg.policies) == 'table' and type(cfg.policies[prio]) == 'table' and cfg.policies[prio] or {}
    local f = {}
    for _, k in ipairs({'first_response_s', 'next_response_s', 'resolution_s'}) do
      local v = tonumber(own[k])
      table.insert(f, S(k) .. ':{"s":' .. I(v or SLA_DEFAULT[prio][k]) .. ',"from":"' .. (v and 'site' or 'default') .. '"}')
    end
    table.insert(rows, S(prio) .. ':{' .. table.concat(f, ',') .. '}')
  end
  return '{"policies":{' .. table.concat(rows, ',') .. '},"warn_at":' .. N(sla_warn_at(cfg)) .. '}'
end
ops.admin_sla_get = function()
  local s = admin_site(p.site_key)
  return reply(200, '{"sla":' .. ((s.sla and s.sla ~= '') and s.sla or '{}') .. ',"effective":' ..
    sla_effective(sla_config(s.key)) .. '}')
end
ops.admin_sla_put = function()
  local s = admin_site(p.site_key)
  local sla = p.sla
  if type(sla) ~= 'table' then return fail('bad_request', 'body must be an SLA object') end
  if sla.policies ~= nil then
    if type(sla.policies) ~= 'table' then return fail('bad_request', 'policies must be an object') end
    for prio, pol in pairs(sla.policies) do
      if not PRIO_RANK[prio] or type(pol) ~= 'table' then return fail('bad_request', 'policies are per priority: low, normal, high, urgent') end
      for _, f in ipairs({'first_response_s', 'next_response_s', 'resolution_s'}) do
        local v = pol[f]
        if v ~= nil and (type(v) ~= 'number' or v < 1 or v > 31536000) then
          return fail('bad_request', 'policies.' .. prio .. '.' .. f .. ' must be 1..31536000 seconds')
        end
      end
    end
  end
  if sla.warn_at ~= nil and (type(sla.warn_at) ~= 'number' or sla.warn_at <= 0 or sla.warn_at >= 1) then
    return fail('bad_request', 'warn_at must be between 0 and 1')
  end
  if sla.calendar ~= nil and type(sla.calendar) ~= 'table' then return fail('bad_request', 'calendar must be an object') end
  if sla.breach_actions ~= nil and type(sla.breach_actions) ~= 'table' then return fail('bad_request', 'breach_actions must be an object') end
  redis.call('HSET', sitekey(s.key), 'sla', p.raw_sla)
  local ok_b, before = pcall(cjson.decode, (s.sla and s.sla ~= '') and s.sla or '{}')
  audit_site(s.key, 'sla.update', s.key, {sla = ok_b and before or s.sla}, {sla = p.sla})
  site_changed(s.key)
  return reply(200, '{"sla":' .. p.raw_sla .. '}')
end

return dispatch(ops)
