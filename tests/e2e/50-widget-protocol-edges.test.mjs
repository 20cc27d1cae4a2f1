// Protocol edges that a real node rarely produces on demand, played by a scripted fake
// server (http + ws in this process, serving the real web/ build under the node's CSP):
// hello contents (token, user, attributes, page, resume), events not known yet (queue
// position, ticket number, unknown types) rendered or ignored, duplicates by id and seq,
// `resumed` recovered:false → history reload, close codes 1013 / 4429 → reconnect with
// backoff and full jitter and the same client_msg_id, 4401 → token dropped and an
// anonymous hello with the unsent text kept, a hello answered with an error → retry.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { before, after } from 'node:test';
import { WebSocketServer } from 'ws';
import { Browser, it, assert, widget, screenshot, waitUntil, sleep, WAIT, SCALE, WEB_DIR } from './lib.mjs';

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; media-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";
const MIME = { '.js': 'text/javascript', '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.map': 'application/json' };

class FakeServer {
    constructor() {
        this.conns = [];
        this.frames = []; // {conn, f}
        this.waiters = new Set();
        this.onFrame = () => {};
    }

    async start() {
        this.http = http.createServer((req, res) => {
            const u = new URL(req.url, 'http://x');
            let rel = null;
            if (u.pathname === '/widget.js' || u.pathname === '/widget.js.map') rel = u.pathname.slice(1);
            else if (u.pathname === '/demo' || u.pathname === '/demo/') rel = 'demo/index.html';
            else if (/^\/demo\/[A-Za-z0-9._-]+$/.test(u.pathname)) rel = u.pathname.slice(1);
            const file = rel && path.join(WEB_DIR, rel);
            if (!file || !fs.existsSync(file)) {
                res.writeHead(404).end();
                return;
            }
            const headers = { 'content-type': MIME[path.extname(file)] || 'application/octet-stream', 'cache-control': 'no-cache' };
            if (file.endsWith('.html')) headers['content-security-policy'] = CSP;
            res.writeHead(200, headers).end(fs.readFileSync(file));
        });
        this.wss = new WebSocketServer({ noServer: true });
        this.http.on('upgrade', (req, sock, head) => {
            const u = new URL(req.url, 'http://x');
            if (u.pathname !== '/ws/visitor' || this.refuse) return sock.destroy();
            this.wss.handleUpgrade(req, sock, head, (ws) => {
                const conn = { ws, n: this.conns.length + 1, query: u.search, origin: req.headers.origin, at: Date.now(), frames: [] };
                this.conns.push(conn);
                ws.on('message', (data) => {
                    const f = JSON.parse(String(data));
                    conn.frames.push(f);
                    this.frames.push({ conn, f });
                    for (const w of this.waiters) w();
                    this.onFrame(conn, f);
                });
            });
        });
        await new Promise((r) => this.http.listen(0, '127.0.0.1', r));
        this.origin = `http://127.0.0.1:${this.http.address().port}`;
    }

    /** The next frame (from index `from` on) matching pred. */
    waitFrame(pred, { from = 0, timeout = WAIT * 2, what = 'frame' } = {}) {
        return waitUntil(() => this.frames.slice(from).find((x) => pred(x.f, x.conn)), { timeout, what: `fake server: ${what}` });
    }

    mark() {
        return this.frames.length;
    }

    get last() {
        return this.conns.at(-1);
    }

    send(conn, obj) {
        conn.ws.send(JSON.stringify(obj));
    }

    async stop() {
        for (const c of this.conns) c.ws.terminate();
        this.wss?.close();
        await new Promise((r) => this.http.close(r));
        this.http.closeAllConnections?.();
    }
}

const fake = new FakeServer();
const browser = new Browser();
before(async () => {
    if (!fs.existsSync(path.join(WEB_DIR, 'widget.js'))) throw new Error('web/widget.js missing: npm run build in widget/');
    await fake.start();
    await browser.start();
}, { timeout: 60_000 * SCALE });
after(async () => {
    await browser.stop();
    await fake.stop();
}, { timeout: 60_000 * SCALE });

