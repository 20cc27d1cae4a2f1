// API tokens (issue 17 item 4, docs/api.md "API tokens"): long-lived per-site tokens with
// scopes, made by a site's admin, shown once, stored as a SHA-256, used as
// "Authorization: Bearer cdt.<site>.<id>.<secret>" on the routes their scopes cover,
// revoked at once on every node, rate limited per token across nodes, last use kept.
// Node 1 (index 1) allows 5 calls a minute per token and 3 logins (or failed API tokens) a
// minute per address; node 0 the default rate per token and 1000 logins a minute.
import crypto from 'node:crypto';
import { useEnv, it, assert, rnd } from './harness.mjs';

const env = useEnv({ nodes: 2, nodeArgs: [['--login-rate-per-ip', '1000'], ['--api-token-rate-per-min', '5', '--login-rate-per-ip', '3']] });

const call = (node, tok, method, p, body) => env.http(node, p, { method, body, headers: { authorization: `Bearer ${tok}` } });

async function setup() {
    const A = await env.addSite({ probe: false });
    const B = await env.addSite({ probe: false });
    const adminA = await env.addAgent({ site: A, role: 'admin' });
    const adminB = await env.addAgent({ site: B, role: 'admin' });
    const agentA = await env.addAgent({ site: A });
    const tA = await env.login(0, adminA.email, adminA.password);
    const tB = await env.login(0, adminB.email, adminB.password);
    const tAgent = await env.login(0, agentA.email, agentA.password);
    return { A, B, adminA, adminB, agentA, tA, tB, tAgent };
}

async function mint(node, login, site, scopes, name = `tok ${rnd(3)}`) {
    const r = await call(node, login, 'POST', `/api/v1/admin/sites/${site.key}/tokens`, { name, scopes });
    assert.equal(r.status, 201, r.text);
    return r.json;
}

it('an admin makes a token: the secret is shown once, Redis keeps its SHA-256, the list never shows it', async () => {
    const x = await setup();
    const made = await mint(0, x.tA, x.A, ['read'], 'Zapier export');
    const m = /^cdt\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/.exec(made.secret);
    assert.ok(m, `token shape: ${made.secret}`);
    assert.equal(m[1], x.A.key);
    assert.equal(m[2], made.token.id);
    assert.deepEqual(made.token.scopes, ['read']);
    assert.equal(made.token.name, 'Zapier export');
    assert.equal(made.token.kind, 'api');
    assert.equal(made.token.last_used_at, null);
    assert.ok(Math.abs(made.token.created_at - Date.now()) < 60_000);
    const rec = await env.redis.cmd('HGETALL', `cd:{s:${x.A.key}}:apitoken:${made.token.id}`);
    const fields = Object.fromEntries(rec.reduce((a, v, i) => (i % 2 ? a[a.length - 1].push(v) : a.push([v]), a), []));
    assert.equal(fields.hash, crypto.createHash('sha256').update(m[3]).digest('hex'));
    assert.ok(!rec.some((v) => v.includes(m[3])), 'the secret itself is not stored');
    const list = await call(0, x.tA, 'GET', `/api/v1/admin/sites/${x.A.key}/tokens`);
    assert.equal(list.status, 200, list.text);
    assert.equal(list.json.tokens.length, 1);
    assert.deepEqual(Object.keys(list.json.tokens[0]).sort(), ['created_at', 'created_by', 'id', 'kind', 'last_used_at', 'name', 'scopes', 'site']);
    assert.ok(!list.text.includes(m[3]) && !list.text.includes(fields.hash));
    // bad bodies
    for (const body of [{ scopes: ['read'] }, { name: 'x', scopes: [] }, { name: 'x', scopes: ['root'] }, { name: '', scopes: ['read'] }]) {
        const r = await call(0, x.tA, 'POST', `/api/v1/admin/sites/${x.A.key}/tokens`, body);
        assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    }
});

