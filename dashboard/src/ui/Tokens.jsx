// Admin > API tokens (docs/api.md "API tokens"): a site's long-lived tokens for other
// systems (name, scopes, created, last used), a new token's secret shown once with a copy
// button, and revocation (the token stops working at once on every node).
import { useState } from 'preact/hooks';
import { toast, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { NotAvailable, Notice, useLoad, fmtDateTime } from './common.jsx';

const SCOPES = ['read', 'write', 'admin'];
const base = (site) => `/api/v1/admin/sites/${http.enc(site)}/tokens`;

function TokenForm({ site, onDone, onCancel }) {
    const [name, setName] = useState('');
    const [scopes, setScopes] = useState(new Set(['read']));
    const [err, setErr] = useState(null);
    const [busy, setBusy] = useState(false);
    const toggle = (s) => {
        const n = new Set(scopes);
        if (n.has(s)) n.delete(s);
        else n.add(s);
        setScopes(n);
    };
    return (
        <form
            class="form token-form"
            data-form="token"
            onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                setErr(null);
                try {
                    onDone(await http.post(base(site), { name, scopes: SCOPES.filter((s) => scopes.has(s)) }));
                } catch (ex) {
                    setErr(errorText(ex));
                } finally {
                    setBusy(false);
                }
            }}
        >
            <label>
                {t('tok.name')}
                <input name="name" required maxLength={200} placeholder={t('tok.namePlaceholder')} value={name} onInput={(e) => setName(e.currentTarget.value)} />
            </label>
            <fieldset class="sites-pick" data-field="scopes">
                <legend>{t('tok.scopes')}</legend>
                {SCOPES.map((s) => (
                    <label class="inline" key={s}>
                        <input type="checkbox" name="scope" value={s} checked={scopes.has(s)} onChange={() => toggle(s)} />
                        {t(`tok.scope.${s}`)}
                    </label>
                ))}
            </fieldset>
            <p class="muted small">{t('tok.scopeHint')}</p>
            {err ? <Notice kind="error">{err}</Notice> : null}
            <div class="buttons">
                <button type="button" onClick={onCancel}>
                    {t('common.cancel')}
                </button>
                <button type="submit" class="primary" disabled={busy || scopes.size === 0 || !name.trim()} data-action="save-token">
                    {t('tok.create')}
                </button>
            </div>
        </form>
    );
}

/** The whole token of a creation, shown this once, with a copy button. */
function SecretOnce({ made, onHide }) {
    const [copied, setCopied] = useState(false);
    const copy = async () => {
        try {
            await navigator.clipboard.writeText(made.secret);
            setCopied(true);
        } catch {
            // no clipboard (plain http, a denied permission): select the text for Ctrl+C
            const el = document.getElementById(`token-secret-${made.token.id}`);
            if (el) window.getSelection().selectAllChildren(el);
            toast(t('tok.copyManually'), 'info');
        }
    };
    return (
        <Notice kind="warn" testid="token-secret">
            <p>{t('tok.secretOnce', { name: made.token.name })}</p>
            <code id={`token-secret-${made.token.id}`} class="secret" data-secret={made.token.id}>
                {made.secret}
            </code>{' '}
            <button type="button" class="small" data-action="copy-token" aria-label={t('tok.copyLabel', { name: made.token.name })} onClick={copy}>
                {copied ? t('tok.copied') : t('tok.copy')}
            </button>{' '}
            <button type="button" class="small" data-action="hide-token" onClick={onHide}>
                {t('wh.secretHide')}
            </button>
        </Notice>
    );
}

/** The API tokens of one site. */
export function Tokens({ site }) {
    const res = useLoad(() => http.get(base(site)), [site]);
    const [adding, setAdding] = useState(false);
    const [made, setMade] = useState(null); // {secret, token}: shown once
    if (res.state === 'missing') return <NotAvailable what={t('admin.tokens')} />;
    if (res.state === 'error') return <Notice kind="error">{errorText(res.error)}</Notice>;
    const list = (res.data && res.data.tokens) || [];
    const revoke = async (x) => {
        if (!window.confirm(t('tok.revokeConfirm', { name: x.name }))) return;
        try {
            await http.del(`${base(site)}/${http.enc(x.id)}`);
            if (made && made.token.id === x.id) setMade(null);
            toast(t('tok.revoked', { name: x.name }), 'info');
            res.reload();
        } catch (ex) {
            toast(errorText(ex), 'error');
        }
    };
    return (
        <div class="tokens" data-tokens={site}>
            <p class="muted">{t('tok.intro')}</p>
            <div class="toolbar">
                <button type="button" class="primary" data-action="add-token" onClick={() => setAdding(true)}>
                    {t('tok.add')}
                </button>
            </div>
            {made ? <SecretOnce made={made} onHide={() => setMade(null)} /> : null}
            {adding ? (
                <TokenForm
                    site={site}
                    onDone={(r) => {
                        setMade(r);
                        setAdding(false);
                        res.reload();
                    }}
                    onCancel={() => setAdding(false)}
                />
            ) : null}
            <table class="table" data-table="tokens">
                <caption class="sr-only">{t('admin.tokens')}</caption>
                <thead>
                    <tr>
                        <th scope="col">{t('tok.name')}</th>
                        <th scope="col">{t('tok.scopes')}</th>
                        <th scope="col">{t('tok.created')}</th>
                        <th scope="col">{t('tok.lastUsed')}</th>
                        <th scope="col">
                            <span class="sr-only">{t('tok.actions')}</span>
                        </th>
                    </tr>
                </thead>
                <tbody>
                    {list.map((x) => (
                        <tr key={x.id} data-token={x.id}>
                            <td>
                                {x.name}
                                <div class="muted small">
                                    <code>{x.id}</code>
                                </div>
                            </td>
                            <td>{x.scopes.map((s) => t(`tok.scope.${s}`)).join(t('tok.scopeSep'))}</td>
                            <td>{fmtDateTime(x.created_at)}</td>
                            <td data-field="last-used">{x.last_used_at ? fmtDateTime(x.last_used_at) : t('tok.never')}</td>
                            <td class="actions">
                                <button type="button" class="small danger" data-action="revoke-token" aria-label={t('tok.revokeLabel', { name: x.name })} onClick={() => revoke(x)}>
                                    {t('tok.revoke')}
                                </button>
                            </td>
                        </tr>
                    ))}
                </tbody>
            </table>
            {list.length === 0 && res.state === 'ok' ? <p class="muted">{t('tok.empty')}</p> : null}
        </div>
    );
}
