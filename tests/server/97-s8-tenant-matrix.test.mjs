// RELIABILITY S8, the cross-tenant matrix: tenant B's admin, agent and visitor against
// every kind of tenant A resource, over the HTTP API (conversations, visitors, canned
// replies, teams, agents, SLA, webhooks and deliveries, rules, knowledge base, alerts,
// reports, tickets) and over WebSocket (send, history, typing, read, accept, update,
// transfer, resume). Pass: no call succeeds or shows anything of A's, each answer is exactly the answer to the same
// call naming a resource that does not exist, and A's data is unchanged after. The
// shared-agent route (PATCH of an agent who also serves A, by B's admin) is refused for
// A's parts (the takeover itself is 97-tenant-walls').
import http from 'node:http';
import { after } from 'node:test';
import { useEnv, it, assert, rnd, waitUntil } from './harness.mjs';

// site A's webhook points at this receiver (loopback, allowed by webhook_allow_hosts)
const hits = [];
const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
        hits.push(req.url);
        res.end('ok');
    });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
after(() => receiver.close());
const HOOK_HOST = `127.0.0.1:${receiver.address().port}`;

const env = useEnv({ nodes: 1, args: ['--webhook-allow-hosts', HOOK_HOST, '--webhook-retry-base-ms', '200'] });

const call = (token, method, url, body) =>
    env.http(0, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });

/** The same id with its random part changed: well formed, but nothing has it. */
function twin(id) {
    const s = String(id);
    const dot = s.indexOf('.');
    const head = dot < 0 ? s : s.slice(0, dot);
    const tail = dot < 0 ? '' : s.slice(dot);
    const us = head.indexOf('_') + 1; // keep a type prefix such as c_, v_, wh_
    let out = head.slice(0, us);
    for (const ch of head.slice(us)) {
        if (/[0-9]/.test(ch)) out += String((Number(ch) + 3) % 10);
        else if (/[a-f]/.test(ch)) out += 'abcdef'[('abcdef'.indexOf(ch) + 2) % 6];
        else if (/[g-z]/.test(ch)) out += 'ghijklmnopqrstuvwxyz'[('ghijklmnopqrstuvwxyz'.indexOf(ch) + 5) % 20];
        else if (/[A-Z]/.test(ch)) out += String.fromCharCode(((ch.charCodeAt(0) - 65 + 7) % 26) + 65);
        else out += ch;
    }
    assert.notEqual(out + tail, s);
    return out + tail;
}

const strip = (r) => ({ status: r.status, body: r.json ?? r.text });

