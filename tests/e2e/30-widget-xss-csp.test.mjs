// Safety: XSS payloads in messages (both ways), in the visitor's name and in the agent's
// name are shown as text and run nothing, live and after a reload; links only for
// http(s); no CSP violation on the demo page (script-src 'self', style-src 'self'); the
// widget embedded on a customer page of another origin with its own strict CSP.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { useStack, it, assert, addSite, addAgent, takeConversation, agentSay, widget, screenshot, waitUntil, WEB_DIR, xssHook as hook, xssAssertClean as assertClean } from './lib.mjs';

const st = useStack({ nodes: 1 });

const NAME = `<img src=x onerror=alert('name')>"><svg onload=alert('name2')>Li`;
const AGENT_NAME = `<img src=x onerror=alert('agent')>Eve`;
const VISITOR_MSG = `<script>alert('v1')</script><img src=x onerror="alert('v2')"> please help`;
const AGENT_MSGS = [
    `<script>alert(1)</script>`,
    `<img src=x onerror=alert(2)>`,
    `javascript:alert(3)`,
    `[click me](javascript:alert(4))`,
    `see https://example.com/a?b=1"><img src=x onerror=alert(5)> now`,
    `<a href="javascript:alert(6)">x</a> &lt;b&gt;entity&lt;/b&gt; {{constructor.constructor('alert(7)')()}}`,
    `data:text/html,<script>alert(8)</script> and HTTPS://EXAMPLE.ORG/Path_(x).`,
];

it('payloads in the visitor name, visitor and agent messages and the agent name are text; nothing runs; links are http(s) only', async () => {
    const site = await addSite(st.env, [st.origin()]);
    const a = await addAgent(st.env, site, 0, { name: AGENT_NAME });
    const page = await st.browser.page();
    const dialogs = await hook(page);
    const w = widget(page);
    await page.goto(`${st.origin()}/demo?site=${site}`);
    await w.launcher.click();
    await w.waitState('online');
    await w.field('name').fill(NAME);
    await w.field('subject').fill(`<b onmouseover=alert('subject')>bold</b>`);
    await w.field('message').fill(VISITOR_MSG);
    await w.q('.form button[type=submit]').click();
    await w.waitText(VISITOR_MSG);
    const q = await a.waitFor((f) => f.type === 'conversation.queued', { what: 'queued' });
    assert.equal(q.conversation.visitor.name, NAME, 'the name reaches the agent unchanged');
    assert.equal(q.conversation.subject, `<b onmouseover=alert('subject')>bold</b>`);
    const cid = await takeConversation(a);

    a.send({ type: 'typing', conversation_id: cid, state: true });
    await waitUntil(async () => (await w.typing.textContent()) === `${AGENT_NAME} is typing…`, { what: 'typing with the payload name as text' });
    for (const body of AGENT_MSGS) await agentSay(a, cid, body);
    await w.waitText(AGENT_MSGS.at(-1));
    const list = await w.list();
    for (const body of [VISITOR_MSG, ...AGENT_MSGS]) assert.equal(list.filter((m) => m.text === body).length, 1, `shown once, as text: ${body}`);
    assert.ok(list.some((m) => m.who === AGENT_NAME), 'agent name shown as text');
    await w.send(`"><img src=x onerror=alert('v3')>`);
    await w.waitText(`"><img src=x onerror=alert('v3')>`);
    const r = await assertClean(page, dialogs, 'live');
    assert.deepEqual(r.links, [
        ['https://example.com/a?b=1', 'https://example.com/a?b=1'],
        ['https://example.org/Path_(x)', 'HTTPS://EXAMPLE.ORG/Path_(x)'],
    ]);
    await screenshot(page, '30-xss-01-payloads-as-text');

    // restored from localStorage: the same
    await page.reload();
    await w.panel.waitFor();
    await w.waitText(AGENT_MSGS.at(-1));
    await w.waitState('online');
    await assertClean(page, dialogs, 'after reload');

    // closed conversation → new conversation form, prefilled with the name: as a value
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'closed' });
    await waitUntil(async () => /closed/.test(await w.banner.textContent()), { what: 'closed banner' });
    assert.equal(await w.input.isHidden(), true, 'no composer on a closed conversation');
    await screenshot(page, '30-xss-02-closed');
    await w.q('.banner .acts button').click();
    await w.field('name').waitFor();
    assert.equal(await w.field('name').inputValue(), NAME);
    await assertClean(page, dialogs, 'new conversation form');
});

