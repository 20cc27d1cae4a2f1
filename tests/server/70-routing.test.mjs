// Routing (issue 3): queues, capacity-aware auto-assignment across nodes, manual accept
// races, presence expiry after kill -9, transfer/escalation, the status workflow and the
// auto-close timer. Real nodes, real Redis.
import { useEnv, it, assert, waitUntil, withTimeout, sleep, rnd, SCALE } from './harness.mjs';

// Short presence and timer settings so expiry is observable quickly; the defaults
// (25 s / 8 s) are what makes "offline within 30 s" hold in production.
const NODE_ARGS = ['--presence-ttl-s', '4', '--presence-beat-s', '1', '--timer-poll-ms', '100',
    '--visitor-rate', '1000', '--visitor-burst', '1000', '--agent-rate', '1000', '--agent-burst', '1000'];
const env = useEnv({ nodes: 3, args: NODE_ARGS });

const PRIO = { urgent: 0, high: 1, normal: 2, low: 3 };

async function addTeam(site, key) {
    return env.admin('team-add', '--site', site.key, '--key', key, '--name', `Team ${key}`);
}

async function agentOn(node, site, { maxChats = 3, teams = [] } = {}) {
    const args = ['agent-add', '--email', `r_${rnd(4)}@example.com`, '--password', `pw-${rnd(8)}`,
        '--name', `Router ${rnd(2)}`, '--site', site.key, '--max-chats', String(maxChats)];
    for (const t of teams) args.push('--team', t);
    const password = args[4];
    const rec = await env.admin(...args);
    const a = await env.agent(node, { email: rec.email, password });
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{a}:agent:${rec.id}`, 'status')) === 'online',
        { what: `agent ${rec.id} online` });
    return a;
}

it('200 chats at once, 10 agents of capacity 3 on three nodes: each assigned exactly once, never over capacity, queue drains by priority then age', async () => {
    const site = await env.addSite();
    const agents = [];
    for (let i = 0; i < 10; i++) agents.push(await agentOn(i % 3, site, { maxChats: 3 }));
    const ids = agents.map((a) => a.agentId);

    // Capacity watch, straight from Redis, all along.
    let over = null;
    let watching = true;
    const watch = (async () => {
        while (watching) {
            for (const id of ids) {
                const load = Number(await env.redis.cmd('SCARD', `cd:{s:${site.key}}:agent:${id}:active`));
                if (load > 3 && !over) over = `${id} had ${load} active chats`;
            }
            await sleep(20);
        }
    })();

    const N = 200;
    const prios = ['low', 'normal', 'high', 'urgent'];
    const visitors = await Promise.all(Array.from({ length: N }, (_, i) => env.visitor(i % 3, { site, label: `v${i}` })));
    const started = await Promise.all(visitors.map((v, i) =>
        v.ok({ type: 'conversation.start', form: { message: `chat ${i}`, priority: prios[i % 4] } })));
    const cids = started.map((s) => s.conversation.id);
    const waitingAtT = new Set();
    for (const cid of cids) {
        if ((await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'status')) === 'queued') waitingAtT.add(cid);
    }
    assert.ok(waitingAtT.size >= N - 30, `at most 30 chats can be assigned at first, ${N - waitingAtT.size} were`);

    // Agents resolve what they get; capacity frees, the queue drains.
    const assignedTo = new Map(); // cid -> [agent ids]
    const resolving = agents.map(async (a) => {
        const done = new Set();
        while (true) {
            const mine = a.filter((f) => f.type === 'conversation.assigned' && f.conversation.assignee?.id === a.agentId)
                .map((f) => f.conversation.id).filter((cid) => !done.has(cid));
            if (!mine.length) {
                if ([...assignedTo.keys()].length >= N) return;
                await sleep(10);
                continue;
            }
            for (const cid of mine) {
                done.add(cid);
                if (!assignedTo.has(cid)) assignedTo.set(cid, []);
                assignedTo.get(cid).push(a.agentId);
                await sleep(Math.random() * 20);
                await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
            }
        }
    });
    await withTimeout(Promise.all(resolving), 120_000 * SCALE, `all ${N} chats assigned (got ${assignedTo.size})`);
    watching = false;
    await watch;
    assert.equal(over, null, over ?? '');
    assert.equal(assignedTo.size, N);
    for (const [cid, who] of assignedTo) assert.equal(who.length, 1, `${cid} assigned ${who.length} times`);
    // Everything that waited together left the queue by priority, then age.
    const rows = [];
    for (const cid of waitingAtT) {
        const [prio, created, at] = await env.redis.cmd('HMGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'priority', 'created_at', 'assign_seq');
        rows.push({ cid, rank: PRIO[prio], created: Number(created), at: Number(at) });
    }
    rows.sort((x, y) => x.rank - y.rank || x.created - y.created);
    // a chat that ranks strictly before another (priority, then creation ms) is assigned
    // no later than it; chats created in the same millisecond may go either way
    let prevMax = null;
    for (let i = 0; i < rows.length; ) {
        let j = i;
        while (j < rows.length && rows[j].rank === rows[i].rank && rows[j].created === rows[i].created) j++;
        const group = rows.slice(i, j);
        if (prevMax) for (const r of group) assert.ok(r.at >= prevMax.at, `queue order: ${JSON.stringify(prevMax)} should be assigned no later than ${JSON.stringify(r)}`);
        for (const r of group) if (!prevMax || r.at > prevMax.at) prevMax = r;
        i = j;
    }
    assert.equal(Number(await env.redis.cmd('ZCARD', `cd:{s:${site.key}}:queue:_`)), 0);
    for (const v of visitors) v.terminate();
    for (const a of agents) a.terminate();
});

it('max_chats counts per site: an agent of two sites with max_chats 1 holds one chat in each at once, and a second chat in one site waits in its queue', async () => {
    const s1 = await env.addSite();
    const s2 = await env.addSite();
    const password = `pw-${rnd(8)}`;
    const rec = await env.admin('agent-add', '--email', `r_${rnd(4)}@example.com`, '--password', password,
        '--name', 'Two Sites', '--site', s1.key, '--site', s2.key, '--max-chats', '1');
    const a = await env.agent(0, { email: rec.email, password });
    const rkey = (site) => `cd:{s:${site.key}}:agent:${rec.id}`;
    await waitUntil(async () => (await env.redis.cmd('HGET', rkey(s1), 'status')) === 'online' &&
        (await env.redis.cmd('HGET', rkey(s2), 'status')) === 'online', { what: 'online in both sites' });
    assert.equal(await env.redis.cmd('HGET', rkey(s1), 'max_chats'), '1');
    const conv = (cid) => `cd:{s:${cid.split('.').pop()}}:conv:${cid}`;
    const status = (cid) => env.redis.cmd('HGET', conv(cid), 'status');
    const start = async (node, site, text) => {
        const v = await env.visitor(node, { site });
        return (await v.ok({ type: 'conversation.start', form: { message: text } })).conversation.id;
    };
    const c1 = await start(1, s1, 'site one');
    const c2 = await start(2, s2, 'site two');
    await waitUntil(async () => (await status(c1)) === 'open' && (await status(c2)) === 'open', { what: 'one chat in each site' });
    assert.equal(await env.redis.cmd('HGET', conv(c1), 'assignee'), rec.id);
    assert.equal(await env.redis.cmd('HGET', conv(c2), 'assignee'), rec.id);
    const c3 = await start(1, s1, 'site one again');
    await sleep(400 * SCALE);
    assert.equal(await status(c3), 'queued', 'the agent is full in site one');
    assert.equal(Number(await env.redis.cmd('SCARD', `${rkey(s1)}:active`)), 1);
    assert.equal(Number(await env.redis.cmd('SCARD', `${rkey(s2)}:active`)), 1);
    // capacity freed in the other site is not site one's
    await a.ok({ type: 'conversation.update', conversation_id: c2, status: 'resolved' });
    await sleep(300 * SCALE);
    assert.equal(await status(c3), 'queued');
    // capacity freed in site one: the waiting chat goes to the agent
    await a.ok({ type: 'conversation.update', conversation_id: c1, status: 'resolved' });
    await waitUntil(async () => (await status(c3)) === 'open', { what: 'the waiting chat assigned' });
    assert.equal(await env.redis.cmd('HGET', conv(c3), 'assignee'), rec.id);
});

it('a capacity change reaches the agent\'s record in each of its sites: raising max_chats assigns what waits', async () => {
    const s1 = await env.addSite();
    const s2 = await env.addSite();
    const password = `pw-${rnd(8)}`;
    const email = `r_${rnd(4)}@example.com`;
    const rec = await env.admin('agent-add', '--email', email, '--password', password,
        '--name', 'Grows', '--site', s1.key, '--site', s2.key, '--max-chats', '1');
    await env.agent(1, { email, password });
    const rkey = (site) => `cd:{s:${site.key}}:agent:${rec.id}`;
    await waitUntil(async () => (await env.redis.cmd('HGET', rkey(s1), 'status')) === 'online', { what: 'online' });
    const status = (cid) => env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'status');
    const ids = [];
    for (const text of ['first', 'second']) {
        const v = await env.visitor(2, { site: s1 });
        ids.push((await v.ok({ type: 'conversation.start', form: { message: text } })).conversation.id);
    }
    await waitUntil(async () => (await status(ids[0])) === 'open', { what: 'the first assigned' });
    await sleep(300 * SCALE);
    assert.equal(await status(ids[1]), 'queued');
    await env.admin('agent-set', '--email', email, '--max-chats', '2');
    await waitUntil(async () => (await status(ids[1])) === 'open', { what: 'the second assigned once capacity grew' });
    for (const site of [s1, s2]) assert.equal(await env.redis.cmd('HGET', rkey(site), 'max_chats'), '2');
});

it('manual mode: two agents racing conversation.accept, exactly one wins', async () => {
    const site = await env.addSite();
    await env.admin('site-set', '--key', site.key, '--auto-assign', 'off');
    const a1 = await agentOn(0, site);
    const a2 = await agentOn(1, site);
    for (let round = 0; round < 10; round++) {
        const v = await env.visitor(2, { site });
        const { conversation } = await v.ok({ type: 'conversation.start', form: { message: 'race' } });
        assert.equal(conversation.status, 'queued');
        const [r1, r2] = await Promise.all([
            a1.request({ type: 'conversation.accept', conversation_id: conversation.id }),
            a2.request({ type: 'conversation.accept', conversation_id: conversation.id }),
        ]);
        const oks = [r1, r2].filter((r) => r.type === 'ok');
        const conflicts = [r1, r2].filter((r) => r.type === 'error' && r.code === 'conflict');
        assert.equal(oks.length, 1, JSON.stringify([r1, r2]));
        assert.equal(conflicts.length, 1, JSON.stringify([r1, r2]));
        const holder = await env.redis.cmd('HGET', `cd:{s:${conversation.id.split('.').pop()}}:conv:${conversation.id}`, 'assignee');
        assert.equal(holder, oks[0] === r1 ? a1.agentId : a2.agentId);
        v.terminate();
    }
});

it('the queue tells the visitor its position; agents see the queue in welcome and queue.updated', async () => {
    const site = await env.addSite();
    const v1 = await env.visitor(0, { site });
    const s1 = await v1.ok({ type: 'conversation.start', form: { message: 'first' } });
    const v2 = await env.visitor(1, { site });
    const s2 = await v2.ok({ type: 'conversation.start', form: { message: 'second', locale: 'zh-CN' } });
    assert.equal(s1.queue.position, 1);
    assert.equal(s2.queue.position, 2);
    // the auto-acknowledgement, at once, in the visitor's language, with the position
    const ack = await v2.waitFor((f) => f.type === 'message.created' && f.message.author.kind === 'system');
    assert.match(ack.message.body, /第 2 位/);
    const ack1 = await v1.waitFor((f) => f.type === 'message.created' && f.message.author.kind === 'system');
    assert.match(ack1.message.body, /number 1 in the queue/);
    const watcher = await agentOn(2, site, { maxChats: 0 + 1 });
    // an agent coming online takes the head of the queue; the other visitor moves up
    const pos = await v2.waitFor((f) => f.type === 'conversation.queue' && f.position === 1, { what: 'position 1' });
    assert.equal(pos.conversation_id, s2.conversation.id);
    assert.ok(watcher.welcome.queue.length >= 1 || watcher.filter((f) => f.type === 'queue.updated').length >= 1);
    v1.terminate();
    v2.terminate();
});

it('kill -9 of the node holding an agent\'s only connection: offline soon after, and no new chats for it', async () => {
    const site = await env.addSite();
    const extra = await env.addNode(NODE_ARGS, `n${env.nodes.length + 1}`);
    const ghost = await agentOn(extra, site, { maxChats: 5 });
    const watcher = await agentOn(0, site, { maxChats: 5 });
    await env.admin('agent-set', '--email', watcher.welcome.agent.email, '--max-chats', '5');
    const t0 = Date.now();
    await extra.kill9();
    await watcher.waitFor((f) => f.type === 'presence.updated' && f.agent_id === ghost.agentId && f.status === 'offline',
        { timeout: 30_000 * SCALE, what: 'ghost offline' });
    const took = Date.now() - t0;
    assert.ok(took < 30_000 * SCALE, `offline after ${took} ms`);
    assert.equal(await env.redis.cmd('HGET', `cd:{a}:agent:${ghost.agentId}`, 'status'), 'offline');
    for (let i = 0; i < 5; i++) {
        const v = await env.visitor(1, { site });
        const { conversation } = await v.ok({ type: 'conversation.start', form: { message: 'hi' } });
        await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${conversation.id.split('.').pop()}}:conv:${conversation.id}`, 'assignee')) !== '', { what: 'assigned' });
        assert.equal(await env.redis.cmd('HGET', `cd:{s:${conversation.id.split('.').pop()}}:conv:${conversation.id}`, 'assignee'), watcher.agentId);
        v.terminate();
    }
});

