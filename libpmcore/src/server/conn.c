/* The session side of one server connection, the same in every model:
 * hooks, feeding, writing the replies of one batch in one send, logging
 * protocol errors with the queue id, and counters. */
#define _GNU_SOURCE
#include "internal_server.h"

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
    return c;
}

void pmci_conn_open(pmci_conn *c)
{
    if (c->opened)
        return;
    c->opened = 1;
    if (c->srv->cfg.conn_open)
        c->ud = c->srv->cfg.conn_open(c->srv->cfg.app, &c->info);
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
    const pmc_error *e = pmc_session_error(c->s);
    char qid[64];

    if (st == PMC_OK || st == PMC_ERR_CLOSED || !e)
        return;
    if (st == PMC_ERR_NOMEM) {
        pmci_log(c->srv, PMC_LOG_ERR, c->id, pmci_conn_qid(c, qid, sizeof qid),
                 "out of memory: %s", e->message);
        return;
    }
    c->st.protocol_errors++;
    pmci_log(c->srv, PMC_LOG_WARNING, c->id, pmci_conn_qid(c, qid, sizeof qid),
             "protocol error %s: %s", pmc_status_name(st), e->message);
}

pmc_status pmci_conn_feed(pmci_conn *c, const uint8_t *p, size_t n)
{
    pmc_status st = pmc_session_feed(c->s, p, n);

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
            pmc_session_consume(c->s, (size_t)w);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 1;
        if (!c->io_failed) {
            char qid[64], et[100];
            c->io_failed = 1;
            c->st.io_errors++;
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
    size_t n;

    pmc_session_output(c->s, &n);
    c->out_left = n > 0 && !c->io_failed;
    c->in_msg = pmci_session_in_message(c->s);
    c->partial = pmci_session_partial(c->s);
    c->pending = pmc_session_is_pending(c->s);
    c->queued = c->pending ? pmci_session_queued(c->s) : 0;
}

/* Move the session's counters into the server's. */
void pmci_conn_collect(pmci_conn *c)
{
    const pmc_session_stats *ss = pmci_session_stats(c->s);

    c->steps = 0;

    c->st.messages += ss->messages - c->seen.messages;
    c->st.callback_errors += ss->callback_errors - c->seen.callback_errors;
    for (int i = 0; i < 128; i++)
        c->st.replies[i] += ss->replies[i] - c->seen.replies[i];
    c->seen = *ss;
    pmci_stats_merge(c->srv, &c->st);
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
    c->st.conn_active--; /* wraps; the merge adds it back as -1 */
    pmci_conn_collect(c);
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
    pmci_conn_open(c);
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
    if (pmc_session_is_closed(c->s) && !c->out_left)
        pmci_conn_finish(c);
    else
        pmci_conn_collect_some(c);
}

/* Counters reach the server at the end of each message and at least every
 * 32 steps: a mutex and a pass over 128 reply codes per round trip would
 * cost more than the round trip's own work. */
void pmci_conn_collect_some(pmci_conn *c)
{
    if (++c->steps >= 32 ||
        pmci_session_stats(c->s)->messages != c->seen.messages)
        pmci_conn_collect(c);
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
    if (c->it.fd >= 0 && !c->keep_fd)
        close(c->it.fd);
    /* Answers that came too late: their connection is gone. */
    pmci_rq_answer_all(c->rq_job);
    pmci_rq_answer_all(c->rq);
    pmc_session_free(c->s);
    pmc_buf_free(&c->in);
    free(c);
}
