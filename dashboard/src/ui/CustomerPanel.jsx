import { S, openConv, loadVisitor, upsertConv, loadOlder } from '../store.js';
import { conversationFiles, fmtSize, openFile } from './Attachments.jsx';
import { t } from '../i18n.js';
import { safeHref } from '../util.js';
import { NotAvailable, Notice, StatusChip, fmtDateTime, SlaBadge } from './common.jsx';

function Field({ label, children, name }) {
    if (children === null || children === undefined || children === '') return null;
    return (
        <div class="field" data-field={name}>
            <dt>{label}</dt>
            <dd>{children}</dd>
        </div>
    );
}

function UrlText({ url }) {
    if (!url) return null;
    const href = safeHref(url);
    // the text is always the raw string (rendered as text); a link only for http(s)
    return href ? (
        <a href={href} target="_blank" rel="noopener noreferrer nofollow">
            {url}
        </a>
    ) : (
        <span>{url}</span>
    );
}

function fmtAttr(v) {
    if (v === null) return 'null';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
}

/** The conversation's files, from its loaded messages (docs/attachments.md): name, type,
 *  size, who sent it and when; a click opens it through a signed link. */
function Files({ c }) {
    const e = S.msgs.get(c.id);
    if (!e || !e.loaded) return null;
    const files = conversationFiles(e.list);
    const who = (m) => {
        const a = m.author || {};
        if (a.kind === 'visitor') return a.name || (c.visitor && c.visitor.name) || t('conv.visitor');
        if (a.kind === 'agent') return S.me && a.id === S.me.id ? t('msg.you') : a.name || t('msg.agent');
        return t('msg.system');
    };
    return (
        <section class="files" aria-labelledby="cp-files">
            <h3 id="cp-files">
                {t('customer.files')} <span class="muted">{files.length}</span>
            </h3>
            {files.length === 0 ? <p class="muted">{t('customer.noFiles')}</p> : null}
            <ul class="file-list">
                {files.map(({ a, m }) => (
                    <li key={a.id} data-file={a.id}>
                        <button type="button" class="link name" title={t('att.open', { name: a.name })} onClick={() => openFile(a.id)}>
                            {a.name}
                        </button>
                        <div class="muted small">
                            <span class="type">{a.type}</span> · <span class="size">{fmtSize(a.size || 0)}</span>
                            {m.private ? <span class="note-label">{t('msg.note')}</span> : null}
                        </div>
                        <div class="muted small by">{t('customer.fileBy', { who: who(m), when: fmtDateTime(m.ts) })}</div>
                    </li>
                ))}
            </ul>
            {!e.complete ? (
                <button type="button" class="link older" disabled={e.loading} onClick={() => loadOlder(c.id)}>
                    {t('customer.filesOlder')}
                </button>
            ) : null}
        </section>
    );
}

export function CustomerPanel({ cid }) {
    const c = cid ? S.convs.get(cid) : null;
    if (!c) return <aside class="customer-pane" data-pane="customer" />;
    const vid = c.visitor && c.visitor.id;
    const st = vid ? S.visitors.get(vid) : null;
    const v = st && st.data ? st.data.visitor : null;
    const others = st && st.data ? (st.data.conversations || []).filter((x) => x.id !== c.id) : [];
    return (
        <aside class="customer-pane" data-pane="customer" aria-label={t('customer.title')}>
            <div class="pane-head">
                <h2>{t('customer.title')}</h2>
                {vid ? (
                    <button type="button" class="icon" title={t('common.refresh')} aria-label={t('common.refresh')} onClick={() => loadVisitor(vid, true)}>
                        ↻
                    </button>
                ) : null}
            </div>
            <dl class="fields">
                <Field label={t('customer.name')} name="name">
                    {(v && v.name) || (c.visitor && c.visitor.name) || t('customer.anonymous')}
                </Field>
                <Field label={t('customer.email')} name="email">
                    {(v && v.email) || (c.visitor && c.visitor.email) || null}
                </Field>
                {v ? (
                    <>
                        <Field label={t('customer.userId')} name="user_id">
                            {v.user_id ? (
                                <span>
                                    {v.user_id} <span class="chip ok">{t('customer.verified')}</span>
                                </span>
                            ) : null}
                        </Field>
                        <Field label={t('customer.page')} name="page">
                            {v.page_url ? (
                                <span class="page-info">
                                    {v.page_title ? <span class="page-title">{v.page_title}</span> : null}
                                    <UrlText url={v.page_url} />
                                </span>
                            ) : null}
                        </Field>
                        <Field label={t('customer.referrer')} name="referrer">
                            {v.referrer ? <UrlText url={v.referrer} /> : null}
                        </Field>
                        <Field label={t('customer.firstSeen')} name="created_at">
                            {v.created_at ? fmtDateTime(v.created_at) : null}
                        </Field>
                        <Field label={t('customer.lastSeen')} name="last_seen_at">
                            {v.last_seen_at ? fmtDateTime(v.last_seen_at) : null}
                        </Field>
                    </>
                ) : null}
            </dl>
            {st && st.state === 'missing' ? <NotAvailable what={t('customer.details')} /> : null}
            {st && st.state === 'error' ? <Notice kind="error">{t('customer.loadFailed')}</Notice> : null}
            {st && st.state === 'loading' && !v ? <p class="muted">{t('msg.loading')}</p> : null}
            {v && v.attributes && Object.keys(v.attributes).length ? (
                <section class="attrs">
                    <h3>{t('customer.attributes')}</h3>
                    <dl class="fields">
                        {Object.entries(v.attributes).map(([k, val]) => (
                            <div class="field" key={k} data-attr={k}>
                                <dt>{k}</dt>
                                <dd>{fmtAttr(val)}</dd>
                            </div>
                        ))}
                    </dl>
                </section>
            ) : null}
            <Files c={c} />
            {v ? (
                <section class="history">
                    <h3>
                        {t('customer.earlier')} <span class="muted">{others.length}</span>
                    </h3>
                    {others.length === 0 ? <p class="muted">{t('customer.noEarlier')}</p> : null}
                    <ul class="earlier">
                        {others.map((x) => (
                            <li key={x.id} data-cid={x.id}>
                                <button
                                    type="button"
                                    class="link"
                                    onClick={() => {
                                        upsertConv(x);
                                        openConv(x.id);
                                    }}
                                >
                                    {x.ticket ? <span class="ticket-no">#{x.ticket.number}</span> : null} {x.subject || t('customer.noSubject')}
                                </button>
                                <div class="muted small">
                                    <StatusChip status={x.status} /> {fmtDateTime(x.created_at)} {x.ticket ? <SlaBadge conv={x} compact /> : null}
                                </div>
                            </li>
                        ))}
                    </ul>
                </section>
            ) : null}
        </aside>
    );
}
