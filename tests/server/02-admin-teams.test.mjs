// The admin CLI's team and settings commands against a real redis-server: team-add /
// team-list, agent-add --team, agent-set and site-set (what they write per
// docs/keyspace.md, the site.changed notice on ch:sites, exit codes 0 ok / 1 runtime /
// 2 usage or bad value), the routing settings in the listings, and that secrets never
// print.
import net from 'node:net';
import { useEnv, it, assert, rnd, waitUntil, sleep } from './harness.mjs';

const env = useEnv({ nodes: 0 });
const P = 'cd:';

const key = (tag = 'k') => `${tag}_${rnd(4)}`;
const email = () => `t_${rnd(4)}@example.com`;
const changed = (site) => `0 a -\n{"type":"site.changed","key":"${site}"}`;
const agentChanged = (id) => `0 a -\n{"type":"agent.changed","id":"${id}"}`;

async function siteAdd(k, extra = []) {
    return env.admin('site-add', '--key', k, '--name', `Site ${k}`, '--origin', 'https://example.com', ...extra);
}

async function teamAdd(site, team, name = `Team ${team}`) {
    return env.admin('team-add', '--site', site, '--key', team, '--name', name);
}

async function agentAdd({ mail = email(), sites = [], teams = [], extra = [] } = {}) {
    const args = ['agent-add', '--email', mail, '--password', 'correct horse', '--name', 'Tess Team'];
    for (const s of sites) args.push('--site', s);
    for (const t of teams) args.push('--team', t);
    return env.admin(...args, ...extra);
}

async function hash(k) {
    const h = await env.redis.cmd('HGETALL', k);
    return Object.fromEntries(Array.from({ length: h.length / 2 }, (_, i) => [h[2 * i], h[2 * i + 1]]));
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
        count: (needle) => data.split(needle).length - 1,
        close: () => sock.destroy(),
    };
}

/** Pub/sub keeps order per subscriber: once a marker site's notice arrives, anything
 *  published before it has arrived too. */
async function flushNotices(sub) {
    const marker = key('marker');
    await siteAdd(marker); // site-add publishes the same notice
    await waitUntil(() => sub.data.includes(changed(marker)), { what: `marker notice ${marker}` });
}

function assertUsage(r, what) {
    assert.equal(r.code, 2, `${what}: exit 2 expected, got ${r.code}: ${r.stderr}`);
    assert.equal(r.stdout, '', `${what}: nothing on stdout`);
    assert.ok(r.stderr.startsWith('chatdeskd admin: '), `${what}: ${r.stderr}`);
}

function assertFail(r, message, what = message) {
    assert.equal(r.code, 1, `${what}: exit 1 expected, got ${r.code}: ${r.stderr}`);
    assert.equal(r.stdout, '', `${what}: nothing on stdout`);
    assert.ok(r.stderr.includes(message), `${what}: expected "${message}" in: ${r.stderr}`);
}

// ---------------------------------------------------------------------------
// team-add / team-list

it('team-add writes site:<k>:teams and prints the team; team-list shows it', async () => {
    const s = key('ts');
    await siteAdd(s);
    const out = await env.admin('team-add', '--site', s, '--key', 'sales', '--name', 'Ventes & Sales ✓');
    assert.deepEqual(out, { site: s, key: 'sales', name: 'Ventes & Sales ✓' });
    assert.equal(await env.redis.cmd('HGET', `${P}{s:${s}}:teams`, 'sales'), 'Ventes & Sales ✓');
    await teamAdd(s, 'Tier-2_support', 'Tier 2');
    await teamAdd(s, 'billing', 'Billing');

    const j = await env.adminRaw(['team-list', '--site', s, '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(j.json, [
        { key: 'Tier-2_support', name: 'Tier 2' },
        { key: 'billing', name: 'Billing' },
        { key: 'sales', name: 'Ventes & Sales ✓' },
    ]);

    const t = await env.adminRaw(['team-list', '--site', s]);
    assert.equal(t.code, 0, t.stderr);
    const lines = t.stdout.trimEnd().split('\n');
    assert.match(lines[0], /^KEY\s+NAME$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s{2,}/)), [
        ['Tier-2_support', 'Tier 2'],
        ['billing', 'Billing'],
        ['sales', 'Ventes & Sales ✓'],
    ]);
    assert.equal(lines[1].indexOf('Tier 2'), lines[0].indexOf('NAME'), 'columns are aligned');

    const empty = key('empty');
    await siteAdd(empty);
    const e = await env.adminRaw(['team-list', '--site', empty]);
    assert.equal(e.code, 0, e.stderr);
    assert.equal(e.stdout, 'no teams\n');
    assert.deepEqual((await env.adminRaw(['team-list', '--site', empty, '--json'])).json, []);
});

