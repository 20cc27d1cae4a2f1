-- ARGV: P, cid, now, intervals. Re-aligns a ticket's SLA clocks with its state after a
-- status change or a message (pause while pending, resume, next response).
local cid, now, iv = ARGV[2], ARGV[3], iv_parse(ARGV[4])
local c = hgetall(ckey(cid))
if not c then return '{"changed":false}' end
if sla_sync(c, iv, now) then
  conv_updated(c, true)
  return '{"changed":true}'
end
return '{"changed":false}'
