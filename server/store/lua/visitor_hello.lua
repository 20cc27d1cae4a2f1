-- ARGV: P, site, vid (from a valid token, or ''), user_id (verified, or ''), name, email, new_vid, now, max_convs,
--       page url, page title, referrer, attributes (compact JSON object or '')
local site, vid, uid, name, email, new_vid, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local max_convs = tonumber(ARGV[9])
local page_url, page_title, referrer, attrs = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
if redis.call('EXISTS', sitekey(site)) == 0 then return fail('unauthorized', 'unknown site') end
local created = false
if uid ~= '' then
  local ukey = skey(site, 'user:' .. uid)
  vid = redis.call('GET', ukey)
  if not vid then
    -- Never merge an anonymous visitor into an identified one: a new visitor for the user.
    vid = new_vid
    redis.call('SET', ukey, vid)
  end
elseif vid ~= '' then
  -- a visitor record lives in its site: a token of another site finds none here
else
  vid = new_vid
end
local vkey = vkey(site, vid)
local v, convs = nil, {}
if uid == '' and redis.call('EXISTS', vkey) == 0 then
  -- An anonymous visitor without a conversation leaves nothing in Redis (ARCHITECTURE
  -- invariant 9, bounded Redis): the node keeps the hello's profile and conv_start
  -- writes the record with the first conversation. The signed token carries the id.
  v = {name = name ~= '' and name or nil, email = email ~= '' and email or nil, attributes = attrs}
else
  if redis.call('EXISTS', vkey) == 0 then
    created = true
    redis.call('HSET', vkey, 'id', vid, 'site', site, 'created_at', now, 'user_id', uid)
  end
  if name ~= '' then redis.call('HSET', vkey, 'name', name) end
  if email ~= '' then redis.call('HSET', vkey, 'email', email) end
  if page_url ~= '' then redis.call('HSET', vkey, 'page_url', page_url, 'page_title', page_title, 'referrer', referrer) end
  if attrs ~= '' then redis.call('HSET', vkey, 'attributes', attrs) end
  redis.call('HSET', vkey, 'last_seen_at', now)
  v = hgetall(vkey)
  for _, cid in ipairs(redis.call('ZREVRANGE', vkey .. ':convs', 0, max_convs - 1)) do
    local c = hgetall(ckey(cid, site))
    if c then table.insert(convs, conv_json(c)) end
  end
end
local online = site_online(site)
-- what the widget shows: the site's title, colour, greetings, form categories, required fields
local st = hgetall(sitekey(site)) or {}
local w = {}
if st.widget and st.widget ~= '' then
  local ok, v = pcall(cjson.decode, st.widget)
  if ok and type(v) == 'table' then w = v end
end
local cats, req = {}, {}
for _, x in ipairs(type(w.categories) == 'table' and w.categories or {}) do table.insert(cats, S(x)) end
for _, x in ipairs(type(w.required_fields) == 'table' and w.required_fields or {}) do table.insert(req, S(x)) end
-- unset settings are null so that the page's own data-* attributes and defaults apply
local site_cfg = '{"key":' .. S(site) .. ',"name":' .. S(st.name) .. ',"title":' .. J(w.title) .. ',"color":' .. J(w.color) ..
  ',"greeting":' .. J(w.greeting_en) .. ',"greeting_zh":' .. J(w.greeting_zh) ..
  ',"categories":' .. (#cats > 0 and ('[' .. table.concat(cats, ',') .. ']') or 'null') ..
  ',"required":' .. (#req > 0 and ('[' .. table.concat(req, ',') .. ']') or 'null') ..
  ',"survey":{"nps":' .. tostring(type(w.survey) == 'table' and w.survey.nps == true) .. ',"ces":' ..
  tostring(type(w.survey) == 'table' and w.survey.ces == true) .. '}' ..
  -- knowledge base (docs/kb.md): the widget offers help articles only when there are some
  ',"kb":' .. (redis.call('SCARD', skey(site, 'kb:pub')) > 0 and 'true' or 'false') ..
  -- attachments (docs/attachments.md): false when the site's file_types is [] ('-'), so the
  -- widget leaves out the pre-chat form's Files field
  ',"attachments":' .. tostring(st.file_types ~= '-') .. '}'
return '{"site_config":' .. site_cfg .. ',"visitor":{"id":' .. S(vid) .. ',"name":' .. J(v.name) .. ',"email":' .. J(v.email) ..
  ',"user_id":' .. J(v.user_id) .. ',"attributes":' .. ((v.attributes and v.attributes ~= '') and v.attributes or '{}') ..
  '},"created":' .. tostring(created) .. ',"stored":' .. tostring(v.id ~= nil) ..
  ',"conversations":[' .. table.concat(convs, ',') .. '],"agents_online":' .. tostring(online) .. '}'
