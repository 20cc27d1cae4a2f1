// Bad input gets a clear error (or the documented close code), never a crash, and never
// affects other connections: after each case a healthy visitor/agent pair on the same
// nodes still exchanges messages.
import { useEnv, it, assert, assertError, assertOrdered, rnd, ORIGIN, Client } from './harness.mjs';

// Node 3 has a short hello timeout (4408 case) and a tiny visitor rate limit (4429 case);
// nodes 1 and 2 carry the healthy pair.
const env = useEnv({
    nodes: 3,
    nodeArgs: { 2: ['--hello-timeout-ms', '300', '--visitor-rate', '1', '--visitor-burst', '6', '--rate-strikes', '3'] },
});

const cmid = () => `cm-${rnd(6)}`;
const isMsg = (cid, pred = () => true) => (f) => f.type === 'message.created' && f.conversation_id === cid && pred(f.message);

let pair = null;
/** The healthy pair exchanges one message each way (created on first use). */
async function healthyExchange() {
    if (!pair) pair = await env.chat({ vNode: 0, aNode: 1 });
    const { a, v, cid } = pair;
    const m1 = (await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'still fine?' })).message;
    await a.waitFor(isMsg(cid, (m) => m.seq === m1.seq), { what: 'healthy visitor→agent' });
    const m2 = (await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'yes' })).message;
    await v.waitFor(isMsg(cid, (m) => m.seq === m2.seq), { what: 'healthy agent→visitor' });
    assert.equal(m2.seq, m1.seq + 1);
    assertOrdered(a, cid);
    assertOrdered(v, cid);
    assert.ok(env.nodes.every((n) => n.running), 'every node still runs');
}

let site = null;
/** A fresh visitor on node 1 with its own conversation: the connection that misbehaves. */
async function offender(node = 0) {
    site = site ?? (await env.addSite());
    const c = await env.visitor(node, { site, label: 'offender' });
    const s = await c.ok({ type: 'conversation.start', form: { message: 'hi' } });
    c.cid = s.conversation.id;
    return c;
}

/** Sends raw text, expects an error bad_request (no rid needed) and an open connection. */
async function expectBadRequest(c, raw, what) {
    const m = c.mark();
    c.sendRaw(raw, { binary: false });
    const e = await c.waitFor((f) => f.type === 'error', { from: m, what: `error for ${what}` });
    assertError(e, 'bad_request', what);
    assert.equal(typeof e.message, 'string');
    // Still open and working.
    const h = await c.request({ type: 'history', conversation_id: c.cid });
    assert.equal(h.type, 'ok', `${what}: connection works afterwards: ${JSON.stringify(h)}`);
}

async function expectClose(c, code, what) {
    const cl = await c.waitClose(10_000);
    assert.equal(cl.code, code, `${what}: close code`);
}

it('healthy pair works before anything else', async () => {
    await healthyExchange();
});

it('invalid JSON: error bad_request, connection stays open', async () => {
    const c = await offender();
    for (const raw of ['{"type": "message.send", ', 'not json at all', '', '{"type":"typing",}', "{'type':'typing'}", '{"type":"typing","conversation_id":"a\\u0000b"}'])
        await expectBadRequest(c, raw, `invalid JSON ${JSON.stringify(raw)}`);
    await healthyExchange();
});

it('a JSON value that is not an object: bad_request, open', async () => {
    const c = await offender();
    for (const raw of ['[1,2,3]', '"hello"', '42', 'null', 'true', '[{"type":"typing"}]'])
        await expectBadRequest(c, raw, `non-object ${raw}`);
    await healthyExchange();
});

it('unknown, missing or non-string type: bad_request (echoing the rid), open', async () => {
    const c = await offender();
    const r = await c.request({ type: 'no.such.type', rid: 'u1' });
    assertError(r, 'bad_request', 'unknown type');
    assert.equal(r.rid, 'u1');
    await expectBadRequest(c, JSON.stringify({ rid: 'm1', conversation_id: c.cid }), 'missing type');
    await expectBadRequest(c, JSON.stringify({ type: 42, rid: 'n1' }), 'numeric type');
    await expectBadRequest(c, JSON.stringify({ type: '' }), 'empty type');
    // hello again after hello is not accepted either (it is not a new session).
    const again = await c.request({ type: 'hello', site: site.key });
    assert.equal(again.type, 'error', `second hello: ${JSON.stringify(again)}`);
    await healthyExchange();
});

