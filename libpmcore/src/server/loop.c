/* The epoll event loop: connection readiness, read-ahead, timeouts, stop
 * and drain, ticks, and the hand-off to the thread pool.  The loop thread
 * owns every socket; session work runs inline (LOOP, PREFORK workers) or on
 * the pool (THREADS), never on two threads at once for one connection. */
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


int pmci_loop_add(pmci_loop *l, pmci_item *it, uint32_t ev)
{
    struct epoll_event e;

    memset(&e, 0, sizeof e);
    e.events = ev;
    e.data.ptr = it;
    return epoll_ctl(l->ep, EPOLL_CTL_ADD, it->fd, &e);
}

/* --- timeout lists: two, each in deadline order because every member of
 * one list got the same timeout when it was appended --- */

static void tl_remove(pmci_loop *l, pmci_conn *c)
{
    pmci_tlist *t;

    if (c->tlist < 0)
        return;
    t = &l->tl[c->tlist];
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        t->head = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        t->tail = c->tprev;
    c->tprev = c->tnext = NULL;
    c->tlist = -1;
}

static void tl_append(pmci_loop *l, pmci_conn *c, int which)
{
    pmci_tlist *t = &l->tl[which];
    int ms = which ? l->srv->cfg.read_timeout_ms : l->srv->cfg.idle_timeout_ms;

    tl_remove(l, c);
    c->deadline = ms > 0 ? pmci_now_ms() + ms : LLONG_MAX;
    c->tlist = which;
    c->tprev = t->tail;
    c->tnext = NULL;
    if (t->tail)
        t->tail->tnext = c;
    else
        t->head = c;
    t->tail = c;
}

/* --- dispatch --- */

static void runq_push(pmci_loop *l, pmci_conn *c)
{
    tl_remove(l, c);
    c->busy = 1;
    c->qnext = NULL;
    if (l->runq_tail)
        l->runq_tail->qnext = c;
    else
        l->runq = c;
    l->runq_tail = c;
}

/* The step's job.  Resume requests go with every step, so they run as
 * soon as the connection's thread gets to it. */
static void add_job(pmci_conn *c, unsigned job)
{
    if (c->rq) {
        pmci_resume **pp = &c->rq_job;
        while (*pp)
            pp = &(*pp)->next;
        *pp = c->rq;
        c->rq = c->rq_tail = NULL;
        job |= PMCI_JOB_RESUME;
    }
    c->job |= job;
}

static void dispatch(pmci_loop *l, pmci_conn *c, unsigned job)
{
    add_job(c, job);
    if (l->lead) { /* run by the leader once this batch of events is done */
        runq_push(l, c);
        return;
    }
    tl_remove(l, c);
    if (l->pool) {
        c->busy = 1;
        pmci_pool_submit(l->pool, c);
        return;
    }
    pmci_conn_step(c);
    pmci_loop_after_step(l, c);
}

static void end_conn(pmci_loop *l, pmci_conn *c, pmc_status why)
{
    c->end_why = why;
    dispatch(l, c, PMCI_JOB_END);
}

/* Read once, up to the buffer's size; a short read on a stream socket
 * means it is drained, which edge-triggered epoll needs to know.  But when
 * the peer's end came in the same edge as its last bytes, epoll will not
 * report it again: the read that returns 0 (or the reset) is still owed,
 * so the connection stays marked for one more read after its step.  0 when
 * nothing was there, 1 with *job set (input or end of stream), 2 when the
 * connection was ended (a read error) and went to a step for that. */
