import { useState, useEffect } from 'preact/hooks';
import { S, login, logout, setView, setPresence, convsFor, unreadFor, isAdmin, switchLang, setPref, reconnectNow, openConv, showDialog } from '../store.js';
import { t, getLang, LANGS } from '../i18n.js';
import { unlockAudio, requestNotifyPermission, notifyPermission } from '../notify.js';
import { useStore, Notice, Presence, Dialog } from './common.jsx';
import { ConvList } from './ConvList.jsx';
import { ConvPane } from './ConvPane.jsx';
import { CustomerPanel } from './CustomerPanel.jsx';
import { Tickets } from './Tickets.jsx';
import { Supervisor } from './Supervisor.jsx';
import { Admin } from './Admin.jsx';
import { CannedPage } from './Canned.jsx';
import { TransferDialog } from './Transfer.jsx';
import { NoticesBell } from './Notices.jsx';
import { MentionsList } from './Mentions.jsx';
import { Reports } from './Reports.jsx';
import { SHORTCUTS } from '../keys.js';
import { TotpLogin, TotpEnrolLogin, SecurityDialog } from './Security.jsx';

export function App() {
    useStore();
    if (!S.token) return <Login />;
    return <Shell />;
}

function LangSwitch() {
    return (
        <select class="lang" aria-label={t('header.language')} value={getLang()} onChange={(e) => switchLang(e.currentTarget.value)}>
            {LANGS.map((l) => (
                <option value={l.code} key={l.code}>
                    {l.name}
                </option>
            ))}
        </select>
    );
}

function Login() {
    if (S.challenge) return <main class="login" data-view="login"><TotpLogin /></main>;
    if (S.enrol) return <main class="login" data-view="login"><TotpEnrolLogin /></main>;
    return <PasswordLogin />;
}

function PasswordLogin() {
    const [email, setEmail] = useState('');
    const [password, setPassword] = useState('');
    const [busy, setBusy] = useState(false);
    return (
        <main class="login" data-view="login">
            <form
                class="login-box"
                onSubmit={async (e) => {
                    e.preventDefault();
                    unlockAudio();
                    setBusy(true);
                    try {
                        await login(email.trim(), password);
                    } catch {
                        /* shown */
                    } finally {
                        setBusy(false);
                    }
                }}
            >
                <div class="login-head">
                    <h1>chatdesk</h1>
                    <LangSwitch />
                </div>
                <p class="muted">{t('login.subtitle')}</p>
                {S.sessionExpired ? <Notice kind="warn">{t('login.expired')}</Notice> : null}
                {S.loginError ? (
                    <Notice kind="error" testid="login-error">
                        {S.loginError}
                    </Notice>
                ) : null}
                <label>
                    {t('login.email')}
                    <input name="email" type="email" autocomplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
                </label>
                <label>
                    {t('login.password')}
                    <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
                </label>
                <button class="primary" type="submit" disabled={busy}>
                    {busy ? t('login.busy') : t('login.submit')}
                </button>
            </form>
        </main>
    );
}

const NAV = [
    ['mine', 'view.mine'],
    ['queue', 'view.queue'],
    ['all', 'view.all'],
    ['pending', 'view.pending'],
    ['resolved', 'view.resolved'],
    ['tickets', 'view.tickets'],
    ['supervisor', 'view.supervisor'],
    ['canned', 'view.canned'],
    ['admin', 'view.admin'],
    ['reports', 'view.reports'], // reports (Reports.jsx): last, so the Alt+digit shortcuts above keep their keys
    ['mentions', 'view.mentions'], // unread @mentions (Mentions.jsx), after the shortcut keys
];

function Nav() {
    return (
        <nav class="nav" aria-label={t('nav.label')}>
            {NAV.filter(([v]) => v !== 'admin' || isAdmin()).map(([v, key], i) => {
                const count = ['mine', 'queue', 'all', 'pending', 'resolved'].includes(v) ? convsFor(v).length : null;
                const unread = ['mine', 'all', 'pending', 'resolved'].includes(v) ? unreadFor(v) : v === 'mentions' ? (S.mentions || []).length : 0;
                return (
                    <button
                        type="button"
                        key={v}
                        class={`nav-item ${S.view === v ? 'active' : ''}`}
                        data-nav={v}
                        aria-current={S.view === v ? 'page' : undefined}
                        title={i < 9 ? `Alt+${i + 1}` : ''}
                        onClick={() => setView(v)}
                    >
                        <span class="nav-label">{t(key)}</span>
                        {unread > 0 ? (
                            <span class="badge unread" data-unread={unread} aria-label={t('nav.unread', { n: unread })}>
                                {unread}
                            </span>
                        ) : count !== null ? (
                            <span class={`count ${v === 'queue' && count > 0 ? 'hot' : ''}`} data-count={count}>
                                {count}
                            </span>
                        ) : null}
                    </button>
                );
            })}
        </nav>
    );
}

