-- ARGV: P. Every site's key, origins and identity secret (for the node's origin cache).
local out = {}
for _, key in ipairs(redis.call('SMEMBERS', P .. '{g}:sites')) do
  local s = hgetall(sitekey(key))
  if s then
    table.insert(out, '{"key":' .. S(key) .. ',"origins":' .. (s.origins or '[]') ..
      ',"identity_secret":' .. S(s.identity_secret) .. ',"sla":' .. S(s.sla) .. '}')
  end
end
return '{"sites":[' .. table.concat(out, ',') .. ']}'
