-- KEYS: the conversation of each message (one site: a batch is of one slot).
-- ARGV: P, then 13 values per message: cid, author kind, author id, author name,
--       client_msg_id, body, private (0/1), msg_id, now, retain, the agent's sites
--       (" s1 s2 ", from its verified session; '' for a visitor), the site's business
--       intervals (a ticket's SLA clocks follow the message in this same call; '' when the
--       node does not know them: the reply then says "sla":true), the ids of its
--       attachments (space-separated uploads of the author, check_files; '' for none).
-- A batch: the node sends the messages of one site that one loop pass received in one
-- call (server/store/store.c "batched calls"), in the order they arrived, so messages of
-- one conversation get consecutive seqs in that order, a retry later in the batch finds
-- the earlier copy, and one message's failure (even a runtime error) is only its own.
-- The hot path (docs/performance.md): one HMGET of the fields it needs (first in the hash,
-- conv_start.lua), no JSON built
-- here for a new message (the node writes the ok and the hub the message.created frame
-- from the compact bus form, pub_msg). Reply: an array with one JSON string per message:
-- {"seq","site","name","sla"[,"attachments"]} for a new message; {"message","duplicate":true} for a
-- retry; {"err",…} for a failure.
-- key: the conversation's key as the node declared it (KEYS; cd_key_conv builds it from
-- cid as ckey does here).
-- Dedupe generations of DD_GEN seqs each (docs/keyspace.md, the window's bound in
-- docs/performance.md "The dedupe window"): a retry is recognised while its message is
-- among the conversation's last 128 to 256. Each generation is a small hash (a listpack
-- that HGET and HSETNX scan); 64 would halve that cost but not the time a partitioned
-- node's late commands need (F6 stored copies twice with 64).
local DD = {[0] = ':dd0', [1] = ':dd1'}
local DD_GEN = 128
-- The reply to a retry: the message stored first (seq dup), or a conflict once trimmed.
local function duplicate(cid, dup)
  local mj = stored_msg_json(cid, dup)
  if mj then return '{"message":' .. mj .. ',"duplicate":true}' end
  return fail('conflict', 'message ' .. dup .. ' was trimmed from history')
