// Dashboard browser tests: real chatdeskd nodes and Redis (tests/server/harness.mjs),
// Debian's /usr/bin/chromium driven by playwright-core (installed by dashboard/: npm ci),
// a test-local TCP proxy in front of the node when a test has to cut connections.
//
// Rules (the same as the server harness): every process is started here and stopped by
// PID in after(), every wait is bounded, ports come from `--port 0` / port 0 listeners
// on 127.0.0.1, nothing leaves the loopback, no browser is downloaded.
//
// Environment:
//   CHATDESKD            the binary (default build/chatdeskd)
//   CHROMIUM             the browser (default /usr/bin/chromium)
//   CD_E2E_DASH_OUTPUT   screenshot dir (default tests/e2e-dashboard/output)
//   CD_TEST_TIMEOUT_SCALE, CD_TEST_KEEP, CD_TEST_VERBOSE as in the harness
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { Env, Client, waitUntil, sleep, rnd, SCALE, WAIT, REPO_ROOT } from '../server/harness.mjs';
import { CHROMIUM, launchChromium, stopChromium } from '../support/browser.mjs';

export { assert, waitUntil, sleep, rnd, SCALE, WAIT, REPO_ROOT, Client };

const HERE = path.dirname(fileURLToPath(import.meta.url));
const requireDash = createRequire(path.join(REPO_ROOT, 'dashboard', 'package.json'));
const { chromium } = requireDash('playwright-core');

export const WEB_DIR = path.join(REPO_ROOT, 'web');
const AXE = fs.readFileSync(requireDash.resolve('axe-core/axe.min.js'), 'utf8');

/** The violations axe (WCAG 2.1 A and AA rules) finds in the page: [{id, impact, help,
 *  targets}]. axe runs in the page through the DevTools protocol, so the node's CSP stays. */
export async function axeViolations(page) {
    await page.evaluate(AXE);
    return page.evaluate(async () => {
        const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
        return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
    });
}
export const OUTPUT = path.resolve(process.env.CD_E2E_DASH_OUTPUT || path.join(HERE, 'output'));
export { CHROMIUM };

export function it(name, fn, opts = {}) {
    return test(name, { timeout: 150_000 * SCALE, ...opts }, fn);
}

// ---------------------------------------------------------------------------
// Browser

export class Browser {
    async start() {
        Object.assign(this, await launchChromium(chromium));
        return this;
    }

    /** A fresh context (own sessionStorage, its own agent) with errors collected. */
    async page({ locale = 'en-US', viewport = { width: 1400, height: 860 }, ...opts } = {}) {
        const context = await this.browser.newContext({ locale, viewport, ...opts });
        context.setDefaultTimeout(WAIT * 2);
        const page = await context.newPage();
        page.cdErrors = [];
        page.cdConsole = [];
        page.cdDialogs = [];
        page.on('pageerror', (e) => page.cdErrors.push(String(e && e.stack ? e.stack : e)));
        page.on('console', (m) => {
            page.cdConsole.push(`${m.type()}: ${m.text()}`);
            if (process.env.CD_TEST_VERBOSE === '1') console.log(`[browser ${m.type()}] ${m.text()}`);
        });
        // an XSS payload that runs would open one of these; confirm() of the dashboard too
        page.on('dialog', (d) => {
            page.cdDialogs.push(`${d.type()}: ${d.message()}`);
            d.type() === 'confirm' ? d.accept() : d.dismiss();
        });
        page.cdContext = context;
        return page;
    }

    async stop() {
        await stopChromium(this);
  }
}

/** Saves a screenshot under OUTPUT as <name>.png. */
export async function screenshot(page, name) {
    fs.mkdirSync(OUTPUT, { recursive: true });
    const file = path.join(OUTPUT, `${name.replace(/[^A-Za-z0-9._-]+/g, '_')}.png`);
    await page.screenshot({ path: file, fullPage: false, timeout: 15_000 * SCALE });
    return file;
}

