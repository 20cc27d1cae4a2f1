-- HTTP API: a site's audit log (docs/api.md "Audit log", docs/ops.md "Audit log"), for its
-- admins. The site's own stream P{s:<site>}:audit and the account stream P{a}:audit
-- (entries whose sites include this one) are merged newest first, filtered by actor,
-- action and time, within the site's retention, a page at a time (cursor: the last
-- entry's "<stream id>-<s|a>"). format=csv answers every match (up to AUDIT_CSV_MAX) as
-- columns and rows, which the node renders as CSV (server/http/api/audit.c).
local ops = {}
local AUDIT_SCAN_MAX = 5000 -- entries read per stream and call (a page stops there; next_cursor goes on)
local AUDIT_CSV_MAX = 10000

-- ms → "YYYY-MM-DDTHH:MM:SS.mmmZ" (days to civil date: H. Hinnant's algorithm)
local function iso(ms)
  ms = tonumber(ms) or 0
  local days, rem = math.floor(ms / AUDIT_DAY_MS), ms % AUDIT_DAY_MS
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400 + (m <= 2 and 1 or 0)
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, math.floor(rem / 3600000),
    math.floor(rem / 60000) % 60, math.floor(rem / 1000) % 60, rem % 1000)
end
local function fields_of(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end
-- An account entry shows only this site of the sites it names, and only this site's
-- teams (an agent shared with another tenant must not reveal that tenant's keys).
local function scrub(text, site)
  local ok, o = pcall(cjson.decode, text or '{}')
  if not ok or type(o) ~= 'table' then return '{}' end
  if next(o) == nil then return '{}' end
  if type(o.sites) == 'table' then
    local keep = {}
    for _, s in ipairs(o.sites) do if s == site then table.insert(keep, s) end end
    o.sites = keep
  end
  if type(o.teams) == 'table' then
    local keep = {}
    for _, t in ipairs(o.teams) do
      if site_has_team(site, t) then table.insert(keep, t) end
    end
    o.teams = keep
  end
  local enc = cjson.encode(o)
  enc = string.gsub(enc, '"sites":{}', '"sites":[]')
  return (string.gsub(enc, '"teams":{}', '"teams":[]'))
end
local function in_sites(text, site)
  local ok, l = pcall(cjson.decode, text or '[]')
  if not ok or type(l) ~= 'table' then return false end
  for _, s in ipairs(l) do if s == site then return true end end
  return false
end
-- "<ms>-<seq>-<s|a>" → ms, seq, src; nil when absent or malformed (bad_request)
local function cursor_of(v)
  if v == nil or v == cjson.null or v == '' then return nil end
  local ms, seq, src = string.match(tostring(v), '^(%d+)%-(%d+)%-([sa])$')
  if not ms then error({code = 'bad_request', msg = 'cursor must be a next_cursor of an earlier page'}) end
  return tonumber(ms), tonumber(seq), src
end
local function ms_of(v, what)
  if v == nil or v == cjson.null or v == '' then return nil end
  local n = tonumber(v)
  if not n or n < 0 or n ~= math.floor(n) then error({code = 'bad_request', msg = what .. ' must be a time in ms since 1970'}) end
  return n
end

-- Two calls, one per slot (server/http/api/api.c CD_API_GATHER_ONE): the site's call reads
-- the site's stream (and its retention and teams) as its facts, then the call in {a} reads
-- the account stream and merges.
ops.admin_audit_list = function()
  local site = admin_site_key(p.site_key)
  local g = gathered and gathered[site]
  local csv = p.format == 'csv'
  local limit = csv and AUDIT_CSV_MAX or whole(p.limit or 50, 1, 200, 'limit')
  local retain = g and tonumber(g.retain) or
    audit_retain_ms({audit_retain_days = redis.call('HGET', sitekey(site), 'audit_retain_days')}, audit_days)
  local since = math.max(ms_of(p.since, 'since') or 0, tonumber(now) - retain)
  local upto = ms_of(p['until'], 'until')
  local cms, cseq, csrc = cursor_of(p.cursor)
  local actor = p.actor ~= nil and p.actor ~= '' and tostring(p.actor) or nil
  local action = p.action ~= nil and p.action ~= '' and tostring(p.action) or nil
  local family = action and (string.gsub(action, '%.$', '') .. '.')
  local function keep(f, src)
    if src == 'a' and not in_sites(f.s, site) then return false end
    if actor and f.actor ~= actor and string.lower(f.ae or '') ~= string.lower(actor) then return false end
    -- an action matches itself or its family: "agent" (or "agent.") matches agent.update
    if action and f.a ~= action and string.sub(f.a or '', 1, #family) ~= family then return false end
    return true
  end
  -- One stream's matches, newest first, from its start point down to since.
  local function read(key, src)
    local hi = '+'
    if upto then hi = I(upto) .. '-18446744073709551615' end
    if cms then
      -- past the cursor: (id, s) comes before (id, a) in the merged order
      local cid = I(cms) .. '-' .. I(cseq)
      if csrc == 's' and src == 'a' then hi = cid else hi = '(' .. cid end
      if upto and cms > upto then hi = I(upto) .. '-18446744073709551615' end
    end
    local out, scanned = {}, 0
    while true do
      local batch = redis.call('XREVRANGE', key, hi, I(since), 'COUNT', 200)
      for _, e in ipairs(batch) do
        scanned = scanned + 1
        local f = fields_of(e[2])
        if keep(f, src) then
          f.id, f.src = e[1], src
          table.insert(out, f)
        end
      end
      if #batch < 200 then return out, nil end
      -- stopped early: what is left of this stream is older than its last entry read
      if #out > limit or scanned >= AUDIT_SCAN_MAX then return out, {id = batch[#batch][1], src = src} end
      hi = '(' .. batch[#batch][1]
    end
  end
  local function first(x, y) -- x comes before y (newer first; s before a on one id)?
    local xm, xs = string.match(x.id, '^(%d+)%-(%d+)$')
    local ym, ys = string.match(y.id, '^(%d+)%-(%d+)$')
    xm, xs, ym, ys = tonumber(xm), tonumber(xs), tonumber(ym), tonumber(ys)
    if xm ~= ym then return xm > ym end
    if xs ~= ys then return xs > ys end
    return x.src == 's' and y.src == 'a'
  end
  local s_list, s_stop
  if g then
    s_list, s_stop = g.s_list or {}, type(g.s_stop) == 'table' and g.s_stop or nil
  else
    s_list, s_stop = read(skey(site, 'audit'), 's')
  end
  if part then
    return site_facts(function()
      return ',"retain":' .. I(retain) .. ',"s_list":' .. (#s_list > 0 and cjson.encode(s_list) or '[]') ..
        ',"s_stop":' .. (s_stop and cjson.encode(s_stop) or 'null')
    end)
  end
  local a_list, a_stop = read(P .. '{a}:audit', 'a')
  -- the page may not pass the point where a stream stopped reading (entries of that
  -- stream below it are not known yet): the next page starts there
  local floor = s_stop
  if a_stop and (not floor or first(floor, a_stop)) then floor = a_stop end
  local merged, i, j = {}, 1, 1
  local cursor = nil
  while i <= #s_list or j <= #a_list do
    local x
    if j > #a_list or (i <= #s_list and first(s_list[i], a_list[j])) then
      x = s_list[i] i = i + 1
    else
      x = a_list[j] j = j + 1
    end
    if floor and first(floor, x) then cursor = floor break end
    if #merged == limit then cursor = merged[#merged] break end
    table.insert(merged, x)
  end
  if not cursor and floor then cursor = floor end
  local rows = {}
  for _, f in ipairs(merged) do
    local b, a = f.b or '{}', f.f or '{}'
    if f.src == 'a' then b, a = scrub(b, site), scrub(a, site) end
    if csv then
      table.insert(rows, '{"time":' .. S(iso(f.ts)) .. ',"actor":' .. S(f.actor or '') .. ',"actor_email":' ..
        S(f.ae or '') .. ',"address":' .. S(f.ip or '') .. ',"action":' .. S(f.a or '') .. ',"target":' ..
        S(f.t or '') .. ',"before":' .. S(b) .. ',"after":' .. S(a) .. '}')
    else
      table.insert(rows, '{"id":' .. S(f.id .. '-' .. f.src) .. ',"ts":' .. N(f.ts) .. ',"time":' .. S(iso(f.ts)) ..
        ',"actor":' .. S(f.actor or '') .. ',"actor_email":' .. S(f.ae or '') .. ',"address":' .. S(f.ip or '') ..
        ',"action":' .. S(f.a or '') .. ',"target":' .. S(f.t or '') .. ',"scope":' ..
        S(f.src == 's' and 'site' or 'account') .. ',"before":' .. b .. ',"after":' .. a .. '}')
    end
  end
  if csv then
    return reply(200, '{"columns":["time","actor","actor_email","address","action","target","before","after"],"rows":[' ..
      table.concat(rows, ',') .. ']}')
  end
  local next_cursor = cursor and S(cursor.id .. '-' .. cursor.src) or 'null'
  return reply(200, '{"entries":[' .. table.concat(rows, ',') .. '],"next_cursor":' .. next_cursor ..
    ',"retain_days":' .. I(retain / AUDIT_DAY_MS) .. '}')
end

return dispatch(ops)
