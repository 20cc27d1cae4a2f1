-- Prepended (after _common) to every api*.lua script: the HTTP API's shared part.
-- ARGV: P, op, agent id (verified token), params (JSON object), now, id (fresh), retain,
-- token epoch, token jti, token expiry (ms), mode ('', 'operator', 'as', 'after'), client
-- address, the node's audit_retain_days (the audit log, _audit.lua); a site call ('as')
-- adds the caller's record, 'part' or '', the site's intervals (server/http/api/api_int.h
-- CD_API_ARG_*). KEYS: in the caller's own slot ({a}; `auth`, `me`, `logout`, the agent
-- operations) the caller's agent record, then its token deny-list P{a}:revoked:<aid>; in a
-- site's slot (every other route) the site's record P{s:<site>}:site (public routes: the
-- same, without a caller).
-- Each api*.lua defines `ops` (one function per operation, docs/api.md) and ends
-- with `return dispatch(ops)`; a reply is {"status":<http status>,"body":<json>} or a
-- {"err":…} failure.
local op, aid, now, fresh, retain = ARGV[2], ARGV[3], ARGV[5], ARGV[6], tonumber(ARGV[7])
local ok_p, p = pcall(cjson.decode, ARGV[4])
if not ok_p or type(p) ~= 'table' then return fail('bad_request', 'body must be a JSON object') end
-- The operator: `chatdeskd admin` passes ARGV[11] 'operator' (the HTTP API never does).
-- It has no agent record and is an owner of every site there is, so the CLI runs the API's
-- own operations and validation (ARCHITECTURE: one implementation).
local operator = aid == '' and ARGV[11] == 'operator'
-- A site call of the HTTP API (server/http/api/api.c): ARGV[11] 'as', ARGV[14] the
-- caller's record as the `auth` call in {a} answered it a moment before (token checked
-- there), so the call reads nothing outside the site's slot. ARGV[15] 'part': one site's
-- share of a list over the caller's sites, which the node merges (`list_reply`).
local as_caller = aid ~= '' and ARGV[11] == 'as'
-- An API token's check (api_tokens.lua token_auth) in the token's site: ARGV[11] 'token',
-- aid the token's id, KEYS the site's record and the token's. It reads no agent record.
local token_check = aid ~= '' and ARGV[11] == 'token'
local part = as_caller and ARGV[15] == 'part'
-- ARGV[16] in a site call: the site's business-hours intervals from the node's calendar
-- (iv_parse), for the SLA clocks a change re-aligns in the same call.
local site_iv = as_caller and iv_parse(ARGV[16]) or nil
-- An operation about agents, which live in {a}, that needs facts of the caller's sites (their
-- teams, their agents, each agent's load there): the node asks each site first (the part
-- calls answer `site_facts`), then calls in {a} with ARGV[11] 'after' and ARGV[14] the
-- sites' answers (server/http/api/api.c, CD_API_GATHER). Such a call writes only {a}:
-- what changes in the sites follows in steps of their own (`then` in its reply).
local gathered = nil
if aid ~= '' and ARGV[11] == 'after' then
  local ok_g, g = pcall(cjson.decode, ARGV[14])
  gathered = {}
  for _, f in ipairs(ok_g and type(g) == 'table' and g or {}) do
    if type(f.site) == 'string' then gathered[f.site] = f end
  end
end
local function key_ok(v) return type(v) == 'string' and #v >= 1 and #v <= 64 and not string.find(v, '[^A-Za-z0-9_-]') end
-- aid is '' only for the public routes (api/v1/public/…, no token) and the operator: me stays nil
local me, my_sites = nil, {}
if as_caller then
  me = cjson.decode(ARGV[14])
  my_sites = json_list(me.sites)
  -- a site that requires two-factor login serves only agents who use it (docs/ops.md
  -- "Two-factor login"): a login from before the requirement stops here, as its open
  -- connections were closed when it was turned on (admin_site_patch)
  if me.totp == '0' and string.sub(KEYS[1], -5) == ':site' and redis.call('HGET', KEYS[1], 'require_2fa') == '1' then
    return fail('forbidden', 'two-factor login required: sign in again to set it up')
  end
