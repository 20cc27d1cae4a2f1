// Help articles in the widget (docs/kb.md): before starting a chat the visitor searches
// the site's published articles (Chinese and English), gets suggestions while typing the
// subject, and opens an article on the public page /kb/ (plain text, under the CSP).
import { useStack, it, assert, addSite, widget, screenshot, waitUntil } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};

async function seed() {
    const adm = await st.env.addAgent({ site: S.site, role: 'admin' });
    const token = await st.env.login(0, adm.email, adm.password);
    const add = async (a) => {
        const r = await st.env.http(0, `/api/v1/kb/sites/${S.site}/articles`, { method: 'POST', body: a, headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 201, r.text);
        return r.json.article;
    };
    S.refund = await add({ title: '如何申请退款', body: '在订单页面点击“申请退款”。\n\n退款将在3到5个工作日内退回原支付账户。', category: '订单', locale: 'zh-CN', status: 'published' });
    S.reset = await add({ title: 'How to reset your password', body: 'Click "Forgot password" on the sign-in page.', category: 'Account', locale: 'en', status: 'published' });
    S.draft = await add({ title: '退款内部流程（草稿）', body: '内部：退款审批。', locale: 'zh-CN', status: 'draft' });
}

const kbTitles = (w) => w.q('.kbl li a').allTextContents();

it('the visitor searches help articles before starting a chat (Chinese), drafts stay hidden', async () => {
    S.site = await addSite(st.env, [st.origin()]);
    await seed();
    const page = await st.browser.page({ locale: 'zh-CN' });
    S.page = page;
    const w = widget(page);
    S.w = w;
    await page.goto(`${st.origin()}/demo?site=${S.site}`);
    await w.launcher.click();
    const box = w.q('.kbq');
    await box.waitFor();
    assert.equal(await box.getAttribute('placeholder'), '搜索帮助文章');
    await box.fill('退款');
    await waitUntil(async () => (await kbTitles(w)).length > 0, { what: 'search results' });
    assert.deepEqual(await kbTitles(w), ['如何申请退款'], 'published only, the draft is not shown');
    assert.equal(await w.q('.kbh').textContent(), '帮助文章');
    const href = await w.q('.kbl li a').getAttribute('href');
    assert.equal(new URL(href).pathname, '/kb/');
    assert.equal(new URL(href).searchParams.get('id'), S.refund.id);
    await screenshot(page, '60-kb-01-widget-search-zh');
    await box.fill('xylophone');
    await waitUntil(async () => (await w.q('.kbh').textContent()) === '没有找到相关文章', { what: 'no results text' });
});

it('suggestions while typing the subject (English), and the article opens in a new tab', async () => {
    const { w, page } = S;
    await w.q('.kbq').fill('');
    await w.field('subject').fill('I forgot my password');
    await waitUntil(async () => (await kbTitles(w)).includes('How to reset your password'), { what: 'suggestion from the subject' });
    assert.equal(await w.q('.kbh').textContent(), '以下文章或许能帮到您');
    await screenshot(page, '60-kb-02-widget-suggest');
    const [tab] = await Promise.all([page.cdContext.waitForEvent('page'), w.q('.kbl li a').first().click()]);
    tab.cdErrors = [];
    tab.on('pageerror', (e) => tab.cdErrors.push(String(e)));
    await tab.locator('#article:not([hidden])').waitFor();
    assert.equal(await tab.locator('#title').textContent(), 'How to reset your password');
    assert.equal(await tab.locator('#body p').first().textContent(), 'Click "Forgot password" on the sign-in page.');
    assert.deepEqual(tab.cdErrors, []);
    await screenshot(tab, '60-kb-03-article-page');
    // the Chinese article: paragraphs from blank lines; a draft's page says it is not there
    await tab.goto(`${st.origin()}/kb/?site=${S.site}&id=${S.refund.id}`);
    await tab.locator('#article:not([hidden])').waitFor();
    assert.equal(await tab.locator('#body p').count(), 2);
    assert.equal(await tab.evaluate(() => document.documentElement.lang), 'zh-CN');
    await tab.goto(`${st.origin()}/kb/?site=${S.site}&id=${S.draft.id}&lang=zh-CN`);
    await waitUntil(async () => (await tab.locator('#state').textContent()) === '该文章不存在或尚未发布。', { what: 'draft not shown' });
    assert.equal(await tab.locator('#article').isHidden(), true);
});

it('a site without published articles: no help box and no HTTP request from the widget', async () => {
    const site = await addSite(st.env, [st.origin()]);
    const page = await st.browser.page();
    const w = widget(page);
    const requests = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(`${st.origin()}/demo?site=${site}`);
    await w.launcher.click();
    await w.waitState('online');
    await waitUntil(async () => (await page.evaluate(() => document.activeElement?.shadowRoot?.activeElement?.name)) === 'name', { what: 'focus on the first form field' });
    await w.field('subject').fill('reset password');
    await w.field('message').fill('I forgot my password');
    assert.equal(await w.q('.kb').count(), 0);
    // an absence: give a suggestion request (350 ms debounce) time to have been made
    await page.waitForTimeout(800);
    assert.deepEqual(requests.filter((u) => u.includes('/kb/')), []);
});
