-- KEYS: the file's record P{s:<site>}:file:<id>. ARGV: P, id, caller kind (visitor/agent),
-- caller id.
-- DELETE /files/<id> (docs/attachments.md "Removing an upload"): the uploader withdraws an
-- upload no message took (the widget's and the composer's "remove"), so it stops counting
-- against file_max_pending and its storage goes now rather than at its orphan timer. Only
-- the uploader, and only while it is "pending": this is file_orphan's "mark" (state
-- "reaped": no message can take it and no link serves it), then the node removes the body
-- and calls file_orphan "drop", as the timer does; the timer stays until then, so a node
-- that dies in between leaves the rest to it. Reply {"remove":true}; not_found alike for
-- another's file, another site's and none; conflict for a file a message carries.
local id, kind, who = ARGV[2], ARGV[3], ARGV[4]
local f = hgetall(KEYS[1])
if not f or f.by ~= kind .. ':' .. who or f.state == 'reaped' or f.state == 'uploading' then
  return fail('not_found', 'no such file')
end
if f.state ~= 'pending' then return fail('conflict', 'the file is in a message') end
redis.call('HSET', KEYS[1], 'state', 'reaped')
redis.call('SREM', files_by(CSITE, f.by), id)
return '{"remove":true}'
