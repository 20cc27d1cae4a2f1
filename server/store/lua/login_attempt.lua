-- KEYS[1]: the account's login counter P{a}:login:fails:<e-mail lower-cased>.
-- ARGV: P, op ('try' | 'ok'), window ms.
-- 'try' counts one login attempt before its password is checked, so parallel guesses
-- cannot all pass a count read before any of them was recorded; a success resets the
-- count ('ok'). The window starts at the first attempt and is not extended by later ones.
local op, window = ARGV[2], tonumber(ARGV[3])
if op == 'ok' then
  redis.call('DEL', KEYS[1])
  return '{}'
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], window) end
return '{"fails":' .. I(n) .. ',"retry_ms":' .. I(redis.call('PTTL', KEYS[1])) .. '}'
