/* What an uploaded file is, from its bytes, and a name fit to keep. Pure functions, fuzzed
 * (tests/fuzz/fuzz_files.c). The declared Content-Type of an upload is never read: a
 * script renamed .png is text or markup here, and markup (HTML, SVG, XML: what a browser
 * could run) is in no category, so no setting lets it in. The name only chooses among
 * formats that share a container (ZIP: Office Open XML, OpenDocument or an archive; the
 * OLE compound file of the old Office formats). */
#include "chatdesk/files.h"

#include <string.h>
#include <strings.h>

static bool starts(const unsigned char *p, size_t n, const char *magic, size_t mlen)
{
    return n >= mlen && memcmp(p, magic, mlen) == 0;
}

static bool ends_with(const char *name, const char *ext)
{
    size_t nl = strlen(name), el = strlen(ext);
    return nl > el && strcasecmp(name + nl - el, ext) == 0;
}

static bool any_ext(const char *name, const char *const *exts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ends_with(name, exts[i]))
            return true;
    return false;
}

/* The length of the valid UTF-8 sequence at p (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t k;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4;
    else
        return 0;
    if (k > n)
        return 0;
    for (size_t j = 1; j < k; j++)
        if ((p[j] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return k;
}

/* UTF-8 text with no control characters but blanks; a sequence cut by the end of the
 * sniffed bytes is fine. */
static bool text_like(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f') || c == 0x7f)
            return false;
        size_t k = utf8_len(p + i, n - i);
        if (k == 0)
            return n - i < 4 && c >= 0xc2 && c <= 0xf4;
        i += k;
    }
    return true;
}

/* Text whose first non-blank character opens a tag: HTML, SVG or XML. */
static bool markup_like(const unsigned char *p, size_t n)
{
    size_t i = starts(p, n, "\xef\xbb\xbf", 3) ? 3 : 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n' || p[i] == '\f'))
        i++;
    return i < n && p[i] == '<';
}

static cd_files_cat zip_kind(const unsigned char *p, size_t n, const char *name, const char **mime)
{
    static const char odf[] = "mimetypeapplication/vnd.oasis.opendocument.";
    if (n >= 30 + sizeof odf - 1 && memcmp(p + 30, odf, sizeof odf - 1) == 0) {
        *mime = "application/vnd.oasis.opendocument";
        return CD_FILES_OFFICE;
    }
    static const struct {
        const char *ext, *mime;
    } ooxml[] = {
        {".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
        {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
        {".pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    };
    for (size_t i = 0; i < sizeof ooxml / sizeof ooxml[0]; i++)
        if (ends_with(name, ooxml[i].ext)) {
            *mime = ooxml[i].mime;
            return CD_FILES_OFFICE;
        }
    *mime = "application/zip";
    return CD_FILES_ARCHIVE;
}

cd_files_cat cd_files_sniff(const unsigned char *p, size_t n, const char *name, const char **mime)
{
    static const char *const ole_ext[] = {".doc", ".xls", ".ppt", ".msg"};
    if (n > CD_FILES_SNIFF_LEN)
        n = CD_FILES_SNIFF_LEN;
    *mime = "application/octet-stream";
    if (n == 0)
        return CD_FILES_UNKNOWN;
    if (starts(p, n, "\x89PNG\r\n\x1a\n", 8)) {
        *mime = "image/png";
        return CD_FILES_IMAGE;
    }
    if (starts(p, n, "\xff\xd8\xff", 3)) {
        *mime = "image/jpeg";
        return CD_FILES_IMAGE;
    }
    if (starts(p, n, "GIF87a", 6) || starts(p, n, "GIF89a", 6)) {
        *mime = "image/gif";
        return CD_FILES_IMAGE;
    }
    if (n >= 12 && starts(p, n, "RIFF", 4) && memcmp(p + 8, "WEBP", 4) == 0) {
        *mime = "image/webp";
        return CD_FILES_IMAGE;
    }
    if (starts(p, n, "%PDF-", 5)) {
        *mime = "application/pdf";
        return CD_FILES_PDF;
    }
    if (starts(p, n, "PK\x03\x04", 4))
        return zip_kind(p, n, name, mime);
    if (starts(p, n, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8)) {
        if (!any_ext(name, ole_ext, sizeof ole_ext / sizeof ole_ext[0]))
            return CD_FILES_UNKNOWN;
        *mime = "application/vnd.ms-office";
        return CD_FILES_OFFICE;
    }
    if (starts(p, n, "\x1f\x8b", 2)) {
        *mime = "application/gzip";
        return CD_FILES_ARCHIVE;
    }
    if (starts(p, n, "7z\xbc\xaf\x27\x1c", 6)) {
        *mime = "application/x-7z-compressed";
        return CD_FILES_ARCHIVE;
    }
    if (starts(p, n, "Rar!\x1a\x07", 6)) {
        *mime = "application/vnd.rar";
        return CD_FILES_ARCHIVE;
    }
    if (n >= 262 && memcmp(p + 257, "ustar", 5) == 0) {
        *mime = "application/x-tar";
        return CD_FILES_ARCHIVE;
    }
    if (text_like(p, n)) {
        if (markup_like(p, n))
            return CD_FILES_MARKUP;
        *mime = "text/plain; charset=utf-8";
        return CD_FILES_TEXT;
    }
    return CD_FILES_UNKNOWN;
}

const char *cd_files_cat_name(cd_files_cat cat)
{
    switch (cat) {
#define CD_FILES_CAT_NAME(e, name) \
    case CD_FILES_##e:             \
        return name;
        CD_FILES_CATEGORIES(CD_FILES_CAT_NAME)
#undef CD_FILES_CAT_NAME
    case CD_FILES_MARKUP:
        return "markup";
    case CD_FILES_UNKNOWN:
        break;
    }
    return "unknown";
}

bool cd_files_allowed(const char *types, cd_files_cat cat)
{
    if (cat == CD_FILES_UNKNOWN || cat == CD_FILES_MARKUP || !types)
        return false;
    const char *want = cd_files_cat_name(cat);
    size_t wl = strlen(want);
    for (const char *p = types; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',' && *e != ' ')
            e++;
        if ((size_t)(e - p) == wl && strncasecmp(p, want, wl) == 0)
            return true;
        p = e;
    }
    return false;
}

bool cd_files_inline_safe(const char *mime)
{
    return mime && (strcmp(mime, "image/png") == 0 || strcmp(mime, "image/jpeg") == 0 ||
                    strcmp(mime, "image/gif") == 0 || strcmp(mime, "image/webp") == 0);
}

void cd_files_name(const char *in, size_t n, char out[201])
{
    const unsigned char *p = (const unsigned char *)in;
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '/' || p[i] == '\\')
            start = i + 1;
    size_t o = 0;
    for (size_t i = start; i < n;) {
        size_t k = utf8_len(p + i, n - i);
        if (k == 0 || (k == 1 && (p[i] < 0x20 || p[i] == 0x7f || strchr("\"*:<>?|;", p[i]) != NULL))) {
            if (o + 1 > 200)
                break;
            out[o++] = '_';
            i += k ? k : 1;
            continue;
        }
        if (o + k > 200)
            break;
        memcpy(out + o, p + i, k);
        o += k;
        i += k;
    }
    out[o] = '\0';
    size_t lead = 0;
    while (out[lead] == '.' || out[lead] == ' ')
        lead++;
    if (lead)
        memmove(out, out + lead, o - lead + 1);
    o -= lead;
    while (o > 0 && (out[o - 1] == '.' || out[o - 1] == ' '))
        out[--o] = '\0';
    if (o == 0)
        memcpy(out, "file", 5);
}
