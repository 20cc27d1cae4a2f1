-- The HTTP API's customer health alerts and notices (docs/api.md "Customer health
-- alerts and notices"); shared part in _api.lua.
local ops = {}
-- alerts of the caller's sites (admins), newest first
ops.alerts_list = function()
  need_admin()
  local sites = my_sites
  if p.site ~= nil then
    if type(p.site) ~= 'string' or not my_site(p.site) then return fail('not_found', 'no such site') end
    sites = {p.site}
  end
  if part then sites = list_sites() end
  local rows = {}
  for _, s in ipairs(sites) do
    for _, a in ipairs(redis.call('LRANGE', skey(s, 'alerts'), 0, 199)) do
      local ok, v = pcall(cjson.decode, a)
      if ok then table.insert(rows, {tonumber(v.ts) or 0, '', a}) end
    end
  end
  table.sort(rows, function(a, b) return a[1] > b[1] end)
  for i = #rows, 201, -1 do rows[i] = nil end
  return list_reply('alerts', rows, ',"limit":200', function()
    local out = {}
    for i, r in ipairs(rows) do out[i] = r[3] end
    return '{"alerts":[' .. table.concat(out, ',') .. ']}'
  end)
end
-- A list of notice JSON texts per site of the caller (read(site) gives a site's, newest
-- first), merged newest first, at most 100: one site call per site, merged by the node.
local function notice_list(name, read)
  local rows = {}
  for _, s in ipairs(list_sites()) do
    for _, n in ipairs(read(s)) do
      local ok, v = pcall(cjson.decode, n)
      table.insert(rows, {ok and tonumber(v.ts) or 0, '', n, #rows})
    end
  end
  -- newest first; a site's list is already, so equal times keep its order
  table.sort(rows, function(a, b) return a[1] > b[1] or (a[1] == b[1] and a[4] < b[4]) end)
  for i = #rows, 101, -1 do rows[i] = nil end
  return list_reply(name, rows, ',"limit":100', function()
    local out = {}
    for i, r in ipairs(rows) do out[i] = r[3] end
    return '{"' .. name .. '":[' .. table.concat(out, ',') .. ']}'
  end)
end
-- the caller's notices (kept per site by notify in _common.lua)
ops.notices_list = function()
  return notice_list('notices', function(s) return redis.call('LRANGE', sakey(s, aid) .. ':notices', 0, 99) end)
end
-- the caller's unread mentions (mention in _common.lua; docs/api.md)
ops.mentions_list = function()
  return notice_list('mentions', function(s) return redis.call('ZREVRANGE', mentions_key(s, aid), 0, 99) end)
end
-- marks mentions of one site of the caller read: "ids" (notice ids, at most 100) or
-- "all": true; another site, or none of the caller's, is answered like an unknown one
ops.mentions_read = function()
  local site = p.site
  if type(site) ~= 'string' or not my_site(site) then return fail('not_found', 'no such site') end
  local k, n = mentions_key(site, aid), 0
  if p.all == true then
    n = redis.call('ZCARD', k)
    redis.call('DEL', k)
  elseif type(p.ids) == 'table' and #p.ids <= 100 then
    for _, id in ipairs(p.ids) do
      if type(id) ~= 'number' then return fail('bad_request', 'ids must be notice ids (numbers)') end
      n = n + redis.call('ZREMRANGEBYSCORE', k, id, id)
    end
  else
    return fail('bad_request', 'give "ids" (at most 100 notice ids) or "all": true')
  end
  return reply(200, '{"read":' .. I(n) .. ',"unread":' .. I(redis.call('ZCARD', k)) .. '}')
end

return dispatch(ops)
