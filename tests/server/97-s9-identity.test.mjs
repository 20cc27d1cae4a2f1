// RELIABILITY S9, identity verification on a site with an identity secret (hash
// mandatory): a user id without a hash, with a wrong hash, or with the hash tenant B's
// secret gives is refused (unauthorized, close 4401); nothing is merged (the anonymous
// visitor who tried keeps its own conversations and stays anonymous, the verified user
// is another visitor, and the same user id verified on site B is a third one); the
// anonymous session keeps working only as anonymous.
import { useEnv, it, assert, assertError, rnd, hmacHex } from './harness.mjs';

const env = useEnv({ nodes: 2 });

async function refused(node, hello, what) {
    const c = await env.connect(node, 'visitor');
    const r = await c.request({ type: 'hello', ...hello });
    assertError(r, 'unauthorized', what);
    assert.equal((await c.waitClose()).code, 4401, what);
}

it('S9: no hash, a wrong hash or tenant B\'s hash is refused, nothing is merged, the anonymous session stays anonymous', async () => {
    const secretA = `secA-${rnd(16)}`;
    const secretB = `secB-${rnd(16)}`;
    const A = await env.addSite({ secret: secretA });
    const B = await env.addSite({ secret: secretB });
    const uid = `crm-${rnd(4)}`;
    const email = `u${rnd(3)}@example.com`;

    // an anonymous visitor of A with a conversation
    const anon = await env.visitor(0, { site: A });
    const anonConv = (await anon.ok({ type: 'conversation.start', form: { message: 'anonymous question' } })).conversation.id;
    anon.terminate();

    const attempts = [
        ['no hash', { id: uid, email }],
        ['empty hash', { id: uid, email, hash: '' }],
        ['wrong hash', { id: uid, email, hash: hmacHex(secretA, `${uid}x`) }],
        ['tenant B\'s hash', { id: uid, email, hash: hmacHex(secretB, uid) }],
        ['upper-case tenant B\'s hash', { id: uid, email, hash: hmacHex(secretB, uid).toUpperCase() }],
    ];
    for (const [what, user] of attempts) {
        await refused(1, { site: A.key, user }, `${what}, new visitor`);
        // with the anonymous visitor's token: refused too, and no merge
        await refused(0, { site: A.key, token: anon.token, user }, `${what}, anonymous token`);
    }

    // the anonymous session keeps working, only as anonymous
    const again = await env.visitor(1, { site: A, token: anon.token });
    assert.equal(again.visitorId, anon.visitorId);
    assert.equal(again.welcome.visitor.user_id ?? null, null);
    assert.notEqual(again.welcome.visitor.email, email, 'an unverified e-mail was stored');
    assert.deepEqual(again.welcome.conversations.map((c) => c.id), [anonConv]);
    await again.ok({ type: 'message.send', conversation_id: anonConv, client_msg_id: `m${rnd(3)}`, body: 'still here' });

    // the verified user of A is another visitor and does not see the anonymous conversation
    const good = await env.visitor(0, { site: A, user: { id: uid, email, hash: hmacHex(secretA, uid) } });
    assert.notEqual(good.visitorId, anon.visitorId);
    assert.equal(good.welcome.visitor.user_id, uid);
    assert.deepEqual(good.welcome.conversations, []);
    const probe = await good.request({ type: 'history', conversation_id: anonConv });
    assertError(probe, 'not_found', 'the verified user reading the anonymous conversation');
    const goodConv = (await good.ok({ type: 'conversation.start', form: { message: 'verified question' } })).conversation.id;

    // the same user id verified on B is B's own visitor: no cross-tenant merge
    const onB = await env.visitor(1, { site: B, user: { id: uid, email, hash: hmacHex(secretB, uid) } });
    assert.notEqual(onB.visitorId, good.visitorId);
    assert.deepEqual(onB.welcome.conversations, []);
    assertError(await onB.request({ type: 'history', conversation_id: goodConv }), 'not_found', 'B\'s visitor reading A\'s conversation');
    // and A's hash does not open B
    await refused(0, { site: B.key, user: { id: uid, hash: hmacHex(secretA, uid) } }, 'tenant A\'s hash on B');

    // the verified user's token works as that user; it is refused when the hello names
    // another user id without a valid hash
    await refused(1, { site: A.key, token: good.token, user: { id: `${uid}-other`, hash: hmacHex(secretB, `${uid}-other`) } }, 'verified token, other user');
    const back = await env.visitor(1, { site: A, token: good.token });
    assert.equal(back.visitorId, good.visitorId);
    assert.deepEqual(back.welcome.conversations.map((c) => c.id), [goodConv]);
    for (const c of [again, good, onB, back]) c.terminate();
});
