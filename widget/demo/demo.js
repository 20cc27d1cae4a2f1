// The demo page's own script (no inline script under the page's CSP). It does what a
// customer's page does: the command-queue stub from docs/widget.md, a few commands
// queued before the widget loads, then the widget script tag with data-site.
//
// Query parameters: ?site=KEY (default "demo"), &lang=zh-CN|en, &color=%23aa0000,
// &greeting=..., &user_id=..&name=..&email=..&hash=.. (identity verification).
window.chatdesk =
    window.chatdesk ||
    function () {
        (window.chatdesk.q = window.chatdesk.q || []).push(arguments);
    };

const params = new URLSearchParams(location.search);
const site = params.get('site') || 'demo';
const lang = params.get('lang');
if (lang) chatdesk('setLocale', lang);
if (params.get('user_id'))
    chatdesk('setUser', { id: params.get('user_id'), name: params.get('name') || undefined, email: params.get('email') || undefined, hash: params.get('hash') || undefined });
chatdesk('setAttributes', { plan: 'demo', cart_items: 2 });

const events = () => document.getElementById('events');
function logEvent(text) {
    const ol = events();
    if (!ol) return;
    const li = document.createElement('li');
    li.textContent = `${new Date().toLocaleTimeString()} ${text}`; // text only: never HTML
    ol.appendChild(li);
    while (ol.children.length > 50) ol.removeChild(ol.firstChild);
}
chatdesk('on', 'message', (m) => logEvent(`message #${m.seq} from ${m.own ? 'visitor' : m.author.name || m.author.kind}: ${m.body.slice(0, 80)}`));
chatdesk('on', 'open', () => logEvent('open'));
chatdesk('on', 'close', () => logEvent('close'));

const s = document.createElement('script');
s.src = '/widget.js';
s.async = true;
s.setAttribute('data-site', site);
for (const k of ['color', 'greeting', 'title', 'position', 'categories', 'required']) {
    const v = params.get(k);
    if (v) s.setAttribute('data-' + k, v);
}
document.head.appendChild(s);

document.addEventListener('DOMContentLoaded', () => {
    document.getElementById('open-chat').addEventListener('click', () => chatdesk('open'));
    document.getElementById('lang-en').addEventListener('click', () => chatdesk('setLocale', 'en'));
    document.getElementById('lang-zh').addEventListener('click', () => chatdesk('setLocale', 'zh-CN'));
});
