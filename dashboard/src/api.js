// HTTP API client (docs/api.md). The login token is sent as a Bearer header only; it never
// goes into a URL.

export class ApiError extends Error {
    constructor(status, code, message) {
        super(message || code);
        this.status = status;
        this.code = code;
    }
}

let token = null;
let onUnauthorized = null;

export function setToken(t) {
    token = t;
}
/** The session's token (attachment uploads and links carry it, docs/attachments.md). */
export function getToken() {
    return token;
}
export function setUnauthorizedHandler(fn) {
    onUnauthorized = fn;
}

/** fetch + JSON; throws ApiError with the server's {"error":{"code","message"}}. bearer: a
 *  token of an unfinished login (two-factor challenge or enrolment) instead of the session's. */
export async function api(method, path, body, { auth = true, bearer } = {}) {
    const headers = { accept: 'application/json' };
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    else if (auth && token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let r;
    try {
        r = await fetch(path, {
            method,
            headers,
            body: body === undefined ? undefined : JSON.stringify(body),
            credentials: 'same-origin',
            cache: 'no-store',
            redirect: 'error',
        });
    } catch (e) {
        throw new ApiError(0, 'network', e && e.message ? e.message : 'network error');
    }
    if (r.status === 204) return null;
    let json = null;
    try {
        json = await r.json();
    } catch {
        json = null;
    }
    if (!r.ok) {
        const err = json && json.error;
        const e = new ApiError(r.status, (err && err.code) || 'internal', (err && err.message) || `HTTP ${r.status}`);
        if (r.status === 401 && auth && onUnauthorized) onUnauthorized(e);
        throw e;
    }
    return json;
}

export const get = (p) => api('GET', p);
export const post = (p, b) => api('POST', p, b ?? {});
export const patch = (p, b) => api('PATCH', p, b ?? {});
export const put = (p, b) => api('PUT', p, b ?? {});
export const del = (p) => api('DELETE', p);

/**
 * True when the route itself does not exist on this server yet (the endpoints of
 * docs/api.md arrive one by one): 404 with code not_found. For an endpoint that names a
 * resource (/visitors/{id}) a 404 may also mean "no such visitor"; pass strict=true there
 * to require the server's generic "no such resource" answer.
 */
export function isRouteMissing(e, strict = false) {
    if (!(e instanceof ApiError) || e.status !== 404 || e.code !== 'not_found') return false;
    if (!strict) return true;
    return /no such (resource|route|endpoint)|not implemented|unknown (route|endpoint)/i.test(e.message || '');
}

export const enc = encodeURIComponent;

export function qs(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
        if (v === undefined || v === null || v === '') continue;
        parts.push(`${enc(k)}=${enc(String(v))}`);
    }
    return parts.length ? `?${parts.join('&')}` : '';
}
