// RELIABILITY S4 (sizes): a 10 MB continuous frame, a frame header claiming 2^63 bytes, a
// 10 MB message in fragments and a request head of 5,000 headers are each refused at once
// (close 1009 / 431) without the node buffering them: after twenty rounds of all four its
// RSS is within 5 MiB of where it was after the first. (A 65 KiB message is
// 50-bad-input's 1009 case; the 431 body is 99-slow-heads'.)
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { useEnv, it, assert, ORIGIN, SCALE, WAIT } from './harness.mjs';

const env = useEnv({ nodes: 1 });

function rssKiB(pid) {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m[1]);
}

/** A client frame header (masked) for a payload of len bytes. */
function frameHead(opcode, len, fin = true) {
    const first = (fin ? 0x80 : 0) | opcode;
    let h;
    if (len < 126) h = Buffer.from([first, 0x80 | len]);
    else if (len < 65536) {
        h = Buffer.alloc(4);
        h[0] = first;
        h[1] = 0x80 | 126;
        h.writeUInt16BE(len, 2);
    } else {
        h = Buffer.alloc(10);
        h[0] = first;
        h[1] = 0x80 | 127;
        h.writeBigUInt64BE(BigInt(len), 2);
    }
    return Buffer.concat([h, Buffer.from([1, 2, 3, 4])]); // mask key; the payload bytes need not decode to anything
}

/** Upgrades a raw socket on /ws/visitor; resolves {s, closeCode(), closed}. */
function rawWs(port) {
    return new Promise((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port });
        const key = crypto.randomBytes(16).toString('base64');
        let buf = Buffer.alloc(0);
        let upgraded = false;
        const h = { s, rx: Buffer.alloc(0), closed: false };
        h.done = new Promise((res) => s.on('close', () => ((h.closed = true), res())));
        s.on('error', () => {});
        s.on('data', (d) => {
            if (upgraded) {
                h.rx = Buffer.concat([h.rx, d]);
                return;
            }
            buf = Buffer.concat([buf, d]);
            const i = buf.indexOf('\r\n\r\n');
            if (i < 0) return;
            if (!/^HTTP\/1\.1 101/.test(buf.toString('latin1', 0, i))) return reject(new Error(`no upgrade: ${buf.toString('latin1', 0, i)}`));
            upgraded = true;
            h.rx = buf.subarray(i + 4);
            resolve(h);
        });
        s.once('connect', () =>
            s.write(
                `GET /ws/visitor HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
                    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nOrigin: ${ORIGIN}\r\n\r\n`,
            ),
        );
        s.once('error', reject);
    });
}

/** The close code of the first close frame the server sent, or null. */
function closeCode(rx) {
    let i = 0;
    while (i + 2 <= rx.length) {
        const op = rx[i] & 0x0f;
        let len = rx[i + 1] & 0x7f;
        let off = i + 2;
        if (len === 126) {
            len = rx.readUInt16BE(off);
            off += 2;
        } else if (len === 127) {
            len = Number(rx.readBigUInt64BE(off));
            off += 8;
        }
        if (op === 8) return len >= 2 ? rx.readUInt16BE(off) : 1005;
        i = off + len;
    }
    return null;
}

/** Streams up to total payload bytes after head in 64 KiB writes until the node closes;
 *  resolves {code, sent}. */
async function stream(h, head, total) {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    h.s.write(head);
    let sent = 0;
    while (sent < total && !h.closed && closeCode(h.rx) === null) {
        const ok = h.s.write(chunk);
        sent += chunk.length;
        if (!ok) await writable(h);
    }
    return finish(h, sent);
}

/** Waits until the socket drains, data comes in or it closes (or WAIT passes: a node that
 *  stopped reading and keeps the socket open is caught by finish()). */
function writable(h) {
    return new Promise((resolve) => {
        const t = setTimeout(done, WAIT);
        function done() {
            clearTimeout(t);
            h.s.off('drain', done);
            h.s.off('data', done);
            resolve();
        }
        h.s.once('drain', done);
        h.s.once('data', done);
        h.done.then(done);
    });
}

