-- Event consumer "reports" (docs/reports.md): turns business events into daily support
-- metrics, incrementally (each event touches a few hash fields; nothing scans history).
-- Part of events.lua: ev_reports(evs) applies a batch of the site's events.
--   P{s:<site>}:rpt:c:<cid>    hash  per-conversation working state (expires 90 days after its last event)
--   P{s:<site>}:rpt:d:<day>    hash  "<scope>|<metric>" -> integer sum/count; day = yyyy-mm-dd of the event at the site's report UTC offset
--   P{s:<site>}:rpt:backlog    hash  "<scope>|queued|open|pending" -> current count (gauges)
-- scope: "all", "team:<key>" ("team:_" = no team), "agent:<id>".
local function ev_reports(evs)
  local STATE_TTL = 90 * 86400

  -- The site's day: 00:00 to 24:00 at its report UTC offset (site report_utc_offset_min).
  local offsets = {}
  local function day_of(site, ms)
    local off = offsets[site]
    if not off then
      off = (tonumber(redis.call('HGET', sitekey(site), 'report_utc_offset_min') or '0') or 0) * 60000
      offsets[site] = off
    end
    return civil(math.floor((ms + off) / 86400000))
  end

  local function tm(t) return (t and t ~= '') and t or '_' end
  local function scopes(team, agent)
    local s = {'all', 'team:' .. tm(team)}
    if agent and agent ~= '' then table.insert(s, 'agent:' .. agent) end
    return s
  end
  -- The batch's sums are added up here and written once at the end (flush): a batch of
  -- 32 messages of one site and day is 2 HINCRBY, not 64. Sums commute, so the figures are
  -- the same as one write per event.
  local sums, sum_keys = {}, {}
  local function bump(k, field, v)
    local h = sums[k]
    if not h then
      h = {}
      sums[k] = h
      table.insert(sum_keys, k)
    end
    h[field] = (h[field] or 0) + v
  end
  -- add v to metric for each scope on (site, day)
  local function add(site, day, sc, metric, v)
    local k = skey(site, 'rpt:d:' .. day)
    for _, s in ipairs(sc) do bump(k, s .. '|' .. metric, v) end
  end
  local BACKLOG = {queued = true, open = true, pending = true}
  local function backlog(site, team, status, v)
    if not BACKLOG[status] then return end
    local k = skey(site, 'rpt:backlog')
    bump(k, 'all|' .. status, v)
    bump(k, 'team:' .. tm(team) .. '|' .. status, v)
  end
  -- Per-conversation working state, read once per batch and written once at its end.
  local states, state_keys = {}, {}
  local function state_of(stkey)
    local x = states[stkey]
    if not x then
      x = {st = hgetall(stkey) or {}, dirty = {}}
      states[stkey] = x
      table.insert(state_keys, stkey)
    end
    return x
  end
  local function flush()
    for _, k in ipairs(sum_keys) do
      for field, v in pairs(sums[k]) do
        if v ~= 0 then redis.call('HINCRBY', k, field, v) end
      end
    end
    for _, k in ipairs(state_keys) do
      local set = {}
      for f, v in pairs(states[k].dirty) do table.insert(set, f) table.insert(set, v) end
      if #set > 0 then
        redis.call('HSET', k, unpack(set))
        redis.call('EXPIRE', k, STATE_TTL)
      end
    end
  end

  local function num(v) return tonumber(v or '') end

  local function apply(e)
    local site, cid, ts = e.s, e.c, tonumber(e.ts)
    if not site or site == '' or not cid or cid == '' or not ts then return end
    local ok, d = pcall(cjson.decode, e.d or '{}')
    if not ok or type(d) ~= 'table' then d = {} end
    local day = day_of(site, ts)
    local x = state_of(skey(site, 'rpt:c:' .. cid))
    local st = x.st
    local function put(f, v) st[f] = v; x.dirty[f] = v end
    local function sv(v) if v == nil or v == cjson.null then return '' end return tostring(v) end
    local t = e.t
    -- end the running handling period (assignment -> resolved/closed/queued/transfer)
    local function handle_end()
      local start = num(st.handle_start)
      -- a zero-length period (reopened and transferred in the same step) is no handling
      if start and ts > start and st.agent and st.agent ~= '' then
        add(site, day, scopes(st.team, st.agent), 'aht_sum', ts - start)
        add(site, day, scopes(st.team, st.agent), 'aht_n', 1)
      end
      put('handle_start', '')
    end
    local function fcr_takeback()
      if st.fcr_day and st.fcr_day ~= '' then
        add(site, st.fcr_day, scopes(st.fcr_team, st.fcr_agent), 'fcr_n', -1)
        put('fcr_day', '')
      end
    end
    -- first resolution (or first close with an agent reply): resolution time, FCR, SLA compliance
    local function resolution()
      if st.res_done == '1' or not num(st.created) then return end
      put('res_done', '1')
      local sc = scopes(st.team, st.agent)
      add(site, day, sc, 'res_sum', ts - num(st.created))
      add(site, day, sc, 'res_n', 1)
      if (num(st.agent_replies) or 0) == 1 and st.reopened ~= '1' then
        add(site, day, sc, 'fcr_n', 1)
        put('fcr_day', day)
        put('fcr_team', st.team or '')
        put('fcr_agent', st.agent or '')
      end
      if st.ticket == '1' then add(site, day, sc, st.breached == '1' and 'sla_missed' or 'sla_met', 1) end
    end

    if t == 'conversation.created' then
      put('created', tostring(ts))
      put('team', sv(d.team))
      put('status', 'queued')
      add(site, day, scopes(st.team, nil), 'created', 1)
      backlog(site, st.team, 'queued', 1)
    elseif t == 'message.created' then
      local a = type(d.author) == 'table' and d.author or {}
      if d.private == true then return end
      if a.kind == 'visitor' then
        add(site, day, scopes(st.team, nil), 'msg_visitor', 1)
        if st.first_done == '1' and (st.awaiting or '') == '' then put('awaiting', tostring(ts)) end
      elseif a.kind == 'agent' then
        local sc = scopes(st.team, sv(a.id))
        add(site, day, sc, 'msg_agent', 1)
        local n = (num(st.agent_replies) or 0) + 1
        put('agent_replies', tostring(n))
        if n > 1 then fcr_takeback() end
        if st.first_done ~= '1' then
          put('first_done', '1')
          if num(st.created) then
            add(site, day, sc, 'frt_sum', ts - num(st.created))
            add(site, day, sc, 'frt_n', 1)
          end
        elseif num(st.awaiting) then
          add(site, day, sc, 'nrt_sum', ts - num(st.awaiting))
          add(site, day, sc, 'nrt_n', 1)
        end
        put('awaiting', '')
      end
    elseif t == 'conversation.assigned' then
      if num(st.handle_start) then handle_end() end
      put('agent', sv(d.agent))
      if d.team ~= nil and d.team ~= cjson.null then put('team', sv(d.team)) end
      local sc = scopes(st.team, st.agent)
      add(site, day, sc, 'assigned', 1)
      if type(d.wait_ms) == 'number' then
        add(site, day, sc, 'wait_sum', d.wait_ms)
        add(site, day, sc, 'wait_n', 1)
      end
      if st.status == 'open' or st.status == 'pending' then put('handle_start', tostring(ts)) end
    elseif t == 'conversation.status_changed' then
      local from, to = sv(d.from), sv(d.to)
      if st.status and st.status ~= '' then from = st.status end
      backlog(site, st.team, from, -1)
      backlog(site, st.team, to, 1)
      put('status', to)
      if (from == 'resolved' or from == 'closed') and to ~= 'closed' then
        put('reopened', '1')
        add(site, day, scopes(st.team, st.agent), 'reopened', 1)
        fcr_takeback()
      end
      if to == 'queued' then
        if num(st.handle_start) then handle_end() end
        put('agent', '')
      elseif to == 'resolved' then
        if num(st.handle_start) then handle_end() end
        add(site, day, scopes(st.team, st.agent), 'resolved', 1)
        resolution()
      elseif to == 'closed' then
        if num(st.handle_start) then handle_end() end
        add(site, day, scopes(st.team, st.agent), 'closed', 1)
        if (num(st.agent_replies) or 0) == 0 then
          if st.abandoned ~= '1' then
            put('abandoned', '1')
            add(site, day, scopes(st.team, st.agent), 'abandoned', 1)
          end
        else
          resolution()
        end
      elseif (to == 'open' or to == 'pending') and (from == 'resolved' or from == 'queued' or from == 'closed') then
        if st.agent and st.agent ~= '' and not num(st.handle_start) then put('handle_start', tostring(ts)) end
      end
    elseif t == 'conversation.updated' then
      local ch = type(d.changes) == 'table' and d.changes or {}
      if type(ch.team) == 'table' then
        local to = sv(ch.team.to)
        backlog(site, st.team, st.status, -1)
        backlog(site, to, st.status, 1)
        put('team', to)
      end
    elseif t == 'ticket.created' then
      put('ticket', '1')
      add(site, day, scopes(st.team, st.agent), 'tickets', 1)
    elseif t == 'sla.breached' then
      put('breached', '1')
      local sc = scopes(st.team, st.agent)
      add(site, day, sc, 'sla_breached', 1)
      if d.kind == 'first_response' or d.kind == 'next_response' or d.kind == 'resolution' then
        add(site, day, sc, 'sla_breached_' .. d.kind, 1)
      end
    elseif t == 'csat.submitted' then
      -- a new rating replaces the conversation's previous one (its contribution is undone)
      if st.csat_rec and st.csat_rec ~= '' then
        local okr, r = pcall(cjson.decode, st.csat_rec)
        if okr and type(r) == 'table' then
          for f, v in pairs(r.inc) do add(site, r.day, r.sc, f, -v) end
        end
      end
      local inc = {}
      local score = tonumber(d.score)
      if score then
        inc.csat_sum, inc.csat_n = score, 1
        if score >= 4 then inc.csat_pos = 1 end
      end
      local nps = tonumber(d.nps)
      if nps then
        inc.nps_n = 1
        if nps >= 9 then inc.nps_pro = 1 elseif nps >= 7 then inc.nps_pas = 1 else inc.nps_det = 1 end
      end
      local ces = tonumber(d.ces)
      if ces then inc.ces_sum, inc.ces_n = ces, 1 end
      local sc = scopes(st.team, st.agent)
      for f, v in pairs(inc) do add(site, day, sc, f, v) end
      put('csat_rec', cjson.encode({day = day, sc = sc, inc = inc}))
    end
  end

  for _, e in ipairs(evs) do apply(e) end
  flush()
end
