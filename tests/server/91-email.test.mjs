// E-mail out (docs/email.md): a real SMTP receiver on loopback (npm smtp-server, STARTTLS
// off, stopped at the end) gets what the outbox sends; each message is checked as it
// arrived (raw headers, then parsed by mailparser): a ticket's notification in Chinese
// (RFC 2047 subject and names, Auto-Submitted, Message-ID in the site's domain, Reply-To
// plus-addressed with the conversation's token), a retry after the server refused once
// with the same Message-ID, an agent's reply mailed to a customer who is gone (threaded to
// the notification with In-Reply-To/References, the history quoted) and then told the
// ticket is resolved, a reply the customer read in the widget not mailed, at most 10 mails
// an hour to one address, the test mail and the outbox API, tenant walls, kill -9 mid-send.
import fs from 'node:fs';
import { after } from 'node:test';
import { useEnv, it, assert, waitUntil, sleep, WAIT } from './harness.mjs';
import { smtpReceiver, header } from './mail-support.mjs';

const smtp = await smtpReceiver();
after(() => smtp.close());
const SMTP_PORT = smtp.port;

const MAIL = ['--smtp-url', `smtp://127.0.0.1:${SMTP_PORT}`, '--mail-from', 'Help Desk <desk@chatdesk.test>', '--mail-unread-delay-s', '1',
    '--mail-retry-base-ms', '300', '--smtp-timeout-ms', '2000', '--timer-lease-ms', '3000'];
// every node of a deployment has the same mail settings (the events pass that queues a
// mail runs on any node); a node without them is added for one check below
const env = useEnv({ nodes: 2, args: MAIL });

const call = (token, method, url, body, node = 0) => env.http(node, url, { method, body, headers: { authorization: `Bearer ${token}` } });
async function admin(site) {
    const ag = await env.addAgent({ site, role: 'admin' });
    return env.login(0, ag.email, ag.password);
}
const mailsTo = (addr) => smtp.mails.filter((m) => m.rcpt.includes(addr));
async function outbox(token, site) {
    const r = await call(token, 'GET', `/api/v1/admin/sites/${site.key}/mail`);
    assert.equal(r.status, 200, r.text);
    return r.json.mails;
}

