-- The shared part of the function library (server/store/store.c): runs once when the
-- library loads; every script becomes a function that sets P (ARGV[1], always the key
-- prefix) and event_by, then runs its body. Keep the top level to functions and
-- constants: it is shared by all calls.
local P = ARGV[1]
-- CSITE: the site of the call, read from the hash tag {s:<site>} of its first declared key
-- (set by each function's wrapper; nil for calls that are about no one site).
local CSITE = nil
local function key_site(k) return k and string.match(k, '^[^{]*{s:([^}]*)}') or nil end
-- A key of one site, under the site's hash tag (one Redis Cluster slot per site):
-- P{s:<site>}:<suffix> (docs/keyspace.md).
local function skey(site, suffix) return P .. '{s:' .. site .. '}:' .. suffix end
-- The site's own record (settings, origins, SLA…): P{s:<site>}:site; its teams, agents,
-- queues, conversation and ticket indexes and canned replies are skey(site, 'teams')…
local function sitekey(site) return skey(site, 'site') end
-- State that spans sites has one tag each (docs/keyspace.md): {a} for agents (record,
-- e-mail index, the agents set, presence), {g} for the rest (sites set, signing keys).
-- The site of a conversation id: new ids end in ".<site>" (docs/keyspace.md "How a
-- conversation id finds its site"); ids of the previous release have no site in them and
-- live in the site of the call (or the one given).
local function cid_site(cid) return string.match(cid, '%.([%w_-]+)$') end
local function ckey(cid, site) return P .. '{s:' .. (cid_site(cid) or site or CSITE or '') .. '}:conv:' .. cid end
-- A visitor belongs to one site: its record and conversation list are the site's.
local function vkey(site, vid) return skey(site, 'visitor:' .. vid) end
local function J(v)
  if v == nil or v == false or v == '' then return 'null' end
  return cjson.encode(v)
end
local function S(v)
  if v == nil or v == false then return '""' end
  return cjson.encode(v)
end
local function N(v)
  if v == nil or v == false or v == '' then return 'null' end
  return tostring(v)
end
local function I(x) return string.format('%d', x) end
local function fail(code, msg) return '{"err":' .. S(code) .. ',"message":' .. S(msg) .. '}' end
local function hgetall(key)
  local r = redis.call('HGETALL', key)
  if #r == 0 then return nil end
  local t = {}
  for i = 1, #r, 2 do t[r[i]] = r[i + 1] end
  return t
end
-- A conversation found by id among some sites (a cross-site list of the previous release
-- holds ids without their site): its hash, or nil.
local function conv_in(cid, sites)
  if cid_site(cid) then return hgetall(ckey(cid)) end
  for _, s in ipairs(sites) do
    local c = hgetall(ckey(cid, s))
    if c then return c end
  end
  return nil
end
-- ---------- the bus (docs/keyspace.md "Channels") ----------
-- Every publish goes through publish(). SHARDED_PUB is set by the library build
-- (store/library.c) on Redis Cluster only: there a site's channels (site:<site>, and
-- conv:<cid> of an id that names its site) are shard channels under the site's hash tag,
-- P{s:<site>}:ch:<channel>, SPUBLISHed to the subscribers of the shard that owns the
-- site's slot instead of being broadcast over the whole cluster. On one Redis and under
-- Sentinel every channel is a plain P ch:<channel>.
local SHARDED_PUB = false
local function chan_site(channel)
  local site = string.match(channel, '^site:(.+)$')
  if site then return site end
  local cid = string.match(channel, '^conv:(.+)$')
  return cid and cid_site(cid)
end
local function publish(channel, payload)
  local site = SHARDED_PUB and chan_site(channel)
  if site then
    redis.call('SPUBLISH', P .. '{s:' .. site .. '}:ch:' .. channel, payload)
  else
    redis.call('PUBLISH', P .. 'ch:' .. channel, payload)
  end
end
local function pub(channel, seq, aud, excl, frame)
  publish(channel, I(seq) .. ' ' .. aud .. ' ' .. excl .. '\n' .. frame)
end
-- ---------- dates: days since 1970-01-01 <-> proleptic Gregorian (H. Hinnant), UTC ----------
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local function civil(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02d', y, m, d)
end
-- ---------- events (docs/keyspace.md "Events") ----------
-- One entry per business event in the site's stream P{s:<site>}:events, read by the
-- site's consumers (reports, health, webhooks, rules; events.lua), each with its cursor
-- in P{s:<site>}:events:cur. One call reads a batch, applies it and advances the
-- cursors, so every event is applied exactly once across all nodes without locks or
-- acknowledgements; everything stays in the site's slot.
-- Fields: t (type), s (site), c (conversation id), ts (ms), by (who caused it:
-- "visitor:<id>", "agent:<id>", "rule:<id>" or "system"), d (JSON object, per type).
-- The first event after the consumers caught up sets P{s:<site>}:events:armed and tells
-- every node ("E <site>" on ch:events) that the site has work; later events find the flag
-- set and publish nothing, so a busy site costs one notice per consumer pass, not one
-- per event. The pass that catches up clears the flag (ev_finish), atomically with its
-- check that nothing is left.
local EVENTS_MAXLEN = '500000' -- a string: Lua formats a number argument with %.14g on every call
local event_by = 'system' -- a script that acts for someone sets this first
-- The site whose armed flag this call already set or found set (each function's wrapper
-- clears it): a batch of messages (msg_send) checks the flag once, not once per event;
-- nothing can clear it during the call, since the consumers' pass is a call of its own.
local ev_armed = nil
local function emit(etype, c, now, data)
  local site = c.site
  if not site or site == '' then return end -- every event belongs to a site
  local k = skey(site, 'events')
  redis.call('XADD', k, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 't', etype, 's', site, 'c', c.id or '',
    'ts', tostring(now), 'by', event_by, 'd', data or '{}')
  if ev_armed == site then return end
  ev_armed = site
  if redis.call('SET', k .. ':armed', '1', 'NX') then
    publish('events', '0 * -\nE ' .. site)
  end
end
local function stream_id_lt(a, b)
  local ams, aseq = string.match(a, '^(%d+)%-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)%-(%d+)$')
  if not ams or not bms then return false end
  if #ams ~= #bms then return #ams < #bms end
  if ams ~= bms then return ams < bms end
  return tonumber(aseq) < tonumber(bseq)
end
-- The site's consumers and their cursors (the id of the last event each applied).
local EVENT_CONSUMERS = {'reports', 'health', 'webhooks', 'rules'}
local function ev_cursors(site)
  local cur = hgetall(skey(site, 'events:cur')) or {}
  for _, n in ipairs(EVENT_CONSUMERS) do cur[n] = cur[n] or '0-0' end
  return cur
end
-- Up to max events of the site after id `after`, oldest first: {id=, t=, s=, c=, ts=, by=, d=}.
local function ev_read(site, after, max)
  local out = {}
  for _, e in ipairs(redis.call('XRANGE', skey(site, 'events'), '(' .. after, '+', 'COUNT', max)) do
    local t = {id = e[1]}
    for i = 1, #e[2], 2 do t[e[2][i]] = e[2][i + 1] end
    table.insert(out, t)
  end
  return out
end
-- The end of a consumer pass: events every consumer has applied are garbage, so the
-- stream is trimmed to the slowest cursor (exactly: a pass trims what it applied;
-- events_retain_s, retain_ms here, keeps applied events a while to inspect), the armed
-- flag is cleared when nothing is left (the next event tells the nodes again), and the
-- pass's lease is given back. Returns true when events are left to apply.
local function ev_finish(site, owner, retain_ms)
  local k = skey(site, 'events')
  local cur = ev_cursors(site)
  local min = cur.reports
  for _, n in ipairs(EVENT_CONSUMERS) do
    if stream_id_lt(cur[n], min) then min = cur[n] end
  end
  local keep = min
  if retain_ms > 0 then
    local t = redis.call('TIME')
    keep = string.format('%d-0', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - retain_ms)
    if stream_id_lt(min, keep) then keep = min end
  end
  redis.call('XTRIM', k, 'MINID', keep)
  local last = redis.call('XREVRANGE', k, '+', '-', 'COUNT', 1)
  local left = #last == 1 and stream_id_lt(min, last[1][1])
  if not left then
    redis.call('DEL', k .. ':armed')
    ev_armed = nil
  end
  if redis.call('GET', k .. ':lease') == owner then redis.call('DEL', k .. ':lease') end
  return left
end
local ticket_json -- defined with the SLA helpers below
local function conv_json(c)
  local assignee = 'null'
  if c.assignee and c.assignee ~= '' then
    assignee = '{"id":' .. S(c.assignee) .. ',"name":' .. S(c.assignee_name) .. '}'
  end
  return '{"id":' .. S(c.id) .. ',"site":' .. S(c.site) .. ',"status":' .. S(c.status) ..
    ',"assignee":' .. assignee .. ',"team":' .. J(c.team) .. ',"priority":' .. S(c.priority) ..
    ',"category":' .. J(c.category) .. ',"subject":' .. J(c.subject) ..
    ',"tags":' .. ((c.tags and c.tags ~= '') and c.tags or '[]') ..
    ',"visitor":{"id":' .. S(c.visitor) .. ',"name":' .. J(c.visitor_name) .. ',"email":' .. J(c.visitor_email) .. '}' ..
    ',"created_at":' .. N(c.created_at) .. ',"updated_at":' .. N(c.updated_at) ..
    ',"first_response_at":' .. N(c.first_response_at) ..
    ',"last_seq":' .. N(c.last_seq) .. ',"epoch":' .. S(c.epoch) ..
    ',"channel":' .. (c.channel == 'email' and '"email"' or '"chat"') ..
    ',"csat":' .. ((c.csat_score and c.csat_score ~= '') and ('{"score":' .. c.csat_score .. ',"comment":' .. J(c.csat_comment) .. '}') or 'null') ..
    ',"ticket":' .. ticket_json(c) .. '}'
end
-- A stream entry (flat field list) -> message JSON.
local function msg_json(seq, f)
  local t = {}
  for i = 1, #f, 2 do t[f[i]] = f[i + 1] end
  return '{"seq":' .. seq .. ',"id":' .. S(t.id) .. ',"client_msg_id":' .. J(t.cmid) ..
    ',"author":{"kind":' .. S(t.ak) .. ',"id":' .. S(t.aid) .. ',"name":' .. J(t.an) .. '}' ..
    ',"body":' .. S(t.body) .. ',"private":' .. (t.priv == '1' and 'true' or 'false') ..
    ((t.att and t.att ~= '') and (',"attachments":' .. t.att) or '') .. ',"ts":' .. N(t.ts) .. '}', t.priv == '1'
end
local function seq_of(id) return string.match(id, '^0%-(%d+)$') end
-- Who may touch a conversation: its visitor, or an agent of its site.
local function may_access(c, kind, who)
  if kind == 'visitor' then return c.visitor == who end
  -- an agent of the conversation's site: the site's agents set, in the site's slot (an
  -- agent taken off a site leaves it in the same step, admin_agent_patch)
  if kind == 'agent' then return redis.call('SISMEMBER', skey(c.site, 'agents'), who) == 1 end
  return false
end
local function conv_updated(c, also_site)
  local frame = '{"type":"conversation.updated","conversation":' .. conv_json(c) .. '}'
  pub('conv:' .. c.id, 0, '*', '-', frame)
  -- agents following the conversation already got it: the site copy names it
  if also_site then pub('site:' .. c.site, 0, 'a', 'conv:' .. c.id, frame) end
  return frame
end
local PRIO_RANK = {urgent = 0, high = 1, normal = 2, low = 3}
local function queue_score(prio, created)
  return (PRIO_RANK[prio] or 2) * 1e13 + tonumber(created)
end
-- message.created goes on the bus in a compact form, built without any JSON work here:
-- "M <cid> <id> <author kind> <author id> <ts> <private 0/1> <#cmid> <#name> <#body>\n"
-- followed by the three free texts back to back. Each node's hub turns it into the client
-- frame once (cd_proto_message_from_bus), so Redis spends no time escaping bodies. A
-- message with attachments adds a fourth length (" <#att>") and their JSON array last.
local function pub_msg(cid, sseq, msg_id, cmid, ak, aid, an, body, priv, now, att)
  local lens = (att and att ~= '') and string.format('%d %d %d %d', #cmid, #an, #body, #att) or
    string.format('%d %d %d', #cmid, #an, #body)
  publish('conv:' .. cid, sseq .. (priv == '1' and ' a -\nM ' or ' * -\nM ') .. cid .. ' ' ..
    msg_id .. ' ' .. ak .. ' ' .. aid .. ' ' .. now .. ' ' .. priv .. ' ' .. lens .. '\n' .. cmid .. an .. body .. (att or ''))
end
-- Append one message to conversation c (a table read from its hash, with last_seq; c.key
-- its key when the caller has it): stream entry, last_seq (with `extra` field/value pairs
-- in the same HSET), the message.created event (ids only: a consumer that needs the body
-- reads it by seq, event_body) and the bus. retain: a number, or the caller's string
-- (passed to XADD as it is: no number formatting on the hot path). Returns the seq.
local function append_msg(c, msg_id, cmid, ak, aid, an, body, priv, now, retain, extra, att)
  local key = c.key or ckey(c.id, c.site)
  local sseq = I((tonumber(c.last_seq) or 0) + 1)
  c.last_seq = sseq
  local fields = {'0-' .. sseq, 'id', msg_id, 'cmid', cmid, 'ak', ak, 'aid', aid, 'an', an, 'body', body, 'priv', priv,
    'ts', now}
  if att and att ~= '' then fields[#fields + 1] = 'att' fields[#fields + 1] = att end
  if (tonumber(retain) or 0) > 0 then
    redis.call('XADD', key .. ':msgs', 'MAXLEN', '~', retain, unpack(fields))
  else
    redis.call('XADD', key .. ':msgs', unpack(fields))
  end
  if extra then
    redis.call('HSET', key, 'last_seq', sseq, unpack(extra))
  else
    redis.call('HSET', key, 'last_seq', sseq)
  end
  emit('message.created', c, now, '{"seq":' .. sseq .. ',"id":"' .. msg_id .. '","author":{"kind":"' .. ak ..
    '","id":"' .. aid .. '"},"private":' .. (priv == '1' and 'true' or 'false') .. '}')
  pub_msg(c.id, sseq, msg_id, cmid, ak, aid, an, body, priv, now, att)
  return tonumber(sseq)
end
-- The JSON of message seq of conversation cid as stored (nil once trimmed).
local function stored_msg_json(cid, seq)
  local r = redis.call('XRANGE', ckey(cid) .. ':msgs', '0-' .. seq, '0-' .. seq)
  if #r == 1 then return (msg_json(tostring(seq), r[1][2])) end
  return nil
end
-- The data of an event as consumers see it: a message.created event carries ids only in
-- the stream; here its body joins it (first 2,000 bytes; "" once trimmed from history), and
-- its attachments (name, type, size, url) when it has some.
local function event_data(e)
  local d = (e.d and e.d ~= '') and e.d or '{}'
  if e.t ~= 'message.created' or not e.c or e.c == '' then return d end
  local seq = string.match(d, '"seq":(%d+)')
  local body, att = '', ''
  if seq then
    local r = redis.call('XRANGE', ckey(e.c, e.s) .. ':msgs', '0-' .. seq, '0-' .. seq)
    if #r == 1 then
      local f = r[1][2]
      for i = 1, #f, 2 do
        if f[i] == 'body' then body = f[i + 1] elseif f[i] == 'att' then att = ',"attachments":' .. f[i + 1] end
      end
    end
  end
  return string.sub(d, 1, #d - 1) .. ',"body":' .. S(string.sub(body, 1, 2000)) .. att .. '}'
end
-- ---------- routing (issue 3): queues, capacity, assignment ----------
local function team_of(t) return (t and t ~= '') and t or '_' end
local function qkey(site, team) return skey(site, 'queue:' .. team_of(team)) end
local function site_teams(site)
  local out = {'_'}
  for _, t in ipairs(redis.call('HKEYS', skey(site, 'teams'))) do table.insert(out, t) end
  return out
end
local function json_list(s)
  if not s or s == '' then return {} end
  local ok, v = pcall(cjson.decode, s)
  if ok and type(v) == 'table' then return v end
  return {}
end
local function agent_in_team(a, team)
  if team_of(team) == '_' then return true end
  for _, t in ipairs(json_list(a.teams)) do if t == team then return true end end
  return false
end
-- The agent's record in a site (P{s:<site>}:agent:<id>: status, name, teams, max_chats,
-- disabled, last_assigned_at, sv) kept in line with its global record by agent_site.lua,
-- one call per site. Load = the site's assigned conversations that are open or pending
-- (:active); max_chats counts per site. Its :convs (aconvs) also keeps resolved ones.
local function sakey(site, aid) return skey(site, 'agent:' .. aid) end
-- The agent's assigned conversations of the site that are not closed (its welcome list is
-- the union over its sites): in the site's slot, so assigning is one single-slot call.
local function aconvs(site, aid) return sakey(site, aid) .. ':convs' end
local function agent_load(site, aid) return redis.call('SCARD', sakey(site, aid) .. ':active') end
local function load_add(site, aid, cid) redis.call('SADD', sakey(site, aid) .. ':active', cid) end
local function load_rem(site, aid, cid) redis.call('SREM', sakey(site, aid) .. ':active', cid) end
-- The least-loaded online agent of the team with free capacity; among equals the one
-- assigned longest ago (round robin), then the smallest id (deterministic).
local function pick_agent(site, team)
  local best, best_load, best_at
  for _, aid in ipairs(redis.call('SMEMBERS', skey(site, 'agents'))) do
    local a = hgetall(sakey(site, aid))
    if a and a.status == 'online' and a.disabled ~= '1' and agent_in_team(a, team) then
      local load = agent_load(site, aid)
      if load < tonumber(a.max_chats or '5') then
        local at = tonumber(a.last_assigned_at or '0')
        if not best or load < best_load or (load == best_load and (at < best_at or (at == best_at and aid < best))) then
          best, best_load, best_at = aid, load, at
        end
      end
    end
  end
  return best
end
local function online_agents(site, team)
  local n = 0
  for _, aid in ipairs(redis.call('SMEMBERS', skey(site, 'agents'))) do
    local a = hgetall(sakey(site, aid))
    if a and a.status == 'online' and agent_in_team(a, team) then n = n + 1 end
  end
  return n
end
-- Tell the site's agents the queue's size, and each waiting visitor its position and an
-- estimated wait (the site's moving average wait, scaled by position over online agents).
local function queue_changed(site, team)
  local key = qkey(site, team)
  local size = redis.call('ZCARD', key)
  local head = redis.call('ZRANGE', key, 0, 49)
  local oldest = 'null'
  if #head > 0 then oldest = N(redis.call('HGET', ckey(head[1], site), 'created_at')) end
  pub('site:' .. site, 0, 'a', '-', '{"type":"queue.updated","site":' .. S(site) .. ',"team":' ..
    J(team_of(team) ~= '_' and team or nil) .. ',"size":' .. I(size) .. ',"oldest_created_at":' .. oldest .. '}')
  local avg = tonumber(redis.call('HGET', sitekey(site), 'avg_wait_ms') or '0')
  if avg <= 0 then avg = 60000 end
  local agents = online_agents(site, team)
  for i, cid in ipairs(head) do
    local eta = 'null'
    if agents > 0 then eta = I(math.floor(avg * i / agents)) end
    pub('conv:' .. cid, 0, '*', '-', '{"type":"conversation.queue","conversation_id":' .. S(cid) ..
      ',"position":' .. I(i) .. ',"size":' .. I(size) .. ',"estimated_wait_ms":' .. eta .. '}')
  end
end
-- Give conversation c to agent aid. Publishes to the conversation, the site and the agent
-- (the agent channel's header names the conversation so the agent's sessions follow it).
local function assign_to(c, aid, now)
  local aname = redis.call('HGET', sakey(c.site, aid), 'name') or ''
  local key = ckey(c.id, c.site)
  local prev = c.assignee
  if prev and prev ~= '' and prev ~= aid then
    redis.call('SREM', aconvs(c.site, prev), c.id)
    load_rem(c.site, prev, c.id)
  end
  redis.call('ZREM', qkey(c.site, c.team), c.id)
  c.assignee, c.assignee_name, c.updated_at = aid, aname, now
  local wait = nil
  if c.status == 'queued' then
    c.status = 'open'
    wait = tonumber(now) - tonumber(c.queued_at or c.created_at)
    emit('conversation.status_changed', c, now, '{"from":"queued","to":"open"}')
    local skey = sitekey(c.site)
    local avg = tonumber(redis.call('HGET', skey, 'avg_wait_ms') or '0')
    if avg <= 0 then avg = wait else avg = math.floor(avg * 0.8 + wait * 0.2) end
    redis.call('HSET', skey, 'avg_wait_ms', I(avg))
  end
  -- assign_seq orders the site's assignments as Redis ran them (node clocks need not agree)
  redis.call('HSET', key, 'assignee', aid, 'assignee_name', aname, 'status', c.status, 'updated_at', now,
    'assigned_at', now, 'assign_seq', redis.call('INCR', skey(c.site, 'assign:seq')))
  redis.call('SADD', aconvs(c.site, aid), c.id)
  if c.status == 'open' or c.status == 'pending' then load_add(c.site, aid, c.id) end
  redis.call('HSET', sakey(c.site, aid), 'last_assigned_at', now)
  emit('conversation.assigned', c, now, '{"agent":' .. S(aid) .. ',"previous":' .. J(prev) .. ',"team":' .. J(c.team) ..
    ',"wait_ms":' .. (wait and I(wait) or 'null') .. '}')
  conv_updated(c, true)
  pub('agent:' .. aid, 0, 'a', 'join:' .. c.id .. ':' .. (c.last_seq or '0'),
    '{"type":"conversation.assigned","conversation":' .. conv_json(c) .. '}')
end
local function auto_assign_on(site)
  return redis.call('HGET', sitekey(site), 'auto_assign') ~= '0'
end
-- Assign waiting conversations of one queue, in order, while someone has capacity.
local function drain(site, team, now)
  if not auto_assign_on(site) then return 0 end
  local key = qkey(site, team)
  local n = 0
  while n < 200 do
    local head = redis.call('ZRANGE', key, 0, 0)
    if #head == 0 then break end
    local c = hgetall(ckey(head[1], site))
    if not c or c.status ~= 'queued' then
      redis.call('ZREM', key, head[1])
    else
      local aid = pick_agent(site, team)
      if not aid then break end
      assign_to(c, aid, now)
      n = n + 1
    end
  end
  if n > 0 then queue_changed(site, team) end
  return n
end
local function drain_site(site, now)
  local n = 0
  for _, t in ipairs(site_teams(site)) do n = n + drain(site, t, now) end
  return n
end
local function enqueue(c, now)
  c.status, c.queued_at = 'queued', now
  redis.call('HSET', ckey(c.id, c.site), 'queued_at', now)
  redis.call('ZADD', qkey(c.site, c.team), queue_score(c.priority, c.created_at), c.id)
end
-- A conversation leaves its agent's load (resolved, closed, transferred away): the
-- capacity it frees is the site's, so the site's queues drain.
-- forget: also drop it from the agent's list (closed, transferred).
local function release(c, now, forget)
  local aid = c.assignee
  if aid and aid ~= '' then
    load_rem(c.site, aid, c.id)
    if forget then redis.call('SREM', aconvs(c.site, aid), c.id) end
    drain_site(c.site, now)
  end
end
-- Timers of a site (deadlines in P{s:<site>}:timers, claimed with a lease into
-- P{s:<site>}:timers:leased by timers_claim.lua).
-- A node polls a site's timers only when one may be due (issue 13: idle work must not grow
-- with sites x nodes): setting a timer tells every node when ("T <site> <due>" on ch:timers).
local function timer_arm(site, member, due)
  redis.call('ZADD', skey(site, 'timers'), due, member)
  publish('timers', '0 * -\nT ' .. site .. ' ' .. string.format('%d', due))
end
local function timer_set(site, kind, id, due) timer_arm(site, kind .. '|' .. id, due) end
local function timer_clear(site, kind, id)
  redis.call('ZREM', skey(site, 'timers'), kind .. '|' .. id)
  redis.call('ZREM', skey(site, 'timers:leased'), kind .. '|' .. id)
end
-- ---------- attachments (issue 16): P{s:<site>}:file:<id>, docs/attachments.md ----------
-- A file id names its site as a conversation id does ("f_<random>.<site>").
local function file_key(id) return skey(cid_site(id) or '', 'file:' .. id) end
-- The uploads of one uploader ("<kind>:<id>") in a site that no message took yet: the
-- ids, for the cap file_max_pending (file_put.lua); gone when empty.
local function files_by(site, by) return skey(site, 'files:by:' .. by) end
-- The message object's "attachments" entry of a file record.
local function file_json(f)
  return '{"id":' .. S(f.id) .. ',"name":' .. S(f.name) .. ',"type":' .. S(f.type) .. ',"size":' .. N(f.size) ..
    ',"url":' .. S('/files/' .. f.id) .. '}'
end
-- Checks the uploads `ids` (space-separated; '' none) for a message of ak:aid in
-- conversation c (its id and site): each must be of c's site, uploaded by ak:aid (for this
-- conversation or before any) and not yet taken. Returns the records and the
-- attachments' JSON array ('' for none), or nil and the refusal. Writes nothing.
local function check_files(c, ids, ak, aid)
  if not ids or ids == '' then return {}, '' end
  local recs, parts = {}, {}
  for id in string.gmatch(ids, '%S+') do
    local f = cid_site(id) == c.site and hgetall(file_key(id)) or nil
    if not f or f.by ~= ak .. ':' .. aid or f.state ~= 'pending' or (f.cid ~= '' and f.cid ~= c.id) then
      return nil, fail('not_found', 'no such attachment: ' .. id)
    end
    recs[#recs + 1] = f
    parts[#parts + 1] = file_json(f)
  end
  return recs, '[' .. table.concat(parts, ',') .. ']'
end
-- The checked records become message seq's (private: priv) and their orphan timers go.
local function take_files(c, recs, seq, priv)
  for _, f in ipairs(recs) do
    redis.call('HSET', file_key(f.id), 'state', 'used', 'cid', c.id, 'seq', seq, 'priv', priv)
    redis.call('SREM', files_by(c.site, f.by), f.id)
    timer_clear(c.site, 'fileorphan', f.id)
  end
end
-- ---------- SLA (issue 4): business time over open intervals (mirrors ticket/sla.c) ----------
-- iv: "*" (always open) or "s1,e1,s2,e2,..." UTC ms from the node's calendar.
local function iv_parse(s)
  if s == nil or s == '' or s == '*' then return nil end
  local t = {}
  for n in string.gmatch(s, '[^,]+') do table.insert(t, tonumber(n)) end
  return t
end
local function sla_add(iv, start, business)
  if business <= 0 then return start end
  if not iv then return start + business end
  local last = start
  for i = 1, #iv - 1, 2 do
    local s, e = iv[i], iv[i + 1]
    last = e
    if e > start then
      if s < start then s = start end
      if e - s >= business then return s + business end
      business = business - (e - s)
    end
  end
  if last < start then last = start end
  return last + business
end
local function sla_between(iv, a, b)
  if b <= a then return 0 end
  if not iv then return b - a end
  local total, last = 0, a
  for i = 1, #iv - 1, 2 do
    local s, e = iv[i], iv[i + 1]
    if e > last then last = e end
    if e > a and s < b then
      total = total + math.min(e, b) - math.max(s, a)
    end
  end
  if last < b then total = total + b - math.max(last, a) end
  return total
end
local SLA_KINDS = {'first_response', 'next_response', 'resolution'}
local SLA_DEFAULT = {
  low = {first_response_s = 14400, next_response_s = 28800, resolution_s = 259200},
  normal = {first_response_s = 3600, next_response_s = 14400, resolution_s = 86400},
  high = {first_response_s = 1800, next_response_s = 7200, resolution_s = 28800},
  urgent = {first_response_s = 600, next_response_s = 1800, resolution_s = 14400},
}
local function sla_config(site)
  local raw = redis.call('HGET', sitekey(site), 'sla')
  local cfg = {}
  if raw and raw ~= '' then
    local ok, v = pcall(cjson.decode, raw)
    if ok and type(v) == 'table' then cfg = v end
  end
  return cfg
end
local function sla_targets(cfg, priority)
  local p = (type(cfg.policies) == 'table' and type(cfg.policies[priority]) == 'table') and cfg.policies[priority] or
    SLA_DEFAULT[priority] or SLA_DEFAULT.normal
  local d = SLA_DEFAULT[priority] or SLA_DEFAULT.normal
  return {
    first_response = tonumber(p.first_response_s or d.first_response_s) * 1000,
    next_response = tonumber(p.next_response_s or d.next_response_s) * 1000,
    resolution = tonumber(p.resolution_s or d.resolution_s) * 1000,
  }
end
local function sla_warn_at(cfg)
  local w = tonumber(cfg.warn_at or 0.8) or 0.8
  if w <= 0 or w >= 1 then w = 0.8 end
  return w
end
-- Arm the warning and breach timers of one deadline (score = when; same member updates).
local function sla_arm(site, cid, kind, warn, due)
  timer_set(site, 'slawarn', cid .. '|' .. kind, warn)
  timer_set(site, 'slabreach', cid .. '|' .. kind, due)
end
local function sla_disarm(site, cid, kind)
  timer_clear(site, 'slawarn', cid .. '|' .. kind)
  timer_clear(site, 'slabreach', cid .. '|' .. kind)
end
-- Start one deadline counting from `from` in business time.
local function sla_start(c, kind, iv, from, targets, warn_at)
  local key = ckey(c.id, c.site)
  local due = sla_add(iv, from, targets[kind])
  local warn = sla_add(iv, from, math.floor(targets[kind] * warn_at))
  c['sla_' .. kind .. '_due'], c['sla_' .. kind .. '_warn'] = I(due), I(warn)
  redis.call('HSET', key, 'sla_' .. kind .. '_due', I(due), 'sla_' .. kind .. '_warn', I(warn))
  sla_arm(c.site, c.id, kind, warn, due)
end
local function sla_stop(c, kind)
  c['sla_' .. kind .. '_due'], c['sla_' .. kind .. '_warn'] = '', ''
  redis.call('HSET', ckey(c.id, c.site), 'sla_' .. kind .. '_due', '', 'sla_' .. kind .. '_warn', '')
  sla_disarm(c.site, c.id, kind)
end
-- Bring a ticket's clocks in line with its state: pause while pending, shift the
-- deadlines by the business time spent paused when it leaves pending, stop what was met.
local function sla_sync(c, iv, now)
  if not c.ticket_number or c.ticket_number == '' then return false end
  local key = ckey(c.id, c.site)
  local cfg = sla_config(c.site)
  local targets = sla_targets(cfg, c.priority)
  local warn_at = sla_warn_at(cfg)
  now = tonumber(now)
  local changed = false
  local paused = c.sla_paused_at and c.sla_paused_at ~= ''
  if c.status == 'closed' or c.status == 'resolved' then
    for _, k in ipairs(SLA_KINDS) do
      if c['sla_' .. k .. '_due'] and c['sla_' .. k .. '_due'] ~= '' then sla_stop(c, k) changed = true end
    end
    -- stopped, not paused: a ticket closed while waiting on the customer shows met or
    -- breached, never "paused" (issue 18)
    if paused then
      c.sla_paused_at = ''
      redis.call('HSET', key, 'sla_paused_at', '')
      changed = true
    end
    return changed
  end
  if c.status == 'pending' and not paused then
    c.sla_paused_at = I(now)
    redis.call('HSET', key, 'sla_paused_at', c.sla_paused_at)
    for _, k in ipairs(SLA_KINDS) do sla_disarm(c.site, c.id, k) end
    paused, changed = true, true
  elseif c.status ~= 'pending' and paused then
    local held = sla_between(iv, tonumber(c.sla_paused_at), now)
    for _, k in ipairs(SLA_KINDS) do
      local due, warn = c['sla_' .. k .. '_due'], c['sla_' .. k .. '_warn']
      if due and due ~= '' then
        due = sla_add(iv, tonumber(due), held)
        warn = sla_add(iv, tonumber(warn), held)
        c['sla_' .. k .. '_due'], c['sla_' .. k .. '_warn'] = I(due), I(warn)
        redis.call('HSET', key, 'sla_' .. k .. '_due', I(due), 'sla_' .. k .. '_warn', I(warn))
        sla_arm(c.site, c.id, k, warn, due)
      end
    end
    c.sla_paused_at = ''
    redis.call('HSET', key, 'sla_paused_at', '')
    paused, changed = false, true
  end
  -- met deadlines stop; a customer message waiting for an answer starts next_response
  if c.first_response_at and c.first_response_at ~= '' and c.sla_first_response_due and c.sla_first_response_due ~= '' then
    sla_stop(c, 'first_response')
    changed = true
  end
  if not paused then
    local waiting = c.awaiting_reply_since and c.awaiting_reply_since ~= ''
    local answered_before = c.first_response_at and c.first_response_at ~= ''
    if waiting and answered_before and (not c.sla_next_response_due or c.sla_next_response_due == '') then
      sla_start(c, 'next_response', iv, tonumber(c.awaiting_reply_since), targets, warn_at)
      changed = true
    elseif not waiting and c.sla_next_response_due and c.sla_next_response_due ~= '' then
      sla_stop(c, 'next_response')
      changed = true
    end
  end
  return changed
end
ticket_json = function(c)
  if not c.ticket_number or c.ticket_number == '' then return 'null' end
  local breached = (c.sla_breached and c.sla_breached ~= '') and c.sla_breached or '[]'
  return '{"number":' .. c.ticket_number .. ',"created_at":' .. N(c.ticket_created_at) ..
    ',"sla":{"first_response_due":' .. N(c.sla_first_response_due) ..
    ',"next_response_due":' .. N(c.sla_next_response_due) ..
    ',"resolution_due":' .. N(c.sla_resolution_due) ..
    ',"first_response_warn":' .. N(c.sla_first_response_warn) ..
    ',"next_response_warn":' .. N(c.sla_next_response_warn) ..
    ',"resolution_warn":' .. N(c.sla_resolution_warn) ..
    ',"paused":' .. ((c.sla_paused_at and c.sla_paused_at ~= '') and 'true' or 'false') ..
    ',"breached":' .. breached .. '}}'
end
-- Turn a conversation into a ticket: a number, SLA deadlines from its creation, the
-- customer told how the answer will reach them, ticket.created to the site's agents.
local function ticket_create(c, now, iv, ack_id, retain)
  local key = ckey(c.id, c.site)
  -- numbers count per site (P{s:<site>}:ticket:seq, from 1000): a site's own slot
  local n = redis.call('INCR', skey(c.site, 'ticket:seq'))
  if n < 1000 then
    redis.call('SET', skey(c.site, 'ticket:seq'), 1000)
    n = 1000
  end
  c.ticket_number, c.ticket_created_at = I(n), now
  redis.call('HSET', key, 'ticket_number', c.ticket_number, 'ticket_created_at', now, 'sla_breached', '[]',
    'sla_fired', '[]')
  redis.call('SET', skey(c.site, 'ticket:' .. c.ticket_number), c.id)
  redis.call('ZADD', skey(c.site, 'tickets'), now, c.id)
  emit('ticket.created', c, now, '{"number":' .. c.ticket_number .. '}')
  timer_clear(c.site, 'unanswered', c.site .. '|' .. c.id)
  local cfg = sla_config(c.site)
  local targets, warn_at = sla_targets(cfg, c.priority), sla_warn_at(cfg)
  local created = tonumber(c.created_at)
  if not c.first_response_at or c.first_response_at == '' then
    sla_start(c, 'first_response', iv, created, targets, warn_at)
  end
  sla_start(c, 'resolution', iv, created, targets, warn_at)
  sla_sync(c, iv, now)
  local zh = string.sub(c.locale or '', 1, 2) == 'zh'
  local email = c.visitor_email or ''
  local text
  if zh then
    text = '您的问题已登记为工单 #' .. c.ticket_number .. '。客服会在此对话中回复您（您可以关闭页面，稍后回来查看）' ..
      (email ~= '' and ('，并发送邮件至 ' .. email .. '。') or '。留下您的邮箱，我们也可以通过邮件回复您。')
  else
    text = 'Your request is now ticket #' .. c.ticket_number .. '. We will answer here (you can close this page and come back later)' ..
      (email ~= '' and (' and by e-mail to ' .. email .. '.') or '. Leave your e-mail address and we will also answer by e-mail.')
  end
  append_msg(c, ack_id, '', 'system', 'system', '', text, '0', now, retain)
  local cj = conv_json(c)
  pub('site:' .. c.site, 0, 'a', '-', '{"type":"ticket.created","conversation":' .. cj .. '}')
  conv_updated(c, true)
  return cj
end

-- ---------- notices: alerts for agents (customer health, rules, …) ----------
-- Kept per site and agent (P{s:<site>}:agent:<id>:notices, newest first, at most 100;
-- GET /api/v1/notices merges the agent's sites), so the site call that raises one writes
-- only its own slot; ids count per site (P{s:<site>}:notice:seq). Sent live on the
-- agent's channel: {"type":"notice","notice":{"id","kind","site","conversation_id",
-- "title","body","ts"}} (docs/protocol.md).
-- admins and owners both administer the sites they belong to
local function admin_role(r) return r == 'admin' or r == 'owner' end
-- The agent's role, from its record in the site (agent_site copies it; admin migrate
-- and the step that adds an agent to a site write it too).
local function agent_role(site, aid)
  return redis.call('HGET', sakey(site, aid), 'role')
end
-- Someone online, as the site's routing sees it (the agents' records in the site): what a
-- widget's welcome says (agents_online) and what site_online.lua answers while the widget
-- shows its pre-chat form.
local function site_online(site)
  for _, aid in ipairs(redis.call('SMEMBERS', skey(site, 'agents'))) do
    if redis.call('HGET', sakey(site, aid), 'status') == 'online' then return true end
  end
  return false
end
local function site_admins(site)
  local out = {}
  for _, aid in ipairs(redis.call('SMEMBERS', skey(site, 'agents'))) do
    if admin_role(agent_role(site, aid)) then table.insert(out, aid) end
  end
  table.sort(out)
  return out
end
-- Ends every login of an agent (docs/ops.md "Sessions and revocation"): agent tokens carry
-- the token epoch they were issued in (agent hash field `tep`); a new epoch makes them fail
-- every API call and hello, and the event on the agent's channel closes its open
-- connections on every node with 4401.
local function revoke_agent(aid, why)
  local ep = redis.call('HINCRBY', P .. '{a}:agent:' .. aid, 'tep', 1)
  pub('agent:' .. aid, 0, 'a', 'revoke:' .. I(ep), '{"type":"session.revoked","reason":' .. S(why) .. '}')
end
-- A token is still good: its epoch is the agent's and its jti is not on the agent's
-- deny-list (P{a}:revoked:<aid>, filled by logout).
local function token_live(a, epoch, jti, revoked_key)
  if tonumber(a.tep or '0') ~= tonumber(epoch or '0') then return false end
  return not (jti and jti ~= '' and redis.call('HEXISTS', revoked_key, jti) == 1)
end
local function notify(aids, kind, site, cid, title, body, now)
  local id = redis.call('INCR', skey(site, 'notice:seq'))
  local nj = '{"id":' .. I(id) .. ',"kind":' .. S(kind) .. ',"site":' .. S(site) .. ',"conversation_id":' .. J(cid) ..
    ',"title":' .. S(title) .. ',"body":' .. J(body) .. ',"ts":' .. N(now) .. '}'
  for _, aid in ipairs(aids) do
    local k = sakey(site, aid) .. ':notices'
    redis.call('LPUSH', k, nj)
    redis.call('LTRIM', k, 0, 99)
    pub('agent:' .. aid, 0, 'a', '-', '{"type":"notice","notice":' .. nj .. '}')
  end
  return nj, id
end
-- An agent's unread mentions in a site (docs/keyspace.md): P{s:<site>}:agent:<id>:mentions,
-- a sorted set notice id -> the notice's JSON, the last 100, until the agent reads them
-- (api_health.lua mentions_read).
local function mentions_key(site, aid) return sakey(site, aid) .. ':mentions' end
-- Mentions in a private note (docs/dashboard.md "Mentions"): each '@' followed by the name
-- of an agent of the conversation's site, or the id or name of one of its teams
-- (case-insensitive; the longest that matches and ends there, not followed by a letter,
-- digit or '_'), notifies that agent, or the team's members: one notice of kind
-- `mention` per agent (the author is never one), kept in its unread mentions. Called by
-- the step that stores the note, so a retry with the same client_msg_id (answered from the
-- dedupe entry before this) never notifies again. Only the site's own agents and teams
-- are candidates: nobody of another site can be mentioned.
local function mention(c, aid, an, body, now)
  if not string.find(body, '@', 1, true) then return end
  local names, teams_of = {}, {}
  for _, id in ipairs(redis.call('SMEMBERS', skey(c.site, 'agents'))) do
    local f = redis.call('HMGET', sakey(c.site, id), 'name', 'teams', 'disabled')
    if f[3] ~= '1' then
      teams_of[id] = f[2] or ''
      if f[1] and f[1] ~= '' then table.insert(names, {string.lower(f[1]), id}) end
    end
  end
  local th = redis.call('HGETALL', skey(c.site, 'teams'))
  for i = 1, #th, 2 do
    table.insert(names, {string.lower(th[i]), nil, th[i]})
    if th[i + 1] ~= '' then table.insert(names, {string.lower(th[i + 1]), nil, th[i]}) end
  end
  local lb, who, pos = string.lower(body), {}, 1
  while true do
    local at = string.find(lb, '@', pos, true)
    if not at then break end
    local best
    for _, n in ipairs(names) do
      local len = #n[1]
      if (not best or len > #best[1]) and string.sub(lb, at + 1, at + len) == n[1] and
          not string.find(string.sub(lb, at + len + 1, at + len + 1), '^[%w_]') then
        best = n
      end
    end
    if best and best[2] then
      who[best[2]] = true
    elseif best then
      for id, teams in pairs(teams_of) do
        if agent_in_team({teams = teams}, best[3]) then who[id] = true end
      end
    end
    pos = at + (best and #best[1] or 0) + 1
  end
  who[aid] = nil
  local list = {}
  for id in pairs(who) do table.insert(list, id) end
  if #list == 0 then return end
  table.sort(list)
  -- the notice's body: the note's first 200 bytes, not cut inside a UTF-8 sequence
  local excerpt = body
  if #excerpt > 200 then
    local cut = 200
    while cut > 0 and string.byte(excerpt, cut + 1) and string.byte(excerpt, cut + 1) >= 128 and
        string.byte(excerpt, cut + 1) < 192 do
      cut = cut - 1
    end
    excerpt = string.sub(excerpt, 1, cut) .. '…'
  end
  local nj, id = notify(list, 'mention', c.site, c.id, an .. ' mentioned you', excerpt, now)
  for _, m in ipairs(list) do
    local k = mentions_key(c.site, m)
    redis.call('ZADD', k, id, nj)
    redis.call('ZREMRANGEBYRANK', k, 0, -101)
  end
end

-- ---------- shared by scripts and the HTTP API ----------
-- Apply an agent's change of status/priority/category/tags (empty = unchanged).
-- Returns nil, or an error reply.
local function do_update(c, aid, status, priority, category, tags, now)
  local cid, key = c.id, ckey(c.id, c.site)
  if c.status == 'closed' and status ~= '' and status ~= 'closed' then
    return fail('conflict', 'conversation is closed')
  end
  local old = c.status
  local changes = {}
  local function changed(f, v)
    if v ~= '' and v ~= (c[f] or '') then table.insert(changes, S(f) .. ':{"from":' .. J(c[f]) .. ',"to":' .. S(v) .. '}') end
  end
  changed('priority', priority)
  changed('category', category)
  if tags ~= '' and tags ~= (c.tags or '[]') then
    table.insert(changes, '"tags":{"from":' .. ((c.tags and c.tags ~= '') and c.tags or '[]') .. ',"to":' .. tags .. '}')
  end
  if #changes > 0 then emit('conversation.updated', c, now, '{"changes":{' .. table.concat(changes, ',') .. '}}') end
  if priority ~= '' then
    c.priority = priority
    if c.status == 'queued' then redis.call('ZADD', qkey(c.site, c.team), queue_score(priority, c.created_at), cid) end
  end
  if category ~= '' then c.category = category end
  if tags ~= '' then c.tags = tags end
  c.updated_at = now
  redis.call('HSET', key, 'priority', c.priority, 'category', c.category or '', 'tags', c.tags or '[]', 'updated_at', now)
  if status ~= '' and status ~= old then
    c.status = status
    redis.call('HSET', key, 'status', status)
    emit('conversation.status_changed', c, now, '{"from":' .. S(old) .. ',"to":' .. S(status) .. '}')
    if old == 'queued' then
      redis.call('ZREM', qkey(c.site, c.team), cid)
      queue_changed(c.site, c.team)
    end
    if old == 'resolved' then timer_clear(c.site, 'autoclose', cid) end
    if status == 'queued' then
      -- back to the queue: the agent lets it go
      if c.assignee ~= '' then release(c, now, true) end
      c.assignee, c.assignee_name = '', ''
      redis.call('HSET', key, 'assignee', '', 'assignee_name', '')
      enqueue(c, now)
    elseif status == 'resolved' then
      redis.call('HSET', key, 'resolved_at', now)
      local after = tonumber(redis.call('HGET', sitekey(c.site), 'auto_close_s') or '86400')
      if after > 0 then timer_set(c.site, 'autoclose', cid, tonumber(now) + after * 1000) end
      release(c, now, false)
    elseif status == 'closed' then
      redis.call('HSET', key, 'closed_at', now)
      release(c, now, true)
    elseif (status == 'open' or status == 'pending') and c.assignee ~= '' then
      load_add(c.site, c.assignee, cid)
      redis.call('SADD', aconvs(c.site, c.assignee), cid)
    end
  end
  conv_updated(c, true)
  if c.status == 'queued' and old ~= 'queued' then
    drain(c.site, c.team, now)
    queue_changed(c.site, c.team)
  end
  return nil
end
-- Transfer to an agent (target) or escalate to a team, keeping the note as a private note.
local function do_transfer(c, aid, aname, target, team, note, note_id, now, retain)
  local cid, key = c.id, ckey(c.id, c.site)
  if c.status == 'closed' then return fail('conflict', 'conversation is closed') end
  local text
  if target ~= '' then
    local t = hgetall(sakey(c.site, target)) -- its record in the site (agent_site)
    if not t or not may_access(c, 'agent', target) then return fail('not_found', 'no such agent on this site') end
    if t.disabled == '1' then return fail('conflict', 'agent is disabled') end
    local prev, prev_name = c.assignee, c.assignee_name
    if c.status == 'queued' then redis.call('ZREM', qkey(c.site, c.team), cid) end
    if c.status == 'resolved' or c.status == 'queued' then
      emit('conversation.status_changed', c, now, '{"from":' .. S(c.status) .. ',"to":"open"}')
      c.status = 'open'
    end
    assign_to(c, target, now)
    if prev and prev ~= '' and prev ~= target then drain_site(c.site, now) end
    if target == aid and prev and prev ~= '' and prev ~= aid then
      -- a take-over (only_assignee_reply asks for one before a reply; conv_transfer.lua audits it)
      text = 'Taken over from ' .. ((prev_name and prev_name ~= '') and prev_name or prev) .. ' by ' .. aname
    else
      text = 'Transferred to ' .. (t.name or target) .. ' by ' .. aname
    end
  else
    if redis.call('HEXISTS', skey(c.site, 'teams'), team) == 0 then
      return fail('not_found', 'no such team on this site')
    end
    if c.status == 'queued' then redis.call('ZREM', qkey(c.site, c.team), cid) end
    if c.assignee ~= '' then release(c, now, true) end
    emit('conversation.updated', c, now, '{"changes":{"team":{"from":' .. J(c.team) .. ',"to":' .. S(team) .. '}}}')
    if c.status ~= 'queued' then
      emit('conversation.status_changed', c, now, '{"from":' .. S(c.status) .. ',"to":"queued"}')
    end
    c.assignee, c.assignee_name, c.team = '', '', team
    redis.call('HSET', key, 'assignee', '', 'assignee_name', '', 'team', team, 'updated_at', now)
    enqueue(c, now)
    redis.call('HSET', key, 'status', 'queued')
    conv_updated(c, true)
    pub('site:' .. c.site, 0, 'a', '-', '{"type":"conversation.queued","conversation":' .. conv_json(c) .. '}')
    drain(c.site, team, now)
    queue_changed(c.site, team)
    text = 'Escalated to team ' .. team .. ' by ' .. aname
  end
  if note ~= '' then text = text .. ': ' .. note end
  append_msg(c, note_id, '', 'agent', aid, aname, text, '1', now, retain)
  return nil
end

-- ---------- webhooks (docs/keyspace.md "Webhooks") ----------
-- A site's webhooks and their deliveries live in its slot: P{s:<site>}:webhook:<id> (with
-- :deliveries, :log), P{s:<site>}:whd:<delivery id>, P{s:<site>}:webhooks:due.
local function whkey(site, wid) return skey(site, 'webhook:' .. wid) end
local function whdkey(site, did) return skey(site, 'whd:' .. did) end
-- A delivery due at `due` (ms) in its site's webhooks:due. Every node hears when
-- ("W <site> <due>" on the timers channel), so a node claims a site's deliveries only when
-- one may be due, not every site at every poll (idle work must not grow with sites x nodes).
local function wh_due(site, did, due)
  redis.call('ZADD', skey(site, 'webhooks:due'), due, did)
  publish('timers', '0 * -\nW ' .. site .. ' ' .. string.format('%d', tonumber(due)))
end
-- Queue one delivery of `body` (the signed JSON text) to webhook h: its whd hash (kept 7
-- days), due now in the site's webhooks:due (claimed with a lease by webhooks_claim.lua,
-- per site), listed in the webhook's :deliveries (last 200).
local function wh_deliver(h, did, etype, body, now)
  local dkey = whdkey(h.site, did)
  redis.call('HSET', dkey, 'id', did, 'webhook', h.id, 'site', h.site, 'event', etype, 'body', body,
    'attempts', '0', 'state', 'pending', 'created_at', now, 'next_at', now, 'last_status', '', 'last_error', '')
  redis.call('EXPIRE', dkey, 7 * 86400)
  wh_due(h.site, did, now)
  local lkey = whkey(h.site, h.id) .. ':deliveries'
  redis.call('ZADD', lkey, now, did)
  redis.call('ZREMRANGEBYRANK', lkey, 0, -201)
end
-- ---------- automation rules (docs/rules.md; rules.lua, api_rules.lua) ----------
-- Rules of a site: P{s:<key>}:rules (zset id -> position), P{s:<key>}:rule:<id>
-- (hash: id, name, enabled, match, trigger/conditions/actions as JSON text, times).
local function rule_json(h)
  return '{"id":' .. S(h.id) .. ',"name":' .. S(h.name) .. ',"enabled":' .. (h.enabled == '0' and 'false' or 'true') ..
    ',"match":' .. S((h.match and h.match ~= '') and h.match or 'all') .. ',"trigger":' .. h.trigger ..
    ',"conditions":' .. ((h.conditions and h.conditions ~= '') and h.conditions or '[]') ..
    ',"actions":' .. h.actions .. ',"created_at":' .. N(h.created_at) .. ',"updated_at":' .. N(h.updated_at) .. '}'
end
local function rules_of(site)
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', skey(site, 'rules'), 0, -1)) do
    local h = hgetall(skey(site, 'rule:' .. id))
    if h then table.insert(out, rule_json(h)) end
  end
  return out
end
-- What rule conditions see of a conversation (docs/rules.md "Snapshot").
local function json_or(s, dflt) -- stored JSON text, or dflt when missing or not JSON
  if not s or s == '' or not pcall(cjson.decode, s) then return dflt end
  return s
end
local function rules_snapshot(c)
  local v = hgetall(vkey(c.site, c.visitor or '')) or {}
  local attrs = json_or(v.attributes, '{}')
  return '{"id":' .. S(c.id) .. ',"site":' .. S(c.site) .. ',"status":' .. S(c.status) .. ',"priority":' ..
    S(c.priority) .. ',"category":' .. J(c.category) .. ',"team":' .. J(c.team) .. ',"assignee":' .. J(c.assignee) ..
    ',"subject":' .. J(c.subject) .. ',"tags":' .. json_or(c.tags, '[]') ..
    ',"created_at":' .. N(c.created_at) .. ',"first_response_at":' .. N(c.first_response_at) ..
    ',"ticket":' .. N(c.ticket_number) .. ',"visitor":{"id":' .. S(c.visitor) .. ',"name":' ..
    J(v.name or c.visitor_name) .. ',"email":' .. J(v.email or c.visitor_email) .. ',"user_id":' .. J(v.user_id) ..
    ',"attributes":' .. attrs .. '}}'
end
-- Canned reply variables (docs/dashboard.md "Canned replies"): {customer_name},
-- {ticket_number}, {agent_name}, their Chinese aliases and {attr.<key>} (a visitor
-- attribute). A placeholder is a {name} of letters, digits, _ . - or non-ASCII text; one
-- that is none of these is unknown (a misspelling such as {customer_nmae}), which the API
-- refuses in a canned reply and a rule never sends. The dashboard's composer applies the
-- same names (dashboard/src/util.js).
local CANNED_ALIASES = {['客户姓名'] = 'customer_name', ['工单编号'] = 'ticket_number', ['客服姓名'] = 'agent_name'}
local CANNED_NAMES = {customer_name = true, ticket_number = true, agent_name = true}
local CANNED_PLACEHOLDER = '{([%w_%.%-\128-\255]+)}'
local function canned_known(name)
  name = CANNED_ALIASES[name] or name
  return CANNED_NAMES[name] or (#name <= 69 and string.match(name, '^attr%.[%w_%.%-]+$') ~= nil)
end
-- The unknown placeholders of a body, each once, in order of appearance.
local function canned_unknown(body)
  local out, seen = {}, {}
  for name in string.gmatch(body, CANNED_PLACEHOLDER) do
    if not canned_known(name) and not seen[name] then
      seen[name] = true
      table.insert(out, '{' .. name .. '}')
    end
  end
  return out
end
-- Fills a canned body for conversation c (its hash): the customer's name, the ticket
-- number, the assignee's name, the visitor's attributes. Returns the text and the list of
-- variables left without a value (each once); unknown placeholders count as missing, so a
-- caller that sends nothing while the list is not empty never sends a raw {variable}.
local function canned_fill(body, c)
  local v = hgetall(vkey(c.site, c.visitor or '')) or {}
  local attrs = {}
  if v.attributes and v.attributes ~= '' then
    local ok, t = pcall(cjson.decode, v.attributes)
    if ok and type(t) == 'table' then attrs = t end
  end
  local values = {customer_name = v.name or c.visitor_name, ticket_number = c.ticket_number,
    agent_name = c.assignee_name}
  local missing, seen = {}, {}
  local text = string.gsub(body, CANNED_PLACEHOLDER, function(name)
    local val
    if canned_known(name) then
      local n = CANNED_ALIASES[name] or name
      if string.sub(n, 1, 5) == 'attr.' then val = attrs[string.sub(n, 6)] else val = values[n] end
    end
    if type(val) == 'number' or type(val) == 'boolean' then val = tostring(val) end
    if type(val) ~= 'string' or not string.find(val, '%S') then
      if not seen[name] then
        seen[name] = true
        table.insert(missing, '{' .. name .. '}')
      end
      return nil
    end
    return val
  end)
  return text, missing
end
-- ---------- e-mail (docs/email.md; docs/keyspace.md "E-mail") ----------
-- A site's outbox lives in its slot: P{s:<site>}:mail:<id> (hash, kept 7 days),
-- P{s:<site>}:mails (zset id -> queued ms, the last 500), P{s:<site>}:mail:seq. A queued
-- mail is the timer "mail|<id>": a node claims it with the timer lease and sends it
-- (mail_take.lua, then SMTP, then mail_result.lua; server/mail/outbox.c).
local function mailkey(site, id) return skey(site, 'mail:' .. id) end
-- The domain of an address ("Name <l@d>" or "l@d"), lower case; nil when it has none.
local function mail_domain(addr)
  local d = type(addr) == 'string' and string.match(addr, '@([%w%.%-]+)>?%s*$')
  return d and string.lower(d) or nil
end
-- The conversation's reply token (conv field mail_token; P{s:<site>}:mailtok:<token> ->
-- cid, kept 180 days from its last mail): 20 lower-case hex characters from the caller's
-- fresh random text, so a reply to support+<token>@domain finds its conversation and
-- cannot be guessed (lower case: some mail systems fold the local part's case).
local function mail_token(c, rnd)
  local tok = c.mail_token
  if not tok or tok == '' then
    tok = string.sub(redis.sha1hex(rnd .. c.id), 1, 20)
    redis.call('HSET', ckey(c.id, c.site), 'mail_token', tok)
    c.mail_token = tok
  end
  redis.call('SET', skey(c.site, 'mailtok:' .. tok), c.id, 'EX', 180 * 86400)
  return tok
end
-- Queue one mail of site record s, due at `due` (ms): f = {kind, to, to_name, subject,
-- text, cid, seq, token, auto ('1': Auto-Submitted: auto-generated)}. Its Message-ID is
-- fixed here, <m<n>.<16 hex>.<site>@<domain>> (the domain of the site's From address, else
-- of the node's default `dflt`), so every retry, and a resend after a node died mid-send,
-- carries the same one. Returns the mail's id.
local function mail_queue(s, f, now, due, rnd, dflt)
  local site = s.key
  local id = 'm' .. I(redis.call('INCR', skey(site, 'mail:seq')))
  local dom = mail_domain(s.mail_from) or mail_domain(dflt) or 'localhost'
  local mid = '<' .. id .. '.' .. string.sub(redis.sha1hex(rnd .. site .. id), 1, 16) .. '.' .. site .. '@' .. dom .. '>'
  local k = mailkey(site, id)
  redis.call('HSET', k, 'id', id, 'site', site, 'kind', f.kind, 'to', f.to, 'to_name', f.to_name or '',
    'subject', f.subject, 'text', f.text, 'cid', f.cid or '', 'seq', f.seq or '', 'token', f.token or '',
    'auto', f.auto or '0', 'message_id', mid, 'state', 'pending', 'attempts', '0', 'created_at', now,
    'next_at', due, 'last_error', '')
  redis.call('EXPIRE', k, 7 * 86400)
  redis.call('ZADD', skey(site, 'mails'), now, id)
  redis.call('ZREMRANGEBYRANK', skey(site, 'mails'), 0, -501)
  timer_set(site, 'mail', id, due)
  return id
end
-- A mail as the API lists it.
local function mail_json(m)
  return '{"id":' .. S(m.id) .. ',"kind":' .. S(m.kind) .. ',"to":' .. S(m.to) .. ',"subject":' .. S(m.subject) ..
    ',"conversation_id":' .. J(m.cid) .. ',"message_id":' .. S(m.message_id) .. ',"in_reply_to":' .. J(m.in_reply_to) ..
    ',"state":' .. S(m.state) .. ',"attempts":' .. N(m.attempts) .. ',"created_at":' .. N(m.created_at) ..
    ',"next_at":' .. N(m.next_at) .. ',"sent_at":' .. N(m.sent_at) .. ',"last_error":' .. J(m.last_error) .. '}'
end
