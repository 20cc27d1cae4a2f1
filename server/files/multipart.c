/* A streaming multipart/form-data decoder (RFC 7578) for uploads: the body is fed in the
 * pieces the connection delivers and the file part's bytes leave as soon as they are
 * known not to begin the delimiter, so memory stays a fixed few KB (the part headers,
 * bounded at 2 KB, and the delimiter) whatever the upload's size.
 *
 * The delimiter is CRLF "--" boundary. A boundary may not hold CR or LF (RFC 2046
 * bchars), so CR appears in the delimiter only first: on a mismatch the bytes held as a
 * possible delimiter are data and matching restarts at the mismatching byte, with no
 * failure table. Bytes held across pieces are always a prefix of the delimiter, so they
 * are emitted from the delimiter itself. Fuzzed by tests/fuzz/fuzz_files.c. */
#include "chatdesk/files.h"

#include <string.h>
#include <strings.h>

enum mp_state { MP_DATA, MP_AFTER, MP_HEADERS, MP_END, MP_ERROR };
enum mp_part { PART_NONE, PART_FILE, PART_SKIP };

struct cd_files_mp {
    char delim[4 + 70 + 1];
    size_t dlen;
    size_t m; /* bytes of delim matched (held) */
    enum mp_state state;
    enum mp_part part;
    int after; /* MP_AFTER: 0 nothing yet; '-' or '\r' seen */
    char hdr[2048];
    size_t hlen;
    char filename[1025];
    bool got_file, file_done;
    cd_files_mp_data_cb on_data;
    void *ud;
};

cd_files_mp *cd_files_mp_new(const char *ct, cd_files_mp_data_cb on_data, void *ud)
{
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return NULL;
    const char *b = strcasestr(ct, "boundary=");
    if (!b)
        return NULL;
    b += 9;
    size_t bl;
    if (*b == '"') {
        b++;
        const char *q = strchr(b, '"');
        if (!q)
            return NULL;
        bl = (size_t)(q - b);
    } else {
        bl = strcspn(b, "; \t");
    }
    if (bl == 0 || bl > 70 || memchr(b, '\r', bl) || memchr(b, '\n', bl))
        return NULL;
    cd_files_mp *mp = cd_calloc(1, sizeof *mp);
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, b, bl);
    mp->dlen = 4 + bl;
    mp->m = 2; /* the body may start with the delimiter without its CRLF */
    mp->state = MP_DATA;
    mp->part = PART_NONE;
    mp->on_data = on_data;
    mp->ud = ud;
    return mp;
}

void cd_files_mp_free(cd_files_mp *mp)
{
    cd_free(mp);
}

static int emit(cd_files_mp *mp, const unsigned char *p, size_t n)
{
    if (n == 0 || mp->part != PART_FILE)
        return 0;
    return mp->on_data(mp->ud, p, n) == 0 ? 0 : -1;
}

/* The filename parameter of a Content-Disposition header line (raw; "" when none). */
static bool header_filename(const char *line, size_t n, char *out, size_t outsz)
{
    static const char key[] = "filename=";
    for (size_t i = 1; i + sizeof key - 1 <= n; i++) {
        if ((line[i - 1] != ';' && line[i - 1] != ' ' && line[i - 1] != '\t') ||
            strncasecmp(line + i, key, sizeof key - 1) != 0)
            continue;
        size_t j = i + sizeof key - 1, o = 0;
        if (j < n && line[j] == '"') {
            for (j++; j < n && line[j] != '"'; j++) {
                if (line[j] == '\\' && j + 1 < n)
                    j++;
                if (o + 1 < outsz)
                    out[o++] = line[j];
            }
        } else {
            for (; j < n && line[j] != ';' && line[j] != ' '; j++)
                if (o + 1 < outsz)
                    out[o++] = line[j];
        }
        out[o] = '\0';
        return true;
    }
    return false;
}

