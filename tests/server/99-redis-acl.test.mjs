// A least-privilege Redis user (security issue, RELIABILITY S11): the ACL line documented
// in docs/ops.md ("Redis ACL") is read from there, checked against the commands the code
// sends (C and Lua, so the two cannot drift apart), installed in a private Redis whose
// default user is off, and used by a node and the admin CLI (redis_user +
// redis_password). A chat works end to end, admin migrate moves a previous layout, Redis
// refuses none of their commands (ACL LOG), and the same user gets NOPERM for FLUSHALL,
// CONFIG, KEYS, DEBUG and for keys and channels outside the prefix; without AUTH, NOAUTH.
import fs from 'node:fs';
import path from 'node:path';
import { useEnv, it, assert, rnd, REPO_ROOT, redisCommand } from './harness.mjs';
import { loadLayoutV1 } from './fixtures/layout-v1.mjs';

const ops = fs.readFileSync(path.join(REPO_ROOT, 'docs/ops.md'), 'utf8');
const aclLines = ops.split('\n').filter((l) => l.startsWith('user chatdesk '));
const ACL = aclLines[0] ?? '';
const password = `pw-${rnd(12)}`;
const user = `chatdesk-${rnd(4)}`; // the documented name, made unique to look for it in the log
const rootPassword = `root-${rnd(12)}`;

const env = useEnv({
    nodes: 0,
    prepare(e) {
        const aclFile = path.join(e.dir, 'users.acl');
        const line = ACL.replace('user chatdesk ', `user ${user} `).replace('>CHANGE-ME', `>${password}`);
        fs.writeFileSync(aclFile, ['user default off', `user root on >${rootPassword} ~* &* +@all`, line, ''].join('\n'));
        // DEBUG enabled, so that only the ACL refuses it
        e.redis.extraArgs = ['--aclfile', aclFile, '--enable-debug-command', 'local'];
        e.redis.auth = ['root', rootPassword]; // the harness's own commands (fixtures, checks)
    },
});
// nodes and the admin CLI inherit these
process.env.CHATDESK_REDIS_USER = user;
process.env.CHATDESK_REDIS_PASSWORD = password;

const asChatdesk = (...args) => redisCommand(env.redis.sock, args, 5000, [user, password]);

function sourceFiles(dir) {
    const out = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) out.push(...sourceFiles(p));
        else if (/\.(c|h|lua)$/.test(e.name)) out.push(p);
    }
    return out;
}

/** Commands the code sends to the data Redis: redis.call/pcall in Lua (also in the admin
 *  CLI's scripts), and upper-case command words in string literals of the C files that
 *  talk to Redis, kept if Redis knows them (COMMAND INFO) — a message word is no command. */
