// Upgrades keep data (issue 12 item 8): a Redis filled by the previous key layout
// (fixtures/layout-v1.json, written by fixtures/make-layout-v1.mjs with that release's
// chatdeskd) is moved by `chatdeskd admin migrate` to this release's layout; every
// conversation, message, ticket, timer, rule, article and report figure survives, a
// second run moves nothing, and a node serves the migrated data.
import { useEnv, it, assert } from './harness.mjs';
import { fixture, loadLayoutV1 } from './fixtures/layout-v1.mjs';

const env = useEnv({ nodes: 0 });
const load = () => loadLayoutV1((...a) => env.redis.cmd(...a));

const fieldOf = (key, f) => {
    const v = fixture.keys.find((x) => x.key === key).value;
    return v[v.indexOf(f) + 1];
};
// The name a key of the previous layout has now (null: it keeps its name; DELETED: the
// migration deletes it).
const DELETED = Symbol('deleted');
const EVENTS = Symbol('events'); // the one event stream and its cursors: per site now (checkEvents)
function renamed(k) {
    let m;
    if (/^cd:events(:cursor:.*|:retain_ms)?$/.test(k)) return EVENTS;
    if ((m = /^cd:conv:\{([^}]+)\}:dedupe$/.exec(k))) return DELETED;
    if ((m = /^cd:conv:\{([^}]+)\}(:msgs|:reads|:dd0|:dd1)?$/.exec(k))) {
        return `cd:{s:${fieldOf(`cd:conv:{${m[1]}}`, 'site')}}:conv:${m[1]}${m[2] ?? ''}`;
    }
    if ((m = /^cd:visitor:([^:]+)(:convs|:starts)?$/.exec(k))) {
        return `cd:{s:${fieldOf(`cd:visitor:${m[1]}`, 'site')}}:visitor:${m[1]}${m[2] ?? ''}`;
    }
    if ((m = /^cd:site:([^:]+):user:(.*)$/.exec(k))) return `cd:{s:${m[1]}}:user:${m[2]}`;
    // timers move member by member to their site's zset; the fixture's are all of "shop"
    if ((m = /^cd:(timers(?::leased)?)$/.exec(k))) return `cd:{s:shop}:${m[1]}`;
    if ((m = /^cd:kb:\{([^}]+)\}:(.*)$/.exec(k))) return `cd:{s:${m[1]}}:kb:${m[2]}`;
    if ((m = /^cd:site:([^:]+):(rules|rule:.*|team_leads|alerts)$/.exec(k))) return `cd:{s:${m[1]}}:${m[2]}`;
    if ((m = /^cd:rpt:c:\{(.*)\}$/.exec(k))) {
        const conv = fixture.keys.find((x) => x.key === `cd:conv:{${m[1]}}`);
        const f = conv.value;
        return `cd:{s:${f[f.indexOf('site') + 1]}}:rpt:c:${m[1]}`;
    }
    if ((m = /^cd:rpt:([^:]+):(d:.*|backlog)$/.exec(k))) return `cd:{s:${m[1]}}:rpt:${m[2]}`;
    if ((m = /^cd:health:([^:]+):(.*)$/.exec(k))) return `cd:{s:${m[1]}}:health:${m[2]}`;
    // the site's record and its own keys; state that spans sites under {a} and {g}
    if ((m = /^cd:site:([^:]+)$/.exec(k))) return `cd:{s:${m[1]}}:site`;
    if ((m = /^cd:site:([^:]+):(teams|agents|convs|tickets|canned|webhooks|queue:.*)$/.exec(k))) return `cd:{s:${m[1]}}:${m[2]}`;
    // an agent's conversations move member by member into the conversation's site; the
    // fixture's are all of "shop"
    if ((m = /^cd:agent:([^:]+):convs$/.exec(k))) return `cd:{s:shop}:agent:${m[1]}:convs`;
    // an agent's notices go to the lists of their sites, the counter to every site; the
    // fixture's are all of "shop"
    if ((m = /^cd:(agent:[^:]+:notices|notice:seq)$/.exec(k))) return `cd:{s:shop}:${m[1]}`;
    if ((m = /^cd:(agent:email:.*|agent:[^:]+(?::canned)?|agents|presence(?::.*)?)$/.exec(k))) return `cd:{a}:${m[1]}`;
    if ((m = /^cd:(sites|keys)$/.exec(k))) return `cd:{g}:${m[1]}`;
    // ticket numbers count per site: the fixture's tickets are all of "shop", and each
    // site's counter starts where the one counter stood
    if ((m = /^cd:(ticket:(?:\d+|seq))$/.exec(k))) return `cd:{s:shop}:${m[1]}`;
    return null;
}

