// Tenants are walls (security issue, finding 1; RELIABILITY S8): an admin of site B must
// not take over an agent shared with site A (password, role, disabled, name, capacity,
// site list), must not learn site A's keys from the agent list, and only an owner creates
// sites or grants the owner role. Each case is the attack as an attacker would try it
// over the HTTP API, and what the server now answers.
import { useEnv, it, assert, rnd } from './harness.mjs';

const env = useEnv({ nodes: 1 });

const call = (token, method, url, body) => env.http(0, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
const json = (r) => JSON.parse(r.text);

async function person(sites, role) {
    const ag = await env.addAgent({ sites, role, name: `${role ?? 'agent'} ${rnd(2)}` });
    return { ...ag, token: await env.login(0, ag.email, ag.password) };
}
async function canLogin(email, password) {
    return (await env.http(0, '/api/v1/login', { method: 'POST', body: { email, password } })).status === 200;
}

let A, B, adminA, adminB, shared;
async function setup() {
    if (A) return;
    A = await env.addSite();
    B = await env.addSite();
    await env.admin('team-add', '--site', A.key, '--key', 'a-vip', '--name', 'A VIP');
    await env.admin('team-add', '--site', B.key, '--key', 'b-team', '--name', 'B team');
    adminA = await person([A], 'admin');
    adminB = await person([B], 'admin');
    shared = await env.addAgent({ sites: [A, B], name: 'Shared Sam' });
    await env.admin('agent-set', '--email', shared.email, '--team', 'a-vip');
}

it('an admin of site B cannot take over an agent shared with site A', async () => {
    await setup();
    const url = `/api/v1/admin/agents/${shared.id}`;
    const attacks = [
        { password: 'attacker-passphrase-1' },
        { role: 'admin' },
        { disabled: true },
        { name: 'Owned' },
        { max_chats: 99 },
    ];
    for (const body of attacks) {
        const r = await call(adminB.token, 'PATCH', url, body);
        assert.equal(r.status, 403, `${JSON.stringify(body)}: ${r.text}`);
        assert.equal(json(r).error.code, 'forbidden');
    }
    // nothing changed: the old password works, the attacker's does not
    assert.equal(await canLogin(shared.email, 'attacker-passphrase-1'), false);
    assert.equal(await canLogin(shared.email, shared.password), true);
    const seen = json(await call(adminA.token, 'GET', '/api/v1/admin/agents')).agents.find((a) => a.id === shared.id);
    assert.equal(seen.role, 'agent');
    assert.equal(seen.disabled, false);
    assert.equal(seen.name, 'Shared Sam');
    // adding site A to the list is refused: B's admin does not run A
    let r = await call(adminB.token, 'PATCH', url, { sites: [A.key, B.key] });
    assert.equal(r.status, 400, r.text);
    // the agent's site B admin cannot log in as it through a role change either
    r = await call(adminB.token, 'PATCH', url, { role: 'owner' });
    assert.equal(r.status, 403);
});

it("the agent list shows another tenant's shared agent with the caller's sites and teams only", async () => {
    await setup();
    const r = await call(adminB.token, 'GET', '/api/v1/admin/agents');
    assert.equal(r.status, 200);
    const seen = json(r).agents.find((a) => a.id === shared.id);
    assert.deepEqual(seen.sites, [B.key]);
    assert.deepEqual(seen.teams, []);
    assert.equal(seen.scoped, true);
    assert.ok(!r.text.includes(A.key), "site A's key never appears in B's agent list");
    assert.ok(!r.text.includes('a-vip'), "site A's team never appears in B's agent list");
    // site A's admin controls the agent only where A is concerned as well
    const ra = json(await call(adminA.token, 'GET', '/api/v1/admin/agents')).agents.find((a) => a.id === shared.id);
    assert.deepEqual(ra.sites, [A.key]);
    assert.deepEqual(ra.teams, ['a-vip']);
    assert.equal(ra.scoped, true);
});

it("an admin may change a shared agent's teams in its own sites and remove it from them", async () => {
    await setup();
    const url = `/api/v1/admin/agents/${shared.id}`;
    // a form that sends every field back unchanged, plus a team of site B
    let r = await call(adminB.token, 'PATCH', url, { name: 'Shared Sam', role: 'agent', max_chats: 100, disabled: false, teams: ['b-team'], sites: [B.key] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(json(r).agent.teams, ['b-team']);
    // site A's team survived B's change
    let ra = json(await call(adminA.token, 'GET', '/api/v1/admin/agents')).agents.find((a) => a.id === shared.id);
    assert.deepEqual(ra.teams, ['a-vip']);
    // B removes the agent from its site: it stays in A, and B no longer sees it
    r = await call(adminB.token, 'PATCH', url, { sites: [] });
    assert.equal(r.status, 200, r.text);
    ra = json(await call(adminA.token, 'GET', '/api/v1/admin/agents')).agents.find((a) => a.id === shared.id);
    assert.deepEqual(ra.sites, [A.key]);
    assert.deepEqual(ra.teams, ['a-vip']);
    assert.equal(ra.scoped, false, 'now only in A: A controls it fully');
    // B's site no longer counts it (conversation calls check the site's agents set), and its
    // record there is a tombstone of this change, which an older sync cannot overwrite
    assert.equal(await env.redis.cmd('SISMEMBER', `cd:{s:${B.key}}:agents`, shared.id), 0);
    const sv = await env.redis.cmd('HGET', `cd:{a}:agent:${shared.id}`, 'sv');
    const stone = await env.redis.cmd('HMGET', `cd:{s:${B.key}}:agent:${shared.id}`, 'sv', 'disabled');
    assert.deepEqual(stone, [sv, '1']);
    await env.redis.cmd('PUBLISH', 'cd:ch:sites', `0 a -\n{"type":"agent.changed","id":"${shared.id}"}`);
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(await env.redis.cmd('SISMEMBER', `cd:{s:${B.key}}:agents`, shared.id), 0, 'a sync does not bring it back');
    assert.equal(await env.redis.cmd('SISMEMBER', `cd:{s:${A.key}}:agents`, shared.id), 1);
    r = await call(adminB.token, 'PATCH', url, { teams: [] });
    assert.equal(r.status, 404, 'not found: B no longer shares a site with it');
    assert.ok(!json(await call(adminB.token, 'GET', '/api/v1/admin/agents')).agents.some((a) => a.id === shared.id));
    // and A, now its only tenant, may reset its password
    r = await call(adminA.token, 'PATCH', url, { password: 'a new long passphrase' });
    assert.equal(r.status, 200, r.text);
    assert.equal(await canLogin(shared.email, 'a new long passphrase'), true);
});

it('roles: only an owner creates sites and grants the owner role; an admin never controls an owner', async () => {
    await setup();
    const owner = await person([A], 'owner');
    const plain = await person([A]);
    const site = { key: `o_${rnd(3)}`, name: 'New shop', origins: ['https://new.example'] };
    // site creation: agent 403, admin 403 (even for its own origin), owner 201
    let r = await call(plain.token, 'POST', '/api/v1/admin/sites', site);
    assert.equal(r.status, 403);
    r = await call(adminA.token, 'POST', '/api/v1/admin/sites', site);
    assert.equal(r.status, 403, r.text);
    assert.equal(json(r).error.message, 'owner role required');
    r = await call(adminB.token, 'POST', '/api/v1/admin/sites', { ...site, origins: A.origins });
    assert.equal(r.status, 403, "another tenant's origin: refused as well");
    r = await call(owner.token, 'POST', '/api/v1/admin/sites', site);
    assert.equal(r.status, 201, r.text);
    assert.ok(json(await call(owner.token, 'GET', '/api/v1/admin/sites')).sites.some((s) => s.key === site.key));
    // granting owner: an admin cannot (create or patch), an owner can
    r = await call(adminA.token, 'POST', '/api/v1/admin/agents', { email: `o_${rnd(3)}@example.com`, password: 'a long passphrase', name: 'X', sites: [A.key], role: 'owner' });
    assert.equal(r.status, 403, r.text);
    r = await call(adminA.token, 'PATCH', `/api/v1/admin/agents/${plain.id}`, { role: 'owner' });
    assert.equal(r.status, 403, r.text);
    r = await call(adminA.token, 'PATCH', `/api/v1/admin/agents/${plain.id}`, { role: 'admin' });
    assert.equal(r.status, 200, 'an admin promotes an agent of its own sites to admin');
    // an admin of the same site cannot take over the owner
    r = await call(adminA.token, 'PATCH', `/api/v1/admin/agents/${owner.id}`, { password: 'attacker-passphrase-2' });
    assert.equal(r.status, 403, r.text);
    r = await call(adminA.token, 'PATCH', `/api/v1/admin/agents/${owner.id}`, { disabled: true });
    assert.equal(r.status, 403);
    assert.equal(await canLogin(owner.email, owner.password), true);
    // the owner may
    r = await call(owner.token, 'PATCH', `/api/v1/admin/agents/${plain.id}`, { role: 'owner' });
    assert.equal(r.status, 200, r.text);
    assert.equal(json(r).agent.role, 'owner');
    // owners administer their sites like admins (the admin pages work for them)
    r = await call(owner.token, 'GET', `/api/v1/admin/sites/${A.key}/teams`);
    assert.equal(r.status, 200);
});

it('a conversation the caller may not see answers exactly like one that does not exist', async () => {
    // (security issue, finding 8: forbidden vs not_found revealed which ids exist)
    const { v, a, cid, site } = await env.chat();
    const stranger = await env.visitor(0, { site });
    const missing = `c_doesnotexist000000000000.${site.key}`;
    const visitorFrames = [
        { type: 'message.send', client_msg_id: 'probe', body: 'hello?' },
        { type: 'history' },
        { type: 'typing', state: true },
        { type: 'read', seq: 1 },
    ];
    for (const f of visitorFrames) {
        const theirs = await stranger.request({ ...f, conversation_id: cid });
        const none = await stranger.request({ ...f, conversation_id: missing });
        assert.equal(theirs.type, 'error', JSON.stringify(theirs));
        assert.deepEqual([theirs.code, theirs.message], [none.code, none.message], f.type);
        assert.equal(theirs.code, 'not_found');
    }
    // an agent of another tenant
    const other = await env.addSite();
    const ag = await env.addAgent({ site: other });
    const outsider = await env.agent(0, { email: ag.email, password: ag.password });
    const agentFrames = [
        { type: 'message.send', client_msg_id: 'probe', body: 'hello?' },
        { type: 'history' },
        { type: 'conversation.accept' },
        { type: 'conversation.update', status: 'closed' },
    ];
    for (const f of agentFrames) {
        const theirs = await outsider.request({ ...f, conversation_id: cid });
        const none = await outsider.request({ ...f, conversation_id: missing });
        assert.equal(theirs.type, 'error', JSON.stringify(theirs));
        assert.deepEqual([theirs.code, theirs.message], [none.code, none.message], f.type);
    }
    // and the conversation is untouched
    const h = await v.ok({ type: 'history', conversation_id: cid });
    assert.ok(!h.messages.some((m) => m.body === 'hello?'));
    v.terminate();
    a.terminate();
    stranger.terminate();
    outsider.terminate();
});
