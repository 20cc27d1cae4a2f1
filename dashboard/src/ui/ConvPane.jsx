import { useRef, useLayoutEffect, useState, useEffect } from 'preact/hooks';
import { Attachments } from './Attachments.jsx';
import { S, loadOlder, accept, updateConv, isMine, retryOutbox, discardOutbox, showDialog, ensureHistory, errorText, otherViewers, takeOver } from '../store.js';
import { t } from '../i18n.js';
import { PRIORITIES } from '../util.js';
import { StatusChip, SlaBadge, RichText, fmtTime, fmtDateTime, Notice } from './common.jsx';
import { Composer, addFiles } from './Composer.jsx';
import { KbSuggest } from './Kb.jsx';

export function ConvPane({ cid }) {
    const c = cid ? S.convs.get(cid) : null;
    if (!c) {
        return (
            <section class="conv-pane empty-pane" data-pane="conversation">
                <div class="empty">{t('conv.none')}</div>
            </section>
        );
    }
    return <OpenConv c={c} />;
}

const hasFiles = (e) => !!e.dataTransfer && [...e.dataTransfer.types].includes('Files');

/** An open conversation; files dropped anywhere on it go to the composer's tray. */
function OpenConv({ c }) {
    const [dragging, setDragging] = useState(false);
    const droppable = c.status !== 'closed';
    const over = (e) => {
        if (!droppable || !hasFiles(e)) return;
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
        if (!dragging) setDragging(true);
    };
    return (
        <section
            class={`conv-pane ${dragging ? 'dragging' : ''}`}
            data-pane="conversation"
            data-cid={c.id}
            data-status={c.status}
            aria-label={t('conv.label')}
            onDragEnter={over}
            onDragOver={over}
            onDragLeave={(e) => {
                if (!e.relatedTarget || !e.currentTarget.contains(e.relatedTarget)) setDragging(false);
            }}
            onDrop={(e) => {
                setDragging(false);
                if (!droppable || !e.dataTransfer || !e.dataTransfer.files.length) return;
                e.preventDefault();
                addFiles(c.id, [...e.dataTransfer.files]);
            }}
        >
            {dragging ? (
                <div class="drop-hint" aria-hidden="true">
                    {t('att.drop')}
                </div>
            ) : null}
            <ConvHead c={c} />
            <MessageList c={c} />
            <TypingLine cid={c.id} />
            <KbSuggest c={c} />
            <Composer c={c} />
        </section>
    );
}

function ConvHead({ c }) {
    const mine = isMine(c);
    const name = (c.visitor && c.visitor.name) || t('conv.visitor');
    const [busy, setBusy] = useState(false);
    const act = (fn) => async () => {
        setBusy(true);
        try {
            await fn();
        } catch {
            /* toast shown */
        } finally {
            setBusy(false);
        }
    };
    const closed = c.status === 'closed';
    return (
        <div class="conv-head">
            <div class="conv-title">
                <h2 class="visitor-name">{name}</h2>
                {c.visitor && c.visitor.email ? <span class="muted email">{c.visitor.email}</span> : null}
                <span class="spacer" />
                <StatusChip status={c.status} />
                {c.ticket ? (
                    <span class="ticket-no" data-ticket={c.ticket.number}>
                        {t('ticket.number', { n: c.ticket.number })}
                    </span>
                ) : null}
                {c.ticket ? <SlaBadge conv={c} /> : null}
                {c.channel === 'email' ? (
                    <span class="channel-badge" data-channel="email">
                        {t('conv.channelEmail')}
                    </span>
                ) : null}
            </div>
            {c.subject ? <div class="subject">{c.subject}</div> : null}
            <Collision cid={c.id} />
            <div class="conv-meta">
                <span class="assignee-line" data-assignee={c.assignee ? c.assignee.id : ''}>
                    {c.assignee ? t('conv.assignedTo', { name: mine ? t('conv.you') : c.assignee.name }) : t('conv.unassigned')}
                </span>
                {c.team ? <span class="chip team">{t('conv.team', { team: c.team })}</span> : null}
                {c.category ? <span class="chip">{c.category}</span> : null}
                <span class="muted">{t('conv.started', { t: fmtDateTime(c.created_at) })}</span>
                {c.csat ? (
                    <span class="chip csat" title={c.csat.comment || ''}>
                        {t('conv.csat', { n: c.csat.score })}
                    </span>
                ) : null}
            </div>
            <div class="conv-actions">
                {c.status === 'queued' || (!c.assignee && !closed) ? (
                    <button type="button" class="primary" data-action="accept" disabled={busy} onClick={act(() => accept(c.id))}>
                        {t('action.accept')} <kbd>a</kbd>
                    </button>
                ) : null}
                {c.assignee && !mine && !closed ? (
                    <button type="button" data-action="takeover" disabled={busy} onClick={act(() => takeOver(c.id))}>
                        {t('action.takeOver')}
                    </button>
                ) : null}
                {!closed ? (
                    <button type="button" data-action="transfer" disabled={busy} onClick={() => showDialog({ kind: 'transfer', cid: c.id })}>
                        {t('action.transfer')} <kbd>t</kbd>
                    </button>
                ) : null}
                {c.status === 'open' || c.status === 'pending' || c.status === 'queued' ? (
                    <button type="button" data-action="resolve" disabled={busy} onClick={act(() => updateConv(c.id, { status: 'resolved' }))}>
                        {t('action.resolve')} <kbd>e</kbd>
                    </button>
                ) : null}
                {c.status === 'open' ? (
                    <button type="button" data-action="pending" disabled={busy} onClick={act(() => updateConv(c.id, { status: 'pending' }))}>
                        {t('action.pending')}
                    </button>
                ) : null}
                {c.status === 'resolved' || c.status === 'pending' ? (
                    <button type="button" data-action="reopen" disabled={busy} onClick={act(() => updateConv(c.id, { status: 'open' }))}>
                        {t('action.reopen')}
                    </button>
                ) : null}
                {!closed ? (
                    <button
                        type="button"
                        class="danger"
                        data-action="close"
                        disabled={busy}
                        onClick={act(async () => {
                            if (window.confirm(t('action.closeConfirm'))) await updateConv(c.id, { status: 'closed' });
                        })}
                    >
                        {t('action.close')}
                    </button>
                ) : null}
                <label class="inline">
                    {t('conv.priority')}
                    <select
                        data-field="priority"
                        value={c.priority || 'normal'}
                        disabled={closed || busy}
                        onChange={(e) => {
                            const v = e.currentTarget.value;
                            act(() => updateConv(c.id, { priority: v }))();
                        }}
                    >
                        {PRIORITIES.map((p) => (
                            <option value={p} key={p}>
                                {t(`prio.${p}`)}
                            </option>
                        ))}
                    </select>
                </label>
            </div>
            <Tags c={c} disabled={closed} />
        </div>
    );
}

