// F4 (RELIABILITY.md): Redis killed -9 (a process crash; the OS and its page cache
// survive) mid-traffic and started again 3 s later, once under appendfsync everysec and
// once under always, 30 chats through nginx each time. Pass: under always, nothing acked
// is lost; under everysec, nothing acked is lost provided INFO persistence shows
// aof_delayed_fsync unchanged during the run (Redis wrote every acknowledged command to the
// file before replying); if it rose, the losses (about 2 s at most) are reported, not
// silent: every client that saw a lost seq is answered recovered:false. Either way: sends
// during the outage answered unavailable, nodes healthy again, nothing stored twice, no
// seq gap, everyone has everything that is stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, setupChats, traffic, settleAndCheck, assertClean, summary, sleep, waitUntil, SCALE } from './lib.mjs';

const { cluster, skip } = useCluster();

const health = (n) => cluster.env.http(n, '/healthz', { timeout: 2000 }).then((r) => r.status).catch(() => 0);
async function delayedFsyncs() {
    const info = await cluster.redis.cmd('INFO', 'persistence');
    return Number(/aof_delayed_fsync:(\d+)/.exec(info)[1]);
}

async function crash(fsync) {
    await cluster.redis.cmd('CONFIG', 'SET', 'appendfsync', fsync);
    const w = await setupChats(cluster, { chats: 30, agents: 3 });
    const all = [...w.visitors, ...w.agentClients];
    const delayedBefore = await delayedFsyncs();
    const unavailableBefore = all.reduce((s, c) => s + c.stats.unavailable, 0);
    const t = traffic(w, { periodMs: 250 });
    await sleep(4000);
    const delayedAtKill = await delayedFsyncs();
    await cluster.redis.stop({ signal: 'SIGKILL' });
    const downAt = Date.now();
    await waitUntil(async () => (await Promise.all(cluster.env.nodes.map(health))).every((s) => s === 503), {
        timeout: 8000 * SCALE,
        what: 'every node 503 while Redis is down',
    });
    await sleep(Math.max(0, 3000 - (Date.now() - downAt)));
    await cluster.redis.start();
    await waitUntil(async () => (await Promise.all(cluster.env.nodes.map(health))).every((s) => s === 200), {
        timeout: 15_000 * SCALE,
        what: 'every node healthy after the restart',
    });
    await sleep(3000);
    t.stop();
    const v = await settleAndCheck(cluster, w);
    const unavailable = all.reduce((s, c) => s + c.stats.unavailable, 0) - unavailableBefore;
    const delayed = delayedAtKill - delayedBefore;
    summary(`F4 ${fsync}`, v, { aof_delayed_fsync_during_run: delayed, unavailable_replies: unavailable });
    return { v, delayed, unavailable };
}

test('F4: Redis kill -9 under appendfsync everysec: nothing acked lost while no fsync was delayed', { skip, timeout: 180_000 * SCALE }, async () => {
    const { v, delayed, unavailable } = await crash('everysec');
    assert.ok(unavailable > 0, 'sends during the outage were answered unavailable');
    if (delayed === 0) {
        assertClean(assert, v, 'F4 everysec');
        assert.equal(v.resets, 0, 'no history reset');
    } else {
        // the documented window: losses are allowed, but never silent
        console.log(`F4 everysec: aof_delayed_fsync rose by ${delayed}: ${v.lost.length} acked messages lost (allowed, reported)`);
        assert.equal(v.dupStored.length, 0);
        assert.ok(v.lost.length === 0 || v.resets > 0, 'a loss is signalled with recovered:false');
    }
});

test('F4: Redis kill -9 under appendfsync always: nothing acked lost', { skip, timeout: 180_000 * SCALE }, async () => {
    const { v, unavailable } = await crash('always');
    assert.ok(unavailable > 0, 'sends during the outage were answered unavailable');
    assertClean(assert, v, 'F4 always');
    assert.equal(v.resets, 0, 'no history reset');
});
