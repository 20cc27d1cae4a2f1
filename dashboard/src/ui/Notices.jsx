// The notices bell in the header: notices for this agent (customer health alerts,
// rules, …) arrive live as `notice` frames (docs/protocol.md) and are kept by the server
// (GET /api/v1/notices); admins also see their sites' customer health alerts
// (GET /api/v1/alerts).
import { useState, useEffect, useRef } from 'preact/hooks';
import { S, isAdmin, openConv, setView, changed, errorText, noticeText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { Notice, fmtDateTime } from './common.jsx';

async function loadNotices() {
    try {
        const r = await http.get('/api/v1/notices');
        const live = S.notices || [];
        const ids = new Set(r.notices.map((n) => n.id));
        S.notices = [...live.filter((n) => !ids.has(n.id)), ...r.notices].slice(0, 100);
        changed();
    } catch {
        /* older server: live frames only */
    }
}


export function NoticesBell() {
    const [open, setOpen] = useState(false);
    const [alerts, setAlerts] = useState(null);
    const root = useRef(null);
    useEffect(() => {
        loadNotices();
    }, []);
    // an open panel closes with Esc (focus back on the bell) or a click anywhere outside
    // it, so it never stays over the conversation's buttons
    useEffect(() => {
        if (!open) return undefined;
        const onKey = (e) => {
            if (e.key !== 'Escape') return;
            setOpen(false);
            root.current?.querySelector('[data-action="notices"]')?.focus();
        };
        const onDown = (e) => {
            if (root.current && !root.current.contains(e.target)) setOpen(false);
        };
        document.addEventListener('keydown', onKey);
        document.addEventListener('pointerdown', onDown, true);
        return () => {
            document.removeEventListener('keydown', onKey);
            document.removeEventListener('pointerdown', onDown, true);
        };
    }, [open]);
    const list = S.notices || [];
    const unseen = S.noticesUnseen || 0;
    const toggle = async () => {
        const o = !open;
        setOpen(o);
        if (!o) return;
        S.noticesUnseen = 0;
        changed();
        if (isAdmin()) {
            try {
                setAlerts((await http.get('/api/v1/alerts')).alerts);
            } catch (e) {
                setAlerts({ error: errorText(e) });
            }
        }
    };
    const go = (cid) => {
        if (!cid) return;
        setOpen(false);
        setView('all');
        openConv(cid);
    };
    return (
        <div class="notices" ref={root}>
            <button type="button" class="ghost bell" data-action="notices" aria-expanded={open ? 'true' : 'false'} title={t('notices.title')} onClick={toggle}>
                {t('notices.button')}
                {unseen > 0 ? (
                    <span class="badge" data-notices-unseen={unseen}>
                        {unseen}
                    </span>
                ) : null}
            </button>
            {open ? (
                <div class="notices-panel" data-panel="notices">
                    <h3>{t('notices.title')}</h3>
                    {list.length === 0 ? <p class="muted">{t('notices.empty')}</p> : null}
                    <ul class="notice-list">
                        {list.map((n) => (
                            <li key={n.id} data-notice-id={n.id} data-kind={n.kind}>
                                <button type="button" class="link" onClick={() => go(n.conversation_id)}>
                                    {noticeText(n)}
                                </button>
                                <span class="muted small"> {fmtDateTime(n.ts)}</span>
                            </li>
                        ))}
                    </ul>
                    {isAdmin() ? (
                        <>
                            <h3>{t('alerts.title')}</h3>
                            {alerts && alerts.error ? <Notice kind="error">{alerts.error}</Notice> : null}
                            {Array.isArray(alerts) && alerts.length === 0 ? <p class="muted">{t('alerts.empty')}</p> : null}
                            <ul class="notice-list" data-list="alerts">
                                {(Array.isArray(alerts) ? alerts : []).map((a) => (
                                    <li key={a.id} data-alert={a.conversation_id}>
                                        <button type="button" class="link" onClick={() => go(a.conversation_id)}>
                                            {t('alerts.health', { customer: a.customer, n: a.count, category: a.category, days: a.window_days })}
                                        </button>
                                        <span class="muted small">
                                            {' '}
                                            {a.site} · {fmtDateTime(a.ts)}
                                        </span>
                                    </li>
                                ))}
                            </ul>
                        </>
                    ) : null}
                </div>
            ) : null}
        </div>
    );
}
