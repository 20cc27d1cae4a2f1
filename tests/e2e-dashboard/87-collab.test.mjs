// Agents work together (issue 19), two agents in two browser contexts on two nodes:
// each sees the other viewing the conversation and typing a note (en and zh-CN), an @mention
// from the note composer's autocomplete reaches the other as a notice kept in the Mentions
// view until read, and with "only the assignee may reply" the second agent is refused until
// it takes the conversation over.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, assertNoPageErrors } from './lib.mjs';

const st = useStack({ nodes: 2, args: ['--viewer-ttl-ms', '3000'] });
const S = {};

const collision = (page) => page.locator('.conv-pane .collision');

it('two agents on two nodes: each sees the other viewing, and the note being typed', async () => {
    const { env } = st;
    S.site = await addSite(env);
    await env.admin('site-set', '--key', S.site, '--auto-assign', 'off');
    S.A = await addAgent(env, S.site, { name: 'Alice' });
    S.B = await addAgent(env, S.site, { name: 'Bob' });
    S.pa = await st.browser.page();
    S.pb = await st.browser.page({ locale: 'zh-CN' });
    S.a = dash(S.pa);
    S.b = dash(S.pb);
    await S.a.login(st.origin(0), S.A.email, S.A.password);
    await S.b.login(st.origin(1), S.B.email, S.B.password);
    const vc = await visitorChat(env, S.site, { message: 'Where is my parcel?', form: { name: 'Li Lei' } });
    S.cid = vc.cid;
    S.v = vc.v;
    await S.a.nav('queue');
    await S.a.item(S.cid).locator('[data-action="accept"]').click();
    await S.pa.locator(`.conv-pane[data-cid="${S.cid}"]`).waitFor();
    await S.b.nav('all');
    await S.b.open(S.cid);
    // Alice (en) sees Bob viewing; Bob (zh-CN) sees Alice viewing
    await waitUntil(async () => (await collision(S.pa).count()) === 1 && /Bob is viewing/.test(await collision(S.pa).textContent()), { what: 'Bob viewing, on Alice\'s screen' });
    await waitUntil(async () => (await collision(S.pb).count()) === 1 && /Alice 正在查看/.test(await collision(S.pb).textContent()), { what: 'Alice viewing, on Bob\'s screen' });
    assert.equal(await collision(S.pa).getAttribute('data-collision'), `${S.B.id}:viewing`);
    // Bob writes a note: Alice sees it live; the visitor sees nothing
    await S.pb.locator('[data-mode-btn="note"]').click();
    await S.b.composer().pressSequentially('Checking the courier');
    await waitUntil(async () => /Bob is typing a note/.test((await collision(S.pa).textContent()) || ''), { what: 'Bob typing a note' });
    await screenshot(S.pa, '87-01-collision');
    assert.equal(S.v.filter((f) => f.type === 'viewers' || f.type === 'typing').length, 0, 'the visitor sees neither');
    await S.b.composer().fill('');
});

it('an @mention picked in the note composer notifies the other agent once, kept in Mentions until read', async () => {
    const { a, b, pa, pb, cid } = S;
    await b.composer().pressSequentially('@Ali');
    const opt = pb.locator(`.mention-picker [data-mention="${S.A.id}"]`);
    await opt.waitFor();
    await opt.click();
    assert.equal(await b.composer().inputValue(), '@Alice ');
    await b.composer().pressSequentially('please check the courier');
    await b.composer().press('Enter');
    // Alice: the Mentions badge, a toast, the list entry
    const badge = pa.locator('[data-nav="mentions"] [data-unread]');
    await waitUntil(async () => (await badge.count()) === 1 && (await badge.getAttribute('data-unread')) === '1', { what: 'mentions badge 1' });
    await a.nav('mentions');
    const item = pa.locator('.mention-list li');
    await item.first().waitFor();
    assert.equal(await item.count(), 1, 'one notice');
    assert.match(await item.first().textContent(), /Bob mentioned you/);
    assert.match(await item.first().locator('.mention-body').textContent(), /@Alice please check the courier/);
    await screenshot(pa, '87-02-mentions');
    await item.first().locator('[data-action="open-mention"]').click();
    await pa.locator(`.conv-pane[data-cid="${cid}"]`).waitFor();
    await waitUntil(async () => (await pa.locator('.mention-list li').count()) === 0, { what: 'read: gone from the list' });
    assert.equal(await badge.count(), 0);
    const token = await pa.evaluate(() => sessionStorage.getItem('chatdesk.token'));
    const r = await st.env.http(0, '/api/v1/mentions', { headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual(r.json.mentions, [], 'read on the server too');
    // the note itself is in the conversation, private
    await a.waitText('@Alice please check the courier');
});

it('only the assignee may reply: Bob is refused, takes over (noted), then replies', async () => {
    const { env } = st;
    const { pa, pb, b, cid } = S;
    const boss = await addAgent(env, S.site, { name: 'Boss', role: 'admin' });
    const tok = await env.login(0, boss.email, boss.password);
    const r = await env.http(0, `/api/v1/admin/sites/${S.site}`, { method: 'PATCH', body: { only_assignee_reply: true }, headers: { authorization: `Bearer ${tok}` } });
    assert.equal(r.status, 200, r.text);
    await pb.locator('[data-mode-btn="reply"]').click();
    await b.send('我来处理');
    const failed = pb.locator('.msg.pending[data-state="failed"]');
    await failed.waitFor();
    assert.match(await failed.textContent(), /only the assignee may reply/);
    await failed.locator('button', { hasText: /放弃|Discard/ }).click();
    await pb.locator('.conv-pane [data-action="takeover"]').click();
    await waitUntil(async () => (await pb.locator('.conv-pane .assignee-line').getAttribute('data-assignee')) === S.B.id, { what: 'Bob is the assignee' });
    await S.a.waitText('Taken over from Alice by Bob');
    await b.send('Your parcel arrives tomorrow.');
    await S.v.waitFor((f) => f.type === 'message.created' && f.message.body === 'Your parcel arrives tomorrow.');
    assert.equal(await pa.locator('.conv-pane [data-action="takeover"]').count(), 1, 'Alice may take it back');
    await screenshot(pb, '87-03-taken-over');
    assertNoPageErrors(pa, 'Alice');
    assertNoPageErrors(pb, 'Bob');
});
