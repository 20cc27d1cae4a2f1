-- ARGV: P, node, expiry (ms), now, agent ids...
-- A node vouches for agents it has a live connection to until `expiry`; an agent that
-- comes back gets its chosen status again.
-- Returns the conversations assigned to the touched agents by the drain that their
-- coming online started, so the node can hand them to the agents' sessions at once (the
-- agent channel subscription may not be in place yet when this runs).
local node, expiry, now = ARGV[2], ARGV[3], ARGV[4]
local given = {}
for i = 5, #ARGV do
  local aid = ARGV[i]
  local akey = P .. 'agent:' .. aid
  local a = hgetall(akey)
  if a then
    redis.call('HSET', P .. 'presence:' .. aid, node, expiry)
    local score = tonumber(redis.call('ZSCORE', P .. 'presence', aid) or '0')
    if tonumber(expiry) > score then redis.call('ZADD', P .. 'presence', expiry, aid) end
    local chosen = a.chosen or 'online'
    if (a.status or 'offline') ~= chosen then
      redis.call('HSET', akey, 'status', chosen, 'status_at', now)
      local frame = '{"type":"presence.updated","agent_id":' .. S(aid) .. ',"status":' .. S(chosen) .. '}'
      for _, s in ipairs(json_list(a.sites)) do pub('site:' .. s, 0, 'a', '-', frame) end
      if chosen == 'online' then
        local before = {}
        for _, cid in ipairs(redis.call('SMEMBERS', P .. 'agent:' .. aid .. ':convs')) do before[cid] = true end
        drain_agent_sites(aid, now)
        for _, cid in ipairs(redis.call('SMEMBERS', P .. 'agent:' .. aid .. ':convs')) do
          if not before[cid] then
            local c = conv_in(cid, json_list(a.sites))
            if c then table.insert(given, '{"agent":' .. S(aid) .. ',"conversation":' .. conv_json(c) .. '}') end
          end
        end
      end
    end
  end
end
return '{"assigned":[' .. table.concat(given, ',') .. ']}'
