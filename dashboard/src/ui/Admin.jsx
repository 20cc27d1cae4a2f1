import { useState, useEffect } from 'preact/hooks';
import { S, toast, errorText, changed, isOwner } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { PRIORITIES, parseRanges, fmtRanges, fmtDuration, changedSettings } from '../util.js';
import { NotAvailable, Notice, useLoad } from './common.jsx';
import { CannedManager } from './Canned.jsx';
import { Webhooks } from './Webhooks.jsx';
import { Mail } from './Mail.jsx';
import { KbManager } from './Kb.jsx';
import { Rules } from './Rules.jsx';
import { Audit } from './Audit.jsx';
import { Tokens } from './Tokens.jsx';

const TABS = ['sites', 'agents', 'teams', 'sla', 'canned', 'rules', 'kb', 'webhooks', 'mail', 'tokens', 'audit'];

export function Admin() {
    const [tab, setTab] = useState('sites');
    const sites = useLoad(() => http.get('/api/v1/admin/sites'), []);
    const siteKeys = sites.state === 'ok' ? sites.data.sites.map((s) => s.key) : (S.me && S.me.sites) || [];
    return (
        <section class="page admin" data-page="admin">
            <div class="page-head">
                <h2>{t('view.admin')}</h2>
            </div>
            <div class="tabs" role="tablist">
                {TABS.map((x) => (
                    <button type="button" role="tab" key={x} aria-selected={tab === x ? 'true' : 'false'} class={tab === x ? 'active' : ''} data-tab={x} onClick={() => setTab(x)}>
                        {t(`admin.${x}`)}
                    </button>
                ))}
            </div>
            <div class="tab-body" data-tab-body={tab}>
                {tab === 'sites' ? <Sites res={sites} /> : null}
                {tab === 'agents' ? <Agents siteKeys={siteKeys} /> : null}
                {tab === 'teams' ? <SitePicker siteKeys={siteKeys} render={(site) => <Teams site={site} />} /> : null}
                {tab === 'sla' ? <SitePicker siteKeys={siteKeys} render={(site) => <Sla site={site} key={site} />} /> : null}
                {tab === 'canned' ? <SitePicker siteKeys={siteKeys} render={(site) => <CannedManager site={site} scope="site" />} /> : null}
                {tab === 'webhooks' ? <SitePicker siteKeys={siteKeys} render={(site) => <Webhooks site={site} key={site} />} /> : null}
                {tab === 'kb' ? <SitePicker siteKeys={siteKeys} render={(site) => <KbManager site={site} key={site} />} /> : null}
                {tab === 'rules' ? <SitePicker siteKeys={siteKeys} render={(site) => <Rules site={site} key={site} />} /> : null}
                {tab === 'mail' ? <SitePicker siteKeys={siteKeys} render={(site) => <Mail site={site} key={site} />} /> : null}
                {tab === 'tokens' ? <SitePicker siteKeys={siteKeys} render={(site) => <Tokens site={site} key={site} />} /> : null}
                {tab === 'audit' ? <SitePicker siteKeys={siteKeys} render={(site) => <Audit site={site} key={site} />} /> : null}
            </div>
        </section>
    );
}

function SitePicker({ siteKeys, render }) {
    const [site, setSite] = useState(siteKeys[0] || '');
    useEffect(() => {
        if (!siteKeys.includes(site) && siteKeys.length) setSite(siteKeys[0]);
    }, [siteKeys.join(',')]);
    return (
        <div>
            <label class="inline site-pick">
                {t('common.site')}
                <select name="site" value={site} onChange={(e) => setSite(e.currentTarget.value)}>
                    {siteKeys.map((s) => (
                        <option key={s} value={s}>
                            {s}
                        </option>
                    ))}
                </select>
            </label>
            {site ? render(site) : <p class="muted">{t('admin.noSites')}</p>}
        </div>
    );
}

function useForm(initial) {
    const [f, setF] = useState(initial);
    const bind = (k, kind = 'text') => ({
        name: k,
        ...(kind === 'checkbox' ? { checked: !!f[k] } : { value: f[k] ?? '' }),
        [kind === 'checkbox' || kind === 'select' ? 'onChange' : 'onInput']: (e) => setF((cur) => ({ ...cur, [k]: kind === 'checkbox' ? e.currentTarget.checked : e.currentTarget.value })),
    });
    return [f, setF, bind];
}

const lines = (s) =>
    String(s || '')
        .split(/[\n,]+/)
        .map((x) => x.trim())
        .filter(Boolean);

function Submit({ busy, label, action }) {
    return (
        <button type="submit" class="primary" disabled={busy} data-action={action}>
            {label || t('common.save')}
        </button>
    );
}

