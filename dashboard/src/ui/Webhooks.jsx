// Admin > Webhooks (docs/api.md "Webhooks"): a site's webhooks (URL, subscribed event
// types, on/off), the secret shown once on create or rotation, a test ping, and the
// delivery log (deliveries with their state, every attempt with status or error).
import { useState } from 'preact/hooks';
import { toast, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { NotAvailable, Notice, useLoad, fmtDateTime } from './common.jsx';

const base = (site) => `/api/v1/admin/sites/${http.enc(site)}`;

function HookForm({ site, types, initial, onDone, onCancel }) {
    const [url, setUrl] = useState(initial ? initial.url : '');
    const [events, setEvents] = useState(new Set(initial ? initial.events : ['conversation.created']));
    const [enabled, setEnabled] = useState(initial ? initial.enabled : true);
    const [description, setDescription] = useState(initial ? initial.description || '' : '');
    const [err, setErr] = useState(null);
    const [busy, setBusy] = useState(false);
    const toggle = (ev) => {
        const n = new Set(events);
        if (n.has(ev)) n.delete(ev);
        else n.add(ev);
        setEvents(n);
    };
    return (
        <form
            class="form webhook-form"
            data-form="webhook"
            onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                setErr(null);
                const body = { url, events: [...events], enabled, description };
                try {
                    const r = initial ? await http.patch(`${base(site)}/webhooks/${http.enc(initial.id)}`, body) : await http.post(`${base(site)}/webhooks`, body);
                    onDone(r.webhook);
                } catch (ex) {
                    setErr(errorText(ex));
                } finally {
                    setBusy(false);
                }
            }}
        >
            <label>
                {t('wh.url')}
                <input name="url" type="url" required maxLength={2000} placeholder="https://example.com/chatdesk-hook" value={url} onInput={(e) => setUrl(e.currentTarget.value)} />
            </label>
            <fieldset class="sites-pick" data-field="events">
                <legend>{t('wh.events')}</legend>
                {['*', ...types].map((ev) => (
                    <label class="inline" key={ev}>
                        <input type="checkbox" name="event" value={ev} checked={events.has(ev)} onChange={() => toggle(ev)} />
                        {ev === '*' ? t('wh.allEvents') : ev}
                    </label>
                ))}
            </fieldset>
            <label>
                {t('wh.description')}
                <input name="description" maxLength={200} value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
            </label>
            <label class="inline">
                <input type="checkbox" name="enabled" checked={enabled} onChange={(e) => setEnabled(e.currentTarget.checked)} />
                {t('wh.enabled')}
            </label>
            <p class="muted small">{t('wh.ssrfHint')}</p>
            {err ? <Notice kind="error">{err}</Notice> : null}
            <div class="buttons">
                <button type="button" onClick={onCancel}>
                    {t('common.cancel')}
                </button>
                <button type="submit" class="primary" disabled={busy} data-action="save-webhook">
                    {t('common.save')}
                </button>
            </div>
        </form>
    );
}

function DeliveryLog({ site, hook }) {
    const res = useLoad(() => http.get(`${base(site)}/webhooks/${http.enc(hook.id)}/deliveries`), [site, hook.id]);
    if (res.state === 'error') return <Notice kind="error">{errorText(res.error)}</Notice>;
    const d = res.data || { deliveries: [], log: [] };
    return (
        <div class="webhook-log" data-webhook-log={hook.id}>
            <div class="toolbar">
                <h3>{t('wh.logTitle', { url: hook.url })}</h3>
                <button type="button" class="small" data-action="reload-log" onClick={() => res.reload()}>
                    {t('wh.reload')}
                </button>
            </div>
            <h4>{t('wh.deliveries')}</h4>
            <table class="table" data-table="deliveries">
                <thead>
                    <tr>
                        <th>{t('wh.when')}</th>
                        <th>{t('wh.event')}</th>
                        <th>{t('wh.deliveryId')}</th>
                        <th>{t('wh.state')}</th>
                        <th>{t('wh.attempts')}</th>
                        <th>{t('wh.result')}</th>
                        <th />
                    </tr>
                </thead>
                <tbody>
                    {d.deliveries.map((x) => (
                        <tr key={x.id} data-delivery={x.id} data-state={x.state}>
                            <td>{fmtDateTime(x.created_at)}</td>
                            <td>{x.event}</td>
                            <td>
                                <code>{x.id}</code>
                            </td>
                            <td>
                                <span class={`chip ${x.state === 'delivered' ? 'ok' : x.state === 'failed' ? 'danger' : ''}`}>{t(`wh.st.${x.state}`)}</span>
                            </td>
                            <td>{x.attempts}</td>
                            <td>{x.last_status ? `HTTP ${x.last_status}` : x.last_error || ''}</td>
                            <td class="actions">
                                <button
                                    type="button"
                                    class="small"
                                    data-action="redeliver"
                                    onClick={async () => {
                                        try {
                                            await http.post(`${base(site)}/deliveries/${http.enc(x.id)}/redeliver`);
                                            toast(t('wh.redelivered'), 'info');
                                            res.reload();
                                        } catch (ex) {
                                            toast(errorText(ex), 'error');
                                        }
                                    }}
                                >
                                    {t('wh.redeliver')}
                                </button>
                            </td>
                        </tr>
                    ))}
                </tbody>
            </table>
            {d.deliveries.length === 0 && res.state === 'ok' ? <p class="muted">{t('wh.noDeliveries')}</p> : null}
            <h4>{t('wh.attemptsLog')}</h4>
            <table class="table" data-table="attempts">
                <thead>
                    <tr>
                        <th>{t('wh.when')}</th>
                        <th>{t('wh.deliveryId')}</th>
                        <th>{t('wh.attempt')}</th>
                        <th>{t('wh.result')}</th>
                        <th>{t('wh.duration')}</th>
                    </tr>
                </thead>
                <tbody>
                    {d.log.map((x, i) => (
                        <tr key={i} data-attempt={`${x.delivery}#${x.attempt}`} data-ok={x.ok ? 'true' : 'false'}>
                            <td>{fmtDateTime(x.ts)}</td>
                            <td>
                                <code>{x.delivery}</code> <span class="muted">{x.event}</span>
                            </td>
                            <td>{x.attempt}</td>
                            <td class={x.ok ? '' : 'hot'}>{x.status ? `HTTP ${x.status}` : ''} {x.ok ? '' : x.error || ''}</td>
                            <td>{x.duration_ms} ms</td>
                        </tr>
                    ))}
                </tbody>
            </table>
        </div>
    );
}

