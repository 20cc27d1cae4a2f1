// Conversations and messages across two nodes: start, accept, send both ways, seq,
// idempotency, private notes, permissions, history, typing/read, csat, presence,
// accept conflicts, status updates and resume.
import { useEnv, it, assert, assertError, assertOrdered, rnd, range } from './harness.mjs';

// High rate limits: some tests send bursts of messages on one connection.
const env = useEnv({ nodes: 2, args: ['--visitor-rate', '1000', '--visitor-burst', '1000', '--agent-rate', '1000', '--agent-burst', '1000'] });

const cmid = () => `cm-${rnd(6)}`;
async function send(client, cid, body, extra = {}) {
    const r = await client.ok({ type: 'message.send', conversation_id: cid, client_msg_id: extra.client_msg_id ?? cmid(), body, ...extra });
    assert.ok(r.message, `ok of message.send carries the message: ${JSON.stringify(r)}`);
    return r.message;
}
const isMsg = (cid, pred = () => true) => (f) => f.type === 'message.created' && f.conversation_id === cid && pred(f.message);
const isResumed = (cid) => (f) => f.type === 'resumed' && f.conversation_id === cid;

/** Sends a resume frame with a rid; resolves the resumed event of the last entry (or the
 *  error echoing the rid) plus the mark taken before sending. */
async function resume(c, entries) {
    const mark = c.mark();
    const rid = c.nextRid();
    c.send({ type: 'resume', rid, conversations: entries });
    const cid = entries.at(-1).conversation_id;
    const done = await c.waitFor((f) => isResumed(cid)(f) || (f.type === 'error' && (f.rid === rid || f.conversation_id === cid)), {
        from: mark,
        what: `resumed ${cid}`,
    });
    return { mark, rid, done };
}

it('conversation.start: ok with conversation and first message; agents get conversation.queued', async () => {
    const site = await env.addSite();
    const ag = await env.addAgent({ site });
    const a = await env.agent(1, { email: ag.email, password: ag.password });
    const v = await env.visitor(0, { site });
    const r = await v.ok({
        type: 'conversation.start',
        rid: 'r2',
        form: { name: 'Li Lei', email: 'li@example.com', category: 'billing', priority: 'high', subject: 'Invoice wrong', message: 'Hello?' },
    });
    assert.equal(r.rid, 'r2');
    const c = r.conversation;
    assert.match(c.id, /^c_/);
    assert.equal(c.site, site.key);
    // queued, or open when auto-assignment gave it to the (online) agent at once.
    assert.ok(['queued', 'open'].includes(c.status), `status ${c.status}`);
    if (c.status === 'queued') assert.equal(c.assignee, null);
    else assert.equal(c.assignee?.id, ag.id);
    assert.equal(c.priority, 'high');
    assert.equal(c.category, 'billing');
    assert.equal(c.subject, 'Invoice wrong');
    assert.ok(Array.isArray(c.tags));
    assert.equal(c.visitor.id, v.visitorId);
    assert.equal(c.visitor.name, 'Li Lei');
    assert.equal(c.visitor.email, 'li@example.com');
    assert.ok(Number.isInteger(c.created_at) && c.created_at > 1.6e12, `created_at is Unix ms: ${c.created_at}`);
    // The form's message is seq 1; the server may add system messages after it.
    assert.ok(c.last_seq >= 1, `last_seq ${c.last_seq}`);
    assert.equal(typeof c.epoch, 'string');
    const m = r.message;
    assert.equal(m.seq, 1);
    assert.match(m.id, /^m_/);
    assert.equal(m.body, 'Hello?');
    assert.equal(m.private, false);
    assert.equal(m.author.kind, 'visitor');
    assert.equal(m.author.id, v.visitorId);
    assert.ok(Number.isInteger(m.ts) && Math.abs(m.ts - Date.now()) < 120_000, `ts is now in Unix ms: ${m.ts}`);

    const q = await a.waitFor((f) => f.type === 'conversation.queued' && f.conversation?.id === c.id, { what: 'conversation.queued' });
    assert.equal(q.rid, undefined, 'pushed events carry no rid');
    assert.equal(q.conversation.status, 'queued');

    // Without a message, no first message; priority defaults to normal.
    const r2 = await v.ok({ type: 'conversation.start', form: {} });
    assert.equal(r2.conversation.priority, 'normal');
    assert.ok(!r2.message, 'no message without form.message');
    const h2 = await v.ok({ type: 'history', conversation_id: r2.conversation.id });
    assert.ok(h2.messages.every((x) => x.author.kind === 'system'), 'only system messages in a conversation started without one');
    const bad = await v.request({ type: 'conversation.start', form: { priority: 'asap' } });
    assertError(bad, 'bad_request', 'unknown priority');
    const long = await v.request({ type: 'conversation.start', form: { subject: 's'.repeat(1025) } });
    assertError(long, ['bad_request', 'too_large'], 'subject over max_field');
});

