// Revocation (security issue, finding 5): agent tokens carry the agent's token epoch. A
// password change, disable, role or site change moves the epoch on: the old token fails
// every API call and hello, and the agent's open connections on every node get
// session.revoked and close 4401 within seconds. Logout revokes its own token server-side
// (other logins of the agent keep working).
import { useEnv, it, assert, sleep, WAIT } from './harness.mjs';

const env = useEnv({ nodes: 2 });

async function setup() {
    const site = await env.addSite({ probe: false });
    const site2 = await env.addSite({ probe: false });
    const boss = await env.addAgent({ sites: [site, site2], role: 'admin' });
    const bossToken = await env.login(0, boss.email, boss.password);
    const ag = await env.addAgent({ site });
    const token = await env.login(0, ag.email, ag.password);
    const call = (node, tok, method, p, body) =>
        env.http(node, p, { method, body, headers: { authorization: `Bearer ${tok}` } });
    return { site, site2, boss, bossToken, ag, token, call };
}

/** Opens the agent on both nodes with the token; returns the two clients. */
async function openBoth(token) {
    return [await env.agent(0, { token }), await env.agent(1, { token })];
}

async function assertRevoked(clients, what) {
    for (const c of clients) {
        const info = await c.waitClose(WAIT);
        assert.equal(info.code, 4401, `${what}: ${c.label} closed ${JSON.stringify(info)}`);
        assert.ok(c.frames.some((f) => f.type === 'session.revoked'), `${what}: ${c.label} got session.revoked`);
    }
}

async function assertTokenDead(x, token, what) {
    for (const node of [0, 1]) {
        const r = await x.call(node, token, 'GET', '/api/v1/me');
        assert.equal(r.status, 401, `${what}: old token on node ${node}: ${r.status} ${r.text}`);
    }
    const c = await env.connect(1, 'agent');
    const f = await c.request({ type: 'hello', token });
    assert.equal(f.type, 'error', `${what}: hello with the old token: ${JSON.stringify(f)}`);
    assert.equal(f.code, 'unauthorized');
    assert.equal((await c.waitClose()).code, 4401);
}

it('a password change closes the agent on every node and kills the old token', async () => {
    const x = await setup();
    const clients = await openBoth(x.token);
    assert.equal((await x.call(1, x.token, 'GET', '/api/v1/me')).status, 200);
    const t0 = Date.now();
    const r = await x.call(0, x.bossToken, 'PATCH', `/api/v1/admin/agents/${x.ag.id}`, { password: 'a brand new passphrase' });
    assert.equal(r.status, 200, r.text);
    await assertRevoked(clients, 'password');
    assert.ok(Date.now() - t0 < 3000, `closed within seconds (${Date.now() - t0} ms)`);
    await assertTokenDead(x, x.token, 'password');
    const fresh = await env.login(1, x.ag.email, 'a brand new passphrase');
    assert.equal((await x.call(0, fresh, 'GET', '/api/v1/me')).status, 200);
    const c = await env.agent(0, { token: fresh });
    assert.ok(c.welcome);
});

it('disable, role change and site change revoke too', async () => {
    for (const [what, body] of [
        ['role', (x) => ({ role: 'admin' })],
        ['sites', (x) => ({ sites: [x.site.key, x.site2.key] })],
        ['disabled', (x) => ({ disabled: true })],
    ]) {
        const x = await setup();
        const clients = await openBoth(x.token);
        const r = await x.call(1, x.bossToken, 'PATCH', `/api/v1/admin/agents/${x.ag.id}`, body(x));
        assert.equal(r.status, 200, `${what}: ${r.text}`);
        await assertRevoked(clients, what);
        await assertTokenDead(x, x.token, what);
    }
    // a change of name or capacity does not
    const x = await setup();
    const [c] = await openBoth(x.token);
    assert.equal((await x.call(0, x.bossToken, 'PATCH', `/api/v1/admin/agents/${x.ag.id}`, { name: 'Renamed', max_chats: 7 })).status, 200);
    await sleep(500);
    assert.equal(c.closeInfo, null);
    assert.equal((await x.call(0, x.token, 'GET', '/api/v1/me')).status, 200);
});

it('admin CLI agent-set --disabled on closes the open connections', async () => {
    const x = await setup();
    const clients = await openBoth(x.token);
    await env.admin('agent-set', '--email', x.ag.email, '--disabled', 'on');
    await assertRevoked(clients, 'cli disabled');
});

it('logout revokes that token server-side; another login of the agent keeps working', async () => {
    const x = await setup();
    const other = await env.login(1, x.ag.email, x.ag.password);
    const [c0, c1] = await openBoth(x.token);
    const keep = await env.agent(1, { token: other });
    const r = await x.call(0, x.token, 'POST', '/api/v1/logout');
    assert.equal(r.status, 204, r.text);
    await assertRevoked([c0, c1], 'logout');
    await assertTokenDead(x, x.token, 'logout');
    assert.equal((await x.call(1, other, 'GET', '/api/v1/me')).status, 200);
    await sleep(300);
    assert.equal(keep.closeInfo, null, 'the other login stays connected');
    const keys = await env.redis.cmd('KEYS', `*{a}:revoked:${x.ag.id}`);
    assert.equal(keys.length, 1);
    assert.ok((await env.redis.cmd('PTTL', keys[0])) > 0, 'the deny-list expires');
});
