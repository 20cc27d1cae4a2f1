/* libFuzzer target: the upload decoder (server/files: multipart.c, sniff.c) on arbitrary
 * bytes. The first byte picks the piece size the body is fed in; the file part's bytes
 * must come out the same whatever the pieces (streamed = whole), never empty pieces, and
 * never more bytes than went in. The sniffer runs on the file's first bytes and on the
 * input itself, and every name made from the filename (and from the input) must be
 * non-empty valid UTF-8 of at most 200 bytes with no path separator, quote, control
 * character or leading dot. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct out {
    unsigned char *p;
    size_t n, cap;
} out;

static int take(void *ud, const unsigned char *p, size_t n)
{
    out *o = ud;
    if (n == 0)
        abort();
    if (o->n + n > o->cap)
        abort(); /* more out than in */
    memcpy(o->p + o->n, p, n);
    o->n += n;
    return 0;
}

static void check_name(const char *in, size_t n)
{
    char name[201];
    cd_files_name(in, n, name);
    size_t len = strlen(name);
    if (len == 0 || len > 200 || name[0] == '.' || name[0] == ' ')
        abort();
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '"')
            abort();
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > len)
            abort();
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)name[i + j] & 0xC0) != 0x80)
                abort();
        i += k;
    }
}

static bool run(const uint8_t *body, size_t len, size_t step, out *o, char *filename, size_t fsz)
{
    cd_files_mp *mp = cd_files_mp_new("multipart/form-data; boundary=XyZ", take, o);
    if (!mp)
        abort();
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t k = len - i < step ? len - i : step;
        rc = cd_files_mp_feed(mp, body + i, k);
        i += k;
    }
    bool done = rc == 0 && cd_files_mp_done(mp);
    if (filename) {
        strncpy(filename, cd_files_mp_filename(mp), fsz - 1);
        filename[fsz - 1] = '\0';
    }
    cd_files_mp_free(mp);
    return done;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    out whole = {malloc(len + 1), 0, len}, pieces = {malloc(len + 1), 0, len};
    char filename[1100];
    bool d1 = run(body, len, len ? len : 1, &whole, filename, sizeof filename);
    bool d2 = run(body, len, step, &pieces, NULL, 0);
    if (d1 != d2 || whole.n != pieces.n || memcmp(whole.p, pieces.p, whole.n) != 0)
        abort();
    const char *mime = NULL;
    cd_files_sniff(whole.p, whole.n, filename, &mime);
    if (!mime)
        abort();
    cd_files_sniff(body, len, "x.docx", &mime);
    check_name(filename, strlen(filename));
    check_name((const char *)body, len);
    free(whole.p);
    free(pieces.p);
    return 0;
}
