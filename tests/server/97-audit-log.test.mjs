// The audit log (security issue, item 9; docs/ops.md "Audit log", docs/api.md "Audit log"):
// every admin action and every login, failed login, logout and token revocation leaves an
// entry with who, when, from where and what changed (secrets masked), in the stream of the
// slot it changed, written by the same Redis function. A site's admins list it (filters,
// pages, CSV); an admin of another site and a plain agent do not. Node 1 trusts 127.0.0.1
// as its load balancer, so X-Forwarded-For names the client address the log records.
import { useEnv, it, assert, rnd } from './harness.mjs';

const HOOK = 'http://127.0.0.1:9/hook';
const env = useEnv({ nodes: 1, args: ['--trusted-proxies', '127.0.0.1', '--webhook-allow-hosts', '127.0.0.1:9'] });

const call = (token, method, url, body, addr = '198.51.100.7') =>
    env.http(0, url, { method, body, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'x-forwarded-for': addr } });

async function person(sites, role) {
    const ag = await env.addAgent({ sites, role, name: `${role ?? 'agent'} ${rnd(2)}` });
    return { ...ag, token: await env.login(0, ag.email, ag.password) };
}
async function audit(token, site, query = '') {
    const r = await call(token, 'GET', `/api/v1/admin/sites/${site.key}/audit${query}`);
    assert.equal(r.status, 200, r.text);
    return r.json;
}
const find = (entries, action, target) => entries.find((e) => e.action === action && (target === undefined || e.target === target));

let A, B, adminA, adminB;
async function setup() {
    if (A) return;
    A = await env.addSite();
    B = await env.addSite();
    adminA = await person([A], 'admin');
    adminB = await person([B], 'admin');
}

