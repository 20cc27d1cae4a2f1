// Automation rules (issue 8): the admin API (strict validation, CRUD, reorder, team
// leads), the examples driven through real conversations on real nodes, rules
// fire once per event with three nodes polling one Redis, rule-caused events trigger no
// rules, a time trigger scheduled on a node that is killed (-9) fires once on another,
// and the dry run.
import fs from 'node:fs';
import path from 'node:path';
import { useEnv, it, assert, waitUntil, sleep, rnd, SCALE, REPO_ROOT, storedMessages } from './harness.mjs';

const FAST = ['--timer-poll-ms', '100', '--timer-lease-ms', '3000', '--event-poll-ms', '20'];
// events_retain_s: the tests read the event stream after the consumers applied it
const env = useEnv({ nodes: 3, args: [...FAST, '--events-retain-s', '3600'] });

async function adminToken(site) {
    const email = `boss_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    const a = await env.admin('agent-add', '--email', email, '--password', password, '--name', 'Boss', '--site', site.key, '--role', 'admin');
    return { token: await env.login(0, email, password), id: a.id, email, password };
}

function api(token, method, url, body, node = 0) {
    return env.http(node, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function addRule(token, site, rule) {
    const r = await api(token, 'POST', `/api/v1/admin/sites/${site.key}/rules`, rule);
    assert.equal(r.status, 201, r.text);
    return r.json.rule;
}

const messages = (cid) => storedMessages(env.redis, cid);

const conv = async (cid) => {
    const r = await env.redis.cmd('HGETALL', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`);
    const o = {};
    for (let i = 0; i < r.length; i += 2) o[r[i]] = r[i + 1];
    return o;
};

async function eventsBy(cid, by) {
    const out = [];
    for (const [, f] of await env.redis.cmd('XRANGE', `cd:{s:${cid.split('.').pop()}}:events`, '-', '+')) {
        const e = {};
        for (let i = 0; i < f.length; i += 2) e[f[i]] = f[i + 1];
        if (e.c === cid && (!by || e.by === by)) out.push(e);
    }
    return out;
}

