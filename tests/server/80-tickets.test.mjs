// Tickets and SLA (issue 4): unanswered chats become tickets once across three nodes,
// warnings and breaches fire once, a timer claimed by a node that died fires after the
// lease, the clock pauses while pending, the offline form, the ticket API.
import fs from 'node:fs';
import path from 'node:path';
import { useEnv, it, assert, waitUntil, sleep, rnd, SCALE, REPO_ROOT } from './harness.mjs';

const FAST = ['--timer-poll-ms', '100', '--timer-lease-ms', '3000', '--presence-ttl-s', '4', '--presence-beat-s', '1'];
const env = useEnv({ nodes: 3, args: FAST });

async function adminToken(site) {
    const email = `boss_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    await env.admin('agent-add', '--email', email, '--password', password, '--name', 'Boss', '--site', site.key, '--role', 'admin');
    return env.login(0, email, password);
}

function api(token, method, url, body) {
    return env.http(0, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function setSla(token, site, sla) {
    const r = await api(token, 'PUT', `/api/v1/admin/sites/${site.key}/sla`, sla);
    assert.equal(r.status, 200, r.text);
}

it('each unanswered chat becomes exactly one ticket; each warning and breach fires once, across three nodes', async () => {
    const site = await env.addSite();
    const token = await adminToken(site);
    const r = await api(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { unanswered_after_s: 1, auto_assign: false });
    assert.equal(r.status, 200, r.text);
    await setSla(token, site, { policies: { normal: { first_response_s: 3, resolution_s: 3600 } }, warn_at: 0.5 });
    // an agent is online (so chats are not tickets at once) but answers nobody
    const ag = await env.addAgent({ site });
    const watchers = [];
    for (let i = 0; i < 3; i++) watchers.push(await env.agent(i, { email: ag.email, password: ag.password }));
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{a}:agent:${ag.id}`, 'status')) === 'online', { what: 'online' });
    const N = 12;
    const vs = [];
    for (let i = 0; i < N; i++) vs.push(await env.visitor(i % 3, { site }));
    const starts = await Promise.all(vs.map((v, i) => v.ok({ type: 'conversation.start', form: { message: `help ${i}`, email: `c${i}@example.com` } })));
    const cids = starts.map((s) => s.conversation.id);
    for (const s of starts) assert.equal(s.conversation.ticket, null, 'not a ticket while someone could answer');
    const w = watchers[0];
    await waitUntil(() => cids.every((cid) => w.filter((f) => f.type === 'sla.breached' && f.conversation_id === cid).length >= 1),
        { timeout: 30_000 * SCALE, what: 'every first-response breach' });
    await sleep(1500); // anything duplicated would arrive now
    const numbers = new Set();
    for (const cid of cids) {
        const created = w.filter((f) => f.type === 'ticket.created' && f.conversation.id === cid);
        assert.equal(created.length, 1, `${cid}: ${created.length} ticket.created`);
        numbers.add(created[0].conversation.ticket.number);
        for (const kind of ['sla.warning', 'sla.breached']) {
            const n = w.filter((f) => f.type === kind && f.conversation_id === cid && f.kind === 'first_response').length;
            assert.equal(n, 1, `${cid}: ${kind} x${n}`);
        }
        const msgs = (await vs[cids.indexOf(cid)].ok({ type: 'history', conversation_id: cid })).messages;
        const notices = msgs.filter((m) => m.author.kind === 'system' && /ticket #/.test(m.body));
        assert.equal(notices.length, 1);
        assert.match(notices[0].body, /c\d+@example\.com/);
    }
    assert.equal(numbers.size, N, 'ticket numbers are unique');
    const conv = JSON.parse((await api(token, 'GET', `/api/v1/tickets/${[...numbers][0]}`)).text).ticket;
    assert.deepEqual(conv.ticket.sla.breached, ['first_response']);
    for (const v of vs) v.terminate();
    for (const x of watchers) x.terminate();
});

