-- Two-factor login (TOTP, RFC 6238; docs/api.md "Two-factor login"). Everything here is
-- in the agents' slot {a}: the caller's record (the declared key), the agent's 2FA state
-- P{a}:agent:<id>:totp (hash: secret (base32) once confirmed, pending during enrolment,
-- last_step (the last time step used, so a code is never accepted twice), enabled_at) and
-- its recovery codes P{a}:agent:<id>:totp:rc (set of SHA-256 hex; a code is used by
-- removing it). The node does the cryptography (server/auth/totp.c): it reads the secret
-- with totp_check (which also counts the attempt on the account's login counter, so code
-- guesses are throttled like password guesses), checks the code, and then calls the one
-- function that makes the change, passing the step or recovery code it matched; that
-- function checks again, atomically, that the step is newer than the last used one (or
-- that the recovery code is still there). The state changes are these functions only:
-- totp_enroll, totp_enable, totp_disable, totp_recovery_set, totp_login (a step or a
-- recovery code used) and totp_reset (an admin's). The secret never leaves Redis except
-- to the node (totp_check) and to its agent while it enrols (totp_enroll).
local ops = {}
local function totp_key(id) return P .. '{a}:agent:' .. id .. ':totp' end
local function rc_key(id) return P .. '{a}:agent:' .. id .. ':totp:rc' end
local function fails_key(a) return P .. '{a}:login:fails:' .. string.lower(a.email or '') end
local function need_me() if not me then error({code = 'unauthorized', msg = 'login required'}) end end
-- a code check the caller got wrong: the login answers 401, the logged-in calls 400
local wrong = op == 'totp_login' and 'unauthorized' or 'bad_request'

local function url_enc(s)
  return (string.gsub(s, '[^A-Za-z0-9%-%._~]', function(c) return string.format('%%%02X', string.byte(c)) end))
end
-- a secret as stored: base32 (32 characters), or sealed by the node under secrets_key_file
-- (server/auth/seal.c: "s1.<kid>.<base64url>"), which this library never opens
local function secret_ok(s)
  return type(s) == 'string' and ((#s == 32 and string.match(s, '^[A-Z2-7]+$') ~= nil) or
    (#s <= 512 and string.match(s, '^s1%.[0-9a-f]+%.[A-Za-z0-9_-]+$') ~= nil))
end

ops.totp_status = function()
  need_me()
  local t = hgetall(totp_key(aid)) or {}
  return reply(200, '{"enabled":' .. tostring(t.secret ~= nil) .. ',"pending":' .. tostring(t.pending ~= nil) ..
    ',"recovery_codes_left":' .. I(redis.call('SCARD', rc_key(aid))) .. '}')
end

-- Enrolment, step 1: a new secret (made by the node) waits for a first code (totp_enable).
-- Starting again replaces it; with two-factor login on, it must be turned off first.
ops.totp_enroll = function()
  need_me()
  if redis.call('HEXISTS', totp_key(aid), 'secret') == 1 then
    return fail('conflict', 'two-factor login is already on: turn it off first')
  end
  if not secret_ok(p.raw_secret) then return fail('internal', 'no secret') end
  redis.call('HSET', totp_key(aid), 'pending', p.raw_secret)
  -- the node answers with the secret in clear and the otpauth:// URI (it may be stored sealed)
  return reply(200, '{"label":' .. S('chatdesk:' .. url_enc(me.email or aid)) .. '}')
end

-- The node's read before it checks a code: the secret (p.which: 'pending' while enrolling,
-- else the confirmed one) and the step last used; the attempt is counted first, on the
-- account's login counter (login_attempt.lua's key and window), and the reply says how
-- many there were in the window. A success (any of the functions below) resets it.
ops.totp_check = function()
  need_me()
  local t = hgetall(totp_key(aid)) or {}
  local secret = p.which == 'pending' and t.pending or t.secret
  if not secret then
    return fail('conflict', p.which == 'pending' and 'start the enrolment first' or 'two-factor login is not on')
  end
  local fk = fails_key(me)
  local n = redis.call('INCR', fk)
  if n == 1 then redis.call('PEXPIRE', fk, tonumber(p.raw_window_ms) or 900000) end
  return reply(200, '{"secret":' .. S(secret) .. ',"last_step":' .. (p.which == 'pending' and '-1' or I(tonumber(t.last_step or '-1'))) ..
    ',"fails":' .. I(n) .. ',"retry_ms":' .. I(math.max(redis.call('PTTL', fk), 0)) .. '}')
end

-- The second factor the node matched: a time step (newer than the last one used, which it
-- becomes) or a recovery code's hash (removed: single use). The secret the node checked
-- against must still be the agent's (an enrolment or reset in between refuses it).
local function use_second_factor(t, secret)
  if p.raw_secret ~= secret then error({code = 'conflict', msg = 'two-factor login changed meanwhile, retry'}) end
  if p.raw_step ~= nil then
    local step = tonumber(p.raw_step)
    if not step or step <= tonumber(t.last_step or '-1') then error({code = wrong, msg = 'code already used'}) end
    redis.call('HSET', totp_key(aid), 'last_step', I(step))
  elseif type(p.raw_rc) ~= 'string' or redis.call('SREM', rc_key(aid), p.raw_rc) == 0 then
    error({code = wrong, msg = 'wrong or used recovery code'})
  end
  redis.call('DEL', fails_key(me))
  -- a secret stored before sealing was on, sealed now by a node that has the key
  if t.secret ~= nil and t.secret == secret and secret_ok(p.raw_reseal) then
    redis.call('HSET', totp_key(aid), 'secret', p.raw_reseal)
  end
end
local function recovery_set(id)
  local hashes = p.raw_rc_hashes
  if type(hashes) ~= 'table' or #hashes ~= 10 then error({code = 'internal', msg = 'no recovery codes'}) end
  redis.call('DEL', rc_key(id))
  for _, h in ipairs(hashes) do
    if type(h) ~= 'string' or not string.match(h, '^%x+$') or #h ~= 64 then error({code = 'internal', msg = 'bad recovery code'}) end
    redis.call('SADD', rc_key(id), h)
  end
end
local function active()
  need_me()
  local t = hgetall(totp_key(aid))
  if not t or not t.secret then error({code = 'conflict', msg = 'two-factor login is not on'}) end
  return t
end

-- Enrolment, step 2: the first code confirms the pending secret, which becomes the agent's;
-- its recovery codes are set (the node shows them once).
ops.totp_enable = function()
  need_me()
  local t = hgetall(totp_key(aid))
  if not t or not t.pending then return fail('conflict', 'start the enrolment first') end
  if p.raw_step == nil then return fail('bad_request', 'a code from the authenticator app confirms the enrolment') end
  use_second_factor({}, t.pending)
  recovery_set(aid)
  local keep = secret_ok(p.raw_reseal) and p.raw_reseal or t.pending
  redis.call('HSET', totp_key(aid), 'secret', keep, 'last_step', I(tonumber(p.raw_step)), 'enabled_at', now)
  redis.call('HDEL', totp_key(aid), 'pending')
  audit_account('totp.enable', aid, {totp = false}, {totp = true}, my_sites)
  return reply(200, '{"enabled":true,"recovery_codes_left":10}')
end

-- Turning it off takes a current code (or a recovery code).
ops.totp_disable = function()
  local t = active()
  use_second_factor(t, t.secret)
  redis.call('DEL', totp_key(aid), rc_key(aid))
  audit_account('totp.disable', aid, {totp = true}, {totp = false}, my_sites)
  return reply(200, '{"enabled":false}')
end

-- A new set of recovery codes (the old ones stop working), after a current code.
ops.totp_recovery_set = function()
  local t = active()
  use_second_factor(t, t.secret)
  recovery_set(aid)
  audit_account('totp.recovery_codes', aid, nil, {recovery_codes_left = 10}, my_sites)
  return reply(200, '{"recovery_codes_left":10}')
end

-- The login's second step (the caller's token is the login's challenge): what the node
-- needs to issue the login token.
ops.totp_login = function()
  local t = active()
  use_second_factor(t, t.secret)
  audit_account('login', me.email, nil, {second_factor = p.raw_step ~= nil and 'code' or 'recovery code'}, my_sites)
  return reply(200, '{"agent":{"id":' .. S(me.id) .. ',"name":' .. S(me.name) .. ',"email":' .. S(me.email) ..
    ',"role":' .. S(me.role) .. ',"teams":' .. (me.teams or '[]') .. ',"sites":' .. (me.sites or '[]') ..
    ',"status":' .. S(me.status or 'offline') .. ',"max_chats":' .. N(me.max_chats) .. '}}')
end

-- An admin turns an agent's two-factor login off (the agent lost its device): the same
-- tenant wall as the other agent changes (api.lua agent_scope): only an agent all of whose
-- sites are the admin's, and an owner only by an owner. The CLI (operator) names the agent
-- by e-mail.
ops.totp_reset = function()
  need_admin()
  local id = p.agent_id
  if operator and id == nil then id = redis.call('GET', P .. '{a}:agent:email:' .. string.lower(tostring(p.agent_email))) end
  local a = id and hgetall(P .. '{a}:agent:' .. tostring(id))
  if not a then return fail('not_found', 'no such agent') end
  if not operator then
    local shared, full = false, true
    for _, s in ipairs(json_list(a.sites)) do
      if my_site(s) then shared = true else full = false end
    end
    if a.role == 'owner' and not is_owner then full = false end
    if not shared then return fail('not_found', 'no such agent') end
    if not full then
      return fail('forbidden', 'this agent also serves sites you do not administer: its two-factor login can only be reset by an admin of all its sites')
    end
  end
  local was = redis.call('HEXISTS', totp_key(a.id), 'secret') == 1
  redis.call('DEL', totp_key(a.id), rc_key(a.id))
  audit_account('totp.reset', a.id, {totp = was}, {totp = false}, json_list(a.sites))
  return reply(200, '{"totp":{"agent_id":' .. S(a.id) .. ',"enabled":false,"was_enabled":' .. tostring(was) .. '}}')
end

return dispatch(ops)