it('team-add: a duplicate on the site exits 1; the same key on another site is fine', async () => {
    const s = key('td');
    const other = key('td');
    await siteAdd(s);
    await siteAdd(other);
    await teamAdd(s, 'vip', 'VIP');
    assertFail(await env.adminRaw(['team-add', '--site', s, '--key', 'vip', '--name', 'Other']),
        `team vip already exists on site ${s}`);
    assert.equal(await env.redis.cmd('HGET', `${P}{s:${s}}:teams`, 'vip'), 'VIP', 'first name kept');
    assert.deepEqual(await teamAdd(other, 'vip', 'VIP 2'), { site: other, key: 'vip', name: 'VIP 2' });
});

it('team-add / team-list on an unknown site exit 1 and write nothing', async () => {
    const s = key('nosite');
    assertFail(await env.adminRaw(['team-add', '--site', s, '--key', 'sales', '--name', 'Sales']), 'no such site');
    // a key no site can have is just as unknown (the admin API answers 404 for it too)
    assertFail(await env.adminRaw(['team-add', '--site', 'bad site', '--key', 'ok', '--name', 'X']), 'no such site');
    assert.equal(await env.redis.cmd('EXISTS', `${P}{s:${s}}:teams`), 0);
    assert.equal(await env.redis.cmd('EXISTS', `${P}{s:${s}}:site`), 0);
    assertFail(await env.adminRaw(['team-list', '--site', s]), `unknown site ${s}`);
});

it('concurrent team-add of one team: exactly one wins', async () => {
    const s = key('trace');
    await siteAdd(s);
    const runs = await Promise.all(Array.from({ length: 6 }, (_, i) =>
        env.adminRaw(['team-add', '--site', s, '--key', 'race', '--name', `N${i}`])));
    assert.deepEqual(runs.map((r) => r.code).sort(), [0, 1, 1, 1, 1, 1], runs.map((r) => r.stderr).join(''));
    const winner = runs.find((r) => r.code === 0).json.name;
    assert.equal(await env.redis.cmd('HGET', `${P}{s:${s}}:teams`, 'race'), winner);
});

it('team-add / team-list refuse bad values (exit 2) and missing options (usage)', async () => {
    const s = key('tbad');
    await siteAdd(s);
    const cases = [
        ['--site', s, '--key', 'has space', '--name', 'X'],
        ['--site', s, '--key', 'x'.repeat(65), '--name', 'X'],
        ['--site', s, '--key', 'a/b', '--name', 'X'],
        ['--site', s, '--key', 'café', '--name', 'X'],
        ['--site', s, '--key', '_', '--name', 'X'],
        ['--site', s, '--key', 'ok', '--name', ''],
        ['--site', s, '--key', 'ok', '--name', 'n'.repeat(201)],
        ['--site', s, '--key', 'ok', '--name', 'tab\there'],
    ];
    for (const c of cases) assertUsage(await env.adminRaw(['team-add', ...c]), c.join(' '));
    const r = await env.adminRaw(['team-add', '--site', s, '--key', '_', '--name', 'X']);
    assert.ok(r.stderr.includes("team '_' is reserved"), r.stderr);
    assert.equal(await env.redis.cmd('HLEN', `${P}{s:${s}}:teams`), 0, 'nothing written');
    const ok = await teamAdd(s, 'x'.repeat(64), 'n'.repeat(200));
    assert.equal(ok.key.length, 64);

    for (const c of [
        ['team-add', '--site', s, '--name', 'X'],
        ['team-add', '--key', 'k', '--name', 'X'],
        ['team-add', '--site', s, '--key', 'k'],
        ['team-add', '--site', s, '--key', 'k', '--name', 'X', '--origin', 'https://a.example'],
        ['team-list'],
        ['team-list', '--site', s, '--key', 'k'],
    ]) {
        const u = await env.adminRaw(c);
        assertUsage(u, c.join(' '));
        assert.ok(u.stderr.includes('Usage: chatdeskd'), `${c.join(' ')}: ${u.stderr}`);
    }
    assertUsage(await env.adminRaw(['team-list', '--site', 'bad/key']), 'team-list bad key');
});