it('rules are validated strictly (400 with a clear message) and managed: list, patch, reorder, delete', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const base = `/api/v1/admin/sites/${site.key}/rules`;
    const bad = [
        [{ name: 'x', trigger: { event: 'nope' }, actions: [{ type: 'notify_admins' }] }, /trigger.event/],
        [{ name: 'x', trigger: { event: 'message.created' }, actions: [] }, /actions must/],
        [{ name: 'x', trigger: { event: 'message.created' }, actions: [{ type: 'explode' }] }, /type must/],
        [{ name: 'x', trigger: { time: { after_s: 0, since: 'created' } }, actions: [{ type: 'notify_admins' }] }, /after_s/],
        [{ name: 'x', trigger: { event: 'message.created' }, conditions: [{ field: 'colour', op: 'eq', value: 1 }], actions: [{ type: 'notify_admins' }] }, /field must/],
        [{ name: 'x', trigger: { event: 'message.created' }, conditions: [{ field: 'status', op: 'like', value: 'x' }], actions: [{ type: 'notify_admins' }] }, /op must/],
        [{ name: 'x', trigger: { event: 'message.created' }, actions: [{ type: 'set_priority', priority: 'hot' }] }, /priority/],
        [{ trigger: { event: 'message.created' }, actions: [{ type: 'notify_admins' }] }, /name/],
        [{ name: 'x', trigger: { event: 'message.created' }, actions: [{ type: 'notify_admins' }], extra: 1 }, /unknown member/],
    ];
    for (const [body, re] of bad) {
        const r = await api(token, 'POST', base, body);
        assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
        assert.equal(r.json.error.code, 'bad_request');
        assert.match(r.json.error.message, re);
    }
    const notJson = await env.http(0, base, { method: 'POST', body: '{"name":', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    assert.equal(notJson.status, 400);
    // a query string cannot smuggle unvalidated parts in
    const sneaky = await api(token, 'POST', `${base}?raw_actions=%5B%5D`, { name: 'x', trigger: { event: 'message.created' } });
    assert.equal(sneaky.status, 400, sneaky.text);

    const a = await addRule(token, site, { name: 'A', trigger: { event: 'message.created' }, actions: [{ type: 'notify_admins' }] });
    const b = await addRule(token, site, { id: 'rule-b', name: 'B', match: 'any', trigger: { time: { after_s: 60, since: 'status:pending' } }, conditions: [{ field: 'tags', op: 'contains', value: 'vip' }], actions: [{ type: 'add_tags', tags: ['late'] }] });
    assert.equal(b.id, 'rule-b');
    assert.equal(a.enabled, true);
    assert.equal(a.match, 'all');
    assert.deepEqual(a.conditions, []);
    assert.equal((await api(token, 'POST', base, { id: 'rule-b', name: 'dup', trigger: { event: 'message.created' }, actions: [{ type: 'notify_admins' }] })).status, 409);
    let list = (await api(token, 'GET', base)).json.rules;
    assert.deepEqual(list.map((r) => r.id), [a.id, 'rule-b']);
    assert.deepEqual(list[1].trigger, { time: { after_s: 60, since: 'status:pending' } });
    const p = await api(token, 'PATCH', `${base}/${a.id}`, { enabled: false, name: 'A2' });
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.rule.enabled, false);
    assert.equal(p.json.rule.name, 'A2');
    assert.equal((await api(token, 'PATCH', `${base}/${a.id}`, { enabled: 'no' })).status, 400);
    assert.equal((await api(token, 'PATCH', `${base}/${a.id}`, { id: 'other' })).status, 400);
    assert.equal((await api(token, 'PATCH', `${base}/nope`, { enabled: true })).status, 404);
    const ro = await api(token, 'POST', `${base}/reorder`, { ids: ['rule-b', a.id] });
    assert.equal(ro.status, 200, ro.text);
    assert.deepEqual(ro.json.rules.map((r) => r.id), ['rule-b', a.id]);
    assert.equal((await api(token, 'POST', `${base}/reorder`, { ids: ['rule-b'] })).status, 400);
    assert.equal((await api(token, 'DELETE', `${base}/${a.id}`)).status, 204);
    assert.equal((await api(token, 'DELETE', `${base}/${a.id}`)).status, 404);
    list = (await api(token, 'GET', base)).json.rules;
    assert.deepEqual(list.map((r) => r.id), ['rule-b']);
    // agents (not admins) and other sites' admins may not
    const ag = await env.addAgent({ site });
    const agTok = await env.login(0, ag.email, ag.password);
    assert.equal((await api(agTok, 'GET', base)).status, 403);
    const other = await env.addSite();
    const { token: otherTok } = await adminToken(other);
    assert.equal((await api(otherTok, 'GET', base)).status, 404);
});

