-- The HTTP API's e-mail section (docs/api.md "E-mail"); shared part in _api.lua. Keys,
-- all in the site's slot: P{s:<site>}:mails (zset of ids), :mail:<id> (hash), :mail:seq,
-- :mail:tests:<hour> (the test mails of an hour) (docs/keyspace.md "E-mail").
local ops = {}
local site_of = admin_site_key
-- The site's outbox, newest first (the last 50; a mail is kept 7 days).
ops.admin_mail_list = function()
  local site = site_of(p.site_key)
  local out = {}
  for _, id in ipairs(redis.call('ZREVRANGE', skey(site, 'mails'), 0, 49)) do
    local m = hgetall(mailkey(site, id))
    if m then table.insert(out, mail_json(m)) end
  end
  return reply(200, '{"mails":[' .. table.concat(out, ',') .. ']}')
end
-- A test mail to `to` (at most 10 a site per hour), sent as every mail is: queued now,
-- claimed by a node, retried. node_from: the node's default From address (api/mail.c).
ops.admin_mail_test = function()
  local site = site_of(p.site_key)
  if p.node_smtp ~= true then return fail('bad_request', 'this node sends no mail: set smtp_url and mail_from (docs/email.md)') end
  local to = mail_addr_of(p.to, 'to')
  local tk = skey(site, 'mail:tests:' .. I(math.floor(tonumber(now) / 3600000)))
  if redis.call('INCR', tk) > 10 then return fail('rate_limited', 'at most 10 test mails an hour') end
  redis.call('EXPIRE', tk, 3600)
  local s = hgetall(sitekey(site)) or {}
  s.key = site
  local name = s.name or site
  local id = mail_queue(s, {kind = 'test', to = to, subject = 'chatdesk test mail · 测试邮件 (' .. name .. ')',
    text = 'This is a test mail from chatdesk for ' .. name .. '. Your outgoing mail settings work.\n\n' ..
      '这是 chatdesk 为「' .. name .. '」发送的测试邮件。您的发信设置可以正常使用。', auto = '1'},
    now, now, fresh, type(p.node_from) == 'string' and p.node_from or '')
  audit_site(site, 'mail.test', id, nil, {to = to})
  return reply(202, '{"mail":' .. mail_json(hgetall(mailkey(site, id))) .. '}')
end

return dispatch(ops)
