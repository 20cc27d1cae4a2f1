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
if by == 'email' then out = out .. ',"pw":' .. S(a.pw) .. ',"token_epoch":' .. I(tonumber(a.tep or '0')) end
if with_convs == '1' then
  local convs = {}
  for _, cid in ipairs(redis.call('SMEMBERS', P .. '{a}:agent:' .. aid .. ':convs')) do
    local c = conv_in(cid, json_list(a.sites))
    if c and c.status ~= 'closed' and c.assignee == aid then table.insert(convs, conv_json(c)) end
  end
  out = out .. ',"conversations":[' .. table.concat(convs, ',') .. ']'
  -- the current queue of the agent's teams (and the team-less queue) on its sites
  local queue = {}
  for _, s in ipairs(json_list(a.sites)) do
    for _, t in ipairs(site_teams(s)) do
      if agent_in_team(a, t) then
        for _, qid in ipairs(redis.call('ZRANGE', qkey(s, t), 0, 99)) do
          local q = hgetall(ckey(qid, s))
          if q and q.status == 'queued' then table.insert(queue, conv_json(q)) end
        end
      end
    end
  end
  out = out .. ',"queue":[' .. table.concat(queue, ',') .. ']'
end
return out .. '}'
