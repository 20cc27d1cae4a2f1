// Slow and oversized request heads (security issue, finding 3 and two items of 8): about
// 256 half-open requests from one address used to take every lws header slot, so
// /healthz and new upgrades from anyone waited 9-10 s; a head over the header buffer was
// dropped without an answer. Now the node reads each new connection's head itself
// (server/server/door.c): a client address may have max_pending_per_ip connections still
// sending their head (more are answered 429 at once), a head must be complete within
// header_timeout_s (408, then closed), and a head over max_header_bytes or with too many
// lines is answered 431 with a JSON body at once. A chunked request body is answered 411
// at once instead of waiting 10 s for a body lws cannot read.
import net from 'node:net';
import WebSocket from 'ws';
import { useEnv, it, assert, httpRequest, waitUntil, ORIGIN, SCALE } from './harness.mjs';

const PENDING_PER_IP = 32;
const HEADER_TIMEOUT_S = 2;
const env = useEnv({
    nodes: 1,
    args: ['--max-pending-per-ip', String(PENDING_PER_IP), '--header-timeout-s', String(HEADER_TIMEOUT_S)],
});

/** A connection that sends part of a request head and then nothing; records what comes back. */
function halfOpen(port, localAddress) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port, localAddress });
        const h = { s, data: '', closed: false, closedAt: 0 };
        s.on('data', (d) => (h.data += d));
        s.on('error', () => {});
        s.on('close', () => {
            h.closed = true;
            h.closedAt = Date.now();
        });
        s.once('connect', () => {
            s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n');
            resolve(h);
        });
        s.once('error', reject);
    });
}

/** Sends raw bytes, resolves {status, text, ms} from the first answer (or the close). */
function raw(port, bytes, { localAddress } = {}) {
    return new Promise((resolve) => {
        const t0 = Date.now();
        const s = net.connect({ host: '127.0.0.1', port, localAddress });
        let text = '';
        const done = () => {
            s.destroy();
            const m = /^HTTP\/1\.1 (\d+)/.exec(text);
            const body = text.slice(text.indexOf('\r\n\r\n') + 4);
            resolve({ status: m ? Number(m[1]) : 0, text, body, ms: Date.now() - t0 });
        };
        s.on('data', (d) => {
            text += d;
            const i = text.indexOf('\r\n\r\n');
            const len = /content-length: *(\d+)/i.exec(text);
            if (i >= 0 && len && text.length >= i + 4 + Number(len[1])) done();
        });
        s.on('error', () => {});
        s.on('close', done);
        s.once('connect', () => s.write(bytes));
        setTimeout(done, 15_000 * SCALE).unref();
    });
}

