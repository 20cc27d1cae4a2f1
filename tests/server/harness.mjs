// Server-test harness: a private redis-server on a unix socket, N chatdeskd nodes,
// the admin CLI, HTTP helpers and a WebSocket client wrapper.
//
// Rules it keeps (tests/server/*.test.mjs rely on them):
// - every process is started by us, tracked by PID and stopped by PID in after()
//   (and killed on process exit as a safety net), even when a test fails;
// - every wait is bounded; nothing sleeps for a fixed time where a condition can be
//   polled (sleep() is only the poll interval);
// - ports come only from `--port 0` on 127.0.0.1 (the node prints the real one);
// - a node that crashes, exits non-zero on SIGTERM or prints a sanitizer report
//   fails the test file in after().
//
// Environment:
//   CHATDESKD               path of the binary (default <repo>/build/chatdeskd)
//   CD_TEST_TIMEOUT_SCALE   multiply every timeout (scripts/test sets it for ASan)
//   CD_TEST_KEEP=1          keep the temp dirs (logs, AOF) even when all passes
//   CD_TEST_VALGRIND=1      run each node under valgrind
//   CD_TEST_VERBOSE=1       print node logs at the end of every file
import { spawn, execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

export const REPO_ROOT = path.resolve(fileURLToPath(new URL('../../', import.meta.url)));
export const ORIGIN = 'http://localhost:3000';
export const SCALE = Math.max(1, Number(process.env.CD_TEST_TIMEOUT_SCALE || 1));
/** Default wait for one expected frame / condition. */
export const WAIT = 5000 * SCALE;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const rnd = (n = 6) => crypto.randomBytes(n).toString('hex');
export const hmacHex = (secret, data) => crypto.createHmac('sha256', secret).update(data).digest('hex');

export function chatdeskdPath() {
    const env = process.env.CHATDESKD;
    if (!env) return path.join(REPO_ROOT, 'build', 'chatdeskd');
    if (path.isAbsolute(env)) return env;
    const fromCwd = path.resolve(process.cwd(), env);
    return fs.existsSync(fromCwd) ? fromCwd : path.resolve(REPO_ROOT, env);
}

/** test() with a bounded timeout (scaled). */
export function it(name, fn, opts = {}) {
    return test(name, { timeout: 90_000 * SCALE, ...opts }, fn);
}

/** Poll cond() (sync or async) until it returns a truthy value; returns it. */
export async function waitUntil(cond, { timeout = WAIT, interval = 50, what = 'condition' } = {}) {
    const deadline = Date.now() + timeout;
    let last;
    for (;;) {
        try {
            const v = await cond();
            if (v) return v;
        } catch (e) {
            last = e;
        }
        if (Date.now() >= deadline)
            throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
        await sleep(interval);
    }
}

export function withTimeout(promise, ms, what) {
    let t;
    return Promise.race([
        promise,
        new Promise((_, rej) => {
            t = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
        }),
    ]).finally(() => clearTimeout(t));
}

// ---------------------------------------------------------------------------
// Process bookkeeping: anything still alive when this test process exits is killed.
const liveProcs = new Set();
function track(proc) {
    liveProcs.add(proc);
    proc.once('exit', () => liveProcs.delete(proc));
}
function killAllSync() {
    for (const p of liveProcs) {
        try {
            process.kill(p.pid, 'SIGKILL');
        } catch {
            /* gone */
        }
    }
}
process.once('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
        killAllSync();
        process.exit(128 + (os.constants.signals[sig] || 1));
    });
}

// Children get SIGKILL when this test process dies, even by SIGKILL (no exit handler runs
// then): setpriv (util-linux) sets PR_SET_PDEATHSIG and execs, so the PID stays the same.
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => fs.existsSync(p));
export function spawnTracked(cmd, args, opts) {
    const proc = SETPRIV ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', cmd, ...args], opts) : spawn(cmd, args, opts);
    track(proc);
    return proc;
}

/** Waits for a child's exit; resolves {code, signal}. */
/** Signals one process (never a group); false when it is gone. */
export function killPid(pid, sig = 'SIGKILL') {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
        process.kill(pid, sig);
        return true;
    } catch {
        return false;
    }
}

