// The agent WebSocket (/ws/agent, docs/protocol.md): hello with the login token and the
// resume list, requests matched to replies by rid, reconnect with backoff and jitter,
// an application ping so that a dead link is noticed within seconds.

const PING_EVERY = 25_000;
const REQUEST_TIMEOUT = 15_000;

/** The reconnect schedule: the delay before the next attempt after `attempt` failed or
 *  dropped ones since the last welcome, min(10 s, 500 ms * 2^attempt) scaled by
 *  U(0.6, 1). Pure, so that tests run the same schedule (tests/nightly/40-f9-reconnect-storm). */
export function reconnectDelay(attempt, random = Math.random) {
    const base = Math.min(10_000, 500 * 2 ** Math.min(attempt, 5));
    return Math.round(base * (0.6 + random() * 0.4));
}

export class ConnError extends Error {
    constructor(code, message) {
        super(message || code);
        this.code = code;
    }
}

export class Conn {
    /**
     * opts: url, token, getResume() -> [{conversation_id, after_seq, epoch}],
     * onWelcome(frame), onFrame(frame), onState(state, info), onAuthFailed(info)
     */
    constructor(opts) {
        this.o = opts;
        this.ws = null;
        this.state = 'idle'; // idle | connecting | online | offline | stopped
        this.pending = new Map(); // rid -> {resolve, reject, timer}
        this.ridSeq = 0;
        this.attempt = 0;
        this.retryTimer = null;
        this.pingTimer = null;
        this.stopped = false;
        this.onOnline = () => this.kick();
        globalThis.addEventListener?.('online', this.onOnline);
    }

    setState(s, info) {
        this.state = s;
        this.o.onState?.(s, info);
    }

    start() {
        this.stopped = false;
        this.connect();
    }

    /** Reconnect now (the browser says the network is back, or the user asked). */
    kick() {
        if (this.stopped || this.state === 'online' || this.state === 'connecting') return;
        clearTimeout(this.retryTimer);
        this.attempt = 0;
        this.connect();
    }

    connect() {
        clearTimeout(this.retryTimer);
        this.setState('connecting');
        let ws;
        try {
            ws = new WebSocket(this.o.url);
        } catch (e) {
            this.scheduleRetry();
            return;
        }
        this.ws = ws;
        let welcomed = false;
        const helloRid = this.nextRid('h');
        ws.onopen = () => {
            const hello = { type: 'hello', rid: helloRid, token: this.o.token };
            const resume = (this.o.getResume?.() || []).slice(0, 100);
            if (resume.length) hello.resume = resume;
            ws.send(JSON.stringify(hello));
        };
        ws.onmessage = (ev) => {
            let f;
            try {
                f = JSON.parse(ev.data);
            } catch {
                return;
            }
            if (!f || typeof f !== 'object') return;
            if (!welcomed) {
                if (f.type === 'welcome') {
                    welcomed = true;
                    this.attempt = 0;
                    this.setState('online');
                    this.startPing();
                    this.o.onWelcome?.(f);
                    return;
                }
                if (f.type === 'error' && f.rid === helloRid) {
                    this.helloError = f;
                    return; // the close follows
                }
            }
            if (f.rid && this.pending.has(f.rid) && (f.type === 'ok' || f.type === 'error')) {
                const p = this.pending.get(f.rid);
                this.pending.delete(f.rid);
                clearTimeout(p.timer);
                if (f.type === 'ok') p.resolve(f);
                else p.reject(Object.assign(new ConnError(f.code || 'internal', f.message), { frame: f }));
                return;
            }
            this.o.onFrame?.(f);
        };
        ws.onclose = (ev) => {
            if (this.ws !== ws) return;
            this.ws = null;
            this.stopPing();
            this.failPending('disconnected');
            if (this.stopped) return;
            const code = ev.code;
            if (code === 4401 || (this.helloError && this.helloError.code === 'unauthorized')) {
                this.stopped = true;
                this.setState('stopped', { code });
                this.o.onAuthFailed?.({ code, error: this.helloError });
                return;
            }
            this.helloError = null;
            this.setState('offline', { code });
            this.scheduleRetry();
        };
        ws.onerror = () => {
            /* reported by onclose */
        };
    }

    scheduleRetry() {
        if (this.stopped) return;
        const delay = reconnectDelay(this.attempt);
        this.attempt++;
        this.nextRetryAt = Date.now() + delay;
        this.retryTimer = setTimeout(() => this.connect(), delay);
    }

    startPing() {
        this.stopPing();
        this.pingTimer = setInterval(() => {
            if (this.state !== 'online') return;
            this.request({ type: 'ping' }, { timeout: 10_000 }).catch((e) => {
                if (e.code === 'timeout') this.drop();
            });
        }, PING_EVERY);
    }

    stopPing() {
        clearInterval(this.pingTimer);
        this.pingTimer = null;
    }

    /** Closes the socket (it reconnects unless stopped). */
    drop() {
        const ws = this.ws;
        if (!ws) return;
        try {
            ws.close(4000, 'client reconnect');
        } catch {
            /* ignore */
        }
        // a socket that never answers may take long to close: act at once
        ws.onclose?.({ code: 1006 });
    }

    failPending(code) {
        for (const [, p] of this.pending) {
            clearTimeout(p.timer);
            p.reject(new ConnError(code));
        }
        this.pending.clear();
    }

    nextRid(prefix = 'r') {
        return `${prefix}${++this.ridSeq}`;
    }

    get online() {
        return this.state === 'online' && this.ws && this.ws.readyState === 1;
    }

    /** Sends a frame that expects ok/error; resolves the ok frame, rejects ConnError. */
    request(obj, { timeout = REQUEST_TIMEOUT } = {}) {
        if (!this.online) return Promise.reject(new ConnError('disconnected'));
        const rid = this.nextRid();
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(rid);
                reject(new ConnError('timeout'));
            }, timeout);
            this.pending.set(rid, { resolve, reject, timer });
            try {
                this.ws.send(JSON.stringify({ ...obj, rid }));
            } catch (e) {
                clearTimeout(timer);
                this.pending.delete(rid);
                reject(new ConnError('disconnected'));
            }
        });
    }

    /** Fire and forget (typing); dropped while offline. */
    send(obj) {
        if (!this.online) return false;
        try {
            this.ws.send(JSON.stringify(obj));
            return true;
        } catch {
            return false;
        }
    }

    stop() {
        this.stopped = true;
        clearTimeout(this.retryTimer);
        this.stopPing();
        globalThis.removeEventListener?.('online', this.onOnline);
        const ws = this.ws;
        this.ws = null;
        this.failPending('stopped');
        if (ws) {
            try {
                ws.close(1000, 'logout');
            } catch {
                /* ignore */
            }
        }
        this.setState('stopped');
    }
}
