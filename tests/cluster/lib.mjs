// Cluster-test kit: three real chatdeskd nodes and one Redis (from tests/server/harness.mjs),
// the real nginx running docker/nginx.conf (only the lines marked "@test" rewritten to
// loopback ports and a private directory), reconnecting chat clients with an outbox,
// and a Jepsen-style checker that reads the whole history back from Redis.
//
// Clients keep a log of what they sent, what was acknowledged (client_msg_id -> seq) and
// every message.created they received (per conversation, in arrival order). At the end
// the checker compares that log with the streams in Redis:
//   lost          acknowledged but not stored (must be 0)
//   dupStored     one client_msg_id stored twice (must be 0)
//   seqGaps       stored seqs not 1..N (must be 0)
//   undelivered   stored but never received by a participant after it resumed (must be 0)
//   orderErrors   a message.created with seq above the next expected one (a gap on the wire)
//   wireDups      a message.created at or below the last seq seen (dedupe would hide it;
//                 the protocol promises each at most once per connection, so must be 0)
//
// Every process is started by PID and stopped by PID; every wait is bounded.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { before, after } from 'node:test';
import WebSocket from 'ws';
import {
    Env,
    REPO_ROOT,
    ORIGIN,
    SCALE,
    sleep,
    rnd,
    waitUntil,
    withTimeout,
    redisCommand,
    freePort,
    Link,
} from '../server/harness.mjs';

export { Env, REPO_ROOT, ORIGIN, SCALE, sleep, rnd, waitUntil, withTimeout, redisCommand, Link };

export const NGINX_CONF = path.join(REPO_ROOT, 'docker', 'nginx.conf');
const PREFIX = 'cd:';

export function nginxBinary() {
    for (const p of [process.env.NGINX, '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx']) {
        if (p && fs.existsSync(p)) return p;
    }
    return null;
}

/** Arguments the cluster tests give every node (the same intent as docker/compose.yaml). */
export const NODE_ARGS = ['--max-conns-per-ip', '100000', '--conn-rate-per-ip', '1000000', '--conn-burst-per-ip', '1000000', '--drain-timeout-s', '5'];

/** A shipped configuration (docker/nginx.conf, docker/haproxy.cfg) with its lines marked
 *  "# @test <tag>" rewritten for loopback: rules[tag](line, indent, n) returns the new line
 *  (n: how many lines of that tag came before), or null to drop it. Throws when the file
 *  has a tag no rule knows, lacks one a rule expects, or has fewer than `servers` lines of
 *  serverTag, so a change there cannot go untested. */
export function rewriteMarked(file, rules, { serverTag, servers }) {
    const name = path.basename(file);
    const out = [];
    const seen = new Map();
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
        if (!line.includes('# @test')) {
            out.push(line);
            continue;
        }
        const tag = line.slice(line.indexOf('# @test') + 7).trim().split(/\s+/)[0];
        if (!rules[tag]) throw new Error(`${name}: unknown @test tag ${tag}`);
        const n = seen.get(tag) ?? 0;
        seen.set(tag, n + 1);
        const next = rules[tag](line, line.match(/^\s*/)[0], n);
        if (next !== null) out.push(next);
    }
    for (const t of Object.keys(rules)) if (!seen.has(t)) throw new Error(`docker/${name} has no "@test ${t}" line any more`);
    const have = seen.get(serverTag) ?? 0;
    if (have < servers) throw new Error(`docker/${name} has ${have} ${serverTag} lines, the test needs ${servers}`);
    return out.join('\n');
}

/** The match of re in a marked line, or an error naming what could not be rewritten. */
export function marked(re, line, what) {
    const m = re.exec(line);
    if (!m) throw new Error(`cannot rewrite ${what} line: ${line}`);
    return m;
}