it('issue examples: server failure + high goes to infrastructure with priority raised; an agent saying solved resolves it, and that rule-caused change triggers no rule', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    assert.equal((await api(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { auto_assign: false })).status, 200);
    const t = await api(token, 'POST', `/api/v1/admin/sites/${site.key}/teams`, { key: 'infra', name: 'Infrastructure' });
    assert.equal(t.status, 201, t.text);
    const r1 = await addRule(token, site, {
        name: 'Server failures to infrastructure',
        trigger: { event: 'conversation.created' },
        conditions: [{ field: 'category', op: 'eq', value: 'server failure' }, { field: 'priority', op: 'gte', value: 'high' }],
        actions: [{ type: 'assign_team', team: 'infra' }, { type: 'set_priority', priority: 'urgent' }],
    });
    const r2 = await addRule(token, site, {
        name: 'Agent says solved: resolve',
        trigger: { event: 'message.created' },
        conditions: [{ field: 'event.author.kind', op: 'eq', value: 'agent' }, { field: 'event.private', op: 'eq', value: false },
            { field: 'text', op: 'contains', value: 'solved' }],
        actions: [{ type: 'set_status', status: 'resolved' }],
    });
    const r3 = await addRule(token, site, {
        name: 'Any status change: note',
        trigger: { event: 'conversation.status_changed' },
        actions: [{ type: 'private_note', body: 'status changed' }],
    });
    const v = await env.visitor(1, { site });
    const hit = (await v.ok({ type: 'conversation.start', form: { message: 'all servers down', category: 'Server failure', priority: 'high' } })).conversation.id;
    const miss = (await v.ok({ type: 'conversation.start', form: { message: 'pricing?', category: 'sales', priority: 'high' } })).conversation.id;
    await waitUntil(async () => (await conv(hit)).priority === 'urgent', { what: 'priority raised' });
    const c = await conv(hit);
    assert.equal(c.team, 'infra');
    assert.equal(c.status, 'queued');
    const ev = await eventsBy(hit, `rule:${r1.id}`);
    assert.deepEqual(ev.map((e) => e.t).sort(), ['conversation.updated', 'conversation.updated', 'message.created'].sort());
    const notes = (await messages(hit)).filter((m) => m.priv === '1');
    assert.equal(notes.length, 1);
    assert.match(notes[0].body, /Rule "Server failures to infrastructure": moved to team infra/);
    assert.equal(notes[0].ak, 'system');
    // the queued -> open change by an agent is not by a rule: r3 notes it
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    await a.ok({ type: 'conversation.accept', conversation_id: miss });
    await waitUntil(async () => (await messages(miss)).some((m) => m.body === 'status changed'), { what: 'r3 on accept' });
    // an agent reply moves the chat to pending (built in, by the agent): r3 notes it
    await a.ok({ type: 'message.send', conversation_id: miss, client_msg_id: 'x1', body: 'Which plan?' });
    await waitUntil(async () => (await messages(miss)).filter((m) => m.body === 'status changed').length === 2, { what: 'r3 on pending' });
    // a visitor message does not match r2
    await v.ok({ type: 'message.send', conversation_id: miss, client_msg_id: 'y1', body: 'Pro, is it solved?' });
    await a.ok({ type: 'message.send', conversation_id: miss, client_msg_id: 'x2', body: 'Yes, solved now' });
    await waitUntil(async () => (await conv(miss)).status === 'resolved', { what: 'r2 resolves' });
    await sleep(600);
    // the status change made by r2 fired no rule: r3 noted accept, the agent's replies
    // (-> pending) and the visitor's (-> open), not the rule's pending -> resolved
    const statusEvents = (await eventsBy(miss)).filter((e) => e.t === 'conversation.status_changed');
    assert.equal(statusEvents.filter((e) => !e.by.startsWith('rule:')).length, 4, JSON.stringify(statusEvents));
    assert.equal(statusEvents.filter((e) => e.by === `rule:${r2.id}`).length, 1);
    assert.equal((await messages(miss)).filter((m) => m.body === 'status changed').length, 4);
    assert.equal((await eventsBy(miss, `rule:${r3.id}`)).length, 4);
    v.terminate();
    a.terminate();
});

it('each rule fires exactly once per event with three nodes polling one Redis', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const rule = await addRule(token, site, {
        name: 'Refund requests',
        match: 'any',
        trigger: { event: 'message.created' },
        conditions: [{ field: 'text', op: 'contains', value: 'refund' }, { field: 'text', op: 'contains', value: '退款' }],
        actions: [{ type: 'add_tags', tags: ['refund'] }, { type: 'private_note', body: 'Refund policy: see KB 12' }, { type: 'webhook', webhook: 'wh_1' }],
    });
    const N = 15;
    const vs = [];
    for (let i = 0; i < N; i++) vs.push(await env.visitor(i % 3, { site }));
    const cids = (await Promise.all(vs.map((v, i) => v.ok({ type: 'conversation.start', form: { message: i % 2 ? 'I want a REFUND' : '我要退款' } })))).map((s) => s.conversation.id);
    // and a second matching message in each, sent on another node
    await Promise.all(vs.map((v, i) => v.ok({ type: 'message.send', conversation_id: cids[i], client_msg_id: 'm2', body: 'refund please, again' })));
    await waitUntil(async () => {
        for (const cid of cids) if ((await messages(cid)).filter((m) => m.priv === '1').length < 2) return false;
        return true;
    }, { timeout: 15_000 * SCALE, what: 'two notes in every conversation' });
    await sleep(800); // duplicates, if any, would land now
    for (const cid of cids) {
        const notes = (await messages(cid)).filter((m) => m.priv === '1');
        assert.equal(notes.length, 2, `${cid}: ${notes.length} notes for 2 matching messages: ${JSON.stringify(notes)}`);
        assert.deepEqual(JSON.parse((await conv(cid)).tags), ['refund']);
        const hooks = (await eventsBy(cid, `rule:${rule.id}`)).filter((e) => e.t === 'rule.webhook');
        assert.equal(hooks.length, 2);
        assert.deepEqual(JSON.parse(hooks[0].d), { rule: rule.id, webhook: 'wh_1' });
    }
    // the rule's own private notes are message events too: they fired nothing
    const evKey = `cd:{s:${site.key}}:events`;
    const cursor = await env.redis.cmd('HGET', `${evKey}:cur`, 'rules');
    const last = (await env.redis.cmd('XREVRANGE', evKey, '+', '-', 'COUNT', '1'))[0][0];
    await waitUntil(async () => (await env.redis.cmd('HGET', `${evKey}:cur`, 'rules')) === last || cursor === last, { what: 'cursor at the end' });
    for (const v of vs) v.terminate();
});