it('the widget on a customer page of another origin, under that page\'s own strict CSP', async () => {
    // A customer site: another origin (a port of its own), its CSP allowing our script and
    // socket only; the stub is its own file (no inline script there either).
    const node = st.env.nodes[0];
    const server = http.createServer((req, res) => {
        const url = new URL(req.url, 'http://x');
        if (url.pathname === '/stub.js') {
            res.writeHead(200, { 'content-type': 'text/javascript' });
            res.end("window.chatdesk=window.chatdesk||function(){(chatdesk.q=chatdesk.q||[]).push(arguments)};chatdesk('setLocale','en');chatdesk('setUser',{name:'Shop customer',email:'c@example.com'});chatdesk('on','open',function(){document.body.setAttribute('data-opened','1')});");
            return;
        }
        const site = url.searchParams.get('site');
        res.writeHead(200, {
            'content-type': 'text/html; charset=utf-8',
            'content-security-policy': `default-src 'none'; script-src 'self' ${node.httpUrl}; connect-src ${node.url}; style-src 'self'; img-src 'self' data:; base-uri 'none'`,
        });
        res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Customer shop</title><link rel="icon" href="data:,">
<script src="/stub.js"></script>
<script src="${node.httpUrl}/widget.js" data-site="${site}" data-color="#0f766e" data-greeting="Welcome to the shop! Ask us anything." data-required="email" async></script>
</head><body><h1>Customer shop</h1><p>Host page text.</p></body></html>`);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const origin = `http://127.0.0.1:${server.address().port}`;
    try {
        const site = await addSite(st.env, [origin]);
        await addAgent(st.env, site, 0);
        const page = await st.browser.page();
        const dialogs = await hook(page);
        const w = widget(page);
        await page.goto(`${origin}/?site=${site}`);
        await w.launcher.click();
        await w.waitState('online'); // the socket goes to the script's origin, not the page's
        assert.equal(await page.evaluate(() => document.body.getAttribute('data-opened')), '1', "chatdesk('on','open') from the queue");
        assert.match(await w.q('.greet').textContent(), /Welcome to the shop/);
        assert.equal(await w.field('name').inputValue(), 'Shop customer', 'setUser prefills the form');
        assert.equal(await w.field('email').getAttribute('aria-required'), 'true', 'data-required');
        // the host page's styles do not reach in; the widget's colour is the configured one
        const bg = await w.launcher.evaluate((el) => getComputedStyle(el).backgroundColor);
        assert.equal(bg, 'rgb(15, 118, 110)');
        await w.field('message').fill('Hello from another origin');
        await w.q('.form button[type=submit]').click();
        await waitUntil(async () => (await w.list()).some((m) => m.text === 'Hello from another origin' && m.status === 'sent'), { what: 'sent' });
        await assertClean(page, dialogs, 'customer page');
        await screenshot(page, '30-xss-03-customer-origin-csp');
    } finally {
        await new Promise((r) => server.close(r));
        server.closeAllConnections?.();
    }
});

it('widget.js has no eval, new Function or inline handlers', async () => {
    const js = fs.readFileSync(path.join(WEB_DIR, 'widget.js'), 'utf8');
    assert.doesNotMatch(js, /\beval\s*\(/);
    assert.doesNotMatch(js, /new Function\s*\(/);
    assert.doesNotMatch(js, /\.innerHTML\s*=|insertAdjacentHTML|outerHTML\s*=|document\.write/);
    assert.doesNotMatch(js, /setAttribute\(\s*["']on/);
});