// ---------------------------------------------------------------------------
// agent-add --team

it('agent-add --team: each team must exist on one of the agent sites, checked in the same write (exit 2)', async () => {
    const s1 = key('at');
    const s2 = key('at');
    const elsewhere = key('at');
    await siteAdd(s1);
    await siteAdd(s2);
    await siteAdd(elsewhere);
    await teamAdd(s1, 'sales');
    await teamAdd(s2, 'vip');
    await teamAdd(elsewhere, 'ghost');

    const ok = await agentAdd({ sites: [s1, s2], teams: ['sales', 'vip'] });
    assert.deepEqual(ok.teams, ['sales', 'vip']);
    assert.deepEqual(JSON.parse(await env.redis.cmd('HGET', `${P}{a}:agent:${ok.id}`, 'teams')), ['sales', 'vip']);

    const before = await env.redis.cmd('SCARD', `${P}{a}:agents`);
    for (const [team, sites] of [['nope', [s1, s2]], ['ghost', [s1, s2]], ['vip', [s1]]]) {
        const mail = email();
        const r = await env.adminRaw(['agent-add', '--email', mail, '--password', 'correct horse', '--name', 'N',
            ...sites.flatMap((s) => ['--site', s]), '--team', 'sales', '--team', team]);
        assertUsage(r, `${team} on ${sites}`);
        assert.ok(r.stderr.includes(`unknown team ${team}`), r.stderr);
        assert.equal(await env.redis.cmd('EXISTS', `${P}{a}:agent:email:${mail}`), 0, `${team}: no login index`);
    }
    assert.equal(await env.redis.cmd('SCARD', `${P}{a}:agents`), before, 'no agent written');
    assert.equal(await env.redis.cmd('SCARD', `${P}{s:${s1}}:agents`), 1);

    // the reserved team-less queue name is a bad value, not an unknown team
    assertUsage(await env.adminRaw(['agent-add', '--email', email(), '--password', 'correct horse', '--name', 'N',
        '--site', s1, '--team', '_']), '--team _');
});

// ---------------------------------------------------------------------------
// agent-set

