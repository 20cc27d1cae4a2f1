// Redis Sentinel (issue 13, connection mode redis+sentinel://, ack_replicas): a primary,
// two replicas (so that one remains to confirm writes after a failover) and three
// sentinels on loopback; two nodes (ack_replicas 1) and the admin CLI
// find the primary through the sentinels. A message is acknowledged only once the replica
// has it: with the replica stopped, sends answer the retryable `unavailable` and are
// stored once when retried. After kill -9 of the primary right after a burst of acked
// sends, the sentinels promote the replica, the nodes follow it by themselves and traffic
// flows again with not one acknowledged message lost; the old primary, back as a
// replica, is not used.
import fs from 'node:fs';
import path from 'node:path';
import { countEvents, Env, it, assert, waitUntil, sleep, freePort, spawnTracked, stopProc, redisCommand, SCALE } from './harness.mjs';
import { before, after, afterEach } from 'node:test';

const MASTER = 'cdmaster';
const env = new Env();
const procs = {};
let ports;

function tcp(port) {
    return { host: '127.0.0.1', port };
}
const cmd = (port, ...args) => redisCommand(tcp(port), args, 3000);

async function startRedis(name, args) {
    const dir = path.join(env.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    const p = spawnTracked('redis-server', args(dir), { stdio: ['ignore', 'ignore', 'pipe'] });
    procs[name] = p;
    return p;
}

async function startPrimaryOrReplica(name, port, replicaOf) {
    await startRedis(name, (dir) => [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
        '--appendfsync', 'everysec', '--daemonize', 'no', '--logfile', path.join(dir, 'redis.log'),
        '--repl-diskless-sync-delay', '0',
        ...(replicaOf ? ['--replicaof', '127.0.0.1', String(replicaOf)] : []),
    ]);
    await waitUntil(async () => (await cmd(port, 'PING').catch(() => null)) === 'PONG', { what: `${name} up` });
}

async function startSentinel(i, port) {
    const name = `sentinel${i}`;
    const dir = path.join(env.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    const conf = path.join(dir, 'sentinel.conf');
    fs.writeFileSync(conf, [
        `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `logfile ${path.join(dir, 'sentinel.log')}`,
        `sentinel monitor ${MASTER} 127.0.0.1 ${ports.primary} 2`,
        // 3 s: on a loaded 2-core machine 1 s of silence can be a busy primary, not a dead one
        `sentinel down-after-milliseconds ${MASTER} 3000`,
        `sentinel failover-timeout ${MASTER} 5000`,
        `sentinel parallel-syncs ${MASTER} 1`, '',
    ].join('\n'));
    await startRedis(name, () => [conf, '--sentinel']);
    await waitUntil(async () => (await cmd(port, 'PING').catch(() => null)) === 'PONG', { what: `${name} up` });
}

before(async () => {
    ports = { primary: await freePort(), replica: await freePort(), replica2: await freePort(), sentinels: [await freePort(), await freePort(), await freePort()] };
    await startPrimaryOrReplica('primary', ports.primary);
    await startPrimaryOrReplica('replica', ports.replica, ports.primary);
    await startPrimaryOrReplica('replica2', ports.replica2, ports.primary);
    // ack_replicas needs a replica in sync: until then writes are (rightly) not acknowledged
    await waitUntil(async () => /slave1:.*state=online/.test(await cmd(ports.primary, 'INFO', 'replication').catch(() => '')), {
        timeout: 30_000 * SCALE, interval: 100, what: 'replica in sync',
    });
    for (let i = 0; i < 3; i++) await startSentinel(i, ports.sentinels[i]);
    // the sentinels know the replica and each other before anything relies on a failover
    await waitUntil(async () => {
        for (const p of ports.sentinels) {
            const reps = await cmd(p, 'SENTINEL', 'replicas', MASTER).catch(() => []);
            const sens = await cmd(p, 'SENTINEL', 'sentinels', MASTER).catch(() => []);
            if (reps.length < 2 || sens.length < 2) return false;
        }
        return true;
    }, { timeout: 30_000 * SCALE, interval: 200, what: 'sentinels see the replica and each other' });
    await env.start({ nodes: 0 });
    // nodes and the admin CLI take this URL (the harness's own Redis is not used)
    env.redis.url = `redis+sentinel://${ports.sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${MASTER}`;
    // events stay in the site streams a while after the consumers applied them, so the test
    // can count what fired (the default trims them at once)
    const fast = ['--visitor-rate', '1000', '--visitor-burst', '1000', '--ack-replicas', '1', '--ack-replicas-timeout-ms', '500', '--events-retain-s', '600'];
    await env.addNode(fast);
    await env.addNode(fast);
}, { timeout: 120_000 * SCALE });
afterEach((t) => {
    if (t.passed === false) env.failed.push(t.name);
});
after(async () => {
    await env.stop();
    for (const p of Object.values(procs)) if (p.exitCode === null && p.signalCode === null) await stopProc(p, 'SIGTERM', 10_000);
}, { timeout: 120_000 * SCALE });

/** Sends until acked: `unavailable` while Redis fails over is retried with the same client_msg_id. */
async function sendUntilOk(v, cid, cmid, body, { timeout = 30_000 * SCALE } = {}) {
    const t0 = Date.now();
    let unavailable = 0;
    for (;;) {
        const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid, body }, { timeout: 5000 }).catch((e) => ({ type: 'timeout', e }));
        if (r.type === 'ok') return { ok: r, unavailable, ms: Date.now() - t0 };
        if (r.type === 'error') assert.equal(r.code, 'unavailable', `during failover only unavailable: ${JSON.stringify(r)}`);
        unavailable++;
        if (Date.now() - t0 > timeout) throw new Error(`not acked within ${timeout} ms (${unavailable} unavailable)`);
        await sleep(200);
    }
}

it('nodes and the admin CLI find the primary through the sentinels; a chat works', async () => {
    const sites = await env.admin('site-list', '--json');
    assert.ok(Array.isArray(sites));
    const { v, a, cid, base, site } = await env.chat({ vNode: 0, aNode: 1 });
    for (let i = 1; i <= 5; i++) {
        const r = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `s${i}`, body: `hello ${i}` });
        assert.equal(r.message.seq, base + i);
        await a.waitFor((f) => f.type === 'message.created' && f.message?.seq === base + i, { what: `agent gets ${i}` });
    }
    // the data is on the primary the sentinels name
    assert.equal(await cmd(ports.primary, 'EXISTS', `cd:{s:${site.key}}:conv:${cid}`), 1);
    v.terminate();
    a.terminate();
});

