// Admin > API tokens in a real browser (issue 17 item 4, docs/api.md "API tokens"): an
// admin makes a token with the read scope, sees its secret once and copies it with the
// copy button (the clipboard holds exactly the token), the token reads the site's tickets
// over the HTTP API and its last use shows in the list; revoking it in the page stops it
// at once. The tab has labelled controls (axe finds no WCAG A/AA violation) and zh-CN
// texts.
import { useStack, it, assert, addSite, addAgent, dash, screenshot, waitUntil, assertNoPageErrors, axeViolations } from './lib.mjs';

const st = useStack({ nodes: 1 });

const tickets = (env, tok) => env.http(0, '/api/v1/tickets', { headers: { authorization: `Bearer ${tok}` } });

it('an admin creates a token, copies its secret once, sees its last use and revokes it', async () => {
    const { env } = st;
    const site = await addSite(env);
    const admin = await addAgent(env, site, { name: 'Tang Admin', role: 'admin' });
    const p = await st.browser.page({ permissions: ['clipboard-read', 'clipboard-write'] });
    await p.cdContext.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: st.origin() });
    const d = dash(p);
    await d.login(st.origin(), admin.email, admin.password);
    await d.nav('admin');
    await p.locator('[data-tab="tokens"]').click();
    const tab = p.locator(`[data-tokens="${site}"]`);
    await tab.waitFor();
    await tab.getByText('No API tokens yet.').waitFor();
    await tab.locator('[data-action="add-token"]').click();
    const form = p.locator('[data-form="token"]');
    await form.getByLabel('Name').fill('CRM export');
    await form.getByLabel('read').waitFor(); // checked by default
    assert.equal(await form.getByLabel('read').isChecked(), true);
    assert.equal(await form.getByLabel('admin').isChecked(), false);
    await screenshot(p, '72-01-token-form');
    const found = await axeViolations(p);
    assert.deepEqual(found, [], JSON.stringify(found, null, 1));
    await form.locator('[data-action="save-token"]').click();
    await form.waitFor({ state: 'detached' });
    const notice = p.locator('[data-notice="token-secret"]');
    const secret = (await notice.locator('code').textContent()).trim();
    assert.match(secret, new RegExp(`^cdt\\.${site}\\.k_[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$`));
    await notice.getByRole('button', { name: 'Copy the token CRM export' }).click();
    await notice.getByRole('button', { name: 'Copy the token CRM export' }).filter({ hasText: 'Copied' }).waitFor();
    assert.equal(await p.evaluate(() => navigator.clipboard.readText()), secret, 'the clipboard holds the token');
    await screenshot(p, '72-02-token-secret-once');
    const row = tab.locator('[data-table="tokens"] tr[data-token]');
    await row.waitFor();
    assert.match(await row.textContent(), /CRM export/);
    assert.equal((await row.locator('[data-field="last-used"]').textContent()).trim(), 'never');
    assert.ok(!(await row.textContent()).includes(secret.split('.')[3]), 'the list never shows the secret');
    // the token works, and its last use shows after a reload of the tab
    assert.equal((await tickets(env, secret)).status, 200);
    await notice.locator('[data-action="hide-token"]').click();
    await notice.waitFor({ state: 'detached' });
    await p.locator('[data-tab="audit"]').click();
    await p.locator('[data-tab="tokens"]').click();
    await waitUntil(async () => (await tab.locator('tr[data-token] [data-field="last-used"]').textContent()).trim() !== 'never', { what: 'last use shown' });
    // revoke (the page's confirm is accepted): the row goes and the token is dead
    await tab.getByRole('button', { name: 'Revoke the token CRM export' }).click();
    await tab.getByText('No API tokens yet.').waitFor();
    assert.ok(p.cdDialogs.some((x) => x.startsWith('confirm: Revoke the token "CRM export"')), p.cdDialogs.join('\n'));
    assert.equal((await tickets(env, secret)).status, 401, 'revoked at once');
    await screenshot(p, '72-03-token-revoked');
    assertNoPageErrors(p, 'tokens page');
});

it('the tab in zh-CN', async () => {
    const { env } = st;
    const site = await addSite(env);
    const admin = await addAgent(env, site, { name: 'Zhou Admin', role: 'admin' });
    const p = await st.browser.page({ locale: 'zh-CN' });
    const d = dash(p);
    await d.login(st.origin(), admin.email, admin.password);
    await d.nav('admin');
    await p.locator('[data-tab="tokens"]').click();
    assert.equal((await p.locator('[data-tab="tokens"]').textContent()).trim(), 'API 令牌');
    await p.locator('[data-action="add-token"]').click();
    const form = p.locator('[data-form="token"]');
    await form.getByLabel('名称').fill('导出');
    await form.getByLabel('写入').check();
    await form.locator('[data-action="save-token"]').click();
    await p.locator('[data-notice="token-secret"]').getByText('仅显示这一次', { exact: false }).waitFor();
    const row = p.locator('[data-table="tokens"] tr[data-token]');
    await row.waitFor();
    assert.match(await row.textContent(), /读取、写入/);
    assert.match(await row.textContent(), /从未使用/);
    await screenshot(p, '72-04-tokens-zh');
    assertNoPageErrors(p, 'zh tokens page');
});
