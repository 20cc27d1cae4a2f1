// The public article page (/kb/?site=<key>&id=<id>[&lang=zh-CN]): reads one published
// article from /api/v1/public/sites/<key>/kb/articles/<id> and shows it as plain text
// (paragraphs split on blank lines), only ever through textContent.
const T = {
    en: { loading: 'Loading…', missing: 'This article does not exist or is not published.', failed: 'Could not load the article. Please try again.', updated: 'Updated' },
    'zh-CN': { loading: '加载中…', missing: '该文章不存在或尚未发布。', failed: '文章加载失败，请稍后再试。', updated: '更新于' },
};

async function main() {
    const q = new URLSearchParams(location.search);
    const site = q.get('site') || '';
    const id = q.get('id') || '';
    const want = q.get('lang') || navigator.language || '';
    let lang = want.startsWith('zh') ? 'zh-CN' : 'en';
    const $ = (x) => document.getElementById(x);
    const state = $('state');
    state.textContent = T[lang].loading;
    let r;
    try {
        r = await fetch(`/api/v1/public/sites/${encodeURIComponent(site)}/kb/articles/${encodeURIComponent(id)}`);
    } catch {
        state.textContent = T[lang].failed;
        return;
    }
    if (!r.ok) {
        state.textContent = r.status === 404 ? T[lang].missing : T[lang].failed;
        return;
    }
    const a = (await r.json()).article;
    lang = a.locale === 'zh-CN' ? 'zh-CN' : 'en';
    document.documentElement.lang = lang;
    document.title = a.title;
    $('title').textContent = a.title;
    $('cat').textContent = a.category || '';
    const body = $('body');
    for (const para of String(a.body || '').split(/\n\s*\n/)) {
        if (!para.trim()) continue;
        const p = document.createElement('p');
        p.textContent = para.trim();
        body.appendChild(p);
    }
    $('meta').textContent = `${T[lang].updated} ${new Date(Number(a.updated_at)).toLocaleDateString(lang)}`;
    state.hidden = true;
    $('article').hidden = false;
}

main();
