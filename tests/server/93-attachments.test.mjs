// Attachments (issue 16, docs/attachments.md): uploads by visitors and agents (a raw body
// or multipart), the type judged by the bytes, limits, sanitised names, message.send
// carrying them (ok, message.created, history, webhooks' data), signed download links
// for the conversation's visitor and the site's agents only, the download's headers,
// and the orphan timer. Two nodes share one files directory, as the docs ask.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import crypto from 'node:crypto';
import { after } from 'node:test';
import { useEnv, it, assert, rnd, waitUntil, sleep, httpRequest } from './harness.mjs';

const FILES = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-files-'));
const SECRET = crypto.randomBytes(32).toString('hex');
// a webhook receiver on loopback (allowed explicitly, as an operator would)
const hooks = [];
const receiver = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
        hooks.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.end('ok');
    });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
after(() => receiver.close());
const ARGS = ['--webhook-allow-hosts', `127.0.0.1:${receiver.address().port}`, '--files-dir', FILES, '--file-max-bytes', '200000', '--file-max-per-message', '3', '--file-orphan-s', '2',
    '--token-secret', SECRET, '--file-upload-rate', '1000', '--file-upload-burst', '1000', '--timer-poll-ms', '200'];
const env = useEnv({ nodes: 2, args: ARGS });
process.on('exit', () => fs.rmSync(FILES, { recursive: true, force: true }));

const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), crypto.randomBytes(3000)]);
const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(100000)]);
const cmid = () => `cm-${rnd(6)}`;

/** A request with a raw body (a Buffer) to a node; resolves {status, headers, body (Buffer), json}. */
const raw = (node, urlPath, opts = {}) => httpRequest(`${env.node(node).httpUrl}${urlPath}`, opts);
const bearer = (t) => (t ? { authorization: `Bearer ${t}` } : {});
function upload(node, token, bytes, { name = 'f.bin', cid, type = 'application/octet-stream' } = {}) {
    const q = new URLSearchParams({ name, ...(cid ? { conversation_id: cid } : {}) });
    return raw(node, `/files?${q}`, { method: 'POST', headers: { ...bearer(token), 'content-type': type }, body: bytes });
}
function uploadMultipart(node, token, bytes, { name, cid, boundary = `----b${rnd(8)}` } = {}) {
    const body = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n`),
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: image/png\r\n\r\n`),
        bytes,
        Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const q = cid ? `?conversation_id=${encodeURIComponent(cid)}` : '';
    return raw(node, `/files${q}`, { method: 'POST', headers: { ...bearer(token), 'content-type': `multipart/form-data; boundary=${boundary}` }, body });
}
const link = (node, token, id) => raw(node, `/files/${encodeURIComponent(id)}/link`, { headers: bearer(token) });

it('a visitor uploads a PNG, sends it; the agent sees it in message.created and history and downloads it on the other node', async () => {
    const { a, v, cid } = await env.chat();
    const up = await upload(0, v.token, PNG, { name: 'screen shot.png' });
    assert.equal(up.status, 201, up.body.toString());
    assert.match(up.json.id, /^f_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.deepEqual({ name: up.json.name, type: up.json.type, size: up.json.size }, { name: 'screen shot.png', type: 'image/png', size: PNG.length });
    const mark = a.mark();
    const ok = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: '', attachments: [up.json.id] });
    const att = ok.message.attachments;
    assert.equal(att.length, 1);
    assert.deepEqual(att[0], { id: up.json.id, name: 'screen shot.png', type: 'image/png', size: PNG.length, url: `/files/${up.json.id}` });
    const ev = await a.waitFor((f) => f.type === 'message.created' && f.conversation_id === cid && f.message.seq === ok.message.seq, { from: mark });
    assert.deepEqual(ev.message.attachments, att);
    const hist = await a.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(hist.messages.at(-1).attachments, att);
    // the agent's link, used on the other node (the directory is shared)
    const l = await link(0, a.token, up.json.id);
    assert.equal(l.status, 200, l.body.toString());
    assert.match(l.json.url, /^\/files\/f_[^?]+\?e=\d+&k=cfg&s=[0-9a-f]{64}$/);
    const d = await raw(1, l.json.url);
    assert.equal(d.status, 200);
    assert.ok(d.body.equals(PNG), 'the bytes come back unchanged');
    assert.equal(d.headers['content-type'], 'image/png');
    assert.match(d.headers['content-disposition'], /^inline; filename="screen shot.png"/);
    assert.equal(d.headers['x-content-type-options'], 'nosniff');
    assert.match(d.headers['content-security-policy'], /default-src 'none'.*sandbox/);
    // the widget runs on the customer's page: CORS for the token-carrying calls
    const pre = await raw(0, '/files', { method: 'OPTIONS', headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
    assert.match(pre.headers['access-control-allow-headers'], /authorization/);
    assert.equal(up.headers['access-control-allow-origin'], '*');
    assert.equal(l.headers['access-control-allow-origin'], '*');
    // the visitor's own link works too
    const lv = await link(1, v.token, up.json.id);
    assert.equal(lv.status, 200);
});

it("webhooks' message.created data carry the attachments", async () => {
    const site = await env.addSite();
    const adm = await env.addAgent({ site, role: 'admin' });
    const token = await env.login(0, adm.email, adm.password);
    const r = await env.http(0, `/api/v1/admin/sites/${site.key}/webhooks`, { method: 'POST', headers: bearer(token),
        body: { url: `http://127.0.0.1:${receiver.address().port}/hook`, events: ['message.created'] } });
    assert.equal(r.status, 201, r.text);
    const v = await env.visitor(0, { site });
    const cid = (await v.ok({ type: 'conversation.start', form: { subject: 'hook' } })).conversation.id;
    const up = await upload(0, v.token, PNG, { name: 'hook.png' });
    const ok = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'see hook', attachments: [up.json.id] });
    await waitUntil(() => hooks.some((h) => h.conversation_id === cid && h.data?.body === 'see hook'), { timeout: 15000, what: 'the delivery' });
    const h = hooks.find((x) => x.conversation_id === cid && x.data?.body === 'see hook');
    assert.deepEqual(h.data.attachments, ok.message.attachments);
});

