// Admin > Audit log in a real browser: an admin changes the site's settings and sees the
// change in the log with before → after, the secret masked and the client address; filters
// by action and actor; loads a second page; exports the CSV; sets the site's retention;
// an admin of another site sees none of site A's entries; zh-CN labels. Screenshots in output/.
import { useStack, it, assert, addSite, addAgent, dash, screenshot, waitUntil, assertNoPageErrors, rnd } from './lib.mjs';

const st = useStack({ nodes: 1 });
const XSS = '<img src=x onerror="window.__xss=1">';
const S = {};

async function openAudit(d, site) {
    await d.nav('admin');
    await d.q('[data-tab="audit"]').click();
    if (site) await d.q('[data-tab-body="audit"] select[name="site"]').selectOption(site);
    await d.q(`[data-audit="${site ?? S.site}"]`).waitFor();
}
const rows = (d) => d.q('[data-table="audit"] tbody tr');

it('an admin reads, filters, pages and exports the audit log and sets its retention', async () => {
    const { env } = st;
    S.site = await addSite(env);
    S.admin = await addAgent(env, S.site, { name: 'Audrey Admin', role: 'admin' });
    const token = await env.login(0, S.admin.email, S.admin.password);
    const api = (method, url, body) => env.http(0, url, { method, body, headers: { authorization: `Bearer ${token}` } });
    S.secret = `secret-${rnd(8)}`;
    assert.equal((await api('PATCH', `/api/v1/admin/sites/${S.site}`, { name: 'Shop', identity_secret: S.secret })).status, 200);
    // a value an admin typed is shown as text, never as markup
    assert.equal((await api('POST', `/api/v1/admin/sites/${S.site}/teams`, { key: 'xss', name: XSS })).status, 201);
    // 55 more changes: more than one page of 50
    for (let i = 0; i < 55; i++) assert.equal((await api('PATCH', `/api/v1/admin/sites/${S.site}`, { auto_close_s: 1000 + i })).status, 200);
    assert.equal((await api('POST', `/api/v1/admin/sites/${S.site}/teams`, { key: 'vip', name: 'VIP desk' })).status, 201);

    const page = await st.browser.page({ viewport: { width: 1400, height: 1000 } });
    const d = dash(page);
    await d.login(st.origin(), S.admin.email, S.admin.password);
    await openAudit(d);
    await rows(d).first().waitFor();
    assert.equal(await rows(d).count(), 50, 'one page of 50');
    // newest first: the dashboard login, then the team created before it
    assert.equal(await rows(d).first().getAttribute('data-action'), 'login');
    const top = rows(d).nth(1);
    assert.equal(await top.getAttribute('data-action'), 'team.create');
    assert.match(await top.locator('[data-field="name"]').textContent(), /name: – → VIP desk/);
    assert.equal(await top.locator('[data-col="actor"]').textContent(), S.admin.email);
    assert.equal(await top.locator('[data-col="address"]').textContent(), '127.0.0.1');
    await screenshot(page, '75-audit-01-log');

    // the second page
    await d.q('[data-action="audit-more"]').click();
    await waitUntil(async () => (await rows(d).count()) > 50, { what: 'the second page' });
    const all = await rows(d).count();
    assert.ok(all >= 58, `${all} rows`);
    const secret = d.q('[data-table="audit"] tr[data-action="site.update"] [data-field="identity_secret"]');
    await secret.waitFor();
    assert.equal(await secret.textContent(), 'identity_secret: "" → [hidden]');
    assert.ok(!(await page.content()).includes(S.secret), 'the secret is never shown');
    const xss = d.q('[data-table="audit"] tr[data-action="team.create"]').filter({ hasText: 'xss' }).locator('[data-field="name"] .after');
    assert.equal(await xss.textContent(), XSS);
    assert.equal(await d.q('[data-table="audit"] img').count(), 0, 'no element injected');
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'nothing ran');

    // filter by action family
    const f = d.q('[data-form="audit-filters"]');
    await f.locator('select[name="action"]').selectOption('team');
    await f.locator('button[type="submit"]').click();
    await waitUntil(async () => (await rows(d).count()) === 2, { what: 'team entries only' });
    for (const r of await rows(d).all()) assert.equal(await r.getAttribute('data-action'), 'team.create');
    // filter by an actor that did nothing here
    await f.locator('select[name="action"]').selectOption('');
    await f.locator('input[name="actor"]').fill('nobody@example.com');
    await f.locator('button[type="submit"]').click();
    await d.q('[data-empty="audit"]').waitFor();
    await f.locator('input[name="actor"]').fill(S.admin.email);
    await f.locator('select[name="action"]').selectOption('site');
    await f.locator('button[type="submit"]').click();
    await waitUntil(async () => (await rows(d).count()) === 50, { what: 'site.update entries by the admin' });

    // the CSV of the filtered log
    const [dl] = await Promise.all([page.waitForEvent('download'), d.q('[data-csv="audit"]').click()]);
    assert.equal(dl.suggestedFilename(), `chatdesk-audit-${S.site}.csv`);
    const chunks = [];
    for await (const c of await dl.createReadStream()) chunks.push(c);
    const lines = Buffer.concat(chunks).toString('utf8').trim().split('\r\n');
    assert.equal(lines[0], '"time","actor","actor_email","address","action","target","before","after"');
    assert.equal(lines.length, 1 + 56, 'every site.update of the admin, no paging');
    assert.ok(lines.slice(1).every((l) => l.includes('"site.update"')));

    // the retention
    const r = d.q('[data-form="audit-retention"]');
    assert.equal(await r.locator('input[name="audit_retain_days"]').inputValue(), '90');
    await r.locator('input[name="audit_retain_days"]').fill('30');
    await r.locator('button[type="submit"]').click();
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${S.site}}:site`, 'audit_retain_days')) === '30', { what: 'retention saved' });
    await screenshot(page, '75-audit-02-filtered');
    assertNoPageErrors(page, 'audit log');
});

it("an admin of another site sees none of site A's entries; zh-CN labels", async () => {
    const { env } = st;
    const other = await addSite(env);
    const adminB = await addAgent(env, other, { name: 'Bo Admin', role: 'admin' });
    const page = await st.browser.page({ viewport: { width: 1400, height: 1000 }, locale: 'zh-CN' });
    const d = dash(page);
    await d.login(st.origin(), adminB.email, adminB.password);
    await d.q('select.lang').selectOption('zh-CN');
    await openAudit(d, other);
    assert.equal(await d.q('[data-tab="audit"]').textContent(), '审计日志');
    // only B is offered, and B's log shows its own login, nothing of A
    const options = await d.q('[data-tab-body="audit"] select[name="site"] option').allTextContents();
    assert.deepEqual(options, [other]);
    await rows(d).first().waitFor();
    const text = await d.q('[data-audit]').textContent();
    assert.ok(text.includes('login'), text);
    assert.ok(!text.includes(S.site) && !text.includes(S.admin.email) && !text.includes('VIP desk'), "nothing of site A");
    await screenshot(page, '75-audit-03-other-tenant-zh');
    assertNoPageErrors(page, 'audit log (zh-CN)');
});
