// The knowledge base (docs/kb.md): articles per site, full-text search in Chinese and
// English through the C tokenizer and the inverted index in Redis, drafts hidden from
// the public routes, suggestions from a conversation's text, bad input and permissions.
import { useEnv, it, assert } from './harness.mjs';

const env = useEnv({ nodes: 1 });

const call = (token, method, url, body) => env.http(0, url, { method, body, headers: token ? { authorization: `Bearer ${token}` } : {} });
const json = (r) => JSON.parse(r.text);

async function people(site) {
    const adm = await env.addAgent({ site, role: 'admin' });
    const ag = await env.addAgent({ site });
    return { admin: await env.login(0, adm.email, adm.password), agent: await env.login(0, ag.email, ag.password) };
}

const ARTICLES = [
    { title: '如何申请退款', body: '在订单页面点击“申请退款”，填写原因后提交。退款将在3到5个工作日内退回原支付账户。', category: '订单', locale: 'zh-CN' },
    { title: '修改收货地址', body: '发货前可以在订单详情中修改收货地址。已发货的订单请联系客服。', category: '配送', locale: 'zh-CN' },
    { title: '忘记密码怎么办', body: '在登录页点击“忘记密码”，输入注册邮箱，按邮件中的链接重置密码。', category: '账户', locale: 'zh-CN' },
    { title: 'How to reset your password', body: 'Click "Forgot password" on the sign-in page and follow the link we email you to choose a new password.', category: 'Account', locale: 'en' },
    { title: 'Shipping times', body: 'Orders ship within 2 business days. Delivery takes 3-7 days depending on your region.', category: 'Delivery', locale: 'en' },
    { title: 'Refund policy', body: 'You can request a refund within 30 days. Refunds are returned to the original payment method.', category: 'Orders', locale: 'en' },
];

async function seed(token, site) {
    const ids = [];
    for (const a of ARTICLES) {
        const r = await call(token, 'POST', `/api/v1/kb/sites/${site.key}/articles`, { ...a, status: 'published' });
        assert.equal(r.status, 201, r.text);
        ids.push(json(r).article.id);
    }
    return ids;
}

const top = async (token, site, q, extra = '') => {
    const url = token ? `/api/v1/kb/sites/${site.key}/search?q=${encodeURIComponent(q)}${extra}`
        : `/api/v1/public/sites/${site.key}/kb/search?q=${encodeURIComponent(q)}${extra}`;
    const r = await call(token, 'GET', url);
    assert.equal(r.status, 200, r.text);
    return json(r).articles;
};

it('knowledge-base search returns the right article for Chinese and English queries', async () => {
    const site = await env.addSite();
    const { admin, agent } = await people(site);
    const ids = await seed(admin, site);
    const cases = [
        ['退款', 0], ['我想退款', 0], ['怎么申请退款？', 0], ['收货地址', 1], ['地址改了', 1], ['忘记密码', 2], ['密码', 2],
        ['reset password', 3], ['Resetting my PASSWORD', 3], ['shipping', 4], ['how long does delivery take', 4],
        ['refunds', 5], ['ＲＥＦＵＮＤ', 5] /* full-width */, ['refund please!!', 5],
    ];
    for (const [q, want] of cases) {
        for (const token of [agent, null]) {
            const res = await top(token, site, q);
            assert.ok(res.length > 0, `no result for ${q}`);
            assert.equal(res[0].id, ids[want], `${q} (${token ? 'agent' : 'public'}): got ${res.map((x) => x.title).join(' | ')}`);
        }
    }
    // the widget learns from welcome that the site has published articles (and another does not)
    assert.equal((await env.visitor(0, { site })).welcome.site.kb, true);
    assert.equal((await env.visitor(0, { site: await env.addSite() })).welcome.site.kb, false);
    // a snippet from the body around the match, the locale filter, nothing for unknown words
    const [r0] = await top(null, site, '退款');
    assert.match(r0.snippet, /退款/);
    assert.equal(r0.body, undefined);
    assert.equal((await top(null, site, 'password', '&locale=zh-CN')).length, 0);
    assert.equal((await top(null, site, 'xylophone')).length, 0);
    assert.equal((await top(null, site, '密码', '&locale=zh-CN'))[0].id, ids[2]);
});

