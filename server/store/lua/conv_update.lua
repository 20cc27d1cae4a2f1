-- ARGV: P, cid, agent id, status, priority, category, tags (JSON array or ''), now
-- Empty strings leave a field unchanged.
local cid, aid, status, priority, category, tags, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, 'agent', aid) then return fail('forbidden', 'not a conversation of your sites') end
if c.status == 'closed' and status ~= '' and status ~= 'closed' then
  return fail('conflict', 'conversation is closed')
end
local qkey = P .. 'site:' .. c.site .. ':queue'
if status ~= '' and status ~= c.status then
  c.status = status
  if status == 'queued' then
    redis.call('ZADD', qkey, queue_score(c.priority, c.created_at), cid)
  else
    redis.call('ZREM', qkey, cid)
  end
  if status == 'closed' and c.assignee ~= '' then redis.call('SREM', P .. 'agent:' .. c.assignee .. ':convs', cid) end
end
if priority ~= '' then
  c.priority = priority
  if c.status == 'queued' then redis.call('ZADD', qkey, queue_score(priority, c.created_at), cid) end
end
if category ~= '' then c.category = category end
if tags ~= '' then c.tags = tags end
c.updated_at = now
redis.call('HSET', key, 'status', c.status, 'priority', c.priority, 'category', c.category or '',
  'tags', c.tags or '[]', 'updated_at', now)
conv_updated(c, true)
return '{"conversation":' .. conv_json(c) .. '}'
