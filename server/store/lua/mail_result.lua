-- KEYS: P{s:<site>}:mail:<id>. ARGV: P, now, id, attempt, ok (1/0), permanent (1/0), error,
-- retry at (ms, computed by the node with backoff and jitter), max attempts
-- The outcome of one SMTP attempt (server/mail/outbox.c): sent; failed (a permanent
-- refusal, 5xx, or the last attempt); or due again at `retry at` (its timer re-armed, the
-- same Message-ID). A result for an attempt that is no longer current (its lease ran out
-- and another node took the mail) changes nothing.
local now, id, attempt, ok, perm = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1', ARGV[6] == '1'
local err, retry_at, max = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local site = CSITE
local k = KEYS[1]
local m = hgetall(k)
if not m then
  timer_clear(site, 'mail', id)
  return '{"gone":true}'
end
if m.state ~= 'pending' or tonumber(m.attempts) ~= attempt then return '{"stale":true}' end
local state = 'pending'
timer_clear(site, 'mail', id)
if ok then
  state = 'sent'
  redis.call('HSET', k, 'sent_at', now)
elseif perm or attempt >= max then
  state = 'failed'
else
  timer_set(site, 'mail', id, retry_at)
  redis.call('HSET', k, 'next_at', I(retry_at))
end
redis.call('HSET', k, 'state', state, 'last_error', ok and '' or err, 'updated_at', now)
return '{"state":' .. S(state) .. '}'