it('visitor on node 1 and agent on node 2 exchange messages both ways, seq gapless', async () => {
    const { a, v, cid, conv, start, base } = await env.chat({ vNode: 0, aNode: 1 });
    assert.equal(start.message.seq, 1);
    assert.equal(conv.status, 'open');
    assert.equal(conv.assignee?.id, a.agentId);
    // A second connection of the same visitor on the other node sees everything too.
    const v2 = await env.visitor(1, { site: conv.site, token: v.token, label: 'visitor2@n2' });

    const id2 = cmid();
    const m2 = await send(a, cid, 'Hi, agent here', { client_msg_id: id2 });
    assert.equal(m2.seq, base + 1);
    assert.equal(m2.client_msg_id, id2);
    assert.equal(m2.private, false);
    assert.equal(typeof m2.author.name, 'string');
    assert.equal(m2.author.kind, 'agent');
    assert.equal(m2.author.id, a.agentId);
    const got2 = await v.waitFor(isMsg(cid, (m) => m.seq === m2.seq), { what: 'agent message at visitor' });
    assert.equal(got2.message.body, 'Hi, agent here');
    assert.equal(got2.message.id, m2.id);
    assert.equal(got2.message.client_msg_id, id2);
    assert.equal(got2.message.ts, m2.ts);
    assert.deepEqual(got2.message.author, m2.author);
    assert.equal(got2.rid, undefined);
    await v2.waitFor(isMsg(cid, (m) => m.seq === m2.seq), { what: 'agent message at 2nd visitor connection' });

    const m3 = await send(v, cid, 'Thanks!');
    assert.equal(m3.seq, base + 2);
    const got3 = await a.waitFor(isMsg(cid, (m) => m.seq === m3.seq), { what: 'visitor message at agent' });
    assert.equal(got3.message.body, 'Thanks!');
    assert.equal(got3.message.author.kind, 'visitor');
    await v2.waitFor(isMsg(cid, (m) => m.seq === m3.seq), { what: 'visitor message at its other connection' });

    const m4 = await send(a, cid, 'You are welcome');
    assert.equal(m4.seq, base + 3);
    await v.waitFor(isMsg(cid, (m) => m.seq === m4.seq));

    for (const c of [v, v2, a]) assertOrdered(c, cid);
    for (const c of [v, a]) {
        const h = await c.ok({ type: 'history', conversation_id: cid });
        assert.deepEqual(h.messages.map((m) => m.seq), range(1, base + 3), `${c.label} history: gapless from 1`);
        assert.deepEqual(
            h.messages.filter((m) => m.author.kind !== 'system').map((m) => m.body),
            ['Hello?', 'Hi, agent here', 'Thanks!', 'You are welcome'],
        );
    }
});