it('compare-and-set: two nodes that read the same batch apply it once (store/lua/events.lua, real Redis)', async () => {
    // The function as the nodes run it (_common.lua, the _ev_*.lua consumers, events.lua),
    // on a key prefix of its own so that the running nodes do not take part. Node A reads
    // a batch and holds the site's lease, so node B is told "busy"; once A's lease has run
    // out B reads the same rules batch; A applies, B finds the cursor moved and applies
    // nothing.
    const dir = path.join(REPO_ROOT, 'server/store/lua');
    const parts = fs.readdirSync(dir).filter((f) => f.startsWith('_ev_')).sort();
    const lua = fs.readFileSync(path.join(dir, '_common.lua'), 'utf8') + '\nCSITE = key_site(KEYS[1])\n' +
        [...parts, 'events.lua'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
    const P = `iso${rnd(3)}:`;
    const key = `${P}{s:s}:events`;
    const run = (...args) => env.redis.cmd('EVAL', lua, '1', key, P, ...args.map(String));
    const now = Date.now();
    await env.redis.cmd('HSET', `${P}{s:s}:conv:c1`, 'id', 'c1', 'site', 's', 'status', 'open', 'priority', 'normal', 'visitor', 'v1', 'tags', '[]', 'last_seq', '0', 'created_at', String(now));
    await env.redis.cmd('ZADD', `${P}{s:s}:rules`, '1', 'r1');
    await env.redis.cmd('HSET', `${P}{s:s}:rule:r1`, 'id', 'r1', 'name', 'N', 'enabled', '1', 'match', 'all', 'trigger', '{"event":"message.created"}', 'conditions', '[]', 'actions', '[{"type":"private_note","body":"once"}]');
    assert.deepEqual(JSON.parse(await run('run', now, 10, 'A', 10000, 0)), { n: 0, more: false, idle: true }); // nothing yet
    for (let i = 0; i < 2; i++) await env.redis.cmd('XADD', key, '*', 't', 'message.created', 's', 's', 'c', 'c1', 'ts', String(now), 'by', 'visitor:v1', 'd', '{"body":"hi"}');
    await env.redis.cmd('SET', `${key}:armed`, '1'); // as emit does
    const a = JSON.parse(await run('run', now, 10, 'A', 10000, 0));
    assert.equal(a.events.length, 2);
    assert.deepEqual(JSON.parse(await run('run', now, 10, 'B', 10000, 0)), { busy: true }, 'A holds the site');
    await env.redis.cmd('DEL', `${key}:lease`); // A's lease ran out
    const b = JSON.parse(await run('run', now, 10, 'B', 10000, 0));
    assert.deepEqual(a, b, 'both read the same batch');
    const plan = (x) => JSON.stringify({ expect: x.expect, cursor: x.last, arm: [], fire: x.events.map((e) => ({ rule: 'r1', name: 'N', site: 's', cid: 'c1', event: e.id, actions: [{ type: 'private_note', body: 'once' }] })) });
    const ra = JSON.parse(await run('rules_apply', now, plan(a), 100, 'A', 0));
    assert.equal(ra.applied, true);
    assert.equal(ra.more, true, 'the notes\' own events are left');
    assert.equal(JSON.parse(await run('rules_apply', now, plan(b), 100, 'B', 0)).applied, false);
    assert.equal(Number(await env.redis.cmd('XLEN', `${P}{s:s}:conv:c1:msgs`)), 2, 'one note per event');
    assert.equal(await env.redis.cmd('HGET', `${key}:cur`, 'rules'), a.last);
    assert.equal(await env.redis.cmd('HGET', `${key}:cur`, 'reports'), a.last, 'every consumer moved with the one read');
    assert.equal(await env.redis.cmd('GET', `${key}:lease`), null, 'B\'s pass ended and gave the lease back');
    // what is left are the notes' own events, which say who caused them
    const rest = JSON.parse(await run('run', now, 10, 'A', 10000, 0)).events;
    assert.deepEqual(rest.map((e) => [e.t, e.by]), [['message.created', 'rule:r1'], ['message.created', 'rule:r1']]);
    await env.redis.cmd('DEL', `${key}:lease`);
});

it('no first response in time notifies the team lead: a timer scheduled on a node killed -9 fires once on another', async () => {
    const site = await env.addSite();
    const boss = await adminToken(site);
    await api(boss.token, 'POST', `/api/v1/admin/sites/${site.key}/teams`, { key: 'sup', name: 'Support' });
    await api(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { category_teams: { billing: 'sup' }, auto_assign: false });
    const lead = await env.addAgent({ site });
    const lp = await api(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}/teams/sup`, { lead: lead.id });
    assert.equal(lp.status, 200, lp.text);
    assert.deepEqual(lp.json.team, { key: 'sup', name: 'Support', lead: lead.id });
    assert.equal((await api(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}/teams/sup`, { lead: 'a_nobody' })).status, 400);
    assert.equal((await api(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}/teams/none`, { lead: lead.id })).status, 404);
    const rule = await addRule(boss.token, site, {
        name: 'No first response in 3 s',
        trigger: { time: { after_s: 3, since: 'created' } },
        conditions: [{ field: 'responded', op: 'eq', value: false }],
        actions: [{ type: 'notify_team_lead', title: 'Unanswered chat' }],
    });
    const extra = await env.addNode(FAST, `n${env.nodes.length + 1}`);
    const leadWs = await env.agent(0, { email: lead.email, password: lead.password });
    const v = await env.visitor(extra, { site });
    const cid = (await v.ok({ type: 'conversation.start', form: { message: 'invoice wrong', category: 'billing' } })).conversation.id;
    const answered = (await v.ok({ type: 'conversation.start', form: { message: 'second', category: 'billing' } })).conversation.id;
    const member = `rule|${site.key}|${rule.id}|${cid}`;
    const due = Number(await waitUntil(() => env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers`, member), { what: 'timer armed' }));
    const created = Number((await conv(cid)).created_at);
    assert.equal(due, created + 3000);
    // the extra node claimed it (it sits leased for 3 s) and dies before handling it
    await env.redis.cmd('ZREM', `cd:{s:${site.key}}:timers`, member);
    const leaseEnd = Date.now() + 3000;
    await env.redis.cmd('ZADD', `cd:{s:${site.key}}:timers:leased`, String(leaseEnd), member);
    await extra.kill9();
    // the other conversation is answered in time: its timer fires but the rule does not
    const ag = await env.addAgent({ site });
    const a = await env.agent(1, { email: ag.email, password: ag.password });
    await a.ok({ type: 'conversation.accept', conversation_id: answered });
    await a.ok({ type: 'message.send', conversation_id: answered, client_msg_id: 'r1', body: 'on it' });
    const notice = await leadWs.waitFor((f) => f.type === 'notice' && f.notice.conversation_id === cid, { timeout: 15_000 * SCALE, what: 'notice to the lead' });
    assert.ok(Date.now() >= leaseEnd - 200, 'fired after the lease');
    assert.equal(notice.notice.kind, 'rule');
    assert.equal(notice.notice.title, 'Unanswered chat');
    await waitUntil(async () => (await env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers`, `rule|${site.key}|${rule.id}|${answered}`)) === null &&
        (await env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers:leased`, `rule|${site.key}|${rule.id}|${answered}`)) === null, { timeout: 10_000 * SCALE, what: 'second timer done' });
    await sleep(1500);
    assert.equal(leadWs.filter((f) => f.type === 'notice' && f.notice.conversation_id === cid).length, 1, 'once');
    assert.equal(leadWs.filter((f) => f.type === 'notice' && f.notice.conversation_id === answered).length, 0, 'answered in time');
    const kept = (await env.redis.cmd('LRANGE', `cd:{s:${site.key}}:agent:${lead.id}:notices`, '0', '-1')).map((s) => JSON.parse(s));
    assert.equal(kept.filter((n) => n.conversation_id === cid).length, 1);
    assert.equal(await env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers:leased`, member), null);
    v.terminate();
    a.terminate();
    leadWs.terminate();
});

it('"pending for N s": a chat that left pending does not fire; entering pending again arms it anew; fires once', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const rule = await addRule(token, site, {
        name: 'Pending for 2 s',
        trigger: { time: { after_s: 2, since: 'status:pending' } },
        actions: [{ type: 'add_tags', tags: ['stale'] }, { type: 'private_note', body: 'still waiting on the customer' }],
    });
    const { a, v, cid } = await env.chat({ site, aNode: 1, vNode: 2 });
    const member = `rule|${site.key}|${rule.id}|${cid}`;
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'a1', body: 'Could you check?' });
    const due1 = Number(await waitUntil(() => env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers`, member), { what: 'armed on pending' }));
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'v1', body: 'checking' }); // -> open
    // the deadline passes while the chat is open: the timer is consumed and does nothing
    await waitUntil(async () => Date.now() > due1 && (await env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers`, member)) === null &&
        (await env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers:leased`, member)) === null, { timeout: 10_000 * SCALE, what: 'first timer consumed' });
    assert.equal((await conv(cid)).tags, '[]', 'not fired while open');
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'a2', body: 'Thanks, and?' }); // -> pending again
    const due2 = Number(await waitUntil(() => env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers`, member), { what: 're-armed' }));
    assert.ok(due2 > due1 + 2000, 'armed from the new anchor');
    await waitUntil(async () => JSON.parse((await conv(cid)).tags || '[]').includes('stale'), { timeout: 10_000 * SCALE, what: 'fired' });
    assert.ok(Date.now() >= due2 - 50, 'not before the re-armed deadline');
    await sleep(800);
    assert.equal((await messages(cid)).filter((m) => m.body === 'still waiting on the customer').length, 1, 'once');
    assert.equal(await env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers`, member), null);
    assert.equal(await env.redis.cmd('ZSCORE', `cd:{s:${site.key}}:timers:leased`, member), null);
    // the conversation leaves pending: a new anchor never comes, nothing fires again
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'v2', body: 'ok' });
    assert.equal((await conv(cid)).status, 'open');
});

