// Never lose a sent message, never need a reload. The page talks to the node through a
// test-local TCP proxy that can cut or refuse its connections:
// - a reply written while the connection is down is kept and delivered once it is back;
// - a reply whose acknowledgement was lost is sent again with the same client_msg_id and
//   stored once;
// - a reply still unsent survives a page reload;
// - what the visitor wrote meanwhile arrives through resume (after_seq);
// - unread counts on other conversations, cleared when opened.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, visitorSay, screenshot, waitUntil, sleep, assertNoPageErrors, WAIT } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};

const isMsg = (cid, pred = () => true) => (f) => f.type === 'message.created' && f.conversation_id === cid && pred(f.message);
const count = (v, cid, body) => v.messages(cid).filter((m) => m.body === body).length;

it('setup: an agent works through the proxy with two accepted chats', async () => {
    const { env } = st;
    S.site = await addSite(env);
    await env.admin('site-set', '--key', S.site, '--auto-assign', 'off');
    S.ag = await addAgent(env, S.site, { name: 'Wang Fang' });
    S.proxy = await st.proxy(0);
    const page = await st.browser.page();
    S.page = page;
    S.d = dash(page);
    await S.d.login(S.proxy.origin, S.ag.email, S.ag.password);
    // a fresh sign-in is online (the server's default choice), and the switch says so
    await waitUntil(async () => (await page.locator('.presence-switch select').getAttribute('data-presence')) === 'online', { what: 'presence shown online' });
    S.c1 = await visitorChat(env, S.site, { message: 'First chat', form: { name: 'Li Lei' } });
    S.c2 = await visitorChat(env, S.site, { message: 'Second chat', form: { name: 'Han Meimei' } });
    for (const c of [S.c2, S.c1]) {
        await S.d.nav('queue');
        await S.d.item(c.cid).waitFor();
        await S.d.item(c.cid).locator('[data-action="accept"]').click();
        await page.locator(`.conv-pane[data-cid="${c.cid}"]`).waitFor();
        await waitUntil(async () => (await S.d.status()) === 'open', { what: 'accepted' });
    }
    // c1 is open
    assert.equal(await page.locator('.conv-pane').getAttribute('data-cid'), S.c1.cid);
});

it('unread counts: messages in another conversation are counted, and cleared when it is opened', async () => {
    const { page, d, c1, c2 } = S;
    await visitorSay(c2.v, c2.cid, 'Are you there?');
    await visitorSay(c2.v, c2.cid, 'Hello?');
    const badge = d.item(c2.cid).locator('[data-unread]');
    await waitUntil(async () => (await badge.getAttribute('data-unread').catch(() => null)) === '2', { what: 'unread 2 on the item' });
    await waitUntil(async () => (await page.locator('[data-nav="mine"] [data-unread]').getAttribute('data-unread').catch(() => null)) === '2', { what: 'unread 2 in the nav' });
    assert.match(await page.title(), /^\(2\) chatdesk/);
    // the open conversation's messages are not unread
    await visitorSay(c1.v, c1.cid, 'Still here');
    await d.waitText('Still here');
    assert.equal(await d.item(c1.cid).locator('[data-unread]').count(), 0);
    await screenshot(page, '50-01-unread');
    const from = c2.v.mark();
    await d.open(c2.cid);
    await waitUntil(async () => (await d.item(c2.cid).locator('[data-unread]').count()) === 0, { what: 'unread cleared' });
    await c2.v.waitFor((f) => f.type === 'read' && f.conversation_id === c2.cid && f.author.kind === 'agent', { from, what: 'read receipt for the visitor' });
    assert.equal(await page.title(), 'chatdesk');
    await d.open(c1.cid);
});

