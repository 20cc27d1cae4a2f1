// Reports page (docs/reports.md): an admin opens Reports after a week of conversations
// (six scripted days in the event stream + one real chat today through the protocol):
// KPI tiles show the figures of /api/v1/reports/summary, both charts are drawn on their
// canvases, the per-agent table lists the agents, the daily CSV downloads; an agent sees
// only their own numbers; zh-CN labels. Screenshots in output/.
import { useStack, it, assert, addSite, addAgent, dash, visitorChat, screenshot, waitUntil, assertNoPageErrors } from './lib.mjs';

const st = useStack({ nodes: 1 });
const S = {};
const DAY = 86_400_000;

it('a week of conversations: the reports page shows KPI tiles, charts, tables and a CSV download', async () => {
    const { env } = st;
    S.site = await addSite(env);
    S.admin = await addAgent(env, S.site, { name: 'Zhou Admin', role: 'admin' });
    S.agent = await addAgent(env, S.site, { name: 'Wang Fang' });
    const agentWs = await env.agent(0, { email: S.agent.email, password: S.agent.password, label: 'agent' });
    S.agentId = agentWs.agentId;

    // six earlier days: day k has k conversations answered after k minutes, resolved after 2k
    const now = Date.now();
    const ev = (t, c, ts, d) => env.redis.cmd('XADD', `cd:{s:${S.site}}:events`, '*', 't', t, 's', S.site, 'c', c, 'ts', String(ts), 'by', 'system', 'd', JSON.stringify(d));
    for (let k = 1; k <= 6; k++) {
        const day0 = Math.floor((now - k * DAY) / DAY) * DAY + 8 * 3600_000;
        for (let i = 0; i < k; i++) {
            const c = `e${k}_${i}`;
            const t0 = day0 + i * 3600_000;
            await ev('conversation.created', c, t0, { team: null, priority: 'normal' });
            await ev('message.created', c, t0, { author: { kind: 'visitor', id: 'v' }, private: false });
            await ev('conversation.status_changed', c, t0 + 30_000, { from: 'queued', to: 'open' });
            await ev('conversation.assigned', c, t0 + 30_000, { agent: S.agentId, previous: null, team: null, wait_ms: 30_000 });
            await ev('message.created', c, t0 + k * 60_000, { author: { kind: 'agent', id: S.agentId }, private: false });
            await ev('conversation.status_changed', c, t0 + 2 * k * 60_000, { from: 'pending', to: 'resolved' });
            await ev('csat.submitted', c, t0 + 2 * k * 60_000 + 1000, { score: 3 + (k % 3), nps: k + 4, ces: 2 });
        }
    }
    // today: a real chat over the protocol
    const { v, cid } = await visitorChat(env, S.site, { message: 'My order has not arrived.' });
    await agentWs.ok({ type: 'conversation.accept', conversation_id: cid });
    await agentWs.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'r1', body: 'Let me check that for you.' });
    await agentWs.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await v.ok({ type: 'csat', conversation_id: cid, score: 5, nps: 10, ces: 1 });

    S.adminToken = await env.login(0, S.admin.email, S.admin.password);
    const from = new Date(now - 6 * DAY).toISOString().slice(0, 10);
    const to = new Date(now).toISOString().slice(0, 10);
    let sum;
    await waitUntil(
        async () => {
            const r = await env.http(0, `/api/v1/reports/summary?site=${S.site}&from=${from}&to=${to}`, { headers: { authorization: `Bearer ${S.adminToken}` } });
            sum = r.json?.metrics;
            return sum?.conversations === 22 && sum.csat_n === 22;
        },
        { what: 'the week in the reports (1+2+…+6 scripted + 1 real = 22)' },
    );
    assert.equal(sum.resolved, 22);
    assert.equal(sum.fcr_rate, 1);

    const page = await st.browser.page({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
    S.page = page;
    const d = dash(page);
    await d.login(st.origin(), S.admin.email, S.admin.password);
    await d.nav('reports');
    await d.q('[data-page="reports"] .kpis').waitFor();
    const tile = (id) => d.q(`[data-kpi="${id}"] .kpi-value`).textContent();
    assert.equal(await tile('conversations'), '22');
    assert.equal(await tile('fcr'), '100%');
    assert.equal(await tile('csat'), `${sum.csat_avg} / 5`);
    assert.equal(await tile('nps'), String(sum.nps));
    assert.notEqual(await tile('frt'), '–');
    assert.notEqual(await tile('aht'), '–');
    assert.equal(await tile('backlog'), '0');
    // both charts drawn: canvases with a size and non-blank pixels
    for (const name of ['volume', 'quality']) {
        const info = await d.q(`[data-chart="${name}"] canvas`).evaluate((c) => {
            const ctx = c.getContext('2d');
            const px = ctx.getImageData(0, 0, c.width, c.height).data;
            let ink = 0;
            for (let i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
            return { w: c.width, h: c.height, ink };
        });
        assert.ok(info.w > 100 && info.h > 100, `${name} canvas sized: ${JSON.stringify(info)}`);
        assert.ok(info.ink > 500, `${name} chart drew something: ${JSON.stringify(info)}`);
    }
    const agentRow = d.q(`[data-table="rpt-agents"] tr[data-row="${S.agentId}"]`);
    await agentRow.waitFor();
    assert.match(await agentRow.textContent(), /Wang Fang/);
    await screenshot(page, '70-reports-01-week');

    // the daily CSV downloads (fetched with the token, saved from a blob)
    const [dl] = await Promise.all([page.waitForEvent('download'), d.q('[data-csv="daily"]').click()]);
    assert.match(dl.suggestedFilename(), /^chatdesk-daily-.*\.csv$/);
    const chunks = [];
    for await (const c of await dl.createReadStream()) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    const lines = text.trim().split('\r\n');
    assert.match(lines[0], /^"day","conversations",/);
    assert.equal(lines.length, 8, 'header + 7 days');
    assert.match(lines[7], new RegExp(`^"${to}",1,`));

    // one agent only: the scope menu
    await d.q('select[name="scope"]').selectOption(`agent:${S.agentId}`);
    await waitUntil(async () => (await d.q('.kpis').getAttribute('data-scope')) === `agent:${S.agentId}`, { what: 'agent scope' });
    assertNoPageErrors(page, 'reports page');
});

it('zh-CN labels, and an agent sees only their own figures', async () => {
    const { env } = st;
    const page = await st.browser.page({ viewport: { width: 1400, height: 1000 }, locale: 'zh-CN' });
    const d = dash(page);
    await d.login(st.origin(), S.agent.email, S.agent.password);
    await d.q('select.lang').selectOption('zh-CN');
    await d.nav('reports');
    await d.q('[data-page="reports"] .kpis').waitFor();
    assert.equal(await d.q('.kpis').getAttribute('data-scope'), `agent:${S.agentId}`);
    assert.equal(await d.q('select[name="scope"]').count(), 0);
    assert.match(await d.q('[data-kpi="frt"] .kpi-label').textContent(), /首次响应时间/);
    assert.match(await d.q('[data-kpi="aht"] .kpi-label').textContent(), /平均处理时长/);
    assert.match(await d.q('[data-kpi="fcr"] .kpi-label').textContent(), /一次解决率/);
    assert.equal(await d.q('[data-table="rpt-teams"]').count(), 0);
    assert.equal(await d.q('[data-kpi="conversations"] .kpi-value').textContent(), '22', 'the 22 conversations assigned to the agent');
    assert.match(await d.q('[data-kpi="conversations"] .kpi-label').textContent(), /分配的会话/);
    await d.q('[data-chart="volume"] canvas').waitFor();
    await screenshot(page, '70-reports-02-agent-zh');
    assertNoPageErrors(page, 'reports page (agent, zh-CN)');
});
