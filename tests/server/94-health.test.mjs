// Customer health alerts (issue 8): the same customer (verified user id, else e-mail)
// opening more than health_threshold conversations of one category within
// health_window_days raises an alert for the site's admins (live `notice` frame, kept
// notices, GET /api/v1/alerts) and tags the conversation "repeat-contact"; at the
// threshold, for another category, another customer or outside the window: nothing.
import { useEnv, it, assert, waitUntil, rnd, redisCommand, hmacHex } from './harness.mjs';

const env = useEnv({ nodes: 1 });
const DAY = 86400000;
const call = (token, method, url, body) => env.http(0, url, { method, body, headers: { authorization: `Bearer ${token}` } });
const hkey = (site, category, email) => `cd:{s:${site.key}}:health:${category}:email:${email}`;
const zcard = async (key) => Number(await redisCommand(env.redis.sock, ['ZCARD', key]));

/** One conversation from a new visitor (a new browser) with this e-mail and category. */
async function open(site, email, category) {
    const v = await env.visitor(0, { site });
    const r = await v.ok({ type: 'conversation.start', form: { subject: `about ${category}`, message: 'hi', email, category } });
    v.terminate();
    return r.conversation.id;
}
/** Opens a conversation and waits until health_apply has counted it (no sleeping). */
async function openCounted(site, email, category, expectCount) {
    const cid = await open(site, email, category);
    const key = hkey(site, category, email.toLowerCase());
    await waitUntil(async () => (await zcard(key)) === expectCount, { what: `${key} to hold ${expectCount}` });
    return cid;
}
async function tagsOf(token, site, cid) {
    const r = await call(token, 'GET', `/api/v1/conversations?site=${site.key}&per_page=100`);
    return r.json.conversations.find((c) => c.id === cid).tags;
}

