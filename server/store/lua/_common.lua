-- Prepended to every script. ARGV[1] is always the key prefix.
local P = ARGV[1]
local function ckey(cid) return P .. 'conv:{' .. cid .. '}' end
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
local function pub(channel, seq, aud, excl, frame)
  redis.call('PUBLISH', P .. 'ch:' .. channel, I(seq) .. ' ' .. aud .. ' ' .. excl .. '\n' .. frame)
end
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
    ',"csat":' .. ((c.csat_score and c.csat_score ~= '') and ('{"score":' .. c.csat_score .. ',"comment":' .. J(c.csat_comment) .. '}') or 'null') ..
    ',"ticket":null}'
end
-- A stream entry (flat field list) -> message JSON.
local function msg_json(seq, f)
  local t = {}
  for i = 1, #f, 2 do t[f[i]] = f[i + 1] end
  return '{"seq":' .. seq .. ',"id":' .. S(t.id) .. ',"client_msg_id":' .. J(t.cmid) ..
    ',"author":{"kind":' .. S(t.ak) .. ',"id":' .. S(t.aid) .. ',"name":' .. J(t.an) .. '}' ..
    ',"body":' .. S(t.body) .. ',"private":' .. (t.priv == '1' and 'true' or 'false') ..
    ',"ts":' .. N(t.ts) .. '}', t.priv == '1'
end
local function seq_of(id) return string.match(id, '^0%-(%d+)$') end
-- Who may touch a conversation: its visitor, or an agent of its site.
local function may_access(c, kind, who)
  if kind == 'visitor' then return c.visitor == who end
  if kind == 'agent' then
    local sites = redis.call('HGET', P .. 'agent:' .. who, 'sites')
    if not sites then return false end
    for _, s in ipairs(cjson.decode(sites)) do if s == c.site then return true end end
    return false
  end
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
-- Append one message; returns seq, message JSON, private flag.
local function append_msg(c, msg_id, cmid, ak, aid, an, body, priv, now, retain)
  local key = ckey(c.id)
  local seq = redis.call('HINCRBY', key, 'last_seq', 1)
  c.last_seq = I(seq)
  local fields = {'id', msg_id, 'cmid', cmid, 'ak', ak, 'aid', aid, 'an', an, 'body', body, 'priv', priv, 'ts', now}
  if retain > 0 then
    redis.call('XADD', key .. ':msgs', 'MAXLEN', '~', retain, '0-' .. I(seq), unpack(fields))
  else
    redis.call('XADD', key .. ':msgs', '0-' .. I(seq), unpack(fields))
  end
  if cmid ~= '' then redis.call('HSET', key .. ':dedupe', ak .. ':' .. aid .. ':' .. cmid, seq) end
  local mj = msg_json(I(seq), fields)
  local frame = '{"type":"message.created","conversation_id":' .. S(c.id) .. ',"message":' .. mj .. '}'
  pub('conv:' .. c.id, seq, priv == '1' and 'a' or '*', '-', frame)
  return seq, mj
end
