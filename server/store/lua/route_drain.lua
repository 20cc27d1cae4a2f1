-- ARGV: P, site ('' = every site), now. Re-runs assignment (site settings or capacity
-- changed). Idempotent: every node may run it.
local site, now = ARGV[2], ARGV[3]
local n = 0
if site ~= '' then
  n = drain_site(site, now)
else
  for _, s in ipairs(redis.call('SMEMBERS', P .. '{g}:sites')) do n = n + drain_site(s, now) end
end
return '{"assigned":' .. I(n) .. '}'