// ---------------------------------------------------------------------------
// A TCP proxy in front of a node, so that a test can cut the browser's connections
// (the page keeps its origin, the node keeps running).

export class Proxy {
    constructor(targetPort) {
        this.targetPort = targetPort;
        this.pairs = new Set();
        this.refuse = false;
        this.blackhole = false; // forward browser -> node, drop node -> browser
        this.refuseWs = false; // close WebSocket upgrades at once, let plain HTTP through
    }
    async start() {
        this.server = net.createServer((c) => {
            if (this.refuse) {
                c.destroy();
                return;
            }
            // the node is dialled only once the browser sent its first bytes, so that the
            // proxy never opens a connection to the node that carries no request
            const pair = { c, u: null };
            this.pairs.add(pair);
            const done = () => {
                c.destroy();
                pair.u?.destroy();
                this.pairs.delete(pair);
            };
            c.on('data', (d) => {
                if (!pair.u) {
                    pair.ws = /\r\nupgrade:\s*websocket/i.test(d.toString('latin1'));
                    if (pair.ws && this.refuseWs) return done();
                    const u = net.connect(this.targetPort, '127.0.0.1');
                    pair.u = u;
                    u.on('data', (x) => {
                        if (!this.blackhole) c.write(x);
                    });
                    u.on('error', done);
                    u.on('close', done);
                }
                pair.u.write(d);
            });
            c.on('error', done);
            c.on('close', done);
        });
        await new Promise((res) => this.server.listen(0, '127.0.0.1', res));
        this.port = this.server.address().port;
        return this;
    }
    get origin() {
        return `http://127.0.0.1:${this.port}`;
    }
    /** Drops every open connection (the browser sees them close). */
    cut({ wsOnly = false } = {}) {
        for (const p of [...this.pairs]) {
            if (wsOnly && !p.ws) continue;
            p.c.destroy();
            p.u?.destroy();
            this.pairs.delete(p);
        }
    }
    async stop() {
        this.cut();
        await new Promise((res) => this.server.close(() => res()));
    }
}

// ---------------------------------------------------------------------------
// Servers

/** Redis + chatdeskd node(s) serving web/ + a browser. Registers the hooks. */
export function useStack({ nodes = 1, args = [] } = {}) {
    const st = { env: new Env(), browser: new Browser(), proxies: [] };
    before(async () => {
        for (const f of ['index.html', 'app.js', 'app.css'])
            if (!fs.existsSync(path.join(WEB_DIR, 'app', f))) throw new Error(`${WEB_DIR}/app/${f} missing: run "npm run build" in dashboard/`);
        await st.env.start({ nodes, args: ['--static-dir', WEB_DIR, ...args] });
        await st.browser.start();
    }, { timeout: 180_000 * SCALE });
    afterEach((t) => {
        if (t.passed === false) st.env.failed.push(t.name);
    });
    after(async () => {
        for (const p of st.proxies) await p.stop().catch(() => {});
        await st.browser.stop().catch((e) => console.log(`browser stop: ${e.message}`));
        await st.env.stop();
    }, { timeout: 180_000 * SCALE });
    st.origin = (i = 0) => st.env.nodes[i].httpUrl;
    st.proxy = async (i = 0) => {
        const p = await new Proxy(st.env.nodes[i].port).start();
        st.proxies.push(p);
        return p;
    };
    return st;
}

/** A site whose visitor origin is ORIGIN of the harness (protocol-client visitors). */
export async function addSite(env, opts = {}) {
    return (await env.addSite(opts)).key;
}

export async function addAgent(env, site, { name = `Agent ${rnd(2)}`, role, maxChats = 20, sites } = {}) {
    const ag = await env.addAgent({ site, sites, name, role, maxChats });
    return { ...ag, name };
}

/**
 * Does the server have this HTTP endpoint yet? (docs/api.md arrives piece by piece.)
 * Returns null when it does, else the skip reason. Only "404 not_found" counts as
 * missing; any other answer means the endpoint exists and the test runs.
 */