export function alive(pid) {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

export async function waitDead(pid, ms) {
    const end = Date.now() + ms;
    while (alive(pid) && Date.now() < end) await sleep(50);
    return !alive(pid);
}

/** A free TCP port on 127.0.0.1 (for programs such as nginx that cannot print theirs). */
export function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

function exitPromise(proc) {
    if (proc.exitCode !== null || proc.signalCode !== null)
        return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
    return new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
}

export async function stopProc(proc, signal, timeout) {
    const done = exitPromise(proc);
    if (proc.exitCode === null && proc.signalCode === null) {
        try {
            process.kill(proc.pid, signal);
        } catch {
            /* already gone */
        }
    }
    try {
        return { ...(await withTimeout(done, timeout, `pid ${proc.pid} to exit`)), forced: false };
    } catch {
        try {
            process.kill(proc.pid, 'SIGKILL');
        } catch {
            /* gone */
        }
        return { ...(await withTimeout(done, 10_000, `pid ${proc.pid} to die`)), forced: true };
    }
}

class LineLog {
    constructor(file, max = 3000) {
        this.lines = [];
        this.max = max;
        this.file = file;
        this.partial = { out: '', err: '' };
    }
    feed(stream, chunk, onLine) {
        const text = this.partial[stream] + chunk.toString('utf8');
        const parts = text.split('\n');
        this.partial[stream] = parts.pop();
        for (const line of parts) this.push(line, onLine);
    }
    push(line, onLine) {
        this.lines.push(line);
        if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
        try {
            fs.appendFileSync(this.file, line + '\n');
        } catch {
            /* dir removed */
        }
        if (onLine) onLine(line);
    }
    flush() {
        for (const k of Object.keys(this.partial)) if (this.partial[k]) this.push(this.partial[k]);
        this.partial = { out: '', err: '' };
    }
    tail(n = 60) {
        return this.lines.slice(-n).join('\n');
    }
    text() {
        return this.lines.join('\n');
    }
}

// ---------------------------------------------------------------------------
// Minimal RESP client (one command per connection; enough for checks and PING).
function encodeCmd(args) {
    let s = `*${args.length}\r\n`;
    for (const a of args) {
        const b = Buffer.from(String(a));
        s += `$${b.length}\r\n${b.toString('binary')}\r\n`;
    }
    return Buffer.from(s, 'binary');
}

function parseResp(buf, pos = 0) {
    const nl = buf.indexOf('\r\n', pos);
    if (nl < 0) return null;
    const kind = String.fromCharCode(buf[pos]);
    const line = buf.toString('utf8', pos + 1, nl);
    const next = nl + 2;
    switch (kind) {
        case '+':
            return { value: line, pos: next };
        case '-': {
            const e = new Error(line);
            e.redis = true;
            return { value: e, pos: next };
        }
        case ':':
            return { value: Number(line), pos: next };
        case '$': {
            const n = Number(line);
            if (n < 0) return { value: null, pos: next };
            if (buf.length < next + n + 2) return null;
            return { value: buf.toString('utf8', next, next + n), pos: next + n + 2 };
        }
        case '*': {
            const n = Number(line);
            if (n < 0) return { value: null, pos: next };
            const arr = [];
            let p = next;
            for (let i = 0; i < n; i++) {
                const r = parseResp(buf, p);
                if (!r) return null;
                arr.push(r.value);
                p = r.pos;
            }
            return { value: arr, pos: p };
        }
        default:
            throw new Error(`bad RESP type ${kind}`);
    }
}

/** One command on a fresh connection; auth [user, password] sends AUTH first. */
/** Of a site's event stream as XRANGE returns it, how many entries are events of type t
 *  about conversation cid whose data matches pred. */
export function countEvents(entries, t, cid, pred = () => true) {
    return entries.filter(([, f]) => {
        const o = {};
        for (let i = 0; i < f.length; i += 2) o[f[i]] = f[i + 1];
        return o.t === t && o.c === cid && pred(JSON.parse(o.d || '{}'));
    }).length;
}

/** The stored messages of conversation cid (default prefix cd:), each entry's fields as an
 *  object ({id, cmid, ak, aid, an, body, priv, ts}), in seq order. */
export async function storedMessages(redis, cid) {
    const out = [];
    for (const [, f] of await redis.cmd('XRANGE', `cd:{s:${cid.split('.').pop()}}:conv:${cid}:msgs`, '-', '+')) {
        const m = {};
        for (let i = 0; i < f.length; i += 2) m[f[i]] = f[i + 1];
        out.push(m);
    }
    return out;
}

export function redisCommand(sock, args, timeout = 5000, auth = null) {
    return new Promise((resolve, reject) => {
        const c = net.createConnection(sock);
        let buf = Buffer.alloc(0);
        let authed = !auth;
        const t = setTimeout(() => {
            c.destroy();
            reject(new Error(`redis ${args[0]}: timeout`));
        }, timeout);
        const fail = (e) => {
            clearTimeout(t);
            c.destroy();
            reject(e);
        };
        c.on('error', fail);
        c.on('connect', () => c.write(auth ? Buffer.concat([encodeCmd(['AUTH', ...auth]), encodeCmd(args)]) : encodeCmd(args)));
        c.on('data', (d) => {
            buf = Buffer.concat([buf, d]);
            let r;
            try {
                r = parseResp(buf);
            } catch (e) {
                return fail(e);
            }
            if (!r) return;
            if (!authed) {
                if (r.value instanceof Error) return fail(r.value);
                authed = true;
                buf = buf.subarray(r.pos);
                try {
                    r = buf.length ? parseResp(buf) : null;
                } catch (e) {
                    return fail(e);
                }
                if (!r) return;
            }
            clearTimeout(t);
            c.end();
            if (r.value instanceof Error) reject(r.value);
            else resolve(r.value);
        });
        c.on('close', () => {
            clearTimeout(t);
            reject(new Error(`redis ${args[0]}: connection closed`));
        });
    });
}

// ---------------------------------------------------------------------------
export class RedisServer {
    constructor(dir) {
        this.dir = dir;
        fs.mkdirSync(dir, { recursive: true });
        this.sock = path.join(dir, 'redis.sock');
        this.url = `unix:${this.sock}`;
        this.logFile = path.join(dir, 'redis.log');
        this.proc = null;
        this.extraArgs = []; // e.g. ['--aclfile', FILE]
        this.auth = null; // [user, password] for cmd() and the start-up PING
    }

    async start() {
        if (this.proc) throw new Error('redis already running');
        const args = [
            '--port', '0',
            '--unixsocket', this.sock,
            '--unixsocketperm', '700',
            '--dir', this.dir,
            '--appendonly', 'yes',
            '--appendfsync', 'everysec',
            '--save', '',
            '--daemonize', 'no',
            '--pidfile', path.join(this.dir, 'redis.pid'),
            '--logfile', this.logFile,
            ...this.extraArgs,
        ];
        const proc = spawnTracked('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        proc.stderr.on('data', (d) => (stderr += d));
        const spawned = new Promise((res, rej) => {
            proc.once('spawn', res);
            proc.once('error', rej);
        });
        await withTimeout(spawned, 10_000, 'redis-server to spawn');
        this.proc = proc;
        try {
            await waitUntil(
                async () => {
                    if (proc.exitCode !== null || proc.signalCode !== null)
                        throw Object.assign(new Error('redis-server exited'), { fatal: true });
                    return (await redisCommand(this.sock, ['PING'], 1000, this.auth)) === 'PONG';
                },
                { timeout: 15_000 * SCALE, interval: 50, what: 'redis-server PING' },
            );
        } catch (e) {
            const log = fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8').slice(-3000) : '';
            await this.stop().catch(() => {});
            throw new Error(`redis-server did not start: ${e.message}\n${stderr}\n${log}`);
        }
    }

    get running() {
        return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
    }

    /** Freezes Redis (SIGSTOP): connections stay open but nothing is answered. */
    pause() {
        process.kill(this.proc.pid, 'SIGSTOP');
        this.paused = true;
    }

    resume() {
        process.kill(this.proc.pid, 'SIGCONT');
        this.paused = false;
    }

    /** SIGTERM (clean: AOF flushed) by PID; SIGKILL after a bounded wait. */
    async stop({ signal = 'SIGTERM', timeout = 10_000 } = {}) {
        if (!this.proc) return null;
        if (this.paused) this.resume();
        const r = await stopProc(this.proc, signal, timeout * SCALE);
        this.proc = null;
        return r;
    }

    async restart() {
        await this.stop();
        await this.start();
    }

    cmd(...args) {
        return redisCommand(this.sock, args, 5000, this.auth);
    }

    logTail(n = 40) {
        try {
            return fs.readFileSync(this.logFile, 'utf8').split('\n').slice(-n).join('\n');
        } catch {
            return '';
        }
    }
}

// ---------------------------------------------------------------------------
const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|runtime error:|SUMMARY: (Address|Undefined|Leak)Sanitizer/;

export class ChatNode {
    constructor(env, id, args) {
        this.env = env;
        this.id = id;
        this.args = args;
        this.proc = null;
        this.port = 0;
        this.expectDeath = false;
        this.problems = [];
        this.log = new LineLog(path.join(env.dir, `${id}.log`));
        this.extraEnv = {};
    }

    /** Started with --tls-cert: https:// and wss:// (trusting env.tlsCa). */
    get tls() {
        return this.args.includes('--tls-cert');
    }
    get url() {
        return `${this.tls ? 'wss' : 'ws'}://127.0.0.1:${this.port}`;
    }
    get httpUrl() {
        return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
    }
    get running() {
        return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
    }

    async start() {
        const bin = chatdeskdPath();
        if (!fs.existsSync(bin)) throw new Error(`chatdeskd not found at ${bin} (build it, or set CHATDESKD)`);
        const args = [
            '--port', '0',
            '--bind', '127.0.0.1',
            '--redis', this.env.redis.url,
            '--node-id', this.id,
            '--drain-timeout-s', '0',
            ...this.args,
        ];
        let cmd = bin;
        let argv = args;
        if (process.env.CD_TEST_VALGRIND === '1') {
            cmd = 'valgrind';
            argv = ['--leak-check=full', '--errors-for-leak-kinds=definite', '--error-exitcode=99', bin, ...args];
        }
        this.expectDeath = false;
        this.log.push(`### start ${cmd} ${argv.join(' ')}`);
        // Every test connects from 127.0.0.1, so the per-address rate of new connections
        // (conn_rate_per_ip) is lifted through the environment; a test of that limit gives
        // the flags, which override the environment.
        // The same for logins (login_rate_per_ip a minute per address).
        const env = {
            CHATDESK_CONN_RATE_PER_IP: '1000000',
            CHATDESK_CONN_BURST_PER_IP: '1000000',
            CHATDESK_LOGIN_RATE_PER_IP: '1000000',
            ...process.env,
            ...this.extraEnv,
        };
        const proc = spawnTracked(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env });
        this.proc = proc;
        const listening = new Promise((resolve, reject) => {
            const onLine = (line) => {
                const m = /chatdeskd listening port=(\d+)/.exec(line);
                if (m) resolve(Number(m[1]));
            };
            proc.stdout.on('data', (d) => this.log.feed('out', d, onLine));
            proc.stderr.on('data', (d) => this.log.feed('err', d));
            proc.once('error', reject);
            proc.once('exit', (code, signal) => {
                this.log.flush();
                reject(new Error(`chatdeskd ${this.id} exited before listening (code ${code}, signal ${signal})`));
            });
        });
        proc.once('exit', (code, signal) => {
            this.log.flush();
            this.log.push(`### exit code=${code} signal=${signal}`);
            if (!this.expectDeath) this.problems.push(`node ${this.id} died unexpectedly (code ${code}, signal ${signal})`);
        });
        try {
            this.port = await withTimeout(listening, 20_000 * SCALE, `chatdeskd ${this.id} listening line`);
            // Ready means Redis is connected too: the listening line may come first.
            await waitUntil(
                async () => {
                    if (!this.running) throw new Error(`chatdeskd ${this.id} exited`);
                    return (await httpRequest(`${this.httpUrl}/healthz`, { timeout: 2000, ca: this.env.tlsCa })).status === 200;
                },
                { timeout: 20_000 * SCALE, interval: 50, what: `chatdeskd ${this.id} /healthz 200 after start` },
            );
        } catch (e) {
            this.expectDeath = true;
            if (this.running) await stopProc(proc, 'SIGKILL', 5000);
            throw new Error(`${e.message}\n--- ${this.id} log ---\n${this.log.tail(80)}`);
        }
        return this;
    }

    /** Sends a signal and returns a promise of {code, signal} at exit (the exit is expected). */
    signal(sig) {
        this.expectDeath = true;
        const done = exitPromise(this.proc);
        process.kill(this.proc.pid, sig);
        return done;
    }

    /** kill -9: the node gets no chance to clean up. */
    async kill9() {
        this.expectDeath = true;
        if (this.proc) await stopProc(this.proc, 'SIGKILL', 10_000);
    }

    /** SIGTERM; a node that needs SIGKILL, exits non-zero or dies by a signal other than
     *  SIGTERM is recorded as a problem. */
    async stop({ signal = 'SIGTERM' } = {}) {
        if (!this.proc) return;
        if (!this.running) return;
        this.expectDeath = true;
        const r = await stopProc(this.proc, signal, 20_000 * SCALE);
        if (r.forced) this.problems.push(`node ${this.id} did not exit within ${20 * SCALE} s of ${signal}`);
        else if (!(r.code === 0 || r.signal === signal))
            this.problems.push(`node ${this.id} exited with code ${r.code} signal ${r.signal} after ${signal}`);
    }

    sanitizerReport() {
        const text = this.log.text();
        return SANITIZER_RE.test(text) ? text.split('\n').filter((l) => l.trim()).slice(-120).join('\n') : null;
    }
}

// ---------------------------------------------------------------------------
/** A WebSocket client that records every frame. */
export class Client {
    constructor(ws, label) {
        this.ws = ws;
        this.label = label;
        this.frames = [];
        this.closeInfo = null;
        this.waiters = new Set();
        this.ridSeq = 0;
        this.closed = new Promise((res) => {
            ws.on('close', (code, reason) => {
                this.closeInfo = { code, reason: reason.toString() };
                for (const w of this.waiters) w.onClose();
                res(this.closeInfo);
            });
        });
        ws.on('message', (data, isBinary) => {
            let f;
            if (isBinary) f = { __binary: true, length: data.length };
            else {
                const text = data.toString('utf8');
                try {
                    f = JSON.parse(text);
                } catch {
                    f = { __raw: text };
                }
            }
            f.__t = Date.now();
            this.frames.push(f);
            for (const w of this.waiters) w.check(f, this.frames.length - 1);
        });
        ws.on('error', () => {
            /* reported through close */
        });
    }

    /** Opens a socket; rejects with err.status set when the upgrade is refused. */
    static open(url, { origin = ORIGIN, headers = {}, timeout = WAIT, label = url, ca } = {}) {
        return new Promise((resolve, reject) => {
            const opts = { headers: { ...headers }, handshakeTimeout: timeout, maxPayload: 64 * 1024 * 1024, perMessageDeflate: false };
            if (ca) opts.ca = ca; // wss:// with a test certificate
            if (origin !== null) opts.origin = origin;
            const ws = new WebSocket(url, opts);
            const client = new Client(ws, label);
            let settled = false;
            ws.once('open', () => {
                settled = true;
                resolve(client);
            });
            ws.once('unexpected-response', (req, res) => {
                let body = '';
                res.on('data', (d) => (body += d));
                res.on('end', () => {
                    if (settled) return;
                    settled = true;
                    const e = new Error(`upgrade refused: HTTP ${res.statusCode}`);
                    e.status = res.statusCode;
                    e.body = body;
                    reject(e);
                });
                res.on('error', () => {});
                const t = setTimeout(() => {
                    if (settled) return;
                    settled = true;
                    const e = new Error(`upgrade refused: HTTP ${res.statusCode}`);
                    e.status = res.statusCode;
                    e.body = body;
                    reject(e);
                    req.destroy();
                }, 2000);
                t.unref();
            });
            ws.once('error', (e) => {
                if (settled) return;
                settled = true;
                reject(e);
            });
        });
    }

    get open() {
        return this.ws.readyState === WebSocket.OPEN;
    }

    send(obj) {
        this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    }

    /** Sends raw bytes: sendRaw(buf, {binary:false}) sends a text frame without validation. */
    sendRaw(data, opts = {}) {
        this.ws.send(data, opts);
    }

    nextRid() {
        return `${this.label.slice(0, 8)}-${++this.ridSeq}`.replace(/[^A-Za-z0-9_-]/g, '_');
    }

    /** Sends obj with a rid (one is set if missing); resolves the ok/error/welcome echoing it. */
    async request(obj, { timeout = WAIT } = {}) {
        const rid = obj.rid ?? this.nextRid();
        const from = this.frames.length;
        this.send({ ...obj, rid });
        return this.waitFor((f) => f.rid === rid && ['ok', 'error', 'welcome'].includes(f.type), {
            timeout,
            from,
            what: `reply to ${obj.type} rid=${rid}`,
        });
    }

    /** request() that must succeed: throws on an error frame. */
    async ok(obj, opts) {
        const r = await this.request(obj, opts);
        if (r.type === 'error')
            throw new Error(`${this.label}: ${obj.type} answered error ${r.code}: ${r.message}`);
        return r;
    }

    /** First frame at index >= from matching pred; waits up to timeout. Rejects early
     *  when the socket closes without a match. */
    waitFor(pred, { timeout = WAIT, from = 0, what = 'frame' } = {}) {
        for (let i = from; i < this.frames.length; i++) if (pred(this.frames[i])) return Promise.resolve(this.frames[i]);
        return new Promise((resolve, reject) => {
            const w = {
                check: (f, idx) => {
                    if (idx >= from && pred(f)) done(null, f);
                },
                onClose: () => done(new Error(`${this.label}: closed (${this.closeInfo?.code} ${this.closeInfo?.reason}) while waiting for ${what}`)),
            };
            const t = setTimeout(() => done(new Error(`${this.label}: timed out after ${timeout} ms waiting for ${what}`)), timeout);
            const self = this;
            function done(err, f) {
                clearTimeout(t);
                self.waiters.delete(w);
                if (err) {
                    err.message += `\nlast frames: ${self.describe(12)}`;
                    reject(err);
                } else resolve(f);
            }
            if (this.closeInfo) return w.onClose();
            this.waiters.add(w);
        });
    }

    /** Current index in frames, to wait only for what arrives after it. */
    mark() {
        return this.frames.length;
    }

    waitClose(timeout = WAIT) {
        return withTimeout(this.closed, timeout, `${this.label} to be closed by the server (frames: ${this.describe(6)})`);
    }

    filter(pred, from = 0) {
        return this.frames.slice(from).filter(pred);
    }

    messages(cid, from = 0) {
        return this.filter((f) => f.type === 'message.created' && f.conversation_id === cid, from).map((f) => f.message);
    }

    describe(n = 10) {
        return JSON.stringify(
            this.frames.slice(-n).map(({ __t, ...f }) => f),
            (k, v) => (typeof v === 'string' && v.length > 200 ? v.slice(0, 200) + '…' : v),
        );
    }

    close(code = 1000) {
        try {
            if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
        } catch {
            /* ignore */
        }
    }

    terminate() {
        try {
            this.ws.terminate();
        } catch {
            /* ignore */
        }
    }
}

/** [a, a+1, ..., b] */
export function range(a, b) {
    const out = [];
    for (let i = a; i <= b; i++) out.push(i);
    return out;
}

/** Asserts a connection saw the conversation's messages in strictly increasing seq order
 *  (so also each at most once). Returns the seqs. */
export function assertOrdered(client, cid) {
    const seqs = client.messages(cid).map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++)
        assert.ok(seqs[i] > seqs[i - 1], `${client.label}: message.created for ${cid} out of order or duplicated: ${seqs.join(',')}`);
    return seqs;
}

