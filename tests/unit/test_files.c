/* files/: what an upload is by its bytes (cd_files_sniff, the allowed categories), names
 * fit to keep (cd_files_name), the streaming multipart decoder fed whole, byte by byte
 * and with delimiter look-alikes in the data, and signed download URLs (expiry, tamper,
 * unknown key). The storage and Redis parts are in tests/server/93-attachments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chatdesk/files.h"

static cd_files_cat sniff(const char *bytes, size_t n, const char *name, const char **mime)
{
    return cd_files_sniff((const unsigned char *)bytes, n, name, mime);
}

static void test_sniff(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t n;
        const char *name;
        cd_files_cat cat;
        const char *mime;
    } cases[] = {
        {"\x89PNG\r\n\x1a\n....", 12, "a.txt", CD_FILES_IMAGE, "image/png"},
        {"\xff\xd8\xff\xe0", 4, "x", CD_FILES_IMAGE, "image/jpeg"},
        {"GIF89a..", 8, "x", CD_FILES_IMAGE, "image/gif"},
        {"RIFF\x10\0\0\0WEBPVP8 ", 16, "x", CD_FILES_IMAGE, "image/webp"},
        {"RIFF\x10\0\0\0WAVEfmt ", 16, "x", CD_FILES_UNKNOWN, "application/octet-stream"},
        {"%PDF-1.4", 8, "x.png", CD_FILES_PDF, "application/pdf"},
        {"PK\x03\x04rest", 8, "report.docx", CD_FILES_OFFICE,
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
        {"PK\x03\x04rest", 8, "report.zip", CD_FILES_ARCHIVE, "application/zip"},
        {"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8, "old.XLS", CD_FILES_OFFICE, "application/vnd.ms-office"},
        {"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8, "setup.msi", CD_FILES_UNKNOWN, "application/octet-stream"},
        {"\x1f\x8b\x08", 3, "x.gz", CD_FILES_ARCHIVE, "application/gzip"},
        {"hello\r\nworld\t\xe4\xbd\xa0\xe5\xa5\xbd", 19, "x", CD_FILES_TEXT, "text/plain; charset=utf-8"},
        {"cut \xe4\xbd", 6, "x", CD_FILES_TEXT, "text/plain; charset=utf-8"}, /* cut by the sniff length */
        {"bad \xc0\xaf here", 11, "x", CD_FILES_UNKNOWN, "application/octet-stream"},
        {"nul\0byte", 8, "x", CD_FILES_UNKNOWN, "application/octet-stream"},
        {"  \n<svg onload=alert(1)>", 24, "x.png", CD_FILES_MARKUP, "application/octet-stream"},
        {"\xef\xbb\xbf<!DOCTYPE html>", 18, "x.txt", CD_FILES_MARKUP, "application/octet-stream"},
        {"\x7f"
         "ELF\x02\x01",
         6, "x.png", CD_FILES_UNKNOWN, "application/octet-stream"},
        {"", 0, "x", CD_FILES_UNKNOWN, "application/octet-stream"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *mime = NULL;
        cd_files_cat cat = sniff(cases[i].bytes, cases[i].n, cases[i].name, &mime);
        if (cat != cases[i].cat || strcmp(mime, cases[i].mime) != 0)
            fail_msg("case %zu: %s %s", i, cd_files_cat_name(cat), mime);
    }
    assert_true(cd_files_allowed("image, pdf,text", CD_FILES_PDF));
    assert_true(cd_files_allowed("IMAGE", CD_FILES_IMAGE));
    assert_false(cd_files_allowed("image,pdf", CD_FILES_TEXT));
    assert_false(cd_files_allowed("images", CD_FILES_IMAGE));
    assert_false(cd_files_allowed("image,pdf,office,text,archive,markup,unknown", CD_FILES_MARKUP));
    assert_false(cd_files_allowed("image,pdf,office,text,archive,markup,unknown", CD_FILES_UNKNOWN));
    assert_true(cd_files_inline_safe("image/png"));
    assert_false(cd_files_inline_safe("image/svg+xml"));
    assert_false(cd_files_inline_safe("text/plain; charset=utf-8"));
}

static void test_name(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"report.pdf", "report.pdf"},
        {"../../etc/passwd", "passwd"},
        {"C:\\Users\\me\\a.doc", "a.doc"},
        {"..", "file"},
        {"", "file"},
        {"  ..hidden. ", "hidden"},
        {"a\"b<c>d|e?f*g:h;i", "a_b_c_d_e_f_g_h_i"},
        {"tab\there\x01", "tab_here_"},
        {"\xe5\x8f\x91\xe7\xa5\xa8.pdf", "\xe5\x8f\x91\xe7\xa5\xa8.pdf"},
        {"bad\xff\xfeutf8", "bad__utf8"},
        {"\xed\xa0\x80surrogate", "___surrogate"},
    };
    char out[201];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cd_files_name(cases[i].in, strlen(cases[i].in), out);
        if (strcmp(out, cases[i].out) != 0)
            fail_msg("case %zu: \"%s\" -> \"%s\"", i, cases[i].in, out);
    }
    /* 300 bytes of 3-byte characters: cut at 200 bytes on a character boundary */
    char long_name[301];
    for (int i = 0; i < 100; i++)
        memcpy(long_name + 3 * i, "\xe4\xbd\xa0", 3);
    cd_files_name(long_name, 300, out);
    assert_int_equal(strlen(out), 198);
}

