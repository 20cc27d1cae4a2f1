-- ARGV: P, cid, author kind, author id, author name, client_msg_id, body, private (0/1), msg_id, now, retain
local cid, ak, aid, an, cmid, body, priv = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local msg_id, now, retain = ARGV[9], ARGV[10], tonumber(ARGV[11])
event_by = ak .. ':' .. aid
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, ak, aid) then return fail('forbidden', 'not your conversation') end
if ak == 'visitor' and an == '' then an = c.visitor_name or '' end
if priv == '1' and ak ~= 'agent' then return fail('forbidden', 'only agents write private notes') end
-- Idempotency first: a retry of an acknowledged send gets the same message back.
local dup = redis.call('HGET', key .. ':dedupe', ak .. ':' .. aid .. ':' .. cmid)
if dup then
  local r = redis.call('XRANGE', key .. ':msgs', '0-' .. dup, '0-' .. dup)
  if #r == 1 then
    local mj = msg_json(dup, r[1][2])
    return '{"message":' .. mj .. ',"duplicate":true}'
  end
  return fail('conflict', 'message ' .. dup .. ' was trimmed from history')
end
if c.status == 'closed' then return fail('conflict', 'conversation is closed') end
local seq, mj = append_msg(c, msg_id, cmid, ak, aid, an, body, priv, now, retain)
local changed = false
local sla = false
c.updated_at = now
if ak == 'agent' and priv == '0' then
  if not c.first_response_at or c.first_response_at == '' then
    c.first_response_at = now
    redis.call('HSET', key, 'first_response_at', now)
    timer_clear('unanswered', c.site .. '|' .. cid)
    changed, sla = true, true
  end
  if c.awaiting_reply_since and c.awaiting_reply_since ~= '' then
    redis.call('HSET', key, 'awaiting_reply_since', '')
    sla = true
  end
  if c.status == 'open' then
    emit('conversation.status_changed', c, now, '{"from":"open","to":"pending"}')
    c.status = 'pending'
    changed = true
  end
elseif ak == 'visitor' then
  if not c.awaiting_reply_since or c.awaiting_reply_since == '' then
    redis.call('HSET', key, 'awaiting_reply_since', now)
    sla = true
  end
  if c.status == 'pending' or c.status == 'resolved' then
    -- the customer replied: back to open; a resolved chat returns to its agent's load
    if c.status == 'resolved' then
      timer_clear('autoclose', cid)
      if c.assignee and c.assignee ~= '' then
        redis.call('SADD', P .. 'agent:' .. c.assignee .. ':active', cid)
        redis.call('SADD', P .. 'agent:' .. c.assignee .. ':convs', cid)
      end
    end
    emit('conversation.status_changed', c, now, '{"from":' .. S(c.status) .. ',"to":"open"}')
    c.status = 'open'
    changed = true
  end
end
redis.call('HSET', key, 'status', c.status, 'updated_at', now)
if changed then conv_updated(c, true) end
local is_ticket = c.ticket_number and c.ticket_number ~= ''
return '{"message":' .. mj .. ',"duplicate":false,"sla":' .. tostring(is_ticket and (sla or changed) or false) ..
  ',"site":' .. S(c.site) .. '}'
