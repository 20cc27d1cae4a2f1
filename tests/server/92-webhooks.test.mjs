// Webhooks (docs/api.md "Webhooks"): signed deliveries checked by an independent
// receiver (node:http on loopback, allowed explicitly by the operator's
// webhook_allow_hosts), a retry after a 500 with the same delivery id, refusal of
// loopback/private/link-local addresses that are not allowed (the receiver never sees
// them; the log says why), URL validation, rule.webhook events, redelivery.
import crypto from 'node:crypto';
import http from 'node:http';
import { after } from 'node:test';
import { useEnv, it, assert, waitUntil, redisCommand, WAIT, SCALE } from './harness.mjs';

/** A webhook receiver: records every request; answers with the queued statuses, then 200. */
function receiver() {
    const r = { requests: [], statuses: [] };
    r.server = http.createServer((req, res) => {
        const chunks = [];
        req.on('data', (d) => chunks.push(d));
        req.on('end', () => {
            r.requests.push({ method: req.method, url: req.url, headers: req.headers, raw: Buffer.concat(chunks).toString('utf8'), at: Date.now() });
            const status = r.statuses.length ? r.statuses.shift() : 200;
            res.writeHead(status, { 'content-type': 'text/plain' });
            res.end(status === 200 ? 'thanks' : 'try later');
        });
    });
    return new Promise((res) => r.server.listen(0, '127.0.0.1', () => {
        r.port = r.server.address().port;
        res(r);
    }));
}
const allowed = await receiver();
const stranger = await receiver(); // not in the allow list: must never be reached
// holds every request without answering until told (requests in flight when a node dies)
const slow = { requests: [], held: [] };
slow.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
        slow.requests.push({ headers: req.headers, raw: Buffer.concat(chunks).toString('utf8') });
        if (slow.answer) res.end('ok');
        else slow.held.push(res);
    });
});
await new Promise((res) => slow.server.listen(0, '127.0.0.1', res));
slow.port = slow.server.address().port;
// answers every request with a redirect to an internal address (RELIABILITY S10)
const redirector = { requests: [], n: 0 };
redirector.server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
        redirector.requests.push({ headers: req.headers, at: Date.now() });
        const to = [`http://127.0.0.1:${stranger.port}/stolen`, 'http://169.254.169.254/latest/meta-data/', `http://[::1]:${stranger.port}/`][redirector.n++ % 3];
        res.writeHead([302, 307, 308][redirector.n % 3], { location: to });
        res.end();
    });
});
await new Promise((res) => redirector.server.listen(0, '127.0.0.1', res));
redirector.port = redirector.server.address().port;
after(() => {
    redirector.server.close();
    for (const r of slow.held) r.destroy();
    allowed.server.close();
    stranger.server.close();
    slow.server.close();
});

const ARGS = ['--webhook-allow-hosts', `127.0.0.1:${allowed.port}, 127.0.0.1:${slow.port}, 127.0.0.1:${redirector.port}`, '--webhook-retry-base-ms', '200',
    '--webhook-max-attempts', '3', '--webhook-timeout-ms', '1500'];
// Node 2 lets an operator-style allow list through at creation (every internal host of the
// tests below) and never claims a delivery in this file (first poll after 60 s): a URL
// created there is delivered by node 1, whose check at connect time must refuse it.
const LAX = ['--webhook-allow-hosts', '127.0.0.1, localhost, [::1], ::ffff:127.0.0.1, 10.0.0.1, 169.254.169.254', '--event-poll-ms', '60000'];
const env = useEnv({ nodes: 2, nodeArgs: { 0: ARGS, 1: [...ARGS.filter((a, i) => i > 1), ...LAX] } });

async function admin(site) {
    const ag = await env.addAgent({ site, role: 'admin' });
    return env.login(0, ag.email, ag.password);
}
const call = (token, method, url, body) => env.http(0, url, { method, body, headers: { authorization: `Bearer ${token}` } });
const callLax = (token, method, url, body) => env.http(1, url, { method, body, headers: { authorization: `Bearer ${token}` } });