/** docker/nginx.conf with the "@test" lines pointed at loopback. */
export function nginxConfFor({ dir, port, upstreams }) {
    return rewriteMarked(
        NGINX_CONF,
        {
            pid: (line, indent) => `${indent}pid ${path.join(dir, 'nginx.pid')};`,
            error_log: (line, indent) => `${indent}error_log ${path.join(dir, 'error.log')} info;`,
            temp: (line, indent) => {
                const m = marked(/^\s*(\w+)\s+\/tmp\/(\S+);/, line, 'nginx.conf temp');
                return `${indent}${m[1]} ${path.join(dir, m[2])};`;
            },
            listen: (line, indent) => `${indent}listen 127.0.0.1:${port};`,
            upstream: (line, indent, n) => {
                const m = marked(/^\s*server\s+\S+\s*(.*?);/, line, 'nginx.conf upstream');
                return n < upstreams.length ? `${indent}server 127.0.0.1:${upstreams[n]} ${m[1]};` : null;
            },
        },
        { serverTag: 'upstream', servers: upstreams.length },
    );
}

/** A balancer process in front of the nodes, started and stopped by PID. A subclass
 *  writes its configuration and spawns it (spawnOn(port, upstreams) returns the child);
 *  the base waits for its /lb-health, retries on another port, and stops it with its
 *  graceful signal, then SIGKILL after a bounded wait. */
export class Balancer {
    constructor(dir, name, stopSignal, fastSignal) {
        this.dir = dir;
        this.name = name;
        this.stopSignal = stopSignal;
        this.fastSignal = fastSignal;
        fs.mkdirSync(dir, { recursive: true });
        this.proc = null;
        this.port = 0;
        this.output = '';
    }

    /** Starts on a free port, or on `port` (a restart keeps its address). */
    async start(upstreams, port = 0) {
        this.upstreams = upstreams;
        let lastErr;
        for (let attempt = 0; attempt < (port ? 1 : 5); attempt++) {
            this.port = port || (await freePort());
            const proc = this.spawnOn(this.port, upstreams);
            this.output = '';
            proc.stdout?.on('data', (d) => (this.output += d));
            proc.stderr?.on('data', (d) => (this.output += d));
            this.proc = proc;
            try {
                await waitUntil(
                    async () => {
                        if (proc.exitCode !== null || proc.signalCode !== null) throw Object.assign(new Error(`${this.name} exited`), { fatal: true });
                        const r = await httpGet(this.port, '/lb-health', 1000).catch(() => null);
                        return r && r.status === 200;
                    },
                    { timeout: 10_000 * SCALE, interval: 50, what: `${this.name} /lb-health` },
                );
                return this;
            } catch (e) {
                lastErr = new Error(`${this.name} did not start: ${e.message}\n${this.errorLog()}`);
                await this.stop();
            }
        }
        throw lastErr;
    }

    get url() {
        return `ws://127.0.0.1:${this.port}`;
    }

    errorLog(n = 40) {
        return this.output.split('\n').slice(-n).join('\n');
    }

    /** A restart: fast shutdown (fastSignal: every proxied socket drops at once), then the
     *  same configuration on the same port. Resolves when /lb-health answers again. */
    async restart() {
        const port = this.port;
        await this.stop(this.fastSignal);
        return this.start(this.upstreams, port);
    }

    /** The graceful signal (or `signal`) to the master by PID, SIGKILL after a bounded wait. */
    async stop(signal = this.stopSignal) {
        const p = this.proc;
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        const done = new Promise((res) => p.once('exit', res));
        try {
            process.kill(p.pid, signal);
        } catch {
            return;
        }
        try {
            await withTimeout(done, 5000, `${this.name} to exit`);
        } catch {
            try {
                process.kill(p.pid, 'SIGKILL');
            } catch {
                /* gone */
            }
            await withTimeout(done, 5000, `${this.name} to die`).catch(() => {});
        }
        this.proc = null;
    }
}

/** nginx running docker/nginx.conf; SIGQUIT is its graceful stop, SIGTERM its fast one. */
export class Nginx extends Balancer {
    constructor(dir) {
        super(dir, 'nginx', 'SIGQUIT', 'SIGTERM');
    }