it('an agent uploads a PDF as multipart for its conversation; it downloads as an attachment, never inline', async () => {
    const { a, v, cid } = await env.chat();
    const up = await uploadMultipart(0, a.token, PDF, { name: 'invoice 7.pdf', cid });
    assert.equal(up.status, 201, up.body.toString());
    assert.equal(up.json.type, 'application/pdf');
    assert.equal(up.json.size, PDF.length);
    const mark = v.mark();
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'Your invoice', attachments: [up.json.id] });
    const ev = await v.waitFor((f) => f.type === 'message.created' && f.conversation_id === cid && f.message.body === 'Your invoice', { from: mark });
    assert.equal(ev.message.attachments[0].name, 'invoice 7.pdf');
    const l = await link(1, v.token, up.json.id);
    assert.equal(l.status, 200);
    const d = await raw(0, l.json.url);
    assert.ok(d.body.equals(PDF));
    assert.match(d.headers['content-disposition'], /^attachment; filename="invoice 7.pdf"; filename\*=UTF-8''invoice%207.pdf$/);
    // an agent's upload names its conversation
    const none = await upload(0, a.token, PDF, { name: 'x.pdf' });
    assert.equal(none.status, 400);
});

it('types are judged by the bytes: script in SVG, HTML named .png and unknown binaries are refused; names are sanitised', async () => {
    const { v } = await env.chat();
    const svg = Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    let r = await upload(0, v.token, svg, { name: 'cat.svg', type: 'image/svg+xml' });
    assert.equal(r.status, 415, r.body.toString());
    assert.equal(r.json.error.code, 'unsupported_type');
    r = await upload(0, v.token, Buffer.from('\n  <html><script>alert(1)</script></html>'), { name: 'pic.png', type: 'image/png' });
    assert.equal(r.status, 415);
    r = await upload(0, v.token, Buffer.concat([Buffer.from('7f454c46', 'hex'), crypto.randomBytes(600)]), { name: 'pic.png', type: 'image/png' });
    assert.equal(r.status, 415, 'an ELF named .png');
    // text is text, whatever it is called
    r = await upload(0, v.token, Buffer.from('order 1042: still waiting\n'), { name: 'notes.png', type: 'image/png' });
    assert.equal(r.status, 201);
    assert.equal(r.json.type, 'text/plain; charset=utf-8');
    // a name that climbs out of the directory keeps only its last part
    r = await upload(0, v.token, PNG, { name: '../../../etc/passwd' });
    assert.equal(r.status, 201);
    assert.equal(r.json.name, 'passwd');
    const site = r.json.id.split('.').pop();
    assert.ok(fs.existsSync(path.join(FILES, site, r.json.id)), 'stored under the site, by id');
    r = await uploadMultipart(0, v.token, PNG, { name: '..\\\\..\\\\win.ini"; x=\u0001' });
    assert.equal(r.status, 201, r.body.toString());
    assert.ok(!/[\\/"\u0001]/.test(r.json.name), r.json.name);
});

it('limits: size (declared and counted), count per message, empty files, no token', async () => {
    const { v, cid } = await env.chat();
    let r = await upload(0, v.token, crypto.randomBytes(200001), { name: 'big.bin' });
    assert.equal(r.status, 413);
    const big = Buffer.concat([Buffer.from('%PDF-'), crypto.randomBytes(200000)]);
    r = await uploadMultipart(0, v.token, big, { name: 'big.pdf' });
    assert.equal(r.status, 413, 'counted in the multipart part');
    r = await upload(0, null, PNG);
    assert.equal(r.status, 401);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await upload(0, v.token, PNG, { name: `${i}.png` })).json.id);
    const e = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'x', attachments: ids });
    assert.equal(e.type, 'error');
    assert.equal(e.code, 'too_large');
    const ok = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'x', attachments: ids.slice(0, 3) });
    assert.equal(ok.message.attachments.length, 3);
    const m = (await raw(0, '/metrics')).body.toString();
    assert.ok(Number(m.match(/^chatdesk_file_uploads_refused_total (\d+)$/m)[1]) >= 3, 'refusals counted');
    assert.ok(Number(m.match(/^chatdesk_file_uploads_total (\d+)$/m)[1]) >= 4, 'uploads counted');
    // a file goes into one message only
    const again = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'x', attachments: [ids[0]] });
    assert.equal(again.code, 'not_found');
});