// ---------------------------------------------------------------------------
/** ca: the certificate to trust for https:// (a test's self-signed one). */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeout = WAIT, localAddress, ca } = {}) {
    return new Promise((resolve, reject) => {
        const u = new URL(url);
        // a Buffer goes as it is (uploads); anything else as text or JSON
        const bytes = Buffer.isBuffer(body);
        const data = body === undefined ? undefined : bytes ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
        const req = (u.protocol === 'https:' ? https : http).request(
            {
                ca,
                host: u.hostname,
                port: u.port,
                path: u.pathname + u.search,
                method,
                agent: false,
                localAddress,
                headers: {
                    ...(data && !bytes ? { 'content-type': 'application/json' } : {}),
                    ...(data ? { 'content-length': data.length } : {}),
                    ...headers,
                },
                timeout,
            },
            (res) => {
                const chunks = [];
                res.on('data', (d) => chunks.push(d));
                res.on('end', () => {
                    const raw = Buffer.concat(chunks);
                    const text = raw.toString('utf8');
                    let json;
                    try {
                        json = JSON.parse(text);
                    } catch {
                        json = undefined;
                    }
                    resolve({ status: res.statusCode, headers: res.headers, text, json, body: raw });
                });
                res.on('error', reject);
            },
        );
        req.on('timeout', () => req.destroy(new Error(`HTTP ${method} ${url}: timeout`)));
        req.on('error', reject);
        if (data) req.write(data);
        req.end();
    });
}

