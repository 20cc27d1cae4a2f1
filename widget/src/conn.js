// The WebSocket to /ws/visitor: hello on every open, requests matched by rid,
// reconnect with exponential backoff and full jitter, an application ping to notice
// dead connections that the browser does not report.

const BASE_MS = 500;
const CAP_MS = 30000;
const URGENT_MIN_MS = 2000;
const IDLE_MIN_MS = 8000;
const HELLO_TIMEOUT_MS = 10000;
const PING_EVERY_MS = 25000;
const PING_TIMEOUT_MS = 10000;

/** The reconnect schedule: the delay before the next attempt after `attempt` failed or
 *  dropped ones since the last welcome, full jitter U(0, min(cap, base * 2^attempt)).
 *  The window is at least 2 s when something waits to be sent (`urgent`: the outbox, a
 *  conversation start) and at least 8 s when nothing does, so that when a load balancer
 *  restarts, the visitors of a busy site do not all come back in the same second
 *  (RELIABILITY F9: ≤ 300 upgrades/s for ~1,000 sockets); a message typed while the
 *  widget waits brings the attempt forward to the urgent schedule (Conn.hurry). Pure, so
 *  that tests run the same schedule (tests/nightly/40-f9-reconnect-storm). */
export function reconnectDelay(attempt, random = Math.random, urgent = true) {
    const window = Math.min(CAP_MS, BASE_MS * 2 ** Math.min(attempt, 16));
    return random() * Math.max(window, urgent ? URGENT_MIN_MS : IDLE_MIN_MS);
}

