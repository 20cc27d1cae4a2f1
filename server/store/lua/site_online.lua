-- KEYS[1] = any key of the site (its slot); ARGV: P.
-- Whether an agent of the site is online, for a widget showing its pre-chat form
-- ("availability", docs/protocol.md): the same answer as the welcome's agents_online.
-- Reads only.
return '{"agents_online":' .. tostring(site_online(CSITE)) .. '}'
