// Two-factor login (docs/api.md "Two-factor login"): the login's second step, the
// enrolment (a QR code of the otpauth:// URI, drawn here from the secret the server made,
// and the secret as text for apps without a camera, confirmed by a first code), the
// recovery codes (shown once), and the agent's own security dialog (turn off, new codes).
// The QR code is drawn in the browser by qrcode-generator as a data: image (the page's CSP
// allows img-src data:), so the secret never goes to another service.
import { useState, useEffect } from 'preact/hooks';
import qrcode from 'qrcode-generator';
import { S, loginSecondFactor, cancelLogin, finishEnrolment, showDialog, errorText, toast } from '../store.js';
import * as http from '../api.js';
import { t } from '../i18n.js';
import { Notice, Dialog } from './common.jsx';

function QrCode({ text }) {
    const qr = qrcode(0, 'M');
    qr.addData(text);
    qr.make();
    return <img class="qr" data-qr alt={t('totp.qrAlt')} src={qr.createDataURL(4, 4)} />;
}

function CodeInput({ value, onInput, name = 'totp-code' }) {
    return (
        <input
            name={name}
            required
            inputmode="numeric"
            autocomplete="one-time-code"
            pattern="[0-9]{6}"
            maxLength={6}
            value={value}
            onInput={(e) => onInput(e.currentTarget.value.trim())}
        />
    );
}

/** The recovery codes, shown once with what they are for. */
function RecoveryCodes({ codes, onDone }) {
    return (
        <div class="recovery" data-recovery>
            <Notice kind="warn">{t('totp.recoveryHint')}</Notice>
            <ol class="recovery-codes" data-recovery-codes>
                {codes.map((c) => (
                    <li key={c}>
                        <code>{c}</code>
                    </li>
                ))}
            </ol>
            <div class="buttons">
                <button type="button" class="primary" data-action="totp-done" onClick={onDone}>
                    {t('totp.saved')}
                </button>
            </div>
        </div>
    );
}

/** The enrolment: a new secret, then a first code; bearer: an enrolment token (login), else
 *  the session's. onDone(reply) after the recovery codes were shown. */
export function TotpEnrol({ bearer, onDone, onCancel }) {
    const [secret, setSecret] = useState(null);
    const [code, setCode] = useState('');
    const [busy, setBusy] = useState(false);
    const [err, setErr] = useState(null);
    const [done, setDone] = useState(null);
    useEffect(() => {
        http.api('POST', '/api/v1/me/totp/enroll', {}, { bearer })
            .then(setSecret)
            .catch((e) => setErr(errorText(e)));
    }, []);
    if (done) return <RecoveryCodes codes={done.recovery_codes} onDone={() => onDone(done)} />;
    return (
        <form
            class="form totp-enrol"
            data-form="totp-enrol"
            onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                setErr(null);
                try {
                    setDone(await http.api('POST', '/api/v1/me/totp/confirm', { code }, { bearer }));
                } catch (x) {
                    setErr(x.status === 400 ? t('totp.wrong') : errorText(x));
                } finally {
                    setBusy(false);
                }
            }}
        >
            <p>{t('totp.scan')}</p>
            {secret ? (
                <div class="totp-secret">
                    <QrCode text={secret.otpauth_uri} />
                    <label>
                        {t('totp.secretText')}
                        <code data-totp-secret>{secret.secret.replace(/(.{4})/g, '$1 ').trim()}</code>
                    </label>
                </div>
            ) : null}
            <label>
                {t('totp.code')}
                <CodeInput value={code} onInput={setCode} />
            </label>
            {err ? <Notice kind="error" testid="totp-error">{err}</Notice> : null}
            <div class="buttons">
                <button type="submit" class="primary" data-action="totp-confirm" disabled={busy || !secret}>
                    {t('totp.confirm')}
                </button>
                {onCancel ? (
                    <button type="button" class="ghost" onClick={onCancel}>
                        {t('common.cancel')}
                    </button>
                ) : null}
            </div>
        </form>
    );
}

