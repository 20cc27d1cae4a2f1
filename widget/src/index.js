// chatdesk website widget: entry point.
//
//   <script>window.chatdesk=window.chatdesk||function(){(chatdesk.q=chatdesk.q||[]).push(arguments)};</script>
//   <script src="https://HOST/widget.js" data-site="KEY" async></script>
//
// Commands queued before this script loaded are run in order, then window.chatdesk
// runs them at once. See docs/widget.md.
import { Widget } from './widget.js';

const VERSION = '0.1.0';

function findScript() {
    const cur = document.currentScript;
    if (cur && cur.src && cur.hasAttribute('data-site')) return cur;
    const all = document.querySelectorAll('script[data-site][src]');
    for (const s of all) if (/\/widget(\.min)?\.js(\?|#|$)/.test(s.src)) return s;
    return all[0] || null;
}

function list(v) {
    return v
        ? v
              .split(',')
              .map((x) => x.trim())
              .filter(Boolean)
        : null;
}

function categories(v) {
    const l = list(v);
    return l && l.map((x) => {
        const i = x.indexOf(':');
        return i > 0 ? { value: x.slice(0, i).trim(), label: x.slice(i + 1).trim() } : { value: x, label: x };
    });
}

(function main() {
    const prev = window.chatdesk;
    if (prev && prev.version) return; // loaded twice
    const script = findScript();
    const site = script && script.getAttribute('data-site');
    if (!site) {
        console.error('chatdesk: the widget script needs a data-site attribute');
        return;
    }
    const src = new URL(script.src, location.href);
    const ws = new URL('ws/visitor', src);
    ws.protocol = src.protocol === 'https:' ? 'wss:' : 'ws:';
    ws.search = '?site=' + encodeURIComponent(site);
    ws.hash = '';
    const d = (k) => script.getAttribute('data-' + k) || '';
    const widget = new Widget({
        site,
        wsUrl: ws.href,
        base: new URL('./', src).href,
        cfg: {
            color: d('color'),
            greeting: d('greeting'),
            title: d('title'),
            position: d('position'),
            locale: d('locale'),
            categories: categories(d('categories')),
            required: list(d('required')),
        },
    });
    const api = function chatdesk(cmd, ...args) {
        return widget.command(cmd, args);
    };
    api.version = VERSION;
    const queued = (prev && Array.isArray(prev.q) && prev.q) || [];
    window.chatdesk = api;
    for (const args of queued) {
        try {
            widget.command(args[0], Array.prototype.slice.call(args, 1));
        } catch (e) {
            console.error(e);
        }
    }
    widget.boot();
})();
