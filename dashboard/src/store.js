// Application state and actions. One mutable state object `S`; every change calls
// changed(), which re-renders the Preact tree once per animation frame.
//
// Reliability rules kept here:
// - a message the agent sent stays in the outbox (memory + sessionStorage) until the
//   server acknowledged it; after a reconnect it is sent again with the same
//   client_msg_id, so the server stores it exactly once;
// - every conversation the dashboard holds is resumed with after_seq on reconnect, and
//   a resume that cannot recover (recovered:false) reloads the history;
// - nothing needs a page reload: queue, assignment and status changes arrive as events.
import { Conn, ConnError } from './conn.js';
import * as http from './api.js';
import { t, setLang, getLang } from './i18n.js';
import { notifyDesktop, playSound } from './notify.js';
import { randomId, queueOrder } from './util.js';

const TOKEN_KEY = 'chatdesk.token';
const AGENT_KEY = 'chatdesk.agent';
const OUTBOX_KEY = 'chatdesk.outbox';
const PREFS_KEY = 'chatdesk.prefs';
const PAGE = 50;

export const VIEWS = ['mine', 'queue', 'all', 'pending', 'resolved', 'tickets', 'supervisor', 'canned', 'admin', 'reports', 'mentions'];
export const LIST_VIEWS = ['mine', 'queue', 'all', 'pending', 'resolved'];

function loadPrefs() {
    try {
        return { sound: true, notify: true, ...JSON.parse(localStorage.getItem(PREFS_KEY) || '{}') };
    } catch {
        return { sound: true, notify: true };
    }
}

export const S = {
    token: null,
    me: null,
    conn: 'idle',
    connInfo: null,
    presence: 'offline',
    convs: new Map(),
    msgs: new Map(),
    unread: new Map(),
    visitorRead: new Map(),
    typing: new Map(),
    viewers: new Map(), // cid -> [{id, name, typing}] of the open conversation (collision detection)
    queueTeams: new Map(),
    agents: new Map(),
    teams: new Set(),
    visitors: new Map(), // visitor id -> {state:'loading'|'ok'|'missing'|'error', data, at}
    canned: new Map(), // site -> {state, list, at}
    outbox: [],
    view: 'mine',
    active: null,
    dialog: null,
    toasts: [],
    prefs: loadPrefs(),
    listEndpoint: 'unknown', // GET /api/v1/conversations: unknown | ok | missing
    loginError: null,
    sessionExpired: false,
    challenge: null, // two-factor login: the challenge token after a right password
    enrol: null, // {token, agent}: a site requires two-factor login, which is not set up yet
    noteMode: new Map(),
    mentions: [], // unread mention notices, newest first (the Mentions view, ui/Mentions.jsx)
    selectedIndex: 0,
};

// ---------------------------------------------------------------------------
// change notification
const subs = new Set();
let scheduled = false;
export function subscribe(fn) {
    subs.add(fn);
    return () => subs.delete(fn);
}
export function changed() {
    if (scheduled) return;
    scheduled = true;
    const run = () => {
        scheduled = false;
        for (const fn of subs) fn();
        updateTitle();
    };
    if (typeof requestAnimationFrame === 'function' && !document.hidden) requestAnimationFrame(run);
    else setTimeout(run, 0);
}

function updateTitle() {
    let n = 0;
    for (const [cid, c] of S.unread) if (c > 0 && S.convs.has(cid)) n += c;
    const base = 'chatdesk';
    const title = n > 0 ? `(${n}) ${base}` : base;
    if (document.title !== title) document.title = title;
}

// ---------------------------------------------------------------------------
// toasts
let toastSeq = 0;
export function toast(text, kind = 'info', ms = 5000) {
    const id = ++toastSeq;
    S.toasts = [...S.toasts, { id, text, kind }];
    changed();
    setTimeout(() => {
        S.toasts = S.toasts.filter((x) => x.id !== id);
        changed();
    }, ms);
}

export function errorText(e) {
    if (!e) return t('err.internal');
    const code = e.code || 'internal';
    const known = t(`err.${code}`, {}, null);
    const msg = e.message && e.message !== code ? e.message : '';
    return known ? (msg && code !== 'disconnected' && code !== 'timeout' ? `${known} (${msg})` : known) : msg || code;
}

// ---------------------------------------------------------------------------
// session

let conn = null;

export function isAdmin() {
    return !!S.me && (S.me.role === 'admin' || S.me.role === 'owner');
}

// the owner also creates sites and grants the owner role (docs/ops.md "Roles")
export function isOwner() {
    return !!S.me && S.me.role === 'owner';
}

