-- KEYS: P{s:<site>}:site. ARGV: P, site, now. Re-runs assignment in the site (its settings
-- or an agent's capacity changed). Idempotent: every node may run it. For every site the
-- node makes one call per site (cd_route_drain), each in that site's slot.
local site, now = ARGV[2], ARGV[3]
return '{"assigned":' .. I(drain_site(site, now)) .. '}'
