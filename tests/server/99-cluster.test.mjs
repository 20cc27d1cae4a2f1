// Redis Cluster (issue 13, connection mode redis+cluster://): three primaries, each with
// a replica, on loopback (redis-server --cluster-enabled, redis-cli --cluster create).
// A node given two seeds reads the slot map, opens one command connection per primary
// and loads the function library on each; kill -9 of a primary makes /healthz name the
// shard that is down (503), and once its replica is promoted the node follows the new
// map by itself and is up again. A dozen sites, whose keys land on every primary, chat
// through two nodes (ack_replicas 1); kill -9 of a primary under that traffic loses no
// acknowledged message and stores none twice, seqs stay gapless, and once the killed
// server is back (as a replica of the promoted one) every site flows again.
import fs from 'node:fs';
import path from 'node:path';
import { Env, it, assert, waitUntil, sleep, freePort, spawnTracked, stopProc, redisCommand, SCALE } from './harness.mjs';
import { before, after, afterEach } from 'node:test';

const env = new Env();
const procs = {};
let ports = [];
const cmd = (port, ...args) => redisCommand({ host: '127.0.0.1', port }, args, 3000);

async function startNode(i, port) {
    const dir = path.join(env.dir, `cluster${port}`);
    fs.mkdirSync(dir, { recursive: true });
    procs[port] = spawnTracked('redis-server', [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
        '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'),
        // a primary silent for 3 s is failed over (a loaded 2-core machine can stall one for 1 s)
        '--cluster-node-timeout', '3000', '--daemonize', 'no', '--logfile', path.join(dir, 'redis.log'),
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitUntil(async () => (await cmd(port, 'PING').catch(() => null)) === 'PONG', { what: `cluster node ${port} up` });
}

async function primaries() {
    const out = [];
    for (const [lo, hi, [, port]] of await cmd(ports.find((p) => procs[p].exitCode === null && procs[p].signalCode === null), 'CLUSTER', 'SLOTS')) {
        out.push({ lo, hi, port });
    }
    return out;
}

before(async () => {
    for (let i = 0; i < 6; i++) ports.push(await freePort());
    for (let i = 0; i < 6; i++) await startNode(i, ports[i]);
    const create = spawnTracked('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    create.stdout.on('data', (d) => (out += d));
    const code = await new Promise((res) => create.on('exit', res));
    assert.equal(code, 0, `redis-cli --cluster create: ${out}`);
    await waitUntil(async () => /cluster_state:ok/.test(await cmd(ports[0], 'CLUSTER', 'INFO')), { timeout: 30_000 * SCALE, what: 'cluster ok' });
    // every replica in sync before anything relies on a failover
    await waitUntil(async () => {
        for (const p of ports) {
            const info = await cmd(p, 'INFO', 'replication');
            if (/role:slave/.test(info) && !/master_link_status:up/.test(info)) return false;
        }
        return true;
    }, { timeout: 30_000 * SCALE, what: 'replicas in sync' });
    await env.start({ nodes: 0 });
    env.redis.url = `redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]}`;
    const args = ['--visitor-rate', '1000', '--visitor-burst', '1000', '--ack-replicas', '1', '--ack-replicas-timeout-ms', '1000'];
    await env.addNode(args);
    await env.addNode(args);
}, { timeout: 120_000 * SCALE });
afterEach((t) => {
    if (t.passed === false) env.failed.push(t.name);
});
after(async () => {
    await env.stop();
    for (const p of Object.values(procs)) if (p.exitCode === null && p.signalCode === null) await stopProc(p, 'SIGTERM', 10_000);
}, { timeout: 120_000 * SCALE });

async function health() {
    const r = await env.http(0, '/healthz');
    return { ...JSON.parse(r.text), code: r.status };
}

it('a node reads the slot map, loads the library on every primary and is up', async () => {
    await waitUntil(async () => (await health()).code === 200, { timeout: 15_000 * SCALE, what: '/healthz 200' }).catch(async (e) => { throw new Error(`${e.message}: ${JSON.stringify(await health())}`); });
    const h = await health();
    assert.equal(h.redis, 'up');
    assert.equal(h.shard_down, undefined);
    const ps = await primaries();
    assert.equal(ps.length, 3);
    for (const { port } of ps) {
        const libs = await cmd(port, 'FUNCTION', 'LIST');
        assert.equal(libs.length, 1, `the library is on the primary ${port}`);
        assert.match(libs[0][1], /^cd_[0-9a-f]{8}$/);
    }
});

/** Sends until acked: `unavailable` while the cluster fails over is retried with the same client_msg_id. */
async function sendUntilOk(v, cid, cmid, body, timeout = 60_000 * SCALE) {
    const t0 = Date.now();
    for (;;) {
        const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid, body }, { timeout: 5000 }).catch(() => ({ type: 'timeout' }));
        if (r.type === 'ok') return r;
        if (r.type === 'error') assert.equal(r.code, 'unavailable', `only unavailable during a failover: ${JSON.stringify(r)}`);
        if (Date.now() - t0 > timeout) throw new Error(`${cmid} not acked within ${timeout} ms`);
        await sleep(200);
    }
}

