// Admin pages (/api/v1/admin/*): an admin creates a team and an agent in the browser, and
// the new agent signs in; site settings, SLA policy and a shared canned reply are saved
// through the pages; the supervisor view; an agent without the admin role sees no admin
// page; keyboard shortcuts and their help panel; the zh-CN texts.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, endpointMissing, assertNoPageErrors, rnd, WAIT } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};

async function tokenOf(page) {
    return page.evaluate(() => sessionStorage.getItem('chatdesk.token'));
}

async function api(token, method, path, body) {
    return st.env.http(0, path, { method, body, headers: { authorization: `Bearer ${token}` } });
}

it('an admin signs in and sees the admin pages', async () => {
    const { env } = st;
    S.site = await addSite(env);
    S.admin = await addAgent(env, S.site, { name: 'Zhou Admin', role: 'admin' });
    const page = await st.browser.page();
    S.p = page;
    S.d = dash(page);
    await S.d.login(st.origin(), S.admin.email, S.admin.password);
    S.token = await tokenOf(page);
    await page.locator('[data-nav="admin"]').waitFor();
    await S.d.nav('admin');
    await page.locator('[data-page="admin"]').waitFor();
});

it('sites: the list, and settings saved through the page', async (t) => {
    const skip = await endpointMissing(st.env, S.token, 'GET', '/api/v1/admin/sites');
    if (skip) {
        await S.p.locator('[data-tab-body="sites"] [data-notice="not-available"]').waitFor();
        await screenshot(S.p, '20-01-admin-sites-not-available');
        return t.skip(skip);
    }
    const p = S.p;
    const row = p.locator(`[data-table="sites"] tr[data-site="${S.site}"]`);
    await row.waitFor();
    await screenshot(p, '20-01-admin-sites');
    await row.locator('button').click();
    const form = p.locator('[data-form="site-edit"]');
    await form.waitFor();
    await form.locator('input[name="greeting_en"]').fill('Hi! How can we help?');
    await form.locator('input[name="greeting_zh"]').fill('您好！有什么可以帮您？');
    await form.locator('input[name="categories"]').fill('billing, technical');
    await form.locator('input[name="auto_assign"]').uncheck();
    // the site's own attachment limits: 0.5 MB, PDF and images only
    await form.locator('input[name="file_max_mb"]').fill('0.5');
    await form.locator('select[name="file_types_mode"]').selectOption('site');
    for (const c of ['office', 'text', 'archive']) await form.locator(`input[name="ft_${c}"]`).uncheck();
    await screenshot(p, '20-02-admin-site-edit');
    await form.locator('[data-action="save-site"]').click();
    await form.waitFor({ state: 'detached' });
    const r = await api(S.token, 'GET', '/api/v1/admin/sites');
    const site = r.json.sites.find((s) => s.key === S.site);
    assert.equal(site.widget.greeting_zh, '您好！有什么可以帮您？');
    assert.deepEqual(site.widget.categories, ['billing', 'technical']);
    assert.equal(site.auto_assign, false);
    assert.equal(site.file_max_bytes, 524288);
    assert.deepEqual(site.file_types, ['image', 'pdf']);
});

it('teams: created in the page', async (t) => {
    const skip = await endpointMissing(st.env, S.token, 'GET', `/api/v1/admin/sites/${S.site}/teams`);
    if (skip) return t.skip(skip);
    const p = S.p;
    await p.locator('[data-tab="teams"]').click();
    const form = p.locator('[data-form="team-create"]');
    await form.waitFor();
    await form.locator('input[name="key"]').fill('tier2');
    await form.locator('input[name="name"]').fill('Tier 2 specialists');
    await form.locator('[data-action="create-team"]').click();
    await p.locator('[data-table="teams"] tr[data-team="tier2"]').waitFor();
    await screenshot(p, '20-03-admin-teams');
    // the site's categories route to teams picked by name; taking a team off one removes it
    const editSite = async (pick) => {
        await p.locator('[data-tab="sites"]').click();
        await p.locator(`[data-table="sites"] tr[data-site="${S.site}"] button`).click();
        const form = p.locator('[data-form="site-edit"]');
        await form.waitFor();
        for (const [cat, label] of pick) await form.locator(`select[name="category_team_${cat}"]`).selectOption({ label });
        await form.locator('[data-action="save-site"]').click();
        await form.waitFor({ state: 'detached' });
        return (await api(S.token, 'GET', '/api/v1/admin/sites')).json.sites.find((x) => x.key === S.site).category_teams;
    };
    assert.deepEqual(await editSite([['technical', 'Tier 2 specialists']]), { technical: 'tier2' });
    assert.deepEqual(await editSite([['billing', 'Tier 2 specialists'], ['technical', '— the site queue —']]), { billing: 'tier2' });
});