it('a retried message.send with the same client_msg_id returns the same message, stored once', async () => {
    const { a, v, cid, conv, base } = await env.chat({ vNode: 0, aNode: 1 });
    const id = cmid();
    const first = await send(v, cid, 'only once', { client_msg_id: id });
    assert.equal(first.seq, base + 1);
    const again = await send(v, cid, 'only once', { client_msg_id: id });
    assert.equal(again.id, first.id);
    assert.equal(again.seq, first.seq);
    // A retry after reconnecting, through the other node.
    v.close();
    const v2 = await env.visitor(1, { site: conv.site, token: v.token });
    const third = await send(v2, cid, 'only once', { client_msg_id: id });
    assert.equal(third.id, first.id);
    assert.equal(third.seq, first.seq);
    // The same client_msg_id from another sender is a different message.
    const fromAgent = await send(a, cid, 'agent reuses the id', { client_msg_id: id });
    assert.notEqual(fromAgent.id, first.id);
    assert.equal(fromAgent.seq, first.seq + 1);
    // Barrier: once the agent's own later message is visible, every earlier event is too.
    const last = await send(v2, cid, 'barrier');
    await a.waitFor(isMsg(cid, (m) => m.seq === last.seq));
    assert.equal(a.messages(cid).filter((m) => m.id === first.id).length, 1, 'agent saw the message once');
    assertOrdered(a, cid);
    const h = await a.ok({ type: 'history', conversation_id: cid });
    assert.equal(h.messages.filter((m) => m.client_msg_id === id && m.author.kind === 'visitor').length, 1);
    assert.deepEqual(h.messages.map((m) => m.seq), range(1, last.seq));
    assert.equal(last.seq, base + 3);
});

it('private notes reach other agents but never visitors (live, history, resume)', async () => {
    const { site, a, v, cid, conv, base } = await env.chat({ vNode: 0, aNode: 1 });
    // Same agent on the other node, and a second agent of the site.
    const aOther = await env.agent(0, { token: a.token, label: 'agent-2nd-conn' });
    const ag2 = await env.addAgent({ site });
    const b = await env.agent(0, { email: ag2.email, password: ag2.password, label: 'agentB' });

    const note = await send(a, cid, 'internal: VIP customer', { private: true });
    assert.equal(note.private, true);
    assert.equal(note.seq, base + 1);
    const pub = await send(a, cid, 'public reply');
    assert.equal(pub.seq, base + 2);
    const all = range(1, pub.seq);
    const visible = all.filter((x) => x !== note.seq);

    // Live: the visitor gets the public reply (events arrive in seq order), so it would
    // have got the note before it.
    await v.waitFor(isMsg(cid, (m) => m.seq === pub.seq));
    assert.equal(v.filter((f) => JSON.stringify(f).includes('internal: VIP')).length, 0, 'visitor never receives the note');
    const liveNote = await aOther.waitFor(isMsg(cid, (m) => m.seq === note.seq), { what: 'note at the agent\'s other connection' });
    assert.equal(liveNote.message.private, true);
    assert.equal(liveNote.message.body, 'internal: VIP customer');

    // History: the visitor's lacks it, the agents' have it.
    const hv = await v.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(hv.messages.map((m) => m.seq), visible);
    for (const c of [a, b]) {
        const h = await c.ok({ type: 'history', conversation_id: cid });
        assert.deepEqual(h.messages.map((m) => m.seq), all, `${c.label} history`);
        assert.equal(h.messages.find((m) => m.seq === note.seq).private, true);
    }

    // Resume: the visitor's replay skips it; the other agent's includes it.
    const vr = await env.visitor(1, { site, token: v.token, resume: [{ conversation_id: cid, after_seq: 0, epoch: conv.epoch }] });
    const resumed = await vr.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid);
    assert.equal(resumed.recovered, true);
    assert.equal(resumed.last_seq, pub.seq);
    assert.deepEqual(vr.messages(cid).map((m) => m.seq), visible);
    assert.ok(!JSON.stringify(vr.frames).includes('internal: VIP'));

    const br = await resume(b, [{ conversation_id: cid, after_seq: base }]);
    assert.equal(br.done.type, 'resumed', JSON.stringify(br.done));
    assert.deepEqual(b.messages(cid).map((m) => m.seq).slice(0, 2), [note.seq, pub.seq]);
    assert.equal(b.messages(cid)[0].private, true);
});

