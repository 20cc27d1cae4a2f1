// Attachments in the dashboard (docs/attachments.md): a visitor's (protocol client's)
// screenshot shows inline in the open conversation through a signed link; the agent
// attaches a file with the paperclip and sends it with a reply, which the visitor gets
// with its name, type and size and the dashboard shows as a card; a file the server
// refuses stays in the tray with its reason.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, assertNoPageErrors, WAIT } from './lib.mjs';
import { httpRequest } from '../server/harness.mjs';
import { slowUplink, progressBetween } from '../support/browser.mjs';

const FILES = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-e2e-dash-files-'));
process.on('exit', () => fs.rmSync(FILES, { recursive: true, force: true }));
const st = useStack({ nodes: 1, args: ['--files-dir', FILES] });
const S = {};
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');

it("the visitor's screenshot shows inline; the agent's attached PDF reaches the visitor", async () => {
    const { env } = st;
    const site = await addSite(env);
    await env.admin('site-set', '--key', site, '--auto-assign', 'off');
    const A = await addAgent(env, site, { name: 'Chen Jie' });
    const page = await st.browser.page();
    const a = dash(page);
    await a.login(st.origin(), A.email, A.password);
    const { v, cid } = await visitorChat(env, site, { message: 'It crashes, see below' });
    const up = await httpRequest(`${st.origin()}/files?name=crash.png`, { method: 'POST', headers: { authorization: `Bearer ${v.welcome.token}` }, body: PNG });
    assert.equal(up.status, 201, up.text);
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'v-att-1', body: 'screenshot', attachments: [up.json.id] });
    await a.nav('queue');
    await a.item(cid).locator('[data-action="accept"]').click();
    await a.open(cid);
    await waitUntil(() => page.evaluate(() => {
        const img = document.querySelector('.conv-pane .att-img');
        return !!img && img.tagName === 'IMG' && img.complete && img.naturalWidth === 1;
    }), { what: 'the screenshot decoded inline' });

    // a refused file stays in the tray with its reason; remove takes it out
    await page.locator('.composer input.att-input').setInputFiles({ name: 'x.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') });
    await page.locator('.composer .tray .att.failed').waitFor();
    assert.match(await page.locator('.composer .tray .err').textContent(), /not accepted/);
    await page.locator('.composer .tray .att.failed button').click();
    await waitUntil(async () => (await page.locator('.composer .tray').count()) === 0, { what: 'the tray emptied' });
    // an uploaded file removed from the tray is withdrawn on the server too (DELETE)
    await page.locator('.composer input.att-input').setInputFiles({ name: 'draft.txt', mimeType: 'text/plain', buffer: Buffer.from('not this one\n') });
    await page.locator('.composer .tray .att.done').waitFor();
    const del = page.waitForRequest((r) => r.method() === 'DELETE' && /\/files\/f_/.test(r.url()));
    await page.locator('.composer .tray .att.done button').click();
    const res = await (await del).response();
    assert.equal(res.status(), 204, 'the server withdrew it');
    await waitUntil(async () => (await page.locator('.composer .tray').count()) === 0, { what: 'the tray emptied again' });

    const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.alloc(3000, 66)]);
    await page.locator('.composer input.att-input').setInputFiles({ name: 'guide.pdf', mimeType: 'application/pdf', buffer: pdf });
    await page.locator('.composer .tray .att.done').waitFor();
    const from = v.mark();
    await a.send('Please follow this guide');
    const ev = await v.waitFor((f) => f.type === 'message.created' && f.conversation_id === cid && f.message.body === 'Please follow this guide', { from, what: "the agent's file" });
    assert.deepEqual({ name: ev.message.attachments[0].name, type: ev.message.attachments[0].type, size: ev.message.attachments[0].size },
        { name: 'guide.pdf', type: 'application/pdf', size: pdf.length });
    await waitUntil(async () => (await page.locator('.conv-pane .att-file .name').allTextContents()).includes('guide.pdf'), { timeout: WAIT * 2, what: 'the card' });
    await screenshot(page, '85-att-01');
    assertNoPageErrors(page);
    Object.assign(S, { page, v, cid, pdfSize: pdf.length });
});

