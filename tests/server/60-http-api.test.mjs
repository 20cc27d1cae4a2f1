// HTTP endpoints: /healthz, /metrics (Prometheus text) and the login API's errors.
import { useEnv, it, assert, rnd } from './harness.mjs';

const env = useEnv({ nodes: 1 });

it('GET /healthz: 200 {"status":"ok","node":<id>,"redis":"up"}', async () => {
    const r = await env.http(0, '/healthz');
    assert.equal(r.status, 200, r.text);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.equal(r.json?.status, 'ok', r.text);
    assert.equal(r.json.node, 'n1');
    assert.equal(r.json.redis, 'up');
});

// Prometheus text exposition format 0.0.4, line by line.
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE = '(?:[-+]?(?:[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)|[-+]?Inf|NaN)';
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? ${VALUE}(?: -?[0-9]+)?$`);
const HELP_RE = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

it('GET /metrics: Prometheus text exposition format', async () => {
    // Some traffic first so counters have moved.
    const site = await env.addSite();
    const v = await env.visitor(0, { site });
    await v.ok({ type: 'conversation.start', form: { message: 'metrics please' } });

    const r = await env.http(0, '/metrics');
    assert.equal(r.status, 200, r.text.slice(0, 500));
    assert.match(String(r.headers['content-type']), /^text\/plain/);
    const lines = r.text.split('\n');
    assert.equal(lines.at(-1), '', 'ends with a newline');
    const typed = new Map();
    let samples = 0;
    for (const line of lines.slice(0, -1)) {
        if (line === '') continue;
        if (line.startsWith('#')) {
            const t = TYPE_RE.exec(line);
            if (t) {
                assert.ok(!typed.has(t[1]), `TYPE given twice for ${t[1]}`);
                typed.set(t[1], t[2]);
                continue;
            }
            assert.ok(HELP_RE.test(line) || !/^# (HELP|TYPE) /.test(line), `malformed comment line: ${line}`);
            continue;
        }
        const m = SAMPLE_RE.exec(line);
        assert.ok(m, `malformed sample line: ${JSON.stringify(line)}`);
        samples++;
        const base = m[1].replace(/_(bucket|sum|count|total|created)$/, '');
        assert.ok(typed.has(m[1]) || typed.has(base) || typed.size === 0, `sample ${m[1]} has no TYPE line before it`);
    }
    assert.ok(samples >= 3, `some samples (${samples})`);
    for (const [name, type] of typed) if (type === 'counter') assert.ok(!/[^_]_total_total$/.test(name), name);
});

it('POST /api/v1/login with bad JSON: 400 with a JSON error body', async () => {
    for (const body of ['{"email": "a@example.com", ', 'not json', '[]', '"x"', '']) {
        const r = await env.http(0, '/api/v1/login', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
        assert.equal(r.status, 400, `body ${JSON.stringify(body)}: HTTP ${r.status} ${r.text}`);
        assert.match(String(r.headers['content-type']), /application\/json/);
        assert.equal(r.json?.error?.code, 'bad_request', r.text);
        assert.equal(typeof r.json.error.message, 'string');
    }
    // Missing or mistyped fields are bad requests too, never a 5xx.
    for (const body of [{}, { email: 'a@example.com' }, { email: 5, password: 'x' }]) {
        const r = await env.http(0, '/api/v1/login', { method: 'POST', body });
        assert.ok([400, 401].includes(r.status), `body ${JSON.stringify(body)}: HTTP ${r.status} ${r.text}`);
        assert.ok(['bad_request', 'unauthorized'].includes(r.json?.error?.code), r.text);
    }
});

it('POST /api/v1/login with an oversized body is refused without a crash', async () => {
    const body = JSON.stringify({ email: 'a@example.com', password: 'x'.repeat(200_000) });
    const r = await env.http(0, '/api/v1/login', { method: 'POST', body }).catch((e) => ({ status: 0, error: e }));
    assert.ok(r.status === 0 || (r.status >= 400 && r.status < 500), `HTTP ${r.status}`);
    const h = await env.http(0, '/healthz');
    assert.equal(h.status, 200, 'node still healthy');
});

it('the login still works after the bad requests', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site, email: `ok-${rnd(3)}@example.com` });
    const token = await env.login(0, ag.email, ag.password);
    assert.equal(typeof token, 'string');
});

it('an id in a path is validated before use: 400 bad_request; a well-formed unknown id is 404', async () => {
    const site = await env.addSite();
    const admin = await env.addAgent({ site, role: 'admin' });
    const token = await env.login(0, admin.email, admin.password);
    const get = (p) => env.http(0, p, { headers: { authorization: `Bearer ${token}` } });
    const bad = ['x'.repeat(129), 'a%20b', 'a:b', 'a*b', '%C3%A9t%C3%A9', "a'b", 'a%00b'];
    for (const id of bad) {
        for (const p of [`/api/v1/visitors/${id}`, `/api/v1/tickets/${id}`, `/api/v1/admin/sites/${id}/teams`, `/api/v1/kb/sites/${site.key}/articles/${id}`]) {
            const r = await get(p);
            assert.equal(r.status, 400, `${p}: ${r.status} ${r.text}`);
            assert.equal(r.json?.error?.code, 'bad_request', p);
            assert.match(r.json.error.message, /invalid id|NUL or control character/, p);
        }
    }
    // the same routes with well-formed ids that name nothing
    for (const p of ['/api/v1/visitors/v_nobody', '/api/v1/tickets/999999', '/api/v1/admin/sites/no-such-site/teams']) {
        const r = await get(p);
        assert.equal(r.status, 404, `${p}: ${r.status} ${r.text}`);
    }
    // and a real one still answers
    assert.equal((await get(`/api/v1/admin/sites/${site.key}/teams`)).status, 200);
});
