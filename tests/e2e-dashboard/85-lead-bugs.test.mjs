// Issue 18, "Bugs found", in the browser: the traps a support lead hit in the dashboard.
// Each test names its item. Canned replies: unknown variables refused in the editor and
// held at send time (2), shared by default in Admin with an editable scope (7), the
// shortcut's pattern valid in Chromium and a shortcut with a space or "/" refused (9);
// the site form sends only what changed, so the survey switches survive (3).
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, assertNoPageErrors } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};

async function api(token, method, path, body) {
    return st.env.http(0, path, { method, body, headers: { authorization: `Bearer ${token}` } });
}

it('setup: an admin signs in and opens Admin', async () => {
    S.site = await addSite(st.env);
    S.admin = await addAgent(st.env, S.site, { name: 'Lead Liu', role: 'admin' });
    S.p = await st.browser.page();
    S.d = dash(S.p);
    await S.d.login(st.origin(), S.admin.email, S.admin.password);
    S.token = await S.p.evaluate(() => sessionStorage.getItem('chatdesk.token'));
    await S.d.nav('admin');
});

it('items 7, 2, 9: a canned reply made in Admin is shared by default, its scope can be changed; unknown variables and bad shortcuts are refused in the editor', async () => {
    const p = S.p;
    await p.locator('[data-tab="canned"]').click();
    await p.locator('[data-action="add-canned"]').click();
    const form = p.locator('[data-form="canned"]');
    await form.waitFor();
    // 7: Admin offers the shared scope first
    assert.equal(await form.locator('select[name="scope"]').inputValue(), 'site');
    // 9: a shortcut with a space or "/" does not pass the form's own check
    const shortcut = form.locator('input[name="shortcut"]');
    for (const bad of ['my greet/x', 'a b', 'x/']) {
        await shortcut.fill(bad);
        assert.equal(await shortcut.evaluate((el) => el.validity.patternMismatch), true, bad);
    }
    await shortcut.fill('refund');
    assert.equal(await shortcut.evaluate((el) => el.checkValidity()), true);
    // 2: a misspelt variable is pointed out and the form cannot be saved
    await form.locator('input[name="title"]').fill('Refund');
    await form.locator('textarea[name="body"]').fill('Hi {customer_nmae}, we refund {amount} today.');
    const warn = form.locator('[data-notice="unknown-vars"]');
    await warn.waitFor();
    assert.match(await warn.textContent(), /\{customer_nmae\} \{amount\}/);
    assert.equal(await form.locator('[data-action="save-canned"]').isDisabled(), true);
    await screenshot(p, '85-01-canned-unknown-variable');
    await form.locator('textarea[name="body"]').fill('Hi {customer_name}, we refund {attr.amount} today.');
    await warn.waitFor({ state: 'detached' });
    await form.locator('[data-action="save-canned"]').click();
    const row = p.locator('[data-table="canned"] tr[data-canned="refund"]');
    await row.waitFor();
    let list = (await api(S.token, 'GET', `/api/v1/canned?site=${S.site}`)).json.canned;
    assert.deepEqual(list.map((c) => [c.shortcut, c.scope]), [['refund', 'site']]);
    // 7: the scope is editable afterwards (and the edit sends only the scope)
    await row.locator('button', { hasText: 'Edit' }).click();
    const edit = p.locator('[data-form="canned"]');
    await edit.locator('select[name="scope"]').selectOption('agent');
    await edit.locator('[data-action="save-canned"]').click();
    await waitUntil(async () => (await api(S.token, 'GET', `/api/v1/canned?site=${S.site}`)).json.canned[0].scope === 'agent', { what: 'scope changed' });
    list = (await api(S.token, 'GET', `/api/v1/canned?site=${S.site}`)).json.canned;
    assert.equal(list[0].body, 'Hi {customer_name}, we refund {attr.amount} today.');
    // 9: no console error about the pattern attribute (Chromium compiles it with the v flag)
    assert.deepEqual(S.p.cdConsole.filter((l) => /pattern/i.test(l)), []);
    assertNoPageErrors(S.p, 'admin');
});

it('item 2: a reply saved before the editor checked it is held at send time like a missing value', async () => {
    const { env } = st;
    // stored directly, as an old reply would be: the API refuses it now
    const id = 'c_old1';
    await env.redis.cmd('HSET', `cd:{s:${S.site}}:canned:${id}`, 'id', id, 'site', S.site, 'scope', 'site', 'owner', S.admin.id, 'shortcut', 'old', 'title', 'Old', 'body', 'Dear {customer_nmae}, thanks!');
    await env.redis.cmd('SADD', `cd:{s:${S.site}}:canned`, id);
    const { v, cid } = await visitorChat(env, S.site, { form: { name: 'Wu Qing' } });
    // the site assigns chats to online agents: the lead gets it
    await S.d.nav('mine');
    await S.d.open(cid);
    await S.d.composer().fill('/old');
    await S.p.locator('.canned-picker [data-shortcut="old"]').waitFor();
    await S.d.composer().press('Enter');
    await waitUntil(async () => (await S.d.composer().inputValue()).includes('{customer_nmae}'), { what: 'reply inserted' });
    await S.d.composer().press('Control+End');
    await S.d.composer().press('Enter');
    const alert = S.p.locator('.var-warning');
    await alert.waitFor();
    assert.match(await alert.textContent(), /\{customer_nmae\}/);
    await screenshot(S.p, '85-02-composer-unknown-variable-held');
    assert.ok(!(await S.d.messages()).some((m) => m.text.includes('{customer_nmae}')), 'not sent');
    // braces typed by the agent are plain text and go out
    await S.d.send('Use the {code} field');
    await S.d.waitText('Use the {code} field');
    v.terminate();
});