it('a visitor cannot send to, read or resume another visitor\'s conversation', async () => {
    const { site, v, a, cid } = await env.chat({ vNode: 0, aNode: 1 });
    const other = await env.visitor(1, { site, label: 'intruder' });
    const s = await other.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'hi' });
    assertError(s, ['forbidden', 'not_found'], 'send');
    const h = await other.request({ type: 'history', conversation_id: cid });
    assertError(h, ['forbidden', 'not_found'], 'history');
    other.send({ type: 'typing', conversation_id: cid, state: true });
    other.send({ type: 'read', conversation_id: cid, seq: 1 });
    const rr = await resume(other, [{ conversation_id: cid, after_seq: 0 }]);
    assertError(rr.done, ['forbidden', 'not_found'], 'resume');
    // Through hello too.
    const o2 = await env.connect(0, 'visitor');
    const w = await o2.request({ type: 'hello', site: site.key, resume: [{ conversation_id: cid, after_seq: 0 }] });
    assert.equal(w.type, 'welcome');
    const rr2 = await o2.waitFor(
        (f) => (f.type === 'error' && f.rid !== w.rid) || (f.type === 'resumed' && f.conversation_id === cid),
        { what: 'hello resume answer' },
    );
    assertError(rr2, ['forbidden', 'not_found'], 'hello resume');
    // Barrier: the intruder's typing/read went to Redis before its conversation.start, and
    // the agent sees the visitor's later message, so any leaked event would be there by now.
    await other.ok({ type: 'conversation.start', form: {} });
    const secret = await send(v, cid, 'secret stuff');
    await a.waitFor(isMsg(cid, (m) => m.seq === secret.seq));
    assert.equal(a.filter((f) => (f.type === 'typing' || f.type === 'read') && f.author?.id === other.visitorId).length, 0, 'no typing/read from the intruder');
    assert.equal(other.messages(cid).length, 0);
    assert.equal(o2.messages(cid).length, 0);
    // Nothing was stored by the intruder.
    const hist = await v.ok({ type: 'history', conversation_id: cid });
    assert.ok(hist.messages.every((m) => m.author.id !== other.visitorId && m.body !== 'hi'), 'nothing stored by the intruder');
});

it('an agent of another site cannot send to, read or accept the conversation', async () => {
    const { cid } = await env.chat({ vNode: 0, aNode: 1, accept: false });
    const otherSite = await env.addSite();
    const ag = await env.addAgent({ site: otherSite });
    const x = await env.agent(0, { email: ag.email, password: ag.password });
    assertError(await x.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'x' }), ['forbidden', 'not_found'], 'send');
    assertError(await x.request({ type: 'history', conversation_id: cid }), ['forbidden', 'not_found'], 'history');
    assertError(await x.request({ type: 'conversation.accept', conversation_id: cid }), ['forbidden', 'not_found'], 'accept');
    assertError(await x.request({ type: 'conversation.update', conversation_id: cid, status: 'closed' }), ['forbidden', 'not_found'], 'update');
});

it('a visitor sending private:true gets an error and nothing is stored', async () => {
    const { v, a, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'sneaky', private: true });
    assertError(r, ['forbidden', 'bad_request']);
    const h = await a.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(h.messages.map((m) => m.seq), range(1, base));
    assert.ok(!h.messages.some((m) => m.body === 'sneaky'));
});

