/* The session side of one server connection, the same in every model:
 * hooks, feeding, writing the replies of one batch in one send, logging
 * protocol errors with the queue id, and counters. */
#define _GNU_SOURCE
#include "internal_server.h"
#include "capture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void peer_info(pmc_conn_info *ci, const struct sockaddr_storage *peer,
                      socklen_t len)
{
    const struct sockaddr_storage *sa = peer;
    struct sockaddr_storage own;

    if (sa == NULL) {
        /* An adopted fd: ask the kernel (accepted ones came with it). */
        len = sizeof own;
        if (getpeername(ci->fd, (struct sockaddr *)&own, &len) != 0)
            return;
        sa = &own;
    }
    ci->family = sa->ss_family;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ci->peer, sizeof ci->peer);
        ci->peer_port = ntohs(in->sin_port);
    } else if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in = (const void *)sa;
        inet_ntop(AF_INET6, &in->sin6_addr, ci->peer, sizeof ci->peer);
        ci->peer_port = ntohs(in->sin6_port);
    } else if (sa->ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const void *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? len - offsetof(struct sockaddr_un, sun_path)
                       : 0;
        if (n >= sizeof ci->peer)
            n = sizeof ci->peer - 1;
        /* Client sockets are usually unnamed; abstract names start with
         * NUL and are not text. */
        if (n && un->sun_path[0]) {
            memcpy(ci->peer, un->sun_path, n);
            ci->peer[n] = 0;
        }
    }
}

pmci_conn *pmci_conn_new(pmc_server *srv, int fd, uint64_t id,
                         const struct sockaddr_storage *peer,
                         socklen_t peer_len)
{
    pmci_conn *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->it.kind = PMCI_K_CONN;
    c->it.fd = fd;
    c->id = id;
    c->srv = srv;
    c->tlist = -1;
    c->s = pmc_session_new(&srv->tramp, c, &srv->cfg.session);
    if (!c->s) {
        free(c);
        return NULL;
    }
    c->info.id = id;
    c->info.fd = fd;
    peer_info(&c->info, peer, peer_len);
    pthread_mutex_lock(&srv->mu);
    c->lnext = srv->live;
    if (srv->live)
        srv->live->lprev = c;
    srv->live = c;
    c->live = 1;
    pthread_mutex_unlock(&srv->mu);
    return c;
}

void pmci_conn_open(pmci_conn *c)
{
    if (c->opened)
        return;
    c->opened = 1;
    if (c->srv->cfg.conn_open)
        c->ud = c->srv->cfg.conn_open(c->srv->cfg.app, &c->info);
    pmci_cap_open(c);
}

/* Macro 'i' as a C string, for log lines; NULL when unknown.  Only on the
 * thread that owns the connection at the moment. */
const char *pmci_conn_qid(pmci_conn *c, char *buf, size_t cap)
{
    pmc_str v;

    if (!pmc_session_getsymval(c->s, "i", 1, &v) || v.len == 0)
        return NULL;
    if (v.len >= cap)
        v.len = cap - 1;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = 0;
    return buf;
}

void pmci_conn_note(pmci_conn *c, pmc_status st)
{
    const pmc_error *e;
    char qid[64];

    if (st == PMC_OK || st == PMC_ERR_CLOSED)
        return;
    e = pmc_session_error(c->s);
    if (!e)
        return;
    if (st == PMC_ERR_NOMEM) {
        pmci_log(c->srv, PMC_LOG_ERR, c->id, pmci_conn_qid(c, qid, sizeof qid),
                 "out of memory: %s", e->message);
        return;
    }
    PMCI_COUNT(c->st.protocol_errors);
    pmci_log(c->srv, PMC_LOG_WARNING, c->id, pmci_conn_qid(c, qid, sizeof qid),
             "protocol error %s: %s", pmc_status_name(st), e->message);
}

pmc_status pmci_conn_feed(pmci_conn *c, const uint8_t *p, size_t n)
{
    pmc_status st;

    if (c->cap)
        pmci_cap_io(c, 0, p, n);
    st = pmc_session_feed(c->s, p, n);
    pmci_conn_note(c, st);
    return st;
}

pmc_status pmci_conn_eof(pmci_conn *c)
{
    pmc_status st;

    if (pmc_session_is_closed(c->s))
        return PMC_OK;
    st = pmc_session_eof(c->s);
    pmci_conn_note(c, st);
    return st;
}

void pmci_conn_end(pmci_conn *c, pmc_status why)
{
    if (!pmc_session_is_closed(c->s))
        pmc_session_end(c->s, why);
}

/* Send what the session produced, as one send.  Returns 0 when all went
 * out, 1 when the socket is full, -1 on failure. */
