// Redis Cluster (issue 13, connection mode redis+cluster://): three primaries, each with
// a replica, on loopback (redis-server --cluster-enabled, redis-cli --cluster create).
// A node given two seeds reads the slot map, opens one command connection per primary
// and loads the function library on each; kill -9 of a primary makes /healthz name the
// shard that is down (503), and once its replica is promoted the node follows the new
// map by itself and is up again.
import fs from 'node:fs';
import path from 'node:path';
import { Env, it, assert, waitUntil, freePort, spawnTracked, stopProc, redisCommand, SCALE } from './harness.mjs';
import { before, after, afterEach } from 'node:test';

const env = new Env();
const procs = {};
let ports = [];
const cmd = (port, ...args) => redisCommand({ host: '127.0.0.1', port }, args, 3000);

async function startNode(i, port) {
    const dir = path.join(env.dir, `cluster${i}`);
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
    await env.addNode();
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
