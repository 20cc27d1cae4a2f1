// E-mail in (docs/email.md "Inbound"): `chatdeskd mail-in --site KEY` with a message on
// stdin, as an MTA pipes it. The customer's reply to our ticket mail (to the plus-addressed
// Reply-To, In-Reply-To our Message-ID) lands in the same conversation, quoted history cut,
// once however often it is delivered, and our next mail answers it (In-Reply-To its
// Message-ID); a new mail in GBK becomes a ticket, and the customer gets its number in
// Chinese; machines' mail and our own mail coming back are ignored; a token of one site
// never threads into another site; a mail that cannot be read is kept aside (exit 65).
import { after } from 'node:test';
import { useEnv, it, assert, waitUntil, sleep, WAIT } from './harness.mjs';
import { smtpReceiver, header, mailIn } from './mail-support.mjs';

const smtp = await smtpReceiver();
after(() => smtp.close());
const MAIL = ['--smtp-url', `smtp://127.0.0.1:${smtp.port}`, '--mail-from', 'Help Desk <desk@chatdesk.test>', '--mail-unread-delay-s', '1',
    '--mail-retry-base-ms', '300', '--smtp-timeout-ms', '2000'];
const env = useEnv({ nodes: 1, args: MAIL });

const conv = async (cid) => {
    const a = await env.redis.cmd('HGETALL', `cd:{s:${cid.split('.').pop()}}:conv:${cid}`);
    const o = {};
    for (let i = 0; i < a.length; i += 2) o[a[i]] = a[i + 1];
    return o;
};
const crlf = (s) => s.replace(/\r?\n/g, '\r\n');

it("the customer's reply by mail joins the conversation once, and the agent's next mail answers it", async () => {
    const site = await env.addSite({ name: 'Shop' });
    const to = `in_${Date.now()}@customer.test`;
    const v = await env.visitor(0, { site });
    const s = await v.ok({ type: 'conversation.start', form: { name: 'Ann', email: to, subject: 'Broken lamp', message: 'My lamp is broken' } });
    const cid = s.conversation.id;
    v.terminate();
    await waitUntil(() => smtp.to(to).length >= 1, { timeout: WAIT * 2, what: 'the ticket mail' });
    const ticketMail = smtp.to(to)[0];
    const replyTo = header(ticketMail, 'Reply-To');
    assert.match(replyTo, /^desk\+[0-9a-f]{20}@chatdesk\.test$/);
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    await a.ok({ type: 'conversation.accept', conversation_id: cid });
    const before = (await a.ok({ type: 'history', conversation_id: cid })).messages.length;

    const mid = `<lamp-${Date.now()}@customer.test>`;
    const raw = crlf(`From: Ann <${to.toUpperCase()}>\nTo: ${replyTo}\nSubject: Re: ${ticketMail.parsed.subject}\nMessage-ID: ${mid}\n` +
        `In-Reply-To: ${header(ticketMail, 'Message-Id')}\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n` +
        `Here is a photo of it.\n\n-- \nAnn\n\nOn Mon, 7 Dec 2026 at 10:00, Help Desk <desk@chatdesk.test> wrote:\n> Hello Ann,\n> thank you\n`);
    let r = await mailIn(env, site.key, raw);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.stored, 'thread');
    assert.equal(r.json.conversation, cid);
    const f = await a.waitFor((x) => x.type === 'message.created' && x.message?.body?.startsWith('Here is a photo'));
    assert.equal(f.message.body, 'Here is a photo of it.\n\n-- \nAnn', 'the quoted history is cut, the signature kept');
    assert.equal(f.message.author.kind, 'visitor');
    // delivered again by the MTA: stored once
    r = await mailIn(env, site.key, raw);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.duplicate, cid);
    await sleep(300);
    const hist = (await a.ok({ type: 'history', conversation_id: cid })).messages;
    assert.equal(hist.length, before + 1, 'one message for two deliveries');
    // the agent answers: the mail threads to the customer's
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'r1', body: 'Thanks, a new lamp is on its way.' });
    await waitUntil(() => smtp.to(to).length >= 2, { timeout: WAIT * 3, what: 'the reply mail' });
    const reply = smtp.to(to)[1];
    assert.equal(header(reply, 'In-Reply-To'), mid);
    assert.equal(header(reply, 'References'), `${header(ticketMail, 'Message-Id')} ${mid}`);
    assert.match(reply.parsed.text, /> Ann:\r?\n> Here is a photo of it\./);
    // without the token, In-Reply-To alone threads it (the sender must be the customer)
    const raw2 = crlf(`From: ${to}\nTo: desk@chatdesk.test\nSubject: Re: lamp\nMessage-ID: <lamp2-${Date.now()}@customer.test>\n` +
        `In-Reply-To: ${header(reply, 'Message-Id')}\n\nIt arrived, thank you!\n`);
    r = await mailIn(env, site.key, raw2);
    assert.equal(r.json.stored, 'thread', r.stdout + r.stderr);
    assert.equal(r.json.conversation, cid);
    const stranger = crlf(`From: someone@else.test\nTo: desk@chatdesk.test\nSubject: Re: lamp\nMessage-ID: <x-${Date.now()}@else.test>\n` +
        `In-Reply-To: ${header(reply, 'Message-Id')}\n\nlet me in\n`);
    r = await mailIn(env, site.key, stranger);
    assert.equal(r.json.stored, 'new', 'another sender with our Message-ID starts a conversation of its own');
    assert.notEqual(r.json.conversation, cid);
    a.terminate();
});

