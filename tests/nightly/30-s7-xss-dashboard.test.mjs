// RELIABILITY S7 with a corpus (nightly): every payload of tests/support/xss-corpus.txt (over 100,
// after the OWASP filter-evasion cheat sheet) goes into every visitor field the dashboard
// renders, one visitor per payload: name, e-mail, subject, first message, page URL, page
// title, referrer and a custom attribute. The agent's dashboard lists them all in the queue
// and opens each conversation with its customer panel. Pass: every payload shows as its
// exact text, no alert() (a dialog), window.__xss never set, no element injected, no
// JavaScript error and no CSP violation.
import fs from 'node:fs';
import path from 'node:path';
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, waitUntil, REPO_ROOT, assertNoPageErrors } from '../e2e-dashboard/lib.mjs';

const CORPUS = fs
    .readFileSync(path.join(REPO_ROOT, 'tests', 'support', 'xss-corpus.txt'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
const INJECTED = 'img, iframe, script, svg, object, embed, video, audio, math, marquee, details, frameset, frame, xmp, template, isindex, keygen, meta, base, link, style, b, i';

const st = useStack({ nodes: 1 });

it(`S7: ${CORPUS.length} XSS payloads in every visitor field the dashboard renders are text; nothing runs`, async () => {
    assert.ok(CORPUS.length >= 100, `the corpus has ${CORPUS.length} payloads`);
    const { env } = st;
    const site = await addSite(env);
    await env.admin('site-set', '--key', site, '--auto-assign', 'off');
    const ag = await addAgent(env, site, { name: 'Li Na' });
    const page = await st.browser.page();
    const d = dash(page);
    await d.login(st.origin(), ag.email, ag.password);

    const chats = [];
    for (const [i, p] of CORPUS.entries()) {
        const vc = await visitorChat(env, site, {
            message: p,
            form: { name: p, email: p, subject: p },
            hello: { page: { url: p, title: p, referrer: p }, attributes: { [`k${i}`]: p.slice(0, 256) } },
        });
        chats.push({ p, cid: vc.cid, vid: vc.v.visitorId });
        vc.v.terminate();
    }
    await d.nav('queue');
    for (const c of chats) await d.item(c.cid).waitFor();
    const names = await page.locator('.list-pane .conv-item .name').allTextContents();
    for (const c of chats) assert.ok(names.includes(c.p), `queue item name ${JSON.stringify(c.p)}`);

    const token = await page.evaluate(() => sessionStorage.getItem('chatdesk.token'));
    const panel = (await env.http(0, `/api/v1/visitors/${chats[0].vid}`, { headers: { authorization: `Bearer ${token}` } })).status === 200;
    for (const [i, c] of chats.entries()) {
        await d.open(c.cid);
        await d.waitText(c.p);
        assert.equal(await page.locator('.conv-pane .visitor-name').textContent(), c.p, `name ${i}`);
        assert.equal(await page.locator('.conv-pane .subject').textContent(), c.p, `subject ${i}`);
        assert.equal(await page.locator('.conv-pane .email').textContent(), c.p, `email ${i}`);
        if (panel) {
            const attr = page.locator(`.customer-pane [data-attr="k${i}"] dd`);
            await attr.waitFor();
            assert.equal(await attr.textContent(), c.p.slice(0, 256), `attribute ${i}`);
            assert.ok((await page.locator('.customer-pane [data-field="page"]').textContent()).includes(c.p), `page URL ${i}`);
            assert.ok((await page.locator('.customer-pane [data-field="referrer"]').textContent()).includes(c.p), `referrer ${i}`);
            const hrefs = await page.locator('.customer-pane a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
            assert.ok(hrefs.every((h) => /^https?:/.test(h)), `only http(s) links in the customer panel: ${hrefs}`);
        }
        assert.equal(await page.locator(`.shell :is(${INJECTED})`).count(), 0, `an element injected by payload ${i}: ${c.p}`);
        assert.equal(await page.locator('.conv-pane .msg-body :not(a)').count(), 0, `an element in the message body of payload ${i}`);
    }
    await waitUntil(async () => true, { what: 'a last event loop turn' });
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'no payload ran');
    assert.deepEqual(page.cdDialogs, [], 'no alert()');
    assertNoPageErrors(page, 'xss corpus');
    console.log(`S7 dashboard: ${chats.length} payloads x 8 fields rendered as text${panel ? '' : ' (customer panel not served: 5 fields)'}`);
});
