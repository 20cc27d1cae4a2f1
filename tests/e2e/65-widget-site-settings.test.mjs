// Issue 18 bug 10: the colour set for the site (Admin → Sites, widget.color) is the
// widget's accent colour: over the page's data-color, applied when the welcome brings it,
// and remembered so that a reload paints it before the widget connects.
import { useStack, it, assert, addSite, widget, screenshot, rnd } from './lib.mjs';

const st = useStack({ nodes: 1 });

const bg = (loc) => loc.evaluate((el) => getComputedStyle(el).backgroundColor);

it('the site\'s widget colour is applied, over data-color, and kept across a reload', async () => {
    const site = await addSite(st.env, [st.origin()]);
    const email = `adm_${rnd(3)}@example.com`;
    await st.env.admin('agent-add', '--email', email, '--password', 'pw-admin-123', '--name', 'Boss', '--site', site, '--role', 'admin');
    const token = await st.env.login(0, email, 'pw-admin-123');
    const r = await st.env.http(0, `/api/v1/admin/sites/${site}`, { method: 'PATCH', body: { widget: { color: '#aa3300' } }, headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, r.text);
    const page = await st.browser.page();
    const w = widget(page);
    // the page asks for green; the site's setting decides
    await page.goto(`${st.origin()}/demo?site=${site}&color=%2300aa00`);
    assert.equal(await bg(w.launcher), 'rgb(0, 170, 0)', 'before the welcome: the page\'s colour');
    await w.launcher.click();
    await w.waitState('online');
    assert.equal(await bg(w.launcher), 'rgb(170, 51, 0)');
    assert.equal(await bg(w.q('.head')), 'rgb(170, 51, 0)');
    await screenshot(page, '65-widget-site-colour');
    // a reload paints it at once, before any connection
    await w.launcher.click();
    await page.reload();
    await w.launcher.waitFor();
    assert.equal(await bg(w.launcher), 'rgb(170, 51, 0)');
    assert.deepEqual(page.cdErrors, [], 'no page errors');
});

it('bug 11: the open pre-chat form follows the agents: offline form, an agent comes online, chat form, without a reload', async () => {
    const site = await addSite(st.env, [st.origin()]);
    const page = await st.browser.page();
    const w = widget(page);
    await page.goto(`${st.origin()}/demo?site=${site}`);
    await w.launcher.click();
    await w.waitState('online');
    const note = w.q('.form .note');
    await note.waitFor();
    assert.match(await w.q('.head').textContent(), /away/);
    await screenshot(page, '65-widget-offline-form');
    // an agent of the site signs in (no reload of the page)
    const ag = await st.env.addAgent({ site });
    const a = await st.env.agent(0, { email: ag.email, password: ag.password });
    await note.waitFor({ state: 'detached', timeout: 25_000 });
    await screenshot(page, '65-widget-online-form');
    // and away again: the offline form comes back
    await a.ok({ type: 'presence.set', status: 'away' });
    await note.waitFor({ timeout: 25_000 });
    a.terminate();
    assert.deepEqual(page.cdErrors, [], 'no page errors');
});
