// Reports: a site that enables the survey (widget.survey {nps, ces}) gets the NPS (0-10)
// and CES (1-7) questions after the CSAT stars; the answers reach the conversation and the
// csat.submitted event. A site without the setting shows stars only.
import { useStack, it, assert, addSite, addAgent, takeConversation, agentSay, widget, screenshot, waitUntil, rnd } from './lib.mjs';

const st = useStack({ nodes: 1 });

async function chatToCsat(site) {
    const a = await addAgent(st.env, site, 0, { name: 'Zhang Wei' });
    const page = await st.browser.page();
    const w = widget(page);
    await page.goto(`${st.origin()}/demo?site=${site}`);
    await w.launcher.click();
    await w.waitState('online');
    await w.field('message').fill('Where is my parcel?');
    await w.q('.form button[type=submit]').click();
    const cid = await takeConversation(a);
    await agentSay(a, cid, 'It ships today.');
    await w.waitText('It ships today.');
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await waitUntil(async () => (await w.banner.isVisible()) && /resolved/.test(await w.banner.textContent()), { what: 'resolved banner' });
    await w.q('.banner button.btn:not(.ghost)').click();
    await w.q('.banner .stars').waitFor();
    return { a, page, w, cid };
}

it('survey enabled: NPS and CES questions appear after a CSAT score and are stored with it', async () => {
    const site = await addSite(st.env, [st.origin()]);
    const email = `adm_${rnd(3)}@example.com`;
    await st.env.admin('agent-add', '--email', email, '--password', 'pw-admin-123', '--name', 'Boss', '--site', site, '--role', 'admin');
    const token = await st.env.login(0, email, 'pw-admin-123');
    const r = await st.env.http(0, `/api/v1/admin/sites/${site}`, { method: 'PATCH', body: { widget: { survey: { nps: true, ces: true } } }, headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.site.widget.survey, { nps: true, ces: true });
    const bad = await st.env.http(0, `/api/v1/admin/sites/${site}`, { method: 'PATCH', body: { widget: { survey: { nps: 'yes' } } }, headers: { authorization: `Bearer ${token}` } });
    assert.equal(bad.status, 400);

    const { page, w, cid } = await chatToCsat(site);
    // the questions come after the score
    assert.equal(await w.q('.banner .scale[data-q=nps]').isHidden(), true);
    await w.q('.banner .stars label:nth-of-type(5)').click();
    await w.q('.banner .scale[data-q=nps]').waitFor();
    await w.q('.banner .scale[data-q=ces]').waitFor();
    assert.equal(await w.q('.banner .scale[data-q=nps] input').count(), 11);
    assert.equal(await w.q('.banner .scale[data-q=ces] input').count(), 7);
    assert.match(await w.q('.banner .scale[data-q=nps] legend').textContent(), /recommend/);
    await w.q('.banner .scale[data-q=nps] label:nth-of-type(10)').click(); // 9
    await w.q('.banner .scale[data-q=ces] label:nth-of-type(6)').click(); // 6
    await screenshot(page, '60-survey-01-nps-ces');
    await w.q('.banner button[type=submit]').click();
    await waitUntil(async () => /Thank you for your feedback/.test(await w.banner.textContent()), { what: 'csat thanks' });
    const got = await st.env.redis.cmd('HMGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'csat_score', 'csat_nps', 'csat_ces');
    assert.deepEqual(got, ['5', '9', '6']);
    const evs = await st.env.redis.cmd('XREVRANGE', `cd:{s:${cid.split('.').pop()}}:events`, '+', '-', 'COUNT', '50');
    const e = evs.map(([, f]) => Object.fromEntries(f.reduce((acc, x, i) => (i % 2 ? acc.at(-1).push(x) : acc.push([x]), acc), []))).find((x) => x.t === 'csat.submitted' && x.c === cid);
    assert.deepEqual(JSON.parse(e.d), { score: 5, comment: null, nps: 9, ces: 6 });
    assert.deepEqual(page.cdErrors, [], 'no page errors');
});

it('survey not enabled: stars only, the csat has no nps/ces', async () => {
    const site = await addSite(st.env, [st.origin()]);
    const { w, cid } = await chatToCsat(site);
    await w.q('.banner .stars label:nth-of-type(3)').click();
    assert.equal(await w.q('.banner .scale').count(), 0);
    await w.q('.banner button[type=submit]').click();
    await waitUntil(async () => /Thank you for your feedback/.test(await w.banner.textContent()), { what: 'csat thanks' });
    assert.deepEqual(await st.env.redis.cmd('HMGET', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`, 'csat_score', 'csat_nps', 'csat_ces'), ['3', '', '']);
});
