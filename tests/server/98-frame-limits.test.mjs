// Low findings of the security issue (finding 8): invalid frames are counted by the
// per-connection rate limit like valid ones (a flood of them gets rate_limited and then
// close 4429), and a resume frame's entries each cost a token, so one frame cannot fan
// out into a hundred Redis calls past the connection's rate.
import { useEnv, it, assert, rnd } from './harness.mjs';

const env = useEnv({ nodes: 1 });

it('a flood of invalid frames is rate limited and closed 4429', async () => {
    const site = await env.addSite();
    const v = await env.visitor(0, { site });
    for (let i = 0; i < 200; i++) v.sendRaw(JSON.stringify({ type: 'no.such.frame', rid: `r${i}` }));
    const info = await v.waitClose();
    assert.equal(info.code, 4429, `closed ${JSON.stringify(info)}`);
    const codes = v.frames.filter((f) => f.type === 'error').map((f) => f.code);
    assert.ok(codes.includes('rate_limited'), codes.slice(0, 30).join(','));
    assert.ok(codes.filter((c) => c === 'bad_request').length <= 21, `at most the burst was parsed and answered (${codes.length})`);
    const m = await env.http(0, '/metrics');
    assert.match(m.text, /chatdesk_frames_invalid_total [1-9]/);
});

it('a resume frame with more entries than the bucket holds is refused before any Redis call', async () => {
    const site = await env.addSite();
    const v = await env.visitor(0, { site });
    const resume = Array.from({ length: 60 }, () => ({ conversation_id: `c_${rnd(8)}`, after_seq: 0 }));
    const r = await v.request({ type: 'resume', conversations: resume });
    assert.equal(r.type, 'error', JSON.stringify(r));
    assert.equal(r.code, 'rate_limited');
    // a small one still works
    const v2 = await env.visitor(0, { site });
    const ok = await v2.request({ type: 'resume', conversations: resume.slice(0, 3) });
    assert.equal(ok.type, 'ok', JSON.stringify(ok));
    const m = await env.http(0, '/metrics');
    assert.match(m.text, /chatdesk_resume_entries_total 3\b/);
});