/** The receiver's check of one request: the signature over t + "." + raw body. */
function verify(req, secret) {
    const sig = req.headers['x-chatdesk-signature'];
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig || '');
    assert.ok(m, `signature header shape: ${sig}`);
    const expected = crypto.createHmac('sha256', secret).update(`${m[1]}.${req.raw}`).digest();
    assert.ok(crypto.timingSafeEqual(expected, Buffer.from(m[2], 'hex')), 'signature verifies with the secret');
    assert.ok(Math.abs(Number(m[1]) - Date.now() / 1000) < 60, 'timestamp is now');
    assert.equal(req.headers['content-type'], 'application/json');
    const body = JSON.parse(req.raw);
    assert.equal(req.headers['x-chatdesk-delivery'], body.id, 'delivery id header = body id');
    assert.equal(req.headers['x-chatdesk-event'], body.type);
    return body;
}

async function logOf(token, site, wid, pred, what) {
    return waitUntil(async () => {
        const r = await call(token, 'GET', `/api/v1/admin/sites/${site.key}/webhooks/${wid}/deliveries`);
        assert.equal(r.status, 200, r.text);
        return pred(r.json) && r.json;
    }, { timeout: WAIT * 2, what });
}

it('a signed delivery is verified by the receiver; a 500 is retried with the same delivery id; the log shows both', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    let r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks`, { url: `http://127.0.0.1:${allowed.port}/hook?x=1`, events: ['conversation.created'] });
    assert.equal(r.status, 201, r.text);
    const hook = r.json.webhook;
    assert.match(hook.secret, /^whsec_/);
    r = await call(token, 'GET', `/api/v1/admin/sites/${site.key}/webhooks`);
    assert.equal(r.json.webhooks.length, 1);
    assert.equal(r.json.webhooks[0].secret, undefined, 'the secret is shown only on create');

    const before = allowed.requests.length;
    allowed.statuses.push(500);
    const v = await env.visitor(0, { site });
    const start = await v.ok({ type: 'conversation.start', form: { subject: 'Hook me', message: 'hello' } });
    const cid = start.conversation.id;
    await waitUntil(() => allowed.requests.length >= before + 2, { timeout: WAIT * 2, what: 'two attempts at the receiver' });
    const [first, second] = allowed.requests.slice(before);
    assert.equal(first.url, '/hook?x=1');
    const b1 = verify(first, hook.secret);
    const b2 = verify(second, hook.secret);
    assert.equal(first.headers['x-chatdesk-delivery'], second.headers['x-chatdesk-delivery'], 'a retry keeps the delivery id');
    assert.equal(first.headers['x-chatdesk-attempt'], '1');
    assert.equal(second.headers['x-chatdesk-attempt'], '2');
    assert.ok(second.at - first.at >= 150, `retried after the backoff (${second.at - first.at} ms)`);
    assert.equal(b1.type, 'conversation.created');
    assert.equal(b1.site, site.key);
    assert.equal(b1.conversation_id, cid);
    assert.equal(b1.conversation.id, cid);
    assert.equal(b1.data.subject, 'Hook me');
    assert.deepEqual(b1, b2, 'the same body on every attempt');
    // only the subscribed type: the visitor's message.created went nowhere
    assert.ok(allowed.requests.slice(before).every((q) => q.headers['x-chatdesk-event'] === 'conversation.created'));

    const log = await logOf(token, site, hook.id, (j) => j.log.length >= 2 && j.deliveries[0]?.state === 'delivered', 'delivered in the log');
    assert.equal(log.deliveries[0].id, b1.id);
    assert.equal(log.deliveries[0].attempts, 2);
    assert.deepEqual(log.log.map((e) => [e.attempt, e.status, e.ok]), [[2, 200, true], [1, 500, false]]);
    assert.equal(log.log[1].response, 'try later');
    assert.ok(log.log.every((e) => e.delivery === b1.id && e.event === 'conversation.created' && e.duration_ms >= 0));

    // redeliver: the same delivery id and body again
    r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/deliveries/${b1.id}/redeliver`);
    assert.equal(r.status, 202, r.text);
    await waitUntil(() => allowed.requests.length >= before + 3, { what: 'the redelivery' });
    const third = allowed.requests[before + 2];
    assert.equal(third.headers['x-chatdesk-delivery'], b1.id);
    assert.deepEqual(verify(third, hook.secret), b1);

    // rotate the secret: new deliveries are signed with the new one
    r = await call(token, 'PATCH', `/api/v1/admin/sites/${site.key}/webhooks/${hook.id}`, { rotate_secret: true });
    assert.equal(r.status, 200, r.text);
    const secret2 = r.json.webhook.secret;
    assert.ok(secret2 && secret2 !== hook.secret);
    r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks/${hook.id}/test`);
    assert.equal(r.status, 202, r.text);
    await waitUntil(() => allowed.requests.length >= before + 4, { what: 'the ping' });
    const ping = verify(allowed.requests[before + 3], secret2);
    assert.equal(ping.type, 'ping');
    v.terminate();
});