// ---------------------------------------------------------------------------
/** A TCP relay on 127.0.0.1 to a port or a unix socket (target: {port} or {path}) that a
 *  test can cut and heal, like a firewall dropping packets: cut() stops moving bytes (both
 *  ways, or only 'down' = target -> client) on every connection, open or new, without
 *  closing anything; the bytes wait in the kernel and flow again on heal() (a close by a
 *  side whose bytes are held is seen only then). A side that closes is closed on the
 *  other. */
export class Link {
    constructor(target) {
        this.target = target;
        this.pairs = new Set();
        this.cutOff = null;
    }

    async start() {
        this.server = net.createServer((client) => {
            const target = net.connect(this.target);
            const pair = { client, target };
            this.pairs.add(pair);
            for (const [a, b] of [[client, target], [target, client]]) {
                a.on('data', (d) => b.write(d));
                a.on('error', () => {});
                a.on('close', () => {
                    b.destroy();
                    this.pairs.delete(pair);
                });
            }
            this.hold(pair);
        });
        await new Promise((r) => this.server.listen(0, '127.0.0.1', r));
        this.port = this.server.address().port;
        return this;
    }

    hold(pair) {
        if (!this.cutOff) return;
        pair.target.pause();
        if (this.cutOff === 'both') pair.client.pause();
    }