it('agent-set changes only the given fields, prints the agent and sends agent.changed', async () => {
    const s1 = key('as');
    const s2 = key('as');
    await siteAdd(s1);
    await siteAdd(s2);
    await teamAdd(s1, 'sales');
    await teamAdd(s2, 'vip');
    const mail = email();
    const a = await agentAdd({ mail, sites: [s1, s2], teams: ['sales'] });
    const before = await hash(`${P}{a}:agent:${a.id}`);

    const sub = await subscribe(`${P}ch:sites`);
    try {
        const out = await env.admin('agent-set', '--email', mail.toUpperCase(), '--max-chats', '12', '--team', 'vip',
            '--team', 'sales', '--team', 'vip', '--name', 'Renamed ✓', '--role', 'admin', '--disabled', 'on');
        assert.deepEqual(out, {
            id: a.id,
            email: mail,
            name: 'Renamed ✓',
            role: 'admin',
            sites: [s1, s2],
            teams: ['vip', 'sales'],
            status: 'offline',
            max_chats: 12,
            disabled: true,
            created_at: Number(before.created_at),
        });
        const m = await hash(`${P}{a}:agent:${a.id}`);
        assert.equal(m.max_chats, '12');
        assert.deepEqual(JSON.parse(m.teams), ['vip', 'sales']);
        assert.equal(m.name, 'Renamed ✓');
        assert.equal(m.role, 'admin');
        assert.equal(m.disabled, '1');
        for (const f of ['id', 'email', 'sites', 'pw', 'status', 'created_at']) assert.equal(m[f], before[f], f);
        // nodes bring the agent's record in each of its sites in line and drain those
        // sites' queues (agent_sync, agent_site), as after the admin API's patch
        await waitUntil(() => sub.count(agentChanged(a.id)) === 1, { what: `agent.changed ${a.id}` });

        // one setting at a time leaves the others alone
        const only = await env.admin('agent-set', '--email', mail, '--max-chats', '3');
        assert.equal(only.max_chats, 3);
        assert.deepEqual(only.teams, ['vip', 'sales']);
        assert.equal(only.disabled, true);
        assert.equal(only.name, 'Renamed ✓');
        await waitUntil(() => sub.count(agentChanged(a.id)) === 2, { what: 'a second agent.changed' });

        const cleared = await env.admin('agent-set', '--email', mail, '--no-teams', '--disabled', 'off', '--role', 'agent');
        assert.deepEqual(cleared.teams, []);
        assert.equal(cleared.disabled, false);
        const m2 = await hash(`${P}{a}:agent:${a.id}`);
        assert.equal(m2.teams, '[]');
        assert.equal(m2.disabled, '0');
        assert.equal(m2.role, 'agent');
        assert.equal(m2.max_chats, '3');
    } finally {
        sub.close();
    }
});

it('agent-set: an unknown agent exits 1, an unknown team 2; neither changes anything or sends a notice', async () => {
    const s = key('ax');
    const other = key('ax');
    await siteAdd(s);
    await siteAdd(other);
    await teamAdd(s, 'sales');
    await teamAdd(other, 'elsewhere');
    const mail = email();
    const a = await agentAdd({ mail, sites: [s], teams: ['sales'] });
    const before = await hash(`${P}{a}:agent:${a.id}`);

    const sub = await subscribe(`${P}ch:sites`);
    try {
        const nobody = email();
        assertFail(await env.adminRaw(['agent-set', '--email', nobody, '--max-chats', '7']), 'no such agent');
        assert.equal(await env.redis.cmd('EXISTS', `${P}{a}:agent:email:${nobody}`), 0);

        for (const team of ['nope', 'elsewhere']) {
            const r = await env.adminRaw(['agent-set', '--email', mail, '--max-chats', '7', '--team', 'sales', '--team', team]);
            assertUsage(r, team);
            assert.ok(r.stderr.includes(`unknown team ${team}`), r.stderr);
        }
        assert.deepEqual(await hash(`${P}{a}:agent:${a.id}`), before, 'agent unchanged');
        await flushNotices(sub);
        assert.ok(!sub.data.includes(changed(s)) && !sub.data.includes(agentChanged(a.id)), `no notice: ${sub.data}`);
    } finally {
        sub.close();
    }
});