const INTERNAL = (stranger, allowed) => [
    [`http://127.0.0.1:${stranger.port}/`, 'loopback'],
    [`http://localhost:${allowed.port}/`, 'loopback'], // a name resolving to loopback, not the allowed entry
    [`http://[::1]:${stranger.port}/`, 'loopback'],
    [`http://[::ffff:127.0.0.1]:${stranger.port}/`, 'loopback'],
    ['http://10.0.0.1/', 'private'],
    ['http://169.254.169.254/latest/meta-data/', 'link-local'],
];

it('loopback, private and link-local addresses are refused when a webhook is created or changed (400)', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const base = `/api/v1/admin/sites/${site.key}/webhooks`;
    for (const [url, why] of INTERNAL(stranger, allowed)) {
        const r = await call(token, 'POST', base, { url, events: ['*'] });
        assert.equal(r.status, 400, `${url}: ${r.text}`);
        assert.equal(r.json.error.code, 'bad_request');
        assert.match(r.json.error.message, new RegExp(`is a ${why} address`), url);
    }
    // an allowed entry is accepted; changing it to an internal address is refused
    const r = await call(token, 'POST', base, { url: `http://127.0.0.1:${allowed.port}/h`, events: ['*'] });
    assert.equal(r.status, 201, r.text);
    const p = await call(token, 'PATCH', `${base}/${r.json.webhook.id}`, { url: 'http://10.1.2.3/' });
    assert.equal(p.status, 400, p.text);
    const g = await call(token, 'GET', `${base}/${r.json.webhook.id}`);
    assert.equal(g.json.webhook.url, `http://127.0.0.1:${allowed.port}/h`, 'unchanged');
});

it('an internal address that got past creation is refused at connect time; the receiver never sees it', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const cases = INTERNAL(stranger, allowed);
    const seenAllowed = allowed.requests.length;
    const hooks = [];
    for (const [url, why] of cases) {
        const r = await callLax(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks`, { url, events: ['*'] });
        assert.equal(r.status, 201, r.text);
        hooks.push([r.json.webhook.id, url, why]);
        assert.equal((await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks/${r.json.webhook.id}/test`)).status, 202);
    }
    for (const [wid, url, why] of hooks) {
        const j = await logOf(token, site, wid, (x) => x.deliveries[0]?.state === 'failed', `${url} failed`);
        assert.equal(j.log.length, 3, `${url}: three attempts (webhook_max_attempts)`);
        for (const e of j.log) {
            assert.equal(e.ok, false);
            assert.equal(e.status, null);
            assert.match(e.error, new RegExp(`refused: .* is a ${why} address`), `${url}: ${e.error}`);
        }
    }
    assert.equal(stranger.requests.length, 0, 'the unlisted receiver was never reached');
    assert.equal(allowed.requests.length, seenAllowed, 'localhost (not the allowed entry) never reached the allowed receiver');
});

