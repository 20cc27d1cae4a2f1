/* http-internal: the attachment routes (docs/attachments.md). files.c does the upload
 * (POST /files: a raw body or multipart/form-data, streamed to the files directory), the
 * signed link (GET /files/<id>/link) and the headers of a download (GET /files/<id>?...);
 * http.c owns the connection and answers through cd_http__reply. */
#ifndef CHATDESK_HTTP_FILES_INT_H
#define CHATDESK_HTTP_FILES_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "chatdesk/files.h"
#include "chatdesk/net.h"

struct lws;

/* http.c: the connection's state (opaque here). */
typedef struct http_state http_state;
/* Answers the request with a body (copied); nothing happens when h is NULL. */
void cd_http__reply(http_state *h, int status, const char *ctype, const char *body, size_t len);
/* A JSON error answer {"error":{"code","message"}}. */
void cd_http__reply_error(http_state *h, int status, const char *code, const char *message);
/* Serves the file at path as the response, with the download headers of
 * cd_http__file_headers (written at the next WRITEABLE). */
void cd_http__reply_file(http_state *h, const char *path, const char *mime, const char *name);

/* The address's token bucket in table (n entries by a hash of the address); false: over. */
bool cd_http__address_rate_ok(http_state *h, cd_ratelimit *table, size_t n, double rate, double burst);

/* files_store s3: the body of "<site>/<id>" streamed from the store as the response
 * (size bytes, with the download headers); 404 when the store has no such object. */
void cd_http__reply_s3(http_state *h, struct cd_files_s3 *s3, const char *site, const char *id, const char *mime,
                       const char *name, int64_t size);

typedef struct cd_http__upload cd_http__upload;
/* The upload of h ended (it frees itself): h forgets it. */
void cd_http__upload_clear(http_state *h);

/* POST /files: checks the token (a visitor's, or an agent's with ?conversation_id= of a
 * site of its), the declared length and the rate; NULL after answering when refused. */
cd_http__upload *cd_http__upload_begin(http_state *h, struct lws *wsi, cd_net_ctx *cx, const char *auth,
                                       const char *const *args, size_t nargs);
/* A piece of the body. */
void cd_http__upload_body(cd_http__upload *u, const void *in, size_t len);
/* The body is complete: the answer comes when the file is stored and recorded. */
void cd_http__upload_complete(cd_http__upload *u);
/* The connection is gone: the upload stops (its body is removed) and frees itself. */
void cd_http__upload_detach(cd_http__upload *u);

typedef struct cd_http__fileop cd_http__fileop;
/* The file operation of h ended (it frees itself): h forgets it; or h waits for op now. */
void cd_http__fileop_clear(http_state *h);
void cd_http__fileop_set(http_state *h, cd_http__fileop *op);
/* GET /files/<id>/link (token) and GET /files/<id>?e=&k=&s= (signed); the answer comes
 * later through h. NULL after answering at once. */
cd_http__fileop *cd_http__file_link(http_state *h, cd_net_ctx *cx, const char *auth, const char *id);
/* DELETE /files/<id> (token): the uploader withdraws an upload no message took; 204. */
cd_http__fileop *cd_http__file_remove(http_state *h, cd_net_ctx *cx, const char *auth, const char *id);
cd_http__fileop *cd_http__file_download(http_state *h, cd_net_ctx *cx, const char *id, const char *const *args,
                                        size_t nargs);
/* The connection is gone: the operation's answer is dropped. */
void cd_http__fileop_detach(cd_http__fileop *op);

/* The file store's health (/healthz "files"): at most every FILES_PROBE_MS a probe
 * creates and removes a file in files_dir on the thread pool (for s3 the staging
 * directory); its result, and each upload's storing, set cx->files_error. */
void cd_http__files_probe(cd_net_ctx *cx);

/* The headers of a download into *p (lws_add_http_header_by_name): Content-Disposition
 * (inline only for a safe image; attachment with the sanitised name otherwise),
 * X-Content-Type-Options nosniff, a CSP that runs nothing, no caching. -1 when they do
 * not fit. */
int cd_http__file_headers(struct lws *wsi, const char *mime, const char *name, unsigned char **p, unsigned char *end);

#endif
