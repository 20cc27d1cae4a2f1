// The widget in a real browser against a real node: the demo page, the pre-chat form, a
// conversation with an agent (a protocol client), typing and read receipts both ways,
// unread badge and hidden-tab notice, resolve → reopen / confirm → CSAT, reload restores
// the conversation, older messages load on demand.
import { useStack, it, assert, addSite, addAgent, takeConversation, agentSay, widget, screenshot, waitUntil, sleep, WAIT } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};

const isMsg = (cid, pred = () => true) => (f) => f.type === 'message.created' && f.conversation_id === cid && pred(f.message);

it('opens /demo, fills the pre-chat form and sends: shown at once, queued for the agent with the form fields', async () => {
    S.site = await addSite(st.env, [st.origin()]);
    S.a = await addAgent(st.env, S.site, 0, { name: 'Wang Fang' });
    const page = await st.browser.page();
    S.page = page;
    const w = widget(page);
    S.w = w;
    const resp = await page.goto(`${st.origin()}/demo?site=${S.site}`);
    assert.equal(resp.status(), 200);
    assert.match(resp.headers()['content-security-policy'] || '', /script-src 'self'/);
    await w.launcher.waitFor();
    assert.equal(await w.launcher.getAttribute('aria-expanded'), 'false');
    assert.equal(await w.state(), '', 'no connection before the visitor opens the chat');
    await screenshot(page, '10-chat-01-launcher');

    await w.launcher.click();
    await w.panel.waitFor();
    assert.equal(await w.launcher.getAttribute('aria-expanded'), 'true');
    assert.equal(await page.evaluate(() => document.getElementById('chatdesk-widget').shadowRoot.activeElement?.name), 'name', 'focus moves into the form');
    await w.waitState('online');
    // the message is required
    await w.q('.form button[type=submit]').click();
    assert.equal(await w.field('message').getAttribute('aria-invalid'), 'true');
    assert.match(await w.q('#cd-e-message').textContent(), /message/i);

    await w.field('name').fill('Li Lei');
    await w.field('email').fill('li.lei@example.com');
    await w.field('category').selectOption('billing');
    await w.field('priority').selectOption('high');
    await w.field('subject').fill('Invoice wrong');
    await w.field('message').fill('My invoice for order #1042 shows the wrong amount.');
    await screenshot(page, '10-chat-02-prechat-form');
    await w.q('.form button[type=submit]').click();

    // shown at once (pending or already sent), focus in the composer
    await w.waitText('My invoice for order #1042 shows the wrong amount.');
    await waitUntil(async () => (await page.evaluate(() => document.getElementById('chatdesk-widget').shadowRoot.activeElement?.tagName)) === 'TEXTAREA', { what: 'focus in the composer' });

    const q = await S.a.waitFor((f) => f.type === 'conversation.queued', { timeout: WAIT * 2, what: 'conversation.queued' });
    assert.equal(q.conversation.subject, 'Invoice wrong');
    assert.equal(q.conversation.priority, 'high');
    assert.equal(q.conversation.category, 'billing');
    assert.equal(q.conversation.visitor.name, 'Li Lei');
    assert.equal(q.conversation.visitor.email, 'li.lei@example.com');
    S.cid = await takeConversation(S.a);
    assert.equal(S.cid, q.conversation.id);
    await waitUntil(async () => (await w.list()).every((m) => m.status !== 'pending'), { what: 'first message acknowledged' });
    const list = await w.list();
    assert.equal(list.filter((m) => m.text === 'My invoice for order #1042 shows the wrong amount.').length, 1);
    await screenshot(page, '10-chat-03-sent');
});

it('the agent replies: the widget shows it with the agent\'s name, and tells the agent it was read', async () => {
    const { a, w, cid } = S;
    const from = a.mark();
    const m = await agentSay(a, cid, 'Hello Li Lei, I am sorry about that. Let me check: https://example.com/orders/1042.');
    await w.waitText('Hello Li Lei, I am sorry about that. Let me check: https://example.com/orders/1042.');
    const li = (await w.list()).find((x) => x.seq === m.seq);
    assert.equal(li.kind, 'them');
    assert.equal(li.who, 'Wang Fang');
    const link = w.q(`li[data-seq="${m.seq}"] a`);
    assert.equal(await link.getAttribute('href'), 'https://example.com/orders/1042');
    assert.equal(await link.getAttribute('rel'), 'noopener noreferrer nofollow');
    assert.equal(await link.getAttribute('target'), '_blank');
    // the panel is open and visible: the widget sends a read receipt
    const rd = await a.waitFor((f) => f.type === 'read' && f.conversation_id === cid && f.seq >= m.seq, { from, what: 'read from the visitor' });
    assert.equal(rd.author.kind, 'visitor');
    assert.equal(await w.badge.isHidden(), true);
    await screenshot(S.page, '10-chat-04-agent-reply');
});