it('sla.breached triggers a rule: the admins get a notice, with the event\'s kind as a condition', async () => {
    const site = await env.addSite();
    const boss = await adminToken(site);
    await api(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { unanswered_after_s: 0 });
    const sla = await api(boss.token, 'PUT', `/api/v1/admin/sites/${site.key}/sla`, { policies: { normal: { first_response_s: 2, resolution_s: 3600 } }, warn_at: 0.5 });
    assert.equal(sla.status, 200, sla.text);
    const rule = await addRule(boss.token, site, {
        name: 'First response breached',
        trigger: { event: 'sla.breached' },
        conditions: [{ field: 'event.kind', op: 'eq', value: 'first_response' }],
        actions: [{ type: 'notify_admins', title: 'SLA breached' }, { type: 'set_priority', priority: 'urgent' }],
    });
    // nobody of the site is online: the chat is a ticket at once, its first response due in 2 s
    const v = await env.visitor(0, { site });
    const cid = (await v.ok({ type: 'conversation.start', form: { message: 'anyone?', email: 'x@example.com' } })).conversation.id;
    assert.ok((await conv(cid)).ticket_number, 'a ticket at once');
    // the rule's notices (the SLA's own breach action, notify_admins, adds one of kind "sla")
    const notices = async () => (await env.redis.cmd('LRANGE', `cd:{s:${site.key}}:agent:${boss.id}:notices`, '0', '-1')).map((x) => JSON.parse(x)).filter((x) => x.conversation_id === cid);
    const kept = async () => (await notices()).filter((x) => x.kind === 'rule');
    const [n] = await waitUntil(async () => { const k = await kept(); return k.length ? k : null; }, { timeout: 15_000 * SCALE, what: 'breach notice' });
    assert.equal(n.title, 'SLA breached');
    assert.equal(n.kind, 'rule');
    await waitUntil(async () => (await conv(cid)).priority === 'urgent', { what: 'priority' });
    assert.equal((await eventsBy(cid, `rule:${rule.id}`)).filter((e) => e.t === 'conversation.updated').length, 1);
    await sleep(500);
    assert.equal((await kept()).length, 1, 'once');
    assert.deepEqual((await notices()).map((x) => x.kind).sort(), ['rule', 'sla']);
    v.terminate();
});

