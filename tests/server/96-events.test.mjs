// A site's event consumers (docs/keyspace.md "Events", server/events/): the first event
// after the consumers caught up tells the nodes once ("E <site>" on ch:events) and arms
// the site; the events that follow gather for event_poll_ms and are applied by one pass
// (one read for reports, health, webhooks and rules) on one node, though every node got
// the notice; the pass that catches up disarms the site, so the next event tells the
// nodes again. A pass held by a node that died is taken over once its lease runs out.
import { useEnv, it, assert, waitUntil, sleep, SCALE } from './harness.mjs';

const POLL = 1500; // long enough to see the events wait, short enough for a test
const env = useEnv({ nodes: 2, args: ['--event-poll-ms', String(POLL)] });
const CONSUMERS = ['reports', 'health', 'webhooks', 'rules'];

async function metrics(i) {
    const r = await env.http(i, '/metrics');
    const m = new Map();
    for (const line of r.text.split('\n')) {
        const x = /^(chatdesk_event\w*|chatdesk_events_applied_total) (\S+)$/.exec(line);
        if (x) m.set(x[1], Number(x[2]));
    }
    return m;
}
const total = async (name) => (await metrics(0)).get(name) + (await metrics(1)).get(name);
const k = (site) => `cd:{s:${site.key}}:events`;
async function cursors(site) {
    const h = await env.redis.cmd('HGETALL', `${k(site)}:cur`);
    const o = {};
    for (let i = 0; i < h.length; i += 2) o[h[i]] = h[i + 1];
    return o;
}
const lastId = async (site) => (await env.redis.cmd('XREVRANGE', k(site), '+', '-', 'COUNT', '1'))[0]?.[0];

it('events gather: one notice, one pass on one node for a burst, disarmed when caught up, told again after', async () => {
    const site = await env.addSite();
    const passes0 = await total('chatdesk_event_passes_total');
    const applied0 = await total('chatdesk_events_applied_total');
    const v = await env.visitor(1, { site });
    const cid = (await v.ok({ type: 'conversation.start', form: { message: 'first' } })).conversation.id;
    for (let i = 0; i < 5; i++) await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `m${i}`, body: `more ${i}` });
    // within event_poll_ms: armed, nothing applied yet
    assert.equal(await env.redis.cmd('GET', `${k(site)}:armed`), '1');
    const n = Number(await env.redis.cmd('XLEN', k(site)));
    assert.ok(n >= 7, `created + 6 messages (+ the acknowledgement) in the stream: ${n}`);
    assert.deepEqual(await cursors(site), {}, 'no consumer ran yet');
    // one pass applies them all, for every consumer
    const last = await lastId(site);
    await waitUntil(async () => {
        const c = await cursors(site);
        return CONSUMERS.every((x) => c[x] === last);
    }, { timeout: (POLL + 5000) * SCALE, what: 'every consumer at the last event' });
    await waitUntil(async () => (await env.redis.cmd('GET', `${k(site)}:armed`)) === null, { what: 'disarmed' });
    assert.equal(await env.redis.cmd('GET', `${k(site)}:lease`), null, 'the lease was given back');
    assert.ok(Number(await env.redis.cmd('XLEN', k(site))) <= 1, 'applied events are trimmed (events_retain_s 0; the stream keeps the last applied one)');
    await waitUntil(async () => (await total('chatdesk_events_applied_total')) - applied0 === n, { what: 'metrics' });
    assert.equal(await total('chatdesk_event_passes_total') - passes0, 1, 'one pass on one node for the whole burst');
    // caught up: the next event tells the nodes again
    await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'later', body: 'one more' });
    const armedNow = await env.redis.cmd('GET', `${k(site)}:armed`);
    const again = await lastId(site);
    // armed, unless a pass another notice scheduled (the site cache's reload polls every
    // site) ran in between and applied it already
    if (armedNow !== '1') assert.equal((await cursors(site)).reports, again, 'armed, or already applied');
    await waitUntil(async () => (await cursors(site)).reports === again, { timeout: (POLL + 5000) * SCALE, what: 'the next pass' });
    assert.equal(await total('chatdesk_event_passes_total') - passes0, 2);
    v.terminate();
});

it('a pass whose node died holds the site only until its lease runs out; nothing is applied twice', async () => {
    const site = await env.addSite();
    // a node that died mid-pass: its lease is still there
    await env.redis.cmd('SET', `${k(site)}:lease`, 'dead-node', 'PX', '3000');
    const v = await env.visitor(0, { site });
    const cid = (await v.ok({ type: 'conversation.start', form: { message: 'hello' } })).conversation.id;
    await sleep(POLL + 500);
    assert.deepEqual(await cursors(site), {}, 'the live nodes were told "busy"');
    const last = await lastId(site);
    // they look again once the lease could have run out (10 s)
    await waitUntil(async () => (await cursors(site)).reports === last, { timeout: 20_000 * SCALE, what: 'taken over after the lease' });
    const backlog = await env.redis.cmd('HGET', `cd:{s:${site.key}}:rpt:backlog`, 'all|queued');
    assert.equal(backlog, '1', `the conversation counted once in the reports (${backlog})`);
    assert.ok(cid);
    v.terminate();
});
