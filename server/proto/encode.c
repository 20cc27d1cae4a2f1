/* encode.c: outgoing frames (cd_frame) and the reply encoders.
 *
 * A cd_frame is a refcounted byte string with CD_FRAME_HEADROOM bytes in
 * front of the payload, so ws.c can hand data - LWS_PRE straight to
 * lws_write() without copying (STYLE.md B6.6, B8). The hub encodes an event
 * once and refs the same frame into every subscriber's outbound queue; the
 * last unref frees it. Frames are single-threaded like the rest of the server.
 *
 * Layout: storage = [HEADROOM][cap payload bytes][1 spare byte]; data =
 * storage + HEADROOM. The spare byte keeps data[len] == '\0' at all times so
 * a frame can be logged or parsed as a C string; it is not part of cap.
 *
 * The JSON string writer is the only place that turns server data into JSON
 * text by hand. It always produces valid JSON and valid UTF-8: quotes,
 * backslashes and control characters are escaped, U+2028/U+2029 are escaped
 * (they break JavaScript string literals in older engines), and a byte that
 * does not start a well-formed UTF-8 sequence becomes U+FFFD instead of
 * passing through, so a bug elsewhere can never make a client close the
 * connection with 1007. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chatdesk/proto.h"
#include "proto_int.h"

#define FRAME_MIN_CAP 64

/* ---- frames ---- */

cd_frame *cd_frame_create(size_t cap_hint)
{
    cd_frame *f = cd_malloc(sizeof(*f));
    size_t cap = cap_hint < FRAME_MIN_CAP ? FRAME_MIN_CAP : cap_hint;

    if (cap > SIZE_MAX - CD_FRAME_HEADROOM - 1)
        abort(); /* a caller bug, never a client-controlled size */
    f->refs = 1;
    f->len = 0;
    f->cap = cap;
    f->storage = cd_malloc(CD_FRAME_HEADROOM + cap + 1);
    memset(f->storage, 0, CD_FRAME_HEADROOM);
    f->data = f->storage + CD_FRAME_HEADROOM;
    f->data[0] = '\0';
    return f;
}

cd_frame *cd_frame_ref(cd_frame *f)
{
    if (f)
        f->refs++;
    return f;
}

/* Drops one reference; the last one frees the frame. NULL is ignored. */
void cd_frame_unref(cd_frame *f)
{
    if (!f)
        return;
    if (f->refs <= 0)
        abort(); /* unref of a freed or corrupt frame: our bug */
    if (--f->refs > 0)
        return;
    cd_free(f->storage);
    cd_free(f);
}

/* Makes room for n more payload bytes, growing geometrically. Growing moves
 * the storage, so data is recomputed; nobody may hold data across an append. */
static void reserve(cd_frame *f, size_t n)
{
    if (n <= f->cap - f->len)
        return;
    if (n > SIZE_MAX - CD_FRAME_HEADROOM - 1 - f->len)
        abort();
    size_t need = f->len + n;
    size_t cap = f->cap;
    while (cap < need)
        cap = cap > (SIZE_MAX - CD_FRAME_HEADROOM - 1) / 2 ? need : cap * 2;
    f->storage = cd_realloc(f->storage, CD_FRAME_HEADROOM + cap + 1);
    f->data = f->storage + CD_FRAME_HEADROOM;
    f->cap = cap;
}

void cd_frame_append(cd_frame *f, const void *p, size_t n)
{
    if (n == 0)
        return;
    reserve(f, n);
    memcpy(f->data + f->len, p, n);
    f->len += n;
    f->data[f->len] = '\0';
}

void cd_frame_append_str(cd_frame *f, const char *s)
{
    cd_frame_append(f, s, strlen(s));
}

void cd_frame_append_int(cd_frame *f, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    cd_frame_append(f, tmp, (size_t)n);
}

