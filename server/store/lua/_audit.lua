-- The audit log (docs/ops.md "Audit log"), at the library's top level after _common.lua:
-- a function that makes an administrative or account change appends its entry in the
-- same atomic step, to a stream of the slot it changed: P{s:<site>}:audit for a site's
-- settings, teams, SLA, rules, webhooks, knowledge base and shared canned replies,
-- P{a}:audit for what is about an agent's account (logins, failed logins, logouts and
-- token revocations, the agent record, 2FA), with the agent's sites at the time (a site's
-- listing shows the account entries of its sites). Streams are trimmed by time (MINID)
-- at every append, so nothing grows forever.
-- Fields: ts (ms), actor (agent id, 'operator' for the CLI, '' when unknown), ae (the
-- actor's e-mail), ip (client address), a (action), t (target), b / f (before / after:
-- JSON objects of the fields that changed, secrets masked), s (JSON array: account
-- entries' sites).
local AUDIT_ACCOUNT_MAX = 100000 -- the account stream's bound beside time (failed logins)
-- Fields whose values never reach the log: a change shows as the mask, a cleared one as ''.
local AUDIT_SECRET = {identity_secret = true, secret = true, pw = true, pw_hash = true, password = true,
  token = true, totp_secret = true, recovery_codes = true}
local AUDIT_MASK = '[hidden]'
local function audit_enc(v)
  if type(v) == 'table' then
    if next(v) == nil then return '[]' end
    return cjson.encode(v)
  end
  return tostring(v)
end
-- {before, after} of the fields that differ (all of them for a creation or a deletion),
-- as JSON object texts, secrets masked.
local function audit_diff(before, after)
  local b, f = {}, {}
  local keys = {}
  for k in pairs(before or {}) do keys[k] = true end
  for k in pairs(after or {}) do keys[k] = true end
  for k in pairs(keys) do
    local x, y = before and before[k], after and after[k]
    if x == cjson.null then x = nil end
    if y == cjson.null then y = nil end
    local xe, ye = x ~= nil and audit_enc(x) or nil, y ~= nil and audit_enc(y) or nil
    if xe ~= ye or not before or not after then
      if AUDIT_SECRET[k] then
        if x ~= nil then b[k] = (xe == '' and '' or AUDIT_MASK) end
        if y ~= nil then f[k] = (ye == '' and '' or AUDIT_MASK) end
      else
        b[k], f[k] = x, y
      end
    end
  end
  local function obj(t)
    if next(t) == nil then return '{}' end
    return (string.gsub(cjson.encode(t), '"([^"]+)":{}', '"%1":[]'))
  end
  return obj(b), obj(f)
end
-- Appends one entry to key. who: {id, email, addr, now, retain_ms}. before/after: tables
-- of plain values (nil for a creation / deletion / an event without state); sites: the
-- account entries' sites (a list), nil for a site's stream.
local function audit_append(key, who, action, target, before, after, sites)
  local b, f = audit_diff(before, after)
  local now = tonumber(who.now) or 0
  local minid = math.max(0, now - (tonumber(who.retain_ms) or 0))
  local fields = {'ts', I(now), 'actor', who.id or '', 'ae', who.email or '', 'ip', who.addr or '', 'a', action,
    't', target or '', 'b', b, 'f', f}
  if sites then
    table.insert(fields, 's')
    table.insert(fields, #sites == 0 and '[]' or cjson.encode(sites))
  end
  redis.call('XADD', key, 'MINID', I(minid), '*', unpack(fields))
  if sites then redis.call('XTRIM', key, 'MAXLEN', '~', AUDIT_ACCOUNT_MAX) end
end
local AUDIT_DAY_MS = 86400000
-- A site's retention (its audit_retain_days, else the node's default) in ms.
local function audit_retain_ms(site_record, default_days)
  local d = tonumber(site_record and site_record.audit_retain_days or '') or tonumber(default_days) or 90
  return d * AUDIT_DAY_MS
end