async function dumpValue(key, type) {
    const r = (...a) => env.redis.cmd(...a);
    if (type === 'string') return r('GET', key);
    if (type === 'hash') {
        const h = await r('HGETALL', key);
        const o = {};
        for (let i = 0; i < h.length; i += 2) o[h[i]] = h[i + 1];
        return o;
    }
    if (type === 'set') return (await r('SMEMBERS', key)).sort();
    if (type === 'list') return r('LRANGE', key, '0', '-1');
    if (type === 'zset') return r('ZRANGE', key, '0', '-1', 'WITHSCORES');
    return r('XRANGE', key, '-', '+');
}

it('admin migrate moves the previous layout, keeps every value, and a second run moves nothing', async () => {
    await load();
    const expect = { kb: 0, rules: 0, reports: 0, health: 0, conversations: 0, visitors: 0, timers: 0, agent_convs: 0,
        sites: 0, agent_state: 0, global: 0, tickets: 0, notices: 0 };
    let dedupe = 0;
    for (const { key } of fixture.keys) {
        const to = renamed(key);
        if (!to) continue;
        if (to === DELETED) {
            dedupe++;
            continue;
        }
        if (to === EVENTS) continue;
        if (/^cd:timers/.test(key)) {
            expect.timers += fixture.keys.find((x) => x.key === key).value.length / 2;
            continue;
        }
        if (/^cd:agent:[^:]+:convs$/.test(key)) {
            expect.agent_convs += fixture.keys.find((x) => x.key === key).value.length;
            continue;
        }
        const kind = key.startsWith('cd:ticket:') ? 'tickets' : /^cd:(agent:[^:]+:notices|notice:seq)$/.test(key) ? 'notices' : key.startsWith('cd:kb:') ? 'kb' : /^cd:site:[^:]+:(rule|team_leads)/.test(key) ? 'rules'
            : key.startsWith('cd:rpt:') ? 'reports' : key.startsWith('cd:conv:') ? 'conversations'
                : /^cd:(visitor:|site:[^:]+:user:)/.test(key) ? 'visitors'
                    : /^cd:site:[^:]+(:(teams|agents|convs|tickets|canned|webhooks|queue:.*))?$/.test(key) ? 'sites'
                        : /^cd:(agent|presence)/.test(key) ? 'agent_state' : /^cd:(sites|keys)$/.test(key) ? 'global' : 'health';
        expect[kind]++;
    }
    assert.ok(Object.values(expect).every((n) => n > 0), JSON.stringify(expect));
    assert.ok(dedupe > 0, 'the fixture has a dedupe hash of the previous release');
    // each agent gets its record in each of its sites (routing reads it); the fixture's
    // agents hold no open chat, so no load moves (the next test moves one)
    const agents = fixture.keys.filter((k) => /^cd:agent:[^:]+$/.test(k.key));
    expect.agents = agents.reduce((n, k) => n + JSON.parse(fieldOf(k.key, 'sites')).length, 0);
    expect.loads = 0;
    expect.webhooks = 0; // the fixture has none (the tests below move some)
    expect.canned = 0;
    assert.ok(expect.agents > 0);
    const oldEvents = fixture.keys.find((k) => k.key === 'cd:events').value;
    expect.events = oldEvents.filter(([, f]) => f[f.indexOf('s') + 1]).length;
    assert.ok(expect.events > 0, 'the fixture has events');
    const first = await env.admin('migrate');
    assert.deepEqual(first.moved, { ...expect, total: Object.values(expect).reduce((a, b) => a + b, 0) });
    assert.deepEqual(first.deleted, { dedupe });
    assert.equal(first.conflicts, 0);
    for (const { key, type, value } of fixture.keys) {
        const to = renamed(key) ?? key;
        if (to === DELETED || to === EVENTS) {
            assert.equal(Number(await env.redis.cmd('EXISTS', key)), 0, `${key} deleted`);
            continue;
        }
        if (to !== key) assert.equal(Number(await env.redis.cmd('EXISTS', key)), 0, `${key} moved away`);
        assert.equal(await env.redis.cmd('TYPE', to), type, `${to} is there`);
        let want = value;
        if (type === 'hash') {
            want = {};
            for (let i = 0; i < value.length; i += 2) want[value[i]] = value[i + 1];
        }
        assert.deepEqual(await dumpValue(to, type), want, `${to} kept its value`);
    }
    for (const { key } of agents) {
        for (const site of JSON.parse(fieldOf(key, 'sites'))) {
            const rec = await dumpValue(`cd:{s:${site}}:${key.slice(3)}`, 'hash');
            assert.equal(rec.max_chats, fieldOf(key, 'max_chats'), `${key} in ${site}`);
            assert.equal(rec.name, fieldOf(key, 'name'));
            assert.equal(rec.status, 'offline');
        }
    }
    // each site's events, in order with their ids, and each consumer's cursor
    const sites = [...new Set(oldEvents.map(([, f]) => f[f.indexOf('s') + 1]).filter(Boolean))];
    for (const site of sites) {
        const want = oldEvents.filter(([, f]) => f[f.indexOf('s') + 1] === site);
        assert.deepEqual(await dumpValue(`cd:{s:${site}}:events`, 'stream'), want, `${site}'s events`);
        assert.equal(await env.redis.cmd('GET', `cd:{s:${site}}:events:armed`), '1', `${site} armed: a node's first pass applies what is owed`);
        const cur = await dumpValue(`cd:{s:${site}}:events:cur`, 'hash');
        for (const n of ['reports', 'health', 'webhooks', 'rules']) {
            const old = fixture.keys.find((k) => k.key === `cd:events:cursor:${n}`);
            assert.equal(cur[n], old ? old.value : (n === 'reports' ? '0-0' : oldEvents.at(-1)[0]), `${site} cursor ${n}`);
        }
    }
    const again = await env.admin('migrate');
    assert.equal(again.moved.total, 0, 'nothing left to move');
    assert.equal(again.conflicts, 0);
});

