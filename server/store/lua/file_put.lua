-- KEYS: the file's record P{s:<site>}:file:<id>.
-- ARGV: P, step ("begin" or "done"), id ("f_<random>.<site>"), site, uploader kind
--       (visitor/agent), uploader id, then for "begin": conversation id ('' for none: a
--       visitor's upload before its conversation starts), now, orphan after (ms); for
--       "done": name (sanitised), type (sniffed), size; then for both the most uploads of
--       one uploader not yet in a message (file_max_pending).
-- An upload in two steps (docs/attachments.md). "begin", when the request's head is in:
-- a visitor may name only its own conversation; an agent must be of the site and name one
-- of its conversations (whose visitor will see the file once a message carries it). It
-- writes the record ("uploading") and the orphan timer at once, so a body a node was
-- writing when it died is removed like an upload no message took (file_orphan.lua). The
-- uploader's stored uploads not yet in a message are a set in the site (files_by): at
-- file_max_pending more are refused (rate_limited; checked at "begin" to refuse early and
-- at "done" to bound uploads sent side by side) until a message takes some, the uploader
-- removes some (file_delete.lua) or their orphan timers fire. An upload that never
-- completes is not counted (its record waits for its orphan timer).
-- Reply {"id"}. "done", when the body is stored: the record becomes "pending" with its
-- name, type and size; reply {"id","name","type","size"}. not_found alike for another's
-- conversation and none.
local step, id, site, kind, who = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
if cid_site(id) ~= site then return fail('bad_request', 'file id of another site') end
if step == 'done' then
  local by = redis.call('HMGET', KEYS[1], 'by', 'state')
  if by[1] ~= kind .. ':' .. who or by[2] ~= 'uploading' then return fail('not_found', 'no such upload') end
  local name, mime, size = ARGV[7], ARGV[8], ARGV[9]
  local mine = files_by(site, by[1])
  if redis.call('SCARD', mine) >= (tonumber(ARGV[10]) or 20) then
    return fail('rate_limited', 'too many uploads not yet sent: send or remove some first')
  end
  redis.call('SADD', mine, id)
  redis.call('HSET', KEYS[1], 'name', name, 'type', mime, 'size', size, 'state', 'pending')
  redis.call('HINCRBY', skey(site, 'files:stats'), 'bytes', tonumber(size))
  redis.call('HINCRBY', skey(site, 'files:stats'), 'uploads', 1)
  return '{"id":' .. S(id) .. ',"name":' .. S(name) .. ',"type":' .. S(mime) .. ',"size":' .. N(size) .. '}'
end
local cid, now, orphan, max_pending = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]) or 20
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
if redis.call('EXISTS', KEYS[1]) == 1 then return fail('conflict', 'file exists') end
if redis.call('SCARD', files_by(site, kind .. ':' .. who)) >= max_pending then
  return fail('rate_limited', 'too many uploads not yet sent: send or remove some first')
end
redis.call('HSET', KEYS[1], 'id', id, 'site', site, 'by', kind .. ':' .. who, 'cid', cid, 'state', 'uploading',
  'size', '0', 'created_at', now)
timer_set(site, 'fileorphan', id, tonumber(now) + tonumber(orphan))
return '{"id":' .. S(id) .. '}'