it('connection down: a reply is kept and delivered once the connection is back; the visitor\'s messages meanwhile arrive by resume', async () => {
    const { page, d, proxy, c1 } = S;
    proxy.refuse = true;
    proxy.cut();
    await page.locator('[data-banner="conn"]').waitFor({ timeout: WAIT * 2 });
    await d.composer().fill('Written while offline');
    await d.composer().press('Enter');
    const pending = page.locator('.conv-pane li.pending[data-state="sending"]');
    await pending.waitFor();
    assert.match(await pending.textContent(), /Will be sent when the connection is back/);
    await visitorSay(c1.v, c1.cid, 'Visitor wrote while the agent was away');
    await screenshot(page, '50-02-offline-pending');
    await sleep(1500);
    assert.equal(count(c1.v, c1.cid, 'Written while offline'), 0, 'not delivered while down');
    proxy.refuse = false;
    await d.waitOnline(WAIT * 4);
    await c1.v.waitFor(isMsg(c1.cid, (m) => m.body === 'Written while offline'), { timeout: WAIT * 2, what: 'offline reply delivered' });
    await d.waitText('Written while offline');
    await d.waitText('Visitor wrote while the agent was away');
    await waitUntil(async () => (await page.locator('.conv-pane li.pending').count()) === 0, { what: 'outbox empty' });
    await sleep(500);
    assert.equal(count(c1.v, c1.cid, 'Written while offline'), 1, 'delivered exactly once');
    assert.equal((await d.messages()).filter((m) => m.text === 'Written while offline').length, 1);
    await screenshot(page, '50-03-back-online');
});

it('acknowledgement lost: the same client_msg_id is sent again after the reconnect and stored once', async () => {
    const { page, d, proxy, c1 } = S;
    proxy.blackhole = true; // the server gets the frame, the page never hears back
    await d.composer().fill('Ack got lost');
    await d.composer().press('Enter');
    const m = await c1.v.waitFor(isMsg(c1.cid, (x) => x.body === 'Ack got lost'), { what: 'stored by the server' });
    assert.equal(await page.locator('.conv-pane li.pending').count(), 1, 'still pending in the page: no ok came');
    proxy.blackhole = false;
    proxy.cut();
    await waitUntil(async () => (await page.locator('.conv-pane li.pending').count()) === 0, { timeout: WAIT * 4, what: 'resent and acknowledged' });
    await d.waitOnline();
    await sleep(800);
    assert.equal(count(c1.v, c1.cid, 'Ack got lost'), 1, 'stored and delivered once');
    const shown = (await d.messages()).filter((x) => x.text === 'Ack got lost');
    assert.equal(shown.length, 1);
    assert.equal(shown[0].seq, m.message.seq);
});

it('a reply still unsent survives a page reload', async () => {
    const { page, d, proxy, c1 } = S;
    proxy.refuseWs = true;
    proxy.cut({ wsOnly: true });
    await page.locator('[data-banner="conn"]').waitFor({ timeout: WAIT * 2 });
    await d.composer().fill('Survives a reload');
    await d.composer().press('Enter');
    await page.locator('.conv-pane li.pending').waitFor();
    await page.reload();
    // signed in still (sessionStorage), offline, the reply kept in the tab's outbox
    await page.locator('.shell').waitFor();
    await page.locator('[data-banner="conn"]').waitFor();
    const outbox = await page.evaluate(() => JSON.parse(sessionStorage.getItem('chatdesk.outbox') || '[]'));
    assert.deepEqual(outbox.map((x) => [x.cid, x.body]), [[c1.cid, 'Survives a reload']]);
    await screenshot(page, '50-04-reloaded-offline');
    proxy.refuseWs = false;
    await d.waitOnline(WAIT * 4);
    await c1.v.waitFor(isMsg(c1.cid, (x) => x.body === 'Survives a reload'), { timeout: WAIT * 2, what: 'delivered after the reload' });
    await d.nav('mine');
    await d.open(c1.cid);
    await d.waitText('Survives a reload');
    assert.equal(await page.locator('.conv-pane li.pending').count(), 0);
    await sleep(500);
    assert.equal(count(c1.v, c1.cid, 'Survives a reload'), 1);
    assertNoPageErrors(page, 'reliability page');
});
