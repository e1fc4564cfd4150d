/* The epoll event loop's life: set up, rounds of events, timeouts, stop
 * and drain, ticks, reload, and the end.  The loop thread owns every
 * socket; session work runs inline (LOOP, PREFORK workers) or on the pool
 * (THREADS), never on two threads at once for one connection.  How one
 * connection is read and stepped is loop_conn.c; the lists and tables the
 * loop keeps, loop_tables.c. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static int lead(pmci_loop *l);

/* A stop ends a connection the MTA still holds only at the deadline, even
 * between messages: the MTA keeps one milter connection for all the
 * messages of an SMTP session, reads a close as the milter failing (its
 * default action, usually a tempfail, for the rest of the session), and
 * with steps negotiated away the milter cannot even see where a message
 * begins.  So until the deadline every connection is served until its peer
 * ends it (QUIT or EOF); a load balancer has stopped sending new ones. */
static void drain_one(pmci_loop *l, pmci_conn *c)
{
    if (l->drain_expired)
        pmci_loop_end_conn(l, c, PMC_ERR_TIMEOUT);
}

static void begin_stop(pmci_loop *l, int drain_ms)
{
    if (l->stopping)
        return;
    /* Connections the kernel already took are served, not reset by the
     * close below: a load balancer sent them before its health check saw
     * the stop, and reads a reset after connecting as the milter failing. */
    for (size_t i = 0; l->listening && i < l->srv->nls; i++)
        if (l->srv->ls[i]->it.fd >= 0)
            pmci_loop_accept(l, l->srv->ls[i]);
    pmci_listeners_shut(l);
    l->stopping = 1;
    atomic_store(&l->srv->draining, 1);
    l->drain_deadline = pmci_now_ms() + drain_ms;
    l->due = 0;
    pmci_log(l->srv, PMC_LOG_NOTICE, 0, NULL,
             "stopping: %u connection(s) open, drain deadline %d ms",
             l->active, drain_ms);
    pmci_listeners_enable(l, 0);
    pmci_close_listeners(l->srv);
    if (drain_ms <= 0)
        l->drain_expired = 1;
    pmci_loop_each_idle(l, drain_one);
    if (l->procs && l->srv->children)
        l->procs->stop(l, drain_ms);
}

static void run_tick(pmci_loop *l)
{
    const pmc_server_config *cfg = &l->srv->cfg;

    /* The host's hooks for its signals run on its own thread. */
    if (l->lead) {
        if (cfg->tick)
            pmci_pool_home(l->pool, PMCI_DUE_TICK);
        return;
    }
    if (cfg->tick && cfg->tick(cfg->app) != 0)
        begin_stop(l, cfg->drain_timeout_ms);
}

static void wake_event(pmci_loop *l)
{
    uint64_t v;
    int drain, reloads;
    ssize_t r = read(l->srv->wakefd, &v, sizeof v);

    (void)r;
    pmci_loop_resumes(l);
    drain = atomic_load(&l->srv->stop_req);
    if (drain > 0)
        begin_stop(l, drain - 1);
    reloads = atomic_exchange(&l->srv->reload_req, 0);
    if (reloads > 0 && !l->stopping && !l->srv->is_child) {
        pmci_log(l->srv, PMC_LOG_NOTICE, 0, NULL, "reload requested");
        if (l->lead)
            pmci_pool_home(l->pool, PMCI_DUE_RELOAD);
        else if (l->srv->cfg.reload)
            l->srv->cfg.reload(l->srv->cfg.app);
        if (l->procs && l->procs->reload)
            l->procs->reload(l);
    }
}

static void hostwake_event(pmci_loop *l)
{
    char buf[256];

    /* Drain it so level-triggered epoll does not report it again. */
    for (int i = 0; i < 16; i++)
        if (read(l->hostwake.fd, buf, sizeof buf) <= 0)
            break;
    run_tick(l);
}

/* The master asked this worker to stop (a drain deadline in ms), or went
 * away (end of stream). */
static void control_event(pmci_loop *l)
{
    int32_t ms = 0;
    ssize_t n = recv(l->control.fd, &ms, sizeof ms, MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n != (ssize_t)sizeof ms) {
        epoll_ctl(l->ep, EPOLL_CTL_DEL, l->control.fd, NULL);
        ms = l->srv->cfg.drain_timeout_ms;
    }
    begin_stop(l, ms);
}

/* Give freed memory back to the system once the server has gone (mostly)
 * idle after connections closed: the allocator keeps what a burst of
 * connections used, and a milter runs for months.  At most once a second,
 * so a server that keeps closing connections pays next to nothing. */
#define PMCI_TRIM_DELAY_MS 1000
#define PMCI_TRIM_AFTER 128 /* closes that are worth a trim while busy */

