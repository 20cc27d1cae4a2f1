// Reports (docs/reports.md): a scripted day of hand-written events with chosen times goes
// through the real consumer (reports_apply, pumped by a real node) and every figure of
// /reports/summary, /daily, /agents, /teams (JSON and CSV) is compared with values
// computed by hand below; then a real chat (visitor + agent over WebSocket) moves the
// counters; access rules and bad input.
import { useEnv, it, assert, waitUntil, rnd } from './harness.mjs';

// two nodes: both pump the consumer, and the hand-computed figures show nothing is counted twice
const env = useEnv({ nodes: 2 });
// Events written here straight into a site's stream: arm the site and tell the nodes, as
// the scripts' emit does.
const notify = async (site) => {
    await env.redis.cmd('SET', `${P}{s:${site}}:events:armed`, '1');
    await env.redis.cmd('PUBLISH', `${P}ch:events`, `0 * -\nE ${site}`);
};
const P = 'cd:';

const call = (token, url) => env.http(0, url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
async function person(site, role) {
    const email = `${role ?? 'ag'}_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    const args = ['agent-add', '--email', email, '--password', password, '--name', role === 'admin' ? 'Boss' : `Agent ${email}`, '--site', site.key];
    if (role) args.push('--role', role);
    const rec = await env.admin(...args);
    return { id: rec.id, name: rec.name, token: await env.login(0, email, password) };
}

/** CSV text -> array of rows (fields unquoted); enough for our numeric/quoted fields. */
function parseCsv(text) {
    assert.ok(text.endsWith('\r\n'), 'CSV lines end with CRLF');
    return text
        .slice(0, -2)
        .split('\r\n')
        .map((line) => {
            const out = [];
            const re = /("((?:[^"]|"")*)"|[^,]*)(,|$)/g;
            let m;
            while ((m = re.exec(line)) && m[0] !== '') {
                out.push(m[2] !== undefined ? m[2].replace(/""/g, '"') : m[1]);
                if (m[3] === '') break;
            }
            return out;
        });
}

const T0 = Date.UTC(2026, 2, 10, 9, 0, 0); // 2026-03-10 09:00 UTC
const MIN = 60_000;
const at = (m) => T0 + m * MIN;

it('a scripted day: every figure matches the hand-computed values (JSON and CSV)', async () => {
    const site = await env.addSite();
    const boss = await person(site, 'admin');
    const alice = await person(site);
    const bob = await person(site);
    const A = alice.id;
    const B = bob.id;
    let last;
    const ev = async (t, cid, m, d, by = 'system') => {
        last = await env.redis.cmd('XADD', `${P}{s:${site.key}}:events`, '*', 't', t, 's', site.key, 'c', cid, 'ts', String(m > 1e11 ? m : at(m)), 'by', by, 'd', JSON.stringify(d));
    };
    const created = (cid, m, team) => ev('conversation.created', cid, m, { category: null, priority: 'normal', team, subject: 'x', locale: 'en', visitor: { id: 'v' } });
    const vmsg = (cid, m) => ev('message.created', cid, m, { seq: 1, id: 'm', author: { kind: 'visitor', id: 'v' }, private: false, body: 'q' });
    const amsg = (cid, m, ag, priv = false) => ev('message.created', cid, m, { seq: 2, id: 'm', author: { kind: 'agent', id: ag }, private: priv, body: 'a' });
    const status = (cid, m, from, to) => ev('conversation.status_changed', cid, m, { from, to });
    const assign = (cid, m, ag, team, wait) => ev('conversation.assigned', cid, m, { agent: ag, previous: null, team, wait_ms: wait });
    const csat = (cid, m, d) => ev('csat.submitted', cid, m, d);

    // C1 support/alice: FRT 3 min, two next responses (2 and 4 min), resolved at +20, CSAT 5 / NPS 10 / CES 2
    await created('c1', 0, 'support');
    await vmsg('c1', 0);
    await status('c1', 1, 'queued', 'open');
    await assign('c1', 1, A, 'support', 60_000);
    await amsg('c1', 3, A); // FRT 3 min = 180000
    await status('c1', 3, 'open', 'pending');
    await vmsg('c1', 5);
    await status('c1', 5, 'pending', 'open');
    await amsg('c1', 7, A); // NRT 7-5 = 2 min = 120000
    await vmsg('c1', 8);
    await amsg('c1', 12, A); // NRT 12-8 = 4 min = 240000
    await status('c1', 20, 'open', 'resolved'); // resolution 20 min = 1200000; AHT 20-1 = 19 min = 1140000
    await csat('c1', 21, { score: 5, comment: null, nps: 10, ces: 2 });
    // C2 support/alice: one reply then resolved (FCR), CSAT 4 / NPS 8 / CES 3; reopened (FCR taken back)
    await created('c2', 30, 'support');
    await vmsg('c2', 30);
    await status('c2', 32, 'queued', 'open');
    await assign('c2', 32, A, 'support', 120_000);
    await amsg('c2', 35, A); // FRT 5 min = 300000
    await status('c2', 35, 'open', 'pending');
    await status('c2', 40, 'pending', 'resolved'); // resolution 10 min = 600000; AHT 40-32 = 8 min = 480000
    await csat('c2', 41, { score: 4, comment: 'ok', nps: 8, ces: 3 });
    await vmsg('c2', 50);
    await status('c2', 50, 'resolved', 'open'); // reopen: FCR back out, new handling period from 50
    await amsg('c2', 55, A); // NRT 55-50 = 5 min = 300000
    await status('c2', 55, 'open', 'pending');
    await status('c2', 60, 'pending', 'resolved'); // AHT 60-50 = 10 min = 600000; resolution not counted again
    // C3 sales/bob: ticket, first-response SLA breached, FCR, CSAT 2 / NPS 9 / CES 6
    await created('c3', 60, 'sales');
    await vmsg('c3', 60);
    await status('c3', 70, 'queued', 'open');
    await assign('c3', 70, B, 'sales', 600_000);
    await ev('ticket.created', 'c3', 71, { number: 1000 });
    await ev('sla.breached', 'c3', 75, { kind: 'first_response', due: at(75) });
    await amsg('c3', 80, B); // FRT 20 min = 1200000
    await status('c3', 80, 'open', 'pending');
    await status('c3', 100, 'pending', 'resolved'); // resolution 40 min = 2400000; AHT 30 min = 1800000; SLA missed
    await csat('c3', 101, { score: 2, comment: null, nps: 9, ces: 6 });
    // C4 sales/bob: ticket within SLA, FCR, CSAT 5 / NPS 6, closed after midnight
    await created('c4', 120, 'sales');
    await vmsg('c4', 120);
    await status('c4', 121, 'queued', 'open');
    await assign('c4', 121, B, 'sales', 60_000);
    await ev('ticket.created', 'c4', 122, { number: 1001 });
    await amsg('c4', 125, B); // FRT 5 min = 300000
    await status('c4', 125, 'open', 'pending');
    await status('c4', 130, 'pending', 'resolved'); // resolution 10 min = 600000; AHT 9 min = 540000; SLA met
    await csat('c4', 131, { score: 5, comment: null, nps: 6 });
    // C5 sales: the visitor leaves before any agent reply: abandoned
    await created('c5', 200, 'sales');
    await vmsg('c5', 200);
    await status('c5', 210, 'queued', 'closed');
    // C6 support/alice: still open at the end of the day (a private note is no response)
    await created('c6', 300, 'support');
    await vmsg('c6', 300);
    await status('c6', 301, 'queued', 'open');
    await assign('c6', 301, A, 'support', 60_000);
    await amsg('c6', 302, A, true);
    // C7 support: still queued
    await created('c7', 400, 'support');
    await vmsg('c7', 400);
    // next day (2026-03-11): C4 auto-closed at 00:30, C8 support created and queued
    await status('c4', Date.UTC(2026, 2, 11, 0, 30), 'resolved', 'closed');
    await created('c8', Date.UTC(2026, 2, 11, 10, 0), 'support');
    await vmsg('c8', Date.UTC(2026, 2, 11, 10, 0));
    const d2 = (h, m) => Date.UTC(2026, 2, 11, h, m);
    // C9 support: alice answers, then transfers to bob who resolves; rated 1, then re-rated 5 / NPS 10
    await created('c9', d2(11, 0), 'support');
    await vmsg('c9', d2(11, 0));
    await status('c9', d2(11, 1), 'queued', 'open');
    await assign('c9', d2(11, 1), A, 'support', 60_000);
    await amsg('c9', d2(11, 3), A); // FRT 3 min = 180000 (alice)
    await status('c9', d2(11, 3), 'open', 'pending');
    await ev('conversation.assigned', 'c9', d2(11, 5), { agent: B, previous: A, team: 'support', wait_ms: null }); // AHT alice 11:01-11:05 = 240000
    await status('c9', d2(11, 15), 'pending', 'resolved'); // AHT bob 11:05-11:15 = 600000; resolution 15 min = 900000; FCR (one reply)
    await csat('c9', d2(11, 16), { score: 1, comment: null });
    await csat('c9', d2(11, 20), { score: 5, comment: null, nps: 10 }); // replaces the first rating
    // C10 sales/bob: resolved after one reply (FCR), then a second agent message takes FCR back
    await created('c10', d2(12, 0), 'sales');
    await vmsg('c10', d2(12, 0));
    await status('c10', d2(12, 2), 'queued', 'open');
    await assign('c10', d2(12, 2), B, 'sales', 120_000);
    await amsg('c10', d2(12, 4), B); // FRT 4 min = 240000
    await status('c10', d2(12, 4), 'open', 'pending');
    await status('c10', d2(12, 10), 'pending', 'resolved'); // resolution 10 min = 600000; AHT 12:02-12:10 = 480000
    await amsg('c10', d2(12, 12), B); // a second public reply: no longer FCR; no NRT (no visitor turn)

    await notify(site.key);
    await waitUntil(async () => (await env.redis.cmd('HGET', `${P}{s:${site.key}}:events:cur`, 'reports')) === last, { what: 'reports consumer to reach the last event' });

    const q = `site=${site.key}&from=2026-03-10&to=2026-03-10`;
    let r = await call(boss.token, `/api/v1/reports/summary?${q}`);
    assert.equal(r.status, 200, r.text);
    const day1 = {
        from: '2026-03-10',
        to: '2026-03-10',
        conversations: 7, // c1..c7
        assigned: 5, // c1 c2 c3 c4 c6
        resolved: 4, // first resolutions: c1 c2 c3 c4
        abandoned: 1, // c5
        reopened: 1, // c2
        frt_avg_ms: 495000, // (180000 + 300000 + 1200000 + 300000) / 4 = 1980000 / 4
        frt_n: 4,
        nrt_avg_ms: 220000, // (120000 + 240000 + 300000) / 3 = 660000 / 3
        nrt_n: 3,
        resolution_avg_ms: 1200000, // (1200000 + 600000 + 2400000 + 600000) / 4 = 4800000 / 4
        aht_avg_ms: 912000, // (1140000 + 480000 + 600000 + 1800000 + 540000) / 5 = 4560000 / 5
        aht_n: 5,
        wait_avg_ms: 180000, // (60000 + 120000 + 600000 + 60000 + 60000) / 5 = 900000 / 5
        wait_n: 5,
        fcr_n: 2, // c3 c4 (c2 taken back by its reopen; c1 had 3 replies)
        fcr_rate: 0.5, // 2 / 4
        csat_avg: 4, // (5 + 4 + 2 + 5) / 4
        csat_pct: 75, // 3 of 4 rated 4 or 5
        csat_n: 4,
        nps: 25, // promoters 10, 9 (2); passive 8; detractor 6 (1): (2 - 1) / 4 * 100
        nps_n: 4,
        ces_avg: 3.67, // (2 + 3 + 6) / 3 = 3.666…
        ces_n: 3,
        tickets: 2,
        sla_breached: 1,
        sla_met: 1, // c4
        sla_missed: 1, // c3
        sla_compliance: 0.5, // 1 / (1 + 1)
        msg_visitor: 10, // c1 3, c2 2, c3..c7 1 each
        msg_agent: 7, // c1 3, c2 2, c3 1, c4 1 (the private note of c6 is not counted)
    };
    const s = r.json;
    assert.equal(s.scope, 'all');
    assert.deepEqual(s.metrics, day1);
    assert.deepEqual(s.rows, [day1]);
    assert.deepEqual(s.backlog, { queued: 2, open: 1, pending: 0 }); // c7 c8 queued, c6 open

    // CSV of the same: header + one row, same figures
    r = await call(boss.token, `/api/v1/reports/summary?${q}&format=csv`);
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/csv/);
    assert.match(r.headers['content-disposition'], /^attachment/);
    let csv = parseCsv(r.text);
    assert.deepEqual(csv[0], s.columns);
    assert.equal(csv.length, 2);
    assert.deepEqual(csv[1], s.columns.map((k) => String(day1[k])));

    // daily over two days
    r = await call(boss.token, `/api/v1/reports/daily?site=${site.key}&from=2026-03-10&to=2026-03-11`);
    assert.equal(r.status, 200, r.text);
    const { from: _f, to: _t, ...day1Figures } = day1;
    assert.deepEqual(r.json.rows[0], { day: '2026-03-10', ...day1Figures });
    const K2 = ['conversations', 'assigned', 'resolved', 'reopened', 'abandoned', 'frt_avg_ms', 'frt_n', 'nrt_n', 'resolution_avg_ms', 'aht_avg_ms', 'aht_n', 'wait_avg_ms', 'wait_n', 'fcr_n', 'fcr_rate', 'csat_avg', 'csat_n', 'nps', 'nps_n', 'msg_visitor', 'msg_agent'];
    const pick2 = (x) => Object.fromEntries(K2.map((k) => [k, x[k]]));
    assert.deepEqual(pick2(r.json.rows[1]), {
        conversations: 3, // c8 c9 c10 (c4's close after midnight is no second resolution)
        assigned: 3, // c9 alice, c9 bob (transfer), c10 bob
        resolved: 2, // c9 c10
        reopened: 0,
        abandoned: 0,
        frt_avg_ms: 210000, // (180000 + 240000) / 2
        frt_n: 2,
        nrt_n: 0,
        resolution_avg_ms: 750000, // (900000 + 600000) / 2
        aht_avg_ms: 440000, // (240000 + 600000 + 480000) / 3
        aht_n: 3,
        wait_avg_ms: 90000, // (60000 + 120000) / 2; the transfer had no queue wait
        wait_n: 2,
        fcr_n: 1, // c9; c10 taken back by the second reply
        fcr_rate: 0.5,
        csat_avg: 5, // c9 re-rated: only the second rating counts
        csat_n: 1,
        nps: 100,
        nps_n: 1,
        msg_visitor: 3,
        msg_agent: 3, // c9 1, c10 2
    });
    r = await call(boss.token, `/api/v1/reports/summary?site=${site.key}&from=2026-03-10&to=2026-03-11`);
    assert.equal(r.json.metrics.conversations, 10);
    assert.equal(r.json.metrics.resolved, 6);
    assert.equal(r.json.metrics.fcr_n, 3);
    // day 2 per agent: alice answered c9 and handed it over, bob resolved it
    r = await call(boss.token, `/api/v1/reports/agents?site=${site.key}&from=2026-03-11&to=2026-03-11`);
    const d2a = Object.fromEntries(r.json.rows.map((x) => [x.agent, pick2(x)]));
    assert.deepEqual([d2a[A].assigned, d2a[A].frt_avg_ms, d2a[A].aht_avg_ms, d2a[A].resolved, d2a[A].csat_n], [1, 180000, 240000, 0, 0]);
    assert.deepEqual([d2a[B].assigned, d2a[B].aht_avg_ms, d2a[B].resolution_avg_ms, d2a[B].fcr_n, d2a[B].csat_avg], [2, 540000, 750000, 1, 5]); // AHT (600000 + 480000) / 2

    // per agent
    r = await call(boss.token, `/api/v1/reports/agents?${q}`);
    assert.equal(r.status, 200, r.text);
    const byAgent = Object.fromEntries(r.json.rows.map((x) => [x.agent, x]));
    assert.deepEqual(Object.keys(byAgent).sort(), [A, B].sort());
    const pick = (x, keys) => Object.fromEntries(keys.map((k) => [k, x[k]]));
    const K = ['assigned', 'resolved', 'reopened', 'frt_avg_ms', 'nrt_avg_ms', 'nrt_n', 'resolution_avg_ms', 'aht_avg_ms', 'aht_n', 'wait_avg_ms', 'fcr_n', 'fcr_rate', 'csat_avg', 'csat_pct', 'nps', 'ces_avg', 'tickets', 'sla_compliance', 'msg_agent'];
    assert.deepEqual(pick(byAgent[A], K), {
        assigned: 3, // c1 c2 c6
        resolved: 2, // c1 c2
        reopened: 1, // c2
        frt_avg_ms: 240000, // (180000 + 300000) / 2
        nrt_avg_ms: 220000, // (120000 + 240000 + 300000) / 3
        nrt_n: 3,
        resolution_avg_ms: 900000, // (1200000 + 600000) / 2
        aht_avg_ms: 740000, // (1140000 + 480000 + 600000) / 3
        aht_n: 3,
        wait_avg_ms: 80000, // (60000 + 120000 + 60000) / 3
        fcr_n: 0,
        fcr_rate: 0,
        csat_avg: 4.5, // (5 + 4) / 2
        csat_pct: 100,
        nps: 50, // 10 promoter, 8 passive: (1 - 0) / 2 * 100
        ces_avg: 2.5, // (2 + 3) / 2
        tickets: 0,
        sla_compliance: null,
        msg_agent: 5,
    });
    assert.equal(byAgent[A].name, alice.name);
    assert.deepEqual(pick(byAgent[B], K), {
        assigned: 2, // c3 c4
        resolved: 2,
        reopened: 0,
        frt_avg_ms: 750000, // (1200000 + 300000) / 2
        nrt_avg_ms: null,
        nrt_n: 0,
        resolution_avg_ms: 1500000, // (2400000 + 600000) / 2
        aht_avg_ms: 1170000, // (1800000 + 540000) / 2
        aht_n: 2,
        wait_avg_ms: 330000, // (600000 + 60000) / 2
        fcr_n: 2,
        fcr_rate: 1,
        csat_avg: 3.5, // (2 + 5) / 2
        csat_pct: 50,
        nps: 0, // 9 promoter, 6 detractor
        ces_avg: 6,
        tickets: 2,
        sla_compliance: 0.5,
        msg_agent: 2,
    });
    r = await call(boss.token, `/api/v1/reports/agents?${q}&format=csv`);
    csv = parseCsv(r.text);
    assert.deepEqual(csv[0].slice(0, 3), ['agent', 'name', 'conversations']);
    assert.equal(csv.length, 3);
    const rowA = csv.find((x) => x[0] === A);
    assert.equal(rowA[1], alice.name);
    assert.equal(rowA[csv[0].indexOf('aht_avg_ms')], '740000');

    // per team
    r = await call(boss.token, `/api/v1/reports/teams?${q}`);
    assert.equal(r.status, 200, r.text);
    const byTeam = Object.fromEntries(r.json.rows.map((x) => [x.team, x]));
    assert.deepEqual(Object.keys(byTeam).sort(), ['sales', 'support']);
    assert.deepEqual(pick(byTeam.support, ['conversations', 'resolved', 'abandoned', 'frt_avg_ms']), { conversations: 4, resolved: 2, abandoned: 0, frt_avg_ms: 240000 });
    assert.deepEqual(pick(byTeam.sales, ['conversations', 'resolved', 'abandoned', 'frt_avg_ms', 'sla_compliance']), { conversations: 3, resolved: 2, abandoned: 1, frt_avg_ms: 750000, sla_compliance: 0.5 });
    assert.deepEqual(r.json.backlog, { queued: 2, open: 1, pending: 0 });
    r = await call(boss.token, `/api/v1/reports/summary?${q}&team=sales`);
    assert.equal(r.json.scope, 'team:sales');
    assert.equal(r.json.metrics.conversations, 3);
    assert.deepEqual(r.json.backlog, { queued: 0, open: 0, pending: 0 });

    // an agent sees their own numbers only
    r = await call(alice.token, `/api/v1/reports/summary?${q}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.scope, `agent:${A}`);
    assert.equal(r.json.metrics.aht_avg_ms, 740000);
    r = await call(alice.token, `/api/v1/reports/agents?${q}`);
    assert.deepEqual(r.json.rows.map((x) => x.agent), [A]);
    for (const u of [`summary?${q}&agent=${B}`, `summary?${q}&team=sales`, `teams?${q}`]) {
        r = await call(alice.token, `/api/v1/reports/${u}`);
        assert.equal(r.status, 403, u);
        assert.equal(r.json.error.code, 'forbidden');
    }
});