elseif aid ~= '' and not token_check then
  me = hgetall(P .. '{a}:agent:' .. aid)
  if not me or me.disabled == '1' then return fail('unauthorized', 'unknown or disabled agent') end
  if not token_live(me, ARGV[8], ARGV[9], KEYS[2]) then return fail('unauthorized', 'token revoked') end
  my_sites = json_list(me.sites)
end
local function my_site(s)
  if operator then return key_ok(s) and redis.call('EXISTS', sitekey(s)) == 1 end
  for _, k in ipairs(my_sites) do if k == s then return true end end
  return false
end
-- A visitor of one of the caller's sites (its record is its site's), or nil.
local function visitor_of(vid)
  for _, s in ipairs(my_sites) do
    local v = hgetall(vkey(s, vid))
    if v then return v end
  end
  return nil
end
-- A site's facts: gathered by the site calls before this one, else read here.
local function site_has_team(s, t)
  if gathered then
    for _, x in ipairs(gathered[s] and gathered[s].teams or {}) do if x == t then return true end end
    return false
  end
  return redis.call('HEXISTS', skey(s, 'teams'), t) == 1
end
local function load_in(s, id)
  if gathered then return tonumber(gathered[s] and gathered[s].loads and gathered[s].loads[id] or 0) or 0 end
  return agent_load(s, id)
end
local function site_agents(s)
  if gathered then return gathered[s] and gathered[s].agents or {} end
  return redis.call('SMEMBERS', skey(s, 'agents'))
