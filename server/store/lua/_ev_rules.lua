-- Part of events.lua, consumer "rules" (docs/rules.md): the Redis half of the automation
-- rules; the decisions are made in C (server/rules) between a read and an apply.
--   ev_rules_batch(site, evs, expect, last, more): the JSON the C planner reads: the
--     events (message bodies joined), snapshots of their conversations and the site's
--     rules; nil when the site has no rules (the cursor then just moves on).
--   ev_rules_apply(site, plan, now, retain): if the cursor is still plan.expect, arm
--     plan.arm timers, run plan.fire and move the cursor to plan.cursor, all at once
--     (compare-and-set: exactly once per event even if a lease ran out meanwhile).
--   ev_rule_timer_get / ev_rule_timer_apply: a due "rule|<site>|<rule id>|<cid>" timer:
--     the rule and the conversation; fire it once, only while this timer is leased (not
--     yet done by another node) and not re-armed meanwhile.
-- A rule's message id: numbered per site (the counter lives in the site's slot).
local function new_id(site)
  return 'm_rule' .. I(redis.call('INCR', skey(site, 'rules:msg:seq'))) .. '.' .. site
end

local function rule_run(f, now, retain)
  local c = hgetall(ckey(f.cid, f.site))
  if not c or type(f.actions) ~= 'table' then return 0 end
  event_by = 'rule:' .. tostring(f.rule)
  local label = 'Rule "' .. tostring(f.name or f.rule) .. '"'
  local n = 0
  for _, a in ipairs(f.actions) do
    local t = a.type
    local open = c.status ~= 'closed'
    if t == 'assign_team' and open and type(a.team) == 'string' and a.team ~= c.team and
       redis.call('HEXISTS', skey(c.site, 'teams'), a.team) == 1 then
      if c.status == 'queued' then redis.call('ZREM', qkey(c.site, c.team), c.id) end
      if c.assignee ~= '' then release(c, now, true) end
      emit('conversation.updated', c, now, '{"changes":{"team":{"from":' .. J(c.team) .. ',"to":' .. S(a.team) .. '}}}')
      if c.status ~= 'queued' then
        emit('conversation.status_changed', c, now, '{"from":' .. S(c.status) .. ',"to":"queued"}')
      end
      c.assignee, c.assignee_name, c.team = '', '', a.team
      redis.call('HSET', ckey(c.id, c.site), 'assignee', '', 'assignee_name', '', 'team', a.team, 'updated_at', now)
      enqueue(c, now)
      redis.call('HSET', ckey(c.id, c.site), 'status', 'queued')
      conv_updated(c, true)
      pub('site:' .. c.site, 0, 'a', '-', '{"type":"conversation.queued","conversation":' .. conv_json(c) .. '}')
      append_msg(c, new_id(c.site), '', 'system', 'system', '', label .. ': moved to team ' .. a.team, '1', now, retain)
      drain(c.site, a.team, now)
      queue_changed(c.site, a.team)
      c = hgetall(ckey(c.id, c.site))
      n = n + 1
    elseif t == 'assign_agent' and open and type(a.agent) == 'string' and a.agent ~= c.assignee then
      local ag = hgetall(P .. '{a}:agent:' .. a.agent)
      if ag and ag.disabled ~= '1' and may_access(c, 'agent', a.agent) then
        local prev = c.assignee
        if c.status == 'queued' then redis.call('ZREM', qkey(c.site, c.team), c.id) end
        if c.status == 'resolved' or c.status == 'queued' then
          emit('conversation.status_changed', c, now, '{"from":' .. S(c.status) .. ',"to":"open"}')
          c.status = 'open'
        end
        assign_to(c, a.agent, now)
        if prev and prev ~= '' and prev ~= a.agent then drain_site(c.site, now) end
        c = hgetall(ckey(c.id, c.site))
        n = n + 1
      end
    elseif t == 'set_priority' and open and a.priority ~= c.priority then
      do_update(c, '', '', a.priority, '', '', now)
      n = n + 1
    elseif t == 'add_tags' and open and type(a.tags) == 'table' then
      local tags, seen, added = json_list(c.tags), {}, false
      for _, x in ipairs(tags) do seen[x] = true end
      for _, x in ipairs(a.tags) do
        if type(x) == 'string' and not seen[x] then table.insert(tags, x) seen[x] = true added = true end
      end
      if added then
        do_update(c, '', '', '', '', cjson.encode(tags), now)
        n = n + 1
      end
    elseif t == 'set_status' and open and a.status ~= c.status then
      do_update(c, '', a.status, '', '', '', now)
      c = hgetall(ckey(c.id, c.site))
      n = n + 1
    elseif (t == 'send_message' or t == 'private_note') and open and type(a.body) == 'string' then
      append_msg(c, new_id(c.site), '', 'system', 'system', '', a.body, t == 'private_note' and '1' or '0', now, retain)
      n = n + 1
    elseif t == 'send_canned' and open then
      local x = hgetall(skey(c.site, 'canned:' .. tostring(a.canned)))
      if x and x.site == c.site and x.scope == 'site' then
        -- variables filled as the composer fills them; one without a value (or unknown)
        -- is never sent raw: the agents get a private note saying why instead
        local text, missing = canned_fill(x.body, c)
        if #missing == 0 then
          append_msg(c, new_id(c.site), '', 'system', 'system', '', text, '0', now, retain)
        else
          append_msg(c, new_id(c.site), '', 'system', 'system', '', label .. ': canned reply "' ..
            ((x.title ~= '' and x.title) or x.shortcut) .. '" not sent, no value for ' ..
            table.concat(missing, ' '), '1', now, retain)
        end
        n = n + 1
      end
    elseif t == 'notify_team_lead' or t == 'notify_admins' then
      local to = {}
      if t == 'notify_team_lead' then
        local team = (type(a.team) == 'string' and a.team ~= '') and a.team or c.team
        local lead = (team and team ~= '') and redis.call('HGET', skey(c.site, 'team_leads'), team)
        if lead then to = {lead} else to = site_admins(c.site) end -- no lead: the admins
      else
        to = site_admins(c.site)
      end
      local title = (type(a.title) == 'string' and a.title ~= '') and a.title or label
      local body = (c.subject and c.subject ~= '') and c.subject or ('Conversation with ' .. (c.visitor_name or c.visitor or ''))
      notify(to, 'rule', c.site, c.id, title, body, now)
      n = n + 1
    elseif t == 'webhook' and type(a.webhook) == 'string' then
      -- delivered by the webhooks consumer to the named webhook (docs/rules.md)
      emit('rule.webhook', c, now, '{"rule":' .. S(tostring(f.rule)) .. ',"webhook":' .. S(a.webhook) .. '}')
      n = n + 1
    end
  end
  event_by = 'system'
  return n