it('site settings, teams, SLA, canned replies, rules, webhooks and articles leave entries with before and after', async () => {
    await setup();
    const t = adminA.token;
    const base = `/api/v1/admin/sites/${A.key}`;
    const secret = `idsecret-${rnd(8)}`;
    assert.equal((await call(t, 'PATCH', base, { name: 'Renamed A', identity_secret: secret, auto_close_s: 600 })).status, 200);
    assert.equal((await call(t, 'POST', `${base}/teams`, { key: 'billing', name: 'Billing' })).status, 201);
    assert.equal((await call(t, 'PATCH', `${base}/teams/billing`, { name: 'Billing desk' })).status, 200);
    assert.equal((await call(t, 'PUT', `${base}/sla`, { policies: { high: { first_response_s: 300 } } })).status, 200);
    let r = await call(t, 'POST', '/api/v1/canned', { site: A.key, scope: 'site', shortcut: 'hi', title: 'Hello', body: 'Hi there' });
    assert.equal(r.status, 201, r.text);
    const canned = r.json.canned.id;
    assert.equal((await call(t, 'PATCH', `/api/v1/canned/${canned}`, { body: 'Hello there' })).status, 200);
    assert.equal((await call(t, 'DELETE', `/api/v1/canned/${canned}`)).status, 204);
    r = await call(t, 'POST', `${base}/rules`, { id: 'r-audit', name: 'Notify', trigger: { event: 'message.created' }, actions: [{ type: 'notify_admins' }] });
    assert.equal(r.status, 201, r.text);
    assert.equal((await call(t, 'PATCH', `${base}/rules/r-audit`, { enabled: false })).status, 200);
    assert.equal((await call(t, 'DELETE', `${base}/rules/r-audit`)).status, 204);
    r = await call(t, 'POST', `${base}/webhooks`, { url: HOOK, events: ['conversation.created'] });
    assert.equal(r.status, 201, r.text);
    const hook = r.json.webhook;
    assert.ok(hook.secret);
    r = await call(t, 'PATCH', `${base}/webhooks/${hook.id}`, { rotate_secret: true, enabled: false });
    assert.equal(r.status, 200, r.text);
    const rotated = r.json.webhook.secret;
    assert.equal((await call(t, 'DELETE', `${base}/webhooks/${hook.id}`)).status, 200);
    r = await call(t, 'POST', `/api/v1/kb/sites/${A.key}/articles`, { title: 'Refunds', body: 'Refunds take 5 days.', locale: 'en', status: 'draft' });
    assert.equal(r.status, 201, r.text);
    const art = r.json.article.id;
    assert.equal((await call(t, 'PATCH', `/api/v1/kb/sites/${A.key}/articles/${art}`, { status: 'published' })).status, 200);
    assert.equal((await call(t, 'DELETE', `/api/v1/kb/sites/${A.key}/articles/${art}`)).status, 204);

    const raw = await call(t, 'GET', `${base}/audit?limit=200`);
    assert.equal(raw.status, 200, raw.text);
    const { entries } = raw.json;
    for (const s of [secret, hook.secret, rotated]) assert.ok(!raw.text.includes(s), 'no secret reaches the log');

    const site = find(entries, 'site.update', A.key);
    assert.equal(site.actor, adminA.id);
    assert.equal(site.actor_email, adminA.email);
    assert.equal(site.address, '198.51.100.7');
    assert.equal(site.scope, 'site');
    assert.ok(Math.abs(site.ts - Date.now()) < 60_000);
    assert.equal(site.after.name, 'Renamed A');
    assert.equal(site.before.auto_close_s, '');
    assert.equal(site.after.auto_close_s, '600');
    assert.equal(site.before.identity_secret, '', 'no secret before');
    assert.equal(site.after.identity_secret, '[hidden]', 'the new secret is masked');
    assert.deepEqual(find(entries, 'team.create', 'billing').after, { name: 'Billing' });
    const team = find(entries, 'team.update', 'billing');
    assert.equal(team.before.name, 'Billing');
    assert.equal(team.after.name, 'Billing desk');
    assert.equal(find(entries, 'sla.update').after.sla.policies.high.first_response_s, 300);
    assert.equal(find(entries, 'canned.create', canned).after.body, 'Hi there');
    const cu = find(entries, 'canned.update', canned);
    assert.deepEqual([cu.before, cu.after], [{ body: 'Hi there' }, { body: 'Hello there' }]);
    assert.equal(find(entries, 'canned.delete', canned).before.shortcut, 'hi');
    assert.equal(find(entries, 'rule.create', 'r-audit').after.name, 'Notify');
    const ru = find(entries, 'rule.update', 'r-audit');
    assert.deepEqual([ru.before.enabled, ru.after.enabled], ['1', '0']);
    assert.ok(find(entries, 'rule.delete', 'r-audit'));
    assert.equal(find(entries, 'webhook.create', hook.id).after.secret, '[hidden]');
    const wu = find(entries, 'webhook.update', hook.id);
    assert.deepEqual([wu.before.secret, wu.after.secret], ['[hidden]', '[hidden]'], 'a rotation shows, its value does not');
    assert.deepEqual([wu.before.enabled, wu.after.enabled], [true, false]);
    assert.equal(find(entries, 'webhook.delete', hook.id).before.url, HOOK);
    assert.equal(find(entries, 'kb.create', art).after.title, 'Refunds');
    const ku = find(entries, 'kb.update', art);
    assert.deepEqual([ku.before.status, ku.after.status], ['draft', 'published']);
    assert.ok(find(entries, 'kb.delete', art));
    // newest first
    for (let i = 1; i < entries.length; i++) assert.ok(entries[i - 1].ts >= entries[i].ts);
});

