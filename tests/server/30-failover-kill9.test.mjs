// Stateless nodes: kill -9 of the node a visitor is connected to loses nothing. The
// visitor reconnects to another node with its token and resumes from its last seq.
import { useEnv, it, assert, assertOrdered, rnd, waitUntil, withTimeout, range } from './harness.mjs';

const env = useEnv({ nodes: 3 });

const cmid = () => `cm-${rnd(6)}`;
const isMsg = (cid, pred = () => true) => (f) => f.type === 'message.created' && f.conversation_id === cid && pred(f.message);

it('kill -9 of the visitor\'s node: the agent keeps sending, the visitor resumes on node 2 with no gap or duplicate', async () => {
    const n1 = env.nodes[0];
    const { site, a, v, cid, conv, base } = await env.chat({ vNode: 0, aNode: 1 });
    // Some traffic both ways before the crash.
    const m2 = await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'agent 2' });
    await v.waitFor(isMsg(cid, (m) => m.seq === base + 1));
    const m3 = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'visitor 3' });
    assert.deepEqual([m2.message.seq, m3.message.seq], [base + 1, base + 2]);
    await a.waitFor(isMsg(cid, (m) => m.seq === base + 2));
    const lastSeen = Math.max(...v.messages(cid).map((m) => m.seq), m3.message.seq);
    assert.equal(lastSeen, base + 2);

    await n1.kill9();
    const cl = await v.waitClose(10_000);
    assert.ok([1006, 1001, 1011].includes(cl.code), `visitor socket dropped (close ${cl.code})`);

    // The agent on node 2 keeps working while the visitor is away.
    const sent = [];
    for (const body of ['while away 1', 'while away 2', 'while away 3']) {
        const r = await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body });
        sent.push(r.message);
    }
    assert.deepEqual(sent.map((m) => m.seq), range(base + 3, base + 5));

    const v2 = await env.visitor(1, {
        site,
        token: v.token,
        resume: [{ conversation_id: cid, after_seq: lastSeen, epoch: conv.epoch }],
        label: 'visitor@n2',
    });
    assert.equal(v2.visitorId, v.visitorId);
    const resumed = await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { what: 'resumed' });
    assert.equal(resumed.recovered, true);
    assert.equal(resumed.last_seq, base + 5);
    assert.equal(resumed.epoch, conv.epoch);
    const idx = v2.frames.indexOf(resumed);
    const replay = v2.frames.slice(0, idx).filter(isMsg(cid)).map((f) => f.message);
    assert.deepEqual(replay.map((m) => m.seq), range(base + 3, base + 5), 'exactly the missed messages, in order');
    assert.deepEqual(replay.map((m) => m.id), sent.map((m) => m.id));
    assert.deepEqual(replay.map((m) => m.body), ['while away 1', 'while away 2', 'while away 3']);

    // Live delivery both ways through the surviving nodes.
    const m7 = await v2.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'back again' });
    assert.equal(m7.message.seq, base + 6);
    await a.waitFor(isMsg(cid, (m) => m.seq === base + 6));
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'welcome back' });
    await v2.waitFor(isMsg(cid, (m) => m.seq === base + 7));
    assertOrdered(v2, cid);
    assertOrdered(a, cid);
    // (The visitor's own message: its sending connection may get it back too.)
    assert.deepEqual(v2.messages(cid).map((m) => m.seq).filter((s) => s !== base + 6), [base + 3, base + 4, base + 5, base + 7]);
    const h = await v2.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(h.messages.map((m) => m.seq), range(1, base + 7));
});

