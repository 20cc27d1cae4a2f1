-- The knowledge base (docs/kb.md): articles per site, an inverted index for full-text
-- search, suggestions for a conversation, and the public read-only routes for the widget.
-- Shared part in _api.lua. Tokens are made in C (server/kb, include/chatdesk/kb.h) by the
-- API layer and arrive as params: q_tokens (array, the query), title_tokens and
-- body_tokens (object token -> occurrences, on create/patch).
-- Keys (docs/keyspace.md): P..'{s:<site>}:kb:a:<id>' article hash, ':all' zset id ->
-- updated_at, ':pub' set of published ids, ':t:<token>' zset id -> term weight,
-- ':cats' hash category -> article count, ':seq' id counter.
local ops = {}

local MAX_TITLE, MAX_BODY, MAX_CAT = 200, 20000, 64
local MAX_QUERY_TOKENS, MAX_POSTINGS = 32, 2000

local function kb(site) return skey(site, 'kb:') end
local function bad(msg) error({code = 'bad_request', msg = msg}) end
local function not_found(what) error({code = 'not_found', msg = 'no such ' .. what}) end

-- The site of an agent route: one of the agent's sites (else 404, never a hint).
local function agent_site()
  if not key_ok(p.site) or not my_site(p.site) then not_found('site') end
  return p.site
end
-- The site of a public route: it must exist.
local function public_site()
  if not key_ok(p.site) or redis.call('EXISTS', sitekey(p.site)) == 0 then not_found('site') end
  return p.site
end
local function id_ok(v) return type(v) == 'string' and string.match(v, '^%d+$') ~= nil and #v <= 12 end
local function article(site, id)
  if not id_ok(id) then return nil end
  return hgetall(kb(site) .. 'a:' .. id)
end

local function article_json(a, with_body)
  return '{"id":' .. S(a.id) .. ',"site":' .. S(a.site) .. ',"title":' .. S(a.title) ..
    (with_body and (',"body":' .. S(a.body)) or '') ..
    ',"category":' .. S(a.category) .. ',"locale":' .. S(a.locale) .. ',"status":' .. S(a.status) ..
    ',"author":' .. S(a.author) .. ',"created_at":' .. N(a.created_at) .. ',"updated_at":' .. N(a.updated_at) .. '}'
end
-- Public view: no author, no status (always published).
local function public_json(a, with_body)
  return '{"id":' .. S(a.id) .. ',"site":' .. S(a.site) .. ',"title":' .. S(a.title) ..
    (with_body and (',"body":' .. S(a.body)) or '') ..
    ',"category":' .. S(a.category) .. ',"locale":' .. S(a.locale) .. ',"updated_at":' .. N(a.updated_at) .. '}'
end

-- {token: count} from C; anything else is a caller error.
local function token_counts(v, what)
  if v == nil or v == cjson.null then return {} end
  if type(v) ~= 'table' then bad(what .. ' must be an object') end
  local t = {}
  for k, n in pairs(v) do
    if type(k) ~= 'string' or #k > 64 or type(n) ~= 'number' then bad(what .. ' must map tokens to counts') end
    t[k] = n
  end
  return t
end
-- Term weight of an article: title occurrences count three times, capped so one
-- repeated word cannot dominate.
local function weights(tt, bt)
  local w = {}
  for k, n in pairs(bt) do w[k] = math.min(n, 10) end
  for k, n in pairs(tt) do w[k] = (w[k] or 0) + 3 * math.min(n, 5) end
  return w
end
local function unindex(site, a)
  if not a.tt then return end
  local ok1, tt = pcall(cjson.decode, a.tt)
  local ok2, bt = pcall(cjson.decode, a.bt or '{}')
  for k in pairs(weights(ok1 and tt or {}, ok2 and bt or {})) do
    redis.call('ZREM', kb(site) .. 't:' .. k, a.id)
  end
end
local function index(site, id, tt, bt)
  for k, w in pairs(weights(tt, bt)) do redis.call('ZADD', kb(site) .. 't:' .. k, w, id) end