static int read_in(pmci_loop *l, pmci_conn *c, unsigned *job)
{
    ssize_t n;

    c->rd_pending = 0;
    if (c->eof_seen)
        return 0;
    for (;;) {
        n = read(c->it.fd, l->rbuf, PMCI_SRV_RBUF);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n > 0) {
        c->rd_pending = c->hup;
        if (n == PMCI_SRV_RBUF && !c->on_again) {
            /* There may be more: come back after the other ready
             * connections had their turn. */
            c->on_again = 1;
            c->anext = l->again;
            l->again = c;
        }
        if (l->pool) {
            if (pmc_buf_append(&c->in, l->rbuf, (size_t)n) != PMC_OK) {
                end_conn(l, c, PMC_ERR_NOMEM);
                return 2;
            }
        } else {
            c->bp = l->rbuf;
            c->bn = (size_t)n;
        }
        *job = PMCI_JOB_INPUT;
    } else if (n == 0) {
        c->eof_seen = 1;
        *job = PMCI_JOB_EOF;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return 0;
    } else {
        char et[100];
        c->st.io_errors++;
        pmci_log(l->srv, PMC_LOG_INFO, c->id, NULL, "read failed: %s",
                 pmci_errtext(errno, et, sizeof et));
        c->eof_seen = 1;
        end_conn(l, c, PMC_ERR_IO);
        return 2;
    }
    return 1;
}

/* 1 when the connection went to a step, 0 when nothing was there. */
static int do_read(pmci_loop *l, pmci_conn *c)
{
    unsigned job;
    int r = read_in(l, c, &job);

    if (r == 1)
        dispatch(l, c, job);
    return r != 0;
}

/* Lead mode: read when the leader gets to the connection in its queue,
 * just before the step, so each connection's reply goes out as soon as
 * it is ready (reading every ready connection first and then running
 * their steps held the first reply back by all the reads). */
static void queue_read(pmci_loop *l, pmci_conn *c)
{
    c->lead_read = 1;
    runq_push(l, c);
}

static void set_out(pmci_loop *l, pmci_conn *c, int on)
{
    struct epoll_event e;

    if (c->want_out == on || c->it.fd < 0)
        return;
    memset(&e, 0, sizeof e);
    e.events = PMCI_CONN_EVENTS | (on ? EPOLLOUT : 0);
    e.data.ptr = c;
    if (epoll_ctl(l->ep, EPOLL_CTL_MOD, c->it.fd, &e) == 0)
        c->want_out = on;
}

static void unlink_again(pmci_loop *l, pmci_conn *c)
{
    pmci_conn **pp = &l->again;

    if (!c->on_again)
        return;
    while (*pp && *pp != c)
        pp = &(*pp)->anext;
    if (*pp)
        *pp = c->anext;
    c->on_again = 0;
    c->anext = NULL;
}

/* Back on the loop thread after a step: close, wait for room to write,
 * read more, drain, or wait for the next input. */
void pmci_loop_after_step(pmci_loop *l, pmci_conn *c)
{
    c->busy = 0;
    if (c->finished) {
        tl_remove(l, c);
        unlink_again(l, c);
        pmci_tab_del(l, c);
        /* Freed after this batch of events: a later event in it may still
         * point here. */
        c->qnext = l->dead;
        l->dead = c;
        l->active--;
        l->closed_since_trim++;
        if (l->srv->control_fd >= 0)
            pmci_worker_report(l->srv);
        pmci_accept_update(l);
        return;
    }
    if (c->io_failed || (pmc_session_is_closed(c->s) && !c->out_left)) {
        end_conn(l, c, c->io_failed ? PMC_ERR_IO : PMC_OK);
        return;
    }
    if (c->rq) { /* answers arrived while a step ran */
        dispatch(l, c, 0);
        return;
    }
    set_out(l, c, c->out_left);
    /* Draining: a pending handler is waited for like a message. */
    if (l->stopping && !c->out_left &&
        ((!c->in_msg && !c->pending) || l->drain_expired)) {
        end_conn(l, c, l->drain_expired ? PMC_ERR_TIMEOUT : PMC_OK);
        return;
    }
    if (c->rd_pending && !c->out_left && !c->on_again &&
        !(c->pending && c->queued >= PMCI_PENDING_READ_MAX)) {
        if (l->lead) {
            queue_read(l, c);
            return;
        }
        if (do_read(l, c))
            return;
    }
    if (!c->out_left && !c->pending && !c->partial)
        pmci_session_trim(c->s);
    /* The MTA owes nothing while a handler is pending: idle, not read. */
    tl_append(l, c, c->out_left || (!c->pending && (c->partial || c->in_msg)));
}

