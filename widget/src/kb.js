// Help articles in the pre-chat view (docs/kb.md): a search box, and suggestions while
// the visitor types the subject / first message. Reads the public, published-only API
// /api/v1/public/sites/<site>/kb/search; results open the article page /kb/ in a new tab.
// Text only through textContent (dom.js h()).
import { h, clear } from './dom.js';

const DEBOUNCE_MS = 350;

export class KbHelp {
    constructor({ base, site, t, locale }) {
        this.base = base;
        this.site = site;
        this.t = t;
        this.locale = locale;
        this.timer = 0;
        this.seq = 0;
        this.fromSearch = false;
        this.input = h('input', { type: 'search', class: 'kbq', placeholder: t('kbSearch'), 'aria-label': t('kbSearch'), enterkeyhint: 'search' });
        this.input.addEventListener('input', () => this.later(this.input.value, true));
        this.input.addEventListener('keydown', (e) => {
            if (e.key === 'Enter') {
                e.preventDefault();
                this.run(this.input.value, true);
            }
        });
        this.head = h('p', { class: 'kbh', hidden: true });
        this.list = h('ul', { class: 'kbl', 'aria-live': 'polite' });
        this.el = h('div', { class: 'kb', role: 'search' }, this.input, this.head, this.list);
    }

    /** Suggestions from what the visitor types in the form (unless a search is showing). */
    suggest(text) {
        if (this.fromSearch && this.input.value.trim()) return;
        this.later(text, false);
    }

    later(q, fromSearch) {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.run(q, fromSearch), DEBOUNCE_MS);
    }

    async run(q, fromSearch) {
        clearTimeout(this.timer);
        q = String(q || '').trim().slice(0, 200);
        const seq = ++this.seq;
        this.fromSearch = fromSearch;
        if (!q) return this.show([], fromSearch, '');
        let res = [];
        try {
            const url = new URL(`api/v1/public/sites/${encodeURIComponent(this.site)}/kb/search`, this.base);
            url.searchParams.set('q', q);
            url.searchParams.set('limit', '5');
            const r = await fetch(url.href, { credentials: 'omit' });
            if (r.ok) res = (await r.json()).articles || [];
        } catch {
            res = [];
        }
        if (seq === this.seq) this.show(res, fromSearch, q);
    }

    show(articles, fromSearch, q) {
        const t = this.t;
        clear(this.list);
        this.head.hidden = !q || (!articles.length && !fromSearch);
        this.head.textContent = articles.length ? t(fromSearch ? 'kbResults' : 'kbSuggested') : t('kbNone');
        for (const a of articles) {
            const url = new URL('kb/', this.base);
            url.searchParams.set('site', this.site);
            url.searchParams.set('id', String(a.id));
            url.searchParams.set('lang', this.locale);
            this.list.appendChild(
                h('li', null, h('a', { href: url.href, target: '_blank', rel: 'noopener', text: a.title }), a.snippet ? h('p', { text: a.snippet }) : null),
            );
        }
    }
}
