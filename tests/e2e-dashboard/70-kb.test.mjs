// The knowledge base in the dashboard (docs/kb.md): an admin creates an article in the
// admin page, publishes it, and it becomes searchable by the public; in a conversation
// the "suggested articles" list offers it from the visitor's words and its button puts
// the article link into the composer, which the agent sends as a normal message.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, assertNoPageErrors } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};

it('an admin creates an article and publishes it from the knowledge-base tab', async () => {
    const { env } = st;
    S.site = await addSite(env);
    S.admin = await addAgent(env, S.site, { name: 'Zhou Admin', role: 'admin' });
    const page = await st.browser.page();
    S.p = page;
    S.d = dash(page);
    await S.d.login(st.origin(), S.admin.email, S.admin.password);
    await S.d.nav('admin');
    await page.locator('[data-tab="kb"]').click();
    await page.locator('[data-action="add-article"]').click();
    const form = page.locator('[data-form="kb-article"]');
    await form.locator('input[name="title"]').fill('如何申请退款');
    await form.locator('input[name="category"]').fill('订单');
    await form.locator('select[name="locale"]').selectOption('zh-CN');
    await form.locator('textarea[name="body"]').fill('在订单页面点击“申请退款”，填写原因后提交。');
    await screenshot(page, '70-kb-01-admin-new-article');
    await form.locator('[data-action="save-article"]').click();
    await form.waitFor({ state: 'detached' });
    const row = page.locator('[data-table="kb"] tr[data-status="draft"]');
    await row.waitFor();
    S.id = await row.getAttribute('data-article');
    const pub = await env.http(0, `/api/v1/public/sites/${S.site}/kb/search?q=${encodeURIComponent('退款')}`);
    assert.deepEqual(pub.json.articles, [], 'a draft is not public');
    await row.locator('[data-action="publish"]').click();
    await page.locator(`[data-table="kb"] tr[data-article="${S.id}"][data-status="published"]`).waitFor();
    await waitUntil(async () => {
        const r = await env.http(0, `/api/v1/public/sites/${S.site}/kb/search?q=${encodeURIComponent('申请退款')}`);
        return r.json.articles[0]?.id === S.id;
    }, { what: 'published article found by the public search' });
    // search inside the admin page
    await page.locator('input[name="kb-q"]').fill('退款');
    await waitUntil(async () => (await page.locator('[data-table="kb"] tr[data-article]').count()) === 1, { what: 'admin search' });
    await screenshot(page, '70-kb-02-admin-published');
    assertNoPageErrors(page, 'admin kb');
});

it('suggested articles in the conversation; "insert link" fills the composer and the visitor gets the link', async () => {
    const { env } = st;
    const { p, d } = S;
    const { v, cid } = await visitorChat(env, S.site, { message: '你好，我想申请退款，怎么操作？' });
    await d.nav('all');
    await d.item(cid).waitFor();
    const accept = d.item(cid).locator('[data-action="accept"]');
    if (await accept.count()) await accept.click();
    else await d.open(cid);
    await p.locator(`.conv-pane[data-cid="${cid}"]`).waitFor();
    const sug = p.locator(`.kb-suggest li[data-article="${S.id}"]`);
    await sug.waitFor();
    await screenshot(p, '70-kb-03-suggested');
    await sug.locator('[data-action="insert-article"]').click();
    const link = `${st.origin()}/kb/?site=${encodeURIComponent(S.site)}&id=${S.id}`;
    const text = `如何申请退款 ${link}`;
    await waitUntil(async () => (await d.composer().inputValue()) === text, { what: 'the link in the composer' });
    await d.composer().press('Enter');
    const got = await v.waitFor((f) => f.type === 'message.created' && f.message?.author?.kind === 'agent', { what: 'agent message with the link' });
    assert.equal(got.message.body, text);
    await d.waitText(text);
    await screenshot(p, '70-kb-04-link-sent');
    assertNoPageErrors(p, 'conversation with kb');
});
