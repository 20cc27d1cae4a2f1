// F9 (RELIABILITY.md), nightly: a reconnect storm. About 1,050 sockets (1,000 visitors in
// their chats and 50 agents, CD_F9_VISITORS / CD_F9_AGENTS) reach three nodes through the
// shipped nginx.conf; the load balancer is restarted (fast shutdown, then the same
// configuration on the same port), so every socket drops at once. Visitors reconnect with
// the widget's own schedule and agents with the dashboard's (reconnectDelay, imported from
// widget/src/conn.js and dashboard/src/conn.js), both reset at each welcome. Pass:
//   - every client welcomed and resumed again ≤ 30 s after the restart;
//   - no node above 90% CPU for more than 5 s (utime+stime from /proc/<pid>/stat, sampled
//     every second);
//   - peak upgrades ≤ 300 in any 1 s window (counted by the clients as upgrades complete);
//   - 0 acked lost, 0 stored twice, no gap or duplicate on the wire, everyone has
//     everything (the cluster checker).
// Then the same storm again with the jitter taken out of both schedules (random() = 1: the
// plain exponential backoff); its figures are printed for comparison, not checked.
// The peak: a widget with nothing to send spreads its first retry over 8 s, one with a
// message waiting over 2 s, and a message typed while it waits brings it forward (each
// visitor here sends every 5 s, so most are brought forward). Before, every widget's first
// retry was U(0, 500 ms) and 1,042 upgrades came in the first second; with windows of 5 s
// and 500 ms, 372. Agents (the dashboard's 300-500 ms) are few and come back at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, NODE_ARGS, nginxBinary, setupChats, traffic, settleAndCheck, assertClean, summary, sleep, waitUntil, SCALE } from '../cluster/lib.mjs';
import { reconnectDelay as widgetDelay } from '../../widget/src/conn.js';
import { reconnectDelay as dashboardDelay } from '../../dashboard/src/conn.js';

const VISITORS = Number(process.env.CD_F9_VISITORS || 1000);
const AGENTS = Number(process.env.CD_F9_AGENTS || 50);
const skip = nginxBinary() ? false : 'nginx is not installed (apt-get install -y nginx)';
const cluster = new Cluster();
after(async () => {
    if (!skip) await cluster.stop();
}, { timeout: 120_000 });

let jitter = true;
const noJitter = () => 1;
const visitorDelay = (n, urgent) => widgetDelay(n, jitter ? Math.random : noJitter, urgent);
const agentDelay = (n) => dashboardDelay(n, jitter ? Math.random : noJitter);

const TICKS = 100; // USER_HZ on Linux
function cpuTicks(pid) {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15)
}

/** Samples every node's CPU share each second until stop(); longest run above 90%. */
function cpuWatch(nodes) {
    const runs = nodes.map(() => ({ cur: 0, longest: 0, peak: 0 }));
    let prev = nodes.map((n) => cpuTicks(n.proc.pid));
    let t = Date.now();
    const timer = setInterval(() => {
        const now = Date.now();
        const ticks = nodes.map((n) => cpuTicks(n.proc.pid));
        nodes.forEach((_, i) => {
            const share = (ticks[i] - prev[i]) / TICKS / ((now - t) / 1000);
            const r = runs[i];
            r.peak = Math.max(r.peak, share);
            r.cur = share > 0.9 ? r.cur + (now - t) : 0;
            r.longest = Math.max(r.longest, r.cur);
        });
        prev = ticks;
        t = now;
    }, 1000);
    return {
        stop() {
            clearInterval(timer);
            return runs;
        },
    };
}

/** The most timestamps in any window of `ms`. */
function peakPerWindow(times, ms = 1000) {
    const s = [...times].sort((a, b) => a - b);
    let best = 0;
    for (let i = 0, j = 0; i < s.length; i++) {
        while (s[i] - s[j] >= ms) j++;
        best = Math.max(best, i - j + 1);
    }
    return best;
}