it('an offline ticket mails its number to the customer in Chinese; a refused first attempt is retried with the same Message-ID', async () => {
    const site = await env.addSite({ name: '示例商店' });
    const token = await admin(site);
    const to = `wang_${Date.now()}@customer.test`;
    smtp.refuseOnce.add(to);
    const v = await env.visitor(0, { site });
    const s = await v.ok({ type: 'conversation.start', form: { name: '王小明', email: to, subject: '订单没有到', message: '我的订单在哪里？', locale: 'zh-CN' } });
    const num = s.conversation.ticket?.number;
    assert.ok(num, 'nobody online: a ticket at once');
    await waitUntil(() => mailsTo(to).length >= 1, { timeout: WAIT * 3, what: 'the ticket mail' });
    assert.equal(smtp.refusals.filter((r) => r.to === to).length, 1, 'the first attempt was refused (451)');
    await sleep(1200); // a duplicate would arrive now
    const got = mailsTo(to);
    assert.equal(got.length, 1, 'delivered once');
    const m = got[0];
    // raw headers: 7-bit, RFC 2047 encoded subject and names
    assert.ok(/^[\x00-\x7f]*$/.test(m.raw), 'the message is 7-bit');
    assert.match(header(m, 'Subject'), /^=\?UTF-8\?/i);
    assert.match(header(m, 'To'), /^=\?UTF-8\?.*<wang_\d+@customer\.test>$/i);
    assert.equal(header(m, 'Auto-Submitted'), 'auto-generated');
    assert.match(header(m, 'Message-Id'), new RegExp(`^<m\\d+\\.[0-9a-f]{16}\\.${site.key}@chatdesk\\.test>$`));
    assert.match(header(m, 'Reply-To'), /^desk\+[0-9a-f]{20}@chatdesk\.test$/);
    assert.ok(header(m, 'Date'), 'a Date header');
    assert.equal(header(m, 'In-Reply-To'), undefined, 'the first mail of the conversation');
    assert.equal(m.envFrom, 'desk@chatdesk.test');
    // decoded
    const p = m.parsed;
    assert.equal(p.subject, `[工单 #${num}] 订单没有到`);
    assert.equal(p.to.value[0].name, '王小明');
    assert.equal(p.from.value[0].name, 'Help Desk');
    assert.match(p.text, new RegExp(`工单 #${num}`));
    assert.match(p.text, /王小明，您好/);
    assert.match(p.html, /工单 #\d+/);
    // the outbox: sent after two attempts, the same Message-ID
    const mails = await outbox(token, site);
    assert.equal(mails.length, 1);
    assert.equal(mails[0].state, 'sent');
    assert.equal(mails[0].attempts, 2);
    assert.equal(mails[0].kind, 'ticket');
    assert.equal(mails[0].message_id, header(m, 'Message-Id'));
    v.terminate();
});

it("an agent's reply to a customer who left goes by e-mail, threaded to the ticket mail, with the history quoted", async () => {
    const site = await env.addSite({ name: 'Shop' });
    const token = await admin(site);
    const to = `ann_${Date.now()}@customer.test`;
    const v = await env.visitor(0, { site });
    const s = await v.ok({ type: 'conversation.start', form: { name: 'Ann Customer', email: to, subject: 'Parcel missing', message: 'Where is my parcel?' } });
    const cid = s.conversation.id;
    const num = s.conversation.ticket.number;
    await waitUntil(() => mailsTo(to).length >= 1, { timeout: WAIT * 2, what: 'the ticket mail' });
    const first = mailsTo(to)[0];
    assert.equal(first.parsed.subject, `[Ticket #${num}] Parcel missing`);
    assert.match(first.parsed.text, /Hello Ann Customer/);
    v.terminate(); // the customer is gone
    const ag = await env.addAgent({ site, name: 'Bob Agent' });
    const a = await env.agent(1, { email: ag.email, password: ag.password });
    await a.ok({ type: 'conversation.accept', conversation_id: cid });
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'n1', body: 'internal note', private: true });
    await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'r1', body: 'It left our warehouse today.\nTracking: 42 & <b>' });
    await waitUntil(() => mailsTo(to).length >= 2, { timeout: WAIT * 3, what: 'the reply mail' });
    await sleep(1500);
    assert.equal(mailsTo(to).length, 2, 'one mail for the reply, none for the private note');
    const reply = mailsTo(to)[1];
    assert.equal(reply.parsed.subject, `Re: [Ticket #${num}] Parcel missing`);
    assert.equal(header(reply, 'In-Reply-To'), header(first, 'Message-Id'));
    assert.equal(header(reply, 'References'), header(first, 'Message-Id'));
    assert.equal(header(reply, 'Auto-Submitted'), undefined, 'a person wrote it');
    assert.equal(header(reply, 'Reply-To'), header(first, 'Reply-To'), 'the same conversation token');
    assert.notEqual(header(reply, 'Message-Id'), header(first, 'Message-Id'));
    const text = reply.parsed.text;
    assert.match(text, /^It left our warehouse today\.\r?\nTracking: 42 & <b>/);
    assert.match(text, /Bob Agent, Shop/);
    assert.match(text, /> Ann Customer:\r?\n> Where is my parcel\?/);
    assert.ok(!/internal note/.test(text), 'private notes are never quoted');
    assert.match(reply.parsed.html, /Tracking: 42 &amp; &lt;b&gt;/);
    assert.match(reply.parsed.html, /<blockquote/);
    const mails = await outbox(token, site);
    assert.deepEqual(mails.map((m) => [m.kind, m.state]), [['reply', 'sent'], ['ticket', 'sent']]);
    assert.equal(mails[0].in_reply_to, header(first, 'Message-Id'));
    // the token and Message-IDs lead back to the conversation (for inbound mail)
    const tok = /^desk\+([0-9a-f]{20})@/.exec(header(reply, 'Reply-To'))[1];
    assert.equal(await env.redis.cmd('GET', `cd:{s:${site.key}}:mailtok:${tok}`), cid);
    assert.equal(await env.redis.cmd('GET', `cd:{s:${site.key}}:mailmid:${header(reply, 'Message-Id')}`), cid);
    // the ticket is resolved: the customer is told, after the reply, in the same thread
    await a.ok({ type: 'conversation.update', conversation_id: cid, status: 'resolved' });
    await waitUntil(() => mailsTo(to).length >= 3, { timeout: WAIT * 3, what: 'the resolved mail' });
    const done = mailsTo(to)[2];
    assert.equal(done.parsed.subject, `[Ticket #${num}] Parcel missing`);
    assert.match(done.parsed.text, new RegExp(`your ticket #${num} has been resolved`));
    assert.equal(header(done, 'Auto-Submitted'), 'auto-generated');
    assert.equal(header(done, 'In-Reply-To'), header(reply, 'Message-Id'));
    a.terminate();
});

