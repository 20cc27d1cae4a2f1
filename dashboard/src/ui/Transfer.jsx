import { useState, useEffect } from 'preact/hooks';
import { S, transfer, showDialog, loadAgents, errorText } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { Dialog, Notice, Presence } from './common.jsx';

export function TransferDialog({ cid }) {
    const c = S.convs.get(cid);
    const [mode, setMode] = useState('agent');
    const [agentId, setAgentId] = useState('');
    const [team, setTeam] = useState('');
    const [note, setNote] = useState('');
    const [err, setErr] = useState(null);
    const [busy, setBusy] = useState(false);
    const [teamList, setTeamList] = useState(null); // [{key,name}] of the site, by name
    useEffect(() => {
        if (!c) return;
        loadAgents(c.site);
        http.get(`/api/v1/teams${http.qs({ site: c.site })}`)
            .then((r) => setTeamList((r.teams || []).filter((x) => x.site === c.site)))
            .catch(() => setTeamList([]));
    }, [cid]);
    if (!c) return null;
    const agents = [...S.agents.values()]
        .filter((a) => a.id !== (S.me && S.me.id) && (!a._sites || a._sites.includes(c.site)) && a.name && !a.disabled)
        .sort((a, b) => (a.status === 'online' ? 0 : 1) - (b.status === 'online' ? 0 : 1) || a.name.localeCompare(b.name));
    const teams = [...S.teams].filter((x) => x.startsWith(`${c.site}|`)).map((x) => x.slice(c.site.length + 1));
    const close = () => showDialog(null);
    const submit = async (e) => {
        e.preventDefault();
        setErr(null);
        const target = mode === 'agent' ? { agent_id: agentId } : { team: team.trim() };
        if (mode === 'agent' ? !agentId : !team.trim()) {
            setErr(t('transfer.pick'));
            return;
        }
        setBusy(true);
        try {
            await transfer(cid, { ...target, note });
            close();
        } catch (ex) {
            setErr(ex.code === 'not_found' ? t('transfer.unknown') : errorText(ex));
        } finally {
            setBusy(false);
        }
    };
    return (
        <Dialog title={t('transfer.title')} onClose={close} cls="transfer">
            <form onSubmit={submit} class="form">
                <div class="seg" role="radiogroup">
                    <label>
                        <input type="radio" name="mode" value="agent" checked={mode === 'agent'} onChange={() => setMode('agent')} /> {t('transfer.toAgent')}
                    </label>
                    <label>
                        <input type="radio" name="mode" value="team" checked={mode === 'team'} onChange={() => setMode('team')} /> {t('transfer.toTeam')}
                    </label>
                </div>
                {mode === 'agent' ? (
                    agents.length ? (
                        <div class="agent-pick" role="radiogroup" aria-label={t('transfer.toAgent')}>
                            {agents.map((a) => (
                                <label key={a.id} class={`agent-opt ${agentId === a.id ? 'sel' : ''}`} data-agent={a.id}>
                                    <input type="radio" name="agent" value={a.id} checked={agentId === a.id} onChange={() => setAgentId(a.id)} />
                                    <Presence status={a.status} /> <span class="agent-name">{a.name}</span>
                                    <span class="muted">
                                        {t(`presence.${a.status || 'offline'}`)}
                                        {typeof a.load === 'number' ? ` · ${a.load}/${a.max_chats ?? '–'}` : ''}
                                    </span>
                                </label>
                            ))}
                        </div>
                    ) : (
                        <label>
                            {t('transfer.agentId')}
                            <input name="agent_id" value={agentId} onInput={(e) => setAgentId(e.currentTarget.value.trim())} placeholder="a_…" />
                            <span class="muted small">{t('transfer.noAgentList')}</span>
                        </label>
                    )
                ) : teamList && teamList.length ? (
                    <label>
                        {t('transfer.team')}
                        <select name="team" value={team} onChange={(e) => setTeam(e.currentTarget.value)}>
                            <option value="">{t('transfer.pickTeam')}</option>
                            {teamList.map((x) => (
                                <option key={x.key} value={x.key}>
                                    {x.name}
                                </option>
                            ))}
                        </select>
                        <span class="muted small">{t('transfer.teamHint')}</span>
                    </label>
                ) : (
                    <label>
                        {t('transfer.team')}
                        <input name="team" list="cd-teams" value={team} onInput={(e) => setTeam(e.currentTarget.value)} />
                        <datalist id="cd-teams">
                            {teams.map((x) => (
                                <option key={x} value={x} />
                            ))}
                        </datalist>
                        <span class="muted small">{t('transfer.teamHint')}</span>
                    </label>
                )}
                <label>
                    {t('transfer.note')}
                    <textarea name="note" rows={3} value={note} maxLength={1000} onInput={(e) => setNote(e.currentTarget.value)} placeholder={t('transfer.notePlaceholder')} />
                </label>
                {err ? <Notice kind="error">{err}</Notice> : null}
                <div class="buttons">
                    <button type="button" onClick={close}>
                        {t('common.cancel')}
                    </button>
                    <button type="submit" class="primary" data-action="do-transfer" disabled={busy}>
                        {t('action.transfer')}
                    </button>
                </div>
            </form>
        </Dialog>
    );
}
