// The widget's reconnect schedule (docs/widget.md "Reconnect", RELIABILITY F9): after a
// drop, a widget with nothing to send waits up to 8 s before its first attempt, so that a
// load balancer's restart does not bring every idle visitor back in the same second; a
// message typed meanwhile brings the attempt forward to within 2 s. The page's
// Math.random is pinned to 0.999 so the jitter is at its top and the times are certain:
// the idle wait is ≈ 8 s, the hurried one ≈ 2 s.
import { useStack, it, assert, addSite, addAgent, takeConversation, agentSay, widget, waitUntil, sleep, WAIT, SCALE } from './lib.mjs';

const st = useStack({ nodes: 2, nginx: true });

async function connections(env) {
    const out = [];
    for (const n of env.nodes) out.push(n.running ? (await env.http(n, '/healthz')).json?.connections ?? -1 : 0);
    return out;
}

it('after a drop an idle widget waits, and a message typed meanwhile reconnects it within about 2 s', async () => {
    const { env, nginx } = st;
    const site = await addSite(env, [nginx.origin]);
    const page = await st.browser.page();
    await page.addInitScript(() => {
        Math.random = () => 0.999;
    });
    const w = widget(page);
    await page.goto(`${nginx.origin}/demo?site=${site}`);
    await w.launcher.click();
    await w.waitState('online');
    const conns = await waitUntil(async () => {
        const c = await connections(env);
        return c.reduce((x, y) => x + y, 0) === 1 ? c : null;
    }, { timeout: WAIT * 2, what: 'the widget as the only connection' });
    const vi = conns.indexOf(1);
    const victim = env.nodes[vi];
    const survivor = env.nodes[1 - vi];
    const a = await addAgent(env, site, 1 - vi, { name: 'Li Lei' });
    await w.field('name').fill('Wang Fang');
    await w.field('email').fill('wang@example.com');
    await w.field('message').fill('Where is my order?');
    await w.q('.form button[type=submit]').click();
    const cid = await takeConversation(a);
    await agentSay(a, cid, 'Let me check');
    await w.waitText('Let me check');

    // the drop: the balancer already routes to the survivor only, so an attempt would succeed
    await nginx.reload([victim.port]);
    await victim.kill9();
    await waitUntil(async () => (await w.state()) !== 'online', { timeout: WAIT * 2, what: 'the widget notices the drop' });
    const dropAt = Date.now();
    await nginx.reload([survivor.port]);
    // nothing to send: no attempt for ≈ 8 s
    await sleep(Math.max(0, 2500 - (Date.now() - dropAt)));
    assert.notEqual(await w.state(), 'online', `an idle widget reconnected ${Date.now() - dropAt} ms after the drop`);
    // a message typed now: back within ≈ 2 s, well before the idle wait would end
    const from = a.mark();
    const typedAt = Date.now();
    await w.send('are you still there?');
    await w.waitState('online', 6000 * SCALE);
    const back = Date.now() - typedAt;
    assert.ok(back <= 3500 * SCALE, `reconnected ${back} ms after the message was typed (hurried: ≈ 2 s; idle: ≈ 5.5 s)`);
    assert.ok(Date.now() - dropAt < 7000 * SCALE, 'before the idle wait (≈ 8 s) would have ended');
    await a.waitFor((f) => f.type === 'message.created' && f.message?.body === 'are you still there?', { from, what: 'the message at the agent' });
    assert.equal(a.filter((f) => f.type === 'message.created' && f.message?.body === 'are you still there?', from).length, 1);
});
