/* A bounded pool of threads that run connection steps.  The loop submits a
 * connection it no longer touches; a worker runs the step and hands it
 * back through the done list and an eventfd.  Ownership moves under the
 * mutex, so a connection is never on two threads and its steps stay in
 * order (the loop submits it again only after it came back). */
#define _GNU_SOURCE
#include "internal_server.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct pmci_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pmci_conn *qhead, *qtail;   /* submitted */
    pmci_conn *dhead, *dtail;   /* done */
    int efd;
    int stop;
    unsigned n;
    pthread_t *th;
};

static void push(pmci_conn **head, pmci_conn **tail, pmci_conn *c)
{
    c->qnext = NULL;
    if (*tail)
        (*tail)->qnext = c;
    else
        *head = c;
    *tail = c;
}

static pmci_conn *pop(pmci_conn **head, pmci_conn **tail)
{
    pmci_conn *c = *head;

    if (c) {
        *head = c->qnext;
        if (!*head)
            *tail = NULL;
        c->qnext = NULL;
    }
    return c;
}

static void *worker(void *arg)
{
    pmci_pool *p = arg;

    for (;;) {
        pmci_conn *c;
        int was_empty;
        uint64_t one = 1;

        pthread_mutex_lock(&p->mu);
        while (!p->qhead && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        c = pop(&p->qhead, &p->qtail);
        pthread_mutex_unlock(&p->mu);
        if (!c)
            return NULL;
        pmci_conn_step(c);
        pthread_mutex_lock(&p->mu);
        was_empty = !p->dhead;
        push(&p->dhead, &p->dtail, c);
        pthread_mutex_unlock(&p->mu);
        /* The loop empties the whole list per wake-up, so only the first
         * completion of a burst needs to wake it. */
        if (was_empty && write(p->efd, &one, sizeof one) < 0) {
            /* A saturated counter still reads as readable. */
        }
    }
}

pmci_pool *pmci_pool_new(unsigned n, pmc_error *err)
{
    pmci_pool *p = calloc(1, sizeof *p);

    if (!p || !(p->th = calloc(n, sizeof *p->th))) {
        free(p);
        pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) {
        pmci_set_error(err, PMC_ERR_IO, 0, "eventfd failed");
        pmci_pool_free(p);
        return NULL;
    }
    for (; p->n < n; p->n++)
        if (pthread_create(&p->th[p->n], NULL, worker, p) != 0) {
            pmci_set_error(err, PMC_ERR_NOMEM, 0,
                           "cannot start worker thread %u of %u", p->n, n);
            pmci_pool_free(p);
            return NULL;
        }
    return p;
}

int pmci_pool_fd(pmci_pool *p)
{
    return p->efd;
}

void pmci_pool_submit(pmci_pool *p, pmci_conn *c)
{
    pthread_mutex_lock(&p->mu);
    push(&p->qhead, &p->qtail, c);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

pmci_conn *pmci_pool_done(pmci_pool *p)
{
    pmci_conn *c;

    pthread_mutex_lock(&p->mu);
    c = pop(&p->dhead, &p->dtail);
    pthread_mutex_unlock(&p->mu);
    return c;
}

/* Only when nothing is submitted or running: the loop waits for every
 * connection to come back before it ends. */
void pmci_pool_free(pmci_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    if (p->efd >= 0)
        close(p->efd);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}
