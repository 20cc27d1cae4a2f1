// Admin → Automation rules in the browser: an admin builds the first example
// ("server failure" + high → infrastructure team, priority raised) with the form editor,
// sees it listed, a real conversation gets routed by it, a bad rule shows the server's
// message, the dry run shows which rules would fire, a rule is disabled from the list,
// and a team lead is chosen.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, assertNoPageErrors, WAIT } from './lib.mjs';

const st = useStack({ nodes: 1, args: ['--event-poll-ms', '50'] });
const S = {};

async function api(method, path, body) {
    return st.env.http(0, path, { method, body, headers: { authorization: `Bearer ${S.token}` } });
}

it('an admin creates a rule with the form editor and sees it listed', async () => {
    const { env } = st;
    S.site = await addSite(env);
    S.admin = await addAgent(env, S.site, { name: 'Rule Admin', role: 'admin' });
    S.lead = await addAgent(env, S.site, { name: 'Lead Liu' });
    const p = await st.browser.page();
    S.p = p;
    const d = dash(p);
    await d.login(st.origin(), S.admin.email, S.admin.password);
    S.token = await p.evaluate(() => sessionStorage.getItem('chatdesk.token'));
    assert.equal((await api('POST', `/api/v1/admin/sites/${S.site}/teams`, { key: 'infra', name: 'Infrastructure' })).status, 201);
    assert.equal((await api('PATCH', `/api/v1/admin/sites/${S.site}`, { auto_assign: false })).status, 200);
    await d.nav('admin');
    await p.locator('[data-tab="rules"]').click();
    await p.locator('[data-table="rules"]').waitFor();
    await p.locator('[data-action="add-rule"]').click();
    const form = p.locator('[data-form="rule-edit"]');
    await form.waitFor();
    await form.locator('input[name="name"]').fill('Server failures to infrastructure');
    await form.locator('select[name="event"]').selectOption('conversation.created');
    await form.locator('[data-action="add-condition"]').click();
    await form.locator('[data-action="add-condition"]').click();
    const c0 = form.locator('[data-condition="0"]');
    await c0.locator('select[name="field"]').selectOption('category');
    await c0.locator('select[name="op"]').selectOption('eq');
    await c0.locator('input[name="value"]').fill('server failure');
    const c1 = form.locator('[data-condition="1"]');
    await c1.locator('select[name="field"]').selectOption('priority');
    await c1.locator('select[name="op"]').selectOption('gte');
    await c1.locator('input[name="value"]').fill('high');
    const a0 = form.locator('[data-action-row="0"]');
    await a0.locator('select[name="type"]').selectOption('assign_team');
    // teams are picked by name (issue 18 item 14)
    await a0.locator('select[name="team"]').selectOption({ label: 'Infrastructure' });
    await form.locator('[data-action="add-action"]').click();
    const a1 = form.locator('[data-action-row="1"]');
    await a1.locator('select[name="type"]').selectOption('set_priority');
    await a1.locator('select[name="priority"]').selectOption('urgent');
    await screenshot(p, '65-01-rule-editor');
    await form.locator('[data-action="save-rule"]').click();
    await form.waitFor({ state: 'detached' });
    const rules = (await api('GET', `/api/v1/admin/sites/${S.site}/rules`)).json.rules;
    assert.equal(rules.length, 1);
    S.rule = rules[0];
    assert.deepEqual(
        { name: S.rule.name, enabled: S.rule.enabled, match: S.rule.match, trigger: S.rule.trigger, conditions: S.rule.conditions, actions: S.rule.actions },
        {
            name: 'Server failures to infrastructure',
            enabled: true,
            match: 'all',
            trigger: { event: 'conversation.created' },
            conditions: [
                { field: 'category', op: 'eq', value: 'server failure' },
                { field: 'priority', op: 'gte', value: 'high' },
            ],
            actions: [{ type: 'assign_team', team: 'infra' }, { type: 'set_priority', priority: 'urgent' }],
        },
    );
    const row = p.locator(`[data-table="rules"] tr[data-rule="${S.rule.id}"]`);
    await row.waitFor();
    assert.match(await row.locator('[data-col="name"]').textContent(), /Server failures to infrastructure/);
    await screenshot(p, '65-02-rules-list');
});

it('the rule routes a real conversation; a bad rule shows the server\'s message', async () => {
    const vc = await visitorChat(st.env, S.site, { message: 'All servers are down', form: { category: 'Server failure', priority: 'high' } });
    S.cid = vc.cid;
    await waitUntil(async () => (await st.env.redis.cmd('HGET', `cd:{s:${vc.cid.split('.').pop()}}:conv:${vc.cid}`, 'priority')) === 'urgent', { timeout: WAIT * 2, what: 'priority raised by the rule' });
    assert.equal(await st.env.redis.cmd('HGET', `cd:{s:${vc.cid.split('.').pop()}}:conv:${vc.cid}`, 'team'), 'infra');
    const p = S.p;
    await p.locator('[data-action="add-rule"]').click();
    const form = p.locator('[data-form="rule-edit"]');
    await form.locator('input[name="name"]').fill('Broken');
    await form.locator('[data-action-row="0"] select[name="type"]').selectOption('webhook');
    await form.locator('[data-action="save-rule"]').click();
    const err = form.locator('[data-notice="error"]');
    await err.waitFor();
    assert.match(await err.textContent(), /webhook must be an id/);
    await screenshot(p, '65-03-rule-error');
    await form.locator('button', { hasText: /Cancel/ }).click();
    await form.waitFor({ state: 'detached' });
    vc.v.terminate();
});

it('dry run, disabling a rule from the list, and a team lead', async () => {
    const p = S.p;
    const dry = p.locator('[data-form="dry-run"]');
    await dry.locator('input[name="conversation_id"]').fill(S.cid);
    await dry.locator('select[name="event"]').selectOption('conversation.created');
    await dry.locator('[data-action="dry-run"]').click();
    const res = p.locator(`[data-dry-rule="${S.rule.id}"]`);
    await res.waitFor();
    // the rule already raised the priority to urgent: priority >= high still holds
    assert.equal(await res.getAttribute('data-would-fire'), 'true');
    assert.equal(await res.locator('li[data-result="true"]').count(), 2);
    await screenshot(p, '65-04-dry-run');
    await p.locator(`tr[data-rule="${S.rule.id}"] input[name="enabled"]`).uncheck();
    await waitUntil(async () => (await api('GET', `/api/v1/admin/sites/${S.site}/rules`)).json.rules[0].enabled === false, { what: 'disabled' });
    await dry.locator('[data-action="dry-run"]').click();
    await waitUntil(async () => (await res.getAttribute('data-would-fire')) === 'false', { what: 'would not fire when disabled' });
    const lead = p.locator('[data-team-lead="infra"] select[name="lead"]');
    await lead.selectOption(S.lead.id);
    await waitUntil(async () => (await api('GET', `/api/v1/admin/sites/${S.site}/teams`)).json.teams.find((x) => x.key === 'infra').lead === S.lead.id, { what: 'lead saved' });
    await screenshot(p, '65-05-rules-disabled-and-lead');
    assertNoPageErrors(p, 'rules page');
});