it('ack_replicas 1: with the replicas stopped a send is not acknowledged; its retry is stored once', async () => {
    const { v, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    procs.replica.kill('SIGSTOP');
    procs.replica2.kill('SIGSTOP');
    try {
        const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: 'w1', body: 'waiting for the replica' });
        assert.equal(r.type, 'error');
        assert.equal(r.code, 'unavailable', JSON.stringify(r));
    } finally {
        procs.replica.kill('SIGCONT');
        procs.replica2.kill('SIGCONT');
    }
    // the retry with the same client_msg_id: the one stored message, now replicated
    const ok = await sendUntilOk(v, cid, 'w1', 'waiting for the replica');
    assert.equal(ok.ok.message.seq, base + 1);
    const h = await v.ok({ type: 'history', conversation_id: cid, limit: 100 });
    assert.equal(h.messages.filter((m) => m.body === 'waiting for the replica').length, 1);
    const m = await env.http(0, '/metrics');
    assert.ok(Number(/chatdesk_redis_replica_shortfalls_total (\d+)/.exec(m.text)[1]) >= 1);
    v.terminate();
});

it('kill -9 of the primary right after acked sends: the replica is promoted, the nodes follow, no acked message lost', async () => {
    const { v, a, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    const N = 20;
    // a burst of sends in flight at once, all acked; the primary dies right after the last
    // ack (ack_replicas 1: every acked message is on the replica already)
    const acks = await Promise.all(Array.from({ length: N }, (_, i) => v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `k${i + 1}`, body: `before ${i + 1}` })));
    procs.primary.kill('SIGKILL');
    assert.equal(acks.length, N);
    const killedAt = Date.now();
    const after1 = await sendUntilOk(v, cid, 'after-1', 'after the failover');
    const promoted = await cmd(ports.sentinels[0], 'SENTINEL', 'get-master-addr-by-name', MASTER);
    assert.ok([ports.replica, ports.replica2].includes(Number(promoted[1])), 'a replica is the primary now');
    ports.promoted = Number(promoted[1]);
    console.log(`failover: first ack ${Date.now() - killedAt} ms after kill -9 (${after1.unavailable} sends answered unavailable)`);
    assert.ok(Date.now() - killedAt < 30_000 * SCALE);
    assert.equal(after1.ok.message.seq, base + N + 1, 'seq goes on without a gap');
    // every message acked before the kill is there, once, in order
    const h = await v.ok({ type: 'history', conversation_id: cid, limit: 100 });
    const bodies = h.messages.filter((m) => m.author.kind === 'visitor').map((m) => m.body);
    assert.deepEqual(bodies.slice(-N - 1).sort(), [...Array.from({ length: N }, (_, i) => `before ${i + 1}`), 'after the failover'].sort());
    const seqs = h.messages.map((m) => m.seq);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => seqs[0] + i), 'gapless');
    // the agent on the other node gets the new message live (its node follows too)
    await a.waitFor((f) => f.type === 'message.created' && f.message?.body === 'after the failover', { timeout: 15_000 * SCALE, what: 'agent after failover' });
    for (const n of env.nodes) {
        await waitUntil(async () => (await env.http(n, '/healthz')).status === 200, { timeout: 15_000 * SCALE, what: `${n.id} healthy after the failover` });
    }
    // the admin CLI finds the new primary too
    assert.ok(Array.isArray(await env.admin('site-list', '--json')));
    v.terminate();
    a.terminate();
});