void cd_proto_append_message(cd_frame *f, const cd_proto_msg *m)
{
    cd_frame_append_str(f, "{\"seq\":");
    cd_frame_append_int(f, m->seq);
    cd_frame_append_str(f, ",\"id\":");
    cd_frame_append_json_strn(f, m->id, m->id_len);
    cd_frame_append_str(f, ",\"client_msg_id\":");
    if (m->cmid_len)
        cd_frame_append_json_strn(f, m->cmid, m->cmid_len);
    else
        cd_frame_append_str(f, "null");
    cd_frame_append_str(f, ",\"author\":{\"kind\":");
    cd_frame_append_json_strn(f, m->kind, m->kind_len);
    cd_frame_append_str(f, ",\"id\":");
    cd_frame_append_json_strn(f, m->author, m->author_len);
    cd_frame_append_str(f, ",\"name\":");
    if (m->name_len)
        cd_frame_append_json_strn(f, m->name, m->name_len);
    else
        cd_frame_append_str(f, "null");
    cd_frame_append_str(f, "},\"body\":");
    cd_frame_append_json_strn(f, m->body, m->body_len);
    cd_frame_append_str(f, m->priv ? ",\"private\":true" : ",\"private\":false");
    if (m->att_len) { /* the JSON array the store wrote (take_files in _common.lua) */
        cd_frame_append_str(f, ",\"attachments\":");
        cd_frame_append(f, m->att, m->att_len);
    }
    cd_frame_append_str(f, ",\"ts\":");
    cd_frame_append_int(f, m->ts);
    cd_frame_append(f, "}", 1);
}

/* {"type":type[,"<key>":"<val>"],"message":{...}} (val NULL: no key) */
static cd_frame *with_message(const char *type, const char *key, const char *val, size_t vlen, const cd_proto_msg *m)
{
    cd_frame *f = cd_frame_create(m->body_len + m->name_len + m->cmid_len + m->att_len + 200);
    cd_frame_append_str(f, "{\"type\":\"");
    cd_frame_append_str(f, type);
    cd_frame_append(f, "\"", 1);
    if (val) {
        cd_frame_append_str(f, ",\"");
        cd_frame_append_str(f, key);
        cd_frame_append_str(f, "\":");
        cd_frame_append_json_strn(f, val, vlen);
    }
    cd_frame_append_str(f, ",\"message\":");
    cd_proto_append_message(f, m);
    cd_frame_append(f, "}", 1);
    return f;
}

cd_frame *cd_proto_encode_message_created(const cd_proto_msg *m)
{
    return with_message("message.created", "conversation_id", m->cid, m->cid_len, m);
}

cd_frame *cd_proto_encode_ok_message(const char *rid, const cd_proto_msg *m)
{
    return with_message("ok", "rid", rid, rid ? strlen(rid) : 0, m);
}

/* the next space- or newline-ended word of [*p, end): its start and length */
static bool bus_word(const char **p, const char *end, const char **w, size_t *wl)
{
    const char *s = *p;
    const char *e = s;
    while (e < end && *e != ' ' && *e != '\n')
        e++;
    if (e == s || e == end)
        return false;
    *w = s;
    *wl = (size_t)(e - s);
    *p = e + 1;
    return true;
}

static bool bus_num(const char **p, const char *end, int64_t *v)
{
    const char *w;
    size_t wl;
    if (!bus_word(p, end, &w, &wl) || wl > 19)
        return false;
    int64_t x = 0;
    for (size_t i = 0; i < wl; i++) {
        if (w[i] < '0' || w[i] > '9')
            return false;
        x = x * 10 + (w[i] - '0');
    }
    *v = x;
    return true;
}

int cd_proto_parse_bus_message(const char *p, size_t n, cd_proto_msg *m)
{
    const char *end = p + n;
    int64_t lc, ln, lb, la = 0;
    const char *pw;
    size_t pl;
    if (n < 2 || p[0] != 'M' || p[1] != ' ')
        return -1;
    p += 2;
    if (!bus_word(&p, end, &m->cid, &m->cid_len) || !bus_word(&p, end, &m->id, &m->id_len) ||
        !bus_word(&p, end, &m->kind, &m->kind_len) || !bus_word(&p, end, &m->author, &m->author_len) ||
        !bus_num(&p, end, &m->ts) || !bus_word(&p, end, &pw, &pl) || !bus_num(&p, end, &lc) || !bus_num(&p, end, &ln) ||
        !bus_num(&p, end, &lb))
        return -1;
    if (p[-1] == ' ' && (!bus_num(&p, end, &la) || la == 0)) /* a message with attachments */
        return -1;
    if (p[-1] != '\n' || pl != 1 || (pw[0] != '0' && pw[0] != '1'))
        return -1;
    if ((uint64_t)lc + (uint64_t)ln + (uint64_t)lb + (uint64_t)la != (uint64_t)(end - p))
        return -1;
    m->priv = pw[0] == '1';
    m->cmid = p;
    m->cmid_len = (size_t)lc;
    m->name = p + lc;
    m->name_len = (size_t)ln;
    m->body = p + lc + ln;
    m->body_len = (size_t)lb;
    m->att = p + lc + ln + lb;
    m->att_len = (size_t)la;
    return 0;
}

