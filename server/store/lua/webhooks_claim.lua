-- KEYS: P{s:<site>}:webhooks:due. ARGV: P, now, lease (ms), max
-- Claims due webhook deliveries of one site for one node (webhook/webhook.c, which
-- claims per site of its site cache, in the site's slot): each gets its attempt
-- counted and its due time moved to now + lease, so a delivery whose node died before
-- recording the outcome is claimed again (at-least-once, same delivery id).
-- Returns {"deliveries":[{"id","attempt","url","secret","event","body"}],"next":<ms>}: next
-- is when the site's earliest delivery (or lease) is due, absent when none is left; the
-- node claims the site again then, or on a "W <site> <due>" notice (wh_due).
local now, lease, max = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local site = CSITE
local due = skey(site, 'webhooks:due')
local out = {}
for _, did in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, max)) do
  local dkey = whdkey(site, did)
  local d = hgetall(dkey)
  if not d or d.state ~= 'pending' then
    redis.call('ZREM', due, did)
  else
    local h = hgetall(whkey(site, d.webhook))
    if not h or (h.enabled == '0' and d.event ~= 'ping') then
      redis.call('ZREM', due, did)
      redis.call('HSET', dkey, 'state', 'failed', 'last_error', h and 'webhook disabled' or 'webhook deleted')
    else
      local n = redis.call('HINCRBY', dkey, 'attempts', 1)
      redis.call('ZADD', due, now + lease, did)
      table.insert(out, '{"id":' .. S(did) .. ',"attempt":' .. I(n) .. ',"url":' .. S(h.url) .. ',"secret":' ..
        S(h.secret) .. ',"event":' .. S(d.event) .. ',"body":' .. S(d.body) .. '}')
    end
  end
end
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
return '{"deliveries":[' .. table.concat(out, ',') .. ']' ..
  (first[2] and (',"next":' .. string.format('%d', tonumber(first[2]))) or '') .. '}'