it('logins, failed logins, logouts, agent changes and revocations are account entries in the sites of the agent', async () => {
    await setup();
    const ag = await env.addAgent({ site: A, name: 'Sam' });
    assert.equal((await call(null, 'POST', '/api/v1/login', { email: ag.email, password: 'not-the-password' }, '203.0.113.9')).status, 401);
    const r = await call(null, 'POST', '/api/v1/login', { email: ag.email, password: ag.password }, '203.0.113.10');
    assert.equal(r.status, 200, r.text);
    assert.equal((await call(r.json.token, 'POST', '/api/v1/logout', undefined, '203.0.113.11')).status, 204);
    // an agent created and changed over the API: its password is masked, the role change revokes
    let c = await call(adminA.token, 'POST', '/api/v1/admin/agents', { email: `new_${rnd(3)}@example.com`, name: 'Newbie', password: 'a-long-password-1', sites: [A.key] });
    assert.equal(c.status, 201, c.text);
    const id = c.json.agent.id;
    c = await call(adminA.token, 'PATCH', `/api/v1/admin/agents/${id}`, { role: 'admin', password: 'another-password-2' });
    assert.equal(c.status, 200, c.text);

    const { entries } = await audit(adminA.token, A, '?limit=200');
    const failed = find(entries, 'login_failed', ag.email);
    assert.equal(failed.address, '203.0.113.9');
    assert.equal(failed.actor, ag.id);
    assert.equal(failed.scope, 'account');
    assert.equal(failed.after.reason, 'wrong e-mail or password');
    assert.equal(find(entries, 'login', ag.email).address, '203.0.113.10');
    const out = find(entries, 'logout', ag.id);
    assert.equal(out.address, '203.0.113.11');
    assert.equal(out.actor, ag.id);
    const created = find(entries, 'agent.create', id);
    assert.equal(created.after.name, 'Newbie');
    assert.deepEqual(created.after.sites, [A.key]);
    assert.equal(created.after.pw, '[hidden]');
    const upd = find(entries, 'agent.update', id);
    assert.deepEqual([upd.before.role, upd.after.role], ['agent', 'admin']);
    assert.deepEqual([upd.before.pw, upd.after.pw], ['[hidden]', '[hidden]']);
    assert.equal(find(entries, 'tokens.revoke', id).after.reason, 'password changed');
    const text = JSON.stringify(entries);
    assert.ok(!text.includes('another-password-2') && !text.includes('$argon2'), 'no password or hash in the log');
});

it('an admin of another site sees none of it, and a plain agent is refused', async () => {
    await setup();
    // B's admin asking for A's log: like a site that does not exist
    let r = await call(adminB.token, 'GET', `/api/v1/admin/sites/${A.key}/audit`);
    assert.equal(r.status, 404, r.text);
    r = await call(adminB.token, 'GET', `/api/v1/admin/sites/${A.key}/audit?format=csv`);
    assert.equal(r.status, 404);
    // an agent shared by A and B: its login shows in both, A's changes to it only in A
    const shared = await env.addAgent({ sites: [A, B], name: 'Shared' });
    await env.admin('team-add', '--site', A.key, '--key', 'a-secret-team', '--name', 'A team');
    const p = await call(adminA.token, 'PATCH', `/api/v1/admin/agents/${shared.id}`, { teams: ['a-secret-team'] });
    assert.equal(p.status, 200, p.text);
    await env.login(0, shared.email, shared.password);
    const a = await audit(adminA.token, A, '?limit=200');
    assert.ok(find(a.entries, 'agent.update', shared.id), "A's change is in A's log");
    const b = await call(adminB.token, 'GET', `/api/v1/admin/sites/${B.key}/audit?limit=200`);
    assert.equal(b.status, 200);
    assert.ok(find(b.json.entries, 'login', shared.email), "the shared agent's login is in B's log");
    assert.ok(!find(b.json.entries, 'agent.update', shared.id), "A's change to it is not");
    assert.ok(!b.text.includes(A.key), "A's site key never appears in B's log");
    assert.ok(!b.text.includes('a-secret-team'), "A's team never appears in B's log");
    assert.ok(!b.text.includes(adminA.email), "A's admin never appears in B's log");
    // a plain agent of A
    const plain = await person([A]);
    r = await call(plain.token, 'GET', `/api/v1/admin/sites/${A.key}/audit`);
    assert.equal(r.status, 403, r.text);
});

