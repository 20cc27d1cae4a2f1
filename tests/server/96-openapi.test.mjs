// The OpenAPI 3.1 document (issue 17 item 4): GET /api/v1/openapi.json serves
// docs/openapi.json; its operations are exactly the routes the server has (the route
// tables of server/http/api/*.c and the two routes http.c answers itself); the server
// answers every documented operation (not the router's "no such resource" or "method not
// allowed") with a status the document lists for it and a body that matches that
// status's schema (every error's, the API token objects'; most success bodies are only
// "an object" in the document); and what it says API tokens may call
// (x-api-token-scope) is what the server lets a token of each scope do.
import fs from 'node:fs';
import path from 'node:path';
import { useEnv, it, assert, REPO_ROOT } from './harness.mjs';

const env = useEnv({ nodes: 1 });
const DOC = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'docs', 'openapi.json'), 'utf8'));
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** Every route of the route tables, as "METHOD /api/v1/a/:/b". */
function tableRoutes() {
    const dir = path.join(REPO_ROOT, 'server', 'http', 'api');
    const out = new Set();
    for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.c'))) {
        const text = fs.readFileSync(path.join(dir, f), 'utf8');
        for (const m of text.matchAll(/\{"(GET|POST|PATCH|PUT|DELETE)", "([^"]*)", "[a-z_]+", \{[^}]*\}, (?:true|false), [A-Z_0-9]+\}/g)) out.add(`${m[1]} /api/v1/${m[2]}`);
    }
    const http = fs.readFileSync(path.join(REPO_ROOT, 'server', 'http', 'http.c'), 'utf8');
    assert.match(http, /strcmp\(uri, "\/api\/v1\/login"\) == 0/);
    assert.match(http, /strcmp\(uri, "\/api\/v1\/openapi.json"\) == 0/);
    out.add('POST /api/v1/login');
    out.add('GET /api/v1/openapi.json');
    return out;
}

/** Every operation of the document: [{key, method, path, op}]. */
function docOps() {
    const out = [];
    for (const [p, item] of Object.entries(DOC.paths))
        for (const m of METHODS) if (item[m]) out.push({ key: `${m.toUpperCase()} ${p.replace(/\{[^}]+\}/g, ':')}`, method: m.toUpperCase(), path: p, op: item[m] });
    return out;
}

/** The errors of value v against a schema of the document (the JSON Schema keywords it
 *  uses: $ref, type, enum, pattern, required, properties, additionalProperties, items,
 *  minItems). */
function schemaErrors(schema, v, where = '$', out = []) {
    if (schema.$ref) schema = schema.$ref.split('/').slice(1).reduce((o, k) => o[k], DOC);
    const type = v === null ? 'null' : Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v;
    const types = [].concat(schema.type ?? []);
    if (types.length && !types.includes(type) && !(type === 'integer' && types.includes('number'))) {
        out.push(`${where}: ${type} is not ${types.join('|')}`);
        return out;
    }
    if (schema.enum && !schema.enum.includes(v)) out.push(`${where}: ${JSON.stringify(v)} not in ${schema.enum}`);
    if (schema.pattern && typeof v === 'string' && !new RegExp(schema.pattern).test(v)) out.push(`${where}: ${v} does not match ${schema.pattern}`);
    if (type === 'object') {
        for (const k of schema.required ?? []) if (!(k in v)) out.push(`${where}: no ${k}`);
        for (const [k, s] of Object.entries(schema.properties ?? {})) if (k in v) schemaErrors(s, v[k], `${where}.${k}`, out);
        if (schema.additionalProperties === false) for (const k of Object.keys(v)) if (!(k in (schema.properties ?? {}))) out.push(`${where}: unexpected ${k}`);
    }
    if (type === 'array') {
        if (schema.minItems && v.length < schema.minItems) out.push(`${where}: fewer than ${schema.minItems} items`);
        if (schema.items) v.forEach((x, i) => schemaErrors(schema.items, x, `${where}[${i}]`, out));
    }
    return out;
}

/** The answer r matches what the document says of its status (a JSON body's schema). */
function assertMatches(o, r, what) {
    let resp = o.op.responses[String(r.status)];
    assert.ok(resp, `${what}: ${r.status} ${r.text.slice(0, 200)} is not among ${Object.keys(o.op.responses)}`);
    if (resp.$ref) resp = DOC.components.responses[resp.$ref.split('/').pop()];
    const schema = resp.content?.['application/json']?.schema;
    if (!schema) return;
    assert.ok(r.json !== undefined && r.json !== null, `${what}: ${r.status} has a JSON body`);
    const errs = schemaErrors(schema, r.json);
    assert.deepEqual(errs, [], `${what}: ${r.status} ${r.text.slice(0, 300)}`);
}

const call = (tok, method, p, body) => env.http(0, p, { method, body, headers: tok ? { authorization: `Bearer ${tok}` } : {} });

