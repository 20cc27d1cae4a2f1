-- ARGV: P, cid, visitor id, score, comment, now, nps ('' = not asked), ces ('' = not asked)
local cid, vid, score, comment, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local nps, ces = ARGV[7] or '', ARGV[8] or ''
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'visitor', vid) then return fail('not_found', 'no such conversation') end
if c.status ~= 'resolved' and c.status ~= 'closed' then
  return fail('conflict', 'rate a conversation once it is resolved or closed')
end
c.csat_score, c.csat_comment, c.updated_at = score, comment, now
redis.call('HSET', key, 'csat_score', score, 'csat_comment', comment, 'csat_at', now, 'updated_at', now,
  'csat_nps', nps, 'csat_ces', ces)
event_by = 'visitor:' .. vid
emit('csat.submitted', c, now, '{"score":' .. N(score) .. ',"comment":' .. J(comment) .. ',"nps":' .. N(nps) ..
  ',"ces":' .. N(ces) .. '}')
conv_updated(c, true)
return '{"conversation":' .. conv_json(c) .. '}'
