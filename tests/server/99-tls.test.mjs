// Native TLS (security issue item 11, RELIABILITY S12): a node started with tls_cert and
// tls_key (a self-signed RSA certificate made here with openssl, so that RSA key exchange
// would be possible if it were allowed) serves HTTPS and WSS only: /healthz and the API
// over https with Strict-Transport-Security, a chat over wss on /ws/visitor and /ws/agent,
// no TLS 1.0/1.1, no suite without forward secrecy (RSA key exchange, CBC), checked with
// node's TLS client and Debian's sslscan; bad certificate settings stop the node at start.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { useEnv, it, assert, rnd, chatdeskdPath, httpRequest, SCALE } from './harness.mjs';

let cert;
let key;
const env = useEnv({
    nodes: 0,
    prepare(e) {
        cert = path.join(e.dir, 'cert.pem');
        key = path.join(e.dir, 'key.pem');
        execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2',
            '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
        e.tlsCa = fs.readFileSync(cert);
    },
});
const node = () => env.nodes[0];

it('a node with tls_cert and tls_key serves https: /healthz and the API with HSTS', async () => {
    const n = await env.addNode(['--tls-cert', cert, '--tls-key', key]);
    assert.match(n.httpUrl, /^https:/);
    assert.match(n.log.text(), /chatdeskd listening port=\d+ .*tls=on/);
    const health = await env.http(0, '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.json.status, 'ok');
    // answers of every kind carry it: success, an error of the API, an unknown path
    for (const [p, status] of [['/healthz', 200], ['/api/v1/no-such-route', 401], ['/no-such-file', 404]]) {
        const r = await env.http(0, p);
        assert.equal(r.status, status, `${p}: HTTP ${r.status}`);
        assert.equal(r.headers['strict-transport-security'], 'max-age=63072000', `${p} has HSTS`);
    }
    const login = await env.http(0, '/api/v1/login', { method: 'POST', body: { email: 'x@example.com', password: 'wrong-password' } });
    assert.equal(login.status, 401);
    assert.equal(login.headers['strict-transport-security'], 'max-age=63072000');
});

it('plain HTTP to the TLS port gets no answer (the connection is closed)', async () => {
    await assert.rejects(httpRequest(`http://127.0.0.1:${node().port}/healthz`, { timeout: 3000 * SCALE }));
    // a plain-HTTP server does not answer: still healthy over TLS
    assert.equal((await env.http(0, '/healthz')).status, 200);
});

it('a chat works over wss:// on /ws/visitor and /ws/agent', async () => {
    assert.match(node().url, /^wss:/);
    const { a, v, cid } = await env.chat();
    const sent = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `c-${rnd(4)}`, body: 'over TLS' });
    await a.waitFor((f) => f.type === 'message.created' && f.message?.id === sent.message.id, { what: 'agent gets the message' });
    const back = await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `c-${rnd(4)}`, body: 'answer' });
    await v.waitFor((f) => f.type === 'message.created' && f.message?.id === back.message.id, { what: 'visitor gets the answer' });
});

/** A TLS handshake with the node: resolves {protocol, cipher} or rejects with the error. */
function handshake(opts) {
    return new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: node().port, ca: env.tlsCa, servername: 'localhost', ...opts }, () => {
            const r = { protocol: s.getProtocol(), cipher: s.getCipher().name };
            s.end();
            resolve(r);
        });
        s.setTimeout(5000 * SCALE, () => s.destroy(new Error('handshake timeout')));
        s.on('error', reject);
    });
}