    spawnOn(port, upstreams) {
        const bin = nginxBinary();
        if (!bin) throw new Error('nginx not found (apt-get install -y nginx)');
        const conf = path.join(this.dir, 'nginx.conf');
        fs.writeFileSync(conf, nginxConfFor({ dir: this.dir, port, upstreams }));
        return spawn(bin, ['-p', this.dir, '-c', conf, '-e', path.join(this.dir, 'error.log'), '-g', 'daemon off;'], {
            stdio: ['ignore', 'ignore', 'pipe'],
        });
    }

    errorLog(n = 40) {
        let file = '';
        try {
            file = fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8').split('\n').slice(-n).join('\n');
        } catch {
            /* not written yet */
        }
        return `${super.errorLog(n)}\n${file}`;
    }
}

export function httpGet(port, urlPath, timeout = 2000) {
    return new Promise((resolve, reject) => {
        const c = net.createConnection({ host: '127.0.0.1', port });
        let buf = '';
        const t = setTimeout(() => {
            c.destroy();
            reject(new Error(`GET ${urlPath}: timeout`));
        }, timeout);
        c.on('connect', () => c.write(`GET ${urlPath} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`));
        c.on('data', (d) => (buf += d));
        c.on('error', (e) => {
            clearTimeout(t);
            reject(e);
        });
        c.on('close', () => {
            clearTimeout(t);
            const status = Number(buf.slice(9, 12));
            const body = buf.slice(buf.indexOf('\r\n\r\n') + 4);
            resolve({ status, body });
        });
    });
}

export function httpPost(port, urlPath, body, timeout = 10_000) {
    return new Promise((resolve, reject) => {
        const data = Buffer.from(JSON.stringify(body));
        const c = net.createConnection({ host: '127.0.0.1', port });
        let buf = '';
        const t = setTimeout(() => {
            c.destroy();
            reject(new Error(`POST ${urlPath}: timeout`));
        }, timeout);
        c.on('connect', () =>
            c.write(
                `POST ${urlPath} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${data.length}\r\n\r\n${data}`,
            ),
        );
        c.on('data', (d) => (buf += d));
        c.on('error', (e) => {
            clearTimeout(t);
            reject(e);
        });
        c.on('close', () => {
            clearTimeout(t);
            const status = Number(buf.slice(9, 12));
            let json;
            try {
                json = JSON.parse(buf.slice(buf.indexOf('\r\n\r\n') + 4));
            } catch {
                json = undefined;
            }
            resolve({ status, json });
        });
    });
}

// ---------------------------------------------------------------------------
/** Redis, three nodes, nginx in front. */
/** Registers before/after hooks that start and stop a cluster for one test file;
 *  skip is a reason string when nginx is missing. */
export function useCluster() {
    const skip = nginxBinary() ? false : 'nginx is not installed (apt-get install -y nginx)';
    const cluster = new Cluster();
    before(async () => {
        if (!skip) await cluster.start();
    }, { timeout: 120_000 });
    after(async () => {
        if (!skip) await cluster.stop();
    }, { timeout: 120_000 });
    return { cluster, skip };
}

export class Cluster {
    /** lb: (dir) => a balancer with Nginx's interface (tests/cluster/haproxy.mjs); the
     *  shipped nginx.conf by default. */
    constructor({ lb } = {}) {
        this.env = new Env();
        this.nginx = lb ? lb(path.join(this.env.dir, 'lb')) : new Nginx(path.join(this.env.dir, 'nginx'));
        this.clients = new Set();
    }

    async start({ nodes = 3, args = NODE_ARGS, nodeArgs = {} } = {}) {
        await this.env.start({ nodes, args, nodeArgs });
        await this.nginx.start(this.env.nodes.map((n) => n.port));
        return this;
    }

    get redis() {
        return this.env.redis;
    }

    nodeByPort(port) {
        return this.env.nodes.find((n) => n.port === port);
    }

    async stop() {
        for (const c of this.clients) c.shutdown();
        this.clients.clear();
        await this.nginx.stop();
        await this.env.stop();
    }