export function boot() {
    http.setUnauthorizedHandler(() => expire());
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) {
        let agent = null;
        try {
            agent = JSON.parse(sessionStorage.getItem(AGENT_KEY) || 'null');
        } catch {
            agent = null;
        }
        try {
            S.outbox = JSON.parse(sessionStorage.getItem(OUTBOX_KEY) || '[]').map((x) => ({ ...x, state: x.state === 'failed' ? 'failed' : 'sending' }));
        } catch {
            S.outbox = [];
        }
        startSession(token, agent);
    }
    const fromHash = (location.hash || '').replace(/^#\/?/, '');
    if (VIEWS.includes(fromHash)) S.view = fromHash;
    window.addEventListener('hashchange', () => {
        const v = (location.hash || '').replace(/^#\/?/, '');
        if (VIEWS.includes(v) && v !== S.view) setView(v);
    });
    document.addEventListener('visibilitychange', () => {
        if (!document.hidden && S.active) markRead(S.active);
        syncViewing();
        changed();
    });
    window.addEventListener('focus', () => S.active && markRead(S.active));
    setInterval(pollActive, 5000);
    setInterval(expireTyping, 1000);
    changed();
}

export async function login(email, password) {
    S.loginError = null;
    changed();
    try {
        const r = await http.api('POST', '/api/v1/login', { email, password }, { auth: false });
        S.sessionExpired = false;
        if (r.totp_required) S.challenge = r.challenge; // the code is asked next (Security.jsx)
        else if (r.enrolment_required) S.enrol = { token: r.token, agent: r.agent };
        else startSession(r.token, r.agent);
        changed();
    } catch (e) {
        S.loginError = e.status === 401 ? t('login.bad') : errorText(e);
        changed();
        throw e;
    }
}

/** The login's second step: {code} or {recovery_code} with the challenge token. */
export async function loginSecondFactor(body) {
    S.loginError = null;
    changed();
    try {
        const r = await http.api('POST', '/api/v1/login/totp', body, { auth: false, bearer: S.challenge });
        S.challenge = null;
        startSession(r.token, r.agent);
    } catch (e) {
        if (e.status === 401 && /token/.test(e.message || '')) {
            // the challenge expired (5 minutes): back to the password
            S.challenge = null;
            S.sessionExpired = true;
        } else {
            S.loginError = e.status === 401 ? t('totp.wrong') : errorText(e);
        }
        changed();
        throw e;
    }
}

/** Back to the password form from the second step or the enrolment. */
export function cancelLogin() {
    S.challenge = null;
    S.enrol = null;
    S.loginError = null;
    changed();
}

/** The enrolment a site requires is confirmed: its reply carries the login token. */
export function finishEnrolment(r) {
    const agent = S.enrol ? S.enrol.agent : null;
    S.enrol = null;
    startSession(r.token, agent);
}

function startSession(token, agent) {
    S.token = token;
    S.me = agent;
    sessionStorage.setItem(TOKEN_KEY, token);
    if (agent) sessionStorage.setItem(AGENT_KEY, JSON.stringify(agent));
    http.setToken(token);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    conn = new Conn({
        url: `${proto}//${location.host}/ws/agent`,
        token,
        getResume,
        onWelcome,
        onFrame,
        onState: (s, info) => {
            S.conn = s;
            S.connInfo = info || null;
            if (s !== 'online') {
                S.typing.clear();
                S.viewers.clear();
            }
            changed();
        },
        onAuthFailed: () => expire(),
    });
    conn.start();
    changed();
}

function clearSession() {
    conn?.stop();
    conn = null;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(AGENT_KEY);
    http.setToken(null);
    S.token = null;
    S.me = null;
    S.convs.clear();
    S.msgs.clear();
    S.unread.clear();
    S.visitorRead.clear();
    S.typing.clear();
    S.viewers.clear();
    S.queueTeams.clear();
    S.agents.clear();
    S.visitors.clear();
    S.canned.clear();
    S.mentions = [];
    S.active = null;
    S.dialog = null;
    S.conn = 'idle';
}

export function logout() {
    // the token is revoked server-side too (POST /api/v1/logout); the answer does not matter
    if (S.token) http.api('POST', '/api/v1/logout').catch(() => {});
    sessionStorage.removeItem(OUTBOX_KEY);
    S.outbox = [];
    clearSession();
    changed();
}

/** The token was refused (expired, agent disabled): back to the login form; unsent
 *  messages stay in sessionStorage for the next login in this tab. */
function expire() {
    if (!S.token) return;
    clearSession();
    S.sessionExpired = true;
    changed();
}

export function showDialog(d) {
    S.dialog = d;
    changed();
}

export function reconnectNow() {
    conn?.kick();
}

// ---------------------------------------------------------------------------
// preferences

export function setPref(k, v) {
    S.prefs = { ...S.prefs, [k]: v };
    localStorage.setItem(PREFS_KEY, JSON.stringify(S.prefs));
    changed();
}

export function switchLang(l) {
    setLang(l);
    setPref('lang', l);
}

// ---------------------------------------------------------------------------
// conversations

export function upsertConv(c) {
    if (!c || !c.id) return null;
    const old = S.convs.get(c.id);
    // A record older than the one held (a list fetched before a change whose event or
    // reply already arrived) must not undo that change: the server moves updated_at on
    // every change of the conversation.
    if (old && typeof old.updated_at === 'number' && typeof c.updated_at === 'number' && c.updated_at < old.updated_at) return old;
    const merged = old ? { ...old, ...c } : { ...c };
    if (old && typeof old.last_seq === 'number' && !(merged.last_seq >= old.last_seq) && merged.epoch === old.epoch) merged.last_seq = old.last_seq;
    if (old && old.epoch && c.epoch && old.epoch !== c.epoch) {
        // history was reset on the server: reload what we show
        resetMessages(c.id);
    }
    S.convs.set(c.id, merged);
    if (merged.visitor && merged.visitor.id) {
        const v = S.visitors.get(merged.visitor.id);
        if (v && v.state === 'ok') v.stale = true;
    }
    if (merged.team) S.teams.add(`${merged.site}|${merged.team}`);
    return merged;
}

function isMine(c) {
    return !!(S.me && c.assignee && c.assignee.id === S.me.id);
}
export { isMine };

export function convsFor(view) {
    const all = [...S.convs.values()];
    let list;
    switch (view) {
        case 'mine':
            list = all.filter((c) => isMine(c) && c.status !== 'resolved' && c.status !== 'closed');
            break;
        case 'queue':
            list = all.filter((c) => c.status === 'queued');
            return list.sort(queueOrder);
        case 'all':
            list = all.filter((c) => c.status === 'queued' || c.status === 'open' || c.status === 'pending');
            break;
        case 'pending':
            list = all.filter((c) => c.status === 'pending');
            break;
        case 'resolved':
            list = all.filter((c) => c.status === 'resolved');
            break;
        default:
            list = [];
    }
    return list.sort((a, b) => lastActivity(b) - lastActivity(a));
}

function lastActivity(c) {
    const m = S.msgs.get(c.id);
    const last = m && m.list.length ? m.list[m.list.length - 1].ts : 0;
    return Math.max(last || 0, c.updated_at || 0, c.created_at || 0);
}

/** Position (1-based) of a queued conversation in its team's queue, as the server orders it. */
export function queuePosition(c) {
    const same = [...S.convs.values()].filter((x) => x.status === 'queued' && x.site === c.site && (x.team || null) === (c.team || null)).sort(queueOrder);
    return same.findIndex((x) => x.id === c.id) + 1;
}

export function unreadFor(view) {
    let n = 0;
    for (const c of convsFor(view)) n += S.unread.get(c.id) || 0;
    return n;
}

export function setView(v) {
    if (!VIEWS.includes(v)) return;
    S.view = v;
    S.selectedIndex = 0;
    if (location.hash !== `#/${v}`) history.replaceState(null, '', `#/${v}`);
    if (['all', 'pending', 'resolved'].includes(v)) fetchServerList(v);
    if (v === 'mentions') loadMentions();
    changed();
}

/** Optional server list (GET /api/v1/conversations, proposed): fills All open, Pending and
 *  Resolved with conversations this session has not seen. Without it the views show what
 *  arrived over the WebSocket since sign-in. */
async function fetchServerList(view) {
    if (S.listEndpoint === 'missing') return;
    const status = view === 'all' ? 'open,pending,queued' : view;
    try {
        const r = await http.get(`/api/v1/conversations${http.qs({ status, per_page: 100 })}`);
        S.listEndpoint = 'ok';
        for (const c of r.conversations || []) upsertConv(c);
    } catch (e) {
        if (http.isRouteMissing(e)) S.listEndpoint = 'missing';
    }
    changed();
}

export function openConv(cid) {
    if (!cid) {
        S.active = null;
        syncViewing();
        changed();
        return;
    }
    S.active = cid;
    ensureHistory(cid);
    markRead(cid);
    syncViewing();
    const c = S.convs.get(cid);
    if (c && c.visitor && c.visitor.id) loadVisitor(c.visitor.id);
    if (c) loadCanned(c.site);
    changed();
}

// ---------------------------------------------------------------------------
// messages

function entry(cid) {
    let e = S.msgs.get(cid);
    if (!e) {
        e = { list: [], bySeq: new Map(), loaded: false, complete: false, loading: false, error: null };
        S.msgs.set(cid, e);
    }
    return e;
}

function resetMessages(cid) {
    const e = S.msgs.get(cid);
    if (!e) return;
    S.msgs.delete(cid);
    if (S.active === cid) setTimeout(() => ensureHistory(cid), 0);
}

function insertMessages(cid, messages) {
    const e = entry(cid);
    let added = 0;
    for (const m of messages) {
        if (!m || typeof m.seq !== 'number') continue;
        if (e.bySeq.has(m.seq)) continue;
        e.bySeq.set(m.seq, m);
        added++;
    }
    if (added) e.list = [...e.bySeq.values()].sort((a, b) => a.seq - b.seq);
    return e;
}

export async function ensureHistory(cid) {
    const e = entry(cid);
    if (e.loaded || e.loading) return;
    e.loading = true;
    e.error = null;
    changed();
    try {
        const r = await request({ type: 'history', conversation_id: cid, limit: PAGE });
        const msgs = r.messages || [];
        insertMessages(cid, msgs);
        e.loaded = true;
        e.complete = msgs.length < PAGE || (msgs[0] && msgs[0].seq <= 1);
        bumpSeq(cid, msgs);
        e.retries = 0;
    } catch (err) {
        e.error = err;
        // the socket was down: try again when it is back
        if (err.code === 'disconnected' || err.code === 'timeout') e.retryOnWelcome = true;
    } finally {
        e.loading = false;
        changed();
        if (S.active === cid) markRead(cid);
    }
}

export async function loadOlder(cid) {
    const e = S.msgs.get(cid);
    if (!e || !e.loaded || e.complete || e.loading || !e.list.length) return false;
    e.loading = true;
    changed();
    try {
        const before = e.list[0].seq;
        const r = await request({ type: 'history', conversation_id: cid, before_seq: before, limit: PAGE });
        const msgs = r.messages || [];
        insertMessages(cid, msgs);
        if (msgs.length < PAGE || (msgs[0] && msgs[0].seq <= 1) || !msgs.length) e.complete = true;
        return true;
    } catch (err) {
        e.error = err;
        return false;
    } finally {
        e.loading = false;
        changed();
    }
}

function bumpSeq(cid, msgs) {
    const c = S.convs.get(cid);
    if (!c || !msgs.length) return;
    const max = msgs[msgs.length - 1].seq;
    if (!(c.last_seq >= max)) S.convs.set(cid, { ...c, last_seq: max });
}

function maxSeq(cid) {
    const e = S.msgs.get(cid);
    const c = S.convs.get(cid);
    const fromList = e && e.list.length ? e.list[e.list.length - 1].seq : 0;
    if (e && e.loaded) return fromList;
    return Math.max(fromList, (c && c.last_seq) || 0);
}

function getResume() {
    const ids = [];
    const add = (cid) => {
        if (!ids.includes(cid) && S.convs.has(cid)) ids.push(cid);
    };
    if (S.active) add(S.active);
    for (const c of S.convs.values()) if (isMine(c) && c.status !== 'closed') add(c.id);
    for (const [cid, e] of S.msgs) if (e.loaded) add(cid);
    return ids.slice(0, 100).map((cid) => {
        const c = S.convs.get(cid);
        const r = { conversation_id: cid, after_seq: maxSeq(cid) };
        if (c.epoch) r.epoch = c.epoch;
        return r;
    });
}

/** The conversation on screen may not be followed by this connection (queued, another
 *  agent's): poll it with a resume frame, which replays only what is new. */
let pollBusy = false;
async function pollActive() {
    const cid = S.active;
    if (!cid || !conn || !conn.online || pollBusy) return;
    const c = S.convs.get(cid);
    const e = S.msgs.get(cid);
    if (!c || !e || !e.loaded || (isMine(c) && c.status !== 'queued')) return;
    pollBusy = true;
    try {
        await request({ type: 'resume', conversations: [{ conversation_id: cid, after_seq: maxSeq(cid), ...(c.epoch ? { epoch: c.epoch } : {}) }] });
    } catch {
        /* next time */
    } finally {
        pollBusy = false;
    }
}

function visible(cid) {
    return S.active === cid && !document.hidden && ['mine', 'queue', 'all', 'pending', 'resolved', 'tickets'].includes(S.view);
}

const readSent = new Map();
let readTimer = null;
export function markRead(cid) {
    if (!cid) return;
    if (S.unread.get(cid)) {
        S.unread.set(cid, 0);
        changed();
    }
    clearTimeout(readTimer);
    readTimer = setTimeout(() => {
        if (!visible(cid)) return;
        const e = S.msgs.get(cid);
        if (!e || !e.list.length) return;
        // the highest seq not written by this agent
        let seq = 0;
        for (let i = e.list.length - 1; i >= 0; i--) {
            const m = e.list[i];
            if (!(m.author && m.author.kind === 'agent' && S.me && m.author.id === S.me.id)) {
                seq = m.seq;
                break;
            }
        }
        seq = Math.max(seq, e.list[e.list.length - 1].seq);
        if (seq > (readSent.get(cid) || 0) && conn && conn.online) {
            readSent.set(cid, seq);
            conn.send({ type: 'read', conversation_id: cid, seq });
        }
    }, 250);
}

// ---------------------------------------------------------------------------
// the outbox: send, retry, never lose

function saveOutbox() {
    try {
        sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(S.outbox.map(({ cid, cmid, body, private: p, state, error, ts, files }) => ({ cid, cmid, body, private: p, state, error, ts, files }))));
    } catch {
        /* storage full: memory still holds it */
    }
}

