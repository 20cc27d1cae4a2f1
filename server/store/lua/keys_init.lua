-- ARGV: P, kid, hex key. Creates the first token signing key if there is none; returns all.
local k = P .. '{g}:keys'
if redis.call('HLEN', k) == 0 then redis.call('HSET', k, ARGV[2], ARGV[3]) end
local r = redis.call('HGETALL', k)
local out = {}
for i = 1, #r, 2 do table.insert(out, S(r[i]) .. ':' .. S(r[i + 1])) end
return '{"keys":{' .. table.concat(out, ',') .. '}}'