const conv = (over = {}) => ({
    id: 'c_1', site: 'edge', status: 'queued', assignee: null, team: null, priority: 'normal', category: null, subject: null, tags: [],
    visitor: { id: 'v_1', name: null, email: null }, created_at: 1764000000000, updated_at: 1764000000000, first_response_at: null,
    last_seq: 1, epoch: 'e1', csat: null, ticket: null, ...over,
});
const msg = (seq, body, kind = 'agent', over = {}) => ({
    seq, id: `m_${seq}_${body.length}`, client_msg_id: null, author: { kind, id: kind === 'agent' ? 'a_1' : 'v_1', name: kind === 'agent' ? 'Zhao Min' : null }, body, private: false, ts: 1764000000000 + seq * 1000, ...over,
});

const S = {};

it('hello carries site, user, attributes and page; events not known yet are rendered when they come or ignored', async () => {
    // 1st connection: welcome lists a queued conversation; the widget adopts it and loads history
    fake.onFrame = (c, f) => {
        if (f.type === 'hello') fake.send(c, { type: 'welcome', rid: f.rid, visitor: { id: 'v_1', name: 'Ann', email: null }, token: 'tok1', conversations: [conv()], agents_online: true, something_new: { x: 1 } });
        else if (f.type === 'history') fake.send(c, { type: 'ok', rid: f.rid, messages: [msg(1, 'hi, I need help', 'visitor')] });
        else if (f.type === 'read' || f.type === 'typing') {
            /* no reply */
        } else if (f.rid) fake.send(c, { type: 'ok', rid: f.rid });
    };
    const page = await browser.page();
    S.page = page;
    const w = widget(page);
    S.w = w;
    await page.goto(`${fake.origin}/demo?site=edge&user_id=crm-42&name=Ann&email=ann@example.com&hash=abc123`);
    await w.launcher.click();
    const hello = (await fake.waitFrame((f) => f.type === 'hello', { what: 'hello' })).f;
    assert.equal(fake.last.query, '?site=edge');
    assert.equal(fake.last.origin, fake.origin);
    assert.equal(hello.site, 'edge');
    assert.equal(hello.token, undefined);
    assert.deepEqual(hello.user, { id: 'crm-42', name: 'Ann', email: 'ann@example.com', hash: 'abc123' });
    assert.deepEqual(hello.attributes, { plan: 'demo', cart_items: 2 });
    assert.equal(hello.page.url, `${fake.origin}/demo?site=edge&user_id=crm-42&name=Ann&email=ann@example.com&hash=abc123`);
    assert.equal(hello.page.title, 'chatdesk demo shop');
    assert.equal(typeof hello.page.referrer, 'string');
    assert.equal(hello.resume, undefined);
    await w.waitText('hi, I need help');
    const c = fake.last;
    fake.send(c, { type: 'conversation.queue', conversation_id: 'c_1', position: 3, size: 5, estimated_wait_ms: 180000 });
    await waitUntil(async () => /You are number 3 in the queue\. Estimated wait: about 3 min\./.test(await w.info.textContent()), { what: 'queue position' });
    await screenshot(page, '50-edges-01-queue-position');
    fake.send(c, { type: 'brand.new.event', conversation_id: 'c_1', payload: { deep: [1, 2, 3] } });
    fake.send(c, { type: 'message.created', conversation_id: 'c_other', message: msg(9, 'not for this conversation') });
    fake.send(c, { type: 'message.created', conversation_id: 'c_1', message: { ...msg(2, 'Hello Ann, Zhao Min here.'), reactions: [], new_field: true } });
    fake.send(c, { type: 'message.created', conversation_id: 'c_1', message: msg(2, 'Hello Ann, Zhao Min here.') }); // same id again
    fake.send(c, { type: 'message.created', conversation_id: 'c_1', message: { ...msg(2, 'Hello Ann, Zhao Min here.'), id: 'm_dup' } }); // same seq, other id
    fake.send(c, { type: 'message.created', conversation_id: 'c_1', message: msg(3, 'internal note', 'agent', { private: true }) });
    fake.send(c, { type: 'conversation.updated', conversation: conv({ status: 'open', assignee: { id: 'a_1', name: 'Zhao Min' }, last_seq: 3, ticket: { number: 1042, created_at: 1764000000000, sla: null } }) });
    await w.waitText('Hello Ann, Zhao Min here.');
    await waitUntil(async () => /Ticket #1042/.test(await w.info.textContent()), { what: 'ticket number' });
    assert.doesNotMatch(await w.info.textContent(), /queue/);
    const list = await w.list();
    assert.deepEqual(list.filter((m) => m.seq !== null && Number.isInteger(m.seq)).map((m) => [m.seq, m.text]), [[1, 'hi, I need help'], [2, 'Hello Ann, Zhao Min here.']]);
    assert.ok(list.some((m) => m.kind === 'sys' && /Zhao Min joined/.test(m.text)), 'joined note');
    assert.equal(await w.q('.sub').textContent(), 'Zhao Min');
    await screenshot(page, '50-edges-02-ticket-number');
    assert.deepEqual(page.cdErrors, []);
});

it('a dropped connection (1013) resumes from the last seq with the epoch; recovered:false reloads the conversation', async () => {
    const { w } = S;
    const from = fake.mark();
    fake.onFrame = (c, f) => {
        if (f.type === 'hello') {
            fake.send(c, { type: 'welcome', rid: f.rid, visitor: { id: 'v_1' }, token: 'tok2', conversations: [conv({ status: 'open', last_seq: 2, epoch: 'e2' })], agents_online: true });
            fake.send(c, { type: 'resumed', conversation_id: 'c_1', last_seq: 2, epoch: 'e2', recovered: false });
        } else if (f.type === 'history') fake.send(c, { type: 'ok', rid: f.rid, messages: [msg(1, 'hi, I need help', 'visitor'), msg(2, 'history after a reset')] });
        else if (f.rid) fake.send(c, { type: 'ok', rid: f.rid });
    };
    fake.last.ws.close(1013, 'try again');
    const hello = (await fake.waitFrame((f) => f.type === 'hello', { from, what: 'hello after 1013' })).f;
    assert.equal(hello.token, 'tok1');
    assert.deepEqual(hello.resume, [{ conversation_id: 'c_1', after_seq: 2, epoch: 'e1' }]);
    await fake.waitFrame((f) => f.type === 'history' && f.conversation_id === 'c_1' && f.before_seq === undefined, { from, what: 'history reload' });
    await w.waitText('history after a reset');
    const list = await w.list();
    assert.deepEqual(list.filter((m) => Number.isInteger(m.seq)).map((m) => [m.seq, m.text]), [[1, 'hi, I need help'], [2, 'history after a reset']]);
    assert.equal(await S.page.evaluate(() => JSON.parse(localStorage.getItem('chatdesk:v1:edge:token'))), 'tok2', 'renewed token stored');
});

it('an unacknowledged send is resent after 4429 with the same client_msg_id, with backoff and full jitter, and shown once', async () => {
    const { w, page } = S;
    let acks = false;
    let refuse = 0;
    const from = fake.mark();
    fake.onFrame = (c, f) => {
        if (f.type === 'hello') {
            if (refuse > 0) {
                refuse--;
                c.ws.close(1013, 'not ready');
                return;
            }
            fake.send(c, { type: 'welcome', rid: f.rid, visitor: { id: 'v_1' }, token: 'tok3', conversations: [conv({ status: 'open', last_seq: 2, epoch: 'e2' })], agents_online: true });
            fake.send(c, { type: 'resumed', conversation_id: 'c_1', last_seq: 2, epoch: 'e2', recovered: true });
        } else if (f.type === 'message.send') {
            if (!acks) return; // swallowed: never acknowledged
            const m = msg(3, f.body, 'visitor', { id: 'm_sent', client_msg_id: f.client_msg_id });
            fake.send(c, { type: 'message.created', conversation_id: 'c_1', message: m });
            fake.send(c, { type: 'ok', rid: f.rid, message: m });
        } else if (f.rid && f.type !== 'history') fake.send(c, { type: 'ok', rid: f.rid });
    };
    await w.send('will you get this?');
    const first = (await fake.waitFrame((f) => f.type === 'message.send', { from, what: 'first send' })).f;
    assert.equal((await w.list()).find((m) => m.text === 'will you get this?').status, 'pending');
    // cut off as a slow consumer; the next 3 hellos are refused with 1013
    refuse = 3;
    acks = true;
    const c0 = fake.conns.length;
    const t0 = Date.now();
    fake.last.ws.close(4429, 'slow consumer');
    const resent = (await fake.waitFrame((f, c) => f.type === 'message.send' && c.n > c0 + 3, { from, timeout: 40_000 * SCALE, what: 'resend after reconnect' })).f;
    assert.equal(resent.client_msg_id, first.client_msg_id, 'same client_msg_id');
    assert.equal(resent.body, first.body);
    // backoff: attempt n waits U(0, max(min(30 s, 500 ms * 2^n), 2 s)): a message waits
    // to be sent, so the urgent window (widget/src/conn.js reconnectDelay)
    const times = [t0, ...fake.conns.slice(c0).map((c) => c.at)];
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    gaps.forEach((g, i) => assert.ok(g <= Math.max(Math.min(30_000, 500 * 2 ** i), 2000) + 400 * SCALE, `attempt ${i} waited ${g} ms (gaps ${gaps.join(',')})`));
    await waitUntil(async () => (await w.list()).find((m) => m.text === 'will you get this?')?.status === 'sent', { what: 'acknowledged' });
    await sleep(200);
    assert.equal((await w.list()).filter((m) => m.text === 'will you get this?').length, 1);
    assert.equal(await page.evaluate(() => localStorage.getItem('chatdesk:v1:edge:outbox')), null);
});

it('4401 drops the token and the conversation; the next hello is anonymous and the unsent text is kept for the form', async () => {
    const { w, page } = S;
    let phase = 'swallow';
    const from = fake.mark();
    fake.onFrame = (c, f) => {
        if (f.type === 'hello') {
            if (phase === 'unauthorized') {
                phase = 'anon';
                fake.send(c, { type: 'error', rid: f.rid, code: 'unauthorized', message: 'invalid or expired token' });
                c.ws.close(4401, 'unauthorized');
                return;
            }
            fake.send(c, { type: 'welcome', rid: f.rid, visitor: { id: 'v_new' }, token: 'tok-anon', conversations: [], agents_online: false });
        }
        // message.send is never acknowledged
    };
    await w.send('lost token, keep my words');
    await fake.waitFrame((f) => f.type === 'message.send' && f.body === 'lost token, keep my words', { from, what: 'send' });
    phase = 'unauthorized';
    fake.last.ws.close(1001, 'going away');
    const anon = await fake.waitFrame((f) => f.type === 'hello' && !f.token, { from, timeout: WAIT * 3, what: 'anonymous hello' });
    assert.equal(anon.f.resume, undefined);
    // the user set by the page (crm-42) is still sent: the site vouches for it
    assert.equal(anon.f.user.id, 'crm-42');
    await w.field('message').waitFor();
    assert.equal(await w.field('message').inputValue(), 'lost token, keep my words');
    assert.equal(await w.field('email').getAttribute('aria-required'), 'true', 'offline form: e-mail required');
    assert.match(await w.q('.note').textContent(), /No agent is online/);
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('chatdesk:v1:edge:token'))), 'tok-anon');
    assert.equal(await page.evaluate(() => localStorage.getItem('chatdesk:v1:edge:conv')), 'null');
    await screenshot(page, '50-edges-03-offline-form-after-4401');
});