typedef struct sink {
    char buf[4096];
    size_t n;
    int calls;
} sink;

static int collect(void *ud, const unsigned char *p, size_t n)
{
    sink *s = ud;
    assert_true(n > 0);
    assert_true(s->n + n <= sizeof s->buf);
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    s->calls++;
    return 0;
}

/* The body fed in pieces of `step` bytes (0: whole): the file part's bytes and done. */
static bool decode(const char *ct, const char *body, size_t len, size_t step, sink *s)
{
    memset(s, 0, sizeof *s);
    cd_files_mp *mp = cd_files_mp_new(ct, collect, s);
    assert_non_null(mp);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t k = step == 0 || len - i < step ? len - i : step;
        rc = cd_files_mp_feed(mp, (const unsigned char *)body + i, k);
        i += k;
    }
    bool done = rc == 0 && cd_files_mp_done(mp);
    cd_files_mp_free(mp);
    return done;
}

static void test_multipart(void **state)
{
    (void)state;
    static const char ct[] = "multipart/form-data; boundary=XyZ";
    /* a field first, then the file whose data holds look-alikes of the delimiter */
    static const char body[] = "preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a \\\"b\\\".png\"\r\n"
                               "Content-Type: image/png\r\n\r\n"
                               "\r\n--Xy\r\r\n--XyQ\r\n-data\r\n--XyZ--\r\nepilogue";
    static const char want[] = "\r\n--Xy\r\r\n--XyQ\r\n-data";
    sink s;
    for (size_t step = 0; step <= 9; step++) {
        assert_true(decode(ct, body, sizeof body - 1, step, &s));
        assert_int_equal(s.n, sizeof want - 1);
        assert_memory_equal(s.buf, want, sizeof want - 1);
    }
    cd_files_mp *mp = cd_files_mp_new(ct, collect, &s);
    assert_int_equal(cd_files_mp_feed(mp, (const unsigned char *)body, sizeof body - 1), 0);
    assert_string_equal(cd_files_mp_filename(mp), "a \"b\".png");
    cd_files_mp_free(mp);
    /* a body starting with the delimiter, a quoted boundary */
    static const char b2[] = "--q1\r\ncontent-disposition: form-data; name=f; filename=x.txt\r\n\r\nabc\r\n--q1--";
    assert_true(decode("multipart/form-data; boundary=\"q1\"", b2, sizeof b2 - 1, 1, &s));
    assert_int_equal(s.n, 3);
    /* no closing delimiter, no file part, garbage after a delimiter */
    assert_false(decode(ct, body, sizeof body - 15, 0, &s));
    static const char nofile[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--";
    assert_false(decode(ct, nofile, sizeof nofile - 1, 0, &s));
    static const char junk[] = "--XyZ!!";
    assert_false(decode(ct, junk, sizeof junk - 1, 0, &s));
    /* not multipart, or no usable boundary */
    assert_null(cd_files_mp_new("application/octet-stream", collect, &s));
    assert_null(cd_files_mp_new("multipart/form-data", collect, &s));
    assert_null(cd_files_mp_new("multipart/form-data; boundary=", collect, &s));
    assert_null(cd_files_mp_new(
        "multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890123456789X",
        collect, &s));
}

static void test_url(void **state)
{
    (void)state;
    cd_auth_keyring kr;
    cd_auth_keyring_init(&kr);
    char url[512];
    assert_int_equal(cd_files_url_sign(&kr, "f_a.s1", 5000, url, sizeof url), -1); /* no key */
    assert_int_equal(
        cd_auth_keyring_add_hex(&kr, "k1", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"), 0);
    assert_int_equal(cd_files_url_sign(&kr, "f_a.s1", 5000, url, sizeof url), 0);
    assert_int_equal(strncmp(url, "/files/f_a.s1?e=5000&k=k1&s=", 28), 0);
    const char *mac = url + 28;
    assert_true(cd_files_url_verify(&kr, "f_a.s1", "5000", "k1", mac, 4999));
    assert_false(cd_files_url_verify(&kr, "f_a.s1", "5000", "k1", mac, 5001)); /* expired */
    assert_false(cd_files_url_verify(&kr, "f_b.s1", "5000", "k1", mac, 0));    /* another file */
    assert_false(cd_files_url_verify(&kr, "f_a.s1", "50000", "k1", mac, 0));   /* a later expiry */
    assert_false(cd_files_url_verify(&kr, "f_a.s1", "5000", "k2", mac, 0));    /* an unknown key */
    assert_false(cd_files_url_verify(&kr, "f_a.s1", "5000x", "k1", mac, 0));
    assert_false(cd_files_url_verify(&kr, "f_a.s1", "5000", "k1", NULL, 0));
    assert_int_equal(cd_files_url_sign(&kr, "f_a.s1", 5000, url, 20), -1); /* too small */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_name),
        cmocka_unit_test(test_multipart),
        cmocka_unit_test(test_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