it('scopes: read covers the GET routes, write the changes, admin the admin routes of its site; each alone', async () => {
    const x = await setup();
    const read = (await mint(0, x.tA, x.A, ['read'])).secret;
    const write = (await mint(0, x.tA, x.A, ['write'])).secret;
    const admin = (await mint(0, x.tA, x.A, ['admin'])).secret;
    const all = (await mint(0, x.tA, x.A, ['read', 'write', 'admin'])).secret;
    const k = x.A.key;
    const reads = ['/api/v1/tickets', '/api/v1/conversations?status=queued,open', `/api/v1/kb/sites/${k}/articles`, `/api/v1/reports/summary?site=${k}`, '/api/v1/canned', '/api/v1/agents'];
    for (const p of reads) {
        assert.equal((await call(0, read, 'GET', p)).status, 200, `read ${p}`);
        for (const t of [write, admin]) assert.equal((await call(0, t, 'GET', p)).status, 403, `no read scope: ${p}`);
    }
    // write: a canned reply and an article are made; read or admin tokens may not
    let r = await call(0, write, 'POST', '/api/v1/canned', { site: k, scope: 'agent', shortcut: 'hi', title: 'Hi', body: 'Hello {customer_name}' });
    assert.equal(r.status, 201, r.text);
    for (const t of [read, admin]) {
        r = await call(0, t, 'POST', '/api/v1/canned', { site: k, scope: 'agent', shortcut: 'no', title: 'No', body: 'x' });
        assert.equal(r.status, 403, r.text);
        assert.equal((await call(0, t, 'PATCH', '/api/v1/tickets/1000', { priority: 'high' })).status, 403);
    }
    assert.equal((await call(0, write, 'PATCH', '/api/v1/tickets/99999', { priority: 'high' })).status, 404, 'write passes the scope check');
    // admin: the site's admin routes; read and write tokens may not
    r = await call(0, admin, 'POST', `/api/v1/admin/sites/${k}/teams`, { key: 'billing', name: 'Billing' });
    assert.equal(r.status, 201, r.text);
    assert.equal((await call(0, admin, 'GET', `/api/v1/admin/sites/${k}/teams`)).status, 200);
    assert.equal((await call(0, admin, 'GET', `/api/v1/admin/sites/${k}/sla`)).status, 200);
    for (const t of [read, write]) {
        assert.equal((await call(0, t, 'GET', `/api/v1/admin/sites/${k}/teams`)).status, 403);
        assert.equal((await call(0, t, 'PATCH', `/api/v1/admin/sites/${k}`, { name: 'x' })).status, 403);
    }
    // the team's creation is in the audit log as the token's
    const audit = await call(0, x.tA, 'GET', `/api/v1/admin/sites/${k}/audit`);
    const e = audit.json.entries.find((v) => v.action === 'team.create' && v.target === 'billing');
    assert.ok(e && e.actor.startsWith('token:k_'), JSON.stringify(e));
    // never: the caller's own routes, the gathered ones, the token routes, a WebSocket hello
    for (const [m, p] of [['GET', '/api/v1/me'], ['POST', '/api/v1/logout'], ['GET', `/api/v1/supervisor?site=${k}`], ['GET', '/api/v1/admin/agents'],
        ['GET', `/api/v1/admin/sites/${k}/audit`], ['GET', `/api/v1/admin/sites/${k}/tokens`], ['POST', `/api/v1/admin/sites/${k}/tokens`], ['GET', '/api/v1/me/totp']]) {
        r = await call(0, all, m, p, m === 'POST' ? { name: 'n', scopes: ['read'] } : undefined);
        assert.equal(r.status, 403, `${m} ${p}: ${r.text}`);
    }
    const c = await env.connect(0, 'agent');
    const f = await c.request({ type: 'hello', token: all });
    assert.equal(f.type, 'error');
    assert.equal(f.code, 'unauthorized');
});

