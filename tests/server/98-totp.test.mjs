// Two-factor login (security issue, item 10): RFC 6238 TOTP for agents. Every code here is
// computed in the test from the secret the server shows at enrolment (node:crypto, HMAC-SHA1,
// 30 s steps, 6 digits), so the test checks the server against the RFC, not against itself.
// Covered: enrolment (secret and otpauth:// URI, confirmed by a first code, 10 recovery codes
// shown once), the login's second step with a code, a wrong code, a replayed code, single-use
// recovery codes, code guesses on the account's login counter (429), turning it off with a
// code, a site that requires it (the password alone earns only an enrolment token), and an
// admin's reset with the tenant wall (an agent shared with another tenant is refused), also
// from the admin CLI; a site turning the requirement on signs out those without it; and
// secrets sealed at rest under secrets_key_file.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { useEnv, it, assert, rnd, httpRequest, waitUntil, chatdeskdPath } from './harness.mjs';
import { totp, stepNow } from '../support/totp.mjs';

const env = useEnv({ nodes: 1 });


// each test logs in from an address of its own (login_rate_per_ip counts per address)
let addrSeq = 10;
function client(node = 0) {
    const localAddress = `127.0.0.${addrSeq++}`;
    const req = (method, url, { token, body } = {}) =>
        httpRequest(env.nodes[node].httpUrl + url, { method, body, localAddress, headers: token ? { authorization: `Bearer ${token}` } : {} });
    return {
        req,
        addr: localAddress,
        login: (ag, password = ag.password) => req('POST', '/api/v1/login', { body: { email: ag.email, password } }),
        second: (challenge, body) => req('POST', '/api/v1/login/totp', { token: challenge, body }),
    };
}

// enrols with a code of the current step; returns the secret, the recovery codes and that step
async function enrol(c, token) {
    const e = await c.req('POST', '/api/v1/me/totp/enroll', { token });
    assert.equal(e.status, 200, e.text);
    const step = stepNow();
    const r = await c.req('POST', '/api/v1/me/totp/confirm', { token, body: { code: totp(e.json.secret, step) } });
    assert.equal(r.status, 200, r.text);
    return { secret: e.json.secret, codes: r.json.recovery_codes, step, confirm: r };
}