it('a redirect is not followed (S10): a 3xx to loopback, link-local or ::1 is a failed attempt, the target never sees a request', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks`, { url: `http://127.0.0.1:${redirector.port}/hook`, events: ['*'] });
    assert.equal(r.status, 201, r.text);
    const wid = r.json.webhook.id;
    const seenStranger = stranger.requests.length;
    const seenRedirector = redirector.requests.length;
    assert.equal((await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks/${wid}/test`)).status, 202);
    const j = await logOf(token, site, wid, (x) => x.deliveries[0]?.state === 'failed', 'the redirected delivery failed');
    assert.equal(j.log.length, 3, 'every attempt (webhook_max_attempts) was answered by a redirect and failed');
    for (const e of j.log) {
        assert.equal(e.ok, false);
        assert.ok([302, 307, 308].includes(e.status), `attempt ${e.attempt}: status ${e.status}`);
    }
    assert.equal(redirector.requests.length - seenRedirector, 3, 'each attempt went to the configured URL only');
    assert.equal(stranger.requests.length, seenStranger, 'the redirect target was never reached');
});

it('bad URLs, events and callers are refused', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const base = `/api/v1/admin/sites/${site.key}/webhooks`;
    for (const url of ['ftp://example.com/', 'http://', 'https://user:pw@example.com/', 'javascript:alert(1)', 'http://example.com/#x',
        'not a url', 'http://exa mple.com/', 'http://example.com:0/', 'http://example.com:99999/', 'http://.example.com/', 42, null]) {
        const r = await call(token, 'POST', base, { url, events: ['*'] });
        assert.equal(r.status, 400, `${url}: ${r.text}`);
        assert.equal(r.json.error.code, 'bad_request');
    }
    for (const events of [[], ['nope.event'], 'conversation.created', [1]]) {
        const r = await call(token, 'POST', base, { url: 'https://example.com/h', events });
        assert.equal(r.status, 400, `${JSON.stringify(events)}: ${r.text}`);
    }
    let r = await call(token, 'POST', base, { url: 'https://example.com/h', events: ['ticket.created'], enabled: false });
    assert.equal(r.status, 201, r.text);
    const wid = r.json.webhook.id;
    r = await call(token, 'PATCH', `${base}/${wid}`, { url: 'gopher://x' });
    assert.equal(r.status, 400);
    // an agent is not an admin; another site's admin does not see the site
    const ag = await env.addAgent({ site });
    const agentTok = await env.login(0, ag.email, ag.password);
    assert.equal((await call(agentTok, 'GET', base)).status, 403);
    const other = await env.addSite();
    const otherTok = await admin(other);
    assert.equal((await call(otherTok, 'GET', base)).status, 404);
    assert.equal((await call(otherTok, 'GET', `/api/v1/admin/sites/${other.key}/webhooks/${wid}`)).status, 404);
    r = await call(token, 'DELETE', `${base}/${wid}`);
    assert.equal(r.status, 200);
    assert.equal((await call(token, 'GET', `${base}/${wid}`)).status, 404);
});

it('a rule.webhook event goes to exactly the named webhook, whatever it subscribes to', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const mk = async (events) => (await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks`, { url: `http://127.0.0.1:${allowed.port}/rule`, events })).json.webhook;
    const target = await mk(['csat.submitted']);
    await mk(['csat.submitted']); // another webhook of the site: not called
    const before = allowed.requests.length;
    // what the rules engine appends (docs/keyspace.md "Events"): t rule.webhook, d {rule, webhook}
    await redisCommand(env.redis.sock, ['XADD', `cd:{s:${site.key}}:events`, '*', 't', 'rule.webhook', 's', site.key, 'c', '', 'ts', String(Date.now()),
        'by', 'rule:r1', 'd', JSON.stringify({ rule: 'r1', webhook: target.id })]);
    await redisCommand(env.redis.sock, ['SET', `cd:{s:${site.key}}:events:armed`, '1']); // as emit arms the site
    await redisCommand(env.redis.sock, ['PUBLISH', 'cd:ch:events', `0 * -\nE ${site.key}`]); // and tells the nodes
    await waitUntil(() => allowed.requests.length > before, { what: 'the rule.webhook delivery' });
    const body = verify(allowed.requests[before], target.secret);
    assert.equal(body.type, 'rule.webhook');
    assert.deepEqual(body.data, { rule: 'r1', webhook: target.id });
    assert.equal(body.by, 'rule:r1');
    await new Promise((res) => setTimeout(res, 600)); // a wrongly addressed copy would have come by now
    assert.equal(allowed.requests.length, before + 1, 'only the named webhook');
});

