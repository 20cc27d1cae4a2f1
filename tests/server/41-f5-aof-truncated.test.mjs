// F5 (RELIABILITY.md), the "OS crash" under appendfsync everysec: Redis is killed -9 and
// its incremental AOF cut back to the size it had before the last acknowledged messages
// (what an OS crash inside the fsync window leaves), then restarted with
// aof-load-truncated yes. Pass: the acknowledged messages lost are exactly the cut ones;
// seqs are never silently reused: the connected visitor is told (resumed recovered:false
// and a new epoch), a client resuming from a seq above the stored top gets
// recovered:false, a client with the old epoch gets recovered:false even once new messages
// took the lost seqs, and the node counts the resets.
import fs from 'node:fs';
import path from 'node:path';
import { useEnv, it, assert, rnd, range, waitUntil, SCALE } from './harness.mjs';

const env = useEnv({ nodes: 1 });

function incrAof() {
    const dir = path.join(env.redis.dir, 'appendonlydir');
    const f = fs.readdirSync(dir).find((x) => /\.incr\.aof$/.test(x));
    assert.ok(f, `no incremental AOF in ${dir}`);
    return path.join(dir, f);
}

async function resetCount() {
    const m = await env.http(0, '/metrics');
    return Number(/^chatdesk_resume_reset_total (\d+)/m.exec(m.text)[1]);
}

it('F5: a truncated AOF loses exactly the cut messages, and every client that saw them is told (recovered:false, new epoch)', async () => {
    assert.deepEqual(await env.redis.cmd('CONFIG', 'GET', 'aof-load-truncated'), ['aof-load-truncated', 'yes']);
    const { a, v, cid, conv, base } = await env.chat();
    const oldEpoch = conv.epoch;
    const send = async (body) => (await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `f5-${rnd(4)}`, body })).message;
    const kept = [];
    for (let i = 0; i < 3; i++) kept.push(await send(`kept ${i}`));
    await v.waitFor((f) => f.type === 'message.created' && f.message.seq === base + 3);
    const aof = incrAof();
    const cutAt = fs.statSync(aof).size;
    const lost = [];
    for (let i = 0; i < 4; i++) lost.push(await send(`lost ${i}`));
    assert.deepEqual(lost.map((m) => m.seq), range(base + 4, base + 7));
    await v.waitFor((f) => f.type === 'message.created' && f.message.seq === base + 7, { what: 'the visitor saw every acked message' });
    const resetsBefore = await resetCount();

    // the crash: Redis dies, the last writes never reached the disk
    await env.redis.stop({ signal: 'SIGKILL' });
    assert.ok(fs.statSync(aof).size > cutAt, 'the lost messages were in the AOF');
    fs.truncateSync(aof, cutAt);
    const from = v.mark();
    await env.redis.start();
    await waitUntil(async () => (await env.http(0, '/healthz')).status === 200, { timeout: 15_000 * SCALE, what: 'node healthy again' });

    // exactly the cut messages are gone
    const h = await waitUntil(
        async () => {
            const r = await a.request({ type: 'history', conversation_id: cid });
            return r.type === 'ok' && r;
        },
        { what: 'history readable again' },
    );
    const stored = h.messages.map((m) => m.id);
    for (const m of kept) assert.ok(stored.includes(m.id), `kept message seq ${m.seq} is stored`);
    for (const m of lost) assert.ok(!stored.includes(m.id), `cut message seq ${m.seq} is gone`);
    assert.equal(Math.max(...h.messages.map((m) => m.seq)), base + 3);

    // the connected visitor is told: its seqs above the top will be reused
    const told = await v.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { from, timeout: 15_000 * SCALE, what: 'resumed for the connected visitor' });
    assert.equal(told.recovered, false);
    assert.equal(told.last_seq, base + 3);
    assert.notEqual(told.epoch, oldEpoch, 'a new epoch');

    // a client coming back with the last seq it saw gets recovered:false and the new epoch
    const siteKey = cid.split('.').pop();
    const v2 = await env.visitor(0, { site: siteKey, token: v.token, resume: [{ conversation_id: cid, after_seq: base + 7, epoch: oldEpoch }] });
    const r2 = await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { what: 'resumed after the crash' });
    assert.equal(r2.recovered, false);
    // (each client that saw the lost seqs moves the epoch on again: whoever reloaded at
    // the first reset reloads once more; never a silent reuse)
    assert.ok(r2.epoch !== oldEpoch && r2.epoch !== '', 'a new epoch again');
    assert.equal(v2.messages(cid).length, 0, 'nothing replayed over a reset');

    // new messages take the lost seqs, under the new epoch; a client still on the old epoch
    // is never handed them as if they were what it saw
    const fresh = [await send('after the crash 0'), await send('after the crash 1'), await send('after the crash 2'), await send('after the crash 3'), await send('after the crash 4')];
    assert.deepEqual(fresh.map((m) => m.seq), range(base + 4, base + 8));
    const v3 = await env.visitor(0, { site: siteKey, token: v.token, resume: [{ conversation_id: cid, after_seq: base + 7, epoch: oldEpoch }] });
    const r3 = await v3.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { what: 'resumed with the old epoch' });
    assert.equal(r3.recovered, false, 'the old epoch is refused even though the top is above its last seq');
    assert.equal(v3.messages(cid).length, 0);
    assert.equal(r3.last_seq, base + 8);
    assert.notEqual(r3.epoch, oldEpoch);
    // with the current epoch, resume works
    const v4 = await env.visitor(0, { site: siteKey, token: v.token, resume: [{ conversation_id: cid, after_seq: base + 3, epoch: r3.epoch }] });
    const r4 = await v4.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid);
    assert.equal(r4.recovered, true);
    assert.deepEqual(v4.messages(cid).map((m) => m.id), fresh.map((m) => m.id));
    assert.ok((await resetCount()) - resetsBefore >= 3, 'the resets are counted (chatdesk_resume_reset_total)');
    for (const c of [a, v, v2, v3, v4]) c.terminate();
});
