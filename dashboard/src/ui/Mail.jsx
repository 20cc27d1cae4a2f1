// Admin > E-mail (docs/email.md, docs/api.md "E-mail"): the site's From name and address
// and its reply address (empty: the node's defaults), a test mail, and the outbox (the
// site's last mails with their state, attempts and last error). The SMTP server itself is
// the deployment's (smtp_url in the node's settings).
import { useState } from 'preact/hooks';
import { toast, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { NotAvailable, Notice, useLoad, fmtDateTime } from './common.jsx';

const base = (site) => `/api/v1/admin/sites/${http.enc(site)}`;

function Addresses({ site, record, onSaved }) {
    const [f, setF] = useState({ mail_from: record.mail_from || '', mail_from_name: record.mail_from_name || '', mail_reply: record.mail_reply || '' });
    const [err, setErr] = useState(null);
    const [busy, setBusy] = useState(false);
    const bind = (k) => ({ name: k, value: f[k], onInput: (e) => setF({ ...f, [k]: e.currentTarget.value }) });
    return (
        <form
            class="form"
            data-form="mail-settings"
            onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                setErr(null);
                try {
                    await http.patch(base(site), { mail_from: f.mail_from.trim() || null, mail_from_name: f.mail_from_name.trim() || null, mail_reply: f.mail_reply.trim() || null });
                    toast(t('mail.saved'), 'info');
                    onSaved();
                } catch (ex) {
                    setErr(errorText(ex));
                } finally {
                    setBusy(false);
                }
            }}
        >
            <label>
                {t('mail.fromName')}
                <input maxLength={200} {...bind('mail_from_name')} />
            </label>
            <label>
                {t('mail.from')}
                <input type="email" maxLength={254} placeholder="support@example.com" {...bind('mail_from')} />
            </label>
            <label>
                {t('mail.reply')}
                <input type="email" maxLength={254} placeholder="support@example.com" {...bind('mail_reply')} />
            </label>
            <p class="muted small">{t('mail.replyHint')}</p>
            {err ? <Notice kind="error">{err}</Notice> : null}
            <div class="buttons">
                <button type="submit" class="primary" disabled={busy} data-action="save-mail">
                    {t('common.save')}
                </button>
            </div>
        </form>
    );
}

function TestMail({ site, onSent }) {
    const [to, setTo] = useState('');
    const [busy, setBusy] = useState(false);
    return (
        <form
            class="form inline-form"
            data-form="mail-test"
            onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                try {
                    await http.post(`${base(site)}/mail/test`, { to: to.trim() });
                    toast(t('mail.testQueued'), 'info');
                    onSent();
                } catch (ex) {
                    toast(errorText(ex), 'error');
                } finally {
                    setBusy(false);
                }
            }}
        >
            <label>
                {t('mail.testTo')}
                <input type="email" required maxLength={254} value={to} onInput={(e) => setTo(e.currentTarget.value)} />
            </label>
            <button type="submit" disabled={busy} data-action="send-test-mail">
                {t('mail.test')}
            </button>
        </form>
    );
}

export function Mail({ site }) {
    const sites = useLoad(() => http.get('/api/v1/admin/sites'), [site]);
    const box = useLoad(() => http.get(`${base(site)}/mail`), [site]);
    if (sites.state === 'missing' || box.state === 'missing') return <NotAvailable />;
    if (sites.state === 'error') return <Notice kind="error">{errorText(sites.error)}</Notice>;
    const record = sites.state === 'ok' ? sites.data.sites.find((s) => s.key === site) : null;
    const mails = box.state === 'ok' ? box.data.mails : [];
    return (
        <div class="mail-admin" data-mail={site}>
            <p class="muted">{t('mail.intro')}</p>
            {record ? <Addresses site={site} record={record} key={site} onSaved={sites.reload} /> : null}
            <h3>{t('mail.test')}</h3>
            <TestMail site={site} onSent={box.reload} />
            <h3>
                {t('mail.outbox')}{' '}
                <button type="button" class="small" data-action="reload-mail" onClick={box.reload}>
                    {t('mail.reload')}
                </button>
            </h3>
            <table class="table" data-table="mails">
                <thead>
                    <tr>
                        <th>{t('mail.when')}</th>
                        <th>{t('mail.kind')}</th>
                        <th>{t('mail.to')}</th>
                        <th>{t('mail.subject')}</th>
                        <th>{t('mail.state')}</th>
                    </tr>
                </thead>
                <tbody>
                    {mails.map((m) => (
                        <tr key={m.id} data-mail-id={m.id} data-state={m.state}>
                            <td>{fmtDateTime(m.created_at)}</td>
                            <td>{t(`mail.kind.${m.kind}`)}</td>
                            <td>{m.to}</td>
                            <td>{m.subject}</td>
                            <td>
                                {t(`mail.state.${m.state}`)} ({m.attempts})
                                {m.last_error ? <div class="muted small">{m.last_error}</div> : null}
                            </td>
                        </tr>
                    ))}
                </tbody>
            </table>
            {mails.length === 0 && box.state === 'ok' ? <p class="muted">{t('mail.empty')}</p> : null}
        </div>
    );
}