it('the alert comes at the (N+1)th conversation of a category, not at the Nth; others do not count', async () => {
    const site = await env.addSite();
    const boss = await env.addAgent({ site, role: 'admin' });
    const plain = await env.addAgent({ site });
    const adminWs = await env.agent(0, { email: boss.email, password: boss.password });
    const agentWs = await env.agent(0, { email: plain.email, password: plain.password });
    const token = adminWs.token;
    let r = await call(token, 'GET', `/api/v1/admin/sites`);
    const s0 = r.json.sites.find((s) => s.key === site.key);
    assert.equal(s0.health_threshold, 3, 'default N');
    assert.equal(s0.health_window_days, 30, 'default D');

    const email = `Cust_${rnd(3)}@Example.com`;
    const cids = [];
    for (let i = 1; i <= 3; i++) cids.push(await openCounted(site, i === 1 ? email : email.toLowerCase(), 'billing', i));
    // at the threshold: nothing
    r = await call(token, 'GET', `/api/v1/alerts?site=${site.key}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.alerts, []);
    assert.ok(!adminWs.frames.some((f) => f.type === 'notice'));
    for (const cid of cids) assert.ok(!(await tagsOf(token, site, cid)).includes('repeat-contact'));
    // another category and another customer do not count
    await openCounted(site, email, 'tech', 1);
    await openCounted(site, `other_${rnd(3)}@example.com`, 'billing', 1);
    assert.deepEqual((await call(token, 'GET', `/api/v1/alerts?site=${site.key}`)).json.alerts, []);

    // the 4th billing conversation within 30 days: alert, notice, tag
    const fourth = await open(site, email, 'billing');
    const n = await adminWs.waitFor((f) => f.type === 'notice' && f.notice.conversation_id === fourth, { what: 'notice frame' });
    assert.equal(n.notice.kind, 'customer_health');
    assert.equal(n.notice.site, site.key);
    assert.match(n.notice.title, /opened 4 "billing" conversations in 30 days/);
    await waitUntil(async () => (await tagsOf(token, site, fourth)).includes('repeat-contact'), { what: 'the tag' });
    r = await call(token, 'GET', `/api/v1/alerts?site=${site.key}`);
    assert.equal(r.json.alerts.length, 1);
    const a = r.json.alerts[0];
    assert.deepEqual([a.conversation_id, a.customer, a.category, a.count, a.threshold, a.window_days], [fourth, email.toLowerCase(), 'billing', 4, 3, 30]);
    r = await call(token, 'GET', '/api/v1/notices');
    assert.equal(r.json.notices[0].conversation_id, fourth);
    // only admins are told; agents cannot read alerts
    assert.ok(!agentWs.frames.some((f) => f.type === 'notice'));
    assert.equal((await call(agentWs.token, 'GET', `/api/v1/alerts?site=${site.key}`)).status, 403);
    assert.deepEqual((await call(agentWs.token, 'GET', '/api/v1/notices')).json.notices, []);
    for (const cid of cids) assert.ok(!(await tagsOf(token, site, cid)).includes('repeat-contact'), 'earlier ones are not tagged');
});

it('only conversations within the window count; N and D are site settings', async () => {
    const site = await env.addSite();
    const boss = await env.addAgent({ site, role: 'admin' });
    const token = await env.login(0, boss.email, boss.password);
    let r = await call(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { health_threshold: 0 });
    assert.equal(r.status, 400);
    r = await call(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { health_window_days: 'x' });
    assert.equal(r.status, 400);
    r = await call(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { health_threshold: 2, health_window_days: 7 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.site.health_threshold, 2);
    assert.equal(r.json.site.health_window_days, 7);
    // two earlier conversations 8 days ago (outside 7 days) and two 6 days ago (inside)
    const now = Date.now();
    const old = `old_${rnd(3)}@example.com`;
    const recent = `recent_${rnd(3)}@example.com`;
    await redisCommand(env.redis.sock, ['ZADD', hkey(site, 'billing', old), String(now - 8 * DAY), 'c_old1', String(now - 8 * DAY + 1), 'c_old2']);
    await redisCommand(env.redis.sock, ['ZADD', hkey(site, 'billing', recent), String(now - 6 * DAY), 'c_r1', String(now - 6 * DAY + 1), 'c_r2']);
    const c1 = await openCounted(site, old, 'billing', 1); // the old ones are dropped
    const c2 = await openCounted(site, recent, 'billing', 3);
    await waitUntil(async () => (await call(token, 'GET', `/api/v1/alerts?site=${site.key}`)).json.alerts.length === 1, { what: 'one alert' });
    const alerts = (await call(token, 'GET', `/api/v1/alerts`)).json.alerts.filter((x) => x.site === site.key);
    assert.equal(alerts.length, 1);
    assert.equal(alerts[0].conversation_id, c2);
    assert.equal(alerts[0].count, 3);
    await waitUntil(async () => (await tagsOf(token, site, c2)).includes('repeat-contact'), { what: 'the tag' });
    assert.ok(!(await tagsOf(token, site, c1)).includes('repeat-contact'));
    // no category or no identity: not counted
    const v = await env.visitor(0, { site });
    await v.ok({ type: 'conversation.start', form: { subject: 'x', message: 'hi', category: 'billing' } });
    v.terminate();
});

it('an identified customer is counted by user id, whatever e-mail each conversation gives', async () => {
    const secret = `sec-${rnd(12)}`;
    const site = await env.addSite({ secret });
    const boss = await env.addAgent({ site, role: 'admin' });
    const adminWs = await env.agent(0, { email: boss.email, password: boss.password });
    const r = await call(adminWs.token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { health_threshold: 1 });
    assert.equal(r.status, 200, r.text);
    const uid = `user-${rnd(4)}`;
    const cids = [];
    for (const email of [`a_${rnd(3)}@example.com`, `b_${rnd(3)}@example.com`]) {
        const v = await env.visitor(0, { site, user: { id: uid, hash: hmacHex(secret, uid) } });
        cids.push((await v.ok({ type: 'conversation.start', form: { subject: 's', message: 'hi', email, category: 'refund' } })).conversation.id);
        v.terminate();
    }
    const n = await adminWs.waitFor((f) => f.type === 'notice' && f.notice.kind === 'customer_health', { what: 'notice' });
    assert.equal(n.notice.conversation_id, cids[1]);
    assert.match(n.notice.title, new RegExp(`Repeat contact: ${uid} opened 2 "refund"`));
    assert.equal(await zcard(`cd:{s:${site.key}}:health:refund:user:${uid}`), 2);
});
