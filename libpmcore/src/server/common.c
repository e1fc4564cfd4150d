/* What every server file uses: the clock, the log, and the counters that
 * connections and loops gather without locks and merge into the server's
 * (or, in a prefork worker, report to the master). */
#define _GNU_SOURCE
#include "internal_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

long long pmci_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pmci_log(pmc_server *srv, int level, uint64_t conn_id,
              const char *queue_id, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!srv->cfg.log || level > srv->cfg.log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv->cfg.log(srv->cfg.app, level, conn_id, queue_id, msg);
}

/* The members pmci_stats_add takes as plain sums: all but the per-event
 * groups.  The asserts keep a new member out of those groups, which the
 * add reads only for events that were called. */
#define PMCI_SUMS_BEFORE offsetof(pmci_stats, cb_count)
#define PMCI_PER_EVENT sizeof(uint64_t[PMC_EV_COUNT])
_Static_assert(offsetof(pmci_stats, cb_ns_sum) ==
                   offsetof(pmci_stats, cb_count) + PMCI_PER_EVENT,
               "cb_count and cb_ns_sum are adjacent");
_Static_assert(offsetof(pmci_stats, conn_ended) ==
                   offsetof(pmci_stats, cb_ns_sum) + PMCI_PER_EVENT,
               "conn_ended follows cb_ns_sum");
_Static_assert(offsetof(pmci_stats, cb_ns_max) ==
                   offsetof(pmci_stats, cb_hist) +
                       sizeof(uint64_t[PMC_EV_COUNT][PMC_LATENCY_BUCKETS]),
               "cb_ns_max follows cb_hist");
_Static_assert(offsetof(pmci_stats, cb_ns_max) + PMCI_PER_EVENT ==
                   sizeof(pmci_stats),
               "cb_ns_max is last");

static inline uint64_t load(const uint64_t *p)
{
    /* Relaxed: 'from' may be a live connection's counters, which its
     * owner stores to as they change. */
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void pmci_stats_add(pmci_stats *to, const pmci_stats *from)
{
    const uint64_t *f = (const uint64_t *)from;
    uint64_t *t = (uint64_t *)to;

    /* Every member is a uint64_t, so the sums add as arrays. */
    for (size_t i = 0; i < PMCI_SUMS_BEFORE / sizeof(uint64_t); i++)
        t[i] += load(&f[i]);
    for (size_t i = offsetof(pmci_stats, conn_ended) / sizeof(uint64_t);
         i < offsetof(pmci_stats, cb_hist) / sizeof(uint64_t); i++)
        t[i] += load(&f[i]);
    /* A handler call counts in all of its event's members together
     * (trampolines.c), the count first: an event whose count reads 0 has
     * nothing in the others that this add may take (most connections
     * leave several events uncalled, and each is 18 members). */
    for (int ev = 0; ev < PMC_EV_COUNT; ev++) {
        uint64_t n = load(&from->cb_count[ev]), m;
        if (n == 0)
            continue;
        to->cb_count[ev] += n;
        to->cb_ns_sum[ev] += load(&from->cb_ns_sum[ev]);
        for (int i = 0; i < PMC_LATENCY_BUCKETS; i++)
            to->cb_hist[ev][i] += load(&from->cb_hist[ev][i]);
        m = load(&from->cb_ns_max[ev]);
        if (m > to->cb_ns_max[ev])
            to->cb_ns_max[ev] = m;
    }
}

void pmci_stats_merge(pmc_server *srv, pmci_stats *delta)
{
    pthread_mutex_lock(&srv->mu);
    pmci_stats_add(&srv->stats, delta);
    pthread_mutex_unlock(&srv->mu);
    memset(delta, 0, sizeof *delta);
}

void pmci_loop_stats_merge(pmc_server *srv, pmci_loop_stats *d)
{
    pthread_mutex_lock(&srv->mu);
#define PMCI_LOOP_ADD(f) srv->stats.f += d->f;
    PMCI_LOOP_COUNTERS(PMCI_LOOP_ADD)
#undef PMCI_LOOP_ADD
    pthread_mutex_unlock(&srv->mu);
    memset(d, 0, sizeof *d);
}


/* Why a finished connection ended, and what its MTA offered; the
 * latency buckets pmci_metrics_took (internal_server.h) counts into. */
const uint64_t pmc_latency_bounds_ns[PMC_LATENCY_BUCKETS - 1] = {
    10000,     25000,     50000,     100000,     250000,
    500000,    1000000,   2500000,   5000000,    10000000,
    50000000,  100000000, 500000000, 1000000000, 5000000000,
};

void pmci_metrics_ended(pmci_stats *st, const pmc_session *s, int io_failed)
{
    const pmc_error *e = pmc_session_error(s);
    uint32_t v, a, p;
    pmc_conn_end why;

    switch (pmc_session_close_reason(s)) {
    case PMC_CLOSE_QUIT:
    case PMC_CLOSE_QUIT_NC:
        why = PMC_END_QUIT;
        break;
    case PMC_CLOSE_EOF:
        why = PMC_END_EOF;
        break;
    case PMC_CLOSE_ERROR:
        why = PMC_END_PROTOCOL;
        break;
    default: /* the host ended it: the status it gave says why */
        why = PMC_END_SHUTDOWN;
        if (e && e->code == PMC_ERR_TIMEOUT)
            why = PMC_END_TIMEOUT;
        else if (e && e->code == PMC_ERR_IO)
            why = PMC_END_RESET;
        break;
    }
    /* A reply that could not be written ends the conversation however the
     * session saw its end. */
    if (io_failed && why != PMC_END_QUIT)
        why = PMC_END_RESET;
    PMCI_COUNT(st->conn_ended[why]);
    pmc_session_offer(s, &v, &a, &p);
    if (v >= 2)
        PMCI_COUNT(st->negotiations[v > 7 ? 7 : v]);
}
