/* curluv: libcurl's multi interface driven by the node's libuv loop, the pattern of
 * curl's docs/examples/multi-uv.c: one uv_poll per socket curl opens, one uv_timer for
 * curl's timeouts, curl_multi_socket_action on each, and a callback per finished
 * transfer. Nothing here blocks the loop (DNS runs in curl's resolver thread when curl has
 * AsynchDNS). Its users: webhook deliveries and the S3 attachment store. The header
 * keeps curl's types out (void * for CURLM and CURL), so including it needs no curl. */
#ifndef CHATDESK_CURLUV_H
#define CHATDESK_CURLUV_H

struct uv_loop_s;

typedef struct cd_curluv cd_curluv;

/* A transfer of the multi ended: its easy handle (CURL *) and result (CURLcode). The
 * callback may remove and clean up the easy handle. */
typedef void (*cd_curluv_done_cb)(void *ud, void *easy, int result);

/* A new CURLM on loop; NULL when curl cannot make one. */
cd_curluv *cd_curluv_create(struct uv_loop_s *loop, cd_curluv_done_cb done, void *ud);
/* The CURLM * to add easy handles to. */
void *cd_curluv_multi(cd_curluv *c);
/* Cleans the multi up (its users removed their easy handles first) and closes the uv
 * handles; done is never called again; the memory goes once the handles are closed. */
void cd_curluv_destroy(cd_curluv *c);

#endif
