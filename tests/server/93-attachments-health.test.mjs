// The file store on /healthz (issue 16, docs/attachments.md "Storage status"): a node whose
// files directory cannot be written says "files":"error" with the reason, while it stays
// in the balancer (200: chat works without attachments); uploads then fail with 500 and
// say so too; once the directory is usable again the next probe says "ok" and uploads
// work. A probe creates and removes a file in files_dir at most every 5 s.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { useEnv, it, assert, waitUntil, httpRequest } from './harness.mjs';

const ROOT = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-files-health-'));
const DIR = path.join(ROOT, 'files');
fs.writeFileSync(DIR, 'a file where the directory should be');
const env = useEnv({ nodes: 1, args: ['--files-dir', DIR, '--file-upload-rate', '1000', '--file-upload-burst', '1000'] });
process.on('exit', () => fs.rmSync(ROOT, { recursive: true, force: true }));

const health = async () => {
    const r = await httpRequest(`${env.node(0).httpUrl}/healthz`);
    return { ...r.json, code: r.status };
};
const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(500, 7)]);

it('a files directory that cannot be written: /healthz says files error (still 200), uploads fail; fixed, it says ok and uploads work', async () => {
    let h;
    await waitUntil(async () => (h = await health()).files === 'error', { timeout: 15_000, what: '/healthz files error' });
    assert.equal(h.code, 200, "still in the balancer");
    assert.equal(h.redis, 'up');
    assert.match(h.files_error, /files_dir/);
    const { v } = await env.chat();
    const up = await httpRequest(`${env.node(0).httpUrl}/files?name=a.png`, { method: 'POST', headers: { authorization: `Bearer ${v.token}` }, body: PNG });
    assert.equal(up.status, 500, up.text);
    // the operator fixes it
    fs.rmSync(DIR);
    fs.mkdirSync(DIR);
    await waitUntil(async () => (h = await health()).files === 'ok', { timeout: 15_000, interval: 500, what: '/healthz files ok' });
    assert.equal(h.files_error, undefined);
    const again = await httpRequest(`${env.node(0).httpUrl}/files?name=a.png`, { method: 'POST', headers: { authorization: `Bearer ${v.token}` }, body: PNG });
    assert.equal(again.status, 201, again.text);
    assert.equal((await health()).files, 'ok');
});