it('JSON nested deeper than max_json_depth: bad_request, open', async () => {
    const c = await offender();
    let deep = '1';
    for (let i = 0; i < 12; i++) deep = `[${deep}]`;
    await expectBadRequest(c, `{"type":"typing","conversation_id":"${c.cid}","x":${deep}}`, 'depth 13');
    let obj = '{}';
    for (let i = 0; i < 10; i++) obj = `{"a":${obj}}`;
    await expectBadRequest(c, `{"type":"history","conversation_id":"${c.cid}","x":${obj}}`, 'nested objects');
    // A JSON bomb: 30,000 open brackets (under the frame limit) is rejected quickly.
    await expectBadRequest(c, '['.repeat(30_000) + ']'.repeat(30_000), 'bracket bomb');
    await expectBadRequest(c, '{"type":"typing","x":' + '['.repeat(30_000), 'unterminated bracket bomb');
    await healthyExchange();
});

it('rid longer than 64 bytes or not a string: bad_request, open', async () => {
    const c = await offender();
    await expectBadRequest(c, JSON.stringify({ type: 'history', rid: 'r'.repeat(65), conversation_id: c.cid }), 'rid of 65 bytes');
    await expectBadRequest(c, JSON.stringify({ type: 'history', rid: 12345, conversation_id: c.cid }), 'numeric rid');
    const ok = await c.request({ type: 'history', rid: 'r'.repeat(64), conversation_id: c.cid });
    assert.equal(ok.type, 'ok', 'a 64-byte rid is fine');
    assert.equal(ok.rid, 'r'.repeat(64));
    await healthyExchange();
});

it('binary frame: close 1003', async () => {
    const c = await offender();
    c.sendRaw(Buffer.from(JSON.stringify({ type: 'history', conversation_id: c.cid })), { binary: true });
    await expectClose(c, 1003, 'binary');
    await healthyExchange();
});

