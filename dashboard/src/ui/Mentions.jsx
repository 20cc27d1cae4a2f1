// The Mentions view (docs/dashboard.md "Mentions"): the notes that named this agent (or a
// team of it) with @, kept until read. The list comes from GET /api/v1/mentions and grows
// with live `notice` frames of kind mention; opening one shows its conversation beside
// the list and marks it read (POST /api/v1/mentions/read).
import { S, openConv, readMention, noticeText } from '../store.js';
import { t } from '../i18n.js';
import { fmtDateTime } from './common.jsx';

export function MentionsList() {
    const list = S.mentions || [];
    const sites = [...new Set(list.map((n) => n.site))];
    return (
        <section class="list-pane mentions" data-pane="mentions" aria-label={t('view.mentions')}>
            <div class="list-head">
                <h2>{t('view.mentions')}</h2>
                {sites.map((site) => (
                    <button type="button" class="link" key={site} data-action="mentions-read-all" data-site={site} onClick={() => readMention(list.find((n) => n.site === site), true)}>
                        {sites.length > 1 ? t('mention.readAllSite', { site }) : t('mention.readAll')}
                    </button>
                ))}
            </div>
            {list.length === 0 ? <p class="muted pad">{t('mention.empty')}</p> : null}
            <ul class="notice-list mention-list">
                {list.map((n) => (
                    <li key={`${n.site}:${n.id}`} data-mention-id={n.id} data-cid={n.conversation_id} class={S.active === n.conversation_id ? 'active' : ''}>
                        <button
                            type="button"
                            class="link"
                            data-action="open-mention"
                            onClick={() => {
                                openConv(n.conversation_id);
                                readMention(n);
                            }}
                        >
                            {noticeText(n)}
                        </button>
                        <div class="muted small mention-body">{n.body}</div>
                        <span class="muted small">{fmtDateTime(n.ts)} </span>
                        <button type="button" class="link small" data-action="mention-read" onClick={() => readMention(n)}>
                            {t('mention.read')}
                        </button>
                    </li>
                ))}
            </ul>
        </section>
    );
}
