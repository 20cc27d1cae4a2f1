-- ARGV: P, by ('email'|'id'), value, with_convs (0/1)[, token epoch, token jti]. Read-only
-- (no-writes). By id (a hello) KEYS[2] is the agent's token deny-list: a token of an older
-- epoch or a logged-out jti is refused (unauthorized).
-- By e-mail (a login) KEYS[2] is the account's login counter (login_attempt.lua): the
-- reply carries "fails" and "retry_ms" for an unknown e-mail too, with no agent, so an
-- unknown account is throttled like a known one.
local by, value, with_convs = ARGV[2], ARGV[3], ARGV[4]
local aid = value
local login = ''
if by == 'email' then
  local fails = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
  login = '"fails":' .. I(fails) .. ',"retry_ms":' .. I(math.max(redis.call('PTTL', KEYS[2]), 0))
  aid = redis.call('GET', P .. '{a}:agent:email:' .. string.lower(value))
  if not aid then return '{' .. login .. '}' end
  login = login .. ','
end
local a = hgetall(P .. '{a}:agent:' .. aid)
if not a and by == 'email' then return '{' .. string.sub(login, 1, -2) .. '}' end
if not a then return fail('not_found', 'no such agent') end
if a.disabled == '1' then return fail('unauthorized', 'agent disabled') end
if by == 'id' and not token_live(a, ARGV[5], ARGV[6], KEYS[2]) then return fail('unauthorized', 'token revoked') end
-- at hello (with_convs) the agent is connecting: the status it will have is its choice
local status = a.status or 'offline'
if with_convs == '1' then status = a.chosen or 'online' end
local out = '{' .. login .. '"agent":{"id":' .. S(a.id) .. ',"name":' .. S(a.name) .. ',"email":' .. S(a.email) ..
  ',"role":' .. S(a.role) .. ',"teams":' .. (a.teams or '[]') .. ',"sites":' .. (a.sites or '[]') ..
  ',"status":' .. S(status) .. ',"max_chats":' .. N(a.max_chats) .. '}'
-- two-factor login on (api_totp.lua): at a login the password alone only earns a challenge;
-- at a hello an agent without it is refused when a site of its requires it (the node knows)
out = out .. ',"totp":' .. tostring(redis.call('HEXISTS', P .. '{a}:agent:' .. aid .. ':totp', 'secret') == 1)
if by == 'email' then
  out = out .. ',"pw":' .. S(a.pw) .. ',"token_epoch":' .. I(tonumber(a.tep or '0'))
end
-- at hello the agent's conversations and the queues of its teams are each site's: the node
-- gathers them with one agent_welcome call per site (each in its site's slot) into these
if with_convs == '1' then out = out .. ',"conversations":[],"queue":[]' end
return out .. '}'
