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
local old = c.status
if priority ~= '' then
  c.priority = priority
  if c.status == 'queued' then redis.call('ZADD', qkey(c.site, c.team), queue_score(priority, c.created_at), cid) end
end
if category ~= '' then c.category = category end
if tags ~= '' then c.tags = tags end
c.updated_at = now
redis.call('HSET', key, 'priority', c.priority, 'category', c.category or '', 'tags', c.tags or '[]', 'updated_at', now)
if status ~= '' and status ~= old then
  c.status = status
  redis.call('HSET', key, 'status', status)
  if old == 'queued' then
    redis.call('ZREM', qkey(c.site, c.team), cid)
    queue_changed(c.site, c.team)
  end
  if old == 'resolved' then timer_clear('autoclose', cid) end
  if status == 'queued' then
    -- back to the queue: the agent lets it go
    if c.assignee ~= '' then release(c, now, true) end
    c.assignee, c.assignee_name = '', ''
    redis.call('HSET', key, 'assignee', '', 'assignee_name', '')
    enqueue(c, now)
  elseif status == 'resolved' then
    redis.call('HSET', key, 'resolved_at', now)
    local after = tonumber(redis.call('HGET', P .. 'site:' .. c.site, 'auto_close_s') or '86400')
    if after > 0 then timer_set('autoclose', cid, tonumber(now) + after * 1000) end
    release(c, now, false)
  elseif status == 'closed' then
    redis.call('HSET', key, 'closed_at', now)
    release(c, now, true)
  elseif (status == 'open' or status == 'pending') and c.assignee ~= '' then
    redis.call('SADD', P .. 'agent:' .. c.assignee .. ':active', cid)
    redis.call('SADD', P .. 'agent:' .. c.assignee .. ':convs', cid)
  end
end
conv_updated(c, true)
if c.status == 'queued' and old ~= 'queued' then
  drain(c.site, c.team, now)
  queue_changed(c.site, c.team)
end
c = hgetall(key)
local sla = c.ticket_number and c.ticket_number ~= '' and status ~= '' and status ~= old
return '{"conversation":' .. conv_json(c) .. ',"sla":' .. tostring(sla or false) .. '}'
