-- KEYS: the file's record P{s:<site>}:file:<id>. ARGV: P, id, step ("mark" or "drop").
-- Timer handler of "fileorphan|<id>": an upload no message took (or one whose node died
-- while writing it: "uploading") is removed in two steps around the node deleting its
-- body, so no message can take a file whose body is going: "mark" turns the record into
-- "reaped" (message.send and downloads refuse it) and answers {"remove":true}; the node
-- deletes the body (and a ".part" left mid-upload); "drop" deletes the record and the
-- timer. A node that dies in between leaves the timer leased: it fires again and
-- both steps are idempotent. A record a message took answers {"remove":false} and its
-- timer goes.
local id, step = ARGV[2], ARGV[3]
local f = hgetall(KEYS[1])
local site = CSITE
if step == 'mark' and f and (f.state == 'pending' or f.state == 'uploading' or f.state == 'reaped') then
  redis.call('HSET', KEYS[1], 'state', 'reaped')
  redis.call('SREM', files_by(site, f.by), id)
  return '{"remove":true}'
end
if step == 'drop' and f and f.state == 'reaped' then
  redis.call('DEL', KEYS[1])
  redis.call('HINCRBY', skey(site, 'files:stats'), 'bytes', -(tonumber(f.size) or 0))
end
timer_clear(site, 'fileorphan', id)
return '{"remove":false}'
