// The admin CLI (`chatdeskd admin ...`) against a real redis-server: what it writes
// (docs/keyspace.md), what it prints, its exit codes (0 ok, 1 runtime, 2 usage),
// atomicity under concurrent runs, and that listings never show secrets.
import net from 'node:net';
import { useEnv, it, assert, rnd, waitUntil } from './harness.mjs';

const env = useEnv({ nodes: 0 });
const P = 'cd:';

const key = (tag = 'k') => `${tag}_${rnd(4)}`;
const email = () => `u_${rnd(4)}@example.com`;

async function siteAdd(k, extra = []) {
    return env.admin('site-add', '--key', k, '--name', `Site ${k}`, '--origin', 'https://example.com', ...extra);
}

function agentArgs({ mail = email(), sites = [], extra = [] } = {}) {
    const args = ['agent-add', '--email', mail, '--password', 'correct horse', '--name', 'Ann Agent'];
    for (const s of sites) args.push('--site', s);
    return [...args, ...extra];
}

/** A raw SUBSCRIBE connection that records everything it receives. */
async function subscribe(channel) {
    const sock = net.createConnection(env.redis.sock);
    let data = '';
    sock.on('data', (d) => (data += d.toString('utf8')));
    sock.on('error', () => {});
    await new Promise((res, rej) => {
        sock.once('connect', res);
        sock.once('error', rej);
    });
    sock.write(`*2\r\n$9\r\nSUBSCRIBE\r\n$${Buffer.byteLength(channel)}\r\n${channel}\r\n`);
    await waitUntil(() => data.includes('subscribe'), { what: 'SUBSCRIBE confirmation' });
    return {
        get data() {
            return data;
        },
        close: () => sock.destroy(),
    };
}

function assertUsage(r, what) {
    assert.equal(r.code, 2, `${what}: exit 2 expected, got ${r.code}: ${r.stderr}`);
    assert.equal(r.stdout, '', `${what}: nothing on stdout`);
}

it('help and --help print the usage on stdout and exit 0', async () => {
    for (const args of [['help'], ['--help'], ['site-add', '--help']]) {
        const r = await env.adminRaw(args);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stdout, /Usage: chatdeskd .*admin <command>/);
        for (const c of ['site-add', 'site-set', 'team-add', 'agent-add', 'agent-set', 'site-list', 'team-list', 'agent-list']) {
            assert.ok(r.stdout.includes(c), c);
        }
    }
});

it('site-add writes the site hash and index, publishes ch:sites and prints the record', async () => {
    const k = key('site');
    const sub = await subscribe(`${P}ch:sites`);
    try {
        const before = Date.now();
        const out = await env.admin('site-add', '--key', k, '--name', 'Acme Support', '--origin', 'https://acme.example',
            '--origin', 'http://localhost:3000', '--origin', 'https://acme.example', '--identity-secret', 's3cret-s3cret-s3cret');
        assert.deepEqual(out, {
            key: k,
            name: 'Acme Support',
            origins: ['https://acme.example', 'http://localhost:3000'],
            identity_verification: true,
        });
        const h = await env.redis.cmd('HGETALL', `${P}{s:${k}}:site`);
        const m = Object.fromEntries(Array.from({ length: h.length / 2 }, (_, i) => [h[2 * i], h[2 * i + 1]]));
        assert.equal(m.key, k);
        assert.equal(m.name, 'Acme Support');
        assert.deepEqual(JSON.parse(m.origins), ['https://acme.example', 'http://localhost:3000']);
        assert.equal(m.identity_secret, 's3cret-s3cret-s3cret');
        assert.ok(Number(m.created_at) >= before - 1000 && Number(m.created_at) <= Date.now() + 1000, m.created_at);
        assert.equal(await env.redis.cmd('SISMEMBER', `${P}{g}:sites`, k), 1);
        await waitUntil(() => sub.data.includes(`"key":"${k}"`), { what: `ch:sites message ${k}` });
    } finally {
        sub.close();
    }
});

it('site-add without a secret: identity verification off, empty identity_secret', async () => {
    const k = key('plain');
    const out = await siteAdd(k);
    assert.equal(out.identity_verification, false);
    assert.equal(await env.redis.cmd('HGET', `${P}{s:${k}}:site`, 'identity_secret'), '');
});

