-- Part of events.lua, consumer "webhooks": ev_webhooks(evs, now) applies a batch: every
-- event becomes one delivery per enabled webhook of its site subscribed to its type ("*":
-- all). A `rule.webhook` event (d {"rule", "webhook"}, emitted by the rules engine's
-- "call a webhook" action) goes to exactly that webhook, whatever it subscribes to.
-- Delivery id: <webhook id>.<event id>, so a receiver can dedupe retries and
-- redeliveries.
local function ev_webhooks(evs, now)
  local by_site = {}
  local function site_hooks(site)
    if by_site[site] then return by_site[site] end
    local out = {}
    for _, wid in ipairs(redis.call('SMEMBERS', skey(site, 'webhooks'))) do
      local h = hgetall(whkey(site, wid))
      if h and h.enabled ~= '0' then
        h.ev = {}
        for _, t in ipairs(json_list(h.events)) do h.ev[t] = true end
        table.insert(out, h)
      end
    end
    table.sort(out, function(a, b) return a.id < b.id end)
    by_site[site] = out
    return out
  end
  for _, e in ipairs(evs) do
    local targets = {}
    if e.t == 'rule.webhook' then
      local ok, d = pcall(cjson.decode, e.d or '{}')
      local wid = ok and type(d) == 'table' and d.webhook
      local h = type(wid) == 'string' and hgetall(whkey(e.s, wid))
      if h and h.site == e.s and h.enabled ~= '0' then table.insert(targets, h) end
    elseif e.s and e.s ~= '' then
      for _, h in ipairs(site_hooks(e.s)) do
        if h.ev['*'] or h.ev[e.t] then table.insert(targets, h) end
      end
    end
    if #targets > 0 then
      local cj = 'null'
      if e.c and e.c ~= '' then
        local c = hgetall(ckey(e.c, e.s))
        if c then cj = conv_json(c) end
      end
      local data = event_data(e)
      for _, h in ipairs(targets) do
        local did = h.id .. '.' .. e.id
        local body = '{"id":' .. S(did) .. ',"type":' .. S(e.t) .. ',"created_at":' .. N(e.ts) .. ',"site":' .. S(e.s) ..
          ',"conversation_id":' .. J(e.c) .. ',"by":' .. S(e.by) .. ',"data":' .. data ..
          ',"conversation":' .. cj .. '}'
        wh_deliver(h, did, e.t, body, now)
      end
    end
  end
end