it('enrolment, then a login needs a code: wrong and replayed codes fail, recovery codes work once', async () => {
    const c = client();
    const site = await env.addSite({ probe: false });
    const ag = await env.addAgent({ site });
    const token = (await c.login(ag)).json.token;
    let st = await c.req('GET', '/api/v1/me/totp', { token });
    assert.deepEqual(st.json, { enabled: false, pending: false, recovery_codes_left: 0 });

    const e = await c.req('POST', '/api/v1/me/totp/enroll', { token });
    assert.equal(e.status, 200, e.text);
    assert.match(e.json.secret, /^[A-Z2-7]{32}$/);
    const uri = new URL(e.json.otpauth_uri);
    assert.equal(uri.protocol, 'otpauth:');
    assert.equal(uri.host, 'totp');
    assert.equal(decodeURIComponent(uri.pathname), `/chatdesk:${ag.email}`);
    assert.equal(uri.searchParams.get('secret'), e.json.secret);
    assert.equal(uri.searchParams.get('issuer'), 'chatdesk');
    assert.equal(uri.searchParams.get('digits'), '6');
    assert.equal(uri.searchParams.get('period'), '30');
    // not on until a first code confirms it: the password alone still logs in
    assert.ok((await c.login(ag)).json.token);
    const bad = await c.req('POST', '/api/v1/me/totp/confirm', { token, body: { code: totp(e.json.secret, stepNow() + 5) } });
    assert.equal(bad.status, 400, bad.text);
    const s0 = stepNow();
    const conf = await c.req('POST', '/api/v1/me/totp/confirm', { token, body: { code: totp(e.json.secret, s0) } });
    assert.equal(conf.status, 200, conf.text);
    const codes = conf.json.recovery_codes;
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    for (const rc of codes) assert.match(rc, /^[a-z2-7]{5}-[a-z2-7]{5}$/);
    st = await c.req('GET', '/api/v1/me/totp', { token });
    assert.deepEqual(st.json, { enabled: true, pending: false, recovery_codes_left: 10 });
    assert.ok(!st.text.includes(e.json.secret), 'the secret is never shown again');
    assert.equal((await c.req('POST', '/api/v1/me/totp/enroll', { token })).status, 409);

    // the password now earns a challenge, which is no login token
    let l = await c.login(ag);
    assert.equal(l.status, 200, l.text);
    assert.equal(l.json.totp_required, true);
    assert.equal(l.json.token, undefined);
    const challenge = l.json.challenge;
    assert.equal((await c.req('GET', '/api/v1/me', { token: challenge })).status, 401);
    // a forged or expired challenge is answered (401), like any bad token
    assert.equal((await c.second(challenge.slice(0, -2) + 'xx', { code: '123456' })).status, 401);
    // a login token cannot take the second step
    assert.equal((await c.second(token, { code: totp(e.json.secret, stepNow()) })).status, 401);
    // the step the enrolment used is spent: replayed, refused
    let r = await c.second(challenge, { code: totp(e.json.secret, s0) });
    assert.equal(r.status, 401, r.text);
    r = await c.second(challenge, { code: totp(e.json.secret, s0 + 1) });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.token);
    assert.equal(r.json.agent.id, ag.id);
    assert.equal((await c.req('GET', '/api/v1/me', { token: r.json.token })).status, 200);
    // the same code again (a new challenge): refused
    l = await c.login(ag);
    r = await c.second(l.json.challenge, { code: totp(e.json.secret, s0 + 1) });
    assert.equal(r.status, 401, r.text);
    r = await c.second(l.json.challenge, { code: '000000' === totp(e.json.secret, stepNow()) ? '000001' : '000000' });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error.code, 'unauthorized');
    // a recovery code works once (as typed: case and the dash do not matter)
    r = await c.second(l.json.challenge, { recovery_code: codes[3].toUpperCase().replace('-', ' ') });
    assert.equal(r.status, 200, r.text);
    l = await c.login(ag);
    r = await c.second(l.json.challenge, { recovery_code: codes[3] });
    assert.equal(r.status, 401, r.text);
    r = await c.second(l.json.challenge, { recovery_code: codes[4] });
    assert.equal(r.status, 200, r.text);
    const t2 = r.json.token;
    assert.equal((await c.req('GET', '/api/v1/me/totp', { token: t2 })).json.recovery_codes_left, 8);
    // a new set replaces the old one (after a second factor)
    r = await c.req('POST', '/api/v1/me/totp/recovery-codes', { token: t2, body: { recovery_code: codes[5] } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.recovery_codes.length, 10);
    l = await c.login(ag);
    assert.equal((await c.second(l.json.challenge, { recovery_code: codes[6] })).status, 401, 'old set gone');
    assert.equal((await c.second(l.json.challenge, { recovery_code: r.json.recovery_codes[0] })).status, 200);
});

it('code guesses count on the account: after the limit 429, even with the right code', async () => {
    const c = client();
    const site = await env.addSite({ probe: false });
    const ag = await env.addAgent({ site });
    const { secret } = await enrol(c, (await c.login(ag)).json.token);
    const l = await c.login(ag); // attempt 1 (the password is right, the count stays)
    const wrong = (i) => {
        const near = [-1, 0, 1].map((d) => totp(secret, stepNow() + d));
        let g = String(100000 + i * 7919).padStart(6, '0');
        while (near.includes(g)) g = String((Number(g) + 1) % 1000000).padStart(6, '0');
        return g;
    };
    for (let i = 0; i < 4; i++) {
        const r = await c.second(l.json.challenge, { code: wrong(i) });
        assert.equal(r.status, 401, `guess ${i + 1}: ${r.text}`);
    }
    let r = await c.second(l.json.challenge, { code: totp(secret, stepNow() + 1) });
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json.error.code, 'rate_limited');
    assert.ok(Number(r.headers['retry-after']) > 0);
    r = await c.login(ag);
    assert.equal(r.status, 429, 'the password login is throttled too');
});

