// Attachments in the widget (docs/attachments.md): a file picked with the paperclip, a
// pasted screenshot and a dropped file are uploaded at once and sent with the message;
// the agent (a protocol client) gets them; images show inline in the widget through a
// signed link, other files as cards; a file the server refuses shows its error with
// retry and remove; an agent's file reaches the widget as a card.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useStack, it, assert, addSite, addAgent, takeConversation, widget, screenshot, waitUntil, WAIT } from './lib.mjs';
import { httpRequest } from '../server/harness.mjs';
import { slowUplink, progressBetween } from '../support/browser.mjs';

const FILES = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-e2e-files-'));
process.on('exit', () => fs.rmSync(FILES, { recursive: true, force: true }));
const st = useStack({ nodes: 1, args: ['--files-dir', FILES] });
const S = {};
// a real 1x1 PNG, so the browser can decode it
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');
const isMsg = (cid, pred) => (f) => f.type === 'message.created' && f.conversation_id === cid && pred(f.message);

it('the paperclip: a picked image is uploaded, sent with the text, received by the agent and shown inline', async () => {
    S.site = await addSite(st.env, [st.origin()]);
    S.a = await addAgent(st.env, S.site, 0, { name: 'Zhang Wei' });
    const page = await st.browser.page();
    S.page = page;
    const w = widget(page);
    S.w = w;
    await page.goto(`${st.origin()}/demo?site=${S.site}`);
    await w.launcher.click();
    await w.waitState('online');
    await w.field('message').fill('My screen shows an error');
    await w.q('.form button[type=submit]').click();
    S.cid = await takeConversation(S.a);
    await w.input.waitFor();
    assert.equal(await w.q('.clip').getAttribute('aria-label'), 'Attach a file');
    await w.q('.compose input[type=file]').setInputFiles({ name: 'error.png', mimeType: 'image/png', buffer: PNG });
    await w.q('.chat .tray .att.done').waitFor();
    const from = S.a.mark();
    await w.send('Here is the screenshot');
    const ev = await S.a.waitFor(isMsg(S.cid, (m) => m.body === 'Here is the screenshot'), { from, what: 'the message with its file' });
    assert.equal(ev.message.attachments.length, 1);
    assert.deepEqual({ name: ev.message.attachments[0].name, type: ev.message.attachments[0].type, size: ev.message.attachments[0].size },
        { name: 'error.png', type: 'image/png', size: PNG.length });
    assert.equal(await w.q('.chat .tray').isHidden(), true, 'the tray empties on send');
    await waitUntil(() => page.evaluate(() => {
        const img = document.getElementById('chatdesk-widget').shadowRoot.querySelector('.att-img');
        return !!img && img.complete && img.naturalWidth === 1;
    }), { what: 'the image decoded inline' });
    const src = await w.q('.att-img').first().getAttribute('src');
    assert.match(src, /\/files\/f_[^?]+\?e=\d+&k=[^&]+&s=[0-9a-f]{64}$/);
    await screenshot(page, '70-att-01-image');
});

it('a pasted screenshot and a dropped file are sent; the text file shows as a card', async () => {
    const { w, page, a, cid } = S;
    await page.evaluate((b64) => {
        const root = document.getElementById('chatdesk-widget').shadowRoot;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'image.png', { type: 'image/png' }));
        root.querySelector('.compose textarea').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
    }, PNG.toString('base64'));
    await w.q('.chat .tray .att.done').waitFor();
    let from = a.mark();
    await w.input.press('Enter'); // no text: the file alone
    const pasted = await a.waitFor(isMsg(cid, (m) => m.attachments?.length === 1 && m.body === ''), { from, what: 'the pasted screenshot' });
    assert.equal(pasted.message.attachments[0].type, 'image/png');
    await page.evaluate(() => {
        const root = document.getElementById('chatdesk-widget').shadowRoot;
        const dt = new DataTransfer();
        dt.items.add(new File(['order 1042\ncharged twice\n'], 'notes.txt', { type: 'text/plain' }));
        const chat = root.querySelector('.chat');
        chat.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
        chat.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    });
    await w.q('.chat .tray .att.done').waitFor();
    from = a.mark();
    await w.send('notes attached');
    const dropped = await a.waitFor(isMsg(cid, (m) => m.body === 'notes attached'), { from, what: 'the dropped file' });
    assert.equal(dropped.message.attachments[0].type, 'text/plain; charset=utf-8');
    await waitUntil(async () => (await w.q('.att-file .name').allTextContents()).includes('notes.txt'), { what: 'the card' });
    await screenshot(page, '70-att-02-card');
});

