// The widget: state (conversation, messages, outbox) kept in localStorage, the
// protocol over Conn, and the view inside a shadow root.
//
// Delivery rules (docs/widget.md, "Never lose, never double"):
// - a message is shown at once as pending and written to the outbox before anything is
//   sent; it leaves the outbox only when the server acknowledged it (its `ok`, or its own
//   `message.created` echo); after a reconnect it is sent again with the same
//   client_msg_id, one at a time and in order;
// - incoming messages are deduplicated by id, by client_msg_id for our own, and by seq
//   within an epoch; a new epoch or `resumed` with recovered:false reloads via history.

import { h, append, clear, linkify, clipBytes, byteLength } from './dom.js';
import { pickLocale, translator } from './i18n.js';
import { Store } from './storage.js';
import { Conn } from './conn.js';
import { CSS } from './styles.js';
import { TitleFlash, beep, unlockAudio } from './notify.js';
import { KbHelp } from './kb.js';
import { Tray, attachmentsEl } from './attach.js';

const MAX_BODY = 8192;
const MAX_FIELD = 1024;
const MAX_ID = 64;
const MAX_PAGE_FIELD = 2048;
const KEEP_MSGS = 200;
const PAGE = 50;
// while the pre-chat form is open, how often the widget asks whether an agent is online
const AVAILABILITY_EVERY_MS = 10000;
const PRIORITIES = ['low', 'normal', 'high', 'urgent'];
const CATEGORIES = ['general', 'billing', 'technical', 'account', 'other'];
const FIELDS = ['name', 'email', 'category', 'priority', 'subject', 'message'];
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const RETRY_MS = 1500;

const NS = 'http://www.w3.org/2000/svg';
const ICONS = {
    chat: 'M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM6 9h12v2H6zm8 5H6v-2h8zm4-6H6V6h12z',
    close: 'M19 6.41 17.59 5 12 10.59 6.41 5 5 6.41 10.59 12 5 17.59 6.41 19 12 13.41 17.59 19 19 17.59 13.41 12z',
    send: 'M2.01 21 23 12 2.01 3 2 10l15 2-15 2z',
    clip: 'M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6z',
};
function icon(name) {
    const s = document.createElementNS(NS, 'svg');
    s.setAttribute('viewBox', '0 0 24 24');
    s.setAttribute('aria-hidden', 'true');
    s.setAttribute('focusable', 'false');
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', ICONS[name]);
    s.appendChild(p);
    return s;
}

/** Files dropped on el go to tray (while on() says so). */
function dropFiles(el, tray, on = () => true) {
    el.addEventListener('dragover', (e) => {
        if (on() && e.dataTransfer && [...e.dataTransfer.types].includes('Files')) e.preventDefault();
    });
    el.addEventListener('drop', (e) => {
        if (!on() || !e.dataTransfer || !e.dataTransfer.files.length) return;
        e.preventDefault();
        tray.add([...e.dataTransfer.files]);
    });
}

function newId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    let s = 'w';
    for (const x of b) s += x.toString(16).padStart(2, '0');
    return s;
}

const isInt = (n) => typeof n === 'number' && Number.isInteger(n);
const str = (v, max) => (typeof v === 'string' ? clipBytes(v, max) : v == null ? '' : clipBytes(String(v), max));

/** Text colour readable on the given background (#rgb / #rrggbb); white otherwise. */
function onColor(c) {
    const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(c);
    if (!m) return '#fff';
    let x = m[1];
    if (x.length === 3) x = x.replace(/./g, '$&$&');
    const [r, g, b] = [0, 2, 4].map((i) => parseInt(x.slice(i, i + 2), 16) / 255);
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.6 ? '#111827' : '#fff';
}

/** The most recently active conversation that is not closed. */
function latestLive(convs) {
    const at = (c) => c.updated_at || c.created_at || 0;
    return convs.filter((c) => c.status !== 'closed').sort((a, b) => at(b) - at(a))[0] || null;
}

export class Widget {
    constructor({ site, wsUrl, base, cfg }) {
        this.site = site;
        this.base = base;
        this.cfg = cfg;
        this.store = new Store(site);
        this.handlers = { message: [], open: [], close: [], ready: [], unread: [] };
        this.explicitLocale = null;
        this.locale = pickLocale(cfg.locale);
        this.t = translator(this.locale);
        this.user = null;
        this.attrs = {};
        this.siteCfg = {};
        // the site's colour from the last welcome: a reload paints it before connecting
        this.siteColor = this.store.get('color');
        this.token = this.store.get('token');
        this.uid = this.store.get('uid') || '';
        this.entries = new Map();
        this.restore();
        this.isOpen = this.store.get('open') === true;
        this.agentsOnline = null;
        this.visitor = null;
        this.queue = null;
        this.typingAgent = null;
        this.connState = '';
        this.everOnline = false;
        this.welcomeIds = [];
        this.sending = null;
        this.startBusy = false;
        this.needsLoad = false;
        this.loadingOlder = false;
        this.lastUnread = -1;
        this.flash = new TitleFlash();
        this.conn = new Conn({
            url: wsUrl,
            hello: () => this.hello(),
            onWelcome: (w) => this.onWelcome(w),
            onFrame: (f) => this.onFrame(f),
            onState: (s) => this.onConnState(s),
            onUnauthorized: () => this.onUnauthorized(),
            urgent: () => this.outbox.length > 0 || !!this.pendingStart,
        });
        this.ui = null;
        this.dirty = false;
    }

    // ------------------------------------------------------------------ storage
    restore() {
        const cs = this.store.get('conv');
        this.conv = cs && cs.c && cs.c.id ? cs.c : null;
        this.meta = this.freshMeta(cs && cs.m);
        this.entries.clear();
        if (this.conv) for (const e of this.store.get('msgs', [])) if (e && e.key) this.entries.set(e.key, e);
        this.outbox = this.store.get('outbox', []);
        this.pendingStart = this.store.get('start');
        this.syncPending();
    }

    freshMeta(m) {
        return { readSent: 0, agentRead: 0, seen: 0, hasOlder: false, step: '', stepFor: '', ...(m || {}) };
    }

    /** Pending entries mirror the outbox (and the pending conversation.start). */
    syncPending() {
        const cid = this.conv ? this.conv.id : null;
        for (const [k, e] of this.entries) if (e.state === 'pending') this.entries.delete(k);
        if (this.pendingStart) {
            const f = this.pendingStart.form;
            const files = this.pendingStart.files;
            this.entries.set('start', { key: 'start', own: true, body: f.message, ts: this.pendingStart.ts, state: 'pending', author: { kind: 'visitor' }, attachments: files && files.length ? files : null });
        }
        for (const o of this.outbox) {
            if (o.conversation_id && o.conversation_id !== cid) continue;
            const key = 'c:' + o.client_msg_id;
            if (!this.entries.has(key)) this.entries.set(key, { key, own: true, cmid: o.client_msg_id, body: o.body, ts: o.ts, state: 'pending', author: { kind: 'visitor' } });
        }
    }

    saveConv() {
        const v = JSON.stringify(this.conv ? { c: this.conv, m: this.meta } : null);
        if (v !== this.savedConv) this.store.setRaw('conv', (this.savedConv = v));
    }

    saveMsgs() {
        if (!this.conv) {
            if (this.savedMsgs !== null) this.store.setRaw('msgs', (this.savedMsgs = null));
            return;
        }
        let list = this.sorted().filter((e) => e.state !== 'pending');
        if (list.length > KEEP_MSGS) {
            list = list.slice(-KEEP_MSGS);
            this.meta.hasOlder = true;
        }
        const v = JSON.stringify(list);
        if (v !== this.savedMsgs) this.store.setRaw('msgs', (this.savedMsgs = v));
    }