/** Runs a request for a form: busy flag, error text, a toast on success. */
function useSubmit() {
    const [busy, setBusy] = useState(false);
    const [err, setErr] = useState(null);
    const run = async (fn, okText) => {
        setBusy(true);
        setErr(null);
        try {
            const r = await fn();
            if (okText) toast(okText, 'ok');
            return r;
        } catch (e) {
            setErr(http.isRouteMissing(e) ? t('na.body', { what: '' }) : errorText(e));
            return null;
        } finally {
            setBusy(false);
        }
    };
    return { busy, err, run, setErr };
}

// ---------------------------------------------------------------------------
// Sites

function Sites({ res }) {
    const [adding, setAdding] = useState(false);
    const [edit, setEdit] = useState(null);
    if (res.state === 'missing') return <NotAvailable what={t('admin.sites')} />;
    if (res.state === 'error') return <Notice kind="error">{errorText(res.error)}</Notice>;
    if (res.state === 'loading') return <p class="muted">{t('msg.loading')}</p>;
    const sites = res.data.sites || [];
    return (
        <div>
            <div class="toolbar">
                {isOwner() ? (
                    <button type="button" class="primary" data-action="add-site" onClick={() => setAdding(!adding)}>
                        {t('admin.addSite')}
                    </button>
                ) : (
                    <span class="muted small" data-note="owner-only">{t('admin.ownerCreatesSites')}</span>
                )}
            </div>
            {adding ? (
                <SiteCreate
                    onDone={(site) => {
                        setAdding(false);
                        if (S.me && !S.me.sites.includes(site.key)) {
                            S.me = { ...S.me, sites: [...S.me.sites, site.key] };
                            changed();
                        }
                        res.reload();
                    }}
                />
            ) : null}
            <table class="table" data-table="sites">
                <thead>
                    <tr>
                        <th>{t('admin.key')}</th>
                        <th>{t('admin.name')}</th>
                        <th>{t('admin.origins')}</th>
                        <th>{t('admin.identity')}</th>
                        <th>{t('admin.autoAssign')}</th>
                        <th />
                    </tr>
                </thead>
                <tbody>
                    {sites.map((s) => (
                        <tr key={s.key} data-site={s.key}>
                            <td>
                                <code>{s.key}</code>
                            </td>
                            <td>{s.name}</td>
                            <td>{(s.origins || []).join(' ')}</td>
                            <td>{s.identity_verification ? t('common.yes') : t('common.no')}</td>
                            <td>{s.auto_assign ? t('common.yes') : t('common.no')}</td>
                            <td>
                                <button type="button" class="small" onClick={() => setEdit(edit === s.key ? null : s.key)}>
                                    {t('common.edit')}
                                </button>
                            </td>
                        </tr>
                    ))}
                </tbody>
            </table>
            {edit ? <SiteEdit key={edit} site={sites.find((s) => s.key === edit)} onDone={() => (setEdit(null), res.reload())} /> : null}
        </div>
    );
}

function SiteCreate({ onDone }) {
    const [f, , bind] = useForm({ key: '', name: '', origins: '', identity_secret: '' });
    const sub = useSubmit();
    return (
        <form
            class="form card"
            data-form="site-create"
            onSubmit={async (e) => {
                e.preventDefault();
                const body = { key: f.key.trim(), name: f.name.trim(), origins: lines(f.origins) };
                if (f.identity_secret) body.identity_secret = f.identity_secret;
                const r = await sub.run(() => http.post('/api/v1/admin/sites', body), t('admin.saved'));
                if (r) onDone(r.site);
            }}
        >
            <h3>{t('admin.addSite')}</h3>
            <label>
                {t('admin.key')}
                <input required pattern="[A-Za-z0-9_\-]{1,64}" {...bind('key')} />
            </label>
            <label>
                {t('admin.name')}
                <input required maxLength={200} {...bind('name')} />
            </label>
            <label>
                {t('admin.origins')}
                <textarea rows={2} required placeholder="https://www.example.com" {...bind('origins')} />
                <span class="muted small">{t('admin.originsHint')}</span>
            </label>
            <label>
                {t('admin.secret')}
                <input type="password" autocomplete="new-password" minLength={16} {...bind('identity_secret')} />
                <span class="muted small">{t('admin.secretHint')}</span>
            </label>
            {sub.err ? <Notice kind="error">{sub.err}</Notice> : null}
            <div class="buttons">
                <Submit busy={sub.busy} action="create-site" />
            </div>
        </form>
    );
}

/** The UTC offsets in use, in minutes (-12:00 … +14:00, with the half and three-quarter hours). */
const UTC_OFFSETS = [-720, -660, -600, -570, -540, -480, -420, -360, -300, -240, -210, -180, -120, -60, 0, 60, 120, 180, 210, 240, 270, 300, 330, 345, 360, 390, 420, 480, 525, 540, 570, 600, 630, 660, 720, 765, 780, 840];
const fmtOffset = (m) => `UTC${m < 0 ? '−' : '+'}${String(Math.floor(Math.abs(m) / 60)).padStart(2, '0')}:${String(Math.abs(m) % 60).padStart(2, '0')}`;