it('edits re-index, deletes unindex; drafts are for agents only', async () => {
    const site = await env.addSite();
    const { admin, agent } = await people(site);
    let r = await call(admin, 'POST', `/api/v1/kb/sites/${site.key}/articles`, { title: 'Gift cards', body: 'Gift cards never expire.', locale: 'en', category: 'Payments' });
    assert.equal(r.status, 201, r.text);
    const a = json(r).article;
    assert.equal(a.status, 'draft');
    // draft: agents find and read it, the public does not
    assert.equal((await top(agent, site, 'gift card'))[0].id, a.id);
    assert.equal((await top(null, site, 'gift card')).length, 0);
    assert.equal((await call(null, 'GET', `/api/v1/public/sites/${site.key}/kb/articles/${a.id}`)).status, 404);
    assert.equal((await call(agent, 'GET', `/api/v1/kb/sites/${site.key}/articles/${a.id}`)).status, 200);
    // publish + retitle: the old title's words no longer find it, the new ones do
    r = await call(admin, 'PATCH', `/api/v1/kb/sites/${site.key}/articles/${a.id}`, { status: 'published', title: '礼品卡有效期' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await top(null, site, '礼品卡'))[0].id, a.id);
    assert.equal((await top(null, site, 'gift')).length, 1, 'the body still says gift');
    r = await call(admin, 'PATCH', `/api/v1/kb/sites/${site.key}/articles/${a.id}`, { body: '礼品卡永久有效。' });
    assert.equal((await top(null, site, 'gift')).length, 0);
    r = await call(null, 'GET', `/api/v1/public/sites/${site.key}/kb/articles/${a.id}`);
    assert.equal(r.status, 200);
    assert.equal(json(r).article.body, '礼品卡永久有效。');
    assert.equal(json(r).article.author, undefined);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    // list, categories
    r = await call(agent, 'GET', `/api/v1/kb/sites/${site.key}/articles?status=published`);
    assert.deepEqual(json(r).articles.map((x) => x.id), [a.id]);
    r = await call(agent, 'GET', `/api/v1/kb/sites/${site.key}/categories`);
    assert.deepEqual(json(r).categories, ['Payments']);
    // delete
    assert.equal((await call(admin, 'DELETE', `/api/v1/kb/sites/${site.key}/articles/${a.id}`)).status, 204);
    assert.equal((await top(agent, site, '礼品卡')).length, 0);
    assert.equal((await call(agent, 'GET', `/api/v1/kb/sites/${site.key}/articles/${a.id}`)).status, 404);
    assert.deepEqual(json(await call(agent, 'GET', `/api/v1/kb/sites/${site.key}/categories`)).categories, []);
});