it('S8: B\'s admin and agent against every A resource over HTTP: no success, answered like a resource that does not exist', async () => {
    const A = await env.addSite();
    const B = await env.addSite();
    const NONE = `zz${rnd(3)}`; // a site key nobody has
    await env.admin('team-add', '--site', A.key, '--key', 'a-team', '--name', 'A team');
    await env.admin('team-add', '--site', B.key, '--key', 'b-team', '--name', 'B team');
    const adminA = await env.addAgent({ site: A, role: 'admin' });
    const tokA = await env.login(0, adminA.email, adminA.password);
    const agentAOnly = await env.addAgent({ site: A });
    const shared = await env.addAgent({ sites: [A, B] });
    const adminB = await env.addAgent({ site: B, role: 'admin' });
    const tokB = await env.login(0, adminB.email, adminB.password);
    const agentB = await env.addAgent({ site: B });
    const tokAgentB = await env.login(0, agentB.email, agentB.password);

    // A's resources, made by A's admin
    const { cid, v } = await env.chat({ site: A });
    const visitorId = v.visitorId;
    let r = await call(tokA, 'POST', '/api/v1/canned', { site: A.key, scope: 'site', shortcut: `s${rnd(2)}`, title: 'T', body: 'B' });
    assert.equal(r.status, 201, r.text);
    const cannedId = r.json.canned.id;
    r = await call(tokA, 'POST', `/api/v1/admin/sites/${A.key}/webhooks`, { url: `http://${HOOK_HOST}/a`, events: ['conversation.created'] });
    assert.equal(r.status, 201, r.text);
    const hookId = r.json.webhook.id;
    r = await call(tokA, 'POST', `/api/v1/admin/sites/${A.key}/webhooks/${hookId}/test`);
    assert.equal(r.status, 202, r.text);
    const deliveryId = r.json.delivery.id;
    r = await call(tokA, 'POST', `/api/v1/admin/sites/${A.key}/rules`, {
        name: 'r',
        trigger: { event: 'conversation.created' },
        actions: [{ type: 'notify_admins' }],
    });
    assert.equal(r.status, 201, r.text);
    const ruleId = r.json.rule.id;
    r = await call(tokA, 'POST', `/api/v1/kb/sites/${A.key}/articles`, { title: 'Refunds', body: 'Refund rules', status: 'published' });
    assert.equal(r.status, 201, r.text);
    const articleId = r.json.article.id;

    const q = 'from=2026-01-01&to=2026-01-31';
    // [method, path for A's resource, path for one that does not exist, body]
    const matrix = [
        ['GET', `/api/v1/conversations?site=${A.key}`, `/api/v1/conversations?site=${NONE}`],
        ['GET', `/api/v1/tickets?site=${A.key}`, `/api/v1/tickets?site=${NONE}`],
        ['GET', `/api/v1/agents?site=${A.key}`, `/api/v1/agents?site=${NONE}`],
        ['GET', `/api/v1/teams?site=${A.key}`, `/api/v1/teams?site=${NONE}`],
        ['GET', `/api/v1/supervisor?site=${A.key}`, `/api/v1/supervisor?site=${NONE}`],
        ['GET', `/api/v1/visitors/${visitorId}`, `/api/v1/visitors/${twin(visitorId)}`],
        ['GET', `/api/v1/canned?site=${A.key}`, `/api/v1/canned?site=${NONE}`],
        ['POST', '/api/v1/canned', '/api/v1/canned', (s) => ({ site: s, scope: 'agent', shortcut: 'x', title: 'x', body: 'x' })],
        ['PATCH', `/api/v1/canned/${cannedId}`, `/api/v1/canned/${twin(cannedId)}`, { body: 'owned' }],
        ['PATCH', `/api/v1/canned/${cannedId}`, `/api/v1/canned/${twin(cannedId)}`, { scope: 'agent' }],
        ['DELETE', `/api/v1/canned/${cannedId}`, `/api/v1/canned/${twin(cannedId)}`],
        ['PATCH', `/api/v1/admin/sites/${A.key}`, `/api/v1/admin/sites/${NONE}`, { name: 'owned' }],
        ['GET', `/api/v1/admin/sites/${A.key}/teams`, `/api/v1/admin/sites/${NONE}/teams`],
        ['POST', `/api/v1/admin/sites/${A.key}/teams`, `/api/v1/admin/sites/${NONE}/teams`, { key: 'evil', name: 'Evil' }],
        ['PATCH', `/api/v1/admin/sites/${A.key}/teams/a-team`, `/api/v1/admin/sites/${NONE}/teams/a-team`, { name: 'owned' }],
        ['GET', `/api/v1/admin/agents?site=${A.key}`, `/api/v1/admin/agents?site=${NONE}`],
        ['POST', '/api/v1/admin/agents', '/api/v1/admin/agents', (s) => ({ email: `e${rnd(3)}@x.example`, password: 'long-enough-password', name: 'E', sites: [s], role: 'admin' })],
        ['PATCH', `/api/v1/admin/agents/${agentAOnly.id}`, `/api/v1/admin/agents/${twin(agentAOnly.id)}`, { password: 'attacker-passphrase-9' }],
        ['GET', `/api/v1/admin/sites/${A.key}/sla`, `/api/v1/admin/sites/${NONE}/sla`],
        ['PUT', `/api/v1/admin/sites/${A.key}/sla`, `/api/v1/admin/sites/${NONE}/sla`, { warn_at: 0.5 }],
        ['GET', `/api/v1/admin/sites/${A.key}/webhooks`, `/api/v1/admin/sites/${NONE}/webhooks`],
        ['POST', `/api/v1/admin/sites/${A.key}/webhooks`, `/api/v1/admin/sites/${NONE}/webhooks`, { url: `http://${HOOK_HOST}/b`, events: ['conversation.created'] }],
        ['GET', `/api/v1/admin/sites/${A.key}/webhooks/${hookId}`, `/api/v1/admin/sites/${NONE}/webhooks/${hookId}`],
        ['PATCH', `/api/v1/admin/sites/${A.key}/webhooks/${hookId}`, `/api/v1/admin/sites/${NONE}/webhooks/${hookId}`, { rotate_secret: true }],
        ['GET', `/api/v1/admin/sites/${A.key}/webhooks/${hookId}/deliveries`, `/api/v1/admin/sites/${NONE}/webhooks/${hookId}/deliveries`],
        ['POST', `/api/v1/admin/sites/${A.key}/webhooks/${hookId}/test`, `/api/v1/admin/sites/${NONE}/webhooks/${hookId}/test`],
        ['POST', `/api/v1/admin/sites/${A.key}/deliveries/${deliveryId}/redeliver`, `/api/v1/admin/sites/${NONE}/deliveries/${deliveryId}/redeliver`],
        ['DELETE', `/api/v1/admin/sites/${A.key}/webhooks/${hookId}`, `/api/v1/admin/sites/${NONE}/webhooks/${hookId}`],
        // B's admin naming B's site with A's ids
        ['GET', `/api/v1/admin/sites/${B.key}/webhooks/${hookId}`, `/api/v1/admin/sites/${B.key}/webhooks/${twin(hookId)}`],
        ['PATCH', `/api/v1/admin/sites/${B.key}/webhooks/${hookId}`, `/api/v1/admin/sites/${B.key}/webhooks/${twin(hookId)}`, { enabled: false }],
        ['POST', `/api/v1/admin/sites/${B.key}/deliveries/${deliveryId}/redeliver`, `/api/v1/admin/sites/${B.key}/deliveries/${twin(deliveryId)}/redeliver`],
        ['GET', `/api/v1/admin/sites/${A.key}/rules`, `/api/v1/admin/sites/${NONE}/rules`],
        ['POST', `/api/v1/admin/sites/${A.key}/rules`, `/api/v1/admin/sites/${NONE}/rules`, { name: 'x', trigger: { event: 'conversation.created' }, actions: [{ type: 'set_priority', value: 'low' }] }],
        ['PATCH', `/api/v1/admin/sites/${A.key}/rules/${ruleId}`, `/api/v1/admin/sites/${NONE}/rules/${ruleId}`, { enabled: false }],
        ['POST', `/api/v1/admin/sites/${A.key}/rules/reorder`, `/api/v1/admin/sites/${NONE}/rules/reorder`, { ids: [ruleId] }],
        ['POST', `/api/v1/admin/sites/${A.key}/rules/dry-run`, `/api/v1/admin/sites/${NONE}/rules/dry-run`, { conversation_id: cid }],
        ['POST', `/api/v1/admin/sites/${B.key}/rules/dry-run`, `/api/v1/admin/sites/${B.key}/rules/dry-run`, (s, own) => ({ conversation_id: own ? cid : twin(cid) })],
        ['DELETE', `/api/v1/admin/sites/${A.key}/rules/${ruleId}`, `/api/v1/admin/sites/${NONE}/rules/${ruleId}`],
        ['GET', `/api/v1/kb/sites/${A.key}/articles?status=draft`, `/api/v1/kb/sites/${NONE}/articles?status=draft`],
        ['POST', `/api/v1/kb/sites/${A.key}/articles`, `/api/v1/kb/sites/${NONE}/articles`, { title: 'x', body: 'x' }],
        ['GET', `/api/v1/kb/sites/${A.key}/articles/${articleId}`, `/api/v1/kb/sites/${NONE}/articles/${articleId}`],
        ['PATCH', `/api/v1/kb/sites/${A.key}/articles/${articleId}`, `/api/v1/kb/sites/${NONE}/articles/${articleId}`, { title: 'owned' }],
        ['DELETE', `/api/v1/kb/sites/${A.key}/articles/${articleId}`, `/api/v1/kb/sites/${NONE}/articles/${articleId}`],
        ['GET', `/api/v1/kb/sites/${A.key}/categories`, `/api/v1/kb/sites/${NONE}/categories`],
        ['GET', `/api/v1/kb/sites/${A.key}/search?q=refund&status=draft`, `/api/v1/kb/sites/${NONE}/search?q=refund&status=draft`],
        ['GET', `/api/v1/kb/suggest?conversation=${cid}`, `/api/v1/kb/suggest?conversation=${twin(cid)}`],
        ['GET', `/api/v1/alerts?site=${A.key}`, `/api/v1/alerts?site=${NONE}`],
        ['GET', `/api/v1/reports/summary?site=${A.key}&${q}`, `/api/v1/reports/summary?site=${NONE}&${q}`],
        ['GET', `/api/v1/reports/daily?site=${A.key}&${q}`, `/api/v1/reports/daily?site=${NONE}&${q}`],
        ['GET', `/api/v1/reports/agents?site=${A.key}&${q}`, `/api/v1/reports/agents?site=${NONE}&${q}`],
        ['GET', `/api/v1/reports/teams?site=${A.key}&${q}`, `/api/v1/reports/teams?site=${NONE}&${q}`],
    ];
    // control: the GET paths reach real resources (A's admin reads each of them)
    for (const [method, pathA] of matrix.filter((m) => m[0] === 'GET' && !m[1].includes(`/${B.key}/`))) {
        const own = await call(tokA, method, pathA);
        assert.equal(own.status, 200, `A's admin: ${method} ${pathA}: ${own.text}`);
    }
    const differ = [];
    for (const [who, tok] of [['admin B', tokB], ['agent B', tokAgentB]]) {
        for (const [method, pathA, pathNone, body] of matrix) {
            const bodyA = typeof body === 'function' ? body(A.key, true) : body;
            const bodyNone = typeof body === 'function' ? body(NONE, false) : body;
            const theirs = strip(await call(tok, method, pathA, bodyA));
            const none = strip(await call(tok, method, pathNone, bodyNone));
            const what = `${who}: ${method} ${pathA}`;
            // a list filtered by A's key may answer 200 with nothing in it, as for a site
            // that does not exist; anything of A's in an answer is a leak
            const text = JSON.stringify(theirs.body);
            const ids = [cid, visitorId, cannedId, hookId, deliveryId, ruleId, articleId].map((id) => `"id":${JSON.stringify(id)}`);
            for (const secret of [...ids, cid, visitorId, 'Refunds', 'A team'])
                assert.ok(!text.includes(secret), `${what} leaks ${secret}: ${text}`);
            // an error may echo the key or id the caller gave
            const echo = (x, given) => given.reduce((t, g) => t.split(g).join('<given>'), JSON.stringify(x));
            if (echo(theirs, [A.key]) !== echo(none, [NONE]))
                differ.push(`${what}: ${JSON.stringify(theirs)} but for nothing: ${JSON.stringify(none)}`);
        }
    }
    assert.deepEqual(differ, [], 'answers that tell A\'s resources from missing ones');

    // the shared-agent route: B's admin may not change the password of an agent who also
    // serves A (97-tenant-walls tries every field)
    r = await call(tokB, 'PATCH', `/api/v1/admin/agents/${shared.id}`, { password: 'attacker-passphrase-9' });
    assert.equal(r.status, 403, r.text);

    // A's data is untouched: A's admin still sees everything as it was
    assert.equal((await call(tokA, 'GET', `/api/v1/admin/sites/${A.key}/webhooks/${hookId}`)).json.webhook.enabled, true);
    const rules = (await call(tokA, 'GET', `/api/v1/admin/sites/${A.key}/rules`)).json.rules;
    assert.deepEqual(rules.map((x) => [x.id, x.enabled]), [[ruleId, true]]);
    assert.equal((await call(tokA, 'GET', `/api/v1/kb/sites/${A.key}/articles/${articleId}`)).json.article.title, 'Refunds');
    const canned = (await call(tokA, 'GET', `/api/v1/canned?site=${A.key}`)).json.canned.find((c) => c.id === cannedId);
    assert.equal(canned.body, 'B');
    assert.equal(canned.scope, 'site');
    const teams = (await call(tokA, 'GET', `/api/v1/admin/sites/${A.key}/teams`)).json.teams;
    assert.deepEqual(teams.map((t) => [t.key, t.name]), [['a-team', 'A team']]);
    assert.ok((await env.http(0, '/api/v1/login', { method: 'POST', body: { email: agentAOnly.email, password: agentAOnly.password } })).status === 200);
    const sites = (await call(tokA, 'GET', '/api/v1/admin/sites')).json.sites;
    assert.equal(sites.find((s) => s.key === A.key).name, A.record.name ?? `Site ${A.key}`);
    await waitUntil(() => hits.length >= 1, { what: 'A\'s own test delivery' });
    v.terminate();
});

