/* How the loop drives one connection: it reads, hands the connection to
 * a step (inline, on the pool, or on the leader's queue), and looks at what
 * the step left (close, wait to write, read more, drain, or wait for the
 * next input).  A step never calls back into the loop: it leaves its
 * results in the connection (in_msg, partial, out_left, pending, finished)
 * and this file acts on them when the connection comes back. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void runq_push(pmci_loop *l, pmci_conn *c)
{
    pmci_tl_remove(l, c);
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
    pmci_tl_remove(l, c);
    if (l->pool) {
        c->busy = 1;
        pmci_pool_submit(l->pool, c);
        return;
    }
    pmci_conn_step(c);
    pmci_loop_after_step(l, c);
}

void pmci_loop_end_conn(pmci_loop *l, pmci_conn *c, pmc_status why)
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
static inline __attribute__((always_inline)) int
read_into(pmci_loop *l, pmci_conn *c, unsigned *job, uint8_t *buf, size_t cap)
{
    ssize_t n;

    c->rd_pending = 0;
    if (c->eof_seen)
        return 0;
    for (;;) {
        n = read(c->it.fd, buf, cap);
        if (n >= 0 || errno != EINTR)
            break;
    }
    if (n > 0) {
        c->rd_pending = c->hup;
        if ((size_t)n == cap && !c->on_again) {
            /* There may be more: come back after the other ready
             * connections had their turn. */
            c->on_again = 1;
            c->anext = l->again;
            l->again = c;
        }
        /* The leader runs the step next, on this thread: it borrows the
         * buffer, as in LOOP (lead() sees to a leader taking over). */
        if (l->pool && (!l->lead || buf != l->rbuf)) {
            if (pmc_buf_append(&c->in, buf, (size_t)n) != PMC_OK) {
                pmci_loop_end_conn(l, c, PMC_ERR_NOMEM);
                return 2;
            }
        } else {
            c->bp = buf;
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
        PMCI_COUNT(c->st.io_errors);
        pmci_log(l->srv, PMC_LOG_INFO, c->id, NULL, "read failed: %s",
                 pmci_errtext(errno, et, sizeof et));
        c->eof_seen = 1;
        pmci_loop_end_conn(l, c, PMC_ERR_IO);
        return 2;
    }
    return 1;
}

/* Lead mode after a take-over found no buffer: read through a small one
 * and copy (rare, and only until a buffer comes back). */
static __attribute__((noinline)) int read_small(pmci_loop *l, pmci_conn *c,
                                                unsigned *job)
{
    uint8_t small[4096];

    return read_into(l, c, job, small, sizeof small);
}

