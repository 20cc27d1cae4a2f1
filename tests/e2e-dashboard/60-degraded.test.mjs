// A node whose HTTP API lacks the newer endpoints (they answer 404 not_found, as before
// the lead's API landed): every view that needs one says "not available yet", the rest of
// the dashboard keeps working over the WebSocket. The browser sees such a node by routing
// /api/v1/* (except login) to that answer.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, visitorSay, screenshot, waitUntil, assertNoPageErrors } from './lib.mjs';

const st = useStack({ nodes: 1 });

it('without the HTTP API: clear notices, chats still work', async () => {
    const { env } = st;
    const site = await addSite(env);
    await env.admin('site-set', '--key', site, '--auto-assign', 'off');
    const ag = await addAgent(env, site, { name: 'Wang Fang', role: 'admin' });
    const page = await st.browser.page();
    const missing = [];
    await page.route(/\/api\/v1\/(?!login$)/, (route) => {
        missing.push(route.request().url());
        route.fulfill({ status: 404, contentType: 'application/json', body: JSON.stringify({ error: { code: 'not_found', message: 'no such resource' } }) });
    });
    const d = dash(page);
    await d.login(st.origin(), ag.email, ag.password);
    const vc = await visitorChat(env, site, { message: 'Hello without the API', form: { name: 'Li Lei' } });
    await d.nav('queue');
    await d.item(vc.cid).locator('[data-action="accept"]').click();
    await page.locator(`.conv-pane[data-cid="${vc.cid}"]`).waitFor();
    await d.waitText('Hello without the API');
    // customer panel: what the conversation carries, and the notice
    await page.locator('.customer-pane [data-notice="not-available"]').waitFor();
    assert.equal(await page.locator('.customer-pane [data-field="name"] dd').textContent(), 'Li Lei');
    // canned replies: the picker says so; "/" text can still be sent as typed
    await d.composer().click();
    await page.keyboard.type('/gre');
    await page.locator('.canned-picker').filter({ hasText: 'does not offer' }).waitFor();
    await page.keyboard.press('Escape');
    await d.composer().fill('Chatting works anyway.');
    await d.composer().press('Enter');
    await vc.v.waitFor((f) => f.type === 'message.created' && f.message?.body === 'Chatting works anyway.', { what: 'reply delivered' });
    await visitorSay(vc.v, vc.cid, 'Great');
    await d.waitText('Great');
    await screenshot(page, '60-01-degraded-conversation');
    // the views backed by the API
    await d.nav('tickets');
    await page.locator('[data-list="tickets"] [data-notice="not-available"]').waitFor();
    await screenshot(page, '60-02-degraded-tickets');
    await d.nav('supervisor');
    await page.locator('[data-page="supervisor"] [data-notice="not-available"]').waitFor();
    await d.nav('canned');
    await page.locator('[data-page="canned"] [data-notice="not-available"]').waitFor();
    await d.nav('admin');
    await page.locator('[data-tab-body="sites"] [data-notice="not-available"]').waitFor();
    for (const tab of ['agents', 'teams', 'sla', 'canned']) {
        await page.locator(`[data-tab="${tab}"]`).click();
        await page.locator(`[data-tab-body="${tab}"] [data-notice="not-available"]`).waitFor();
    }
    await screenshot(page, '60-03-degraded-admin');
    // All open falls back to what the session has seen
    await d.nav('all');
    await d.item(vc.cid).waitFor();
    assert.match(await page.locator('.list-pane .hint').textContent(), /this session has seen/);
    assert.ok(missing.length > 0);
    assert.equal(await page.locator('[data-conn="online"]').count(), 1, 'still connected');
    assertNoPageErrors(page, 'degraded page');
});