it('transfer to an agent and escalation to a team, with the note kept as a private note', async () => {
    const site = await env.addSite();
    await addTeam(site, 'tier2');
    const a1 = await agentOn(0, site, { maxChats: 5 });
    const v = await env.visitor(1, { site });
    const { conversation } = await v.ok({ type: 'conversation.start', form: { message: 'my server is down' } });
    const cid = conversation.id;
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'assignee')) === a1.agentId, { what: 'a1 holds it' });
    const t2 = await agentOn(1, site, { maxChats: 5, teams: ['tier2'] });
    // escalate to the team: it leaves a1 and goes to the tier-2 agent
    const esc = await a1.ok({ type: 'conversation.transfer', conversation_id: cid, team: 'tier2', note: 'needs root access' });
    assert.equal(esc.conversation.team, 'tier2');
    await t2.waitFor((f) => f.type === 'conversation.assigned' && f.conversation.id === cid, { what: 'tier2 assignment' });
    assert.equal(await env.redis.cmd('SISMEMBER', `cd:{s:${site.key}}:agent:${a1.agentId}:convs`, cid), 0);
    // back to a1, by name
    const back = await t2.ok({ type: 'conversation.transfer', conversation_id: cid, agent_id: a1.agentId, note: 'fixed, please follow up' });
    assert.equal(back.conversation.assignee.id, a1.agentId);
    const hist = await a1.ok({ type: 'history', conversation_id: cid });
    const notes = hist.messages.filter((m) => m.private);
    assert.equal(notes.length, 2);
    assert.match(notes[0].body, /needs root access/);
    const vh = await v.ok({ type: 'history', conversation_id: cid });
    assert.equal(vh.messages.filter((m) => m.private).length, 0);
    // a team that does not exist
    const bad = await a1.request({ type: 'conversation.transfer', conversation_id: cid, team: 'nope' });
    assert.equal(bad.code, 'not_found');
    v.terminate();
});

