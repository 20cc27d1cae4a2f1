// F7 (RELIABILITY.md): a half-open visitor. Its connection goes through a relay that stops
// passing node -> client bytes (no RST, no FIN: the node's writes still succeed, its pings
// go unanswered). With a test idle policy (ping after PING_S idle seconds, hang-up after
// IDLE_S without a pong) the node frees the socket within IDLE_S + PING_S; the agent's
// messages sent meanwhile reach the visitor when it comes back with resume (0 lost, in
// order, each once). The node's own count (/metrics) tells when it freed the socket.
import { useEnv, it, assert, Client, Link, ORIGIN, SCALE, rnd, range, assertOrdered, waitUntil } from './harness.mjs';

const PING_S = 2;
const IDLE_S = 6;
const env = useEnv({ nodes: 1, args: ['--ping-interval-s', String(PING_S), '--idle-timeout-s', String(IDLE_S)] });

async function visitorConnections() {
    const m = await env.http(0, '/metrics');
    return Number(/^chatdesk_connections_by_role\{role="visitor"\} (\d+)/m.exec(m.text)?.[1]);
}

it('F7: a half-open visitor is freed within idle_timeout_s + ping_interval_s; what it missed comes on resume', async () => {
    const node = env.nodes[0];
    const link = await new Link({ port: node.port }).start();
    try {
        const site = await env.addSite();
        const ag = await env.addAgent({ site });
        const a = await env.agent(0, { email: ag.email, password: ag.password });
        const v = await Client.open(`ws://127.0.0.1:${link.port}/ws/visitor`, { origin: ORIGIN, label: 'half-open visitor' });
        const w = await v.request({ type: 'hello', site: site.key });
        assert.equal(w.type, 'welcome');
        const start = await v.ok({ type: 'conversation.start', form: { message: 'hello' } });
        const cid = start.conversation.id;
        await a.waitFor((f) => f.type === 'conversation.queued' && f.conversation?.id === cid);
        const conv = (await a.ok({ type: 'conversation.accept', conversation_id: cid })).conversation;
        const seen = await v.waitFor((f) => f.type === 'message.created' && f.conversation_id === cid && f.message.seq === conv.last_seq, {
            what: 'the visitor up to date before the cut',
        });
        const lastSeen = seen.message.seq;
        const before = await visitorConnections();
        assert.ok(before >= 1);

        const cutAt = Date.now();
        link.cut('down');
        const sent = [];
        for (let i = 0; i < 3; i++)
            sent.push((await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `f7-${rnd(4)}`, body: `while half-open ${i}` })).message);
        assert.deepEqual(sent.map((m) => m.seq), range(lastSeen + 1, lastSeen + 3));

        // the node hangs up on its side (the relay holds the node's close with the rest of
        // its bytes, so the node's own count tells)
        const freedAt = await waitUntil(async () => (await visitorConnections()) === before - 1 && Date.now(), {
            timeout: (IDLE_S + PING_S + 1) * 1000 * SCALE,
            interval: 100,
            what: 'the node to free the half-open socket',
        });
        const freedMs = freedAt - cutAt;
        assert.ok(freedMs >= (IDLE_S - PING_S - 1) * 1000, `freed after ${freedMs} ms: before the idle timeout, not by it`);
        assert.ok(freedMs <= (IDLE_S + PING_S) * 1000 * SCALE, `freed after ${freedMs} ms`);
        // nothing of what was sent meanwhile reached the half-open client
        assert.equal(v.messages(cid).filter((m) => m.seq > lastSeen).length, 0);
        v.terminate();

        // the visitor comes back (directly) and resumes from what it saw
        const back = await env.visitor(0, { site, token: w.token, resume: [{ conversation_id: cid, after_seq: lastSeen, epoch: start.conversation.epoch }] });
        const resumed = await back.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { what: 'resumed' });
        assert.equal(resumed.recovered, true);
        assert.deepEqual(back.messages(cid).map((m) => m.id), sent.map((m) => m.id), 'every message sent meanwhile, once, in order');
        assertOrdered(back, cid);
        console.log(`F7: node freed the half-open socket ${freedMs} ms after the cut (ping ${PING_S} s, idle ${IDLE_S} s)`);
        a.terminate();
        back.terminate();
    } finally {
        link.stop();
    }
});
