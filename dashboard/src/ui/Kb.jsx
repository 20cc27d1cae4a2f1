// The knowledge base in the dashboard (docs/kb.md): the admin page of one site's
// articles (list, create, edit, publish, delete) and the "suggested articles" list of a
// conversation, whose button puts the article's public link into the composer.
import { useState, useEffect } from 'preact/hooks';
import { toast, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { NotAvailable, Notice, useLoad, fmtDateTime } from './common.jsx';
import { insertIntoComposer } from './Composer.jsx';

const LOCALES = ['zh-CN', 'en'];
const base = (site) => `/api/v1/kb/sites/${http.enc(site)}/articles`;

/** The public page of an article (served by any node at /kb/). */
export function articleUrl(a) {
    return `${location.origin}/kb/?site=${encodeURIComponent(a.site)}&id=${encodeURIComponent(a.id)}`;
}

function ArticleForm({ site, initial, onDone, onCancel }) {
    const [f, setF] = useState(() => ({ title: '', body: '', category: '', locale: 'zh-CN', status: 'draft', ...(initial || {}) }));
    const [busy, setBusy] = useState(false);
    const [err, setErr] = useState(null);
    const bind = (k) => ({ name: k, value: f[k] ?? '', onInput: (e) => setF((c) => ({ ...c, [k]: e.currentTarget.value })), onChange: (e) => setF((c) => ({ ...c, [k]: e.currentTarget.value })) });
    const save = async (e) => {
        e.preventDefault();
        setBusy(true);
        setErr(null);
        const body = { title: f.title, body: f.body, category: f.category, locale: f.locale, status: f.status };
        try {
            if (initial && initial.id) await http.patch(`${base(site)}/${http.enc(initial.id)}`, body);
            else await http.post(base(site), body);
            onDone();
        } catch (ex) {
            setErr(errorText(ex));
        } finally {
            setBusy(false);
        }
    };
    return (
        <form class="form kb-form" data-form="kb-article" onSubmit={save}>
            {err ? <Notice kind="error">{err}</Notice> : null}
            <label>
                {t('kb.titleField')}
                <input type="text" required maxLength={200} {...bind('title')} />
            </label>
            <div class="row">
                <label>
                    {t('kb.category')}
                    <input type="text" maxLength={64} {...bind('category')} />
                </label>
                <label>
                    {t('kb.locale')}
                    <select {...bind('locale')}>
                        {LOCALES.map((l) => (
                            <option key={l} value={l}>
                                {t(`kb.locale.${l}`)}
                            </option>
                        ))}
                    </select>
                </label>
                <label>
                    {t('kb.status')}
                    <select {...bind('status')}>
                        <option value="draft">{t('kb.draft')}</option>
                        <option value="published">{t('kb.published')}</option>
                    </select>
                </label>
            </div>
            <label>
                {t('kb.body')}
                <textarea rows={10} {...bind('body')} />
            </label>
            <p class="muted">{t('kb.bodyHint')}</p>
            <div class="actions">
                <button type="button" onClick={onCancel}>
                    {t('common.cancel')}
                </button>
                <button type="submit" class="primary" disabled={busy} data-action="save-article">
                    {t('common.save')}
                </button>
            </div>
        </form>
    );
}

/** All articles of one site (admin tab). */
export function KbManager({ site }) {
    const [status, setStatus] = useState('');
    const [q, setQ] = useState('');
    const [editing, setEditing] = useState(null); // null | 'new' | article (with body)
    const [n, setN] = useState(0);
    const res = useLoad(
        () => (q.trim() ? http.get(`/api/v1/kb/sites/${http.enc(site)}/search${http.qs({ q: q.trim(), status, limit: 20 })}`) : http.get(`${base(site)}${http.qs({ status })}`)),
        [site, status, q, n],
    );
    const reload = () => setN((x) => x + 1);
    if (res.state === 'missing') return <NotAvailable what={t('admin.kb')} />;
    const list = (res.data && res.data.articles) || [];
    const edit = async (a) => {
        try {
            setEditing((await http.get(`${base(site)}/${http.enc(a.id)}`)).article);
        } catch (ex) {
            toast(errorText(ex), 'error');
        }
    };
    const act = (fn) => async () => {
        try {
            await fn();
            reload();
        } catch (ex) {
            toast(errorText(ex), 'error');
        }
    };
    return (
        <div class="kb-manager">
            <div class="toolbar">
                <button type="button" class="primary" data-action="add-article" onClick={() => setEditing('new')}>
                    {t('kb.add')}
                </button>
                <input type="search" name="kb-q" placeholder={t('kb.search')} aria-label={t('kb.search')} value={q} onInput={(e) => setQ(e.currentTarget.value)} />
                <select name="kb-status" aria-label={t('kb.status')} value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
                    <option value="">{t('kb.all')}</option>
                    <option value="draft">{t('kb.draft')}</option>
                    <option value="published">{t('kb.published')}</option>
                </select>
            </div>
            {res.state === 'error' ? <Notice kind="error">{errorText(res.error)}</Notice> : null}
            {editing ? (
                <ArticleForm
                    key={editing === 'new' ? 'new' : editing.id}
                    site={site}
                    initial={editing === 'new' ? null : editing}
                    onDone={() => (setEditing(null), reload())}
                    onCancel={() => setEditing(null)}
                />
            ) : null}
            <table class="table" data-table="kb">
                <thead>
                    <tr>
                        <th>{t('kb.titleField')}</th>
                        <th>{t('kb.category')}</th>
                        <th>{t('kb.locale')}</th>
                        <th>{t('kb.status')}</th>
                        <th>{t('kb.updated')}</th>
                        <th />
                    </tr>
                </thead>
                <tbody>
                    {list.map((a) => (
                        <tr key={a.id} data-article={a.id} data-status={a.status}>
                            <td>{a.status === 'published' ? <a href={articleUrl(a)} target="_blank" rel="noopener">{a.title}</a> : a.title}</td>
                            <td>{a.category}</td>
                            <td>{t(`kb.locale.${a.locale}`)}</td>
                            <td>
                                <span class={`chip kb-${a.status}`}>{a.status === 'published' ? t('kb.published') : t('kb.draft')}</span>
                            </td>
                            <td>{fmtDateTime(a.updated_at)}</td>
                            <td class="actions">
                                <button type="button" class="small" data-action="edit-article" onClick={() => edit(a)}>
                                    {t('common.edit')}
                                </button>
                                <button
                                    type="button"
                                    class="small"
                                    data-action={a.status === 'published' ? 'unpublish' : 'publish'}
                                    onClick={act(() => http.patch(`${base(site)}/${http.enc(a.id)}`, { status: a.status === 'published' ? 'draft' : 'published' }))}
                                >
                                    {a.status === 'published' ? t('kb.unpublish') : t('kb.publish')}
                                </button>
                                <button
                                    type="button"
                                    class="small danger"
                                    data-action="delete-article"
                                    onClick={act(async () => {
                                        if (window.confirm(t('kb.deleteConfirm', { title: a.title }))) await http.del(`${base(site)}/${http.enc(a.id)}`);
                                    })}
                                >
                                    {t('common.delete')}
                                </button>
                            </td>
                        </tr>
                    ))}
                </tbody>
            </table>
            {list.length === 0 && res.state === 'ok' ? <p class="muted">{q.trim() ? t('kb.noMatch') : t('kb.empty')}</p> : null}
        </div>
    );
}

/** Articles that may answer this conversation (from its subject and the visitor's last
 *  messages), each with a button that puts its link into the composer. */
export function KbSuggest({ c }) {
    const [list, setList] = useState([]);
    const [open, setOpen] = useState(true);
    useEffect(() => {
        let live = true;
        const timer = setTimeout(() => {
            http.get(`/api/v1/kb/suggest${http.qs({ conversation: c.id })}`)
                .then((r) => live && setList(r.articles || []))
                .catch(() => live && setList([]));
        }, 300);
        return () => {
            live = false;
            clearTimeout(timer);
        };
    }, [c.id, c.last_seq]);
    if (!list.length || c.status === 'closed') return null;
    return (
        <div class="kb-suggest" data-pane="kb-suggest">
            <button type="button" class="link kb-toggle" aria-expanded={open ? 'true' : 'false'} onClick={() => setOpen(!open)}>
                {t('kb.suggested', { n: list.length })}
            </button>
            {open ? (
                <ul>
                    {list.map((a) => (
                        <li key={a.id} data-article={a.id}>
                            <a href={articleUrl(a)} target="_blank" rel="noopener" title={a.snippet}>
                                {a.title}
                            </a>
                            <button type="button" class="small" data-action="insert-article" onClick={() => insertIntoComposer(c.id, `${a.title} ${articleUrl(a)}`)}>
                                {t('kb.insert')}
                            </button>
                        </li>
                    ))}
                </ul>
            ) : null}
        </div>
    );
}
