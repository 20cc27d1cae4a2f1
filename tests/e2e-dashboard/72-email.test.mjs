// Admin > E-mail in a real browser: an admin sets the site's From name (Chinese) and
// address, sends a test mail that a real SMTP server on loopback (npm smtp-server)
// receives from that name and address, and sees it sent in the outbox; a customer's mail
// piped in (`chatdeskd mail-in`) is a ticket marked as e-mail, whose composer says the
// reply goes by e-mail.
import { after } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { useStack, it, assert, addSite, addAgent, dash, screenshot, waitUntil, assertNoPageErrors, rnd } from './lib.mjs';
import { mailIn } from '../server/mail-support.mjs';

const got = [];
const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
        const chunks = [];
        stream.on('data', (d) => chunks.push(d));
        stream.on('end', async () => {
            got.push({ rcpt: session.envelope.rcptTo.map((r) => r.address), parsed: await simpleParser(Buffer.concat(chunks)) });
            cb();
        });
    },
});
await new Promise((res) => smtp.listen(0, '127.0.0.1', res));
after(() => new Promise((res) => smtp.close(res)));

const st = useStack({ nodes: 1, args: ['--smtp-url', `smtp://127.0.0.1:${smtp.server.address().port}`, '--mail-from', 'desk@chatdesk.test'] });

it("an admin sets the site's From name and address and sends a test mail, seen sent in the outbox", async () => {
    const { env } = st;
    const site = await addSite(env);
    const admin = await addAgent(env, site, { name: 'Mail Admin', role: 'admin' });
    const p = await st.browser.page();
    const d = dash(p);
    await d.login(st.origin(), admin.email, admin.password);
    await d.nav('admin');
    await p.locator('[data-tab="mail"]').click();
    const form = p.locator('[data-form="mail-settings"]');
    await form.locator('input[name="mail_from_name"]').fill('示例商店');
    await form.locator('input[name="mail_from"]').fill('shop@shop.test');
    await form.locator('[data-action="save-mail"]').click();
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${site}}:site`, 'mail_from')) === 'shop@shop.test', { what: 'the address saved' });
    const to = `t_${rnd(3)}@customer.test`;
    const test = p.locator('[data-form="mail-test"]');
    await test.locator('input[type="email"]').fill(to);
    await test.locator('[data-action="send-test-mail"]').click();
    await waitUntil(() => got.some((m) => m.rcpt.includes(to)), { what: 'the test mail at the SMTP server' });
    const m = got.find((x) => x.rcpt.includes(to)).parsed;
    assert.equal(m.from.value[0].name, '示例商店');
    assert.equal(m.from.value[0].address, 'shop@shop.test');
    await waitUntil(
        async () => {
            await p.locator('[data-action="reload-mail"]').click();
            return (await p.locator('[data-table="mails"] tr[data-state="sent"]').count()) === 1;
        },
        { what: 'the mail shown as sent' },
    );
    assert.match(await p.locator('[data-table="mails"] tr[data-state="sent"]').textContent(), new RegExp(to.replace('.', '\\.')));
    await screenshot(p, '72-01-mail-outbox');
    assertNoPageErrors(p, 'e-mail page');
});

it('a mail piped in is a ticket marked E-mail; the composer says the reply goes by e-mail', async () => {
    const { env } = st;
    const site = await addSite(env);
    const agent = await addAgent(env, site, { name: 'Mail Agent' });
    const from = `c_${rnd(3)}@customer.test`;
    const r = await mailIn(env, site, `From: Carla <${from}>\r\nSubject: Invoice copy\r\nMessage-ID: <inv-${rnd(4)}@customer.test>\r\n\r\nPlease send my invoice again.\r\n`);
    assert.equal(r.code, 0, r.stderr);
    const cid = r.json.conversation;
    const p = await st.browser.page();
    const d = dash(p);
    await d.login(st.origin(), agent.email, agent.password);
    await d.nav('mine'); // the agent's coming online assigns the queued ticket to them
    await d.item(cid).waitFor();
    await d.open(cid);
    await p.locator('.conv-pane [data-channel="email"]').waitFor();
    assert.match(await p.locator('.composer [data-by-email]').textContent(), new RegExp(from.replace('.', '\\.')));
    await d.waitText('Please send my invoice again.');
    await screenshot(p, '72-02-email-ticket');
    assertNoPageErrors(p, 'e-mail ticket');
});
