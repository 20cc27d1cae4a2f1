// F2 (RELIABILITY.md): a rolling restart behind nginx. Each of the three nodes in turn gets
// SIGTERM (drain: /healthz draining, upgrades 503, clients closed 1001, exit within 10 s)
// and is started again on its port, CD_F2_GAP_S (default 10; RELIABILITY says 20) apart,
// while 30 chats run and an API poller reads /api through nginx all the time. Pass: every
// node exits 0 within 10 s; nginx answers no 5xx (and no failed request) on /api; every
// client closed by a drain is back and resumed within 5 s; nothing acknowledged is lost,
// nothing stored twice, no duplicate or gap on the wire, everyone has everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, setupChats, traffic, settleAndCheck, assertClean, summary, pct, sleep, waitUntil, SCALE } from './lib.mjs';
import { httpRequest } from '../server/harness.mjs';

const GAP_S = Number(process.env.CD_F2_GAP_S || 10);
const { cluster, skip } = useCluster();

test(`F2: rolling restart of 3 nodes ${GAP_S} s apart behind nginx: no 5xx on /api, clients back within 5 s, nothing lost`, { skip, timeout: (GAP_S * 3 + 120) * 1000 * SCALE }, async () => {
    const w = await setupChats(cluster, { chats: 30, agents: 3 });
    const all = [...w.visitors, ...w.agentClients];
    const t = traffic(w, { periodMs: 300 });
    const token = w.agents[0].token;
    const api = `http://127.0.0.1:${cluster.nginx.port}`;

    // the API poller: two readers, one request after another each
    const statuses = new Map();
    const failures = [];
    let polling = true;
    const poll = async (path) => {
        while (polling) {
            try {
                const r = await httpRequest(api + path, { headers: { authorization: `Bearer ${token}` }, timeout: 10_000 });
                statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
                if (r.status >= 500) failures.push(`${path}: ${r.status} ${r.text.slice(0, 120)}`);
            } catch (e) {
                failures.push(`${path}: ${e.message}`);
            }
            await sleep(20);
        }
    };
    const pollers = [poll('/api/v1/me'), poll(`/api/v1/conversations?site=${w.site.key}`)];
    await sleep(2000);

    const exits = [];
    for (const node of cluster.env.nodes) {
        const before = all.map((c) => c.stats.disconnects);
        const port = node.port;
        const t0 = Date.now();
        const { code, signal } = await node.signal('SIGTERM');
        exits.push({ node: node.id, code, signal, ms: Date.now() - t0 });
        // back on the same port (nginx's upstream), a fresh process
        node.args = [...node.args, '--port', String(port)];
        await node.start();
        assert.equal(node.port, port);
        const affected = all.filter((c, i) => c.stats.disconnects > before[i]);
        await waitUntil(() => affected.every((c) => c.ready), { timeout: 20_000 * SCALE, what: `clients of ${node.id} back` });
        await sleep(Math.max(0, GAP_S * 1000 - (Date.now() - t0)));
    }
    polling = false;
    await Promise.all(pollers);
    await sleep(2000);
    t.stop();

    const v = await settleAndCheck(cluster, w);
    const resume = all.flatMap((c) => c.resumeTimes);
    const codes = [...new Set(all.flatMap((c) => c.stats.closeCodes))];
    summary('F2', v, {
        gap_s: GAP_S,
        exits,
        api: Object.fromEntries(statuses),
        api_failures: failures.length,
        reconnects: resume.length,
        resume_ms_p99: pct(resume, 99),
        resume_ms_max: resume.length ? Math.max(...resume) : 0,
        close_codes: codes,
    });
    for (const e of exits) {
        assert.equal(e.code, 0, `${e.node} exits 0 after SIGTERM (code ${e.code}, signal ${e.signal})`);
        assert.ok(e.ms <= 10_000 * SCALE, `${e.node} exited after ${e.ms} ms`);
    }
    assert.deepEqual(failures.slice(0, 10), [], 'the API answered through nginx all the time, never 5xx');
    assert.ok((statuses.get(200) ?? 0) > 100, `the poller ran (${JSON.stringify(Object.fromEntries(statuses))})`);
    assert.ok(resume.length >= 3, 'clients were moved by the drains');
    assert.ok(Math.max(...resume) <= 5000 * SCALE, `every client back within 5 s (max ${Math.max(...resume)} ms)`);
    assertClean(assert, v, 'F2');
});
