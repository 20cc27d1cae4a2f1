-- HTTP API: support metrics (docs/reports.md, docs/api.md "Reports"). Reads the daily
-- aggregates that reports_apply.lua maintains: one HGETALL per day asked for.
-- Every op replies {"site","from","to","scope","columns":[…],"rows":[{…}]} (+ extras);
-- with format=csv, api.c renders columns/rows as CSV.
local MAX_DAYS = 366

local function parse_day(v, what)
  if type(v) ~= 'string' then error({code = 'bad_request', msg = what .. ' must be a date YYYY-MM-DD'}) end
  local y, m, d = string.match(v, '^(%d%d%d%d)%-(%d%d)%-(%d%d)$')
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if not y or m < 1 or m > 12 or d < 1 or d > 31 then
    error({code = 'bad_request', msg = what .. ' must be a date YYYY-MM-DD'})
  end
  local z = days_from_civil(y, m, d)
  if civil(z) ~= v then error({code = 'bad_request', msg = what .. ' is not a calendar date'}) end
  return z
end

-- the request: site, day range, scope
local function request()
  local site = str(p.site, 64, 'site')
  if not site or site == '' then error({code = 'bad_request', msg = 'site is required'}) end
  if not my_site(site) then error({code = 'not_found', msg = 'no such site'}) end
  local off = tonumber(redis.call('HGET', sitekey(site), 'report_utc_offset_min') or '0') or 0
  local today = math.floor((tonumber(now) + off * 60000) / 86400000)
  local to = (p.to ~= nil and p.to ~= '') and parse_day(p.to, 'to') or today
  local from = (p.from ~= nil and p.from ~= '') and parse_day(p.from, 'from') or (to - 6)
  if from > to then error({code = 'bad_request', msg = 'from is after to'}) end
  if to - from + 1 > MAX_DAYS then error({code = 'bad_request', msg = 'at most 366 days per report'}) end
  local team, agent = str(p.team, 64, 'team') or '', str(p.agent, 64, 'agent') or ''
  if team ~= '' and agent ~= '' then error({code = 'bad_request', msg = 'pass team or agent, not both'}) end
  if not is_admin and not by_token then
    -- agents see their own numbers only (an API token with the read scope: the site's)
    if team ~= '' or (agent ~= '' and agent ~= aid) then
      error({code = 'forbidden', msg = 'agents may only see their own numbers'})
    end
    agent = aid
  end
  local scope = 'all'
  if team ~= '' then scope = 'team:' .. team elseif agent ~= '' then scope = 'agent:' .. agent end
  return {site = site, from = from, to = to, scope = scope, offset = off}
end

-- raw counters of one day: scope -> metric -> n
local function day_counts(site, z)
  local out = {}
  local r = redis.call('HGETALL', skey(site, 'rpt:d:' .. civil(z)))
  for i = 1, #r, 2 do
    local sc, m = string.match(r[i], '^(.*)|([%w_]+)$')
    if sc then
      out[sc] = out[sc] or {}
      out[sc][m] = (out[sc][m] or 0) + tonumber(r[i + 1])
    end
  end
  return out
end
local function merge(into, c)
  for m, v in pairs(c or {}) do into[m] = (into[m] or 0) + v end
end

local function rnd(x, dp)
  local f = 10 ^ dp
  return math.floor(x * f + 0.5) / f
end
local function num(x)
  if x == nil then return 'null' end
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format('%d', x) end
  return (string.format('%.4f', x):gsub('0+$', ''))
end
local function ratio(a, b, dp, mul)
  if not b or b == 0 then return nil end
  return rnd((a or 0) * (mul or 1) / b, dp)
end
local COLUMNS = {'conversations', 'assigned', 'resolved', 'abandoned', 'reopened', 'frt_avg_ms', 'frt_n', 'nrt_avg_ms',
  'nrt_n', 'resolution_avg_ms', 'aht_avg_ms', 'aht_n', 'wait_avg_ms', 'wait_n', 'fcr_n', 'fcr_rate', 'csat_avg',
  'csat_pct', 'csat_n', 'nps', 'nps_n', 'ces_avg', 'ces_n', 'tickets', 'sla_breached', 'sla_met', 'sla_missed',
  'sla_compliance', 'msg_visitor', 'msg_agent'}
-- the derived figures of a set of counters, in COLUMNS order: list of {name, value}
local function derive(c)
  local v = {
    conversations = c.created or 0, assigned = c.assigned or 0, resolved = c.res_n or 0, abandoned = c.abandoned or 0,
    reopened = c.reopened or 0,
    frt_avg_ms = ratio(c.frt_sum, c.frt_n, 0), frt_n = c.frt_n or 0,
    nrt_avg_ms = ratio(c.nrt_sum, c.nrt_n, 0), nrt_n = c.nrt_n or 0,
    resolution_avg_ms = ratio(c.res_sum, c.res_n, 0),
    aht_avg_ms = ratio(c.aht_sum, c.aht_n, 0), aht_n = c.aht_n or 0,
    wait_avg_ms = ratio(c.wait_sum, c.wait_n, 0), wait_n = c.wait_n or 0,
    fcr_n = c.fcr_n or 0, fcr_rate = ratio(c.fcr_n, c.res_n, 4),
    csat_avg = ratio(c.csat_sum, c.csat_n, 2), csat_pct = ratio(c.csat_pos, c.csat_n, 1, 100), csat_n = c.csat_n or 0,
    nps = ratio((c.nps_pro or 0) - (c.nps_det or 0), c.nps_n, 1, 100), nps_n = c.nps_n or 0,
    ces_avg = ratio(c.ces_sum, c.ces_n, 2), ces_n = c.ces_n or 0,
    tickets = c.tickets or 0, sla_breached = c.sla_breached or 0, sla_met = c.sla_met or 0,
    sla_missed = c.sla_missed or 0,
    sla_compliance = ratio(c.sla_met, (c.sla_met or 0) + (c.sla_missed or 0), 4),
    msg_visitor = c.msg_visitor or 0, msg_agent = c.msg_agent or 0,
  }
  local parts = {}
  for _, k in ipairs(COLUMNS) do table.insert(parts, S(k) .. ':' .. num(v[k])) end
  return table.concat(parts, ',')
end
local function columns(first)
  local cols = {}
  for _, k in ipairs(first) do table.insert(cols, S(k)) end
  for _, k in ipairs(COLUMNS) do table.insert(cols, S(k)) end
  return '[' .. table.concat(cols, ',') .. ']'
end
local function head(q)
  return '"site":' .. S(q.site) .. ',"from":' .. S(civil(q.from)) .. ',"to":' .. S(civil(q.to)) .. ',"scope":' .. S(q.scope) ..
    ',"utc_offset_min":' .. I(q.offset)
end
local function backlog_json(site, scope)
  local b = hgetall(skey(site, 'rpt:backlog')) or {}
  local sc = string.sub(scope, 1, 6) == 'agent:' and 'all' or scope
  local function g(s) local n = tonumber(b[sc .. '|' .. s] or '0') return n < 0 and 0 or n end
  return '{"queued":' .. I(g('queued')) .. ',"open":' .. I(g('open')) .. ',"pending":' .. I(g('pending')) .. '}'
end

local ops = {}

ops.reports_summary = function()
  local q = request()
  local tot = {}
  for z = q.from, q.to do merge(tot, day_counts(q.site, z)[q.scope]) end
  local row = '{"from":' .. S(civil(q.from)) .. ',"to":' .. S(civil(q.to)) .. ',' .. derive(tot) .. '}'
  local counts = {}
  for k, v in pairs(tot) do table.insert(counts, S(k) .. ':' .. I(v)) end
  table.sort(counts)
  return reply(200, '{' .. head(q) .. ',"columns":' .. columns({'from', 'to'}) .. ',"rows":[' .. row ..
    '],"metrics":' .. row .. ',"counts":{' .. table.concat(counts, ',') .. '},"backlog":' ..
    backlog_json(q.site, q.scope) .. '}')
end

ops.reports_daily = function()
  local q = request()
  local rows = {}
  for z = q.from, q.to do
    table.insert(rows, '{"day":' .. S(civil(z)) .. ',' .. derive(day_counts(q.site, z)[q.scope] or {}) .. '}')
  end
  return reply(200, '{' .. head(q) .. ',"columns":' .. columns({'day'}) .. ',"rows":[' .. table.concat(rows, ',') .. ']}')
end

-- one row per agent or team that has figures in the range
local function per(prefix, q, named)
  local tot, keys = {}, {}
  for z = q.from, q.to do
    for sc, c in pairs(day_counts(q.site, z)) do
      if string.sub(sc, 1, #prefix) == prefix then
        local k = string.sub(sc, #prefix + 1)
        if not tot[k] then
          tot[k] = {}
          table.insert(keys, k)
        end
        merge(tot[k], c)
      end
    end
  end
  table.sort(keys)
  local rows = {}
  for _, k in ipairs(keys) do
    if q.scope == 'all' or q.scope == prefix .. k then
      table.insert(rows, '{"' .. prefix:sub(1, -2) .. '":' .. S(k) .. ',"name":' .. J(named(k)) .. ',' .. derive(tot[k]) .. '}')
    end
  end
  return rows
end

ops.reports_agents = function()
  local q = request()
  if string.sub(q.scope, 1, 5) == 'team:' then error({code = 'bad_request', msg = 'team does not apply here'}) end
  local rows = per('agent:', q, function(k) return redis.call('HGET', sakey(q.site, k), 'name') end)
  return reply(200, '{' .. head(q) .. ',"columns":' .. columns({'agent', 'name'}) .. ',"rows":[' ..
    table.concat(rows, ',') .. ']}')
end

ops.reports_teams = function()
  local q = request()
  if not is_admin then error({code = 'forbidden', msg = 'admin role required'}) end
  if string.sub(q.scope, 1, 6) == 'agent:' then error({code = 'bad_request', msg = 'agent does not apply here'}) end
  local rows = per('team:', q, function(k)
    if k == '_' then return nil end
    return redis.call('HGET', skey(q.site, 'teams'), k)
  end)
  return reply(200, '{' .. head(q) .. ',"columns":' .. columns({'team', 'name'}) .. ',"rows":[' ..
    table.concat(rows, ',') .. '],"backlog":' .. backlog_json(q.site, q.scope) .. '}')
end

return dispatch(ops)
