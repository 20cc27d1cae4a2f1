import { useRef, useState, useEffect } from 'preact/hooks';
import { S, sendMessage, typing, setWriting, loadCanned, loadAgents, changed } from '../store.js';
import { t } from '../i18n.js';
import { fillCanned, unfilledVars, unknownVars, searchCanned, slashQuery, cannedContext, mentionQuery, mentionCandidates } from '../util.js';
import { uploadFile, removeUpload } from './Attachments.jsx';

const drafts = new Map(); // cid -> text
const notes = new Map(); // cid -> bool
const held = new Map(); // cid -> unknown placeholders inserted from canned replies
const trays = new Map(); // cid -> files being attached: [{key, name, state: up|done|failed, pct, info, err, abort}]
let fileSeq = 0;

/** Uploads files for conversation cid into its tray (docs/attachments.md), each with
 *  its progress; used by the paperclip, a paste and files dropped on the conversation. */
export function addFiles(cid, files) {
    const tray = trays.get(cid) || [];
    for (const f of files) {
        const item = { key: ++fileSeq, name: f.name || 'screenshot.png', state: 'up', pct: 0 };
        tray.push(item);
        const up = uploadFile(cid, f, (pct) => {
            item.pct = pct;
            changed();
        });
        item.abort = up.abort;
        up.done
            .then(
                (info) => Object.assign(item, { state: 'done', pct: 100, info }),
                (e) => Object.assign(item, { state: e.name === 'AbortError' ? 'aborted' : 'failed', err: e.message }),
            )
            .then(changed);
    }
    trays.set(cid, tray);
    changed();
}

/** The variables a draft must not be sent with: unfilled ones, and unknown ones a canned reply brought. */
function blockedVars(cid, text) {
    return [...unfilledVars(text), ...(held.get(cid) || []).filter((x) => text.includes(x))];
}

/** Append text to a conversation's reply draft and focus the composer (knowledge-base links, Kb.jsx). */
export function insertIntoComposer(cid, text) {
    const cur = drafts.get(cid) || '';
    drafts.set(cid, cur && !/\s$/.test(cur) ? `${cur} ${text}` : cur + text);
    notes.set(cid, false);
    focusComposer();
    changed();
}

/** Focus the composer (shortcut r / n). */
export function focusComposer(note) {
    const cid = S.active;
    if (!cid) return;
    if (note !== undefined) {
        notes.set(cid, note);
        changed();
    }
    setTimeout(() => document.querySelector('.composer textarea')?.focus(), 0);
}

