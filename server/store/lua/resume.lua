-- ARGV: P, cid, reader kind, reader id, after_seq, epoch ('' = unknown), max, new_epoch, page count, page bytes
-- Returns the message.created frames after after_seq (private notes left out for
-- visitors), or recovered=false when the stored history cannot cover the gap.
local cid, kind, who, after, epoch, max = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local key = ckey(cid)
local c = hgetall(key)
if not c then return fail('not_found', 'no such conversation') end
if not may_access(c, kind, who) then return fail('not_found', 'no such conversation') end
local last = tonumber(c.last_seq or '0')
local recovered = true
if epoch ~= '' and epoch ~= c.epoch then recovered = false end
if after > last then
  -- The client saw messages this store no longer has (lost on restart): seqs above
  -- `last` will be reused, so history gets a new epoch and everyone must reload.
  recovered = false
  c.epoch = ARGV[8]
  redis.call('HSET', key, 'epoch', c.epoch)
  conv_updated(c, false)
end
if recovered and last - after > max then recovered = false end
local page_n, page_bytes = tonumber(ARGV[9] or '0') or 0, tonumber(ARGV[10] or '0') or 0
if page_n <= 0 then page_n = max end
if page_bytes <= 0 then page_bytes = 1e12 end
local frames = {}
local page_last, bytes = after, 0
if recovered and last > after then
  local first = redis.call('XRANGE', key .. ':msgs', '-', '+', 'COUNT', 1)
  local first_seq = #first == 1 and tonumber(seq_of(first[1][1])) or last + 1
  if first_seq > after + 1 then
    recovered = false
  else
    -- one page (the caller's outbound queue must hold it): page_n entries or page_bytes
    local r = redis.call('XRANGE', key .. ':msgs', '0-' .. I(after + 1), '+', 'COUNT', page_n)
    local head = '{"type":"message.created","conversation_id":' .. S(cid) .. ',"message":'
    for _, e in ipairs(r) do
      local seq = seq_of(e[1])
      local mj, priv = msg_json(seq, e[2])
      if not (priv and kind == 'visitor') then
        local f = head .. mj .. '}'
        if bytes > 0 and bytes + #f > page_bytes then break end
        bytes = bytes + #f
        table.insert(frames, cjson.encode(f))
      end
      page_last = tonumber(seq)
    end
  end
end
local more = recovered and page_last < last
return '{"last_seq":' .. I(last) .. ',"epoch":' .. S(c.epoch) .. ',"recovered":' .. tostring(recovered) ..
  ',"more":' .. tostring(more) .. ',"page_last":' .. I(page_last) .. ',"frames":[' .. table.concat(frames, ',') .. ']}'