it("an agent's load of the previous release splits into the loads of its sites, where max_chats counts", async () => {
    const r = (...a) => env.redis.cmd(...a);
    await r('HSET', 'cd:agent:a_two', 'id', 'a_two', 'name', 'Two', 'sites', '["s1","s2"]', 'max_chats', '2', 'status', 'online');
    await r('HSET', 'cd:conv:{c_old}', 'id', 'c_old', 'site', 's2', 'status', 'open', 'assignee', 'a_two');
    await r('SADD', 'cd:agent:a_two:active', 'c_x.s1', 'c_y.s1', 'c_z.s2', 'c_old');
    const m = await env.admin('migrate');
    assert.equal(m.moved.agents, 2);
    assert.equal(m.moved.loads, 4);
    assert.deepEqual((await r('SMEMBERS', 'cd:{s:s1}:agent:a_two:active')).sort(), ['c_x.s1', 'c_y.s1']);
    assert.deepEqual((await r('SMEMBERS', 'cd:{s:s2}:agent:a_two:active')).sort(), ['c_old', 'c_z.s2']);
    assert.equal(Number(await r('EXISTS', 'cd:agent:a_two:active')), 0);
    assert.equal(await r('HGET', 'cd:{s:s1}:agent:a_two', 'max_chats'), '2');
    assert.equal(await r('HGET', 'cd:{s:s2}:agent:a_two', 'status'), 'offline', 'nodes are stopped: offline until a node vouches');
    // a record a new node already wrote stays as it is
    await r('HSET', 'cd:{s:s1}:agent:a_two', 'max_chats', '7');
    assert.equal((await env.admin('migrate')).moved.total, 0);
    assert.equal(await r('HGET', 'cd:{s:s1}:agent:a_two', 'max_chats'), '7');
    await r('DEL', 'cd:{a}:agent:a_two', 'cd:{s:s2}:conv:c_old', 'cd:{s:s1}:agent:a_two', 'cd:{s:s2}:agent:a_two',
        'cd:{s:s1}:agent:a_two:active', 'cd:{s:s2}:agent:a_two:active');
});