it('a reply the customer read in the widget is not mailed; a conversation without an e-mail address sends nothing', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const to = `here_${Date.now()}@customer.test`;
    const ag = await env.addAgent({ site });
    const a = await env.agent(0, { email: ag.email, password: ag.password });
    const v = await env.visitor(0, { site });
    const s = await v.ok({ type: 'conversation.start', form: { email: to, message: 'hi' } });
    const cid = s.conversation.id;
    assert.equal(s.conversation.ticket, null, 'an agent is online: a chat');
    await a.ok({ type: 'conversation.accept', conversation_id: cid });
    const sent = await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: 'x1', body: 'hello there' });
    const m = await v.waitFor((f) => f.type === 'message.created' && f.message?.body === 'hello there');
    await v.ok({ type: 'read', conversation_id: cid, seq: m.message.seq });
    const v2 = await env.visitor(0, { site });
    const s2 = await v2.ok({ type: 'conversation.start', form: { message: 'no address' } });
    await a.ok({ type: 'conversation.accept', conversation_id: s2.conversation.id });
    await a.ok({ type: 'message.send', conversation_id: s2.conversation.id, client_msg_id: 'x2', body: 'you left no address' });
    v2.terminate();
    await waitUntil(async () => (await outbox(token, site)).some((x) => x.state === 'skipped'), { timeout: WAIT * 2, what: 'the mail skipped' });
    const mails = await outbox(token, site);
    assert.equal(mails.length, 1, 'only the conversation with an address queued a mail');
    assert.equal(mails[0].last_error, 'read in the widget');
    assert.equal(mailsTo(to).length, 0);
    assert.ok(sent);
    v.terminate();
    a.terminate();
});

