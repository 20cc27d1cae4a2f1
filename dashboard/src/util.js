// Pure helpers (no DOM, no state): time formatting, SLA levels, canned-reply variables,
// link detection. Imported by the UI and by tests/e2e-dashboard/00-unit.test.mjs.

export const PRIORITIES = ['low', 'normal', 'high', 'urgent'];
export const PRIO_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };
export const STATUSES = ['queued', 'open', 'pending', 'resolved', 'closed'];
export const SLA_KINDS = ['first_response', 'next_response', 'resolution'];

/** 75_000 -> "1m 15s"; 3_725_000 -> "1h 2m"; 2 days -> "2d 3h". Negative values use abs. */
export function fmtDuration(ms, units = { d: 'd', h: 'h', m: 'm', s: 's' }) {
    let s = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    const sep = units.sep ?? ' ';
    if (d) return `${d}${units.d}${sep}${h}${units.h}`;
    if (h) return `${h}${units.h}${sep}${m}${units.m}`;
    if (m) return `${m}${units.m}${sep}${String(s).padStart(2, '0')}${units.s}`;
    return `${s}${units.s}`;
}

/**
 * The state of a ticket's SLA clocks at `now`:
 *   null                      not a ticket (or no SLA data)
 *   {level:'paused'}          clocks held (waiting on the customer)
 *   status resolved or closed: {level:'breach', kind, due:null} if a target was missed,
 *                             else {level:'met'}
 *   {level:'met'}             no running deadline and nothing breached
 *   {level, kind, due, warn, remaining}
 *      level 'ok' before the warning instant, 'warn' from it, 'breach' at/after the due
 *      instant or when the server reported the breach. The most severe running clock
 *      wins; among equals the earliest deadline.
 */
export function slaState(ticket, now, status) {
    const s = ticket && ticket.sla;
    if (!s) return null;
    const breached = Array.isArray(s.breached) ? s.breached : [];
    // a resolved or closed ticket's clocks are over: it met its targets or it did not
    if (status === 'resolved' || status === 'closed') {
        return breached.length ? { level: 'breach', kind: breached[0], due: null, warn: null, remaining: null, breached } : { level: 'met', breached };
    }
    if (s.paused) return { level: 'paused', breached };
    const rank = { breach: 2, warn: 1, ok: 0 };
    let best = null;
    for (const kind of SLA_KINDS) {
        const due = s[`${kind}_due`];
        if (typeof due !== 'number') continue;
        const warn = typeof s[`${kind}_warn`] === 'number' ? s[`${kind}_warn`] : null;
        const level = breached.includes(kind) || now >= due ? 'breach' : warn !== null && now >= warn ? 'warn' : 'ok';
        const c = { level, kind, due, warn, remaining: due - now, breached };
        if (!best || rank[c.level] > rank[best.level] || (rank[c.level] === rank[best.level] && c.due < best.due)) best = c;
    }
    if (best) return best;
    if (breached.length) return { level: 'breach', kind: breached[0], due: null, warn: null, remaining: null, breached };
    return { level: 'met', breached };
}

// ---------------------------------------------------------------------------
// Canned replies

/** Chinese aliases of the variables (the support team's own words). */
const VAR_ALIASES = { 客户姓名: 'customer_name', 工单编号: 'ticket_number', 客服姓名: 'agent_name' };
const VAR_RE = /\{(customer_name|ticket_number|agent_name|客户姓名|工单编号|客服姓名|attr\.[A-Za-z0-9_.\-]{1,64})\}/g;

/** The variable values available for a conversation. */
export function cannedContext({ conversation, visitor, agent } = {}) {
    const ctx = {
        customer_name: visitor?.name || conversation?.visitor?.name || null,
        ticket_number: conversation?.ticket?.number ?? null,
        agent_name: agent?.name || null,
        attrs: visitor?.attributes && typeof visitor.attributes === 'object' ? visitor.attributes : {},
    };
    return ctx;
}