static void conn_event(pmci_loop *l, pmci_conn *c, uint32_t ev)
{
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->hup = 1;
    if (c->busy || c->finished) {
        c->rd_pending = 1;
        return;
    }
    if ((ev & EPOLLOUT) && c->out_left) {
        if (pmci_conn_flush(c) < 0) {
            end_conn(l, c, PMC_ERR_IO);
            return;
        }
        pmci_conn_state(c);
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rd_pending = 1;
    pmci_loop_after_step(l, c);
}

/* --- lifecycle --- */

static void for_each_idle(pmci_loop *l, void (*fn)(pmci_loop *, pmci_conn *))
{
    /* Every connection no worker holds sits on one of the lists; collect
     * first because fn may free or move them. */
    for (int i = 0; i < 2; i++) {
        pmci_conn *c = l->tl[i].head, *next;
        pmci_conn *mark = l->tl[i].tail;
        while (c) {
            next = c == mark ? NULL : c->tnext;
            fn(l, c);
            c = next;
        }
    }
}

static void drain_one(pmci_loop *l, pmci_conn *c)
{
    if (l->drain_expired || (!c->in_msg && !c->out_left && !c->pending))
        end_conn(l, c, l->drain_expired ? PMC_ERR_TIMEOUT : PMC_OK);
}

static void begin_stop(pmci_loop *l, int drain_ms)
{
    if (l->stopping)
        return;
    l->stopping = 1;
    l->drain_deadline = pmci_now_ms() + drain_ms;
    pmci_log(l->srv, PMC_LOG_NOTICE, 0, NULL,
             "stopping: %u connection(s) open, drain deadline %d ms",
             l->active, drain_ms);
    pmci_listeners_enable(l, 0);
    pmci_close_listeners(l->srv);
    if (drain_ms <= 0)
        l->drain_expired = 1;
    for_each_idle(l, drain_one);
    if (l->srv->children)
        pmci_children_stop(l, drain_ms);
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

/* Hand each queued answer to its connection; a connection no longer
 * here gets fn(NULL) at once. */
static void resumes(pmci_loop *l)
{
    pmci_resume *r = pmci_rq_take(l->srv), *next;
    pmci_conn *todo = NULL, *c;

    for (; r; r = next) {
        next = r->next;
        r->next = NULL;
        c = pmci_tab_find(l, r->id);
        if (!c || c->finished) {
            pmci_rq_answer_all(r);
            continue;
        }
        if (c->rq_tail)
            c->rq_tail->next = r;
        else
            c->rq = r;
        c->rq_tail = r;
        if (!c->rq_listed) {
            c->rq_listed = 1;
            c->qnext_rq = todo;
            todo = c;
        }
    }
    /* A busy connection picks its requests up when its step returns. */
    while ((c = todo)) {
        todo = c->qnext_rq;
        c->rq_listed = 0;
        if (!c->busy && !c->finished)
            dispatch(l, c, 0);
    }
}

static void wake_event(pmci_loop *l)
{
    uint64_t v;
    int drain, reloads;
    ssize_t r = read(l->srv->wakefd, &v, sizeof v);

    (void)r;
    resumes(l);
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
        if (l->srv->cfg.model == PMC_MODEL_PREFORK) {
            l->srv->gen++;
            pmci_prefork_maintain(l);
            pmci_children_stop(l, l->srv->cfg.drain_timeout_ms);
        }
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

static void expire(pmci_loop *l, long long now)
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
            end_conn(l, c, PMC_ERR_TIMEOUT);
            pmci_stats_merge(l->srv, &l->st);
        }
    }
    if (l->stopping && !l->drain_expired && now >= l->drain_deadline) {
        l->drain_expired = 1;
        if (l->active)
            pmci_log(l->srv, PMC_LOG_NOTICE, 0, NULL,
                     "drain deadline passed: ending %u connection(s)",
                     l->active);
        for_each_idle(l, drain_one);
    }
    if (l->backoff_until && now >= l->backoff_until) {
        l->backoff_until = 0;
        pmci_accept_update(l);
    }
    if (l->next_tick && now >= l->next_tick) {
        l->next_tick = now + l->srv->cfg.tick_interval_ms;
        run_tick(l);
    }
    trim_heap(l, now);
}