/** Collision detection: the other agents who have this conversation open, and who of them
 *  writes a reply or a note (viewing frame, docs/protocol.md). */
function Collision({ cid }) {
    const others = otherViewers(cid);
    if (!others.length) return null;
    const key = (v) => (v.typing === 'note' ? 'collide.typingNote' : v.typing === 'reply' ? 'collide.typingReply' : 'collide.viewing');
    const writing = others.some((v) => v.typing);
    return (
        <div class={`collision ${writing ? 'writing' : ''}`} role="status" aria-live="polite" data-collision={others.map((v) => `${v.id}:${v.typing || 'viewing'}`).join(' ')}>
            {others.map((v, i) => (
                <span key={v.id} class="viewer" data-viewer={v.id} data-typing={v.typing || ''}>
                    {i > 0 ? ' · ' : ''}
                    {t(key(v), { name: v.name || t('msg.agent') })}
                </span>
            ))}
        </div>
    );
}

function Tags({ c, disabled }) {
    const [v, setV] = useState('');
    const tags = c.tags || [];
    const save = (next) => updateConv(c.id, { tags: next }).catch(() => {});
    return (
        <div class="tags" data-tags={tags.join(',')}>
            <span class="muted">{t('conv.tags')}</span>
            {tags.map((tag) => (
                <span class="chip tag" key={tag}>
                    {tag}
                    {!disabled ? (
                        <button type="button" class="icon" aria-label={t('conv.removeTag', { tag })} onClick={() => save(tags.filter((x) => x !== tag))}>
                            ×
                        </button>
                    ) : null}
                </span>
            ))}
            {!disabled ? (
                <input
                    class="tag-input"
                    data-field="tag"
                    placeholder={t('conv.addTag')}
                    value={v}
                    maxLength={64}
                    onInput={(e) => setV(e.currentTarget.value)}
                    onKeyDown={(e) => {
                        if (e.key === 'Enter' || e.key === ',') {
                            e.preventDefault();
                            const tag = v.trim();
                            if (tag && !tags.includes(tag)) save([...tags, tag]);
                            setV('');
                        }
                    }}
                />
            ) : null}
        </div>
    );
}

function authorClass(m) {
    if (!m.author || m.author.kind === 'system') return 'system';
    if (m.author.kind === 'visitor') return 'visitor';
    if (S.me && m.author.id === S.me.id) return 'me';
    return 'agent';
}