/** Waits for the node's close frame (or the close) and returns what was seen. */
async function finish(h, sent) {
    const deadline = Date.now() + WAIT;
    while (closeCode(h.rx) === null && !h.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const code = closeCode(h.rx);
    h.s.destroy();
    return { code, sent, closed: h.closed || code !== null };
}

const TEN_MB = 10 * 1000 * 1000;

async function tenMbFrame(port) {
    return stream(await rawWs(port), frameHead(1, TEN_MB), TEN_MB);
}

async function hugeClaim(port) {
    const h = await rawWs(port);
    const head = Buffer.alloc(14);
    head[0] = 0x81;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(0x7fffffffffffffffn, 2);
    return stream(h, head, 4 * 64 * 1024);
}

// Offers up to 40 MB: what the client hands its socket is not what the node read, since
// loopback's socket buffers (up to ~4 MB to send, ~6 MB to receive) take about 10 MB
// before the node runs at all on a busy machine; a node that closes after 64 KiB stops
// the client well before 20 MB, one that reads everything does not.
const FRAGMENTS_OFFERED = 4 * TEN_MB;
async function fragmented(port) {
    const h = await rawWs(port);
    const part = 60 * 1024;
    const payload = Buffer.alloc(part, 0x61);
    let sent = 0;
    for (let i = 0; sent < FRAGMENTS_OFFERED && !h.closed && closeCode(h.rx) === null; i++) {
        const last = sent + part >= FRAGMENTS_OFFERED;
        const ok = h.s.write(Buffer.concat([frameHead(i === 0 ? 1 : 0, part, last), payload]));
        sent += part;
        if (!ok) await writable(h);
    }
    return finish(h, sent);
}

function manyHeaders(port, n = 5000) {
    return new Promise((resolve) => {
        const t0 = Date.now();
        const s = net.connect({ host: '127.0.0.1', port });
        let text = '';
        let finished = false;
        const done = () => {
            if (finished) return;
            finished = true;
            s.destroy();
            resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), ms: Date.now() - t0 });
        };
        s.on('data', (d) => {
            text += d;
            if (/\r\n\r\n/.test(text)) done();
        });
        s.on('error', () => {});
        s.on('close', done);
        s.once('connect', () => {
            let head = `GET /ws/visitor HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: ${ORIGIN}\r\n`;
            for (let i = 0; i < n; i++) head += `X-H${i}: v\r\n`;
            s.write(head + '\r\n');
        });
        setTimeout(done, 15_000 * SCALE).unref();
    });
}

async function round(port) {
    const a = await tenMbFrame(port);
    assert.equal(a.code, 1009, `10 MB frame: close ${a.code} after ${a.sent} bytes`);
    assert.ok(a.sent < TEN_MB, `10 MB frame: the node read all ${a.sent} bytes before closing`);
    const b = await hugeClaim(port);
    assert.equal(b.code, 1009, '2^63 header');
    const c = await fragmented(port);
    assert.equal(c.code, 1009, `a message in fragments: close ${c.code} after ${c.sent} bytes`);
    assert.ok(c.sent < FRAGMENTS_OFFERED / 2, `fragments: the node took ${c.sent} bytes before closing`);
    const d = await manyHeaders(port);
    assert.equal(d.status, 431, '5,000 headers');
    assert.ok(d.ms < 1000 * SCALE, `5,000 headers answered after ${d.ms} ms`);
}

it('S4: 10 MB frames, a 2^63 length and 5,000 headers are refused at once; RSS stays within 5 MiB', async () => {
    const node = env.nodes[0];
    const site = await env.addSite(); // its origin is the one the raw clients send
    await round(node.port); // warm-up: first-use allocations
    const base = rssKiB(node.proc.pid);
    for (let i = 0; i < 20; i++) await round(node.port);
    const after = rssKiB(node.proc.pid);
    // Under ASan (scripts/test's asan layer sets ASAN_OPTIONS) freed memory sits in the
    // sanitizer's quarantine, so RSS says nothing about leaks there (LeakSanitizer checks
    // them); the bound is checked in the plain server layer.
    if (!process.env.ASAN_OPTIONS) assert.ok(after - base <= 5 * 1024, `RSS grew from ${base} KiB to ${after} KiB`);
    // the node still serves
    const v = await env.visitor(0, { site });
    await v.ok({ type: 'conversation.start', form: { message: 'still here' } });
    console.log(`S4: RSS ${base} KiB -> ${after} KiB after 20 rounds`);
});
