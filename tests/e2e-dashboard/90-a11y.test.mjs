// Issue 18 item 20: axe-core (WCAG 2.1 A and AA rules) finds no violation on the
// dashboard's main view (a conversation open, the queue, the unread badge), on every view
// of an admin's dashboard (as each first shows) and on the open widget, shadow DOM
// included. axe runs in the page through the DevTools protocol, so
// the node's CSP (script-src 'self') stays as it is.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, visitorSay, screenshot, axeViolations } from './lib.mjs';

const st = useStack({ nodes: 1 });

it('the dashboard\'s main view: a conversation open, the queue and an unread count', async () => {
    const { env } = st;
    const site = await addSite(env);
    const ag = await addAgent(env, site, { name: 'Gao Yan' });
    const page = await st.browser.page();
    const d = dash(page);
    await d.login(st.origin(), ag.email, ag.password);
    const { v, cid } = await visitorChat(env, site, { message: 'My parcel is late', form: { name: 'Qian Li' } });
    await d.nav('mine');
    await d.open(cid);
    await d.send('Let me check.');
    await d.waitText('Let me check.');
    // a second chat waits in the queue with an unread message
    const other = await visitorChat(env, site, { message: 'Hello?' });
    await visitorSay(v, cid, 'Thanks');
    await page.locator('.conv-pane .msg-list').waitFor();
    await screenshot(page, '90-a11y-main-view');
    const found = await axeViolations(page);
    assert.deepEqual(found, [], JSON.stringify(found, null, 1));
    v.terminate();
    other.v.terminate();
});

it('every view of an admin\'s dashboard', async () => {
    const { env } = st;
    const site = await addSite(env);
    const boss = await addAgent(env, site, { name: 'Boss Bai', role: 'admin' });
    const page = await st.browser.page();
    const d = dash(page);
    await d.login(st.origin(), boss.email, boss.password);
    const { v } = await visitorChat(env, site, { message: 'Hi there' });
    const all = {};
    for (const view of ['mine', 'queue', 'all', 'pending', 'resolved', 'tickets', 'supervisor', 'canned', 'admin', 'reports', 'mentions']) {
        await d.nav(view);
        await page.locator(`.shell[data-view="${view}"] main, .shell[data-view="${view}"]`).first().waitFor();
        const found = await axeViolations(page);
        if (found.length) all[view] = found;
    }
    assert.deepEqual(all, {}, JSON.stringify(all, null, 1));
    v.terminate();
});

it('the open widget (shadow DOM included)', async () => {
    const { env } = st;
    const site = await addSite(env, { origins: [st.origin()] });
    const page = await st.browser.page();
    await page.goto(`${st.origin()}/demo?site=${site}`);
    await page.locator('#chatdesk-widget .launcher').click();
    await page.locator('#chatdesk-widget .form form').waitFor();
    await screenshot(page, '90-a11y-widget-open');
    const found = (await axeViolations(page)).filter((x) => x.targets.some((t) => t.includes('chatdesk-widget')) || x.targets.length === 0);
    assert.deepEqual(found, [], JSON.stringify(found, null, 1));
});