function Message({ m, readSeq }) {
    const cls = authorClass(m);
    const who = cls === 'system' ? t('msg.system') : cls === 'me' ? t('msg.you') : m.author.name || (cls === 'visitor' ? t('conv.visitor') : t('msg.agent'));
    return (
        <li class={`msg from-${cls} ${m.private ? 'note' : ''}`} data-seq={m.seq} data-kind={cls} data-private={m.private ? 'true' : 'false'}>
            <div class="msg-meta">
                <span class="who">{who}</span>
                {m.private ? <span class="note-label">{t('msg.note')}</span> : null}
                <span class="when" title={fmtDateTime(m.ts)}>
                    {fmtTime(m.ts)}
                </span>
            </div>
            <div class="msg-body">
                <RichText text={m.body} />
                <Attachments list={m.attachments} />
            </div>
            {cls === 'me' && !m.private ? (
                <div class="receipt" data-receipt={readSeq >= m.seq ? 'read' : 'sent'}>
                    {readSeq >= m.seq ? t('msg.read') : t('msg.sent')}
                </div>
            ) : null}
        </li>
    );
}

function Pending({ item }) {
    return (
        <li class={`msg from-me pending ${item.private ? 'note' : ''}`} data-cmid={item.cmid} data-state={item.state}>
            <div class="msg-meta">
                <span class="who">{t('msg.you')}</span>
                {item.private ? <span class="note-label">{t('msg.note')}</span> : null}
            </div>
            <div class="msg-body">
                <RichText text={item.body} />
                <Attachments list={item.files} />
            </div>
            <div class="receipt">
                {item.state === 'failed' ? (
                    <>
                        <span class="err">{t('msg.failed', { why: item.errorText || item.error || '' })}</span>{' '}
                        <button type="button" class="link" onClick={() => retryOutbox(item)}>
                            {t('msg.retry')}
                        </button>{' '}
                        <button type="button" class="link" onClick={() => discardOutbox(item)}>
                            {t('msg.discard')}
                        </button>
                    </>
                ) : S.conn === 'online' ? (
                    t('msg.sending')
                ) : (
                    t('msg.queuedOffline')
                )}
            </div>
        </li>
    );
}

function MessageList({ c }) {
    const e = S.msgs.get(c.id);
    const list = e ? e.list : [];
    const pending = S.outbox.filter((x) => x.cid === c.id);
    const readSeq = S.visitorRead.get(c.id) || 0;
    const ref = useRef(null);
    const st = useRef({ cid: null, first: null, last: null, height: 0, top: 0, atBottom: true, pend: 0 });

    useLayoutEffect(() => {
        const el = ref.current;
        if (!el) return;
        const p = st.current;
        const first = list.length ? list[0].seq : null;
        const last = list.length ? list[list.length - 1].seq : null;
        if (p.cid !== c.id) {
            el.scrollTop = el.scrollHeight;
            p.atBottom = true;
        } else if (p.first !== null && first !== null && first < p.first && last === p.last) {
            // an older page was put in front: keep what the agent looks at in place
            el.scrollTop = el.scrollHeight - p.height + p.top;
        } else if ((last !== p.last || pending.length !== p.pend) && p.atBottom) {
            el.scrollTop = el.scrollHeight;
        }
        p.cid = c.id;
        p.first = first;
        p.last = last;
        p.pend = pending.length;
        p.height = el.scrollHeight;
        p.top = el.scrollTop;
    });

    const onScroll = () => {
        const el = ref.current;
        const p = st.current;
        p.atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        p.top = el.scrollTop;
        p.height = el.scrollHeight;
        if (el.scrollTop < 60 && e && e.loaded && !e.complete && !e.loading) loadOlder(c.id);
    };

    return (
        <div class="messages" ref={ref} onScroll={onScroll} data-messages={c.id} tabIndex={-1}>
            {e && e.loaded && !e.complete ? (
                <div class="older">
                    <button type="button" class="link" data-action="older" disabled={e.loading} onClick={() => loadOlder(c.id)}>
                        {e.loading ? t('msg.loading') : t('msg.older')}
                    </button>
                </div>
            ) : null}
            {e && e.loaded && e.complete ? <div class="older muted">{t('msg.start')}</div> : null}
            {!e || (!e.loaded && e.loading) ? <div class="older muted">{t('msg.loading')}</div> : null}
            {e && e.error && !e.loaded ? (
                <Notice kind="error">
                    {errorText(e.error)}{' '}
                    <button type="button" class="link" onClick={() => (S.msgs.delete(c.id), ensureHistory(c.id))}>
                        {t('msg.retry')}
                    </button>
                </Notice>
            ) : null}
            <ol class="msg-list">
                {list.map((m) => (
                    <Message key={m.seq} m={m} readSeq={readSeq} />
                ))}
                {pending.map((item) => (
                    <Pending key={item.cmid} item={item} />
                ))}
            </ol>
        </div>
    );
}

function TypingLine({ cid }) {
    const x = S.typing.get(cid);
    const c = S.convs.get(cid);
    const name = x && (x.name || (x.kind === 'visitor' ? (c && c.visitor && c.visitor.name) || t('conv.visitor') : t('msg.agent')));
    return (
        <div class="typing" aria-live="polite" data-typing={x ? 'true' : 'false'}>
            {x ? t('conv.typing', { name }) : ''}
        </div>
    );
}
