// Attachments in the dashboard (docs/attachments.md): a message's files (images inline
// through a signed link, a click opens them full size; other files as cards that open
// one) and the upload of an agent's file for a conversation (POST /files with the
// session's token).
import { useEffect, useState } from 'preact/hooks';
import { getToken } from '../api.js';
import { t } from '../i18n.js';

const IMAGE = /^image\/(png|jpeg|gif|webp)$/;

export function fmtSize(n) {
    return n < 1024 ? `${n} B` : n < 1048576 ? `${Math.round(n / 1024)} KB` : `${(n / 1048576).toFixed(1)} MB`;
}

async function signed(id) {
    try {
        const r = await fetch(`/files/${encodeURIComponent(id)}/link`, { headers: { authorization: `Bearer ${getToken()}` }, cache: 'no-store' });
        return r.ok ? (await r.json()).url : null;
    } catch {
        return null;
    }
}

/** Opens file id in a new tab through a signed link. */
export const openFile = async (id) => {
    const url = await signed(id);
    if (url) window.open(url, '_blank', 'noopener');
};

function Image({ a }) {
    const [src, setSrc] = useState(null);
    useEffect(() => {
        let live = true;
        signed(a.id).then((u) => live && setSrc(u));
        return () => {
            live = false;
        };
    }, [a.id]);
    return (
        <button type="button" class="att-open" aria-label={t('att.open', { name: a.name })} onClick={() => openFile(a.id)}>
            {src ? <img class="att-img" src={src} alt={a.name} /> : <span class="att-img" />}
        </button>
    );
}

export function Attachments({ list }) {
    if (!Array.isArray(list) || !list.length) return null;
    return (
        <div class="atts">
            {list.map((a) =>
                IMAGE.test(a.type) ? (
                    <Image key={a.id} a={a} />
                ) : (
                    <button type="button" key={a.id} class="att-file" onClick={() => openFile(a.id)}>
                        <span class="name">{a.name}</span>
                        <span class="size">{fmtSize(a.size || 0)}</span>
                    </button>
                ),
            )}
        </div>
    );
}

/** The files of the loaded messages of a conversation, newest first:
 *  [{a: {id,name,type,size}, m: the message}]. */
export function conversationFiles(list) {
    const out = [];
    for (const m of list || []) for (const a of Array.isArray(m.attachments) ? m.attachments : []) if (a && typeof a.id === 'string') out.push({ a, m });
    return out.reverse();
}

/** Uploads file for conversation cid with XMLHttpRequest, whose upload progress fetch
 *  cannot report: onProgress(percent) as bytes leave. Answers {done, abort}: done resolves
 *  to {id,name,type,size} or rejects with an Error carrying the server's message (an
 *  aborted upload rejects with name 'AbortError'). */
export function uploadFile(cid, file, onProgress = () => {}) {
    const name = file.name || 'screenshot.png';
    const x = new XMLHttpRequest();
    const done = new Promise((resolve, reject) => {
        x.open('POST', `/files?name=${encodeURIComponent(name)}&conversation_id=${encodeURIComponent(cid)}`);
        x.setRequestHeader('authorization', `Bearer ${getToken()}`);
        x.upload.onprogress = (e) => {
            if (e.lengthComputable) onProgress(Math.round((e.loaded / e.total) * 100));
        };
        x.onload = () => {
            let j = null;
            try {
                j = JSON.parse(x.responseText);
            } catch {
                /* not JSON */
            }
            if (x.status === 201 && j && j.id) resolve({ id: j.id, name: j.name, type: j.type, size: j.size });
            else reject(new Error((j && j.error && j.error.message) || `HTTP ${x.status}`));
        };
        x.onerror = () => reject(new Error(t('att.failed')));
        x.onabort = () => reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
        x.send(file);
    });
    return { done, abort: () => x.abort() };
}

/** Withdraws an upload no message took (DELETE /files/<id>): it stops counting against
 *  the uploader's cap and its storage goes now. Best effort: the orphan timer removes it
 *  otherwise. */
export function removeUpload(id) {
    fetch(`/files/${encodeURIComponent(id)}`, { method: 'DELETE', headers: { authorization: `Bearer ${getToken()}` }, cache: 'no-store' }).catch(() => {});
}
