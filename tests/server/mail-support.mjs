// Mail for the server tests (91-email*): a real SMTP receiver on loopback (npm smtp-server,
// STARTTLS and AUTH off) that keeps what it accepts, raw and parsed (mailparser), and
// `chatdeskd mail-in` run on a message.
import { execFile } from 'node:child_process';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { chatdeskdPath } from './harness.mjs';

/** Starts the receiver. refuseOnce: addresses whose next RCPT gets 451; holdOnce:
 *  addresses whose next DATA is read but never answered (recorded in held). */
export async function smtpReceiver() {
    const smtp = { mails: [], refusals: [], refuseOnce: new Set(), holdOnce: new Set(), held: [] };
    smtp.server = new SMTPServer({
        authOptional: true,
        disabledCommands: ['STARTTLS', 'AUTH'],
        logger: false,
        size: 1 << 20,
        onRcptTo(address, session, cb) {
            if (smtp.refuseOnce.delete(address.address)) {
                smtp.refusals.push({ to: address.address, at: Date.now() });
                const e = new Error('mailbox busy, try again later');
                e.responseCode = 451;
                return cb(e);
            }
            cb();
        },
        onData(stream, session, cb) {
            const chunks = [];
            stream.on('data', (d) => chunks.push(d));
            stream.on('end', async () => {
                const raw = Buffer.concat(chunks);
                const to = session.envelope.rcptTo.map((r) => r.address);
                if (to.some((a) => smtp.holdOnce.delete(a))) {
                    smtp.held.push({ raw: raw.toString('latin1'), rcpt: to, remotePort: session.remotePort, cb });
                    return;
                }
                smtp.mails.push({ raw: raw.toString('latin1'), envFrom: session.envelope.mailFrom.address, rcpt: to, parsed: await simpleParser(raw), at: Date.now() });
                cb();
            });
        },
    });
    await new Promise((res) => smtp.server.listen(0, '127.0.0.1', res));
    smtp.port = smtp.server.server.address().port;
    smtp.to = (addr) => smtp.mails.filter((m) => m.rcpt.includes(addr));
    smtp.close = () => {
        for (const h of smtp.held) h.cb(new Error('closing'));
        return new Promise((res) => smtp.server.close(res));
    };
    return smtp;
}

/** A header of a received mail, unfolded, as it arrived (undefined when absent). */
export function header(m, name) {
    const head = m.raw.split('\r\n\r\n')[0].replace(/\r\n[ \t]+/g, ' ');
    const line = head.split('\r\n').find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
    return line ? line.slice(name.length + 1).trim() : undefined;
}

/** Runs `chatdeskd --redis <url> mail-in --site <site>` with raw (string or Buffer) on stdin:
 *  {code, json, stdout, stderr}. */
export function mailIn(env, site, raw, extra = []) {
    return new Promise((resolve) => {
        const child = execFile(chatdeskdPath(), ['--redis', env.redis.url, ...extra, 'mail-in', '--site', site], { timeout: 30_000 }, (err, stdout, stderr) => {
            let json;
            try {
                json = JSON.parse(stdout);
            } catch {
                json = undefined;
            }
            resolve({ code: err ? err.code : 0, json, stdout, stderr });
        });
        child.stdin.end(raw);
    });
}