it('agents: the admin creates an agent in the page, who then signs in', async (t) => {
    const skip = await endpointMissing(st.env, S.token, 'GET', '/api/v1/admin/agents');
    if (skip) return t.skip(skip);
    const p = S.p;
    await p.locator('[data-tab="agents"]').click();
    await p.locator(`[data-table="agents"] tr[data-agent="${S.admin.email.toLowerCase()}"]`).waitFor();
    await p.locator('[data-action="add-agent"]').click();
    const form = p.locator('[data-form="agent-create"]');
    await form.waitFor();
    const email = `new_${rnd(3)}@example.com`;
    const password = `pw-${rnd(6)}`;
    await form.locator('input[name="email"]').fill(email);
    await form.locator('input[name="name"]').fill('Chen Jing');
    await form.locator('input[name="password"]').fill(password);
    await form.locator('input[name="max_chats"]').fill('3');
    const teamsSkip = await endpointMissing(st.env, S.token, 'GET', `/api/v1/admin/sites/${S.site}/teams`);
    if (!teamsSkip) await form.locator('input[name="teams"]').fill('tier2');
    await form.locator(`input[name="sites"][value="${S.site}"]`).check();
    await screenshot(p, '20-04-admin-agent-form');
    await form.locator('[data-action="create-agent"]').click();
    const row = p.locator(`[data-table="agents"] tr[data-agent="${email}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /Chen Jing/);
    await screenshot(p, '20-05-admin-agents');

    // the new agent signs in, in a browser context of their own
    const p2 = await st.browser.page();
    const d2 = dash(p2);
    await d2.login(st.origin(), email, password);
    assert.equal(await p2.locator('.top .me').textContent(), 'Chen Jing');
    assert.equal(await p2.locator('[data-nav="admin"]').count(), 0, 'no admin page for an agent');
    // and can work: a visitor's chat reaches the queue
    const vc = await visitorChat(st.env, S.site, { message: 'Hello new agent', form: { name: 'Visitor for Chen' } });
    await d2.nav('queue');
    await d2.item(vc.cid).waitFor({ timeout: WAIT * 2 });
    await screenshot(p2, '20-06-new-agent-signed-in');
    // an agent's token on an admin endpoint: forbidden (JSON error)
    const r = await api(await tokenOf(p2), 'GET', '/api/v1/admin/agents');
    assert.equal(r.status, 403);
    assert.equal(r.json.error.code, 'forbidden');
    S.p2 = p2;
    S.newAgent = { email, password };

    // disable the agent in the page: their session ends, a new login is refused
    await p.locator(`[data-table="agents"] tr[data-agent="${email}"] button`).click();
    const edit = p.locator('[data-form="agent-edit"]');
    await edit.waitFor();
    await edit.locator('input[name="disabled"]').check();
    await edit.locator('[data-action="save-agent"]').click();
    await edit.waitFor({ state: 'detached' });
    await p.locator(`[data-table="agents"] tr[data-agent="${email}"].disabled`).waitFor();
    const login = await st.env.http(0, '/api/v1/login', { method: 'POST', body: { email, password } });
    assert.equal(login.status, 401, 'a disabled agent cannot sign in');
});

it("an agent shared with another tenant: only its teams and sites here can change; only owners add sites", async () => {
    const p = S.p;
    const other = await addSite(st.env);
    const shared = await addAgent(st.env, S.site, { name: 'Shared Lin', sites: [S.site, other] });
    // an admin (not an owner) is told who adds sites
    await p.locator('[data-tab="sites"]').click();
    await p.locator('[data-note="owner-only"]').waitFor();
    assert.equal(await p.locator('[data-action="add-site"]').count(), 0);
    await p.locator('[data-tab="agents"]').click();
    const row = p.locator(`[data-table="agents"] tr[data-agent="${shared.email.toLowerCase()}"]`);
    await row.waitFor();
    assert.ok(!(await row.textContent()).includes(other), "the other tenant's site key is not shown");
    await row.locator('button').click();
    const edit = p.locator('[data-form="agent-edit"]');
    await edit.waitFor();
    await edit.locator('[data-notice="agent-scoped"]').waitFor();
    for (const name of ['name', 'password', 'role', 'max_chats', 'disabled']) {
        assert.equal(await edit.locator(`[name="${name}"]`).isDisabled(), true, `${name} is greyed out`);
    }
    await edit.locator('input[name="teams"]').fill('tier2');
    await screenshot(p, '20-07-admin-agent-scoped');
    await edit.locator('[data-action="save-agent"]').click();
    await edit.waitFor({ state: 'detached' });
    const r = await api(S.token, 'GET', '/api/v1/admin/agents');
    const seen = r.json.agents.find((a) => a.id === shared.id);
    assert.deepEqual(seen.teams, ['tier2']);
    assert.deepEqual(seen.sites, [S.site]);
    assert.equal(seen.scoped, true);
});

it('SLA policies and business hours saved through the page', async (t) => {
    const skip = await endpointMissing(st.env, S.token, 'GET', `/api/v1/admin/sites/${S.site}/sla`);
    if (skip) return t.skip(skip);
    const p = S.p;
    await p.locator('[data-tab="sla"]').click();
    const form = p.locator('[data-form="sla"]');
    await form.waitFor();
    // targets in hours and minutes, the time zone from a list (issue 18 item 14)
    await form.locator('input[name="urgent.first_response_s.m"]').fill('10');
    await form.locator('input[name="normal.first_response_s.h"]').fill('2');
    await form.locator('input[name="normal.resolution_s.h"]').fill('24');
    await form.locator('select[name="tz"]').selectOption('Asia/Shanghai');
    for (const d of ['mon', 'tue', 'wed', 'thu', 'fri']) await form.locator(`input[name="h.${d}"]`).fill('09:00-18:00');
    await form.locator('textarea[name="holidays"]').fill('2026-10-01\n2026-10-02');
    await screenshot(p, '20-07-admin-sla');
    await form.locator('[data-action="save-sla"]').click();
    await waitUntil(async () => {
        const r = await api(S.token, 'GET', `/api/v1/admin/sites/${S.site}/sla`);
        return r.json?.sla?.policies?.normal?.first_response_s === 7200 && r.json.sla.calendar?.tz === 'Asia/Shanghai' ? r : null;
    }, { what: 'SLA saved' });
    const r = await api(S.token, 'GET', `/api/v1/admin/sites/${S.site}/sla`);
    assert.deepEqual(r.json.sla.calendar.hours.mon, [['09:00', '18:00']]);
    assert.deepEqual(r.json.sla.calendar.holidays, ['2026-10-01', '2026-10-02']);
    assert.equal(r.json.sla.policies.urgent.first_response_s, 600);
    // a malformed range is refused in the page
    await form.locator('input[name="h.sat"]').fill('all day');
    await form.locator('[data-action="save-sla"]').click();
    await form.locator('.notice-error').waitFor();
    await form.locator('input[name="h.sat"]').fill('');
});

it('canned replies: a shared one created by the admin is offered to every agent', async (t) => {
    const skip = await endpointMissing(st.env, S.token, 'GET', `/api/v1/canned?site=${S.site}`);
    if (skip) return t.skip(skip);
    const p = S.p;
    await p.locator('[data-tab="canned"]').click();
    await p.locator('[data-action="add-canned"]').click();
    const form = p.locator('[data-form="canned"]');
    await form.waitFor();
    await form.locator('select[name="scope"]').selectOption('site');
    await form.locator('input[name="shortcut"]').fill('thanks');
    await form.locator('input[name="title"]').fill('Thank you');
    await form.locator('textarea[name="body"]').fill('谢谢您，{customer_name}！工单 {ticket_number} 已记录。');
    await form.locator('[data-action="save-canned"]').click();
    await p.locator('[data-table="canned"] tr[data-canned="thanks"]').waitFor();
    await screenshot(p, '20-08-admin-canned');
    // another agent sees it in the canned list
    const other = await addAgent(st.env, S.site, { name: 'Other Agent' });
    const tok = await st.env.login(0, other.email, other.password);
    const r = await api(tok, 'GET', `/api/v1/canned?site=${S.site}`);
    assert.ok(r.json.canned.some((c) => c.shortcut === 'thanks' && c.scope === 'site'));
});

it('supervisor view: agents with presence and load, queues with depth and oldest wait, live', async (t) => {
    const skip = await endpointMissing(st.env, S.token, 'GET', `/api/v1/supervisor?site=${S.site}`);
    const p = S.p;
    await S.d.nav('supervisor');
    if (skip) {
        await p.locator('[data-page="supervisor"] [data-notice="not-available"]').waitFor();
        await screenshot(p, '20-09-supervisor-not-available');
        return t.skip(skip);
    }
    await p.locator('[data-table="agents"]').waitFor();
    await p.locator('.presence-switch select').selectOption('online');
    const myRow = p.locator(`[data-table="agents"] tr[data-agent="${S.admin.id}"]`);
    await waitUntil(async () => /Online/.test(await myRow.textContent()), { what: 'own presence online in the supervisor view' });
    // a new chat changes the queue depth without a reload (auto-assign is off)
    const before = await p.locator('[data-table="queues"]').textContent();
    await visitorChat(st.env, S.site, { message: 'Queue depth please', form: { name: 'Depth' } });
    await waitUntil(async () => (await p.locator('[data-table="queues"]').textContent()) !== before, { what: 'queue depth updated live' });
    await screenshot(p, '20-10-supervisor');
});

it('keyboard shortcuts: "?" opens the help panel, Alt+digit switches views, Esc closes', async () => {
    const p = S.p;
    await p.locator('body').click({ position: { x: 600, y: 5 } });
    await p.keyboard.press('?');
    const help = p.locator('.dialog.help');
    await help.waitFor();
    assert.ok((await help.locator('tr').count()) >= 10);
    await screenshot(p, '20-11-shortcuts-help');
    await p.keyboard.press('Escape');
    await help.waitFor({ state: 'detached' });
    await p.keyboard.press('Alt+2');
    await waitUntil(async () => (await p.locator('.shell').getAttribute('data-view')) === 'queue', { what: 'Alt+2 -> queue' });
    await p.keyboard.press('Alt+6');
    await waitUntil(async () => (await p.locator('.shell').getAttribute('data-view')) === 'tickets', { what: 'Alt+6 -> tickets' });
    await screenshot(p, '20-12-tickets-view');
    await p.keyboard.press('Alt+8');
    await waitUntil(async () => (await p.locator('.shell').getAttribute('data-view')) === 'canned', { what: 'Alt+8 -> canned' });
    await screenshot(p, '20-13-canned-page');
    assertNoPageErrors(p, 'admin page');
});

it('zh-CN: the browser language picks the Chinese texts; the switch changes them', async () => {
    const p = await st.browser.page({ locale: 'zh-CN' });
    await p.goto(`${st.origin()}/app/`);
    await p.locator('form.login-box button[type=submit]').waitFor();
    assert.equal(await p.locator('form.login-box button[type=submit]').textContent(), '登录');
    assert.equal(await p.evaluate(() => document.documentElement.lang), 'zh-CN');
    await screenshot(p, '20-14-zh-login');
    const d = dash(p);
    const agent = await addAgent(st.env, S.site, { name: '李娜' });
    await d.login(st.origin(), agent.email, agent.password);
    assert.equal(await p.locator('[data-nav="queue"] .nav-label').textContent(), '排队');
    assert.equal(await p.locator('[data-nav="tickets"] .nav-label').textContent(), '工单');
    assert.equal(await p.locator('[data-nav="pending"] .nav-label').textContent(), '待客户回复');
    await d.nav('queue');
    await p.locator('.conv-item').first().waitFor();
    await d.open(await p.locator('.conv-item').first().getAttribute('data-cid'));
    assert.match(await p.locator('.conv-pane [data-action="accept"]').textContent(), /^接入/);
    await screenshot(p, '20-15-zh-queue');
    await p.locator('select.lang').first().selectOption('en');
    await waitUntil(async () => (await p.locator('[data-nav="queue"] .nav-label').textContent()) === 'Queue', { what: 'switched to English' });
    assertNoPageErrors(p, 'zh page');
});
