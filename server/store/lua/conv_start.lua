-- ARGV: P, site, vid, cid, epoch, now, name, email, category, priority, subject, message, msg_id, cmid, retain,
--       ack_msg_id, locale, intervals (the site's business calendar), ticket msg id,
--       profile (JSON object the node kept from an anonymous visitor's hello, or ''),
--       the form's attachments (space-separated ids of the visitor's uploads, or ''),
--       the channel ('' chat; 'email': a conversation a mail started, `chatdeskd mail-in`:
--       a ticket at once, conversation field channel), and with 'email' the mail's
--       Message-ID ('' none: it joins the mail thread and P{s:<site>}:mailin:<id> in this
--       step, so the ticket mail answers it and a redelivery is a duplicate; mail_in.lua)
local site, vid, cid, epoch, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local name, email, category, priority, subject, message = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local msg_id, cmid, retain, ack_id, locale = ARGV[13], ARGV[14], tonumber(ARGV[15]), ARGV[16], ARGV[17]
local iv, ticket_msg_id = iv_parse(ARGV[18]), ARGV[19]
local channel = ARGV[22] or ''
event_by = 'visitor:' .. vid
local s = hgetall(sitekey(site))
if not s then return fail('not_found', 'unknown site') end
local vkey = vkey(site, vid)
local v = hgetall(vkey)
if v and v.site ~= site then return fail('forbidden', 'unknown visitor') end
if not v then
  -- an anonymous visitor's first conversation: its record is written now, from the
  -- profile its hello gave (the node kept it; the id is the one its signed token carries)
  local ok, pr = pcall(cjson.decode, ARGV[20] or '')
  if not ok or type(pr) ~= 'table' then pr = {} end
  v = {id = vid, site = site, created_at = now, user_id = '', last_seen_at = now}
  for _, f in ipairs({'name', 'email', 'page_url', 'page_title', 'referrer', 'attributes'}) do
    if type(pr[f]) == 'string' and pr[f] ~= '' then v[f] = pr[f] end
  end
  local flat = {}
  for k, x in pairs(v) do table.insert(flat, k) table.insert(flat, x) end
  redis.call('HSET', vkey, unpack(flat))
end
-- a retried start (same visitor, same client_msg_id) gets the same conversation back
if cmid ~= '' then
  local prev = redis.call('HGET', vkey .. ':starts', cmid)
  if prev then
    local pc = hgetall(ckey(prev))
    if pc then
      local first = redis.call('XRANGE', ckey(prev) .. ':msgs', '0-1', '0-1')
      local pm, _ = 'null', nil
      if #first == 1 and first[1][2][6] == 'visitor' then pm, _ = msg_json('1', first[1][2]) end
      return '{"conversation":' .. conv_json(pc) .. ',"message":' .. pm .. ',"duplicate":true}'
    end
  end
end
local key = ckey(cid)
if redis.call('EXISTS', key) == 1 then return fail('conflict', 'conversation exists') end
-- the form's attachments are checked before anything is written (a refusal leaves no trace)
local files, att = check_files({id = cid, site = site}, ARGV[21] or '', 'visitor', vid)
if not files then return att end
if cmid ~= '' then redis.call('HSET', vkey .. ':starts', cmid, cid) end
if name ~= '' then redis.call('HSET', vkey, 'name', name) v.name = name end
if email ~= '' then redis.call('HSET', vkey, 'email', email) v.email = email end
if priority == '' then priority = 'normal' end
-- the site's category -> team map routes the conversation
local team = ''
if category ~= '' and s.category_teams and s.category_teams ~= '' then
  local ok, map = pcall(cjson.decode, s.category_teams)
  if ok and type(map) == 'table' and type(map[category]) == 'string' then team = map[category] end
end
local c = {id = cid, site = site, status = 'queued', priority = priority, category = category, subject = subject,
  tags = '[]', visitor = vid, visitor_name = v.name or '', visitor_email = v.email or '', created_at = now,
  updated_at = now, last_seq = '0', epoch = epoch, assignee = '', assignee_name = '', team = team,
  locale = locale}
-- The hash's field order is fixed, hot fields first (docs/keyspace.md "Conversation"): a
-- small hash is a listpack, scanned field by field, so msg_send's HMGET of its nine
-- fields and HSET of last_seq and updated_at find them in the first ten, and the fields
-- it reads exist from the start (empty), so a lookup never scans the whole hash in vain.
redis.call('HSET', key, 'site', site, 'status', c.status, 'visitor', vid, 'visitor_name', c.visitor_name,
  'first_response_at', '', 'awaiting_reply_since', '', 'ticket_number', '', 'last_seq', '0', 'assignee', '',
  'updated_at', now, 'id', cid, 'priority', priority, 'category', category, 'subject', subject, 'tags', '[]',
  'visitor_email', c.visitor_email, 'created_at', now, 'epoch', epoch, 'assignee_name', '', 'team', team,
  'locale', locale)
if channel ~= '' then
  redis.call('HSET', key, 'channel', channel)
  c.channel = channel
  local mid = ARGV[23] or ''
  if channel == 'email' and mid ~= '' then
    redis.call('SET', skey(site, 'mailin:' .. mid), cid, 'EX', 30 * 86400)
    redis.call('RPUSH', key .. ':mail', mid)
  end
end
redis.call('ZADD', vkey .. ':convs', now, cid)
redis.call('ZADD', skey(site, 'convs'), now, cid)
emit('conversation.created', c, now, '{"category":' .. J(category) .. ',"priority":' .. S(priority) .. ',"team":' ..
  J(team) .. ',"subject":' .. J(subject) .. ',"locale":' .. J(locale) .. ',"visitor":{"id":' .. S(vid) .. ',"name":' ..
  J(v.name) .. ',"email":' .. J(v.email) .. ',"user_id":' .. J(v.user_id) .. ',"attributes":' ..
  ((v.attributes and v.attributes ~= '') and v.attributes or '{}') .. '}}')
enqueue(c, now)
local mj = 'null'
if message ~= '' or att ~= '' then
  local seq = append_msg(c, msg_id, cmid, 'visitor', vid, c.visitor_name, message, '0', now, retain, nil, att)
  take_files(c, files, I(seq), '0')
  mj = msg_json(I(seq), {'id', msg_id, 'cmid', cmid, 'ak', 'visitor', 'aid', vid, 'an', c.visitor_name, 'body', message,
    'priv', '0', 'ts', now, 'att', att})
end
local cj = conv_json(c)
pub('site:' .. site, 0, 'a', '-', '{"type":"conversation.queued","conversation":' .. cj .. '}')
pub('visitor:' .. vid, 0, '*', '-', '{"type":"conversation.updated","conversation":' .. cj .. '}')
drain(site, team, now)
-- Auto-acknowledgement: a system message at once, with the queue position when waiting.
local zh = string.sub(locale, 1, 2) == 'zh'
local ack = (zh and s.ack_text_zh or s.ack_text_en) or ''
if ack == '' then
  ack = zh and '您好，您的消息已收到，客服将尽快为您服务。' or 'Thanks for your message! We have received it and an agent will be with you shortly.'
end
c.status = redis.call('HGET', key, 'status')
local qj = 'null'
if c.status == 'queued' then
  local pos = redis.call('ZRANK', qkey(site, team), cid)
  if pos then
    local size = redis.call('ZCARD', qkey(site, team))
    local agents = online_agents(site, team)
    local avg = tonumber(s.avg_wait_ms or '0')
    if avg <= 0 then avg = 60000 end
    qj = '{"position":' .. I(pos + 1) .. ',"size":' .. I(size) .. ',"estimated_wait_ms":' ..
      (agents > 0 and I(math.floor(avg * (pos + 1) / agents)) or 'null') .. '}'
    ack = ack .. (zh and ('您当前排在第 ' .. I(pos + 1) .. ' 位。') or (' You are number ' .. I(pos + 1) .. ' in the queue.'))
  end
  queue_changed(site, team)
end
append_msg(c, ack_id, '', 'system', 'system', s.name or '', ack, '0', now, retain)
-- Unanswered chats become tickets: at once when nobody of the team is online (the
-- offline form) or when a mail started it, else when no agent has replied after the
-- site's unanswered_after_s.
c = hgetall(key)
if online_agents(site, team) == 0 or channel == 'email' then
  ticket_create(c, now, iv, ticket_msg_id, retain)
else
  local after = tonumber(s.unanswered_after_s or '120') or 120
  if after > 0 then timer_set(site, 'unanswered', site .. '|' .. cid, tonumber(now) + after * 1000) end
end
c = hgetall(key)
return '{"conversation":' .. conv_json(c) .. ',"message":' .. mj .. ',"queue":' .. qj .. '}'
