/* A bounded pool of threads that run connection steps.  The loop submits a
 * connection it no longer touches; a worker runs the step and hands it
 * back through the done list and an eventfd.  Ownership moves under the
 * mutex, so a connection is never on two threads and its steps stay in
 * order (the loop submits it again only after it came back).
 *
 * Lead mode (pool_lead_us) turns that around: the pool thread that runs
 * the loop (the leader) runs the steps itself, so a command costs no
 * thread hand-off, and the other pool threads are followers.  One of them,
 * the watcher, looks at the leader every pool_lead_us: when the leader has
 * been in the same step for that long, the watcher takes the loop over and
 * leads from then on, and the old leader, once its step returns, hands its
 * connection in through the done list and becomes a follower.  Within the
 * run, the loop's state passes between threads only through the compare
 * and swap on `lead`, which either the leader (step done) or the watcher
 * (take over) wins, never both; the start and the end go through the
 * mutex.  The thread that called pmc_server_run (home) never leads: it
 * waits for the host's tick and reload, which must run there and on time
 * whatever the handlers do (Python runs its signal handlers in tick). */
#define _GNU_SOURCE
#include "internal_server.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
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

    /* Lead mode. */
    unsigned lead_us;
    pmci_loop *loop;
    int (*lead_fn)(pmci_loop *l); /* the loop's; see pmci_pool_new */
    _Atomic uint64_t lead; /* 0: the leader is in the loop's code; odd:
                              it runs step number lead >> 1 */
    uint64_t seq;        /* the leader's step count (the leader's) */
    atomic_int dozing;   /* the watcher waits for a step to start */
    int watching;        /* a follower is the watcher (under mu) */
    int start;           /* a follower is to start leading (under mu) */
    int over;            /* the loop has ended (under mu) */
    unsigned due;        /* PMCI_DUE_* the home thread owes (under mu) */
    pthread_cond_t wcv;  /* the watcher sleeps on it (CLOCK_MONOTONIC) */
    pthread_cond_t hcv;  /* the home thread waits on it */
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

/* A finished step goes back to the loop: the done list, and the eventfd
 * when the list was empty (the loop empties the whole list per wake-up,
 * so only the first completion of a burst needs to wake it). */
static void give_back(pmci_pool *p, pmci_conn *c)
{
    int was_empty;
    uint64_t one = 1;

    pthread_mutex_lock(&p->mu);
    was_empty = !p->dhead;
    push(&p->dhead, &p->dtail, c);
    pthread_mutex_unlock(&p->mu);
    if (was_empty && write(p->efd, &one, sizeof one) < 0) {
        /* A saturated counter still reads as readable. */
    }
}

static void *worker(void *arg)
{
    pmci_pool *p = arg;

    for (;;) {
        pmci_conn *c;

        pthread_mutex_lock(&p->mu);
        while (!p->qhead && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        c = pop(&p->qhead, &p->qtail);
        pthread_mutex_unlock(&p->mu);
        if (!c)
            return NULL;
        pmci_conn_step(c);
        give_back(p, c);
    }
}

/* --- lead mode --- */

/* Looks that found the leader between steps, in a row, before the
 * watcher dozes. */
#define DOZE_AFTER 100

static long long mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void deadline_in(struct timespec *ts, unsigned us)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += (long)(us % 1000000) * 1000;
    ts->tv_sec += us / 1000000 + ts->tv_nsec / 1000000000;
    ts->tv_nsec %= 1000000000;
}

/* The watcher's round, mu held: 1 when it took the loop over (mu
 * released), 0 when the pool stops or the loop is over. */
static int watch_leader(pmci_pool *p)
{
    uint64_t seen = 0, s;
    long long seen_at = 0;
    unsigned quiet = 0;
    struct timespec ts;

    while (!p->stop && !p->over) {
        deadline_in(&ts, p->lead_us);
        pthread_cond_timedwait(&p->wcv, &p->mu, &ts);
        if (p->stop || p->over)
            break;
        s = atomic_load(&p->lead);
        if (!(s & 1)) {
            seen = 0;
            if (++quiet < DOZE_AFTER)
                continue;
            /* No step for a while (an idle server): sleep until the
             * leader starts one instead of waking every pool_lead_us.
             * The leader stores `lead` and then reads `dozing`; this
             * stores `dozing` and then reads `lead`: one of the two sees
             * the other. */
            atomic_store(&p->dozing, 1);
            if (atomic_load(&p->lead) & 1)
                atomic_store(&p->dozing, 0);
            while (atomic_load(&p->dozing) && !p->stop && !p->over)
                pthread_cond_wait(&p->wcv, &p->mu);
            quiet = 0;
            continue;
        }
        quiet = 0;
        if (s != seen) { /* a new step since the last look */
            seen = s;
            seen_at = mono_us();
            continue;
        }
        /* The same step: take over once it has run pool_lead_us (a
         * wake-up may come early). */
        if (mono_us() - seen_at >= (long long)p->lead_us &&
            atomic_compare_exchange_strong(&p->lead, &s, 0)) {
            p->watching = 0;
            pthread_cond_signal(&p->cv); /* another follower watches */
            pthread_mutex_unlock(&p->mu);
            return 1;
        }
    }
    return 0;
}

