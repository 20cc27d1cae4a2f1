// F6 (RELIABILITY.md): node 2 alone is cut off from Redis for 20 s (CD_F6_CUT_S) while 40
// chats run through nginx; nodes 1 and 3 keep their Redis. Node 2 reaches Redis through a
// link the test cuts without closing anything (bytes stop both ways, as with a firewall
// drop). Pass: node 2 acknowledges nothing during the cut and its /healthz is 503 within
// the PING deadline (3 s, + one PING interval); it then closes its clients (1013, with
// redis_down_close_ms) and refuses upgrades (503), so they carry on through nodes 1/3,
// each acknowledged again within 5 s (p99) of the cut; after the heal node 2 is healthy within 5 s; nothing acked
// is lost or stored twice, everyone has everything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, Link, NODE_ARGS, nginxBinary, setupChats, traffic, settleAndCheck, assertClean, summary, pct, sleep, waitUntil, SCALE } from './lib.mjs';

const CUT_S = Number(process.env.CD_F6_CUT_S || 20);
// a node that found Redis unreachable closes its clients (1013) and refuses upgrades (503)
// after this long, so nginx sends them to the other nodes
const ARGS = [...NODE_ARGS, '--redis-down-close-ms', '100'];
const skip = nginxBinary() ? false : 'nginx is not installed (apt-get install -y nginx)';
const cluster = new Cluster();
const link = new Link({ path: cluster.env.redis.sock });
before(async () => {
    if (skip) return;
    await link.start();
    await cluster.start({ args: ARGS, nodeArgs: { 1: [...ARGS, '--redis', `redis://127.0.0.1:${link.port}/0`] } });
}, { timeout: 120_000 });
after(async () => {
    if (skip) return;
    link.heal();
    await cluster.stop();
    link.stop();
}, { timeout: 120_000 });

const health = (n) => cluster.env.http(n, '/healthz', { timeout: 2000 }).then((r) => r.status).catch(() => 0);
async function acks(n) {
    const r = await cluster.env.http(n, '/metrics', { timeout: 2000 });
    return Number(/^chatdesk_acks_total (\d+)/m.exec(r.text)[1]);
}

test(`F6: node 2 cut off from Redis for ${CUT_S} s: no acks there, clients served elsewhere, healthy after the heal, nothing lost`, { skip, timeout: (CUT_S + 120) * 1000 * SCALE }, async () => {
    const n2 = cluster.env.nodes[1];
    assert.equal(await health(n2), 200);
    const w = await setupChats(cluster, { chats: 40, agents: 4 });
    const all = [...w.visitors, ...w.agentClients];
    const t = traffic(w, { periodMs: 300 });
    await sleep(3000);
    const onN2 = (await cluster.env.http(n2, '/healthz')).json?.connections ?? 0;
    assert.ok(onN2 > 0, 'node 2 has clients before the cut');

    const cutAt = Date.now();
    link.cut();
    // anything already answered by Redis when the link was cut is acknowledged in the next
    // loop pass; from then on node 2 must acknowledge nothing
    await sleep(200);
    const acksAtCut = await acks(n2);
    await waitUntil(async () => (await health(n2)) === 503, { timeout: 5000 * SCALE, what: 'node 2 /healthz 503 after the cut' });
    const unhealthyMs = Date.now() - cutAt;
    assert.equal(await health(cluster.env.nodes[0]), 200, 'node 1 stays healthy');
    assert.equal(await health(cluster.env.nodes[2]), 200, 'node 3 stays healthy');
    await sleep(Math.max(0, CUT_S * 1000 - (Date.now() - cutAt)));
    const acksAtHeal = await acks(n2);
    // who was stalled by the cut: clients without an ack in the second before it ended
    // would show here; every client must have had acks again, soon after the cut
    const stall = all.map((c) => {
        const next = c.ackTimes.find((x) => x > cutAt + 200);
        return next === undefined ? Infinity : next - cutAt;
    });
    link.heal();
    const healAt = Date.now();
    await waitUntil(async () => (await health(n2)) === 200, { timeout: 10_000 * SCALE, what: 'node 2 healthy after the heal' });
    const healthyMs = Date.now() - healAt;
    await sleep(3000); // traffic after the heal, node 2 included
    t.stop();

    const v = await settleAndCheck(cluster, w);
    const finite = stall.filter(Number.isFinite);
    summary('F6', v, {
        cut_s: CUT_S,
        clients_on_node2: onN2,
        unhealthy_after_ms: unhealthyMs,
        healthy_after_heal_ms: healthyMs,
        acks_on_node2_during_cut: acksAtHeal - acksAtCut,
        next_ack_after_cut_ms_p99: finite.length === stall.length ? pct(finite, 99) : 'some never',
        next_ack_after_cut_ms_max: Math.max(...stall),
    });
    assertClean(assert, v, 'F6');
    assert.equal(acksAtHeal - acksAtCut, 0, 'node 2 acknowledged messages while cut off from Redis');
    assert.ok(unhealthyMs <= 4000 * SCALE, `node 2 /healthz 503 after ${unhealthyMs} ms (≤ the 3 s PING deadline + one PING interval)`);
    assert.ok(healthyMs <= 5000 * SCALE, `node 2 healthy ${healthyMs} ms after the heal`);
    assert.ok(pct(stall, 99) <= 5000 * SCALE, `clients acknowledged again p99 ${pct(stall, 99)} ms after the cut (max ${Math.max(...stall)})`);
});