it('300 half-open requests from one address: /healthz and an upgrade from another address answer at once', async () => {
    const site = await env.addSite();
    const port = env.nodes[0].port;
    const slow = [];
    for (let i = 0; i < 300; i++) slow.push(await halfOpen(port, '127.0.0.1'));
    const t0 = Date.now();
    // beyond its cap the address is answered 429 at once
    await waitUntil(() => slow.filter((h) => h.data.startsWith('HTTP/1.1 429')).length >= 300 - PENDING_PER_IP, {
        what: 'the connections over max_pending_per_ip answered 429',
    });
    const refused = slow.filter((h) => h.data.startsWith('HTTP/1.1 429'));
    assert.equal(refused.length, 300 - PENDING_PER_IP);
    assert.equal(JSON.parse(refused[0].data.slice(refused[0].data.indexOf('\r\n\r\n') + 4)).error.code, 'rate_limited');

    // another address is served at once
    const h0 = Date.now();
    const hz = await httpRequest(`${env.nodes[0].httpUrl}/healthz`, { localAddress: '127.0.0.2' });
    const healthMs = Date.now() - h0;
    assert.equal(hz.status, 200);
    assert.ok(healthMs < 500 * SCALE, `/healthz took ${healthMs} ms during the attack`);
    const u0 = Date.now();
    const ws = await new Promise((resolve, reject) => {
        const w = new WebSocket(`${env.nodes[0].url}/ws/visitor?site=${site.key}`, { origin: ORIGIN, localAddress: '127.0.0.3' });
        w.once('open', () => resolve(w));
        w.once('error', reject);
    });
    const upgradeMs = Date.now() - u0;
    ws.terminate();
    assert.ok(upgradeMs < 500 * SCALE, `the upgrade took ${upgradeMs} ms during the attack`);

    // the half-open ones are answered 408 and closed after the head deadline (+ linger 1 s)
    const held = slow.filter((h) => !h.data.startsWith('HTTP/1.1 429'));
    assert.equal(held.length, PENDING_PER_IP);
    await waitUntil(() => held.every((h) => h.closed), {
        timeout: (HEADER_TIMEOUT_S + 3) * 1000 * SCALE,
        what: 'the half-open requests closed',
    });
    for (const h of held) {
        assert.match(h.data, /^HTTP\/1\.1 408 /);
        assert.ok(h.closedAt - t0 >= (HEADER_TIMEOUT_S - 1) * 1000, 'not closed before the deadline');
    }
    for (const h of slow) h.s.destroy();
    const m = await env.http(0, '/metrics');
    assert.match(m.text, new RegExp(`chatdesk_request_heads_refused_total\\{by="address"\\} ${300 - PENDING_PER_IP}\\b`));
    assert.match(m.text, new RegExp(`chatdesk_request_heads_refused_total\\{by="timeout"\\} ${PENDING_PER_IP}\\b`));
    // the address is served again
    const again = await httpRequest(`${env.nodes[0].httpUrl}/healthz`, { localAddress: '127.0.0.1' });
    assert.equal(again.status, 200);
});

it('a request head over max_header_bytes, or with too many lines, is answered 431 with a JSON body at once', async () => {
    const port = env.nodes[0].port;
    const big = await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.equal(big.status, 431);
    assert.equal(JSON.parse(big.body).error.code, 'too_large');
    assert.ok(big.ms < 1000 * SCALE, `431 after ${big.ms} ms`);
    // the head is complete but its lines would not fit lws's header table
    let many = 'GET /healthz HTTP/1.1\r\nHost: x\r\n';
    for (let i = 0; i < 100; i++) many += `Accept: a${i}\r\n`;
    const r = await raw(port, `${many}\r\n`);
    assert.equal(r.status, 431);
    assert.equal(JSON.parse(r.body).error.code, 'too_large');
    // a head just under the limit is served
    const ok = await raw(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(7000)}\r\n\r\n`);
    assert.equal(ok.status, 200);
});

it('a chunked request body is answered 411 at once', async () => {
    const port = env.nodes[0].port;
    const head =
        'POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n';
    const r = await raw(port, `${head}5\r\n{"a":\r\n`);
    assert.equal(r.status, 411);
    assert.equal(JSON.parse(r.body).error.code, 'bad_request');
    assert.ok(r.ms < 1000 * SCALE, `411 after ${r.ms} ms`);
    // a body without a length is refused the same way
    const n = await raw(port, 'PATCH /api/v1/agents/a_x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\n\r\n{}');
    assert.equal(n.status, 411);
});

it('a NUL (raw or %00) or control character in the request target is answered 400 with a JSON body (lws dropped it)', async () => {
    const port = env.nodes[0].port;
    for (const target of ['/api/v1/visitors/a%00b', '/healthz%00', '/a\x01b', '/a\x00b']) {
        const r = await raw(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.equal(r.status, 400, JSON.stringify(target));
        assert.equal(JSON.parse(r.body).error.code, 'bad_request');
    }
    const m = await env.http(0, '/metrics');
    assert.match(m.text, /chatdesk_request_heads_refused_total\{by="malformed"\} 4\b/);
    // %0A-style encodings of other bytes are fine: they are the API's to judge
    assert.equal((await raw(port, 'GET /healthz?x=%41 HTTP/1.1\r\nHost: x\r\n\r\n')).status, 200);
});
