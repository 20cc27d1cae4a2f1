/* The ticket calls: each is one Redis function on the conversation's key (in the site its
 * id names, else in the site given), answered with an error or nothing the caller needs. */
#include <jansson.h>
#include <stdio.h>

#include "chatdesk/clock.h"
#include "chatdesk/ticket.h"

#define I64(buf, v) (snprintf(buf, sizeof buf, "%lld", (long long)(v)), buf)

typedef struct call {
    cd_ticket_cb cb;
    void *ud;
} call;

static void on_reply(void *ud, cd_err err, const char *json, size_t len)
{
    call *c = ud;
    json_t *root = err != CD_ERR_OK && json ? json_loadb(json, len, 0, NULL) : NULL;
    if (c->cb)
        c->cb(c->ud, err, json_string_value(json_object_get(root, "message")));
    json_decref(root);
    cd_free(c);
}

static int run(cd_store *st, const char *script, const char *site, const char *cid, int n, const char *const *args,
               cd_ticket_cb cb, void *ud)
{
    cd_key k;
    const char *keys[] = {cd_key_conv(&k, cd_store_prefix(st), site, cid)};
    call *c = cd_malloc(sizeof *c);
    c->cb = cb;
    c->ud = ud;
    if (cd_store_fcall(st, script, 1, keys, n, args, NULL, on_reply, c) != 0) {
        cd_free(c);
        return -1;
    }
    return 0;
}

int cd_ticket_convert(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *intervals,
                      cd_ticket_cb cb, void *ud)
{
    char now[24], msg_id[64], retain[24];
    cd_id_new("m", msg_id, sizeof msg_id);
    const char *args[] = {cid, I64(now, cd_now_ms()), intervals ? intervals : "*", msg_id,
                          I64(retain, cfg->history_retain)};
    return run(st, "ticket_convert", site, cid, 5, args, cb, ud);
}

int cd_ticket_sla_sync(cd_store *st, const char *site, const char *cid, const char *intervals, cd_ticket_cb cb,
                       void *ud)
{
    char now[24];
    const char *args[] = {cid, I64(now, cd_now_ms()), intervals ? intervals : "*"};
    return run(st, "sla_sync", site, cid, 3, args, cb, ud);
}

int cd_ticket_sla_fire(cd_store *st, const cd_config *cfg, const char *site, const char *cid, const char *kind,
                       const char *level, cd_ticket_cb cb, void *ud)
{
    char now[24], note_id[64], retain[24];
    cd_id_new("m", note_id, sizeof note_id);
    const char *args[] = {cid, kind, level, I64(now, cd_now_ms()), "*", note_id, I64(retain, cfg->history_retain)};
    return run(st, "sla_fire", site, cid, 7, args, cb, ud);
}
