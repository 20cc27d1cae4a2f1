// Moving between Redis modes (issue 13 item 6; the procedure is docs/ops.md "Moving
// between modes"). A node runs on one Redis with a few sites, agents and chats; then:
// 1. one Redis -> Redis Cluster: the node stops, `redis-cli --cluster import --cluster-copy`
//    moves every key into a 3-primary cluster (every key is tagged by slot, so each lands on
//    the primary of its site), the node starts with redis+cluster://: sites, agents (their
//    passwords), conversations and their history are there, and a new chat and new
//    messages flow;
// 2. one Redis -> Sentinel: a replica of the same Redis and three sentinels that monitor
//    it, the node restarted with redis+sentinel://: the same data, chats flow, and a
//    message is acknowledged only once the replica has it (ack_replicas 1).
import fs from 'node:fs';
import path from 'node:path';
import { Env, it, assert, waitUntil, freePort, spawnTracked, stopProc, redisCommand, SCALE } from './harness.mjs';
import { before, after, afterEach } from 'node:test';

const MASTER = 'cdmaster';
const env = new Env();
const procs = [];
let port; // the one Redis, on TCP (redis-cli --cluster import reads it over TCP)
const cmd = (p, ...args) => redisCommand({ host: '127.0.0.1', port: p }, args, 3000);

