/* Serving one connected socket on the calling thread with poll(): for
 * hosts that accept themselves (Net::Server, custom dispatchers) and for
 * the fork-per-connection model's children. */
#define _GNU_SOURCE
#include "internal_server.h"
#include "capture.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct serve {
    pmci_conn *c;
    int control;         /* FORK child: socket to the master, or -1 */
    int draining;
    long long drain_deadline;
    long long last;      /* last progress, for the timeouts */
    pmc_status result;
    pmc_error *err;
} serve;

/* The MTA owes bytes (or we wait to write): the read timeout applies.
 * Not while a handler is pending: then the MTA waits for us. */
static int reading(const pmci_conn *c)
{
    return c->out_left || (!c->pending && (c->partial || c->in_msg));
}

static int timeout_left(serve *v, long long now)
{
    const pmc_server_config *cfg = &v->c->srv->cfg;
    pmci_conn *c = v->c;
    int ms = reading(c) ? cfg->read_timeout_ms : cfg->idle_timeout_ms;
    long long t = ms > 0 ? v->last + ms : LLONG_MAX;

    if (v->draining && v->drain_deadline < t)
        t = v->drain_deadline;
    if (t == LLONG_MAX)
        return -1;
    t -= now;
    return t < 0 ? 0 : t > INT_MAX ? INT_MAX : (int)t;
}

static void set(serve *v, pmc_status st, const char *msg)
{
    if (v->result != PMC_OK)
        return;
    v->result = st;
    if (v->err)
        pmci_set_error(v->err, st, 0, "%s", msg);
}

/* Returns 1 when the connection is over. */
static int on_timeout(serve *v, long long now)
{
    pmci_conn *c = v->c;
    char qid[64];

    if (v->draining && now >= v->drain_deadline) {
        pmci_conn_end(c, PMC_ERR_TIMEOUT);
        return 1;
    }
    if (reading(c))
        c->st.conn_read_timeouts++;
    else
        c->st.conn_idle_timeouts++;
    pmci_log(c->srv, PMC_LOG_INFO, c->id, pmci_conn_qid(c, qid, sizeof qid),
             "%s timeout", reading(c) ? "read" : "idle");
    pmci_conn_end(c, PMC_ERR_TIMEOUT);
    set(v, PMC_ERR_TIMEOUT, "the connection timed out");
    return 1;
}

static void on_control(serve *v, long long now)
{
    int32_t ms = 0;
    ssize_t n = recv(v->control, &ms, sizeof ms, MSG_DONTWAIT);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n != (ssize_t)sizeof ms)
        ms = v->c->srv->cfg.drain_timeout_ms;
    v->draining = 1;
    v->drain_deadline = now + (ms > 0 ? ms : 0);
    v->control = -1; /* nothing more to hear */
}

/* A FORK child's answers from pmc_server_resume (the server's eventfd is
 * this process's own): run those for this connection now. */
static void on_wake(serve *v, long long now)
{
    pmci_conn *c = v->c;
    uint64_t n;
    pmci_resume *r, *next, **tail = &c->rq_job;
    ssize_t got = read(c->srv->wakefd, &n, sizeof n);
    int stop = atomic_load(&c->srv->stop_req);

    (void)got;
    /* pmc_server_stop called in this child: drain as if told to. */
    if (stop > 0 && !v->draining) {
        v->draining = 1;
        v->drain_deadline = now + (stop - 1);
    }
    while (*tail)
        tail = &(*tail)->next;
    for (r = pmci_rq_take(c->srv); r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->id == c->id) {
            *tail = r;
            tail = &r->next;
        } else {
            pmci_rq_answer_all(r);
        }
    }
    pmci_conn_resumes(c);
}

static const char *why(pmci_conn *c, const char *fallback)
{
    const pmc_error *e = pmc_session_error(c->s);

    return e ? e->message : fallback;
}

/* Read and feed once.  Returns 1 when the connection is over. */
static int on_input(serve *v, uint8_t *buf)
{
    pmci_conn *c = v->c;
    ssize_t n;
    pmc_status st;

    n = recv(c->it.fd, buf, PMCI_SRV_RBUF, MSG_DONTWAIT);
    if (n < 0 && errno == ENOTSOCK)
        n = read(c->it.fd, buf, PMCI_SRV_RBUF);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        c->st.io_errors++;
        pmci_conn_end(c, PMC_ERR_IO);
        set(v, PMC_ERR_IO, "reading from the connection failed");
        return 1;
    }
    if (n == 0) {
        st = pmci_conn_eof(c);
        if (st != PMC_OK)
            set(v, st, why(c, "end of stream"));
        return 1;
    }
    st = pmci_conn_feed(c, buf, (size_t)n);
    if (st != PMC_OK && st != PMC_ERR_CLOSED)
        set(v, st, why(c, "protocol error"));
    return 0;
}

