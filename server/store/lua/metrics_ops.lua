-- Operational gauges for Prometheus /metrics (docs/ops.md), read by each node every few
-- seconds (never per scrape): queue depth per site and team, backlog per site, how late
-- the oldest due timer is, the event streams' length. Touches one key per queue (sites ×
-- teams), never history. ARGV: P, now. Reply: Prometheus text exposition lines (the node
-- appends them to /metrics as they are).
local now = tonumber(ARGV[2])
local MAX_SERIES = 1000
local function lv(s) return (string.gsub(s, '[\\"\n]', function(c) return c == '\n' and '\\n' or '\\' .. c end)) end
local function help(name, text) return '# HELP ' .. name .. ' ' .. text .. '\n# TYPE ' .. name .. ' gauge\n' end
local qs, bl, n, evlen = {}, {}, 0, 0
local sites = redis.call('SMEMBERS', P .. '{g}:sites')
table.sort(sites)
for _, site in ipairs(sites) do
  if n >= MAX_SERIES then break end
  local teams = redis.call('HKEYS', skey(site, 'teams'))
  table.insert(teams, '_')
  table.sort(teams)
  for _, team in ipairs(teams) do
    n = n + 1
    table.insert(qs, 'chatdesk_queue_depth{site="' .. lv(site) .. '",team="' .. lv(team) .. '"} ' ..
      I(redis.call('ZCARD', qkey(site, team))) .. '\n')
  end
  local b = redis.call('HMGET', skey(site, 'rpt:backlog'), 'all|queued', 'all|open', 'all|pending')
  for i, st in ipairs({'queued', 'open', 'pending'}) do
    local v = tonumber(b[i] or '0') or 0
    table.insert(bl, 'chatdesk_backlog{site="' .. lv(site) .. '",status="' .. st .. '"} ' .. I(v < 0 and 0 or v) .. '\n')
  end
end
local lag = 0
for _, site in ipairs(redis.call('SMEMBERS', P .. '{g}:sites')) do
  evlen = evlen + redis.call('XLEN', skey(site, 'events'))
  local first = redis.call('ZRANGE', skey(site, 'timers'), 0, 0, 'WITHSCORES')
  if #first == 2 then
    local due = tonumber(first[2])
    if due < now and now - due > lag then lag = now - due end
  end
end
return help('chatdesk_queue_depth', 'Conversations waiting in a team\'s queue (team "_": no team).') ..
  table.concat(qs) ..
  help('chatdesk_backlog', 'Conversations by status (queued, open, pending) per site, from the reports.') ..
  table.concat(bl) ..
  help('chatdesk_timer_lag_seconds', 'How late the oldest due timer is (0 when none is overdue).') ..
  'chatdesk_timer_lag_seconds ' .. string.format('%.3f', lag / 1000) .. '\n' ..
  help('chatdesk_events_stream_length', 'Entries in the sites\' event streams (not yet applied by every consumer, or kept by events_retain_s).') ..
  'chatdesk_events_stream_length ' .. I(evlen) .. '\n'