    /** Adds a site and n agents, logs the agents in through nginx. */
    async siteWithAgents(nAgents, { maxChats = 100 } = {}) {
        const site = await this.env.addSite();
        const agents = [];
        for (let i = 0; i < nAgents; i++) {
            const ag = await this.env.addAgent({ site, maxChats });
            const r = await httpPost(this.nginx.port, '/api/v1/login', { email: ag.email, password: ag.password });
            if (r.status !== 200 || !r.json?.token) throw new Error(`login through nginx failed: ${r.status}`);
            agents.push({ ...ag, token: r.json.token });
        }
        return { site, agents };
    }

    client(opts) {
        const c = new ChatClient({ url: this.nginx.url, ...opts });
        this.clients.add(c);
        return c;
    }
}

// ---------------------------------------------------------------------------
/** A chat client that survives disconnects: reconnect with full jitter, hello with its
 *  token and a resume entry per conversation, outbox resent with the same client_msg_id. */
export class ChatClient {
    constructor({ url, role, site, token, label, origin, onMessage, localAddress, heartbeat, reconnectDelay }) {
        this.url = url;
        this.role = role;
        this.site = site;
        this.token = token;
        this.label = label;
        // an agent comes from the origin it connects to (the default agent_origins: nginx
        // passes the client's Host on)
        this.origin = origin ?? (role === 'agent' ? url.replace(/^ws/, 'http') : ORIGIN);
        this.onMessage = onMessage;
        // clients come from many addresses (127.0.0.2-101), as they would in real life:
        // nginx limits connections per client address
        this.localAddress = localAddress ?? `127.0.0.${2 + (ChatClient.count++ % 100)}`;
        this.ws = null;
        this.ready = false; // welcomed on the current connection
        this.stopped = false;
        this.attempt = 0;
        this.convs = new Map(); // cid -> {last, epoch, joinSeq, recv:[seq], ids:Set}
        this.outbox = new Map(); // cmid -> {cid, body, sentAt, conn}
        this.acked = new Map(); // cmid -> {cid, seq}
        this.pending = new Map(); // rid -> {resolve, reject, t}
        this.ridSeq = 0;
        this.msgSeq = 0;
        this.connSeq = 0;
        this.stats = { connects: 0, disconnects: 0, closeCodes: [], wireDups: 0, orderErrors: 0, resets: 0, unavailable: 0, errors: [] };
        this.ackTimes = []; // when each ack came
        this.resumeTimes = []; // ms from a disconnect to the last resumed of the next connection
        this.disconnectedAt = 0;
        this.awaitingResumed = new Set();
        this.welcomes = 0;
        // like the widget: an application ping after heartbeat.everyMs without a frame; no
        // answer within heartbeat.timeoutMs and the connection is dropped (then reconnects)
        this.heartbeat = heartbeat;
        // the delay before reconnect attempt n (from 0 after each welcome); the default is
        // quick for fault tests, F9 passes the widget's and the dashboard's own schedules
        this.reconnectDelay = reconnectDelay ?? ((n) => Math.random() * Math.min(2000, 500 * 2 ** Math.min(n, 4)));
        this.openTimes = []; // when each upgrade completed
        this.lastRx = 0;
        this.pingSentAt = 0;
        this.sweep = setInterval(() => {
            this.resendStale();
            this.beat();
        }, 500);
        this.sweep.unref();
    }

    beat() {
        if (!this.heartbeat || !this.ws || !this.ready) return;
        const now = Date.now();
        if (this.pingSentAt && this.lastRx < this.pingSentAt) {
            if (now - this.pingSentAt > this.heartbeat.timeoutMs) {
                this.stats.heartbeatDrops = (this.stats.heartbeatDrops ?? 0) + 1;
                this.pingSentAt = 0;
                this.ws.terminate();
            }
            return;
        }
        if (now - this.lastRx > this.heartbeat.everyMs) {
            this.pingSentAt = now;
            this.ws.send(JSON.stringify({ type: 'ping', rid: 'hb' }));
        }
    }

    conv(cid) {
        let c = this.convs.get(cid);
        if (!c) {
            c = { last: 0, epoch: '', joinSeq: 0, recv: [], ids: new Set() };
            this.convs.set(cid, c);
        }
        return c;
    }

