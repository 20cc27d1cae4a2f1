// F10 (RELIABILITY.md), reduced: the nodes' pub/sub connections are killed three times
// (CLIENT KILL TYPE pubsub through redis-cli) while 40 chats exchange messages. Events
// published while a node is unsubscribed never reach it; it must resubscribe and
// backfill its sessions from the stored history. Pass: clients receive everything, in
// order, nothing lost or duplicated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { useCluster, setupChats, traffic, settleAndCheck, assertClean, summary, sleep, waitUntil, SCALE } from './lib.mjs';

const { cluster, skip } = useCluster();

function redisCli(...args) {
    return new Promise((resolve, reject) => {
        execFile('redis-cli', ['-s', cluster.redis.sock, ...args], { timeout: 5000 }, (err, stdout) =>
            err ? reject(err) : resolve(stdout.trim()),
        );
    });
}

const metric = async (name) => {
    let sum = 0;
    for (const n of cluster.env.nodes) {
        const r = await cluster.env.http(n, '/metrics');
        const m = new RegExp(`^${name} (\\d+)`, 'm').exec(r.text);
        sum += m ? Number(m[1]) : 0;
    }
    return sum;
};

test('F10: pub/sub connections killed mid-traffic: nodes resubscribe and backfill, clients get everything', { skip, timeout: 120_000 * SCALE }, async () => {
    const w = await setupChats(cluster, { chats: 40, agents: 4 });
    const t = traffic(w, { periodMs: 200 });
    await sleep(2000);
    const backfillsBefore = await metric('chatdesk_gap_backfills_total');
    const killed = [];
    for (let i = 0; i < 3; i++) {
        killed.push(Number(await redisCli('CLIENT', 'KILL', 'TYPE', 'pubsub')));
        await sleep(2000);
    }
    // every node subscribed again (one pub/sub client per node)
    await waitUntil(async () => (await redisCli('CLIENT', 'LIST', 'TYPE', 'pubsub')).split('\n').filter(Boolean).length >= 3, {
        timeout: 10_000 * SCALE,
        what: 'three pub/sub connections again',
    });
    await sleep(1000);
    t.stop();
    const v = await settleAndCheck(cluster, w);
    const backfills = (await metric('chatdesk_gap_backfills_total')) - backfillsBefore;
    summary('F10', v, { pubsub_clients_killed: killed, gap_backfills: backfills });
    assertClean(assert, v, 'F10');
    assert.ok(killed.every((n) => n >= 3), `each kill hit the three nodes' subscriptions (${killed})`);
    assert.equal(v.resets, 0, 'no resume answered recovered:false');
});