end
local function cat_count(site, cat, d)
  if cat == nil or cat == '' then return end
  if redis.call('HINCRBY', kb(site) .. 'cats', cat, d) <= 0 then redis.call('HDEL', kb(site) .. 'cats', cat) end
end

local function check_fields(x, partial)
  x.title = str(p.title, MAX_TITLE, 'title')
  x.body = str(p.body, MAX_BODY, 'body')
  x.category = str(p.category, MAX_CAT, 'category')
  x.locale = str(p.locale, 8, 'locale')
  x.status = str(p.status, 16, 'status')
  if not partial then
    if not x.title or x.title == '' then bad('title is required') end
    x.body = x.body or ''
    x.category = x.category or ''
    x.locale = x.locale or 'en'
    x.status = x.status or 'draft'
  end
  if x.title and string.find(x.title, '^%s*$') then bad('title must not be empty') end
  if x.locale and x.locale ~= 'en' and x.locale ~= 'zh-CN' then bad('locale must be en or zh-CN') end
  if x.status and x.status ~= 'draft' and x.status ~= 'published' then bad('status must be draft or published') end
  if x.category and string.find(x.category, '[%c]') then bad('category must not contain control characters') end
end

-- what the audit log keeps of an article
local function kb_audit(a)
  return {title = a.title, body = a.body, category = a.category, locale = a.locale, status = a.status}
end
ops.kb_create = function()
  local site = agent_site()
  need_admin()
  local x = {}
  check_fields(x, false)
  local tt, bt = token_counts(p.title_tokens, 'title_tokens'), token_counts(p.body_tokens, 'body_tokens')
  local id = I(redis.call('INCR', kb(site) .. 'seq'))
  local a = {id = id, site = site, title = x.title, body = x.body, category = x.category, locale = x.locale,
    status = x.status, author = aid, created_at = now, updated_at = now, tt = cjson.encode(tt), bt = cjson.encode(bt)}
  local flat = {}
  for k, v in pairs(a) do table.insert(flat, k) table.insert(flat, v) end
  redis.call('HSET', kb(site) .. 'a:' .. id, unpack(flat))
  redis.call('ZADD', kb(site) .. 'all', now, id)
  if a.status == 'published' then redis.call('SADD', kb(site) .. 'pub', id) end
  cat_count(site, a.category, 1)
  index(site, id, tt, bt)
  audit_site(site, 'kb.create', id, nil, kb_audit(a))
  return reply(201, '{"article":' .. article_json(a, true) .. '}')
end

ops.kb_patch = function()
  local site = agent_site()
  need_admin()
  local a = article(site, p.id)
  if not a then not_found('article') end
  local x = {}
  check_fields(x, true)
  local before = kb_audit(a)
  local key = kb(site) .. 'a:' .. a.id
  local retitle, rebody = x.title ~= nil, x.body ~= nil
  if retitle or rebody then
    unindex(site, a)
    local tt = retitle and token_counts(p.title_tokens, 'title_tokens') or cjson.decode(a.tt or '{}')
    local bt = rebody and token_counts(p.body_tokens, 'body_tokens') or cjson.decode(a.bt or '{}')
    a.tt, a.bt = cjson.encode(tt), cjson.encode(bt)
    index(site, a.id, tt, bt)
    redis.call('HSET', key, 'tt', a.tt, 'bt', a.bt)
  end
  if x.category and x.category ~= a.category then
    cat_count(site, a.category, -1)
    cat_count(site, x.category, 1)
  end
  for _, f in ipairs({'title', 'body', 'category', 'locale', 'status'}) do
    if x[f] then a[f] = x[f] redis.call('HSET', key, f, x[f]) end
  end
  a.updated_at = now
  redis.call('HSET', key, 'updated_at', now)
  redis.call('ZADD', kb(site) .. 'all', now, a.id)
  if a.status == 'published' then redis.call('SADD', kb(site) .. 'pub', a.id)
  else redis.call('SREM', kb(site) .. 'pub', a.id) end
  audit_site(site, 'kb.update', a.id, before, kb_audit(a))
  return reply(200, '{"article":' .. article_json(a, true) .. '}')
end