it('agent-set refuses bad values (exit 2) and never prints the password hash', async () => {
    const s = key('av');
    await siteAdd(s);
    const mail = email();
    const a = await agentAdd({ mail, sites: [s] });
    const before = await hash(`${P}{a}:agent:${a.id}`);
    const cases = [
        ['--max-chats', '0'],
        ['--max-chats', '101'],
        ['--max-chats', '5x'],
        ['--max-chats', '-1'],
        ['--max-chats', ''],
        ['--role', 'boss'],
        ['--disabled', 'yes'],
        ['--disabled', '1'],
        ['--name', ''],
        ['--name', 'n'.repeat(201)],
        ['--team', 'bad key'],
        ['--team', '_'],
    ];
    for (const c of cases) assertUsage(await env.adminRaw(['agent-set', '--email', mail, ...c]), c.join(' '));
    assertUsage(await env.adminRaw(['agent-set', '--email', 'not-an-email', '--max-chats', '4']), 'bad e-mail');
    for (const c of [
        ['agent-set', '--email', mail],
        ['agent-set', '--max-chats', '4'],
        ['agent-set', '--email', mail, '--team', 'x', '--no-teams'],
        ['agent-set', '--email', mail, '--password', 'new password'],
        ['agent-set', '--email', mail, '--site', s],
        ['agent-set', '--email', mail, '--max-chats', '4', '--max-chats', '5'],
        ['agent-set', '--email', mail, '--no-teams=1'],
    ]) {
        const r = await env.adminRaw(c);
        assertUsage(r, c.join(' '));
        assert.ok(r.stderr.includes('Usage: chatdeskd'), `${c.join(' ')}: ${r.stderr}`);
    }
    assert.deepEqual(await hash(`${P}{a}:agent:${a.id}`), before, 'agent unchanged');

    const r = await env.adminRaw(['agent-set', '--email', mail, '--max-chats', '100']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!/argon2|"pw"/.test(r.stdout + r.stderr), r.stdout);
    assert.equal((await env.adminRaw(['agent-set', '--email', mail, '--max-chats', '1'])).code, 0);
});

// ---------------------------------------------------------------------------
// site-set

it('site-set writes every setting, prints the site without its secret and notifies ch:sites', async () => {
    const s = key('ss');
    const first = await siteAdd(s);
    assert.equal(first.identity_verification, false);
    await teamAdd(s, 'sales');
    await teamAdd(s, 'support');
    const created = await env.redis.cmd('HGET', `${P}{s:${s}}:site`, 'created_at');
    const secret = `sekret-${rnd(12)}`;
    const ackEn = 'Hello!\nAn agent will be with you soon.';
    const ackZh = '您好，请稍候。';

    const sub = await subscribe(`${P}ch:sites`);
    try {
        const r = await env.adminRaw(['site-set', '--key', s, '--name', 'Renamed Site', '--origin', 'https://new.example',
            '--origin', 'http://localhost:8080', '--identity-secret', secret, '--auto-assign', 'off',
            '--category-team', 'billing=sales', '--category-team', 'tech support=support',
            '--category-team', 'a=b=sales', '--auto-close-s', '3600', '--ack-en', ackEn, '--ack-zh', ackZh]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'the secret never prints');
        assert.deepEqual(r.json, {
            key: s,
            name: 'Renamed Site',
            origins: ['https://new.example', 'http://localhost:8080'],
            identity_verification: true,
            auto_assign: false,
            category_teams: { billing: 'sales', 'tech support': 'support', 'a=b': 'sales' },
            auto_close_s: 3600,
            ack_text_en: ackEn,
            ack_text_zh: ackZh,
            created_at: Number(created),
        });
        const m = await hash(`${P}{s:${s}}:site`);
        assert.equal(m.name, 'Renamed Site');
        assert.deepEqual(JSON.parse(m.origins), ['https://new.example', 'http://localhost:8080']);
        assert.equal(m.identity_secret, secret);
        assert.equal(m.auto_assign, '0');
        assert.deepEqual(JSON.parse(m.category_teams), { billing: 'sales', 'tech support': 'support', 'a=b': 'sales' });
        assert.equal(m.auto_close_s, '3600');
        assert.equal(m.ack_text_en, ackEn);
        assert.equal(m.ack_text_zh, ackZh);
        assert.equal(m.created_at, created);
        assert.equal(m.key, s);
        await waitUntil(() => sub.data.includes(changed(s)), { what: `site.changed ${s}` });
    } finally {
        sub.close();
    }
});

