// Secrets (security issue, finding 7): a password in the Redis URL never reaches stdout or
// the log (it is printed as ***), and an identity secret can be given on stdin
// (`--identity-secret -`), which scripts/run does instead of passing it on the command
// line where every user of the machine can read it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { useEnv, it, assert, rnd, hmacHex, freePort, waitUntil, chatdeskdPath, REPO_ROOT, sleep } from './harness.mjs';

const env = useEnv({ nodes: 1 });

function run(cmd, args) {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.out = '';
    p.stdout.on('data', (d) => (p.out += d));
    p.stderr.on('data', (d) => (p.out += d));
    return p;
}

it('the Redis password in the URL is printed as ***, on stdout and in the log', async () => {
    const password = `pw${rnd(8)}`;
    const port = await freePort();
    const redis = run('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--requirepass', password, '--save', '', '--appendonly', 'no']);
    let node;
    try {
        await sleep(300);
        node = run(chatdeskdPath(), ['--port', '0', '--bind', '127.0.0.1', '--node-id', 'sec', '--log-level', 'debug',
            '--redis', `redis://:${password}@127.0.0.1:${port}/0`]);
        await waitUntil(() => /chatdeskd listening port=\d+/.test(node.out) && /redis up/.test(node.out), { what: 'node listening with redis up' });
        assert.ok(!node.out.includes(password), `the password leaked:\n${node.out}`);
        assert.match(node.out, /redis=redis:\/\/\*\*\*@127\.0\.0\.1:/);
    } finally {
        node?.kill('SIGKILL');
        redis.kill('SIGKILL');
    }
});

it('an identity secret can be given on stdin; scripts/run does so', async () => {
    const secret = `sec-${rnd(12)}`;
    const key = `sx_${rnd(3)}`;
    const r = await env.adminRaw(['site-add', '--key', key, '--name', 'S', '--origin', 'http://localhost:3000', '--identity-secret', '-'], { input: `${secret}\n` });
    assert.equal(r.code, 0, r.stderr);
    await env.waitSiteKnown(key, 'http://localhost:3000');
    const v = await env.visitor(0, { site: key, user: { id: 'crm-1', hash: hmacHex(secret, 'crm-1') } });
    assert.equal(v.welcome.visitor.user_id, 'crm-1');
    const script = fs.readFileSync(path.join(REPO_ROOT, 'scripts/run'), 'utf8');
    assert.doesNotMatch(script, /--identity-secret "\$/, 'scripts/run passes no secret as an argument');
    assert.match(script, /--identity-secret -/);
});

it('a client cannot set an agent password hash (pw_hash in a body or the query is dropped)', async () => {
    const site = await env.addSite({ probe: false });
    const boss = await env.addAgent({ site, role: 'admin' });
    const ag = await env.addAgent({ site });
    const token = await env.login(0, boss.email, boss.password);
    // the hash of "attacker chosen" (any valid Argon2id PHC string would do)
    const forged = '$argon2id$v=19$m=19456,t=2,p=1$W72lNqegbxMC2pj3MfHFag$9MJERkJJ3YsJ/t0+bPzNnd8VrlucxgsQyzHAQnjSiLw';
    const before = await env.redis.cmd('HGET', `cd:{a}:agent:${ag.id}`, 'pw');
    assert.match(before, /^\$argon2id/);
    for (const p of [`/api/v1/admin/agents/${ag.id}`, `/api/v1/admin/agents/${ag.id}?pw_hash=${encodeURIComponent(forged)}`]) {
        const r = await env.http(0, p, { method: 'PATCH', body: p.includes('?') ? { name: 'Same' } : { pw_hash: forged }, headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 200, r.text);
        assert.equal(await env.redis.cmd('HGET', `cd:{a}:agent:${ag.id}`, 'pw'), before, `pw unchanged after ${p}`);
    }
    assert.ok((await env.login(0, ag.email, ag.password)).length > 0);
});