int pmci_conn_flush(pmci_conn *c)
{
    size_t n;
    const uint8_t *p;

    for (;;) {
        ssize_t w;
        p = pmc_session_output(c->s, &n);
        if (n == 0)
            return 0;
        w = send(c->it.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            if (c->cap)
                pmci_cap_io(c, 1, p, (size_t)w);
            pmc_session_consume(c->s, (size_t)w);
            if ((size_t)w == n) /* nothing is added while we send */
                return 0;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (!c->io_failed) {
            char qid[64], et[100];
            c->io_failed = 1;
            PMCI_COUNT(c->st.io_errors);
            pmci_log(c->srv, PMC_LOG_INFO, c->id,
                     pmci_conn_qid(c, qid, sizeof qid), "write failed: %s",
                     w < 0 ? pmci_errtext(errno, et, sizeof et)
                           : "no progress");
        }
        return -1;
    }
}

void pmci_conn_state(pmci_conn *c)
{
    pmci_session_view v;

    pmci_session_view_get(c->s, &v);
    c->out_left = v.out_len > 0 && !c->io_failed;
    c->closed = v.closed;
    c->in_msg = v.in_msg;
    c->partial = v.queued > 0;
    c->pending = v.pending;
    c->queued = v.pending ? v.queued : 0;
}

/* The session's counts since 'seen', plus the connection's own.  Relaxed
 * loads: the owner may be counting on another thread. */
static void add_unmerged(const pmci_conn *c, pmci_stats *to)
{
    const pmc_session_stats *ss = pmci_session_stats(c->s);

#define NEW(f) (__atomic_load_n(&ss->f, __ATOMIC_RELAXED) - c->seen.f)
    to->messages += NEW(messages);
    to->callback_errors += NEW(callback_errors);
    for (int i = 0; i < 128; i++)
        to->replies[i] += NEW(replies[i]);
#undef NEW
    pmci_stats_add(to, &c->st);
}

void pmci_conn_peek(const pmci_conn *c, pmci_stats *out)
{
    add_unmerged(c, out);
}

/* Once per connection (not per message: a pass over 128 reply codes and
 * the lock would cost more than the message's round trips), and under the
 * lock the readers take, so each count is seen exactly once. */
void pmci_conn_collect(pmci_conn *c, int closing)
{
    pmc_server *srv = c->srv;
    const pmc_session_stats *ss = pmci_session_stats(c->s);

    pthread_mutex_lock(&srv->mu);
    add_unmerged(c, &srv->stats);
    if (!closing) {
        memset(&c->st, 0, sizeof c->st);
        c->seen.messages = ss->messages;
        c->seen.callback_errors = ss->callback_errors;
        memcpy(c->seen.replies, ss->replies, sizeof c->seen.replies);
    } else if (c->live) {
        /* The last collect (pmci_conn_finish's, or pmci_conn_free's for a
         * connection that never finished): its counters are not read
         * again, so they are left as they are. */
        if (c->lprev)
            c->lprev->lnext = c->lnext;
        else
            srv->live = c->lnext;
        if (c->lnext)
            c->lnext->lprev = c->lprev;
        c->live = 0;
    }
    pthread_mutex_unlock(&srv->mu);
}

void pmci_collect_live(pmc_server *srv)
{
    pmci_conn *c;

    pthread_mutex_lock(&srv->mu);
    c = srv->live;
    pthread_mutex_unlock(&srv->mu);
    /* The list changes only on this thread (the owner of them all). */
    for (; c; c = c->lnext)
        pmci_conn_collect(c, 0);
}

/* End the session if needed, close the socket and run conn_close. */
void pmci_conn_finish(pmci_conn *c)
{
    if (c->finished)
        return;
    pmci_conn_open(c); /* so conn_open and conn_close always pair */
    pmci_conn_end(c, PMC_OK);
    pmci_metrics_ended(&c->st, c->s, c->io_failed);
    if (c->it.fd >= 0 && !c->keep_fd)
        close(c->it.fd);
    c->it.fd = -1;
    /* Wraps; the merge adds it as -1. */
    PMCI_STORE(c->st.conn_active, c->st.conn_active - 1);
    pmci_cap_close(c);
    pmci_conn_collect(c, 1);
    if (c->srv->cfg.conn_close)
        c->srv->cfg.conn_close(c->srv->cfg.app, c->ud);
    c->finished = 1;
}

/* One processing step, on whatever thread runs this connection's
 * handlers: feed what was read, apply EOF or an end, write the replies. */
void pmci_conn_step(pmci_conn *c)
{
    unsigned job = c->job;

    c->job = 0;
    c->quiet = 0;
    pmci_conn_open(c);
    if (job == PMCI_JOB_INPUT && c->bp) { /* the usual: input alone */
        const uint8_t *p = c->bp;
        c->bp = NULL;
        c->quiet = pmci_conn_step_input(c, p, c->bn);
        return;
    }
    if ((job & PMCI_JOB_INPUT) && c->bp) {
        pmci_conn_feed(c, c->bp, c->bn);
        c->bp = NULL;
    } else if ((job & PMCI_JOB_INPUT) && c->in.len) {
        pmci_conn_feed(c, c->in.data, c->in.len);
        c->in.len = 0;
        if (c->in.cap > 16384)
            pmc_buf_free(&c->in); /* idle connections keep no big buffer */
    }
    /* Before EOF: an answer that arrived with the end of stream still
     * reaches its handler's session, then abort and close run. */
    if (job & PMCI_JOB_RESUME)
        pmci_conn_resumes(c);
    if (job & PMCI_JOB_EOF)
        pmci_conn_eof(c);
    if (job & PMCI_JOB_END) {
        pmci_conn_end(c, c->end_why);
        /* Ended for a timeout or a failure: the peer is not taking the
         * replies, and waiting to write them would keep it forever. */
        if (c->end_why != PMC_OK) {
            size_t n;
            pmc_session_output(c->s, &n);
            pmc_session_consume(c->s, n);
        }
    }
    if (pmci_conn_flush(c) < 0)
        pmci_conn_end(c, PMC_ERR_IO);
    pmci_conn_state(c);
    if (c->closed && !c->out_left)
        pmci_conn_finish(c);
}

/* The rest of pmci_conn_step_input (internal_server.h) when its usual
 * round trip did not do: p, n is input still to feed (a capture records
 * it first), or p is NULL: the feed ran and said st, and the first 'sent'
 * bytes of the output went out.  1 when the step left nothing for the
 * loop to look at (all sent, no handler pending, no partial packet, the
 * session open), with in_msg set; otherwise the rest of pmci_conn_step
 * ran (the state, a finish) and the loop takes the general way. */
int pmci_conn_step_input_rest(pmci_conn *c, const uint8_t *p, size_t n,
                              pmc_status st, size_t sent)
{
    pmci_session_view v;
    int f;

    if (p) {
        pmci_conn_feed(c, p, n);
    } else {
        pmci_conn_note(c, st);
        if (sent)
            pmc_session_consume(c->s, sent);
    }
    f = pmci_conn_flush(c);
    if (f == 0) {
        pmci_session_view_get(c->s, &v);
        if (!v.closed && !v.pending && v.queued == 0 && v.out_len == 0) {
            c->in_msg = v.in_msg;
            c->out_left = c->closed = c->partial = c->pending = 0;
            c->queued = 0;
            return 1;
        }
    } else if (f < 0) {
        pmci_conn_end(c, PMC_ERR_IO);
    }
    pmci_conn_state(c);
    if (c->closed && !c->out_left)
        pmci_conn_finish(c);
    return 0;
}

/* On the connection's thread, inside a step: run the requests handed to
 * it.  A request for a session that has ended is answered with NULL. */
void pmci_conn_resumes(pmci_conn *c)
{
    pmci_resume *r;

    while ((r = c->rq_job) != NULL) {
        c->rq_job = r->next;
        if (pmc_session_is_closed(c->s)) {
            r->fn(NULL, r->arg);
        } else {
            int v = r->fn(c->s, r->arg);
            if (v != PMC_PENDING && pmc_session_is_pending(c->s))
                pmci_conn_note(c, pmc_session_resume(c->s, v));
        }
        free(r);
    }
}

void pmci_conn_free(pmci_conn *c)
{
    if (!c)
        return;
    pmci_cap_close(c);
    if (c->live) /* never finished: a setup that failed, or fini */
        pmci_conn_collect(c, 1);
    if (c->it.fd >= 0 && !c->keep_fd)
        close(c->it.fd);
    /* Answers that came too late: their connection is gone. */
    pmci_rq_answer_all(c->rq_job);
    pmci_rq_answer_all(c->rq);
    pmc_session_free(c->s);
    pmc_buf_free(&c->in);
    free(c->own_rbuf);
    free(c);
}

void pmci_worker_report(pmc_server *srv, int live)
{
    pmci_stats snap;

    if (srv->control_fd < 0)
        return;
    if (live)
        pmci_collect_live(srv);
    pthread_mutex_lock(&srv->mu);
    snap = srv->stats;
    memset(&srv->stats, 0, sizeof srv->stats);
    pthread_mutex_unlock(&srv->mu);
    if (send(srv->control_fd, &snap, sizeof snap,
             MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof snap)
        pmci_stats_merge(srv, &snap); /* keep them for the next report */
}
