-- KEYS: P{s:<site>}:mail:<id>. ARGV: P, now, id, lease (ms)
-- Timer handler of "mail|<id>" (server/mail/outbox.c), before the SMTP transaction: a mail
-- that is no longer pending loses its timer; an agent's reply the customer has read in the
-- widget since it was queued is not sent ("skipped"); otherwise its attempt is counted,
-- the timer's lease is stretched over the whole transaction, and the mail comes back with
-- what its headers need. Threading is fixed at the first attempt: In-Reply-To is the
-- conversation's last mail, References its last ten (P{s:<site>}:conv:<cid>:mail, the
-- thread's Message-IDs, oldest first, the last 20), and the mail joins the thread and
-- the index P{s:<site>}:mailmid:<Message-ID> -> cid (for replies that lost the token).
-- A retry sends the same headers. Returns {"send":false} or {"send":true,"attempt",…}.
local now, id, lease = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local site = CSITE
local k = KEYS[1]
local m = hgetall(k)
if not m or m.state ~= 'pending' then
  timer_clear(site, 'mail', id)
  return '{"send":false}'
end
local c = (m.cid ~= '') and hgetall(ckey(m.cid, site)) or nil
if m.kind == 'reply' and c then
  local read = tonumber(redis.call('HGET', ckey(c.id, site) .. ':reads', 'visitor:' .. (c.visitor or '')) or '0')
  if read >= (tonumber(m.seq) or 0) then
    redis.call('HSET', k, 'state', 'skipped', 'last_error', 'read in the widget', 'updated_at', now)
    timer_clear(site, 'mail', id)
    return '{"send":false}'
  end
end
if not m.in_reply_to then
  m.in_reply_to, m.references = '', ''
  if c then
    local tk = ckey(c.id, site) .. ':mail'
    local ids = redis.call('LRANGE', tk, -10, -1)
    if #ids > 0 then m.in_reply_to, m.references = ids[#ids], table.concat(ids, ' ') end
    redis.call('RPUSH', tk, m.message_id)
    redis.call('LTRIM', tk, -20, -1)
    redis.call('SET', skey(site, 'mailmid:' .. m.message_id), c.id, 'EX', 180 * 86400)
  end
  redis.call('HSET', k, 'in_reply_to', m.in_reply_to, 'references', m.references)
end
local n = redis.call('HINCRBY', k, 'attempts', 1)
redis.call('ZADD', skey(site, 'timers:leased'), now + lease, 'mail|' .. id)
local s = hgetall(sitekey(site)) or {}
return '{"send":true,"attempt":' .. I(n) .. ',"to":' .. S(m.to) .. ',"to_name":' .. S(m.to_name) .. ',"subject":' ..
  S(m.subject) .. ',"text":' .. S(m.text) .. ',"message_id":' .. S(m.message_id) .. ',"in_reply_to":' ..
  S(m.in_reply_to) .. ',"references":' .. S(m.references) .. ',"auto":' .. tostring(m.auto == '1') .. ',"token":' ..
  S(m.token) .. ',"created_at":' .. N(m.created_at) .. ',"site_name":' .. S(s.name) .. ',"from":' .. S(s.mail_from) ..
  ',"from_name":' .. S(s.mail_from_name) .. ',"reply":' .. S(s.mail_reply) .. '}'
