/* files: attachments (docs/attachments.md). What a file is allowed to be is decided here
 * from its bytes, never from what the client declared: the first bytes of an upload are
 * sniffed (cd_files_sniff) and matched against the node's allowed categories. A
 * multipart/form-data body is decoded as it streams (cd_files_mp_*), so an upload is
 * never held whole in memory; names are sanitised (cd_files_name); downloads go through
 * short-lived signed URLs (cd_files_url_*), checked by HMAC with the token keyring.
 *
 * The parts in this header above "storage" are pure (no loop, no Redis) and fuzzed
 * (tests/fuzz/fuzz_files.c). The storage part writes bodies to the shared files
 * directory on the libuv thread pool (never on the loop), and its Redis wrappers keep
 * each file's record in its site's slot (P{s:<site>}:file:<id>). */
#ifndef CHATDESK_FILES_H
#define CHATDESK_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chatdesk/auth.h"
#include "chatdesk/base.h"
#include "chatdesk/config.h"
#include "chatdesk/store.h"
#include "chatdesk/timers.h"

struct uv_loop_s;

/* ---- what a file is, by its bytes ---- */

/* Categories an operator allows (file_types, a comma list of these names). Markup (HTML,
 * SVG, XML) is recognised so that it is refused: it is in no category. */
#define CD_FILES_CATEGORIES(X) \
    X(IMAGE, "image")          \
    X(PDF, "pdf")              \
    X(OFFICE, "office")        \
    X(TEXT, "text")            \
    X(ARCHIVE, "archive")

typedef enum cd_files_cat {
    CD_FILES_UNKNOWN = 0,
    CD_FILES_MARKUP,
#define CD_FILES_CAT_ENUM(e, name) CD_FILES_##e,
    CD_FILES_CATEGORIES(CD_FILES_CAT_ENUM)
#undef CD_FILES_CAT_ENUM
} cd_files_cat;

/* Bytes cd_files_sniff wants to see (fewer when the file is shorter). */
#define CD_FILES_SNIFF_LEN 512

/* The category and MIME type of a file from its first n bytes (at most
 * CD_FILES_SNIFF_LEN are read) and its sanitised name (which only picks among formats
 * that share one container: a ZIP named .docx is a Word document, else a ZIP archive).
 * *mime is a static string ("application/octet-stream" when unknown). */
cd_files_cat cd_files_sniff(const unsigned char *p, size_t n, const char *name, const char **mime);
/* Is cat one of the comma-separated category names of types? */
bool cd_files_allowed(const char *types, cd_files_cat cat);
/* "image", "pdf"...; "markup" and "unknown" for the two refused kinds. */
const char *cd_files_cat_name(cd_files_cat cat);
/* Shown inline by browsers with no risk: PNG, JPEG, GIF and WebP only (never SVG). */
bool cd_files_inline_safe(const char *mime);

/* A file name fit to store and to put in a Content-Disposition header: the part after the
 * last '/' or '\', with control characters, quotes and characters Windows refuses
 * replaced by '_', invalid UTF-8 replaced by '_', leading dots and spaces and trailing
 * dots and spaces removed, cut to at most 200 bytes at a character boundary; "file" when
 * nothing is left. out must hold 201 bytes. */
void cd_files_name(const char *in, size_t n, char out[201]);

/* ---- multipart/form-data, streamed ---- */

/* One decoder per upload, fed the body as it comes. The first part that carries a
 * filename is the file: its bytes go to on_data as they are found (in pieces of any
 * size); other parts are skipped. Memory: a fixed few KB, whatever the body's size. */
typedef struct cd_files_mp cd_files_mp;
/* data of the file part (never called with n == 0); return non-zero to stop (feed then
 * answers -1). */
typedef int (*cd_files_mp_data_cb)(void *ud, const unsigned char *p, size_t n);