    /** Connects until welcomed (bounded); later disconnects reconnect by themselves. */
    async start(timeout = 15_000 * SCALE) {
        this.connect();
        await waitUntil(() => this.ready, { timeout, what: `${this.label} welcomed` });
        return this;
    }

    connect() {
        if (this.stopped) return;
        const conn = ++this.connSeq;
        const ws = new WebSocket(`${this.url}/ws/${this.role}`, {
            origin: this.origin,
            perMessageDeflate: false,
            handshakeTimeout: 5000,
            localAddress: this.localAddress,
        });
        this.ws = ws;
        ws.on('open', () => {
            this.stats.connects++;
            this.openTimes.push(Date.now());
            const hello = { type: 'hello', rid: 'h' };
            if (this.role === 'visitor') hello.site = this.site;
            if (this.token) hello.token = this.token;
            const resume = [...this.convs].map(([cid, c]) => ({ conversation_id: cid, after_seq: c.last, epoch: c.epoch }));
            if (resume.length) hello.resume = resume;
            this.awaitingResumed = new Set(resume.map((r) => r.conversation_id));
            ws.send(JSON.stringify(hello));
        });
        ws.on('message', (data) => {
            if (this.ws === ws) this.lastRx = Date.now();
            let f;
            try {
                f = JSON.parse(data.toString('utf8'));
            } catch {
                return;
            }
            this.onFrame(f, conn);
        });
        ws.on('error', () => {}); // a refused upgrade (502/503 from nginx) ends in 'close' too
        ws.on('close', (code) => {
            if (this.ws !== ws) return;
            this.ready = false;
            this.ws = null;
            this.stats.disconnects++;
            this.stats.closeCodes.push(code);
            if (!this.disconnectedAt) this.disconnectedAt = Date.now();
            for (const [, p] of this.pending) p.reject(new Error(`${this.label}: closed`));
            this.pending.clear();
            if (this.stopped) return;
            // as the widget: the schedule knows whether something waits to be sent
            this.retryIn(this.reconnectDelay(this.attempt, this.outbox.size > 0));
            this.attempt++;
        });
    }

    onFrame(f, conn) {
        switch (f.type) {
            case 'welcome': {
                if (f.token) this.token = f.token;
                for (const c of f.conversations ?? []) {
                    const cv = this.conv(c.id);
                    if (!cv.epoch) cv.epoch = c.epoch;
                    if (!this.awaitingResumed.has(c.id) && !cv.last) cv.last = cv.joinSeq = c.last_seq;
                }
                this.ready = true;
                this.attempt = 0;
                this.welcomes++;
                if (!this.awaitingResumed.size) this.resumedAll();
                // the outbox again, in order, with the same client_msg_ids
                for (const [cmid, m] of this.outbox) this.transmit(cmid, m);
                break;
            }
            case 'message.created': {
                const cv = this.conv(f.conversation_id);
                const m = f.message;
                if (m.seq <= cv.last) {
                    this.stats.wireDups++;
                } else {
                    if (cv.last && m.seq > cv.last + 1) this.stats.orderErrors++;
                    cv.last = m.seq;
                }
                cv.recv.push(m.seq);
                cv.ids.add(m.id);
                if (this.onMessage) this.onMessage(this, f.conversation_id, m);
                break;
            }
            case 'resumed': {
                const cv = this.conv(f.conversation_id);
                if (!f.recovered) {
                    this.stats.resets++;
                    cv.epoch = f.epoch;
                    cv.last = f.last_seq; // a full reload would follow; the checker sees the gap
                } else if (f.last_seq > cv.last) {
                    cv.last = f.last_seq;
                }
                this.awaitingResumed.delete(f.conversation_id);
                if (!this.awaitingResumed.size) this.resumedAll();
                break;
            }
            case 'conversation.assigned': {
                const c = f.conversation;
                const cv = this.conv(c.id);
                if (!cv.epoch) cv.epoch = c.epoch;
                if (!cv.last) cv.last = cv.joinSeq = c.last_seq;
                break;
            }
            case 'ok':
            case 'error': {
                if (f.type === 'error' && f.code === 'unavailable') this.stats.unavailable++;
                const p = this.pending.get(f.rid);
                if (p) {
                    this.pending.delete(f.rid);
                    p.resolve(f);
                }
                if (f.rid && f.rid.startsWith('m:')) this.onSendReply(f, conn);
                break;
            }
            default:
                break;
        }
    }