it('filters by actor, action and time, and pages with a cursor', async () => {
    await setup();
    const C = await env.addSite();
    const adminC = await person([C], 'admin');
    const other = await person([C], 'admin');
    const base = `/api/v1/admin/sites/${C.key}`;
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) assert.equal((await call(adminC.token, 'PATCH', base, { auto_close_s: 100 + i })).status, 200);
    assert.equal((await call(other.token, 'POST', `${base}/teams`, { key: 'ops', name: 'Ops' })).status, 201);
    const t1 = Date.now();

    let l = await audit(adminC.token, C, `?actor=${encodeURIComponent(other.email)}`);
    assert.ok(l.entries.length >= 1 && l.entries.every((e) => e.actor === other.id));
    l = await audit(adminC.token, C, `?actor=${adminC.id}&action=site.update`);
    assert.equal(l.entries.length, 5);
    l = await audit(adminC.token, C, '?action=team');
    assert.deepEqual(l.entries.map((e) => e.action), ['team.create']);
    l = await audit(adminC.token, C, `?since=${t1 + 1}`);
    assert.equal(l.entries.length, 0);
    l = await audit(adminC.token, C, `?since=${t0}&until=${t1}&action=site.update`);
    assert.equal(l.entries.length, 5);
    // pages of two, in order, without repeats, until next_cursor is null
    const seen = [];
    let cursor = null;
    for (let n = 0; n < 10; n++) {
        const page = await audit(adminC.token, C, `?action=site.update&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        assert.ok(page.entries.length <= 2);
        seen.push(...page.entries.map((e) => e.after.auto_close_s));
        cursor = page.next_cursor;
        if (!cursor) break;
    }
    assert.deepEqual(seen, ['104', '103', '102', '101', '100']);
    const bad = await call(adminC.token, 'GET', `${base}/audit?cursor=nonsense`);
    assert.equal(bad.status, 400);
});

it('exports CSV with formula text defused', async () => {
    await setup();
    const t = adminA.token;
    assert.equal((await call(t, 'POST', `/api/v1/admin/sites/${A.key}/teams`, { key: '-sum', name: '=HYPERLINK("x")' })).status, 201);
    const r = await call(t, 'GET', `/api/v1/admin/sites/${A.key}/audit?format=csv&action=team.create`);
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'], /^text\/csv/);
    const lines = r.text.trim().split('\r\n');
    assert.equal(lines[0], '"time","actor","actor_email","address","action","target","before","after"');
    const row = lines.find((l) => l.includes('-sum'));
    assert.ok(row, r.text);
    // a target that starts like a formula is quoted so that a spreadsheet shows it as text;
    // the after column is the JSON text in one field, its quotes doubled
    assert.equal(row.split(',').slice(1, 6).join(','), `"${adminA.id}","${adminA.email}","198.51.100.7","team.create","'-sum"`);
    assert.match(row, /^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z",/);
    assert.ok(row.endsWith('"{""name"":""=HYPERLINK(\\""x\\"")""}"'), row);
});

it('entries older than the retention are trimmed at the next append; an admin sets the retention', async () => {
    await setup();
    const D = await env.addSite();
    const adminD = await person([D], 'admin');
    const key = `cd:{s:${D.key}}:audit`;
    const day = 86_400_000;
    const old = async (k, daysAgo, actor) => {
        const ms = Date.now() - daysAgo * day;
        await env.redis.cmd('XADD', k, `${ms}-0`, 'ts', String(ms), 'a', 'site.update', 'actor', actor, 'b', '{}', 'f', '{}', 's', `["${D.key}"]`);
    };
    // the log as nodes would have written it over a long time: 400, 100 and 10 days ago
    await env.redis.cmd('DEL', key);
    await old(key, 400, 'old');
    await old(key, 100, 'old');
    await old(key, 10, 'recent');
    let r = await call(adminD.token, 'PATCH', `/api/v1/admin/sites/${D.key}`, { name: 'D' });
    assert.equal(r.json.site.audit_retain_days, 90, 'the default retention (audit_retain_days)');
    assert.equal(await env.redis.cmd('XLEN', key), 2, 'the 400 and 100 days old entries are gone');
    let l = await audit(adminD.token, D);
    assert.equal(l.retain_days, 90);
    assert.deepEqual(l.entries.filter((e) => e.scope === 'site').map((e) => e.actor), [adminD.id, 'recent']);
    // the site keeps 7 days: the 10 days old entry goes with this change
    r = await call(adminD.token, 'PATCH', `/api/v1/admin/sites/${D.key}`, { audit_retain_days: 7 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.site.audit_retain_days, 7);
    assert.equal(await env.redis.cmd('XLEN', key), 2, 'two changes, nothing older than 7 days');
    l = await audit(adminD.token, D);
    assert.equal(l.retain_days, 7);
    assert.ok(!l.entries.some((e) => e.actor === 'recent'));
    const change = find(l.entries, 'site.update');
    assert.deepEqual([change.before.audit_retain_days, change.after.audit_retain_days], ['', '7']);
    r = await call(adminD.token, 'PATCH', `/api/v1/admin/sites/${D.key}`, { audit_retain_days: 0 });
    assert.equal(r.status, 400);
    // the account stream is kept the node's audit_retain_days (90): an entry of 100 days ago
    // goes with the next login, one of 10 days ago stays (and shows in D's log, D being its site)
    const acc = 'cd:{a}:audit';
    await env.redis.cmd('DEL', acc);
    await old(acc, 100, 'old-account');
    await old(acc, 10, 'recent-account');
    await env.login(0, adminD.email, adminD.password);
    const ids = (await env.redis.cmd('XRANGE', acc, '-', '+')).map(([, f]) => f[f.indexOf('actor') + 1]);
    assert.deepEqual(ids, ['recent-account', adminD.id]);
    // listed within the site's 7 days: the login, not the 10 days old one
    l = await audit(adminD.token, D);
    assert.ok(find(l.entries, 'login', adminD.email));
    assert.ok(!l.entries.some((e) => e.actor === 'recent-account'));
});

it("a page stops where a stream stopped reading; the cursors still reach every entry, in order", async () => {
    await setup();
    const E = await env.addSite();
    const adminE = await person([E], 'admin');
    const site = `cd:{s:${E.key}}:audit`;
    const acc = 'cd:{a}:audit';
    await env.redis.cmd('DEL', site, acc);
    const t0 = Date.now() - 5 * 86_400_000;
    const add = (key, ms, actor, sites) =>
        env.redis.cmd('XADD', key, `${ms}-0`, 'ts', String(ms), 'a', 'login', 'actor', actor, 'b', '{}', 'f', '{}', ...(sites ? ['s', sites] : []));
    // 6,000 account entries of another site, one a ms, more than a page reads of a stream (5,000)
    for (let i = 0; i < 6000; i++) await add(acc, t0 + i, 'elsewhere', '["elsewhere"]');
    // the site's own entries: one older than all of them, two among them, one newer
    for (const [k, ms] of [[0, t0 - 1], [1, t0 + 500], [2, t0 + 4000], [3, t0 + 7000]]) await add(site, ms, `s${k}`);
    const first = await audit(adminE.token, E);
    // the account stream stopped at its 5,000th entry (t0 + 1000): nothing older is shown yet
    assert.deepEqual(first.entries.map((e) => e.actor), ['s3', 's2']);
    assert.equal(first.next_cursor, `${t0 + 1000}-0-a`);
    const second = await audit(adminE.token, E, `?cursor=${first.next_cursor}`);
    assert.deepEqual(second.entries.map((e) => e.actor), ['s1', 's0']);
    assert.equal(second.next_cursor, null);
    assert.ok(![...first.entries, ...second.entries].some((e) => e.actor === 'elsewhere'));
});