it('site-add accepts ports, IP literals and UTF-8 names', async () => {
    const k = key('ports');
    const out = await env.admin('site-add', '--key', k, '--name', 'Café ☕', '--origin', 'https://shop.example.com:8443',
        '--origin=http://127.0.0.1:8080', '--origin', 'http://[::1]:3000');
    assert.equal(out.name, 'Café ☕');
    assert.deepEqual(out.origins, ['https://shop.example.com:8443', 'http://127.0.0.1:8080', 'http://[::1]:3000']);
});

it('a duplicate site key exits 1 and leaves the first record alone', async () => {
    const k = key('dup');
    await siteAdd(k);
    const r = await env.adminRaw(['site-add', '--key', k, '--name', 'Other', '--origin', 'https://other.example']);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(`site ${k} already exists`), r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(await env.redis.cmd('HGET', `${P}{s:${k}}:site`, 'name'), `Site ${k}`);
});

it('concurrent site-add of one key: exactly one wins', async () => {
    const k = key('race');
    const runs = await Promise.all(
        Array.from({ length: 6 }, (_, i) => env.adminRaw(['site-add', '--key', k, '--name', `N${i}`, '--origin', 'https://r.example'])),
    );
    assert.deepEqual(runs.map((r) => r.code).sort(), [0, 1, 1, 1, 1, 1], runs.map((r) => r.stderr).join(''));
    assert.equal(await env.redis.cmd('SISMEMBER', `${P}{g}:sites`, k), 1);
});

it('bad origins are refused with a clear message and nothing is written', async () => {
    const bad = [
        'https://example.com/',
        'https://example.com/path',
        'https://example.com?q=1',
        'https://example.com#f',
        'HTTPS://example.com',
        'https://Example.com',
        'ftp://example.com',
        'example.com',
        'https://',
        'https://example.com:',
        'https://example.com:99999',
        'https://example.com:443',
        'http://example.com:80',
        'https://user@example.com',
        'https://exa mple.com',
        'https://a..b',
    ];
    for (const o of bad) {
        const k = key('bad');
        const r = await env.adminRaw(['site-add', '--key', k, '--name', 'X', '--origin', 'https://ok.example', '--origin', o]);
        assertUsage(r, o);
        assert.ok(r.stderr.includes(`origin must look like https://example.com[:port]: got ${o}`), `${o}: ${r.stderr}`);
        assert.equal(await env.redis.cmd('EXISTS', `${P}{s:${k}}:site`), 0, o);
    }
});

it('site-add refuses bad keys, names and short secrets (exit 2)', async () => {
    const cases = [
        ['--key', 'has space', '--name', 'X', '--origin', 'https://a.example'],
        ['--key', 'x'.repeat(65), '--name', 'X', '--origin', 'https://a.example'],
        ['--key', 'k/1', '--name', 'X', '--origin', 'https://a.example'],
        ['--key', key(), '--name', '', '--origin', 'https://a.example'],
        ['--key', key(), '--name', 'n'.repeat(201), '--origin', 'https://a.example'],
        ['--key', key(), '--name', 'X', '--origin', 'https://a.example', '--identity-secret', 'short'],
    ];
    for (const c of cases) assertUsage(await env.adminRaw(['site-add', ...c]), c.join(' '));
    const k = key('maxlen');
    const ok = await env.admin('site-add', '--key', k, '--name', 'n'.repeat(200), '--origin', 'https://a.example');
    assert.equal(ok.name.length, 200);
});

