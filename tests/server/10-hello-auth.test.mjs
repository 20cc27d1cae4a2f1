// Handshake and authentication: visitor hello (anonymous, token reuse, identity
// verification), tokens bound to their site, agent login and agent hello.
import { useEnv, it, assert, assertError, hmacHex, rnd, ORIGIN } from './harness.mjs';

const env = useEnv({ nodes: 2 });

it('anonymous visitor hello gets a welcome with every field', async () => {
    const site = await env.addSite();
    const c = await env.connect(0, 'visitor');
    const w = await c.request({ type: 'hello', rid: 'h1', site: site.key });
    assert.equal(w.type, 'welcome', JSON.stringify(w));
    assert.equal(w.rid, 'h1');
    assert.equal(typeof w.visitor, 'object');
    assert.match(w.visitor.id, /^v_/);
    assert.ok('name' in w.visitor && 'email' in w.visitor, `visitor has name and email: ${JSON.stringify(w.visitor)}`);
    assert.equal(typeof w.token, 'string');
    assert.ok(w.token.length >= 16, 'token looks opaque and long enough');
    assert.deepEqual(w.conversations, []);
    assert.equal(typeof w.agents_online, 'boolean');
    assert.ok(c.open, 'connection stays open after welcome');
});

it('two anonymous hellos create two different visitors', async () => {
    const site = await env.addSite();
    const a = await env.visitor(0, { site });
    const b = await env.visitor(0, { site });
    assert.notEqual(a.visitorId, b.visitorId);
    assert.notEqual(a.token, b.token);
});

it('visitor token is reused: same visitor, its conversations, on either node', async () => {
    const site = await env.addSite();
    const v1 = await env.visitor(0, { site });
    const start = await v1.ok({ type: 'conversation.start', form: { message: 'first' } });
    const cid = start.conversation.id;
    assert.match(cid, /^c_/);
    v1.close();

    for (const node of [0, 1]) {
        const v2 = await env.visitor(node, { site, token: v1.token });
        assert.equal(v2.visitorId, v1.visitorId, `same visitor on node ${node}`);
        const ids = v2.welcome.conversations.map((c) => c.id);
        assert.ok(ids.includes(cid), `welcome on node ${node} lists ${cid}: ${JSON.stringify(ids)}`);
        const conv = v2.welcome.conversations.find((c) => c.id === cid);
        assert.ok(conv.last_seq >= 1, `last_seq ${conv.last_seq}`);
        assert.equal(typeof conv.epoch, 'string');
        v2.close();
    }
});

it('agents_online turns true when an agent of the site is connected', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site });
    const a = await env.agent(1, { email: ag.email, password: ag.password });
    await a.ok({ type: 'presence.set', status: 'online' });
    const v = await env.visitor(0, { site });
    assert.equal(v.welcome.agents_online, true);
});

it('identity verification: a good hash identifies the user, again on a new connection', async () => {
    const secret = `sec-${rnd(16)}`;
    const site = await env.addSite({ secret });
    const userId = `crm-${rnd(4)}`;
    const user = { id: userId, name: 'Li Lei', email: 'li@example.com', hash: hmacHex(secret, userId) };
    const v1 = await env.visitor(0, { site, user });
    assert.match(v1.visitorId, /^v_/);
    assert.equal(v1.welcome.visitor.name, 'Li Lei');
    assert.equal(v1.welcome.visitor.email, 'li@example.com');
    // A second connection without token but with the same verified user is the same visitor.
    const v2 = await env.visitor(1, { site, user });
    assert.equal(v2.visitorId, v1.visitorId);
});

it('identity verification: a wrong hash gets unauthorized and close 4401', async () => {
    const secret = `sec-${rnd(16)}`;
    const site = await env.addSite({ secret });
    const userId = `crm-${rnd(4)}`;
    for (const hash of [hmacHex('not-the-secret-at-all', userId), hmacHex(secret, userId + 'x'), '', 'zz']) {
        const c = await env.connect(0, 'visitor');
        const r = await c.request({ type: 'hello', site: site.key, user: { id: userId, name: 'X', hash } });
        assertError(r, 'unauthorized', `hash ${JSON.stringify(hash)}`);
        const cl = await c.waitClose();
        assert.equal(cl.code, 4401);
    }
    // The hash of another site's secret does not work either.
    const other = await env.addSite({ secret: `other-${rnd(16)}` });
    const c = await env.connect(0, 'visitor');
    const r = await c.request({ type: 'hello', site: site.key, user: { id: userId, hash: hmacHex(other.secret, userId) } });
    assertError(r, 'unauthorized');
    assert.equal((await c.waitClose()).code, 4401);
});

