-- The key guard (docs/keyspace.md "The key guard"): in builds with CMake
-- -DCD_KEY_GUARD=ON this text opens the function library (server/store/store.c), and
-- every function starts with guard_begin(<script>, KEYS). It shadows `redis` for the
-- whole library, so each redis.call / redis.pcall first checks every key the command
-- names: the key must be one the call declared (KEYS), or carry the hash tag of a
-- declared key (then it is on the same Redis Cluster slot: keys found during a call,
-- such as queue members, are fine only inside the declared site's tag), and the declared
-- keys themselves must be of one slot. Anything else fails the call with "key guard: …".
-- Release builds leave this text out.
-- Key positions of every command the scripts use: {first, last, step}, 1 = the first
-- argument after the command; last -1 = up to the last argument; first 0 = no key.
local GUARD_KEYS_AT = {
  APPEND = {1, 1, 1}, DECR = {1, 1, 1}, DECRBY = {1, 1, 1}, DEL = {1, -1, 1}, EXISTS = {1, -1, 1},
  EXPIRE = {1, 1, 1}, GET = {1, 1, 1}, HDEL = {1, 1, 1}, HEXISTS = {1, 1, 1}, HGET = {1, 1, 1},
  HGETALL = {1, 1, 1}, HINCRBY = {1, 1, 1}, HKEYS = {1, 1, 1}, HLEN = {1, 1, 1}, HMGET = {1, 1, 1},
  HSET = {1, 1, 1}, HSETNX = {1, 1, 1}, HVALS = {1, 1, 1}, INCR = {1, 1, 1}, INCRBY = {1, 1, 1},
  LLEN = {1, 1, 1}, LPUSH = {1, 1, 1}, LRANGE = {1, 1, 1}, LTRIM = {1, 1, 1}, RPUSH = {1, 1, 1}, PEXPIRE = {1, 1, 1},
  PEXPIREAT = {1, 1, 1}, PTTL = {1, 1, 1}, PUBLISH = {0, 0, 0}, RENAME = {1, 2, 1}, SADD = {1, 1, 1},
  SCARD = {1, 1, 1}, SET = {1, 1, 1},
  SETNX = {1, 1, 1}, SISMEMBER = {1, 1, 1}, SMEMBERS = {1, 1, 1}, SPUBLISH = {1, 1, 1}, SREM = {1, 1, 1},
  TIME = {0, 0, 0}, TYPE = {1, 1, 1}, UNLINK = {1, -1, 1}, XADD = {1, 1, 1}, XLEN = {1, 1, 1}, XRANGE = {1, 1, 1},
  XREVRANGE = {1, 1, 1}, XTRIM = {1, 1, 1}, ZADD = {1, 1, 1}, ZCARD = {1, 1, 1}, ZCOUNT = {1, 1, 1},
  ZINCRBY = {1, 1, 1}, ZRANGE = {1, 1, 1}, ZRANGEBYSCORE = {1, 1, 1}, ZRANK = {1, 1, 1}, ZREM = {1, 1, 1},
  ZREMRANGEBYRANK = {1, 1, 1}, ZREMRANGEBYSCORE = {1, 1, 1}, ZREVRANGE = {1, 1, 1}, ZSCORE = {1, 1, 1},
}
local guard_fn, guard_declared, guard_tags = '?', {}, {}
-- The hash tag of a key as Redis Cluster reads it: the text between the first '{' and
-- the first '}' after it, when not empty; nil when the whole key is hashed.
local function guard_tag(k)
  local s = string.find(k, '{', 1, true)
  if not s then return nil end
  local e = string.find(k, '}', s + 1, true)
  if not e or e == s + 1 then return nil end
  return string.sub(k, s + 1, e - 1)
end
local function guard_begin(fn, keys)
  guard_fn, guard_declared, guard_tags = fn, {}, {}
  local slot, first = nil, nil
  for _, k in ipairs(keys) do
    guard_declared[k] = true
    local t = guard_tag(k)
    if t then guard_tags[t] = true end
    -- one call, one slot: the declared keys share a hash tag (or are one untagged key)
    local s = t and ('{' .. t) or ('=' .. k)
    if slot and s ~= slot then
      error('key guard: ' .. fn .. ' declared keys of more than one slot: ' .. first .. ' and ' .. k, 0)
    end
    slot, first = slot or s, first or k
  end
end
local function guard_check(cmd, ...)
  local args = {...}
  local name = string.upper(tostring(cmd))
  local at = GUARD_KEYS_AT[name]
  if not at then
    error('key guard: ' .. guard_fn .. ' runs ' .. name .. ', whose key positions _guard.lua does not know', 0)
  end
  if at[1] == 0 then return end
  local last = at[2] < 0 and #args or at[2]
  for i = at[1], last, at[3] do
    local k = tostring(args[i])
    local t = guard_tag(k)
    if not guard_declared[k] and not (t and guard_tags[t]) then
      error('key guard: ' .. guard_fn .. ' touched undeclared key ' .. k .. ' (' .. name ..
        '); declare it, or a key with its hash tag, in the call', 0)
    end
  end
end
-- `redis` below is the runtime global: these run during calls, not while loading.
local function guard_call(...)
  guard_check(...)
  return redis.call(...)
end
local function guard_pcall(...)
  guard_check(...)
  return redis.pcall(...)
end
-- sha1hex touches no key (reply tokens and Message-IDs, _common.lua "e-mail")
local redis = {call = guard_call, pcall = guard_pcall, register_function = redis.register_function,
  sha1hex = function(s) return redis.sha1hex(s) end}