it('message bodies: empty or blank is bad_request, over 8192 bytes is too_large', async () => {
    const { v, a, cid } = await env.chat({ vNode: 0, aNode: 1 });
    for (const body of ['', '   \n\t ']) {
        const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body });
        assertError(r, 'bad_request', `body ${JSON.stringify(body)}`);
    }
    const big = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'x'.repeat(8193) });
    assertError(big, 'too_large');
    // Exactly 8192 bytes (multi-byte UTF-8 counted in bytes) is fine.
    const m = await send(a, cid, 'é'.repeat(4096));
    assert.equal(Buffer.byteLength(m.body), 8192);
    const r = await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: 'x'.repeat(65), body: 'hi' });
    assertError(r, 'bad_request', 'client_msg_id over 64 bytes');
});

it('sending to a closed conversation is a conflict', async () => {
    const { v, a, cid } = await env.chat({ vNode: 0, aNode: 1 });
    const u = await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'closed' });
    if (u.conversation) assert.equal(u.conversation.status, 'closed');
    await v.waitFor((f) => f.type === 'conversation.updated' && f.conversation?.id === cid && f.conversation.status === 'closed', {
        what: 'conversation.updated closed at visitor',
    });
    assertError(await v.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'hello?' }), 'conflict', 'visitor');
    assertError(await a.request({ type: 'message.send', conversation_id: cid, client_msg_id: cmid(), body: 'hello?' }), 'conflict', 'agent');
    const h = await a.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(h.messages.filter((m) => m.author.kind !== 'system').map((m) => m.body), ['Hello?']);
});