it('a timer claimed by a node that died (kill -9) fires once, after the lease', async () => {
    const site = await env.addSite();
    const token = await adminToken(site);
    await api(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { unanswered_after_s: 0 });
    await setSla(token, site, { policies: { normal: { first_response_s: 2, resolution_s: 3600 } }, warn_at: 0.9 });
    const extra = await env.addNode(FAST, `n${env.nodes.length + 1}`);
    // nobody of the site online at start -> a ticket at once (the offline form)
    const v = await env.visitor(extra, { site });
    const s = await v.ok({ type: 'conversation.start', form: { message: 'anyone?' } });
    const cid = s.conversation.id;
    assert.ok(s.conversation.ticket, 'a ticket at once');
    const ag = await env.addAgent({ site });
    const watch = await env.agent(0, { email: ag.email, password: ag.password });
    const member = `slabreach|${cid}|first_response`;
    // Pretend the node that is about to die claimed the breach timer: it sits in
    // timers:leased with a lease of 3 s, and the node is killed before handling it.
    const due = Number(await env.redis.cmd('ZSCORE', `cd:{s:${cid.split('.').pop()}}:timers`, member));
    assert.ok(due > 0, 'breach timer armed');
    await env.redis.cmd('ZREM', `cd:{s:${cid.split('.').pop()}}:timers`, member);
    const leaseEnd = Date.now() + 3000;
    await env.redis.cmd('ZADD', `cd:{s:${cid.split('.').pop()}}:timers:leased`, String(leaseEnd), member);
    await extra.kill9();
    await sleep(Math.max(0, due - Date.now()) + 300);
    assert.equal(watch.filter((f) => f.type === 'sla.breached' && f.conversation_id === cid).length, 0, 'not before the lease ends');
    await watch.waitFor((f) => f.type === 'sla.breached' && f.conversation_id === cid, { timeout: 15_000 * SCALE, what: 'breach after lease' });
    assert.ok(Date.now() >= leaseEnd - 200, 'fired after the lease');
    await sleep(1500);
    assert.equal(watch.filter((f) => f.type === 'sla.breached' && f.conversation_id === cid).length, 1, 'once');
    v.terminate();
    watch.terminate();
});

it('conversation.update moves a ticket\'s SLA clock in the same call: paused when its ok arrives, running again at the next', async () => {
    const site = await env.addSite();
    const token = await adminToken(site);
    await setSla(token, site, { policies: { normal: { first_response_s: 3600, resolution_s: 7200 } } });
    const v = await env.visitor(1, { site });
    const cid = (await v.ok({ type: 'conversation.start', form: { message: 'broken', subject: 'Update pause' } })).conversation.id;
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    await a.ok({ type: 'conversation.accept', conversation_id: cid });
    const key = `cd:{s:${cid.split('.').pop()}}:conv:${cid}`;
    let r = await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'pending' });
    // the ok already shows the clock paused: written by the call that answered (ARCHITECTURE
    // invariant 3), not by a second call after it
    assert.equal(r.conversation.ticket.sla.paused, true, JSON.stringify(r.conversation.ticket));
    assert.notEqual(await env.redis.cmd('HGET', key, 'sla_paused_at') ?? '', '', 'paused with the status change');
    assert.equal(await env.redis.cmd('ZSCORE', `cd:{s:${cid.split('.').pop()}}:timers`, `slabreach|${cid}|resolution`), null);
    r = await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'open' });
    assert.equal(r.conversation.ticket.sla.paused, false);
    assert.equal(await env.redis.cmd('HGET', key, 'sla_paused_at') ?? '', '', 'running again with the status change');
    assert.notEqual(await env.redis.cmd('ZSCORE', `cd:{s:${cid.split('.').pop()}}:timers`, `slabreach|${cid}|resolution`), null);
    v.terminate();
    a.terminate();
});

it('the SLA clock pauses while pending and resumes when the customer replies', async () => {
    const site = await env.addSite();
    const token = await adminToken(site);
    await setSla(token, site, { policies: { normal: { first_response_s: 3600, resolution_s: 7200 } } });
    // offline: a ticket at once
    const v = await env.visitor(1, { site });
    const s = await v.ok({ type: 'conversation.start', form: { message: 'broken', subject: 'Pause test' } });
    const cid = s.conversation.id;
    assert.ok(s.conversation.ticket, 'a ticket at once when nobody is online');
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    await a.ok({ type: 'conversation.accept', conversation_id: cid });
    const due0 = Number(await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'sla_resolution_due'));
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'p1', body: 'Can you send a screenshot?' });
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'sla_paused_at')) !== '', { what: 'paused' });
    assert.equal(await env.redis.cmd('ZSCORE', `cd:{s:${cid.split('.').pop()}}:timers`, `slabreach|${cid}|resolution`), null, 'no breach timer while paused');
    const paused = Date.now();
    await sleep(1500);
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'c1', body: 'here it is' });
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'sla_paused_at')) === '', { what: 'resumed' });
    const due1 = Number(await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'sla_resolution_due'));
    const held = Date.now() - paused;
    assert.ok(due1 - due0 >= 1400 && due1 - due0 <= held + 500, `deadline moved by ${due1 - due0} ms for ${held} ms paused`);
    assert.equal(Number(await env.redis.cmd('ZSCORE', `cd:{s:${cid.split('.').pop()}}:timers`, `slabreach|${cid}|resolution`)), due1, 'breach timer re-armed');
    // the customer waits for an answer again: the next-response clock runs
    assert.notEqual(await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'sla_next_response_due'), '');
    v.terminate();
    a.terminate();
});

