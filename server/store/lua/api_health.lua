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
-- the caller's notices (kept by notify in _common.lua), newest first
ops.notices_list = function()
  local list = redis.call('LRANGE', P .. '{a}:agent:' .. aid .. ':notices', 0, 99)
  return reply(200, '{"notices":[' .. table.concat(list, ',') .. ']}')
end

return dispatch(ops)
