-- A site's event consumers in one call (docs/keyspace.md "Events", docs/architecture.md).
-- KEYS[1] = P{s:<site>}:events (or any key of the site for the rule timer modes); the
-- consumers' code is in _ev_reports.lua, _ev_health.lua, _ev_webhooks.lua, _ev_mail.lua
-- and _ev_rules.lua, which the library puts in front of this function.
-- ARGV: P, mode, now, ...
--   run <max> <owner> <lease ms> <retain ms> <rnd> <mail from> <mail delay ms> <mail
--     history>: one pass over up to max events of the site. The pass holds a lease
--     (P{s:<site>}:events:lease = owner) so that the nodes told about the site by the
--     same notice do not all read the same batch: another holder answers {"busy":true}.
--     The batch is read once and reports, health and webhooks (with the mail it asks
--     for, _ev_mail.lua) apply it at once. When the site has rules, the reply is the rules batch
--     ({"expect",…}, see _ev_rules.lua) and the lease stays for rules_apply; otherwise
--     the pass ends here: {"n":…,"more":bool}. A site that is not armed has nothing to
--     apply: {"n":0,"more":false,"idle":true}, at the cost of one EXISTS (every node got
--     the notice; the first one's pass leaves the others nothing).
--   rules_apply <plan> <history retain> <owner> <retain ms>: run the C planner's plan
--     and end the pass: {"applied":bool,"actions":n,"more":bool}.
--   rule_timer_get <site> <rule id> <cid> / rule_timer_apply <member> <plan> <history
--     retain>: a due time rule.
local mode, now = ARGV[2], ARGV[3]
local site = CSITE

if mode == 'run' then
  local max, owner, lease_ms, retain_ms = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]) or 0
  -- not armed: every event was applied (the pass that caught up disarmed the site, and
  -- every event since would have armed it): another node's pass got here first
  if redis.call('EXISTS', skey(site, 'events:armed')) == 0 then return '{"n":0,"more":false,"idle":true}' end
  local lk = skey(site, 'events:lease')
  local holder = redis.call('GET', lk)
  if holder and holder ~= owner then return '{"busy":true}' end
  redis.call('SET', lk, owner, 'PX', lease_ms)
  local cur = ev_cursors(site)
  local min = cur.reports
  for _, n in ipairs(EVENT_CONSUMERS) do
    if stream_id_lt(cur[n], min) then min = cur[n] end
  end
  local evs = ev_read(site, min, max)
  if #evs == 0 then
    return '{"n":0,"more":' .. tostring(ev_finish(site, owner, retain_ms)) .. '}'
  end
  local last = evs[#evs].id
  -- each consumer gets the events after its own cursor (normally all of them)
  local function after(name)
    if cur[name] == min then return evs end
    local out = {}
    for _, e in ipairs(evs) do
      if stream_id_lt(cur[name], e.id) then table.insert(out, e) end
    end
    return out
  end
  ev_reports(after('reports'))
  ev_health(after('health'), now)
  ev_webhooks(after('webhooks'), now)
  ev_mail(after('webhooks'), now, ARGV[8] or '', ARGV[9] or '', tonumber(ARGV[10]) or 0, tonumber(ARGV[11]) or 0)
  local moved = {'reports', last, 'health', last, 'webhooks', last}
  local rb
  local revs = after('rules')
  if #revs > 0 then rb = ev_rules_batch(site, revs, cur.rules, last, #evs >= max) end
  if not rb then
    table.insert(moved, 'rules')
    table.insert(moved, last)
  end
  redis.call('HSET', skey(site, 'events:cur'), unpack(moved))
  if rb then return rb end
  local left = ev_finish(site, owner, retain_ms)
  return '{"n":' .. I(#evs) .. ',"more":' .. tostring(left) .. '}'
end

if mode == 'rules_apply' then
  local plan, retain, owner, retain_ms = cjson.decode(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]) or 0
  local applied, n = ev_rules_apply(site, plan, now, retain)
  local left = ev_finish(site, owner, retain_ms)
  return '{"applied":' .. tostring(applied) .. ',"actions":' .. I(n) .. ',"more":' .. tostring(left) .. '}'
end

if mode == 'rule_timer_get' then return ev_rule_timer_get(ARGV[4], ARGV[5], ARGV[6]) end

if mode == 'rule_timer_apply' then
  return ev_rule_timer_apply(ARGV[4], cjson.decode(ARGV[5]), now, tonumber(ARGV[6]))
end

return fail('bad_request', 'unknown mode')
