// zh-CN: chosen from the browser's language, every state in Chinese (form, chat,
// typing, read, resolved, CSAT); setLocale switches at run time; Enter while an IME is
// composing does not send; a phone screen gets a full-screen panel.
import { useStack, it, assert, addSite, addAgent, takeConversation, agentSay, widget, screenshot, waitUntil } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};

it('zh-CN from navigator.language: the form, the conversation, typing, read receipts in Chinese', async () => {
    S.site = await addSite(st.env, [st.origin()]);
    S.a = await addAgent(st.env, S.site, 0, { name: '小王' });
    const page = await st.browser.page({ locale: 'zh-CN' });
    S.page = page;
    const w = widget(page);
    S.w = w;
    await page.goto(`${st.origin()}/demo?site=${S.site}`);
    assert.equal(await w.launcher.getAttribute('aria-label'), '打开在线客服');
    await w.launcher.click();
    await w.waitState('online');
    assert.equal(await w.q('#cd-title').textContent(), '在线客服');
    const labels = await w.q('.form label > span').allTextContents();
    assert.deepEqual(labels.map((l) => l.replace(/[ *]|（选填）/g, '')), ['姓名', '邮箱', '问题类型', '紧急程度', '主题', '问题描述']);
    assert.equal(await w.q('.form button[type=submit]').textContent(), '开始咨询');
    assert.deepEqual(await w.q('[name=priority] option').allTextContents(), ['低', '普通', '高', '紧急']);
    assert.equal(await w.q('.root').getAttribute('lang'), 'zh-CN');
    await w.field('name').fill('李雷');
    await w.field('category').selectOption('billing');
    await w.field('priority').selectOption('urgent');
    await w.field('subject').fill('发票金额有误');
    await w.field('message').fill('您好，我的订单 #1042 的发票金额不对。');
    await screenshot(page, '40-zh-01-form');
    await w.q('.form button[type=submit]').click();
    await w.waitText('您好，我的订单 #1042 的发票金额不对。');
    S.cid = await takeConversation(S.a);

    S.a.send({ type: 'typing', conversation_id: S.cid, state: true });
    await waitUntil(async () => (await w.typing.textContent()) === '小王正在输入…', { what: '正在输入…' });
    await agentSay(S.a, S.cid, '您好，我是客服小王，马上为您核实发票信息。');
    await w.waitText('您好，我是客服小王，马上为您核实发票信息。');
    await waitUntil(async () => (await w.typing.textContent()) === '', { what: 'typing cleared by the message' });
    const from = S.a.mark();
    await w.send('好的，谢谢！');
    const got = await S.a.waitFor((f) => f.type === 'message.created' && f.message?.body === '好的，谢谢！', { from, what: 'visitor message' });
    await waitUntil(async () => (await w.list()).find((m) => m.seq === got.message.seq)?.status === 'sent', { what: '已送达' });
    assert.match(await w.q(`li[data-seq="${got.message.seq}"] .meta`).textContent(), /已送达/);
    await S.a.ok({ type: 'read', conversation_id: S.cid, seq: got.message.seq });
    await waitUntil(async () => /已读/.test(await w.q(`li[data-seq="${got.message.seq}"] .meta`).textContent()), { what: '已读' });
    assert.equal(await w.input.getAttribute('placeholder'), '请输入消息…');
    assert.equal(await w.q('.send').getAttribute('aria-label'), '发送');
    await screenshot(page, '40-zh-02-conversation');
});

it('zh-CN: Enter while composing with an IME does not send; resolved → 已解决 → 满意度评价', async () => {
    const { a, w, page, cid } = S;
    await w.input.fill('拼音输入中');
    await w.input.evaluate((el) => el.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', keyCode: 229, isComposing: true, bubbles: true, cancelable: true })));
    assert.equal(await w.input.inputValue(), '拼音输入中', 'still in the composer');
    assert.equal((await w.list()).filter((m) => m.text === '拼音输入中').length, 0);
    await w.input.fill('');

    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await waitUntil(async () => /已解决/.test(await w.banner.textContent()), { what: 'resolved banner' });
    assert.match(await w.banner.textContent(), /客服已将本次会话标记为已解决。您的问题解决了吗？/);
    assert.deepEqual(await w.q('.banner button').allTextContents(), ['已解决', '未解决，继续咨询']);
    await screenshot(page, '40-zh-03-resolved');
    await w.q('.banner button.btn:not(.ghost)').click();
    await waitUntil(async () => /请对本次服务进行满意度评价/.test(await w.banner.textContent()), { what: '满意度评价' });
    await w.q('.banner .stars label:nth-of-type(5)').click();
    await w.q('.banner textarea').fill('小王服务很耐心，点赞！');
    await screenshot(page, '40-zh-04-csat');
    await w.q('.banner button[type=submit]').click();
    await waitUntil(async () => /感谢您的评价！/.test(await w.banner.textContent()), { what: '感谢您的评价' });

    // setLocale at run time (the demo's "English" button calls chatdesk('setLocale','en'))
    await page.locator('#lang-en').click();
    await waitUntil(async () => (await w.q('#cd-title').textContent()) === 'Chat with us', { what: 'English' });
    assert.match(await w.banner.textContent(), /Thank you for your feedback/);
    await page.locator('#lang-zh').click();
    await waitUntil(async () => (await w.q('#cd-title').textContent()) === '在线客服', { what: '中文' });
});

it('a phone screen: the panel fills the screen, the launcher hides while open, Esc / the close button close it', async () => {
    const page = await st.browser.page({ locale: 'zh-CN', viewport: { width: 375, height: 720 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    const w = widget(page);
    await page.goto(`${st.origin()}/demo?site=${S.site}`);
    await w.launcher.tap();
    await w.panel.waitFor();
    const box = await w.panel.boundingBox();
    assert.deepEqual([box.x, box.y, box.width, box.height], [0, 0, 375, 720]);
    assert.equal(await w.launcher.isHidden(), true);
    await w.field('message').fill('手机上也能咨询吗？');
    await screenshot(page, '40-zh-05-phone-form');
    await w.q('.form button[type=submit]').click();
    await w.waitText('手机上也能咨询吗？');
    await waitUntil(async () => (await w.list()).every((m) => m.status !== 'pending'), { what: 'sent' });
    await screenshot(page, '40-zh-06-phone-chat');
    await w.q('.head .icon').tap();
    await w.panel.waitFor({ state: 'hidden' });
    assert.equal(await w.launcher.isVisible(), true);
    assert.deepEqual(page.cdErrors, []);
});