/* Inline: the leader's queue runs it once per command. */
static inline __attribute__((always_inline)) int
read_in(pmci_loop *l, pmci_conn *c, unsigned *job)
{
    if (__builtin_expect(l->rbuf == NULL, 0))
        return read_small(l, c, job);
    return read_into(l, c, job, l->rbuf, PMCI_SRV_RBUF);
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

/* LOOP's usual wake-up in one pass: read, feed, write the replies, put the
 * connection back on its timeout list.  What the general way would do
 * after such a step is nothing but that (no output left, no answers, no
 * close, no partial packet, no drain), so only a step that left something
 * else (pmci_conn_step_input says) and a read that was not plain input
 * (end of stream, an error, a full buffer, the peer's end seen) take it:
 * dispatch and pmci_loop_after_step. */
static void fast_read(pmci_loop *l, pmci_conn *c)
{
    unsigned job;
    int r = read_into(l, c, &job, l->rbuf, PMCI_SRV_RBUF);

    if (r == 2)
        return;
    if (r == 0) {
        pmci_loop_after_step(l, c);
        return;
    }
    if (job != PMCI_JOB_INPUT || c->rd_pending || c->on_again || c->rq) {
        dispatch(l, c, job);
        return;
    }
    c->bp = NULL;
    c->clock_ns = 0;
    r = pmci_conn_step_input(c, l->rbuf, c->bn);
    if (c->clock_ns)
        l->clock_ns = c->clock_ns;
    if (!r) {
        pmci_loop_after_step(l, c);
        return;
    }
    pmci_session_trim(c->s);
    pmci_tl_append(l, c, c->in_msg);
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

/* A worker's accepts and closes reach the master at once, and what its
 * open connections counted at the next planned report (expire), within
 * PMCI_LIVE_REPORT_MS: collecting every open connection at every accept
 * and close made those cost the more, the more were open. */
static void worker_report(pmci_loop *l)
{
    pmci_worker_report(l->srv, 0);
    if (!l->active)
        l->report_at = 0; /* the closes carried it all */
    else if (!l->report_at) {
        l->report_at = l->now + PMCI_LIVE_REPORT_MS;
        if (l->report_at < l->due)
            l->due = l->report_at;
    }
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

/* The usual step (input answered, nothing else): of all the after-step
 * does only the trim and the timeout list apply, unless something came
 * for it meanwhile (answers, the peer's end, input) or a drain ends it.
 * 1 when that was all.  Inline, so the leader's queue does not pay a call
 * for it per command. */
static inline __attribute__((always_inline)) int after_quiet(pmci_loop *l,
                                                             pmci_conn *c)
{
    if (c->quiet && !c->rq && !c->rd_pending && !c->want_out &&
        !l->drain_expired) {
        c->busy = 0;
        c->quiet = 0;
        pmci_session_trim(c->s);
        pmci_tl_append(l, c, c->in_msg);
        return 1;
    }
    return 0;
}

/* Back on the loop thread after a step that after_quiet did not finish:
 * close, wait for room to write, read more, drain, or wait for the next
 * input. */
static void after_step_rest(pmci_loop *l, pmci_conn *c)
{
    c->busy = 0;
    c->quiet = 0;
    if (c->finished) {
        pmci_tl_remove(l, c);
        unlink_again(l, c);
        pmci_tab_del(l, c);
        /* Freed after this batch of events: a later event in it may still
         * point here. */
        c->qnext = l->dead;
        l->dead = c;
        l->active--;
        l->closed_since_trim++;
        l->due = 0; /* expire plans the heap's trim */
        if (l->srv->control_fd >= 0)
            worker_report(l);
        pmci_accept_update(l);
        return;
    }
    if (c->io_failed || (c->closed && !c->out_left)) {
        pmci_loop_end_conn(l, c, c->io_failed ? PMC_ERR_IO : PMC_OK);
        return;
    }
    if (c->rq) { /* answers arrived while a step ran */
        dispatch(l, c, 0);
        return;
    }
    set_out(l, c, c->out_left);
    /* Draining: only the deadline ends it (drain_one in loop.c says why). */
    if (l->drain_expired && !c->out_left) {
        pmci_loop_end_conn(l, c, PMC_ERR_TIMEOUT);
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
    pmci_tl_append(l, c,
                   c->out_left || (!c->pending && (c->partial || c->in_msg)));
}

void pmci_loop_after_step(pmci_loop *l, pmci_conn *c)
{
    if (!after_quiet(l, c))
        after_step_rest(l, c);
}

void pmci_loop_conn_event(pmci_loop *l, pmci_conn *c, uint32_t ev)
{
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->hup = 1;
    if (c->busy || c->finished) {
        c->rd_pending = 1;
        return;
    }
    if ((ev & EPOLLOUT) && c->out_left) {
        if (pmci_conn_flush(c) < 0) {
            pmci_loop_end_conn(l, c, PMC_ERR_IO);
            return;
        }
        pmci_conn_state(c);
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        c->rd_pending = 1;
    /* The usual wake-up, input for a connection that waits for nothing
     * else: straight to the read.  The after-step pass would find nothing
     * to do before it (no output, no answers, no drain) and read too.  The
     * flags are or'ed, not tested one by one: one branch for all. */
    if (c->rd_pending &&
        !(c->out_left | c->want_out | c->io_failed | c->closed |
          c->pending | c->on_again | l->stopping) &&
        !c->rq) {
        if (l->lead) {
            queue_read(l, c);
            return;
        }
        if (!l->pool && l->rbuf) {
            fast_read(l, c);
            return;
        }
        if (do_read(l, c))
            return;
    }
    pmci_loop_after_step(l, c);
}

/* Hand each queued answer to its connection; a connection no longer
 * here gets fn(NULL) at once. */
void pmci_loop_resumes(pmci_loop *l)
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

static void new_conn(pmci_loop *l, int fd, const struct sockaddr_storage *sa,
                     socklen_t salen)
{
    pmc_server *srv = l->srv;
    pmci_conn *c =
        pmci_conn_new(srv, fd, srv->id_base + ++srv->id_next, sa, salen);

    if (c && (pmci_tab_add(l, c) != 0 ||
              pmci_loop_add(l, &c->it, EPOLLIN | EPOLLRDHUP | EPOLLET) !=
                  0)) {
        pmci_tab_del(l, c);
        pmci_conn_free(c); /* closes fd */
        c = NULL;
        fd = -1;
    }
    if (!c) {
        if (fd >= 0)
            close(fd);
        l->st.conn_refused++;
        pmci_log(srv, PMC_LOG_ERR, 0, NULL,
                 "cannot set up an accepted connection (out of memory)");
        return;
    }
    l->active++;
    l->st.conn_active++;
    /* THREADS runs conn_open on the worker, with the handlers. */
    if (!l->pool)
        pmci_conn_open(c);
    pmci_log(srv, PMC_LOG_DEBUG, c->id, NULL, "connection from %s",
             c->info.peer[0] ? c->info.peer : "(unnamed)");
    /* Idle until the MTA speaks. */
    pmci_loop_after_step(l, c);
}

/* A listener is readable: take up to 64 connections (the others get
 * their turn meanwhile), each a connection of this loop or, in FORK, a
 * process of its own. */
void pmci_loop_accept(pmci_loop *l, pmci_listener *ls)
{
    pmc_server *srv = l->srv;

    for (int i = 0; i < 64 && pmci_may_accept(l); i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof sa;
        int fd = pmci_accept_one(l, ls, &sa, &salen);
        if (fd == PMCI_ACCEPT_AGAIN)
            continue;
        if (fd < 0)
            break;
        if (l->accept_mode == 2)
            l->procs->accepted(l, fd);
        else
            new_conn(l, fd, &sa, salen);
    }
    pmci_loop_stats_merge(srv, &l->st);
    if (srv->control_fd >= 0)
        worker_report(l);
    pmci_accept_update(l);
}

/* Lead mode: the steps the last round queued, in order.  A step's
 * after-step may queue more (the next read).  0 when the lead was lost
 * during one: the rest of the queue is the new leader's.  The usual one,
 * input read for an opened connection with no other job and no answers,
 * goes straight to pmci_conn_step_input (as LOOP's fast_read does): the
 * job and pmci_conn_step's dispatch on it cost some 40 instructions a
 * command. */
int pmci_loop_run_queue(pmci_loop *l)
{
    pmci_conn *c;

    while ((c = l->runq)) {
        const uint8_t *in = NULL;
        size_t n = 0;
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
            /* pmci_conn_step's usual case, without the job. */
            if (job == PMCI_JOB_INPUT && c->bp && c->opened && !c->job &&
                !c->rq) {
                in = c->bp;
                n = c->bn;
                c->bp = NULL;
            } else {
                add_job(c, job);
            }
        }
        l->lent = c->bp || in ? c : NULL;
        c->clock_ns = 0;
        if (!pmci_pool_lead_step(l->pool, c, in, n))
            return 0;
        l->lent = NULL;
        if (c->clock_ns) /* the next round's clock (tick_clock) */
            l->clock_ns = c->clock_ns;
        if (!after_quiet(l, c))
            after_step_rest(l, c);
    }
    return 1;
}
