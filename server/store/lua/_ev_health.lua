-- Part of events.lua, consumer "health": ev_health(evs, now) applies a batch: customer
-- health alerts (issue 8). On conversation.created with a category and a customer
-- identity (the visitor's verified user id, else the e-mail lower-cased; none: skipped),
-- the conversation's time goes into P{s:<site>}:health:<category>:<identity> (a zset of
-- conversation id -> created ms, entries older than the window dropped). When the
-- customer has opened more than health_threshold (site setting, default 3) conversations
-- of the category within health_window_days (default 30): the conversation is tagged
-- "repeat-contact", the site's admins get a `customer_health` notice (notify), and the
-- alert is kept in P{s:<site>}:alerts (newest first, last 200).
local function ev_health(evs, now)
  local TAG = 'repeat-contact'
  for _, e in ipairs(evs) do
    if e.t == 'conversation.created' and e.s ~= '' and e.c ~= '' then
      local ok, d = pcall(cjson.decode, e.d or '{}')
      if not ok or type(d) ~= 'table' then d = {} end
      local vis = type(d.visitor) == 'table' and d.visitor or {}
      local category = type(d.category) == 'string' and d.category or ''
      local ident, shown
      if type(vis.user_id) == 'string' and vis.user_id ~= '' then
        ident, shown = 'user:' .. vis.user_id, vis.user_id
      elseif type(vis.email) == 'string' and vis.email ~= '' then
        ident = 'email:' .. string.lower(vis.email)
        shown = string.lower(vis.email)
      end
      if category ~= '' and ident then
        local s = hgetall(sitekey(e.s)) or {}
        local n = tonumber(s.health_threshold or '') or 3
        local days = tonumber(s.health_window_days or '') or 30
        local window = days * 86400000
        local ts = tonumber(e.ts)
        local hkey = skey(e.s, 'health:' .. category .. ':' .. ident)
        redis.call('ZADD', hkey, ts, e.c)
        redis.call('ZREMRANGEBYSCORE', hkey, '-inf', '(' .. I(ts - window))
        redis.call('PEXPIRE', hkey, window)
        local count = redis.call('ZCOUNT', hkey, ts - window, '+inf')
        if count > n then
          local c = hgetall(ckey(e.c, e.s))
          if c then
            local tags = json_list(c.tags)
            local has = false
            for _, t in ipairs(tags) do if t == TAG then has = true end end
            if not has then
              table.insert(tags, TAG)
              do_update(c, '', '', '', '', cjson.encode(tags), now)
            end
          end
          local title = 'Repeat contact: ' .. shown .. ' opened ' .. I(count) .. ' "' .. category ..
            '" conversations in ' .. tostring(days) .. ' days'
          notify(site_admins(e.s), 'customer_health', e.s, e.c, title, nil, now)
          local alert = '{"id":' .. S(e.id) .. ',"kind":"customer_health","site":' .. S(e.s) .. ',"conversation_id":' ..
            S(e.c) .. ',"customer":' .. S(shown) .. ',"category":' .. S(category) .. ',"count":' .. I(count) ..
            ',"threshold":' .. I(n) .. ',"window_days":' .. tostring(days) .. ',"title":' .. S(title) .. ',"ts":' .. N(now) .. '}'
          local akey = skey(e.s, 'alerts')
          redis.call('LPUSH', akey, alert)
          redis.call('LTRIM', akey, 0, 199)
        end
      end
    end
  end
end
