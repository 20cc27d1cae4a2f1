-- ARGV: P, cid, reader kind, reader id, reader name, seq
local cid, kind, who, name, seq = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, kind, who) then return fail('not_found', 'no such conversation') end
if kind == 'visitor' and name == '' then name = c.visitor_name or '' end
local last = tonumber(c.last_seq or '0')
if seq > last then seq = last end
local rkey = kind .. ':' .. who
local prev = tonumber(redis.call('HGET', key .. ':reads', rkey) or '0')
if seq > prev then
  redis.call('HSET', key .. ':reads', rkey, I(seq))
  pub('conv:' .. cid, 0, '*', '-', '{"type":"read","conversation_id":' .. S(cid) ..
    ',"author":{"kind":' .. S(kind) .. ',"id":' .. S(who) .. ',"name":' .. J(name) .. '},"seq":' .. I(seq) .. '}')
else
  seq = prev
end
return '{"seq":' .. I(seq) .. '}'