it('the previous release\'s site records, teams, queues, canned replies and presence move under their owner\'s tag', async () => {
    // keys of the layout this release replaces (issue 12 item 3) that the v1 fixture has no
    // example of; the fixture's own site, agent and global keys are checked by the first test
    const r = (...a) => env.redis.cmd(...a);
    await r('HSET', 'cd:site:s9', 'key', 's9', 'name', 'Nine', 'sla', '{"warn_at":0.5}');
    await r('HSET', 'cd:site:s9:teams', 'vip', 'VIP', 'sales', 'Sales');
    await r('ZADD', 'cd:site:s9:queue:vip', '1', 'c_q.s9');
    await r('SADD', 'cd:site:s9:canned', 'r_1');
    await r('SADD', 'cd:site:s9:webhooks', 'wh1');
    await r('HSET', 'cd:agent:a_nine', 'id', 'a_nine', 'name', 'Nine', 'sites', '["s9"]', 'max_chats', '3');
    await r('SADD', 'cd:agent:a_nine:canned', 'r_2');
    await r('ZADD', 'cd:presence', '99', 'a_nine');
    await r('HSET', 'cd:presence:a_nine', 'n1', '99');
    const m = await env.admin('migrate');
    assert.equal(m.moved.sites, 5);
    assert.equal(m.moved.agent_state, 4);
    assert.equal(m.moved.agents, 1, 'its record in s9');
    assert.deepEqual(await dumpValue('cd:{s:s9}:site', 'hash'), { key: 's9', name: 'Nine', sla: '{"warn_at":0.5}' });
    assert.deepEqual(await dumpValue('cd:{s:s9}:teams', 'hash'), { vip: 'VIP', sales: 'Sales' });
    assert.deepEqual(await r('ZRANGE', 'cd:{s:s9}:queue:vip', '0', '-1'), ['c_q.s9']);
    assert.deepEqual(await r('SMEMBERS', 'cd:{s:s9}:canned'), ['r_1']);
    assert.deepEqual(await r('SMEMBERS', 'cd:{a}:agent:a_nine:canned'), ['r_2']);
    assert.equal(await r('HGET', 'cd:{a}:agent:a_nine', 'max_chats'), '3');
    assert.equal(await r('ZSCORE', 'cd:{a}:presence', 'a_nine'), '99');
    assert.equal(await r('HGET', 'cd:{a}:presence:a_nine', 'n1'), '99');
    assert.deepEqual(await r('SMEMBERS', 'cd:{s:s9}:webhooks'), ['wh1'], 'the site\'s webhook set moves with it');
    for (const k of ['cd:site:s9', 'cd:site:s9:teams', 'cd:site:s9:queue:vip', 'cd:site:s9:canned', 'cd:site:s9:webhooks', 'cd:agent:a_nine',
        'cd:agent:a_nine:canned', 'cd:presence', 'cd:presence:a_nine']) {
        assert.equal(Number(await r('EXISTS', k)), 0, `${k} moved away`);
    }
    assert.equal((await env.admin('migrate')).moved.total, 0, 'a second run moves nothing');
    await r('DEL', 'cd:{s:s9}:site', 'cd:{s:s9}:teams', 'cd:{s:s9}:queue:vip', 'cd:{s:s9}:canned', 'cd:{s:s9}:webhooks',
        'cd:{a}:agent:a_nine', 'cd:{a}:agent:a_nine:canned', 'cd:{a}:presence', 'cd:{a}:presence:a_nine',
        'cd:{s:s9}:agent:a_nine');
});