ops.kb_delete = function()
  local site = agent_site()
  need_admin()
  local a = article(site, p.id)
  if not a then not_found('article') end
  unindex(site, a)
  cat_count(site, a.category, -1)
  redis.call('DEL', kb(site) .. 'a:' .. a.id)
  redis.call('ZREM', kb(site) .. 'all', a.id)
  redis.call('SREM', kb(site) .. 'pub', a.id)
  audit_site(site, 'kb.delete', a.id, kb_audit(a), nil)
  return reply(204, 'null')
end

ops.kb_get = function()
  local site = agent_site()
  local a = article(site, p.id)
  if not a then not_found('article') end
  return reply(200, '{"article":' .. article_json(a, true) .. '}')
end

-- Newest first, filtered by status / category / locale; paged.
ops.kb_list = function()
  local site = agent_site()
  local page = math.max(1, math.floor(tonumber(p.page or 1) or 1))
  local per = math.min(100, math.max(1, math.floor(tonumber(p.per_page or 50) or 50)))
  local rows = {}
  for _, id in ipairs(redis.call('ZREVRANGE', kb(site) .. 'all', 0, -1)) do
    local a = hgetall(kb(site) .. 'a:' .. id)
    if a and (not p.status or a.status == p.status) and (not p.category or a.category == p.category) and
       (not p.locale or a.locale == p.locale) then
      table.insert(rows, a)
    end
  end
  local out = {}
  for i = (page - 1) * per + 1, math.min(#rows, page * per) do table.insert(out, article_json(rows[i], false)) end
  return reply(200, '{"articles":[' .. table.concat(out, ',') .. '],"page":' .. I(page) .. ',"per_page":' .. I(per) ..
    ',"total":' .. I(#rows) .. '}')
end

local function categories(site)
  local out = {}
  local h = redis.call('HGETALL', kb(site) .. 'cats')
  for i = 1, #h, 2 do table.insert(out, h[i]) end
  table.sort(out)
  local js = {}
  for _, c in ipairs(out) do table.insert(js, S(c)) end
  return reply(200, '{"categories":[' .. table.concat(js, ',') .. ']}')
end
ops.kb_categories = function() return categories(agent_site()) end

-- A plain-text excerpt around the first query term found in the body (whole UTF-8
-- characters), or the body's start.
local function snippet(body, terms)
  body = body or ''
  local lower, at = string.lower(body), nil
  for _, t in ipairs(terms) do
    local i = string.find(lower, t, 1, true)
    if i and (not at or i < at) then at = i end
  end
  local from = math.max(1, (at or 1) - 40)
  local to = from + 160
  while from > 1 and from <= #body and string.byte(body, from) >= 0x80 and string.byte(body, from) < 0xC0 do from = from + 1 end
  while to < #body and string.byte(body, to + 1) >= 0x80 and string.byte(body, to + 1) < 0xC0 do to = to - 1 end
  local s = string.gsub(string.sub(body, from, to), '%s+', ' ')
  return (from > 1 and '…' or '') .. s .. (to < #body and '…' or '')
end

-- Score the site's articles for the query tokens: sum over the terms of the article's
-- term weight times the term's inverse document frequency; a single CJK character
-- counts half (its bigrams carry the meaning). Only the postings of the query's terms
-- are read, never all articles.
local function search(site, toks, published_only, limit, status, locale)
  if type(toks) ~= 'table' then bad('q is required') end
  local seen, terms = {}, {}
  for _, t in ipairs(toks) do
    if type(t) == 'string' and t ~= '' and #t <= 64 and not seen[t] and #terms < MAX_QUERY_TOKENS then
      seen[t] = true
      table.insert(terms, t)
    end
  end
  local total = math.max(1, redis.call('ZCARD', kb(site) .. 'all'))
  local score = {}
  for _, t in ipairs(terms) do
    local key = kb(site) .. 't:' .. t
    local df = redis.call('ZCARD', key)
    if df > 0 then
      local idf = math.log(1 + total / df)
      if #t <= 4 and string.byte(t, 1) >= 0xE0 then idf = idf * 0.5 end
      local post = redis.call('ZREVRANGE', key, 0, MAX_POSTINGS - 1, 'WITHSCORES')
      for i = 1, #post, 2 do
        score[post[i]] = (score[post[i]] or 0) + tonumber(post[i + 1]) * idf
      end
    end
  end
  local ranked = {}
  for id, s in pairs(score) do table.insert(ranked, {id, s}) end
  table.sort(ranked, function(x, y)
    if x[2] ~= y[2] then return x[2] > y[2] end
    return tonumber(x[1]) < tonumber(y[1])
  end)
  local out = {}
  for _, r in ipairs(ranked) do
    if #out >= limit then break end
    if not published_only or redis.call('SISMEMBER', kb(site) .. 'pub', r[1]) == 1 then
      local a = hgetall(kb(site) .. 'a:' .. r[1])
      if a and (not status or a.status == status) and (not locale or a.locale == locale) then
        local j = published_only and public_json(a, false) or article_json(a, false)
        table.insert(out, string.sub(j, 1, -2) .. ',"snippet":' .. S(snippet(a.body, terms)) ..
          ',"score":' .. string.format('%.3f', r[2]) .. '}')
      end
    end
  end
  return '[' .. table.concat(out, ',') .. ']'
end
local function limit_of(default)
  return math.min(20, math.max(1, math.floor(tonumber(p.limit or default) or default)))
end
local function query()
  local q = str(p.q, 500, 'q')
  if not q or string.find(q, '^%s*$') then bad('q is required') end
  return p.q_tokens
end
local function locale_filter()
  if p.locale == nil then return nil end
  if p.locale ~= 'en' and p.locale ~= 'zh-CN' then bad('locale must be en or zh-CN') end
  return p.locale
end

ops.kb_search = function()
  local site = agent_site()
  local toks = query()
  if p.status and p.status ~= 'draft' and p.status ~= 'published' then bad('status must be draft or published') end
  return reply(200, '{"articles":' .. search(site, toks, false, limit_of(10), p.status, locale_filter()) .. '}')
end

-- Suggestions for a conversation, in two steps (the text is tokenized in C between them):
-- kb_suggest_text returns the conversation's subject and its last visitor messages,
-- kb_suggest searches the conversation's site (published articles) for them.
local function suggest_conv()
  if type(p.conversation) ~= 'string' or #p.conversation > 80 then bad('conversation is required') end
  -- a site call: the conversation's site (its id names it), else the caller's first site
  local c = conv_in(p.conversation, as_caller and {CSITE} or my_sites)
  if not c or not my_site(c.site) then not_found('conversation') end
  return c
end
ops.kb_suggest_text = function()
  local c = suggest_conv()
  local parts = {c.subject or ''}
  local n = 0
  for _, e in ipairs(redis.call('XREVRANGE', ckey(c.id, c.site) .. ':msgs', '+', '-', 'COUNT', 50)) do
    local f = e[2]
    local t = {}
    for i = 1, #f, 2 do t[f[i]] = f[i + 1] end
    if t.ak == 'visitor' and t.priv ~= '1' then
      table.insert(parts, string.sub(t.body or '', 1, 1000))
      n = n + 1
      if n >= 3 then break end
    end
  end
  return reply(200, '{"text":' .. S(table.concat(parts, '\n')) .. '}')
end
ops.kb_suggest = function()
  local c = suggest_conv()
  local toks = p.q_tokens
  if type(toks) ~= 'table' then toks = {} end
  return reply(200, '{"conversation":' .. S(c.id) .. ',"articles":' .. search(c.site, toks, true, limit_of(5)) .. '}')
end

-- public, read-only: published articles only
ops.public_kb_search = function()
  local site = public_site()
  local toks = query()
  return reply(200, '{"articles":' .. search(site, toks, true, limit_of(5), nil, locale_filter()) .. '}')
end
ops.public_kb_get = function()
  local site = public_site()
  local a = article(site, p.id)
  if not a or a.status ~= 'published' then not_found('article') end
  return reply(200, '{"article":' .. public_json(a, true) .. '}')
end

return dispatch(ops)
