/* What every server file uses: the clock, the log, and the counters that
 * connections and loops gather without locks and merge into the server's
 * (or, in a prefork worker, report to the master). */
#define _GNU_SOURCE
#include "internal_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

void pmci_stats_add(pmci_stats *to, const pmci_stats *from)
{
    /* Every member is a uint64_t, so the struct adds as an array; maxima
     * are the exception.  Relaxed loads: 'from' may be a live connection's
     * counters, which its owner stores to as they change. */
    const uint64_t *f = (const uint64_t *)from;
    uint64_t *t = (uint64_t *)to;
    size_t n = offsetof(pmci_stats, cb_ns_max) / sizeof(uint64_t);

    for (size_t i = 0; i < n; i++)
        t[i] += __atomic_load_n(&f[i], __ATOMIC_RELAXED);
    for (int i = 0; i < PMC_EV_COUNT; i++) {
        uint64_t m = __atomic_load_n(&from->cb_ns_max[i], __ATOMIC_RELAXED);
        if (m > to->cb_ns_max[i])
            to->cb_ns_max[i] = m;
    }
}

void pmci_stats_merge(pmc_server *srv, pmci_stats *delta)
{
    pthread_mutex_lock(&srv->mu);
    pmci_stats_add(&srv->stats, delta);
    pthread_mutex_unlock(&srv->mu);
    memset(delta, 0, sizeof *delta);
}

/* Counters of this worker since its last report go to the master. */
void pmci_worker_report(pmc_server *srv)
{
    pmci_stats snap;

    if (srv->control_fd < 0)
        return;
    pmci_collect_live(srv);
    pthread_mutex_lock(&srv->mu);
    snap = srv->stats;
    memset(&srv->stats, 0, sizeof srv->stats);
    pthread_mutex_unlock(&srv->mu);
    if (send(srv->control_fd, &snap, sizeof snap,
             MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof snap)
        pmci_stats_merge(srv, &snap); /* keep them for the next report */
}