it('history pages backwards with before_seq and limit, ascending', async () => {
    const { v, a, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    for (let i = 1; i <= 8; i++) {
        const m = await send(i % 2 ? v : a, cid, `m${i}`);
        assert.equal(m.seq, base + i);
    }
    const N = base + 8; // messages 1..N exist
    const seqs = (r) => r.messages.map((m) => m.seq);
    assert.deepEqual(seqs(await v.ok({ type: 'history', conversation_id: cid, limit: 3 })), range(N - 2, N));
    assert.deepEqual(seqs(await v.ok({ type: 'history', conversation_id: cid, before_seq: N - 2, limit: 3 })), range(N - 5, N - 3));
    assert.deepEqual(seqs(await v.ok({ type: 'history', conversation_id: cid, before_seq: N - 5, limit: 3 })), range(Math.max(1, N - 8), N - 6));
    assert.deepEqual(seqs(await v.ok({ type: 'history', conversation_id: cid, before_seq: 2, limit: 3 })), [1]);
    assert.deepEqual(seqs(await v.ok({ type: 'history', conversation_id: cid, before_seq: 1, limit: 3 })), []);
    assert.deepEqual(seqs(await a.ok({ type: 'history', conversation_id: cid })), range(1, N));
    const many = await a.request({ type: 'history', conversation_id: cid, limit: 1000 });
    if (many.type === 'ok') assert.deepEqual(seqs(many), range(1, N));
    else assertError(many, 'bad_request', 'limit 1000');
    const page = await a.ok({ type: 'history', conversation_id: cid, before_seq: N, limit: 2 });
    assert.deepEqual(page.messages.map((m) => m.body), ['m6', 'm7']);
    assertError(await a.request({ type: 'history', conversation_id: 'c_doesnotexist' }), ['not_found', 'forbidden'], 'unknown conversation');
});

it('history pages are capped at 100 messages', async () => {
    const { v, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    // 103 more messages; sent in small parallel batches to keep it quick.
    for (let b = 0; b < 103; b += 8) {
        const n = Math.min(8, 103 - b);
        await Promise.all(Array.from({ length: n }, (_, i) => send(v, cid, `bulk ${b + i}`)));
    }
    const r = await v.request({ type: 'history', conversation_id: cid, limit: 150 });
    if (r.type === 'error') assertError(r, 'bad_request', 'limit 150');
    else {
        assert.equal(r.messages.length, 100);
        assert.equal(r.messages[99].seq, base + 103);
        assert.equal(r.messages[0].seq, base + 4);
    }
    const d = await v.ok({ type: 'history', conversation_id: cid });
    assert.ok(d.messages.length <= 100 && d.messages.at(-1).seq === base + 103);
    const seqs = d.messages.map((m) => m.seq);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, 'gapless ascending');
});

it('typing and read events reach the other side', async () => {
    const { v, a, cid } = await env.chat({ vNode: 0, aNode: 1 });
    let m = v.mark();
    a.send({ type: 'typing', conversation_id: cid, state: true });
    const t1 = await v.waitFor((f) => f.type === 'typing' && f.conversation_id === cid && f.author?.kind === 'agent', { from: m, what: 'agent typing at visitor' });
    assert.equal(t1.state, true);
    assert.equal(t1.author.kind, 'agent');
    assert.equal(t1.author.id, a.agentId);

    m = a.mark();
    v.send({ type: 'typing', conversation_id: cid, state: false });
    const t2 = await a.waitFor((f) => f.type === 'typing' && f.conversation_id === cid && f.author?.kind === 'visitor', { from: m, what: 'visitor typing at agent' });
    assert.equal(t2.state, false);
    assert.equal(t2.author.kind, 'visitor');

    const msg = await send(a, cid, 'please read me');
    m = a.mark();
    v.send({ type: 'read', conversation_id: cid, seq: msg.seq });
    // (A reader may get its own read event back; only the other side's is checked.)
    const r1 = await a.waitFor((f) => f.type === 'read' && f.conversation_id === cid && f.author?.kind === 'visitor', { from: m, what: 'read at agent' });
    assert.equal(r1.seq, msg.seq);
    assert.equal(r1.author.kind, 'visitor');
    assert.equal(r1.author.id, v.visitorId);

    m = v.mark();
    a.send({ type: 'read', conversation_id: cid, seq: msg.seq });
    const r2 = await v.waitFor((f) => f.type === 'read' && f.conversation_id === cid && f.author?.kind === 'agent', { from: m, what: 'read at visitor' });
    assert.equal(r2.seq, msg.seq);
    assert.equal(r2.author.kind, 'agent');
    // Typing is not stored.
    const h = await v.ok({ type: 'history', conversation_id: cid });
    assert.equal(h.messages.at(-1).seq, msg.seq);
});

it('csat is accepted only once the conversation is resolved or closed', async () => {
    const { v, a, cid } = await env.chat({ vNode: 0, aNode: 1 });
    assertError(await v.request({ type: 'csat', conversation_id: cid, score: 5 }), ['conflict', 'bad_request', 'forbidden'], 'csat while open');
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    assertError(await v.request({ type: 'csat', conversation_id: cid, score: 6 }), 'bad_request', 'score 6');
    assertError(await v.request({ type: 'csat', conversation_id: cid, score: 0 }), 'bad_request', 'score 0');
    const r = await v.request({ type: 'csat', rid: 'cs1', conversation_id: cid, score: 4, comment: 'quick, thanks' });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    assert.equal(r.rid, 'cs1');
    // An agent does not rate.
    assertError(await a.request({ type: 'csat', conversation_id: cid, score: 5 }), ['forbidden', 'bad_request']);
    // Closed works as well.
    const c2 = await env.chat({ vNode: 1, aNode: 0 });
    await c2.a.ok({ type: 'conversation.update', conversation_id: c2.cid, status: 'closed' });
    const r2 = await c2.v.request({ type: 'csat', conversation_id: c2.cid, score: 1 });
    assert.equal(r2.type, 'ok', JSON.stringify(r2));
});

it('presence.set reaches another agent of the site as presence.updated', async () => {
    const site = await env.addSite();
    const ag1 = await env.addAgent({ site });
    const ag2 = await env.addAgent({ site });
    const a1 = await env.agent(0, { email: ag1.email, password: ag1.password, label: 'a1' });
    const a2 = await env.agent(1, { email: ag2.email, password: ag2.password, label: 'a2' });
    for (const status of ['away', 'online']) {
        const m = a2.mark();
        const r = await a1.request({ type: 'presence.set', status });
        assert.equal(r.type, 'ok', JSON.stringify(r));
        const e = await a2.waitFor((f) => f.type === 'presence.updated' && f.agent_id === ag1.id && f.status === status, {
            from: m,
            what: `presence.updated ${status}`,
        });
        assert.equal(e.rid, undefined);
    }
    assertError(await a1.request({ type: 'presence.set', status: 'sleeping' }), 'bad_request');
    // A visitor cannot set presence.
    const v = await env.visitor(0, { site });
    assertError(await v.request({ type: 'presence.set', status: 'online' }), ['forbidden', 'bad_request']);
});

it('conversation.accept by a second agent is a conflict', async () => {
    const { site, a, cid, conv } = await env.chat({ vNode: 0, aNode: 1 });
    assert.equal(conv.assignee.id, a.agentId);
    const ag2 = await env.addAgent({ site });
    const b = await env.agent(0, { email: ag2.email, password: ag2.password, label: 'b' });
    assertError(await b.request({ type: 'conversation.accept', conversation_id: cid }), 'conflict');
    // The holder is unchanged.
    const h = await a.ok({ type: 'conversation.accept', conversation_id: cid }).catch((e) => e);
    if (!(h instanceof Error) && h.conversation) assert.equal(h.conversation.assignee.id, a.agentId);
    const hb = await b.request({ type: 'history', conversation_id: cid });
    assert.equal(hb.type, 'ok', 'agents of the site may still read it');
    assertError(await b.request({ type: 'conversation.accept', conversation_id: 'c_nope' }), ['not_found', 'forbidden'], 'unknown id');
    // A visitor cannot accept.
    const v = await env.visitor(0, { site });
    assertError(await v.request({ type: 'conversation.accept', conversation_id: cid }), ['forbidden', 'bad_request', 'not_found']);
    // The agent's welcome lists conversations assigned to it.
    const again = await env.agent(0, { token: a.token });
    assert.ok(again.welcome.conversations.some((c) => c.id === cid), 'assigned conversation in agent welcome');
});

it('conversation.update changes status and others see conversation.updated', async () => {
    const { v, a, cid } = await env.chat({ vNode: 0, aNode: 1 });
    for (const status of ['pending', 'open', 'resolved']) {
        const m = v.mark();
        const r = await a.ok({ type: 'conversation.update', conversation_id: cid, status });
        if (r.conversation) assert.equal(r.conversation.status, status);
        const e = await v.waitFor((f) => f.type === 'conversation.updated' && f.conversation?.id === cid && f.conversation.status === status, {
            from: m,
            what: `conversation.updated ${status}`,
        });
        assert.equal(e.rid, undefined);
    }
    const r = await a.ok({ type: 'conversation.update', conversation_id: cid, priority: 'urgent', tags: ['vip', 'billing'] });
    if (r.conversation) {
        assert.equal(r.conversation.priority, 'urgent');
        assert.deepEqual([...r.conversation.tags].sort(), ['billing', 'vip']);
    }
    assertError(await a.request({ type: 'conversation.update', conversation_id: cid, status: 'weird' }), 'bad_request');
    assertError(await v.request({ type: 'conversation.update', conversation_id: cid, status: 'closed' }), ['forbidden', 'bad_request']);
    // A visitor reply to a resolved conversation reopens it.
    const m = v.mark();
    await send(v, cid, 'actually one more thing');
    await v.waitFor((f) => f.type === 'conversation.updated' && f.conversation?.id === cid && f.conversation.status === 'open', {
        from: m,
        what: 'reopened by the visitor reply',
    });
});

it('resume with after_seq replays exactly the missed messages, then resumed recovered:true', async () => {
    const { site, v, a, cid, conv, base } = await env.chat({ vNode: 0, aNode: 1 });
    const seen = await send(a, cid, 'two');
    await v.waitFor(isMsg(cid, (m) => m.seq === seen.seq));
    v.close();
    await v.waitClose();
    const sent = [];
    for (const b of ['three', 'four', 'five']) sent.push(await send(a, cid, b));
    assert.deepEqual(sent.map((m) => m.seq), range(base + 2, base + 4));
    const top = base + 4;

    const v2 = await env.visitor(0, { site, token: v.token, resume: [{ conversation_id: cid, after_seq: seen.seq, epoch: conv.epoch }] });
    const resumed = await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { what: 'resumed' });
    assert.equal(resumed.recovered, true);
    assert.equal(resumed.last_seq, top);
    assert.equal(resumed.epoch, conv.epoch);
    const idx = v2.frames.indexOf(resumed);
    const replay = v2.frames.slice(0, idx).filter(isMsg(cid)).map((f) => f.message);
    assert.deepEqual(replay.map((m) => m.seq), sent.map((m) => m.seq), 'exactly the missed messages, in order');
    assert.deepEqual(replay.map((m) => m.body), ['three', 'four', 'five']);
    assert.deepEqual(replay.map((m) => m.id), sent.map((m) => m.id));
    const wIdx = v2.frames.indexOf(v2.welcome);
    assert.ok(v2.frames.findIndex((f) => f.type === 'message.created') > wIdx, 'replay comes after welcome');
    // Live again afterwards, with no duplicates.
    const six = await send(a, cid, 'six');
    await v2.waitFor(isMsg(cid, (m) => m.seq === six.seq));
    assert.deepEqual(v2.messages(cid).map((m) => m.seq), range(base + 2, six.seq));

    // The resume frame does the same at any time, and is answered ok (echoing its rid).
    const r = await resume(v2, [{ conversation_id: cid, after_seq: six.seq - 2, epoch: conv.epoch }]);
    assert.equal(r.done.type, 'resumed', JSON.stringify(r.done));
    assert.equal(r.done.recovered, true);
    assert.equal(r.done.last_seq, six.seq);
    assert.deepEqual(v2.messages(cid, r.mark).map((m) => m.seq), [six.seq - 1, six.seq]);
    const ok = await v2.waitFor((f) => f.rid === r.rid, { from: r.mark, what: 'ok reply to the resume frame' });
    assert.equal(ok.type, 'ok');
    // Nothing missed: after_seq == last_seq replays nothing.
    const r3 = await resume(v2, [{ conversation_id: cid, after_seq: six.seq, epoch: conv.epoch }]);
    assert.equal(r3.done.recovered, true);
    assert.equal(v2.messages(cid, r3.mark).length, 0);
});

