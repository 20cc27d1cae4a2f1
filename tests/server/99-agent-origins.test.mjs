// /ws/agent and Origin (security issue, finding 8): with agent_origins empty the agent
// endpoint used to accept any Origin, so any web page could open an agent socket in a
// logged-in browser. Now empty means the node's own origin as the browser sees it:
// http:// or https:// followed by the request's Host (the dashboard /app/ is served from
// there; behind nginx the client's Host is passed on). "*" keeps any Origin for operators
// who want it; a list allows exactly its entries. Refusals are 403 with a JSON body.
import { useEnv, it, assert, Client } from './harness.mjs';

const env = useEnv({
    nodes: 3,
    nodeArgs: { 0: [], 1: ['--agent-origins', '*'], 2: ['--agent-origins', 'https://desk.example.com'] },
});

/** 101 -> 'open', else the HTTP status of the refusal. */
async function upgrade(node, origin, headers = {}) {
    try {
        const c = await Client.open(`${env.nodes[node].url}/ws/agent`, { origin, headers });
        c.ws.terminate();
        return 'open';
    } catch (e) {
        if (e.status === 403) assert.equal(JSON.parse(e.body).error.code, 'forbidden');
        return e.status ?? e.message;
    }
}

it('agent_origins empty: only the node\'s own origin (http or https + Host) is upgraded', async () => {
    const own = env.nodes[0].httpUrl; // http://127.0.0.1:PORT
    const hostPort = own.slice('http://'.length);
    assert.equal(await upgrade(0, own), 'open');
    assert.equal(await upgrade(0, `https://${hostPort}`), 'open');
    assert.equal(await upgrade(0, `HTTP://${hostPort.toUpperCase()}`), 403, 'the scheme is compared exactly');
    for (const o of [
        'http://localhost:3000',
        `http://${hostPort}.evil.com`,
        `http://evil.com/${hostPort}`,
        `http://127.0.0.1:${Number(hostPort.split(':')[1]) + 1}`,
        'http://127.0.0.1',
        `ws://${hostPort}`,
        'null',
        null, // no Origin header
    ])
        assert.equal(await upgrade(0, o), 403, `Origin ${o}`);
    // behind a proxy that passes the client's Host on
    assert.equal(await upgrade(0, 'https://chat.example.com', { Host: 'chat.example.com' }), 'open');
    assert.equal(await upgrade(0, 'https://evil.example.com', { Host: 'chat.example.com' }), 403);
});

it('agent_origins "*" accepts any Origin; a list accepts exactly its entries', async () => {
    assert.equal(await upgrade(1, 'http://evil.example'), 'open');
    assert.equal(await upgrade(1, null), 'open');
    assert.equal(await upgrade(2, 'https://desk.example.com'), 'open');
    assert.equal(await upgrade(2, env.nodes[2].httpUrl), 403, 'the node\'s own origin is not in the list');
    assert.equal(await upgrade(2, null), 403);
});

it('the harness agent (own origin) logs in and is welcomed', async () => {
    const site = await env.addSite({ probe: false });
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    assert.equal(a.welcome.type, 'welcome');
});
