// Browser end-to-end helpers: real chatdeskd nodes and Redis (tests/server/harness.mjs),
// Debian's /usr/bin/chromium driven by playwright-core (installed by widget/: npm ci),
// an optional test-local nginx in front of the nodes.
//
// Rules (the same as the server harness): every process is started here and stopped by
// PID in after(), every wait is bounded, ports come from `--port 0` / a probe of a free
// port on 127.0.0.1, nothing leaves the loopback.
//
// Environment:
//   CHATDESKD            the binary (default build/chatdeskd)
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   CD_E2E_OUTPUT        screenshot dir (default tests/e2e/output)
//   CD_TEST_TIMEOUT_SCALE, CD_TEST_KEEP, CD_TEST_VERBOSE as in the harness
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Env, waitUntil, killPid, waitDead, freePort, sleep, rnd, SCALE, WAIT, REPO_ROOT } from '../server/harness.mjs';
import { CHROMIUM, launchChromium, stopChromium } from '../support/browser.mjs';

export { assert, waitUntil, sleep, rnd, SCALE, WAIT, REPO_ROOT, freePort, CHROMIUM };

const HERE = path.dirname(fileURLToPath(import.meta.url));
const requireWidget = createRequire(path.join(REPO_ROOT, 'widget', 'package.json'));
const { chromium } = requireWidget('playwright-core');

export const WEB_DIR = path.join(REPO_ROOT, 'web');
export const OUTPUT = path.resolve(process.env.CD_E2E_OUTPUT || path.join(HERE, 'output'));

/** test() with a bounded timeout. */
export function it(name, fn, opts = {}) {
    return test(name, { timeout: 120_000 * SCALE, ...opts }, fn);
}

// ---------------------------------------------------------------------------
// Browser

export class Browser {
    async start() {
        Object.assign(this, await launchChromium(chromium));
        return this;
    }

    /** A fresh context (own localStorage) with console / page errors collected. */
    async page({ locale = 'en-US', viewport = { width: 1100, height: 760 }, ...opts } = {}) {
        const context = await this.browser.newContext({ locale, viewport, ...opts });
        context.setDefaultTimeout(WAIT * 2);
        const page = await context.newPage();
        return wrapPage(page, context);
    }

    async stop() {
        await stopChromium(this);
  }
}

function wrapPage(page, context) {
    page.cdErrors = [];
    page.cdConsole = [];
    page.on('pageerror', (e) => page.cdErrors.push(String(e && e.stack ? e.stack : e)));
    page.on('console', (m) => {
        page.cdConsole.push(`${m.type()}: ${m.text()}`);
        if (process.env.CD_TEST_VERBOSE === '1') console.log(`[browser ${m.type()}] ${m.text()}`);
    });
    page.cdContext = context;
    return page;
}

let shotSeq = 0;
/** Saves a screenshot under OUTPUT as <name>.png; returns the path. */
export async function screenshot(page, name) {
    fs.mkdirSync(OUTPUT, { recursive: true });
    const file = path.join(OUTPUT, `${name.replace(/[^A-Za-z0-9._-]+/g, '_')}.png`);
    await page.screenshot({ path: file, fullPage: false, timeout: 15_000 * SCALE });
    shotSeq++;
    return file;
}

// ---------------------------------------------------------------------------
// The widget, seen from the test (Playwright's CSS locators pierce open shadow roots)

