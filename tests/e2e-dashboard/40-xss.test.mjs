// Everything a visitor supplies is rendered as text: name, e-mail, subject, messages,
// attributes, page URL, title and referrer. No payload runs, no element is injected,
// only http(s) URLs become links; the page's CSP reports no violation.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, visitorSay, screenshot, waitUntil, endpointMissing, assertNoPageErrors } from './lib.mjs';

const st = useStack({ nodes: 1 });

const P = {
    name: '<img src=x onerror="window.__xss=1">',
    email: '"><img src=x onerror=window.__xss=11>@example.com',
    subject: '<script>window.__xss=2</script>',
    msg1: '<b onmouseover=alert(1)>bold</b><iframe src="javascript:window.__xss=3"></iframe>',
    msg2: 'see https://evil.example/"><script>window.__xss=4</script> now',
    msg3: 'javascript:window.__xss=5',
    msg4: '{{constructor.constructor("window.__xss=12")()}} ${window.__xss=13} <!-- -->',
    attrKey: '<svg onload=window.__xss=6>',
    attrVal: '<img src=x onerror=window.__xss=7>',
    url: 'javascript:window.__xss=8',
    title: '<img src=x onerror=window.__xss=9>',
    referrer: 'data:text/html,<script>window.__xss=10</script>',
};

it('an XSS payload from a visitor shows as text everywhere', async () => {
    const { env } = st;
    const site = await addSite(env);
    await env.admin('site-set', '--key', site, '--auto-assign', 'off');
    const ag = await addAgent(env, site, { name: 'Wang Fang' });
    const page = await st.browser.page();
    const d = dash(page);
    await d.login(st.origin(), ag.email, ag.password);
    const vc = await visitorChat(env, site, {
        message: P.msg1,
        form: { name: P.name, email: P.email, subject: P.subject },
        hello: { page: { url: P.url, title: P.title, referrer: P.referrer }, attributes: { [P.attrKey]: P.attrVal, plan: '<i>Pro</i>' } },
    });
    await visitorSay(vc.v, vc.cid, P.msg2);
    await visitorSay(vc.v, vc.cid, P.msg3);
    await visitorSay(vc.v, vc.cid, P.msg4);
    await d.nav('queue');
    const item = d.item(vc.cid);
    await item.waitFor();
    assert.equal(await item.locator('.name').textContent(), P.name);
    await d.open(vc.cid);
    for (const m of [P.msg1, P.msg2, P.msg3, P.msg4]) await d.waitText(m);
    assert.equal(await page.locator('.conv-pane .visitor-name').textContent(), P.name);
    assert.equal(await page.locator('.conv-pane .subject').textContent(), P.subject);
    assert.equal(await page.locator('.conv-pane .email').textContent(), P.email);
    // the one http(s) URL is a link to exactly that URL; nothing else is an element
    const links = await page.locator('.conv-pane .msg-body a').evaluateAll((as) => as.map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target })));
    assert.deepEqual(links, [{ href: 'https://evil.example/', rel: 'noopener noreferrer nofollow', target: '_blank' }]);
    assert.equal(await page.locator('.conv-pane .msg-body :not(a)').count(), 0, 'no element from a message body');

    const token = await page.evaluate(() => sessionStorage.getItem('chatdesk.token'));
    const skip = await endpointMissing(env, token, 'GET', `/api/v1/visitors/${vc.v.visitorId}`);
    if (!skip) {
        const attr = page.locator('.customer-pane .attrs .field').filter({ hasText: 'onload' });
        await attr.waitFor();
        assert.equal(await attr.locator('dt').textContent(), P.attrKey);
        assert.equal(await attr.locator('dd').textContent(), P.attrVal);
        assert.equal(await page.locator('.customer-pane [data-attr="plan"] dd').textContent(), '<i>Pro</i>');
        assert.match(await page.locator('.customer-pane [data-field="page"]').textContent(), /javascript:window\.__xss=8/);
        assert.match(await page.locator('.customer-pane [data-field="page"] .page-title').textContent(), /<img src=x/);
        assert.match(await page.locator('.customer-pane [data-field="referrer"]').textContent(), /data:text\/html,<script>/);
        // javascript: and data: URLs are shown, never linked
        const hrefs = await page.locator('.customer-pane a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
        assert.ok(hrefs.every((h) => /^https?:/.test(h)), `only http(s) links in the customer panel: ${hrefs}`);
    } else console.log(`# customer panel part skipped: ${skip}`);

    // nothing ran, nothing was injected
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'no payload ran');
    assert.equal(await page.locator('.shell img, .shell iframe, .shell script, .shell svg, .shell b, .shell i').count(), 0, 'no injected element');
    assert.deepEqual(page.cdDialogs, [], 'no alert()');
    await screenshot(page, '40-01-xss-as-text');
    // accept and open: the payload in the notification / title paths is text too
    await page.locator('.conv-pane [data-action="accept"]').click();
    await waitUntil(async () => (await d.status()) === 'open', { what: 'accepted' });
    await visitorSay(vc.v, vc.cid, P.name);
    await d.waitText(P.name);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assertNoPageErrors(page, 'xss page');
});