/** files: the uploads ({id,name,type,size}) the message carries (docs/attachments.md). */
export function sendMessage(cid, body, isPrivate, files = []) {
    const item = { cid, cmid: randomId('d-'), body, private: !!isPrivate, state: 'sending', error: null, ts: Date.now() };
    if (files.length) item.files = files;
    S.outbox = [...S.outbox, item];
    saveOutbox();
    changed();
    trySend(item);
    return item;
}

const RETRYABLE = new Set(['disconnected', 'timeout', 'unavailable', 'rate_limited', 'internal', 'stopped']);

async function trySend(item) {
    if (item.inflight || !S.outbox.includes(item)) return;
    if (!conn || !conn.online) return; // sent after the next welcome
    item.inflight = true;
    try {
        const r = await request({
            type: 'message.send',
            conversation_id: item.cid,
            client_msg_id: item.cmid,
            body: item.body,
            ...(item.private ? { private: true } : {}),
            ...(item.files ? { attachments: item.files.map((f) => f.id) } : {}),
        });
        item.inflight = false;
        if (r.message) {
            insertMessages(item.cid, [r.message]);
            bumpSeq(item.cid, [r.message]);
        }
        removeOutbox(item);
    } catch (e) {
        item.inflight = false;
        if (RETRYABLE.has(e.code)) {
            if (e.code === 'rate_limited' || e.code === 'unavailable' || e.code === 'internal') setTimeout(() => trySend(item), 2000);
            // disconnected / timeout: the next welcome sends it again, same client_msg_id
            if (e.code === 'timeout' && conn && conn.online) setTimeout(() => trySend(item), 1000);
        } else {
            item.state = 'failed';
            item.error = e.code;
            item.errorText = errorText(e);
            saveOutbox();
        }
        changed();
    }
}

