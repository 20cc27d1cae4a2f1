-- ARGV: P, cid, now. Timer handler: a conversation still resolved after the site's
-- auto_close_s is closed. Idempotent; clears its timer.
local cid, now = ARGV[2], ARGV[3]
redis.call('ZREM', skey(CSITE, 'timers:leased'), 'autoclose|' .. cid)
local key = ckey(cid)
local c = hgetall(key)
if not c or c.status ~= 'resolved' then return '{"closed":false}' end
emit('conversation.status_changed', c, now, '{"from":"resolved","to":"closed"}')
c.status, c.updated_at = 'closed', now
redis.call('HSET', key, 'status', 'closed', 'closed_at', now, 'updated_at', now)
release(c, now, true)
conv_updated(c, true)
return '{"closed":true}'
