-- Operational gauges for Prometheus /metrics (docs/ops.md, docs/reports.md), read by each
-- node every few seconds (never per scrape): queue depth per site and team, how late the
-- oldest due timer is, the event stream's length. Touches one key per queue (sites ×
-- teams), never history. ARGV: P, now. Reply
-- {"queues":[{"site","team","depth"}…],"timer_lag_ms":n,"events":n,"backlog":[{"site","queued","open","pending"}…]}
local now = tonumber(ARGV[2])
local MAX_SERIES = 1000
local qs, bl, n = {}, {}, 0
local sites = redis.call('SMEMBERS', P .. 'sites')
table.sort(sites)
for _, site in ipairs(sites) do
  local teams = redis.call('HKEYS', P .. 'site:' .. site .. ':teams')
  table.insert(teams, '_')
  table.sort(teams)
  for _, team in ipairs(teams) do
    if n >= MAX_SERIES then break end
    n = n + 1
    table.insert(qs, '{"site":' .. S(site) .. ',"team":' .. S(team) .. ',"depth":' ..
      I(redis.call('ZCARD', P .. 'site:' .. site .. ':queue:' .. team)) .. '}')
  end
  local b = redis.call('HMGET', P .. 'rpt:' .. site .. ':backlog', 'all|queued', 'all|open', 'all|pending')
  local function g(v) v = tonumber(v or '0') or 0 return v < 0 and 0 or v end
  if #bl < MAX_SERIES then
    table.insert(bl, '{"site":' .. S(site) .. ',"queued":' .. I(g(b[1])) .. ',"open":' .. I(g(b[2])) ..
      ',"pending":' .. I(g(b[3])) .. '}')
  end
end
local lag = 0
local first = redis.call('ZRANGE', P .. 'timers', 0, 0, 'WITHSCORES')
if #first == 2 then
  local due = tonumber(first[2])
  if due < now then lag = now - due end
end
return '{"queues":[' .. table.concat(qs, ',') .. '],"timer_lag_ms":' .. I(lag) .. ',"events":' ..
  I(redis.call('XLEN', P .. 'events')) .. ',"backlog":[' .. table.concat(bl, ',') .. ']}'