const FILE_CATS = ['image', 'pdf', 'office', 'text', 'archive'];

/** The settings of the site-edit form as the API's patch body (before any diff). */
function siteSettings(f) {
    // category -> team, for the categories the form lists (a removed category drops its team)
    const ct = {};
    for (const c of lines(f.categories)) if (f.category_teams[c]) ct[c] = f.category_teams[c];
    return {
        name: f.name.trim(),
        origins: lines(f.origins),
        auto_assign: !!f.auto_assign,
        require_2fa: !!f.require_2fa,
        only_assignee_reply: !!f.only_assignee_reply,
        auto_close_s: Number(f.auto_close_s),
        unanswered_after_s: Number(f.unanswered_after_s),
        ack_text_en: f.ack_text_en || null,
        ack_text_zh: f.ack_text_zh || null,
        category_teams: ct,
        health_threshold: Number(f.health_threshold),
        health_window_days: Number(f.health_window_days),
        report_utc_offset_min: Number(f.report_utc_offset_min),
        // attachments: empty / "server" = the server's limits (null)
        file_max_bytes: String(f.file_max_mb).trim() === '' ? null : Math.round(Number(f.file_max_mb) * 1048576),
        file_types: f.file_types_mode === 'server' ? null : FILE_CATS.filter((c) => f[`ft_${c}`]),
        widget: {
            color: f.color,
            greeting_en: f.greeting_en,
            greeting_zh: f.greeting_zh,
            categories: lines(f.categories),
            required_fields: lines(f.required_fields),
            survey: { nps: !!f.survey_nps, ces: !!f.survey_ces },
        },
    };
}