it('ticket API: filters, paging, authorisation and bad input', async () => {
    const site = await env.addSite();
    const other = await env.addSite();
    const token = await adminToken(site);
    const otherToken = await adminToken(other);
    const subjects = ['Invoice wrong', 'Login fails', 'Invoice missing', 'Refund please', 'Slow page'];
    const made = [];
    for (const [i, subject] of subjects.entries()) {
        const v = await env.visitor(i % 3, { site });
        const s = await v.ok({ type: 'conversation.start', form: { message: 'x', subject, priority: i === 1 ? 'urgent' : 'normal' } });
        made.push(s.conversation);
        v.terminate();
    }
    const list = async (q, t = token) => {
        const r = await api(t, 'GET', `/api/v1/tickets${q}`);
        assert.equal(r.status, 200, r.text);
        return JSON.parse(r.text);
    };
    let res = await list('');
    assert.equal(res.total, 5);
    const nums = res.tickets.map((t) => t.ticket.number);
    assert.deepEqual(nums, [...nums].sort((a, b) => b - a), 'newest first');
    res = await list('?q=invoice');
    assert.deepEqual(res.tickets.map((t) => t.subject).sort(), ['Invoice missing', 'Invoice wrong']);
    res = await list('?priority=urgent');
    assert.equal(res.total, 1);
    assert.equal(res.tickets[0].subject, 'Login fails');
    res = await list('?per_page=2&page=3');
    assert.equal(res.tickets.length, 1);
    assert.equal(res.page, 3);
    res = await list('?breached=true');
    assert.equal(res.total, 0);
    // one ticket, then a patch
    const n = made[0].ticket.number;
    let r = await api(token, 'GET', `/api/v1/tickets/${n}`);
    assert.equal(r.status, 200);
    assert.ok(JSON.parse(r.text).messages.length >= 1);
    r = await api(token, 'PATCH', `/api/v1/tickets/${n}`, { priority: 'high', tags: ['billing', 'vip'], status: 'pending' });
    assert.equal(r.status, 200, r.text);
    const t = JSON.parse(r.text).ticket;
    assert.equal(t.priority, 'high');
    assert.deepEqual(t.tags, ['billing', 'vip']);
    assert.equal(t.status, 'pending');
    assert.equal(t.ticket.sla.paused, true, 'the SLA clock paused in the same call as the change (no second call)');
    res = await list('?status=pending');
    assert.equal(res.total, 1);
    // authorisation
    r = await api(null, 'GET', '/api/v1/tickets');
    assert.equal(r.status, 401);
    assert.equal(JSON.parse(r.text).error.code, 'unauthorized');
    r = await api('v1.bogus.token.here', 'GET', '/api/v1/tickets');
    assert.equal(r.status, 401);
    r = await api(otherToken, 'GET', `/api/v1/tickets/${n}`);
    assert.equal(r.status, 404, 'another site sees not_found');
    assert.equal((await list('', otherToken)).total, 0);
    r = await api(otherToken, 'PATCH', `/api/v1/tickets/${n}`, { status: 'closed' });
    assert.equal(r.status, 404);
    // bad input
    r = await api(token, 'PATCH', `/api/v1/tickets/${n}`, { status: 'bogus' });
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.text).error.code, 'bad_request');
    r = await env.http(0, `/api/v1/tickets/${n}`, { method: 'PATCH', body: '{nope', headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 400);
    r = await api(token, 'GET', '/api/v1/tickets/999999');
    assert.equal(r.status, 404);
    r = await api(token, 'PATCH', `/api/v1/tickets/${n}`, { team: 'no-such-team' });
    assert.equal(r.status, 404);
});