it('invalid UTF-8 in a text frame: close 1007', async () => {
    const c = await offender();
    c.sendRaw(Buffer.from([0x7b, 0x22, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false });
    await expectClose(c, 1007, 'invalid UTF-8');
    // An overlong encoding and a lone surrogate are invalid too.
    for (const bytes of [[0x22, 0xc0, 0xaf, 0x22], [0x22, 0xed, 0xa0, 0x80, 0x22]]) {
        const d = await offender();
        d.sendRaw(Buffer.from(bytes), { binary: false });
        await expectClose(d, 1007, `invalid UTF-8 ${bytes.map((b) => b.toString(16)).join(' ')}`);
    }
    await healthyExchange();
});

it('a frame over max_frame (64 KiB): close 1009; a large frame under it is just too_large', async () => {
    const c = await offender();
    const under = JSON.stringify({ type: 'message.send', rid: 'big', conversation_id: c.cid, client_msg_id: cmid(), body: 'x'.repeat(60_000) });
    assert.ok(under.length < 65_536);
    c.sendRaw(under);
    const r = await c.waitFor((f) => f.rid === 'big', { what: 'reply to a 60 KB frame' });
    assertError(r, 'too_large', '60 KB body');
    const over = JSON.stringify({ type: 'message.send', conversation_id: c.cid, client_msg_id: cmid(), body: 'x'.repeat(70_000) });
    c.sendRaw(over);
    await expectClose(c, 1009, 'oversize frame');
    // Also when the message arrives in fragments.
    const d = await offender();
    const big = Buffer.from(JSON.stringify({ type: 'message.send', conversation_id: d.cid, client_msg_id: cmid(), body: 'y'.repeat(80_000) }));
    for (let i = 0; i < big.length; i += 16_384)
        d.ws.send(big.subarray(i, i + 16_384), { binary: false, fin: i + 16_384 >= big.length });
    await expectClose(d, 1009, 'fragmented oversize message');
    await healthyExchange();
});

it('a frame before hello: error, then close 4400', async () => {
    const c = await env.connect(0, 'visitor');
    c.send({ type: 'message.send', rid: 'early', conversation_id: 'c_x', client_msg_id: cmid(), body: 'hi' });
    const e = await c.waitFor((f) => f.type === 'error', { what: 'error before close 4400' }).catch((err) => err);
    assert.ok(!(e instanceof Error), `an error frame precedes the close: ${e.message ?? ''}`);
    assert.equal(e.type, 'error');
    await expectClose(c, 4400, 'frame before hello');
    // Garbage as the first frame is a protocol violation too (or a bad_request).
    const d = await env.connect(1, 'visitor');
    d.sendRaw('garbage', { binary: false });
    const first = await d.waitFor((f) => f.type === 'error');
    assert.equal(first.type, 'error');
    await healthyExchange();
});

it('no hello within hello_timeout (300 ms on node 3): close 4408', async () => {
    const t0 = Date.now();
    const c = await env.connect(2, 'visitor');
    const cl = await c.waitClose(10_000);
    const dt = Date.now() - t0;
    assert.equal(cl.code, 4408);
    assert.ok(dt >= 250, `closed after ${dt} ms, not before the timeout`);
    // An agent connection too.
    const d = await env.connect(2, 'agent');
    assert.equal((await d.waitClose(10_000)).code, 4408);
    // A prompt hello on the same node is fine, and stays fine after the timeout.
    const v = await env.visitor(2, { site: site ?? (site = await env.addSite()) });
    const s = await v.ok({ type: 'conversation.start', form: {} });
    await new Promise((r) => setTimeout(r, 600)); // twice the hello timeout: the session must not be reaped
    const h = await v.request({ type: 'history', conversation_id: s.conversation.id });
    assert.equal(h.type, 'ok', 'a session that said hello is not closed by the hello timer');
    await healthyExchange();
});

it('Origin not allowed on /ws/visitor: HTTP 403 before the upgrade', async () => {
    site = site ?? (await env.addSite());
    const other = await env.addSite({ origins: ['http://127.0.0.1:4999'] });
    const n = env.nodes[0];
    const cases = [
        ['http://evil.example', ''],
        ['http://localhost:3000.evil.com', ''],
        ['http://localhost:3001', ''],
        ['https://localhost:3000', ''],
        ['http://localhost', ''],
        ['null', ''],
        [null, ''], // no Origin header at all
        [ORIGIN, `?site=${other.key}`], // allowed for some site, but not the named one
    ];
    for (const [origin, query] of cases) {
        const err = await Client.open(`${n.url}/ws/visitor${query}`, { origin }).then(
            (c) => {
                c.terminate();
                return null;
            },
            (e) => e,
        );
        assert.ok(err, `origin ${origin}${query}: upgrade must be refused`);
        assert.equal(err.status, 403, `origin ${origin}${query}: ${err.message}`);
    }
    // The allowed origin (with and without ?site) still upgrades.
    (await Client.open(`${n.url}/ws/visitor`, { origin: ORIGIN })).terminate();
    (await Client.open(`${n.url}/ws/visitor?site=${site.key}`, { origin: ORIGIN })).terminate();
    await healthyExchange();
});

it('one bad connection of each kind at once does not disturb the healthy pair', async () => {
    const cs = await Promise.all([offender(0), offender(1), offender(0), offender(1)]);
    cs[0].sendRaw(Buffer.from([1, 2, 3]), { binary: true });
    cs[1].sendRaw(Buffer.from([0x22, 0xff, 0x22]), { binary: false });
    cs[2].sendRaw('x'.repeat(70_000));
    cs[3].sendRaw('{{{{', { binary: false });
    await Promise.all([expectClose(cs[0], 1003, 'binary'), expectClose(cs[1], 1007, 'utf8'), expectClose(cs[2], 1009, 'size')]);
    await cs[3].waitFor((f) => f.type === 'error');
    await healthyExchange();
});

it('rate limit: beyond the burst requests get rate_limited, repeated strikes close 4429', async () => {
    const c = await offender(2); // hello + conversation.start used 2 of the 6 tokens
    // Within the burst requests pass.
    for (let i = 0; i < 2; i++) await c.ok({ type: 'history', conversation_id: c.cid });
    const from = c.mark();
    // A flood: rate_limited errors, then close 4429 after rate_strikes (3) in a row.
    for (let i = 0; i < 12; i++) c.send({ type: 'history', rid: `rl${i}`, conversation_id: c.cid });
    const cl = await c.waitClose(10_000).catch((e) => e);
    assert.ok(!(cl instanceof Error), `closed after repeated strikes: ${cl.message ?? ''}`);
    assert.equal(cl.code, 4429);
    const replies = c.frames.slice(from);
    const oks = replies.filter((f) => f.type === 'ok').length;
    assert.ok(oks <= 4, `the flood was limited (${oks} of 12 answered ok)`);
    const limited = replies.filter((f) => f.type === 'error' && f.code === 'rate_limited');
    assert.ok(limited.every((f) => typeof f.rid === 'string' && f.rid.startsWith('rl')), 'rate_limited errors echo the rid');
    // The errors queued just before the close may be lost with it; say so when it happens.
    if (limited.length === 0) console.log('note: no rate_limited error frame arrived before close 4429');
    await healthyExchange();
});
