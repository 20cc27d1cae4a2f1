-- Part of events.lua: ev_mail(evs, now, rnd, dflt, delay_ms, nhist) queues the e-mail a
-- batch of events asks for (docs/email.md): an agent's public reply in a conversation whose
-- customer left an e-mail address (held delay_ms: mail_take.lua drops it when the customer
-- read it in the widget meanwhile, so a customer who is there gets no mail; not held in a
-- conversation a mail started, channel email), with the
-- conversation's last nhist messages quoted; and ticket.created, the customer told the
-- ticket's number, and a ticket resolved (both Auto-Submitted: auto-generated; the
-- latter held delay_ms + 5 s, so a reply sent just before it goes first). At most 10 mails
-- an hour go to one address (mail_rcpt_ok). It runs on the webhooks consumer's
-- events and cursor: a cursor of its own would start at 0-0 and mail every retained event
-- again after an upgrade. dflt is the node's default From address; '' (no smtp_url on the
-- node) queues nothing. rnd: fresh random text from the node (reply tokens, Message-IDs).
local MAIL_TEXT = {
  en = {
    ticket = '[Ticket #%s] %s',
    request = 'Your request',
    conv = 'Your conversation with %s',
    opened = 'Hello %s,\n\nthank you for contacting %s. We have received your request and opened ticket #%s.\n' ..
      'We will answer you by e-mail. To add anything, reply to this message.',
    resolved = 'Hello %s,\n\nyour ticket #%s has been resolved. If anything is still open, reply to this message ' ..
      'and the ticket opens again.',
    you = 'you',
    reply_hint = 'Reply to this e-mail to answer.',
    earlier = 'Earlier in this conversation:',
  },
  zh = {
    ticket = '[工单 #%s] %s',
    request = '您的请求',
    conv = '您与%s的对话',
    opened = '%s，您好：\n\n感谢您联系%s。我们已收到您的请求，并创建了工单 #%s。\n' ..
      '我们会通过电子邮件回复您。如需补充，请直接回复此邮件。',
    resolved = '%s，您好：\n\n您的工单 #%s 已解决。如仍有问题，请直接回复此邮件，工单将重新打开。',
    you = '您',
    reply_hint = '直接回复此邮件即可继续对话。',
    earlier = '此前的对话：',
  },
}
local function mail_lang(c) return string.sub(c.locale or '', 1, 2) == 'zh' and MAIL_TEXT.zh or MAIL_TEXT.en end
local function mail_subject(c, s, L)
  local subj = (c.subject and c.subject ~= '') and c.subject or nil
  if c.ticket_number and c.ticket_number ~= '' then return string.format(L.ticket, c.ticket_number, subj or L.request) end
  return subj or string.format(L.conv, s.name or s.key)
end
-- The conversation's last n public messages before seq, oldest first, quoted ("> name: line").
local function mail_quote(c, seq, n, L)
  if n <= 0 or seq <= 1 then return '' end
  local r = redis.call('XREVRANGE', ckey(c.id, c.site) .. ':msgs', '0-' .. (seq - 1), '-', 'COUNT', n * 3)
  local lines, taken = {}, 0
  for _, e in ipairs(r) do
    local f = {}
    for i = 1, #e[2], 2 do f[e[2][i]] = e[2][i + 1] end
    if f.priv ~= '1' and (f.ak == 'visitor' or f.ak == 'agent') and f.body and f.body ~= '' then
      local who = f.ak == 'visitor' and ((c.visitor_name and c.visitor_name ~= '') and c.visitor_name or L.you) or (f.an or '')
      local q = {}
      for line in string.gmatch(f.body .. '\n', '([^\n]*)\n') do table.insert(q, '> ' .. line) end
      table.insert(lines, 1, '> ' .. who .. ':\n' .. table.concat(q, '\n'))
      taken = taken + 1
      if taken >= n then break end
    end
  end
  if #lines == 0 then return '' end
  return '\n\n' .. L.earlier .. '\n\n' .. table.concat(lines, '\n>\n')
