import { S, convsFor, openConv, queuePosition, accept, isMine } from '../store.js';
import { t } from '../i18n.js';
import { Since, StatusChip, PrioChip, SlaBadge, fmtTime, Notice } from './common.jsx';

function preview(c) {
    const e = S.msgs.get(c.id);
    if (e && e.list.length) {
        for (let i = e.list.length - 1; i >= 0; i--) {
            const m = e.list[i];
            if (!m.private && m.author && m.author.kind !== 'system') return m.body;
        }
    }
    return c.subject || '';
}

export function ConvItem({ c, view, selected }) {
    const unread = S.unread.get(c.id) || 0;
    const name = (c.visitor && c.visitor.name) || t('conv.visitor');
    const queued = c.status === 'queued';
    return (
        <li
            class={`conv-item ${S.active === c.id ? 'active' : ''} ${selected ? 'selected' : ''} ${unread ? 'has-unread' : ''}`}
            data-cid={c.id}
            data-status={c.status}
            aria-current={S.active === c.id ? 'true' : undefined}
        >
            <button type="button" class="conv-open" onClick={() => openConv(c.id)}>
                <div class="row1">
                    <span class="name">{name}</span>
                    {c.ticket ? <span class="ticket-no">#{c.ticket.number}</span> : null}
                    <span class="spacer" />
                    {unread ? (
                        <span class="badge unread" data-unread={unread}>
                            {unread}
                        </span>
                    ) : null}
                    <span class="time">{fmtTime(c.updated_at || c.created_at)}</span>
                </div>
                <div class="row2">
                    <span class="preview">{preview(c)}</span>
                </div>
                <div class="row3">
                    {view !== 'queue' ? <StatusChip status={c.status} /> : null}
                    <PrioChip priority={c.priority} />
                    {c.team ? <span class="chip team">{c.team}</span> : null}
                    {queued ? (
                        <span class="queue-info" data-position={queuePosition(c)}>
                            {t('queue.position', { n: queuePosition(c) })} · {t('queue.waiting')} <Since ts={c.created_at} />
                        </span>
                    ) : null}
                    {view === 'all' && c.assignee && !isMine(c) ? <span class="assignee">{c.assignee.name}</span> : null}
                    {c.ticket ? <SlaBadge conv={c} compact /> : null}
                </div>
            </button>
            {queued ? (
                <button type="button" class="small primary accept" data-action="accept" onClick={() => accept(c.id)}>
                    {t('action.accept')}
                </button>
            ) : null}
        </li>
    );
}

export function ConvList({ view }) {
    const list = convsFor(view);
    const teams = view === 'queue' ? [...S.queueTeams.values()].filter((q) => q.size > 0) : [];
    return (
        <section class="list-pane" aria-label={t(`view.${view}`)} data-list={view}>
            <div class="pane-head">
                <h2>{t(`view.${view}`)}</h2>
                <span class="muted">{list.length}</span>
            </div>
            {teams.length ? (
                <div class="queue-teams">
                    {teams.map((q) => (
                        <span class="chip" key={`${q.site}|${q.team}`}>
                            {q.team || t('queue.defaultTeam')}: {q.size}
                        </span>
                    ))}
                </div>
            ) : null}
            {['all', 'pending', 'resolved'].includes(view) && S.listEndpoint === 'missing' ? <p class="hint">{t('list.sessionOnly')}</p> : null}
            {list.length === 0 ? (
                <div class="empty">{S.conn === 'online' ? t(`empty.${view}`) : t('conn.connecting')}</div>
            ) : (
                <ul class="conv-list">
                    {list.map((c, i) => (
                        <ConvItem key={c.id} c={c} view={view} selected={i === S.selectedIndex} />
                    ))}
                </ul>
            )}
        </section>
    );
}

export { Notice };