it('the document is served, is OpenAPI 3.1, and has exactly the routes of the tables', async () => {
    const r = await env.http(0, '/api/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /application\/json/);
    assert.deepEqual(r.json, DOC, 'served as in docs/openapi.json');
    assert.equal(DOC.openapi, '3.1.0');
    assert.equal((await env.http(0, '/api/v1/openapi.json', { method: 'DELETE' })).status, 405);
    const routes = tableRoutes();
    const ops = docOps();
    const documented = new Set(ops.map((o) => o.key));
    assert.ok(routes.size > 60, `${routes.size} routes read from the tables`);
    assert.deepEqual([...routes].filter((x) => !documented.has(x)), [], 'routes missing from the document');
    assert.deepEqual([...documented].filter((x) => !routes.has(x)), [], 'documented operations the server does not have');
    assert.equal(ops.length, documented.size);
    const ids = ops.map((o) => o.op.operationId);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    for (const o of ops) {
        const names = [...o.path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
        assert.deepEqual((o.op.parameters || []).filter((x) => x.in === 'path').map((x) => x.name), names, `${o.key}: path parameters`);
        assert.ok(o.op.summary && o.op.responses && Object.keys(o.op.responses).length > 0, `${o.key}: summary and responses`);
        for (const [, v] of Object.entries(o.op.responses)) {
            const ref = v.$ref ? v.$ref.split('/').pop() : null;
            assert.ok(!ref || DOC.components.responses[ref], `${o.key}: ${v.$ref} resolves`);
        }
    }
});

/** A concrete URL for a documented path: the site's key for a site, else dummy ids. */
function concrete(p, site) {
    return p.replace(/\{([^}]+)\}/g, (_, n) => (n === 'site_key' || n === 'site' ? site : n === 'number' ? '1000' : 'x1'));
}

it('the server answers every documented operation, with a status the document lists', async () => {
    const site = await env.addSite({ probe: false });
    const owner = await env.addAgent({ site, role: 'owner' });
    const tok = await env.login(0, owner.email, owner.password);
    const ops = docOps().filter((o) => o.op.operationId !== 'logout');
    let n = 0;
    for (const o of ops) {
        const url = concrete(o.path, site.key) + (o.path.includes('{') || o.method !== 'GET' ? '' : `?site=${site.key}`);
        const r = await call(o.op.security?.length === 0 ? null : tok, o.method, url, o.op.requestBody ? {} : undefined);
        const msg = r.json?.error?.message || '';
        assert.ok(!/^(no such resource|method not allowed)$/.test(msg), `${o.key}: the router does not know it (${r.status} ${msg})`);
        assertMatches(o, r, o.key);
        n++;
    }
    // logout last, with a login of its own
    const own = await env.login(0, owner.email, owner.password);
    const r = await call(own, 'POST', '/api/v1/logout');
    assert.ok(DOC.paths['/api/v1/logout'].post.responses[String(r.status)], `logout ${r.status}`);
    // the check can fail: a path no route has is the router's
    const none = await call(tok, 'GET', '/api/v1/nothing-here');
    assert.equal(none.json.error.message, 'no such resource');
    assert.ok(n > 60);
});

it('x-api-token-scope is what the server lets API tokens of each scope call', async () => {
    const site = await env.addSite({ probe: false });
    const admin = await env.addAgent({ site, role: 'admin' });
    const login = await env.login(0, admin.email, admin.password);
    const tokens = {};
    for (const s of ['read', 'write', 'admin']) {
        const r = await call(login, 'POST', `/api/v1/admin/sites/${site.key}/tokens`, { name: s, scopes: [s] });
        assert.equal(r.status, 201, r.text);
        tokens[s] = r.json.secret;
        assertMatches({ op: DOC.paths['/api/v1/admin/sites/{site_key}/tokens'].post }, r, 'a token made');
    }
    const list = await call(login, 'GET', `/api/v1/admin/sites/${site.key}/tokens`);
    assert.equal(list.json.tokens.length, 3);
    assertMatches({ op: DOC.paths['/api/v1/admin/sites/{site_key}/tokens'].get }, list, 'the token list');
    // the check can fail: a token object with a field the schema does not have
    const bad = structuredClone(list.json);
    bad.tokens[0].hash = 'x';
    assert.deepEqual(schemaErrors(DOC.paths['/api/v1/admin/sites/{site_key}/tokens'].get.responses['200'].content['application/json'].schema, bad), ['$.tokens[0]: unexpected hash']);
    for (const o of docOps()) {
        if (o.op.security?.length === 0) continue; // public, the login and this document
        const want = o.op['x-api-token-scope'];
        const url = concrete(o.path, site.key);
        for (const [s, tok] of Object.entries(tokens)) {
            const r = await call(tok, o.method, url, o.op.requestBody ? {} : undefined);
            const msg = r.json?.error?.message || '';
            if (want === null) {
                assert.equal(r.status, 403, `${o.key} with a ${s} token: ${r.text}`);
                assert.match(msg, /API tokens cannot call this endpoint/, o.key);
            } else if (want !== s && o.op.requestBody && r.status === 400) {
                // a body the route's own checks refuse is answered before the token's check
                // in Redis (docs/api.md "API tokens"): nothing of the site is read
                assert.equal(r.json.error.code, 'bad_request', o.key);
            } else if (want !== s) {
                assert.equal(r.status, 403, `${o.key} with a ${s} token: ${r.text}`);
                assert.match(msg, new RegExp(`does not have the ${want} scope`), o.key);
            } else {
                assert.ok(!/API tokens cannot|does not have the/.test(msg), `${o.key} with a ${s} token: ${r.status} ${msg}`);
            }
            assertMatches(o, r, `${o.key} with a ${s} token`);
            assert.ok(o.op.security.some((x) => x.apiToken) === (want !== null), `${o.key}: security names apiToken iff a scope`);
        }
    }
});