it('turning two-factor login off takes a current code', async () => {
    const c = client();
    const site = await env.addSite({ probe: false });
    const ag = await env.addAgent({ site });
    const token = (await c.login(ag)).json.token;
    const { secret, step } = await enrol(c, token);
    assert.equal((await c.req('POST', '/api/v1/me/totp/disable', { token, body: {} })).status, 400);
    assert.equal((await c.req('POST', '/api/v1/me/totp/disable', { token, body: { code: totp(secret, step) } })).status, 400, 'spent step');
    const r = await c.req('POST', '/api/v1/me/totp/disable', { token, body: { code: totp(secret, step + 1) } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.enabled, false);
    const l = await c.login(ag);
    assert.ok(l.json.token, 'the password alone logs in again');
});

it('a site that requires two-factor login sends its agents to enrolment, and nowhere else', async () => {
    const c = client();
    const site = await env.addSite({ probe: false });
    const admin = await env.addAgent({ site, role: 'admin' });
    const ag = await env.addAgent({ site });
    const at = (await c.login(admin)).json.token;
    let r = await c.req('PATCH', `/api/v1/admin/sites/${site.key}`, { token: at, body: { require_2fa: 'yes' } });
    assert.equal(r.status, 400, r.text);
    // only an admin who uses two-factor login may require it (it would lock its author out)
    r = await c.req('PATCH', `/api/v1/admin/sites/${site.key}`, { token: at, body: { require_2fa: true } });
    assert.equal(r.status, 409, r.text);
    assert.match(r.json.error.message, /your own two-factor login/);
    await enrol(c, at);
    r = await c.req('PATCH', `/api/v1/admin/sites/${site.key}`, { token: at, body: { require_2fa: true } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.site.require_2fa, true);
    // the node's site cache follows the change (site.changed)
    let l;
    await waitUntil(async () => (l = await c.login(ag)).json.enrolment_required === true, { what: 'the site cache to require 2FA' });
    const et = l.json.token;
    assert.equal(l.json.agent.id, ag.id);
    for (const [m, u] of [['GET', '/api/v1/me'], ['GET', '/api/v1/conversations'], ['GET', '/api/v1/admin/agents'], ['POST', '/api/v1/me/totp/disable']]) {
        r = await c.req(m, u, { token: et, body: m === 'POST' ? {} : undefined });
        assert.equal(r.status, 403, `${m} ${u}: ${r.text}`);
    }
    // nor a WebSocket session
    const ws = await env.connect(0, 'agent');
    const f = await ws.request({ type: 'hello', token: et });
    assert.equal(f.type, 'error', JSON.stringify(f));
    assert.equal(f.code, 'unauthorized');
    assert.equal((await ws.waitClose()).code, 4401);
    const e = await c.req('POST', '/api/v1/me/totp/enroll', { token: et });
    assert.equal(e.status, 200, e.text);
    r = await c.req('POST', '/api/v1/me/totp/confirm', { token: et, body: { code: totp(e.json.secret, stepNow()) } });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.recovery_codes.length, 10);
    assert.ok(r.json.token, 'the confirmation ends the login');
    assert.equal((await c.req('GET', '/api/v1/me', { token: r.json.token })).status, 200);
    l = await c.login(ag);
    assert.equal(l.json.totp_required, true);
    assert.equal((await c.login(admin)).json.totp_required, true);
});

it('requiring two-factor login closes the open sessions of agents without it at once; their tokens stop working', async () => {
    const c = client();
    const site = await env.addSite({ probe: false });
    const admin = await env.addAgent({ site, role: 'admin' });
    const plain = await env.addAgent({ site }); // no two-factor login
    const secured = await env.addAgent({ site }); // with it
    const other = await env.addSite({ probe: false });
    const elsewhere = await env.addAgent({ site: other }); // another site's agent, without it
    const at = (await c.login(admin)).json.token;
    await enrol(c, at);
    const pt = (await c.login(plain)).json.token;
    const st = (await c.login(secured)).json.token;
    await enrol(c, st);
    const et = (await c.login(elsewhere)).json.token;
    const open = async (token) => {
        const ws = await env.connect(0, 'agent');
        const w = await ws.request({ type: 'hello', token });
        assert.equal(w.type, 'welcome', JSON.stringify(w));
        return ws;
    };
    const [wsPlain, wsSecured, wsAdmin, wsElsewhere] = [await open(pt), await open(st), await open(at), await open(et)];
    const t0 = Date.now();
    const r = await c.req('PATCH', `/api/v1/admin/sites/${site.key}`, { token: at, body: { require_2fa: true } });
    assert.equal(r.status, 200, r.text);
    const closed = await wsPlain.waitClose();
    assert.equal(closed.code, 4401);
    assert.ok(Date.now() - t0 < 5000, `closed within seconds (${Date.now() - t0} ms)`);
    assert.ok(
        wsPlain.frames.some((f) => f.type === 'session.revoked' && /two-factor/.test(f.reason)),
        'told why before the close',
    );
    // those who use it, and another site's agents, keep working
    for (const ws of [wsSecured, wsAdmin, wsElsewhere]) assert.equal((await ws.request({ type: 'ping' })).type, 'ok');
    // the old token: a new connection is refused, and so is every call in the site
    const again = await env.connect(0, 'agent');
    const f = await again.request({ type: 'hello', token: pt });
    assert.equal(f.code, 'unauthorized', JSON.stringify(f));
    assert.match(f.message, /two-factor/);
    assert.equal((await again.waitClose()).code, 4401);
    for (const u of ['/api/v1/conversations', '/api/v1/tickets', `/api/v1/canned?site=${site.key}`]) {
        const g = await c.req('GET', u, { token: pt });
        assert.equal(g.status, 403, `${u}: ${g.text}`);
        assert.match(g.json.error.message, /two-factor/);
    }
    assert.equal((await c.req('GET', '/api/v1/conversations', { token: st })).status, 200);
    assert.equal((await c.req('GET', '/api/v1/conversations', { token: et })).status, 200);
    // the next login goes to enrolment
    assert.equal((await c.login(plain)).json.enrolment_required, true);
    for (const ws of [wsSecured, wsAdmin, wsElsewhere]) ws.close();
});

it("an admin resets an agent's two-factor login only behind its own tenant wall; the CLI too", async () => {
    const c = client();
    const A = await env.addSite({ probe: false });
    const B = await env.addSite({ probe: false });
    const adminA = await env.addAgent({ site: A, role: 'admin' });
    const adminB = await env.addAgent({ site: B, role: 'admin' });
    const plain = await env.addAgent({ site: A });
    const onlyA = await env.addAgent({ site: A });
    const shared = await env.addAgent({ sites: [A, B] });
    for (const ag of [onlyA, shared]) await enrol(c, (await c.login(ag)).json.token);
    const tA = (await c.login(adminA)).json.token;
    const tB = (await c.login(adminB)).json.token;
    const tP = (await c.login(plain)).json.token;
    const reset = (t, ag) => c.req('POST', `/api/v1/admin/agents/${ag.id}/totp/reset`, { token: t });
    assert.equal((await reset(tP, onlyA)).status, 403, 'an agent is no admin');
    assert.equal((await reset(tB, onlyA)).status, 404, "another tenant's agent is not found");
    let r = await reset(tB, shared);
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.error.code, 'forbidden');
    r = await reset(tA, shared);
    assert.equal(r.status, 403, 'A does not run all of its sites either');
    assert.equal((await c.login(shared)).json.totp_required, true, 'still on');
    const list = await c.req('GET', '/api/v1/admin/agents', { token: tA });
    assert.equal(list.json.agents.find((a) => a.id === onlyA.id).totp, true);
    r = await reset(tA, onlyA);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.totp.was_enabled, true);
    assert.ok((await c.login(onlyA)).json.token, 'off: the password logs in');
    // the operator (CLI) runs the same function
    const out = await env.admin('totp-reset', '--email', shared.email);
    assert.equal(out.agent_id, shared.id);
    assert.equal(out.was_enabled, true);
    assert.ok((await c.login(shared)).json.token);
    const none = await env.adminRaw(['totp-reset', '--email', `nobody_${rnd(3)}@example.com`]);
    assert.equal(none.code, 1);
    // every 2FA change is in the audit log of the agent's sites, with who and from where
    const log = await c.req('GET', `/api/v1/admin/sites/${A.key}/audit?limit=200`, { token: tA });
    assert.equal(log.status, 200, log.text);
    const find = (action, target) => log.json.entries.find((e) => e.action === action && e.target === target);
    const enabled = find('totp.enable', onlyA.id);
    assert.ok(enabled, 'enrolment audited');
    assert.deepEqual([enabled.actor, enabled.address], [onlyA.id, c.addr]);
    const byAdmin = find('totp.reset', onlyA.id);
    assert.ok(byAdmin, "the admin's reset audited");
    assert.equal(byAdmin.actor, adminA.id);
    assert.ok(find('totp.reset', shared.id)?.actor === 'operator', "the CLI's reset audited as the operator");
    assert.equal((await c.req('GET', `/api/v1/admin/sites/${B.key}/audit?limit=200`, { token: tB })).json.entries.filter((e) => e.target === onlyA.id).length, 0, "A's agent is not in B's log");
});