function varValue(name, ctx) {
    name = VAR_ALIASES[name] || name;
    let v;
    if (name.startsWith('attr.')) v = ctx.attrs ? ctx.attrs[name.slice(5)] : undefined;
    else v = ctx[name];
    if (v === null || v === undefined) return null;
    if (typeof v === 'string' && v.trim() === '') return null;
    return String(v);
}

/**
 * Fills the variables of a canned body. Returns {text, missing}: variables without a
 * value stay in the text as written ({customer_name}) and are listed in `missing`,
 * so that the composer can point them out and refuse to send them raw.
 */
export function fillCanned(body, ctx) {
    const missing = [];
    const text = String(body).replace(VAR_RE, (all, name) => {
        const v = varValue(name, ctx);
        if (v === null) {
            if (!missing.includes(all)) missing.push(all);
            return all;
        }
        return v;
    });
    return { text, missing };
}

/**
 * Placeholders of a canned body that are no variable at all (a misspelt {customer_nmae},
 * an invented {amount}): a {name} of letters, digits, _ . - or non-ASCII text that is none
 * of the known names. The same rule as the server's (store/lua/_common.lua), which refuses
 * them in a canned reply; braces around anything else ({"a":1}, { x }) are plain text.
 */
const PLACEHOLDER_RE = /\{([A-Za-z0-9_.\-\u0080-\uFFFF]+)\}/g;
const KNOWN_RE = new RegExp(`^${VAR_RE.source}$`);
export function unknownVars(body) {
    const out = [];
    for (const m of String(body).matchAll(PLACEHOLDER_RE)) if (!KNOWN_RE.test(m[0]) && !out.includes(m[0])) out.push(m[0]);
    return out;
}

/** Unfilled variables left in a text about to be sent. */
export function unfilledVars(text) {
    const out = [];
    for (const m of String(text).matchAll(VAR_RE)) if (!out.includes(m[0])) out.push(m[0]);
    return out;
}

/** Client-side search over canned replies (shortcut first, then title, then body). */
export function searchCanned(list, q) {
    q = String(q || '').trim().toLowerCase();
    if (!q) return list.slice();
    const scored = [];
    for (const c of list) {
        const sc = (c.shortcut || '').toLowerCase();
        const ti = (c.title || '').toLowerCase();
        const bo = (c.body || '').toLowerCase();
        let score = -1;
        if (sc === q) score = 0;
        else if (sc.startsWith(q)) score = 1;
        else if (sc.includes(q)) score = 2;
        else if (ti.includes(q)) score = 3;
        else if (bo.includes(q)) score = 4;
        if (score >= 0) scored.push([score, c]);
    }
    scored.sort((a, b) => a[0] - b[0] || String(a[1].shortcut).localeCompare(String(b[1].shortcut)));
    return scored.map((x) => x[1]);
}

/**
 * The "/query" the caret is in, if the composer text has one: a "/" at the start or after
 * whitespace, followed by non-space characters up to the caret. Returns {start, query}.
 */
export function slashQuery(text, caret) {
    const before = String(text).slice(0, caret);
    const m = /(^|\s)\/([^\s/]{0,64})$/.exec(before);
    if (!m) return null;
    return { start: before.length - m[2].length - 1, query: m[2] };
}

/** The "@name" being typed before the caret in a note: {start, query} (start: the '@'), or null. */
export function mentionQuery(text, caret) {
    const before = String(text).slice(0, caret);
    const m = /(^|\s)@([^\s@]{0,64})$/.exec(before);
    if (!m) return null;
    return { start: before.length - m[2].length - 1, query: m[2] };
}

/** Who a note of site `site` can mention (docs/dashboard.md "Mentions"): the site's agents
 *  (agents: [{id, name, _sites}], not `meId`) and teams (teams: "site|team" strings) whose
 *  name starts with the query (case-insensitive), or has a word that does; agents first. */
