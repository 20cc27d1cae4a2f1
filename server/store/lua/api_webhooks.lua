-- The HTTP API's webhooks section (docs/api.md "Webhooks"); shared part in _api.lua.
-- Keys, all in the site's slot: P{s:<site>}:webhooks (set of ids), :webhook:<id> (hash),
-- :webhook:<id>:log, :webhook:<id>:deliveries, :whd:<delivery id>, :webhooks:due,
-- :webhook:seq (docs/keyspace.md).
local ops = {}
local EVENT_TYPES = {'conversation.created', 'message.created', 'conversation.status_changed',
  'conversation.assigned', 'conversation.updated', 'ticket.created', 'sla.warning', 'sla.breached', 'csat.submitted'}
local KNOWN = {['*'] = true}
for _, t in ipairs(EVENT_TYPES) do KNOWN[t] = true end

local site_of = admin_site_key
local function hook_of(site, wid)
  local h = type(wid) == 'string' and hgetall(whkey(site, wid))
  if not h or h.site ~= site then error({code = 'not_found', msg = 'no such webhook'}) end
  return h
end
-- http(s)://host[:port][/path][?query]; no user info, no fragment, no spaces
local function url_ok(u)
  if type(u) ~= 'string' or #u > 2000 or string.find(u, '[%s%c#\\]') then return false end
  local rest = string.match(u, '^[hH][tT][tT][pP][sS]?://(.*)$')
  if not rest then return false end
  local auth, path = string.match(rest, '^([^/?]*)(.*)$')
  if auth == '' or string.find(auth, '@', 1, true) or string.sub(auth, -1) == ':' then return false end
  local host, port = string.match(auth, '^(%[[0-9a-fA-F:.]+%]):?(%d*)$')
  if not host then host, port = string.match(auth, '^([A-Za-z0-9%.%-]+):?(%d*)$') end
  if not host or string.find(host, '^[%.%-]') or string.find(host, '%.%.') then return false end
  if port ~= '' and (#port > 5 or tonumber(port) < 1 or tonumber(port) > 65535) then return false end
  return path == '' or string.sub(path, 1, 1) == '/' or string.sub(path, 1, 1) == '?'
end
local function events_of(v)
  if type(v) ~= 'table' or #v == 0 or #v > 50 then
    error({code = 'bad_request', msg = 'events must list event types (or "*"): ' .. table.concat(EVENT_TYPES, ', ')})
  end
  local seen, out = {}, {}
  for _, t in ipairs(v) do
    if type(t) ~= 'string' or not KNOWN[t] then
      error({code = 'bad_request', msg = 'unknown event type ' .. tostring(t) .. ' (known: ' .. table.concat(EVENT_TYPES, ', ') .. ', *)'})
    end
    if not seen[t] then seen[t] = true table.insert(out, t) end
  end
  return out
end
local function hook_json(h, with_secret)
  return '{"id":' .. S(h.id) .. ',"site":' .. S(h.site) .. ',"url":' .. S(h.url) .. ',"events":' .. (h.events or '[]') ..
    ',"enabled":' .. (h.enabled == '0' and 'false' or 'true') .. ',"description":' .. J(h.description) ..
    ',"created_at":' .. N(h.created_at) .. ',"updated_at":' .. N(h.updated_at) ..
    (with_secret and (',"secret":' .. S(h.secret)) or '') .. '}'
end
-- what the audit log keeps of a webhook (secret: masked by _audit.lua)
local function hook_audit(h)
  local ok, ev = pcall(cjson.decode, h.events or '[]')
  return {url = h.url, events = ok and ev or h.events, enabled = h.enabled ~= '0', description = h.description or '',
    secret = h.secret}
end
local function new_secret() return 'whsec_' .. string.sub(fresh, 3) end
local function delivery_json(d)
  return '{"id":' .. S(d.id) .. ',"webhook":' .. S(d.webhook) .. ',"event":' .. S(d.event) .. ',"state":' .. S(d.state) ..
    ',"attempts":' .. N(d.attempts) .. ',"created_at":' .. N(d.created_at) .. ',"next_at":' ..
    (d.state == 'pending' and N(d.next_at) or 'null') .. ',"delivered_at":' .. N(d.delivered_at) ..
    ',"last_status":' .. N(d.last_status) .. ',"last_error":' .. J(d.last_error) .. '}'
end

ops.admin_webhooks_list = function()
  local site = site_of(p.site_key)
  local out = {}
  for _, wid in ipairs(redis.call('SMEMBERS', skey(site, 'webhooks'))) do
    local h = hgetall(whkey(site, wid))
    if h then table.insert(out, h) end
  end
  table.sort(out, function(a, b) return tonumber(a.created_at) < tonumber(b.created_at) end)
  local js = {}
  for _, h in ipairs(out) do table.insert(js, hook_json(h, false)) end
  return reply(200, '{"webhooks":[' .. table.concat(js, ',') .. '],"event_types":' .. cjson.encode(EVENT_TYPES) .. '}')
end
ops.admin_webhook_create = function()
  local site = site_of(p.site_key)
  if not url_ok(p.url) then return fail('bad_request', 'url must be an http:// or https:// URL without user info or fragment') end
  local events = events_of(p.events)
  if p.enabled ~= nil and type(p.enabled) ~= 'boolean' then return fail('bad_request', 'enabled must be true or false') end
  local desc = str(p.description, 200, 'description') or ''
  if redis.call('SCARD', skey(site, 'webhooks')) >= 20 then return fail('conflict', 'a site has at most 20 webhooks') end
  local wid = 'wh' .. I(redis.call('INCR', skey(site, 'webhook:seq')))
  redis.call('HSET', whkey(site, wid), 'id', wid, 'site', site, 'url', p.url, 'events', cjson.encode(events),
    'enabled', p.enabled == false and '0' or '1', 'description', desc, 'secret', new_secret(), 'created_at', now,
    'updated_at', now)
  redis.call('SADD', skey(site, 'webhooks'), wid)
  audit_site(site, 'webhook.create', wid, nil, hook_audit(hgetall(whkey(site, wid))))
  return reply(201, '{"webhook":' .. hook_json(hgetall(whkey(site, wid)), true) .. '}')
end
ops.admin_webhook_get = function()
  local h = hook_of(site_of(p.site_key), p.webhook_id)
  return reply(200, '{"webhook":' .. hook_json(h, false) .. '}')
end
ops.admin_webhook_patch = function()
  local site = site_of(p.site_key)
  local h = hook_of(site, p.webhook_id)
  local key = whkey(site, h.id)
  if p.url ~= nil then
    if not url_ok(p.url) then return fail('bad_request', 'url must be an http:// or https:// URL without user info or fragment') end
    redis.call('HSET', key, 'url', p.url)
  end
  if p.events ~= nil then redis.call('HSET', key, 'events', cjson.encode(events_of(p.events))) end
  if p.enabled ~= nil then
    if type(p.enabled) ~= 'boolean' then return fail('bad_request', 'enabled must be true or false') end
    redis.call('HSET', key, 'enabled', p.enabled and '1' or '0')
  end
  if p.description ~= nil then
    redis.call('HSET', key, 'description', p.description == cjson.null and '' or str(p.description, 200, 'description'))
  end
  local rotated = false
  if p.rotate_secret ~= nil then
    if type(p.rotate_secret) ~= 'boolean' then return fail('bad_request', 'rotate_secret must be true or false') end
    if p.rotate_secret then
      redis.call('HSET', key, 'secret', new_secret())
      rotated = true
    end
  end
  redis.call('HSET', key, 'updated_at', now)
  local after = hgetall(key)
  audit_site(site, 'webhook.update', h.id, hook_audit(h), hook_audit(after))
  return reply(200, '{"webhook":' .. hook_json(hgetall(key), rotated) .. '}')
end
ops.admin_webhook_delete = function()
  local site = site_of(p.site_key)
  local h = hook_of(site, p.webhook_id)
  redis.call('SREM', skey(site, 'webhooks'), h.id)
  local key = whkey(site, h.id)
  redis.call('DEL', key, key .. ':log', key .. ':deliveries')
  audit_site(site, 'webhook.delete', h.id, hook_audit(h), nil)
  return reply(200, '{"deleted":true}')
end
-- the webhook's deliveries (newest first, up to 50) and its attempt log (last 100)
ops.admin_webhook_deliveries = function()
  local h = hook_of(site_of(p.site_key), p.webhook_id)
  local ds = {}
  for _, did in ipairs(redis.call('ZREVRANGE', whkey(h.site, h.id) .. ':deliveries', 0, 49)) do
    local d = hgetall(whdkey(h.site, did))
    if d then table.insert(ds, delivery_json(d)) end
  end
  local log = redis.call('LRANGE', whkey(h.site, h.id) .. ':log', 0, 99)
  return reply(200, '{"deliveries":[' .. table.concat(ds, ',') .. '],"log":[' .. table.concat(log, ',') .. ']}')
end
-- queue a "ping" delivery now
ops.admin_webhook_test = function()
  local site = site_of(p.site_key)
  local h = hook_of(site, p.webhook_id)
  local did = h.id .. '.ping-' .. string.sub(fresh, 3, 14)
  local body = '{"id":' .. S(did) .. ',"type":"ping","created_at":' .. N(now) .. ',"site":' .. S(site) ..
    ',"conversation_id":null,"by":' .. S(event_by) .. ',"data":{"webhook":' .. S(h.id) .. '},"conversation":null}'
  wh_deliver(h, did, 'ping', body, now)
  audit_site(site, 'webhook.test', h.id, nil, {delivery = did})
  return reply(202, '{"delivery":' .. delivery_json(hgetall(whdkey(site, did))) .. '}')
end
-- send a delivery again, with the same id and body (attempts start over)
ops.admin_delivery_redeliver = function()
  local site = site_of(p.site_key)
  local d = type(p.delivery_id) == 'string' and hgetall(whdkey(site, p.delivery_id))
  if not d or d.site ~= site then return fail('not_found', 'no such delivery') end
  hook_of(site, d.webhook)
  local dkey = whdkey(site, d.id)
  redis.call('HSET', dkey, 'state', 'pending', 'attempts', '0', 'next_at', now)
  redis.call('EXPIRE', dkey, 7 * 86400)
  wh_due(site, d.id, now)
  audit_site(site, 'webhook.redeliver', d.webhook, {state = d.state}, {state = 'pending', delivery = d.id})
  return reply(202, '{"delivery":' .. delivery_json(hgetall(dkey)) .. '}')
end

return dispatch(ops)
