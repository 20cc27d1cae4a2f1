// Attachments in an S3-compatible store (files_store = s3, docs/attachments.md "Storage"):
// against s3rver (npm) on loopback, started and stopped by PID here. s3rver checks the
// access key but not a SigV4 signature ("unimplemented" in its source), so the nodes talk
// to it through a proxy here that verifies every request's AWS SigV4 signature as S3 does
// (and refuses a wrong one with 403 SignatureDoesNotMatch). Each node stages uploads in a
// directory of its own (no shared volume): a file uploaded through one node is downloaded
// through the other from the store; the staged copy is removed once stored; the orphan
// timer deletes the object; a node with a wrong secret is refused and answers unavailable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { after } from 'node:test';
import { useEnv, it, assert, waitUntil, freePort, spawnTracked, stopProc, REPO_ROOT, rnd, httpRequest } from './harness.mjs';

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-s3-'));
const DATA = path.join(TMP, 's3');
const port = await freePort();
const s3rver = spawnTracked(process.execPath, [path.join(REPO_ROOT, 'tests/node_modules/s3rver/bin/s3rver.js'), '-d', DATA, '-a', '127.0.0.1',
    '-p', String(port), '--configure-bucket', 'chatdesk', '-s'], { stdio: 'ignore' });
await waitUntil(() => new Promise((res) => {
    const r = http.get({ host: '127.0.0.1', port, path: '/' }, (x) => { x.resume(); res(true); });
    r.on('error', () => res(false));
}), { timeout: 20000, what: 's3rver listening' });
/** AWS SigV4 (header form) as S3 checks it: the canonical request of what arrived. */
function sigv4Ok(req, secret) {
    const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
        req.headers.authorization ?? '');
    if (!m) return false;
    const [, , date, region, signed, sig] = m;
    const names = signed.split(';');
    if (!names.includes('host') || !names.includes('x-amz-date') || !names.includes('x-amz-content-sha256')) return false;
    const u = new URL(req.url, 'http://x');
    const query = [...u.searchParams].map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).sort().join('&');
    const canonical = [req.method, u.pathname, query, names.map((n) => `${n}:${String(req.headers[n]).trim()}\n`).join(''), signed,
        req.headers['x-amz-content-sha256']].join('\n');
    const h = (k, d) => crypto.createHmac('sha256', k).update(d).digest();
    const scope = `${date}/${region}/s3/aws4_request`;
    const sts = ['AWS4-HMAC-SHA256', req.headers['x-amz-date'], scope, crypto.createHash('sha256').update(canonical).digest('hex')].join('\n');
    const key = h(h(h(h(`AWS4${secret}`, date), region), 's3'), 'aws4_request');
    return crypto.createHmac('sha256', key).update(sts).digest('hex') === sig;
}
const checked = { ok: 0, bad: 0 };
const proxy = http.createServer((req, res) => {
    if (!sigv4Ok(req, 'S3RVER')) {
        checked.bad++;
        req.resume();
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
        return;
    }
    checked.ok++;
    const up = http.request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
});
await new Promise((r) => proxy.listen(0, '127.0.0.1', r));
after(async () => {
    proxy.close();
    await stopProc(s3rver, 'SIGTERM', 5000);
    fs.rmSync(TMP, { recursive: true, force: true });
});

const S3 = (dir, secret = 'S3RVER') => ['--files-store', 's3', '--s3-endpoint', `http://127.0.0.1:${proxy.address().port}`, '--s3-bucket', 'chatdesk',
    '--s3-region', 'us-east-1', '--s3-access-key', 'S3RVER', '--s3-secret-key', secret, '--s3-path-style',
    '--files-dir', path.join(TMP, dir), '--file-orphan-s', '2', '--timer-poll-ms', '200', '--file-max-bytes', '3000000'];
const env = useEnv({ nodes: 2, nodeArgs: { 0: S3('n1'), 1: S3('n2') } });

const BIG = Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(2_500_000)]);
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), crypto.randomBytes(5000)]);

/** A request with a raw body (a Buffer) to a node; resolves {status, headers, body (Buffer), json}. */
const raw = (node, urlPath, opts = {}) => httpRequest(`${env.node(node).httpUrl}${urlPath}`, opts);
const upload = (node, token, bytes, name) =>
    raw(node, `/files?name=${encodeURIComponent(name)}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: bytes });
const link = (node, token, id) => raw(node, `/files/${id}/link`, { headers: { authorization: `Bearer ${token}` } });
/** The store's copy of the object <site>/<id> (s3rver keeps one file per object under DATA). */
function stored(id) {
    const found = [];
    const walk = (d) => {
        if (!fs.existsSync(d)) return;
        for (const e of fs.readdirSync(d, { withFileTypes: true })) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) walk(p);
            else if (p.includes(id) && !e.name.endsWith('.json') && !e.name.includes('metadata')) found.push(p);
        }
    };
    walk(path.join(DATA, 'chatdesk'));
    return found;
}

it('an upload through one node lands in the store, streams back through the other, and the staged copy goes', async () => {
    const { a, v, cid } = await env.chat({ vNode: 0, aNode: 1 });
    const up = await upload(0, v.token, BIG, 'big scan.pdf');
    assert.equal(up.status, 201, up.body.toString());
    const site = up.json.id.split('.').pop();
    assert.ok(stored(up.json.id).length > 0, 'the object is in the bucket');
    await waitUntil(() => !fs.existsSync(path.join(TMP, 'n1', site, up.json.id)), { what: 'the staged copy removed' });
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `c-${rnd(4)}`, body: 'scan', attachments: [up.json.id] });
    const l = await link(1, a.token, up.json.id);
    assert.equal(l.status, 200);
    const d = await raw(1, l.json.url);
    assert.equal(d.status, 200);
    assert.equal(Number(d.headers['content-length']), BIG.length);
    assert.ok(d.body.equals(BIG), 'the same bytes, streamed from the store');
    assert.match(d.headers['content-disposition'], /^attachment; filename="big scan.pdf"/);
    assert.equal(d.headers['x-content-type-options'], 'nosniff');
    const img = await upload(1, v.token, PNG, 'p.png');
    const di = await raw(0, (await link(0, v.token, img.json.id)).json.url);
    assert.ok(di.body.equals(PNG));
    assert.match(di.headers['content-disposition'], /^inline/);
    assert.ok(checked.ok >= 4 && checked.bad === 0, `every request signed right (${JSON.stringify(checked)})`);
});

it('the orphan timer deletes the object; a node signing with a wrong secret is refused by the store', async () => {
    const { v } = await env.chat();
    const up = await upload(0, v.token, PNG, 'orphan.png');
    assert.equal(up.status, 201);
    assert.ok(stored(up.json.id).length > 0);
    await waitUntil(() => stored(up.json.id).length === 0, { timeout: 15000, what: 'the object deleted' });
    assert.equal((await link(0, v.token, up.json.id)).status, 404);
    const bad = await env.addNode(S3('n3', 'not-the-secret'), 'n-bad');
    const r = await upload(env.nodes.indexOf(bad), v.token, PNG, 'x.png');
    assert.equal(r.status, 503, r.body.toString());
    assert.equal(r.json.error.code, 'unavailable');
    assert.ok(checked.bad >= 1, 'the store refused the wrong signature');
});