function SiteEdit({ site, onDone }) {
    const w = site.widget || {};
    const initial = {
        name: site.name,
        origins: (site.origins || []).join('\n'),
        secretMode: 'keep',
        secret: '',
        auto_assign: site.auto_assign !== false,
        require_2fa: !!site.require_2fa,
        only_assignee_reply: !!site.only_assignee_reply,
        auto_close_s: site.auto_close_s ?? 86400,
        unanswered_after_s: site.unanswered_after_s ?? 120,
        ack_text_en: site.ack_text_en || '',
        ack_text_zh: site.ack_text_zh || '',
        color: w.color || '#1a73e8',
        greeting_en: w.greeting_en || '',
        greeting_zh: w.greeting_zh || '',
        categories: (w.categories || []).join(', '),
        required_fields: (w.required_fields || []).join(', '),
        health_threshold: site.health_threshold ?? 3,
        health_window_days: site.health_window_days ?? 30,
        report_utc_offset_min: site.report_utc_offset_min ?? 0,
        survey_nps: !!(w.survey && w.survey.nps),
        survey_ces: !!(w.survey && w.survey.ces),
        file_max_mb: site.file_max_bytes ? String(Math.round((site.file_max_bytes / 1048576) * 100) / 100) : '',
        file_types_mode: site.file_types ? 'site' : 'server',
        ...Object.fromEntries(FILE_CATS.map((c) => [`ft_${c}`, site.file_types ? site.file_types.includes(c) : true])),
        category_teams: { ...(site.category_teams || {}) },
    };
    const [f, setF, bind] = useForm(initial);
    const sub = useSubmit();
    const teamsRes = useLoad(() => http.get(`/api/v1/admin/sites/${http.enc(site.key)}/teams`), [site.key]);
    const siteTeams = ((teamsRes.data && teamsRes.data.teams) || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    return (
        <form
            class="form card"
            data-form="site-edit"
            onSubmit={async (e) => {
                e.preventDefault();
                // only what was changed: the server merges, so nothing else is overwritten
                const before = siteSettings(initial),
                    after = siteSettings(f);
                const body = changedSettings(before, after);
                // the server replaces the whole map: send all of it when anything in it changed
                // (a team taken off a category is a key that is gone, which a diff would miss)
                if (JSON.stringify(before.category_teams) !== JSON.stringify(after.category_teams)) body.category_teams = after.category_teams;
                else delete body.category_teams;
                if (f.secretMode === 'set') body.identity_secret = f.secret;
                if (f.secretMode === 'remove') body.identity_secret = null;
                if (!Object.keys(body).length) return onDone();
                const r = await sub.run(() => http.patch(`/api/v1/admin/sites/${http.enc(site.key)}`, body), t('admin.saved'));
                if (r) onDone();
            }}
        >
            <h3>{t('admin.editSite', { key: site.key })}</h3>
            <div class="grid2">
                <label>
                    {t('admin.name')}
                    <input required {...bind('name')} />
                </label>
                <label>
                    {t('admin.origins')}
                    <textarea rows={2} {...bind('origins')} />
                </label>
                <label>
                    {t('admin.secret')}
                    <select {...bind('secretMode', 'select')}>
                        <option value="keep">{site.identity_verification ? t('admin.secretKeep') : t('admin.secretNone')}</option>
                        <option value="set">{t('admin.secretSet')}</option>
                        {site.identity_verification ? <option value="remove">{t('admin.secretRemove')}</option> : null}
                    </select>
                    {f.secretMode === 'set' ? <input type="password" autocomplete="new-password" minLength={16} required {...bind('secret')} /> : null}
                </label>
                <label class="check">
                    <input type="checkbox" {...bind('auto_assign', 'checkbox')} /> {t('admin.autoAssign')}
                </label>
                <label class="check">
                    <input type="checkbox" {...bind('require_2fa', 'checkbox')} /> {t('admin.require2fa')}
                </label>
                <label class="check">
                    <input type="checkbox" {...bind('only_assignee_reply', 'checkbox')} /> {t('admin.onlyAssignee')}
                </label>
                <label>
                    {t('admin.autoClose')}
                    <input type="number" min={0} max={31536000} {...bind('auto_close_s')} />
                    <span class="muted small">{fmtDuration(Number(f.auto_close_s || 0) * 1000)}</span>
                </label>
                <label>
                    {t('admin.unanswered')}
                    <input type="number" min={0} max={31536000} {...bind('unanswered_after_s')} />
                    <span class="muted small">{fmtDuration(Number(f.unanswered_after_s || 0) * 1000)}</span>
                </label>
                <label>
                    {t('admin.ackEn')}
                    <textarea rows={2} maxLength={1000} {...bind('ack_text_en')} />
                </label>
                <label>
                    {t('admin.ackZh')}
                    <textarea rows={2} maxLength={1000} {...bind('ack_text_zh')} />
                </label>
                <label>
                    {t('admin.color')}
                    <input type="color" {...bind('color')} />
                </label>
                <label>
                    {t('admin.greetingEn')}
                    <input maxLength={500} {...bind('greeting_en')} />
                </label>
                <label>
                    {t('admin.greetingZh')}
                    <input maxLength={500} {...bind('greeting_zh')} />
                </label>
                <label>
                    {t('admin.categories')}
                    <input {...bind('categories')} placeholder="billing, technical" />
                </label>
                <label>
                    {t('admin.requiredFields')}
                    <input {...bind('required_fields')} placeholder="name, email" />
                </label>
                <fieldset class="category-teams">
                    <legend>{t('admin.categoryTeams')}</legend>
                    {lines(f.categories).length ? (
                        lines(f.categories).map((c) => (
                            <label key={c}>
                                {c}
                                <select
                                    name={`category_team_${c}`}
                                    value={f.category_teams[c] || ''}
                                    onChange={(e) => {
                                        const v = e.currentTarget.value;
                                        setF((cur) => ({ ...cur, category_teams: { ...cur.category_teams, [c]: v } }));
                                    }}
                                >
                                    <option value="">{t('admin.noTeam')}</option>
                                    {siteTeams.map((tm) => (
                                        <option key={tm.key} value={tm.key}>
                                            {tm.name}
                                        </option>
                                    ))}
                                    {f.category_teams[c] && !siteTeams.some((tm) => tm.key === f.category_teams[c]) ? (
                                        <option value={f.category_teams[c]}>{f.category_teams[c]}</option>
                                    ) : null}
                                </select>
                            </label>
                        ))
                    ) : (
                        <span class="muted small">{t('admin.categoryTeamsNone')}</span>
                    )}
                </fieldset>
                <label class="check">
                    <input type="checkbox" {...bind('survey_nps', 'checkbox')} /> {t('admin.surveyNps')}
                </label>
                <label>
                    {t('admin.healthThreshold')}
                    <input type="number" min={1} max={1000} {...bind('health_threshold')} />
                </label>
                <label>
                    {t('admin.healthWindow')}
                    <input type="number" min={1} max={365} {...bind('health_window_days')} />
                </label>
                <label>
                    {t('admin.reportOffset')}
                    <select {...bind('report_utc_offset_min', 'select')}>
                        {UTC_OFFSETS.map((m) => (
                            <option key={m} value={String(m)}>
                                {fmtOffset(m)}
                            </option>
                        ))}
                    </select>
                </label>

                <label class="check">
                    <input type="checkbox" {...bind('survey_ces', 'checkbox')} /> {t('admin.surveyCes')}
                </label>
                <label>
                    {t('admin.fileMaxMb')}
                    <input type="number" min={0.001} step="any" {...bind('file_max_mb')} placeholder={t('admin.serverDefault')} />
                </label>
                <fieldset class="file-types">
                    <legend>{t('admin.fileTypes')}</legend>
                    <select aria-label={t('admin.fileTypes')} {...bind('file_types_mode', 'select')}>
                        <option value="server">{t('admin.serverDefault')}</option>
                        <option value="site">{t('admin.fileTypesSite')}</option>
                    </select>
                    {f.file_types_mode === 'site'
                        ? FILE_CATS.map((c) => (
                              <label class="check" key={c}>
                                  <input type="checkbox" {...bind(`ft_${c}`, 'checkbox')} /> {t(`admin.fileCat.${c}`)}
                              </label>
                          ))
                        : null}
                </fieldset>
            </div>
            {sub.err ? <Notice kind="error">{sub.err}</Notice> : null}
            <div class="buttons">
                <button type="button" onClick={onDone}>
                    {t('common.cancel')}
                </button>
                <Submit busy={sub.busy} action="save-site" />
            </div>
        </form>
    );
}

// ---------------------------------------------------------------------------
// Agents

function Agents({ siteKeys }) {
    const [site, setSite] = useState('');
    const res = useLoad(() => http.get(`/api/v1/admin/agents${http.qs({ site })}`), [site]);
    const [adding, setAdding] = useState(false);
    const [edit, setEdit] = useState(null);
    if (res.state === 'missing') return <NotAvailable what={t('admin.agents')} />;
    const agents = (res.data && res.data.agents) || [];
    return (
        <div>
            <div class="toolbar">
                <label class="inline">
                    {t('common.site')}
                    <select value={site} onChange={(e) => setSite(e.currentTarget.value)}>
                        <option value="">{t('admin.allSites')}</option>
                        {siteKeys.map((s) => (
                            <option key={s} value={s}>
                                {s}
                            </option>
                        ))}
                    </select>
                </label>
                <button type="button" class="primary" data-action="add-agent" onClick={() => setAdding(!adding)}>
                    {t('admin.addAgent')}
                </button>
            </div>
            {adding ? <AgentForm siteKeys={siteKeys} onDone={() => (setAdding(false), res.reload())} onCancel={() => setAdding(false)} /> : null}
            {res.state === 'error' ? <Notice kind="error">{errorText(res.error)}</Notice> : null}
            <table class="table" data-table="agents">
                <thead>
                    <tr>
                        <th>{t('admin.name')}</th>
                        <th>{t('login.email')}</th>
                        <th>{t('admin.role')}</th>
                        <th>{t('admin.sitesCol')}</th>
                        <th>{t('sup.teams')}</th>
                        <th>{t('admin.capacity')}</th>
                        <th>{t('presence.label')}</th>
                        <th>{t('admin.twoFactor')}</th>
                        <th />
                    </tr>
                </thead>
                <tbody>
                    {agents.map((a) => (
                        <tr key={a.id} data-agent={a.email} class={a.disabled ? 'disabled' : ''}>
                            <td>{a.name}</td>
                            <td>{a.email}</td>
                            <td>{t(`role.${a.role}`)}</td>
                            <td>{(a.sites || []).join(', ')}</td>
                            <td>{(a.teams || []).join(', ')}</td>
                            <td>{a.max_chats}</td>
                            <td>{a.disabled ? <span class="chip danger">{t('admin.disabled')}</span> : t(`presence.${a.status || 'offline'}`)}</td>
                            <td data-totp={a.totp ? 'on' : 'off'}>
                                {a.totp ? t('common.yes') : t('common.no')}
                                {a.totp && !a.scoped ? (
                                    <button type="button" class="small" data-action="totp-reset" onClick={() => resetTotp(a, res.reload)}>
                                        {t('admin.totpReset')}
                                    </button>
                                ) : null}
                            </td>
                            <td>
                                <button type="button" class="small" onClick={() => setEdit(edit === a.id ? null : a.id)}>
                                    {t('common.edit')}
                                </button>
                            </td>
                        </tr>
                    ))}
                </tbody>
            </table>
            {edit ? (
                <AgentForm
                    key={edit}
                    siteKeys={siteKeys}
                    agent={agents.find((a) => a.id === edit)}
                    onDone={() => (setEdit(null), res.reload())}
                    onCancel={() => setEdit(null)}
                />
            ) : null}
        </div>
    );
}

/** An admin turns an agent's two-factor login off (a lost phone); it logs in with its
 *  password again and enrols again where a site requires it. */
async function resetTotp(a, reload) {
    if (!window.confirm(t('admin.totpResetConfirm', { name: a.name }))) return;
    try {
        await http.post(`/api/v1/admin/agents/${http.enc(a.id)}/totp/reset`);
        toast(t('admin.saved'), 'ok');
        reload();
    } catch (e) {
        toast(errorText(e), 'error');
    }
}

function AgentForm({ siteKeys, agent, onDone, onCancel }) {
    const [f, setF, bind] = useForm(
        agent
            ? { name: agent.name, password: '', role: agent.role, max_chats: agent.max_chats ?? 5, teams: (agent.teams || []).join(', '), sites: agent.sites || [], disabled: !!agent.disabled }
            : { email: '', name: '', password: '', role: 'agent', max_chats: 5, teams: '', sites: siteKeys.slice(0, 1), disabled: false },
    );
    const sub = useSubmit();
    const scoped = !!(agent && agent.scoped);
    const toggleSite = (s) => setF((cur) => ({ ...cur, sites: cur.sites.includes(s) ? cur.sites.filter((x) => x !== s) : [...cur.sites, s] }));
    return (
        <form
            class="form card"
            data-form={agent ? 'agent-edit' : 'agent-create'}
            onSubmit={async (e) => {
                e.preventDefault();
                if (!f.sites.length && !scoped) {
                    sub.setErr(t('admin.needSite'));
                    return;
                }
                // an agent shared with a site the admin does not run: only its teams and its
                // membership of the admin's sites can change (the server refuses the rest)
                const body = scoped
                    ? { teams: lines(f.teams), sites: f.sites }
                    : { name: f.name.trim(), role: f.role, max_chats: Number(f.max_chats), teams: lines(f.teams), sites: f.sites };
                if (f.password && !scoped) body.password = f.password;
                let r;
                if (agent) {
                    if (!scoped) body.disabled = !!f.disabled;
                    r = await sub.run(() => http.patch(`/api/v1/admin/agents/${http.enc(agent.id)}`, body), t('admin.saved'));
                } else {
                    body.email = f.email.trim();
                    r = await sub.run(() => http.post('/api/v1/admin/agents', body), t('admin.agentCreated', { email: body.email }));
                }
                if (r) onDone();
            }}
        >
            <h3>{agent ? t('admin.editAgent', { name: agent.name }) : t('admin.addAgent')}</h3>
            {scoped ? (
                <Notice kind="info" testid="agent-scoped">
                    {t('admin.agentScoped')}
                </Notice>
            ) : null}
            <div class="grid2">
                {!agent ? (
                    <label>
                        {t('login.email')}
                        <input type="email" required autocomplete="off" {...bind('email')} />
                    </label>
                ) : null}
                <label>
                    {t('admin.name')}
                    <input required maxLength={200} disabled={scoped} {...bind('name')} />
                </label>
                <label>
                    {agent ? t('admin.newPassword') : t('login.password')}
                    <input type="password" autocomplete="new-password" minLength={12} maxLength={128} required={!agent} disabled={scoped} {...bind('password')} />
                </label>
                <label>
                    {t('admin.role')}
                    <select disabled={scoped} {...bind('role', 'select')}>
                        <option value="agent">{t('role.agent')}</option>
                        <option value="admin">{t('role.admin')}</option>
                        {isOwner() || f.role === 'owner' ? <option value="owner">{t('role.owner')}</option> : null}
                    </select>
                </label>
                <label>
                    {t('admin.capacity')}
                    <input type="number" min={1} max={100} disabled={scoped} {...bind('max_chats')} />
                </label>
                <label>
                    {t('sup.teams')}
                    <input {...bind('teams')} placeholder="billing, tier2" />
                </label>
                <fieldset class="sites-pick">
                    <legend>{t('admin.sitesCol')}</legend>
                    {siteKeys.map((s) => (
                        <label class="check" key={s}>
                            <input type="checkbox" name="sites" value={s} checked={f.sites.includes(s)} onChange={() => toggleSite(s)} /> {s}
                        </label>
                    ))}
                </fieldset>
                {agent ? (
                    <label class="check">
                        <input type="checkbox" disabled={scoped} {...bind('disabled', 'checkbox')} /> {t('admin.disable')}
                    </label>
                ) : null}
            </div>
            {sub.err ? <Notice kind="error">{sub.err}</Notice> : null}
            <div class="buttons">
                <button type="button" onClick={onCancel}>
                    {t('common.cancel')}
                </button>
                <Submit busy={sub.busy} action={agent ? 'save-agent' : 'create-agent'} label={agent ? t('common.save') : t('admin.create')} />
            </div>
        </form>
    );
}

// ---------------------------------------------------------------------------
// Teams

function Teams({ site }) {
    const res = useLoad(() => http.get(`/api/v1/admin/sites/${http.enc(site)}/teams`), [site]);
    const [f, setF, bind] = useForm({ key: '', name: '' });
    const sub = useSubmit();
    if (res.state === 'missing') return <NotAvailable what={t('admin.teams')} />;
    const teams = (res.data && res.data.teams) || [];
    return (
        <div>
            {res.state === 'error' ? <Notice kind="error">{errorText(res.error)}</Notice> : null}
            <table class="table" data-table="teams">
                <thead>
                    <tr>
                        <th>{t('admin.key')}</th>
                        <th>{t('admin.name')}</th>
                    </tr>
                </thead>
                <tbody>
                    {teams.map((x) => (
                        <tr key={x.key} data-team={x.key}>
                            <td>
                                <code>{x.key}</code>
                            </td>
                            <td>{x.name}</td>
                        </tr>
                    ))}
                </tbody>
            </table>
            <form
                class="form card inline-form"
                data-form="team-create"
                onSubmit={async (e) => {
                    e.preventDefault();
                    const r = await sub.run(() => http.post(`/api/v1/admin/sites/${http.enc(site)}/teams`, { key: f.key.trim(), name: f.name.trim() }), t('admin.saved'));
                    if (r) {
                        S.teams.add(`${site}|${f.key.trim()}`);
                        setF({ key: '', name: '' });
                        res.reload();
                    }
                }}
            >
                <h3>{t('admin.addTeam')}</h3>
                <label>
                    {t('admin.key')}
                    <input required pattern="[A-Za-z0-9_\-]{1,64}" {...bind('key')} />
                </label>
                <label>
                    {t('admin.name')}
                    <input required maxLength={200} {...bind('name')} />
                </label>
                {sub.err ? <Notice kind="error">{sub.err}</Notice> : null}
                <Submit busy={sub.busy} action="create-team" label={t('admin.create')} />
            </form>
        </div>
    );
}

// ---------------------------------------------------------------------------
// SLA policies and business hours

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const SLA_FIELDS = ['first_response_s', 'next_response_s', 'resolution_s'];

function Sla({ site }) {
    const res = useLoad(() => http.get(`/api/v1/admin/sites/${http.enc(site)}/sla`), [site]);
    const teams = useLoad(() => http.get(`/api/v1/admin/sites/${http.enc(site)}/teams`), [site]);
    if (res.state === 'missing') return <NotAvailable what={t('admin.sla')} />;
    if (res.state === 'error') return <Notice kind="error">{errorText(res.error)}</Notice>;
    if (res.state === 'loading') return <p class="muted">{t('msg.loading')}</p>;
    const teamList = teams.state === 'ok' ? teams.data.teams : [];
    return <SlaForm site={site} sla={(res.data && res.data.sla) || {}} effective={(res.data && res.data.effective) || null} teams={teamList} onSaved={res.reload} />;
}

/** The browser's IANA time zones (the server checks the name against its own zone files). */
const TIME_ZONES = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone').filter((z) => z !== 'UTC') : ['Asia/Shanghai', 'Asia/Hong_Kong', 'Asia/Singapore', 'Europe/London', 'America/New_York'];

/**
 * A target in hours and minutes, kept as the API's seconds (a string; '' = not set, the
 * built-in default applies). Seconds beyond whole minutes, set through the API, are kept.
 */
function HoursMinutes({ name, label, value, placeholder, onChange }) {
    const s = value === '' || value == null ? null : Number(value);
    const h = s === null ? '' : String(Math.floor(s / 3600));
    const m = s === null ? '' : String(Math.floor((s % 3600) / 60));
    const ph = placeholder == null ? null : { h: Math.floor(placeholder / 3600), m: Math.floor((placeholder % 3600) / 60) };
    const set = (hh, mm) => {
        if (hh === '' && mm === '') return onChange('');
        const total = Number(hh || 0) * 3600 + Number(mm || 0) * 60 + (s === null ? 0 : s % 60);
        onChange(String(total));
    };
    return (
        <span class="hm" data-target={name}>
            <input type="number" min={0} max={8760} name={`${name}.h`} aria-label={`${label} (${t('sla.hoursUnit')})`} placeholder={ph ? String(ph.h) : ''} value={h} onInput={(e) => set(e.currentTarget.value, m)} />
            <span class="muted small">{t('sla.hoursUnit')}</span>
            <input type="number" min={0} max={59} name={`${name}.m`} aria-label={`${label} (${t('sla.minutesUnit')})`} placeholder={ph ? String(ph.m) : ''} value={m} onInput={(e) => set(h, e.currentTarget.value)} />
            <span class="muted small">{t('sla.minutesUnit')}</span>
        </span>
    );
}

/** What applies to one target while the field is empty: the built-in default (GET …/sla "effective"). */
function slaDefault(effective, p, k) {
    const e = effective && effective.policies && effective.policies[p] && effective.policies[p][k];
    return e && e.from === 'default' ? e.s : null;
}

function SlaForm({ site, sla, effective, teams, onSaved }) {
    const init = {};
    for (const p of PRIORITIES) for (const k of SLA_FIELDS) init[`${p}.${k}`] = sla.policies && sla.policies[p] && sla.policies[p][k] != null ? String(sla.policies[p][k]) : '';
    const cal = sla.calendar || {};
    init.warn_at = sla.warn_at != null ? String(sla.warn_at) : '0.8';
    init.tz = cal.tz || '';
    for (const d of DAYS) init[`h.${d}`] = fmtRanges(cal.hours && cal.hours[d]);
    init.holidays = (cal.holidays || []).join('\n');
    const ba = sla.breach_actions || {};
    init.raise_priority = !!ba.raise_priority;
    init.escalate_team = ba.escalate_team || '';
    init.notify_admins = ba.notify_admins !== false;
    const [f, setF, bind] = useForm(init);
    const sub = useSubmit();
    return (
        <form
            class="form card"
            data-form="sla"
            onSubmit={async (e) => {
                e.preventDefault();
                const policies = {};
                for (const p of PRIORITIES) {
                    const pol = {};
                    for (const k of SLA_FIELDS) {
                        const v = String(f[`${p}.${k}`] || '').trim();
                        if (v) pol[k] = Number(v);
                    }
                    if (Object.keys(pol).length) policies[p] = pol;
                }
                const hours = {};
                for (const d of DAYS) {
                    const r = parseRanges(f[`h.${d}`]);
                    if (r === null) {
                        sub.setErr(t('sla.badHours', { day: t(`day.${d}`) }));
                        return;
                    }
                    if (r.length) hours[d] = r;
                }
                const calendar = {};
                if (f.tz.trim()) calendar.tz = f.tz.trim();
                if (Object.keys(hours).length) calendar.hours = hours;
                const hol = lines(f.holidays);
                if (hol.length) calendar.holidays = hol;
                const body = {
                    policies,
                    warn_at: Number(f.warn_at),
                    calendar,
                    breach_actions: { raise_priority: !!f.raise_priority, notify_admins: !!f.notify_admins, ...(f.escalate_team.trim() ? { escalate_team: f.escalate_team.trim() } : {}) },
                };
                const r = await sub.run(() => http.put(`/api/v1/admin/sites/${http.enc(site)}/sla`, body), t('admin.saved'));
                if (r) onSaved();
            }}
        >
            <h3>{t('sla.policies')}</h3>
            <p class="muted small">{t('sla.secondsHint')}</p>
            <table class="table sla-table">
                <thead>
                    <tr>
                        <th />
                        {SLA_FIELDS.map((k) => (
                            <th key={k}>{t(`sla.field.${k}`)}</th>
                        ))}
                    </tr>
                </thead>
                <tbody>
                    {PRIORITIES.map((p) => (
                        <tr key={p}>
                            <th>{t(`prio.${p}`)}</th>
                            {SLA_FIELDS.map((k) => (
                                <td key={k}>
                                    <HoursMinutes
                                        name={`${p}.${k}`}
                                        label={`${t(`prio.${p}`)} ${t(`sla.field.${k}`)}`}
                                        value={f[`${p}.${k}`]}
                                        placeholder={slaDefault(effective, p, k)}
                                        onChange={(v) => setF((cur) => ({ ...cur, [`${p}.${k}`]: v }))}
                                    />
                                    {f[`${p}.${k}`] ? (
                                        <span class="muted small" data-sla-from="site">
                                            {fmtDuration(Number(f[`${p}.${k}`]) * 1000)}
                                        </span>
                                    ) : slaDefault(effective, p, k) !== null ? (
                                        <span class="muted small" data-sla-from="default">
                                            {t('sla.builtIn', { d: fmtDuration(slaDefault(effective, p, k) * 1000) })}
                                        </span>
                                    ) : null}
                                </td>
                            ))}
                        </tr>
                    ))}
                </tbody>
            </table>
            <label class="inline">
                {t('sla.warnAt')}
                <input type="number" step="0.05" min="0.05" max="0.95" {...bind('warn_at')} />
            </label>
            <h3>{t('sla.hours')}</h3>
            <div class="grid2">
                <label>
                    {t('sla.tz')}
                    <select {...bind('tz', 'select')}>
                        <option value="">UTC</option>
                        {f.tz && !TIME_ZONES.includes(f.tz) ? <option value={f.tz}>{f.tz}</option> : null}
                        {TIME_ZONES.map((z) => (
                            <option key={z} value={z}>
                                {z}
                            </option>
                        ))}
                    </select>
                </label>
                {DAYS.map((d) => (
                    <label key={d}>
                        {t(`day.${d}`)}
                        <input placeholder="09:00-18:00" {...bind(`h.${d}`)} />
                    </label>
                ))}
                <label>
                    {t('sla.holidays')}
                    <textarea rows={3} placeholder="2026-10-01" {...bind('holidays')} />
                </label>
            </div>
            <p class="muted small">{t('sla.hoursHint')}</p>
            <h3>{t('sla.breachActions')}</h3>
            <label class="check">
                <input type="checkbox" {...bind('raise_priority', 'checkbox')} /> {t('sla.raisePriority')}
            </label>
            <label class="check">
                <input type="checkbox" {...bind('notify_admins', 'checkbox')} /> {t('sla.notifyAdmins')}
            </label>
            <label class="inline">
                {t('sla.escalateTeam')}
                <select {...bind('escalate_team', 'select')}>
                    <option value="">{t('sla.noEscalation')}</option>
                    {f.escalate_team && !teams.some((x) => x.key === f.escalate_team) ? <option value={f.escalate_team}>{t('rules.p.unknown', { id: f.escalate_team })}</option> : null}
                    {teams.map((x) => (
                        <option key={x.key} value={x.key}>
                            {x.name}
                        </option>
                    ))}
                </select>
            </label>
            {sub.err ? <Notice kind="error">{sub.err}</Notice> : null}
            <div class="buttons">
                <Submit busy={sub.busy} action="save-sla" />
            </div>
        </form>
    );
}
