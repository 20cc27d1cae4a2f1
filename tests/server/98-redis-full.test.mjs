// Redis full (security issue, finding 6; RELIABILITY F16): with maxmemory reached and
// noeviction, writes answer the retryable `unavailable` (never `internal`), reads keep
// working (history, login, agent hello, API lists: read-only functions are flagged
// no-writes), a visitor's hello fails with 1013 (retry), never an auth close code (4401
// would make a client discard its identity), /healthz is 503 with the reason, and
// everything recovers by itself once memory is freed, with no acknowledged message lost.
import { useEnv, it, assert, rnd, waitUntil, assertError } from './harness.mjs';

const env = useEnv({ nodes: 1 });

async function usedMemory() {
    return Number(/used_memory:(\d+)/.exec(await env.redis.cmd('INFO', 'memory'))[1]);
}

it('a full Redis refuses writes with unavailable, serves reads, and recovers', async () => {
    const { a, v, cid, ag } = await env.chat();
    const acked = [];
    const send = async (client, body) => {
        const id = `m_${rnd(6)}`;
        const r = await client.request({ type: 'message.send', conversation_id: cid, client_msg_id: id, body });
        if (r.type === 'ok') acked.push(id);
        return r;
    };
    assert.equal((await send(v, 'before')).type, 'ok');
    const oldVisitorToken = v.token;

    // fill: a big key, then a limit below what is used
    await env.redis.cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
    await env.redis.cmd('SET', 'filler', 'x'.repeat(4 * 1024 * 1024));
    await env.redis.cmd('CONFIG', 'SET', 'maxmemory', String((await usedMemory()) - 1024 * 1024));
    try {
        // writes: unavailable, nothing acknowledged
        assertError(await send(v, 'during'), 'unavailable', 'visitor send');
        assertError(await send(a, 'during too'), 'unavailable', 'agent send');
        const hz = await env.http(0, '/healthz');
        assert.equal(hz.status, 503, hz.text);
        assert.equal(hz.json.redis, 'full');
        assert.match(hz.json.reason, /maxmemory/);

        // reads: history, login, the agent's hello, API lists
        const h = await v.ok({ type: 'history', conversation_id: cid });
        assert.ok(h.messages.some((m) => m.body === 'before'));
        const token = await env.login(0, ag.email, ag.password);
        const me = await env.http(0, '/api/v1/conversations', { headers: { authorization: `Bearer ${token}` } });
        assert.equal(me.status, 200, me.text);
        const a2 = await env.agent(0, { token });
        assert.ok(a2.welcome.conversations.some((c) => c.id === cid));

        // a visitor's hello (new, or back with its token): retry later, not unauthorized
        for (const hello of [{}, { token: oldVisitorToken }]) {
            const c = await env.connect(0, 'visitor');
            const f = await c.request({ type: 'hello', ...hello, site: a2.welcome.agent.sites[0] });
            assertError(f, 'unavailable', `hello ${JSON.stringify(Object.keys(hello))}`);
            const info = await c.waitClose();
            assert.equal(info.code, 1013, `closed ${JSON.stringify(info)}`);
        }
        const m = await env.http(0, '/metrics');
        assert.match(m.text, /chatdesk_redis_full 1/);
    } finally {
        await env.redis.cmd('DEL', 'filler');
        await env.redis.cmd('CONFIG', 'SET', 'maxmemory', '0');
    }

    // recovery without a restart
    await waitUntil(async () => (await env.http(0, '/healthz')).status === 200, { what: '/healthz 200 after memory was freed' });
    assert.equal((await send(v, 'after')).type, 'ok');
    assert.equal((await send(a, 'after, agent')).type, 'ok');
    const back = await env.visitor(0, { site: a.welcome.agent.sites[0], token: oldVisitorToken });
    assert.equal(back.visitorId, v.visitorId);
    const h = await v.ok({ type: 'history', conversation_id: cid });
    const stored = new Set(h.messages.map((x) => x.client_msg_id));
    for (const id of acked) assert.ok(stored.has(id), `acked ${id} is stored`);
    assert.equal(acked.length, 3);
});
