/* libcurl multi on the libuv loop (include/chatdesk/curluv.h): the socket callback keeps
 * one uv_poll per socket curl wants watched, the timer callback one uv_timer, and each
 * event runs curl_multi_socket_action and hands every finished transfer to the owner.
 * The struct lives until its last uv handle is closed after cd_curluv_destroy. */
#include "chatdesk/curluv.h"

#include <curl/curl.h>
#include <uv.h>

#include "chatdesk/base.h"

struct cd_curluv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* curl's timeout */
    int handles;      /* open uv handles: freed at 0 after destroy */
    bool stopping;
    cd_curluv_done_cb done;
    void *ud;
};

typedef struct curluv_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    cd_curluv *c;
} curluv_sock;

static void on_closed(uv_handle_t *h)
{
    cd_curluv *c = h->data;
    if (h->type == UV_POLL)
        cd_free(CD_CONTAINER_OF((uv_poll_t *)(void *)h, curluv_sock, poll));
    if (--c->handles == 0 && c->stopping)
        cd_free(c);
}

static void finished(cd_curluv *c)
{
    CURLMsg *m;
    int left;
    while (!c->stopping && (m = curl_multi_info_read(c->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            c->done(c->ud, m->easy_handle, (int)m->data.result);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    curluv_sock *s = CD_CONTAINER_OF(p, curluv_sock, poll);
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(s->c->multi, s->fd, flags, &running);
    finished(s->c);
}

static void on_timer(uv_timer_t *t)
{
    cd_curluv *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    finished(c);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    cd_curluv *c = userp;
    curluv_sock *s = socketp;
    (void)easy;
    if (action == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_closed);
            curl_multi_assign(c->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = cd_calloc(1, sizeof *s);
        s->fd = fd;
        s->c = c;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            cd_free(s);
            return -1;
        }
        s->poll.data = c;
        c->handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    int ev = 0;
    if (action & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (action & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    cd_curluv *c = userp;
    (void)multi;
    if (c->stopping)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, timeout_ms ? (uint64_t)timeout_ms : 1, 0);
    return 0;
}

cd_curluv *cd_curluv_create(uv_loop_t *loop, cd_curluv_done_cb done, void *ud)
{
    CURLM *multi = curl_multi_init();
    if (!multi)
        return NULL;
    cd_curluv *c = cd_calloc(1, sizeof *c);
    c->loop = loop;
    c->multi = multi;
    c->done = done;
    c->ud = ud;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    return c;
}

void *cd_curluv_multi(cd_curluv *c)
{
    return c->multi;
}

void cd_curluv_destroy(cd_curluv *c)
{
    if (!c)
        return;
    curl_multi_cleanup(c->multi); /* its sockets' polls close through socket_cb */
    c->multi = NULL;
    c->stopping = true;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}
