// The dashboard's pure helpers (no browser, no server): canned-reply variables, SLA
// levels, link splitting, the "/" query, and both languages having every text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fillCanned, unfilledVars, unknownVars, changedSettings, cannedContext, searchCanned, slashQuery, slaState, linkify, safeHref, fmtDuration, parseRanges, queueOrder } from '../../dashboard/src/util.js';
import { DICTS, t, setLang } from '../../dashboard/src/i18n.js';
import { translator } from '../../widget/src/i18n.js';

test('canned variables: filled from the conversation, the visitor and the agent', () => {
    const ctx = cannedContext({
        conversation: { visitor: { name: 'Li Lei' }, ticket: { number: 1042 } },
        visitor: { name: 'Li Lei', attributes: { plan: 'Pro', seats: 12, empty: '', nothing: null } },
        agent: { name: 'Wang Fang' },
    });
    const r = fillCanned('Hi {customer_name}, {agent_name} here about #{ticket_number} ({attr.plan}, {attr.seats} seats).', ctx);
    assert.equal(r.text, 'Hi Li Lei, Wang Fang here about #1042 (Pro, 12 seats).');
    assert.deepEqual(r.missing, []);
    // Chinese aliases from the support team's templates
    assert.equal(fillCanned('{客户姓名}您好，工单 {工单编号}', ctx).text, 'Li Lei您好，工单 1042');
});

test('canned variables without a value stay visible and are reported, never filled with blanks', () => {
    const ctx = cannedContext({ conversation: { visitor: { name: null }, ticket: null }, visitor: { attributes: { empty: ' ' } }, agent: { name: 'Wang Fang' } });
    const r = fillCanned('Hi {customer_name}, ticket {ticket_number}, {attr.empty}{attr.nope}, {agent_name}', ctx);
    assert.equal(r.text, 'Hi {customer_name}, ticket {ticket_number}, {attr.empty}{attr.nope}, Wang Fang');
    assert.deepEqual(r.missing, ['{customer_name}', '{ticket_number}', '{attr.empty}', '{attr.nope}']);
    assert.deepEqual(unfilledVars(r.text), r.missing);
    assert.deepEqual(unfilledVars('plain {text} with braces {x.y}'), []);
    // a value is inserted as text once; braces inside a value are not expanded again
    const r2 = fillCanned('{customer_name}', cannedContext({ visitor: { name: '{agent_name}' }, agent: { name: 'A' } }));
    assert.equal(r2.text, '{agent_name}');
});

test('canned search and the "/" query', () => {
    const list = [
        { id: 1, shortcut: 'refund', title: 'Refund policy', body: 'We refund within 14 days.' },
        { id: 2, shortcut: 'greet', title: 'Greeting', body: 'Hello {customer_name}!' },
        { id: 3, shortcut: 'bye', title: 'Closing', body: 'Anything else about your refund?' },
    ];
    assert.deepEqual(searchCanned(list, 'gr').map((x) => x.id), [2]);
    assert.deepEqual(searchCanned(list, 'refund').map((x) => x.id), [1, 3]);
    assert.equal(searchCanned(list, '').length, 3);
    assert.deepEqual(slashQuery('/gre', 4), { start: 0, query: 'gre' });
    assert.deepEqual(slashQuery('hello /re', 9), { start: 6, query: 're' });
    assert.equal(slashQuery('http://x', 8), null);
    assert.equal(slashQuery('a/b', 3), null);
});

test('SLA levels: ok, amber at the warning instant, red at the deadline or when reported breached', () => {
    const sla = { first_response_due: 10_000, first_response_warn: 8_000, resolution_due: 100_000, resolution_warn: 80_000, next_response_due: null, paused: false, breached: [] };
    assert.equal(slaState({ sla }, 1_000).level, 'ok');
    assert.equal(slaState({ sla }, 1_000).kind, 'first_response');
    assert.equal(slaState({ sla }, 8_000).level, 'warn');
    assert.equal(slaState({ sla }, 10_000).level, 'breach');
    assert.equal(slaState({ sla: { ...sla, breached: ['resolution'] } }, 1_000).level, 'breach');
    assert.equal(slaState({ sla: { ...sla, paused: true } }, 50_000).level, 'paused');
    assert.equal(slaState({ sla: { breached: [], paused: false } }, 1).level, 'met');
    assert.equal(slaState({ sla: { breached: ['first_response'], paused: false } }, 1).level, 'breach');
    assert.equal(slaState(null, 1), null);
});