void cd_frame_append_json_str(cd_frame *f, const char *s)
{
    if (!s) {
        cd_frame_append(f, "null", 4);
        return;
    }
    cd_frame_append_json_strn(f, s, strlen(s));
}

/* Writes n bytes of s as a JSON string literal. Runs of bytes that need no
 * escaping are copied in one go; see the file comment for what is escaped. */
void cd_frame_append_json_strn(cd_frame *f, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0; /* start of the pending unescaped run */
    size_t i = 0;

    if (!s) {
        cd_frame_append(f, "null", 4);
        return;
    }
    if (n < SIZE_MAX / 2)
        reserve(f, n + 2); /* the common case: nothing to escape */
    cd_frame_append(f, "\"", 1);
    while (i < n) {
        unsigned char c = p[i];
        char esc[8];
        size_t elen = 0;
        size_t adv = 1;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            size_t k = cd_proto__utf8_seq(p + i, n - i);
            if (k == 0) {
                memcpy(esc, "\\ufffd", 6);
                elen = 6;
            } else if (k == 3 && c == 0xE2 && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9)) {
                memcpy(esc, p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
                elen = 6;
                adv = 3;
            } else {
                i += k; /* well-formed sequence: part of the run */
                continue;
            }
        } else {
            esc[0] = '\\';
            elen = 2;
            switch (c) {
            case '"':
                esc[1] = '"';
                break;
            case '\\':
                esc[1] = '\\';
                break;
            case '\b':
                esc[1] = 'b';
                break;
            case '\f':
                esc[1] = 'f';
                break;
            case '\n':
                esc[1] = 'n';
                break;
            case '\r':
                esc[1] = 'r';
                break;
            case '\t':
                esc[1] = 't';
                break;
            default:
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                elen = 6;
                break;
            }
        }
        cd_frame_append(f, p + run, i - run);
        cd_frame_append(f, esc, elen);
        i += adv;
        run = i;
    }
    cd_frame_append(f, p + run, i - run);
    cd_frame_append(f, "\"", 1);
}

/* ---- replies ---- */

cd_frame *cd_proto_encode_error(const char *rid, cd_err code, const char *message)
{
    cd_frame *f = cd_frame_create(128);

    cd_frame_append_str(f, "{\"type\":\"error\"");
    if (rid) {
        cd_frame_append_str(f, ",\"rid\":");
        cd_frame_append_json_str(f, rid);
    }
    cd_frame_append_str(f, ",\"code\":");
    cd_frame_append_json_str(f, cd_err_name(code));
    cd_frame_append_str(f, ",\"message\":");
    cd_frame_append_json_str(f, message ? message : cd_err_name(code));
    cd_frame_append(f, "}", 1);
    return f;
}

/* raws[i] is trusted, already-encoded JSON (made by the server, never taken
 * from a client) and is copied verbatim; NULL is written as null. */
cd_frame *cd_proto_encode_ok(const char *rid, size_t n, const char *const *keys, const char *const *raws)
{
    cd_frame *f = cd_frame_create(64);

    cd_frame_append_str(f, "{\"type\":\"ok\"");
    if (rid) {
        cd_frame_append_str(f, ",\"rid\":");
        cd_frame_append_json_str(f, rid);
    }
    for (size_t i = 0; i < n; i++) {
        cd_frame_append(f, ",", 1);
        cd_frame_append_json_str(f, keys[i]);
        cd_frame_append(f, ":", 1);
        cd_frame_append_str(f, raws[i] ? raws[i] : "null");
    }
    cd_frame_append(f, "}", 1);
    return f;
}

cd_frame *cd_proto_frame_from(const char *p, size_t n)
{
    cd_frame *f = cd_frame_create(n);
    cd_frame_append(f, p, n);
    return f;
}