it('a hello answered with an error other than unauthorized is retried; setUser with another id starts over', async () => {
    const { w, page } = S;
    let errors = 1;
    const from = fake.mark();
    fake.onFrame = (c, f) => {
        if (f.type === 'hello') {
            if (errors-- > 0) return fake.send(c, { type: 'error', rid: f.rid, code: 'unavailable', message: 'node not ready, retry' });
            fake.send(c, { type: 'welcome', rid: f.rid, visitor: { id: 'v_9' }, token: 'tok-9', conversations: [], agents_online: true });
        }
    };
    await page.evaluate(() => window.chatdesk('setUser', { id: 'crm-99', name: 'Bob', hash: 'ffff' }));
    const h1 = await fake.waitFrame((f) => f.type === 'hello' && f.user?.id === 'crm-99', { from, what: 'hello for the new user' });
    assert.equal(h1.f.token, undefined, "another user's token is not sent");
    await fake.waitFrame((f, c) => f.type === 'hello' && c.n > h1.conn.n, { from, timeout: WAIT * 3, what: 'hello retried after unavailable' });
    await w.waitState('online');
    assert.equal(await page.evaluate(() => localStorage.getItem('chatdesk:v1:edge:uid')), '"crm-99"');
    assert.equal(await w.field('name').inputValue(), 'Bob');
    assert.deepEqual(page.cdErrors, []);
});