async function usedCommands() {
    const used = new Map(); // command -> first file
    const add = (cmd, file) => used.has(cmd) || used.set(cmd, path.relative(REPO_ROOT, file));
    const words = new Map();
    for (const f of sourceFiles(path.join(REPO_ROOT, 'server'))) {
        const text = fs.readFileSync(f, 'utf8');
        for (const m of text.matchAll(/redis\.p?call\(\s*['"]([A-Za-z_]+)['"]/g)) add(m[1].toLowerCase(), f);
        if (!f.endsWith('.c') || !text.includes('hiredis')) continue;
        // container commands are granted by subcommand: FUNCTION LOAD, CLUSTER SLOTS
        for (const m of text.matchAll(/"(FUNCTION|CLUSTER)"?,?\s*"?([A-Z]+)/g)) add(`${m[1].toLowerCase()}|${m[2].toLowerCase()}`, f);
        for (const m of text.matchAll(/"([A-Z][A-Z_]+)[ "]/g)) if (m[1] !== 'FUNCTION' && m[1] !== 'CLUSTER' && !words.has(m[1])) words.set(m[1], f);
    }
    for (const [w, f] of words) {
        if (w === 'SENTINEL') continue; // asked of the sentinels, not of the data Redis
        const info = await env.redis.cmd('COMMAND', 'INFO', w);
        if (Array.isArray(info) && info[0]) add(w.toLowerCase(), f);
    }
    return used;
}

it('the documented ACL line grants exactly the commands the code sends, on cd: keys and channels only', async () => {
    assert.equal(aclLines.length, 1, 'docs/ops.md has one line starting "user chatdesk "');
    const tokens = ACL.split(/\s+/);
    for (const t of ['on', 'resetkeys', '~cd:*', 'resetchannels', '&cd:*', '-@all', '>CHANGE-ME'])
        assert.ok(tokens.includes(t), `the ACL line has ${t}`);
    assert.ok(tokens.indexOf('-@all') < tokens.findIndex((t) => t.startsWith('+')), '-@all comes before the grants');
    for (const t of tokens) {
        assert.ok(!/^(~\*|&\*|%|allkeys|allchannels|allcommands|nopass|\+@)/.test(t), `the ACL line grants no more than listed: ${t}`);
        assert.ok(/^([+\-~&>]|on$|reset)/.test(t) || t === 'user' || t === 'chatdesk', `unexpected ACL token ${t}`);
    }
    const granted = new Set(tokens.filter((t) => t.startsWith('+')).map((t) => t.slice(1)));
    const used = await usedCommands();
    assert.ok(used.has('fcall') && used.has('hset') && used.has('eval'), `command scan found the code's commands: ${[...used.keys()]}`);
    const missing = [...used].filter(([c]) => !granted.has(c)).map(([c, f]) => `${c} (${f})`);
    assert.deepEqual(missing, [], 'commands the code sends that the ACL line does not grant');
    const unused = [...granted].filter((c) => !used.has(c));
    assert.deepEqual(unused, [], 'commands the ACL line grants that the code never sends');
});

it('without AUTH Redis answers NOAUTH; the chatdesk user authenticates', async () => {
    await assert.rejects(redisCommand(env.redis.sock, ['PING']), /NOAUTH/);
    assert.equal(await asChatdesk('PING'), 'PONG');
});

it('admin migrate runs as the chatdesk user and moves a previous layout', async () => {
    await loadLayoutV1((...a) => env.redis.cmd(...a)); // as the harness's root user
    await env.redis.cmd('ACL', 'LOG', 'RESET');
    const m = await env.admin('migrate');
    assert.ok(m.moved.total > 0, JSON.stringify(m));
    assert.equal((await env.admin('migrate')).moved.total, 0);
    assert.deepEqual(await refused(), [], 'Redis refused none of the admin CLI commands');
});

/** ACL LOG entries of the chatdesk user: [reason, object] pairs. */
async function refused() {
    const log = await env.redis.cmd('ACL', 'LOG');
    return log
        .map((e) => Object.fromEntries(e.map((v, i) => (i % 2 ? null : [v, e[i + 1]])).filter(Boolean)))
        .filter((e) => e.username === user)
        .map((e) => `${e.reason} ${e.object} (${e.context})`);
}

it('a node and the admin CLI as the chatdesk user: a chat works end to end, nothing is refused', async () => {
    await env.redis.cmd('ACL', 'LOG', 'RESET');
    const node = await env.addNode();
    const out = node.log.text();
    assert.ok(!out.includes(password) && !out.includes(user), 'neither the user nor the password is printed or logged');
    const site = await env.addSite();
    await env.admin('site-list', '--json');
    await env.admin('agent-list', '--site', site.key, '--json');
    const { a, v, cid } = await env.chat({ site });
    const sent = await v.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `c-${rnd(4)}`, body: 'over ACL' });
    await a.waitFor((f) => f.type === 'message.created' && f.message?.id === sent.message.id, { what: 'the agent gets the message' });
    const reply = await a.ok({ type: 'message.send', conversation_id: cid, client_msg_id: `c-${rnd(4)}`, body: 'answer' });
    await v.waitFor((f) => f.type === 'message.created' && f.message?.id === reply.message.id, { what: 'the visitor gets the answer' });
    const hist = await v.ok({ type: 'history', conversation_id: cid });
    assert.ok(hist.messages.some((x) => x.body === 'answer'), JSON.stringify(hist));
    assert.equal((await env.http(0, '/healthz')).status, 200);
    assert.deepEqual(await refused(), [], 'Redis refused none of the node commands');
});

it('the chatdesk user gets NOPERM for FLUSHALL, CONFIG, KEYS, DEBUG and outside its prefix', async () => {
    const denied = [
        ['FLUSHALL'],
        ['FLUSHDB'],
        ['CONFIG', 'GET', 'maxmemory'],
        ['CONFIG', 'SET', 'appendonly', 'no'],
        ['KEYS', '*'],
        ['DEBUG', 'SLEEP', '0'],
        ['SHUTDOWN', 'NOSAVE'],
        ['ACL', 'LIST'],
        ['FUNCTION', 'FLUSH'],
        ['GET', 'other:key'],
        ['SET', 'other:key', '1'],
        ['PUBLISH', 'other:channel', 'x'],
    ];
    for (const cmd of denied) await assert.rejects(asChatdesk(...cmd), /NOPERM/, `${cmd.join(' ')} is refused`);
    // a script runs with its caller's rights (Redis 7.0 words this refusal without NOPERM)
    await assert.rejects(asChatdesk('EVAL', "return redis.call('GET', 'other:key')", '0'), /NOPERM|can't access/);
    await assert.rejects(asChatdesk('EVAL', "return redis.call('FLUSHALL')", '0'), /NOPERM|can't run this command/);
    assert.equal(await env.redis.cmd('EXISTS', 'other:key'), 0);
    assert.ok((await env.redis.cmd('DBSIZE')) > 0, 'nothing was flushed');
});