it('the old primary comes back as a replica and is not written to', async () => {
    await startPrimaryOrReplica('primary', ports.primary);
    // the sentinels turn it into a replica of the new primary
    await waitUntil(async () => {
        const role = await cmd(ports.primary, 'ROLE').catch(() => null);
        return role && role[0] === 'slave';
    }, { timeout: 30_000 * SCALE, interval: 250, what: 'old primary reconfigured as a replica' });
    const { v, cid, base, site } = await env.chat({ vNode: 1, aNode: 0 });
    const r = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'r1', body: 'still flowing' });
    assert.equal(r.message.seq, base + 1);
    assert.equal(await cmd(ports.promoted, 'EXISTS', `cd:{s:${site.key}}:conv:${cid}`), 1, 'written to the new primary');
    v.terminate();
});

/** The site's events of type t about conversation cid, read on the current primary. */
async function siteEvents(site, t, cid, pred = () => true) {
    const [, port] = await cmd(ports.sentinels[0], 'SENTINEL', 'get-master-addr-by-name', MASTER);
    return countEvents(await cmd(Number(port), 'XRANGE', `cd:{s:${site}}:events`, '-', '+'), t, cid, pred);
}
/** The event a timed chat waits for: its auto-close, or its ticket. */
const firings = (t) =>
    t.event === 'ticket.created' ? siteEvents(t.site, 'ticket.created', t.cid) : siteEvents(t.site, 'conversation.status_changed', t.cid, (d) => d.to === 'closed');