    /** The outbox is shared by the site's tabs: read-modify-write on every change. */
    editOutbox(fn) {
        const cur = this.store.get('outbox', []);
        this.outbox = fn(Array.isArray(cur) ? cur : []);
        this.store.set('outbox', this.outbox.length ? this.outbox : null);
    }

    // ------------------------------------------------------------------ public commands
    command(cmd, args) {
        switch (cmd) {
            case 'setUser':
                return this.setUser(args[0]);
            case 'setAttributes':
                return this.setAttributes(args[0]);
            case 'open':
                return this.open(true);
            case 'close':
                return this.close();
            case 'toggle':
                return this.isOpen ? this.close() : this.open(true);
            case 'setLocale':
                return this.setLocale(args[0]);
            case 'on':
                if (this.handlers[args[0]] && typeof args[1] === 'function') this.handlers[args[0]].push(args[1]);
                return;
            case 'off':
                if (this.handlers[args[0]]) this.handlers[args[0]] = this.handlers[args[0]].filter((f) => f !== args[1]);
                return;
            case 'reset':
                return this.reset();
            default:
                console.warn('chatdesk: unknown command', cmd);
        }
    }

    emit(name, data) {
        for (const fn of this.handlers[name] || []) {
            try {
                fn(data);
            } catch (e) {
                console.error(e);
            }
        }
    }

    setUser(u) {
        if (!u || typeof u !== 'object') u = null;
        const user = u && u.id != null && u.id !== '' ? { id: str(u.id, MAX_ID) } : u ? {} : null;
        if (user) {
            if (u.name) user.name = str(u.name, MAX_FIELD);
            if (u.email) user.email = str(u.email, MAX_FIELD);
            if (u.hash) user.hash = str(u.hash, 128);
            if (!user.id && !user.name && !user.email) this.user = null;
        }
        const prev = JSON.stringify(this.user);
        this.user = user && Object.keys(user).length ? user : null;
        if (this.checkIdentity() || prev !== JSON.stringify(this.user)) this.conn.restart();
        this.queueRender();
    }

    /** A token belongs to the user it was issued for: another user (or none) starts over. */
    checkIdentity() {
        const uid = (this.user && this.user.id) || '';
        if (this.token && uid !== this.uid) {
            this.dropVisitor();
            return true;
        }
        return false;
    }

    setAttributes(a) {
        if (!a || typeof a !== 'object') return;
        const next = { ...this.attrs };
        for (const k of Object.keys(a)) {
            const key = clipBytes(k, 64);
            if (!key) continue;
            const v = a[k];
            if (v === null || typeof v === 'boolean' || (typeof v === 'number' && isFinite(v))) next[key] = v;
            else if (v === undefined) delete next[key];
            else next[key] = str(v, 256);
        }
        const keys = Object.keys(next).slice(0, 20);
        const out = {};
        for (const k of keys) out[k] = next[k];
        if (JSON.stringify(out) === JSON.stringify(this.attrs)) return;
        this.attrs = out;
        // attributes travel in hello: say hello again on a live connection
        if (this.conn.isOnline) {
            clearTimeout(this.attrTimer);
            this.attrTimer = setTimeout(() => this.conn.restart(), 300);
        }
    }

    setLocale(l) {
        this.explicitLocale = l || null;
        const loc = pickLocale(l || this.cfg.locale);
        if (loc === this.locale && this.ui) return;
        this.locale = loc;
        this.t = translator(loc);
        if (this.ui) this.build();
    }

    /** Forgets the visitor on this browser (e.g. when the host site's user logs out). */
    reset() {
        this.dropVisitor();
        this.user = null;
        this.conn.restart();
        this.queueRender();
    }

    dropVisitor() {
        const keepOpen = this.isOpen;
        this.store.clearAll();
        this.savedConv = this.savedMsgs = undefined;
        this.token = null;
        this.uid = '';
        this.conv = null;
        this.meta = this.freshMeta();
        this.entries.clear();
        this.outbox = [];
        this.pendingStart = null;
        this.queue = null;
        if (keepOpen) this.store.set('open', true);
        this.formKey = '';
        this.formEls = null; // another visitor: nothing typed or prefilled carries over
        this.formValues = null;
        this.draftForForm = '';
        if (this.ui) {
            this.ui.input.value = '';
            this.ui.formTray.drop(); // the previous visitor's uploads: its orphan timer removes them
        }
    }

    // ------------------------------------------------------------------ lifecycle
    boot() {
        this.checkIdentity();
        const mount = () => {
            this.mount();
            if ((this.conv && this.conv.status !== 'closed') || this.outbox.length || this.pendingStart || this.isOpen) this.conn.start();
        };
        if (document.body) mount();
        else document.addEventListener('DOMContentLoaded', mount, { once: true });
        document.addEventListener('visibilitychange', () => {
            this.maybeRead();
            this.renderBadge();
        });
    }

    /** The accent colour: the site's setting (Admin → Sites), else the page's data-color, else the default. */
    applyColor() {
        const host = this.host;
        if (!host) return;
        const ok = (c) => typeof c === 'string' && c && window.CSS && window.CSS.supports && window.CSS.supports('color', c);
        const color = [this.siteCfg.color, this.siteColor, this.cfg.color].find(ok);
        if (color) {
            host.style.setProperty('--cd-color', color);
            host.style.setProperty('--cd-on', onColor(color));
        } else {
            host.style.removeProperty('--cd-color');
            host.style.removeProperty('--cd-on');
        }
    }

    mount() {
        const host = h('div', { id: 'chatdesk-widget', 'data-chatdesk': '' });
        this.host = host;
        if (this.cfg.position === 'left') host.setAttribute('data-pos', 'left');
        this.applyColor();
        this.root = host.attachShadow({ mode: 'open' });
        if (window.CSSStyleSheet && 'replaceSync' in CSSStyleSheet.prototype && 'adoptedStyleSheets' in this.root) {
            const sheet = new CSSStyleSheet();
            sheet.replaceSync(CSS);
            this.root.adoptedStyleSheets = [sheet];
        } else {
            this.root.appendChild(h('style', { text: CSS }));
        }
        host.addEventListener('pointerdown', unlockAudio);
        host.addEventListener('keydown', unlockAudio);
        document.body.appendChild(host);
        this.build();
        if (this.isOpen) this.open(false);
    }

