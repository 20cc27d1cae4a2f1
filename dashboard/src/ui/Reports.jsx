// Reports page (docs/reports.md): support metrics of a site over a range of days (UTC),
// site-wide, per team or per agent: KPI tiles, daily charts, per-agent/per-team tables
// and CSV downloads. Charts: Chart.js (tree-shaken; draws on <canvas>, sets only CSSOM
// styles, so it runs under the dashboard's CSP), loaded the first time a chart is drawn:
// it is most of the bundle, and most agents never open this page.
import { useEffect, useRef, useState } from 'preact/hooks';
import { S, isAdmin } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { Notice, NotAvailable, dur, SiteSelect, saveCsv } from './common.jsx';

let chartLib = null;
/** Chart.js with the parts these charts use, imported once (its own chunk). */
function loadChart() {
    chartLib ??= import('chart.js').then((m) => {
        m.Chart.register(m.BarController, m.LineController, m.BarElement, m.LineElement, m.PointElement, m.LinearScale, m.CategoryScale, m.Tooltip, m.Legend);
        return m.Chart;
    });
    return chartLib;
}

const DAY = 86_400_000;
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
/** "UTC", "UTC+08:00", "UTC-05:30" for a report offset in minutes. */
const utcLabel = (min) => {
    if (!min) return 'UTC';
    const a = Math.abs(min);
    return `UTC${min < 0 ? '-' : '+'}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
};

function fmtMs(v) {
    return v == null ? '–' : dur(v);
}
function fmtPct(v, scale = 100) {
    return v == null ? '–' : `${Math.round(v * scale * 10) / 10}%`;
}
function fmtNum(v) {
    return v == null ? '–' : String(v);
}

/** Download a report as CSV. */
function downloadCsv(kind, params) {
    return saveCsv(`/api/v1/reports/${kind}${http.qs({ ...params, format: 'csv' })}`, `chatdesk-${kind}-${params.site}-${params.from}-${params.to}.csv`);
}

function ChartBox({ name, config }) {
    const ref = useRef(null);
    useEffect(() => {
        if (!ref.current) return undefined;
        let c = null;
        let gone = false;
        loadChart().then((Chart) => {
            if (!gone && ref.current) c = new Chart(ref.current, config);
        });
        return () => {
            gone = true;
            if (c) c.destroy();
        };
    }, [JSON.stringify(config.data)]);
    return (
        <div class="chart-box" data-chart={name}>
            <canvas ref={ref} role="img" aria-label={t(`rpt.chart.${name}`)} />
        </div>
    );
}

function Tile({ id, label, value, hint }) {
    return (
        <div class="kpi" data-kpi={id}>
            <div class="kpi-label">{label}</div>
            <div class="kpi-value">{value}</div>
            {hint ? <div class="kpi-hint muted">{hint}</div> : null}
        </div>
    );
}

function Rows({ rows, keyName, label, testid }) {
    return (
        <table class="table" data-table={testid}>
            <thead>
                <tr>
                    <th>{label}</th>
                    <th>{t('rpt.conversations')}</th>
                    <th>{t('rpt.resolved')}</th>
                    <th>{t('rpt.frt')}</th>
                    <th>{t('rpt.aht')}</th>
                    <th>{t('rpt.fcr')}</th>
                    <th>{t('rpt.csat')}</th>
                    <th>{t('rpt.sla')}</th>
                </tr>
            </thead>
            <tbody>
                {rows.map((r) => (
                    <tr key={r[keyName]} data-row={r[keyName]}>
                        <td>{r.name || (r[keyName] === '_' ? t('queue.defaultTeam') : r[keyName])}</td>
                        <td>{keyName === 'agent' ? r.assigned : r.conversations}</td>
                        <td>{r.resolved}</td>
                        <td>{fmtMs(r.frt_avg_ms)}</td>
                        <td>{fmtMs(r.aht_avg_ms)}</td>
                        <td>{fmtPct(r.fcr_rate)}</td>
                        <td>{r.csat_avg == null ? '–' : `${r.csat_avg} (${r.csat_n})`}</td>
                        <td>{fmtPct(r.sla_compliance)}</td>
                    </tr>
                ))}
                {rows.length === 0 ? (
                    <tr>
                        <td colSpan={8} class="muted">
                            {t('rpt.noData')}
                        </td>
                    </tr>
                ) : null}
            </tbody>
        </table>
    );
}

export function Reports() {
    const sites = (S.me && S.me.sites) || [];
    const admin = isAdmin();
    const today = Date.now();
    const [site, setSite] = useState(sites[0] || '');
    const [from, setFrom] = useState(isoDay(today - 6 * DAY));
    const [to, setTo] = useState(isoDay(today));
    const [scope, setScope] = useState(''); // '', 'team:<k>', 'agent:<id>'
    const [st, setSt] = useState({ state: 'loading' });
    const [csvErr, setCsvErr] = useState(false);
    const csv = (kind, p) => {
        setCsvErr(false);
        downloadCsv(kind, p).catch(() => setCsvErr(true));
    };

    const params = () => {
        const p = { site, from, to };
        if (scope.startsWith('team:')) p.team = scope.slice(5);
        if (scope.startsWith('agent:')) p.agent = scope.slice(6);
        return p;
    };

    const load = async () => {
        setSt((cur) => ({ ...cur, state: cur.data ? 'ok' : 'loading', busy: true }));
        try {
            const p = params();
            const base = { site, from, to };
            const [summary, daily, agents, teams] = await Promise.all([
                http.get(`/api/v1/reports/summary${http.qs(p)}`),
                http.get(`/api/v1/reports/daily${http.qs(p)}`),
                http.get(`/api/v1/reports/agents${http.qs(admin ? base : p)}`),
                admin ? http.get(`/api/v1/reports/teams${http.qs(base)}`) : Promise.resolve(null),
            ]);
            setSt({ state: 'ok', data: { summary, daily, agents, teams } });
        } catch (e) {
            setSt({ state: http.isRouteMissing(e, true) ? 'missing' : 'error', error: e });
        }
    };

    useEffect(() => {
        if (site) load();
    }, [site, from, to, scope]);

    const d = st.data;
    const m = d ? d.summary.metrics : null;
    // conversations are counted per site and team when they start; an agent's are the ones assigned to them
    const perAgent = !!(d && d.summary.scope.startsWith('agent:'));
    const volKey = perAgent ? 'assigned' : 'conversations';
    const volLabel = t(perAgent ? 'rpt.assigned' : 'rpt.conversations');
    const days = d ? d.daily.rows : [];
    const labels = days.map((r) => r.day.slice(5));
    const volume = {
        type: 'bar',
        data: {
            labels,
            datasets: [
                { type: 'bar', label: volLabel, data: days.map((r) => r[volKey]), backgroundColor: '#1a73e8', yAxisID: 'y' },
                { type: 'bar', label: t('rpt.resolved'), data: days.map((r) => r.resolved), backgroundColor: '#34a853', yAxisID: 'y' },
                {
                    type: 'line',
                    label: t('rpt.frtMin'),
                    data: days.map((r) => (r.frt_avg_ms == null ? null : Math.round(r.frt_avg_ms / 600) / 100)),
                    borderColor: '#f29900',
                    backgroundColor: '#f29900',
                    yAxisID: 'y1',
                    spanGaps: true,
                },
            ],
        },
        options: {
            responsive: true,
            maintainAspectRatio: false,
            animation: false,
            scales: {
                y: { beginAtZero: true, position: 'left', ticks: { precision: 0 } },
                y1: { beginAtZero: true, position: 'right', grid: { drawOnChartArea: false } },
            },
        },
    };
    const quality = {
        type: 'bar',
        data: {
            labels,
            datasets: [
                { label: t('rpt.csatPct'), data: days.map((r) => r.csat_pct), backgroundColor: '#34a853' },
                { label: t('rpt.nps'), data: days.map((r) => r.nps), backgroundColor: '#9334e6' },
            ],
        },
        options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { suggestedMin: -100, suggestedMax: 100 } } },
    };

    const agentRows = d ? d.agents.rows : [];
    const teamRows = d && d.teams ? d.teams.rows : [];
    const b = d ? d.summary.backlog : null;
    return (
        <section class="page reports" data-page="reports">
            <div class="page-head rpt-filters">
                <h2>{t('view.reports')}</h2>
                <SiteSelect sites={sites} site={site} onChange={setSite} />
                <label>
                    {t('rpt.from')}
                    <input type="date" name="from" value={from} max={to} onChange={(e) => e.currentTarget.value && setFrom(e.currentTarget.value)} />
                </label>
                <label>
                    {t('rpt.to')}
                    <input type="date" name="to" value={to} min={from} onChange={(e) => e.currentTarget.value && setTo(e.currentTarget.value)} />
                </label>
                {admin ? (
                    <select name="scope" aria-label={t('rpt.scope')} value={scope} onChange={(e) => setScope(e.currentTarget.value)}>
                        <option value="">{t('rpt.allSite')}</option>
                        {teamRows
                            .filter((r) => r.team !== '_')
                            .map((r) => (
                                <option key={`team:${r.team}`} value={`team:${r.team}`}>
                                    {t('rpt.teamN', { name: r.name || r.team })}
                                </option>
                            ))}
                        {agentRows.map((r) => (
                            <option key={`agent:${r.agent}`} value={`agent:${r.agent}`}>
                                {t('rpt.agentN', { name: r.name || r.agent })}
                            </option>
                        ))}
                    </select>
                ) : (
                    <span class="muted">{t('rpt.ownOnly')}</span>
                )}
                <span class="spacer" />
                <span class="muted rpt-utc">{t('rpt.utc', { tz: utcLabel(d && d.summary ? d.summary.utc_offset_min : 0) })}</span>
            </div>
            {st.state === 'missing' ? <NotAvailable what={t('view.reports')} /> : null}
            {st.state === 'error' ? <Notice kind="error">{t('rpt.loadFailed')}</Notice> : null}
            {st.state === 'loading' ? <p class="muted">{t('msg.loading')}</p> : null}
            {csvErr ? <Notice kind="error">{t('rpt.csvFailed')}</Notice> : null}
            {m ? (
                <>
                    <div class="kpis" data-scope={d.summary.scope}>
                        <Tile id="conversations" label={volLabel} value={fmtNum(m[volKey])} hint={t('rpt.abandonedN', { n: m.abandoned })} />
                        <Tile id="frt" label={t('rpt.frt')} value={fmtMs(m.frt_avg_ms)} />
                        <Tile id="nrt" label={t('rpt.nrt')} value={fmtMs(m.nrt_avg_ms)} />
                        <Tile id="resolution" label={t('rpt.resolution')} value={fmtMs(m.resolution_avg_ms)} hint={t('rpt.resolvedN', { n: m.resolved })} />
                        <Tile id="aht" label={t('rpt.aht')} value={fmtMs(m.aht_avg_ms)} />
                        <Tile id="fcr" label={t('rpt.fcr')} value={fmtPct(m.fcr_rate)} />
                        <Tile id="csat" label={t('rpt.csat')} value={m.csat_avg == null ? '–' : `${m.csat_avg} / 5`} hint={m.csat_pct == null ? '' : t('rpt.satisfied', { pct: m.csat_pct })} />
                        <Tile id="nps" label={t('rpt.nps')} value={fmtNum(m.nps)} hint={t('rpt.answers', { n: m.nps_n })} />
                        <Tile id="ces" label={t('rpt.ces')} value={m.ces_avg == null ? '–' : `${m.ces_avg} / 7`} />
                        <Tile id="wait" label={t('rpt.wait')} value={fmtMs(m.wait_avg_ms)} />
                        <Tile id="sla" label={t('rpt.sla')} value={fmtPct(m.sla_compliance)} hint={t('rpt.breachesN', { n: m.sla_breached })} />
                        <Tile id="backlog" label={t('rpt.backlog')} value={fmtNum(b.queued + b.open + b.pending)} hint={t('rpt.backlogParts', b)} />
                    </div>
                    <div class="sup-grid">
                        <section class="card">
                            <h3>{t('rpt.chart.volume')}</h3>
                            <ChartBox name="volume" config={volume} />
                        </section>
                        <section class="card">
                            <h3>{t('rpt.chart.quality')}</h3>
                            <ChartBox name="quality" config={quality} />
                        </section>
                        <section class={`card ${admin ? '' : 'wide'}`}>
                            <div class="card-head">
                                <h3>{t('rpt.byAgent')}</h3>
                                <button type="button" data-csv="agents" onClick={() => csv('agents', admin ? { site, from, to } : params())}>
                                    {t('rpt.csv')}
                                </button>
                            </div>
                            <Rows rows={agentRows} keyName="agent" label={t('sup.agent')} testid="rpt-agents" />
                        </section>
                        {admin ? (
                            <section class="card">
                                <div class="card-head">
                                    <h3>{t('rpt.byTeam')}</h3>
                                    <button type="button" data-csv="teams" onClick={() => csv('teams', { site, from, to })}>
                                        {t('rpt.csv')}
                                    </button>
                                </div>
                                <Rows rows={teamRows} keyName="team" label={t('sup.team')} testid="rpt-teams" />
                            </section>
                        ) : null}
                    </div>
                    <div class="rpt-downloads">
                        <button type="button" data-csv="summary" onClick={() => csv('summary', params())}>
                            {t('rpt.csvSummary')}
                        </button>
                        <button type="button" data-csv="daily" onClick={() => csv('daily', params())}>
                            {t('rpt.csvDaily')}
                        </button>
                    </div>
                </>
            ) : null}
        </section>
    );
}