static void *follower(void *arg)
{
    pmci_pool *p = arg;

    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (p->start) { /* the first leader */
            p->start = 0;
            pthread_mutex_unlock(&p->mu);
        } else if (p->watching || p->over) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        } else {
            p->watching = 1;
            if (!watch_leader(p)) {
                p->watching = 0;
                continue;
            }
        }
        if (!p->lead_fn(p->loop))
            pmci_pool_over(p);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int pmci_pool_leads(const pmci_pool *p)
{
    return p->lead_us != 0;
}

int pmci_pool_lead_step(pmci_pool *p, pmci_conn *c, const uint8_t *in,
                        size_t n)
{
    uint64_t st = (++p->seq << 1) | 1;

    atomic_store(&p->lead, st);
    if (atomic_load(&p->dozing)) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->dozing, 0);
        pthread_cond_signal(&p->wcv);
        pthread_mutex_unlock(&p->mu);
    }
    if (in)
        c->quiet = pmci_conn_step_input(c, in, n);
    else
        pmci_conn_step(c);
    if (atomic_compare_exchange_strong(&p->lead, &st, 0))
        return 1;
    give_back(p, c); /* the new leader takes it from here */
    return 0;
}

void pmci_pool_over(pmci_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->over = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->wcv);
    pthread_cond_broadcast(&p->hcv);
    pthread_mutex_unlock(&p->mu);
}

void pmci_pool_home(pmci_pool *p, unsigned what)
{
    pthread_mutex_lock(&p->mu);
    p->due |= what;
    pthread_cond_signal(&p->hcv);
    pthread_mutex_unlock(&p->mu);
}

void pmci_pool_lead_run(pmci_pool *p, pmc_server *srv)
{
    const pmc_server_config *cfg = &srv->cfg;
    unsigned due;

    pthread_mutex_lock(&p->mu);
    p->start = 1;
    pthread_cond_signal(&p->cv);
    while (!p->over) {
        if (!p->due) {
            pthread_cond_wait(&p->hcv, &p->mu);
            continue;
        }
        due = p->due;
        p->due = 0;
        pthread_mutex_unlock(&p->mu);
        if ((due & PMCI_DUE_RELOAD) && cfg->reload)
            cfg->reload(cfg->app);
        if ((due & PMCI_DUE_TICK) && cfg->tick && cfg->tick(cfg->app) != 0)
            pmc_server_stop(srv, cfg->drain_timeout_ms);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}

pmci_pool *pmci_pool_new(pmci_loop *l, unsigned n,
                         int (*lead)(pmci_loop *l), pmc_error *err)
{
    const pmc_server_config *cfg = &l->srv->cfg;
    pmci_pool *p = calloc(1, sizeof *p);

    /* Lead mode: n handlers may block and one thread still leads. */
    if (cfg->pool_lead_us)
        n++;
    if (!p || !(p->th = calloc(n, sizeof *p->th))) {
        free(p);
        pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
        return NULL;
    }
    p->lead_us = cfg->pool_lead_us;
    p->loop = l;
    p->lead_fn = lead;
    atomic_init(&p->lead, 0);
    atomic_init(&p->dozing, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->wcv, &ca);
        pthread_condattr_destroy(&ca);
    }
    pthread_cond_init(&p->hcv, NULL);
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) {
        pmci_set_error(err, PMC_ERR_IO, 0, "eventfd failed");
        pmci_pool_free(p);
        return NULL;
    }
    for (; p->n < n; p->n++)
        if (pthread_create(&p->th[p->n], NULL,
                           p->lead_us ? follower : worker, p) != 0) {
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
void pmci_pool_join(pmci_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_cond_broadcast(&p->wcv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    p->n = 0;
}

void pmci_pool_free(pmci_pool *p)
{
    if (!p)
        return;
    pmci_pool_join(p);
    if (p->efd >= 0)
        close(p->efd);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->wcv);
    pthread_cond_destroy(&p->hcv);
    pthread_mutex_destroy(&p->mu);
    free(p->th);
    free(p);
}
