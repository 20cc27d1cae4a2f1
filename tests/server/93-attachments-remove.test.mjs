// Removing an upload and the cap on uploads not yet sent (issue 16, docs/attachments.md
// "Removing an upload" and "Limits"): DELETE /files/<id> by its uploader makes it
// unreachable at once and removes its body; nobody else may (another visitor, the site's
// agents, another site: the same 404 as for no file); a file a message carries stays
// (409). An uploader holds at most file_max_pending uploads no message took: more are
// refused 429 until a message takes one or the uploader removes one.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { useEnv, it, assert, rnd, waitUntil, httpRequest } from './harness.mjs';

const FILES = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-files-rm-'));
const ARGS = ['--files-dir', FILES, '--file-max-pending', '3', '--file-upload-rate', '1000', '--file-upload-burst', '1000'];
const env = useEnv({ nodes: 2, args: ARGS });
process.on('exit', () => fs.rmSync(FILES, { recursive: true, force: true }));

const PNG = () => Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), crypto.randomBytes(2000)]);
const cmid = () => `cm-${rnd(6)}`;
const raw = (node, urlPath, opts = {}) => httpRequest(`${env.node(node).httpUrl}${urlPath}`, opts);
const bearer = (t) => (t ? { authorization: `Bearer ${t}` } : {});
function upload(node, token, { cid } = {}) {
    const q = new URLSearchParams({ name: 'shot.png', ...(cid ? { conversation_id: cid } : {}) });
    return raw(node, `/files?${q}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/octet-stream' }, body: PNG() });
}
const remove = (node, token, id) => raw(node, `/files/${encodeURIComponent(id)}`, { method: 'DELETE', headers: bearer(token) });
const link = (node, token, id) => raw(node, `/files/${encodeURIComponent(id)}/link`, { headers: bearer(token) });
const bodyPath = (id) => path.join(FILES, id.split('.').pop(), id);

it('the uploader removes an upload: 204, then no link, no message can take it, its body is gone; twice is 404', async () => {
    const { v, cid } = await env.chat();
    const up = await upload(0, v.token);
    assert.equal(up.status, 201, up.body.toString());
    assert.ok(fs.existsSync(bodyPath(up.json.id)));
    const r = await remove(1, v.token, up.json.id); // through the other node
    assert.equal(r.status, 204, r.body.toString());
    assert.equal(r.body.length, 0);
    assert.equal((await link(0, v.token, up.json.id)).status, 404);
    const send = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'x', attachments: [up.json.id] });
    assert.equal(send.code, 'not_found');
    await waitUntil(() => !fs.existsSync(bodyPath(up.json.id)), { timeout: 10_000, what: 'the body removed' });
    const again = await remove(0, v.token, up.json.id);
    assert.equal(again.status, 404);
    assert.equal(again.json.error.code, 'not_found');
    // an agent removes its own upload for a conversation
    const { a, cid: cid2 } = await env.chat();
    const mine = await upload(0, a.token, { cid: cid2 });
    assert.equal(mine.status, 201, mine.body.toString());
    assert.equal((await remove(0, a.token, mine.json.id)).status, 204);
    assert.equal((await link(0, a.token, mine.json.id)).status, 404);
});

it("walls: another visitor, the site's agent, another site's agent and visitor, and nobody cannot remove it (the same 404); a sent file stays (409)", async () => {
    const A = await env.chat();
    const B = await env.chat();
    const up = await upload(0, A.v.token);
    const ghost = `f_${'x'.repeat(22)}.${A.site.key}`;
    const other = await env.visitor(0, { site: A.site });
    const answers = [
        await remove(0, other.token, up.json.id), // another visitor of the site
        await remove(0, A.a.token, up.json.id), // the site's agent: only the uploader withdraws
        await remove(0, B.a.token, up.json.id), // another site's agent
        await remove(0, B.v.token, up.json.id), // another site's visitor
        await remove(0, A.v.token, ghost), // nothing there
    ];
    for (const r of answers) {
        assert.equal(r.status, 404, r.body.toString());
        assert.deepEqual(r.json, answers[4].json);
    }
    assert.equal((await remove(0, null, up.json.id)).status, 401);
    assert.equal((await remove(0, 'not-a-token', up.json.id)).status, 401);
    // still there for its uploader
    assert.equal((await link(0, A.v.token, up.json.id)).status, 200);
    assert.ok(fs.existsSync(bodyPath(up.json.id)));
    // once a message carries it, it stays
    await A.v.ok({ type: 'message.send', conversation_id: A.cid, client_msg_id: cmid(), body: 'see', attachments: [up.json.id] });
    const sent = await remove(0, A.v.token, up.json.id);
    assert.equal(sent.status, 409, sent.body.toString());
    assert.equal(sent.json.error.code, 'conflict');
    assert.equal((await link(0, A.a.token, up.json.id)).status, 200);
    // the preflight names DELETE (the widget removes from a customer's page)
    const pre = await raw(0, `/files/${up.json.id}`, { method: 'OPTIONS', headers: { origin: 'https://shop.example', 'access-control-request-method': 'DELETE' } });
    assert.match(pre.headers['access-control-allow-methods'], /DELETE/);
});

it('file_max_pending: a fourth upload not yet sent is refused 429; sending one or removing one makes room; per uploader', async () => {
    const { v, cid } = await env.chat();
    const ids = [];
    for (let i = 0; i < 3; i++) {
        const up = await upload(i % 2, v.token);
        assert.equal(up.status, 201, up.body.toString());
        ids.push(up.json.id);
    }
    const over = await upload(0, v.token);
    assert.equal(over.status, 429, over.body.toString());
    assert.equal(over.json.error.code, 'rate_limited');
    assert.match(over.json.error.message, /not yet sent/);
    // another visitor of the same site is not held by this one's uploads
    const other = await env.visitor(0, { site: (await env.chat()).site });
    assert.equal((await upload(0, other.token)).status, 201);
    // a message takes one: room for one more, and only one
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'one', attachments: [ids[0]] });
    assert.equal((await upload(1, v.token)).status, 201);
    assert.equal((await upload(0, v.token)).status, 429);
    // removing one makes room again
    assert.equal((await remove(0, v.token, ids[1])).status, 204);
    assert.equal((await upload(0, v.token)).status, 201);
    assert.equal((await upload(0, v.token)).status, 429);
});

it('file_max_pending holds for uploads sent side by side: at most the cap are stored', async () => {
    const { v } = await env.chat();
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => upload(i % 2, v.token)));
    const ok = all.filter((r) => r.status === 201);
    assert.equal(ok.length, 3, all.map((r) => r.status).join(','));
    for (const r of all) if (r.status !== 201) assert.equal(r.status, 429, r.body.toString());
    // the refused ones left no body behind (a fresh site: only its uploads are there)
    const dir = path.dirname(bodyPath(ok[0].json.id));
    await waitUntil(() => fs.readdirSync(dir).length === 3, { timeout: 5000, what: `three bodies in ${dir}` });
    assert.deepEqual(fs.readdirSync(dir).sort(), ok.map((r) => r.json.id).sort());
});

async function adminToken(site) {
    const email = `boss_${rnd(3)}@example.com`;
    const password = `pw-${rnd(8)}`;
    await env.admin('agent-add', '--email', email, '--password', password, '--name', 'Boss', '--site', site.key, '--role', 'admin');
    return env.login(0, email, password);
}
const patchSite = (token, key, body) => env.http(0, `/api/v1/admin/sites/${key}`, { method: 'PATCH', body, headers: { authorization: `Bearer ${token}` } });
const PDF = Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(3000)]);
function uploadBytes(node, token, bytes, name) {
    return raw(node, `/files?name=${name}`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/octet-stream' }, body: bytes });
}
/** An upload that only probes the limits in force: a stored one is removed at once, so
 *  that probes repeated while a cache reload is slow do not fill the visitor's
 *  file_max_pending (3 here) and turn later answers into 429. Answers the status. */
async function probe(node, token, bytes, name) {
    const r = await uploadBytes(node, token, bytes, name);
    if (r.status === 201) assert.equal((await remove(node, token, r.json.id)).status, 204);
    return r.status;
}

it("a site's own attachment limits (site settings): a lower size and fewer types apply on every node; null restores the node's; other sites keep theirs; bad values 400", async () => {
    const A = await env.chat();
    const B = await env.chat();
    const token = await adminToken(A.site);
    let r = await patchSite(token, A.site.key, { file_max_bytes: 1000, file_types: ['pdf', 'pdf'] });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.site.file_max_bytes, 1000);
    assert.deepEqual(r.json.site.file_types, ['pdf']);
    // the nodes reload their site cache on the change: both refuse a 3 KB PDF (413) and a PNG (415)
    for (const node of [0, 1]) {
        await waitUntil(async () => (await probe(node, A.v.token, PDF, 'a.pdf')) === 413, { timeout: 10_000, what: `node ${node}: the site's size limit` });
        const png = await uploadBytes(node, A.v.token, PNG().subarray(0, 600), 'a.png');
        assert.equal(png.status, 415, png.text);
        assert.equal((await uploadBytes(node, A.v.token, PDF.subarray(0, 900), 'small.pdf')).status, 201);
    }
    // another site keeps the node's limits
    assert.equal((await uploadBytes(0, B.v.token, PDF, 'b.pdf')).status, 201);
    assert.equal((await uploadBytes(0, B.v.token, PNG(), 'b.png')).status, 201);
    // B's admin cannot change A's limits (the same 404 as for no site)
    const tokenB = await adminToken(B.site);
    const cross = await patchSite(tokenB, A.site.key, { file_max_bytes: null });
    assert.equal(cross.status, 404, cross.text);
    // [] takes attachments away from the site; bad values are refused and change nothing
    assert.equal(A.v.welcome.site.attachments, true, 'a site that takes attachments says so in welcome');
    assert.equal((await patchSite(token, A.site.key, { file_types: [] })).status, 200);
    // the widget leaves out the pre-chat form's Files field: welcome.site.attachments false
    assert.equal((await env.visitor(1, { site: A.site })).welcome.site.attachments, false);
    assert.equal((await env.visitor(1, { site: B.site })).welcome.site.attachments, true, 'another site keeps them');
    await waitUntil(async () => (await probe(0, A.v.token, PDF.subarray(0, 900), 'x.pdf')) === 415, { timeout: 10_000, what: 'no attachments' });
    for (const bad of [{ file_types: ['exe'] }, { file_types: 'pdf' }, { file_max_bytes: 0 }, { file_max_bytes: 'big' }]) {
        const e = await patchSite(token, A.site.key, bad);
        assert.equal(e.status, 400, JSON.stringify(bad) + e.text);
    }
    // null: the node's again
    r = await patchSite(token, A.site.key, { file_max_bytes: null, file_types: null });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.site.file_max_bytes, null);
    assert.equal(r.json.site.file_types, null);
    await waitUntil(async () => (await probe(1, A.v.token, PNG(), 'c.png')) === 201, { timeout: 10_000, what: "the node's limits again" });
    assert.equal((await env.visitor(0, { site: A.site })).welcome.site.attachments, true);
});