function ConnState() {
    if (S.conn === 'online') return <span class="conn conn-online" data-conn="online" title={t('conn.online')} />;
    return (
        <span class={`conn conn-${S.conn}`} data-conn={S.conn}>
            {S.conn === 'connecting' ? t('conn.connecting') : t('conn.offline')}
            {S.conn === 'offline' ? (
                <button type="button" class="link" onClick={reconnectNow}>
                    {t('conn.retry')}
                </button>
            ) : null}
        </span>
    );
}

function Header() {
    const perm = notifyPermission();
    return (
        <header class="top">
            <div class="brand">chatdesk</div>
            <ConnState />
            <div class="spacer" />
            <label class="presence-switch">
                <Presence status={S.presence} />
                <select
                    aria-label={t('presence.label')}
                    data-presence={S.presence}
                    value={S.presence === 'online' || S.presence === 'away' ? S.presence : 'offline'}
                    onChange={(e) => setPresence(e.currentTarget.value)}
                >
                    <option value="online">{t('presence.online')}</option>
                    <option value="away">{t('presence.away')}</option>
                    <option value="offline">{t('presence.offline')}</option>
                </select>
            </label>
            <button
                type="button"
                class={`toggle ${S.prefs.sound ? 'on' : ''}`}
                aria-pressed={S.prefs.sound ? 'true' : 'false'}
                title={t('header.sound')}
                onClick={() => {
                    unlockAudio();
                    setPref('sound', !S.prefs.sound);
                }}
            >
                {S.prefs.sound ? t('header.soundOn') : t('header.soundOff')}
            </button>
            {perm === 'default' ? (
                <button type="button" class="ghost" onClick={async () => {
                    await requestNotifyPermission();
                    setPref('notify', true);
                }}>
                    {t('header.enableNotify')}
                </button>
            ) : null}
            <NoticesBell />
            <LangSwitch />
            <button type="button" class="ghost" data-action="help" title="?" onClick={() => showDialog({ kind: 'help' })}>
                ?
            </button>
            <button type="button" class="ghost" data-action="security" onClick={() => showDialog({ kind: 'security' })}>
                {t('totp.menu')}
            </button>
            <span class="me" title={S.me ? S.me.email : ''}>
                {S.me ? S.me.name : ''}
            </span>
            <button type="button" class="ghost" data-action="logout" onClick={logout}>
                {t('header.logout')}
            </button>
        </header>
    );
}

function Main() {
    const v = S.view;
    if (v === 'supervisor') return <Supervisor />;
    if (v === 'admin') return isAdmin() ? <Admin /> : <Notice kind="warn">{t('admin.only')}</Notice>;
    if (v === 'canned') return <CannedPage />;
    if (v === 'reports') return <Reports />;
    return (
        <div class="work">
            {v === 'tickets' ? <Tickets /> : v === 'mentions' ? <MentionsList /> : <ConvList view={v} />}
            <ConvPane cid={S.active} />
            <CustomerPanel cid={S.active} />
        </div>
    );
}

function HelpDialog() {
    return (
        <Dialog title={t('help.title')} onClose={() => showDialog(null)} cls="help">
            <table class="shortcuts">
                <tbody>
                    {SHORTCUTS.map(([keys, key]) => (
                        <tr key={key}>
                            <td>
                                {keys.split(' ').map((k, i) => (
                                    <kbd key={i}>{k}</kbd>
                                ))}
                            </td>
                            <td>{t(key)}</td>
                        </tr>
                    ))}
                </tbody>
            </table>
        </Dialog>
    );
}

function Toasts() {
    return (
        <div class="toasts" aria-live="polite">
            {S.toasts.map((x) => (
                <div key={x.id} class={`toast toast-${x.kind}`}>
                    {x.text}
                </div>
            ))}
        </div>
    );
}

function Shell() {
    useEffect(() => {
        const unlock = () => unlockAudio();
        window.addEventListener('pointerdown', unlock, { once: true });
        window.addEventListener('keydown', unlock, { once: true });
    }, []);
    const d = S.dialog;
    return (
        <div class="shell" data-view={S.view} lang={getLang()}>
            <Header />
            {S.conn !== 'online' && S.conn !== 'idle' ? (
                <div class="banner" role="status" data-banner="conn">
                    {S.conn === 'connecting' ? t('conn.connectingLong') : t('conn.offlineLong')}
                </div>
            ) : null}
            <div class="body">
                <Nav />
                <Main />
            </div>
            {d && d.kind === 'help' ? <HelpDialog /> : null}
            {d && d.kind === 'security' ? <SecurityDialog /> : null}
            {d && d.kind === 'transfer' ? <TransferDialog cid={d.cid} /> : null}
            <Toasts />
        </div>
    );
}

export { openConv };