function removeOutbox(item) {
    S.outbox = S.outbox.filter((x) => x !== item);
    saveOutbox();
    changed();
}

export function retryOutbox(item) {
    item.state = 'sending';
    item.error = null;
    saveOutbox();
    changed();
    trySend(item);
}

export function discardOutbox(item) {
    removeOutbox(item);
}

function flushOutbox() {
    for (const item of S.outbox) if (item.state === 'sending') trySend(item);
}

// ---------------------------------------------------------------------------
// requests

export function request(obj, opts) {
    if (!conn) return Promise.reject(new ConnError('disconnected'));
    return conn.request(obj, opts);
}

export async function setPresence(status) {
    const prev = S.presence;
    S.presence = status;
    changed();
    try {
        await request({ type: 'presence.set', status });
    } catch (e) {
        S.presence = prev;
        toast(errorText(e), 'error');
        changed();
    }
}

export async function accept(cid) {
    try {
        const r = await request({ type: 'conversation.accept', conversation_id: cid });
        if (r.conversation) upsertConv(r.conversation);
        if (S.view === 'queue') S.view = 'mine';
        openConv(cid);
        return true;
    } catch (e) {
        toast(e.code === 'conflict' ? t('conv.takenByOther') : errorText(e), 'error');
        return false;
    }
}

