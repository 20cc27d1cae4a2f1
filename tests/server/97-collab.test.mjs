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