it('the pre-chat form sent while offline goes out once online; its queue position from the ok shows at once', async () => {
    const page = await browser.page();
    const w = widget(page);
    fake.refuse = true; // upgrades fail: the widget keeps retrying
    const from = fake.mark();
    let starts = 0;
    fake.onFrame = (c, f) => {
        if (f.type === 'hello') fake.send(c, { type: 'welcome', rid: f.rid, visitor: { id: 'v_2' }, token: 'tok-b', conversations: [], agents_online: true });
        else if (f.type === 'conversation.start') {
            starts++;
            const m = msg(1, f.form.message, 'visitor', { id: 'm_b1' });
            fake.send(c, { type: 'ok', rid: f.rid, conversation: conv({ id: 'c_b', visitor: { id: 'v_2' } }), message: m, queue: { position: 2, size: 4, estimated_wait_ms: 60000 } });
        } else if (f.rid) fake.send(c, { type: 'ok', rid: f.rid });
    };
    await page.goto(`${fake.origin}/demo?site=edge2`);
    await w.launcher.click();
    await w.field('message').fill('sent while offline');
    await w.q('.form button[type=submit]').click();
    await w.waitText('sent while offline');
    assert.equal((await w.list()).find((m) => m.text === 'sent while offline').status, 'pending');
    const stored = await page.evaluate(() => JSON.parse(localStorage.getItem('chatdesk:v1:edge2:start')));
    assert.equal(stored.form.message, 'sent while offline');
    assert.equal(stored.form.locale, 'en');
    fake.refuse = false;
    await w.waitState('online', 40_000 * SCALE);
    await fake.waitFrame((f) => f.type === 'conversation.start', { from, what: 'conversation.start' });
    await waitUntil(async () => (await w.list()).find((m) => m.text === 'sent while offline')?.status === 'sent', { what: 'sent' });
    await waitUntil(async () => /You are number 2 in the queue\. Estimated wait: about 1 min\./.test(await w.info.textContent()), { what: 'queue from the ok' });
    await sleep(300);
    assert.equal(starts, 1);
    assert.equal((await w.list()).filter((m) => m.text === 'sent while offline').length, 1);
    assert.equal(await page.evaluate(() => localStorage.getItem('chatdesk:v1:edge2:start')), null);
});

