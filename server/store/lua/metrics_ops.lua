-- Operational gauges of one site for Prometheus /metrics (docs/ops.md), read by each node
-- every few seconds (never per scrape), one call per site of its site cache
-- (server/node/gauges.c merges them): queue depth per team, the backlog, how late the
-- site's oldest due timer is, its event stream's length. Touches one key per queue,
-- never history. KEYS: P{s:<site>}:site. ARGV: P, now. Reply: {"q": queue depth lines,
-- "nq": how many, "b": backlog lines (Prometheus text exposition), "lag": ms, "ev": n}.
local site, now = CSITE, tonumber(ARGV[2])
local function lv(s) return (string.gsub(s, '[\\"\n]', function(c) return c == '\n' and '\\n' or '\\' .. c end)) end
local qs, bl = {}, {}
local teams = redis.call('HKEYS', skey(site, 'teams'))
table.insert(teams, '_')
table.sort(teams)
for _, team in ipairs(teams) do
  table.insert(qs, 'chatdesk_queue_depth{site="' .. lv(site) .. '",team="' .. lv(team) .. '"} ' ..
    I(redis.call('ZCARD', qkey(site, team))) .. '\n')
end
local b = redis.call('HMGET', skey(site, 'rpt:backlog'), 'all|queued', 'all|open', 'all|pending')
for i, st in ipairs({'queued', 'open', 'pending'}) do
  local v = tonumber(b[i] or '0') or 0
  table.insert(bl, 'chatdesk_backlog{site="' .. lv(site) .. '",status="' .. st .. '"} ' .. I(v < 0 and 0 or v) .. '\n')
end
local lag = 0
local first = redis.call('ZRANGE', skey(site, 'timers'), 0, 0, 'WITHSCORES')
if #first == 2 and tonumber(first[2]) < now then lag = now - tonumber(first[2]) end
return '{"q":' .. S(table.concat(qs)) .. ',"nq":' .. I(#qs) .. ',"b":' .. S(table.concat(bl)) .. ',"lag":' .. I(lag) ..
  ',"ev":' .. I(redis.call('XLEN', skey(site, 'events'))) .. '}'
