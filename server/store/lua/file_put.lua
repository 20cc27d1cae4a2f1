-- KEYS: the file's record P{s:<site>}:file:<id>.
-- ARGV: P, id ("f_<random>.<site>"), site, uploader kind (visitor/agent), uploader id,
--       conversation id ('' for none: a visitor's upload before its conversation starts),
--       name (sanitised), type (sniffed), size, now, orphan after (ms).
-- Records an upload whose body is already stored (docs/attachments.md). A visitor may
-- name only its own conversation; an agent must be of the site and name one of its
-- conversations (whose visitor will see the file once a message carries it). An upload
-- no message takes within the orphan time is removed by its timer (file_orphan.lua).
-- Reply {"id","name","type","size"}; not_found alike for another's conversation and none.
local id, site, kind, who, cid = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local name, mime, size, now, orphan = ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
if cid_site(id) ~= site then return fail('bad_request', 'file id of another site') end
if kind == 'agent' then
  if redis.call('SISMEMBER', skey(site, 'agents'), who) ~= 1 or cid == '' then
    return fail('not_found', 'no such conversation')
  end
elseif kind ~= 'visitor' then
  return fail('forbidden', 'visitors and agents upload')
end
if cid ~= '' then
  local v = cid_site(cid) == site and redis.call('HGET', ckey(cid), 'visitor') or nil
  if not v or (kind == 'visitor' and v ~= who) then return fail('not_found', 'no such conversation') end
end
redis.call('HSET', KEYS[1], 'id', id, 'site', site, 'by', kind .. ':' .. who, 'cid', cid, 'name', name, 'type', mime,
  'size', size, 'state', 'pending', 'created_at', now)
redis.call('HINCRBY', skey(site, 'files:stats'), 'bytes', tonumber(size))
redis.call('HINCRBY', skey(site, 'files:stats'), 'uploads', 1)
timer_set(site, 'fileorphan', id, tonumber(now) + tonumber(orphan))
return '{"id":' .. S(id) .. ',"name":' .. S(name) .. ',"type":' .. S(mime) .. ',"size":' .. N(size) .. '}'
