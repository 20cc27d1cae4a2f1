// Anonymous traffic is bounded (security issue, finding 2; ARCHITECTURE invariants 8 and
// 9): a connect -> hello -> close loop from one address is cut by the per-address rate of
// new connections (conn_rate_per_ip, 429 JSON), leaves no key in Redis at all (an
// anonymous visitor has no record before its first conversation), and Redis memory stays
// at its baseline. Another address is not affected, and a visitor's token still brings
// back the same visitor, whose first conversation writes its record with the hello's
// profile.
import WebSocket from 'ws';
import { useEnv, it, assert, sleep, ORIGIN, WAIT } from './harness.mjs';

const RATE = 20;
const BURST = 50;
const env = useEnv({ nodes: 1, args: ['--conn-rate-per-ip', String(RATE), '--conn-burst-per-ip', String(BURST)] });

/** One connect -> hello -> close from localAddress; resolves 'welcome', an HTTP status, or 'error'. */
function helloOnce(site, localAddress, hello = {}) {
    return new Promise((resolve) => {
        const ws = new WebSocket(`${env.nodes[0].url}/ws/visitor`, { origin: ORIGIN, localAddress, handshakeTimeout: WAIT });
        let done = false;
        const finish = (v) => {
            if (done) return;
            done = true;
            ws.terminate();
            resolve(v);
        };
        ws.on('unexpected-response', (req, res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => finish({ status: res.statusCode, body }));
        });
        ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', rid: 'h', site, ...hello })));
        ws.on('message', (d) => {
            const f = JSON.parse(d.toString());
            finish(f.type === 'welcome' ? { welcome: f } : { frame: f });
        });
        ws.on('error', () => finish({ error: true }));
        setTimeout(() => finish({ timeout: true }), WAIT);
    });
}

async function visitorKeys() {
    return (await env.redis.cmd('KEYS', '*visitor:*')).sort();
}
async function usedMemory() {
    const info = await env.redis.cmd('INFO', 'memory');
    return Number(/used_memory:(\d+)/.exec(info)[1]);
}

it('a hello flood from one address is rate limited and leaves nothing in Redis', async () => {
    const site = await env.addSite({ probe: false });
    await sleep(1000); // the node learns the site through pub/sub; the bucket refills
    const keysBefore = await visitorKeys();
    const dbBefore = await env.redis.cmd('DBSIZE');
    const memBefore = await usedMemory();
    const t0 = Date.now();
    const seconds = 3;
    let welcomed = 0;
    let refused = 0;
    let other = 0;
    let body = '';
    while (Date.now() - t0 < seconds * 1000) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => helloOnce(site.key, '127.0.0.1')));
        for (const r of batch) {
            if (r.welcome) welcomed++;
            else if (r.status === 429) {
                refused++;
                body = r.body;
            } else other++;
        }
    }
    const elapsed = (Date.now() - t0) / 1000;
    // the bucket: BURST at once, then RATE a second (slack for the clock and the batch)
    assert.ok(welcomed <= BURST + RATE * (elapsed + 1), `${welcomed} hellos in ${elapsed} s`);
    assert.ok(welcomed >= BURST, `the burst is served (${welcomed})`);
    assert.ok(refused > 0, 'the flood was refused');
    assert.equal(other, 0, 'every attempt was welcomed or refused with 429');
    assert.equal(JSON.parse(body).error.code, 'rate_limited');
    // no visitor record, no key at all, memory at its baseline
    assert.deepEqual(await visitorKeys(), keysBefore);
    assert.equal(await env.redis.cmd('DBSIZE'), dbBefore);
    const memAfter = await usedMemory();
    assert.ok(memAfter - memBefore < 1024 * 1024, `Redis memory grew by ${memAfter - memBefore} bytes`);
    // during the flood's aftermath another address is served at once
    const r = await helloOnce(site.key, '127.0.0.2');
    assert.ok(r.welcome, `another address: ${JSON.stringify(r)}`);
    // the counter says what happened
    const m = await env.http(0, '/metrics');
    const refusedMetric = Number(/chatdesk_upgrades_rate_limited_total (\d+)/.exec(m.text)[1]);
    assert.ok(refusedMetric >= refused, `metric ${refusedMetric} >= ${refused}`);
});

it("an anonymous visitor's token brings it back; its first conversation writes its record", async () => {
    const site = await env.addSite({ probe: false });
    await sleep(1200); // refill after the flood above
    const page = { url: 'https://shop.example/cart', title: 'Cart', referrer: 'https://search.example/' };
    const first = await helloOnce(site.key, '127.0.0.3', { page, attributes: { plan: 'pro' } });
    assert.ok(first.welcome, JSON.stringify(first));
    const vid = first.welcome.visitor.id;
    assert.equal(await env.redis.cmd('EXISTS', `cd:{s:${site.key}}:visitor:${vid}`), 0, 'no record before a conversation');
    // the token restores the same visitor, still with no record
    const again = await helloOnce(site.key, '127.0.0.3', { token: first.welcome.token });
    assert.equal(again.welcome.visitor.id, vid);
    assert.equal(await env.redis.cmd('EXISTS', `cd:{s:${site.key}}:visitor:${vid}`), 0);
    // a connection that starts a conversation: the record appears, with the hello's profile
    const v = await env.visitor(0, { site, token: first.welcome.token });
    assert.equal(v.visitorId, vid);
    const c = await env.connect(0, 'visitor');
    const w = await c.request({ type: 'hello', site: site.key, token: first.welcome.token, page, attributes: { plan: 'pro' } });
    assert.equal(w.visitor.id, vid);
    const start = await c.ok({ type: 'conversation.start', form: { subject: 'Hi', message: 'Where is my order?' } });
    assert.ok(start.conversation.id);
    assert.equal(await env.redis.cmd('HGET', `cd:{s:${site.key}}:visitor:${vid}`, 'site'), site.key);
    assert.equal(await env.redis.cmd('HGET', `cd:{s:${site.key}}:visitor:${vid}`, 'page_url'), page.url);
    assert.deepEqual(JSON.parse(await env.redis.cmd('HGET', `cd:{s:${site.key}}:visitor:${vid}`, 'attributes')), { plan: 'pro' });
    // and the next hello with the token lists the conversation
    const later = await helloOnce(site.key, '127.0.0.3', { token: first.welcome.token });
    assert.equal(later.welcome.visitor.id, vid);
    assert.deepEqual(later.welcome.conversations.map((x) => x.id), [start.conversation.id]);
    v.close();
    c.close();
});
