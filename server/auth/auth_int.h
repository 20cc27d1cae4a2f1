/* auth_int.h: helpers shared by the files of the auth module, and nothing else.
 *
 * Never included from outside server/auth/ (scripts/check-includes.sh). The
 * helpers are strict on input because they sit on the token-parsing path, where
 * every byte comes from a client: base64url is accepted only in its canonical,
 * unpadded form, so one token has exactly one spelling.
 */
#ifndef CHATDESK_AUTH_INT_H
#define CHATDESK_AUTH_INT_H

#include <stdbool.h>
#include <stddef.h>

#define CD_AUTH__MAC_LEN 32 /* HMAC-SHA256 output */

/* HMAC-SHA256(key, msg) into out. Returns 0, or -1 if OpenSSL fails (callers fail closed). */
int cd_auth__hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                         unsigned char out[CD_AUTH__MAC_LEN]);

/* Characters base64url needs for n bytes, without padding. */
size_t cd_auth__b64url_len(size_t n);
/* Unpadded base64url of in[0..n) into out (cd_auth__b64url_len(n) + 1 bytes, NUL-terminated).
 * Returns the number of characters written. */
size_t cd_auth__b64url_encode(const void *in, size_t n, char *out);
/* Decode unpadded, canonical base64url (unused trailing bits must be zero).
 * Returns the decoded length, or -1 for a bad character, a bad length or a too-small out. */
long cd_auth__b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outsz);

/* Decode exactly 2*n hex digits (either case) into out. Returns 0 or -1. */
int cd_auth__hex_decode(const char *hex, size_t hexlen, unsigned char *out, size_t n);

#endif
