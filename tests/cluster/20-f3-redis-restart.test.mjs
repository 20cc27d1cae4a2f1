// F3 (RELIABILITY.md), reduced: Redis stopped cleanly (SIGTERM, AOF flushed) and started
// again about 3 s later while 40 chats exchange messages through nginx. Pass: during the
// outage sends are refused with `unavailable` (never acknowledged) and /healthz is 503;
// afterwards every node is healthy again, the outboxes drain, nothing acknowledged is
// lost, nothing is stored twice, no history reset (same epochs), everyone has everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, setupChats, traffic, settleAndCheck, assertClean, summary, sleep, waitUntil, SCALE } from './lib.mjs';

const { cluster, skip } = useCluster();

const health = (n) => cluster.env.http(n, '/healthz', { timeout: 2000 }).then((r) => r.status).catch(() => 0);

test('F3: a Redis restart mid-traffic: unavailable, then recovery, nothing acked lost', { skip, timeout: 120_000 * SCALE }, async () => {
    const w = await setupChats(cluster, { chats: 40, agents: 4 });
    const all = [...w.visitors, ...w.agentClients];
    const t = traffic(w, { periodMs: 300 });
    await sleep(3000);

    const unavailableBefore = all.reduce((s, c) => s + c.stats.unavailable, 0);
    const downAt = Date.now();
    await cluster.redis.stop(); // SIGTERM: a clean shutdown writes the AOF out
    // nodes notice within the PING deadline and report it
    await waitUntil(async () => (await Promise.all(cluster.env.nodes.map(health))).every((s) => s === 503), {
        timeout: 8000 * SCALE,
        what: 'every node /healthz 503 while Redis is down',
    });
    const unhealthyAfterMs = Date.now() - downAt;
    await sleep(Math.max(0, 3000 - (Date.now() - downAt)));
    await cluster.redis.start();
    const upAt = Date.now();
    await waitUntil(async () => (await Promise.all(cluster.env.nodes.map(health))).every((s) => s === 200), {
        timeout: 15_000 * SCALE,
        what: 'every node healthy again',
    });
    const healthyAfterMs = Date.now() - upAt;
    await sleep(3000); // traffic after the recovery
    t.stop();

    const v = await settleAndCheck(cluster, w);
    const unavailable = all.reduce((s, c) => s + c.stats.unavailable, 0) - unavailableBefore;
    summary('F3', v, { unhealthy_after_ms: unhealthyAfterMs, healthy_after_ms: healthyAfterMs, unavailable_replies: unavailable });
    assertClean(assert, v, 'F3');
    assert.ok(unavailable > 0, 'sends during the outage were answered unavailable');
    assert.equal(v.resets, 0, 'same epochs: no resume answered recovered:false');
});
