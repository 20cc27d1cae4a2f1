// RELIABILITY S7 with a corpus (nightly), the widget side: every payload of
// tests/support/xss-corpus.txt (over 100) as an agent message, as a message the visitor
// types, and as the agent's name (one agent per payload writes one message, so the name
// shows beside it); the pre-chat form sends payloads as name, subject and first message.
// Pass: each
// shows as its exact text, once; no markup from payloads in the page or the widget's
// shadow root, no alert/confirm/prompt, no console.error, no CSP violation, no page error;
// the same after a reload (restored from storage).
import fs from 'node:fs';
import path from 'node:path';
import { useStack, it, assert, waitUntil, addSite, addAgent, takeConversation, agentSay, widget, xssHook, xssAssertClean, REPO_ROOT } from '../e2e/lib.mjs';

const CORPUS = fs
    .readFileSync(path.join(REPO_ROOT, 'tests', 'support', 'xss-corpus.txt'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));

// agent names are 1-200 bytes without control characters (a tab becomes a space)
const agentName = (p) => p.replace(/[\u0000-\u001f]/g, ' ').slice(0, 100);

// Each bubble's text starts with its author label ("<who>: ", hidden for screen readers);
// the lib's list() cuts at the first ": ", which payloads contain, so the bubbles are read
// here whole and a payload is shown when the text is the label and exactly the payload.
async function bubbles(page) {
    return page.evaluate(() =>
        [...(document.getElementById('chatdesk-widget')?.shadowRoot?.querySelectorAll('.list > li') ?? [])].map((li) => ({
            kind: li.classList.contains('me') ? 'me' : li.classList.contains('sys') ? 'sys' : 'them',
            seq: li.hasAttribute('data-seq') ? Number(li.getAttribute('data-seq')) : null,
            text: li.querySelector('.bubble')?.textContent ?? '',
            who: li.querySelector('.who')?.textContent ?? null,
        })),
    );
}
const isText = (m, p) => {
    if (m.text === p) return true;
    if (!m.text.endsWith(`: ${p}`)) return false;
    const label = m.text.slice(0, m.text.length - p.length - 2);
    return label === m.who || !/[<>]/.test(label);
};

const st = useStack({ nodes: 1 });

it(`S7: ${CORPUS.length} XSS payloads as messages both ways and as agent and visitor names in the widget are text; nothing runs`, async () => {
    assert.ok(CORPUS.length >= 100, `the corpus has ${CORPUS.length} payloads`);
    const site = await addSite(st.env, [st.origin()]);
    const a = await addAgent(st.env, site, 0, { name: 'Owner' });
    const page = await st.browser.page();
    const dialogs = await xssHook(page);
    const w = widget(page);
    await page.goto(`${st.origin()}/demo?site=${site}`);
    await w.launcher.click();
    await w.waitState('online');
    await w.field('name').fill(CORPUS[0]);
    await w.field('subject').fill(CORPUS[1]);
    await w.field('message').fill(CORPUS[2]);
    await w.q('.form button[type=submit]').click();
    await w.waitText(CORPUS[2]);
    const cid = await takeConversation(a);

    // agent messages, each from an agent named with the payload
    for (const [i, p] of CORPUS.entries()) {
        if (i % 2 === 0) await agentSay(a, cid, p);
        else {
            const ag = await st.env.addAgent({ site, name: agentName(p) });
            const b = await st.env.agent(0, { email: ag.email, password: ag.password, label: `agent ${i}` });
            await agentSay(b, cid, p);
            b.terminate();
        }
    }
    await waitUntil(async () => (await bubbles(page)).some((m) => isText(m, CORPUS.at(-1))), { timeout: 60_000, what: 'the last agent message in the widget' });
    // the visitor types each payload (one after another: the visitor's rate limit)
    const mine = async (p) => (await bubbles(page)).filter((m) => isText(m, p) && m.kind === 'me' && m.seq !== null).length;
    for (const p of CORPUS) {
        const had = await mine(p);
        await w.send(p);
        await waitUntil(async () => (await mine(p)) === had + 1, {
            timeout: 30_000,
            what: `the visitor's ${JSON.stringify(p)} stored`,
        });
    }
    const list = await bubbles(page);
    for (const p of CORPUS) {
        const n = list.filter((m) => isText(m, p)).length;
        assert.ok(n >= 2, `shown as text from both sides: ${p} (${n})`);
    }
    const who = new Set(list.map((m) => m.who).filter(Boolean));
    const named = CORPUS.filter((p, i) => i % 2 === 1 && who.has(agentName(p)));
    assert.ok(named.length >= CORPUS.length / 2 - 1, `agent names shown as text: ${named.length}`);
    console.log(`S7 widget: ${CORPUS.length} payloads x 2 directions; ${named.length} shown as agent names`);
    await xssAssertClean(page, dialogs, 'live');

    await page.reload();
    await w.panel.waitFor();
    await waitUntil(async () => (await bubbles(page)).some((m) => isText(m, CORPUS.at(-1))), { timeout: 60_000, what: 'the messages restored after the reload' });
    await xssAssertClean(page, dialogs, 'after reload');
    a.terminate();
});