it('a refused file shows its error with retry and remove; an agent\'s file reaches the widget as a card', async () => {
    const { w, page, a, cid } = S;
    await w.q('.compose input[type=file]').setInputFiles({ name: 'logo.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') });
    await w.q('.chat .tray .att.failed').waitFor();
    assert.match(await w.q('.chat .tray .err').textContent(), /not accepted/);
    await w.q('.chat .tray .att.failed button:not(.x)').click(); // retry: refused again
    await w.q('.chat .tray .att.failed').waitFor();
    await w.q('.chat .tray .x').click();
    assert.equal(await w.q('.chat .tray').isHidden(), true);
    // a file uploaded and then removed from the tray is withdrawn on the server (DELETE)
    await w.q('.compose input[type=file]').setInputFiles({ name: 'later.txt', mimeType: 'text/plain', buffer: Buffer.from('not now\n') });
    await w.q('.chat .tray .att.done').waitFor();
    const del = page.waitForRequest((r) => r.method() === 'DELETE' && /\/files\/f_/.test(r.url()));
    await w.q('.chat .tray .x').click();
    const id = decodeURIComponent(new URL((await del).url()).pathname.split('/').pop());
    assert.equal(await w.q('.chat .tray').isHidden(), true);
    await waitUntil(async () => (await httpRequest(`${st.origin()}/files/${encodeURIComponent(id)}/link`, { headers: { authorization: `Bearer ${a.token}` } })).status === 404,
        { what: 'the removed upload withdrawn on the server' });
    // the agent sends an invoice
    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(2000, 65)]);
    const up = await httpRequest(`${st.origin()}/files?name=invoice.pdf&conversation_id=${encodeURIComponent(cid)}`, {
        method: 'POST', headers: { authorization: `Bearer ${a.token}` }, body: pdf });
    assert.equal(up.status, 201, up.text);
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'inv-1', body: 'Your invoice', attachments: [up.json.id] });
    await waitUntil(async () => (await w.q('.att-file .name').allTextContents()).includes('invoice.pdf'), { timeout: WAIT * 2, what: "the agent's file" });
    await screenshot(page, '70-att-03-agent-file');
});

it('a large file shows its upload progress on a slow uplink, then is sent', async () => {
    const { w, page, a, cid } = S;
    const fast = await slowUplink(page, 256 * 1024);
    const text = 'line of the log file\n'.repeat(40000); // 840 000 bytes: about 3 s
    await w.q('.compose input[type=file]').setInputFiles({ name: 'app.log', mimeType: 'text/plain', buffer: Buffer.from(text) });
    const bar = w.q('.chat .tray .att.up progress');
    await progressBetween(bar, 'Uploading app.log'); // named, and seen between its ends
    await w.q('.chat .tray .att.done').waitFor({ timeout: WAIT * 3 });
    await fast();
    const from = a.mark();
    await w.send('the log');
    const ev = await a.waitFor(isMsg(cid, (m) => m.body === 'the log'), { from, what: 'the large file' });
    assert.deepEqual({ name: ev.message.attachments[0].name, size: ev.message.attachments[0].size }, { name: 'app.log', size: text.length });
});