    resumedAll() {
        if (this.disconnectedAt) {
            this.resumeTimes.push(Date.now() - this.disconnectedAt);
            this.disconnectedAt = 0;
        }
    }

    request(obj, timeout = 5000 * SCALE) {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error(`${this.label}: not connected`));
        const rid = `r${++this.ridSeq}`;
        return new Promise((resolve, reject) => {
            const t = setTimeout(() => {
                this.pending.delete(rid);
                reject(new Error(`${this.label}: no reply to ${obj.type}`));
            }, timeout);
            this.pending.set(rid, {
                resolve: (f) => {
                    clearTimeout(t);
                    resolve(f);
                },
                reject: (e) => {
                    clearTimeout(t);
                    reject(e);
                },
            });
            this.ws.send(JSON.stringify({ ...obj, rid }));
        });
    }

    /** Queues a message (the outbox owns it until an ok arrives). */
    send(cid, body) {
        const cmid = `${this.label}-${++this.msgSeq}`;
        const m = { cid, body, sentAt: 0, conn: 0 };
        this.outbox.set(cmid, m);
        if (this.ready) this.transmit(cmid, m);
        else if (this.retryTimer) {
            // waiting to reconnect with nothing to send until now: as the widget's hurry()
            const delay = this.reconnectDelay(Math.max(0, this.attempt - 1), true);
            if (Date.now() + delay < this.retryAt) this.retryIn(delay);
        }
        return cmid;
    }

    /** The next connection attempt in `delay` ms (replacing a pending one). */
    retryIn(delay) {
        clearTimeout(this.retryTimer);
        this.retryAt = Date.now() + delay;
        this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            this.connect();
        }, delay);
        this.retryTimer.unref();
    }

    transmit(cmid, m) {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ready) return;
        m.sentAt = Date.now();
        m.conn = this.connSeq;
        this.ws.send(JSON.stringify({ type: 'message.send', rid: `m:${cmid}`, conversation_id: m.cid, client_msg_id: cmid, body: m.body }));
    }

    onSendReply(f, conn) {
        const cmid = f.rid.slice(2);
        const m = this.outbox.get(cmid);
        if (f.type === 'ok') {
            const prev = this.acked.get(cmid);
            if (prev && prev.seq !== f.message.seq) this.stats.errors.push(`${cmid} acked twice with seqs ${prev.seq} and ${f.message.seq}`);
            this.acked.set(cmid, { cid: f.message ? m?.cid ?? prev?.cid : undefined, seq: f.message.seq });
            this.ackTimes.push(Date.now());
            this.outbox.delete(cmid);
            return;
        }
        if (!m) return;
        if (f.code === 'unavailable' || f.code === 'rate_limited') {
            m.sentAt = Date.now() - 2500; // resent by the sweep in about half a second
            return;
        }
        this.stats.errors.push(`${cmid}: ${f.code} ${f.message}`);
        this.outbox.delete(cmid);
    }

    /** An outbox entry without a reply for 3 s on a live connection is sent again. */
    resendStale() {
        if (!this.ready) return;
        const now = Date.now();
        for (const [cmid, m] of this.outbox) if (now - m.sentAt > 3000) this.transmit(cmid, m);
    }

    static count = 0;

    /** Closes the socket the hard way (as a crash of the client's network would). */
    drop() {
        this.ws?.terminate();
    }

    shutdown() {
        this.stopped = true;
        clearInterval(this.sweep);
        try {
            this.ws?.terminate();
        } catch {
            /* ignore */
        }
    }
}

// ---------------------------------------------------------------------------
/** n visitors with one conversation each, served by the site's agents (auto-assignment),
 *  every client through nginx (agentOpts / visitorOpts add to clientOpts per role). */