export function widget(page) {
    const q = (sel) => page.locator(`#chatdesk-widget ${sel}`);
    return {
        q,
        launcher: q('.launcher'),
        panel: q('.panel'),
        badge: q('.badge'),
        input: q('.compose textarea'),
        typing: q('.typing'),
        info: q('.info'),
        banner: q('.banner'),
        conn: q('.conn'),
        field: (name) => q(`[name="${name}"]`),
        messages: q('.list > li'),
        async state() {
            return page.evaluate(() => document.getElementById('chatdesk-widget')?.getAttribute('data-state') || '');
        },
        async waitState(s, timeout = WAIT * 3) {
            await waitUntil(async () => (await this.state()) === s, { timeout, what: `widget state ${s}` });
        },
        /** [{key, seq, status, text, kind}] of the rendered messages, in DOM order. */
        async list() {
            return page.evaluate(() => {
                const root = document.getElementById('chatdesk-widget')?.shadowRoot;
                if (!root) return [];
                return [...root.querySelectorAll('.list > li')].map((li) => ({
                    key: li.getAttribute('data-key'),
                    seq: li.hasAttribute('data-seq') ? Number(li.getAttribute('data-seq')) : null,
                    status: li.getAttribute('data-status') || '',
                    kind: li.classList.contains('me') ? 'me' : li.classList.contains('sys') ? 'sys' : 'them',
                    text: li.querySelector('.bubble')?.textContent.replace(/^[^:]*:\s/, '') ?? '',
                    who: li.querySelector('.who')?.textContent ?? null,
                }));
            });
        },
        async texts() {
            return (await this.list()).map((m) => m.text);
        },
        async waitText(text, timeout = WAIT * 2) {
            await waitUntil(async () => (await this.texts()).includes(text), { timeout, what: `message "${text}" in the widget` });
        },
        async send(text) {
            await this.input.fill(text);
            await this.input.press('Enter');
        },
    };
}

// ---------------------------------------------------------------------------
// XSS checks (RELIABILITY S7): tests/e2e/30-widget-xss-csp and the nightly corpus

/** Hooks installed before any page script: every way a payload could show itself. */
export function xssHook(page) {
    const dialogs = [];
    page.on('dialog', (d) => {
        dialogs.push(d.message());
        d.dismiss().catch(() => {});
    });
    return page
        .addInitScript(() => {
            window.__xss = [];
            for (const k of ['alert', 'confirm', 'prompt', 'print']) window[k] = (...a) => window.__xss.push(`${k}(${String(a[0])})`);
            const ce = console.error.bind(console);
            console.error = (...a) => {
                window.__xss.push(`console.error(${a.map(String).join(' ')})`);
                ce(...a);
            };
            window.__csp = [];
            document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
        })
        .then(() => dialogs);
}