async function storm(w, label) {
    const all = [...w.visitors, ...w.agentClients];
    for (const c of all) {
        c.resumeTimes.length = 0;
        c.disconnectsBefore = c.stats.disconnects;
    }
    const cpu = cpuWatch(cluster.env.nodes);
    const t0 = Date.now();
    await cluster.nginx.restart();
    const lbDownMs = Date.now() - t0;
    const reconnectedMs = await waitUntil(() => all.every((c) => c.ready && c.resumeTimes.length > 0) && Date.now() - t0, {
        timeout: 90_000 * SCALE,
        interval: 100,
        what: 'every client reconnected and resumed',
    }).catch(() => Infinity);
    await sleep(2000);
    const runs = cpu.stop();
    const opens = all.flatMap((c) => c.openTimes.filter((t) => t >= t0));
    const perSecond = [];
    for (const t of opens) perSecond[Math.floor((t - t0) / 1000)] = (perSecond[Math.floor((t - t0) / 1000)] ?? 0) + 1;
    const out = {
        label,
        sockets: all.length,
        lb_down_ms: lbDownMs,
        dropped: all.filter((c) => c.stats.disconnects > c.disconnectsBefore).length,
        reconnected_ms: reconnectedMs,
        upgrades: opens.length,
        peak_upgrades_per_s: peakPerWindow(opens),
        upgrades_per_s: Array.from(perSecond, (x) => x ?? 0),
        cpu_peak: runs.map((r) => Math.round(r.peak * 100)),
        cpu_longest_over_90_ms: runs.map((r) => r.longest),
        not_ready: all.filter((c) => !c.ready).map((c) => c.label).slice(0, 10),
    };
    console.log(JSON.stringify(out));
    return out;
}

/** The soft limit on open files (this process's sockets; nginx holds two per client). */
function openFileLimit() {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m && m[1] !== 'unlimited' ? Number(m[1]) : Infinity;
}

const r = {};
before(async () => {
    if (skip) return;
    const need = 2 * (VISITORS + AGENTS) + 1024;
    if (openFileLimit() < need) throw new Error(`ulimit -n is ${openFileLimit()}: F9 needs at least ${need} (raise it: ulimit -n ${need})`);
    await cluster.start({ args: [...NODE_ARGS, '--login-rate-per-ip', '100000'] });
    const w = await setupChats(cluster, {
        chats: VISITORS,
        agents: AGENTS,
        visitorOpts: { reconnectDelay: visitorDelay },
        agentOpts: { reconnectDelay: agentDelay },
    });
    // light traffic all along: each visitor about every 5 s (≈ 200 msg/s in all)
    const t = traffic(w, { periodMs: 5000, replyRatio: 0.3 });
    await sleep(5000);
    r.jitter = await storm(w, 'F9 with jitter');
    await sleep(5000);
    t.stop();
    r.verdict = await settleAndCheck(cluster, w, { timeout: 60_000 * SCALE });
    summary('F9', r.verdict, { reconnected_ms: r.jitter.reconnected_ms, peak_upgrades_per_s: r.jitter.peak_upgrades_per_s });
    // informational: the same storm with the jitter taken out
    jitter = false;
    const t2 = traffic(w, { periodMs: 5000, replyRatio: 0.3 });
    await sleep(5000);
    r.plain = await storm(w, 'F9 without jitter (informational)');
    t2.stop();
    jitter = true;
}, { timeout: 900_000 * SCALE });

test(`F9: ${VISITORS + AGENTS} sockets dropped by a load-balancer restart all reconnect ≤ 30 s, nothing lost`, { skip }, () => {
    const j = r.jitter;
    assert.equal(j.dropped, VISITORS + AGENTS, `${j.dropped} of ${VISITORS + AGENTS} sockets dropped by the restart`);
    assert.ok(j.reconnected_ms <= 30_000 * SCALE, `every client reconnected and resumed ${j.reconnected_ms} ms after the restart (not ready: ${j.not_ready})`);
    j.cpu_longest_over_90_ms.forEach((ms, i) => assert.ok(ms <= 5000, `node ${i + 1} above 90% CPU for ${ms} ms (≤ 5 s)`));
    assertClean(assert, r.verdict, 'F9');
});

test('F9: the clients\' jitter keeps peak upgrades ≤ 300/s', { skip }, () => {
    assert.ok(r.jitter.peak_upgrades_per_s <= 300, `peak ${r.jitter.peak_upgrades_per_s} upgrades in 1 s (per second: ${r.jitter.upgrades_per_s})`);
});