it('item 3: saving the site in Admin keeps the survey switches and the colour it did not change', async () => {
    const p = S.p;
    const url = `/api/v1/admin/sites/${S.site}`;
    assert.equal((await api(S.token, 'PATCH', url, { widget: { color: '#aa3300', survey: { nps: true, ces: true } } })).status, 200);
    await S.d.nav('admin');
    await p.locator('[data-tab="sites"]').click();
    const row = p.locator(`[data-table="sites"] tr[data-site="${S.site}"]`);
    await row.locator('button').click();
    const form = p.locator('[data-form="site-edit"]');
    await form.waitFor();
    assert.equal(await form.locator('input[name="survey_nps"]').isChecked(), true);
    await form.locator('input[name="greeting_en"]').fill('Hello from the lead');
    const sent = [];
    p.on('request', (r) => {
        if (r.method() === 'PATCH' && r.url().endsWith(url)) sent.push(r.postDataJSON());
    });
    await form.locator('[data-action="save-site"]').click();
    await form.waitFor({ state: 'detached' });
    assert.deepEqual(sent, [{ widget: { greeting_en: 'Hello from the lead' } }]);
    const site = (await api(S.token, 'GET', '/api/v1/admin/sites')).json.sites.find((s) => s.key === S.site);
    assert.deepEqual(site.widget.survey, { nps: true, ces: true });
    assert.equal(site.widget.color, '#aa3300');
    assert.equal(site.widget.greeting_en, 'Hello from the lead');
    // and a switch turned off in the form is sent alone
    await row.locator('button').click();
    await form.locator('input[name="survey_ces"]').uncheck();
    await form.locator('[data-action="save-site"]').click();
    await form.waitFor({ state: 'detached' });
    assert.deepEqual(sent[1], { widget: { survey: { ces: false } } });
    const after = (await api(S.token, 'GET', '/api/v1/admin/sites')).json.sites.find((s) => s.key === S.site);
    assert.deepEqual(after.widget.survey, { nps: true, ces: false });
    // item 15: the repeat-contact alert and the report day are set here too
    await row.locator('button').click();
    await form.locator('input[name="health_threshold"]').fill('5');
    await form.locator('input[name="health_window_days"]').fill('14');
    await form.locator('select[name="report_utc_offset_min"]').selectOption({ label: 'UTC+08:00' });
    await screenshot(p, '85-06-site-settings');
    await form.locator('[data-action="save-site"]').click();
    await form.waitFor({ state: 'detached' });
    assert.deepEqual(sent[2], { health_threshold: 5, health_window_days: 14, report_utc_offset_min: 480 });
    assertNoPageErrors(p, 'admin');
});

it('items 4 and 12: Admin → SLA shows the built-in targets that apply to empty fields, and explains a reversed range in words', async () => {
    const p = S.p;
    await S.d.nav('admin');
    await p.locator('[data-tab="sla"]').click();
    const form = p.locator('[data-form="sla"]');
    await form.waitFor();
    // the site has no policy: every target is the built-in default, said so under the field
    const cell = form.locator('[data-target="low.first_response_s"]').locator('xpath=..');
    assert.equal(await cell.locator('[data-sla-from="default"]').textContent(), '4h 0m (built-in default)');
    // item 14: hours and minutes, the defaults as placeholders (urgent: 10 minutes)
    assert.equal(await form.locator('input[name="urgent.first_response_s.h"]').getAttribute('placeholder'), '0');
    assert.equal(await form.locator('input[name="urgent.first_response_s.m"]').getAttribute('placeholder'), '10');
    assert.doesNotMatch(await form.textContent(), /no target/i);
    await form.locator('input[name="high.first_response_s.m"]').fill('15');
    assert.equal(await form.locator('[data-target="high.first_response_s"]').locator('xpath=..').locator('[data-sla-from="site"]').textContent(), '15m 00s');
    // item 14: time zones from a list
    assert.ok((await form.locator('select[name="tz"] option').count()) > 100);
    // opening before closing: said in the page's words, not the server's field path
    await form.locator('input[name="h.mon"]').fill('18:00-09:00');
    await form.locator('[data-action="save-sla"]').click();
    const err = form.locator('.notice-error');
    await err.waitFor();
    const text = await err.textContent();
    assert.match(text, /Monday/);
    assert.doesNotMatch(text, /calendar\.hours/);
    await screenshot(p, '85-03-sla-defaults-and-hours');
    await form.locator('input[name="h.mon"]').fill('09:00-18:00');
    await form.locator('[data-action="save-sla"]').click();
    await waitUntil(async () => (await api(S.token, 'GET', `/api/v1/admin/sites/${S.site}/sla`)).json.sla.policies?.high?.first_response_s === 900, { what: 'SLA saved' });
    const eff = (await api(S.token, 'GET', `/api/v1/admin/sites/${S.site}/sla`)).json.effective;
    assert.deepEqual(eff.policies.high.first_response_s, { s: 900, from: 'site' });
    assert.deepEqual(eff.policies.high.resolution_s, { s: 28800, from: 'default' });
    assert.equal(eff.warn_at, 0.8);
});