it('idle sites cost no claim per poll: a node claims a site only when a delivery may be due (issue 13 item 4)', async () => {
    // 40 sites without webhooks; node 1 polls every event_poll_ms (250 ms). Claiming every
    // site at every poll would be 40 x 12 = 480 calls in 3 s; the gauges (every 15 s) and
    // the site cache (every 30 s) make at most 40 each in that window.
    for (let i = 0; i < 40; i++) await env.addSite({ probe: false });
    const site = await env.addSite(); // probes: the nodes know every site by now
    await new Promise((r) => setTimeout(r, 1500)); // the first claims of the new sites
    const fcalls = async () => Number(/cmdstat_fcall:calls=(\d+)/.exec(await env.redis.cmd('INFO', 'commandstats'))?.[1] ?? 0);
    const c0 = await fcalls();
    await new Promise((r) => setTimeout(r, 3000));
    const idle = (await fcalls()) - c0;
    assert.ok(idle < 120, `${idle} function calls in 3 s of idle for 41 sites`);
    // and an idle site's delivery still goes out at once (the queuing announces it)
    const token = await admin(site);
    let r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks`, { url: `http://127.0.0.1:${allowed.port}/idle`, events: ['conversation.created'] });
    assert.equal(r.status, 201, r.text);
    const before = allowed.requests.length;
    const t0 = Date.now();
    r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks/${r.json.webhook.id}/test`);
    assert.equal(r.status, 202, r.text);
    await waitUntil(() => allowed.requests.slice(before).some((q) => q.url === '/idle'), { what: 'the ping of an idle site' });
    assert.ok(Date.now() - t0 < 2000 * SCALE, `delivered ${Date.now() - t0} ms after it was queued`);
});

it('at-least-once: a node killed mid-request leaves the delivery to another node, same delivery id', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    let r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks`, { url: `http://127.0.0.1:${slow.port}/slow`, events: ['ticket.created'] });
    const hook = r.json.webhook;
    slow.answer = false;
    const before = slow.requests.length;
    r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/webhooks/${hook.id}/test`);
    assert.equal(r.status, 202);
    await waitUntil(() => slow.requests.length > before, { what: 'the request in flight' });
    const first = slow.requests[before];
    await env.nodes[0].kill9(); // no result recorded: the claim's lease (2 x 1.5 s + 5 s) runs out
    slow.answer = true;
    await env.addNode(ARGS);
    const n = env.nodes.length - 1;
    await waitUntil(() => slow.requests.length > before + 1, { timeout: 20_000 * SCALE, what: 'the delivery sent again by the new node' });
    const again = slow.requests[before + 1];
    assert.equal(again.headers['x-chatdesk-delivery'], first.headers['x-chatdesk-delivery']);
    assert.equal(again.headers['x-chatdesk-attempt'], '2');
    assert.equal(again.raw, first.raw);
    verify(again, hook.secret);
    r = await waitUntil(async () => {
        const x = await env.http(n, `/api/v1/admin/sites/${site.key}/webhooks/${hook.id}/deliveries`, { headers: { authorization: `Bearer ${token}` } });
        return x.json.deliveries[0]?.state === 'delivered' && x;
    }, { what: 'delivered' });
    assert.equal(r.json.deliveries[0].attempts, 2);
    // and a request still in flight when the node is stopped (SIGTERM at the end of the
    // file): the worker shuts down cleanly (the sanitizer build checks for leaks)
    slow.answer = false;
    const k = slow.requests.length;
    await env.http(n, `/api/v1/admin/sites/${site.key}/webhooks/${hook.id}/test`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    await waitUntil(() => slow.requests.length > k, { what: 'a request left in flight' });
});