it("a site's report days start at its UTC offset (report_utc_offset_min)", async () => {
    const site = await env.addSite();
    const boss = await person(site, 'admin');
    const patch = (body) => env.http(0, `/api/v1/admin/sites/${site.key}`, { method: 'PATCH', body, headers: { authorization: `Bearer ${boss.token}` } });
    for (const bad of [841, -721, 1.5, 'east']) assert.equal((await patch({ report_utc_offset_min: bad })).status, 400, String(bad));
    const ok = await patch({ report_utc_offset_min: 480 }); // China, UTC+08:00
    assert.equal(ok.status, 200, ok.text);
    assert.equal(JSON.parse(ok.text).site.report_utc_offset_min, 480);
    // 2026-03-01 15:30 UTC is 23:30 on the 1st in UTC+8; 16:30 UTC is 00:30 on the 2nd
    let last;
    for (const [cid, ms] of [['z1', Date.UTC(2026, 2, 1, 15, 30)], ['z2', Date.UTC(2026, 2, 1, 16, 30)], ['z3', Date.UTC(2026, 2, 1, 23, 0)]]) {
        last = await env.redis.cmd('XADD', `${P}{s:${site.key}}:events`, '*', 't', 'conversation.created', 's', site.key, 'c', cid, 'ts', String(ms), 'by', 'system',
            'd', JSON.stringify({ category: null, priority: 'normal', team: null, subject: 'x', locale: 'zh-CN', visitor: { id: 'v' } }));
    }
    await notify(site.key);
    await waitUntil(async () => (await env.redis.cmd('HGET', `${P}{s:${site.key}}:events:cur`, 'reports')) === last, { what: 'reports consumer to reach the last event' });
    const r = await call(boss.token, `/api/v1/reports/daily?site=${site.key}&from=2026-03-01&to=2026-03-02`);
    assert.equal(r.status, 200, r.text);
    const body = JSON.parse(r.text);
    assert.equal(body.utc_offset_min, 480);
    assert.deepEqual(body.rows.map((x) => [x.day, x.conversations]), [['2026-03-01', 1], ['2026-03-02', 2]]);
});

