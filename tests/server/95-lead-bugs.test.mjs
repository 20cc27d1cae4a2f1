// Issue 18, the server half of the bugs a support lead hit in the dashboard: a rule's
// canned reply is sent with its variables filled (and never with a raw {variable}); the
// canned reply API refuses unknown variables and shortcuts the composer cannot type, and
// moves a reply between "only me" and "shared"; nested widget settings merge; an SLA
// breach reaches an admin once and stays as a notice; a closed ticket is not "paused";
// a rule's "text" on conversation.created is the first message, not the subject.
import { useEnv, it, assert, waitUntil, sleep, rnd, storedMessages } from './harness.mjs';

const env = useEnv({ nodes: 1, args: ['--timer-poll-ms', '100', '--event-poll-ms', '20', '--events-retain-s', '3600'] });

async function adminToken(site) {
    const email = `boss_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    const a = await env.admin('agent-add', '--email', email, '--password', password, '--name', 'Boss', '--site', site.key, '--role', 'admin');
    return { token: await env.login(0, email, password), id: a.id };
}

function api(token, method, url, body) {
    return env.http(0, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

// the messages the rules wrote (acknowledgements and ticket notices are not theirs)
async function ruleMessages(cid) {
    return (await messages(cid)).filter((m) => m.id.startsWith('m_rule'));
}

const messages = (cid) => storedMessages(env.redis, cid);

it('a rule\'s "send a canned reply" fills the variables; one without a value is not sent but noted for the agents', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const mk = async (shortcut, body) => {
        const r = await api(token, 'POST', '/api/v1/canned', { site: site.key, scope: 'site', shortcut, title: shortcut, body });
        assert.equal(r.status, 201, r.text);
        return r.json.canned.id;
    };
    const hi = await mk('hi', 'Hello {customer_name}, your plan is {attr.plan}.');
    const zh = await mk('zh', '{客户姓名}您好');
    const r = await api(token, 'POST', `/api/v1/admin/sites/${site.key}/rules`, {
        name: 'Welcome',
        trigger: { event: 'conversation.created' },
        actions: [{ type: 'send_canned', canned: hi }, { type: 'send_canned', canned: zh }],
    });
    assert.equal(r.status, 201, r.text);
    const named = await env.visitor(0, { site });
    const a = (await named.ok({ type: 'conversation.start', form: { name: 'Li Lei', message: 'hi' } })).conversation.id;
    await waitUntil(async () => (await ruleMessages(a)).length >= 2, { what: 'both actions ran' });
    const sent = await ruleMessages(a);
    // {attr.plan} has no value: the first reply is held back, the second goes out filled
    assert.deepEqual(sent.filter((m) => m.priv !== '1').map((m) => m.body), ['Li Lei您好']);
    const note = sent.find((m) => m.priv === '1');
    assert.match(note.body, /^Rule "Welcome": canned reply "hi" not sent, no value for \{attr\.plan\}$/);
    for (const m of await messages(a)) assert.doesNotMatch(m.priv === '1' ? '' : m.body, /\{[a-z_.]+\}/);
    // the variable has a value for a visitor with the attribute: sent, filled
    const v2 = await env.connect(0, 'visitor');
    assert.equal((await v2.request({ type: 'hello', site: site.key, attributes: { plan: 'Pro' } })).type, 'welcome');
    const b = (await v2.ok({ type: 'conversation.start', form: { name: 'Han Meimei', message: 'hello' } })).conversation.id;
    await waitUntil(async () => (await ruleMessages(b)).length >= 2, { what: 'both actions ran' });
    const out = (await ruleMessages(b)).filter((m) => m.priv !== '1').map((m) => m.body);
    assert.deepEqual(out, ['Hello Han Meimei, your plan is Pro.', 'Han Meimei您好']);
    named.terminate();
    v2.terminate();
});

it('canned replies: unknown variables and shortcuts the composer cannot type are refused; scope can be changed', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const ag = await env.addAgent({ site });
    const agentToken = await env.login(0, ag.email, ag.password);
    const bad = [
        [{ shortcut: 'x', body: 'Hi {customer_nmae}' }, /unknown variables: \{customer_nmae\}/],
        [{ shortcut: 'x', body: 'You owe {amount}, {customer_name}' }, /unknown variables: \{amount\}/],
        [{ shortcut: 'my greet/x', body: 'Hi' }, /shortcut must be/],
        [{ shortcut: 'a/b', body: 'Hi' }, /shortcut must be/],
        [{ shortcut: 'a b', body: 'Hi' }, /shortcut must be/],
    ];
    for (const [body, re] of bad) {
        const r = await api(token, 'POST', '/api/v1/canned', { site: site.key, scope: 'site', title: 't', ...body });
        assert.equal(r.status, 400, `${JSON.stringify(body)} -> ${r.status} ${r.text}`);
        assert.match(r.json.error.message, re);
    }
    // known variables, Chinese aliases, attributes and braces that are no placeholder pass
    const ok = await api(token, 'POST', '/api/v1/canned', {
        site: site.key, scope: 'agent', shortcut: 'greet', title: 'Greet',
        body: 'Hi {customer_name} {客户姓名} {attr.plan-name} #{ticket_number} {agent_name}: {"json": 1} { spaced }',
    });
    assert.equal(ok.status, 201, ok.text);
    const id = ok.json.canned.id;
    assert.equal(ok.json.canned.scope, 'agent');
    const patchBad = await api(token, 'PATCH', `/api/v1/canned/${id}`, { body: 'Hi {customer_nmae}' });
    assert.equal(patchBad.status, 400);
    assert.equal((await api(token, 'PATCH', `/api/v1/canned/${id}`, { shortcut: 'my greet/x' })).status, 400);
    assert.equal((await api(token, 'PATCH', `/api/v1/canned/${id}`, { scope: 'team' })).status, 400);
    // the admin shares it: every agent of the site sees it, once
    const shared = await api(token, 'PATCH', `/api/v1/canned/${id}`, { scope: 'site' });
    assert.equal(shared.status, 200, shared.text);
    assert.equal(shared.json.canned.scope, 'site');
    const seen = await api(agentToken, 'GET', `/api/v1/canned?site=${site.key}`);
    assert.deepEqual(seen.json.canned.map((c) => [c.id, c.scope]), [[id, 'site']]);
    // an agent may not change a shared reply's scope (or a reply not theirs: not found alike)
    assert.equal((await api(agentToken, 'PATCH', `/api/v1/canned/${id}`, { scope: 'agent' })).status, 403);
    // and back to the admin's own: the agent no longer sees it
    const mine = await api(token, 'PATCH', `/api/v1/canned/${id}`, { scope: 'agent' });
    assert.equal(mine.json.canned.scope, 'agent');
    assert.deepEqual((await api(agentToken, 'GET', `/api/v1/canned?site=${site.key}`)).json.canned, []);
    assert.deepEqual((await api(token, 'GET', `/api/v1/canned?site=${site.key}`)).json.canned.map((c) => c.id), [id]);
    const other = await api(agentToken, 'PATCH', `/api/v1/canned/${id}`, { scope: 'site' });
    const none = await api(agentToken, 'PATCH', `/api/v1/canned/c_nope`, { scope: 'site' });
    assert.equal(other.status, 404);
    assert.deepEqual(other.json, none.json);
});

it('widget settings merge: a patch of the survey keeps the greeting and colour, null removes one member', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const url = `/api/v1/admin/sites/${site.key}`;
    const p1 = await api(token, 'PATCH', url, { widget: { color: '#112233', greeting_en: 'Hi!', categories: ['billing'], survey: { nps: true, ces: true } } });
    assert.equal(p1.status, 200, p1.text);
    const p2 = await api(token, 'PATCH', url, { widget: { survey: { ces: false } } });
    assert.equal(p2.status, 200, p2.text);
    assert.deepEqual(p2.json.site.widget, { color: '#112233', greeting_en: 'Hi!', categories: ['billing'], survey: { nps: true, ces: false } });
    const p3 = await api(token, 'PATCH', url, { widget: { greeting_en: null, categories: [] } });
    assert.deepEqual(p3.json.site.widget, { color: '#112233', categories: [], survey: { nps: true, ces: false } });
    // what the widget gets in its welcome follows the merged settings
    const v = await env.visitor(0, { site });
    assert.equal(v.welcome.site.color, '#112233');
    v.terminate();
    // a refused patch changes nothing
    const bad = await api(token, 'PATCH', url, { widget: { color: 'red', greeting_en: 'changed' } });
    assert.equal(bad.status, 400);
    assert.deepEqual((await api(token, 'GET', '/api/v1/admin/sites')).json.sites.find((s) => s.key === site.key).widget, p3.json.site.widget);
});

it('an admin connection gets each SLA breach once, and a stored notice of it (bug 13)', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const r = await api(token, 'PUT', `/api/v1/admin/sites/${site.key}/sla`, { policies: { normal: { first_response_s: 1 } } });
    assert.equal(r.status, 200, r.text);
    assert.equal((await api(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { auto_assign: false })).status, 200);
    // nobody is online to take it: a ticket at once, breached a second later
    const v = await env.visitor(0, { site });
    const start = await v.ok({ type: 'conversation.start', form: { subject: 'Refund', message: 'where is my refund?' } });
    const cid = start.conversation.id;
    assert.ok(start.conversation.ticket);
    const boss = await env.agent(0, { token });
    const notice = await boss.waitFor((f) => f.type === 'notice' && f.notice.conversation_id === cid, { timeout: 15_000, what: 'breach notice' });
    assert.equal(notice.notice.kind, 'sla');
    assert.match(notice.notice.title, /^SLA breached: ticket #\d+ \(first_response\)$/);
    assert.equal(notice.notice.body, 'Refund');
    await sleep(500);
    const breaches = boss.frames.filter((f) => f.type === 'sla.breached' && f.conversation_id === cid);
    assert.equal(breaches.length, 1, JSON.stringify(breaches));
    // the notice stays for later (the bell's list)
    const kept = (await api(token, 'GET', '/api/v1/notices')).json.notices.filter((n) => n.conversation_id === cid);
    assert.deepEqual(kept.map((n) => n.kind), ['sla']);
    v.terminate();
    boss.terminate();
});

it('a breached ticket closed while waiting on the customer is stopped, not paused (bug 6)', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    assert.equal((await api(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { auto_assign: false })).status, 200);
    assert.equal((await api(token, 'PUT', `/api/v1/admin/sites/${site.key}/sla`, { policies: { normal: { first_response_s: 1 } } })).status, 200);
    const v = await env.visitor(0, { site });
    const start = await v.ok({ type: 'conversation.start', form: { message: 'still waiting' } });
    const cid = start.conversation.id;
    const n = start.conversation.ticket.number;
    const a = await env.agent(0, { token });
    await a.waitFor((f) => f.type === 'sla.breached' && f.conversation_id === cid, { timeout: 15_000, what: 'breach' });
    await a.ok({ type: 'conversation.accept', conversation_id: cid });
    let r = await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'pending' });
    assert.equal(r.conversation.ticket.sla.paused, true);
    r = await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'closed' });
    assert.equal(r.conversation.ticket.sla.paused, false, JSON.stringify(r.conversation.ticket));
    assert.deepEqual(r.conversation.ticket.sla.breached, ['first_response']);
    const t = (await api(token, 'GET', `/api/v1/tickets/${n}?site=${site.key}`)).json.ticket;
    assert.equal(t.status, 'closed');
    assert.equal(t.ticket.sla.paused, false);
    assert.deepEqual(t.ticket.sla.breached, ['first_response']);
    v.terminate();
    a.terminate();
});

it('a rule\'s "text" on conversation.created is the first message, not the subject (bug 8)', async () => {
    const site = await env.addSite();
    const { token } = await adminToken(site);
    const r = await api(token, 'POST', `/api/v1/admin/sites/${site.key}/rules`, {
        name: 'Refunds are high',
        trigger: { event: 'conversation.created' },
        conditions: [{ field: 'text', op: 'contains', value: 'refund' }],
        actions: [{ type: 'set_priority', priority: 'high' }],
    });
    assert.equal(r.status, 201, r.text);
    // a second rule tags every new conversation: once it has, the first rule was decided too
    const seen = await api(token, 'POST', `/api/v1/admin/sites/${site.key}/rules`, {
        name: 'Seen', trigger: { event: 'conversation.created' }, actions: [{ type: 'add_tags', tags: ['seen'] }],
    });
    assert.equal(seen.status, 201, seen.text);
    const v = await env.visitor(0, { site });
    const hit = (await v.ok({ type: 'conversation.start', form: { subject: 'Order 1042', message: 'I want a refund' } })).conversation.id;
    const miss = (await v.ok({ type: 'conversation.start', form: { subject: 'refund policy', message: 'Do you ship to Hangzhou?' } })).conversation.id;
    const field = async (cid, f) => env.redis.cmd('HGET', `cd:{s:${site.key}}:conv:${cid}`, f);
    for (const cid of [hit, miss]) await waitUntil(async () => (await field(cid, 'tags')).includes('seen'), { what: `rules ran on ${cid === hit ? 'the first' : 'the second'}` });
    assert.equal(await field(hit, 'priority'), 'high');
    assert.equal(await field(miss, 'priority'), 'normal');
    // the dry run reads it the same way
    const dry = async (cid) => (await api(token, 'POST', `/api/v1/admin/sites/${site.key}/rules/dry-run`, { conversation_id: cid, event: 'conversation.created' })).json.rules.find((x) => x.id === r.json.rule.id).would_fire;
    assert.equal(await dry(hit), true);
    assert.equal(await dry(miss), false);
    v.terminate();
});

it('availability: a visitor asks whether an agent is online now (bug 11)', async () => {
    const site = await env.addSite();
    const v = await env.visitor(0, { site });
    assert.equal(v.welcome.agents_online, false);
    let r = await v.ok({ type: 'availability' });
    assert.equal(r.agents_online, false);
    // an agent of the site comes online: the same connection learns it
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    await waitUntil(async () => (await v.ok({ type: 'availability' })).agents_online === true, { what: 'online' });
    await a.ok({ type: 'presence.set', status: 'away' });
    r = await v.ok({ type: 'availability' });
    assert.equal(r.agents_online, false);
    // an agent of another site does not count, and agents may not ask
    const other = await env.addSite();
    const ag2 = await env.addAgent({ site: other });
    const a2 = await env.agent(0, { email: ag2.email, password: ag2.password });
    assert.equal((await v.ok({ type: 'availability' })).agents_online, false);
    const bad = await a2.request({ type: 'availability', rid: 'x1' });
    assert.equal(bad.type, 'error');
    assert.equal(bad.code, 'forbidden');
    v.terminate();
    a.terminate();
    a2.terminate();
});