it('a token never reaches another site: its answers are those of a login of its site', async () => {
    const x = await setup();
    const tok = (await mint(0, x.tA, x.A, ['read', 'write', 'admin'])).secret;
    const other = await mint(0, x.tB, x.B, ['read']);
    await call(0, x.tB, 'POST', `/api/v1/kb/sites/${x.B.key}/articles`, { title: 'B only', body: 'secret article of B', status: 'published' });
    const probes = [
        ['GET', `/api/v1/admin/sites/${x.B.key}/teams`],
        ['PATCH', `/api/v1/admin/sites/${x.B.key}`, { name: 'taken' }],
        ['GET', `/api/v1/admin/sites/${x.B.key}/sla`],
        ['GET', `/api/v1/admin/sites/${x.B.key}/webhooks`],
        ['GET', `/api/v1/admin/sites/${x.B.key}/rules`],
        ['GET', `/api/v1/kb/sites/${x.B.key}/articles`],
        ['GET', `/api/v1/reports/summary?site=${x.B.key}`],
        ['GET', `/api/v1/tickets?site=${x.B.key}`],
        ['GET', `/api/v1/canned?site=${x.B.key}`],
        ['GET', `/api/v1/agents?site=${x.B.key}`],
    ];
    const adminLoginA = await env.login(0, x.adminA.email, x.adminA.password);
    for (const [m, p, body] of probes) {
        const byToken = await call(0, tok, m, p, body);
        const byLogin = await call(0, adminLoginA, m, p, body);
        assert.equal(byToken.status, byLogin.status, `${m} ${p}: token ${byToken.status} ${byToken.text}, login ${byLogin.status}`);
        assert.ok(byToken.status === 404 || byToken.status === 403 || byToken.status === 200, `${m} ${p}: ${byToken.status}`);
        if (byToken.status === 200) assert.deepEqual(byToken.json, byLogin.json, `${m} ${p}: same empty answer`);
        assert.ok(!byToken.text.includes('secret article of B') && !byToken.text.includes(x.adminB.email));
    }
    const name = await call(0, x.tB, 'GET', `/api/v1/admin/sites/${x.B.key}/teams`);
    assert.equal(name.status, 200, 'site B unchanged and its admin still in');
    // a token's secret under another site's key or another id is no token
    const [, , id, secret] = tok.split('.');
    for (const forged of [`cdt.${x.B.key}.${id}.${secret}`, `cdt.${x.A.key}.${other.token.id}.${secret}`, `cdt.${x.A.key}.${id}.${'A'.repeat(43)}`, `cdt.${x.A.key}.${id}`, 'cdt.', `cdt.${x.A.key}.${id}.${secret}x`]) {
        const r = await call(0, forged, 'GET', '/api/v1/tickets');
        assert.equal(r.status, 401, `${forged}: ${r.text}`);
    }
});

it('revocation holds at once on every node; the token routes answer other sites alike 404', async () => {
    const x = await setup();
    const made = await mint(0, x.tA, x.A, ['read']);
    assert.equal((await call(1, made.secret, 'GET', '/api/v1/tickets')).status, 200, 'works on the other node');
    const other = await mint(0, x.tB, x.B, ['read']);
    // cross-tenant: A's admin cannot list, make or revoke B's tokens (404 as for no site),
    // nor revoke B's token through A's path; an agent of A is refused the admin routes (403)
    const none = `nosite_${rnd(3)}`;
    for (const site of [x.B.key, none]) {
        assert.equal((await call(0, x.tA, 'GET', `/api/v1/admin/sites/${site}/tokens`)).status, 404);
        assert.equal((await call(0, x.tA, 'POST', `/api/v1/admin/sites/${site}/tokens`, { name: 'n', scopes: ['read'] })).status, 404);
        assert.equal((await call(0, x.tA, 'DELETE', `/api/v1/admin/sites/${site}/tokens/${other.token.id}`)).status, 404);
    }
    assert.equal((await call(0, x.tA, 'DELETE', `/api/v1/admin/sites/${x.A.key}/tokens/${other.token.id}`)).status, 404);
    assert.equal((await call(0, x.tA, 'DELETE', `/api/v1/admin/sites/${x.A.key}/tokens/k_nothing`)).status, 404);
    for (const [m, p] of [['GET', `/api/v1/admin/sites/${x.A.key}/tokens`], ['POST', `/api/v1/admin/sites/${x.A.key}/tokens`], ['DELETE', `/api/v1/admin/sites/${x.A.key}/tokens/${made.token.id}`]]) {
        assert.equal((await call(0, x.tAgent, m, p, m === 'POST' ? { name: 'n', scopes: ['read'] } : undefined)).status, 403, `agent ${m} ${p}`);
    }
    assert.equal((await call(1, other.secret, 'GET', '/api/v1/tickets')).status, 200, 'B token untouched');
    // revoke on node 0: the next call on node 1 fails
    const r = await call(0, x.tA, 'DELETE', `/api/v1/admin/sites/${x.A.key}/tokens/${made.token.id}`);
    assert.equal(r.status, 204, r.text);
    for (const node of [1, 0]) {
        const after = await call(node, made.secret, 'GET', '/api/v1/tickets');
        assert.equal(after.status, 401, `node ${node}: ${after.text}`);
    }
    const list = await call(1, x.tA, 'GET', `/api/v1/admin/sites/${x.A.key}/tokens`);
    assert.deepEqual(list.json.tokens, []);
    const audit = await call(0, x.tA, 'GET', `/api/v1/admin/sites/${x.A.key}/audit`);
    const actions = audit.json.entries.filter((e) => e.target === made.token.id).map((e) => e.action).sort();
    assert.deepEqual(actions, ['api_token.create', 'api_token.revoke']);
    const created = audit.json.entries.find((e) => e.action === 'api_token.create' && e.target === made.token.id);
    assert.deepEqual(created.after.scopes, ['read']);
    assert.equal(created.actor, x.adminA.id);
});