end
local function send_one(key, cid, ak, aid, an, cmid, body, priv, msg_id, now, retain, my_sites, intervals, att_ids)
  local f = redis.call('HMGET', key, 'site', 'status', 'visitor', 'visitor_name', 'first_response_at',
    'awaiting_reply_since', 'ticket_number', 'last_seq', 'assignee')
  if not f[1] then return fail('not_found', 'no such conversation') end
  local c = {id = cid, key = key, site = f[1], status = f[2], visitor = f[3], visitor_name = f[4], first_response_at = f[5],
    awaiting_reply_since = f[6], ticket_number = f[7], last_seq = f[8], assignee = f[9]}
  if ak == 'visitor' then
    if c.visitor ~= aid then return fail('not_found', 'no such conversation') end
    if priv == '1' then return fail('forbidden', 'only agents write private notes') end
    if an == '' then an = c.visitor_name or '' end
  elseif ak ~= 'agent' or not string.find(my_sites, ' ' .. c.site .. ' ', 1, true) then
    return fail('not_found', 'no such conversation')
  end
  -- Idempotency: a retry of a stored send gets the same message back. The dedupe entries
  -- live in two generations of DD_GEN seqs (keys :dd0 / :dd1): a retry is recognised while
  -- its message is among the conversation's last 128 to 256, and nothing grows per message.
  local seq = (tonumber(c.last_seq) or 0) + 1
  local gen = math.floor(seq / DD_GEN) % 2
  local cur, prev = key .. DD[gen], key .. DD[1 - gen] -- (no number formatting)
  local dk = ak .. ':' .. aid .. ':' .. cmid
  local dup = redis.call('HGET', prev, dk)
  if dup then return duplicate(cid, dup) end
  if c.status == 'closed' then
    dup = redis.call('HGET', cur, dk)
    if dup then return duplicate(cid, dup) end
    return fail('conflict', 'conversation is closed')
  end
  -- The site setting only_assignee_reply (collision detection, docs/dashboard.md): a reply
  -- from an agent who is not the assignee is refused (notes are not); the agent takes the
  -- conversation over first (conversation.transfer to itself). A retry of a reply stored
  -- before still gets its message.
  if ak == 'agent' and priv == '0' and c.assignee ~= aid and
      redis.call('HGET', sitekey(c.site), 'only_assignee_reply') == '1' then
    dup = redis.call('HGET', cur, dk)
    if dup then return duplicate(cid, dup) end
    return fail('forbidden', 'only the assignee may reply on this site: take the conversation over first')
  end
  if seq % DD_GEN == 0 then redis.call('DEL', cur) end -- a new generation: the one from two ago goes
  local att = ''
  if att_ids == '' then
    if redis.call('HSETNX', cur, dk, I(seq)) == 0 then return duplicate(cid, redis.call('HGET', cur, dk)) end
  else
    -- with attachments, the retry check comes first and the files are checked before
    -- anything is written: a refusal leaves no trace
    local dup_now = redis.call('HGET', cur, dk)
    if dup_now then return duplicate(cid, dup_now) end
    local recs
    recs, att = check_files(c, att_ids, ak, aid)
    if not recs then return att end
    take_files(c, recs, I(seq), priv)
    redis.call('HSET', cur, dk, I(seq))
  end
  local extra = {'updated_at', now}
  local from = c.status
  local sla = false
  if ak == 'agent' and priv == '0' then
    if not c.first_response_at or c.first_response_at == '' then
      c.first_response_at = now
      table.insert(extra, 'first_response_at') table.insert(extra, now)
      timer_clear(c.site, 'unanswered', c.site .. '|' .. cid)
      sla = true
    end
    if c.awaiting_reply_since and c.awaiting_reply_since ~= '' then
      table.insert(extra, 'awaiting_reply_since') table.insert(extra, '')
      sla = true
    end
    if c.status == 'open' then c.status = 'pending' end
  elseif ak == 'visitor' then
    if not c.awaiting_reply_since or c.awaiting_reply_since == '' then
      table.insert(extra, 'awaiting_reply_since') table.insert(extra, now)
      sla = true
    end
    if c.status == 'pending' or c.status == 'resolved' then
      -- the customer replied: back to open; a resolved chat returns to its agent's load
      if c.status == 'resolved' then
        timer_clear(c.site, 'autoclose', cid)
        if c.assignee and c.assignee ~= '' then
          load_add(c.site, c.assignee, cid)
          redis.call('SADD', aconvs(c.site, c.assignee), cid)
        end
      end
      c.status = 'open'
    end
  end
  local changed = c.status ~= from
  if changed then table.insert(extra, 'status') table.insert(extra, c.status) end
  append_msg(c, msg_id, cmid, ak, aid, an, body, priv, now, retain, extra, att)
  if ak == 'agent' and priv == '1' then mention(c, aid, an, body, now) end
  if changed then emit('conversation.status_changed', c, now, '{"from":' .. S(from) .. ',"to":' .. S(c.status) .. '}') end
  local is_ticket = c.ticket_number and c.ticket_number ~= ''
  local sla_left = is_ticket and (sla or changed) or false
  local update = changed or sla and c.first_response_at == now
  local full -- the whole conversation, read only when needed (and then once)
  if sla_left and (intervals or '') ~= '' then
    -- a ticket's SLA clocks follow its state (pause while pending, next response) in this
    -- same atomic step (ARCHITECTURE invariant 3), not in a second call
    full = hgetall(key)
    if full and sla_sync(full, iv_parse(intervals), now) then update = true end
    sla_left = false
  end
  if update then
    -- conversation.updated needs the whole conversation: read it only when it changed
    full = full or hgetall(key)
    if full then conv_updated(full, true) end
  end
  return '{"seq":' .. I(seq) .. ',"site":' .. S(c.site) .. ',"name":' .. S(an) .. ',"sla":' .. tostring(sla_left) ..
    (att ~= '' and (',"attachments":' .. att) or '') .. '}'
end
local out = {}
for b = 1, #ARGV - 13, 13 do
  local ak, aid = ARGV[b + 2], ARGV[b + 3]
  event_by = ak .. ':' .. aid
  local ok, r = pcall(send_one, KEYS[(b + 12) / 13], ARGV[b + 1], ak, aid, ARGV[b + 4], ARGV[b + 5], ARGV[b + 6], ARGV[b + 7],
    ARGV[b + 8], ARGV[b + 9], ARGV[b + 10], ARGV[b + 11] or '', ARGV[b + 12], ARGV[b + 13])
  if not ok then
    -- a runtime error of this message only: the node logs it as internal
    r = '{"err":"internal","message":' .. S(type(r) == 'table' and (r.err or '?') or tostring(r)) .. '}'
  end
  out[#out + 1] = r
end
return out