/** Everything the payloads could have created, in the page and in the shadow root. */
export async function xssDomReport(page) {
    return page.evaluate(() => {
        const root = document.getElementById('chatdesk-widget')?.shadowRoot;
        const scopes = [document, root].filter(Boolean);
        const bad = [];
        for (const sc of scopes) {
            for (const el of sc.querySelectorAll('*')) {
                const tag = el.tagName.toLowerCase();
                if (['img', 'iframe', 'object', 'embed', 'video', 'audio', 'form-injected'].includes(tag)) bad.push(`<${tag}>`);
                if (tag === 'script' && sc === root) bad.push('<script> in the widget');
                for (const a of el.attributes) if (/^on/i.test(a.name)) bad.push(`${tag}[${a.name}]`);
                if (tag === 'a') {
                    const href = el.getAttribute('href') || '';
                    if (!/^https?:\/\//i.test(href)) bad.push(`a[href=${href}]`);
                    if (el.getAttribute('rel') !== 'noopener noreferrer nofollow') bad.push(`a[rel=${el.getAttribute('rel')}]`);
                }
                if (tag === 'svg' && sc === root && !el.closest('button')) bad.push('<svg> outside a button');
            }
        }
        return {
            bad,
            xss: window.__xss,
            csp: window.__csp,
            links: root ? [...root.querySelectorAll('.list a')].map((a) => [a.getAttribute('href'), a.textContent]) : [],
        };
    });
}

export async function xssAssertClean(page, dialogs, what) {
    await sleep(300); // let any error event or onload run
    const r = await xssDomReport(page);
    assert.deepEqual(r.bad, [], `${what}: no markup from payloads`);
    assert.deepEqual(r.xss, [], `${what}: nothing ran`);
    assert.deepEqual(r.csp, [], `${what}: no CSP violation`);
    assert.deepEqual(dialogs, [], `${what}: no dialog`);
    assert.deepEqual(page.cdErrors, [], `${what}: no page error`);
    return r;
}

// ---------------------------------------------------------------------------
// Servers

/**
 * Redis + n chatdeskd nodes serving web/ (+ optional nginx in front). Registers
 * before/after hooks; returns a handle usable in tests once before() ran.
 */
export function useStack({ nodes = 1, nginx = false, args = [] } = {}) {
    const st = { env: new Env(), browser: new Browser(), nginx: null, failed: [] };
    before(async () => {
        if (!fs.existsSync(path.join(WEB_DIR, 'widget.js')))
            throw new Error(`${WEB_DIR}/widget.js missing: run "npm run build" in widget/`);
        await st.env.start({ nodes, args: ['--static-dir', WEB_DIR, ...args] });
        if (nginx) {
            st.nginx = new Nginx(st.env.nodes.map((n) => n.port));
            await st.nginx.start();
        }
        await st.browser.start();
    }, { timeout: 180_000 * SCALE });
    afterEach((t) => {
        if (t.passed === false) st.env.failed.push(t.name);
    });
    after(async () => {
        await st.browser.stop().catch((e) => console.log(`browser stop: ${e.message}`));
        if (st.nginx) await st.nginx.stop().catch((e) => console.log(`nginx stop: ${e.message}`));
        await st.env.stop();
    }, { timeout: 180_000 * SCALE });
    /** The public origin pages are loaded from (nginx when present, else node i). */
    st.origin = (i = 0) => (st.nginx ? st.nginx.origin : st.env.nodes[i].httpUrl);
    return st;
}

/** Adds a site whose origins are the given ones; waits until every node accepts it. */
export async function addSite(env, origins, opts = {}) {
    const key = opts.key || `w${rnd(4)}`;
    const args = ['site-add', '--key', key, '--name', opts.name || `Widget site ${key}`];
    for (const o of origins) args.push('--origin', o);
    if (opts.secret) args.push('--identity-secret', opts.secret);
    await env.admin(...args);
    await env.waitSiteKnown(key, origins[0], { timeout: 15_000 * SCALE });
    return key;
}

/** An agent of the site, logged in on node i, online. */
export async function addAgent(env, site, node = 0, { name = `Agent ${rnd(2)}` } = {}) {
    const ag = await env.addAgent({ site, name });
    const a = await env.agent(node, { email: ag.email, password: ag.password, label: `agent ${name}` });
    await a.ok({ type: 'presence.set', status: 'online' });
    a.name = name;
    return a;
}

/**
 * Waits until the agent can work on a conversation of the visitor: it was queued to the
 * site's agents or assigned; accepts it unless it is already the agent's. Returns the
 * conversation id.
 */
export async function takeConversation(a, pred = () => true) {
    const f = await a.waitFor(
        (x) => (x.type === 'conversation.queued' || x.type === 'conversation.assigned' || x.type === 'conversation.updated') && x.conversation && pred(x.conversation),
        { timeout: WAIT * 3, what: 'a conversation for the agent' },
    );
    const cid = f.conversation.id;
    const assignedToMe = () => a.frames.some((x) => (x.type === 'conversation.assigned' || x.type === 'conversation.updated') && x.conversation?.id === cid && x.conversation.assignee?.id === a.agentId);
    if (!assignedToMe()) {
        const r = await a.request({ type: 'conversation.accept', conversation_id: cid });
        if (r.type === 'error' && !(r.code === 'conflict' && assignedToMe())) {
            // auto-assignment may have given it to us a moment ago
            await waitUntil(() => assignedToMe(), { timeout: WAIT, what: `conversation ${cid} assigned to the agent (accept said ${r.code})` });
        }
    }
    return cid;
}

let cmidSeq = 0;
export async function agentSay(a, cid, body) {
    const r = await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `e2e-${rnd(4)}-${++cmidSeq}`, body });
    return r.message;
}

// ---------------------------------------------------------------------------
// nginx in front of the nodes: WebSocket upgrade, round robin, no sticky sessions.