export async function setupChats(cluster, { chats, agents: nAgents, clientOpts = {}, agentOpts = {}, visitorOpts = {} }) {
    const { site, agents } = await cluster.siteWithAgents(nAgents);
    const agentClients = [];
    for (let i = 0; i < agents.length; i++) {
        const c = cluster.client({ role: 'agent', token: agents[i].token, label: `a${i}`, ...clientOpts, ...agentOpts });
        await c.start();
        agentClients.push(c);
    }
    const visitors = [];
    const convs = [];
    for (let i = 0; i < chats; i++) {
        const v = cluster.client({ role: 'visitor', site: site.key, label: `v${i}`, ...clientOpts, ...visitorOpts });
        await v.start();
        const r = await v.request({ type: 'conversation.start', form: { subject: `chat ${i}`, message: `hello ${i}` } });
        if (r.type !== 'ok') throw new Error(`conversation.start: ${JSON.stringify(r)}`);
        const cv = v.conv(r.conversation.id);
        cv.epoch = r.conversation.epoch;
        if (r.message) {
            cv.startSeq = r.message.seq;
            v.acked.set(`start:${i}`, { cid: r.conversation.id, seq: r.message.seq });
        }
        visitors.push(v);
        convs.push(r.conversation.id);
    }
    // every conversation assigned to an agent
    await waitUntil(() => convs.every((cid) => agentClients.some((a) => a.convs.has(cid))), {
        timeout: 20_000 * SCALE,
        what: 'every conversation assigned',
    });
    return { site, agents, agentClients, visitors, convs };
}

/** Traffic: each visitor sends every ~periodMs; agents answer about half of what they
 *  receive. Returns a stop() that resolves once nothing new is sent. */
export function traffic({ visitors, agentClients }, { periodMs = 250, replyRatio = 0.5 } = {}) {
    let running = true;
    const timers = [];
    for (const v of visitors) {
        const cid = [...v.convs.keys()][0];
        const tick = () => {
            if (!running) return;
            v.send(cid, `from ${v.label} at ${Date.now()}`);
            timers.push(setTimeout(tick, periodMs * (0.5 + Math.random())));
        };
        timers.push(setTimeout(tick, Math.random() * periodMs));
    }
    for (const a of agentClients) {
        a.onMessage = (client, cid, m) => {
            if (running && m.author?.kind === 'visitor' && Math.random() < replyRatio) client.send(cid, `re: ${m.id}`);
        };
    }
    return {
        stop() {
            running = false;
            for (const t of timers) clearTimeout(t);
        },
    };
}

/** Waits until every outbox is empty and every participant has seen each conversation's
 *  stored last seq (bounded), then returns the checker's verdict. */
export async function settleAndCheck(cluster, { visitors, agentClients, convs }, { timeout = 30_000 * SCALE } = {}) {
    const all = [...visitors, ...agentClients];
    await waitUntil(() => all.every((c) => c.ready && c.outbox.size === 0), {
        timeout,
        what: 'every client connected with an empty outbox',
    }).catch((e) => {
        const stuck = all.filter((c) => !c.ready || c.outbox.size).map((c) => `${c.label}(ready=${c.ready},outbox=${c.outbox.size})`);
        throw new Error(`${e.message}: ${stuck.slice(0, 10).join(' ')}`);
    });
    const lastSeq = async (cid) => Number(await cluster.redis.cmd('HGET', `${PREFIX}{s:${cid.split('.').pop()}}:conv:${cid}`, 'last_seq'));
    await waitUntil(
        async () => {
            for (const cid of convs) {
                const last = await lastSeq(cid);
                for (const c of all) if (c.convs.has(cid) && c.convs.get(cid).last < last) return false;
            }
            return true;
        },
        { timeout, interval: 200, what: 'every participant caught up with the stored history' },
    ).catch(() => {
        /* the checker reports what is missing */
    });
    return check(cluster, { visitors, agentClients, convs });
}