/** The webhooks of one site. */
export function Webhooks({ site }) {
    const res = useLoad(() => http.get(`${base(site)}/webhooks`), [site]);
    const [editing, setEditing] = useState(null); // 'new' | webhook id
    const [secret, setSecret] = useState(null); // {id, secret} shown once
    const [logOf, setLogOf] = useState(null);
    if (res.state === 'missing') return <NotAvailable what={t('admin.webhooks')} />;
    if (res.state === 'error') return <Notice kind="error">{errorText(res.error)}</Notice>;
    const list = (res.data && res.data.webhooks) || [];
    const types = (res.data && res.data.event_types) || [];
    const act = async (fn) => {
        try {
            await fn();
        } catch (ex) {
            toast(errorText(ex), 'error');
        }
    };
    const done = (w) => {
        if (w && w.secret) setSecret({ id: w.id, secret: w.secret });
        setEditing(null);
        res.reload();
    };
    return (
        <div class="webhooks" data-webhooks={site}>
            <p class="muted">{t('wh.intro')}</p>
            <div class="toolbar">
                <button type="button" class="primary" data-action="add-webhook" onClick={() => setEditing('new')}>
                    {t('wh.add')}
                </button>
            </div>
            {secret ? (
                <Notice kind="warn" testid="webhook-secret">
                    {t('wh.secretOnce')} <code data-secret={secret.id}>{secret.secret}</code>{' '}
                    <button type="button" class="small" onClick={() => setSecret(null)}>
                        {t('wh.secretHide')}
                    </button>
                </Notice>
            ) : null}
            {editing === 'new' ? <HookForm site={site} types={types} onDone={done} onCancel={() => setEditing(null)} /> : null}
            <table class="table" data-table="webhooks">
                <thead>
                    <tr>
                        <th>{t('wh.url')}</th>
                        <th>{t('wh.events')}</th>
                        <th>{t('wh.enabled')}</th>
                        <th />
                    </tr>
                </thead>
                <tbody>
                    {list.map((w) =>
                        editing === w.id ? (
                            <tr key={w.id}>
                                <td colSpan={4}>
                                    <HookForm site={site} types={types} initial={w} onDone={done} onCancel={() => setEditing(null)} />
                                </td>
                            </tr>
                        ) : (
                            <tr key={w.id} data-webhook={w.id} class={w.enabled ? '' : 'disabled'}>
                                <td>
                                    <code>{w.url}</code>
                                    {w.description ? <div class="muted small">{w.description}</div> : null}
                                </td>
                                <td>{w.events.map((e) => (e === '*' ? t('wh.allEvents') : e)).join(', ')}</td>
                                <td>{w.enabled ? t('common.yes') : t('common.no')}</td>
                                <td class="actions">
                                    <button type="button" class="small" data-action="webhook-log" onClick={() => setLogOf(logOf === w.id ? null : w.id)}>
                                        {t('wh.log')}
                                    </button>
                                    <button
                                        type="button"
                                        class="small"
                                        data-action="webhook-test"
                                        onClick={() =>
                                            act(async () => {
                                                await http.post(`${base(site)}/webhooks/${http.enc(w.id)}/test`);
                                                toast(t('wh.pingSent'), 'info');
                                                setLogOf(w.id);
                                            })
                                        }
                                    >
                                        {t('wh.test')}
                                    </button>
                                    <button type="button" class="small" onClick={() => setEditing(w.id)}>
                                        {t('common.edit')}
                                    </button>
                                    <button
                                        type="button"
                                        class="small"
                                        data-action="webhook-rotate"
                                        onClick={() =>
                                            act(async () => {
                                                if (!window.confirm(t('wh.rotateConfirm'))) return;
                                                const r = await http.patch(`${base(site)}/webhooks/${http.enc(w.id)}`, { rotate_secret: true });
                                                setSecret({ id: w.id, secret: r.webhook.secret });
                                            })
                                        }
                                    >
                                        {t('wh.rotate')}
                                    </button>
                                    <button
                                        type="button"
                                        class="small danger"
                                        onClick={() =>
                                            act(async () => {
                                                if (!window.confirm(t('wh.deleteConfirm', { url: w.url }))) return;
                                                await http.del(`${base(site)}/webhooks/${http.enc(w.id)}`);
                                                if (logOf === w.id) setLogOf(null);
                                                res.reload();
                                            })
                                        }
                                    >
                                        {t('common.delete')}
                                    </button>
                                </td>
                            </tr>
                        ),
                    )}
                </tbody>
            </table>
            {list.length === 0 && res.state === 'ok' ? <p class="muted">{t('wh.empty')}</p> : null}
            {logOf && list.find((w) => w.id === logOf) ? <DeliveryLog site={site} hook={list.find((w) => w.id === logOf)} key={logOf} /> : null}
        </div>
    );
}