/* The part's headers are complete (mp->hdr, ending in an empty line). */
static void headers_done(cd_files_mp *mp)
{
    char name[sizeof mp->filename];
    bool file = false;
    for (size_t i = 0; i < mp->hlen;) {
        const char *line = mp->hdr + i;
        const char *eol = memchr(line, '\n', mp->hlen - i);
        size_t n = eol ? (size_t)(eol - line) : mp->hlen - i;
        if (n >= 20 && strncasecmp(line, "content-disposition:", 20) == 0)
            file = header_filename(line, n, name, sizeof name);
        i += n + 1;
    }
    if (file && !mp->got_file) {
        mp->got_file = true;
        memcpy(mp->filename, name, sizeof name);
        mp->part = PART_FILE;
    } else {
        mp->part = PART_SKIP;
    }
    mp->hlen = 0;
    mp->state = MP_DATA;
    mp->m = 0;
}

/* A delimiter was found: the part before it ends. */
static void part_end(cd_files_mp *mp)
{
    if (mp->part == PART_FILE)
        mp->file_done = true;
    mp->part = PART_NONE;
    mp->m = 0;
    mp->after = 0;
    mp->state = MP_AFTER;
}

/* Data bytes from p[*i]: up to the next delimiter (consumed) or the end of the piece. */
static int data(cd_files_mp *mp, const unsigned char *p, size_t n, size_t *i)
{
    while (*i < n) {
        if (mp->m == 0) {
            const unsigned char *cr = memchr(p + *i, '\r', n - *i);
            size_t run = cr ? (size_t)(cr - (p + *i)) : n - *i;
            if (emit(mp, p + *i, run) != 0)
                return -1;
            *i += run;
            if (!cr)
                return 0;
        }
        while (*i < n && mp->m < mp->dlen && p[*i] == (unsigned char)mp->delim[mp->m]) {
            mp->m++;
            (*i)++;
        }
        if (mp->m == mp->dlen) {
            part_end(mp);
            return 0;
        }
        if (*i == n)
            return 0; /* the held bytes may still be the delimiter */
        /* a mismatch: what was held is data; p[*i] is examined again */
        if (emit(mp, (const unsigned char *)mp->delim, mp->m) != 0)
            return -1;
        mp->m = 0;
    }
    return 0;
}

int cd_files_mp_feed(cd_files_mp *mp, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && mp->state != MP_ERROR) {
        switch (mp->state) {
        case MP_DATA:
            if (data(mp, p, n, &i) != 0)
                mp->state = MP_ERROR;
            break;
        case MP_AFTER: {
            unsigned char c = p[i++];
            if (mp->after == 0 && (c == ' ' || c == '\t'))
                break; /* transport padding */
            if (mp->after == 0 && (c == '-' || c == '\r'))
                mp->after = c;
            else if (mp->after == '-' && c == '-')
                mp->state = MP_END;
            else if (mp->after == '\r' && c == '\n')
                mp->state = MP_HEADERS;
            else
                mp->state = MP_ERROR;
            break;
        }
        case MP_HEADERS:
            if (mp->hlen == sizeof mp->hdr) {
                mp->state = MP_ERROR;
                break;
            }
            mp->hdr[mp->hlen++] = (char)p[i++];
            if ((mp->hlen == 2 && memcmp(mp->hdr, "\r\n", 2) == 0) ||
                (mp->hlen >= 4 && memcmp(mp->hdr + mp->hlen - 4, "\r\n\r\n", 4) == 0))
                headers_done(mp);
            break;
        case MP_END:
            i = n; /* the epilogue is ignored */
            break;
        case MP_ERROR:
            break;
        }
    }
    return mp->state == MP_ERROR ? -1 : 0;
}

bool cd_files_mp_done(const cd_files_mp *mp)
{
    return mp->state == MP_END && mp->file_done;
}

const char *cd_files_mp_filename(const cd_files_mp *mp)
{
    return mp->filename;
}