it('agent-add writes the agent, the e-mail index and the site sets', async () => {
    const s1 = key('as');
    const s2 = key('as');
    await siteAdd(s1);
    await siteAdd(s2);
    // each team needs to exist on one of the agent's sites, not on all of them
    await env.admin('team-add', '--site', s1, '--key', 'sales', '--name', 'Sales');
    await env.admin('team-add', '--site', s2, '--key', 'vip', '--name', 'VIP');
    const mail = `Mixed.Case_${rnd(3)}@Example.COM`;
    const out = await env.admin(...agentArgs({ mail, sites: [s1, s2, s1], extra: ['--team', 'sales', '--team', 'vip', '--role', 'admin'] }));
    assert.match(out.id, /^a_[A-Za-z0-9_-]{22}$/);
    assert.deepEqual(out, {
        id: out.id,
        email: mail.toLowerCase(),
        name: 'Ann Agent',
        role: 'admin',
        sites: [s1, s2],
        teams: ['sales', 'vip'],
    });
    assert.equal(await env.redis.cmd('GET', `${P}{a}:agent:email:${mail.toLowerCase()}`), out.id);
    const h = await env.redis.cmd('HGETALL', `${P}{a}:agent:${out.id}`);
    const m = Object.fromEntries(Array.from({ length: h.length / 2 }, (_, i) => [h[2 * i], h[2 * i + 1]]));
    assert.equal(m.id, out.id);
    assert.equal(m.email, mail.toLowerCase());
    assert.equal(m.name, 'Ann Agent');
    assert.equal(m.role, 'admin');
    assert.deepEqual(JSON.parse(m.sites), [s1, s2]);
    assert.deepEqual(JSON.parse(m.teams), ['sales', 'vip']);
    assert.match(m.pw, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.ok(!m.pw.includes('correct horse'));
    assert.equal(m.status, 'offline');
    assert.equal(m.max_chats, '5');
    assert.ok(Number(m.created_at) > 0);
    assert.equal(await env.redis.cmd('SISMEMBER', `${P}{a}:agents`, out.id), 1);
    assert.equal(await env.redis.cmd('SISMEMBER', `${P}{s:${s1}}:agents`, out.id), 1);
    assert.equal(await env.redis.cmd('SISMEMBER', `${P}{s:${s2}}:agents`, out.id), 1);
});

it('agent-add defaults: role agent, no teams, max-chats as given', async () => {
    const s = key('def');
    await siteAdd(s);
    const out = await env.admin(...agentArgs({ sites: [s], extra: ['--max-chats', '100'] }));
    assert.equal(out.role, 'agent');
    assert.deepEqual(out.teams, []);
    assert.equal(await env.redis.cmd('HGET', `${P}{a}:agent:${out.id}`, 'max_chats'), '100');
});

it('agent-add --password - reads the password from stdin', async () => {
    const s = key('stdin');
    await siteAdd(s);
    const r = await env.adminRaw(agentArgs({ sites: [s] }).map((a) => (a === 'correct horse' ? '-' : a)), {
        input: 'from-stdin-pw\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(await env.redis.cmd('HGET', `${P}{a}:agent:${r.json.id}`, 'pw'), /^\$argon2id\$/);
});

it('a duplicate e-mail (any case) exits 1; an unknown site exits 2 (a value the operation refuses) and writes nothing', async () => {
    const s = key('dupe');
    await siteAdd(s);
    const mail = email();
    await env.admin(...agentArgs({ mail, sites: [s] }));
    const r = await env.adminRaw(agentArgs({ mail: mail.toUpperCase(), sites: [s] }));
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(`agent with e-mail ${mail} already exists`), r.stderr);

    const mail2 = email();
    const before = await env.redis.cmd('SCARD', `${P}{a}:agents`);
    const u = await env.adminRaw(agentArgs({ mail: mail2, sites: [s, 'nope_site'] }));
    assert.equal(u.code, 2, u.stderr);
    assert.ok(u.stderr.includes('unknown site nope_site'), u.stderr);
    assert.equal(await env.redis.cmd('EXISTS', `${P}{a}:agent:email:${mail2}`), 0);
    assert.equal(await env.redis.cmd('SCARD', `${P}{a}:agents`), before);
    assert.equal(await env.redis.cmd('SCARD', `${P}{s:${s}}:agents`), 1);
});

it('concurrent agent-add of one e-mail: exactly one wins', async () => {
    const s = key('arace');
    await siteAdd(s);
    const mail = email();
    const runs = await Promise.all(Array.from({ length: 4 }, () => env.adminRaw(agentArgs({ mail, sites: [s] }))));
    assert.deepEqual(runs.map((r) => r.code).sort(), [0, 1, 1, 1], runs.map((r) => r.stderr).join(''));
    assert.equal(await env.redis.cmd('SCARD', `${P}{s:${s}}:agents`), 1);
});

it('agent-add refuses bad values (exit 2)', async () => {
    const s = key('vals');
    await siteAdd(s);
    const base = (over) => {
        const o = { '--email': email(), '--password': 'long enough!', '--name': 'N', '--site': s, ...over };
        return ['agent-add', ...Object.entries(o).flatMap(([k, v]) => (v === undefined ? [] : [k, v]))];
    };
    const cases = [
        { '--email': 'no-at-sign' },
        { '--email': 'two@@example.com' },
        { '--email': 'sp ace@example.com' },
        { '--email': '@example.com' },
        { '--email': `${'x'.repeat(250)}@e.co` },
        { '--password': 'short' },
        { '--password': 'p'.repeat(11) },
        { '--password': 'p'.repeat(129) },
        { '--name': '' },
        { '--role': 'boss' },
        { '--max-chats': '0' },
        { '--max-chats': '101' },
        { '--max-chats': '5x' },
        { '--site': 'bad key' },
    ];
    for (const c of cases) assertUsage(await env.adminRaw(base(c)), JSON.stringify(c));
    assert.equal((await env.adminRaw(base({ '--password': 'p'.repeat(128) }))).code, 0);
    assert.equal((await env.adminRaw(base({ '--password': 'p'.repeat(12) }))).code, 0);
});

it('site-add in single-slot steps: a key indexed by a run that stopped before its record is completed by the next run', async () => {
    // step 1 (the sites set, {g}) done, step 2 (the record, {s:<site>}) not: what a
    // site-add stopped between its two calls leaves behind
    const k = key('half');
    await env.redis.cmd('SADD', `${P}{g}:sites`, k);
    const listed = await env.adminRaw(['site-list', '--json']);
    assert.ok(!listed.json.some((x) => x.key === k), 'an index entry without a record is skipped');
    const out = await siteAdd(k);
    assert.equal(out.key, k);
    assert.equal(await env.redis.cmd('HGET', `${P}{s:${k}}:site`, 'key'), k);
    assert.ok((await env.adminRaw(['site-list', '--json'])).json.some((x) => x.key === k));
    // and a refused value writes neither
    const bad = key('bad');
    assert.equal((await env.adminRaw(['site-add', '--key', bad, '--name', 'X', '--origin', 'ftp://x'])).code, 2);
    assert.equal(await env.redis.cmd('SISMEMBER', `${P}{g}:sites`, bad), 0);
});

it('site-list: a table without secrets, and a JSON array with --json', async () => {
    const k = key('list');
    const secret = `secret-${rnd(12)}`;
    await env.admin('site-add', '--key', k, '--name', 'Listed Site', '--origin', 'https://list.example', '--identity-secret', secret);
    const t = await env.adminRaw(['site-list']);
    assert.equal(t.code, 0, t.stderr);
    const lines = t.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^KEY\s+NAME\s+IDENTITY\s+ASSIGN\s+CLOSE\s+CREATED\s+CATEGORY-TEAMS\s+ORIGINS$/);
    const row = lines.find((l) => l.startsWith(`${k} `));
    assert.ok(row, t.stdout);
    assert.match(row, /Listed Site\s+on\s+auto\s+1d\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+-\s+https:\/\/list\.example$/);
    assert.equal(row.indexOf('Listed Site'), lines[0].indexOf('NAME'), 'columns are aligned');
    assert.ok(!t.stdout.includes(secret));

    const j = await env.adminRaw(['site-list', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.ok(Array.isArray(j.json));
    assert.ok(!j.stdout.includes(secret));
    const rec = j.json.find((s) => s.key === k);
    assert.deepEqual(rec, {
        key: k,
        name: 'Listed Site',
        origins: ['https://list.example'],
        identity_verification: true,
        auto_assign: true,
        category_teams: {},
        auto_close_s: 86400,
        ack_text_en: '',
        ack_text_zh: '',
        created_at: rec.created_at,
    });
    const keys = j.json.map((s) => s.key);
    assert.deepEqual(keys, [...keys].sort(), 'sorted by key');
});

it('agent-list: all agents or one site, table or JSON, never the password hash', async () => {
    const s = key('al');
    const other = key('al');
    await siteAdd(s);
    await siteAdd(other);
    await env.admin('team-add', '--site', s, '--key', 'support', '--name', 'Support');
    const a1 = await env.admin(...agentArgs({ mail: `zed_${rnd(3)}@example.com`, sites: [s], extra: ['--team', 'support'] }));
    const a2 = await env.admin(...agentArgs({ mail: `amy_${rnd(3)}@example.com`, sites: [s, other], extra: ['--role', 'admin'] }));
    const a3 = await env.admin(...agentArgs({ sites: [other] }));

    const j = await env.adminRaw(['agent-list', '--site', s, '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(j.json.map((a) => a.id), [a2.id, a1.id], 'the site agents, sorted by e-mail');
    const r1 = j.json[1];
    assert.deepEqual(r1, {
        id: a1.id,
        email: a1.email,
        name: 'Ann Agent',
        role: 'agent',
        sites: [s],
        teams: ['support'],
        status: 'offline',
        max_chats: 5,
        disabled: false,
        created_at: r1.created_at,
    });
    assert.ok(!/argon2|"pw"/.test(j.stdout));

    const all = await env.adminRaw(['agent-list', '--json']);
    assert.equal(all.code, 0, all.stderr);
    for (const a of [a1, a2, a3]) assert.ok(all.json.some((x) => x.id === a.id), a.id);

    const t = await env.adminRaw(['agent-list', '--site', s]);
    assert.equal(t.code, 0, t.stderr);
    const lines = t.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^ID\s+EMAIL\s+NAME\s+ROLE\s+STATUS\s+MAX\s+SITES\s+TEAMS$/);
    assert.equal(lines.length, 3, t.stdout);
    assert.ok(lines[1].startsWith(a2.id) && lines[1].includes(`${s}, ${other}`), lines[1]);
    assert.ok(lines[2].startsWith(a1.id) && lines[2].endsWith('support'), lines[2]);
    assert.ok(!/argon2/.test(t.stdout));

    const u = await env.adminRaw(['agent-list', '--site', 'no_such_site']);
    assert.equal(u.code, 1, u.stderr);
    assert.ok(u.stderr.includes('unknown site no_such_site'), u.stderr);
});

it('usage errors exit 2 with the usage on stderr', async () => {
    const cases = [
        [],
        ['frobnicate'],
        ['site-add', '--name', 'X', '--origin', 'https://a.example'],
        ['site-add', '--key', key(), '--name', 'X'],
        ['site-add', '--key', key(), '--name', 'X', '--origin'],
        ['site-add', '--key', '--name', 'X', '--origin', 'https://a.example'],
        ['site-add', '--key', key(), '--name', 'X', '--origin', 'https://a.example', '--bogus', '1'],
        ['site-add', '--key', key(), '--name', 'X', '--origin', 'https://a.example', 'stray'],
        ['site-add', '--key', 'a', '--key', 'b', '--name', 'X', '--origin', 'https://a.example'],
        ['site-list', '--email', 'a@b.c'],
        ['site-list', '--json=yes'],
        ['agent-list', '--site'],
        ['agent-add', '--email', email(), '--password', 'long enough!', '--name', 'N'],
        ['site-list', '--port', 'notanumber'],
    ];
    for (const c of cases) {
        const r = await env.adminRaw(c);
        assertUsage(r, c.join(' ') || '(no command)');
        assert.ok(r.stderr.includes('Usage: chatdeskd'), `${c.join(' ')}: ${r.stderr}`);
    }
});

it('config flags among the options: --prefix and --redis', async () => {
    const k = key('pfx');
    const out = await env.admin('site-add', '--prefix', 'other:', '--key', k, '--name', 'P', '--origin', 'https://p.example');
    assert.equal(out.key, k);
    assert.equal(await env.redis.cmd('SISMEMBER', 'other:{g}:sites', k), 1);
    assert.equal(await env.redis.cmd('EXISTS', `other:{s:${k}}:site`), 1);
    assert.equal(await env.redis.cmd('EXISTS', `${P}{s:${k}}:site`), 0);
    const l = await env.adminRaw(['site-list', '--json', `--prefix=other:`]);
    assert.deepEqual(l.json.map((s) => s.key), [k]);

    const db = await env.adminRaw(['site-list', '--json', '--redis', `${env.redis.url}?db=5`]);
    assert.equal(db.code, 0, db.stderr);
    assert.deepEqual(db.json, []);
});

it('an unreachable Redis exits 1 with "cannot connect to Redis at ..."', async () => {
    const sock = `${env.dir}/nowhere.sock`;
    const r = await env.adminRaw(['site-list', '--redis', `unix:${sock}`]);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(r.stderr.includes(`cannot connect to Redis at ${sock}: `), r.stderr);

    const t = await env.adminRaw(['site-add', '--key', key(), '--name', 'X', '--origin', 'https://a.example', '--redis',
        'redis://127.0.0.1:1/0']);
    assert.equal(t.code, 1, t.stderr);
    assert.match(t.stderr, /cannot connect to Redis at 127\.0\.0\.1:1: \S/);
});
