// RFC 6238 TOTP as an authenticator app computes it (HMAC-SHA1, 30 s steps, 6 digits), from
// the base32 secret the server shows at enrolment: the tests check the server's codes
// against this independent implementation (node:crypto), never against the server itself.
import { createHmac } from 'node:crypto';

export function b32decode(s) {
    const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    let bits = 0;
    let buf = 0;
    const out = [];
    for (const ch of s.replace(/\s+/g, '').toUpperCase()) {
        const v = abc.indexOf(ch);
        if (v < 0) throw new Error(`not base32: ${s}`);
        buf = ((buf << 5) | v) & 0xffff;
        bits += 5;
        if (bits >= 8) {
            out.push((buf >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return Buffer.from(out);
}

/** The 6-digit code of time step `step` (unix seconds / 30). */
export function totp(secret, step) {
    const msg = Buffer.alloc(8);
    msg.writeBigUInt64BE(BigInt(step));
    const mac = createHmac('sha1', b32decode(secret)).update(msg).digest();
    const off = mac[mac.length - 1] & 15;
    return String((mac.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0');
}

/** The current time step. */
export const stepNow = () => Math.floor(Date.now() / 30000);