it("walls: another site's agent, another visitor and nobody get the same not_found; forged or expired links are refused", async () => {
    const A = await env.chat();
    const B = await env.chat();
    const up = await upload(0, A.v.token, PNG, { name: 'a.png' });
    await A.v.ok({ type: 'message.send', conversation_id: A.cid, client_msg_id: cmid(), body: 'see', attachments: [up.json.id] });
    const note = await upload(0, A.a.token, PNG, { name: 'internal.png', cid: A.cid });
    await A.a.ok({ type: 'message.send', conversation_id: A.cid, client_msg_id: cmid(), body: 'agents only', private: true, attachments: [note.json.id] });
    const ghost = `f_${'x'.repeat(22)}.${A.site.key}`;
    const answers = [
        await link(0, B.a.token, up.json.id), // another site's agent
        await link(0, B.v.token, up.json.id), // another site's visitor
        await link(0, A.v.token, note.json.id), // the visitor, for a private note's file
        await link(0, A.a.token, ghost), // nothing there
    ];
    for (const r of answers) {
        assert.equal(r.status, 404);
        assert.deepEqual(r.json, answers[3].json);
    }
    // uploads into another tenant's conversation are refused alike, before the body is kept
    const into = [await upload(0, B.a.token, PDF, { cid: A.cid }), await upload(0, B.v.token, PDF, { cid: A.cid }),
        await upload(0, A.a.token, PDF, { cid: `c_${'y'.repeat(22)}.${A.site.key}` })];
    for (const r of into) assert.equal(r.status, 404, r.body.toString());
    const other = await env.visitor(0, { site: A.site }); // another visitor of the same site
    assert.equal((await link(0, other.token, up.json.id)).status, 404);
    // B's visitor cannot put A's file into its own message either
    const steal = await B.v.request({ type: 'message.send', conversation_id: B.cid, client_msg_id: cmid(), body: 'mine', attachments: [up.json.id] });
    assert.equal(steal.code, 'not_found');
    // a visitor cannot send another visitor's upload of the same site
    const mine = await upload(0, other.token, PNG);
    const r2 = await A.v.request({ type: 'message.send', conversation_id: A.cid, client_msg_id: cmid(), body: 'x', attachments: [mine.json.id] });
    assert.equal(r2.code, 'not_found');
    // links: a changed expiry, another file's signature and an expired link
    const good = (await link(0, A.a.token, up.json.id)).json.url;
    const u = new URL(good, 'http://x');
    const e = Number(u.searchParams.get('e'));
    const tampered = `/files/${up.json.id}?e=${e + 60000}&k=cfg&s=${u.searchParams.get('s')}`;
    assert.equal((await raw(0, tampered)).status, 403);
    assert.equal((await raw(0, `/files/${note.json.id}?${u.searchParams}`)).status, 403);
    const past = Date.now() - 1000;
    const mac = crypto.createHmac('sha256', Buffer.from(SECRET, 'hex')).update(`file|${up.json.id}|${past}`).digest('hex');
    assert.equal((await raw(0, `/files/${up.json.id}?e=${past}&k=cfg&s=${mac}`)).status, 403, 'expired');
    const fresh = Date.now() + 60000;
    const mac2 = crypto.createHmac('sha256', Buffer.from(SECRET, 'hex')).update(`file|${up.json.id}|${fresh}`).digest('hex');
    assert.equal((await raw(0, `/files/${up.json.id}?e=${fresh}&k=cfg&s=${mac2}`)).status, 200, 'the same MAC, not expired');
});

