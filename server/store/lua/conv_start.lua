-- ARGV: P, site, vid, cid, epoch, now, name, email, category, priority, subject, message, msg_id, cmid, retain
local site, vid, cid, epoch, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local name, email, category, priority, subject, message = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local msg_id, cmid, retain = ARGV[13], ARGV[14], tonumber(ARGV[15])
local vkey = P .. 'visitor:' .. vid
local v = hgetall(vkey)
if not v or v.site ~= site then return fail('forbidden', 'unknown visitor') end
if name ~= '' then redis.call('HSET', vkey, 'name', name) v.name = name end
if email ~= '' then redis.call('HSET', vkey, 'email', email) v.email = email end
if priority == '' then priority = 'normal' end
local key = ckey(cid)
if redis.call('EXISTS', key) == 1 then return fail('conflict', 'conversation exists') end
local c = {id = cid, site = site, status = 'queued', priority = priority, category = category, subject = subject,
  tags = '[]', visitor = vid, visitor_name = v.name or '', visitor_email = v.email or '', created_at = now,
  updated_at = now, last_seq = '0', epoch = epoch, assignee = '', assignee_name = '', team = ''}
local flat = {}
for k, val in pairs(c) do table.insert(flat, k) table.insert(flat, val) end
redis.call('HSET', key, unpack(flat))
redis.call('ZADD', vkey .. ':convs', now, cid)
redis.call('ZADD', P .. 'site:' .. site .. ':convs', now, cid)
redis.call('ZADD', P .. 'site:' .. site .. ':queue', queue_score(priority, now), cid)
local mj = 'null'
if message ~= '' then
  local _
  _, mj = append_msg(c, msg_id, cmid, 'visitor', vid, c.visitor_name, message, '0', now, retain)
end
local cj = conv_json(c)
pub('site:' .. site, 0, 'a', '-', '{"type":"conversation.queued","conversation":' .. cj .. '}')
pub('visitor:' .. vid, 0, '*', '-', '{"type":"conversation.updated","conversation":' .. cj .. '}')
return '{"conversation":' .. cj .. ',"message":' .. mj .. '}'
