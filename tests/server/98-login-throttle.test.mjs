// Login throttling (security issue, finding 4; RELIABILITY 4.4): an account gets
// login_fail_max failed logins per login_fail_window_s, then 429 with Retry-After on every
// node (the count is in Redis), even with the right password and for an unknown e-mail;
// one address gets login_rate_per_ip logins a minute (429 with Retry-After) while another
// address is served; at most hash_queue_max password checks wait for the thread pool (503
// with Retry-After beyond); new passwords are at least 12 bytes.
import { useEnv, it, assert, rnd, httpRequest } from './harness.mjs';

const env = useEnv({ nodes: 2, nodeArgs: [[], ['--login-rate-per-ip', '20']] });

const login = (node, email, password, localAddress) =>
    httpRequest(env.nodes[node].httpUrl + '/api/v1/login', { method: 'POST', body: { email, password }, localAddress });

it('five failures lock the account for its window on every node, the right password too', async () => {
    const site = await env.addSite({ probe: false });
    const ag = await env.addAgent({ site });
    for (let i = 0; i < 5; i++) {
        const r = await login(0, ag.email, 'wrong password ' + i);
        assert.equal(r.status, 401, `failure ${i + 1}: ${r.text}`);
    }
    for (const node of [0, 1]) {
        const r = await login(node, ag.email, ag.password, node ? '127.0.0.9' : undefined);
        assert.equal(r.status, 429, `node ${node}: the sixth attempt is refused (${r.status} ${r.text})`);
        assert.equal(r.json.error.code, 'rate_limited');
        const ra = Number(r.headers['retry-after']);
        assert.ok(ra > 800 && ra <= 900, `Retry-After ${r.headers['retry-after']}`);
    }
    // an unknown e-mail is counted the same way (no existence oracle)
    const ghost = `ghost_${rnd(3)}@example.com`;
    for (let i = 0; i < 5; i++) assert.equal((await login(0, ghost, 'guess ' + i)).status, 401);
    assert.equal((await login(0, ghost, 'guess 6')).status, 429);
    // a success resets the count: another agent fails four times, logs in, fails again
    const bg = await env.addAgent({ site });
    for (let i = 0; i < 4; i++) assert.equal((await login(0, bg.email, 'nope ' + i)).status, 401);
    assert.equal((await login(0, bg.email, bg.password)).status, 200);
    for (let i = 0; i < 5; i++) assert.equal((await login(0, bg.email, 'nope again ' + i)).status, 401);
    assert.equal((await login(0, bg.email, bg.password)).status, 429);
    const m = await httpRequest(env.nodes[0].httpUrl + '/metrics');
    assert.match(m.text, /chatdesk_login_refused_total\{by="account"\} [1-9]/);
});

it('one address gets 20 logins a minute; another address is served meanwhile', async () => {
    const site = await env.addSite({ probe: false });
    const ag = await env.addAgent({ site });
    const statuses = [];
    let retry;
    for (let i = 0; i < 25; i++) {
        const r = await login(1, `x_${rnd(4)}@example.com`, 'some guess', '127.0.0.2');
        statuses.push(r.status);
        if (r.status === 429) retry = r;
    }
    const served = statuses.filter((s) => s === 401).length;
    assert.ok(served >= 20 && served <= 21, `${served} attempts served: ${statuses.join(',')}`);
    assert.ok(retry, 'the flood was refused');
    assert.equal(retry.json.error.code, 'rate_limited');
    assert.ok(Number(retry.headers['retry-after']) >= 1);
    const other = await login(1, ag.email, ag.password, '127.0.0.3');
    assert.equal(other.status, 200, other.text);
});

it('at most hash_queue_max password checks wait; the rest get 503 with Retry-After', async () => {
    await env.addNode(['--hash-queue-max', '2'], 'n3');
    const node = env.nodes.length - 1;
    const rs = await Promise.all(Array.from({ length: 24 }, (_, i) => login(node, `q${i}_${rnd(3)}@example.com`, 'a guess')));
    const codes = rs.map((r) => r.status);
    const busy = rs.filter((r) => r.status === 503);
    assert.ok(busy.length > 0, `some were refused: ${codes.join(',')}`);
    assert.ok(codes.filter((c) => c === 401).length >= 2, `some were checked: ${codes.join(',')}`);
    assert.ok(codes.every((c) => c === 401 || c === 503), codes.join(','));
    assert.equal(busy[0].json.error.code, 'unavailable');
    assert.equal(busy[0].headers['retry-after'], '1');
});

it('a new password is at least 12 bytes (API and admin CLI)', async () => {
    const site = await env.addSite({ probe: false });
    const boss = await env.addAgent({ site, role: 'admin' });
    const token = await env.login(0, boss.email, boss.password);
    const call = (method, p, body) =>
        httpRequest(env.nodes[0].httpUrl + p, { method, body, headers: { authorization: `Bearer ${token}` } });
    let r = await call('POST', '/api/v1/admin/agents', { email: `n_${rnd(3)}@example.com`, password: 'eleven byte', name: 'N', sites: [site.key] });
    assert.equal(r.status, 400, r.text);
    assert.match(r.json.error.message, /12/);
    const rule = r.json.error.message;
    r = await call('POST', '/api/v1/admin/agents', { email: `n_${rnd(3)}@example.com`, password: 'twelve bytes', name: 'N', sites: [site.key] });
    assert.equal(r.status, 201, r.text);
    r = await call('PATCH', `/api/v1/admin/agents/${r.json.agent.id}`, { password: 'short pass' });
    assert.equal(r.status, 400, r.text);
    const cli = await env.adminRaw(['agent-add', '--email', `c_${rnd(3)}@example.com`, '--password', 'eleven byte', '--name', 'C', '--site', site.key]);
    assert.notEqual(cli.code, 0);
    assert.ok(cli.stderr.startsWith(`chatdeskd admin: ${rule}\n`), cli.stderr); // one rule, one message
});