it('a visitor token of another site is unauthorized (4401)', async () => {
    const siteA = await env.addSite();
    const siteB = await env.addSite();
    const va = await env.visitor(0, { site: siteA });
    const c = await env.connect(1, 'visitor');
    const r = await c.request({ type: 'hello', site: siteB.key, token: va.token });
    assertError(r, 'unauthorized');
    assert.equal((await c.waitClose()).code, 4401);
});

it('a forged or tampered visitor token is unauthorized (4401)', async () => {
    const site = await env.addSite();
    const v = await env.visitor(0, { site });
    const t = v.token;
    const flipped = t.slice(0, -2) + (t.slice(-2) === 'AA' ? 'BB' : 'AA');
    for (const token of [flipped, 'v1.x.y.z', 'garbage', t + 'x']) {
        const c = await env.connect(0, 'visitor');
        const r = await c.request({ type: 'hello', site: site.key, token });
        assertError(r, 'unauthorized', `token ${token.slice(0, 20)}`);
        assert.equal((await c.waitClose()).code, 4401);
    }
});

it('hello naming a site whose origins do not include the Origin: forbidden + 4401', async () => {
    const siteA = await env.addSite({ origins: [ORIGIN] });
    const siteB = await env.addSite({ origins: ['http://127.0.0.1:4999'] });
    assert.ok(siteA);
    // The upgrade passes (the Origin belongs to site A) but site B does not allow it.
    const c = await env.connect(0, 'visitor', { origin: ORIGIN });
    const r = await c.request({ type: 'hello', site: siteB.key });
    assertError(r, 'forbidden');
    assert.equal((await c.waitClose()).code, 4401);
});

it('POST /api/v1/login: 200 with token and agent, 401 JSON error on bad credentials', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site, name: 'Ann Agent' });
    const ok = await env.http(0, '/api/v1/login', { method: 'POST', body: { email: ag.email, password: ag.password } });
    assert.equal(ok.status, 200, ok.text);
    assert.match(String(ok.headers['content-type']), /application\/json/);
    assert.equal(typeof ok.json.token, 'string');
    assert.equal(ok.json.agent.id, ag.id);
    assert.equal(ok.json.agent.email, ag.email);
    assert.equal(ok.json.agent.name, 'Ann Agent');
    assert.ok(['agent', 'admin'].includes(ok.json.agent.role));
    assert.ok(!('pw' in ok.json.agent) && !JSON.stringify(ok.json).includes('argon2'), 'no password hash leaks');

    // E-mail is case-insensitive for login.
    const upper = await env.http(1, '/api/v1/login', { method: 'POST', body: { email: ag.email.toUpperCase(), password: ag.password } });
    assert.equal(upper.status, 200, upper.text);

    for (const body of [
        { email: ag.email, password: ag.password + 'x' },
        { email: `nobody-${rnd(3)}@example.com`, password: ag.password },
    ]) {
        const bad = await env.http(0, '/api/v1/login', { method: 'POST', body });
        assert.equal(bad.status, 401, bad.text);
        assert.match(String(bad.headers['content-type']), /application\/json/);
        assert.equal(bad.json?.error?.code, 'unauthorized', bad.text);
        assert.equal(typeof bad.json.error.message, 'string');
        assert.ok(!('token' in bad.json));
    }
});

it('agent hello with a login token gets welcome; on the other node too', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site });
    const token = await env.login(0, ag.email, ag.password);
    for (const node of [0, 1]) {
        const c = await env.connect(node, 'agent');
        const w = await c.request({ type: 'hello', rid: 'ah', token });
        assert.equal(w.type, 'welcome', JSON.stringify(w));
        assert.equal(w.rid, 'ah');
        assert.equal(w.agent.id, ag.id);
        assert.equal(w.agent.email, ag.email);
        assert.ok(Array.isArray(w.conversations));
        c.close();
    }
});

it('agent hello with a bad, missing or visitor token: unauthorized + 4401', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site });
    const token = await env.login(0, ag.email, ag.password);
    const v = await env.visitor(0, { site });
    const cases = {
        tampered: token.slice(0, -3) + (token.endsWith('AAA') ? 'BBB' : 'AAA'),
        garbage: 'not-a-token',
        visitorToken: v.token,
        missing: undefined,
    };
    for (const [name, t] of Object.entries(cases)) {
        const c = await env.connect(1, 'agent');
        const hello = { type: 'hello' };
        if (t !== undefined) hello.token = t;
        const r = await c.request(hello);
        assertError(r, ['unauthorized', 'bad_request'], name);
        if (name !== 'missing') assert.equal(r.code, 'unauthorized', name);
        assert.equal((await c.waitClose()).code, 4401, name);
    }
});

it('an agent login token is not a visitor token', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site });
    const token = await env.login(0, ag.email, ag.password);
    const c = await env.connect(0, 'visitor');
    const r = await c.request({ type: 'hello', site: site.key, token });
    assertError(r, 'unauthorized');
    assert.equal((await c.waitClose()).code, 4401);
});
