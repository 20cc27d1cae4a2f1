import { useEffect, useState, useRef } from 'preact/hooks';
import { S, onEvent, upsertConv, openConv, setView } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { NotAvailable, Notice, Presence, Since, SlaBadge, StatusChip, SiteSelect } from './common.jsx';

export function Supervisor() {
    const sites = (S.me && S.me.sites) || [];
    const [site, setSite] = useState(sites[0] || '');
    const [st, setSt] = useState({ state: 'loading' });
    const siteRef = useRef(site);
    siteRef.current = site;

    const load = async () => {
        const s = siteRef.current;
        try {
            const r = await http.get(`/api/v1/supervisor${http.qs({ site: s })}`);
            for (const c of r.at_risk || []) upsertConv(c);
            setSt({ state: 'ok', data: r, at: Date.now() });
        } catch (e) {
            setSt({ state: http.isRouteMissing(e) ? 'missing' : e.code === 'forbidden' ? 'forbidden' : 'error', error: e });
        }
    };

    useEffect(() => {
        setSt({ state: 'loading' });
        load();
    }, [site]);

    useEffect(() => {
        let timer = null;
        const off = onEvent((ev) => {
            if (!/^(presence|queue|conversation|sla|ticket)\./.test(ev.type)) return;
            if (ev.type === 'presence.updated') {
                // at once, without waiting for the reload
                setSt((cur) => {
                    if (cur.state !== 'ok') return cur;
                    const agents = cur.data.agents.map((a) => (a.id === ev.agent_id ? { ...a, status: ev.status } : a));
                    return { ...cur, data: { ...cur.data, agents } };
                });
            }
            if (ev.type === 'queue.updated' && ev.site === siteRef.current) {
                setSt((cur) => {
                    if (cur.state !== 'ok') return cur;
                    const queues = cur.data.queues.filter((q) => (q.team ?? null) !== (ev.team ?? null));
                    queues.push({ team: ev.team ?? null, size: ev.size, oldest_created_at: ev.oldest_created_at });
                    queues.sort((a, b) => String(a.team ?? '').localeCompare(String(b.team ?? '')));
                    return { ...cur, data: { ...cur.data, queues } };
                });
            }
            clearTimeout(timer);
            timer = setTimeout(load, 1000);
        });
        const every = setInterval(load, 15_000);
        return () => {
            off();
            clearTimeout(timer);
            clearInterval(every);
        };
    }, []);

    const d = st.data;
    return (
        <section class="page supervisor" data-page="supervisor">
            <div class="page-head">
                <h2>{t('view.supervisor')}</h2>
                <SiteSelect sites={sites} site={site} onChange={setSite} />
                <span class="spacer" />
                <span class="live" data-live={st.state === 'ok' ? 'true' : 'false'}>
                    {st.state === 'ok' ? t('sup.live') : ''}
                </span>
            </div>
            {st.state === 'missing' ? <NotAvailable what={t('view.supervisor')} /> : null}
            {st.state === 'forbidden' ? <Notice kind="warn">{t('err.forbidden')}</Notice> : null}
            {st.state === 'error' ? <Notice kind="error">{t('sup.loadFailed')}</Notice> : null}
            {st.state === 'loading' ? <p class="muted">{t('msg.loading')}</p> : null}
            {d ? (
                <div class="sup-grid">
                    <section class="card">
                        <h3>{t('sup.agents')}</h3>
                        <table class="table" data-table="agents">
                            <thead>
                                <tr>
                                    <th>{t('sup.agent')}</th>
                                    <th>{t('presence.label')}</th>
                                    <th>{t('sup.load')}</th>
                                    <th>{t('sup.teams')}</th>
                                </tr>
                            </thead>
                            <tbody>
                                {(d.agents || []).map((a) => {
                                    const pct = a.max_chats ? Math.min(100, Math.round((100 * (a.load || 0)) / a.max_chats)) : 0;
                                    return (
                                        <tr key={a.id} data-agent={a.id}>
                                            <td>{a.name}</td>
                                            <td>
                                                <Presence status={a.status} /> {t(`presence.${a.status || 'offline'}`)}
                                            </td>
                                            <td>
                                                <span class="load">
                                                    {a.load || 0} / {a.max_chats ?? '–'}
                                                </span>
                                                <span class="bar">
                                                    <span class={`fill ${pct >= 100 ? 'full' : ''}`} ref={(el) => el && (el.style.width = `${pct}%`)} />
                                                </span>
                                            </td>
                                            <td>{(a.teams || []).join(', ')}</td>
                                        </tr>
                                    );
                                })}
                            </tbody>
                        </table>
                    </section>
                    <section class="card">
                        <h3>{t('sup.queues')}</h3>
                        <table class="table" data-table="queues">
                            <thead>
                                <tr>
                                    <th>{t('sup.team')}</th>
                                    <th>{t('sup.depth')}</th>
                                    <th>{t('sup.oldest')}</th>
                                </tr>
                            </thead>
                            <tbody>
                                {(d.queues || []).map((q) => (
                                    <tr key={q.team ?? '_'} data-queue={q.team ?? ''}>
                                        <td>{q.team || t('queue.defaultTeam')}</td>
                                        <td class={q.size > 0 ? 'hot' : ''}>{q.size}</td>
                                        <td>{q.oldest_created_at ? <Since ts={q.oldest_created_at} /> : '–'}</td>
                                    </tr>
                                ))}
                            </tbody>
                        </table>
                    </section>
                    <section class="card wide">
                        <h3>{t('sup.atRisk')}</h3>
                        {(d.at_risk || []).length === 0 ? <p class="muted">{t('sup.noRisk')}</p> : null}
                        <table class="table" data-table="at-risk">
                            <tbody>
                                {(d.at_risk || []).map((c0) => {
                                    const c = S.convs.get(c0.id) || c0;
                                    return (
                                        <tr key={c.id} data-cid={c.id}>
                                            <td>
                                                <button
                                                    type="button"
                                                    class="link"
                                                    onClick={() => {
                                                        setView('tickets');
                                                        openConv(c.id);
                                                    }}
                                                >
                                                    #{c.ticket ? c.ticket.number : ''} {c.subject || (c.visitor && c.visitor.name) || ''}
                                                </button>
                                            </td>
                                            <td>
                                                <StatusChip status={c.status} />
                                            </td>
                                            <td>{c.assignee ? c.assignee.name : t('conv.unassigned')}</td>
                                            <td>
                                                <SlaBadge conv={c} />
                                            </td>
                                        </tr>
                                    );
                                })}
                            </tbody>
                        </table>
                    </section>
                </div>
            ) : null}
        </section>
    );
}
