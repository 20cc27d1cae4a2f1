// The admin CLI and the admin API are one implementation (ARCHITECTURE, issue 12 item 4):
// `chatdeskd admin` runs the API's own Redis functions (store/lua/api.lua) as the
// operator, so the same bad input gets the same refusal from both, word for word, and
// neither writes anything. Several of these inputs were accepted by one side and refused
// by the other while the CLI carried its own scripts (a team named '_', an origin with
// the default port, a tab in a name, a number written as 1e3).
import { useEnv, it, assert, rnd, waitUntil } from './harness.mjs';

const env = useEnv({ nodes: 1 });
const P = 'cd:';

let owner;
let site;

async function setup() {
    if (owner) return;
    site = await env.addSite();
    await env.admin('team-add', '--site', site.key, '--key', 'sales', '--name', 'Sales');
    const a = await env.addAgent({ site, role: 'owner' });
    owner = { ...a, token: await env.login(0, a.email, a.password) };
}

const api = (method, url, body) =>
    env.http(0, `/api/v1${url}`, { method, body, headers: { authorization: `Bearer ${owner.token}` } });

/** Runs the CLI command and the API request and checks both refuse with one message. */
async function sameRefusal(what, cli, [method, url, body]) {
    const c = await env.adminRaw(cli);
    const h = await api(method, url, body);
    assert.equal(c.code, 2, `${what}: CLI exit 2 expected, got ${c.code}: ${c.stderr}`);
    assert.equal(c.stdout, '', `${what}: nothing on stdout`);
    assert.equal(h.status, 400, `${what}: API 400 expected: ${h.text}`);
    const message = JSON.parse(h.text).error.message;
    assert.equal(c.stderr.split('\n')[0], `chatdeskd admin: ${message}`, `${what}: the same words`);
    return message;
}

it('site create: a bad key, an origin with the default port, a tab in the name: one refusal each', async () => {
    await setup();
    const k = `same_${rnd(3)}`;
    const create = (over) => ({ key: k, name: 'Same', origins: ['https://same.example'], ...over });
    const cliArgs = (o) => ['site-add', '--key', o.key, '--name', o.name, ...o.origins.flatMap((x) => ['--origin', x])];
    for (const [what, over, expect] of [
        ['bad key', { key: 'bad key' }, 'key must be 1-64 characters of A-Z a-z 0-9 _ -'],
        ['default port', { origins: ['https://same.example:443'] }, 'origin must look like https://example.com[:port]: got https://same.example:443'],
        ['trailing slash', { origins: ['https://same.example/'] }, 'origin must look like'],
        ['tab in name', { name: 'tab\there' }, 'name must be 1-200 bytes of text without control characters'],
    ]) {
        const o = create(over);
        const m = await sameRefusal(what, cliArgs(o), ['POST', '/admin/sites', o]);
        assert.ok(m.startsWith(expect), `${what}: ${m}`);
    }
    assert.equal(await env.redis.cmd('EXISTS', `${P}{s:${k}}:site`), 0, 'nothing written');
});

it('team create: the reserved team key and a name with a control character', async () => {
    await setup();
    for (const [what, key, name, expect] of [
        ['reserved _', '_', 'X', "team '_' is reserved"],
        ['bad key', 'a/b', 'X', 'team key must be 1-64 characters'],
        ['bell in name', 'ok', 'bell\x07', 'name must be 1-200 bytes'],
    ]) {
        const m = await sameRefusal(what, ['team-add', '--site', site.key, '--key', key, '--name', name],
            ['POST', `/admin/sites/${site.key}/teams`, { key, name }]);
        assert.ok(m.startsWith(expect), `${what}: ${m}`);
    }
    assert.equal(await env.redis.cmd('HLEN', `${P}{s:${site.key}}:teams`), 1, 'only sales');
});