export async function transfer(cid, { agent_id, team, note }) {
    const f = { type: 'conversation.transfer', conversation_id: cid };
    if (agent_id) f.agent_id = agent_id;
    else f.team = team;
    if (note && note.trim()) f.note = note.trim();
    const r = await request(f);
    if (r.conversation) upsertConv(r.conversation);
    toast(t('transfer.done'), 'ok');
    changed();
    return r;
}

/** Take the conversation over from its assignee (a transfer to oneself; the server notes it
 *  in the conversation and audits it). Needed before replying when the site lets only the
 *  assignee reply. */
export async function takeOver(cid) {
    if (!S.me) return;
    try {
        const r = await request({ type: 'conversation.transfer', conversation_id: cid, agent_id: S.me.id });
        if (r.conversation) upsertConv(r.conversation);
        toast(t('conv.takenOver'), 'ok');
        changed();
    } catch (e) {
        toast(errorText(e), 'error');
        throw e;
    }
}

export async function updateConv(cid, fields) {
    try {
        const r = await request({ type: 'conversation.update', conversation_id: cid, ...fields });
        if (r.conversation) upsertConv(r.conversation);
        changed();
        return r.conversation;
    } catch (e) {
        toast(errorText(e), 'error');
        throw e;
    }
}

let typingState = new Map(); // cid -> {on, sentAt, timer}
export function typing(cid, on) {
    let st = typingState.get(cid);
    if (!st) typingState.set(cid, (st = { on: false, sentAt: 0, timer: null }));
    clearTimeout(st.timer);
    if (on) {
        const now = Date.now();
        if (!st.on || now - st.sentAt > 2500) {
            if (conn && conn.send({ type: 'typing', conversation_id: cid, state: true })) {
                st.on = true;
                st.sentAt = now;
            }
        }
        st.timer = setTimeout(() => typing(cid, false), 3000);
    } else if (st.on) {
        st.on = false;
        conn && conn.send({ type: 'typing', conversation_id: cid, state: false });
    }
}

// ---------------------------------------------------------------------------
// collision detection (the viewing frame, docs/protocol.md): the server is told which
// conversation this tab has open (only while the tab is visible) and whether the agent
// writes a reply or a note, again every refresh_ms; the others' viewers come back in the
// ok and in viewers events. A hidden tab or no open conversation sends nothing.
let viewingCid = null; // the conversation the server was last told we view
let viewingWriting = null; // 'reply' | 'note' | null, as last sent
let viewingTimer = null;
let viewingRefresh = 10_000;
let writingIdle = null;

function sendViewing(cid, state, writing) {
    if (!conn || S.conn !== 'online') return;
    request({ type: 'viewing', conversation_id: cid, state, typing: state ? writing : null })
        .then((r) => {
            if (r.refresh_ms > 0) viewingRefresh = r.refresh_ms;
            if (state && viewingCid === cid && Array.isArray(r.viewers)) {
                S.viewers.set(cid, r.viewers);
                changed();
            }
        })
        .catch(() => {});
}

