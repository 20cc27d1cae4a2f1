-- KEYS[1]: the account's login counter P{a}:login:fails:<e-mail lower-cased>.
-- ARGV: P, op ('try' | 'ok' | 'fail'), window ms, e-mail, client address, audit days, now (ms).
-- 'try' counts one login attempt before its password is checked, so parallel guesses
-- cannot all pass a count read before any of them was recorded; a success resets the
-- count ('ok'). The window starts at the first attempt and is not extended by later ones.
-- 'ok' and 'fail' (the password check's outcome) append 'login' / 'login_failed' to the
-- account audit log P{a}:audit, with the agent's sites (none for an unknown e-mail).
local op, window = ARGV[2], tonumber(ARGV[3])
if op == 'ok' or op == 'fail' then
  if op == 'ok' then redis.call('DEL', KEYS[1]) end
  local email = string.lower(ARGV[4] or '')
  local aid = redis.call('GET', P .. '{a}:agent:email:' .. email)
  local a = aid and hgetall(P .. '{a}:agent:' .. aid)
  local who = {id = a and a.id or '', email = email, addr = ARGV[5] or '', now = ARGV[7],
    retain_ms = (tonumber(ARGV[6]) or 90) * AUDIT_DAY_MS}
  local after = nil
  if op == 'fail' then after = {reason = (a and a.disabled == '1') and 'disabled' or 'wrong e-mail or password'} end
  audit_append(P .. '{a}:audit', who, op == 'ok' and 'login' or 'login_failed', email, nil, after,
    a and json_list(a.sites) or {})
  return '{}'
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], window) end
return '{"fails":' .. I(n) .. ',"retry_ms":' .. I(redis.call('PTTL', KEYS[1])) .. '}'