it("the customer panel lists the conversation's files: name, type, size, who sent it; a click opens it through a signed link", async () => {
    const { page, v, cid, pdfSize } = S;
    const files = page.locator('.customer-pane .files');
    await waitUntil(async () => (await files.locator('li').count()) === 2, { what: 'two files in the customer panel' });
    assert.equal((await files.locator('h3').textContent()).replace(/\s+/g, ' ').trim(), 'Files 2');
    // newest first: the agent's PDF, then the visitor's screenshot
    const rows = await files.locator('li').evaluateAll((lis) => lis.map((li) => ({
        name: li.querySelector('.name').textContent, type: li.querySelector('.type').textContent,
        size: li.querySelector('.size').textContent, by: li.querySelector('.by').textContent.split(',')[0] })));
    assert.deepEqual(rows, [
        { name: 'guide.pdf', type: 'application/pdf', size: `${Math.round(pdfSize / 1024)} KB`, by: 'You' },
        { name: 'crash.png', type: 'image/png', size: `${PNG.length} B`, by: 'Visitor' },
    ]);
    // a click asks for a signed link and opens it in a new tab, which gets the file
    const popup = page.context().waitForEvent('page');
    const link = page.waitForResponse((r) => /\/files\/f_[^/]+\/link$/.test(new URL(r.url()).pathname));
    await files.locator('li', { hasText: 'crash.png' }).locator('button.name').click();
    assert.equal((await link).status(), 200);
    const tab = await popup;
    await tab.waitForLoadState();
    assert.match(tab.url(), /\/files\/f_[^?]+\?e=\d+&k=[^&]+&s=[0-9a-f]{64}$/);
    await tab.close();
    // a file sent later joins the list at once (from the live message)
    const up = await httpRequest(`${st.origin()}/files?name=${encodeURIComponent('账单.txt')}`, { method: 'POST', headers: { authorization: `Bearer ${v.welcome.token}` }, body: Buffer.from('订单 1042\n') });
    assert.equal(up.status, 201, up.text);
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'v-att-2', body: '', attachments: [up.json.id] });
    await waitUntil(async () => (await files.locator('li .name').first().textContent()) === '账单.txt', { what: 'the new file first in the list' });
    await screenshot(page, '85-att-02-customer-files');
    assertNoPageErrors(page);
});

it('files dropped on the conversation go to the tray with an upload progress bar and are sent', async () => {
    const { page, v, cid } = S;
    // a slow uplink so that the progress is seen between its ends
    const fast = await slowUplink(page, 256 * 1024);
    const text = 'line of the log file\n'.repeat(40000); // 840 000 bytes: about 3 s
    await page.evaluate((body) => {
        const pane = document.querySelector('.conv-pane');
        const target = pane.querySelector('.msg-list') || pane;
        const dt = new DataTransfer();
        dt.items.add(new File([body], 'server.log', { type: 'text/plain' }));
        target.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
        target.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
        window.__dropDt = dt;
    }, text);
    await page.locator('.conv-pane .drop-hint').waitFor();
    assert.equal(await page.locator('.conv-pane .drop-hint').textContent(), 'Drop files to attach them');
    const dropped = await page.evaluate(() => {
        const pane = document.querySelector('.conv-pane');
        const target = pane.querySelector('.msg-list') || pane;
        const ev = new DragEvent('drop', { dataTransfer: window.__dropDt, bubbles: true, cancelable: true });
        target.dispatchEvent(ev);
        return ev.defaultPrevented;
    });
    assert.equal(dropped, true, 'the drop is taken (the browser does not open the file)');
    await waitUntil(async () => (await page.locator('.conv-pane .drop-hint').count()) === 0, { what: 'the drop hint gone' });
    const bar = page.locator('.composer .tray .att.up progress');
    await progressBetween(bar, 'Uploading server.log'); // named, and seen between its ends
    await page.locator('.composer .tray .att.done').waitFor({ timeout: WAIT * 3 });
    await fast();
    await screenshot(page, '85-att-03-dropped');
    const from = v.mark();
    await page.locator('.composer [data-action="send"]').click();
    const ev = await v.waitFor((f) => f.type === 'message.created' && f.conversation_id === cid && f.message.attachments?.[0]?.name === 'server.log', { from, what: 'the dropped file' });
    assert.equal(ev.message.attachments[0].size, text.length);
    await waitUntil(async () => (await page.locator('.composer .tray').count()) === 0, { what: 'the tray emptied on send' });
    assertNoPageErrors(page);
});