it('a conversation.start whose ok was lost is not sent twice: the conversation it made is adopted from welcome', async () => {
    const page = await browser.page();
    const w = widget(page);
    const from = fake.mark();
    let starts = 0;
    let made = false;
    fake.onFrame = (c, f) => {
        if (f.type === 'hello') {
            const conversations = made ? [conv({ id: 'c_old', status: 'closed', updated_at: 1 }), conv({ id: 'c_made', status: 'queued', visitor: { id: 'v_3' } })] : [conv({ id: 'c_old', status: 'closed', updated_at: 1 })];
            fake.send(c, { type: 'welcome', rid: f.rid, visitor: { id: 'v_3' }, token: 'tok-c', conversations, agents_online: true });
        } else if (f.type === 'conversation.start') {
            starts++;
            made = true; // stored by the server, but the ok never arrives
            c.ws.terminate();
        } else if (f.type === 'history') {
            const messages = f.conversation_id === 'c_made' ? [msg(1, 'my ok got lost', 'visitor', { id: 'm_c1' }), msg(2, 'Thanks, we got your message.', 'system', { id: 'm_c2' })] : [];
            fake.send(c, { type: 'ok', rid: f.rid, messages });
        } else if (f.rid) fake.send(c, { type: 'ok', rid: f.rid });
    };
    await page.goto(`${fake.origin}/demo?site=edge3`);
    await w.launcher.click();
    await w.waitState('online');
    await w.field('message').fill('my ok got lost');
    await w.q('.form button[type=submit]').click();
    await fake.waitFrame((f) => f.type === 'conversation.start', { from, what: 'conversation.start' });
    await fake.waitFrame((f, c) => f.type === 'history' && f.conversation_id === 'c_made', { from, timeout: 40_000 * SCALE, what: 'history of the adopted conversation' });
    await w.waitText('Thanks, we got your message.');
    await sleep(500);
    assert.equal(starts, 1, 'no second conversation.start');
    const list = await w.list();
    assert.deepEqual(list.map((m) => [m.seq, m.text]), [[1, 'my ok got lost'], [2, 'Thanks, we got your message.']]);
    assert.equal(list[0].status, 'sent');
    assert.equal(await page.evaluate(() => JSON.parse(localStorage.getItem('chatdesk:v1:edge3:conv')).c.id), 'c_made');
});
