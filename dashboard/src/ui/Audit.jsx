// Admin > Audit log (docs/api.md "Audit log", docs/ops.md "Audit log"): a site's admin
// changes and its agents' logins, failed logins, logouts and revocations, newest first,
// filtered by actor, action and time, a page at a time, exported as CSV; and the site's
// retention of it.
import { useState } from 'preact/hooks';
import { toast, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { NotAvailable, Notice, useLoad, fmtDateTime, saveCsv } from './common.jsx';

const base = (site) => `/api/v1/admin/sites/${http.enc(site)}`;
// the action families of the filter (docs/ops.md "Audit log"); a family matches its actions
const ACTIONS = ['site', 'team', 'sla', 'agent', 'rule', 'webhook', 'kb', 'canned', 'login', 'login_failed', 'logout', 'tokens', 'api_token'];

/** datetime-local value → ms, or '' */
function ms(v) {
    const n = v ? new Date(v).getTime() : NaN;
    return Number.isFinite(n) ? n : '';
}

function show(v) {
    if (v === undefined) return '–';
    if (typeof v === 'string') return v === '' ? '""' : v;
    return JSON.stringify(v);
}

/** The fields an entry changed, one line each: field: before → after. */
function Changes({ before, after }) {
    const keys = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])].sort();
    if (!keys.length) return <span class="muted">–</span>;
    return (
        <ul class="audit-changes">
            {keys.map((k) => (
                <li key={k} data-field={k}>
                    <b>{k}</b>: <span class="before">{show(before && before[k])}</span> → <span class="after">{show(after && after[k])}</span>
                </li>
            ))}
        </ul>
    );
}

function Retention({ site }) {
    const res = useLoad(() => http.get('/api/v1/admin/sites'), [site]);
    const rec = res.state === 'ok' ? res.data.sites.find((s) => s.key === site) : null;
    const [days, setDays] = useState(null);
    const [busy, setBusy] = useState(false);
    const [err, setErr] = useState(null);
    if (!rec) return null;
    const value = days ?? String(rec.audit_retain_days ?? '');
    return (
        <form
            class="form inline-form audit-retention"
            data-form="audit-retention"
            onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                setErr(null);
                try {
                    await http.patch(base(site), { audit_retain_days: Number(value) });
                    toast(t('audit.retentionSaved'));
                    setDays(null);
                    res.reload();
                } catch (ex) {
                    setErr(errorText(ex));
                } finally {
                    setBusy(false);
                }
            }}
        >
            <label class="inline">
                {t('audit.retention')}
                <input name="audit_retain_days" type="number" min="1" max="3650" required value={value} onInput={(e) => setDays(e.currentTarget.value)} />
            </label>
            <button type="submit" disabled={busy}>
                {t('common.save')}
            </button>
            {err ? <Notice kind="error">{err}</Notice> : null}
        </form>
    );
}

export function Audit({ site }) {
    const [form, setForm] = useState({ actor: '', action: '', since: '', until: '' });
    const [filters, setFilters] = useState({});
    const [pages, setPages] = useState([]); // later pages, appended by "Load more"
    const [more, setMore] = useState(null);
    const [csvErr, setCsvErr] = useState(false);
    const first = useLoad(() => http.get(`${base(site)}/audit${http.qs({ ...filters, limit: 50 })}`), [site, JSON.stringify(filters)]);
    if (first.state === 'missing') return <NotAvailable what={t('admin.audit')} />;
    const entries = first.state === 'ok' ? [...first.data.entries, ...pages.flatMap((p) => p.entries)] : [];
    const cursor = pages.length ? pages[pages.length - 1].next_cursor : first.state === 'ok' ? first.data.next_cursor : null;
    const set = (k) => (e) => setForm({ ...form, [k]: e.currentTarget.value });
    return (
        <div class="audit" data-audit={site}>
            <p class="muted">{t('audit.intro')}</p>
            <Retention site={site} />
            <form
                class="form inline-form audit-filters"
                data-form="audit-filters"
                onSubmit={(e) => {
                    e.preventDefault();
                    setPages([]);
                    setFilters({ actor: form.actor.trim(), action: form.action, since: ms(form.since), until: ms(form.until) });
                }}
            >
                <label class="inline">
                    {t('audit.actor')}
                    <input name="actor" placeholder="agent@example.com" value={form.actor} onInput={set('actor')} />
                </label>
                <label class="inline">
                    {t('audit.action')}
                    <select name="action" value={form.action} onChange={set('action')}>
                        <option value="">{t('audit.anyAction')}</option>
                        {ACTIONS.map((a) => (
                            <option key={a} value={a}>
                                {a}
                            </option>
                        ))}
                    </select>
                </label>
                <label class="inline">
                    {t('audit.since')}
                    <input name="since" type="datetime-local" value={form.since} onInput={set('since')} />
                </label>
                <label class="inline">
                    {t('audit.until')}
                    <input name="until" type="datetime-local" value={form.until} onInput={set('until')} />
                </label>
                <button type="submit">{t('audit.apply')}</button>
                <button
                    type="button"
                    data-csv="audit"
                    onClick={() => {
                        setCsvErr(false);
                        saveCsv(`${base(site)}/audit${http.qs({ ...filters, format: 'csv' })}`, `chatdesk-audit-${site}.csv`).catch(() => setCsvErr(true));
                    }}
                >
                    {t('audit.csv')}
                </button>
            </form>
            {csvErr ? <Notice kind="error">{t('rpt.csvFailed')}</Notice> : null}
            {first.state === 'error' ? <Notice kind="error">{errorText(first.error)}</Notice> : null}
            {first.state === 'loading' ? <p class="muted">{t('msg.loading')}</p> : null}
            {first.state === 'ok' && !entries.length ? <p class="muted" data-empty="audit">{t('audit.empty')}</p> : null}
            {entries.length ? (
                <table class="table" data-table="audit">
                    <thead>
                        <tr>
                            {['time', 'actor', 'address', 'action', 'target', 'changes'].map((k) => (
                                <th key={k}>{t(`audit.${k}`)}</th>
                            ))}
                        </tr>
                    </thead>
                    <tbody>
                        {entries.map((e) => (
                            <tr key={e.id} data-entry={e.id} data-action={e.action}>
                                <td title={e.time}>{fmtDateTime(e.ts)}</td>
                                <td data-col="actor">{e.actor_email || e.actor || '–'}</td>
                                <td data-col="address">{e.address || '–'}</td>
                                <td data-col="action">{e.action}</td>
                                <td data-col="target">{e.target}</td>
                                <td>
                                    <Changes before={e.before} after={e.after} />
                                </td>
                            </tr>
                        ))}
                    </tbody>
                </table>
            ) : null}
            {cursor ? (
                <button
                    type="button"
                    data-action="audit-more"
                    disabled={more === 'busy'}
                    onClick={async () => {
                        setMore('busy');
                        try {
                            const p = await http.get(`${base(site)}/audit${http.qs({ ...filters, limit: 50, cursor })}`);
                            setPages([...pages, p]);
                            setMore(null);
                        } catch (ex) {
                            setMore(null);
                            toast(errorText(ex), 'error');
                        }
                    }}
                >
                    {t('audit.more')}
                </button>
            ) : null}
        </div>
    );
}
