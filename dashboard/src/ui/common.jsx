import { useEffect, useState, useReducer } from 'preact/hooks';
import { S, subscribe } from '../store.js';
import { t, getLang } from '../i18n.js';
import { fmtDuration, slaState, linkify } from '../util.js';

/** Re-render the component on every store change. */
export function useStore() {
    const [, force] = useReducer((x) => x + 1, 0);
    useEffect(() => subscribe(force), []);
}

// one shared 1 s ticker for every countdown on screen
const tickSubs = new Set();
let tickTimer = null;
function tickSubscribe(fn) {
    tickSubs.add(fn);
    if (!tickTimer) tickTimer = setInterval(() => tickSubs.forEach((f) => f(Date.now())), 1000);
    return () => {
        tickSubs.delete(fn);
        if (!tickSubs.size) {
            clearInterval(tickTimer);
            tickTimer = null;
        }
    };
}
export function useNow() {
    const [now, setNow] = useState(Date.now());
    useEffect(() => tickSubscribe(setNow), []);
    return now;
}

export function units() {
    return {
        d: t('unit.d'),
        h: t('unit.h'),
        m: t('unit.m'),
        s: t('unit.s'),
        sep: getLang() === 'zh-CN' ? '' : ' ',
    };
}

export function dur(ms) {
    return fmtDuration(ms, units());
}

/** "3m 12s" since ts, ticking. */
export function Since({ ts, cls = '' }) {
    const now = useNow();
    if (!ts) return null;
    return (
        <span class={`since ${cls}`} title={fmtDateTime(ts)}>
            {dur(Math.max(0, now - ts))}
        </span>
    );
}

export function fmtTime(ts) {
    if (!ts) return '';
    const d = new Date(ts);
    const sameDay = new Date().toDateString() === d.toDateString();
    const opts = sameDay ? { hour: '2-digit', minute: '2-digit' } : { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' };
    return new Intl.DateTimeFormat(getLang(), opts).format(d);
}

export function fmtDateTime(ts) {
    if (!ts) return '';
    return new Intl.DateTimeFormat(getLang(), { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(ts));
}

/** The SLA countdown of a ticket: green, amber from the warning instant, red at breach. */
export function SlaBadge({ conv, compact = false }) {
    const now = useNow();
    const st = slaState(conv && conv.ticket, now, conv && conv.status);
    if (!st) return null;
    let text;
    if (st.level === 'paused') text = t('sla.paused');
    else if (st.level === 'met') text = t('sla.met');
    else if (st.due == null) text = t('sla.breached');
    else if (st.remaining < 0) text = t('sla.over', { t: dur(-st.remaining) });
    else if (st.level === 'breach') text = t('sla.breached');
    else text = t('sla.left', { t: dur(st.remaining) });
    const kind = st.kind ? t(`sla.kind.${st.kind}`) : '';
    return (
        <span class={`sla sla-${st.level}`} data-sla={st.level} data-kind={st.kind || ''} title={kind ? `${kind}: ${text}` : text}>
            {!compact && kind ? <span class="sla-kind">{kind}</span> : null}
            <span class="sla-time">{text}</span>
        </span>
    );
}

/** Customer text with http(s) links; never HTML. */
export function RichText({ text }) {
    return (
        <>
            {linkify(text).map((p, i) =>
                p.href ? (
                    <a key={i} href={p.href} target="_blank" rel="noopener noreferrer nofollow">
                        {p.text}
                    </a>
                ) : (
                    p.text
                ),
            )}
        </>
    );
}

export function Notice({ kind = 'info', children, testid }) {
    return (
        <div class={`notice notice-${kind}`} role={kind === 'error' ? 'alert' : 'status'} data-notice={testid || kind}>
            {children}
        </div>
    );
}

/** The "this part of the server is not there yet" notice. */
export function NotAvailable({ what }) {
    return (
        <Notice kind="muted" testid="not-available">
            <strong>{t('na.title')}</strong> {t('na.body', { what })}
        </Notice>
    );
}

export function StatusChip({ status }) {
    return (
        <span class={`chip status-${status}`} data-status={status}>
            {t(`status.${status}`)}
        </span>
    );
}

export function PrioChip({ priority }) {
    if (!priority || priority === 'normal') return null;
    return <span class={`chip prio-${priority}`}>{t(`prio.${priority}`)}</span>;
}

export function Presence({ status }) {
    return <span class={`dot presence-${status || 'offline'}`} role="img" title={t(`presence.${status || 'offline'}`)} aria-label={t(`presence.${status || 'offline'}`)} />;
}

/** A modal dialog: Esc closes, focus goes to the first field. */
export function Dialog({ title, onClose, children, cls = '' }) {
    useEffect(() => {
        const el = document.querySelector('.dialog [data-autofocus], .dialog input, .dialog select, .dialog textarea, .dialog button');
        el && el.focus();
    }, []);
    return (
        <div
            class="overlay"
            onMouseDown={(e) => {
                if (e.target === e.currentTarget) onClose();
            }}
        >
            <div
                class={`dialog ${cls}`}
                role="dialog"
                aria-modal="true"
                aria-label={title}
                onKeyDown={(e) => {
                    if (e.key === 'Escape') {
                        e.stopPropagation();
                        onClose();
                    }
                }}
            >
                <div class="dialog-head">
                    <h2>{title}</h2>
                    <button type="button" class="icon" onClick={onClose} aria-label={t('common.close')}>
                        ×
                    </button>
                </div>
                <div class="dialog-body">{children}</div>
            </div>
        </div>
    );
}

/** Runs an async loader; returns {state:'loading'|'ok'|'missing'|'error', data, error, reload}. */
export function useLoad(fn, deps) {
    const [st, setSt] = useState({ state: 'loading' });
    const [n, setN] = useState(0);
    useEffect(() => {
        let live = true;
        setSt((s) => ({ ...s, state: s.data ? s.state : 'loading' }));
        fn()
            .then((data) => live && setSt({ state: 'ok', data }))
            .catch((error) => live && setSt({ state: error && error.status === 404 && error.code === 'not_found' ? 'missing' : 'error', error }));
        return () => {
            live = false;
        };
    }, [...deps, n]);
    return { ...st, reload: () => setN((x) => x + 1) };
}

/** The site picker of a page's header: a select when the agent has several sites. */
export function SiteSelect({ sites, site, onChange }) {
    if (sites.length <= 1) return <span class="muted">{site}</span>;
    return (
        <select aria-label={t('common.site')} value={site} onChange={(e) => onChange(e.currentTarget.value)}>
            {sites.map((s) => (
                <option key={s} value={s}>
                    {s}
                </option>
            ))}
        </select>
    );
}

/** Save a CSV answer (reports, the audit log): fetched with the token (never in a URL),
 *  saved through a blob link. */
export async function saveCsv(url, filename) {
    const r = await fetch(url, { headers: { authorization: `Bearer ${S.token}` }, cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const blob = URL.createObjectURL(await r.blob());
    const a = document.createElement('a');
    a.href = blob;
    a.download = filename;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(blob), 1000);
}