/* The boundary from a Content-Type value ("multipart/form-data; boundary=..."); NULL
 * (and nothing allocated) when it is not multipart/form-data with a boundary of 1..70
 * bytes. */
cd_files_mp *cd_files_mp_new(const char *content_type, cd_files_mp_data_cb on_data, void *ud);
void cd_files_mp_free(cd_files_mp *mp);
/* 0: fed; -1: the body is malformed (or on_data stopped it): feed no more. */
int cd_files_mp_feed(cd_files_mp *mp, const unsigned char *p, size_t n);
/* After the last byte: true when the closing boundary was seen and a file part was found. */
bool cd_files_mp_done(const cd_files_mp *mp);
/* The file part's filename as sent (raw, NUL-terminated, at most 1 KB); "" before it. */
const char *cd_files_mp_filename(const cd_files_mp *mp);

/* ---- signed download URLs ---- */

/* "/files/<id>?e=<expiry ms>&k=<kid>&s=<hex HMAC-SHA256(key, "file|<id>|<expiry>")>" into
 * out with the keyring's newest key; -1 when there is no key or out is too small. */
int cd_files_url_sign(const cd_auth_keyring *kr, const char *id, int64_t exp_ms, char *out, size_t outsz);
/* Checks the query arguments of a download: the MAC of id and e under the key named k,
 * and e not past now. */
bool cd_files_url_verify(const cd_auth_keyring *kr, const char *id, const char *e, const char *k, const char *s,
                         int64_t now_ms);

/* ---- storage: the shared files directory ---- */

/* A file body being written: chunks are written in order on the thread pool, one at a
 * time; while one is in flight the caller holds the next (it pauses its reads). */
typedef struct cd_files_writer cd_files_writer;
/* Called once per cd_files_writer_write / _finish that returned 0: status 0 or a
 * negative errno. */
typedef void (*cd_files_io_cb)(void *ud, int status);

/* Creates "<dir>/<site>/<id>.part" (and the site's folder). The callback comes once
 * (status 0: open; else failed, and the writer must only be freed). NULL: not started. */
cd_files_writer *cd_files_writer_open(struct uv_loop_s *loop, const char *dir, const char *site, const char *id,
                                      cd_files_io_cb cb, void *ud);
/* Copies p (at most 64 KB) and writes it; 0 and one callback later, or -1 (one write in
 * flight already, or the writer failed). */
int cd_files_writer_write(cd_files_writer *w, const void *p, size_t n, cd_files_io_cb cb, void *ud);
/* Closes and renames <id>.part to <id>: the body is complete. 0 and one callback, or -1. */
int cd_files_writer_finish(cd_files_writer *w, cd_files_io_cb cb, void *ud);
/* Frees the writer; an unfinished body is removed. Safe while an operation is in flight
 * (its callback is then not called; the clean-up finishes by itself). */
void cd_files_writer_free(cd_files_writer *w);
/* "<dir>/<site>/<id>" into out (-1 when it does not fit or an id is not a plain name). */
int cd_files_path(const char *dir, const char *site, const char *id, char *out, size_t outsz);
/* Removes a stored body on the thread pool (fire and forget; a missing file is fine). */
void cd_files_remove(struct uv_loop_s *loop, const char *dir, const char *site, const char *id);

/* ---- storage: an S3-compatible store (files_store = s3) ---- */

/* libcurl multi on the loop; NULL when it cannot start (no s3_bucket, no libcurl). */
typedef struct cd_files_s3 cd_files_s3;
typedef struct cd_files_s3_req cd_files_s3_req;
cd_files_s3 *cd_files_s3_create(struct uv_loop_s *loop, const cd_config *cfg);
/* Transfers in flight are dropped with their callbacks; memory goes once handles close. */
void cd_files_s3_destroy(cd_files_s3 *s3);
/* Streams the staged local file (size bytes) to "<site>/<id>" and removes it once stored;
 * done once (0 or a negative errno), or -1 and never. */
