// localStorage, namespaced per site: chatdesk:v1:<site>:<name>. Falls back to memory
// when storage is unavailable (blocked cookies, private mode quota) so the widget
// still works for the page's lifetime.

export class Store {
    constructor(site) {
        this.prefix = `chatdesk:v1:${site}:`;
        this.mem = new Map();
        try {
            this.ls = window.localStorage;
            const k = this.prefix + '__probe';
            this.ls.setItem(k, '1');
            this.ls.removeItem(k);
        } catch {
            this.ls = null;
        }
    }

    getRaw(name) {
        const k = this.prefix + name;
        if (this.ls) {
            try {
                return this.ls.getItem(k);
            } catch {
                /* fall through */
            }
        }
        return this.mem.has(k) ? this.mem.get(k) : null;
    }

    setRaw(name, value) {
        const k = this.prefix + name;
        if (value == null) {
            this.mem.delete(k);
            if (this.ls)
                try {
                    this.ls.removeItem(k);
                } catch {
                    /* ignore */
                }
            return;
        }
        this.mem.set(k, value);
        if (this.ls)
            try {
                this.ls.setItem(k, value);
            } catch {
                /* quota: memory keeps it */
            }
    }

    get(name, dflt = null) {
        const raw = this.getRaw(name);
        if (raw == null) return dflt;
        try {
            return JSON.parse(raw);
        } catch {
            return dflt;
        }
    }

    set(name, value) {
        this.setRaw(name, value == null ? null : JSON.stringify(value));
    }

    /** Drops everything of this site (token, conversation, messages, outbox). */
    clearAll() {
        for (const n of ['token', 'uid', 'conv', 'msgs', 'outbox', 'start', 'open', 'draft']) this.setRaw(n, null);
    }
}