it('agent create: a too-short password, an unknown team or site, a bad e-mail, max_chats 0', async () => {
    await setup();
    const before = await env.redis.cmd('SCARD', `${P}{a}:agents`);
    const base = { email: `same_${rnd(3)}@example.com`, password: 'long enough pw', name: 'Same', sites: [site.key], teams: [] };
    const cliArgs = (o) => ['agent-add', '--email', o.email, '--password', o.password, '--name', o.name,
        ...o.sites.flatMap((s) => ['--site', s]), ...o.teams.flatMap((t) => ['--team', t]),
        ...(o.max_chats !== undefined ? ['--max-chats', String(o.max_chats)] : [])];
    for (const [what, over, expect] of [
        ['short password', { password: 'p'.repeat(11) }, 'password must be 12 to 128 bytes'],
        ['unknown team', { teams: ['nope'] }, 'unknown team nope'],
        ['reserved team', { teams: ['_'] }, "team '_' is reserved (it names the queue of chats without a team)"],
        ['unknown site', { sites: [site.key, 'no_such_site'] }, 'unknown site no_such_site'],
        ['bad e-mail', { email: 'two@@example.com' }, 'email is not an e-mail address'],
        ['max_chats 0', { max_chats: 0 }, 'max_chats must be a whole number from 1 to 100'],
    ]) {
        const o = { ...base, ...over };
        const m = await sameRefusal(what, cliArgs(o), ['POST', '/admin/agents', o]);
        assert.equal(m, expect, what);
    }
    assert.equal(await env.redis.cmd('SCARD', `${P}{a}:agents`), before, 'no agent written');
});

it('site patch and agent patch: the same limits (auto_close_s, ack texts, category teams, max_chats)', async () => {
    await setup();
    const rec = await env.redis.cmd('HGETALL', `${P}{s:${site.key}}:site`);
    for (const [what, opt, val, field, body, expect] of [
        ['auto_close_s 1e3', '--auto-close-s', '1e3', 'auto_close_s', '1e3', 'auto_close_s must be a whole number from 0 to 31536000'],
        ['auto_close_s -1', '--auto-close-s', '-1', 'auto_close_s', -1, 'auto_close_s must be a whole number from 0 to 31536000'],
        ['bell in ack', '--ack-en', 'bell\x07', 'ack_text_en', 'bell\x07', 'ack_text_en must be at most 1000 bytes'],
        ['unknown team', '--category-team', 'billing=ghost', 'category_teams', { billing: 'ghost' }, 'unknown team ghost for category billing'],
    ]) {
        const m = await sameRefusal(what, ['site-set', '--key', site.key, opt, val],
            ['PATCH', `/admin/sites/${site.key}`, { [field]: body }]);
        assert.ok(m.startsWith(expect), `${what}: ${m}`);
    }
    assert.deepEqual(await env.redis.cmd('HGETALL', `${P}{s:${site.key}}:site`), rec, 'site unchanged');

    const a = await env.addAgent({ site });
    const m = await sameRefusal('max_chats 101', ['agent-set', '--email', a.email, '--max-chats', '101'],
        ['PATCH', `/admin/agents/${a.id}`, { max_chats: 101 }]);
    assert.equal(m, 'max_chats must be a whole number from 1 to 100');
    assert.equal(await env.redis.cmd('HGET', `${P}{a}:agent:${a.id}`, 'max_chats'), '100');
});

it("agent-add's steps are safe to retry: a stop after the agent's own step still ends with the agent in its sites", async () => {
    // agent-add writes the agent's state ({a}) and then joins each site in a call of its
    // own; a node that syncs the agent into a site (agent_site, on agent.changed) joins it
    // too, so an agent-add that stopped in between loses nothing
    await setup();
    const a = await env.addAgent({ site });
    await env.redis.cmd('SREM', `${P}{s:${site.key}}:agents`, a.id); // as if step 3 never ran
    await env.redis.cmd('PUBLISH', `${P}ch:sites`, `0 a -\n{"type":"agent.changed","id":"${a.id}"}`);
    await waitUntil(async () => Number(await env.redis.cmd('SISMEMBER', `${P}{s:${site.key}}:agents`, a.id)) === 1,
        { what: 'the sync adds the agent to its site' });
});