    get open() {
        return this.pairs.size;
    }

    cut(which = 'both') {
        this.cutOff = which;
        for (const pair of this.pairs) this.hold(pair);
    }

    heal() {
        this.cutOff = null;
        for (const { client, target } of this.pairs) {
            client.resume();
            target.resume();
        }
    }

    stop() {
        for (const { client, target } of this.pairs) {
            client.destroy();
            target.destroy();
        }
        this.server?.close();
    }
}

// ---------------------------------------------------------------------------
export class Env {
    constructor() {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-st-'));
        this.redis = new RedisServer(path.join(this.dir, 'redis'));
        this.nodes = [];
        this.clients = new Set();
        this.failed = [];
        this.siteSeq = 0;
        this.tlsCa = undefined; // PEM trusted for nodes started with --tls-cert
    }

    /** nodeEnv: {index: {VAR: value}} more environment for some nodes (e.g. libfaketime). */
    async start({ nodes = 1, args = [], nodeArgs = {}, nodeEnv = {} } = {}) {
        await this.redis.start();
        for (let i = 0; i < nodes; i++) await this.addNode(nodeArgs[i] ?? args, `n${i + 1}`, nodeEnv[i]);
        return this;
    }

    async addNode(args = [], id = `n${this.nodes.length + 1}`, extraEnv = {}) {
        const n = new ChatNode(this, id, args);
        n.extraEnv = extraEnv;
        this.nodes.push(n);
        await n.start();
        return n;
    }

