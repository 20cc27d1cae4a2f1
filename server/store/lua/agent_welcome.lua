-- KEYS: P{s:<site>}:agent:<id>. ARGV: P, site, agent id, teams (JSON array: the agent's).
-- Read-only (no-writes). What an agent's hello is welcomed with from one of its sites: its
-- conversations there that are assigned to it and not closed, and the queues of its teams
-- there (and the team-less queue). The node calls this once per site of the agent, after
-- agent_get read the agent's own record, and merges the lists: each call stays in its
-- site's slot (ARCHITECTURE invariant 4).
local site, aid = ARGV[2], ARGV[3]
local a = {teams = ARGV[4]}
local convs = {}
for _, cid in ipairs(redis.call('SMEMBERS', aconvs(site, aid))) do
  local c = hgetall(ckey(cid, site))
  if c and c.status ~= 'closed' and c.assignee == aid then table.insert(convs, conv_json(c)) end
end
local queue = {}
for _, t in ipairs(site_teams(site)) do
  if agent_in_team(a, t) then
    for _, qid in ipairs(redis.call('ZRANGE', qkey(site, t), 0, 99)) do
      local q = hgetall(ckey(qid, site))
      if q and q.status == 'queued' then table.insert(queue, conv_json(q)) end
    end
  end
end
return '{"conversations":[' .. table.concat(convs, ',') .. '],"queue":[' .. table.concat(queue, ',') .. ']}'