it('bad report requests: clear 4xx errors', async () => {
    const site = await env.addSite();
    const boss = await person(site, 'admin');
    const other = await env.addSite();
    const cases = [
        [`summary?site=${site.key}&from=2026-13-01&to=2026-12-31`, 400],
        [`summary?site=${site.key}&from=2026-02-30&to=2026-03-01`, 400],
        [`summary?site=${site.key}&from=yesterday`, 400],
        [`summary?site=${site.key}&from=2026-03-02&to=2026-03-01`, 400],
        [`daily?site=${site.key}&from=2024-01-01&to=2025-12-31`, 400],
        [`summary?site=${site.key}&team=a&agent=b`, 400],
        [`summary`, 400],
        [`summary?site=${other.key}`, 404],
        [`nothing?site=${site.key}`, 404],
    ];
    for (const [u, code] of cases) {
        const r = await call(boss.token, `/api/v1/reports/${u}`);
        assert.equal(r.status, code, `${u}: ${r.text}`);
        assert.ok(r.json?.error?.code, u);
    }
    const r = await call(null, `/api/v1/reports/summary?site=${site.key}`);
    assert.equal(r.status, 401);
    // 366 days is the most a report covers
    const ok = await call(boss.token, `/api/v1/reports/daily?site=${site.key}&from=2024-01-01&to=2024-12-31`);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.rows.length, 366);
});

