-- ARGV: P, cid, now, intervals, system message id, retain
-- Timer handler "unanswered|<site>|<cid>": a chat nobody answered in time becomes a
-- ticket. Idempotent: once, even with several nodes racing.
local cid, now, iv, msg_id, retain = ARGV[2], ARGV[3], iv_parse(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local c = hgetall(ckey(cid))
if not c then return '{"converted":false}' end
redis.call('ZREM', skey(c.site, 'timers:leased'), 'unanswered|' .. c.site .. '|' .. cid)
if c.status == 'closed' or (c.ticket_number and c.ticket_number ~= '') or
   (c.first_response_at and c.first_response_at ~= '') then
  return '{"converted":false}'
end
ticket_create(c, now, iv, msg_id, retain)
return '{"converted":true,"conversation":' .. conv_json(c) .. '}'
