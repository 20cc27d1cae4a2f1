-- KEYS: the file's record P{s:<site>}:file:<id>. ARGV: P, id, reader kind, reader id.
-- Who may see a file (no writes): an agent of its site; the visitor of the conversation
-- a message took it into (not from a private note); before a message takes it, the one
-- who uploaded it; "signed": the holder of a link the node checked (signed for one of
-- those by GET /files/<id>/link). Reply {"id","site","name","type","size"}; not_found alike for another
-- site's file, another visitor's and none (docs/attachments.md).
local id, kind, who = ARGV[2], ARGV[3], ARGV[4]
local f = hgetall(KEYS[1])
local nope = fail('not_found', 'no such file')
if not f or f.state == 'reaped' or f.state == 'uploading' then return nope end
local ok = false
if kind == 'signed' then
  ok = true
elseif kind == 'agent' then
  ok = redis.call('SISMEMBER', skey(f.site, 'agents'), who) == 1
elseif kind == 'visitor' then
  if f.state == 'used' then
    ok = f.priv ~= '1' and redis.call('HGET', ckey(f.cid), 'visitor') == who
  else
    ok = f.by == 'visitor:' .. who
  end
end
if not ok then return nope end
return '{"id":' .. S(f.id) .. ',"site":' .. S(f.site) .. ',"name":' .. S(f.name) .. ',"type":' .. S(f.type) ..
  ',"size":' .. N(f.size) .. '}'