end
-- Roles: agent < admin (administers its own sites) < owner (also creates sites and grants
-- the owner role; docs/ops.md "Roles"). An owner is an admin everywhere it is a member.
local is_owner = operator or (me ~= nil and me.role == 'owner')
local is_admin = is_owner or (me ~= nil and me.role == 'admin')
-- A caller that is an API token (its check answered the record: kind 'token', role
-- 'admin' with the admin scope, else 'agent', its one site) acts as 'token:<id>'.
local by_token = me ~= nil and me.kind == 'token'
if me then event_by = (by_token and 'token:' or 'agent:') .. aid end
-- The audit log (_audit.lua): who acts, from where (the client address the node saw; the
-- CLI's is ''), and the node's default retention (a site's own audit_retain_days wins).
local audit_days = tonumber(ARGV[13]) or 90
local audit_who = {id = operator and 'operator' or (by_token and 'token:' .. aid or aid), email = me and me.email or '',
  addr = ARGV[12] or '', now = now}
local function audit_site(site, action, target, before, after)
  audit_who.retain_ms = audit_retain_ms({audit_retain_days = redis.call('HGET', sitekey(site), 'audit_retain_days')},
    audit_days)
  audit_append(skey(site, 'audit'), audit_who, action, target, before, after)
end
local function audit_account(action, target, before, after, sites)
  audit_who.retain_ms = audit_days * AUDIT_DAY_MS
  audit_append(P .. '{a}:audit', audit_who, action, target, before, after, sites)
end
local function reply(status, body) return '{"status":' .. I(status) .. ',"body":' .. body .. '}' end
local function str(v, max, what)
  if v == nil or v == cjson.null then return nil end
  if type(v) ~= 'string' or #v > max then error({code = 'bad_request', msg = what .. ' must be a string of at most ' .. max .. ' bytes'}) end
  return v
end
-- The admin operations' value rules, one set for the API and the CLI; each raises
-- bad_request with a message that names the field.
local function bad(msg) error({code = 'bad_request', msg = msg}) end
-- Text without control characters (lines: line breaks and tabs allowed), at most max bytes.
local function text(v, max, what, lines)
  local ctl = lines and '[%z\1-\8\11-\31\127]' or '%c'
  if type(v) ~= 'string' or #v > max or string.find(v, ctl) then
    bad(what .. ' must be at most ' .. max .. ' bytes of text without control characters' ..
      (lines and ' (line breaks allowed)' or ''))
  end
  return v
end
-- An address a mail may carry (server/mail/mime.c cd_mail_addr_ok): local@domain, printable
-- ASCII without spaces, brackets, quotes or a second '@'.
local function mail_addr_of(v, what)
  if type(v) ~= 'string' or #v > 254 or not string.match(v, '^[!#-\'*+%-%./0-9=?A-Z^-~]+@[%w%-]+[%w%.%-]*[%w]$') then
    bad(what .. ' must be an e-mail address (local@domain)')
  end
  return v
end
local function name_of(v, what)
  if type(v) ~= 'string' or v == '' or #v > 200 or string.find(v, '%c') then
    bad(what .. ' must be 1-200 bytes of text without control characters')
  end
  return v
end
local function key_of(v, what)
  if not key_ok(v) then bad(what .. ' must be 1-64 characters of A-Z a-z 0-9 _ -') end
  return v
end
-- A team key: like a site key, but '_' names the queue of chats without a team.
local function team_key_of(v)
  key_of(v, 'team key')
  if v == '_' then bad("team '_' is reserved (it names the queue of chats without a team)") end
  return v
end
-- A whole number in lo..hi: a JSON number, or a string of decimal digits (the CLI's text).
local function whole(v, lo, hi, what)
  local n = type(v) == 'number' and v or (type(v) == 'string' and string.match(v, '^%-?%d+$') and tonumber(v))
  if not n or n ~= math.floor(n) or n < lo or n > hi then bad(what .. ' must be a whole number from ' .. lo .. ' to ' .. hi) end
  return n
end
local function email_of(v)
  if type(v) ~= 'string' or #v > 254 or string.find(v, '%c') or not string.match(v, '^[^@%s]+@[^@%s]+$') then
    bad('email is not an e-mail address')
  end
  return string.lower(v)
end
local function secret_of(v)
  if v == nil or v == cjson.null or v == '' then return '' end
  if type(v) ~= 'string' or #v < 16 or #v > 512 or string.find(v, '%c') then
    bad('identity_secret must be 16-512 bytes of text without control characters')
  end
  return v
end
-- An exact origin as browsers send it: http or https, a lowercase host (DNS name, IPv4 or
-- [IPv6]) and an optional port that is not the scheme's default, nothing after it.
-- Anything else would never match the Origin header and silently lock the widget out.
local function origin_ok(o)
  if type(o) ~= 'string' or #o > 512 then return false end
  local scheme, host, port = string.match(o, '^(https?)://(%[[0-9a-f:.]+%])(.*)$')
  if not scheme then
    scheme, host, port = string.match(o, '^(https?)://([a-z0-9.-]+)(.*)$')
    if not host or string.find(host, '^[.-]') or string.find(host, '[.-]$') or string.find(host, '%.%.') or
       string.find(host, '%.%-') or string.find(host, '%-%.') then
      return false
    end
  end
  if port == '' then return true end
  local n = string.match(port, '^:([1-9]%d?%d?%d?%d?)$')
  n = tonumber(n)
  return n ~= nil and n <= 65535 and n ~= (scheme == 'https' and 443 or 80)
end
local function origins_of(v)
  if type(v) ~= 'table' or #v == 0 then bad('origins must list at least one origin') end
  for _, o in ipairs(v) do
    if not origin_ok(o) then
      bad('origin must look like https://example.com[:port]: got ' .. tostring(o) ..
        ' (lowercase scheme and host, no path, no trailing slash, no default port)')
    end
  end
  return v
end
-- What of an agent the caller may see: only the caller's own sites, and only teams of
-- those sites (an agent shared with another tenant must not reveal that tenant's keys).
-- full: every site of the agent is the caller's, so the caller controls the agent fully
-- (an admin never controls an owner; an owner controls every agent it shares a site with).
local function agent_view(a)
  if operator then return a.sites or '[]', a.teams or '[]', true end
  local sites, teams, full = {}, {}, true
  for _, s in ipairs(json_list(a.sites)) do
    if my_site(s) then table.insert(sites, S(s)) else full = false end
  end
  for _, t in ipairs(json_list(a.teams)) do
    for _, s in ipairs(my_sites) do
      if site_has_team(s, t) then table.insert(teams, S(t)) break end
    end
  end
  if a.role == 'owner' and not is_owner then full = false end
  return '[' .. table.concat(sites, ',') .. ']', '[' .. table.concat(teams, ',') .. ']', full or is_owner
end
-- An agent's load in one site, or over the sites the caller sees (max_chats bounds each
-- site's load).
local function agent_load_seen(a)
  local n = 0
  for _, s in ipairs(json_list(a.sites)) do if my_site(s) then n = n + load_in(s, a.id) end end
  return n
end
local function agent_json(a, site)
  local sites, teams, full = a.sites or '[]', a.teams or '[]', true
  if a.id ~= aid then sites, teams, full = agent_view(a) end
  return '{"id":' .. S(a.id) .. ',"name":' .. S(a.name) .. ',"email":' .. S(a.email) .. ',"role":' .. S(a.role) ..
    ',"teams":' .. teams .. ',"sites":' .. sites .. ',"status":' .. S(a.status or 'offline') ..
    ',"max_chats":' .. N(a.max_chats) .. ',"disabled":' .. (a.disabled == '1' and 'true' or 'false') ..
    ',"scoped":' .. tostring(not full) ..
    ',"totp":' .. tostring(redis.call('HEXISTS', P .. '{a}:agent:' .. a.id .. ':totp', 'secret') == 1) .. ',"load":' .. I(site and load_in(site, a.id) or agent_load_seen(a)) .. '}'
end
-- A site's attachment categories as the API shows them: null (the node's) or a list.
local function file_types_json(v)
  if not v or v == '' then return 'null' end
  if v == '-' then return '[]' end
  local out = {}
  for c in string.gmatch(v, '[^,]+') do out[#out + 1] = S(c) end
  return '[' .. table.concat(out, ',') .. ']'
end
local function site_json(s)
  local widget = (s.widget and s.widget ~= '') and s.widget or '{}'
  local ct = (s.category_teams and s.category_teams ~= '') and s.category_teams or '{}'
  return '{"key":' .. S(s.key) .. ',"name":' .. S(s.name) .. ',"origins":' .. (s.origins or '[]') ..
    ',"identity_verification":' .. ((s.identity_secret and s.identity_secret ~= '') and 'true' or 'false') ..
    ',"auto_assign":' .. (s.auto_assign == '0' and 'false' or 'true') .. ',"category_teams":' .. ct ..
    ',"auto_close_s":' .. (s.auto_close_s or '86400') .. ',"unanswered_after_s":' .. (s.unanswered_after_s or '120') ..
    ',"ack_text_en":' .. J(s.ack_text_en) .. ',"ack_text_zh":' .. J(s.ack_text_zh) .. ',"widget":' .. widget ..
    ',"health_threshold":' .. (s.health_threshold or '3') .. ',"health_window_days":' .. (s.health_window_days or '30') ..
    ',"report_utc_offset_min":' .. (s.report_utc_offset_min or '0') .. ',"audit_retain_days":' ..
    ((s.audit_retain_days and s.audit_retain_days ~= '') and s.audit_retain_days or I(audit_days)) ..
    ',"require_2fa":' .. tostring(s.require_2fa == '1') ..
    ',"only_assignee_reply":' .. tostring(s.only_assignee_reply == '1') ..
    ',"file_max_bytes":' .. N(s.file_max_bytes) .. ',"file_types":' .. file_types_json(s.file_types) ..
    ',"mail_from":' .. J(s.mail_from) .. ',"mail_from_name":' .. J(s.mail_from_name) .. ',"mail_reply":' .. J(s.mail_reply) .. '}'
end
local function site_changed(key)
  publish('sites', '0 a -\n{"type":"site.changed","key":' .. S(key) .. '}')
end
-- The agent's settings or sites changed: nodes bring its record in each of its sites in
-- line (agent_sync, then agent_site once per site; docs/keyspace.md).
local function agent_changed(id)
  publish('sites', '0 a -\n{"type":"agent.changed","id":' .. S(id) .. '}')
end
local function need_admin() if not is_admin then error({code = 'forbidden', msg = 'admin role required'}) end end
local function need_owner() if not is_owner then error({code = 'forbidden', msg = 'owner role required'}) end end
-- The key of a site the caller administers (admin role, member of the site), else not_found.
-- (A gathered call in {a}: the site's own call checked that it exists and gave its facts.)
local function admin_site_key(key)
  need_admin()
  if type(key) ~= 'string' or not my_site(key) or
     (gathered and not gathered[key]) or (not gathered and redis.call('EXISTS', sitekey(key)) == 0) then
    error({code = 'not_found', msg = 'no such site'})
  end
  return key
end
-- A ticket by its number, which counts per site: in a site call (the node asks the
-- caller's sites in turn, or the one asked for) the call's site, else the caller's first
-- site that has the number.
local function conv_of_ticket(number)
  for _, s in ipairs(part and {CSITE} or (p.site and {p.site} or my_sites)) do
    local cid = my_site(s) and redis.call('GET', skey(s, 'ticket:' .. tostring(number)))
    local c = cid and hgetall(ckey(cid, s))
    if c and c.site == s then return c end
  end
  return nil
end

-- The sites a list over the caller's sites reads, each of them the caller's: in a site
-- call of such a list (part), the call's own site (the node calls each site and merges);
-- else the one asked for, or all of the caller's.
local function list_sites()
  local out = {}
  for _, s in ipairs(part and {CSITE} or (p.site and {p.site} or my_sites)) do
    if my_site(s) then table.insert(out, s) end
  end
  return out
end
-- A list's reply: whole() builds the whole list's reply body; in a part call the rows go
-- to the node instead, each {sort number, id, row JSON}, with more fields of the part's
-- reply in extra (page, per_page and total of a paged list, limit) (server/http/api/api.c merges the parts: by number, or in site order,
-- each id once, then pages).
local function list_reply(name, rows, extra, whole)
  if not part then return reply(200, whole()) end
  local out = {}
  for _, r in ipairs(rows) do table.insert(out, '[' .. N(r[1]) .. ',' .. S(r[2]) .. ',' .. S(r[3]) .. ']') end
  return reply(200, '{"list":' .. S(name) .. ',"part":[' .. table.concat(out, ',') .. ']' .. (extra or '') .. '}')
end

-- A site's part of a gathered operation: its teams, its agents and their loads there
-- (the caller's too), and what the operation reads of the site itself (more()).
local function site_facts(more)
  local s = CSITE
  if not my_site(s) then return reply(200, '{"part":[],"site":null}') end
  local agents, loads = redis.call('SMEMBERS', skey(s, 'agents')), {}
  local seen_me = false
  for _, id in ipairs(agents) do
    table.insert(loads, S(id) .. ':' .. I(agent_load(s, id)))
    if id == aid then seen_me = true end
  end
  if not seen_me then table.insert(loads, S(aid) .. ':' .. I(agent_load(s, aid))) end
  local teams = {}
  for _, t in ipairs(redis.call('HKEYS', skey(s, 'teams'))) do table.insert(teams, S(t)) end
  local ids = {}
  for _, id in ipairs(agents) do table.insert(ids, S(id)) end
  return reply(200, '{"part":[],"site":' .. S(s) .. ',"teams":[' .. table.concat(teams, ',') .. '],"agents":[' ..
    table.concat(ids, ',') .. '],"loads":{' .. table.concat(loads, ',') .. '}' .. (more and more(s) or '') .. '}')
end

local function dispatch(ops)
  local f = ops[op]
  if not f or token_check ~= (op == 'token_auth') then return fail('not_found', 'no such operation') end
  local ok, res = pcall(f)
  if ok then return res end
  if type(res) == 'table' and res.code then return fail(res.code, res.msg) end
  return fail('internal', tostring(res))
end