    node(i) {
        return typeof i === 'number' ? this.nodes[i] : i;
    }

    // ---- admin CLI ----
    adminRaw(args, { timeout = 30_000 * SCALE, input } = {}) {
        return new Promise((resolve) => {
            const child = execFile(
                chatdeskdPath(),
                ['--redis', this.redis.url, 'admin', ...args],
                { timeout, maxBuffer: 8 * 1024 * 1024 },
                (err, stdout, stderr) => {
                    const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
                    let json;
                    try {
                        json = JSON.parse(stdout);
                    } catch {
                        json = undefined;
                    }
                    resolve({ code, stdout, stderr, json });
                },
            );
            if (input !== undefined) child.stdin.end(input);
        });
    }

    async admin(...args) {
        const r = await this.adminRaw(args);
        if (r.code !== 0) throw new Error(`admin ${args.join(' ')} failed (exit ${r.code}): ${r.stderr}${r.stdout}`);
        if (r.json === undefined) throw new Error(`admin ${args[0]}: output is not JSON: ${r.stdout}`);
        return r.json;
    }

    /** Adds a site; returns {key, secret, origins, record}. */
    async addSite({ key = `s${++this.siteSeq}_${rnd(3)}`, name, origins = [ORIGIN], secret, probe = true } = {}) {
        const args = ['site-add', '--key', key, '--name', name ?? `Site ${key}`];
        for (const o of origins) args.push('--origin', o);
        if (secret) args.push('--identity-secret', secret);
        const record = await this.admin(...args);
        if (probe) await this.waitSiteKnown(key, origins[0]);
        return { key, secret, origins, record };
    }