end

-- What a rule sees of an event's data: event_data, and on conversation.created the body of
-- the conversation's first message (the customer's opening words), so that the "text"
-- field means a message on both triggers and never the subject (issue 18).
local function rules_event_data(e)
  local d = event_data(e)
  if e.t ~= 'conversation.created' or not e.c or e.c == '' then return d end
  local r = redis.call('XRANGE', ckey(e.c, e.s) .. ':msgs', '0-1', '0-1')
  if #r ~= 1 or not json_or(d, nil) then return d end
  local f, m = r[1][2], {}
  for i = 1, #f, 2 do m[f[i]] = f[i + 1] end
  if m.ak ~= 'visitor' or m.priv == '1' then return d end
  return string.sub(d, 1, #d - 1) .. (#d > 2 and ',' or '') .. '"body":' .. S(string.sub(m.body or '', 1, 2000)) .. '}'
end

local function ev_rules_batch(site, evs, expect, last, more)
  local rules = rules_of(site)
  if #rules == 0 then return nil end
  local out, convs, seen = {}, {}, {}
  for _, e in ipairs(evs) do
    table.insert(out, '{"id":' .. S(e.id) .. ',"t":' .. S(e.t) .. ',"s":' .. S(e.s) .. ',"c":' .. S(e.c) .. ',"ts":' ..
      N(e.ts) .. ',"by":' .. S(e.by) .. ',"d":' .. json_or(rules_event_data(e), '{}') .. '}')
    if e.c and e.c ~= '' and not seen[e.c] then
      seen[e.c] = true
      local c = hgetall(ckey(e.c, e.s))
      if c then table.insert(convs, S(e.c) .. ':' .. rules_snapshot(c)) end
    end
  end
  return '{"expect":' .. S(expect) .. ',"last":' .. S(last) .. ',"more":' .. (more and 'true' or 'false') ..
    ',"events":[' .. table.concat(out, ',') .. '],"convs":{' .. table.concat(convs, ',') .. '},"rules":{' ..
    S(site) .. ':[' .. table.concat(rules, ',') .. ']}}'
end
local function ev_rules_apply(site, plan, now, retain)
  local cur = ev_cursors(site)
  if cur.rules ~= plan.expect then return false, 0 end
  for _, a in ipairs(plan.arm or {}) do
    local s = string.match(a.member, '^rule|([^|]+)|')
    if s == site then timer_arm(site, a.member, tonumber(a.due)) end
  end
  local n = 0
  for _, f in ipairs(plan.fire or {}) do n = n + rule_run(f, now, retain) end
  if type(plan.cursor) == 'string' then redis.call('HSET', skey(site, 'events:cur'), 'rules', plan.cursor) end
  return true, n
end
local function ev_rule_timer_get(site, rid, cid)
  local h = hgetall(skey(site, 'rule:' .. rid))
  local c = hgetall(ckey(cid, site))
  if not h or not c or c.site ~= site then
    redis.call('ZREM', skey(site, 'timers:leased'), 'rule|' .. site .. '|' .. rid .. '|' .. cid)
    return '{"gone":true}'
  end
  return '{"rule":' .. rule_json(h) .. ',"conv":' .. rules_snapshot(c) .. '}'
end

local function ev_rule_timer_apply(member, plan, now, retain)
  local site = string.match(member, '^rule|([^|]+)|') or ''
  if not redis.call('ZSCORE', skey(site, 'timers:leased'), member) then return '{"applied":false}' end
  redis.call('ZREM', skey(site, 'timers:leased'), member)
  -- armed again meanwhile (its anchor happened again): the newer deadline decides
  if redis.call('ZSCORE', skey(site, 'timers'), member) then return '{"applied":false}' end
  local n = 0
  for _, f in ipairs(plan.fire or {}) do n = n + rule_run(f, now, retain) end
  return '{"applied":true,"actions":' .. I(n) .. '}'
end