it('S8: B\'s agent and visitor against A\'s conversation over WebSocket: every frame answered like a missing one', async () => {
    const A = await env.addSite();
    const B = await env.addSite();
    const { cid, v, a } = await env.chat({ site: A });
    const missing = twin(cid);
    const agB = await env.addAgent({ site: B });
    const outsider = await env.agent(0, { email: agB.email, password: agB.password });
    const frames = [
        { type: 'message.send', client_msg_id: `p${rnd(3)}`, body: 'probe' },
        { type: 'message.send', client_msg_id: `p${rnd(3)}`, body: 'probe', private: true },
        { type: 'history' },
        { type: 'typing', state: true },
        { type: 'read', seq: 1 },
        { type: 'conversation.accept' },
        { type: 'conversation.update', status: 'closed' },
        { type: 'conversation.update', priority: 'urgent' },
        { type: 'conversation.transfer', agent_id: outsider.agentId },
        { type: 'conversation.transfer', team: 'b-team' },
    ];
    const differ = [];
    for (const f of frames) {
        const theirs = await outsider.request({ ...f, conversation_id: cid });
        const none = await outsider.request({ ...f, conversation_id: missing });
        assert.equal(theirs.type, 'error', `agent B ${f.type}: ${JSON.stringify(theirs)}`);
        if (theirs.code !== none.code || theirs.message !== none.message)
            differ.push(`agent B ${f.type}: ${theirs.code}/${theirs.message} vs ${none.code}/${none.message}`);
    }
    // resume entries, after hello and in hello
    for (const entry of [{ after_seq: 0 }, { after_seq: 0, epoch: 'x' }]) {
        const from = outsider.mark();
        await outsider.ok({ type: 'resume', conversations: [{ conversation_id: cid, ...entry }, { conversation_id: missing, ...entry }] });
        const e1 = await outsider.waitFor((x) => x.type === 'error' && x.conversation_id === cid, { from, what: 'resume error for A\'s conversation' });
        const e2 = await outsider.waitFor((x) => x.type === 'error' && x.conversation_id === missing, { from, what: 'resume error for the missing one' });
        if (e1.code !== e2.code || e1.message !== e2.message) differ.push(`agent B resume: ${e1.code} vs ${e2.code}`);
        assert.equal(outsider.filter((x) => x.type === 'message.created' && x.conversation_id === cid, from).length, 0);
    }
    // a visitor of site B
    const vb = await env.visitor(0, { site: B });
    for (const f of [{ type: 'message.send', client_msg_id: `q${rnd(3)}`, body: 'probe' }, { type: 'history' }, { type: 'typing', state: true }, { type: 'read', seq: 1 }, { type: 'csat', score: 1 }]) {
        const theirs = await vb.request({ ...f, conversation_id: cid });
        const none = await vb.request({ ...f, conversation_id: missing });
        assert.equal(theirs.type, 'error', `visitor B ${f.type}: ${JSON.stringify(theirs)}`);
        if (theirs.code !== none.code || theirs.message !== none.message)
            differ.push(`visitor B ${f.type}: ${theirs.code}/${theirs.message} vs ${none.code}/${none.message}`);
    }
    assert.deepEqual(differ, []);
    // A's conversation is as it was: still open, assigned to A's agent, no probe stored,
    // and nobody in A saw B's typing
    const h = await a.ok({ type: 'history', conversation_id: cid });
    assert.ok(!h.messages.some((m) => m.body === 'probe'), 'a probe was stored');
    const conv = (await env.http(0, `/api/v1/conversations?site=${A.key}`, { headers: { authorization: `Bearer ${a.token}` } })).json.conversations.find(
        (c) => c.id === cid,
    );
    assert.equal(conv.status, 'open');
    assert.equal(conv.assignee?.id ?? conv.assignee, a.agentId);
    assert.equal(conv.priority ?? 'normal', 'normal');
    assert.equal(v.filter((x) => x.type === 'typing').length + a.filter((x) => x.type === 'typing').length, 0);
    v.terminate();
    a.terminate();
    outsider.terminate();
    vb.terminate();
});