export function mentionCandidates(agents, teams, site, meId, query) {
    const q = String(query || '').toLowerCase();
    const fits = (name) => {
        const n = String(name || '').toLowerCase();
        return n.startsWith(q) || n.split(/\s+/).some((w) => w.startsWith(q));
    };
    const out = [];
    for (const a of agents) {
        if (a.id === meId || !a.name || !(a._sites || []).includes(site) || !fits(a.name)) continue;
        out.push({ kind: 'agent', id: a.id, label: a.name, insert: a.name });
    }
    out.sort((x, y) => x.label.localeCompare(y.label));
    const ts = [];
    for (const k of teams) {
        const [s, team] = k.split('|');
        if (s === site && team && fits(team)) ts.push({ kind: 'team', id: team, label: team, insert: team });
    }
    ts.sort((x, y) => x.label.localeCompare(y.label));
    return [...out, ...ts];
}

// ---------------------------------------------------------------------------
// Text with links: split into [{text}|{href,text}] so that the view renders text nodes
// and <a> elements (never HTML). Only http(s) URLs become links.
const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;

export function linkify(text) {
    const out = [];
    let last = 0;
    const s = String(text ?? '');
    for (const m of s.matchAll(URL_RE)) {
        let url = m[0];
        // trailing punctuation is not part of the link
        const trail = /[.,;:!?)\]}，。！？）]+$/.exec(url);
        if (trail) url = url.slice(0, -trail[0].length);
        if (m.index > last) out.push({ text: s.slice(last, m.index) });
        out.push({ href: url, text: url });
        last = m.index + url.length;
    }
    if (last < s.length) out.push({ text: s.slice(last) });
    return out;
}

/** A safe href for a customer-supplied URL (page, referrer), or null. */
export function safeHref(u) {
    try {
        const url = new URL(String(u));
        return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch {
        return null;
    }
}

/** Random id for client_msg_id / rid (base64url, 16 bytes). */
export function randomId(prefix = '') {
    const b = new Uint8Array(16);
    globalThis.crypto.getRandomValues(b);
    let s = '';
    for (const x of b) s += String.fromCharCode(x);
    return prefix + btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Sort for the queue: priority, then age (the server's order). */
export function queueOrder(a, b) {
    return (PRIO_RANK[a.priority] ?? 2) - (PRIO_RANK[b.priority] ?? 2) || (a.created_at || 0) - (b.created_at || 0);
}

/** Parses "09:00-12:00, 13:00-18:00" -> [["09:00","12:00"],["13:00","18:00"]] (null if malformed). */
export function parseRanges(s) {
    s = String(s || '').trim();
    if (!s) return [];
    const out = [];
    // the server's rules (ticket/sla.c): HH:MM up to 24:00, opening before closing, at
    // most 4 ranges a day; checked here so that the page explains it in the reader's words
    const minutes = (x) => {
        const [h, m] = x.split(':').map(Number);
        return h > 24 || m > 59 || (h === 24 && m) ? -1 : h * 60 + m;
    };
    for (const part of s.split(/[,，;\s]+/).filter(Boolean)) {
        const m = /^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$/.exec(part);
        if (!m) return null;
        const o = minutes(m[1]);
        const c = minutes(m[2]);
        if (o < 0 || c <= o) return null;
        const norm = (t) => t.padStart(5, '0');
        out.push([norm(m[1]), norm(m[2])]);
    }
    return out.length > 4 ? null : out;
}

export function fmtRanges(r) {
    return (r || []).map((x) => `${x[0]}-${x[1]}`).join(', ');
}

// ---------------------------------------------------------------------------
// Settings forms

const plainObject = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

/**
 * What a settings form changed: the members of `after` whose value differs from `before`,
 * nested objects compared member by member (arrays as a whole). The server merges nested
 * settings, so a form sends only these and never overwrites what it did not touch (a
 * survey switch saved from elsewhere, a greeting). Returns {} when nothing changed.
 */
export function changedSettings(before, after) {
    const out = {};
    for (const [k, v] of Object.entries(after)) {
        const was = before ? before[k] : undefined;
        if (plainObject(v) && plainObject(was)) {
            const sub = changedSettings(was, v);
            if (Object.keys(sub).length) out[k] = sub;
        } else if (JSON.stringify(v) !== JSON.stringify(was)) out[k] = v;
    }
    return out;
}