function startRedis(name, args) {
    const dir = path.join(env.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    const p = spawnTracked('redis-server', args(dir), { stdio: ['ignore', 'ignore', 'pipe'] });
    procs.push(p);
    return p;
}

async function startServer(name, p, extra = []) {
    startRedis(name, (dir) => ['--port', String(p), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes',
        '--daemonize', 'no', '--logfile', path.join(dir, 'redis.log'), ...extra]);
    await waitUntil(async () => (await cmd(p, 'PING').catch(() => null)) === 'PONG', { what: `${name} up` });
}

async function run(bin, args) {
    const p = spawnTracked(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    const code = await new Promise((res) => p.on('exit', res));
    assert.equal(code, 0, `${bin} ${args.join(' ')}: ${out.slice(-2000)}`);
    return out;
}

before(async () => {
    port = await freePort();
    env.redis.extraArgs = ['--port', String(port), '--bind', '127.0.0.1'];
    await env.start({ nodes: 1 });
}, { timeout: 60_000 * SCALE });
afterEach((t) => {
    if (t.passed === false) env.failed.push(t.name);
});
after(async () => {
    await env.stop();
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) await stopProc(p, 'SIGTERM', 10_000);
}, { timeout: 60_000 * SCALE });

const chats = [];
it('one Redis: six sites chat', async () => {
    for (let i = 0; i < 6; i++) {
        const c = await env.chat();
        for (let k = 1; k <= 3; k++) await c.v.ok({ type: 'message.send', conversation_id: c.cid, client_msg_id: `m${k}`, body: `before ${k}` });
        const h = await c.a.ok({ type: 'history', conversation_id: c.cid, limit: 100 });
        chats.push({ ...c, history: h.messages.map((m) => [m.seq, m.body]) });
        c.v.terminate();
        c.a.terminate();
    }
});

/** With the node on the new mode: every agent logs in with its password and reads the
 *  same history; it and its visitor chat on; a new chat on every site works. */
async function sameDataAndFlowing(what) {
    for (const c of chats) {
        const a = await env.agent(0, { email: c.ag.email, password: c.ag.password, label: `agent-${what}` });
        const h = await a.ok({ type: 'history', conversation_id: c.cid, limit: 100 });
        assert.deepEqual(h.messages.map((m) => [m.seq, m.body]).slice(0, c.history.length), c.history, `${c.cid}: history after ${what}`);
        const r = await a.ok({ type: 'message.send', conversation_id: c.cid, client_msg_id: `after-${what}`, body: `after ${what}` });
        assert.equal(r.message.seq, h.messages.at(-1).seq + 1);
        a.terminate();
        const n = await env.chat({ site: c.site });
        await n.v.ok({ type: 'message.send', conversation_id: n.cid, client_msg_id: 'x1', body: `new chat after ${what}` });
        await n.a.waitFor((f) => f.type === 'message.created' && f.conversation_id === n.cid && f.message?.body === `new chat after ${what}`, { what: `live after ${what}` });
        n.v.terminate();
        n.a.terminate();
    }
}

it('one Redis -> Cluster: stop, redis-cli --cluster import, start with redis+cluster://', async () => {
    const cports = [await freePort(), await freePort(), await freePort()];
    for (const p of cports) {
        await startServer(`cluster${p}`, p, ['--cluster-enabled', 'yes', '--cluster-config-file', path.join(env.dir, `nodes-${p}.conf`)]);
    }
    await run('redis-cli', ['--cluster', 'create', ...cports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    await waitUntil(async () => /cluster_state:ok/.test(await cmd(cports[0], 'CLUSTER', 'INFO')), { timeout: 30_000 * SCALE, what: 'cluster ok' });
    await env.nodes[0].stop();
    const keys = Number(await cmd(port, 'DBSIZE'));
    await run('redis-cli', ['--cluster', 'import', `127.0.0.1:${cports[0]}`, '--cluster-from', `127.0.0.1:${port}`, '--cluster-copy']);
    let moved = 0;
    for (const p of cports) moved += Number(await cmd(p, 'DBSIZE'));
    assert.equal(moved, keys, 'every key is in the cluster');
    for (const c of chats) {
        // a site's keys are on one primary, the one of its slot
        const k = `cd:{s:${c.site.key}}:conv:${c.cid}`;
        const slot = Number(await cmd(cports[0], 'CLUSTER', 'KEYSLOT', k));
        const owner = (await cmd(cports[0], 'CLUSTER', 'SLOTS')).find(([lo, hi]) => lo <= slot && slot <= hi)[2][1];
        assert.equal(await cmd(owner, 'EXISTS', k), 1);
    }
    const oneRedis = env.redis.url;
    env.redis.url = `redis+cluster://${cports.map((p) => `127.0.0.1:${p}`).join(',')}`;
    await env.nodes[0].start();
    await waitUntil(async () => (await env.http(0, '/healthz')).status === 200, { timeout: 15_000 * SCALE, what: 'node up on the cluster' });
    await sameDataAndFlowing('cluster');
    // back to the one Redis for the next move (it kept its copy: --cluster-copy)
    await env.nodes[0].stop();
    env.redis.url = oneRedis;
    await env.nodes[0].start();
});

it('one Redis -> Sentinel: a replica and three sentinels, restart with redis+sentinel:// (ack_replicas 1)', async () => {
    const rport = await freePort();
    await startServer('replica', rport, ['--replicaof', '127.0.0.1', String(port)]);
    await waitUntil(async () => /slave0:.*state=online/.test(await cmd(port, 'INFO', 'replication')), { timeout: 30_000 * SCALE, interval: 100, what: 'replica in sync' });
    const sports = [await freePort(), await freePort(), await freePort()];
    for (const [i, p] of sports.entries()) {
        const dir = path.join(env.dir, `sentinel${i}`);
        fs.mkdirSync(dir, { recursive: true });
        const conf = path.join(dir, 'sentinel.conf');
        fs.writeFileSync(conf, [`port ${p}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor ${MASTER} 127.0.0.1 ${port} 2`,
            `sentinel down-after-milliseconds ${MASTER} 3000`, ''].join('\n'));
        startRedis(`sentinel${i}`, () => [conf, '--sentinel']);
        await waitUntil(async () => (await cmd(p, 'PING').catch(() => null)) === 'PONG', { what: `sentinel ${i} up` });
    }
    await env.nodes[0].stop();
    env.redis.url = `redis+sentinel://${sports.map((p) => `127.0.0.1:${p}`).join(',')}/${MASTER}`;
    env.nodes[0].args = [...env.nodes[0].args, '--ack-replicas', '1'];
    await env.nodes[0].start();
    await waitUntil(async () => (await env.http(0, '/healthz')).status === 200, { timeout: 15_000 * SCALE, what: 'node up through the sentinels' });
    await sameDataAndFlowing('sentinel');
    const waits = Number((await env.http(0, '/metrics')).text.match(/^chatdesk_redis_replica_waits_total (\d+)/m)?.[1]);
    assert.ok(waits > 0, 'messages were acknowledged after WAIT');
});