/** The login's second step: a code, or a recovery code. */
export function TotpLogin() {
    const [code, setCode] = useState('');
    const [recovery, setRecovery] = useState(false);
    const [busy, setBusy] = useState(false);
    return (
        <form
            class="login-box"
            data-form="totp-login"
            onSubmit={async (e) => {
                e.preventDefault();
                setBusy(true);
                try {
                    await loginSecondFactor(recovery ? { recovery_code: code } : { code });
                } catch {
                    /* shown */
                } finally {
                    setBusy(false);
                }
            }}
        >
            <h1>chatdesk</h1>
            <p class="muted">{recovery ? t('totp.recoveryAsk') : t('totp.ask')}</p>
            {S.loginError ? (
                <Notice kind="error" testid="login-error">
                    {S.loginError}
                </Notice>
            ) : null}
            <label>
                {recovery ? t('totp.recoveryCode') : t('totp.code')}
                {recovery ? (
                    <input name="recovery-code" required autocomplete="off" value={code} onInput={(e) => setCode(e.currentTarget.value.trim())} />
                ) : (
                    <CodeInput value={code} onInput={setCode} />
                )}
            </label>
            <button class="primary" type="submit" data-action="totp-login" disabled={busy}>
                {busy ? t('login.busy') : t('login.submit')}
            </button>
            <div class="buttons">
                <button type="button" class="link" data-action="totp-use-recovery" onClick={() => (setRecovery(!recovery), setCode(''))}>
                    {recovery ? t('totp.useCode') : t('totp.useRecovery')}
                </button>
                <button type="button" class="link" onClick={cancelLogin}>
                    {t('common.cancel')}
                </button>
            </div>
        </form>
    );
}

/** After the password, when a site of the agent requires two-factor login and it is off. */
export function TotpEnrolLogin() {
    return (
        <div class="login-box" data-form="totp-required">
            <h1>chatdesk</h1>
            <Notice kind="info" testid="totp-required">
                {t('totp.required')}
            </Notice>
            <TotpEnrol bearer={S.enrol.token} onDone={finishEnrolment} onCancel={cancelLogin} />
        </div>
    );
}

/** Header → Security: the agent's own two-factor login. */
export function SecurityDialog() {
    const [st, setSt] = useState(null);
    const [err, setErr] = useState(null);
    const [enrolling, setEnrolling] = useState(false);
    const [code, setCode] = useState('');
    const [codes, setCodes] = useState(null);
    const load = () =>
        http
            .get('/api/v1/me/totp')
            .then(setSt)
            .catch((e) => setErr(errorText(e)));
    useEffect(() => {
        load();
    }, []);
    const second = () => (/^[0-9]{6}$/.test(code) ? { code } : { recovery_code: code });
    const act = async (path, after) => {
        setErr(null);
        try {
            const r = await http.post(path, second());
            setCode('');
            after(r);
        } catch (e) {
            setErr(e.status === 400 ? t('totp.wrong') : errorText(e));
        }
    };
    const close = () => showDialog(null);
    let body;
    if (codes) body = <RecoveryCodes codes={codes} onDone={() => (setCodes(null), load())} />;
    else if (enrolling)
        body = <TotpEnrol onDone={() => (setEnrolling(false), toast(t('totp.on'), 'ok'), load())} onCancel={() => setEnrolling(false)} />;
    else if (!st) body = null;
    else if (!st.enabled)
        body = (
            <div data-totp-state="off">
                <p>{t('totp.offText')}</p>
                <button type="button" class="primary" data-action="totp-setup" onClick={() => setEnrolling(true)}>
                    {t('totp.setup')}
                </button>
            </div>
        );
    else
        body = (
            <div data-totp-state="on">
                <p>{t('totp.onText', { n: st.recovery_codes_left })}</p>
                <label>
                    {t('totp.codeOrRecovery')}
                    <input name="totp-code" autocomplete="one-time-code" value={code} onInput={(e) => setCode(e.currentTarget.value.trim())} />
                </label>
                <div class="buttons">
                    <button type="button" data-action="totp-recovery" disabled={!code} onClick={() => act('/api/v1/me/totp/recovery-codes', (r) => setCodes(r.recovery_codes))}>
                        {t('totp.newCodes')}
                    </button>
                    <button type="button" class="danger" data-action="totp-disable" disabled={!code} onClick={() => act('/api/v1/me/totp/disable', () => (toast(t('totp.off'), 'ok'), load()))}>
                        {t('totp.disable')}
                    </button>
                </div>
            </div>
        );
    return (
        <Dialog title={t('totp.title')} onClose={close} cls="security">
            {err ? <Notice kind="error" testid="totp-error">{err}</Notice> : null}
            {body}
        </Dialog>
    );
}