const chats = [];
it('a dozen sites on every primary chat through two nodes', async () => {
    const owner = new Map(); // slot range -> primary port
    const ps = await primaries();
    for (let i = 0; i < 12; i++) {
        const c = await env.chat({ vNode: 0, aNode: 1 });
        for (let k = 1; k <= 3; k++) {
            const r = await c.v.ok({ type: 'message.send', conversation_id: c.cid, client_msg_id: `w${k}`, body: `hello ${k}` });
            assert.equal(r.message.seq, c.base + k);
            await c.a.waitFor((f) => f.type === 'message.created' && f.conversation_id === c.cid && f.message?.seq === c.base + k, { what: `agent gets ${k}` });
        }
        const slot = await cmd(ps[0].port, 'CLUSTER', 'KEYSLOT', `cd:{s:${c.site.key}}:x`);
        const p = ps.find((x) => slot >= x.lo && slot <= x.hi).port;
        owner.set(c.site.key, p);
        chats.push({ ...c, primary: p, sent: 3 });
    }
    assert.equal(new Set(owner.values()).size, 3, `the sites land on every primary: ${JSON.stringify([...owner])}`);
});

it('kill -9 of a primary under traffic (ack_replicas 1): no acked message lost or doubled, every site flows again', async () => {
    const victim = chats[0].primary;
    const hit = chats.filter((c) => c.primary === victim);
    let stop = false;
    const acked = new Map(chats.map((c) => [c.cid, []]));
    const traffic = chats.map(async (c) => {
        while (!stop) {
            const n = ++c.sent;
            const r = await sendUntilOk(c.v, c.cid, `t${n}`, `traffic ${n}`);
            acked.get(c.cid).push(r.message.seq);
            await sleep(50);
        }
    });
    await sleep(1000);
    const t0 = Date.now();
    procs[victim].kill('SIGKILL');
    await waitUntil(async () => !(await primaries()).some((p) => p.port === victim), { timeout: 30_000 * SCALE, interval: 200, what: 'a replica promoted' });
    // the promoted primary has no replica left: ack_replicas 1 holds its sites until the
    // killed server is back, as its replica
    await startNode(0, victim);
    stop = true;
    await Promise.all(traffic);
    console.log(`# cluster failover under traffic: every site acked again ${Date.now() - t0} ms after kill -9`);
    for (const c of chats) {
        // the whole history, page by page (a page holds at most history_page_max)
        let messages = [];
        for (let before; ;) {
            const h = await c.v.ok({ type: 'history', conversation_id: c.cid, limit: 100, ...(before ? { before_seq: before } : {}) });
            messages = [...h.messages, ...messages];
            if (h.messages.length < 100) break;
            before = h.messages[0].seq;
        }
        const h = { messages };
        const seqs = h.messages.map((m) => m.seq);
        for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, `${c.cid}: gapless`);
        for (const q of acked.get(c.cid)) assert.ok(seqs.includes(q), `${c.cid}: acked seq ${q} stored (stored ${seqs.join(',')}; acked ${acked.get(c.cid).join(',')}; on the killed primary: ${c.primary === victim})`);
        const bodies = h.messages.filter((m) => /^traffic /.test(m.body)).map((m) => m.body);
        assert.equal(new Set(bodies).size, bodies.length, `${c.cid}: nothing stored twice`);
    }
    assert.ok(hit.length > 0);
});

it('kill -9 of a primary: /healthz names the shard (503); after the promotion the node is up again by itself', async () => {
    const ps = await primaries();
    const victim = ps[1].port;
    const t0 = Date.now();
    procs[victim].kill('SIGKILL');
    await waitUntil(async () => {
        const h = await health();
        return h.code === 503 && h.shard_down === `127.0.0.1:${victim}`;
    }, { timeout: 15_000 * SCALE, what: '/healthz names the dead primary' });
    await waitUntil(async () => (await health()).code === 200, { timeout: 30_000 * SCALE, interval: 200, what: 'up again after the promotion' });
    const ms = Date.now() - t0;
    const now = await primaries();
    assert.ok(!now.some((p) => p.port === victim), 'the replica took over');
    const promoted = now.find((p) => p.lo === ps[1].lo).port;
    assert.equal((await cmd(promoted, 'FUNCTION', 'LIST')).length, 1, 'the library is on the new primary');
    console.log(`# cluster failover: up again ${ms} ms after kill -9 (cluster-node-timeout 3000)`);
});
