// Redis down is survivable: requests are answered `unavailable` (never acked), /healthz
// says 503 redis down, and once the same Redis (same socket, same AOF dir) is back,
// everything works again on the same connections with no node restart.
import { useEnv, it, assert, assertError, assertOrdered, rnd, waitUntil, SCALE, range } from './harness.mjs';

const env = useEnv({ nodes: 2 });

const cmid = () => `cm-${rnd(6)}`;
const isMsg = (cid, pred = () => true) => (f) => f.type === 'message.created' && f.conversation_id === cid && pred(f.message);

it('Redis stopped mid-conversation, then restarted: unavailable, 503, then full recovery without restart', async () => {
    const [n1, n2] = env.nodes;
    const { a, v, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    const before = [];
    for (const [c, body] of [[a, 'before 2'], [v, 'before 3'], [a, 'before 4']])
        before.push((await c.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body })).message);
    assert.deepEqual(before.map((m) => m.seq), range(base + 1, base + 3));
    await v.waitFor(isMsg(cid, (m) => m.seq === base + 3));
    for (const n of [n1, n2]) {
        const h = await env.http(n, '/healthz');
        assert.equal(h.status, 200, `healthz before the outage on ${n.id}: ${h.text}`);
    }
    const pidsBefore = env.nodes.map((n) => n.proc.pid);

    // --- outage ---
    await env.redis.stop();
    const t0 = Date.now();
    // A send during the outage is answered `unavailable` within a few seconds (never ok).
    const duringId = cmid();
    const during = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: duringId, body: 'during outage' }, { timeout: 10_000 * SCALE });
    assertError(during, 'unavailable', 'send while Redis is down');
    const tUnavail = Date.now() - t0;
    assert.ok(tUnavail < 6000 * SCALE, `unavailable came after ${tUnavail} ms`);
    const agentDuring = await a.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'agent during outage' }, { timeout: 10_000 * SCALE });
    assertError(agentDuring, 'unavailable', 'agent send while Redis is down');
    const hist = await v.request({ type: 'history', conversation_id: cid }, { timeout: 10_000 * SCALE });
    assertError(hist, 'unavailable', 'history while Redis is down');

    for (const n of [n1, n2]) {
        const h = await waitUntil(
            async () => {
                const r = await env.http(n, '/healthz');
                return r.status === 503 ? r : null;
            },
            { timeout: 10_000 * SCALE, interval: 100, what: `healthz 503 on ${n.id}` },
        );
        assert.equal(h.json?.redis, 'down', h.text);
        assert.ok(typeof h.json?.status === 'string');
    }
    // The connections stay open through the outage.
    assert.ok(v.open && a.open, 'client connections survive the Redis outage');

    // --- Redis back: same socket, same dir, same AOF ---
    await env.redis.start();
    const t1 = Date.now();
    // The same connection can send again (retrying the very message that was refused).
    const retry = await waitUntil(
        async () => {
            const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: duringId, body: 'during outage' }, { timeout: 5000 * SCALE });
            if (r.type === 'ok') return r;
            assertError(r, 'unavailable', 'send while recovering');
            return null;
        },
        { timeout: 15_000 * SCALE, interval: 200, what: 'message.send to work again after Redis came back' },
    );
    const recoveredIn = Date.now() - t1;
    console.log(`sends work again ${recoveredIn} ms after Redis restarted`);
    assert.ok(recoveredIn < 12_000 * SCALE, `recovery took ${recoveredIn} ms`);
    assert.equal(retry.message.seq, base + 4, 'seq continues after the outage; the refused send was never stored');

    // Pub/sub came back too: the agent on the other node gets it live.
    await a.waitFor(isMsg(cid, (m) => m.seq === base + 4), { timeout: 12_000 * SCALE, what: 'live delivery after the outage (resubscribed)' });
    const ag = await waitUntil(
        async () => {
            const r = await a.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'agent after' }, { timeout: 5000 * SCALE });
            return r.type === 'ok' ? r : null;
        },
        { timeout: 12_000 * SCALE, interval: 200, what: 'agent send to work again' },
    );
    assert.equal(ag.message.seq, base + 5);
    await v.waitFor(isMsg(cid, (m) => m.seq === base + 5), { timeout: 12_000 * SCALE, what: 'agent message at the visitor after the outage' });
    assertOrdered(v, cid);
    assertOrdered(a, cid);

    // Data written before the outage is still there.
    const h = await v.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(h.messages.map((m) => m.seq), range(1, base + 5));
    assert.deepEqual(h.messages.slice(base, base + 3).map((m) => m.id), before.map((m) => m.id));

    for (const n of [n1, n2]) {
        const r = await waitUntil(
            async () => {
                const x = await env.http(n, '/healthz');
                return x.status === 200 ? x : null;
            },
            { timeout: 12_000 * SCALE, interval: 100, what: `healthz 200 again on ${n.id}` },
        );
        assert.equal(r.json.redis, 'up');
        assert.equal(r.json.status, 'ok');
    }
    // No node was restarted.
    assert.deepEqual(env.nodes.map((n) => n.proc.pid), pidsBefore);
    assert.ok(env.nodes.every((n) => n.running));

    // New connections work as usual after the outage, on both nodes.
    const v3 = await env.visitor(1, { site: (await env.addSite()).key });
    const s = await v3.ok({ type: 'conversation.start', form: { message: 'new after outage' } });
    assert.equal(s.message.seq, 1);
});