it('TLS 1.2 and 1.3 are accepted; TLS 1.0 and 1.1 are refused by the server', async () => {
    assert.equal((await handshake({ minVersion: 'TLSv1.3' })).protocol, 'TLSv1.3');
    assert.equal((await handshake({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' })).protocol, 'TLSv1.2');
    for (const v of ['TLSv1', 'TLSv1.1']) {
        // SECLEVEL=0 lets this client offer the old versions; the server's alert refuses
        const e = await handshake({ minVersion: v, maxVersion: v, ciphers: 'DEFAULT:@SECLEVEL=0' }).then(
            (r) => assert.fail(`${v} accepted: ${JSON.stringify(r)}`),
            (err) => err,
        );
        assert.match(e.code ?? e.message, /ALERT_PROTOCOL_VERSION|alert protocol version/i, `${v}: ${e.message}`);
    }
});

it('TLS 1.2 offers only ECDHE suites with AEAD: RSA key exchange, DHE and CBC are refused', async () => {
    const ok = await handshake({ maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' });
    assert.equal(ok.cipher, 'ECDHE-RSA-AES128-GCM-SHA256');
    for (const c of ['AES128-GCM-SHA256', 'AES256-SHA256', 'AES128-SHA', 'DHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384']) {
        const e = await handshake({ maxVersion: 'TLSv1.2', ciphers: `${c}:@SECLEVEL=0` }).then(
            (r) => assert.fail(`${c} accepted: ${JSON.stringify(r)}`),
            (err) => err,
        );
        assert.match(e.code ?? e.message, /HANDSHAKE_FAILURE|handshake failure/i, `${c}: ${e.message}`);
    }
});

it('sslscan: TLS 1.2/1.3 only, forward-secret AEAD suites only, no renegotiation, no compression', async () => {
    const out = await new Promise((resolve, reject) =>
        execFile('sslscan', ['--no-colour', '--no-heartbleed', `127.0.0.1:${node().port}`], { timeout: 120_000 * SCALE }, (err, stdout, stderr) => {
            if (err?.code === 'ENOENT') reject(new Error('sslscan is not installed (scripts/test installs it: apt-get install sslscan)'));
            else if (err) reject(new Error(`sslscan failed: ${err.message}\n${stderr}`));
            else resolve(stdout);
        }),
    );
    for (const v of ['SSLv2', 'SSLv3', 'TLSv1.0', 'TLSv1.1']) assert.match(out, new RegExp(`^${v.replace('.', '\\.')}\\s+disabled`, 'm'), `${v} disabled`);
    for (const v of ['TLSv1.2', 'TLSv1.3']) assert.match(out, new RegExp(`^${v.replace('.', '\\.')}\\s+enabled`, 'm'), `${v} enabled`);
    assert.match(out, /Session renegotiation not supported/);
    const suites = [...out.matchAll(/^(?:Preferred|Accepted)\s+(TLSv1\.[0-3]|SSLv\d)\s+\d+ bits\s+(\S+)/gm)].map((m) => [m[1], m[2]]);
    assert.ok(suites.length >= 4, `sslscan listed the suites:\n${out}`);
    for (const [v, c] of suites) {
        const fs13 = v === 'TLSv1.3' && /^TLS_(AES_(128|256)_GCM|CHACHA20_POLY1305)_SHA(256|384)$/.test(c);
        const fs12 = v === 'TLSv1.2' && /^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/.test(c);
        assert.ok(fs13 || fs12, `${v} ${c} is not a forward-secret AEAD suite`);
    }
});

/** Runs chatdeskd with the given flags until it exits; resolves {code, out}. */
function startFails(args) {
    return new Promise((resolve) => {
        execFile(chatdeskdPath(), ['--port', '0', '--bind', '127.0.0.1', '--redis', env.redis.url, ...args], { timeout: 20_000 * SCALE },
            (err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr }));
    });
}

it('start-up refuses one of the two files alone, a missing file, a file that is no PEM key, a key of another certificate', async () => {
    const only = await startFails(['--tls-cert', cert]);
    assert.equal(only.code, 2, only.out);
    assert.match(only.out, /tls_cert and tls_key: give both/);
    const onlyKey = await startFails(['--tls-key', key]);
    assert.equal(onlyKey.code, 2, onlyKey.out);
    assert.match(onlyKey.out, /tls_cert and tls_key: give both/);
    const missing = path.join(env.dir, 'missing.pem');
    const m = await startFails(['--tls-cert', missing, '--tls-key', key]);
    assert.equal(m.code, 2, m.out);
    assert.match(m.out, /tls_cert: cannot read .*missing\.pem: No such file/);
    const mk = await startFails(['--tls-cert', cert, '--tls-key', missing]);
    assert.equal(mk.code, 2, mk.out);
    assert.match(mk.out, /tls_key: cannot read .*missing\.pem/);
    const garbage = path.join(env.dir, 'garbage.pem');
    fs.writeFileSync(garbage, 'not a key\n');
    const g = await startFails(['--tls-cert', cert, '--tls-key', garbage]);
    assert.equal(g.code, 2, g.out);
    assert.match(g.out, /tls_cert and tls_key must be a PEM certificate and its private key/);
    const other = path.join(env.dir, 'other-key.pem'); // a key that is not the certificate's
    execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', other], { stdio: 'ignore' });
    const o = await startFails(['--tls-cert', cert, '--tls-key', other]);
    assert.equal(o.code, 2, o.out);
    assert.match(o.out, /tls_key is not the private key of tls_cert/);
    assert.doesNotMatch(g.out + m.out + o.out, /chatdeskd listening/);
    // the node that runs is unaffected
    assert.equal((await env.http(0, '/healthz')).status, 200);
});
