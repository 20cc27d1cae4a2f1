/* The cron: the node's one repeating timer (STYLE B8, Redis serverCron). Modules do not
 * start repeating timers of their own; their ticks are added here with a period and run
 * in the order added, each at most once per cron period, with the same "now". */
#include <uv.h>

#include "chatdesk/clock.h"
#include "chatdesk/node.h"

typedef struct job {
    uint64_t every, last;
    cd_node_tick_fn fn;
    void *ud;
} job;

struct cd_node_cron {
    uv_timer_t timer;
    void (*done)(void *ud);
    void *done_ud;
    job *jobs;
    size_t n_jobs;
};

static void on_tick(uv_timer_t *t)
{
    cd_node_cron *c = t->data;
    uint64_t now = cd_mono_ms();
    for (size_t i = 0; i < c->n_jobs; i++) {
        job *j = &c->jobs[i];
        if (j->every && now - j->last < j->every)
            continue;
        j->last = now;
        j->fn(j->ud, now);
    }
}

cd_node_cron *cd_node_cron_create(uv_loop_t *loop, uint64_t period_ms)
{
    cd_node_cron *c = cd_calloc(1, sizeof *c);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_tick, period_ms, period_ms);
    return c;
}

void cd_node_cron_add(cd_node_cron *c, uint64_t every_ms, cd_node_tick_fn fn, void *ud)
{
    c->jobs = cd_realloc(c->jobs, (c->n_jobs + 1) * sizeof *c->jobs);
    c->jobs[c->n_jobs++] = (job){every_ms, 0, fn, ud};
}

static void on_closed(uv_handle_t *h)
{
    cd_node_cron *c = h->data;
    if (c->done)
        c->done(c->done_ud);
    cd_free(c->jobs);
    cd_free(c);
}

void cd_node_cron_destroy(cd_node_cron *c, void (*done)(void *ud), void *ud)
{
    if (!c)
        return;
    c->done = done;
    c->done_ud = ud;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}