it('items 13 and 5: a breach is toasted once and kept in the notices; the panel closes with Esc and with a click outside', async () => {
    const { env } = st;
    const p = S.p;
    // a one-second first response target; the chat stays unassigned and becomes a ticket after a second
    const url = `/api/v1/admin/sites/${S.site}`;
    assert.equal((await api(S.token, 'PATCH', url, { auto_assign: false, unanswered_after_s: 1 })).status, 200);
    assert.equal((await api(S.token, 'PUT', `${url}/sla`, { policies: { normal: { first_response_s: 1 } } })).status, 200);
    const { v, cid } = await visitorChat(env, S.site, { form: { subject: 'Late refund' } });
    await waitUntil(async () => (await env.redis.cmd('HGET', `cd:{s:${S.site}}:conv:${cid}`, 'ticket_number')) || null, { timeout: 15_000, what: 'ticket' });
    const n = await env.redis.cmd('HGET', `cd:{s:${S.site}}:conv:${cid}`, 'ticket_number');
    const text = `Ticket #${n}: First response SLA breached`;
    await p.locator('.toast', { hasText: text }).first().waitFor({ timeout: 15_000 });
    await p.locator('[data-notices-unseen]').waitFor();
    // one toast for the one breach (the notice of it is not toasted again)
    await waitUntil(async () => (await p.locator('.toast', { hasText: text }).count()) === 1, { what: 'one toast' });
    await p.waitForTimeout(600);
    assert.equal(await p.locator('.toast', { hasText: text }).count(), 1);
    const bell = p.locator('[data-action="notices"]');
    await bell.click();
    const panel = p.locator('[data-panel="notices"]');
    await panel.waitFor();
    assert.equal(await panel.locator('[data-kind="sla"]').first().locator('button').textContent(), text);
    await screenshot(p, '85-04-notices-breach');
    await p.keyboard.press('Escape');
    await panel.waitFor({ state: 'detached' });
    assert.equal(await bell.evaluate((el) => el === document.activeElement), true, 'focus back on the bell');
    await bell.click();
    await panel.waitFor();
    await p.locator('.page-head h2, .list-pane').first().click({ position: { x: 5, y: 5 } });
    await panel.waitFor({ state: 'detached' });
    v.terminate();
    assertNoPageErrors(p, 'dashboard');
});

it('item 14: rule actions pick teams, agents and shared canned replies by name', async () => {
    const p = S.p;
    assert.equal((await api(S.token, 'POST', `/api/v1/admin/sites/${S.site}/teams`, { key: 'billing', name: 'Billing desk' })).status, 201);
    const c = await api(S.token, 'POST', '/api/v1/canned', { site: S.site, scope: 'site', shortcut: 'late', title: 'Late delivery', body: 'Sorry, {customer_name}!' });
    assert.equal(c.status, 201, c.text);
    await S.d.nav('admin');
    await p.locator('[data-tab="rules"]').click();
    await p.locator('[data-action="add-rule"]').click();
    const form = p.locator('[data-form="rule-edit"]');
    await form.locator('input[name="name"]').fill('Late parcels');
    const a0 = form.locator('[data-action-row="0"]');
    await a0.locator('select[name="type"]').selectOption('send_canned');
    await a0.locator('select[name="canned"]').selectOption({ label: 'Late delivery (/late)' });
    await form.locator('[data-action="add-action"]').click();
    const a1 = form.locator('[data-action-row="1"]');
    await a1.locator('select[name="type"]').selectOption('assign_team');
    await a1.locator('select[name="team"]').selectOption({ label: 'Billing desk' });
    await form.locator('[data-action="add-action"]').click();
    const a2 = form.locator('[data-action-row="2"]');
    await a2.locator('select[name="type"]').selectOption('assign_agent');
    await a2.locator('select[name="agent"]').selectOption({ label: `Lead Liu <${S.admin.email}>` });
    await screenshot(p, '85-05-rule-pickers');
    await form.locator('[data-action="save-rule"]').click();
    await form.waitFor({ state: 'detached' });
    const rule = (await api(S.token, 'GET', `/api/v1/admin/sites/${S.site}/rules`)).json.rules.find((r) => r.name === 'Late parcels');
    assert.deepEqual(rule.actions, [
        { type: 'send_canned', canned: c.json.canned.id },
        { type: 'assign_team', team: 'billing' },
        { type: 'assign_agent', agent: S.admin.id },
    ]);
});
