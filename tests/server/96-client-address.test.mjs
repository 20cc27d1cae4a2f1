// Client addresses and per-client limits (docs/config.md: trusted_proxies,
// max_conns_per_ip, public_api_rate/burst). Node 1 trusts 127.0.0.1 as a load balancer:
// its X-Forwarded-For names the client. Node 2 trusts nobody: a forged X-Forwarded-For
// changes nothing. Both allow one WebSocket per client and 2 public API requests in a
// burst (1 per second after that).
import net from 'node:net';
import { useEnv, it, assert, sleep } from './harness.mjs';

const LIMITS = ['--max-conns-per-ip', '1', '--public-api-rate', '1', '--public-api-burst', '2'];
const env = useEnv({ nodes: 2, nodeArgs: [[...LIMITS, '--trusted-proxies', '127.0.0.1'], LIMITS] });

const xff = (addr) => ({ 'x-forwarded-for': addr });

async function refused(promise) {
    try {
        const c = await promise;
        c.close?.();
        return null;
    } catch (e) {
        return e.status ?? 'error';
    }
}

it('behind a trusted proxy, the connection cap counts each X-Forwarded-For client', async () => {
    await env.addSite(); // its origin is one the nodes accept
    const a = await env.connect(0, 'visitor', { headers: xff('203.0.113.7') });
    // another client through the same proxy: its own count
    const b = await env.connect(0, 'visitor', { headers: xff('198.51.100.1, 203.0.113.8') });
    // the same client again: over its cap of 1
    assert.equal(await refused(env.connect(0, 'visitor', { headers: xff('10.9.9.9, 203.0.113.7') })), 429);
    a.close();
    b.close();
});

it('an untrusted peer cannot pick its address with X-Forwarded-For', async () => {
    const a = await env.connect(1, 'visitor', { headers: xff('203.0.113.7') });
    assert.equal(await refused(env.connect(1, 'visitor', { headers: xff('203.0.113.99') })), 429);
    a.close();
});

it('the public API is rate limited per client address with a JSON 429', async () => {
    const site = await env.addSite();
    const url = `/api/v1/public/sites/${site.key}/kb/search?q=refund`;
    const get = (node, addr) => env.http(node, url, { headers: xff(addr) });
    // node 1: two in the burst, the third refused; another client is not affected
    assert.equal((await get(0, '192.0.2.1')).status, 200);
    assert.equal((await get(0, '192.0.2.1')).status, 200);
    const r = await get(0, '192.0.2.1');
    assert.equal(r.status, 429, r.text);
    assert.equal(JSON.parse(r.text).error.code, 'rate_limited');
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.equal((await get(0, '192.0.2.2')).status, 200);
    // the bucket refills at public_api_rate
    await sleep(1100);
    assert.equal((await get(0, '192.0.2.1')).status, 200);
    // node 2 ignores the forged header: every request is the same client
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await get(1, `192.0.2.${10 + i}`)).status);
    assert.deepEqual(codes, [200, 200, 429]);
});

/** Writes two requests on one socket, the second once the first is answered; returns
 *  what came back and whether the node closed the socket. */
function twoOnOneSocket(port, second) {
    return new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        let text = '';
        let sent = false;
        const finish = (closed) => {
            s.destroy();
            resolve({ text, closed, answers: (text.match(/HTTP\/1\.1 \d+/g) || []).map((x) => Number(x.slice(9))) });
        };
        s.on('data', (d) => {
            text += d;
            if (!sent && /\r\n\r\n\{[^]*\}$/.test(text)) {
                sent = true;
                s.write(second);
                setTimeout(() => finish(false), 1500);
            }
        });
        s.on('error', () => {});
        s.on('end', () => finish(true));
        s.once('connect', () => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
    });
}

it('a direct client gets one request per connection (its next head goes through the front door); a trusted proxy keeps its connection', async () => {
    const big = `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`;
    // direct: answered with "connection: close" and closed, so a second head, here one
    // too large, is never read by lws (which dropped it without an answer); it comes on a
    // new connection, where the door answers it 431
    const direct = await twoOnOneSocket(env.nodes[1].port, big);
    assert.deepEqual(direct.answers, [200]);
    assert.match(direct.text, /\r\nconnection: close\r\n/i);
    assert.equal(direct.closed, true, 'the node closed the connection after its answer');
    const fresh = await new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: env.nodes[1].port });
        let t = '';
        s.on('data', (d) => (t += d));
        s.on('error', () => {});
        s.on('close', () => resolve(t));
        s.once('connect', () => s.write(big));
        setTimeout(() => s.destroy(), 3000).unref();
    });
    assert.match(fresh, /^HTTP\/1\.1 431 /);
    // behind the trusted proxy: both requests on one connection
    const proxied = await twoOnOneSocket(env.nodes[0].port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.deepEqual(proxied.answers, [200, 200]);
    assert.doesNotMatch(proxied.text, /connection: close/i);
    assert.equal(proxied.closed, false);
});