it('the pre-chat form: a file picked before the conversation exists arrives with the first message', async () => {
    const page = await st.browser.page({ locale: 'zh-CN' });
    const w = widget(page);
    await page.goto(`${st.origin()}/demo?site=${S.site}`);
    await w.launcher.click();
    await w.waitState('online');
    // labelled and keyboard reachable: the button names its purpose and the field's label
    const add = w.q('.form .add-files');
    assert.equal((await add.textContent()).trim(), '添加文件');
    assert.match(await w.q('.form #cd-l-files').textContent(), /^附件/);
    // reached with Tab from the message field, opened with Enter: a file chooser opens
    await w.field('message').fill('截图如下');
    await w.field('message').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.getElementById('chatdesk-widget').shadowRoot.activeElement?.className), 'btn ghost add-files');
    // Enter on the button opens the file picker (a click on the hidden file input)
    await page.evaluate(() => {
        const input = document.getElementById('chatdesk-widget').shadowRoot.querySelector('.form input[type=file]');
        input.addEventListener('click', (e) => (e.preventDefault(), (window.__picked = (window.__picked || 0) + 1)));
    });
    await page.keyboard.press('Enter');
    await waitUntil(() => page.evaluate(() => window.__picked === 1), { what: 'Enter opening the file picker' });
    await w.q('.form input[type=file]').setInputFiles({ name: 'before.png', mimeType: 'image/png', buffer: PNG });
    await w.q('.form .tray .att.done').waitFor();
    // a refused file stays in the form's tray with its reason, and is not sent
    await w.q('.form input[type=file]').setInputFiles({ name: 'x.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') });
    await w.q('.form .tray .att.failed').waitFor();
    await w.q('.form .tray .att.failed .x').click();
    await screenshot(page, '70-att-04-prechat-form');
    const from = S.a.mark();
    await w.q('.form button[type=submit]').click();
    // the first message is announced by conversation.queued (agents are not yet in the
    // conversation); the agent takes it and reads it with its file in the history
    const cid = await takeConversation(S.a, (c) => c.id !== S.cid);
    assert.ok(S.a.frames.slice(from).some((f) => f.type === 'conversation.queued' && f.conversation.id === cid), 'a new conversation');
    const hist = await S.a.ok({ type: 'history', conversation_id: cid });
    const first = hist.messages.find((m) => m.seq === 1);
    assert.equal(first.body, '截图如下');
    assert.equal(first.attachments?.length, 1, JSON.stringify(first));
    assert.deepEqual({ name: first.attachments[0].name, type: first.attachments[0].type, size: first.attachments[0].size },
        { name: 'before.png', type: 'image/png', size: PNG.length });
    // the agent can open it (the visitor uploaded it with no conversation: the message took it)
    const link = await httpRequest(`${st.origin()}/files/${encodeURIComponent(first.attachments[0].id)}/link`, { headers: { authorization: `Bearer ${S.a.token}` } });
    assert.equal(link.status, 200, link.text);
    // the visitor sees its own first message with the image
    await waitUntil(() => page.evaluate(() => {
        const img = document.getElementById('chatdesk-widget').shadowRoot.querySelector('.list .att-img');
        return !!img && img.complete && img.naturalWidth === 1;
    }), { what: 'the form\'s image shown in the first message' });
    await screenshot(page, '70-att-05-prechat-sent');
});

it('a site that takes no attachments (file_types []) has no Files field in its pre-chat form', async () => {
    const site = await addSite(st.env, [st.origin()]);
    const email = `boss_${Date.now()}@example.com`;
    await st.env.admin('agent-add', '--email', email, '--password', 'pw-boss-1234', '--name', 'Boss', '--site', site, '--role', 'admin');
    const token = await st.env.login(0, email, 'pw-boss-1234');
    const r = await st.env.http(0, `/api/v1/admin/sites/${site}`, { method: 'PATCH', body: { file_types: [] }, headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, r.text);
    const page = await st.browser.page();
    const w = widget(page);
    await page.goto(`${st.origin()}/demo?site=${site}`);
    await w.launcher.click();
    await w.waitState('online');
    await w.field('message').waitFor();
    assert.equal(await w.q('.form .add-files').count(), 0);
    // the site that takes them still shows it
    await page.goto(`${st.origin()}/demo?site=${S.site}`);
    await w.launcher.click();
    await w.q('.form .add-files').waitFor();
});