export function Composer({ c }) {
    const cid = c.id;
    const [, force] = useState(0);
    const ta = useRef(null);
    const [picker, setPicker] = useState(null); // {start, query, index, mention}: canned replies, or @mentions in a note
    const [warn, setWarn] = useState(null);
    const text = drafts.get(cid) || '';
    const note = !!notes.get(cid);
    const closed = c.status === 'closed';
    const missing = blockedVars(cid, text);
    const cannedState = S.canned.get(c.site);

    useEffect(() => {
        setPicker(null);
        setWarn(null);
    }, [cid]);

    const setText = (v) => {
        drafts.set(cid, v);
        force((x) => x + 1);
    };
    const setNote = (v) => {
        notes.set(cid, v);
        if (v) typing(cid, false);
        force((x) => x + 1);
    };

    const matches = !picker
        ? []
        : picker.mention
          ? mentionCandidates([...S.agents.values()], [...S.teams], c.site, S.me && S.me.id, picker.query).slice(0, 8)
          : cannedState
            ? searchCanned(cannedState.list || [], picker.query).slice(0, 8)
            : [];

    /** An @mention chosen in the picker: "@<name> " in place of what was typed. */
    const insertMention = (m) => {
        const el = ta.current;
        const caret = el ? el.selectionStart : text.length;
        const ins = `@${m.insert} `;
        setText(text.slice(0, picker.start) + ins + text.slice(caret));
        setPicker(null);
        setTimeout(() => {
            if (!el) return;
            el.focus();
            el.setSelectionRange(picker.start + ins.length, picker.start + ins.length);
        }, 0);
    };

    const insert = (item) => {
        if (picker && picker.mention) return insertMention(item);
        const el = ta.current;
        const vis = c.visitor && S.visitors.get(c.visitor.id);
        const ctx = cannedContext({ conversation: c, visitor: vis && vis.data && vis.data.visitor, agent: S.me });
        const { text: filled, missing: known } = fillCanned(item.body, ctx);
        // unknown placeholders of a reply saved before the editor refused them: held like
        // missing values (braces an agent types are plain text)
        const bad = unknownVars(item.body);
        held.set(cid, [...new Set([...(held.get(cid) || []), ...bad])]);
        const miss = [...known, ...bad];
        const caret = el ? el.selectionStart : text.length;
        const start = picker ? picker.start : caret;
        const next = text.slice(0, start) + filled + text.slice(caret);
        setText(next);
        setPicker(null);
        setWarn(miss.length ? t('canned.missing', { vars: miss.join(' ') }) : null);
        setTimeout(() => {
            if (!el) return;
            el.focus();
            if (miss.length) {
                // select the first unfilled variable so that typing replaces it
                const at = next.indexOf(miss[0], start);
                el.setSelectionRange(at, at + miss[0].length);
            } else {
                const end = start + filled.length;
                el.setSelectionRange(end, end);
            }
        }, 0);
    };

    const tray = trays.get(cid) || [];
    const ready = tray.filter((f) => f.state === 'done');
    const send = () => {
        const body = text.trim();
        if ((!body && !ready.length) || closed) return;
        if (tray.some((f) => f.state === 'up')) {
            setWarn(t('att.wait'));
            return;
        }
        const left = blockedVars(cid, body);
        if (left.length) {
            setWarn(t('canned.blocked', { vars: left.join(' ') }));
            const el = ta.current;
            if (el) {
                const at = text.indexOf(left[0]);
                el.focus();
                el.setSelectionRange(at, at + left[0].length);
            }
            return;
        }
        sendMessage(
            cid,
            body,
            note,
            ready.map((f) => f.info),
        );
        trays.set(
            cid,
            tray.filter((f) => f.state !== 'done'),
        );
        typing(cid, false);
        setWriting(cid, null);
        held.delete(cid);
        setText('');
        setWarn(null);
    };

    const onInput = (e) => {
        const v = e.currentTarget.value;
        setText(v);
        if (!note && v.trim()) typing(cid, true);
        setWriting(cid, v.trim() ? (note ? 'note' : 'reply') : null);
        const mq = note ? mentionQuery(v, e.currentTarget.selectionStart) : null;
        const q = mq ? null : slashQuery(v, e.currentTarget.selectionStart);
        if (mq) {
            // the site's agents and teams come with the supervisor list (loadAgents)
            if (!picker || !picker.mention) loadAgents(c.site);
            setPicker({ ...mq, index: 0, mention: true });
        } else if (q) {
            // opening the picker: fetch the list again (what is cached shows meanwhile)
            if (!picker) loadCanned(c.site, true);
            setPicker({ ...q, index: 0 });
        } else if (picker) setPicker(null);
        if (warn && !blockedVars(cid, v).length) setWarn(null);
    };

    const onKeyDown = (e) => {
        if (picker) {
            if (e.key === 'ArrowDown') {
                e.preventDefault();
                setPicker({ ...picker, index: Math.min(picker.index + 1, Math.max(0, matches.length - 1)) });
                return;
            }
            if (e.key === 'ArrowUp') {
                e.preventDefault();
                setPicker({ ...picker, index: Math.max(0, picker.index - 1) });
                return;
            }
            if ((e.key === 'Enter' || e.key === 'Tab') && matches.length) {
                e.preventDefault();
                insert(matches[picker.index] || matches[0]);
                return;
            }
            if (e.key === 'Escape') {
                e.preventDefault();
                e.stopPropagation();
                setPicker(null);
                return;
            }
        }
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
            e.preventDefault();
            send();
            return;
        }
        if (e.key === 'Escape') {
            e.currentTarget.blur();
        }
    };

    if (closed) {
        return <div class="composer closed muted">{t('composer.closed')}</div>;
    }

    return (
        <div class={`composer ${note ? 'note-mode' : ''}`} data-mode={note ? 'note' : 'reply'}>
            <div class="composer-tabs" role="tablist">
                <button type="button" role="tab" aria-selected={!note ? 'true' : 'false'} class={!note ? 'active' : ''} data-mode-btn="reply" onClick={() => setNote(false)}>
                    {t('composer.reply')}
                </button>
                <button type="button" role="tab" aria-selected={note ? 'true' : 'false'} class={note ? 'active' : ''} data-mode-btn="note" onClick={() => setNote(true)}>
                    {t('composer.note')}
                </button>
                <span class="spacer" />
                {!note && c.channel === 'email' && c.visitor && c.visitor.email ? (
                    <span class="muted hint by-email" data-by-email="true">
                        {t('composer.byEmail', { email: c.visitor.email })}
                    </span>
                ) : null}
                <span class="muted hint">{t('composer.hint')}</span>
            </div>
            {picker && picker.mention ? (
                <div class="canned-picker mention-picker" role="listbox" aria-label={t('mention.picker')}>
                    {matches.length === 0 ? (
                        <div class="muted pad">{t('mention.none', { q: picker.query })}</div>
                    ) : (
                        matches.map((m, i) => (
                            <div
                                key={`${m.kind}:${m.id}`}
                                role="option"
                                aria-selected={i === picker.index ? 'true' : 'false'}
                                class={`canned-option ${i === picker.index ? 'sel' : ''}`}
                                data-mention={m.id}
                                data-kind={m.kind}
                                onMouseDown={(e) => {
                                    e.preventDefault();
                                    insertMention(m);
                                }}
                            >
                                <span class="shortcut">@{m.label}</span>
                                <span class="muted">{m.kind === 'team' ? t('mention.team') : t('mention.agent')}</span>
                            </div>
                        ))
                    )}
                </div>
            ) : picker ? (
                <div class="canned-picker" role="listbox" aria-label={t('canned.title')}>
                    {cannedState && cannedState.state === 'missing' ? (
                        <div class="muted pad">{t('na.body', { what: t('canned.title') })}</div>
                    ) : cannedState && cannedState.state === 'loading' && !matches.length ? (
                        <div class="muted pad">{t('msg.loading')}</div>
                    ) : matches.length === 0 ? (
                        <div class="muted pad">{t('canned.none', { q: picker.query })}</div>
                    ) : (
                        matches.map((m, i) => (
                            <div
                                key={m.id}
                                role="option"
                                aria-selected={i === picker.index ? 'true' : 'false'}
                                class={`canned-option ${i === picker.index ? 'sel' : ''}`}
                                data-shortcut={m.shortcut}
                                onMouseDown={(e) => {
                                    e.preventDefault();
                                    insert(m);
                                }}
                            >
                                <span class="shortcut">/{m.shortcut}</span>
                                <span class="title">{m.title}</span>
                                <span class="body muted">{m.body}</span>
                                {m.scope === 'agent' ? <span class="chip">{t('canned.personal')}</span> : null}
                            </div>
                        ))
                    )}
                </div>
            ) : null}
            {warn || missing.length ? (
                <div class="var-warning" role="alert" data-missing={missing.join(' ')}>
                    {warn || t('canned.missing', { vars: missing.join(' ') })}
                </div>
            ) : null}
            {tray.length ? (
                <ul class="tray" aria-label={t('att.tray')}>
                    {tray.map((f) => (
                        <li key={f.key} class={`att ${f.state}`}>
                            <span class="name">{f.name}</span>
                            {f.state === 'up' ? (
                                <>
                                    <progress max="100" value={f.pct} aria-label={t('att.progress', { name: f.name })} />
                                    <span class="muted pct">{t('att.uploading')} {f.pct}%</span>
                                </>
                            ) : null}
                            {f.state === 'failed' ? <span class="err">{f.err}</span> : null}
                            <button
                                type="button"
                                class="link"
                                aria-label={t('att.remove', { name: f.name })}
                                onClick={() => {
                                    trays.set(
                                        cid,
                                        tray.filter((x) => x !== f),
                                    );
                                    if (f.state === 'up') f.abort();
                                    if (f.state === 'done' && f.info) removeUpload(f.info.id);
                                    changed();
                                }}
                            >
                                ×
                            </button>
                        </li>
                    ))}
                </ul>
            ) : null}
            <div class="composer-row">
                <input
                    type="file"
                    multiple
                    hidden
                    class="att-input"
                    onChange={(e) => {
                        addFiles(cid, [...e.currentTarget.files]);
                        e.currentTarget.value = '';
                    }}
                />
                <button type="button" class="attach" aria-label={t('att.attach')} title={t('att.attach')} disabled={closed} onClick={(e) => e.currentTarget.previousSibling.click()}>
                    {t('att.short')}
                </button>
                <textarea
                    ref={ta}
                    onPaste={(e) => {
                        const files = [...((e.clipboardData && e.clipboardData.files) || [])];
                        if (!files.length) return;
                        e.preventDefault();
                        addFiles(cid, files);
                    }}
                    rows={3}
                    value={text}
                    aria-label={note ? t('composer.notePlaceholder') : t('composer.placeholder')}
                    placeholder={note ? t('composer.notePlaceholder') : t('composer.placeholder')}
                    onInput={onInput}
                    onKeyDown={onKeyDown}
                    onBlur={() => {
                        typing(cid, false);
                        // close the canned list unless the focus came back meanwhile
                        setTimeout(() => {
                            if (document.activeElement !== ta.current) setPicker(null);
                        }, 150);
                    }}
                />
                <button type="button" class="primary send" data-action="send" disabled={!text.trim() && !ready.length} onMouseDown={(e) => e.preventDefault()} onClick={send}>
                    {note ? t('composer.addNote') : t('composer.send')}
                </button>
            </div>
        </div>
    );
}
