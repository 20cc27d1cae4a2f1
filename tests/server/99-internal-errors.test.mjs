// Redis error text never reaches a client (security issue, finding 8): a Redis error or a
// script's runtime error (WRONGTYPE, "user_function:12: ...") used to be passed on as the
// message of an "internal" error, on the HTTP API and in WebSocket error frames. Now any
// error that is not one of our own codes answers code "internal" with the message
// "internal error (request id ID)", and the node logs ID with the Redis text.
import { useEnv, it, assert, waitUntil } from './harness.mjs';

const env = useEnv({ nodes: 1 });

/** Turns every hash key that names id into a string (a WRONGTYPE for any script reading it);
 *  found by scanning, so the test does not depend on the key layout. */
async function corrupt(id) {
    const keys = await env.redis.cmd('KEYS', `*${id}*`);
    let n = 0;
    for (const k of keys) {
        if ((await env.redis.cmd('TYPE', k)) !== 'hash') continue;
        await env.redis.cmd('DEL', k);
        await env.redis.cmd('SET', k, 'not a hash');
        n++;
    }
    assert.ok(n > 0, `a hash key naming ${id}`);
}

function assertInternal(code, message, what) {
    assert.equal(code, 'internal', what);
    assert.match(message, /^internal error \(request id [0-9a-f]{16}\)$/, `${what}: ${message}`);
    assert.doesNotMatch(message, /WRONGTYPE|user_function|script|@/, what);
    return /request id ([0-9a-f]{16})/.exec(message)[1];
}

it('a WRONGTYPE on the HTTP API and in a frame answers internal with a request id the log has', async () => {
    const { a, v, cid, ag } = await env.chat();
    const token = await env.login(0, ag.email, ag.password);
    await corrupt(v.visitorId);
    const r = await env.http(0, `/api/v1/visitors/${v.visitorId}`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(r.status, 500);
    const id1 = assertInternal(r.json.error.code, r.json.error.message, 'API');
    await corrupt(cid);
    const e = await a.request({ type: 'history', conversation_id: cid });
    assert.equal(e.type, 'error');
    const id2 = assertInternal(e.code, e.message, 'frame');
    const log = () => env.nodes[0].log.text();
    await waitUntil(() => log().includes(`request_id=${id1}`) && log().includes(`request_id=${id2}`), {
        what: 'the request ids in the node log',
    });
    const line = log().split('\n').find((l) => l.includes(`request_id=${id1}`));
    assert.match(line, /WRONGTYPE/, 'the log keeps the Redis text');
});