it('the one ticket counter of the layout before per-site numbers: numbers move to their sites, every site counts on from it', async () => {
    const r = (...a) => env.redis.cmd(...a);
    await r('SADD', 'cd:{g}:sites', 's7', 's8');
    await r('SET', 'cd:ticket:seq', '1500');
    await r('SET', 'cd:ticket:1499', 'c_new.s7'); // a conversation id that names its site
    await r('SET', 'cd:ticket:1498', 'c_old'); // one that does not: found in its site's ticket index
    await r('ZADD', 'cd:{s:s8}:tickets', '1', 'c_old');
    await r('SET', 'cd:{s:s8}:ticket:seq', '1600'); // a counter already past it stays
    const m = await env.admin('migrate');
    assert.equal(m.moved.tickets, 3, 'two numbers and the counter');
    assert.equal(await r('GET', 'cd:{s:s7}:ticket:1499'), 'c_new.s7');
    assert.equal(await r('GET', 'cd:{s:s8}:ticket:1498'), 'c_old');
    assert.equal(await r('GET', 'cd:{s:s7}:ticket:seq'), '1500');
    assert.equal(await r('GET', 'cd:{s:s8}:ticket:seq'), '1600');
    for (const k of ['cd:ticket:seq', 'cd:ticket:1499', 'cd:ticket:1498']) assert.equal(Number(await r('EXISTS', k)), 0, `${k} moved away`);
    assert.equal((await env.admin('migrate')).moved.total, 0, 'a second run moves nothing');
    await r('SREM', 'cd:{g}:sites', 's7', 's8');
    await r('DEL', 'cd:{s:s7}:ticket:1499', 'cd:{s:s8}:ticket:1498', 'cd:{s:s8}:tickets', 'cd:{s:s7}:ticket:seq', 'cd:{s:s8}:ticket:seq');
});

it("an agent's one notice list goes to its sites' lists in order; roles fill the agents' site records", async () => {
    const r = (...a) => env.redis.cmd(...a);
    await r('SADD', 'cd:{g}:sites', 's5', 's6');
    const n = (id, site) => JSON.stringify({ id, kind: 'rule', site, conversation_id: null, title: 't', body: null, ts: id });
    await r('RPUSH', 'cd:{a}:agent:a_six:notices', n(3, 's6'), n(2, 's5'), n(1, 's6'));
    await r('SET', 'cd:notice:seq', '3');
    await r('HSET', 'cd:{a}:agent:a_six', 'id', 'a_six', 'sites', '["s6"]', 'role', 'admin');
    await r('HSET', 'cd:{s:s6}:agent:a_six', 'id', 'a_six', 'name', 'Six'); // synced before roles were copied
    const m = await env.admin('migrate');
    assert.equal(m.moved.notices, 2, 'the list and the counter');
    assert.equal(m.moved.agents, 1, 'the role in its s6 record');
    assert.deepEqual(await r('LRANGE', 'cd:{s:s6}:agent:a_six:notices', '0', '-1'), [n(3, 's6'), n(1, 's6')], 'newest first');
    assert.deepEqual(await r('LRANGE', 'cd:{s:s5}:agent:a_six:notices', '0', '-1'), [n(2, 's5')]);
    assert.equal(await r('GET', 'cd:{s:s5}:notice:seq'), '3');
    assert.equal(await r('HGET', 'cd:{s:s6}:agent:a_six', 'role'), 'admin');
    assert.equal(Number(await r('EXISTS', 'cd:{a}:agent:a_six:notices')), 0);
    assert.equal((await env.admin('migrate')).moved.total, 0, 'a second run moves nothing');
    await r('SREM', 'cd:{g}:sites', 's5', 's6');
    await r('DEL', 'cd:{s:s6}:agent:a_six:notices', 'cd:{s:s5}:agent:a_six:notices', 'cd:{s:s5}:notice:seq', 'cd:{s:s6}:notice:seq',
        'cd:{a}:agent:a_six', 'cd:{s:s6}:agent:a_six');
});

