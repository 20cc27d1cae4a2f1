-- KEYS: P{s:<site>}:site. ARGV: P, now, mode, ...
-- Inbound mail of one site (`chatdeskd mail-in`, server/admin/mailin.c; docs/email.md
-- "Inbound"), around the calls that store it (msg_send.lua into a conversation the mail
-- threads to, conv_start.lua for a new one), each step safe to run again:
--   find <from> <Message-ID> <refs> <token> <automatic 1/0>: what to do with the mail.
--     {"duplicate":cid} (this Message-ID was stored already), {"ignored":reason}
--     ("automatic": sent by a machine; "ours": one of our own Message-IDs came back;
--     "rate": more than 20 mails of the sender this hour), {"thread":cid,"visitor":vid}
--     (the reply token of a conversation of this site, else an In-Reply-To/References
--     id of its mail thread when the sender is the conversation's customer; a closed
--     conversation takes no mail), or {"new":true,"visitor":vid} (the sender's visitor id
--     in this site: "vm_" and 20 hex of the address, the same for every mail of theirs).
--   mark <Message-ID> <cid>: the mail is stored in a conversation (a new one's
--     conv_start.lua marks in its own step): P{s:<site>}:mailin:<Message-ID> -> cid
--     (30 days: a redelivery is a duplicate) and the id joins the conversation's mail
--     thread (our reply then answers it).
--   aside <why> <the mail's first 64 KiB>: a mail that could not be read is kept aside
--     in P{s:<site>}:mailin:bad (JSON {ts, why, raw}, newest first, the last 20).
local now, mode = tonumber(ARGV[2]), ARGV[3]
local site = CSITE
if not hgetall(KEYS[1]) then return fail('not_found', 'unknown site') end
local function conv_of(cid)
  if type(cid) ~= 'string' or cid_site(cid) ~= site then return nil end
  local c = hgetall(ckey(cid, site))
  if not c or c.status == 'closed' then return nil end
  return c
end
if mode == 'find' then
  local from, mid, refs, token, auto = string.lower(ARGV[4]), ARGV[5], ARGV[6], ARGV[7], ARGV[8] == '1'
  if mid ~= '' then
    local had = redis.call('GET', skey(site, 'mailin:' .. mid))
    if had then return '{"duplicate":' .. S(had) .. '}' end
    if redis.call('EXISTS', skey(site, 'mailmid:' .. mid)) == 1 then return '{"ignored":"ours"}' end
  end
  if auto then return '{"ignored":"automatic"}' end
  local rk = skey(site, 'mailin:rate:' .. string.sub(redis.sha1hex(from), 1, 20) .. ':' .. I(math.floor(now / 3600000)))
  local n = redis.call('INCR', rk)
  if n == 1 then redis.call('EXPIRE', rk, 3600) end
  if n > 20 then return '{"ignored":"rate"}' end
  local c
  if token ~= '' then c = conv_of(redis.call('GET', skey(site, 'mailtok:' .. token))) end
  if not c then
    for id in string.gmatch(refs, '%S+') do
      local x = conv_of(redis.call('GET', skey(site, 'mailmid:' .. id)) or redis.call('GET', skey(site, 'mailin:' .. id)))
      if x and string.lower(x.visitor_email or '') == from then
        c = x
        break
      end
    end
  end
  if c then return '{"thread":' .. S(c.id) .. ',"visitor":' .. S(c.visitor) .. '}' end
  return '{"new":true,"visitor":' .. S('vm_' .. string.sub(redis.sha1hex(site .. '|' .. from), 1, 20)) .. '}'
end
if mode == 'mark' then
  local mid, cid = ARGV[4], ARGV[5]
  if mid ~= '' and cid_site(cid) == site then
    redis.call('SET', skey(site, 'mailin:' .. mid), cid, 'EX', 30 * 86400)
    local tk = ckey(cid, site) .. ':mail'
    redis.call('RPUSH', tk, mid)
    redis.call('LTRIM', tk, -20, -1)
  end
  return '{"ok":true}'
end
if mode == 'aside' then
  local k = skey(site, 'mailin:bad')
  redis.call('LPUSH', k, '{"ts":' .. I(now) .. ',"why":' .. S(ARGV[4]) .. ',"raw":' .. S(string.sub(ARGV[5], 1, 65536)) .. '}')
  redis.call('LTRIM', k, 0, 19)
  return '{"ok":true}'
end
return fail('bad_request', 'unknown mode')