it('site-set changes only what is given; --category-team replaces the map, CATEGORY= leaves one out', async () => {
    const s = key('sp');
    await siteAdd(s, ['--identity-secret', 'a-long-enough-secret']);
    await teamAdd(s, 'sales');
    await teamAdd(s, 'vip');
    await env.admin('site-set', '--key', s, '--category-team', 'billing=sales', '--category-team', 'gold=vip',
        '--ack-en', 'Hi', '--auto-assign', 'off');

    let out = await env.admin('site-set', '--key', s, '--auto-close-s', '0');
    assert.equal(out.auto_close_s, 0);
    assert.deepEqual(out.category_teams, { billing: 'sales', gold: 'vip' });
    assert.equal(out.ack_text_en, 'Hi');
    assert.equal(out.auto_assign, false);
    assert.equal(out.identity_verification, true);
    assert.deepEqual(out.origins, ['https://example.com']);
    assert.equal(out.name, `Site ${s}`);

    // replaced as a whole: "billing" is gone, "gold" is left out by its empty team
    out = await env.admin('site-set', '--key', s, '--category-team', 'new=vip', '--category-team', 'gold=');
    assert.deepEqual(out.category_teams, { new: 'vip' });
    assert.deepEqual(JSON.parse(await env.redis.cmd('HGET', `${P}{s:${s}}:site`, 'category_teams')), { new: 'vip' });

    // a lone CATEGORY= clears the map
    out = await env.admin('site-set', '--key', s, '--category-team', 'new=');
    assert.deepEqual(out.category_teams, {});
    assert.equal(await env.redis.cmd('HGET', `${P}{s:${s}}:site`, 'category_teams'), '{}');

    out = await env.admin('site-set', '--key', s, '--no-identity-secret', '--auto-assign', 'on', '--ack-en', '');
    assert.equal(out.identity_verification, false);
    assert.equal(out.auto_assign, true);
    assert.equal(out.ack_text_en, '');
    const m = await hash(`${P}{s:${s}}:site`);
    assert.equal(m.identity_secret, '');
    assert.equal(m.auto_assign, '1');
    assert.equal(m.ack_text_en, '');
    assert.equal(m.auto_close_s, '0');

    // the limits themselves are accepted
    out = await env.admin('site-set', '--key', s, '--auto-close-s', '31536000', '--ack-zh', '字'.repeat(333));
    assert.equal(out.auto_close_s, 31536000);
    assert.equal(Buffer.byteLength(out.ack_text_zh), 999);
    assert.equal((await env.adminRaw(['site-set', '--key', s, '--ack-en', 'x'.repeat(1000)])).code, 0);
});

it('site-set: an unknown site exits 1, an unknown team 2; neither writes anything or sends a notice', async () => {
    const s = key('sx');
    const other = key('sx');
    await siteAdd(s);
    await siteAdd(other);
    await teamAdd(s, 'sales');
    await teamAdd(other, 'elsewhere');
    await env.admin('site-set', '--key', s, '--category-team', 'billing=sales');
    const before = await hash(`${P}{s:${s}}:site`);

    const sub = await subscribe(`${P}ch:sites`);
    try {
        const nosite = key('nosite');
        assertFail(await env.adminRaw(['site-set', '--key', nosite, '--auto-assign', 'off']), 'no such site');
        assertFail(await env.adminRaw(['site-set', '--key', 'bad key', '--auto-assign', 'on']), 'no such site');
        assert.equal(await env.redis.cmd('EXISTS', `${P}{s:${nosite}}:site`), 0, 'no half site created');

        for (const team of ['nope', 'elsewhere']) {
            const r = await env.adminRaw(['site-set', '--key', s, '--name', 'Changed', '--category-team', 'x=sales',
                '--category-team', `y=${team}`]);
            assertUsage(r, team);
            assert.ok(r.stderr.includes(`unknown team ${team} for category y`), r.stderr);
        }
        assert.deepEqual(await hash(`${P}{s:${s}}:site`), before, 'site unchanged');
        await flushNotices(sub);
        assert.ok(!sub.data.includes(changed(s)) && !sub.data.includes(changed(nosite)), sub.data);
    } finally {
        sub.close();
    }
});