static int wait_ms(pmci_loop *l, long long now)
{
    long long t = LLONG_MAX;

    if (l->again)
        return 0;
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
    if (l->srv->children || l->respawn_at) {
        long long c = pmci_children_timer(l);
        if (c < t)
            t = c;
    }
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
        l->pool = pmci_pool_new(l, n, &l->err);
        if (!l->pool)
            return l->err.code;
        l->lead = pmci_pool_leads(l->pool);
    }
    if (!srv->is_child && cfg->tick && cfg->tick_interval_ms > 0)
        l->next_tick = pmci_now_ms() + cfg->tick_interval_ms;
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
    while ((c = pmci_pool_done(l->pool)))
        pmci_loop_after_step(l, c);
}

static void free_dead(pmci_loop *l)
{
    while (l->dead) {
        pmci_conn *c = l->dead;
        l->dead = c->qnext;
        pmci_conn_free(c);
    }
}

/* One round: wait, handle the events, re-read, expire, reap.  -1 when
 * epoll failed (the loop ends).  In lead mode the run queue is empty
 * here: pmci_loop_lead runs it out first. */
static int round_once(pmci_loop *l)
{
    struct epoll_event ev[64];
    long long now = pmci_now_ms();
    int n = epoll_wait(l->ep, ev, 64, wait_ms(l, now));

    if (n < 0 && errno != EINTR) {
        pmci_set_error(&l->err, PMC_ERR_IO, 0, "epoll_wait failed");
        l->result = PMC_ERR_IO;
        return -1;
    }
    for (int i = 0; i < n; i++) {
        pmci_item *it = ev[i].data.ptr;
        switch (it->kind) {
        case PMCI_K_CONN:
            conn_event(l, (pmci_conn *)it, ev[i].events);
            break;
        case PMCI_K_LISTENER:
            pmci_accept(l, (pmci_listener *)it);
            break;
        case PMCI_K_CHILD:
            pmci_child_event(l, (pmci_child *)it);
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
    expire(l, pmci_now_ms());
    if (l->srv->children)
        pmci_children_reap(l, 0);
    if (l->srv->cfg.model == PMC_MODEL_PREFORK && !l->srv->is_child &&
        !l->stopping)
        pmci_prefork_maintain(l);
    return 0;
}

/* Lead mode: the steps the last round queued, in order.  A step's
 * after-step may queue more (the next read).  0 when the lead was lost
 * during one: the rest of the queue is the new leader's. */
static int run_queue(pmci_loop *l)
{
    pmci_conn *c;

    while ((c = l->runq)) {
        l->runq = c->qnext;
        if (!l->runq)
            l->runq_tail = NULL;
        c->qnext = NULL;
        if (c->lead_read) {
            unsigned job;
            int r;
            c->lead_read = 0;
            c->busy = 0;
            r = read_in(l, c, &job);
            if (r == 0) { /* nothing after all: wait for the next event */
                pmci_loop_after_step(l, c);
                continue;
            }
            if (r == 2) /* ended: that went to the queue */
                continue;
            c->busy = 1;
            add_job(c, job);
        }
        if (!pmci_pool_lead_step(l->pool, c))
            return 0;
        pmci_loop_after_step(l, c);
    }
    return 1;
}

int pmci_loop_lead(pmci_loop *l)
{
    for (;;) {
        if (!run_queue(l))
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
    pmci_stats_merge(l->srv, &l->st);
    return l->result;
}

void pmci_loop_fini(pmci_loop *l)
{
    /* Connections left only when run failed: end them properly. */
    for (int i = 0; i < 2; i++)
        while (l->tl[i].head) {
            pmci_conn *c = l->tl[i].head;
            tl_remove(l, c);
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
    free(l->tab);
    l->tab = NULL;
    if (l->pool)
        pmci_pool_free(l->pool);
    if (l->accept_mode)
        pmci_close_listeners(l->srv);
    if (l->ep >= 0)
        close(l->ep);
    free(l->rbuf);
}