static void loop(serve *v, uint8_t *buf)
{
    pmci_conn *c = v->c;

    for (;;) {
        struct pollfd p[3];
        int np = 1, n, wi = -1;
        long long now;

        if (pmci_conn_flush(c) < 0) {
            pmci_conn_end(c, PMC_ERR_IO);
            set(v, PMC_ERR_IO, "writing to the connection failed");
            return;
        }
        pmci_conn_state(c);
        if (pmc_session_is_closed(c->s) && !c->out_left)
            return;
        /* Draining: served until the MTA ends it or the deadline
         * (on_timeout); drain_one in loop.c says why. */
        p[0].fd = c->it.fd;
        p[0].events = c->out_left ? POLLOUT
                      : c->pending && c->queued >= PMCI_PENDING_READ_MAX
                          ? 0 : POLLIN;
        p[0].revents = 0;
        if (v->control >= 0) {
            p[np].fd = v->control;
            p[np].events = POLLIN;
            p[np].revents = 0;
            np++;
        }
        if (c->srv->wakefd >= 0) {
            wi = np;
            p[np].fd = c->srv->wakefd;
            p[np].events = POLLIN;
            p[np].revents = 0;
            np++;
        }
        n = poll(p, (nfds_t)np, timeout_left(v, pmci_now_ms()));
        now = pmci_now_ms();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            pmci_conn_end(c, PMC_ERR_IO);
            set(v, PMC_ERR_IO, "poll failed");
            return;
        }
        if (n == 0) {
            if (timeout_left(v, now) == 0 && on_timeout(v, now))
                return;
            continue;
        }
        if (v->control >= 0 && p[1].revents)
            on_control(v, now);
        if (wi >= 0 && p[wi].revents) {
            on_wake(v, now);
            continue; /* flush, then look at the state again */
        }
        if (p[0].revents & POLLNVAL) {
            pmci_conn_end(c, PMC_ERR_ARGUMENT);
            set(v, PMC_ERR_ARGUMENT, "the descriptor is not open");
            return;
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && !c->out_left) {
            v->last = now;
            if (on_input(v, buf))
                continue; /* flush what is left, then the state ends it */
        } else if (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
            v->last = now;
        }
    }
}

pmc_status pmci_serve_blocking(pmc_server *srv, int fd, uint64_t id,
                               int control_fd, int keep_fd, pmc_error *err)
{
    serve v;
    uint8_t *buf = malloc(PMCI_SRV_RBUF);
    pmci_conn *c = buf ? pmci_conn_new(srv, fd, id, NULL, 0) : NULL;

    if (!c) {
        free(buf);
        if (err)
            pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
        return PMC_ERR_NOMEM;
    }
    c->keep_fd = keep_fd;
    PMCI_STORE(c->st.conn_accepted, 1);
    PMCI_STORE(c->st.conn_active, 1);
    memset(&v, 0, sizeof v);
    v.c = c;
    v.control = control_fd;
    v.err = err;
    v.last = pmci_now_ms();
    pmci_conn_open(c);
    loop(&v, buf);
    pmci_conn_finish(c);
    pmci_conn_free(c);
    free(buf);
    return v.result;
}

pmc_status pmc_serve_fd(const pmc_server_config *cfg, int fd,
                        uint64_t conn_id, pmc_server_stats *stats,
                        pmc_error *err)
{
    pmc_server srv;
    pmc_status st;
    pmc_error tmp;

    if (!cfg || !cfg->handlers || fd < 0) {
        if (err)
            pmci_set_error(err, PMC_ERR_ARGUMENT, 0,
                           "pmc_serve_fd needs a config with handlers and "
                           "a descriptor");
        return PMC_ERR_ARGUMENT;
    }
    memset(&srv, 0, sizeof srv);
    srv.cfg = *cfg;
    srv.wakefd = -1;
    srv.control_fd = -1;
    pmci_handlers_wrap(&srv.tramp, cfg->handlers);
    st = pmci_capture_new(cfg, &srv.cap, err ? err : &tmp);
    if (st != PMC_OK)
        return st;
    if (pthread_mutex_init(&srv.mu, NULL) != 0) {
        pmci_capture_free(srv.cap);
        return PMC_ERR_NOMEM;
    }
    st = pmci_serve_blocking(&srv, fd, conn_id, -1, 1, err);
    if (stats)
        pmci_stats_add(stats, &srv.stats);
    pthread_mutex_destroy(&srv.mu);
    pmci_capture_free(srv.cap);
    return st;
}
