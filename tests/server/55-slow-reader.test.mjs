// A slow reader is cut off when its bounded outbound queue overflows (close 4008), and
// loses nothing: it reconnects and resumes from the last seq it saw.
import { useEnv, it, assert, waitUntil, SCALE } from './harness.mjs';

const env = useEnv({
    nodes: 1,
    args: ['--outq-max-frames', '64', '--outq-max-bytes', '262144', '--agent-rate', '100000', '--agent-burst', '100000',
        '--resume-max', '10000'],
});

it('a visitor that stops reading is closed with 4008 when its queue overflows, then resumes without a gap', async () => {
    const { a, v, cid, conv, base, site } = await env.chat();
    // the visitor stops reading: the kernel buffers fill, then the node's queue
    v.ws._socket.pause();
    const body = 'x'.repeat(8000);
    const N = 2500; // ~20 MB: far more than loopback socket buffers hold
    const replies = [];
    // four sends in flight at a time: the agent reads, so its own queue stays small
    for (let i = 0; i < N; i += 4) {
        const batch = [];
        for (let k = i; k < Math.min(N, i + 4); k++)
            batch.push(a.request({ type: 'message.send', conversation_id: cid, client_msg_id: `bulk-${k}`, body: `${k} ${body}` }, { timeout: 60_000 * SCALE }));
        replies.push(...(await Promise.all(batch)));
        if (v.closeInfo) break;
    }
    const sentN = replies.length;
    assert.equal(replies.filter((r) => r.type === 'ok').length, sentN, 'every send acknowledged: the agent is not slowed down by the visitor');
    v.ws._socket.resume();
    const cl = await v.waitClose(30_000 * SCALE);
    assert.equal(cl.code, 4008, `close code ${cl.code}`);
    const seen = v.messages(cid).map((m) => m.seq);
    for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1] + 1, 'what arrived before the cut is in order');
    const last = seen.length ? seen[seen.length - 1] : base;
    assert.ok(last < base + sentN, 'the visitor was cut off before the end');
    // reconnect and resume: exactly the rest, in order
    const v2 = await env.visitor(0, { site, token: v.token, resume: [{ conversation_id: cid, after_seq: last, epoch: conv.epoch }] });
    const resumed = await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { timeout: 30_000 * SCALE });
    assert.equal(resumed.recovered, true);
    const rest = v2.messages(cid).map((m) => m.seq);
    assert.equal(rest[0], last + 1);
    assert.equal(rest[rest.length - 1], base + sentN);
    for (let i = 1; i < rest.length; i++) assert.equal(rest[i], rest[i - 1] + 1);
    const m = await env.http(0, '/metrics');
    assert.match(m.text, /chatdesk_slow_consumer_closes_total [1-9]/);
    v2.terminate();
});