it('a new mail in GBK becomes a ticket, and the customer is told its number in Chinese', async () => {
    const site = await env.addSite({ name: '示例商店' });
    const from = `li_${Date.now()}@customer.test`;
    // GBK: "你好，我的订单还没有到。" "李先生"; GB2312 subject "订单问题" (RFC 2047)
    const body = 'xOO6w6OsztK1xLaptaW7ucO709C1vaGjDQoNCsDuz8jJ+g0K';
    const subject = '=?GB2312?B?tqm1pc7KzOI=?=';
    const raw = crlf(`From: =?GBK?B?wO7PyMn6?= <${from}>\nTo: support@shop.test\n` +
        `Subject: ${subject}\nMessage-ID: <gbk-${Date.now()}@customer.test>\nMIME-Version: 1.0\n` +
        `Content-Type: text/plain; charset=GBK\nContent-Transfer-Encoding: base64\n\n${body}\n`);
    const r = await mailIn(env, site.key, raw);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.stored, 'new');
    assert.ok(r.json.ticket?.number, 'a ticket at once');
    const c = await conv(r.json.conversation);
    assert.equal(c.channel, 'email');
    const ag = await env.addAgent({ site });
    const token = await env.login(0, ag.email, ag.password);
    const t = await env.http(0, `/api/v1/tickets/${r.json.ticket.number}?site=${site.key}`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.ticket.channel, 'email', 'the conversation object says where it came from');
    // a conversation a mail started: the agent's reply is mailed at once (no widget to read it in)
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    await a.ok({ type: 'conversation.accept', conversation_id: r.json.conversation });
    await a.ok({ type: 'message.send', conversation_id: r.json.conversation, client_msg_id: 'g1', body: '您的订单明天到。' });
    assert.equal(c.subject, '订单问题');
    assert.equal(c.visitor_email, from);
    assert.equal(c.visitor_name, '李先生');
    assert.equal(c.locale, 'zh-CN');
    const msgs = await env.redis.cmd('XRANGE', `cd:{s:${site.key}}:conv:${r.json.conversation}:msgs`, '-', '+');
    assert.equal(msgs[0][1][msgs[0][1].indexOf('body') + 1], '你好，我的订单还没有到。\n\n李先生');
    await waitUntil(() => smtp.to(from).length >= 1, { timeout: WAIT * 2, what: 'the ticket mail' });
    const m = smtp.to(from)[0];
    assert.equal(m.parsed.subject, `[工单 #${r.json.ticket.number}] 订单问题`);
    assert.equal(m.parsed.to.value[0].name, '李先生');
    await waitUntil(() => smtp.to(from).length >= 2, { timeout: WAIT, what: 'the reply mail, not held' });
    const re = smtp.to(from)[1];
    assert.equal(re.parsed.subject, `Re: [工单 #${r.json.ticket.number}] 订单问题`);
    assert.match(re.parsed.text, /^您的订单明天到。/);
    assert.equal(header(re, 'In-Reply-To'), header(m, 'Message-Id'));
    assert.match(header(m, 'References'), /<gbk-\d+@customer\.test>/, 'the ticket mail answers the customer\'s mail');
    a.terminate();
});

it("machines' mail and our own mail coming back are ignored; a token never crosses sites; a mail that cannot be read is kept aside", async () => {
    const a = await env.addSite();
    const b = await env.addSite();
    const to = `x_${Date.now()}@customer.test`;
    const v = await env.visitor(0, { site: a });
    const s = await v.ok({ type: 'conversation.start', form: { email: to, message: 'hello' } });
    const cid = s.conversation.id;
    v.terminate();
    await waitUntil(() => smtp.to(to).length >= 1, { timeout: WAIT * 2, what: 'the ticket mail' });
    const ours = smtp.to(to)[0];
    const lastSeq = (await conv(cid)).last_seq;
    const auto = crlf(`From: ${to}\nTo: ${header(ours, 'Reply-To')}\nAuto-Submitted: auto-replied\nSubject: Out of office\n` +
        `Message-ID: <ooo-${Date.now()}@customer.test>\n\nI am away.\n`);
    let r = await mailIn(env, a.key, auto);
    assert.equal(r.code, 0);
    assert.deepEqual(r.json, { ignored: 'automatic' });
    r = await mailIn(env, a.key, ours.raw);
    assert.deepEqual(r.json, { ignored: 'ours' }, 'our own mail looping back');
    // site A's token piped into site B: not A's conversation
    const cross = crlf(`From: ${to}\nTo: ${header(ours, 'Reply-To')}\nSubject: Re: hello\nMessage-ID: <cross-${Date.now()}@customer.test>\n` +
        `In-Reply-To: ${header(ours, 'Message-Id')}\n\nthis goes to B\n`);
    r = await mailIn(env, b.key, cross);
    assert.equal(r.json.stored, 'new');
    assert.ok(r.json.conversation.endsWith(`.${b.key}`));
    assert.equal((await conv(cid)).last_seq, lastSeq, "nothing reached site A's conversation");
    // unreadable: no sender; too large
    r = await mailIn(env, a.key, 'Subject: who am I\r\n\r\nno sender\r\n');
    assert.equal(r.code, 65);
    assert.match(r.stderr, /no usable From address/);
    const aside = await env.redis.cmd('LRANGE', `cd:{s:${a.key}}:mailin:bad`, 0, -1);
    assert.equal(aside.length, 1);
    assert.equal(JSON.parse(aside[0]).why, 'no usable From address');
    r = await mailIn(env, a.key, `From: ${to}\r\n\r\n${'x'.repeat(3000)}\r\n`, ['--mail-max-bytes', '1024']);
    assert.equal(r.code, 65);
    assert.match(r.stderr, /larger than mail_max_bytes/);
    r = await mailIn(env, 'nosuch', cross.replace('cross-', 'cross2-'));
    assert.equal(r.code, 67, 'an unknown site: the MTA bounces it');
    assert.match(r.stderr, /unknown site/);
});
