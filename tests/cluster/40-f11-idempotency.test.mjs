// F11 (RELIABILITY.md): one client_msg_id sent at the same moment through three different
// nodes (the retries of a client that reconnected twice) is stored once, and all three
// acknowledgements carry the same seq. Checked for a visitor and for an agent, with the
// stream read back from Redis.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, redisCommand, rnd, SCALE } from './lib.mjs';

const { cluster, skip } = useCluster();

async function storedWith(cid, cmid) {
    const rows = await redisCommand(cluster.redis.sock, ['XRANGE', `cd:{s:${cid.split('.').pop()}}:conv:${cid}:msgs`, '-', '+']);
    return rows.filter(([, f]) => f[f.indexOf('cmid') + 1] === cmid).map(([id]) => Number(id.split('-')[1]));
}

test('F11: one client_msg_id via three nodes is stored once, every ack has the same seq', { skip, timeout: 60_000 * SCALE }, async () => {
    const env = cluster.env;
    const { site, ag, a, v, cid } = await env.chat({ vNode: 0, aNode: 0 });
    const results = [];
    for (const who of ['visitor', 'agent']) {
        // the same identity connected to each node directly
        const conns =
            who === 'visitor'
                ? await Promise.all([0, 1, 2].map((i) => env.visitor(i, { site, token: v.token, label: `v-n${i + 1}` })))
                : await Promise.all([0, 1, 2].map((i) => env.agent(i, { token: a.token, label: `a-n${i + 1}` })));
        for (let round = 0; round < 5; round++) {
            const cmid = `f11-${who}-${round}-${rnd(4)}`;
            const frame = { type: 'message.send', conversation_id: cid, client_msg_id: cmid, body: `once ${round}` };
            const acks = await Promise.all(conns.map((c) => c.ok(frame)));
            const seqs = acks.map((r) => r.message.seq);
            const ids = new Set(acks.map((r) => r.message.id));
            assert.equal(new Set(seqs).size, 1, `${who} round ${round}: acks with seqs ${seqs}`);
            assert.equal(ids.size, 1, `${who} round ${round}: one message id`);
            assert.deepEqual(await storedWith(cid, cmid), [seqs[0]], `${who} round ${round}: stored once`);
            results.push(seqs[0]);
        }
        for (const c of conns) c.terminate();
    }
    console.log(JSON.stringify({ test: 'F11', rounds: results.length, seqs: results }));
    assert.equal(new Set(results).size, results.length, 'each round its own message');
    void ag;
});