function syncViewing() {
    const want = S.active && !document.hidden && S.conn === 'online' ? S.active : null;
    clearTimeout(viewingTimer);
    if (viewingCid && viewingCid !== want) {
        sendViewing(viewingCid, false, null);
        S.viewers.delete(viewingCid);
        viewingWriting = null;
    }
    viewingCid = want;
    if (!want) return;
    sendViewing(want, true, viewingWriting);
    viewingTimer = setTimeout(syncViewing, viewingRefresh);
}

/** The composer of conversation cid: the agent writes a reply or a note (kind), or stopped (null). */
export function setWriting(cid, kind) {
    clearTimeout(writingIdle);
    if (kind) writingIdle = setTimeout(() => setWriting(cid, null), 5000);
    if (cid !== viewingCid || kind === viewingWriting) return;
    viewingWriting = kind;
    syncViewing();
}

/** The other agents viewing conversation cid. */
export function otherViewers(cid) {
    return (S.viewers.get(cid) || []).filter((v) => !S.me || v.id !== S.me.id);
}

function expireTyping() {
    const now = Date.now();
    let ch = false;
    for (const [cid, x] of S.typing) {
        if (x.until < now) {
            S.typing.delete(cid);
            ch = true;
        }
    }
    if (ch) changed();
}

// ---------------------------------------------------------------------------
// customer panel and canned replies (HTTP)

export async function loadVisitor(vid, force = false) {
    const cur = S.visitors.get(vid);
    if (cur && !force && !cur.stale && (cur.state === 'loading' || cur.state === 'missing' || Date.now() - cur.at < 30_000)) return;
    S.visitors.set(vid, { ...(cur || {}), state: cur && cur.data ? cur.state : 'loading', at: Date.now(), stale: false });
    changed();
    try {
        const r = await http.get(`/api/v1/visitors/${http.enc(vid)}`);
        S.visitors.set(vid, { state: 'ok', data: r, at: Date.now() });
        for (const c of r.conversations || []) if (S.convs.has(c.id)) upsertConv(c);
    } catch (e) {
        S.visitors.set(vid, { state: http.isRouteMissing(e, true) ? 'missing' : 'error', error: e, at: Date.now() });
    }
    changed();
}

export async function loadCanned(site, force = false) {
    if (!site) return;
    const cur = S.canned.get(site);
    if (cur && cur.inflight) {
        if (force) cur.again = true; // the answer on its way may predate a change: ask again
        return;
    }
    if (cur && !force && (cur.state === 'missing' || Date.now() - cur.at < 60_000)) return;
    S.canned.set(site, { ...(cur || { list: [] }), state: cur && cur.state === 'ok' ? 'ok' : 'loading', inflight: true, at: Date.now() });
    changed();
    try {
        const r = await http.get(`/api/v1/canned${http.qs({ site })}`);
        const again = S.canned.get(site) && S.canned.get(site).again;
        S.canned.set(site, { state: 'ok', list: r.canned || [], at: Date.now() });
        if (again) loadCanned(site, true);
    } catch (e) {
        S.canned.set(site, { state: http.isRouteMissing(e) ? 'missing' : 'error', list: [], error: e, at: Date.now() });
    }
    changed();
}

/** Agents known to this session (supervisor API, presence events). */
export async function loadAgents(site) {
    try {
        const r = await http.get(`/api/v1/supervisor${http.qs({ site })}`);
        for (const a of r.agents || []) {
            const old = S.agents.get(a.id) || {};
            S.agents.set(a.id, { ...old, ...a, _sites: [...new Set([...(old._sites || []), site])] });
        }
        for (const q of r.queues || []) if (q.team) S.teams.add(`${site}|${q.team}`);
        for (const a of r.agents || []) for (const tm of a.teams || []) S.teams.add(`${site}|${tm}`);
        changed();
        return r;
    } catch (e) {
        return null;
    }
}

// ---------------------------------------------------------------------------
// server frames

function onWelcome(f) {
    if (f.agent) {
        S.me = f.agent;
        sessionStorage.setItem(AGENT_KEY, JSON.stringify(f.agent));
        S.presence = f.agent.status || S.presence;
        for (const tm of f.agent.teams || []) for (const s of f.agent.sites || []) S.teams.add(`${s}|${tm}`);
    }
    const queued = new Set();
    for (const c of f.queue || []) {
        upsertConv(c);
        queued.add(c.id);
    }
    const mine = new Set();
    for (const c of f.conversations || []) {
        upsertConv(c);
        mine.add(c.id);
    }
    // what we believed is waiting (or ours) but the server no longer lists changed while
    // we were away and the event was missed: drop it (the conversation on screen stays,
    // and the next event about it brings it up to date)
    for (const c of [...S.convs.values()]) {
        const goneFromQueue = c.status === 'queued' && !queued.has(c.id) && !mine.has(c.id);
        const goneFromMine = isMine(c) && !mine.has(c.id) && c.status !== 'closed';
        if ((goneFromQueue || goneFromMine) && c.id !== S.active) S.convs.delete(c.id);
    }
    for (const [cid, e] of S.msgs) {
        if (e.retryOnWelcome) {
            e.retryOnWelcome = false;
            S.msgs.delete(cid);
            if (S.active === cid) ensureHistory(cid);
        }
    }
    if (S.active && !S.msgs.has(S.active)) ensureHistory(S.active);
    // a new connection views nothing yet: say again what this tab has open
    viewingCid = null;
    S.viewers.clear();
    syncViewing();
    flushOutbox();
    // welcome.agent.status is the status from before this connection (offline on a fresh
    // sign-in); the node switches the agent to its chosen status a moment later: read it
    setTimeout(refreshMe, 1500);
    if (['all', 'pending', 'resolved'].includes(S.view)) fetchServerList(S.view);
    if (S.me) for (const s of S.me.sites || []) loadAgents(s);
    loadMentions();
    changed();
}

