// Graceful drain (issue 7, item 4): SIGTERM to a node with clients while 30 chats are
// busy. Pass: its /healthz reports draining (503) at once; its clients are closed with
// 1001, reconnect through nginx to the other nodes and resume; the node exits 0 within
// 10 s; nothing acknowledged is lost or stored twice, everyone has everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, setupChats, traffic, settleAndCheck, assertClean, summary, pct, sleep, waitUntil, httpGet, SCALE } from './lib.mjs';

const { cluster, skip } = useCluster();

test('drain: SIGTERM -> healthz draining, clients closed 1001 resume elsewhere, exit within 10 s', { skip, timeout: 120_000 * SCALE }, async () => {
    const w = await setupChats(cluster, { chats: 30, agents: 3 });
    const all = [...w.visitors, ...w.agentClients];
    const t = traffic(w, { periodMs: 250 });
    await sleep(2000);

    const counts = await Promise.all(cluster.env.nodes.map(async (n) => (await cluster.env.http(n, '/healthz')).json?.connections ?? 0));
    const victim = cluster.env.nodes[counts.indexOf(Math.max(...counts))];
    const before = all.map((c) => c.stats.disconnects);

    // poll the node's /healthz as fast as a health checker could, until it is gone
    const seen = [];
    let polling = true;
    const poller = (async () => {
        while (polling) {
            const r = await httpGet(victim.port, '/healthz', 1000).catch(() => null);
            seen.push({ t: Date.now(), status: r?.status ?? 0, draining: !!r?.body?.includes('"draining"') });
            if (!r) break;
            await sleep(5);
        }
    })();
    await sleep(30);
    const termAt = Date.now();
    const exited = victim.signal('SIGTERM');
    const { code, signal } = await exited;
    const exitMs = Date.now() - termAt;
    polling = false;
    await poller;

    await sleep(3000); // traffic continues on the other nodes
    t.stop();
    const affected = all.filter((c, i) => c.stats.disconnects > before[i]);
    await waitUntil(() => affected.every((c) => c.ready && c.resumeTimes.length > 0), {
        timeout: 20_000 * SCALE,
        what: 'every client of the drained node back and resumed',
    });
    const v = await settleAndCheck(cluster, w);
    const after503 = seen.filter((s) => s.t >= termAt);
    const draining = after503.find((s) => s.status === 503 && s.draining);
    const codes = affected.map((c) => c.stats.closeCodes[c.stats.closeCodes.length - 1] ?? null);
    const resume = affected.map((c) => c.resumeTimes[c.resumeTimes.length - 1]);
    summary('drain', v, {
        node: victim.id,
        exit: { code, signal, ms: exitMs },
        healthz_after_term: after503.map((s) => `${s.t - termAt}ms:${s.status}${s.draining ? 'd' : ''}`).slice(0, 8),
        first_draining_ms: draining ? draining.t - termAt : null,
        affected: affected.length,
        close_codes: [...new Set(codes)],
        resume_ms_p99: pct(resume, 99),
    });
    assert.equal(code, 0, `the node exits 0 (code ${code}, signal ${signal})`);
    assert.ok(exitMs <= 10_000, `exit within 10 s (${exitMs} ms)`);
    assert.ok(affected.length > 0, 'the node had clients');
    assert.ok(codes.every((c) => c === 1001), `clients closed with 1001 (${[...new Set(codes)]})`);
    assertClean(assert, v, 'drain');
    assert.ok(draining, `/healthz answered 503 "draining" after SIGTERM (saw: ${after503.map((s) => s.status).join(',') || 'nothing'})`);
});