it('a real chat moves the counters: created, wait, FRT, resolution, CSAT', async () => {
    const { site, a, v, cid, ag } = await env.chat();
    const boss = await person(site, 'admin');
    await a.ok({ type: 'message.send', conversation_id: cid, body: 'Hi, how can I help?', client_msg_id: 'r1' });
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await v.ok({ type: 'csat', conversation_id: cid, score: 5, comment: 'great' });
    const today = new Date().toISOString().slice(0, 10);
    let s;
    await waitUntil(
        async () => {
            const r = await call(boss.token, `/api/v1/reports/summary?site=${site.key}&from=${today}&to=${today}`);
            s = r.json;
            return s?.metrics?.csat_n === 1;
        },
        { what: 'the chat in the reports' },
    );
    const m = s.metrics;
    assert.equal(m.conversations, 1);
    assert.equal(m.assigned, 1);
    assert.equal(m.resolved, 1);
    assert.equal(m.frt_n, 1);
    assert.ok(m.frt_avg_ms >= 0 && m.frt_avg_ms < 60_000, `FRT ${m.frt_avg_ms}`);
    assert.equal(m.wait_n, 1);
    assert.equal(m.fcr_n, 1);
    assert.equal(m.csat_avg, 5);
    assert.equal(m.msg_agent, 1);
    assert.deepEqual(s.backlog, { queued: 0, open: 0, pending: 0 });
    const r = await call(boss.token, `/api/v1/reports/agents?site=${site.key}&from=${today}&to=${today}`);
    assert.deepEqual(r.json.rows.map((x) => x.agent), [ag.id]);
});