it("the site's From name, address and reply address; the test mail; a node without SMTP refuses it", async () => {
    const site = await env.addSite();
    const token = await admin(site);
    let r = await call(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { mail_from: 'bad address' });
    assert.equal(r.status, 400, r.text);
    r = await call(token, 'PATCH', `/api/v1/admin/sites/${site.key}`, { mail_from: 'support@shop.example', mail_from_name: '商店客服', mail_reply: 'replies@in.shop.example' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.site.mail_from, 'support@shop.example');
    assert.equal(r.json.site.mail_from_name, '商店客服');
    const to = `test_${Date.now()}@customer.test`;
    r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/mail/test`, { to: 'x@y.z\r\nBcc: all@evil.test' });
    assert.equal(r.status, 400, r.text);
    const bare = await env.addNode([]);
    r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/mail/test`, { to }, bare);
    await bare.stop();
    assert.equal(r.status, 400, 'a node without smtp_url');
    assert.match(r.text, /smtp_url/);
    r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/mail/test`, { to });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.json.mail.kind, 'test');
    await waitUntil(() => mailsTo(to).length === 1, { timeout: WAIT * 2, what: 'the test mail' });
    const m = mailsTo(to)[0];
    assert.equal(m.envFrom, 'support@shop.example');
    assert.equal(m.parsed.from.value[0].name, '商店客服');
    assert.equal(m.parsed.from.value[0].address, 'support@shop.example');
    assert.match(header(m, 'Message-Id'), /@shop\.example>$/);
    assert.equal(header(m, 'Reply-To'), undefined, 'no conversation, no reply token');
    assert.match(m.parsed.subject, /测试邮件/);
    assert.match(m.parsed.text, /这是 chatdesk/);
    assert.equal(r.json.mail.message_id, header(m, 'Message-Id'));
});

it("tenant walls: another site's admin cannot list its mail or send its test mail (answered as for a site that does not exist)", async () => {
    const a = await env.addSite();
    const b = await env.addSite();
    const tokenA = await admin(a);
    const tokenB = await admin(b);
    let r = await call(tokenA, 'POST', `/api/v1/admin/sites/${a.key}/mail/test`, { to: `wall_${Date.now()}@customer.test` });
    assert.equal(r.status, 202, r.text);
    const agentA = await env.addAgent({ site: a });
    const plain = await env.login(0, agentA.email, agentA.password);
    for (const [method, path, body] of [['GET', 'mail'], ['POST', 'mail/test', { to: 'x@customer.test' }]]) {
        const theirs = await call(tokenB, method, `/api/v1/admin/sites/${a.key}/${path}`, body);
        const none = await call(tokenB, method, `/api/v1/admin/sites/nosuch_${Date.now()}/${path}`, body);
        assert.equal(theirs.status, 404, `${method} ${path}: ${theirs.text}`);
        assert.equal(none.status, theirs.status);
        assert.deepEqual(none.json, theirs.json, 'not yours and not found look alike');
        const agent = await call(plain, method, `/api/v1/admin/sites/${a.key}/${path}`, body);
        assert.ok([403, 404].includes(agent.status), `an agent (not an admin): ${agent.status}`);
    }
    // B's outbox is B's alone
    assert.equal((await outbox(tokenB, b)).length, 0);
    assert.equal((await outbox(tokenA, a)).length, 1);
});

it('at most 10 mails an hour go to one address, however many conversations name it', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const to = `flood_${Date.now()}@victim.test`;
    for (let i = 0; i < 12; i++) {
        const v = await env.visitor(i % 2, { site });
        const s = await v.ok({ type: 'conversation.start', form: { email: to, message: `spam ${i}` } });
        assert.ok(s.conversation.ticket, 'nobody online: a ticket');
        v.terminate();
    }
    await waitUntil(() => mailsTo(to).length >= 10, { timeout: WAIT * 3, what: 'ten ticket mails' });
    await sleep(1500);
    assert.equal(mailsTo(to).length, 10);
    assert.equal((await outbox(token, site)).length, 10, 'the rest were never queued');
});

/** The pid (among pids) whose process has the TCP connection from 127.0.0.1:<port>. */
function pidOfLocalPort(port, pids) {
    const hex = port.toString(16).toUpperCase().padStart(4, '0');
    const inodes = new Set();
    for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
        for (const line of fs.readFileSync(f, 'utf8').split('\n').slice(1)) {
            const cols = line.trim().split(/\s+/);
            if (cols[1]?.endsWith(`:${hex}`)) inodes.add(cols[9]);
        }
    }
    return pids.find((pid) => fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
            const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
            return m && inodes.has(m[1]);
        } catch {
            return false;
        }
    }));
}

it('kill -9 of the node in the middle of sending: another node sends the mail after the lease, with the same Message-ID, once', async () => {
    const site = await env.addSite();
    const token = await admin(site);
    const to = `kill_${Date.now()}@customer.test`;
    smtp.holdOnce.add(to);
    const spare = await env.addNode(MAIL);
    let r = await call(token, 'POST', `/api/v1/admin/sites/${site.key}/mail/test`, { to });
    assert.equal(r.status, 202, r.text);
    await waitUntil(() => smtp.held.some((h) => h.rcpt.includes(to)), { timeout: WAIT * 2, what: 'the first attempt at DATA' });
    const held = smtp.held.find((h) => h.rcpt.includes(to));
    const running = env.nodes.filter((n) => n.running);
    const pid = pidOfLocalPort(held.remotePort, running.map((n) => n.proc.pid));
    const sender = running.find((n) => n.proc.pid === pid);
    assert.ok(sender, 'the sending node found by its SMTP connection');
    await sender.kill9();
    // the lease (smtp_timeout_ms + 10 s) runs out, a node still alive takes the mail (the
    // SMTP server sees the connection drop: the cut-off DATA is never accepted)
    await waitUntil(() => mailsTo(to).length >= 1, { timeout: 30_000, what: 'the mail sent again by another node' });
    await sleep(1500);
    assert.equal(mailsTo(to).length, 1, 'accepted once');
    const heldId = /^Message-Id: (.*)$/im.exec(held.raw)[1].trim();
    assert.equal(header(mailsTo(to)[0], 'Message-Id'), heldId, 'the same Message-ID as the attempt cut off');
    assert.equal(header(mailsTo(to)[0], 'Date'), /^Date: (.*)$/im.exec(held.raw)[1].trim(), 'and the same Date');
    const alive = env.nodes.find((n) => n.running);
    r = await env.http(alive, `/api/v1/admin/sites/${site.key}/mail`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(r.json.mails[0].state, 'sent');
    assert.equal(r.json.mails[0].attempts, 2, 'the attempt cut off, then the one that went through');
    await spare.stop();
});
