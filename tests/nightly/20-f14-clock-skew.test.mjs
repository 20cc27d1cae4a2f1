// F14 (RELIABILITY.md), nightly: clock skew. Node 2 runs 120 s ahead and node 3 120 s
// behind (Debian's libfaketime, wall clock only; node 1 and Redis keep the real time).
// Pass: login tokens and visitor tokens minted on any node are accepted at hello on every
// other node, and the token renewed by a skewed node's hello works everywhere; messages
// sent alternately through the skewed nodes get strictly increasing seqs in send order,
// every client receives them in that order, and history returns them in it, whatever the
// nodes' clocks say (the ping ts shows the skew took effect).
import fs from 'node:fs';
import { useEnv, it, assert, rnd, range } from '../server/harness.mjs';

const LIB = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/faketime/libfaketime.so.1'].find((p) => fs.existsSync(p));
const skewed = (offset) => ({ LD_PRELOAD: LIB, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_DONT_RESET: '1' });
const skip = LIB ? false : 'libfaketime is not installed (apt-get install -y faketime)';
const env = skip ? null : useEnv({ nodes: 3, nodeEnv: { 1: skewed('+120s'), 2: skewed('-120s') } });

it('F14: the skew took effect (ping ts)', async () => {
    const site = await env.addSite();
    const ts = [];
    for (let i = 0; i < 3; i++) {
        const v = await env.visitor(i, { site });
        const t0 = Date.now();
        const r = await v.ok({ type: 'ping' });
        ts.push(r.ts - t0);
        v.terminate();
    }
    assert.ok(Math.abs(ts[0]) < 5000, `node 1 ts off by ${ts[0]} ms`);
    assert.ok(Math.abs(ts[1] - 120_000) < 5000, `node 2 ts off by ${ts[1]} ms`);
    assert.ok(Math.abs(ts[2] + 120_000) < 5000, `node 3 ts off by ${ts[2]} ms`);
}, { skip });

it('F14: tokens minted on any node are accepted on every other; renewed tokens too', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site });
    for (let from = 0; from < 3; from++) {
        const token = await env.login(from, ag.email, ag.password);
        for (let to = 0; to < 3; to++) {
            const a = await env.agent(to, { token });
            assert.equal(a.agentId, ag.id, `login on node ${from + 1}, hello on node ${to + 1}`);
            a.terminate();
        }
        const v = await env.visitor(from, { site });
        let token2 = v.token;
        v.terminate();
        for (let to = 0; to < 3; to++) {
            const w = await env.visitor(to, { site, token: token2 });
            assert.equal(w.visitorId, v.visitorId, `visitor token of node ${from + 1} on node ${to + 1}`);
            token2 = w.token; // renewed by that node
            w.terminate();
        }
    }
}, { skip });

it('F14: ordering follows seq, not the nodes\' clocks', async () => {
    // visitor on the node ahead, agent on the node behind, a watcher on the real one
    const { a, v, cid, base } = await env.chat({ vNode: 1, aNode: 2 });
    const sent = [];
    for (let i = 0; i < 20; i++) {
        const [c, who] = i % 2 ? [a, 'agent'] : [v, 'visitor'];
        sent.push((await c.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `f14-${rnd(4)}`, body: `${who} ${i}` })).message);
    }
    assert.deepEqual(sent.map((m) => m.seq), range(base + 1, base + 20), 'seqs in send order');
    const bodies = sent.map((m) => m.body);
    for (const c of [a, v]) {
        await c.waitFor((f) => f.type === 'message.created' && f.conversation_id === cid && f.message.seq === base + 20);
        const got = c.messages(cid).filter((m) => m.seq > base);
        assert.deepEqual(got.map((m) => m.body), bodies, `${c.label} received them in send order`);
    }
    for (let n = 0; n < 3; n++) {
        const ag2 = await env.addAgent({ site: cid.split('.').pop() });
        const w = await env.agent(n, { email: ag2.email, password: ag2.password });
        const h = await w.ok({ type: 'history', conversation_id: cid });
        assert.deepEqual(h.messages.filter((m) => m.seq > base).map((m) => m.body), bodies, `history on node ${n + 1}`);
        w.terminate();
    }
    a.terminate();
    v.terminate();
}, { skip });
