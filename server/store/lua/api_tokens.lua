-- The HTTP API's API tokens (docs/api.md "API tokens"); shared part in _api.lua.
-- Keys, all in the site's slot: P{s:<site>}:apitokens (zset of token ids by creation
-- time), P{s:<site>}:apitoken:<id> (hash: id, site, kind, name, scopes, hash, created_at,
-- created_by, last_used_at, rw / rn: the start of the token's current minute and its
-- calls in it) (docs/keyspace.md). The secret never reaches Redis: the node sends its
-- SHA-256 (server/http/api/tokens.c). A token is of one site and of one kind ('api'; a
-- bot of issue 20 is another kind of the same record).
local ops = {}
local TOKENS_MAX = 50 -- tokens per site
local SCOPES = {'read', 'write', 'admin'}

local function tkey(site, id) return skey(site, 'apitoken:' .. id) end
local function token_json(t)
  return '{"id":' .. S(t.id) .. ',"site":' .. S(t.site) .. ',"kind":' .. S(t.kind or 'api') .. ',"name":' .. S(t.name) ..
    ',"scopes":' .. ((t.scopes and t.scopes ~= '') and t.scopes or '[]') .. ',"created_at":' .. N(t.created_at) ..
    ',"created_by":' .. S(t.created_by) .. ',"last_used_at":' .. N(t.last_used_at) .. '}'
end
local function has_scope(t, want)
  for _, s in ipairs(json_list(t.scopes)) do if s == want then return true end end
  return false
end
-- The site of a token route: the caller's login must be an admin of it (the node refuses
-- these routes to API tokens before any call; this holds if one got here).
local function site_of(key)
  if by_token then error({code = 'forbidden', msg = 'API tokens cannot manage API tokens: sign in'}) end
  return admin_site_key(key)
end
local function scopes_of(v)
  if type(v) ~= 'table' or #v == 0 or #v > #SCOPES then bad('scopes must list one or more of read, write, admin') end
  local want = {}
  for _, s in ipairs(v) do
    if s ~= 'read' and s ~= 'write' and s ~= 'admin' then
      bad('unknown scope ' .. tostring(s) .. ' (known: read, write, admin)')
    end
    want[s] = true
  end
  local out = {}
  for _, s in ipairs(SCOPES) do if want[s] then table.insert(out, s) end end
  return out
end

-- Every call with an API token first (server/http/api/api.c): KEYS[1] the site's record,
-- KEYS[2] the token's record; p: id, hash (SHA-256 of the secret the client sent), scope
-- (what the route needs: read, write or admin), rate (calls per window) and window_ms.
-- A token that does not exist (revoked) or whose hash differs: unauthorized. Every
-- authenticated call counts in the token's current window (one per token across nodes,
-- started by the first call after the last one ended); over rate: rate_limited. The last
-- use is written at most once a minute. A scope the token lacks: forbidden. The answer is
-- the token as a caller record for the site calls that follow (_api.lua as_caller): its
-- one site, role 'admin' with the admin scope (the admin routes' checks), else 'agent'.
ops.token_auth = function()
  local t = hgetall(KEYS[2])
  if not t or type(p.hash) ~= 'string' or t.hash ~= p.hash or t.site ~= CSITE or t.id ~= aid or
     redis.call('EXISTS', KEYS[1]) == 0 then
    return fail('unauthorized', 'invalid or revoked API token')
  end
  local at, window, rate = tonumber(now), tonumber(p.window_ms) or 60000, tonumber(p.rate) or 600
  local start, n = tonumber(t.rw or '') or 0, tonumber(t.rn or '') or 0
  if at - start >= window or at < start then start, n = at, 0 end
  if n >= rate then
    return fail('rate_limited', 'too many calls with this API token (api_token_rate_per_min), retry in ' ..
      I(math.ceil((start + window - at) / 1000)) .. ' s')
  end
  local set = {'rw', I(start), 'rn', I(n + 1)}
  if at - (tonumber(t.last_used_at or '') or 0) >= 60000 then
    table.insert(set, 'last_used_at')
    table.insert(set, now)
  end
  redis.call('HSET', KEYS[2], unpack(set))
  if not has_scope(t, p.scope) then
    return fail('forbidden', 'this API token does not have the ' .. tostring(p.scope) .. ' scope')
  end
  return reply(200, cjson.encode({id = t.id, kind = 'token', name = t.name, email = '', sites = cjson.encode({CSITE}),
    role = has_scope(t, 'admin') and 'admin' or 'agent', totp = '1', scopes = t.scopes}))
end

ops.admin_tokens_list = function()
  local site = site_of(p.site_key)
  local out = {}
  for _, id in ipairs(redis.call('ZREVRANGE', skey(site, 'apitokens'), 0, TOKENS_MAX * 2)) do
    local t = hgetall(tkey(site, id))
    if t then table.insert(out, token_json(t)) end
  end
  return reply(200, '{"tokens":[' .. table.concat(out, ',') .. ']}')
end

-- The node answers 201 with the whole token in "secret" (server/http/api/tokens.c).
ops.admin_token_create = function()
  local site = site_of(p.site_key)
  local name = name_of(p.name, 'name')
  local scopes = scopes_of(p.scopes)
  if type(p.raw_hash) ~= 'string' or not string.match(p.raw_hash, '^' .. string.rep('[0-9a-f]', 64) .. '$') then
    return fail('internal', 'no secret hash')
  end
  if redis.call('ZCARD', skey(site, 'apitokens')) >= TOKENS_MAX then
    return fail('conflict', 'a site has at most ' .. I(TOKENS_MAX) .. ' API tokens: revoke one first')
  end
  local t = {id = fresh, site = site, kind = 'api', name = name, scopes = cjson.encode(scopes), hash = p.raw_hash,
    created_at = now, created_by = aid, last_used_at = ''}
  redis.call('HSET', tkey(site, t.id), 'id', t.id, 'site', site, 'kind', t.kind, 'name', name, 'scopes', t.scopes,
    'hash', t.hash, 'created_at', now, 'created_by', aid, 'last_used_at', '')
  redis.call('ZADD', skey(site, 'apitokens'), now, t.id)
  audit_site(site, 'api_token.create', t.id, nil, {name = name, scopes = scopes, kind = t.kind})
  return reply(200, '{"token":' .. token_json(t) .. '}')
end

-- Revocation: the record goes, so the token's next call fails on every node.
ops.admin_token_delete = function()
  local site = site_of(p.site_key)
  local t = type(p.token_id) == 'string' and hgetall(tkey(site, p.token_id))
  if not t or t.site ~= site then return fail('not_found', 'no such API token') end
  redis.call('DEL', tkey(site, t.id))
  redis.call('ZREM', skey(site, 'apitokens'), t.id)
  audit_site(site, 'api_token.revoke', t.id, {name = t.name, scopes = json_list(t.scopes), kind = t.kind or 'api'}, nil)
  return reply(204, 'null')
end

return dispatch(ops)
