-- KEYS: P{g}:sites. ARGV: P. Every site's key: the sites set is state of its own, read by
-- a call of its own; what the node needs of each site comes from one call per site in
-- that site's slot (sites_get, route_drain), merged by the node (ARCHITECTURE invariant 4).
local out = {}
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do table.insert(out, S(key)) end
return '{"site_keys":[' .. table.concat(out, ',') .. ']}'
