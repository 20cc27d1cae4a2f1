-- ARGV: P, cid, kind (first_response|next_response|resolution), level (warn|breach), now, intervals, note id, retain
-- Timer handler "slawarn|<site>|<cid>|<kind>" / "slabreach|...": fires sla.warning or
-- sla.breached once, if the deadline still stands; on a breach runs the site's actions.
local cid, kind, level, now = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local iv, note_id, retain = iv_parse(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local c = hgetall(ckey(cid))
local member = (level == 'warn' and 'slawarn|' or 'slabreach|') .. cid .. '|' .. kind
redis.call('ZREM', skey(CSITE, 'timers:leased'), member)
if not c or not c.ticket_number or c.ticket_number == '' then return '{"fired":false}' end
if c.status == 'closed' or c.status == 'resolved' or (c.sla_paused_at and c.sla_paused_at ~= '') then
  return '{"fired":false}'
end
local at = tonumber(c['sla_' .. kind .. '_' .. (level == 'warn' and 'warn' or 'due')] or '')
if not at then return '{"fired":false}' end -- met or stopped
if at > now then
  timer_arm(CSITE, member, at) -- the deadline moved: wait for it
  return '{"fired":false}'
end
local fired = json_list(c.sla_fired)
local tag = level .. ':' .. kind .. ':' .. I(at)
for _, f in ipairs(fired) do if f == tag then return '{"fired":false}' end end
table.insert(fired, tag)
redis.call('HSET', ckey(cid), 'sla_fired', cjson.encode(fired))
local due = c['sla_' .. kind .. '_due']
local ev = '{"type":"' .. (level == 'warn' and 'sla.warning' or 'sla.breached') .. '","conversation_id":' .. S(cid) ..
  ',"ticket":' .. c.ticket_number .. ',"kind":' .. S(kind) .. ',"due":' .. N(due) .. ',"team":' .. J(c.team) .. '}'
pub('site:' .. c.site, 0, 'a', '-', ev)
emit(level == 'warn' and 'sla.warning' or 'sla.breached', c, now, '{"kind":' .. S(kind) .. ',"due":' .. N(due) .. '}')
if level == 'breach' then
  local breached = json_list(c.sla_breached)
  local seen = false
  for _, b in ipairs(breached) do if b == kind then seen = true end end
  if not seen then table.insert(breached, kind) end
  c.sla_breached = cjson.encode(breached)
  if #breached == 0 then c.sla_breached = '[]' end
  redis.call('HSET', ckey(cid), 'sla_breached', c.sla_breached)
  -- breach actions (site SLA settings)
  local cfg = sla_config(c.site)
  local act = type(cfg.breach_actions) == 'table' and cfg.breach_actions or {}
  if act.raise_priority then
    local up = {low = 'normal', normal = 'high', high = 'urgent', urgent = 'urgent'}
    if up[c.priority] ~= c.priority then
      emit('conversation.updated', c, now, '{"changes":{"priority":{"from":' .. S(c.priority) .. ',"to":' ..
        S(up[c.priority]) .. '}}}')
      c.priority = up[c.priority]
      redis.call('HSET', ckey(cid), 'priority', c.priority)
      if c.status == 'queued' then redis.call('ZADD', qkey(c.site, c.team), queue_score(c.priority, c.created_at), cid) end
    end
  end
  if type(act.escalate_team) == 'string' and act.escalate_team ~= '' and act.escalate_team ~= c.team and
     redis.call('HEXISTS', skey(c.site, 'teams'), act.escalate_team) == 1 then
    if c.status == 'queued' then redis.call('ZREM', qkey(c.site, c.team), cid) end
    if c.assignee ~= '' then release(c, tostring(now), true) end
    emit('conversation.updated', c, now, '{"changes":{"team":{"from":' .. J(c.team) .. ',"to":' ..
      S(act.escalate_team) .. '}}}')
    if c.status ~= 'queued' then emit('conversation.status_changed', c, now, '{"from":' .. S(c.status) .. ',"to":"queued"}') end
    c.assignee, c.assignee_name, c.team, c.updated_at = '', '', act.escalate_team, tostring(now)
    redis.call('HSET', ckey(cid), 'assignee', '', 'assignee_name', '', 'team', c.team, 'updated_at', c.updated_at)
    enqueue(c, tostring(now))
    redis.call('HSET', ckey(cid), 'status', 'queued')
    append_msg(c, note_id, '', 'system', 'system', '', 'SLA breached (' .. kind .. '): escalated to team ' .. c.team, '1',
      tostring(now), retain)
    drain(c.site, c.team, tostring(now))
    queue_changed(c.site, c.team)
  end
  -- the admins get a stored notice (the bell's list keeps it), not a second copy of the
  -- event: every agent of the site, admins included, already had it on the site channel
  if act.notify_admins ~= false then
    notify(site_admins(c.site), 'sla', c.site, cid, 'SLA breached: ticket #' .. c.ticket_number .. ' (' .. kind .. ')',
      (c.subject and c.subject ~= '') and c.subject or nil, tostring(now))
  end
  c = hgetall(ckey(cid))
  conv_updated(c, true)
end
return '{"fired":true}'