async function refreshMe() {
    if (!S.token) return;
    try {
        const r = await http.get('/api/v1/me');
        if (r && r.agent) {
            S.me = { ...S.me, ...r.agent };
            if (r.agent.status) S.presence = r.agent.status;
            changed();
        }
    } catch {
        /* not available: presence.updated events keep it right */
    }
}

const notifiedAt = new Map();
function notifyOnce(key, title, body, cid) {
    const now = Date.now();
    if (now - (notifiedAt.get(key) || 0) < 4000) return;
    notifiedAt.set(key, now);
    if (S.prefs.sound) playSound(key.startsWith('new') ? 'new' : 'message');
    if (S.prefs.notify && (document.hidden || S.active !== cid)) notifyDesktop(title, body, () => {
        window.focus();
        if (cid) {
            if (!LIST_VIEWS.includes(S.view) && S.view !== 'tickets') setView('mine');
            openConv(cid);
        }
    });
}

function visitorName(c) {
    return (c && c.visitor && c.visitor.name) || t('conv.visitor');
}

// ---------------------------------------------------------------------------
// mentions (docs/dashboard.md "Mentions"): notices of kind mention stay in the Mentions
// view until read (GET /api/v1/mentions, POST /api/v1/mentions/read)

export async function loadMentions() {
    try {
        const r = await http.get('/api/v1/mentions');
        S.mentions = r.mentions || [];
        changed();
    } catch {
        /* older server: the live notices only */
    }
}

const sameNotice = (a, b) => a.id === b.id && a.site === b.site;

/** Mark one mention read (or every one of its site with all). */
export async function readMention(n, all = false) {
    const body = all ? { site: n.site, all: true } : { site: n.site, ids: [n.id] };
    try {
        await http.post('/api/v1/mentions/read', body);
        S.mentions = S.mentions.filter((m) => (all ? m.site !== n.site : !sameNotice(m, n)));
        changed();
    } catch (e) {
        toast(errorText(e), 'error');
    }
}

/** A customer_health notice's title is the server's English sentence (health_apply.lua):
 *  shown in the dashboard's language when it has the known shape. */
export function noticeText(n) {
    if (n.kind === 'sla') {
        // sla_fire.lua: "SLA breached: ticket #<n> (<kind>)"
        const m = /^SLA breached: ticket #(\d+) \((\w+)\)$/.exec(n.title || '');
        return m ? t('sla.breachToast', { n: m[1], kind: t(`sla.kind.${m[2]}`) }) : n.title;
    }
    if (n.kind === 'mention') {
        // mention in _common.lua: "<author> mentioned you"
        const m = /^(.*) mentioned you$/.exec(n.title || '');
        return m ? t('mention.notice', { name: m[1] }) : n.title;
    }
    if (n.kind !== 'customer_health') return n.title;
    const m = /^Repeat contact: (.+) opened (\d+) "(.*)" conversations in (\d+) days$/.exec(n.title || '');
    const text = m ? t('alerts.health', { customer: m[1], n: m[2], category: m[3], days: m[4] }) : n.title;
    return t('notices.health', { title: text });
}