export async function endpointMissing(env, token, method, urlPath, body) {
    const r = await env.http(0, urlPath, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
    if (r.status === 404 && r.json?.error?.code === 'not_found')
        return `server has no ${method} ${urlPath.replace(/\?.*$/, '')} yet (404 not_found: ${r.json.error.message})`;
    return null;
}

// ---------------------------------------------------------------------------
// The dashboard, seen from a test

export function dash(page) {
    const q = (sel) => page.locator(sel);
    const d = {
        page,
        q,
        async login(origin, email, password) {
            const resp = await page.goto(`${origin}/app/`);
            assert.equal(resp.status(), 200);
            await q('input[name=email]').fill(email);
            await q('input[name=password]').fill(password);
            await q('form.login-box button[type=submit]').click();
            await d.waitOnline();
            return resp;
        },
        async waitOnline(timeout = WAIT * 3) {
            await q('[data-conn="online"]').waitFor({ timeout });
        },
        async nav(view) {
            await q(`[data-nav="${view}"]`).click();
            await waitUntil(async () => (await q('.shell').getAttribute('data-view')) === view, { what: `view ${view}` });
        },
        item: (cid) => q(`.list-pane .conv-item[data-cid="${cid}"]`),
        async open(cid) {
            await d.item(cid).locator('.conv-open').click();
            await q(`.conv-pane[data-cid="${cid}"]`).waitFor();
        },
        pane: () => q('.conv-pane'),
        composer: () => q('.composer textarea'),
        /** [{seq, kind, private, text, receipt}] of the open conversation, in DOM order. */
        async messages() {
            return page.evaluate(() =>
                [...document.querySelectorAll('.conv-pane .msg-list > li.msg')].map((li) => ({
                    seq: li.hasAttribute('data-seq') ? Number(li.getAttribute('data-seq')) : null,
                    kind: li.getAttribute('data-kind'),
                    private: li.getAttribute('data-private') === 'true',
                    state: li.getAttribute('data-state'),
                    text: li.querySelector('.msg-body')?.textContent ?? '',
                    receipt: li.querySelector('.receipt')?.getAttribute('data-receipt') ?? null,
                })),
            );
        },
        async waitText(text, timeout = WAIT * 2) {
            await waitUntil(async () => (await d.messages()).some((m) => m.text === text && m.seq !== null), { timeout, what: `message "${text}" in the dashboard` });
        },
        async send(text) {
            await d.composer().fill(text);
            await d.composer().press('Enter');
        },
        async action(name) {
            await q(`.conv-pane [data-action="${name}"]`).click();
        },
        async status() {
            return q('.conv-pane').getAttribute('data-status');
        },
    };
    return d;
}

/** A visitor (protocol client on node i) who starts a chat; returns {v, cid, conv}. */
export async function visitorChat(env, site, { node = 0, message = 'Hello, I need help', form = {}, hello = {} } = {}) {
    const c = await env.connect(node, 'visitor', { label: `visitor ${rnd(2)}` });
    const w = await c.request({ type: 'hello', site, ...hello });
    if (w.type !== 'welcome') throw new Error(`visitor hello refused: ${JSON.stringify(w)}`);
    c.welcome = w;
    c.visitorId = w.visitor.id;
    const r = await c.ok({ type: 'conversation.start', form: { message, ...form } });
    return { v: c, cid: r.conversation.id, conv: r.conversation, start: r };
}

let cm = 0;
export async function visitorSay(v, cid, body) {
    const r = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `v-${rnd(3)}-${++cm}`, body });
    return r.message;
}

export function assertNoPageErrors(page, what = 'page') {
    assert.deepEqual(page.cdErrors, [], `${what}: JavaScript errors`);
    const csp = page.cdConsole.filter((l) => /Content Security Policy|Refused to/i.test(l));
    assert.deepEqual(csp, [], `${what}: CSP violations`);
}