it('dry run shows which rules would fire for a conversation, condition by condition', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const vip = await addRule(token, site, {
        name: 'VIP', trigger: { event: 'conversation.assigned' },
        conditions: [{ field: 'priority', op: 'eq', value: 'high' }, { field: 'text', op: 'contains', value: 'down' }],
        actions: [{ type: 'set_priority', priority: 'urgent' }],
    });
    const low = await addRule(token, site, {
        name: 'Low', trigger: { event: 'conversation.created' },
        conditions: [{ field: 'priority', op: 'eq', value: 'low' }],
        actions: [{ type: 'add_tags', tags: ['low'] }],
    });
    const v = await env.visitor(2, { site });
    const cid = (await v.ok({ type: 'conversation.start', form: { message: 'the shop is broken', subject: 'Shop down', priority: 'high' } })).conversation.id;
    const url = `/api/v1/admin/sites/${site.key}/rules/dry-run`;
    const msg = await addRule(token, site, {
        name: 'Broken', trigger: { event: 'message.created' },
        conditions: [{ field: 'text', op: 'contains', value: 'BROKEN' }, { field: 'event.author.kind', op: 'eq', value: 'visitor' }],
        actions: [{ type: 'add_tags', tags: ['broken'] }],
    });
    let r = await api(token, 'POST', url, { conversation_id: cid, event: 'message.created' }, 2);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.rules.map((x) => [x.id, x.would_fire]), [[vip.id, false], [low.id, false], [msg.id, true]]);
    assert.deepEqual(r.json.rules[2].conditions.map((c) => c.result), [true, true]);
    r = await api(token, 'POST', url, { conversation_id: cid, event: 'conversation.assigned' }, 2);
    assert.equal(r.status, 200, r.text);
    const [a, b] = r.json.rules;
    assert.equal(a.id, vip.id);
    assert.equal(a.would_fire, true);
    assert.deepEqual(a.conditions.map((c) => c.result), [true, true]);
    assert.deepEqual(a.actions, [{ type: 'set_priority', priority: 'urgent' }]);
    assert.equal(b.id, low.id);
    assert.equal(b.would_fire, false);
    assert.equal(b.trigger_matches, false);
    assert.deepEqual(b.conditions.map((c) => c.result), [false]);
    assert.equal(typeof r.json.business_hours, 'boolean');
    r = await api(token, 'POST', url, { conversation_id: cid });
    assert.equal(r.json.rules[0].would_fire, true);
    assert.equal((await api(token, 'POST', url, { conversation_id: 'c_nope' })).status, 404);
    assert.equal((await api(token, 'POST', url, {})).status, 400);
    assert.equal((await api(token, 'POST', url, { conversation_id: cid, event: 'bogus' })).status, 400);
    // a dry run changes nothing
    assert.equal((await conv(cid)).priority, 'high');
    v.terminate();
});
