-- Automation rules (docs/rules.md): the Redis half of the rules consumer; the decisions
-- are made in C (server/rules) between a read and an apply.
-- ARGV: P, mode, now, ...
--   batch <max>: the events after cursor "rules" with snapshots of their conversations
--     and the rules of their sites; does not move the cursor (unless no site involved
--     has rules: then it just moves it).
--   apply <plan> <retain>: if the cursor is still plan.expect, arm plan.arm timers, run
--     plan.fire and move the cursor to plan.cursor, all at once (compare-and-set: a node
--     that lost the race gets {"applied":false} and polls again). Exactly once per event.
--   timer_get <site> <rule id> <cid>: the rule and the conversation of a due
--     "rule|<site>|<rule>|<cid>" timer.
--   timer_apply <member> <plan> <retain>: fire a time rule once: only while this timer is
--     leased (not yet done by another node) and not re-armed meanwhile.
local mode, now = ARGV[2], ARGV[3]
local CURSOR = 'rules'

local function new_id()
  return 'm_rule' .. I(redis.call('INCR', P .. 'rules:msg:seq'))
end

local function rule_run(f, retain)
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
      append_msg(c, new_id(), '', 'system', 'system', '', label .. ': moved to team ' .. a.team, '1', now, retain)
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
      append_msg(c, new_id(), '', 'system', 'system', '', a.body, t == 'private_note' and '1' or '0', now, retain)
      n = n + 1
    elseif t == 'send_canned' and open then
      local x = hgetall(P .. 'canned:' .. tostring(a.canned))
      if x and x.site == c.site and x.scope == 'site' then
        append_msg(c, new_id(), '', 'system', 'system', '', x.body, '0', now, retain)
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

if mode == 'batch' then
  local max = tonumber(ARGV[4])
  local cur = redis.call('GET', P .. 'events:cursor:' .. CURSOR)
  if not cur then
    events_batch(CURSOR, 1, true) -- a new consumer starts after the newest event
    return '{"events":[]}'
  end
  local evs = events_batch(CURSOR, max)
  if #evs == 0 then return '{"events":[]}' end
  local more = #evs >= max and 'true' or 'false'
  local sites, any = {}, false
  for _, e in ipairs(evs) do
    if e.s and e.s ~= '' and not sites[e.s] then
      sites[e.s] = rules_of(e.s)
      if #sites[e.s] > 0 then any = true end
    end
  end
  if not any then
    events_advance(CURSOR, evs[#evs].id)
    return '{"events":[],"more":' .. more .. '}'
  end
  local out, convs, seen = {}, {}, {}
  for _, e in ipairs(evs) do
    table.insert(out, '{"id":' .. S(e.id) .. ',"t":' .. S(e.t) .. ',"s":' .. S(e.s) .. ',"c":' .. S(e.c) .. ',"ts":' ..
      N(e.ts) .. ',"by":' .. S(e.by) .. ',"d":' .. json_or(#(sites[e.s] or {}) > 0 and event_data(e) or e.d, '{}') .. '}')
    if e.c and e.c ~= '' and not seen[e.c] and #(sites[e.s] or {}) > 0 then
      seen[e.c] = true
      local c = hgetall(ckey(e.c, e.s))
      if c then table.insert(convs, S(e.c) .. ':' .. rules_snapshot(c)) end
    end
  end
  local rl = {}
  for s, list in pairs(sites) do
    if #list > 0 then table.insert(rl, S(s) .. ':[' .. table.concat(list, ',') .. ']') end
  end
  return '{"expect":' .. S(cur) .. ',"last":' .. S(evs[#evs].id) .. ',"more":' .. more .. ',"events":[' ..
    table.concat(out, ',') .. '],"convs":{' .. table.concat(convs, ',') .. '},"rules":{' .. table.concat(rl, ',') .. '}}'
end

if mode == 'apply' then
  local plan = cjson.decode(ARGV[4])
  local retain = tonumber(ARGV[5])
  local cur = redis.call('GET', P .. 'events:cursor:' .. CURSOR) or '0-0'
  if cur ~= plan.expect then return '{"applied":false}' end
  for _, a in ipairs(plan.arm or {}) do
    local site = string.match(a.member, '^rule|([^|]+)|')
    if site then timer_arm(site, a.member, tonumber(a.due)) end
  end
  local n = 0
  for _, f in ipairs(plan.fire or {}) do n = n + rule_run(f, retain) end
  if type(plan.cursor) == 'string' then events_advance(CURSOR, plan.cursor) end
  return '{"applied":true,"actions":' .. I(n) .. '}'
end

if mode == 'timer_get' then
  local site, rid, cid = ARGV[4], ARGV[5], ARGV[6]
  local h = hgetall(skey(site, 'rule:' .. rid))
  local c = hgetall(ckey(cid, site))
  if not h or not c or c.site ~= site then
    redis.call('ZREM', skey(site, 'timers:leased'), 'rule|' .. site .. '|' .. rid .. '|' .. cid)
    return '{"gone":true}'
  end
  return '{"rule":' .. rule_json(h) .. ',"conv":' .. rules_snapshot(c) .. '}'
end

if mode == 'timer_apply' then
  local member, plan, retain = ARGV[4], cjson.decode(ARGV[5]), tonumber(ARGV[6])
  local site = string.match(member, '^rule|([^|]+)|') or ''
  if not redis.call('ZSCORE', skey(site, 'timers:leased'), member) then return '{"applied":false}' end
  redis.call('ZREM', skey(site, 'timers:leased'), member)
  -- armed again meanwhile (its anchor happened again): the newer deadline decides
  if redis.call('ZSCORE', skey(site, 'timers'), member) then return '{"applied":false}' end
  local n = 0
  for _, f in ipairs(plan.fire or {}) do n = n + rule_run(f, retain) end
  return '{"applied":true,"actions":' .. I(n) .. '}'
end

return fail('bad_request', 'unknown mode')