it("a site's webhooks (their deliveries, log, due set) and canned replies move into the site's slot; ids count on per site", async () => {
    const r = (...a) => env.redis.cmd(...a);
    await r('SADD', 'cd:{g}:sites', 's4');
    await r('HSET', 'cd:webhook:wh7', 'id', 'wh7', 'site', 's4', 'url', 'https://example.com/h', 'enabled', '1');
    await r('ZADD', 'cd:webhook:wh7:deliveries', '5', 'wh7.1-0');
    await r('LPUSH', 'cd:webhook:wh7:log', '{"delivery":"wh7.1-0"}');
    await r('HSET', 'cd:whd:wh7.1-0', 'id', 'wh7.1-0', 'webhook', 'wh7', 'site', 's4', 'state', 'pending');
    await r('ZADD', 'cd:webhooks:due', '5', 'wh7.1-0');
    await r('SET', 'cd:webhook:seq', '7');
    const m = await env.admin('migrate');
    assert.equal(m.moved.webhooks, 6, 'hash, deliveries, log, delivery, its due entry, the counter');
    assert.equal(await r('HGET', 'cd:{s:s4}:webhook:wh7', 'url'), 'https://example.com/h');
    assert.deepEqual(await r('ZRANGE', 'cd:{s:s4}:webhook:wh7:deliveries', '0', '-1'), ['wh7.1-0']);
    assert.deepEqual(await r('LRANGE', 'cd:{s:s4}:webhook:wh7:log', '0', '-1'), ['{"delivery":"wh7.1-0"}']);
    assert.equal(await r('HGET', 'cd:{s:s4}:whd:wh7.1-0', 'state'), 'pending');
    assert.equal(await r('ZSCORE', 'cd:{s:s4}:webhooks:due', 'wh7.1-0'), '5');
    assert.equal(await r('GET', 'cd:{s:s4}:webhook:seq'), '7', 'the next webhook of s4 is wh8');
    for (const k of ['cd:webhook:wh7', 'cd:webhook:wh7:deliveries', 'cd:webhook:wh7:log', 'cd:whd:wh7.1-0', 'cd:webhooks:due', 'cd:webhook:seq']) {
        assert.equal(Number(await r('EXISTS', k)), 0, `${k} moved away`);
    }
    assert.equal((await env.admin('migrate')).moved.total, 0, 'a second run moves nothing');
    // canned replies: the hash into its site, an agent's own set into the agent's set there
    await r('HSET', 'cd:canned:r_9', 'id', 'r_9', 'site', 's4', 'scope', 'agent', 'owner', 'a_4', 'shortcut', 'hi', 'body', 'Hi');
    await r('SADD', 'cd:{a}:agent:a_4:canned', 'r_9');
    const m2 = await env.admin('migrate');
    assert.equal(m2.moved.canned, 2);
    assert.equal(await r('HGET', 'cd:{s:s4}:canned:r_9', 'body'), 'Hi');
    assert.deepEqual(await r('SMEMBERS', 'cd:{s:s4}:agent:a_4:canned'), ['r_9']);
    assert.equal(Number(await r('EXISTS', 'cd:canned:r_9')) + Number(await r('EXISTS', 'cd:{a}:agent:a_4:canned')), 0);
    await r('DEL', 'cd:{s:s4}:canned:r_9', 'cd:{s:s4}:agent:a_4:canned');
    await r('SREM', 'cd:{g}:sites', 's4');
    await r('DEL', 'cd:{s:s4}:webhook:wh7', 'cd:{s:s4}:webhook:wh7:deliveries', 'cd:{s:s4}:webhook:wh7:log', 'cd:{s:s4}:whd:wh7.1-0',
        'cd:{s:s4}:webhooks:due', 'cd:{s:s4}:webhook:seq');
});

