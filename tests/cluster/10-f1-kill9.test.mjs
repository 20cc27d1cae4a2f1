// F1 (shared/design/RELIABILITY.md), reduced to fit CI: kill -9 of one of three nodes while
// 300 chats (CD_CLUSTER_CHATS) exchange messages through nginx. Pass: 0 acknowledged messages lost, 0 stored
// twice, gapless seqs, every client's received sequence in order without gaps after it
// resumed, every affected client resumed, resume p99 within 5 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { useCluster, setupChats, traffic, settleAndCheck, assertClean, summary, pct, sleep, waitUntil, SCALE } from './lib.mjs';

const { cluster, skip } = useCluster();

test('F1: kill -9 of a node during 300 active chats (CD_CLUSTER_CHATS) loses nothing and everyone resumes', { skip, timeout: 120_000 * SCALE }, async () => {
    const chats = Number(process.env.CD_CLUSTER_CHATS || 300);
    const w = await setupChats(cluster, { chats, agents: Math.max(3, Math.ceil(chats / 10)) });
    const all = [...w.visitors, ...w.agentClients];
    const t = traffic(w, { periodMs: 300 });
    await sleep(4000);

    // the node with the most clients: nginx spreads them with least_conn
    const counts = await Promise.all(cluster.env.nodes.map(async (n) => (await cluster.env.http(n, '/healthz')).json?.connections ?? 0));
    const victim = cluster.env.nodes[counts.indexOf(Math.max(...counts))];
    const before = all.map((c) => c.stats.disconnects);
    await victim.kill9();
    const killedAt = Date.now();

    await sleep(5000);
    t.stop();
    const affected = all.filter((c, i) => c.stats.disconnects > before[i]);
    await waitUntil(() => affected.every((c) => c.ready && c.resumeTimes.length > 0), {
        timeout: 20_000 * SCALE,
        what: 'every client of the killed node back and resumed',
    });
    const v = await settleAndCheck(cluster, w);
    const resume = affected.map((c) => c.resumeTimes[c.resumeTimes.length - 1]);
    summary('F1', v, {
        node_killed: victim.id,
        clients_on_it: Math.max(...counts),
        affected: affected.length,
        resume_ms_p50: pct(resume, 50),
        resume_ms_p99: pct(resume, 99),
        resume_ms_max: Math.max(0, ...resume),
        since_kill_ms: Date.now() - killedAt,
    });
    assertClean(assert, v, 'F1');
    assert.ok(affected.length >= 10, `the killed node had clients (${affected.length})`);
    assert.equal(v.resets, 0, 'no resume was answered recovered:false');
    assert.ok(pct(resume, 99) <= 5000 * SCALE, `resume p99 ${pct(resume, 99)} ms <= 5 s`);
});
