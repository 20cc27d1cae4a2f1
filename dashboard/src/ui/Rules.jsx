// Admin → Automation rules (docs/rules.md): the site's rules in order, enable/disable,
// an editor (trigger, conditions with all/any, actions), team leads for
// notify_team_lead, and a dry run for one conversation.
import { useState } from 'preact/hooks';
import { toast, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { PRIORITIES } from '../util.js';
import { NotAvailable, Notice, useLoad } from './common.jsx';

const EVENTS = ['conversation.created', 'message.created', 'conversation.status_changed', 'conversation.assigned', 'conversation.updated', 'ticket.created', 'sla.warning', 'sla.breached', 'csat.submitted'];
const SINCE = ['created', 'assigned', 'status:queued', 'status:open', 'status:pending', 'status:resolved'];
const FIELDS = ['category', 'priority', 'status', 'team', 'assignee', 'subject', 'tags', 'text', 'visitor.name', 'visitor.email', 'visitor.user_id', 'responded', 'business_hours', 'site', 'attributes.', 'event.'];
const OPS = ['eq', 'neq', 'in', 'not_in', 'contains', 'not_contains', 'starts_with', 'gt', 'gte', 'lt', 'lte', 'exists', 'not_exists'];
const BOOL_FIELDS = ['responded', 'business_hours'];
const STATUSES = ['open', 'pending', 'resolved', 'closed'];
const ACTIONS = {
    assign_team: ['team'],
    assign_agent: ['agent'],
    set_priority: ['priority'],
    add_tags: ['tags'],
    set_status: ['status'],
    send_message: ['body'],
    send_canned: ['canned'],
    private_note: ['body'],
    notify_team_lead: ['team', 'title'],
    notify_admins: ['title'],
    webhook: ['webhook'],
};
const UNITS = { m: 60, h: 3600, d: 86400 };

const base = (site) => `/api/v1/admin/sites/${http.enc(site)}`;

function triggerText(tr) {
    if (!tr) return '';
    if (tr.event) return t('rules.onEvent', { event: t(`rules.ev.${tr.event}`) });
    const s = tr.time.after_s;
    const [n, u] = s % 86400 === 0 ? [s / 86400, 'd'] : s % 3600 === 0 ? [s / 3600, 'h'] : s % 60 === 0 ? [s / 60, 'm'] : [s, 's'];
    return t('rules.afterSince', { n, unit: t(`unit.${u}`), since: t(`rules.since.${tr.time.since}`) });
}

export function Rules({ site }) {
    const res = useLoad(() => http.get(`${base(site)}/rules`), [site]);
    const [edit, setEdit] = useState(null); // null | 'new' | rule
    const [err, setErr] = useState(null);
    if (res.state === 'missing') return <NotAvailable what={t('admin.rules')} />;
    const rules = (res.data && res.data.rules) || [];
    const act = async (fn) => {
        setErr(null);
        try {
            await fn();
            res.reload();
        } catch (e) {
            setErr(errorText(e));
            res.reload(); // what is stored, not what was asked
        }
    };
    const move = (i, d) =>
        act(() => {
            const ids = rules.map((r) => r.id);
            [ids[i], ids[i + d]] = [ids[i + d], ids[i]];
            return http.post(`${base(site)}/rules/reorder`, { ids });
        });
    return (
        <div class="rules" data-rules={site}>
            {res.state === 'error' ? <Notice kind="error">{errorText(res.error)}</Notice> : null}
            {err ? <Notice kind="error">{err}</Notice> : null}
            <p class="muted">{t('rules.help')}</p>
            <table class="table" data-table="rules">
                <thead>
                    <tr>
                        <th>{t('rules.order')}</th>
                        <th>{t('admin.name')}</th>
                        <th>{t('rules.trigger')}</th>
                        <th>{t('rules.summary')}</th>
                        <th>{t('rules.enabled')}</th>
                        <th />
                    </tr>
                </thead>
                <tbody>
                    {rules.map((r, i) => (
                        <tr key={r.id} data-rule={r.id} class={r.enabled ? '' : 'muted'}>
                            <td>
                                <button type="button" class="icon" title={t('rules.up')} aria-label={t('rules.up')} disabled={i === 0} onClick={() => move(i, -1)}>
                                    ↑
                                </button>
                                <button type="button" class="icon" title={t('rules.down')} aria-label={t('rules.down')} disabled={i === rules.length - 1} onClick={() => move(i, 1)}>
                                    ↓
                                </button>
                            </td>
                            <td data-col="name">{r.name}</td>
                            <td data-col="trigger">{triggerText(r.trigger)}</td>
                            <td>{t('rules.counts', { c: r.conditions.length, a: r.actions.length, match: t(`rules.match.${r.match}`) })}</td>
                            <td>
                                <input
                                    type="checkbox"
                                    name="enabled"
                                    aria-label={t('rules.enabled')}
                                    checked={r.enabled}
                                    onChange={(e) => {
                                        // shown at once: act re-renders before the answer, and the old
                                        // value would tick the box again meanwhile
                                        const on = e.currentTarget.checked;
                                        r.enabled = on;
                                        act(() => http.patch(`${base(site)}/rules/${http.enc(r.id)}`, { enabled: on }));
                                    }}
                                />
                            </td>
                            <td class="buttons">
                                <button type="button" data-action="edit-rule" onClick={() => setEdit(r)}>
                                    {t('common.edit')}
                                </button>
                                <button
                                    type="button"
                                    class="danger"
                                    data-action="delete-rule"
                                    onClick={() => window.confirm(t('rules.confirmDelete', { name: r.name })) && act(() => http.del(`${base(site)}/rules/${http.enc(r.id)}`))}
                                >
                                    {t('common.delete')}
                                </button>
                            </td>
                        </tr>
                    ))}
                    {rules.length === 0 && res.state === 'ok' ? (
                        <tr>
                            <td colSpan={6} class="muted">
                                {t('rules.none')}
                            </td>
                        </tr>
                    ) : null}
                </tbody>
            </table>
            {edit ? (
                <RuleEditor
                    site={site}
                    rule={edit === 'new' ? null : edit}
                    key={edit === 'new' ? 'new' : edit.id}
                    onDone={(saved) => {
                        setEdit(null);
                        if (saved) res.reload();
                    }}
                />
            ) : (
                <button type="button" class="primary" data-action="add-rule" onClick={() => setEdit('new')}>
                    {t('rules.add')}
                </button>
            )}
            <TeamLeads site={site} />
            <DryRun site={site} />
        </div>
    );
}

// ---- editor: the rule as form state and back ----

function toForm(rule) {
    const tr = (rule && rule.trigger) || { event: 'conversation.created' };
    let after = 2,
        unit = 'h';
    if (tr.time) {
        const s = tr.time.after_s;
        [after, unit] = s % 86400 === 0 ? [s / 86400, 'd'] : s % 3600 === 0 ? [s / 3600, 'h'] : [Math.max(1, Math.round(s / 60)), 'm'];
        if (s < 60) [after, unit] = [s, 's'];
    }
    return {
        name: (rule && rule.name) || '',
        enabled: rule ? rule.enabled : true,
        kind: tr.time ? 'time' : 'event',
        event: tr.event || 'conversation.created',
        after: String(after),
        unit,
        since: (tr.time && tr.time.since) || 'created',
        match: (rule && rule.match) || 'all',
        conditions: ((rule && rule.conditions) || []).map((c) => {
            const custom = c.field.startsWith('attributes.') ? 'attributes.' : c.field.startsWith('event.') ? 'event.' : '';
            return {
                field: custom || c.field,
                path: custom ? c.field.slice(custom.length) : '',
                op: c.op,
                value: Array.isArray(c.value) ? c.value.join(', ') : c.value === undefined || c.value === null ? '' : String(c.value),
            };
        }),
        actions: ((rule && rule.actions) || [{ type: 'add_tags', tags: [] }]).map((a) => ({ ...a, tags: a.tags ? a.tags.join(', ') : '' })),
    };
}

function fromForm(f) {
    const secs = Number(f.after) * (UNITS[f.unit] || 1);
    const trigger = f.kind === 'time' ? { time: { after_s: Math.round(secs), since: f.since } } : { event: f.event };
    const conditions = f.conditions.map((c) => {
        const field = c.field.endsWith('.') ? c.field + c.path.trim() : c.field;
        const out = { field, op: c.op };
        if (c.op === 'exists' || c.op === 'not_exists') return out;
        if (BOOL_FIELDS.includes(field)) out.value = c.value === 'true';
        else if (c.op === 'in' || c.op === 'not_in')
            out.value = c.value
                .split(',')
                .map((x) => x.trim())
                .filter(Boolean);
        else if (['gt', 'gte', 'lt', 'lte'].includes(c.op) && field !== 'priority' && c.value.trim() !== '' && !isNaN(Number(c.value))) out.value = Number(c.value);
        else out.value = c.value;
        return out;
    });
    const actions = f.actions.map((a) => {
        const out = { type: a.type };
        for (const k of ACTIONS[a.type] || []) {
            if (k === 'tags')
                out.tags = String(a.tags || '')
                    .split(',')
                    .map((x) => x.trim())
                    .filter(Boolean);
            else if (a[k] !== undefined && a[k] !== '') out[k] = a[k];
        }
        return out;
    });
    return { name: f.name.trim(), enabled: f.enabled, match: f.match, trigger, conditions, actions };
}

/**
 * The choices of the actions' references, by name: the site's teams, agents, shared canned
 * replies (only those a rule may send) and webhooks. {team|agent|canned|webhook: [[value, label]]};
 * a list that cannot be loaded is missing, and its field stays a text input.
 */
function usePicks(site) {
    const teams = useLoad(() => http.get(`${base(site)}/teams`), [site]);
    const agents = useLoad(() => http.get(`/api/v1/admin/agents${http.qs({ site })}`), [site]);
    const canned = useLoad(() => http.get(`/api/v1/canned${http.qs({ site })}`), [site]);
    const hooks = useLoad(() => http.get(`${base(site)}/webhooks`), [site]);
    const ok = (r, f) => (r.state === 'ok' ? f(r.data) : null);
    return {
        team: ok(teams, (d) => d.teams.map((x) => [x.key, x.name])),
        agent: ok(agents, (d) => d.agents.filter((a) => !a.disabled).map((a) => [a.id, `${a.name} <${a.email}>`])),
        canned: ok(canned, (d) => d.canned.filter((c) => c.scope === 'site').map((c) => [c.id, `${c.title || c.shortcut} (/${c.shortcut})`])),
        webhook: ok(hooks, (d) => (d.webhooks || []).map((w) => [w.id, w.description || w.url])),
    };
}

function RuleEditor({ site, rule, onDone }) {
    const picks = usePicks(site);
    const [f, setF] = useState(() => toForm(rule));
    const [busy, setBusy] = useState(false);
    const [err, setErr] = useState(null);
    const set = (k, v) => setF((cur) => ({ ...cur, [k]: v }));
    const setIn = (list, i, k, v) => setF((cur) => ({ ...cur, [list]: cur[list].map((x, j) => (j === i ? { ...x, [k]: v } : x)) }));
    const drop = (list, i) => setF((cur) => ({ ...cur, [list]: cur[list].filter((_, j) => j !== i) }));
    const save = async (e) => {
        e.preventDefault();
        setBusy(true);
        setErr(null);
        try {
            const body = fromForm(f);
            if (rule) await http.patch(`${base(site)}/rules/${http.enc(rule.id)}`, body);
            else await http.post(`${base(site)}/rules`, body);
            toast(t('admin.saved'), 'ok');
            onDone(true);
        } catch (x) {
            setErr(errorText(x));
        } finally {
            setBusy(false);
        }
    };
    return (
        <form class="form card rule-editor" data-form="rule-edit" onSubmit={save}>
            <h3>{rule ? t('rules.edit') : t('rules.add')}</h3>
            <div class="grid">
                <label>
                    {t('admin.name')}
                    <input name="name" required maxLength={200} value={f.name} onInput={(e) => set('name', e.currentTarget.value)} />
                </label>
                <label class="check">
                    <input type="checkbox" name="enabled" checked={f.enabled} onChange={(e) => set('enabled', e.currentTarget.checked)} /> {t('rules.enabled')}
                </label>
            </div>
            <fieldset data-part="trigger">
                <legend>{t('rules.trigger')}</legend>
                <select name="kind" value={f.kind} onChange={(e) => set('kind', e.currentTarget.value)}>
                    <option value="event">{t('rules.kind.event')}</option>
                    <option value="time">{t('rules.kind.time')}</option>
                </select>{' '}
                {f.kind === 'event' ? (
                    <select name="event" value={f.event} onChange={(e) => set('event', e.currentTarget.value)}>
                        {EVENTS.map((x) => (
                            <option key={x} value={x}>
                                {t(`rules.ev.${x}`)}
                            </option>
                        ))}
                    </select>
                ) : (
                    <span class="inline">
                        <input name="after" type="number" min="1" class="num" value={f.after} onInput={(e) => set('after', e.currentTarget.value)} />
                        <select name="unit" value={f.unit} onChange={(e) => set('unit', e.currentTarget.value)}>
                            {['s', 'm', 'h', 'd'].map((u) => (
                                <option key={u} value={u}>
                                    {t(`unit.${u}`)}
                                </option>
                            ))}
                        </select>{' '}
                        {t('rules.since')}{' '}
                        <select name="since" value={f.since} onChange={(e) => set('since', e.currentTarget.value)}>
                            {SINCE.map((x) => (
                                <option key={x} value={x}>
                                    {t(`rules.since.${x}`)}
                                </option>
                            ))}
                        </select>
                    </span>
                )}
            </fieldset>
            <fieldset data-part="conditions">
                <legend>{t('rules.conditions')}</legend>
                <label class="inline">
                    {t('rules.matchLabel')}
                    <select name="match" value={f.match} onChange={(e) => set('match', e.currentTarget.value)}>
                        <option value="all">{t('rules.match.all')}</option>
                        <option value="any">{t('rules.match.any')}</option>
                    </select>
                </label>
                {f.conditions.map((c, i) => (
                    <div class="row cond" data-condition={i} key={i}>
                        <select name="field" aria-label={t('rules.field')} value={c.field} onChange={(e) => setIn('conditions', i, 'field', e.currentTarget.value)}>
                            {FIELDS.map((x) => (
                                <option key={x} value={x}>
                                    {t(`rules.f.${x}`)}
                                </option>
                            ))}
                        </select>
                        {c.field.endsWith('.') ? <input name="path" aria-label={t('rules.path')} placeholder={c.field === 'event.' ? 'author.kind' : 'plan'} value={c.path} onInput={(e) => setIn('conditions', i, 'path', e.currentTarget.value)} /> : null}
                        <select name="op" aria-label={t('rules.op')} value={c.op} onChange={(e) => setIn('conditions', i, 'op', e.currentTarget.value)}>
                            {(BOOL_FIELDS.includes(c.field) ? ['eq', 'neq'] : OPS).map((x) => (
                                <option key={x} value={x}>
                                    {t(`rules.op.${x}`)}
                                </option>
                            ))}
                        </select>
                        {c.op === 'exists' || c.op === 'not_exists' ? null : BOOL_FIELDS.includes(c.field) ? (
                            <select name="value" aria-label={t('rules.value')} value={c.value === 'true' ? 'true' : 'false'} onChange={(e) => setIn('conditions', i, 'value', e.currentTarget.value)}>
                                <option value="true">{t('rules.yes')}</option>
                                <option value="false">{t('rules.no')}</option>
                            </select>
                        ) : (
                            <input name="value" aria-label={t('rules.value')} placeholder={c.op === 'in' || c.op === 'not_in' ? 'a, b, c' : ''} value={c.value} onInput={(e) => setIn('conditions', i, 'value', e.currentTarget.value)} />
                        )}
                        <button type="button" class="icon" aria-label={t('common.delete')} title={t('common.delete')} onClick={() => drop('conditions', i)}>
                            ✕
                        </button>
                    </div>
                ))}
                <button type="button" data-action="add-condition" onClick={() => set('conditions', [...f.conditions, { field: 'category', path: '', op: 'eq', value: '' }])}>
                    {t('rules.addCondition')}
                </button>
            </fieldset>
            <fieldset data-part="actions">
                <legend>{t('rules.actions')}</legend>
                {f.actions.map((a, i) => (
                    <div class="row act" data-action-row={i} key={i}>
                        <select name="type" aria-label={t('rules.actionType')} value={a.type} onChange={(e) => setIn('actions', i, 'type', e.currentTarget.value)}>
                            {Object.keys(ACTIONS).map((x) => (
                                <option key={x} value={x}>
                                    {t(`rules.a.${x}`)}
                                </option>
                            ))}
                        </select>
                        {(ACTIONS[a.type] || []).map((k) =>
                            k === 'priority' || k === 'status' ? (
                                <select key={k} name={k} aria-label={t(`rules.p.${k}`)} value={a[k] || ''} onChange={(e) => setIn('actions', i, k, e.currentTarget.value)}>
                                    <option value="" />
                                    {(k === 'priority' ? PRIORITIES : STATUSES).map((x) => (
                                        <option key={x} value={x}>
                                            {t(k === 'priority' ? `prio.${x}` : `status.${x}`)}
                                        </option>
                                    ))}
                                </select>
                            ) : picks[k] ? (
                                <select key={k} name={k} aria-label={t(`rules.p.${k}`)} value={a[k] || ''} onChange={(e) => setIn('actions', i, k, e.currentTarget.value)}>
                                    <option value="">{k === 'team' && a.type === 'notify_team_lead' ? t('rules.p.convTeam') : ''}</option>
                                    {a[k] && !picks[k].some(([v]) => v === a[k]) ? <option value={a[k]}>{t('rules.p.unknown', { id: a[k] })}</option> : null}
                                    {picks[k].map(([v, label]) => (
                                        <option key={v} value={v}>
                                            {label}
                                        </option>
                                    ))}
                                </select>
                            ) : k === 'body' ? (
                                <textarea key={k} name={k} rows={2} maxLength={4000} aria-label={t('rules.p.body')} placeholder={t('rules.p.body')} value={a[k] || ''} onInput={(e) => setIn('actions', i, k, e.currentTarget.value)} />
                            ) : (
                                <input key={k} name={k} aria-label={t(`rules.p.${k}`)} placeholder={t(`rules.p.${k}`)} value={a[k] || ''} onInput={(e) => setIn('actions', i, k, e.currentTarget.value)} />
                            ),
                        )}
                        <button type="button" class="icon" aria-label={t('common.delete')} title={t('common.delete')} onClick={() => drop('actions', i)}>
                            ✕
                        </button>
                    </div>
                ))}
                <button type="button" data-action="add-action" onClick={() => set('actions', [...f.actions, { type: 'notify_admins' }])}>
                    {t('rules.addAction')}
                </button>
            </fieldset>
            {err ? <Notice kind="error">{err}</Notice> : null}
            <div class="buttons">
                <button type="button" onClick={() => onDone(false)}>
                    {t('common.cancel')}
                </button>
                <button type="submit" class="primary" disabled={busy} data-action="save-rule">
                    {t('common.save')}
                </button>
            </div>
        </form>
    );
}

// ---- team leads (notify_team_lead) ----

function TeamLeads({ site }) {
    const teams = useLoad(() => http.get(`${base(site)}/teams`), [site]);
    const agents = useLoad(() => http.get(`/api/v1/admin/agents${http.qs({ site })}`), [site]);
    const [err, setErr] = useState(null);
    if (teams.state !== 'ok' || !teams.data.teams.length) return null;
    const list = (agents.data && agents.data.agents) || [];
    return (
        <section class="card" data-part="team-leads">
            <h3>{t('rules.leads')}</h3>
            <p class="muted">{t('rules.leadsHelp')}</p>
            {err ? <Notice kind="error">{err}</Notice> : null}
            {teams.data.teams.map((x) => (
                <label class="inline" key={x.key} data-team-lead={x.key}>
                    {x.name}
                    <select
                        name="lead"
                        value={x.lead || ''}
                        onChange={async (e) => {
                            setErr(null);
                            try {
                                await http.patch(`${base(site)}/teams/${http.enc(x.key)}`, { lead: e.currentTarget.value || null });
                                toast(t('admin.saved'), 'ok');
                                teams.reload();
                            } catch (ex) {
                                setErr(errorText(ex));
                            }
                        }}
                    >
                        <option value="">{t('rules.noLead')}</option>
                        {list.map((a) => (
                            <option key={a.id} value={a.id}>
                                {a.name}
                            </option>
                        ))}
                    </select>
                </label>
            ))}
        </section>
    );
}

// ---- dry run ----

function DryRun({ site }) {
    const [cid, setCid] = useState('');
    const [event, setEvent] = useState('');
    const [out, setOut] = useState(null);
    const [err, setErr] = useState(null);
    const run = async (e) => {
        e.preventDefault();
        setErr(null);
        setOut(null);
        try {
            setOut(await http.post(`${base(site)}/rules/dry-run`, { conversation_id: cid.trim(), ...(event ? { event } : {}) }));
        } catch (x) {
            setErr(errorText(x));
        }
    };
    return (
        <section class="card" data-part="dry-run">
            <h3>{t('rules.dryRun')}</h3>
            <p class="muted">{t('rules.dryRunHelp')}</p>
            <form class="form inline-form" data-form="dry-run" onSubmit={run}>
                <input name="conversation_id" required placeholder={t('rules.convId')} aria-label={t('rules.convId')} value={cid} onInput={(e) => setCid(e.currentTarget.value)} />
                <select name="event" aria-label={t('rules.asEvent')} value={event} onChange={(e) => setEvent(e.currentTarget.value)}>
                    <option value="">{t('rules.anyEvent')}</option>
                    {EVENTS.map((x) => (
                        <option key={x} value={x}>
                            {t(`rules.ev.${x}`)}
                        </option>
                    ))}
                </select>
                <button type="submit" class="primary" data-action="dry-run">
                    {t('rules.runDry')}
                </button>
            </form>
            {err ? <Notice kind="error">{err}</Notice> : null}
            {out ? (
                <ul class="dry-results" data-dry-results>
                    {out.rules.length === 0 ? <li class="muted">{t('rules.none')}</li> : null}
                    {out.rules.map((r) => (
                        <li key={r.id} data-dry-rule={r.id} data-would-fire={r.would_fire ? 'true' : 'false'}>
                            <strong>{r.name}</strong> <span class={`chip ${r.would_fire ? 'ok' : 'muted'}`}>{r.would_fire ? t('rules.wouldFire') : t('rules.wouldNotFire')}</span>
                            {!r.enabled ? <span class="chip muted">{t('rules.disabled')}</span> : null}
                            {!r.trigger_matches ? <span class="chip muted">{t('rules.otherTrigger')}</span> : null}
                            <ul>
                                {r.conditions.map((c, i) => (
                                    <li key={i} data-result={c.result ? 'true' : 'false'}>
                                        {c.result ? '✓' : '✗'} <code>{c.field}</code> {t(`rules.op.${c.op}`)} {c.value === undefined ? '' : <code>{JSON.stringify(c.value)}</code>}
                                    </li>
                                ))}
                            </ul>
                        </li>
                    ))}
                </ul>
            ) : null}
        </section>
    );
}