it('rate limit per token across nodes (429 with Retry-After), last use written at most once a minute', async () => {
    const x = await setup();
    const made = await mint(0, x.tA, x.A, ['read']);
    const other = (await mint(0, x.tA, x.A, ['read'])).secret;
    const t0 = Date.now();
    // node 1 allows 5 a minute: two calls on node 0 count too
    for (let i = 0; i < 2; i++) assert.equal((await call(0, made.secret, 'GET', '/api/v1/tickets')).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await call(1, made.secret, 'GET', '/api/v1/tickets')).status, 200, `call ${i + 3}`);
    const r = await call(1, made.secret, 'GET', '/api/v1/tickets');
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.error.code, 'rate_limited');
    assert.equal(r.headers['retry-after'], '60');
    assert.equal((await call(1, other, 'GET', '/api/v1/tickets')).status, 200, 'another token has its own count');
    // last use: set by the first call, not moved by the later ones within the minute
    const list = await call(0, x.tA, 'GET', `/api/v1/admin/sites/${x.A.key}/tokens`);
    const t = list.json.tokens.find((v) => v.id === made.token.id);
    assert.ok(t.last_used_at >= t0 - 1000 && t.last_used_at <= Date.now(), JSON.stringify(t));
    const key = `cd:{s:${x.A.key}}:apitoken:${made.token.id}`;
    const first = Number(await env.redis.cmd('HGET', key, 'last_used_at'));
    assert.equal(first, t.last_used_at);
    await env.redis.cmd('HSET', key, 'last_used_at', String(first - 59_000), 'rw', '0');
    assert.equal((await call(0, made.secret, 'GET', '/api/v1/tickets')).status, 200, 'a new window');
    assert.equal(Number(await env.redis.cmd('HGET', key, 'last_used_at')), first - 59_000, 'within the minute: unchanged');
    await env.redis.cmd('HSET', key, 'last_used_at', String(first - 61_000));
    assert.equal((await call(0, made.secret, 'GET', '/api/v1/tickets')).status, 200);
    assert.ok(Number(await env.redis.cmd('HGET', key, 'last_used_at')) >= first, 'a minute later: written again');
});

// Last in the file: it empties node 1's login bucket of 127.0.0.1 (login_rate_per_ip 3).
it('failed API tokens count against the address like logins; then even a valid one waits (429), not on other nodes', async () => {
    const x = await setup();
    const made = await mint(0, x.tA, x.A, ['read']);
    const [, site, id] = made.secret.split('.');
    let r;
    let fails = 0;
    for (let i = 0; i < 5; i++) {
        r = await call(1, `cdt.${site}.${id}.${'B'.repeat(43)}`, 'GET', '/api/v1/tickets');
        if (r.status !== 401) break;
        fails++;
    }
    assert.ok(fails >= 1 && fails <= 3, `${fails} failures before the bucket ran out`);
    assert.equal(r.status, 429, r.text);
    assert.equal(r.headers['retry-after'], '20');
    assert.equal((await call(1, 'cdt.garbage', 'GET', '/api/v1/tickets')).status, 429, 'a malformed token too');
    assert.equal((await call(1, made.secret, 'GET', '/api/v1/tickets')).status, 429, 'the address waits, whatever the token');
    assert.equal((await call(0, made.secret, 'GET', '/api/v1/tickets')).status, 200, 'another node has its own bucket');
    const metrics = await env.http(1, '/metrics');
    assert.match(metrics.text, /chatdesk_login_refused_total\{by="address"\} [1-9]/);
});