    /** Nodes learn about new sites through pub/sub (ch:sites), a moment after site-add
     *  returns: wait until every running node accepts a visitor hello for the site. */
    async waitSiteKnown(key, origin, { timeout = 10_000 * SCALE } = {}) {
        for (const n of this.nodes.filter((x) => x.running)) {
            await waitUntil(
                async () => {
                    let c;
                    try {
                        c = await Client.open(`${n.url}/ws/visitor`, { origin, label: 'site-probe', ca: this.tlsCa });
                        const w = await c.request({ type: 'hello', site: key }, { timeout: 2000 * SCALE });
                        return w.type === 'welcome';
                    } catch {
                        return false;
                    } finally {
                        c?.terminate();
                    }
                },
                { timeout, interval: 25, what: `node ${n.id} to know site ${key}` },
            );
        }
    }

    /** Adds an agent (max-chats 100 so tests never hit the cap); returns {id, email, password, agent}. */
    async addAgent({ site, sites, email = `a_${rnd(4)}@example.com`, password = `pw-${rnd(8)}`, name, role, maxChats = 100 } = {}) {
        const args = ['agent-add', '--email', email, '--password', password, '--name', name ?? `Agent ${email.split('@')[0]}`];
        for (const s of sites ?? [site]) args.push('--site', typeof s === 'string' ? s : s.key);
        if (role) args.push('--role', role);
        if (maxChats) args.push('--max-chats', String(maxChats));
        const agent = await this.admin(...args);
        return { id: agent.id, email, password, agent };
    }

    // ---- HTTP ----
    http(node, urlPath, opts) {
        return httpRequest(this.node(node).httpUrl + urlPath, { ca: this.tlsCa, ...opts });
    }

    async login(node, email, password) {
        const r = await this.http(node, '/api/v1/login', { method: 'POST', body: { email, password } });
        if (r.status !== 200 || !r.json?.token) throw new Error(`login ${email} failed: HTTP ${r.status} ${r.text}`);
        return r.json.token;
    }

    // ---- WebSocket ----
    /** origin: default ORIGIN for visitors and the node's own origin for agents (the
     *  default agent_origins); null sends none. */
    async connect(node, role, { origin, query = '', label, headers } = {}) {
        const n = this.node(node);
        if (origin === undefined) origin = role === 'agent' ? n.httpUrl : ORIGIN;
        const c = await Client.open(`${n.url}/ws/${role}${query}`, { origin, headers, label: label ?? `${role}@${n.id}`, ca: this.tlsCa });
        this.clients.add(c);
        c.closed.then(() => this.clients.delete(c));
        return c;
    }