it('with secrets_key_file the secret is sealed in Redis; a node without the key cannot use it; older secrets are sealed at their next use', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cd-seal-'));
    const keyFile = path.join(dir, 'secrets.key');
    fs.writeFileSync(keyFile, crypto.randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    // a key file that is not 64 hex characters stops the node at start-up, saying why
    const badFile = path.join(dir, 'bad.key');
    fs.writeFileSync(badFile, 'not a key\n');
    for (const [f, why] of [[badFile, /64 hex characters/], [path.join(dir, 'missing.key'), /No such file/]]) {
        const r = spawnSync(chatdeskdPath(), ['--port', '0', '--redis', env.redis.url, '--secrets-key-file', f], { timeout: 10_000, encoding: 'utf8' });
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr + r.stdout, why);
    }
    const sealing = await env.addNode(['--secrets-key-file', keyFile]);
    const ni = env.nodes.indexOf(sealing);
    try {
        const site = await env.addSite({ probe: false });
        const ag = await env.addAgent({ site });
        const c = client(ni);
        const t = (await c.login(ag)).json.token;
        const { secret } = await enrol(c, t);
        const stored = await env.redis.cmd('HGET', `cd:{a}:agent:${ag.id}:totp`, 'secret');
        assert.match(stored, /^s1\.[0-9a-f]{8}\./, 'sealed');
        assert.ok(!stored.includes(secret), 'the secret is not in Redis in clear');
        // a login's second step on the node with the key
        let ch = (await c.login(ag)).json.challenge;
        let r = await c.second(ch, { code: totp(secret, stepNow() + 1) }); // a step after the enrolment's
        assert.equal(r.status, 200, r.text);
        // a node without the key says it cannot read it (and nothing is changed)
        const plainNode = client(0);
        ch = (await plainNode.login(ag)).json.challenge;
        r = await plainNode.second(ch, { code: totp(secret, stepNow()) });
        assert.equal(r.status, 500, r.text);
        assert.match(r.json.error.message, /secrets_key_file/);
        assert.equal(await env.redis.cmd('HGET', `cd:{a}:agent:${ag.id}:totp`, 'secret'), stored);
        // an agent enrolled on a node without the key: stored in clear, sealed at its next login
        const old = await env.addAgent({ site });
        const c0 = client(0);
        const e = await enrol(c0, (await c0.login(old)).json.token);
        assert.equal(await env.redis.cmd('HGET', `cd:{a}:agent:${old.id}:totp`, 'secret'), e.secret);
        const c1 = client(ni);
        ch = (await c1.login(old)).json.challenge;
        r = await c1.second(ch, { code: totp(e.secret, stepNow() + 1) });
        assert.equal(r.status, 200, r.text);
        const resealed = await env.redis.cmd('HGET', `cd:{a}:agent:${old.id}:totp`, 'secret');
        assert.match(resealed, /^s1\./);
        assert.ok(!resealed.includes(e.secret));
        // and it still works there
        ch = (await c1.login(old)).json.challenge;
        r = await c1.second(ch, { recovery_code: e.codes[0] });
        assert.equal(r.status, 200, r.text);
    } finally {
        await sealing.stop();
        env.nodes.splice(env.nodes.indexOf(sealing), 1);
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
