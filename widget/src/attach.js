// Attachments in the widget (docs/attachments.md): the tray of files the visitor picked,
// dropped or pasted before sending, each uploaded at once (POST /files with the visitor's
// token) with its progress, a cancel and a retry; and the attachments of messages:
// PNG/JPEG/GIF/WebP shown inline (sized by CSS) through a signed link, other files as
// cards that open one. The server judges the type by the bytes; the tray only shows.
import { h, clear } from './dom.js';

const IMAGE = /^image\/(png|jpeg|gif|webp)$/;
let seq = 0;

function size(n) {
    return n < 1024 ? `${n} B` : n < 1048576 ? `${Math.round(n / 1024)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

/** A signed link to file id (GET /files/<id>/link), or null. */
async function signed(base, token, id) {
    try {
        const r = await fetch(`${base}/files/${encodeURIComponent(id)}/link`, { headers: { authorization: `Bearer ${token}` } });
        return r.ok ? base + (await r.json()).url : null;
    } catch {
        return null;
    }
}

export class Tray {
    /** base: the server's origin; token(): the visitor's token; onChange(): re-render. */
    constructor({ base, token, t, onChange }) {
        Object.assign(this, { base, token, t, onChange });
        this.items = [];
        this.el = h('ul', { class: 'tray', 'aria-label': t('attachments'), hidden: true });
    }

    add(files) {
        for (const file of files) {
            const item = { key: ++seq, file, name: file.name || 'screenshot.png', pct: 0, state: 'up', id: null };
            this.items.push(item);
            this.upload(item);
        }
        this.render();
    }

    upload(item) {
        const x = new XMLHttpRequest();
        item.xhr = x;
        item.state = 'up';
        item.pct = 0;
        x.open('POST', `${this.base}/files?name=${encodeURIComponent(item.name)}`);
        x.setRequestHeader('authorization', `Bearer ${this.token()}`);
        x.upload.onprogress = (e) => {
            if (e.lengthComputable) item.pct = Math.round((e.loaded / e.total) * 100);
            this.render();
        };
        x.onload = () => {
            let j = null;
            try {
                j = JSON.parse(x.responseText);
            } catch {
                /* not JSON */
            }
            if (x.status === 201 && j && j.id) Object.assign(item, { state: 'done', id: j.id, pct: 100, info: { id: j.id, name: j.name, type: j.type, size: j.size } });
            else Object.assign(item, { state: 'failed', err: x.status === 413 ? this.t('fileTooBig') : x.status === 415 ? this.t('fileType') : x.status === 429 ? this.t('tooManyFiles') : this.t('uploadFailed') });
            this.render();
        };
        x.onerror = () => {
            Object.assign(item, { state: 'failed', err: this.t('uploadFailed') });
            this.render();
        };
        x.send(item.file);
    }

    cancel(item) {
        if (item.state === 'up') item.xhr.abort();
        // an upload no message took: withdrawn on the server too (DELETE /files/<id>), so it
        // stops counting against the visitor's cap (best effort: its orphan timer otherwise)
        if (item.state === 'done' && item.id)
            fetch(`${this.base}/files/${encodeURIComponent(item.id)}`, { method: 'DELETE', headers: { authorization: `Bearer ${this.token()}` } }).catch(() => {});
        this.items = this.items.filter((i) => i !== item);
        this.render();
    }

    /** Empties the tray without asking the server (another visitor's token). */
    drop() {
        for (const i of this.items) if (i.state === 'up') i.xhr.abort();
        this.items = [];
        this.render();
    }

    /** Puts back uploaded files ({id,name,type,size}) that take() gave out and nothing sent. */
    restore(infos) {
        for (const info of infos) this.items.push({ key: ++seq, file: null, name: info.name, pct: 100, state: 'done', id: info.id, info });
        this.render();
    }

    get busy() {
        return this.items.some((i) => i.state === 'up');
    }

    /** The uploaded files ({id,name,type,size}), taken out of the tray. */
    take() {
        const ids = this.items.filter((i) => i.state === 'done').map((i) => i.info);
        this.items = this.items.filter((i) => i.state !== 'done');
        this.render();
        return ids;
    }

    render() {
        const t = this.t;
        clear(this.el);
        this.el.hidden = !this.items.length;
        for (const i of this.items) {
            const li = h('li', { class: 'att ' + i.state }, h('span', { class: 'name', text: i.name }));
            if (i.state === 'up') li.appendChild(h('progress', { max: '100', value: String(i.pct), 'aria-label': t('uploading', { name: i.name }) }));
            if (i.state === 'failed') {
                li.appendChild(h('span', { class: 'err', role: 'alert', text: i.err }));
                li.appendChild(h('button', { type: 'button', text: t('retry'), onclick: () => (this.upload(i), this.render()) }));
            }
            li.appendChild(h('button', { type: 'button', class: 'x', 'aria-label': t('removeFile', { name: i.name }), text: '×', onclick: () => this.cancel(i) }));
            this.el.appendChild(li);
        }
        this.onChange();
    }
}

/** The attachments of a message: images inline, other files as cards. */
export function attachmentsEl(list, base, token, t) {
    const box = h('div', { class: 'atts' });
    for (const a of list) {
        if (!a || typeof a.id !== 'string') continue;
        const open = async () => {
            const url = await signed(base, token(), a.id);
            if (url) window.open(url, '_blank', 'noopener');
        };
        if (IMAGE.test(a.type)) {
            const img = h('img', { class: 'att-img', alt: a.name || '' });
            signed(base, token(), a.id).then((url) => url && (img.src = url));
            box.appendChild(h('button', { type: 'button', class: 'att-open', 'aria-label': t('openFile', { name: a.name }), onclick: open }, img));
        } else {
            box.appendChild(h('button', { type: 'button', class: 'att-file', onclick: open }, h('span', { class: 'name', text: a.name }), h('span', { class: 'size', text: size(a.size || 0) })));
        }
    }
    return box;
}