// Prometheus text format 0.0.4 (same rules as 60-http-api.test.mjs)
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE = '(?:[-+]?(?:[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)|[-+]?Inf|NaN)';
const SAMPLE_RE = new RegExp(`^(${NAME})(\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? (${VALUE})$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge)$`);
/** /metrics as a map "name{labels}" -> number, checking every line's syntax and TYPE. */
async function scrape() {
    const r = await env.http(0, '/metrics');
    assert.equal(r.status, 200);
    const out = new Map();
    const typed = new Set();
    for (const line of r.text.split('\n').slice(0, -1)) {
        if (line.startsWith('# HELP ')) continue;
        const t = TYPE_RE.exec(line);
        if (t) {
            assert.ok(!typed.has(t[1]), `TYPE twice for ${t[1]}`);
            typed.add(t[1]);
            continue;
        }
        const m = SAMPLE_RE.exec(line);
        assert.ok(m, `malformed sample line ${JSON.stringify(line)}`);
        assert.ok(typed.has(m[1]), `${m[1]} has no TYPE line`);
        out.set(m[1] + (m[2] ?? ''), Number(m[3]));
    }
    return out;
}

it('/metrics: connections by role, messages, queue depths per team, backlog, timer and consumer lag, Redis RTT', async () => {
    const site = await env.addSite();
    const boss = await person(site, 'admin');
    let r = await env.http(0, `/api/v1/admin/sites/${site.key}/teams`, { method: 'POST', body: { key: 'vip', name: 'VIP' }, headers: { authorization: `Bearer ${boss.token}` } });
    assert.equal(r.status, 201, r.text);
    r = await env.http(0, `/api/v1/admin/sites/${site.key}`, { method: 'PATCH', body: { category_teams: { billing: 'vip' } }, headers: { authorization: `Bearer ${boss.token}` } });
    assert.equal(r.status, 200, r.text);
    const before = await scrape();
    const v1 = await env.visitor(0, { site });
    const v2 = await env.visitor(0, { site });
    const c1 = (await v1.ok({ type: 'conversation.start', form: { message: 'one' } })).conversation.id;
    await v1.ok({ type: 'message.send', conversation_id: c1, client_msg_id: 'm2', body: 'anyone?' });
    await v2.ok({ type: 'conversation.start', form: { message: 'two', category: 'billing' } });
    await v2.ok({ type: 'conversation.start', form: { message: 'three', category: 'billing' } });
    let m;
    await waitUntil(
        async () => {
            m = await scrape();
            return m.get(`chatdesk_queue_depth{site="${site.key}",team="vip"}`) === 2 && m.get(`chatdesk_backlog{site="${site.key}",status="queued"}`) === 3;
        },
        { timeout: 15_000, what: 'queue depths in /metrics (polled every 5 s)' },
    );
    assert.equal(m.get(`chatdesk_queue_depth{site="${site.key}",team="_"}`), 1);
    assert.equal(m.get(`chatdesk_backlog{site="${site.key}",status="open"}`), 0);
    assert.ok(m.get('chatdesk_connections_by_role{role="visitor"}') >= 2);
    assert.equal(m.get('chatdesk_connections_by_role{role="visitor"}') + m.get('chatdesk_connections_by_role{role="agent"}'), m.get('chatdesk_connections'));
    assert.equal(m.get('chatdesk_messages_total'), before.get('chatdesk_messages_total') + 1, 'one message.send');
    assert.ok(m.get('chatdesk_timer_lag_seconds') >= 0);
    assert.ok(m.get('chatdesk_events_stream_length') > 0);
    const lag = m.get('chatdesk_event_consumer_lag_seconds');
    assert.ok(lag >= 0 && lag < 5, `reports consumer keeps up (lag ${lag} s)`);
    await waitUntil(async () => (await scrape()).get('chatdesk_redis_ping_rtt_seconds') > 0, { timeout: 5000, what: 'a PING round trip measured' });
});