it('site-set refuses bad values (exit 2) and usage mistakes', async () => {
    const s = key('sv');
    await siteAdd(s);
    await teamAdd(s, 'sales');
    const before = await hash(`${P}{s:${s}}:site`);
    const cases = [
        ['--auto-assign', 'yes'],
        ['--auto-assign', ''],
        ['--auto-close-s', '-1'],
        ['--auto-close-s', '31536001'],
        ['--auto-close-s', '1.5'],
        ['--auto-close-s', ''],
        ['--auto-close-s', '1e3'],
        ['--ack-en', 'x'.repeat(1001)],
        ['--ack-zh', '字'.repeat(334)],
        ['--ack-en', 'bell\x07'],
        ['--ack-en', 'cr\rlf'],
        ['--category-team', 'no-equals-sign'],
        ['--category-team', '=sales'],
        ['--category-team', 'c=bad key'],
        ['--category-team', 'c=_'],
        ['--category-team', `${'c'.repeat(201)}=sales`],
        ['--category-team', 'c=sales', '--category-team', 'c='],
        ['--origin', 'https://example.com/'],
        ['--identity-secret', 'short'],
        ['--name', ''],
    ];
    for (const c of cases) assertUsage(await env.adminRaw(['site-set', '--key', s, ...c]), JSON.stringify(c));
    for (const c of [
        ['site-set', '--key', s],
        ['site-set', '--auto-assign', 'on'],
        ['site-set', '--key', s, '--identity-secret', 'a-long-enough-secret', '--no-identity-secret'],
        ['site-set', '--key', s, '--auto-assign', 'on', '--auto-assign', 'off'],
        ['site-set', '--key', s, '--max-chats', '3'],
        ['site-set', '--key', s, '--no-identity-secret=yes'],
    ]) {
        const r = await env.adminRaw(c);
        assertUsage(r, c.join(' '));
        assert.ok(r.stderr.includes('Usage: chatdeskd'), `${c.join(' ')}: ${r.stderr}`);
    }
    assert.deepEqual(await hash(`${P}{s:${s}}:site`), before, 'site unchanged');
});

// ---------------------------------------------------------------------------
// listings

