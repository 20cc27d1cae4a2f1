// Keyboard shortcuts. Single keys act only when focus is not in a text field; Alt+digit
// and Esc work everywhere.
import { S, setView, VIEWS, convsFor, openConv, accept, showDialog, updateConv, setPresence, isAdmin, LIST_VIEWS, changed } from './store.js';
import { focusComposer } from './ui/Composer.jsx';

/** [keys shown in the help panel (space separated), i18n key] */
export const SHORTCUTS = [
    ['?', 'key.help'],
    ['Alt+1 Alt+9', 'key.views'],
    ['j k', 'key.move'],
    ['o', 'key.open'],
    ['a', 'key.accept'],
    ['r', 'key.reply'],
    ['n', 'key.note'],
    ['t', 'key.transfer'],
    ['e', 'key.resolve'],
    ['p', 'key.presence'],
    ['/', 'key.canned'],
    ['Enter', 'key.send'],
    ['Shift+Enter', 'key.newline'],
    ['Esc', 'key.escape'],
];

function typingInField(e) {
    const el = e.target;
    if (!el || !el.tagName) return false;
    const tag = el.tagName;
    return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
}

function visibleViews() {
    return VIEWS.filter((v) => v !== 'admin' || isAdmin());
}

function move(delta) {
    if (!LIST_VIEWS.includes(S.view)) return;
    const list = convsFor(S.view);
    if (!list.length) return;
    let i = list.findIndex((c) => c.id === S.active);
    if (i < 0) i = delta > 0 ? -1 : list.length;
    i = Math.max(0, Math.min(list.length - 1, i + delta));
    S.selectedIndex = i;
    openConv(list[i].id);
    setTimeout(() => document.querySelector('.conv-item.active')?.scrollIntoView({ block: 'nearest' }), 0);
}

export function installShortcuts() {
    window.addEventListener('keydown', (e) => {
        if (!S.token) return;
        if (e.altKey && !e.ctrlKey && !e.metaKey && /^Digit[1-9]$/.test(e.code)) {
            const v = visibleViews()[Number(e.code.slice(5)) - 1];
            if (v) {
                e.preventDefault();
                setView(v);
            }
            return;
        }
        if (e.key === 'Escape') {
            if (S.dialog) {
                showDialog(null);
                e.preventDefault();
            }
            return;
        }
        if (e.ctrlKey || e.metaKey || e.altKey || typingInField(e) || S.dialog) return;
        const c = S.active ? S.convs.get(S.active) : null;
        switch (e.key) {
            case '?':
                showDialog({ kind: 'help' });
                break;
            case 'j':
                move(1);
                break;
            case 'k':
                move(-1);
                break;
            case 'o': {
                const list = LIST_VIEWS.includes(S.view) ? convsFor(S.view) : [];
                const x = list[S.selectedIndex] || list[0];
                if (x) openConv(x.id);
                break;
            }
            case 'a':
                if (c && (c.status === 'queued' || !c.assignee)) accept(c.id);
                else {
                    const q = convsFor('queue')[0];
                    if (q && S.view === 'queue') accept(q.id);
                }
                break;
            case 'r':
                if (c) focusComposer(false);
                break;
            case 'n':
                if (c) focusComposer(true);
                break;
            case 't':
                if (c && c.status !== 'closed') showDialog({ kind: 'transfer', cid: c.id });
                break;
            case 'e':
                if (c && ['open', 'pending', 'queued'].includes(c.status)) updateConv(c.id, { status: 'resolved' }).catch(() => {});
                break;
            case 'p':
                setPresence(S.presence === 'online' ? 'away' : 'online');
                break;
            default:
                return;
        }
        e.preventDefault();
        changed();
    });
}