it('a migrated key whose new name is taken stays put and is reported', async () => {
    await env.redis.cmd('SET', 'cd:health:shop:x:email:y@example.com', 'old');
    await env.redis.cmd('SET', 'cd:{s:shop}:health:x:email:y@example.com', 'new');
    const r = await env.admin('migrate');
    assert.equal(r.moved.total, 0);
    assert.equal(r.conflicts, 1);
    assert.deepEqual(r.conflict_keys, ['cd:health:shop:x:email:y@example.com']);
    assert.equal(await env.redis.cmd('GET', 'cd:health:shop:x:email:y@example.com'), 'old');
    await env.redis.cmd('DEL', 'cd:health:shop:x:email:y@example.com', 'cd:{s:shop}:health:x:email:y@example.com');
});

it('a node serves the migrated data: tickets, messages, rules, articles, report figures, alerts', async () => {
    await env.addNode();
    const token = await env.login(0, 'boss@example.com', 'boss-password');
    const get = async (url) => {
        const r = await env.http(0, url, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(r.status, 200, `${url}: ${r.text}`);
        return JSON.parse(r.text);
    };
    const convs = fixture.keys.filter((k) => /^cd:conv:\{[^}]+\}$/.test(k.key));
    const list = await get('/api/v1/conversations?site=shop&per_page=100');
    assert.equal(list.total, convs.length);
    const tickets = await get('/api/v1/tickets?site=shop');
    assert.equal(tickets.total, 1);
    const t = await get(`/api/v1/tickets/${tickets.tickets[0].ticket.number}`);
    const msgs = fixture.keys.find((k) => k.key === `cd:conv:{${t.ticket.id}}:msgs`).value;
    assert.deepEqual(t.messages.map((m) => m.id), msgs.map(([, f]) => f[f.indexOf('id') + 1]));
    assert.ok(t.ticket.ticket.sla.resolution_due > 0, 'SLA deadlines kept');
    const timers = fixture.keys.find((k) => k.key === 'cd:timers').value;
    assert.ok(timers.some((m) => m === `slabreach|${t.ticket.id}|resolution`), 'the fixture has the ticket timers');
    // the first test saw every timer in its site's zset; the node fires those that are due
    // by now (the fixture's deadlines are wall-clock times), the others wait
    const left = await env.redis.cmd('ZRANGE', 'cd:{s:shop}:timers', '0', '-1', 'WITHSCORES');
    for (let i = 0; i < timers.length; i += 2) {
        if (Number(timers[i + 1]) > Date.now() + 60_000) assert.ok(left.includes(timers[i]), `${timers[i]} waits`);
    }
    const rules = await get('/api/v1/admin/sites/shop/rules');
    assert.deepEqual(rules.rules.map((r) => r.name), ['Tag refunds']);
    const kb = await get('/api/v1/kb/sites/shop/search?q=refund');
    assert.deepEqual(kb.articles.map((a) => a.title), ['Refund policy']);
    const dayKey = fixture.keys.find((k) => k.key.startsWith('cd:rpt:shop:d:'));
    const day = dayKey.key.slice('cd:rpt:shop:d:'.length);
    const created = Number(dayKey.value[dayKey.value.indexOf('all|created') + 1]);
    const rep = await get(`/api/v1/reports/summary?site=shop&from=${day}&to=${day}`);
    assert.equal(rep.metrics.conversations, created);
    assert.ok(created >= 2);
    const alerts = await get('/api/v1/alerts?site=shop');
    assert.equal(alerts.alerts.length, fixture.keys.find((k) => k.key === 'cd:site:shop:alerts').value.length);
});
