-- KEYS: P{s:<site>}:whd:<delivery id>. ARGV: P, now, delivery id, attempt, ok (1/0), HTTP status (0: none), error, duration
-- (ms), retry at (ms, computed by the node with backoff and jitter), max attempts,
-- response (first 200 bytes).
-- Records one attempt in the webhook's log (P{s:<site>}:webhook:<wid>:log, last 100) and moves the
-- delivery on: delivered, due again at `retry at`, or failed after max attempts. A
-- result for an attempt that is no longer current (its lease ran out and another node
-- took it) only goes to the log.
local now, did, attempt, ok = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'
local status, err, dur, retry_at, max, resp = tonumber(ARGV[6]), ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11]
local site = CSITE
local dkey = whdkey(site, did)
local d = hgetall(dkey)
if not d then return '{"gone":true}' end
local entry = '{"delivery":' .. S(did) .. ',"event":' .. S(d.event) .. ',"attempt":' .. I(attempt) .. ',"ok":' ..
  (ok and 'true' or 'false') .. ',"status":' .. (status > 0 and I(status) or 'null') .. ',"error":' .. J(err) ..
  ',"duration_ms":' .. N(dur) .. ',"response":' .. J(resp) .. ',"ts":' .. N(now) .. '}'
local lkey = whkey(site, d.webhook) .. ':log'
redis.call('LPUSH', lkey, entry)
redis.call('LTRIM', lkey, 0, 99)
if d.state ~= 'pending' or tonumber(d.attempts) ~= attempt then return '{"stale":true}' end
local state = 'pending'
if ok then
  state = 'delivered'
  redis.call('ZREM', skey(site, 'webhooks:due'), did)
  redis.call('HSET', dkey, 'delivered_at', now)
elseif attempt >= max then
  state = 'failed'
  redis.call('ZREM', skey(site, 'webhooks:due'), did)
else
  wh_due(site, did, retry_at)
  redis.call('HSET', dkey, 'next_at', retry_at)
end
redis.call('HSET', dkey, 'state', state, 'last_status', status > 0 and I(status) or '', 'last_error', err, 'updated_at', now)
return '{"state":' .. S(state) .. '}'