it('a dozen sites under traffic, kill -9 of the primary again: nothing lost on any site; auto-close and unanswered tickets fire once; presence recovers', async () => {
    const chats = [];
    for (let i = 0; i < 12; i++) chats.push(await env.chat({ vNode: i % 2, aNode: (i + 1) % 2 }));
    // a timer due during the failover on every site: half auto-close a resolved chat, half
    // turn an unanswered chat into a ticket
    const timed = [];
    for (const [i, c] of chats.entries()) {
        if (i % 2 === 0) {
            await env.admin('site-set', '--key', c.site.key, '--auto-close-s', '5');
            const v2 = await env.visitor(0, { site: c.site });
            const cid = (await v2.ok({ type: 'conversation.start', form: { message: 'thanks, solved' } })).conversation.id;
            await c.a.waitFor((f) => f.type === 'conversation.queued' && f.conversation?.id === cid, { what: 'queued' });
            await c.a.ok({ type: 'conversation.accept', conversation_id: cid });
            await c.a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
            timed.push({ site: c.site.key, cid, event: 'conversation.closed', v: v2 });
        } else {
            const admin = await env.addAgent({ site: c.site, role: 'admin' });
            const token = await env.login(0, admin.email, admin.password);
            const r = await env.http(0, `/api/v1/admin/sites/${c.site.key}`, { method: 'PATCH', body: { unanswered_after_s: 4, auto_assign: false }, headers: { authorization: `Bearer ${token}` } });
            assert.equal(r.status, 200, r.text);
            const v2 = await env.visitor(1, { site: c.site });
            const st = await v2.ok({ type: 'conversation.start', form: { message: 'anyone?', email: 'w@example.com' } });
            assert.equal(st.conversation.ticket, null);
            timed.push({ site: c.site.key, cid: st.conversation.id, event: 'ticket.created', v: v2 });
        }
    }
    let stop = false;
    const acked = new Map(chats.map((c) => [c.cid, []]));
    const traffic = chats.map(async (c, i) => {
        for (let n = 1; !stop; n++) {
            const r = await sendUntilOk(c.v, c.cid, `d${n}`, `dozen ${n}`);
            acked.get(c.cid).push(r.ok.message.seq);
            await sleep(100 + i);
        }
    });
    await sleep(1000);
    const [, primaryPort] = await cmd(ports.sentinels[0], 'SENTINEL', 'get-master-addr-by-name', MASTER);
    const name = { [ports.primary]: 'primary', [ports.replica]: 'replica', [ports.replica2]: 'replica2' }[Number(primaryPort)];
    assert.ok(name, `the process of the primary on ${primaryPort}`);
    const t0 = Date.now();
    procs[name].kill('SIGKILL');
    await waitUntil(async () => Number((await cmd(ports.sentinels[0], 'SENTINEL', 'get-master-addr-by-name', MASTER))[1]) !== Number(primaryPort), { timeout: 30_000 * SCALE, interval: 200, what: 'another replica promoted' });
    await sleep(2000); // traffic flows on the new primary
    stop = true;
    await Promise.all(traffic);
    console.log(`# sentinel, a dozen sites: every site acked again ${Date.now() - t0} ms after kill -9`);
    for (const c of chats) {
        const h = await c.v.ok({ type: 'history', conversation_id: c.cid, limit: 100 });
        const stored = new Set(h.messages.map((m) => m.seq));
        for (const s of acked.get(c.cid)) assert.ok(stored.has(s), `${c.cid}: acked seq ${s} is stored`);
        const seqs = h.messages.map((m) => m.seq);
        assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => seqs[0] + i), `${c.cid}: gapless`);
    }
    for (const t of timed) {
        await waitUntil(async () => (await firings(t)) >= 1, { timeout: 40_000 * SCALE, interval: 500, what: `${t.cid}: ${t.event}` });
    }
    await sleep(3000); // a second firing would come within the timer lease
    for (const t of timed) {
        assert.equal(await firings(t), 1, `${t.cid}: ${t.event} once`);
        t.v.terminate();
    }
    for (const c of chats) {
        const token = await env.login(1, c.ag.email, c.ag.password);
        await waitUntil(async () => {
            const r = await env.http(1, `/api/v1/agents?site=${c.site.key}`, { headers: { authorization: `Bearer ${token}` } });
            return r.status === 200 && r.json.agents.find((a) => a.id === c.ag.id)?.status === 'online';
        }, { timeout: 15_000 * SCALE, interval: 250, what: `${c.ag.email} online after the failover` });
        c.v.terminate();
        c.a.terminate();
    }
});
