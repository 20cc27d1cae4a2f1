// Agents work together (issue 19): collision detection (who views a conversation and
// what they write, live across nodes, gone after a node's kill -9 without clean-up),
// the site setting "only the assignee may reply" with its audited take-over, and
// mentions in private notes (one notice per mentioned agent, kept until read).
import { useEnv, it, assert, assertError, rnd, sleep, waitUntil, SCALE } from './harness.mjs';

const TTL = 1500;
const ARGS = ['--viewer-ttl-ms', String(TTL)];
const env = useEnv({ nodes: 2, args: ARGS });

const cmid = () => `cm-${rnd(6)}`;
const viewersOf = (f) => (f.viewers || []).map((v) => `${v.name}:${v.typing ?? '-'}`).sort();
const isViewers = (cid, pred = () => true) => (f) => f.type === 'viewers' && f.conversation_id === cid && pred(f);

async function adminToken(site, node = 0) {
    const email = `boss_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    const a = await env.admin('agent-add', '--email', email, '--password', password, '--name', 'Boss', '--site', site.key, '--role', 'admin');
    return { token: await env.login(node, email, password), id: a.id };
}

function api(token, method, url, body) {
    return env.http(0, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

/** A second agent of the site, on node `node`, following the conversation (history). */
async function colleague(site, cid, node, name) {
    const ag = await env.addAgent({ site, name });
    const c = await env.agent(node, { email: ag.email, password: ag.password, label: `${name}@n${node + 1}` });
    await c.ok({ type: 'history', conversation_id: cid });
    return { ...ag, c };
}

it('viewers and what they write are seen live on the other node, never by the visitor', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site, name: 'Alice' });
    const { a, v, cid } = await env.chat({ site, aNode: 0, vNode: 1 });
    void ag;
    const bob = await colleague(site, cid, 1, 'Bob');
    let r = await bob.c.ok({ type: 'viewing', conversation_id: cid, state: true });
    assert.deepEqual(viewersOf(r), ['Bob:-']);
    assert.equal(r.refresh_ms, Math.floor(TTL / 3));
    await a.ok({ type: 'history', conversation_id: cid });
    const aName = a.welcome.agent.name;
    r = await a.ok({ type: 'viewing', conversation_id: cid, state: true, typing: 'note' });
    assert.deepEqual(viewersOf(r), [`${aName}:note`, 'Bob:-'].sort());
    const ev = await bob.c.waitFor(isViewers(cid, (f) => f.viewers.length === 2), { what: 'viewers on node 2' });
    assert.deepEqual(viewersOf(ev), [`${aName}:note`, 'Bob:-'].sort());
    // a refresh that changes nothing publishes nothing
    const mark = bob.c.mark();
    await a.ok({ type: 'viewing', conversation_id: cid, state: true, typing: 'note' });
    await a.ok({ type: 'viewing', conversation_id: cid, state: true, typing: 'reply' });
    await bob.c.waitFor(isViewers(cid, (f) => viewersOf(f).includes(`${aName}:reply`)), { from: mark });
    assert.equal(bob.c.filter(isViewers(cid), mark).length, 1, 'one event for one change');
    // leaving (or closing the dashboard) is seen at once
    await a.ok({ type: 'viewing', conversation_id: cid, state: false });
    await bob.c.waitFor(isViewers(cid, (f) => f.viewers.length === 1), { what: 'Alice left' });
    await a.ok({ type: 'viewing', conversation_id: cid, state: true });
    await bob.c.waitFor(isViewers(cid, (f) => f.viewers.length === 2));
    a.close();
    const left = await bob.c.waitFor(isViewers(cid, (f) => f.viewers.length === 1), { what: 'closed dashboard' });
    assert.deepEqual(viewersOf(left), ['Bob:-']);
    assert.equal(v.filter((f) => f.type === 'viewers').length, 0, 'the visitor never sees viewers');
    // a visitor cannot send it
    assertError(await v.request({ type: 'viewing', conversation_id: cid, state: true }), 'forbidden', 'visitor viewing');
    await bob.c.ok({ type: 'viewing', conversation_id: cid, state: false });
    const key = `cd:{s:${site.key}}:conv:${cid}:viewers`;
    assert.equal(await env.redis.cmd('EXISTS', key, `${key}:info`), 0, 'nobody looks: no key');
});

it('one conversation per connection: opening another leaves the first at once', async () => {
    const site = await env.addSite();
    const one = await env.chat({ site, aNode: 0, vNode: 0 });
    const two = await env.chat({ site, aNode: 0, vNode: 0 });
    const dan = await colleague(site, one.cid, 1, 'Dan');
    await dan.c.ok({ type: 'history', conversation_id: two.cid });
    await dan.c.ok({ type: 'viewing', conversation_id: one.cid, state: true });
    await one.a.ok({ type: 'history', conversation_id: one.cid });
    let r = await one.a.ok({ type: 'viewing', conversation_id: one.cid, state: true });
    assert.ok(viewersOf(r).includes('Dan:-'));
    const mark = one.a.mark();
    r = await dan.c.ok({ type: 'viewing', conversation_id: two.cid, state: true });
    assert.deepEqual(viewersOf(r), ['Dan:-']);
    const ev = await one.a.waitFor(isViewers(one.cid, (f) => !viewersOf(f).includes('Dan:-')), { from: mark, what: 'Dan left one' });
    assert.equal(ev.viewers.length, 1);
});

it('the viewers of a node killed with -9 expire without clean-up', async () => {
    const site = await env.addSite();
    const { a, cid } = await env.chat({ site, aNode: 0, vNode: 0 });
    const victim = await env.addNode(ARGS, `n-victim-${rnd(2)}`);
    const vi = env.nodes.indexOf(victim);
    const carol = await colleague(site, cid, vi, 'Carol');
    await carol.c.ok({ type: 'viewing', conversation_id: cid, state: true, typing: 'reply' });
    await a.ok({ type: 'history', conversation_id: cid });
    let r = await a.ok({ type: 'viewing', conversation_id: cid, state: true });
    assert.ok(viewersOf(r).includes('Carol:reply'));
    await victim.kill9();
    await carol.c.waitClose(10_000);
    // Alice's dashboard keeps refreshing; within the ttl Carol is gone, and the refresh
    // that found her expired told the others too
    const mark = a.mark();
    await waitUntil(async () => {
        r = await a.ok({ type: 'viewing', conversation_id: cid, state: true });
        return !viewersOf(r).some((x) => x.startsWith('Carol'));
    }, { timeout: 4 * TTL * SCALE, interval: TTL / 3, what: 'Carol expired' });
    await a.waitFor(isViewers(cid, (f) => f.viewers.length === 1), { from: mark });
    await a.ok({ type: 'viewing', conversation_id: cid, state: false });
    await sleep(50);
    const key = `cd:{s:${site.key}}:conv:${cid}:viewers`;
    assert.equal(await env.redis.cmd('EXISTS', key, `${key}:info`), 0);
});

it('only the assignee may reply: another agent is refused until it takes over (noted and audited)', async () => {
    const site = await env.addSite();
    const boss = await adminToken(site);
    const { a, v, cid } = await env.chat({ site, aNode: 0, vNode: 0 });
    const bob = await colleague(site, cid, 1, 'Bob');
    // off by default: anyone of the site may reply
    await bob.c.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'before the rule' });
    let r = await api(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { only_assignee_reply: true });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.site.only_assignee_reply, true);
    assert.equal((await api(boss.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { only_assignee_reply: 'yes' })).status, 400);
    const refused = await bob.c.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'hi' });
    assertError(refused, 'forbidden', 'a reply of a non-assignee');
    assert.match(refused.message, /only the assignee may reply/);
    // notes are fine, and the assignee replies as before
    await bob.c.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'a note', private: true });
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'from the assignee' });
    // take over: a transfer to itself
    r = await bob.c.ok({ type: 'conversation.transfer', conversation_id: cid, agent_id: bob.id });
    assert.equal(r.conversation.assignee.id, bob.id);
    const note = await a.waitFor((f) => f.type === 'message.created' && f.conversation_id === cid && /^Taken over from/.test(f.message.body));
    assert.equal(note.message.private, true);
    assert.equal(note.message.body, `Taken over from ${a.welcome.agent.name} by Bob`);
    const id = cmid();
    const mine = await bob.c.ok({ type: 'message.send', conversation_id: cid, client_msg_id: id, body: 'mine now' });
    await v.waitFor((f) => f.type === 'message.created' && f.message.body === 'mine now');
    assert.equal(v.filter((f) => f.type === 'message.created' && /^Taken over/.test(f.message.body)).length, 0, 'the visitor sees no note');
    // the former assignee is refused now; Bob's retry of a stored reply is still its message
    assertError(await a.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'late' }), 'forbidden');
    const again = await bob.c.ok({ type: 'message.send', conversation_id: cid, client_msg_id: id, body: 'mine now' });
    assert.equal(again.message.id, mine.message.id);
    r = await api(boss.token, 'GET', `/api/v1/admin/sites/${site.key}/audit?limit=50`);
    assert.equal(r.status, 200, r.text);
    const e = r.json.entries.find((x) => x.action === 'conversation.take_over' && x.target === cid);
    assert.ok(e, 'take-over audited');
    assert.equal(e.actor, bob.id);
    assert.equal(e.before.assignee, a.agentId);
    assert.equal(e.after.assignee, bob.id);
});

it('tenant walls: an agent of site B neither sees nor touches the viewers of site A', async () => {
    const A = await env.addSite();
    const B = await env.addSite();
    const { a, cid } = await env.chat({ site: A, aNode: 0, vNode: 0 });
    const agB = await env.addAgent({ site: B, name: 'Mallory' });
    const m = await env.agent(1, { email: agB.email, password: agB.password });
    assertError(await m.request({ type: 'viewing', conversation_id: cid, state: true }), 'not_found', 'viewing a foreign conversation');
    assertError(await m.request({ type: 'history', conversation_id: cid }), 'not_found');
    await a.ok({ type: 'history', conversation_id: cid });
    const r = await a.ok({ type: 'viewing', conversation_id: cid, state: true });
    assert.deepEqual(r.viewers.map((x) => x.id), [a.agentId], 'Mallory left no entry');
    await sleep(200);
    assert.equal(m.filter((f) => f.type === 'viewers').length, 0);
    // a conversation id naming site A but unknown: the same answer
    assertError(await m.request({ type: 'viewing', conversation_id: `c_nope.${A.key}`, state: true }), 'not_found');
});

it('a mention in a note notifies each mentioned agent (or a team\'s members) once, even when resent; kept until read', async () => {
    const site = await env.addSite();
    await env.admin('team-add', '--site', site.key, '--key', 'billing', '--name', 'Billing desk');
    const { a, v, cid } = await env.chat({ site, aNode: 0, vNode: 0 });
    const alice = await env.addAgent({ site, name: 'Alice Chen' });
    const al = await env.agent(1, { email: alice.email, password: alice.password, label: 'alice@n2' });
    const bob = await env.admin('agent-add', '--email', `bob_${rnd(3)}@example.com`, '--password', 'pw-bob-123456', '--name', 'Bob', '--site', site.key, '--team', 'billing');
    const bo = await env.agent(1, { email: bob.email, password: 'pw-bob-123456', label: 'bob@n2' });
    let r;
    const isMention = (f) => f.type === 'notice' && f.notice.kind === 'mention' && f.notice.conversation_id === cid;
    const id = cmid();
    const note = { type: 'message.send', conversation_id: cid, client_msg_id: id, private: true, body: '@alice chen please check, and @Billing-desk? no: @billing too; @Nobody, @Alice' };
    const sent = await a.ok(note);
    const n1 = await al.waitFor(isMention, { what: 'Alice notified on node 2' });
    assert.equal(n1.notice.title, `${a.welcome.agent.name} mentioned you`);
    assert.equal(n1.notice.site, site.key);
    assert.match(n1.notice.body, /^@alice chen please check/);
    await bo.waitFor(isMention, { what: 'Bob notified through his team' });
    // resent with the same client_msg_id (a retry after a lost ok): the same message, no new notice
    const again = await a.ok(note);
    assert.equal(again.message.id, sent.message.id);
    await sleep(300);
    assert.equal(al.filter(isMention).length, 1, 'Alice: once (named twice, the note resent)');
    assert.equal(bo.filter(isMention).length, 1, 'Bob: once');
    assert.equal(a.filter(isMention).length, 0, 'the author is not notified');
    assert.equal(v.filter((f) => f.type === 'notice').length, 0);
    // a public reply never mentions
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'Hi @Alice Chen' });
    await sleep(200);
    assert.equal(al.filter(isMention).length, 1);
    // the Mentions view: unread until read
    const aliceToken = al.token;
    r = await api(aliceToken, 'GET', '/api/v1/mentions');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.mentions.map((m) => m.id), [n1.notice.id]);
    r = await api(aliceToken, 'GET', '/api/v1/notices');
    assert.ok(r.json.notices.some((n) => n.id === n1.notice.id && n.kind === 'mention'), 'also among the notices');
    r = await api(aliceToken, 'POST', '/api/v1/mentions/read', { site: site.key, ids: [n1.notice.id] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { read: 1, unread: 0 });
    assert.deepEqual((await api(aliceToken, 'GET', '/api/v1/mentions')).json.mentions, []);
    r = await api(bo.token, 'POST', '/api/v1/mentions/read', { site: site.key, all: true });
    assert.deepEqual(r.json, { read: 1, unread: 0 });
    assert.equal((await api(bo.token, 'POST', '/api/v1/mentions/read', { site: site.key })).status, 400);
});

it('tenant walls: nobody of another site can be mentioned, nor read or clear its mentions', async () => {
    const A = await env.addSite();
    const B = await env.addSite();
    const { a, cid } = await env.chat({ site: A, aNode: 0, vNode: 0 });
    const agB = await env.addAgent({ site: B, name: 'Zed Outsider' });
    const zb = await env.agent(1, { email: agB.email, password: agB.password });
    const agA = await env.addAgent({ site: A, name: 'Yan' });
    const ya = await env.agent(0, { email: agA.email, password: agA.password });
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), private: true, body: '@Zed Outsider and @Yan look' });
    await ya.waitFor((f) => f.type === 'notice' && f.notice.kind === 'mention');
    await sleep(300);
    assert.equal(zb.filter((f) => f.type === 'notice').length, 0, 'an agent of site B is never notified');
    assert.deepEqual((await api(zb.token, 'GET', '/api/v1/mentions')).json.mentions, []);
    // site B's agent cannot read or clear site A's mentions, nor name site A (same answer as an unknown site)
    const other = await api(zb.token, 'POST', '/api/v1/mentions/read', { site: A.key, all: true });
    const unknown = await api(zb.token, 'POST', '/api/v1/mentions/read', { site: `nope_${rnd(3)}`, all: true });
    assert.equal(other.status, 404, other.text);
    assert.equal(unknown.status, 404);
    assert.equal(other.json.error.code, unknown.json.error.code);
    assert.equal((await api(zb.token, 'GET', `/api/v1/mentions?site=${A.key}`)).json.mentions?.length ?? 0, 0);
    // site B's agent cannot post a note into site A's conversation either
    const nope = await zb.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), private: true, body: '@Yan hi' });
    assertError(nope, 'not_found');
    assert.equal((await api(ya.token, 'GET', '/api/v1/mentions')).json.mentions.length, 1);
});