it('status workflow: pending on agent reply, open on customer reply, reopen after resolved, auto-close timer', async () => {
    const site = await env.addSite();
    await env.admin('site-set', '--key', site.key, '--auto-close-s', '1');
    const a = await agentOn(0, site, { maxChats: 5 });
    const v = await env.visitor(1, { site });
    const { conversation } = await v.ok({ type: 'conversation.start', form: { message: 'hello' } });
    const cid = conversation.id;
    const status = () => env.redis.cmd('HGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'status');
    await waitUntil(async () => (await status()) === 'open', { what: 'open' });
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'r1', body: 'How can I help?' });
    assert.equal(await status(), 'pending');
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'c1', body: 'It broke' });
    assert.equal(await status(), 'open');
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    assert.equal(Number(await env.redis.cmd('SISMEMBER', `cd:{s:${site.key}}:agent:${a.agentId}:active`, cid)), 0, 'resolved frees capacity');
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'c2', body: 'Still broken' });
    assert.equal(await status(), 'open', 'a customer reply reopens');
    assert.equal(Number(await env.redis.cmd('SISMEMBER', `cd:{s:${site.key}}:agent:${a.agentId}:active`, cid)), 1);
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await v.waitFor((f) => f.type === 'conversation.updated' && f.conversation.id === cid && f.conversation.status === 'closed',
        { timeout: 10_000 * SCALE, what: 'auto-close' });
    assert.equal(await status(), 'closed');
    const late = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: 'c3', body: 'hello?' });
    assert.equal(late.code, 'conflict');
    v.terminate();
});