test('links: only http(s) becomes a link, the rest stays text', () => {
    assert.deepEqual(linkify('see https://example.com/a?b=1, thanks'), [{ text: 'see ' }, { href: 'https://example.com/a?b=1', text: 'https://example.com/a?b=1' }, { text: ', thanks' }]);
    assert.deepEqual(linkify('javascript:alert(1) <b>x</b>'), [{ text: 'javascript:alert(1) <b>x</b>' }]);
    assert.equal(safeHref('javascript:alert(1)'), null);
    assert.equal(safeHref('https://ok.example/'), 'https://ok.example/');
});

test('durations, business-hour ranges, queue order', () => {
    assert.equal(fmtDuration(75_000), '1m 15s');
    assert.equal(fmtDuration(-5_000), '5s');
    assert.equal(fmtDuration(3_725_000), '1h 2m');
    assert.deepEqual(parseRanges('9:00-12:00, 13:00-18:00'), [['09:00', '12:00'], ['13:00', '18:00']]);
    assert.equal(parseRanges('nine to five'), null);
    const q = [
        { id: 'a', priority: 'normal', created_at: 1 },
        { id: 'b', priority: 'urgent', created_at: 5 },
        { id: 'c', priority: 'normal', created_at: 0 },
    ].sort(queueOrder);
    assert.deepEqual(q.map((x) => x.id), ['b', 'c', 'a']);
});

test('zh-CN and en have the same texts', () => {
    const en = Object.keys(DICTS.en).sort();
    const zh = Object.keys(DICTS['zh-CN']).sort();
    assert.deepEqual(zh.filter((k) => !en.includes(k)), [], 'zh-CN keys missing in en');
    // <key>_one: the English singular (Chinese has one form)
    assert.deepEqual(en.filter((k) => !zh.includes(k) && !(k.endsWith('_one') && en.includes(k.slice(0, -4)))), [], 'en keys missing in zh-CN');
    // placeholders match
    for (const k of en) {
        const ph = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
        if (DICTS['zh-CN'][k] !== undefined) assert.equal(ph(DICTS['zh-CN'][k]), ph(DICTS.en[k]), `placeholders of ${k}`);
    }
});

test('canned bodies: unknown placeholders are named, known variables and plain braces are not', () => {
    assert.deepEqual(unknownVars('Hi {customer_nmae}, {customer_name} {客户姓名} {attr.plan-x} owes {amount} {"a":1} { x } {amount}'), ['{customer_nmae}', '{amount}']);
    assert.deepEqual(unknownVars('plain text'), []);
});

test('settings forms send only what changed, nested objects member by member', () => {
    const before = { name: 'A', origins: ['x'], widget: { color: '#111111', greeting_en: 'Hi', survey: { nps: true, ces: false } } };
    assert.deepEqual(changedSettings(before, structuredClone(before)), {});
    assert.deepEqual(changedSettings(before, { ...before, widget: { ...before.widget, survey: { nps: true, ces: true } } }), { widget: { survey: { ces: true } } });
    assert.deepEqual(changedSettings(before, { ...before, origins: ['x', 'y'], name: 'B' }), { name: 'B', origins: ['x', 'y'] });
});

test('opening hours are checked as the server checks them (open before close, at most 4 a day)', () => {
    assert.equal(parseRanges('18:00-09:00'), null);
    assert.equal(parseRanges('09:00-09:00'), null);
    assert.equal(parseRanges('09:60-10:00'), null);
    assert.equal(parseRanges('1:00-2:00 3:00-4:00 5:00-6:00 7:00-8:00 9:00-10:00'), null);
    assert.deepEqual(parseRanges('00:00-24:00'), [['00:00', '24:00']]);
});

test('counts read right in English: "1 breach", "1 unread message" (dashboard and widget)', () => {
    setLang('en');
    assert.equal(t('rpt.breachesN', { n: 1 }), '1 breach');
    assert.equal(t('rpt.breachesN', { n: 2 }), '2 breaches');
    setLang('zh-CN');
    assert.equal(t('rpt.breachesN', { n: 1 }), '超时 1 次');
    setLang('en');
    assert.equal(translator('en')('unread', { n: 1 }), '1 unread message');
    assert.equal(translator('en')('unread', { n: 3 }), '3 unread messages');
    assert.equal(translator('zh-CN')('unread', { n: 1 }), '1 条未读消息');
});

test('a resolved or closed ticket shows met or breached, never paused', () => {
    const now = 1_000_000;
    const sla = { first_response_due: null, next_response_due: null, resolution_due: null, paused: true, breached: ['first_response'] };
    assert.equal(slaState({ sla }, now, 'closed').level, 'breach');
    assert.equal(slaState({ sla }, now, 'closed').kind, 'first_response');
    assert.equal(slaState({ sla: { ...sla, breached: [] } }, now, 'resolved').level, 'met');
    assert.equal(slaState({ sla }, now, 'pending').level, 'paused');
});
