// Two-factor login in the browser (security issue, item 10): an agent sets it up from the
// header's Security dialog (the QR code is drawn, the key is shown as text; the test reads
// that text as a person would type it into an app and computes the codes with node:crypto),
// sees its recovery codes once, signs out, and signs in with the password and a code; a
// site that requires two-factor login (saved in Admin → Sites) sends an agent without it to
// the enrolment right after the password; an admin resets an agent's two-factor login.
import { useStack, it, assert, addSite, addAgent, dash, screenshot, waitUntil, assertNoPageErrors } from './lib.mjs';
import { totp, stepNow } from '../support/totp.mjs';

const st = useStack({ nodes: 1 });

// the key as the page shows it ("ABCD EFGH ..."), and the QR code drawn next to it
async function shownSecret(page) {
    const key = page.locator('[data-totp-secret]');
    await key.waitFor();
    const qr = page.locator('img[data-qr]');
    await waitUntil(async () => (await qr.evaluate((img) => img.complete && img.naturalWidth)) > 50, { what: 'the QR code drawn' });
    const text = (await key.textContent()).replace(/\s+/g, '');
    assert.match(text, /^[A-Z2-7]{32}$/);
    return text;
}

async function closeDialog(page) {
    await page.locator('.dialog.security .dialog-head button').click();
    await page.locator('.dialog.security').waitFor({ state: 'detached' });
}

async function recoveryCodes(page) {
    const list = page.locator('[data-recovery-codes] li');
    await list.first().waitFor();
    const codes = await list.allTextContents();
    assert.equal(codes.length, 10);
    for (const c of codes) assert.match(c.trim(), /^[a-z2-7]{5}-[a-z2-7]{5}$/);
    return codes.map((c) => c.trim());
}

// Header → Security → Set up, with a code of the shown key (after a wrong one when
// wrongFirst: refused); the dialog closed again. Returns the key and the step used.
async function enrolInDialog(page, wrongFirst) {
    await page.locator('[data-action="security"]').click();
    await page.locator('[data-totp-state="off"]').waitFor();
    await page.locator('[data-action="totp-setup"]').click();
    const secret = await shownSecret(page);
    if (wrongFirst) {
        await screenshot(page, '80-01-totp-enrol');
        await page.locator('input[name="totp-code"]').fill(totp(secret, stepNow() + 5));
        await page.locator('[data-action="totp-confirm"]').click();
        await page.locator('[data-notice="totp-error"]').waitFor();
    }
    const step = stepNow();
    await page.locator('input[name="totp-code"]').fill(totp(secret, step));
    await page.locator('[data-action="totp-confirm"]').click();
    await recoveryCodes(page);
    if (wrongFirst) await screenshot(page, '80-02-totp-recovery-codes');
    await page.locator('[data-action="totp-done"]').click();
    await page.locator('[data-totp-state="on"]').waitFor();
    await closeDialog(page);
    return { secret, step };
}

it('an agent enrols in the Security dialog and then signs in with a code', async () => {
    const { env } = st;
    const site = await addSite(env);
    const ag = await addAgent(env, site, { name: 'Tao Two-Factor' });
    const page = await st.browser.page();
    const d = dash(page);
    await d.login(st.origin(), ag.email, ag.password);
    const { secret, step } = await enrolInDialog(page, true);
    await page.locator('[data-action="logout"]').click();

    // the password, then the code (the enrolment spent its step: the next one)
    await page.locator('input[name=email]').fill(ag.email);
    await page.locator('input[name=password]').fill(ag.password);
    await page.locator('form.login-box button[type=submit]').click();
    const form = page.locator('[data-form="totp-login"]');
    await form.waitFor();
    await form.locator('input[name="totp-code"]').fill(totp(secret, step));
    await form.locator('[data-action="totp-login"]').click();
    await page.locator('[data-form="totp-login"] [data-notice="login-error"]').waitFor();
    await screenshot(page, '80-03-totp-login-replayed');
    await form.locator('input[name="totp-code"]').fill(totp(secret, step + 1));
    await form.locator('[data-action="totp-login"]').click();
    await d.waitOnline();
    assert.equal(await page.locator('.me').textContent(), 'Tao Two-Factor');
    assertNoPageErrors(page);
    await page.cdContext.close();
});

it('a site that requires it sends an agent to enrolment after the password; an admin resets it', async () => {
    const { env } = st;
    const site = await addSite(env);
    const admin = await addAgent(env, site, { name: 'Ada Admin', role: 'admin' });
    const ag = await addAgent(env, site, { name: 'Nia New' });
    // the admin has two-factor login already, so the requirement does not stop it
    const ap = await st.browser.page();
    const ad = dash(ap);
    await ad.login(st.origin(), admin.email, admin.password);
    await enrolInDialog(ap, false);
    await ad.nav('admin');
    const row = ap.locator(`[data-table="sites"] tr[data-site="${site}"]`);
    await row.locator('button').click();
    const form = ap.locator('[data-form="site-edit"]');
    await form.locator('input[name="require_2fa"]').check();
    await form.locator('[data-action="save-site"]').click();
    await form.waitFor({ state: 'detached' });

    const page = await st.browser.page();
    await page.goto(`${st.origin()}/app/`);
    let secret;
    // the node's site cache follows the setting a moment after the save
    await waitUntil(
        async () => {
            await page.locator('input[name=email]').fill(ag.email);
            await page.locator('input[name=password]').fill(ag.password);
            await page.locator('form.login-box button[type=submit]').click();
            const shown = await Promise.race([
                page.locator('[data-form="totp-required"]').waitFor().then(() => true),
                page.locator('[data-conn="online"]').waitFor().then(() => false),
            ]);
            if (!shown) await page.locator('[data-action="logout"]').click();
            return shown;
        },
        { what: 'the enrolment after the password' },
    );
    await screenshot(page, '80-04-totp-required');
    secret = await shownSecret(page);
    await page.locator('input[name="totp-code"]').fill(totp(secret, stepNow()));
    await page.locator('[data-action="totp-confirm"]').click();
    await recoveryCodes(page);
    await page.locator('[data-action="totp-done"]').click();
    await dash(page).waitOnline();

    // Admin → Agents: Nia has it on; the admin resets it (the page asks first)
    await ap.locator('[data-tab="agents"]').click();
    const arow = ap.locator(`[data-table="agents"] tr[data-agent="${ag.email}"]`);
    await arow.locator('[data-totp="on"]').waitFor();
    await arow.locator('[data-action="totp-reset"]').click();
    await arow.locator('[data-totp="off"]').waitFor();
    assert.ok(ap.cdDialogs.some((x) => x.startsWith('confirm:')), 'asked before the reset');
    const r = await env.http(0, '/api/v1/login', { method: 'POST', body: { email: ag.email, password: ag.password } });
    assert.equal(r.json.enrolment_required, true, 'reset: enrolment again');
    assertNoPageErrors(page);
    assertNoPageErrors(ap);
});
