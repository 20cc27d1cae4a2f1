// Tiny DOM helpers. Everything the widget shows is built with createElement and
// textContent: no innerHTML, no inline handlers, no style attributes in markup.

/**
 * h('div', {class: 'x', 'aria-label': 'y', onclick: fn}, child, 'text', ...)
 * Attributes are set with setAttribute (never style or on* strings); a function value
 * whose key starts with "on" becomes an event listener.
 */
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
        for (const k in attrs) {
            const v = attrs[k];
            if (v == null || v === false) continue;
            if (typeof v === 'function' && k.startsWith('on')) el.addEventListener(k.slice(2), v);
            else if (k === 'text') el.textContent = v;
            else el.setAttribute(k, v === true ? '' : String(v));
        }
    }
    append(el, children);
    return el;
}

export function append(el, children) {
    for (const c of children) {
        if (c == null || c === false) continue;
        if (Array.isArray(c)) append(el, c);
        else el.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
    }
    return el;
}

export function clear(el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    return el;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'\u3000-\u303f\uff01-\uff0f\uff1a-\uff20]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

/** Appends text to el as text nodes, with http(s) URLs as safe links. */
export function linkify(el, text) {
    let last = 0;
    text = String(text);
    for (const m of text.matchAll(URL_RE)) {
        let url = m[0];
        // keep closing punctuation out of the link unless it is balanced inside it
        const trail = TRAILING.exec(url);
        if (trail) {
            let cut = trail[0];
            if (cut.startsWith(')') && url.includes('(')) cut = cut.slice(1);
            url = url.slice(0, url.length - cut.length);
        }
        if (!url) continue;
        let href;
        try {
            const u = new URL(url);
            if (u.protocol !== 'http:' && u.protocol !== 'https:') continue;
            href = u.href;
        } catch {
            continue;
        }
        if (m.index > last) el.appendChild(document.createTextNode(text.slice(last, m.index)));
        el.appendChild(h('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow', text: url }));
        last = m.index + url.length;
    }
    if (last < text.length) el.appendChild(document.createTextNode(text.slice(last)));
    return el;
}

/** Truncates a string to at most max UTF-8 bytes without splitting a character. */
export function clipBytes(s, max) {
    s = String(s);
    if (s.length * 3 <= max) return s;
    const enc = new TextEncoder();
    if (enc.encode(s).length <= max) return s;
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (enc.encode(s.slice(0, mid)).length <= max) lo = mid;
        else hi = mid - 1;
    }
    // do not cut a surrogate pair in half
    const c = s.charCodeAt(lo - 1);
    if (c >= 0xd800 && c <= 0xdbff) lo--;
    return s.slice(0, lo);
}

export function byteLength(s) {
    return new TextEncoder().encode(s).length;
}