/** Reads every conversation's stream from Redis and compares it with the clients' logs. */
export async function check(cluster, { visitors, agentClients, convs }) {
    const all = [...visitors, ...agentClients];
    const v = { lost: [], dupStored: [], seqGaps: [], undelivered: [], orderErrors: 0, wireDups: 0, resets: 0, acked: 0, stored: 0, clientErrors: [] };
    const stored = new Map(); // cid -> Map(seq -> {cmid, author})
    for (const cid of convs) {
        const rows = await redisCommand(cluster.redis.sock, ['XRANGE', `${PREFIX}{s:${cid.split('.').pop()}}:conv:${cid}:msgs`, '-', '+'], 10_000);
        const bySeq = new Map();
        const byCmid = new Map();
        for (const [id, fields] of rows) {
            const seq = Number(id.split('-')[1]);
            const f = {};
            for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
            bySeq.set(seq, { cmid: f.cmid, author: `${f.ak}:${f.aid}` });
            if (f.cmid) {
                const k = `${f.ak}:${f.aid}:${f.cmid}`;
                byCmid.set(k, (byCmid.get(k) ?? 0) + 1);
            }
        }
        v.stored += bySeq.size;
        const seqs = [...bySeq.keys()].sort((a, b) => a - b);
        for (let i = 0; i < seqs.length; i++) if (seqs[i] !== i + 1) {
            v.seqGaps.push(`${cid}: stored seqs ${seqs.slice(0, 5).join(',')}… not gapless`);
            break;
        }
        for (const [k, n] of byCmid) if (n > 1) v.dupStored.push(`${cid} ${k} x${n}`);
        stored.set(cid, bySeq);
    }
    for (const c of all) {
        v.orderErrors += c.stats.orderErrors;
        v.wireDups += c.stats.wireDups;
        v.resets += c.stats.resets;
        v.clientErrors.push(...c.stats.errors.map((e) => `${c.label}: ${e}`));
        for (const [cmid, a] of c.acked) {
            v.acked++;
            const s = stored.get(a.cid)?.get(a.seq);
            if (!s || (s.cmid && !cmid.startsWith('start:') && s.cmid !== cmid)) v.lost.push(`${c.label} ${cmid} seq ${a.seq}`);
        }
        // everything stored after the client joined must have reached it (received or acked)
        for (const [cid, cv] of c.convs) {
            const bySeq = stored.get(cid);
            if (!bySeq) continue;
            const have = new Set(cv.recv);
            for (const a of c.acked.values()) if (a.cid === cid) have.add(a.seq);
            const from = cv.joinSeq || 0;
            const missing = [];
            for (const seq of bySeq.keys()) if (seq > from && !have.has(seq)) missing.push(seq);
            if (missing.length) v.undelivered.push(`${c.label} ${cid}: ${missing.length} missing (${missing.slice(0, 6).join(',')})`);
        }
    }
    return v;
}

export function assertClean(assert, v, what = '') {
    const brief = (a) => `${a.length}${a.length ? ': ' + a.slice(0, 5).join('; ') : ''}`;
    assert.equal(v.lost.length, 0, `${what} acked but lost: ${brief(v.lost)}`);
    assert.equal(v.dupStored.length, 0, `${what} stored twice: ${brief(v.dupStored)}`);
    assert.equal(v.seqGaps.length, 0, `${what} seq gaps: ${brief(v.seqGaps)}`);
    assert.equal(v.undelivered.length, 0, `${what} not delivered: ${brief(v.undelivered)}`);
    assert.equal(v.orderErrors, 0, `${what} order errors (gaps on the wire)`);
    assert.equal(v.wireDups, 0, `${what} duplicates on the wire`);
    assert.equal(v.clientErrors.length, 0, `${what} client errors: ${brief(v.clientErrors)}`);
    assert.ok(v.acked > 0 && v.stored >= v.acked, `${what} acked ${v.acked}, stored ${v.stored}`);
}

export function pct(values, p) {
    if (!values.length) return 0;
    const s = [...values].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

export function summary(label, v, extra = {}) {
    const line = { test: label, acked: v.acked, stored: v.stored, lost: v.lost.length, dup_stored: v.dupStored.length, gaps: v.seqGaps.length, undelivered: v.undelivered.length, order_errors: v.orderErrors, wire_dups: v.wireDups, resets: v.resets, ...extra };
    console.log(JSON.stringify(line));
    return line;
}