it('a hello during a Redis outage is refused with unavailable, and works after recovery', async () => {
    const site = await env.addSite();
    await env.redis.stop();
    try {
        const c = await env.connect(0, 'visitor');
        const r = await c.request({ type: 'hello', site: site.key }, { timeout: 10_000 * SCALE });
        assertError(r, 'unavailable');
    } finally {
        await env.redis.start();
    }
    const v = await waitUntil(
        async () => {
            const c = await env.connect(0, 'visitor');
            const w = await c.request({ type: 'hello', site: site.key }, { timeout: 5000 * SCALE });
            if (w.type === 'welcome') return c;
            c.close();
            return null;
        },
        { timeout: 15_000 * SCALE, interval: 200, what: 'hello to work again' },
    );
    await v.ok({ type: 'conversation.start', form: { message: 'hi' } });
});

it('Redis frozen (SIGSTOP): sends get unavailable within the ping deadline, then recover after SIGCONT, stored once', async () => {
    const { a, v, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    const n1 = env.nodes[0];
    env.redis.pause();
    let resumed = false;
    try {
        const t0 = Date.now();
        const id = cmid();
        const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: id, body: 'while frozen' }, { timeout: 15_000 * SCALE });
        const dt = Date.now() - t0;
        assertError(r, 'unavailable', 'send while Redis is frozen');
        // redis_ping_timeout_ms is 3000 by default: no ack, and an answer within a few seconds.
        assert.ok(dt < 8000 * SCALE, `unavailable came after ${dt} ms`);
        const h = await waitUntil(
            async () => {
                const x = await env.http(n1, '/healthz');
                return x.status === 503 ? x : null;
            },
            { timeout: 10_000 * SCALE, interval: 100, what: 'healthz 503 while Redis is frozen' },
        );
        assert.equal(h.json?.redis, 'down');
        env.redis.resume();
        resumed = true;
        // The refused send may or may not have reached Redis before the freeze; the retry
        // with the same client_msg_id settles it, and it is stored exactly once.
        const retry = await waitUntil(
            async () => {
                const x = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: id, body: 'while frozen' }, { timeout: 5000 * SCALE });
                return x.type === 'ok' ? x : null;
            },
            { timeout: 20_000 * SCALE, interval: 200, what: 'send to work again after SIGCONT' },
        );
        assert.equal(retry.message.seq, base + 1);
        // Seq 2 may have been published while a node's subscriber was reconnecting. Once the
        // next message arrives, the agent must have both, in order (gap backfill, P4/F10).
        const next = (await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'after the freeze' })).message;
        assert.equal(next.seq, base + 2);
        await a.waitFor(isMsg(cid, (m) => m.seq === base + 2), { timeout: 12_000 * SCALE, what: 'live delivery after the freeze' });
        assert.deepEqual(a.messages(cid).map((m) => m.seq).filter((x) => x > base), [base + 1, base + 2], 'agent got the frozen message (live or backfilled) before the next');
        const hist = await a.ok({ type: 'history', conversation_id: cid });
        assert.equal(hist.messages.filter((m) => m.client_msg_id === id).length, 1);
        assert.deepEqual(hist.messages.map((m) => m.seq), range(1, base + 2));
        await waitUntil(async () => (await env.http(n1, '/healthz')).status === 200, { timeout: 12_000 * SCALE, what: 'healthz 200 after the freeze' });
    } finally {
        if (!resumed) env.redis.resume();
    }
});