export class Nginx {
    constructor(ports) {
        this.ports = ports;
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-e2e-nginx-'));
        fs.chmodSync(this.dir, 0o755); // workers run as an unprivileged user
        this.pid = 0;
        this.proc = null;
        this.bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));
    }

    get origin() {
        return `http://127.0.0.1:${this.port}`;
    }

    config(ports) {
        const d = this.dir;
        return `# test-local nginx: generated by tests/e2e/lib.mjs
daemon off;
master_process on;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log info;
events { worker_connections 256; }
http {
    access_log ${d}/access.log;
    client_body_temp_path ${d}/client_body;
    proxy_temp_path ${d}/proxy;
    fastcgi_temp_path ${d}/fastcgi;
    uwsgi_temp_path ${d}/uwsgi;
    scgi_temp_path ${d}/scgi;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream chatdesk {
${ports.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n')}
    }
    server {
        listen 127.0.0.1:${this.port};
        location /ws/ {
            proxy_pass http://chatdesk;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_connect_timeout 2s;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
            proxy_next_upstream error timeout;
        }
        location / {
            proxy_pass http://chatdesk;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 http_503;
        }
    }
}
`;
    }

    write(ports) {
        this.conf = path.join(this.dir, 'nginx.conf');
        fs.writeFileSync(this.conf, this.config(ports));
    }

    async start() {
        if (!this.bin) throw new Error('nginx not found: apt-get install nginx');
        this.port = await freePort();
        this.write(this.ports);
        execFileSync(this.bin, ['-t', '-c', this.conf, '-p', this.dir], { stdio: 'pipe', timeout: 10_000 });
        const proc = spawn(this.bin, ['-c', this.conf, '-p', this.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
        this.proc = proc;
        this.pid = proc.pid;
        let out = '';
        proc.stdout.on('data', (d) => (out += d));
        proc.stderr.on('data', (d) => (out += d));
        const pid = proc.pid;
        process.once('exit', () => killPid(pid)); // safety net if after() never ran
        await waitUntil(
            () =>
                new Promise((res) => {
                    if (proc.exitCode !== null) return res(false);
                    const s = net.connect(this.port, '127.0.0.1');
                    s.once('connect', () => (s.destroy(), res(true)));
                    s.once('error', () => res(false));
                }),
            { timeout: 10_000 * SCALE, what: `nginx on port ${this.port}${out ? `: ${out}` : ''}` },
        );
    }

    /** Rewrites the upstream list and reloads (SIGHUP to the master, by PID). */
    async reload(ports) {
        this.write(ports);
        execFileSync(this.bin, ['-t', '-c', this.conf, '-p', this.dir], { stdio: 'pipe', timeout: 10_000 });
        const before = this.workers();
        process.kill(this.pid, 'SIGHUP');
        // The reload is done when a new worker runs and every old one has stopped
        // accepting: an old worker closes its listening socket, then names itself
        // "worker process is shutting down" while it finishes the connections it has.
        // Until then a new connection may still reach an old worker with the old list.
        await waitUntil(
            () => {
                const now = this.workers();
                return now.some((w) => !before.includes(w)) && before.every((w) => !now.includes(w) || this.title(w).includes('shutting down'));
            },
            { timeout: 10_000 * SCALE, what: 'nginx reload' },
        );
    }

    /** The process title nginx gave PID `w` ('' when it is gone). */
    title(w) {
        try {
            return fs.readFileSync(`/proc/${w}/cmdline`, 'utf8');
        } catch {
            return '';
        }
    }

    /** PIDs of the master's children (the workers), from /proc. */
    workers() {
        const out = [];
        for (const d of fs.readdirSync('/proc')) {
            if (!/^\d+$/.test(d)) continue;
            try {
                const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
                const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
                if (ppid === this.pid) out.push(Number(d));
            } catch {
                /* gone */
            }
        }
        return out;
    }

    async stop() {
        if (!this.pid) return;
        const workers = this.workers();
        killPid(this.pid, 'SIGTERM');
        if (!(await waitDead(this.pid, 5000))) killPid(this.pid, 'SIGKILL');
        await waitDead(this.pid, 5000);
        for (const w of workers) {
            // a worker left behind (reparented): only if that PID is still an nginx
            let comm = '';
            try {
                comm = fs.readFileSync(`/proc/${w}/comm`, 'utf8').trim();
            } catch {
                /* gone */
            }
            if (comm === 'nginx') killPid(w, 'SIGKILL');
        }
        const keep = process.env.CD_TEST_KEEP === '1';
        if (!keep) fs.rmSync(this.dir, { recursive: true, force: true });
        this.pid = 0;
    }

    log() {
        try {
            return fs.readFileSync(path.join(this.dir, 'error.log'), 'utf8').slice(-4000);
        } catch {
            return '';
        }
    }
}