it('typing both ways: the agent\'s indicator shows and hides; the visitor\'s typing reaches the agent, true then false', async () => {
    const { a, w, cid, page } = S;
    a.send({ type: 'typing', conversation_id: cid, state: true });
    await waitUntil(async () => /Wang Fang is typing/.test(await w.typing.textContent()), { what: 'agent typing indicator' });
    await screenshot(page, '10-chat-05-agent-typing');
    a.send({ type: 'typing', conversation_id: cid, state: false });
    await waitUntil(async () => (await w.typing.textContent()) === '', { what: 'typing indicator gone' });

    const from = a.mark();
    await w.input.click();
    await page.keyboard.type('Thank you', { delay: 20 });
    const on = await a.waitFor((f) => f.type === 'typing' && f.conversation_id === cid && f.state === true, { from, what: 'visitor typing true' });
    assert.equal(on.author.kind, 'visitor');
    // stopping for a moment sends false (debounced), without sending the message
    await a.waitFor((f) => f.type === 'typing' && f.conversation_id === cid && f.state === false, { from, timeout: WAIT * 2, what: 'visitor typing false' });
    const typingFrames = a.filter((f) => f.type === 'typing' && f.conversation_id === cid, from);
    assert.ok(typingFrames.length <= 3, `typing is debounced (${typingFrames.length} frames for 9 keystrokes)`);
});

it('read receipts: the visitor\'s message shows "Read" once the agent read it', async () => {
    const { a, w, cid, page } = S;
    const from = a.mark();
    await page.keyboard.type(', that would be great!');
    await page.keyboard.press('Enter');
    const got = await a.waitFor(isMsg(cid, (m) => m.body === 'Thank you, that would be great!'), { from, what: 'visitor message at the agent' });
    assert.equal(got.message.author.kind, 'visitor');
    await waitUntil(async () => (await w.list()).find((x) => x.seq === got.message.seq)?.status === 'sent', { what: 'status sent' });
    assert.equal(await w.input.inputValue(), '', 'composer cleared');
    await a.ok({ type: 'read', conversation_id: cid, seq: got.message.seq });
    await waitUntil(async () => (await w.list()).find((x) => x.seq === got.message.seq)?.status === 'read', { what: 'status read' });
    assert.match(await w.q(`li[data-seq="${got.message.seq}"] .meta`).textContent(), /Read/);
    await screenshot(page, '10-chat-06-read-receipt');
    S.lastVisitorSeq = got.message.seq;
});