let ridSeq = 0;
export const newRid = (p = 'r') => `${p}${(++ridSeq).toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export class Conn {
    /**
     * opts.url        ws(s)://host/ws/visitor?site=KEY
     * opts.hello()    returns the hello frame (without rid) for this attempt
     * opts.onWelcome(welcome)
     * opts.onFrame(frame)            every other server frame without a pending rid
     * opts.onState('connecting'|'online'|'offline'|'unavailable')
     * opts.onUnauthorized(hadToken)  close 4401: return true to retry at once
     * opts.urgent()                  something waits to be sent (reconnectDelay)
     */
    constructor(opts) {
        this.o = opts;
        this.ws = null;
        this.attempt = 0;
        this.timer = 0;
        this.pending = new Map(); // rid -> {resolve, reject, timer}
        this.online = false;
        this.stopped = true;
        this.lastRx = 0;
        this.state = '';
        this.onlineEvt = () => {
            if (!this.stopped && !this.ws) this.connectNow();
        };
    }

    setState(s) {
        if (this.state !== s) {
            this.state = s;
            this.o.onState(s);
        }
    }

    start() {
        if (!this.stopped) return;
        this.stopped = false;
        window.addEventListener('online', this.onlineEvt);
        this.connectNow();
    }

    stop() {
        this.stopped = true;
        window.removeEventListener('online', this.onlineEvt);
        clearTimeout(this.timer);
        this.drop(1000);
    }

    /** Closes the current socket at once and reconnects (e.g. to say hello again). */
    restart() {
        if (this.stopped) return;
        this.drop(1000);
        this.attempt = 0;
        this.connectNow();
    }

    connectNow() {
        clearTimeout(this.timer);
        this.timer = 0;
        if (this.stopped || this.ws) return;
        this.setState('connecting');
        let ws;
        try {
            ws = new WebSocket(this.o.url);
        } catch {
            this.retry();
            return;
        }
        this.ws = ws;
        this.online = false;
        const helloRid = newRid('h');
        // no open within the limit (a peer that accepts TCP but never answers): give up
        let helloTimer = setTimeout(() => this.fail(ws), HELLO_TIMEOUT_MS);
        ws.onopen = () => {
            clearTimeout(helloTimer);
            this.lastRx = Date.now();
            const hello = { ...this.o.hello(), type: 'hello', rid: helloRid };
            ws.send(JSON.stringify(hello));
            helloTimer = setTimeout(() => this.fail(ws), HELLO_TIMEOUT_MS);
        };
        ws.onmessage = (ev) => {
            if (ws !== this.ws) return;
            this.lastRx = Date.now();
            let f;
            try {
                f = JSON.parse(ev.data);
            } catch {
                return;
            }
            if (!f || typeof f !== 'object' || typeof f.type !== 'string') return;
            if (!this.online) {
                if (f.rid === helloRid) {
                    clearTimeout(helloTimer);
                    if (f.type === 'welcome') {
                        this.online = true;
                        this.attempt = 0;
                        this.heartbeat();
                        this.setState('online');
                        this.o.onWelcome(f);
                    }
                    else if (f.type === 'error') {
                        // unauthorized/forbidden: the token (or origin, or user hash) was
                        // refused, as a 4401 close would say; anything else: retry later
                        const code = f.code === 'unauthorized' || f.code === 'forbidden' ? 4401 : 1006;
                        this.detach();
                        try {
                            ws.close(1000);
                        } catch {
                            /* ignore */
                        }
                        this.closed(code);
                    }
                }
                return;
            }
            if (f.rid && this.pending.has(f.rid) && (f.type === 'ok' || f.type === 'error')) {
                const p = this.pending.get(f.rid);
                this.pending.delete(f.rid);
                clearTimeout(p.timer);
                p.resolve(f);
                return;
            }
            this.o.onFrame(f);
        };
        ws.onclose = (ev) => {
            clearTimeout(helloTimer);
            if (ws !== this.ws) return;
            this.closed(ev.code);
        };
        ws.onerror = () => {
            /* followed by onclose */
        };
    }

    /** Forgets the socket without waiting for its close handshake, then reconnects. */
    fail(ws) {
        if (!ws || ws !== this.ws) return;
        this.detach();
        try {
            ws.close(4000);
        } catch {
            /* ignore */
        }
        this.closed(1006);
    }

    detach() {
        const ws = this.ws;
        if (!ws) return;
        ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
        this.ws = null;
    }

    drop(code) {
        const ws = this.ws;
        this.detach();
        this.online = false;
        clearTimeout(this.pingTimer);
        this.failPending();
        if (ws)
            try {
                ws.close(code);
            } catch {
                /* ignore */
            }
    }

    failPending() {
        for (const [, p] of this.pending) {
            clearTimeout(p.timer);
            p.resolve({ type: 'error', code: 'disconnected', message: 'connection lost' });
        }
        this.pending.clear();
    }

    closed(code) {
        this.ws = null;
        this.online = false;
        clearTimeout(this.pingTimer);
        this.failPending();
        if (this.stopped) return;
        if (code === 4401) {
            if (this.o.onUnauthorized()) {
                this.connectNow();
                return;
            }
            this.setState('unavailable');
        }
        this.retry();
    }

    retry() {
        if (this.stopped) return;
        if (this.state !== 'unavailable') this.setState(navigator.onLine === false ? 'offline' : 'connecting');
        const delay = reconnectDelay(this.attempt, Math.random, this.o.urgent ? this.o.urgent() : true);
        this.attempt++;
        this.schedule(delay);
    }

    /** Something to send while waiting to reconnect: the wait becomes the urgent one of
     *  the same attempt if that is shorter (backoff against a node that is down stays). */
    hurry() {
        if (this.stopped || this.ws || !this.timer) return;
        const delay = reconnectDelay(Math.max(0, this.attempt - 1), Math.random, true);
        if (Date.now() + delay >= this.retryAt) return;
        this.schedule(delay);
    }

    /** The next attempt in `delay` ms, replacing the one planned. */
    schedule(delay) {
        clearTimeout(this.timer);
        this.retryAt = Date.now() + delay;
        this.timer = setTimeout(() => this.connectNow(), delay);
    }

    heartbeat() {
        clearTimeout(this.pingTimer);
        this.pingTimer = setTimeout(async () => {
            if (!this.online) return;
            if (Date.now() - this.lastRx < PING_EVERY_MS - 50) return this.heartbeat();
            const ws = this.ws;
            const r = await this.request({ type: 'ping' }, PING_TIMEOUT_MS);
            if (r.code === 'timeout') this.fail(ws);
            else if (ws === this.ws) this.heartbeat();
        }, PING_EVERY_MS);
    }

    get isOnline() {
        return this.online && !!this.ws && this.ws.readyState === 1;
    }

    /** Sends a frame if online; returns whether it went out. */
    send(obj) {
        if (!this.isOnline) return false;
        try {
            this.ws.send(JSON.stringify(obj));
            return true;
        } catch {
            return false;
        }
    }

    /**
     * Sends obj with a fresh rid; resolves the ok/error reply, or an error with code
     * 'disconnected' (not sent or connection lost) or 'timeout'. Never rejects.
     */
    request(obj, timeout = 15000) {
        const rid = newRid();
        return new Promise((resolve) => {
            if (!this.send({ ...obj, rid })) {
                resolve({ type: 'error', code: 'disconnected', message: 'not connected' });
                return;
            }
            const timer = setTimeout(() => {
                this.pending.delete(rid);
                resolve({ type: 'error', code: 'timeout', message: 'no reply' });
            }, timeout);
            this.pending.set(rid, { resolve, timer });
        });
    }
}
