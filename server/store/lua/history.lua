-- ARGV: P, cid, reader kind, reader id, before_seq (0 = latest), limit
local cid, kind, who = ARGV[2], ARGV[3], ARGV[4]
local before, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, kind, who) then return fail('not_found', 'no such conversation') end
local out = {}
local hi = before > 0 and ('0-' .. I(before - 1)) or '+'
local rounds = 0
-- Visitors do not see private notes: page on until limit visible messages or the start
-- (bounded: at most 50 batches of 200 entries are read).
local batch = kind == 'visitor' and math.max(limit, 200) or limit
while #out < limit and rounds < 50 do
  if hi == '0-0' then break end
  local r = redis.call('XREVRANGE', key .. ':msgs', hi, '-', 'COUNT', batch)
  if #r == 0 then break end
  for _, e in ipairs(r) do
    local seq = seq_of(e[1])
    local mj, priv = msg_json(seq, e[2])
    if not (priv and kind == 'visitor') and #out < limit then table.insert(out, 1, mj) end
    hi = '0-' .. I(tonumber(seq) - 1)
  end
  if #r < batch then break end
  rounds = rounds + 1
end
return '{"messages":[' .. table.concat(out, ',') .. '],"last_seq":' .. N(c.last_seq) .. '}'