it('ticket numbers count per site: an agent of two sites lists both, finds a number in its first site or the one named', async () => {
    const a = await env.addSite();
    const b = await env.addSite();
    const email = `two_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    await env.admin('agent-add', '--email', email, '--password', password, '--name', 'Two', '--site', a.key, '--site', b.key);
    const token = await env.login(0, email, password);
    const made = {};
    for (const site of [a, b]) {
        const v = await env.visitor(0, { site });
        made[site.key] = (await v.ok({ type: 'conversation.start', form: { message: 'x', subject: `in ${site.key}` } })).conversation;
        v.terminate();
    }
    assert.equal(made[a.key].ticket.number, 1000, "each site's first ticket");
    assert.equal(made[b.key].ticket.number, 1000, 'the same number in the other site');
    const list = JSON.parse((await api(token, 'GET', '/api/v1/tickets')).text);
    assert.equal(list.total, 2, 'one list over both sites');
    assert.deepEqual(list.tickets.map((t) => t.site).sort(), [a.key, b.key].sort());
    // the node merges the sites' parts, then pages: equal numbers in the caller's order of sites
    const pages = [];
    for (const page of [1, 2, 3]) pages.push(JSON.parse((await api(token, 'GET', `/api/v1/tickets?per_page=1&page=${page}`)).text));
    assert.deepEqual(pages.map((pg) => pg.tickets.map((t) => t.site)), [[a.key], [b.key], []]);
    assert.deepEqual(pages.map((pg) => pg.total), [2, 2, 2]);
    let r = await api(token, 'GET', '/api/v1/tickets/1000');
    assert.equal(JSON.parse(r.text).ticket.id, made[a.key].id, 'the first of its sites that has the number');
    r = await api(token, 'GET', `/api/v1/tickets/1000?site=${b.key}`);
    assert.equal(JSON.parse(r.text).ticket.id, made[b.key].id, 'the site named');
    r = await api(token, 'PATCH', `/api/v1/tickets/1000?site=${b.key}`, { priority: 'high' });
    assert.equal(r.status, 200, r.text);
    assert.equal(JSON.parse(r.text).ticket.id, made[b.key].id);
    assert.equal(JSON.parse(r.text).ticket.priority, 'high');
    assert.equal(await env.redis.cmd('HGET', `cd:{s:${a.key}}:conv:${made[a.key].id}`, 'priority'), 'normal', 'the other site\'s ticket unchanged');
});

it('business-time arithmetic in the Lua scripts matches the C implementation', async () => {
    // the C unit tests (tests/unit/test_ticket.c) pin these numbers; the scripts must agree
    const common = fs.readFileSync(path.join(REPO_ROOT, 'server/store/lua/_common.lua'), 'utf8');
    const script = common + `
local iv = iv_parse(ARGV[2])
return {tostring(sla_add(iv, tonumber(ARGV[3]), tonumber(ARGV[4]))), tostring(sla_between(iv, tonumber(ARGV[3]), tonumber(ARGV[5])))}`;
    // Shanghai, Mon-Fri 09:00-18:00 around Friday 2026-11-27 17:00 (+08)
    const FRI_1700 = 1795770000000, FRI_1800 = FRI_1700 + 3600000, MON_0900 = 1796000400000, MON_1000 = 1796004000000;
    const iv = [FRI_1700 - 8 * 3600000, FRI_1800, MON_0900, MON_0900 + 9 * 3600000].join(',');
    const [due, between] = await env.redis.cmd('EVAL', script, '0', 'cd:', iv, String(FRI_1700), String(2 * 3600000), String(MON_1000));
    assert.equal(Number(due), MON_1000);
    assert.equal(Number(between), 2 * 3600000);
    const [due2] = await env.redis.cmd('EVAL', script, '0', 'cd:', '*', '1000', '500', '2000');
    assert.equal(Number(due2), 1500);
});

it('breach actions: priority raised, escalated to the team, admins told', async () => {
    const site = await env.addSite();
    const token = await adminToken(site);
    await env.admin('team-add', '--site', site.key, '--key', 'tier2', '--name', 'Tier 2');
    await setSla(token, site, {
        policies: { normal: { first_response_s: 1, resolution_s: 3600 } },
        breach_actions: { raise_priority: true, escalate_team: 'tier2', notify_admins: true },
    });
    // nobody online: a ticket at once, waiting in the site queue
    const v = await env.visitor(0, { site });
    const s = await v.ok({ type: 'conversation.start', form: { message: 'urgent-ish' } });
    const cid = s.conversation.id;
    assert.ok(s.conversation.ticket);
    // the tier-2 agent comes online after the breach would have happened elsewhere
    const t2 = await env.addAgent({ site });
    await env.admin('agent-set', '--email', t2.email, '--team', 'tier2');
    const boss = await env.agent(1, { token });
    const breach = await boss.waitFor((f) => f.type === 'sla.breached' && f.conversation_id === cid, { timeout: 15_000 * SCALE });
    assert.equal(breach.kind, 'first_response');
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'team')) === 'tier2', { what: 'escalated' });
    assert.equal(await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'priority'), 'high');
    const a2 = await env.agent(2, { email: t2.email, password: t2.password });
    await a2.waitFor((f) => f.type === 'conversation.assigned' && f.conversation.id === cid, { timeout: 10_000 * SCALE, what: 'tier2 gets it' });
    const hist = await a2.ok({ type: 'history', conversation_id: cid });
    assert.ok(hist.messages.some((m) => m.private && /escalated to team tier2/.test(m.body)));
    v.terminate();
});