    // ------------------------------------------------------------------ view skeleton
    build() {
        const t = this.t;
        const root = this.root;
        const focusWasIn = !!root.activeElement;
        if (this.ui) this.ui.wrap.remove();
        const ui = {};
        this.ui = ui;
        this.els = new Map();
        this.formKey = '';
        ui.badge = h('span', { class: 'badge', hidden: true, 'aria-hidden': 'true' });
        ui.launcher = h(
            'button',
            { type: 'button', class: 'launcher', 'aria-controls': 'cd-panel', 'aria-expanded': 'false', 'aria-label': t('openChat'), onclick: () => (this.isOpen ? this.close() : this.open(true)) },
            icon('chat'),
            ui.badge,
        );
        ui.title = h('h2', { id: 'cd-title', text: this.siteCfg.title || this.cfg.title || t('title') });
        ui.dot = h('span', { class: 'dot', 'aria-hidden': 'true' });
        ui.subText = h('span');
        ui.sub = h('p', { class: 'sub' }, ui.dot, ui.subText);
        ui.closeBtn = h('button', { type: 'button', class: 'icon', 'aria-label': t('closeChat'), onclick: () => this.close() }, icon('close'));
        ui.conn = h('div', { class: 'conn', role: 'status', hidden: true });
        ui.form = h('div', { class: 'form' });
        ui.kb = new KbHelp({ base: this.base, site: this.site, t, locale: this.locale });
        // conversation view
        ui.info = h('div', { class: 'info', role: 'status' });
        ui.older = h('button', { type: 'button', class: 'older', hidden: true, text: t('loadOlder'), onclick: () => this.loadOlder() });
        ui.list = h('ol', { class: 'list' });
        ui.log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': t('messages'), tabindex: '0' }, ui.older, ui.list);
        ui.log.addEventListener('scroll', () => {
            if (ui.log.scrollTop < 30 && this.meta.hasOlder) this.loadOlder();
        });
        ui.typing = h('div', { class: 'typing', 'aria-live': 'polite' });
        ui.banner = h('div', { class: 'banner', hidden: true });
        ui.input = h('textarea', { rows: '1', placeholder: t('placeholder'), 'aria-label': t('placeholder'), enterkeyhint: 'send' });
        ui.input.value = this.store.get('draft', '') || '';
        ui.input.addEventListener('keydown', (e) => {
            if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
                e.preventDefault();
                this.submitComposer();
            }
        });
        ui.input.addEventListener('input', () => this.onComposerInput());
        ui.input.addEventListener('blur', () => this.stopTyping());
        ui.sendBtn = h('button', { type: 'submit', class: 'send', 'aria-label': t('send') }, icon('send'));
        // attachments: the paperclip, a pasted screenshot, files dropped on the chat
        ui.tray = new Tray({ base: this.base, token: () => this.token, t, onChange: () => this.queueRender() });
        ui.file = h('input', { type: 'file', multiple: true, hidden: true, tabindex: '-1' });
        ui.file.addEventListener('change', () => {
            ui.tray.add([...ui.file.files]);
            ui.file.value = '';
        });
        // the pre-chat form's files: uploaded before the conversation exists (no
        // conversation_id), sent as form.attachments with its first message
        ui.formTray = new Tray({ base: this.base, token: () => this.token, t, onChange: () => this.queueRender() });
        ui.formFile = h('input', { type: 'file', multiple: true, hidden: true, tabindex: '-1', id: 'cd-f-files' });
        ui.formFile.addEventListener('change', () => {
            ui.formTray.add([...ui.formFile.files]);
            ui.formFile.value = '';
        });
        dropFiles(ui.form, ui.formTray, () => this.siteCfg.attachments !== false);
        ui.clip = h('button', { type: 'button', class: 'clip', 'aria-label': t('attach'), title: t('attach'), onclick: () => ui.file.click() }, icon('clip'));
        ui.input.addEventListener('paste', (e) => {
            const files = [...((e.clipboardData && e.clipboardData.files) || [])];
            if (!files.length) return;
            e.preventDefault();
            ui.tray.add(files);
        });
        ui.compose = h('form', { class: 'compose', novalidate: true, onsubmit: (e) => (e.preventDefault(), this.submitComposer()) }, ui.clip, ui.file, ui.input, ui.sendBtn);
        ui.chat = h('div', { class: 'chat', hidden: true }, ui.info, ui.log, ui.typing, ui.banner, ui.tray.el, ui.compose);
        dropFiles(ui.chat, ui.tray);
        ui.panel = h(
            'section',
            { class: 'panel', id: 'cd-panel', role: 'dialog', 'aria-modal': 'false', 'aria-labelledby': 'cd-title', hidden: true },
            h('header', { class: 'head' }, h('div', null, ui.title, ui.sub), ui.closeBtn),
            ui.conn,
            h('div', { class: 'body' }, ui.form, ui.chat),
        );
        ui.panel.addEventListener('keydown', (e) => {
            if (e.key === 'Escape') {
                e.stopPropagation();
                this.close();
            }
        });
        ui.wrap = h('div', { class: 'root', lang: this.locale }, ui.panel, ui.launcher);
        root.appendChild(ui.wrap);
        this.render();
        if (this.isOpen) this.showPanel(focusWasIn);
    }

    // ------------------------------------------------------------------ open / close
    open(focus) {
        unlockAudio();
        const was = this.isOpen;
        this.isOpen = true;
        this.store.set('open', true);
        this.conn.start();
        if (this.ui) this.showPanel(focus);
        if (!was) this.watchAvailability(true);
        this.flash.stop();
        if (!was) this.emit('open', {});
        this.maybeRead();
    }

    showPanel(focus) {
        const ui = this.ui;
        ui.panel.hidden = false;
        this.host.setAttribute('data-open', '');
        ui.launcher.setAttribute('aria-expanded', 'true');
        ui.launcher.setAttribute('aria-label', this.t('closeChat'));
        this.render();
        this.scrollBottom(true);
        if (focus) this.focusView();
    }

    focusView() {
        const ui = this.ui;
        if (!ui.chat.hidden && !ui.compose.hidden) ui.input.focus();
        else if (!ui.chat.hidden) ui.log.focus();
        else {
            const first = ui.form.querySelector('form input,form textarea,form select,form button');
            if (first) first.focus();
        }
    }

    close() {
        const was = this.isOpen;
        this.isOpen = false;
        this.store.set('open', null);
        this.stopTyping();
        if (this.ui) {
            const inside = !!this.root.activeElement;
            this.ui.panel.hidden = true;
            this.host.removeAttribute('data-open');
            this.ui.launcher.setAttribute('aria-expanded', 'false');
            this.ui.launcher.setAttribute('aria-label', this.t('openChat'));
            if (inside) this.ui.launcher.focus();
            this.renderBadge();
        }
        if (was) this.emit('close', {});
    }

    // ------------------------------------------------------------------ protocol
    hello() {
        this.checkIdentity();
        const f = { site: this.site };
        if (this.token) f.token = this.token;
        if (this.user && this.user.id) f.user = this.user; // name/email alone only prefill the form
        if (Object.keys(this.attrs).length) f.attributes = this.attrs;
        const title = this.flash.saved !== null ? this.flash.saved : document.title;
        f.page = { url: str(location.href, MAX_PAGE_FIELD), title: str(title, MAX_PAGE_FIELD), referrer: str(document.referrer, MAX_PAGE_FIELD) };
        if (this.token && this.conv && this.conv.status !== 'closed') {
            const r = { conversation_id: this.conv.id, after_seq: this.meta.seen };
            if (this.conv.epoch) r.epoch = this.conv.epoch;
            f.resume = [r];
        }
        return f;
    }

    onWelcome(w) {
        this.everOnline = true;
        if (typeof w.token === 'string' && w.token) {
            this.token = w.token;
            this.uid = (this.user && this.user.id) || '';
            this.store.set('token', this.token);
            this.store.set('uid', this.uid);
        }
        this.visitor = w.visitor || null;
        if (typeof w.agents_online === 'boolean') this.agentsOnline = w.agents_online;
        if (w.site && typeof w.site === 'object') {
            this.siteCfg = w.site;
            this.siteColor = typeof w.site.color === 'string' ? w.site.color : null;
            this.store.set('color', this.siteColor);
            this.applyColor();
        }
        const convs = Array.isArray(w.conversations) ? w.conversations.filter((c) => c && c.id) : [];
        const known = this.welcomeIds;
        this.welcomeIds = convs.map((c) => c.id);
        if (this.pendingStart) {
            const ps = this.pendingStart;
            // A start that went out without its ok: adopt the conversation it created.
            const made = ps.sent && convs.find((c) => !(ps.known || known).includes(c.id) && c.status !== 'closed');
            if (made) this.adopt(made, null, true);
            else this.trySendStart();
        } else if (this.conv) {
            const c = convs.find((x) => x.id === this.conv.id);
            if (c) this.updateConv({ ...c, epoch: this.conv.epoch });
            // a closed conversation gives way to a live one (e.g. started on another device)
            const live = this.conv.status === 'closed' && latestLive(convs);
            if (live && live.id !== this.conv.id) this.adopt(live, null, true);
            else if (this.needsLoad) this.loadLatest();
        } else {
            const live = latestLive(convs);
            if (live) this.adopt(live, null, true);
        }
        this.flushOutbox();
        this.queueRender();
        this.maybeRead();
        this.emit('ready', { visitor: this.visitor ? { id: this.visitor.id } : null, agents_online: this.agentsOnline });
    }

    onUnauthorized() {
        if (!this.token) return false;
        // The token is no longer valid: start as a new anonymous visitor. Unsent texts
        // go back to the composer so nothing typed is lost.
        const texts = this.outbox.map((o) => o.body);
        if (this.pendingStart) texts.unshift(this.pendingStart.form.message);
        this.dropVisitor();
        if (texts.length) this.store.set('draft', texts.join('\n'));
        if (this.ui) this.ui.input.value = texts.join('\n');
        this.draftForForm = texts.join('\n');
        this.queueRender();
        return true;
    }

    onConnState(s) {
        this.connState = s;
        if (this.host) this.host.setAttribute('data-state', s);
        if (s !== 'online') {
            this.sending = null;
            this.startBusy = false;
        }
        this.queueRender();
    }

    onFrame(f) {
        const cid = f.conversation_id || (f.conversation && f.conversation.id);
        const mine = this.conv && cid === this.conv.id;
        switch (f.type) {
            case 'message.created': {
                const m = f.message;
                if (!m) return;
                if (mine) {
                    if (this.addMessage(m, true)) this.queueRender();
                } else if (m.author && m.author.kind !== 'visitor' && !m.private && !this.pendingStart && (!this.conv || this.conv.status === 'closed')) {
                    // an agent wrote in another conversation of ours while we show none
                    this.adopt({ id: cid, status: 'pending' }, null, true);
                }
                return;
            }
            case 'conversation.updated':
            case 'conversation.assigned':
            case 'ticket.created':
                if (!f.conversation) {
                    if (mine && f.ticket) this.updateConv({ ...this.conv, ticket: f.ticket });
                    return;
                }
                if (mine) this.updateConv(f.conversation);
                else if (!this.pendingStart && !this.startBusy && (!this.conv || this.conv.status === 'closed') && f.conversation.status !== 'closed' && f.type === 'conversation.updated' && f.conversation.id)
                    this.adopt(f.conversation, null, true); // started in another tab
                return;
            case 'conversation.queue':
            case 'queue.position':
                if (mine) {
                    this.queue = { position: f.position, size: f.size, wait: f.estimated_wait_ms };
                    this.queueRender();
                }
                return;
            case 'typing':
                if (mine && f.author && f.author.kind !== 'visitor') {
                    clearTimeout(this.typingTimer);
                    this.typingAgent = f.state ? f.author.name || this.t('agent') : null;
                    if (f.state) this.typingTimer = setTimeout(() => ((this.typingAgent = null), this.queueRender()), 10000);
                    this.queueRender();
                }
                return;
            case 'read':
                if (mine && f.author && f.author.kind !== 'visitor' && isInt(f.seq) && f.seq > this.meta.agentRead) {
                    this.meta.agentRead = f.seq;
                    this.queueRender();
                }
                return;
            case 'resumed':
                if (!mine) return;
                if (f.epoch) this.conv.epoch = f.epoch;
                if (f.recovered === false) this.loadLatest();
                else if (isInt(f.last_seq) && f.last_seq > this.meta.seen) this.meta.seen = f.last_seq;
                this.queueRender();
                return;
            case 'error':
                // errors of resume entries name their conversation
                if (mine && (f.code === 'forbidden' || f.code === 'not_found')) this.forgetConversation();
                return;
            default:
            // unknown events are ignored
        }
    }

    // ------------------------------------------------------------------ conversation state
    updateConv(c) {
        const old = this.conv;
        if (!old || old.id !== c.id) return;
        const next = { ...old, ...c };
        if (old.status !== next.status) {
            this.meta.step = '';
            if (next.status !== 'queued') this.queue = null;
        }
        if (next.assignee && next.assignee.id && (!old.assignee || old.assignee.id !== next.assignee.id) && old.status) {
            const key = 'j:' + next.assignee.id + ':' + (next.updated_at || '');
            const at = Math.max(this.meta.seen, isInt(next.last_seq) ? next.last_seq : 0) + 0.5;
            if (!this.entries.has(key)) this.entries.set(key, { key, seq: at, author: { kind: 'local' }, body: this.t('joined', { name: next.assignee.name || '' }), ts: Date.now() });
        }
        this.conv = next;
        if (old.epoch && c.epoch && old.epoch !== c.epoch) this.loadLatest();
        this.queueRender();
    }

    /** Makes c the current conversation. */
    adopt(c, first, load) {
        this.conv = { ...c };
        this.meta = this.freshMeta();
        this.queue = null;
        this.typingAgent = null;
        for (const [k, e] of this.entries) if (e.state !== 'pending' || k === 'start') this.entries.delete(k);
        if (this.pendingStart) {
            this.pendingStart = null;
            this.store.set('start', null);
        }
        // messages typed before the conversation existed belong to it
        if (this.outbox.some((o) => !o.conversation_id)) this.editOutbox((ob) => ob.map((o) => (o.conversation_id ? o : { ...o, conversation_id: c.id })));
        this.syncPending();
        if (first) this.addMessage(first, false);
        if (load) this.loadLatest();
        this.saveConv();
        this.queueRender();
    }

    forgetConversation() {
        const cid = this.conv && this.conv.id;
        this.conv = null;
        this.meta = this.freshMeta();
        this.entries.clear();
        this.queue = null;
        if (cid) this.editOutbox((ob) => ob.filter((o) => o.conversation_id !== cid));
        this.syncPending();
        this.formKey = '';
        this.queueRender();
    }

    newConversation() {
        this.forgetConversation();
        this.render();
        this.focusView();
    }

    /** Adds a server message; returns whether it was new. */
    addMessage(m, live) {
        if (!m || !isInt(m.seq) || !m.id || m.private) return false;
        for (const e of this.entries.values()) if (e.id === m.id || (e.seq === m.seq && e.id)) return false;
        const own = !!(m.author && m.author.kind === 'visitor');
        const key = own && m.client_msg_id ? 'c:' + m.client_msg_id : 'm:' + m.id;
        const e = { key, seq: m.seq, id: m.id, cmid: m.client_msg_id || null, author: m.author || { kind: 'system' }, body: String(m.body ?? ''), ts: m.ts || Date.now(), own, attachments: Array.isArray(m.attachments) ? m.attachments : null };
        this.entries.set(key, e);
        if (own && e.cmid && this.outbox.some((o) => o.client_msg_id === e.cmid)) this.editOutbox((ob) => ob.filter((o) => o.client_msg_id !== e.cmid));
        if (m.seq > this.meta.seen) this.meta.seen = m.seq;
        if (this.conv && (!isInt(this.conv.last_seq) || m.seq > this.conv.last_seq)) this.conv.last_seq = m.seq;
        if (!own && this.typingAgent && m.author && m.author.kind === 'agent') this.typingAgent = null;
        if (live) {
            this.emit('message', { conversation_id: this.conv && this.conv.id, seq: e.seq, id: e.id, author: { kind: e.author.kind, name: e.author.name || null }, body: e.body, ts: e.ts, own });
            if (!own) this.notice();
        }
        return true;
    }

    notice() {
        if (document.hidden) {
            this.flash.flash(this.t('newMessage', { n: Math.max(1, this.unreadCount()) }));
            beep();
        }
    }

    async loadLatest() {
        if (!this.conv) return;
        const cid = this.conv.id;
        this.needsLoad = true;
        const r = await this.conn.request({ type: 'history', conversation_id: cid, limit: PAGE });
        if (!this.conv || this.conv.id !== cid) return;
        if (r.type !== 'ok' || !Array.isArray(r.messages)) {
            if (r.code === 'forbidden' || r.code === 'not_found') this.forgetConversation();
            return; // retried after the next welcome
        }
        this.needsLoad = false;
        for (const [k, e] of this.entries) if (e.state !== 'pending' && e.state !== 'failed') this.entries.delete(k);
        this.meta.seen = 0;
        for (const m of r.messages) this.addMessage(m, false);
        this.meta.hasOlder = r.messages.length > 0 && r.messages[0].seq > 1;
        this.queueRender();
        this.scrollBottom(true);
        this.maybeRead();
    }

    async loadOlder() {
        if (this.loadingOlder || !this.conv || !this.meta.hasOlder) return;
        let min = Infinity;
        for (const e of this.entries.values()) if (isInt(e.seq) && e.seq < min) min = e.seq;
        if (min === Infinity || min <= 1) {
            this.meta.hasOlder = false;
            return this.queueRender();
        }
        this.loadingOlder = true;
        const cid = this.conv.id;
        const r = await this.conn.request({ type: 'history', conversation_id: cid, before_seq: min, limit: PAGE });
        this.loadingOlder = false;
        if (!this.conv || this.conv.id !== cid || r.type !== 'ok' || !Array.isArray(r.messages)) return;
        const log = this.ui && this.ui.log;
        const before = log ? log.scrollHeight - log.scrollTop : 0;
        for (const m of r.messages) this.addMessage(m, false);
        this.meta.hasOlder = r.messages.length > 0 && r.messages[0].seq > 1;
        this.render();
        if (log) log.scrollTop = log.scrollHeight - before;
    }

    // ------------------------------------------------------------------ sending
    /** files: the form's uploads ({id,name,type,size}), shown with the pending message. */
    startConversation(form, files = []) {
        // the same client_msg_id on every retry: the server returns the same conversation
        form = { ...form, client_msg_id: newId() };
        this.pendingStart = { form, files, ts: Date.now(), sent: false, known: null };
        this.store.set('start', this.pendingStart);
        if (form.name || form.email) this.draftForForm = '';
        this.syncPending();
        this.conn.start();
        this.conn.hurry();
        this.trySendStart();
        this.render();
        this.scrollBottom(true);
        this.focusView();
    }

    async trySendStart() {
        const ps = this.pendingStart;
        if (!ps || this.startBusy || !this.conn.isOnline) return;
        this.startBusy = true;
        ps.sent = true;
        ps.known = this.welcomeIds.slice();
        this.store.set('start', ps);
        const r = await this.conn.request({ type: 'conversation.start', form: ps.form });
        this.startBusy = false;
        if (this.pendingStart !== ps) return;
        if (r.type === 'ok' && r.conversation) {
            this.adopt(r.conversation, r.message, !r.message);
            const q = r.queue;
            if (q && typeof q === 'object') this.queue = { position: q.position, size: q.size, wait: q.estimated_wait_ms };
            this.flushOutbox();
            return;
        }
        if (r.code === 'disconnected') return; // welcome will look for it or send it again
        if (r.code === 'timeout') return this.conn.fail(this.conn.ws);
        if (r.code === 'rate_limited' || r.code === 'unavailable' || r.code === 'internal') {
            setTimeout(() => this.trySendStart(), RETRY_MS);
            return;
        }
        // refused for good (bad_request, too_large): back to the form with the texts
        this.pendingStart = null;
        this.store.set('start', null);
        this.syncPending();
        this.formError = r.code === 'too_large' ? this.t('tooLong') : r.message || r.code;
        this.formValues = ps.form;
        if (ps.files && ps.files.length) this.ui.formTray.restore(ps.files);
        this.formKey = '';
        this.render();
    }

    submitComposer() {
        const ui = this.ui;
        const body = ui.input.value.trim();
        if (ui.tray.busy) {
            this.composerError = this.t('waitUpload');
            return this.render();
        }
        const files = ui.tray.take();
        if (!body && !files.length) return;
        if (byteLength(body) > MAX_BODY) {
            this.composerError = this.t('tooLong');
            return this.render();
        }
        this.composerError = '';
        ui.input.value = '';
        ui.input.style.height = '';
        this.store.set('draft', null);
        this.stopTyping();
        this.send(body, files);
        ui.input.focus();
    }

    /** files: uploads ({id,name,type,size}) the message carries. */
    send(body, files = []) {
        const cmid = newId();
        const item = { client_msg_id: cmid, conversation_id: this.conv ? this.conv.id : null, body, ts: Date.now() };
        if (files.length) item.files = files;
        this.editOutbox((ob) => [...ob, item]);
        this.entries.set('c:' + cmid, { key: 'c:' + cmid, own: true, cmid, body, ts: item.ts, state: 'pending', author: { kind: 'visitor' }, attachments: files.length ? files : null });
        if (this.meta.step === 'reopen' || this.meta.step === 'csat') this.meta.step = 'reopen';
        this.conn.start();
        this.conn.hurry(); // waiting to reconnect with nothing to send: not any more
        this.flushOutbox();
        this.render();
        this.scrollBottom(true);
    }

    /** Sends the outbox one message at a time, oldest first, so seqs keep its order. */
    async flushOutbox() {
        if (this.sending || !this.conn.isOnline) return;
        const item = this.outbox.find((o) => o.conversation_id);
        if (!item) return;
        this.sending = item.client_msg_id;
        const req = { type: 'message.send', conversation_id: item.conversation_id, client_msg_id: item.client_msg_id, body: item.body };
        if (item.files) req.attachments = item.files.map((f) => f.id);
        const r = await this.conn.request(req, 15000);
        if (this.sending !== item.client_msg_id) return; // connection was reset meanwhile
        this.sending = null;
        const key = 'c:' + item.client_msg_id;
        if (r.type === 'ok') {
            this.editOutbox((ob) => ob.filter((o) => o.client_msg_id !== item.client_msg_id));
            if (r.message && this.conv && item.conversation_id === this.conv.id) this.addMessage(r.message, false);
            else this.entries.delete(key);
            this.queueRender();
            return this.flushOutbox();
        }
        if (r.code === 'disconnected') return; // resent after the next welcome
        if (r.code === 'timeout') return this.conn.fail(this.conn.ws);
        if (r.code === 'rate_limited' || r.code === 'unavailable' || r.code === 'internal') {
            setTimeout(() => this.flushOutbox(), RETRY_MS);
            return;
        }
        // refused for good: keep the text on screen, marked, with a retry button
        this.editOutbox((ob) => ob.filter((o) => o.client_msg_id !== item.client_msg_id));
        const e = this.entries.get(key);
        if (e) {
            e.state = 'failed';
            e.err = r.code;
        }
        if (r.code === 'conflict' && this.conv) this.conv.status = 'closed';
        this.queueRender();
        this.flushOutbox();
    }

    retry(e) {
        if (!this.conv || this.conv.status === 'closed') return;
        const item = { client_msg_id: e.cmid, conversation_id: this.conv.id, body: e.body, ts: e.ts };
        if (e.attachments) item.files = e.attachments;
        this.editOutbox((ob) => [...ob.filter((o) => o.client_msg_id !== e.cmid), item]);
        e.state = 'pending';
        this.conn.hurry();
        this.flushOutbox();
        this.render();
    }

    onComposerInput() {
        const ui = this.ui;
        ui.input.style.height = 'auto';
        ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 120) + 'px';
        clearTimeout(this.draftTimer);
        this.draftTimer = setTimeout(() => this.store.set('draft', ui.input.value || null), 400);
        if (!this.conv || !this.conn.isOnline) return;
        const has = ui.input.value.trim() !== '';
        clearTimeout(this.typingIdle);
        if (!has) return this.stopTyping();
        const now = Date.now();
        if (!this.typingOn || now - this.typingAt > 4000) {
            this.conn.send({ type: 'typing', conversation_id: this.conv.id, state: true });
            this.typingOn = true;
            this.typingAt = now;
        }
        this.typingIdle = setTimeout(() => this.stopTyping(), 3000);
    }

    stopTyping() {
        clearTimeout(this.typingIdle);
        if (!this.typingOn) return;
        this.typingOn = false;
        if (this.conv) this.conn.send({ type: 'typing', conversation_id: this.conv.id, state: false });
    }

    /** Sends `read` with the last seq when the visitor can see the conversation. */
    maybeRead() {
        if (!this.isOpen || document.hidden || !this.conv || !this.conn.isOnline || !this.ui || this.ui.chat.hidden) return;
        let max = 0;
        let other = 0;
        for (const e of this.entries.values()) {
            if (!isInt(e.seq)) continue;
            if (e.seq > max) max = e.seq;
            if (!e.own && e.seq > other) other = e.seq;
        }
        if (other > this.meta.readSent) {
            this.conn.send({ type: 'read', conversation_id: this.conv.id, seq: max });
            this.meta.readSent = max;
            this.saveConv();
            this.renderBadge();
        }
    }

    unreadCount() {
        let n = 0;
        for (const e of this.entries.values()) if (!e.own && isInt(e.seq) && e.seq > this.meta.readSent) n++;
        return n;
    }

    async sendCsat(score, comment, extra = {}) {
        if (!this.conv) return;
        this.csatBusy = true;
        this.csatError = '';
        this.render();
        const r = await this.conn.request({ type: 'csat', conversation_id: this.conv.id, score, comment: str(comment, MAX_FIELD), ...extra });
        this.csatBusy = false;
        if (r.type === 'ok') {
            const c = r.conversation && r.conversation.id === this.conv.id ? r.conversation : { ...this.conv, csat: { score, comment } };
            this.conv = { ...this.conv, ...c, csat: c.csat || { score, comment } };
            this.meta.step = 'thanks';
        } else {
            this.csatError = r.code === 'disconnected' || r.code === 'timeout' ? this.t('reconnecting') : r.message || r.code;
        }
        this.render();
    }

    // ------------------------------------------------------------------ rendering
    queueRender() {
        if (this.dirty) return;
        this.dirty = true;
        Promise.resolve().then(() => {
            this.dirty = false;
            this.render();
        });
    }

    sorted() {
        return [...this.entries.values()].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity) || a.ts - b.ts);
    }

    render() {
        this.saveConv();
        this.saveMsgs();
        if (!this.ui) return;
        const ui = this.ui;
        const t = this.t;
        const chat = !!(this.conv || this.pendingStart);
        ui.chat.hidden = !chat;
        ui.form.hidden = chat;
        // header
        const assignee = this.conv && this.conv.assignee && this.conv.assignee.name;
        ui.subText.textContent = assignee || (this.agentsOnline === false ? t('away') : t('online'));
        ui.dot.className = 'dot' + (this.agentsOnline || assignee ? ' on' : '');
        ui.dot.hidden = this.agentsOnline === null && !assignee;
        // connection
        const s = this.connState;
        const showConn = s && s !== 'online' && (this.everOnline || s !== 'connecting' || this.outbox.length > 0 || !!this.pendingStart);
        ui.conn.hidden = !showConn;
        if (showConn) ui.conn.textContent = s === 'offline' ? t('offline') : s === 'unavailable' ? t('unavailable') : this.everOnline ? t('reconnecting') : t('connecting');
        if (chat) this.renderChat();
        else this.renderForm();
        this.renderBadge();
        if (this.isOpen) this.maybeRead();
        this.watchAvailability(false);
    }

    /** Whether the open panel shows the pre-chat form on a live connection. */
    formShown() {
        return this.isOpen && !this.conv && !this.pendingStart && this.connState === 'online';
    }

    /**
     * While the open panel shows the pre-chat form, asks the server every
     * AVAILABILITY_EVERY_MS whether an agent is online ("availability"), so the form turns
     * from the offline one to the chat one (or back) without a reload. now: ask at once
     * (the panel was just opened). A closed or idle widget asks nothing.
     */
    watchAvailability(now) {
        if (!this.formShown()) {
            clearTimeout(this.availTimer);
            this.availTimer = null;
            return;
        }
        if (this.availTimer && !now) return;
        clearTimeout(this.availTimer);
        this.availTimer = setTimeout(async () => {
            this.availTimer = null;
            if (!this.formShown()) return;
            const r = await this.conn.request({ type: 'availability' });
            if (r && r.type === 'ok' && typeof r.agents_online === 'boolean' && r.agents_online !== this.agentsOnline) {
                this.agentsOnline = r.agents_online;
                this.queueRender();
            } else this.watchAvailability(false);
        }, now ? 0 : AVAILABILITY_EVERY_MS);
    }

    renderBadge() {
        if (!this.ui) return;
        const n = this.unreadCount();
        const show = n > 0 && (!this.isOpen || document.hidden);
        this.ui.badge.hidden = !show;
        this.ui.badge.textContent = n > 99 ? '99+' : String(n);
        this.ui.launcher.setAttribute('aria-label', (this.isOpen ? this.t('closeChat') : this.t('openChat')) + (show ? ' – ' + this.t('unread', { n }) : ''));
        if (n !== this.lastUnread) {
            this.lastUnread = n;
            this.emit('unread', { count: n });
        }
    }

    renderChat() {
        const ui = this.ui;
        const t = this.t;
        const c = this.conv;
        // queue position, ticket
        clear(ui.info);
        if (!c || c.status === 'queued') {
            const parts = [this.agentsOnline === false ? t('offlineQueued') : t('queued')];
            if (this.queue && isInt(this.queue.position)) parts.push(t('queuePos', { n: this.queue.position }));
            if (this.queue && typeof this.queue.wait === 'number' && this.queue.wait > 0) parts.push(t('queueWait', { m: Math.max(1, Math.round(this.queue.wait / 60000)) }));
            ui.info.appendChild(h('span', { class: 'queue', text: parts.join(' ') }));
        }
        if (c && c.ticket && c.ticket.number != null) ui.info.appendChild(h('span', { class: 'ticket', text: t('ticket', { n: c.ticket.number }) }));
        // messages
        const nearBottom = ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 80;
        const list = this.sorted();
        const keep = new Set(list.map((e) => e.key));
        for (const [k, li] of this.els) {
            if (!keep.has(k)) {
                li.remove();
                this.els.delete(k);
            }
        }
        let prev = null;
        let prevAuthor = '';
        let added = false;
        for (const e of list) {
            const who = e.own ? 'me' : (e.author.kind || '') + ':' + (e.author.id || e.author.name || '');
            const showWho = who !== prevAuthor;
            prevAuthor = who;
            const sig = [e.body, showWho, e.own, e.author.name, this.locale, (e.attachments || []).map((a) => a.id).join(' ')].join('\u0001');
            let li = this.els.get(e.key);
            if (!li || li._sig !== sig) {
                const n = this.msgEl(e, showWho);
                n._sig = sig;
                if (li) li.replaceWith(n);
                else added = true;
                li = n;
                this.els.set(e.key, li);
            }
            this.updateMeta(li, e);
            const next = prev ? prev.nextSibling : ui.list.firstChild;
            if (next !== li) ui.list.insertBefore(li, next);
            prev = li;
        }
        ui.older.hidden = !this.meta.hasOlder;
        ui.older.textContent = this.loadingOlder ? t('loading') : t('loadOlder');
        ui.typing.textContent = this.typingAgent ? t('typing', { name: this.typingAgent }) : '';
        this.renderBanner();
        const closed = c && c.status === 'closed';
        ui.compose.hidden = !!closed;
        if (this.composerError) ui.typing.textContent = this.composerError;
        if (added && nearBottom) this.scrollBottom();
    }

    msgEl(e, showWho) {
        const t = this.t;
        const kind = e.own ? 'me' : e.author.kind === 'system' || e.author.kind === 'local' ? 'sys' : 'them';
        const name = e.own ? t('you') : e.author.name || (e.author.kind === 'system' ? t('system') : t('agent'));
        const li = h('li', { class: 'msg ' + kind, 'data-key': e.key, 'data-seq': isInt(e.seq) ? e.seq : null });
        if (showWho && kind === 'them') li.appendChild(h('div', { class: 'who', 'aria-hidden': 'true', text: name }));
        const bubble = h('div', { class: 'bubble' });
        if (kind !== 'sys') bubble.appendChild(h('span', { class: 'sr', text: name + ': ' }));
        linkify(bubble, e.body);
        if (e.attachments && e.attachments.length) bubble.appendChild(attachmentsEl(e.attachments, this.base, () => this.token, t));
        li.appendChild(bubble);
        li.appendChild(h('div', { class: 'meta' }));
        return li;
    }

    updateMeta(li, e) {
        const t = this.t;
        const status = !e.own ? '' : e.state === 'pending' ? 'pending' : e.state === 'failed' ? 'failed' : isInt(e.seq) && this.meta.agentRead >= e.seq ? 'read' : 'sent';
        const key = status + '|' + this.locale;
        li.classList.toggle('pending', status === 'pending');
        li.classList.toggle('failed', status === 'failed');
        if (li._meta === key) return;
        li._meta = key;
        li.setAttribute('data-status', status);
        const meta = clear(li.lastChild);
        if (e.author.kind === 'local') return;
        meta.appendChild(h('time', { datetime: new Date(e.ts).toISOString(), text: this.fmtTime(e.ts) }));
        if (status) meta.appendChild(h('span', { class: 'status', text: t(status === 'pending' ? 'sending' : status) }));
        if (status === 'failed' && this.conv && this.conv.status !== 'closed') meta.appendChild(h('button', { type: 'button', text: t('retry'), onclick: () => this.retry(e) }));
    }

    fmtTime(ts) {
        const d = new Date(ts);
        const now = new Date();
        const time = d.toLocaleTimeString(this.locale, { hour: '2-digit', minute: '2-digit' });
        if (d.toDateString() === now.toDateString()) return time;
        return d.toLocaleDateString(this.locale, { month: 'short', day: 'numeric' }) + ' ' + time;
    }

    scrollBottom(force) {
        const log = this.ui && this.ui.log;
        if (!log) return;
        const go = () => (log.scrollTop = log.scrollHeight);
        if (force) go();
        requestAnimationFrame(go);
    }

    renderBanner() {
        const ui = this.ui;
        const t = this.t;
        const c = this.conv;
        const b = ui.banner;
        const status = c ? c.status : '';
        const step = this.meta.step;
        const key = [status, step, !!(c && c.csat), this.csatBusy, this.csatError, this.locale].join('|');
        if (b._key === key) return;
        b._key = key;
        clear(b);
        b.removeAttribute('role');
        b.hidden = true;
        if (status !== 'resolved' && status !== 'closed') return;
        b.hidden = false;
        const p = (text) => h('p', { text });
        if (c.csat || step === 'thanks') {
            b.setAttribute('role', 'status');
            append(b, [p(t('csatThanks')), status === 'closed' && this.newChatBtn()]);
            return;
        }
        if (status === 'resolved' && step === '') {
            append(b, [
                p(t('resolved')),
                h(
                    'div',
                    { class: 'acts' },
                    h('button', {
                        type: 'button',
                        class: 'btn',
                        text: t('yes'),
                        onclick: () => {
                            // the customer confirms: the conversation closes (kept best effort;
                            // the rating follows either way)
                            this.conn.request({ type: 'conversation.confirm', conversation_id: c.id });
                            this.meta.step = 'csat';
                            this.render();
                            this.focusBanner();
                        },
                    }),
                    h('button', { type: 'button', class: 'btn ghost', text: t('no'), onclick: () => ((this.meta.step = 'reopen'), this.render(), ui.input.focus()) }),
                ),
            ]);
            return;
        }
        if (status === 'resolved' && step === 'reopen') {
            b.setAttribute('role', 'status');
            b.appendChild(p(t('reopenHint')));
            return;
        }
        if (status === 'closed') b.appendChild(p(t('closed')));
        b.appendChild(this.csatForm());
        if (status === 'closed') b.appendChild(this.newChatBtn());
    }

    focusBanner() {
        const first = this.ui.banner.querySelector('input,button');
        if (first) first.focus();
    }

    newChatBtn() {
        return h('div', { class: 'acts' }, h('button', { type: 'button', class: 'btn ghost', text: this.t('newChat'), onclick: () => this.newConversation() }));
    }

    csatForm() {
        const t = this.t;
        let score = 0;
        const labels = [];
        const stars = h('fieldset', { class: 'stars' }, h('legend', { text: t('csat') }));
        const paint = (n) => labels.forEach((l, i) => l.classList.toggle('on', i < n));
        for (let i = 1; i <= 5; i++) {
            const input = h('input', { type: 'radio', name: 'cd-score', value: String(i), 'aria-label': `${i} – ${t('star' + i)}` });
            input.addEventListener('change', () => {
                score = i;
                paint(i);
                submit.disabled = false;
                for (const q of extraQs) q.hidden = false;
            });
            const l = h('label', { title: t('star' + i) }, input, h('span', { 'aria-hidden': 'true', text: '★' }));
            l.addEventListener('mouseenter', () => paint(i));
            l.addEventListener('mouseleave', () => paint(score));
            labels.push(l);
            stars.appendChild(l);
        }
        // reports: the site may add NPS (0-10) and CES (1-7) questions, shown once a score is chosen
        const survey = this.siteCfg.survey || {};
        const answers = {};
        const scale = (name, lo, hi, legend, low, high) => {
            const fs = h('fieldset', { class: 'scale', hidden: true, 'data-q': name }, h('legend', { text: legend }));
            const row = h('div', { class: 'opts' });
            for (let i = lo; i <= hi; i++) {
                const input = h('input', { type: 'radio', name: 'cd-' + name, value: String(i), 'aria-label': String(i) });
                input.addEventListener('change', () => (answers[name] = i));
                row.appendChild(h('label', {}, input, h('span', { text: String(i) })));
            }
            append(fs, [row, h('div', { class: 'ends' }, h('span', { text: low }), h('span', { text: high }))]);
            return fs;
        };
        const extraQs = [
            survey.nps && scale('nps', 0, 10, t('npsQ'), t('npsLow'), t('npsHigh')),
            survey.ces && scale('ces', 1, 7, t('cesQ'), t('cesLow'), t('cesHigh')),
        ].filter(Boolean);
        const comment = h('textarea', { 'aria-label': t('csatComment'), placeholder: t('csatComment') });
        const submit = h('button', { type: 'submit', class: 'btn', disabled: true, text: t('csatSend') });
        if (this.csatBusy) submit.disabled = true;
        const err = this.csatError ? h('p', { class: 'err', role: 'alert', text: this.csatError }) : null;
        return h(
            'form',
            {
                class: 'csat',
                novalidate: true,
                onsubmit: (e) => {
                    e.preventDefault();
                    if (score) this.sendCsat(score, comment.value.trim(), answers);
                },
            },
            stars,
            ...extraQs,
            comment,
            err,
            submit,
        );
    }

    // ------------------------------------------------------------------ pre-chat / offline form
    categories() {
        const src = this.siteCfg.categories || this.cfg.categories;
        if (Array.isArray(src) && src.length)
            return src.map((c) => (typeof c === 'object' && c ? { value: String(c.value ?? c.label), label: String(c.label ?? c.value) } : { value: String(c), label: String(c) }));
        return CATEGORIES.map((v) => ({ value: v, label: this.t('cat_' + v) }));
    }

    required() {
        const r = new Set(['message']);
        for (const f of this.siteCfg.required || this.cfg.required || []) r.add(f);
        if (this.agentsOnline === false) r.add('email');
        return r;
    }

    renderForm() {
        const key = [this.locale, this.agentsOnline, [...this.required()].join(), this.formError || '', this.siteCfg.kb === true, this.siteCfg.attachments !== false].join('|');
        if (this.formKey === key) return;
        const ui = this.ui;
        const t = this.t;
        // keep what was typed across re-renders
        const vals = { ...(this.formValues || {}) };
        for (const f of FIELDS) {
            const el = this.formEls && this.formEls[f];
            if (el && el.value) vals[f] = el.value;
        }
        this.formValues = null;
        if (!vals.name && this.user && this.user.name) vals.name = this.user.name;
        if (!vals.email && this.user && this.user.email) vals.email = this.user.email;
        if (!vals.name && this.visitor && this.visitor.name) vals.name = this.visitor.name;
        if (!vals.email && this.visitor && this.visitor.email) vals.email = this.visitor.email;
        if (!vals.message && this.draftForForm) vals.message = this.draftForForm;
        this.formKey = key;
        const req = this.required();
        const els = {};
        this.formEls = els;
        const errs = {};
        const field = (name, label, control) => {
            control.id = 'cd-f-' + name;
            control.name = name;
            const err = h('p', { class: 'err', id: 'cd-e-' + name, hidden: true });
            errs[name] = err;
            els[name] = control;
            if (req.has(name)) control.setAttribute('aria-required', 'true');
            if (vals[name]) control.value = vals[name];
            return h('div', { class: 'field' }, h('label', { for: control.id }, h('span', null, label, req.has(name) ? ' *' : h('em', { text: ' ' + t('optional') }))), control, err);
        };
        const offline = this.agentsOnline === false;
        const cat = h('select', null, h('option', { value: '', text: t('choose') }), this.categories().map((c) => h('option', { value: c.value, text: c.label })));
        const prio = h(
            'select',
            null,
            PRIORITIES.map((p) => h('option', { value: p, text: t('pr_' + p), selected: p === 'normal' })),
        );
        const form = h(
            'form',
            { novalidate: true, 'aria-label': offline ? t('offlineStart') : t('start') },
            h('p', { class: 'greet', text: (this.locale.startsWith('zh') && this.siteCfg.greeting_zh) || this.siteCfg.greeting || this.cfg.greeting || t('greeting') }),
            offline && h('p', { class: 'note', role: 'note', text: t('offlineNote') }),
            this.formError && h('p', { class: 'err', role: 'alert', text: this.formError }),
            h('div', { class: 'row' }, field('name', t('name'), h('input', { type: 'text', autocomplete: 'name' })), field('email', t('email'), h('input', { type: 'email', autocomplete: 'email', inputmode: 'email' }))),
            h('div', { class: 'row' }, field('category', t('category'), cat), field('priority', t('priority'), prio)),
            field('subject', t('subject'), h('input', { type: 'text' })),
            field('message', t('message'), h('textarea', { rows: '3' })),
            // a site that takes no attachments (welcome.site.attachments false) has no field
            this.siteCfg.attachments !== false &&
                h(
                    'div',
                    { class: 'field files' },
                    h('div', { id: 'cd-l-files', class: 'lbl' }, t('formFiles'), h('em', { text: ' ' + t('optional') })),
                    h('button', { type: 'button', class: 'btn ghost add-files', 'aria-describedby': 'cd-l-files', onclick: () => ui.formFile.click() }, icon('clip'), t('addFiles')),
                    ui.formFile,
                    ui.formTray.el,
                ),
            h('button', { type: 'submit', class: 'btn wide', text: offline ? t('offlineStart') : t('start') }),
        );
        els.message.addEventListener('keydown', (e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) form.requestSubmit ? form.requestSubmit() : this.submitForm(els, errs, req);
        });
        form.addEventListener('submit', (e) => {
            e.preventDefault();
            this.submitForm(els, errs, req);
        });
        const hadFocus = this.root.activeElement && ui.form.contains(this.root.activeElement) ? this.root.activeElement.name : null;
        // help articles (docs/kb.md) only when the site has published ones
        const kb = this.siteCfg.kb === true;
        clear(ui.form).append(...(kb ? [ui.kb.el] : []), form);
        if (kb) {
            const kbSuggest = () => ui.kb.suggest(els.subject.value + ' ' + els.message.value);
            els.subject.addEventListener('input', kbSuggest);
            els.message.addEventListener('input', kbSuggest);
        }
        if (hadFocus && els[hadFocus]) els[hadFocus].focus();
    }

    submitForm(els, errs, req) {
        const t = this.t;
        const v = {};
        let bad = null;
        for (const f of FIELDS) {
            v[f] = els[f].value.trim();
            let msg = '';
            if (req.has(f) && !v[f]) msg = f === 'message' ? t('needMessage') : t('needField');
            else if (f === 'email' && v[f] && !EMAIL_RE.test(v[f])) msg = t('badEmail');
            else if (f === 'message' && byteLength(v[f]) > MAX_BODY) msg = t('tooLong');
            errs[f].hidden = !msg;
            errs[f].textContent = msg;
            if (msg) {
                els[f].setAttribute('aria-invalid', 'true');
                els[f].setAttribute('aria-describedby', errs[f].id);
                if (!bad) bad = els[f];
            } else {
                els[f].removeAttribute('aria-invalid');
                els[f].removeAttribute('aria-describedby');
            }
        }
        if (bad) return bad.focus();
        const tray = this.ui.formTray;
        if (tray.busy) {
            this.formError = t('waitUpload');
            this.formKey = '';
            return this.render();
        }
        // locale (extension): the language of the server's system messages to this visitor
        const form = { priority: PRIORITIES.includes(v.priority) ? v.priority : 'normal', message: v.message, locale: this.locale };
        for (const f of ['name', 'email', 'category', 'subject']) if (v[f]) form[f] = clipBytes(v[f], MAX_FIELD);
        const files = tray.take();
        if (files.length) form.attachments = files.map((f) => f.id);
        this.formError = '';
        this.draftForForm = '';
        this.store.set('draft', null);
        this.startConversation(form, files);
    }
}