it('a send in flight when its node dies is retried on another node with the same client_msg_id and stored once', async () => {
    // A fresh victim node, so that the file's other nodes stay up.
    const victim = await env.addNode([], 'n-victim');
    const vi = env.nodes.indexOf(victim);
    const { site, a, v, cid, conv, base } = await env.chat({ vNode: vi, aNode: 1 });
    const id = cmid();
    v.send({ type: 'message.send', rid: 'inflight', conversation_id: cid, client_msg_id: id, body: 'in flight' });
    await victim.kill9();
    await v.waitClose(10_000);
    const acked = v.frames.find((f) => f.rid === 'inflight');

    const v2 = await env.visitor(2, { site, token: v.token, resume: [{ conversation_id: cid, after_seq: base, epoch: conv.epoch }] });
    await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid);
    const retry = await v2.ok({ type: 'message.send', conversation_id: cid, client_msg_id: id, body: 'in flight' });
    if (acked?.type === 'ok') assert.equal(retry.message.id, acked.message.id, 'the retry returns the acked message');
    assert.equal(retry.message.seq, base + 1);
    const h = await a.ok({ type: 'history', conversation_id: cid });
    assert.equal(h.messages.filter((m) => m.client_msg_id === id).length, 1, 'stored once');
    assert.deepEqual(h.messages.map((m) => m.seq), range(1, base + 1));
    // The agent saw it at most once.
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'got it' });
    await v2.waitFor(isMsg(cid, (m) => m.seq === base + 2));
    await waitUntil(() => a.messages(cid).some((m) => m.seq === base + 1), { what: 'agent got the in-flight message' });
    assert.equal(a.messages(cid).filter((m) => m.client_msg_id === id).length, 1);
});

it('an agent whose node dies reconnects elsewhere and resumes its conversation', async () => {
    const victim = await env.addNode([], 'n-victim2');
    const vi = env.nodes.indexOf(victim);
    const { a, v, cid, conv, base } = await env.chat({ vNode: 1, aNode: vi });
    await victim.kill9();
    await a.waitClose(10_000);
    const sent = [];
    for (const b of ['are you there?', 'hello??']) sent.push((await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: b })).message);
    const a2 = await env.agent(2, { token: a.token, resume: [{ conversation_id: cid, after_seq: base, epoch: conv.epoch }] });
    assert.ok(a2.welcome.conversations.some((c) => c.id === cid), 'still assigned after the crash');
    const resumed = await a2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid);
    assert.equal(resumed.recovered, true);
    assert.deepEqual(a2.messages(cid).map((m) => m.seq), sent.map((m) => m.seq));
    await a2.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'yes, here' });
    await v.waitFor(isMsg(cid, (m) => m.body === 'yes, here'));
});

it('SIGTERM drains: /healthz says draining, clients get close 1001, the node exits 0, clients resume elsewhere', async () => {
    const victim = await env.addNode(['--drain-timeout-s', '2'], 'n-drain');
    const vi = env.nodes.indexOf(victim);
    const { site, a, v, cid, conv, base } = await env.chat({ vNode: vi, aNode: 1 });
    const problems = []; // every expectation is checked, then all are reported together
    const t0 = Date.now();
    const exited = victim.signal('SIGTERM');
    // drain_timeout_s is 2: for a while the node still answers /healthz, with 503 draining.
    const h = await waitUntil(
        async () => {
            const r = await env.http(victim, '/healthz', { timeout: 1000 });
            return r.status === 503 ? r : null;
        },
        { timeout: 1500, interval: 50, what: '/healthz 503 while draining' },
    ).catch((e) => e);
    if (h instanceof Error) problems.push(`no /healthz 503 during the drain: ${h.message}`);
    else if (h.json?.status !== 'draining') problems.push(`/healthz during the drain: ${h.text}`);
    const cl = await v.waitClose(15_000);
    const closedAfter = Date.now() - t0;
    if (cl.code !== 1001) problems.push(`visitor close code ${cl.code}, expected 1001`);
    // Connections are closed when the drain time is over, not at once.
    if (closedAfter < 1000) problems.push(`connections closed ${closedAfter} ms after SIGTERM, before drain_timeout_s (2 s)`);
    const ex = await withTimeout(exited, 20_000, 'exit after SIGTERM').catch(() => null);
    if (!ex) problems.push('node did not exit within 20 s of SIGTERM');
    else if (ex.code !== 0) problems.push(`exit status after SIGTERM: ${JSON.stringify(ex)}`);
    // The agent keeps going and the visitor resumes on another node.
    const sent = (await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'after drain' })).message;
    const v2 = await env.visitor(2, { site, token: v.token, resume: [{ conversation_id: cid, after_seq: base, epoch: conv.epoch }] });
    const resumed = await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid);
    assert.equal(resumed.recovered, true);
    assert.deepEqual(v2.messages(cid).map((m) => m.seq), [sent.seq]);
    assert.deepEqual(problems, []);
});
