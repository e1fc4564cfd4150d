/* What other threads, or a signal handler, ask of a running server: the
 * answers to pending handlers (pmc_server_resume), a queue any thread
 * appends to and the loop that owns the connections drains; and stop and
 * reload.  Each is a note and a write to the server's eventfd: the loop
 * acts on it on its own thread. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

void pmci_rq_init(pmc_server *srv)
{
    pthread_mutex_init(&srv->rq_mu, NULL);
    srv->rq_head = srv->rq_tail = NULL;
    srv->rq_closed = 0;
}

/* In a new child: the queue is a copy of the parent's, whose requests the
 * parent answers; its mutex may have been held by a thread that does not
 * exist here. */
void pmci_rq_child(pmc_server *srv)
{
    pmci_resume *r = srv->rq_head;

    while (r) {
        pmci_resume *next = r->next;
        free(r);
        r = next;
    }
    pmci_rq_init(srv);
}

pmci_resume *pmci_rq_take(pmc_server *srv)
{
    pmci_resume *r;

    pthread_mutex_lock(&srv->rq_mu);
    r = srv->rq_head;
    srv->rq_head = srv->rq_tail = NULL;
    pthread_mutex_unlock(&srv->rq_mu);
    return r;
}

/* Requests whose connection is gone. */
void pmci_rq_answer_all(pmci_resume *r)
{
    while (r) {
        pmci_resume *next = r->next;
        r->fn(NULL, r->arg);
        free(r);
        r = next;
    }
}

/* The run is over: nothing will take requests any more. */
void pmci_rq_close(pmc_server *srv)
{
    pmci_resume *r;

    pthread_mutex_lock(&srv->rq_mu);
    srv->rq_closed = 1;
    r = srv->rq_head;
    srv->rq_head = srv->rq_tail = NULL;
    pthread_mutex_unlock(&srv->rq_mu);
    pmci_rq_answer_all(r);
}

pmc_status pmc_server_resume(pmc_server *srv, uint64_t conn_id,
                             int (*fn)(pmc_session *s, void *arg), void *arg)
{
    pmci_resume *r;
    uint64_t one = 1;
    int closed, saved = errno;

    if (!srv || !fn)
        return PMC_ERR_ARGUMENT;
    r = malloc(sizeof *r);
    if (!r)
        return PMC_ERR_NOMEM;
    r->id = conn_id;
    r->fn = fn;
    r->arg = arg;
    r->next = NULL;
    pthread_mutex_lock(&srv->rq_mu);
    closed = srv->rq_closed;
    if (!closed) {
        if (srv->rq_tail)
            srv->rq_tail->next = r;
        else
            srv->rq_head = r;
        srv->rq_tail = r;
    }
    pthread_mutex_unlock(&srv->rq_mu);
    if (closed) {
        free(r);
        fn(NULL, arg);
        return PMC_OK;
    }
    /* A saturated counter still wakes the loop. */
    if (srv->wakefd >= 0 && write(srv->wakefd, &one, sizeof one) < 0) {
    }
    errno = saved;
    return PMC_OK;
}

uint64_t pmc_server_conn_id(const pmc_session *s)
{
    const pmci_conn *c = pmc_session_userdata(s);

    return c ? c->id : 0;
}

/* --- stop and reload --- */

/* Only write() and lock-free atomics: callable from a signal handler. */
static void wake(pmc_server *srv)
{
    uint64_t one = 1;
    int saved = errno;
    ssize_t r = write(srv->wakefd, &one, sizeof one);

    (void)r; /* a full counter already wakes the loop */
    errno = saved;
}

void pmc_server_stop(pmc_server *srv, int drain_ms)
{
    int expected = 0;

    if (drain_ms < 0)
        drain_ms = srv->cfg.drain_timeout_ms;
    if (drain_ms < 0)
        drain_ms = 0;
    if (drain_ms > INT_MAX - 1)
        drain_ms = INT_MAX - 1;
    /* stop_req holds drain + 1, so one atomic carries both facts. */
    atomic_compare_exchange_strong(&srv->stop_req, &expected, drain_ms + 1);
    wake(srv);
}

void pmc_server_reload(pmc_server *srv)
{
    atomic_fetch_add(&srv->reload_req, 1);
    wake(srv);
}
