import { useState } from 'preact/hooks';
import { S, isAdmin, loadCanned, toast, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { unknownVars } from '../util.js';
import { NotAvailable, Notice, useLoad } from './common.jsx';

/** Only what the form changed of a canned reply (the API merges a patch). */
function cannedPatch(initial, f) {
    const out = {};
    for (const k of ['scope', 'shortcut', 'title', 'body']) if (f[k] !== initial[k]) out[k] = f[k];
    return out;
}

function CannedForm({ site, initial, scope = 'agent', onDone, onCancel }) {
    const [f, setF] = useState(initial || { scope, shortcut: '', title: '', body: '' });
    const [err, setErr] = useState(null);
    const [busy, setBusy] = useState(false);
    const set = (k) => (e) => setF({ ...f, [k]: e.currentTarget.value });
    // a misspelt variable would reach a customer as written: refused here and by the server
    const unknown = unknownVars(f.body);
    // a shared reply is the admins' to move; an agent's own stays theirs
    const scopeEditable = isAdmin() || !initial || !initial.id;
    return (
        <form
            class="form canned-form"
            data-form="canned"
            onSubmit={async (e) => {
                e.preventDefault();
                if (unknown.length) return;
                setBusy(true);
                setErr(null);
                try {
                    if (initial && initial.id) await http.patch(`/api/v1/canned/${http.enc(initial.id)}`, cannedPatch(initial, f));
                    else await http.post('/api/v1/canned', { site, scope: f.scope, shortcut: f.shortcut, title: f.title, body: f.body });
                    loadCanned(site, true);
                    onDone();
                } catch (ex) {
                    setErr(errorText(ex));
                } finally {
                    setBusy(false);
                }
            }}
        >
            {scopeEditable ? (
                <label>
                    {t('canned.scope')}
                    <select name="scope" value={f.scope} onChange={set('scope')}>
                        <option value="agent">{t('canned.scopeAgent')}</option>
                        {isAdmin() ? <option value="site">{t('canned.scopeSite')}</option> : null}
                    </select>
                </label>
            ) : null}
            <label>
                {t('canned.shortcut')}
                <input name="shortcut" required maxLength={64} pattern="[^\s\/]+" title={t('canned.shortcutRule')} value={f.shortcut} onInput={set('shortcut')} placeholder="greet" />
            </label>
            <label>
                {t('canned.titleField')}
                <input name="title" maxLength={200} value={f.title} onInput={set('title')} />
            </label>
            <label>
                {t('canned.body')}
                <textarea name="body" required rows={4} maxLength={8192} value={f.body} onInput={set('body')} aria-invalid={unknown.length ? 'true' : 'false'} />
                <span class="muted small">{t('canned.vars')}</span>
            </label>
            {unknown.length ? (
                <Notice kind="error" testid="unknown-vars">
                    {t('canned.unknownVars', { vars: unknown.join(' ') })}
                </Notice>
            ) : null}
            {err ? <Notice kind="error">{err}</Notice> : null}
            <div class="buttons">
                {onCancel ? (
                    <button type="button" onClick={onCancel}>
                        {t('common.cancel')}
                    </button>
                ) : null}
                <button type="submit" class="primary" disabled={busy || unknown.length > 0} data-action="save-canned">
                    {t('common.save')}
                </button>
            </div>
        </form>
    );
}

/** Canned replies of one site: the agent's own, and the site's shared ones (admins edit those). */
export function CannedManager({ site, scope = 'agent' }) {
    const [editing, setEditing] = useState(null);
    const [adding, setAdding] = useState(false);
    const res = useLoad(() => http.get(`/api/v1/canned${http.qs({ site })}`), [site, S.canned.get(site) && S.canned.get(site).at]);
    if (res.state === 'missing') return <NotAvailable what={t('view.canned')} />;
    if (res.state === 'error') return <Notice kind="error">{errorText(res.error)}</Notice>;
    const list = (res.data && res.data.canned) || [];
    return (
        <div class="canned-manager">
            <div class="toolbar">
                <button type="button" class="primary" data-action="add-canned" onClick={() => setAdding(true)}>
                    {t('canned.add')}
                </button>
            </div>
            {adding ? <CannedForm site={site} scope={scope} onDone={() => (setAdding(false), res.reload())} onCancel={() => setAdding(false)} /> : null}
            <table class="table" data-table="canned">
                <thead>
                    <tr>
                        <th>{t('canned.shortcut')}</th>
                        <th>{t('canned.titleField')}</th>
                        <th>{t('canned.body')}</th>
                        <th>{t('canned.scope')}</th>
                        <th />
                    </tr>
                </thead>
                <tbody>
                    {list.map((c) =>
                        editing === c.id ? (
                            <tr key={c.id}>
                                <td colSpan={5}>
                                    <CannedForm site={site} initial={c} onDone={() => (setEditing(null), res.reload())} onCancel={() => setEditing(null)} />
                                </td>
                            </tr>
                        ) : (
                            <tr key={c.id} data-canned={c.shortcut}>
                                <td>
                                    <code>/{c.shortcut}</code>
                                </td>
                                <td>{c.title}</td>
                                <td class="pre">{c.body}</td>
                                <td>{c.scope === 'site' ? t('canned.scopeSite') : t('canned.scopeAgent')}</td>
                                <td class="actions">
                                    {c.scope === 'agent' || isAdmin() ? (
                                        <>
                                            <button type="button" class="small" onClick={() => setEditing(c.id)}>
                                                {t('common.edit')}
                                            </button>
                                            <button
                                                type="button"
                                                class="small danger"
                                                onClick={async () => {
                                                    if (!window.confirm(t('canned.deleteConfirm', { s: c.shortcut }))) return;
                                                    try {
                                                        await http.del(`/api/v1/canned/${http.enc(c.id)}`);
                                                        loadCanned(site, true);
                                                        res.reload();
                                                    } catch (ex) {
                                                        toast(errorText(ex), 'error');
                                                    }
                                                }}
                                            >
                                                {t('common.delete')}
                                            </button>
                                        </>
                                    ) : null}
                                </td>
                            </tr>
                        ),
                    )}
                </tbody>
            </table>
            {list.length === 0 && res.state === 'ok' ? <p class="muted">{t('canned.empty')}</p> : null}
        </div>
    );
}

export function CannedPage() {
    const sites = (S.me && S.me.sites) || [];
    const [site, setSite] = useState(sites[0] || '');
    return (
        <section class="page" data-page="canned">
            <div class="page-head">
                <h2>{t('view.canned')}</h2>
                <select aria-label={t('common.site')} value={site} onChange={(e) => setSite(e.currentTarget.value)}>
                    {sites.map((s) => (
                        <option key={s} value={s}>
                            {s}
                        </option>
                    ))}
                </select>
            </div>
            <p class="muted">{t('canned.intro')}</p>
            {site ? <CannedManager site={site} /> : null}
        </section>
    );
}