it('resume with a wrong epoch: recovered:false and no replay', async () => {
    const { site, v, a, cid, base } = await env.chat({ vNode: 0, aNode: 1 });
    await send(a, cid, 'two');
    await send(a, cid, 'three');
    v.close();
    const v2 = await env.visitor(1, { site, token: v.token, resume: [{ conversation_id: cid, after_seq: base, epoch: 'not-the-epoch' }] });
    const resumed = await v2.waitFor((f) => f.type === 'resumed' && f.conversation_id === cid, { what: 'resumed' });
    assert.equal(resumed.recovered, false);
    assert.equal(v2.messages(cid).length, 0, 'no partial replay');
    // after_seq beyond the top (the history the client saw was lost): recovered:false too.
    const r2 = await resume(v2, [{ conversation_id: cid, after_seq: base + 50 }]);
    assert.equal(r2.done.type, 'resumed', JSON.stringify(r2.done));
    assert.equal(r2.done.recovered, false);
    assert.equal(v2.messages(cid, r2.mark).length, 0);
    // The client reloads with history, and live delivery still works.
    const h = await v2.ok({ type: 'history', conversation_id: cid });
    assert.deepEqual(h.messages.map((x) => x.seq), range(1, base + 2));
    const four = await send(a, cid, 'four');
    await v2.waitFor(isMsg(cid, (x) => x.seq === four.seq));
});