it('suggestions for a conversation come from its subject and the visitor\'s messages', async () => {
    const site = await env.addSite();
    const { admin } = await people(site);
    const ids = await seed(admin, site);
    const { a, cid } = await env.chat({ site, firstMessage: '你好，我想申请退款' });
    let r = await call(a.token, 'GET', `/api/v1/kb/suggest?conversation=${cid}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(json(r).articles[0].id, ids[0]);
    // another agent's site: 404; missing parameter: 400
    const other = await env.addSite();
    const stranger = await env.addAgent({ site: other });
    const st = await env.login(0, stranger.email, stranger.password);
    assert.equal((await call(st, 'GET', `/api/v1/kb/suggest?conversation=${cid}`)).status, 404);
    assert.equal((await call(a.token, 'GET', '/api/v1/kb/suggest')).status, 400);
});

it('bad input is a 400 with an error body; writes need an admin; other sites are 404', async () => {
    const site = await env.addSite();
    const { admin, agent } = await people(site);
    const base = `/api/v1/kb/sites/${site.key}/articles`;
    const bad = [
        {}, { title: '' }, { title: '   ' }, { title: 5 }, { title: 'x'.repeat(201) }, { title: 'ok', body: 'x'.repeat(20001) },
        { title: 'ok', locale: 'fr' }, { title: 'ok', status: 'live' }, { title: 'ok', category: ['a'] },
        { title: 'ok', title_tokens: 'nope' },
    ];
    for (const b of bad) {
        const r = await call(admin, 'POST', base, b);
        if (b.title_tokens) {
            // caller-supplied tokens are replaced by the tokenizer's, never trusted
            assert.equal(r.status, 201, r.text);
            continue;
        }
        assert.equal(r.status, 400, `${JSON.stringify(b).slice(0, 80)}: ${r.text}`);
        assert.equal(json(r).error.code, 'bad_request');
    }
    assert.equal((await call(admin, 'POST', base, '[1,2]')).status, 400);
    assert.equal((await call(agent, 'GET', `/api/v1/kb/sites/${site.key}/search`)).status, 400);
    assert.equal((await call(agent, 'GET', `/api/v1/kb/sites/${site.key}/search?q=%20`)).status, 400);
    assert.equal((await call(null, 'GET', `/api/v1/public/sites/${site.key}/kb/search?q=x&locale=xx`)).status, 400);
    assert.equal((await call(agent, 'GET', `${base}/abc`)).status, 404);
    // an agent reads but does not write
    let r = await call(agent, 'POST', base, { title: 'mine' });
    assert.equal(r.status, 403);
    assert.equal(json(r).error.code, 'forbidden');
    const created = json(await call(admin, 'POST', base, { title: 'Secret draft', status: 'draft' })).article;
    assert.equal((await call(agent, 'PATCH', `${base}/${created.id}`, { status: 'published' })).status, 403);
    assert.equal((await call(agent, 'DELETE', `${base}/${created.id}`)).status, 403);
    // no token: 401; other site's agent and admin: 404 (nothing leaks)
    assert.equal((await call(null, 'GET', base)).status, 401);
    const other = await env.addSite();
    const o = await people(other);
    for (const t of [o.agent, o.admin]) {
        assert.equal((await call(t, 'GET', `${base}/${created.id}`)).status, 404);
        assert.equal((await call(t, 'GET', `/api/v1/kb/sites/${site.key}/search?q=secret`)).status, 404);
    }
    assert.equal((await call(o.admin, 'POST', base, { title: 'x' })).status, 404);
    assert.equal((await call(o.admin, 'DELETE', `${base}/${created.id}`)).status, 404);
    // public: unknown site 404; public routes are read-only
    assert.equal((await call(null, 'GET', '/api/v1/public/sites/nope_site/kb/search?q=x')).status, 404);
    assert.equal((await call(null, 'POST', `/api/v1/public/sites/${site.key}/kb/search`, {})).status, 400);
});

it('a search reads only the postings of its terms: hundreds of articles, a handful of reads', async () => {
    const site = await env.addSite();
    const { admin } = await people(site);
    const N = 200;
    let target;
    for (let i = 0; i < N; i++) {
        const a = i === 137
            ? { title: '发票抬头怎么修改', body: 'Change the invoice title before the invoice is issued.', locale: 'zh-CN' }
            : { title: `Product note ${i}`, body: `Lantern model ${i} care: keep it dry. 灯笼型号${i}保养说明。`, locale: 'en' };
        const r = await call(admin, 'POST', `/api/v1/kb/sites/${site.key}/articles`, { ...a, status: 'published' });
        assert.equal(r.status, 201, r.text);
        if (i === 137) target = json(r).article.id;
    }
    const stats = async () => {
        const info = String(await env.redis.cmd('INFO', 'commandstats'));
        const m = /cmdstat_hgetall:calls=(\d+)/.exec(info);
        return m ? Number(m[1]) : 0;
    };
    const before = await stats();
    const res = await top(null, site, '发票');
    const after = await stats();
    assert.equal(res[0].id, target);
    assert.ok(after - before <= 5, `HGETALL calls for one search: ${after - before} (of ${N} articles)`);
    // and a common term still gives at most `limit` hydrated articles
    const b2 = await stats();
    const many = await top(null, site, 'lantern care', '&limit=3');
    assert.equal(many.length, 3);
    assert.ok((await stats()) - b2 <= 3);
});