static void trim_heap(pmci_loop *l, long long now)
{
    if (!l->trim_at) {
        if (l->closed_since_trim &&
            (l->active == 0 || l->closed_since_trim >= PMCI_TRIM_AFTER))
            l->trim_at = now + PMCI_TRIM_DELAY_MS;
        return;
    }
    if (now < l->trim_at)
        return;
    l->trim_at = 0;
    l->closed_since_trim = 0;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static long long next_due(pmci_loop *l);

static __attribute__((noinline)) void expire(pmci_loop *l, long long now)
{
    static const char *const what[2] = {"idle", "read"};

    for (int i = 0; i < 2; i++) {
        pmci_conn *c;
        while ((c = l->tl[i].head) && c->deadline <= now) {
            if (i)
                l->st.conn_read_timeouts++;
            else
                l->st.conn_idle_timeouts++;
            char qid[64];
            pmci_log(l->srv, PMC_LOG_INFO, c->id,
                     pmci_conn_qid(c, qid, sizeof qid), "%s timeout",
                     what[i]);
            pmci_loop_end_conn(l, c, PMC_ERR_TIMEOUT);
            pmci_loop_stats_merge(l->srv, &l->st);
        }
    }
    if (l->stopping && !l->drain_expired && now >= l->drain_deadline) {
        l->drain_expired = 1;
        if (l->active)
            pmci_log(l->srv, PMC_LOG_NOTICE, 0, NULL,
                     "drain deadline passed: ending %u connection(s)",
                     l->active);
        pmci_loop_each_idle(l, drain_one);
    }
    if (l->backoff_until && now >= l->backoff_until) {
        l->backoff_until = 0;
        pmci_accept_update(l);
    }
    if (l->next_tick && now >= l->next_tick) {
        l->next_tick = now + l->srv->cfg.tick_interval_ms;
        run_tick(l);
    }
    if (l->report_at && now >= l->report_at) {
        pmci_worker_report(l->srv, 1);
        l->report_at = l->active ? now + PMCI_LIVE_REPORT_MS : 0;
    }
    if (l->http)
        l->http_due = pmci_http_expire(l, now);
    trim_heap(l, now);
    l->due = next_due(l);
}

/* The earliest deadline of anything expire looks at, or LLONG_MAX. */
static long long next_due(pmci_loop *l)
{
    long long t = LLONG_MAX;

    for (int i = 0; i < 2; i++)
        if (l->tl[i].head && l->tl[i].head->deadline < t)
            t = l->tl[i].head->deadline;
    if (l->stopping && !l->drain_expired && l->drain_deadline < t)
        t = l->drain_deadline;
    if (l->backoff_until && l->backoff_until < t)
        t = l->backoff_until;
    if (l->next_tick && l->next_tick < t)
        t = l->next_tick;
    if (l->trim_at && l->trim_at < t)
        t = l->trim_at;
    if (l->report_at && l->report_at < t)
        t = l->report_at;
    if (l->procs && (l->srv->children || l->respawn_at)) {
        long long c = l->procs->timer(l);
        if (c < t)
            t = c;
    }
    if (l->http_due < t)
        t = l->http_due;
    return t;
}

static int wait_ms(pmci_loop *l, long long now)
{
    long long t;

    if (l->again)
        return 0;
    t = l->procs ? next_due(l) : l->due;
    if (t == LLONG_MAX)
        return -1;
    t -= now;
    return t < 0 ? 0 : t > 60000 ? 60000 : (int)t;
}

static int finished(pmci_loop *l)
{
    if (l->active || l->srv->children)
        return 0;
    if (l->stopping)
        return 1;
    /* A recycled worker leaves once its last connection closed. */
    return l->max_accepts && l->accepted >= l->max_accepts;
}

pmc_status pmci_loop_init(pmci_loop *l, pmc_server *srv, int accept_mode)
{
    const pmc_server_config *cfg = &srv->cfg;

    memset(l, 0, sizeof *l);
    l->srv = srv;
    l->http_due = LLONG_MAX;
    l->accept_mode = accept_mode;
    l->cap = cfg->max_connections;
    l->tl[0].head = l->tl[1].head = NULL;
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->rbuf = malloc(PMCI_SRV_RBUF);
    if (l->ep < 0 || !l->rbuf) {
        pmci_set_error(&l->err, l->ep < 0 ? PMC_ERR_IO : PMC_ERR_NOMEM, 0,
                       "cannot set up the event loop");
        return l->err.code;
    }
    l->wake.kind = PMCI_K_WAKE;
    l->wake.fd = srv->wakefd;
    if (pmci_loop_add(l, &l->wake, EPOLLIN) != 0)
        goto io;
    if (!srv->is_child && cfg->wake_fd >= 0) {
        l->hostwake.kind = PMCI_K_HOSTWAKE;
        l->hostwake.fd = cfg->wake_fd;
        if (pmci_loop_add(l, &l->hostwake, EPOLLIN) != 0)
            goto io;
    }
    if (srv->control_fd >= 0) {
        l->control.kind = PMCI_K_CONTROL;
        l->control.fd = srv->control_fd;
        if (pmci_loop_add(l, &l->control, EPOLLIN) != 0)
            goto io;
    }
    if (cfg->model == PMC_MODEL_THREADS && accept_mode == 1) {
        unsigned n = cfg->threads;
        if (n == 0) {
            long cpus = sysconf(_SC_NPROCESSORS_ONLN);
            n = cpus > 0 ? (unsigned)cpus * 2 : 4;
            n = n < 4 ? 4 : n > 64 ? 64 : n;
        }
        l->pool = pmci_pool_new(l, n, lead, &l->err);
        if (!l->pool)
            return l->err.code;
        l->lead = pmci_pool_leads(l->pool);
        if (l->lead)
            l->rbuf_spare = malloc(PMCI_SRV_RBUF); /* NULL: made later */
    }
    if (pmci_http_attach(l) != 0) {
        pmci_set_error(&l->err, PMC_ERR_IO, 0,
                       "cannot add the metrics endpoint to the event loop");
        return PMC_ERR_IO;
    }
    l->now = pmci_now_ms();
    if (!srv->is_child && cfg->tick && cfg->tick_interval_ms > 0)
        l->next_tick = l->now + cfg->tick_interval_ms;
    return PMC_OK;
io:
    pmci_set_error(&l->err, PMC_ERR_IO, 0, "epoll_ctl failed");
    return PMC_ERR_IO;
}

static void pool_event(pmci_loop *l)
{
    uint64_t v;
    pmci_conn *c;
    ssize_t r = read(pmci_pool_fd(l->pool), &v, sizeof v);

    (void)r;
    while ((c = pmci_pool_done(l->pool))) {
        if (c->own_rbuf) { /* lent before a take-over: back to the loop */
            if (!l->rbuf)
                l->rbuf = c->own_rbuf;
            else if (!l->rbuf_spare)
                l->rbuf_spare = c->own_rbuf;
            else
                free(c->own_rbuf);
            c->own_rbuf = NULL;
        }
        pmci_loop_after_step(l, c);
    }
}

static void free_dead(pmci_loop *l)
{
    while (l->dead) {
        pmci_conn *c = l->dead;
        l->dead = c->qnext;
        pmci_conn_free(c);
    }
}

/* The clock, once per wake-up: it dates the connections the wake-up's
 * steps put back on a timeout list, and expire compares with it.  When a
 * callback's timing read it during the wake-up's steps (LOOP, or the
 * leader's steps since the last wait), that reading serves: the same clock, microseconds earlier, and timeouts are
 * in milliseconds. */
static inline void tick_clock(pmci_loop *l)
{
    l->now = l->clock_ns ? (long long)(l->clock_ns / 1000000u)
                         : pmci_now_ms();
    l->clock_ns = 0;
    pmci_tl_date(l, l->now);
    /* Most wake-ups have nothing due: l->due says so without a look at
     * each timer (the prefork and fork masters always look: their
     * children's timers are theirs). */
    if (l->now < l->due && !l->procs)
        return;
    expire(l, l->now);
    pmci_tl_date(l, l->now); /* what expire ended and put back */
}

/* One round: wait, handle the events, re-read, expire, reap.  -1 when
 * epoll failed (the loop ends).  In lead mode the run queue is empty
 * here: lead() runs it out first.  The clock is read after the steps:
 * after the events (they ran the steps), or in lead mode before the wait
 * (lead() ran them since the last round; the events only queue them). */
static int round_once(pmci_loop *l)
{
    struct epoll_event ev[64];
    int n;

    if (l->lead) {
        tick_clock(l);
        if (l->runq) /* expire ended some: their steps first */
            return 0;
    } else if (l->tl_fresh[0] || l->tl_fresh[1]) {
        l->now = pmci_now_ms();
        pmci_tl_date(l, l->now);
    }
    n = epoll_wait(l->ep, ev, 64, wait_ms(l, l->now));
    l->clock_ns = 0; /* a reading from before the wait is not now */

    if (n < 0 && errno != EINTR) {
        pmci_set_error(&l->err, PMC_ERR_IO, 0, "epoll_wait failed");
        l->result = PMC_ERR_IO;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        pmci_item *it = ev[i].data.ptr;
        /* Nearly every event is a connection's: one compare for it, not
         * the switch's table. */
        if (__builtin_expect(it->kind == PMCI_K_CONN, 1)) {
            pmci_loop_conn_event(l, (pmci_conn *)it, ev[i].events);
            continue;
        }
        switch (it->kind) {
        case PMCI_K_LISTENER:
            pmci_loop_accept(l, (pmci_listener *)it);
            break;
        case PMCI_K_CHILD:
            if (l->procs)
                l->procs->child_event(l, it);
            break;
        case PMCI_K_WAKE:
            wake_event(l);
            break;
        case PMCI_K_HOSTWAKE:
            hostwake_event(l);
            break;
        case PMCI_K_CONTROL:
            control_event(l);
            break;
        case PMCI_K_POOL:
            pool_event(l);
            break;
        case PMCI_K_HTTP:
            pmci_http_event(l, it, ev[i].events);
            break;
        }
    }
    /* Connections whose last read filled the buffer read again. */
    while (l->again) {
        pmci_conn *c = l->again;
        l->again = c->anext;
        c->on_again = 0;
        c->anext = NULL;
        c->rd_pending = 1;
        if (!c->busy)
            pmci_loop_after_step(l, c);
    }
    if (!l->lead)
        tick_clock(l);
    if (l->procs)
        l->procs->round(l);
    return 0;
}

/* Lead the loop (lead mode), on a pool thread: 1 when the lead was lost,
 * 0 when the loop is over.  The pool calls it through the pointer given to
 * pmci_pool_new, so the pool needs nothing of the loop's code. */
static int lead(pmci_loop *l)
{
    const pmc_server_config *cfg = &l->srv->cfg;

    /* Taken over from a leader whose step reads the loop's buffer (it was
     * lent, see pmci_loop_run_queue): that step keeps it, and gives it
     * back when it comes in (pmci_loop_after_step); lead with the spare,
     * or a new one, or else a small buffer on the stack (read_in). */
    if (l->lent) {
        uint8_t *nb = l->rbuf_spare ? l->rbuf_spare : malloc(PMCI_SRV_RBUF);
        l->rbuf_spare = NULL;
        l->lent->own_rbuf = l->rbuf;
        l->rbuf = nb;
        l->lent = NULL;
    }
    for (;;) {
        /* Several steps: the host's lock once for them all. */
        int run = cfg->run_begin && l->runq && l->runq->qnext, ok;

        if (run)
            cfg->run_begin(cfg->app);
        ok = pmci_loop_run_queue(l);
        if (run)
            cfg->run_end(cfg->app);
        if (!ok)
            return 1;
        /* Freed only here: an event of the round may point at them. */
        free_dead(l);
        if (finished(l) || l->result != PMC_OK)
            return 0;
        if (round_once(l) < 0)
            return 0;
    }
}

pmc_status pmci_loop_run(pmci_loop *l)
{
    if (l->pool) {
        l->pool_item.kind = PMCI_K_POOL;
        l->pool_item.fd = pmci_pool_fd(l->pool);
        if (pmci_loop_add(l, &l->pool_item, EPOLLIN) != 0) {
            pmci_set_error(&l->err, PMC_ERR_IO, 0, "epoll_ctl failed");
            return PMC_ERR_IO;
        }
    }
    if (l->accept_mode)
        pmci_accept_update(l);
    if (atomic_load(&l->srv->stop_req) > 0)
        wake_event(l);
    if (l->lead) {
        pmci_pool_lead_run(l->pool, l->srv);
    } else {
        while (!finished(l)) {
            if (round_once(l) < 0)
                break;
            free_dead(l);
        }
    }
    pmci_loop_stats_merge(l->srv, &l->st);
    return l->result;
}

void pmci_loop_fini(pmci_loop *l)
{
    /* Connections left only when run failed: end them properly. */
    for (int i = 0; i < 2; i++)
        while (l->tl[i].head) {
            pmci_conn *c = l->tl[i].head;
            pmci_tl_remove(l, c);
            pmci_conn_finish(c);
            pmci_conn_free(c);
        }
    if (l->pool) {
        pmci_conn *c;
        /* Steps that ended after the loop did (it failed): their
         * threads are joined now. */
        pmci_pool_join(l->pool);
        while ((c = pmci_pool_done(l->pool))) {
            pmci_conn_finish(c);
            pmci_conn_free(c);
        }
    }
    free_dead(l);
    pmci_http_detach(l);
    free(l->tab);
    l->tab = NULL;
    if (l->pool)
        pmci_pool_free(l->pool);
    if (l->accept_mode)
        pmci_close_listeners(l->srv);
    if (l->ep >= 0)
        close(l->ep);
    free(l->rbuf);
    free(l->rbuf_spare);
}
