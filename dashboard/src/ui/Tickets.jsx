import { useEffect, useState, useRef } from 'preact/hooks';
import { S, openConv, upsertConv, onEvent, convsFor } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { PRIORITIES, STATUSES } from '../util.js';
import { SlaBadge, StatusChip, PrioChip, NotAvailable, Notice, fmtTime } from './common.jsx';

const PER_PAGE = 25;

export function Tickets() {
    const [f, setF] = useState({ status: '', priority: '', breached: '', q: '', page: 1 });
    const [st, setSt] = useState({ state: 'loading', ids: [], total: 0 });
    const [qInput, setQInput] = useState('');
    const live = useRef(f);
    live.current = f;

    const load = async (filters = live.current) => {
        try {
            const r = await http.get(`/api/v1/tickets${http.qs({ ...filters, per_page: PER_PAGE })}`);
            const ids = [];
            for (const c of r.tickets || []) {
                upsertConv(c);
                ids.push(c.id);
            }
            setSt({ state: 'ok', ids, total: r.total ?? ids.length });
        } catch (e) {
            setSt({ state: http.isRouteMissing(e) ? 'missing' : 'error', error: e, ids: [], total: 0 });
        }
    };

    useEffect(() => {
        load(f);
    }, [f.status, f.priority, f.breached, f.q, f.page]);

    useEffect(() => {
        let timer = null;
        const off = onEvent((ev) => {
            const relevant =
                ev.type === 'ticket.created' || ev.type === 'sla.warning' || ev.type === 'sla.breached' || ((ev.type === 'conversation.updated' || ev.type === 'conversation.assigned') && ev.conversation && ev.conversation.ticket);
            if (!relevant) return;
            clearTimeout(timer);
            timer = setTimeout(() => load(), 800);
        });
        const every = setInterval(() => load(), 30_000);
        return () => {
            off();
            clearTimeout(timer);
            clearInterval(every);
        };
    }, []);

    const set = (k, v) => setF({ ...f, [k]: v, page: k === 'page' ? v : 1 });
    let rows;
    if (st.state === 'ok') rows = st.ids.map((id) => S.convs.get(id)).filter(Boolean);
    else {
        // not available (yet): the tickets this session knows of
        rows = [...S.convs.values()].filter((c) => c.ticket).sort((a, b) => b.ticket.number - a.ticket.number);
    }
    const pages = Math.max(1, Math.ceil((st.total || 0) / PER_PAGE));
    return (
        <section class="list-pane tickets" aria-label={t('view.tickets')} data-list="tickets">
            <div class="pane-head">
                <h2>{t('view.tickets')}</h2>
                <span class="muted">{st.state === 'ok' ? st.total : rows.length}</span>
            </div>
            <form
                class="filters"
                onSubmit={(e) => {
                    e.preventDefault();
                    set('q', qInput.trim());
                }}
            >
                <input type="search" name="q" placeholder={t('tickets.search')} value={qInput} onInput={(e) => setQInput(e.currentTarget.value)} />
                <select name="status" aria-label={t('tickets.status')} value={f.status} onChange={(e) => set('status', e.currentTarget.value)}>
                    <option value="">{t('tickets.anyStatus')}</option>
                    {STATUSES.map((s) => (
                        <option value={s} key={s}>
                            {t(`status.${s}`)}
                        </option>
                    ))}
                </select>
                <select name="priority" aria-label={t('conv.priority')} value={f.priority} onChange={(e) => set('priority', e.currentTarget.value)}>
                    <option value="">{t('tickets.anyPriority')}</option>
                    {PRIORITIES.map((p) => (
                        <option value={p} key={p}>
                            {t(`prio.${p}`)}
                        </option>
                    ))}
                </select>
                <select name="breached" aria-label={t('tickets.sla')} value={f.breached} onChange={(e) => set('breached', e.currentTarget.value)}>
                    <option value="">{t('tickets.anySla')}</option>
                    <option value="true">{t('tickets.breached')}</option>
                    <option value="false">{t('tickets.notBreached')}</option>
                </select>
            </form>
            {st.state === 'missing' ? <NotAvailable what={t('tickets.list')} /> : null}
            {st.state === 'error' ? <Notice kind="error">{t('tickets.loadFailed')}</Notice> : null}
            {rows.length === 0 ? (
                <div class="empty">{st.state === 'loading' ? t('msg.loading') : t('empty.tickets')}</div>
            ) : (
                <ul class="conv-list ticket-list">
                    {rows.map((c) => (
                        <li key={c.id} class={`conv-item ${S.active === c.id ? 'active' : ''}`} data-cid={c.id} data-ticket={c.ticket ? c.ticket.number : ''}>
                            <button
                                type="button"
                                class="conv-open"
                                onClick={() => {
                                    openConv(c.id);
                                }}
                            >
                                <div class="row1">
                                    <span class="ticket-no">#{c.ticket ? c.ticket.number : ''}</span>
                                    <span class="name">{c.subject || (c.visitor && c.visitor.name) || t('conv.visitor')}</span>
                                    <span class="spacer" />
                                    <span class="time">{fmtTime(c.updated_at || c.created_at)}</span>
                                </div>
                                <div class="row3">
                                    <StatusChip status={c.status} />
                                    <PrioChip priority={c.priority} />
                                    {c.assignee ? <span class="assignee">{c.assignee.name}</span> : <span class="muted">{t('conv.unassigned')}</span>}
                                    <span class="spacer" />
                                    <SlaBadge conv={c} compact />
                                </div>
                            </button>
                        </li>
                    ))}
                </ul>
            )}
            {st.state === 'ok' && pages > 1 ? (
                <div class="pager">
                    <button type="button" disabled={f.page <= 1} onClick={() => set('page', f.page - 1)}>
                        ‹
                    </button>
                    <span>{t('common.page', { n: f.page, of: pages })}</span>
                    <button type="button" disabled={f.page >= pages} onClick={() => set('page', f.page + 1)}>
                        ›
                    </button>
                </div>
            ) : null}
        </section>
    );
}

export { convsFor };
