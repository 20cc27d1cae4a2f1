-- KEYS: P{s:<site>}:site. ARGV: P. The site's key, origins, identity secret, SLA, whether it requires two-factor login
-- and its own attachment limits (file_max_bytes, file_types: '' for the node's; for the
-- node's origin cache), or no site when it is gone; the node calls this once per member of
-- the sites set (sites_list) and merges the answers.
local s = hgetall(KEYS[1])
if not s or not CSITE then return '{"sites":[]}' end
return '{"sites":[{"key":' .. S(CSITE) .. ',"origins":' .. (s.origins or '[]') .. ',"identity_secret":' ..
  S(s.identity_secret) .. ',"sla":' .. S(s.sla) .. ',"require_2fa":' .. tostring(s.require_2fa == '1') ..
  ',"file_max_bytes":' .. N(s.file_max_bytes) .. ',"file_types":' .. S(s.file_types or '') .. '}]}'
