// Never lose, never double, through a load balancer: two nodes behind a test-local nginx
// (WebSocket upgrade, round robin, no sticky sessions). The node the widget is connected
// to is killed with kill -9 mid-conversation. A message typed during the outage is shown
// as pending, kept in the outbox and arrives exactly once; the agent's messages sent
// meanwhile appear in order, once each; a reload afterwards shows the same conversation.
//
// To make "during the outage" certain rather than a race with the widget's first retry,
// nginx is reloaded before the kill with only the widget's node in its upstream list, as
// a balancer whose health checks have not yet noticed the dead node would, and then with
// both nodes again.
import { useStack, it, assert, addSite, addAgent, takeConversation, agentSay, widget, screenshot, waitUntil, sleep, WAIT, SCALE } from './lib.mjs';

const st = useStack({ nodes: 2, nginx: true });

async function connections(env) {
    const out = [];
    for (const n of env.nodes) {
        if (!n.running) {
            out.push(0);
            continue;
        }
        const r = await env.http(n, '/healthz');
        out.push(r.json?.connections ?? -1);
    }
    return out;
}

it('kill -9 of the widget\'s node behind nginx: the outage message arrives once, the agent\'s messages in order', async () => {
    const { env, nginx } = st;
    const site = await addSite(env, [nginx.origin]);
    const page = await st.browser.page();
    const w = widget(page);
    // the page, the script and the socket all come through nginx
    const resp = await page.goto(`${nginx.origin}/demo?site=${site}`);
    assert.equal(resp.status(), 200);
    await w.launcher.click();
    await w.waitState('online');
    // which node holds the widget's socket? (no agent connected yet: the one with 1)
    const conns = await waitUntil(
        async () => {
            const c = await connections(env);
            return c.reduce((x, y) => x + y, 0) === 1 ? c : null;
        },
        { timeout: WAIT * 2, what: 'the widget as the only connection' },
    );
    const vi = conns.indexOf(1);
    const victim = env.nodes[vi];
    const survivor = env.nodes[1 - vi];

    // the agent works directly on the other node
    const a = await addAgent(env, site, 1 - vi, { name: 'Zhang Wei' });
    await w.field('name').fill('Han Meimei');
    await w.field('email').fill('han@example.com'); // required: no agent was online at hello (offline form)
    await w.field('message').fill('Is my parcel on its way?');
    await w.q('.form button[type=submit]').click();
    const cid = await takeConversation(a);
    await agentSay(a, cid, 'before 1');
    await w.waitText('before 1');
    let from = a.mark();
    await w.send('visitor before');
    await a.waitFor((f) => f.type === 'message.created' && f.message?.body === 'visitor before', { from, what: 'visitor before' });

    // the outage
    await nginx.reload([victim.port]);
    await victim.kill9();
    await waitUntil(async () => (await w.state()) !== 'online', { timeout: WAIT * 2, what: 'the widget notices the drop' });
    from = a.mark();
    await w.send('typed during the outage');
    const pending = (await w.list()).find((m) => m.text === 'typed during the outage');
    assert.equal(pending.status, 'pending', 'shown at once as pending');
    const outbox = await page.evaluate((s) => JSON.parse(localStorage.getItem(`chatdesk:v1:${s}:outbox`) || '[]'), site);
    assert.deepEqual(outbox.map((o) => o.body), ['typed during the outage'], 'kept in the outbox');
    await waitUntil(async () => (await w.conn.isVisible()) && /Reconnecting/.test(await w.conn.textContent()), { what: 'reconnecting banner' });
    await screenshot(page, '20-failover-01-outage-pending');
    const away = [];
    for (const body of ['while away 1', 'while away 2', 'while away 3']) away.push(await agentSay(a, cid, body));
    await sleep(1000 * SCALE); // the widget keeps retrying against the dead node meanwhile
    assert.notEqual(await w.state(), 'online');

    // the balancer routes to the survivor again
    await nginx.reload([env.nodes[0].port, env.nodes[1].port]);
    await w.waitState('online', 45_000 * SCALE);
    await w.waitText('typed during the outage');
    await waitUntil(async () => (await w.list()).find((m) => m.text === 'typed during the outage')?.status === 'sent', { timeout: WAIT * 2, what: 'outage message acknowledged' });
    await a.waitFor((f) => f.type === 'message.created' && f.message?.body === 'typed during the outage', { from, what: 'outage message at the agent' });
    await w.waitText('while away 3');
    await sleep(500 * SCALE); // give a duplicate the chance to show up

    // exactly once at the agent, in the store and on screen; the agent's in order
    assert.equal(a.filter((f) => f.type === 'message.created' && f.message?.body === 'typed during the outage', from).length, 1);
    const h = await a.ok({ type: 'history', conversation_id: cid, limit: 100 });
    const bodies = h.messages.map((m) => m.body);
    assert.equal(bodies.filter((b) => b === 'typed during the outage').length, 1, 'stored once');
    const list = await w.list();
    const seqs = list.filter((m) => Number.isInteger(m.seq)).map((m) => m.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), 'ordered by seq, no duplicate');
    for (const body of ['before 1', 'visitor before', 'while away 1', 'while away 2', 'while away 3', 'typed during the outage'])
        assert.equal(list.filter((m) => m.text === body).length, 1, `"${body}" shown once`);
    const order = list.map((m) => m.text).filter((t) => /^while away/.test(t));
    assert.deepEqual(order, ['while away 1', 'while away 2', 'while away 3']);
    assert.deepEqual(
        away.map((m) => m.seq),
        list.filter((m) => /^while away/.test(m.text)).map((m) => m.seq),
    );
    // the widget's own view matches the store exactly
    assert.deepEqual(
        list.filter((m) => Number.isInteger(m.seq)).map((m) => [m.seq, m.text]),
        h.messages.map((m) => [m.seq, m.body]),
    );
    assert.equal(await page.evaluate((s) => localStorage.getItem(`chatdesk:v1:${s}:outbox`), site), null, 'outbox empty');
    assert.equal(await w.conn.isHidden(), true);
    await screenshot(page, '20-failover-02-recovered');

    // the conversation goes on, and a reload still shows each message once
    from = a.mark();
    await w.send('back to normal');
    await a.waitFor((f) => f.type === 'message.created' && f.message?.body === 'back to normal', { from, what: 'after recovery' });
    await page.reload();
    await w.waitState('online', WAIT * 3);
    const after = await w.list();
    const h2 = await a.ok({ type: 'history', conversation_id: cid, limit: 100 });
    assert.deepEqual(
        after.filter((m) => Number.isInteger(m.seq)).map((m) => [m.seq, m.text]),
        h2.messages.map((m) => [m.seq, m.body]),
    );
    assert.ok(survivor.running);
    assert.deepEqual(page.cdErrors, []);
});