int cd_files_s3_put(cd_files_s3 *s3, const char *staged, int64_t size, const char *site, const char *id,
                    cd_files_io_cb done, void *ud);
/* A piece of a GET's body: 0 taken, non-zero "not now" (the same bytes come again after
 * cd_files_s3_resume). */
typedef int (*cd_files_s3_data_cb)(void *ud, const unsigned char *p, size_t n);
/* Streams "<site>/<id>" to on_data; done once at the end (0, UV_ENOENT, UV_EIO) unless
 * cancelled. NULL: not started. */
cd_files_s3_req *cd_files_s3_get(cd_files_s3 *s3, const char *site, const char *id, cd_files_s3_data_cb on_data,
                                 cd_files_io_cb done, void *ud);
void cd_files_s3_resume(cd_files_s3_req *r);
/* The caller lets go before done: done is never called, the transfer ends by itself. */
void cd_files_s3_cancel(cd_files_s3_req *r);
/* Removes "<site>/<id>" (fire and forget). */
void cd_files_s3_delete(cd_files_s3 *s3, const char *site, const char *id);

/* ---- records in Redis ---- */

/* json: the function's reply (NUL-terminated) when err is CD_ERR_OK, else its message. */
typedef void (*cd_files_cb)(void *ud, cd_err err, const char *json);

/* An upload starts (file_put.lua "begin"): its id ("f_<random>.<site>"), by whom (kind
 * "visitor"/"agent" and id; an agent must be of the site and name a conversation of it;
 * a visitor only its own), the record ("uploading") and its orphan timer, which removes
 * it after file_orphan_s unless a message takes it (also when its node dies mid-upload).
 * Reply {"id"}; not_found for a conversation the uploader may not use. */
int cd_files_begin(cd_store *st, const cd_config *cfg, const char *site, const char *id, const char *kind,
                   const char *who, const char *cid, cd_files_cb cb, void *ud);
/* The body is stored ("done"): name, type, size; reply {"id","name","type","size"}.
 * Both steps answer rate_limited while the uploader has file_max_pending uploads that no
 * message took yet. */
int cd_files_put(cd_store *st, const cd_config *cfg, const char *site, const char *id, const char *kind,
                 const char *who, const char *name, const char *mime, int64_t size, cd_files_cb cb, void *ud);
/* The uploader (kind/who) withdraws an upload no message took (file_delete.lua): reply
 * {"remove":true}, and nothing can take or read it from then on; then cd_files_discard.
 * not_found alike for another's file, another site's and none; conflict when a message
 * carries it. -2 when id names no site. */
int cd_files_delete(cd_store *st, const char *id, const char *kind, const char *who, cd_files_cb cb, void *ud);
/* A file marked "reaped" (by cd_files_delete or its orphan timer): its body goes (the
 * files directory, a ".part" a dead node left, and with s3 the store), then its record
 * (file_orphan.lua "drop"). Its orphan timer stays until then, so a node that dies in
 * between leaves the rest to it. */
void cd_files_discard(struct uv_loop_s *loop, cd_store *st, const cd_config *cfg, cd_files_s3 *s3, const char *site,
                      const char *id);
/* May kind/who see file id (file_get.lua, no writes)? Its record {"id","name","type",
 * "size","site"} when it may; not_found alike for another site's or another visitor's
 * file and for none. */
int cd_files_get(cd_store *st, const char *id, const char *kind, const char *who, cd_files_cb cb, void *ud);
/* The site of an id "f_<random>.<site>" into out; false when it names none. */
bool cd_files_id_site(const char *id, char *out, size_t outsz);

/* Registers the timer kind "fileorphan" (an upload no message took is removed, record
 * and body: in the files directory and, with s3 non-NULL, in the store). The context
 * lives as long as the timers. */
void cd_files_timers_register(cd_timers *t, struct uv_loop_s *loop, cd_store *st, const cd_config *cfg,
                              cd_files_s3 *s3);

#endif