    /** Connects /ws/visitor and says hello; resolves the client with .welcome/.token/.visitorId. */
    async visitor(node, { site, token, user, resume, origin, query, label } = {}) {
        const c = await this.connect(node, 'visitor', { origin, query, label });
        const hello = { type: 'hello', site: typeof site === 'string' ? site : site.key };
        if (token) hello.token = token;
        if (user) hello.user = user;
        if (resume) hello.resume = resume;
        const w = await c.request(hello);
        if (w.type !== 'welcome') throw new Error(`visitor hello refused: ${JSON.stringify(w)}`);
        c.welcome = w;
        c.token = w.token;
        c.visitorId = w.visitor?.id;
        return c;
    }

    /** Connects /ws/agent with a login token (or logs in with email/password). */
    async agent(node, { token, email, password, resume, label } = {}) {
        if (!token) token = await this.login(node, email, password);
        const c = await this.connect(node, 'agent', { label });
        const hello = { type: 'hello', token };
        if (resume) hello.resume = resume;
        const w = await c.request(hello);
        if (w.type !== 'welcome') throw new Error(`agent hello refused: ${JSON.stringify(w)}`);
        c.welcome = w;
        c.token = token;
        c.agentId = w.agent?.id;
        return c;
    }

    /** A ready chat: site + agent, visitor on vNode with a started conversation (first
     *  message seq 1), agent on aNode who accepted it. */
    async chat({ vNode = 0, aNode = 0, site, firstMessage = 'Hello?', accept = true, form = {} } = {}) {
        site = site ?? (await this.addSite());
        const ag = await this.addAgent({ site });
        const a = await this.agent(aNode, { email: ag.email, password: ag.password, label: `agent@${this.node(aNode).id}` });
        const v = await this.visitor(vNode, { site, label: `visitor@${this.node(vNode).id}` });
        const start = await v.ok({ type: 'conversation.start', form: { subject: 'Help', ...(firstMessage ? { message: firstMessage } : {}), ...form } });
        const cid = start.conversation.id;
        await a.waitFor((f) => f.type === 'conversation.queued' && f.conversation?.id === cid, { what: `conversation.queued ${cid}` });
        let conv = start.conversation;
        if (accept) conv = (await a.ok({ type: 'conversation.accept', conversation_id: cid })).conversation ?? conv;
        // The server may add system messages (an auto-acknowledgement, ...): later seqs are
        // relative to base, the last seq once the chat is ready.
        const base = conv.last_seq;
        return { site, ag, a, v, cid, conv, start, base };
    }

    // ---- teardown ----
    async stop() {
        for (const c of [...this.clients]) c.terminate();
        this.clients.clear();
        const problems = [];
        for (const n of this.nodes) {
            await n.stop();
            problems.push(...n.problems);
            const rep = n.sanitizerReport();
            if (rep) problems.push(`sanitizer report from node ${n.id}:\n${rep}`);
        }
        await this.redis.stop();
        const verbose = process.env.CD_TEST_VERBOSE === '1';
        if (this.failed.length || problems.length || verbose) {
            if (this.failed.length) console.log(`failed tests: ${this.failed.join('; ')}`);
            for (const n of this.nodes) console.log(`--- log of node ${n.id} (${n.log.file}) ---\n${n.log.tail(verbose ? 400 : 80)}`);
            console.log(`--- redis log ---\n${this.redis.logTail(30)}`);
        }
        const keep = process.env.CD_TEST_KEEP === '1' || this.failed.length || problems.length;
        if (keep) console.log(`test files kept in ${this.dir}`);
        else fs.rmSync(this.dir, { recursive: true, force: true });
        if (problems.length) throw new Error(`server problems:\n${problems.join('\n')}`);
    }
}

/** Registers before/afterEach/after hooks for one test file and returns the Env
 *  (usable inside tests once before() has run). opts.prepare(env) runs first (a top-level
 *  before() starts at once, so settings such as env.redis.extraArgs belong there). */
export function useEnv(opts = {}) {
    const env = new Env();
    before(async () => {
        await opts.prepare?.(env);
        await env.start(opts);
    }, { timeout: 120_000 * SCALE });
    afterEach((t) => {
        if (t.passed === false) env.failed.push(t.name);
    });
    after(async () => {
        await env.stop();
    }, { timeout: 180_000 * SCALE });
    return env;
}

/** Asserts an error frame with one of the codes. */
export function assertError(frame, codes, what = '') {
    const list = Array.isArray(codes) ? codes : [codes];
    assert.equal(frame?.type, 'error', `${what}: expected error ${list.join('|')}, got ${JSON.stringify(frame)}`);
    assert.ok(list.includes(frame.code), `${what}: expected error code ${list.join('|')}, got ${frame.code} (${frame.message})`);
}

export { assert };