it('site-list shows the routing settings (defaults for untouched sites) and never the secret', async () => {
    const plain = key('lp');
    const tuned = key('lt');
    const secret = `list-secret-${rnd(10)}`;
    await siteAdd(plain);
    await siteAdd(tuned);
    await teamAdd(tuned, 'sales');
    await env.admin('site-set', '--key', tuned, '--identity-secret', secret, '--auto-assign', 'off',
        '--category-team', 'billing=sales', '--auto-close-s', '7200', '--ack-en', 'Hi');

    const j = await env.adminRaw(['site-list', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.ok(!j.stdout.includes(secret));
    const p = j.json.find((x) => x.key === plain);
    assert.equal(p.auto_assign, true);
    assert.deepEqual(p.category_teams, {});
    assert.equal(p.auto_close_s, 86400);
    const t = j.json.find((x) => x.key === tuned);
    assert.equal(t.identity_verification, true);
    assert.equal(t.auto_assign, false);
    assert.deepEqual(t.category_teams, { billing: 'sales' });
    assert.equal(t.auto_close_s, 7200);
    assert.equal(t.ack_text_en, 'Hi');
    assert.ok(!('identity_secret' in t));

    const tab = await env.adminRaw(['site-list']);
    assert.equal(tab.code, 0, tab.stderr);
    assert.ok(!tab.stdout.includes(secret));
    const lines = tab.stdout.trimEnd().split('\n');
    const col = (name) => lines[0].indexOf(name);
    const row = lines.find((l) => l.startsWith(`${tuned} `));
    assert.ok(row, tab.stdout);
    assert.equal(row.slice(col('IDENTITY')).split(/\s+/)[0], 'on');
    assert.equal(row.slice(col('ASSIGN')).split(/\s+/)[0], 'manual');
    assert.equal(row.slice(col('CLOSE')).split(/\s+/)[0], '2h');
    assert.ok(row.slice(col('CATEGORY-TEAMS')).startsWith('billing=sales '), row);
    const prow = lines.find((l) => l.startsWith(`${plain} `));
    assert.equal(prow.slice(col('ASSIGN')).split(/\s+/)[0], 'auto');
    assert.equal(prow.slice(col('CLOSE')).split(/\s+/)[0], '1d');
    assert.equal(prow.slice(col('CATEGORY-TEAMS')).split(/\s+/)[0], '-');

    await env.admin('site-set', '--key', plain, '--auto-close-s', '0');
    const again = (await env.adminRaw(['site-list'])).stdout.split('\n').find((l) => l.startsWith(`${plain} `));
    assert.equal(again.slice(col('CLOSE')).split(/\s+/)[0], 'never');
});

it('agent-list shows max_chats, teams and the disabled flag', async () => {
    const s = key('al');
    await siteAdd(s);
    await teamAdd(s, 'sales');
    await teamAdd(s, 'vip');
    const mail = `aa_${rnd(3)}@example.com`;
    const a = await agentAdd({ mail, sites: [s], teams: ['sales'] });
    await env.admin('agent-set', '--email', mail, '--max-chats', '42', '--team', 'sales', '--team', 'vip', '--disabled', 'on');

    const j = await env.adminRaw(['agent-list', '--site', s, '--json']);
    assert.equal(j.code, 0, j.stderr);
    const rec = j.json.find((x) => x.id === a.id);
    assert.equal(rec.max_chats, 42);
    assert.deepEqual(rec.teams, ['sales', 'vip']);
    assert.equal(rec.disabled, true);
    assert.ok(!/argon2|"pw"/.test(j.stdout));

    const t = await env.adminRaw(['agent-list', '--site', s]);
    assert.equal(t.code, 0, t.stderr);
    const lines = t.stdout.trimEnd().split('\n');
    const row = lines.find((l) => l.startsWith(a.id));
    assert.ok(row, t.stdout);
    assert.equal(row.slice(lines[0].indexOf('MAX')).split(/\s+/)[0], '42');
    assert.ok(row.slice(lines[0].indexOf('STATUS')).startsWith('offline, disabled'), row);
    assert.ok(row.endsWith('sales, vip'), row);
});

it('concurrent agent-set and site-set runs all succeed and each publishes once', async () => {
    // site-set: site.changed for the site; agent-set: agent.changed for the agent
    const s = key('cc');
    await siteAdd(s);
    await teamAdd(s, 'sales');
    const mails = [email(), email(), email()];
    for (const mail of mails) await agentAdd({ mail, sites: [s] });
    const sub = await subscribe(`${P}ch:sites`);
    try {
        const runs = await Promise.all([
            ...mails.map((mail, i) => env.adminRaw(['agent-set', '--email', mail, '--max-chats', String(10 + i), '--team', 'sales'])),
            env.adminRaw(['site-set', '--key', s, '--auto-close-s', '60']),
            env.adminRaw(['site-set', '--key', s, '--category-team', 'c=sales']),
        ]);
        assert.deepEqual(runs.map((r) => r.code), [0, 0, 0, 0, 0], runs.map((r) => r.stderr).join(''));
        const ids = await Promise.all(mails.map((m) => env.redis.cmd('GET', `${P}{a}:agent:email:${m}`)));
        const count = () => sub.count(changed(s)) + ids.reduce((n, id) => n + sub.count(agentChanged(id)), 0);
        await waitUntil(() => count() >= 5, { what: '5 notices' });
        await sleep(100);
        assert.equal(sub.count(changed(s)), 2);
        for (const id of ids) assert.equal(sub.count(agentChanged(id)), 1, id);
        const m = await hash(`${P}{s:${s}}:site`);
        assert.equal(m.auto_close_s, '60');
        assert.equal(m.category_teams, '{"c":"sales"}');
    } finally {
        sub.close();
    }
});
