// The HTTP API beyond tickets (docs/api.md): auth, conversations, colleagues, customer
// panel, supervisor, canned replies, admin of sites, teams, agents and SLA; and a
// connection that closes before sending a request never harms the node.
import net from 'node:net';
import { useEnv, it, assert, waitUntil, rnd } from './harness.mjs';

const env = useEnv({ nodes: 1 });

async function admin(site) {
    const email = `adm_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    const rec = await env.admin('agent-add', '--email', email, '--password', password, '--name', 'Adm', '--site', site.key, '--role', 'admin');
    return { token: await env.login(0, email, password), id: rec.id, email, password };
}
const call = (token, method, url, body) => env.http(0, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
const json = (r) => JSON.parse(r.text);

it('a TCP connection closed before any request does not crash the node', async () => {
    for (let i = 0; i < 20; i++) {
        await new Promise((res) => {
            const s = net.connect(env.nodes[0].port, '127.0.0.1', () => {
                s.destroy();
                res();
            });
            s.on('error', res);
        });
    }
    const h = await env.http(0, '/healthz');
    assert.equal(h.status, 200);
});

it('admin API: sites, teams, agents (who can then log in), SLA; agents only see their sites', async () => {
    const site = await env.addSite();
    const boss = await admin(site);
    let r = await call(boss.token, 'GET', '/api/v1/admin/sites');
    assert.equal(r.status, 200);
    assert.deepEqual(json(r).sites.map((s) => s.key), [site.key]);
    assert.ok(!r.text.includes('identity_secret'));
    r = await call(boss.token, 'POST', `/api/v1/admin/sites/${site.key}/teams`, { key: 'vip', name: 'VIP' });
    assert.equal(r.status, 201, r.text);
    r = await call(boss.token, 'POST', `/api/v1/admin/sites/${site.key}/teams`, { key: 'vip', name: 'VIP' });
    assert.equal(r.status, 409);
    r = await call(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { widget: { color: '#0f766e', categories: ['billing'] }, auto_assign: false, origins: ['nope'] });
    assert.equal(r.status, 400, 'a bad origin is refused');
    r = await call(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { widget: { color: '#0f766e', categories: ['billing'] }, category_teams: { billing: 'vip' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(json(r).site.category_teams, { billing: 'vip' });
    const email = `new_${rnd(3)}@example.com`;
    r = await call(boss.token, 'POST', '/api/v1/admin/agents', { email, password: 'short', name: 'N', sites: [site.key] });
    assert.equal(r.status, 400, 'password too short');
    r = await call(boss.token, 'POST', '/api/v1/admin/agents', { email, password: 'a long passphrase', name: 'Newbie', sites: [site.key], teams: ['vip'], max_chats: 2 });
    assert.equal(r.status, 201, r.text);
    const newbie = json(r).agent;
    assert.deepEqual(newbie.teams, ['vip']);
    const tok = await env.login(0, email, 'a long passphrase');
    r = await call(tok, 'GET', '/api/v1/admin/agents');
    assert.equal(r.status, 403, 'agents are not admins');
    r = await call(boss.token, 'PATCH', `/api/v1/admin/agents/${newbie.id}`, { disabled: true });
    assert.equal(r.status, 200);
    const login = await env.http(0, '/api/v1/login', { method: 'POST', body: { email, password: 'a long passphrase' } });
    assert.equal(login.status, 401, 'a disabled agent cannot log in');
    r = await call(boss.token, 'PUT', `/api/v1/admin/sites/${site.key}/sla`, { policies: { high: { first_response_s: 900 } }, calendar: { tz: 'Asia/Shanghai', hours: { mon: [['09:00', '18:00']] } } });
    assert.equal(r.status, 200, r.text);
    r = await call(boss.token, 'GET', `/api/v1/admin/sites/${site.key}/sla`);
    assert.equal(json(r).sla.calendar.tz, 'Asia/Shanghai');
    r = await call(boss.token, 'PUT', `/api/v1/admin/sites/${site.key}/sla`, { calendar: { hours: { mon: [['18:00', '09:00']] } } });
    assert.equal(r.status, 400);
    // another site's admin sees nothing of this site
    const other = await env.addSite();
    const stranger = await admin(other);
    r = await call(stranger.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { name: 'mine now' });
    assert.equal(r.status, 404);
    r = await call(stranger.token, 'PATCH', `/api/v1/admin/agents/${newbie.id}`, { disabled: false });
    assert.equal(r.status, 404);
    // the visitor's widget gets the site's widget settings in welcome
    const v = await env.visitor(0, { site });
    assert.equal(v.welcome.site.color, '#0f766e');
    assert.deepEqual(v.welcome.site.categories, ['billing']);
    v.terminate();
});

it('conversations, colleagues, customer panel, supervisor and canned replies', async () => {
    const site = await env.addSite();
    const boss = await admin(site);
    const v = await env.visitor(0, { site });
    await env.visitor(0, { site }); // another visitor, no conversation
    const vv = await env.connect(0, 'visitor');
    const w = await vv.request({ type: 'hello', site: site.key, page: { url: 'https://shop.example/cart', title: 'Cart', referrer: 'https://search.example/' }, attributes: { plan: 'pro' } });
    const s = await vv.ok({ type: 'conversation.start', form: { name: 'Li Lei', email: 'li@example.com', message: 'hi', subject: 'Cart broken' } });
    let r = await call(boss.token, 'GET', `/api/v1/conversations?status=queued,open&site=${site.key}`);
    assert.equal(r.status, 200, r.text);
    assert.ok(json(r).conversations.some((c) => c.id === s.conversation.id));
    r = await call(boss.token, 'GET', `/api/v1/visitors/${w.visitor.id}`);
    assert.equal(r.status, 200);
    const panel = json(r);
    assert.equal(panel.visitor.page_url, 'https://shop.example/cart');
    assert.deepEqual(panel.visitor.attributes, { plan: 'pro' });
    assert.equal(panel.conversations[0].id, s.conversation.id);
    r = await call(boss.token, 'GET', `/api/v1/agents?site=${site.key}`);
    assert.ok(json(r).agents.some((a) => a.id === boss.id));
    r = await call(boss.token, 'GET', `/api/v1/supervisor?site=${site.key}`);
    const sup = json(r);
    assert.ok(sup.queues.find((q) => q.team === null).size >= 1);
    assert.ok(Array.isArray(sup.at_risk));
    assert.ok(sup.agents.some((a) => a.id === boss.id));
    // canned replies: site-wide (admin) and personal; search
    r = await call(boss.token, 'POST', '/api/v1/canned', { site: site.key, scope: 'site', shortcut: 'hello', title: 'Greeting', body: 'Hi {customer_name}, {agent_name} here.' });
    assert.equal(r.status, 201, r.text);
    const id = json(r).canned.id;
    r = await call(boss.token, 'GET', `/api/v1/canned?site=${site.key}&q=greet`);
    assert.deepEqual(json(r).canned.map((c) => c.id), [id]);
    r = await call(boss.token, 'PATCH', `/api/v1/canned/${id}`, { body: 'Hello {customer_name}!' });
    assert.equal(json(r).canned.body, 'Hello {customer_name}!');
    r = await call(boss.token, 'DELETE', `/api/v1/canned/${id}`);
    assert.equal(r.status, 204);
    r = await call(boss.token, 'GET', `/api/v1/canned?site=${site.key}`);
    assert.deepEqual(json(r).canned, []);
    // auth and routing errors
    r = await call(null, 'GET', '/api/v1/me');
    assert.equal(r.status, 401);
    r = await call(boss.token, 'GET', '/api/v1/nothing-here');
    assert.equal(r.status, 404);
    assert.equal(json(r).error.code, 'not_found');
    r = await call(boss.token, 'POST', '/api/v1/canned', '{"site":');
    assert.equal(r.status, 400);
    v.terminate();
    vv.terminate();
});

it('GET /api/v1/teams: any agent of a site sees its teams by name (the transfer picker); another site sees none of them', async () => {
    const A = await env.addSite();
    const B = await env.addSite();
    const adminA = await env.addAgent({ site: A, role: 'admin' });
    const tokAdmin = await env.login(0, adminA.email, adminA.password);
    for (const [key, name] of [['t2', 'Tier 2 specialists'], ['bill', 'Billing'], ['zz', 'Accounts']]) {
        const r = await call(tokAdmin, 'POST', `/api/v1/admin/sites/${A.key}/teams`, { key, name });
        assert.equal(r.status, 201, r.text);
    }
    const agentA = await env.addAgent({ site: A }); // not an admin
    const tokA = await env.login(0, agentA.email, agentA.password);
    let r = await call(tokA, 'GET', `/api/v1/teams?site=${A.key}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(json(r).teams, [
        { site: A.key, key: 'zz', name: 'Accounts' },
        { site: A.key, key: 'bill', name: 'Billing' },
        { site: A.key, key: 't2', name: 'Tier 2 specialists' },
    ]);
    r = await call(tokA, 'GET', '/api/v1/teams'); // every site of the caller
    assert.equal(json(r).teams.length, 3);
    // B's agent: none of A's teams, the same answer as for a site that does not exist
    const agentB = await env.addAgent({ site: B });
    const tokB = await env.login(0, agentB.email, agentB.password);
    const foreign = await call(tokB, 'GET', `/api/v1/teams?site=${A.key}`);
    const none = await call(tokB, 'GET', '/api/v1/teams?site=no-such-site');
    assert.equal(foreign.status, none.status);
    assert.equal(foreign.text, none.text);
    assert.ok(!foreign.text.includes('Billing'));
    assert.equal((await call(null, 'GET', `/api/v1/teams?site=${A.key}`)).status, 401);
});
