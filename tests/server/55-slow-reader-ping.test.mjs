// A reader that stops reading while frames keep coming is closed with 4008 within
// slow_reader_s (here 3 s), long before its outbound queue could overflow: the kernel
// buffers would take its frames for minutes (RELIABILITY F8). The node asks with a
// WebSocket ping while it writes; a client that reads answers it (ws, browsers), so a
// reading client is never cut, and a quiet connection is never probed.
import { useEnv, it, assert, sleep, waitUntil, SCALE } from './harness.mjs';

const env = useEnv({ nodes: 1, args: ['--slow-reader-s', '3', '--agent-rate', '100000', '--agent-burst', '100000'] });

const closes = async () => Number(/chatdesk_slow_consumer_closes_total (\d+)/.exec((await env.http(0, '/metrics')).text)[1]);

async function say(a, cid, n, every, tag) {
    for (let i = 0; i < n; i++) {
        await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `${tag}-${i}`, body: `${tag} ${i}` });
        await sleep(every);
    }
}

it('a reader that keeps reading is never cut, however long the traffic lasts', async () => {
    const { a, v, cid } = await env.chat();
    const before = await closes();
    await say(a, cid, 40, 200, 'steady'); // 8 s: more than twice slow_reader_s
    await v.waitFor((f) => f.type === 'message.created' && f.message?.body === 'steady 39');
    assert.ok(!v.closeInfo, 'still open');
    assert.equal(await closes(), before);
    v.terminate();
});

it('a quiet connection that does not read is not probed', async () => {
    const { v } = await env.chat();
    v.ws._socket.pause();
    await sleep(5000);
    v.ws._socket.resume();
    await sleep(300);
    assert.ok(!v.closeInfo, 'still open');
    v.terminate();
});

it('a reader that stops reading while messages come is closed with 4008 within seconds, then resumes without a gap', async () => {
    const { a, v, cid, conv, base, site } = await env.chat();
    const before = await closes();
    v.ws._socket.pause();
    const t0 = Date.now();
    let i = 0;
    let cutAt = 0;
    while (Date.now() - t0 < 15_000 * SCALE) {
        await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `paused-${i}`, body: `paused ${i}` });
        i++;
        if (!cutAt && (await closes()) > before) cutAt = Date.now();
        if (cutAt && Date.now() - cutAt > 500) break;
        await sleep(100);
    }
    assert.ok(cutAt, 'cut off');
    // 3 s unanswered after a ping sent at most 1 s (a third) into the pause, plus a write's wait
    assert.ok(cutAt - t0 <= 6000 * SCALE, `cut after ${cutAt - t0} ms`);
    v.ws._socket.resume();
    const cl = await v.waitClose(10_000 * SCALE);
    assert.equal(cl.code, 4008, `close code ${cl.code}`);
    assert.match(cl.reason, /not reading/);
    const seen = v.messages(cid).map((m) => m.seq);
    const last = seen.length ? seen[seen.length - 1] : base;
    const v2 = await env.visitor(0, { site, token: v.token, resume: [{ conversation_id: cid, after_seq: last, epoch: conv.epoch }] });
    const resumed = await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { timeout: 10_000 * SCALE });
    assert.equal(resumed.recovered, true);
    const all = [...seen, ...v2.messages(cid).map((m) => m.seq)];
    const stored = base + i;
    for (let s = base + 1; s <= stored; s++) assert.ok(all.includes(s), `seq ${s} delivered`);
    v2.terminate();
});