function onFrame(f) {
    switch (f.type) {
        case 'conversation.queued': {
            const c = upsertConv(f.conversation);
            if (c && c.status === 'queued') notifyOnce(`new:${c.id}`, t('notify.newChat'), `${visitorName(c)}${c.subject ? ` — ${c.subject}` : ''}`, c.id);
            break;
        }
        case 'conversation.assigned': {
            const c = upsertConv(f.conversation);
            if (c && isMine(c)) notifyOnce(`new:a:${c.id}`, t('notify.assigned'), `${visitorName(c)}${c.subject ? ` — ${c.subject}` : ''}`, c.id);
            break;
        }
        case 'conversation.updated':
        case 'ticket.created':
            upsertConv(f.conversation);
            break;
        case 'queue.updated': {
            const key = `${f.site}|${f.team ?? ''}`;
            S.queueTeams.set(key, { site: f.site, team: f.team ?? null, size: f.size, oldest: f.oldest_created_at });
            if (f.team) S.teams.add(`${f.site}|${f.team}`);
            if (f.size === 0) {
                // the team's queue is empty: anything we still show as waiting there was taken
                for (const c of [...S.convs.values()])
                    if (c.status === 'queued' && c.site === f.site && (c.team || null) === (f.team ?? null) && c.id !== S.active) S.convs.delete(c.id);
            }
            break;
        }
        case 'presence.updated': {
            const a = S.agents.get(f.agent_id) || { id: f.agent_id };
            S.agents.set(f.agent_id, { ...a, status: f.status });
            if (S.me && f.agent_id === S.me.id) S.presence = f.status;
            break;
        }
        case 'message.created': {
            const cid = f.conversation_id;
            const m = f.message;
            if (!cid || !m) break;
            const e = insertMessages(cid, [m]);
            bumpSeq(cid, e.list.length ? [e.list[e.list.length - 1]] : []);
            // our own message echoed (other tab, or before the ok): drop its outbox copy
            if (m.client_msg_id && m.author && S.me && m.author.id === S.me.id) {
                const item = S.outbox.find((x) => x.cmid === m.client_msg_id && x.cid === cid);
                if (item) removeOutbox(item);
            }
            const fromOther = m.author && !(m.author.kind === 'agent' && S.me && m.author.id === S.me.id) && m.author.kind !== 'system';
            if (S.typing.has(cid) && m.author && m.author.kind === 'visitor') S.typing.delete(cid);
            if (fromOther) {
                if (visible(cid)) markRead(cid);
                else S.unread.set(cid, (S.unread.get(cid) || 0) + 1);
                const c = S.convs.get(cid);
                if (m.author.kind === 'visitor' && (!c || isMine(c) || S.active === cid)) {
                    if (!visible(cid)) notifyOnce(`msg:${cid}`, t('notify.message', { name: m.author.name || visitorName(c) }), String(m.body).slice(0, 140), cid);
                }
            }
            break;
        }
        case 'typing': {
            if (f.author && S.me && f.author.kind === 'agent' && f.author.id === S.me.id) break;
            if (f.state) S.typing.set(f.conversation_id, { name: f.author && f.author.name, kind: f.author && f.author.kind, until: Date.now() + 6000 });
            else S.typing.delete(f.conversation_id);
            break;
        }
        case 'viewers': {
            if (f.conversation_id === viewingCid && Array.isArray(f.viewers)) S.viewers.set(f.conversation_id, f.viewers);
            break;
        }
        case 'read': {
            if (f.author && f.author.kind === 'visitor') {
                S.visitorRead.set(f.conversation_id, Math.max(S.visitorRead.get(f.conversation_id) || 0, f.seq));
            } else if (f.author && S.me && f.author.id === S.me.id) {
                S.unread.set(f.conversation_id, 0);
            }
            break;
        }
        case 'resumed': {
            const c = S.convs.get(f.conversation_id);
            if (c) S.convs.set(c.id, { ...c, last_seq: Math.max(c.last_seq || 0, f.last_seq || 0), epoch: f.epoch || c.epoch });
            if (f.recovered === false) {
                if (c) S.convs.set(c.id, { ...S.convs.get(c.id), last_seq: f.last_seq, epoch: f.epoch || c.epoch });
                resetMessages(f.conversation_id);
            }
            break;
        }
        case 'sla.warning':
        case 'sla.breached': {
            const c = S.convs.get(f.conversation_id);
            if (c && c.ticket && c.ticket.sla && f.type === 'sla.breached') {
                const breached = [...new Set([...(c.ticket.sla.breached || []), f.kind])];
                S.convs.set(c.id, { ...c, ticket: { ...c.ticket, sla: { ...c.ticket.sla, breached } } });
            }
            slaListeners.forEach((fn) => fn(f));
            const key = f.type === 'sla.warning' ? 'sla.warnToast' : 'sla.breachToast';
            toast(t(key, { n: f.ticket, kind: t(`sla.kind.${f.kind}`) }), f.type === 'sla.warning' ? 'warn' : 'error', 8000);
            break;
        }
        // ---- notices (customer health alerts, rules): the header's bell (ui/Notices.jsx) ----
        case 'notice': {
            if (!f.notice) break;
            S.notices = [f.notice, ...(S.notices || []).filter((n) => n.id !== f.notice.id)].slice(0, 100);
            S.noticesUnseen = (S.noticesUnseen || 0) + 1;
            if (f.notice.kind === 'mention') {
                S.mentions = [f.notice, ...S.mentions.filter((m) => !sameNotice(m, f.notice))].slice(0, 100);
                notifyOnce(`mention:${f.notice.site}:${f.notice.id}`, noticeText(f.notice), String(f.notice.body || '').slice(0, 140), f.notice.conversation_id);
            }
            // a breach was already toasted by its sla.breached event; the notice keeps it in the list
            if (f.notice.kind !== 'sla') toast(noticeText(f.notice), 'warn', 8000);
            break;
        }
        case 'error':
            // an error for one resume entry (no longer visible to us)
            if (f.conversation_id && (f.code === 'forbidden' || f.code === 'not_found')) {
                S.convs.delete(f.conversation_id);
                S.msgs.delete(f.conversation_id);
                if (S.active === f.conversation_id) S.active = null;
            }
            break;
        default:
            break;
    }
    // any event may change what the ticket list or supervisor view show
    eventListeners.forEach((fn) => fn(f));
    changed();
}

const slaListeners = new Set();
const eventListeners = new Set();
export function onEvent(fn) {
    eventListeners.add(fn);
    return () => eventListeners.delete(fn);
}

export { getLang };
