/* Answers to pending handlers from other threads (pmc_server_resume): a
 * queue any thread appends to, drained by the loop that owns the
 * connections; the connection table the loop finds them in; and the part
 * of a connection step that runs the requests on the connection's thread. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
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

/* --- connections by id: chained hashing, doubled when it gets full --- */

static size_t slot_of(const pmci_loop *l, uint64_t id)
{
    /* Ids are a base plus a counter: a multiplicative hash spreads them. */
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (l->tab_cap - 1);
}

int pmci_tab_add(pmci_loop *l, pmci_conn *c)
{
    if (l->tab_n + 1 > l->tab_cap) {
        size_t cap = l->tab_cap ? l->tab_cap * 2 : 64;
        pmci_conn **t = calloc(cap, sizeof *t), **old = l->tab;
        size_t oldcap = l->tab_cap;
        if (!t)
            return -1;
        l->tab = t;
        l->tab_cap = cap;
        for (size_t i = 0; i < oldcap; i++)
            while (old[i]) {
                pmci_conn *x = old[i];
                size_t k = slot_of(l, x->id);
                old[i] = x->hnext;
                x->hnext = t[k];
                t[k] = x;
            }
        free(old);
    }
    {
        size_t k = slot_of(l, c->id);
        c->hnext = l->tab[k];
        l->tab[k] = c;
        l->tab_n++;
    }
    return 0;
}

void pmci_tab_del(pmci_loop *l, pmci_conn *c)
{
    pmci_conn **pp;

    if (!l->tab_cap)
        return;
    for (pp = &l->tab[slot_of(l, c->id)]; *pp; pp = &(*pp)->hnext)
        if (*pp == c) {
            *pp = c->hnext;
            c->hnext = NULL;
            l->tab_n--;
            return;
        }
}

pmci_conn *pmci_tab_find(pmci_loop *l, uint64_t id)
{
    pmci_conn *c;

    if (!l->tab_cap)
        return NULL;
    for (c = l->tab[slot_of(l, id)]; c; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}