it('closed panel: unread badge; hidden tab: title flash; Esc closes and gives focus back to the launcher', async () => {
    const { a, w, cid, page } = S;
    await w.input.focus();
    await page.keyboard.press('Escape');
    await w.panel.waitFor({ state: 'hidden' });
    assert.equal(await page.evaluate(() => document.getElementById('chatdesk-widget').shadowRoot.activeElement?.className), 'launcher');
    const events = [];
    await page.exposeFunction('__cdEvent', (e) => events.push(e));
    await page.evaluate(() => window.chatdesk('on', 'message', (m) => window.__cdEvent(m)));
    await agentSay(a, cid, 'I found the problem.');
    await waitUntil(async () => (await w.badge.isVisible()) && (await w.badge.textContent()) === '1', { what: 'badge 1' });
    assert.match(await w.launcher.getAttribute('aria-label'), /1 unread/);
    await screenshot(page, '10-chat-07-unread-badge');
    await waitUntil(() => events.some((e) => e.body === 'I found the problem.' && !e.own && e.author.kind === 'agent'), { what: "on('message') event" });

    // hide the tab (and count the beeps: oscillators started on the widget's AudioContext)
    const title = await page.title();
    await page.evaluate(() => {
        window.__beeps = 0;
        const orig = AudioContext.prototype.createOscillator;
        AudioContext.prototype.createOscillator = function () {
            window.__beeps++;
            return orig.call(this);
        };
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        document.dispatchEvent(new Event('visibilitychange'));
    });
    await agentSay(a, cid, 'The invoice is corrected now.');
    await waitUntil(async () => /New message/.test(await page.title()), { what: 'title flash' });
    assert.equal(await w.badge.textContent(), '2');
    assert.equal(await page.evaluate(() => window.__beeps), 1, 'one beep for the new message while hidden');
    await page.evaluate(() => {
        delete document.hidden;
        delete document.visibilityState;
        document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitUntil(async () => (await page.title()) === title, { what: 'title restored' });

    // opening reads them
    const from = a.mark();
    await w.launcher.press('Enter');
    await w.panel.waitFor();
    await a.waitFor((f) => f.type === 'read' && f.conversation_id === cid && f.author.kind === 'visitor', { from, what: 'read after opening' });
    await waitUntil(async () => await w.badge.isHidden(), { what: 'badge gone' });
});

it('reload restores token, conversation and messages; the conversation goes on without duplicates', async () => {
    const { a, w, cid, page } = S;
    const before = await w.list();
    const token = await page.evaluate((site) => localStorage.getItem(`chatdesk:v1:${site}:token`), S.site);
    assert.ok(token);
    await page.reload();
    await w.panel.waitFor(); // it was open: it stays open
    const after = await w.list();
    assert.deepEqual(after.map((m) => [m.seq, m.text]), before.map((m) => [m.seq, m.text]), 'messages restored from localStorage');
    await w.waitState('online');
    assert.equal(await page.evaluate((site) => localStorage.getItem(`chatdesk:v1:${site}:token`) !== null, S.site), true);
    const m = await agentSay(a, cid, 'Anything else I can help with?');
    await w.waitText('Anything else I can help with?');
    const list = await w.list();
    const seqs = list.filter((x) => x.seq != null && Number.isInteger(x.seq)).map((x) => x.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), 'ordered, no duplicates');
    assert.equal(list.at(-1).seq, m.seq);
    // the same visitor: its conversation is the agent's conversation
    const from = a.mark();
    await w.send('No, that is all.');
    await a.waitFor(isMsg(cid, (x) => x.body === 'No, that is all.'), { from, what: 'visitor message after reload' });
    await screenshot(page, '10-chat-08-after-reload');
});

it('a returning visitor whose page lost the conversation gets it back from welcome; older messages load on demand', async () => {
    const { a, w, cid, page } = S;
    // fill the conversation with 60 more messages
    await w.send('And another thing.');
    for (let i = 1; i <= 60; i++) {
        await agentSay(a, cid, `bulk ${i}`);
        await sleep(60); // stay under the agent rate limit
    }
    await w.waitText('bulk 60', WAIT * 4);
    const total = await a.ok({ type: 'history', conversation_id: cid, limit: 1 });
    const last = total.messages[0].seq;
    // keep the token only (as on a new page of a site whose storage was trimmed)
    await page.evaluate((site) => {
        localStorage.removeItem(`chatdesk:v1:${site}:conv`);
        localStorage.removeItem(`chatdesk:v1:${site}:msgs`);
    }, S.site);
    await page.reload();
    await w.waitState('online');
    await w.waitText('bulk 60');
    let list = await w.list();
    assert.equal(list.at(-1).seq, last);
    assert.ok(list.length <= 51, `one page of history (${list.length})`);
    await w.q('.older').waitFor();
    const firstBefore = list[0].seq;
    await w.q('.older').click();
    await waitUntil(async () => (await w.list())[0].seq < firstBefore, { what: 'older messages loaded' });
    list = await w.list();
    const seqs = list.map((x) => x.seq).filter((s) => Number.isInteger(s));
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y));
    assert.ok(list.some((x) => x.text === 'My invoice for order #1042 shows the wrong amount.') || (await w.q('.older').isVisible()));
    await screenshot(page, '10-chat-12-older-history');
    assert.deepEqual(page.cdErrors, [], 'no page errors');
});

it('resolved: "no" reopens by sending a message; "yes" closes it and asks for a CSAT rating with a comment', async () => {
    const { a, w, cid, page } = S;
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await w.banner.waitFor();
    assert.match(await w.banner.textContent(), /resolved/);
    await screenshot(page, '10-chat-09-resolved');
    await w.q('.banner button.ghost').click();
    await waitUntil(async () => /send a message/i.test(await w.banner.textContent()), { what: 'reopen hint' });
    const from = a.mark();
    await w.send('Actually, one more question.');
    await a.waitFor((f) => f.type === 'conversation.updated' && f.conversation?.id === cid && f.conversation.status === 'open', { from, what: 'reopened' });
    await waitUntil(async () => await w.banner.isHidden(), { what: 'banner gone after reopening' });

    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await waitUntil(async () => (await w.banner.isVisible()) && /resolved/.test(await w.banner.textContent()), { what: 'resolved again' });
    await w.q('.banner button.btn:not(.ghost)').click();
    await w.q('.banner .stars').waitFor();
    await w.q('.banner .stars label:nth-of-type(4)').click();
    await w.q('.banner textarea').fill('Quick and friendly, thanks!');
    await screenshot(page, '10-chat-10-csat');
    await w.q('.banner button[type=submit]').click();
    await waitUntil(async () => /Thank you for your feedback/.test(await w.banner.textContent()), { what: 'csat thanks' });
    // "yes" is the customer's confirmation: the conversation is closed
    await a.waitFor((f) => f.type === 'conversation.updated' && f.conversation?.id === cid && f.conversation.status === 'closed', { what: 'closed on confirmation' });
    const h = await a.ok({ type: 'history', conversation_id: cid, limit: 1 });
    assert.ok(h.messages.length >= 1);
    await screenshot(page, '10-chat-11-csat-thanks');
});