end
-- A mail to `to` may be queued: at most 10 an hour to one address (the offline form takes
-- any address a visitor types; this keeps the site from being used to flood a mailbox).
local function mail_rcpt_ok(site, to, now)
  local k = skey(site, 'mail:rcpt:' .. string.sub(redis.sha1hex(string.lower(to)), 1, 20) .. ':' ..
    I(math.floor(tonumber(now) / 3600000)))
  local n = redis.call('INCR', k)
  if n == 1 then redis.call('EXPIRE', k, 3600) end
  return n <= 10
end
local function ev_mail(evs, now, rnd, dflt, delay, nhist)
  if not dflt or dflt == '' then return end
  local s
  for _, e in ipairs(evs) do
    local ok, d = false, nil
    if (e.t == 'message.created' or e.t == 'ticket.created' or e.t == 'conversation.status_changed') and e.c and
      e.c ~= '' then
      ok, d = pcall(cjson.decode, e.d or '{}')
    end
    ok = ok and type(d) == 'table'
    local reply = ok and e.t == 'message.created' and type(d.author) == 'table' and d.author.kind == 'agent' and
      d.private ~= true and tonumber(d.seq)
    local ticket = ok and e.t == 'ticket.created' and d.number
    local resolved = ok and e.t == 'conversation.status_changed' and d.to == 'resolved'
    -- one HGET for the events that could mail; the conversation only when it has an address
    local to = (reply or ticket or resolved) and redis.call('HGET', ckey(e.c, e.s), 'visitor_email') or ''
    if string.find(to, '@', 1, true) and mail_rcpt_ok(e.s, to, now) then
      local c = hgetall(ckey(e.c, e.s))
      s = s or hgetall(sitekey(e.s)) or {}
      s.key = e.s
      local L = mail_lang(c)
      -- a conversation a mail started has no widget to read a reply in: no hold
      local hold = c.channel == 'email' and 0 or delay
      local vname = (c.visitor_name and c.visitor_name ~= '') and c.visitor_name or to
      if resolved then
        -- a ticket's only; held 5 s longer than a reply, so a reply sent just before goes first
        if c.ticket_number and c.ticket_number ~= '' then
          mail_queue(s, {kind = 'resolved', to = to, to_name = c.visitor_name, subject = mail_subject(c, s, L),
            text = string.format(L.resolved, vname, c.ticket_number), cid = c.id, token = mail_token(c, rnd),
            auto = '1'}, now, now + hold + 5000, rnd, dflt)
        end
      elseif ticket then
        local n = tostring(d.number)
        c.ticket_number = n
        mail_queue(s, {kind = 'ticket', to = to, to_name = c.visitor_name, subject = mail_subject(c, s, L),
          text = string.format(L.opened, vname, s.name or s.key, n), cid = c.id, token = mail_token(c, rnd),
          auto = '1'}, now, now, rnd, dflt)
      else
        local seq = tonumber(d.seq)
        local r = redis.call('XRANGE', ckey(c.id, c.site) .. ':msgs', '0-' .. seq, '0-' .. seq)
        local f = {}
        if #r == 1 then for i = 1, #r[1][2], 2 do f[r[1][2][i]] = r[1][2][i + 1] end end
        if f.body and f.body ~= '' and f.priv ~= '1' then
          local text = f.body .. '\n\n-- \n' .. (f.an or '') .. ', ' .. (s.name or s.key) .. '\n' .. L.reply_hint ..
            mail_quote(c, seq, nhist, L)
          mail_queue(s, {kind = 'reply', to = to, to_name = c.visitor_name, subject = 'Re: ' .. mail_subject(c, s, L),
            text = text, cid = c.id, seq = I(seq), token = mail_token(c, rnd), auto = '0'}, now, now + hold, rnd, dflt)
        end
      end
    end
  end
end