it("the intake form carries files: conversation.start's first message has them, a retry gets the same", async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    const v = await env.visitor(1, { site });
    const up = await upload(1, v.token, PDF, { name: 'order.pdf' });
    assert.equal(up.status, 201);
    const form = { subject: 'Refund', client_msg_id: cmid(), attachments: [up.json.id] };
    const r = await v.ok({ type: 'conversation.start', form });
    assert.equal(r.message.body, '');
    assert.deepEqual(r.message.attachments.map((x) => x.id), [up.json.id]);
    const cid = r.conversation.id;
    const again = await v.ok({ type: 'conversation.start', form });
    assert.equal(again.conversation.id, cid);
    assert.deepEqual(again.message.attachments, r.message.attachments);
    await a.waitFor((f) => f.type === 'conversation.queued' && f.conversation?.id === cid);
    const hist = await a.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(hist.messages[0].attachments, r.message.attachments);
    assert.equal((await link(0, a.token, up.json.id)).status, 200);
    // someone else's upload refuses the start, and nothing is stored
    const other = await env.visitor(0, { site });
    const theirs = await upload(0, other.token, PNG);
    const e = await v.request({ type: 'conversation.start', form: { subject: 'x', attachments: [theirs.json.id] } });
    assert.equal(e.code, 'not_found');
    const convs = (await v.request({ type: 'conversation.start', form: { subject: 'y' } })).conversation;
    assert.ok(convs, 'the visitor can still start');
});

it('kill -9 of the node during an upload: no file is left, half written or recorded; the upload works again elsewhere', async () => {
    const victim = await env.addNode(ARGS, 'n-victim');
    const vi = env.nodes.indexOf(victim);
    const { v } = await env.chat();
    const site = v.welcome.site?.key ?? (await upload(0, v.token, PNG)).json.id.split('.').pop();
    const dir = path.join(FILES, site);
    const parts = () => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.part')) : []);
    const before = new Set(parts());
    const req = http.request({ host: '127.0.0.1', port: victim.port, path: '/files?name=half.png', method: 'POST', agent: false,
        headers: { authorization: `Bearer ${v.token}`, 'content-length': PDF.length } });
    req.on('error', () => {});
    req.write(PDF.subarray(0, 70000));
    await waitUntil(() => parts().some((f) => !before.has(f)), { what: 'the half body on disk' });
    const part = parts().find((f) => !before.has(f));
    const id = part.slice(0, -'.part'.length);
    await victim.kill9();
    req.destroy();
    assert.equal((await link(0, v.token, id)).status, 404, 'a half upload is nobody\'s file');
    const m = await v.request({ type: 'message.send', conversation_id: (await v.ok({ type: 'conversation.start', form: { subject: 'k' } })).conversation.id,
        client_msg_id: cmid(), body: 'x', attachments: [id] });
    assert.equal(m.code, 'not_found');
    await waitUntil(() => !fs.existsSync(path.join(dir, part)), { timeout: 15000, what: 'the half body removed by its orphan timer' });
    const again = await upload(vi === 0 ? 1 : 0, v.token, PDF, { name: 'half.png' });
    assert.equal(again.status, 201);
});

it("a logged-out agent's token neither uploads nor gets links", async () => {
    const { a, cid } = await env.chat();
    const up = await upload(0, a.token, PDF, { name: 'a.pdf', cid });
    assert.equal(up.status, 201);
    const out = await env.http(0, '/api/v1/logout', { method: 'POST', headers: bearer(a.token) });
    assert.equal(out.status, 204, out.text);
    assert.equal((await link(0, a.token, up.json.id)).status, 401);
    assert.equal((await upload(1, a.token, PDF, { name: 'b.pdf', cid })).status, 401);
});

it('an upload no message took is removed after file_orphan_s, record and body; a sent one stays', async () => {
    const { v, cid } = await env.chat();
    const orphan = await upload(0, v.token, PNG, { name: 'o.png' });
    const kept = await upload(0, v.token, PNG, { name: 'k.png' });
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'k', attachments: [kept.json.id] });
    const site = orphan.json.id.split('.').pop();
    const body = path.join(FILES, site, orphan.json.id);
    assert.ok(fs.existsSync(body));
    await waitUntil(async () => (await link(0, v.token, orphan.json.id)).status === 404 && !fs.existsSync(body), {
        timeout: 15000, what: 'the orphan removed',
    });
    await sleep(2500);
    assert.equal((await link(0, v.token, kept.json.id)).status, 200);
    assert.ok(fs.existsSync(path.join(FILES, site, kept.json.id)));
    // too late to send it
    const late = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'o', attachments: [orphan.json.id] });
    assert.equal(late.code, 'not_found');
});
