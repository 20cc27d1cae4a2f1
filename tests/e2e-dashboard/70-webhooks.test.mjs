// Admin > Webhooks and the notices bell in a real browser: an admin adds a webhook to a
// local receiver (allowed by the operator's webhook_allow_hosts), sees its secret once,
// sends a test ping that the receiver verifies with that secret, and sees it delivered in
// the delivery log; a repeat-contact customer raises a customer health alert that
// appears live under the bell (en and zh-CN).
import crypto from 'node:crypto';
import http from 'node:http';
import { after } from 'node:test';
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, assertNoPageErrors, rnd } from './lib.mjs';

const got = [];
const receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
        got.push({ headers: req.headers, raw: Buffer.concat(chunks).toString('utf8') });
        res.end('ok');
    });
});
await new Promise((res) => receiver.listen(0, '127.0.0.1', res));
const port = receiver.address().port;
after(() => receiver.close());

const st = useStack({ nodes: 1, args: ['--webhook-allow-hosts', `127.0.0.1:${port}`] });
const S = {};

it('an admin adds a webhook, sends a test ping and sees it delivered in the log', async () => {
    const { env } = st;
    S.site = await addSite(env);
    S.admin = await addAgent(env, S.site, { name: 'Wu Admin', role: 'admin' });
    const p = await st.browser.page();
    S.p = p;
    const d = dash(p);
    await d.login(st.origin(), S.admin.email, S.admin.password);
    await d.nav('admin');
    await p.locator('[data-tab="webhooks"]').click();
    await p.locator('[data-action="add-webhook"]').click();
    const form = p.locator('[data-form="webhook"]');
    await form.locator('input[name="url"]').fill(`http://127.0.0.1:${port}/hook`);
    await form.locator('input[name="event"][value="ticket.created"]').check();
    await form.locator('input[name="description"]').fill('CRM sync');
    await screenshot(p, '70-01-webhook-form');
    await form.locator('[data-action="save-webhook"]').click();
    await form.waitFor({ state: 'detached' });
    const secret = await p.locator('[data-notice="webhook-secret"] code').textContent();
    assert.match(secret, /^whsec_/);
    const row = p.locator('[data-table="webhooks"] tr[data-webhook]');
    await row.waitFor();
    assert.match(await row.textContent(), /conversation\.created, ticket\.created/);
    await row.locator('[data-action="webhook-test"]').click();
    await waitUntil(() => got.length >= 1, { what: 'the ping at the receiver' });
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(got[0].headers['x-chatdesk-signature']);
    assert.ok(m);
    assert.equal(crypto.createHmac('sha256', secret).update(`${m[1]}.${got[0].raw}`).digest('hex'), m[2], 'signed with the secret the page showed');
    const ping = JSON.parse(got[0].raw);
    assert.equal(ping.type, 'ping');
    const log = p.locator('[data-webhook-log]');
    await log.waitFor();
    await waitUntil(
        async () => {
            await log.locator('[data-action="reload-log"]').click();
            return (await log.locator(`tr[data-delivery="${ping.id}"][data-state="delivered"]`).count()) === 1;
        },
        { what: 'the delivery shown as delivered' },
    );
    await log.locator(`tr[data-attempt="${ping.id}#1"][data-ok="true"]`).waitFor();
    await screenshot(p, '70-02-webhook-delivery-log');
    assertNoPageErrors(p, 'webhooks page');
});

it('a customer health alert appears live under the bell, in en and zh-CN', async () => {
    const { env } = st;
    const p = S.p;
    const zhPage = await st.browser.page({ locale: 'zh-CN' });
    await dash(zhPage).login(st.origin(), S.admin.email, S.admin.password);
    const email = `loyal_${rnd(3)}@example.com`;
    for (let i = 0; i < 4; i++) {
        const { v } = await visitorChat(env, S.site, { form: { email, category: 'billing', subject: `invoice ${i}` } });
        v.terminate();
    }
    const badge = p.locator('[data-notices-unseen]');
    await badge.waitFor();
    await p.locator('[data-action="notices"]').click();
    const panel = p.locator('[data-panel="notices"]');
    await panel.locator('[data-kind="customer_health"]').waitFor();
    await panel.locator('[data-list="alerts"] li').first().waitFor();
    assert.match(await panel.locator('[data-list="alerts"] li').first().textContent(), new RegExp(`${email} opened 4 "billing" conversations within 30 days`));
    await screenshot(p, '70-03-health-alert');
    await zhPage.locator('[data-notices-unseen]').waitFor();
    await zhPage.locator('[data-action="notices"]').click();
    const zl = zhPage.locator('[data-panel="notices"] [data-list="alerts"] li').first();
    await zl.waitFor();
    assert.match(await zl.textContent(), /在 30 天内提交了 4 次“billing”类问题/);
    await screenshot(zhPage, '70-04-health-alert-zh');
    assertNoPageErrors(p, 'en page');
    assertNoPageErrors(zhPage, 'zh page');
});
