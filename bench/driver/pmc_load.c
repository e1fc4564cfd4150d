/*
 * pmc-load - drive a milter with MTA traffic through libpmcore's client and
 * report throughput and latency.  One thread per connection, because the
 * client API is blocking.  Nearly all of the driver's CPU is the kernel's
 * work for its one send() and one recv() per round trip (about 90% in
 * perf), the same work an MTA does, so threads cost little extra.
 *
 * Phases, kept apart by barriers so the measured part holds no connection
 * set-up (except with --fresh, where set-up is part of every message) and
 * no warm-up: warm-up messages, [--sync hand-shake], measured messages,
 * [--sync hand-shake], QUIT on every connection.
 */
#define _GNU_SOURCE
#include "load.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct worker {
    pthread_t th;
    const load_opts *o;
    const load_workload *w;
    load_sock sock;
    pmc_transport tr;
    pmc_client *c;
    uint64_t *lat_ns;     /* one per measured message that passed */
    size_t nlat, cap;
    int nomem;
    unsigned long errors; /* warm-up and measured */
} worker;

static pthread_barrier_t bar_warm, bar_go, bar_done, bar_close;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_error[300];
static uint64_t deadline_ns; /* --duration: end of the measured phase */
static unsigned long errors_shown;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void note_error(worker *wk, const char *msg)
{
    wk->errors++;
    pthread_mutex_lock(&err_lock);
    if (!first_error[0])
        snprintf(first_error, sizeof first_error, "%s", msg);
    if (errors_shown < wk->o->max_errors_shown) {
        errors_shown++;
        fprintf(stderr, "pmc-load: %s\n", msg);
    }
    pthread_mutex_unlock(&err_lock);
}

static void drop_link(worker *wk)
{
    pmc_client_free(wk->c);
    wk->c = NULL;
    load_sock_close(&wk->sock);
}

static int open_link(worker *wk, char *err, size_t errlen)
{
    if (load_sock_open(&wk->sock, &wk->o->spec, wk->o->timeout_ms) < 0) {
        snprintf(err, errlen, "%s: %s", wk->o->target, wk->sock.why);
        return -1;
    }
    load_sock_transport(&wk->sock, &wk->tr);
    wk->c = load_session_open(wk->o, &wk->tr, err, errlen);
    if (!wk->c) {
        load_sock_close(&wk->sock);
        return -1;
    }
    return 0;
}

static int quit_link(worker *wk, char *err, size_t errlen)
{
    pmc_status st = pmc_client_quit(wk->c);
    int rc = 0;

    if (st != PMC_OK) {
        const pmc_error *e = pmc_client_error(wk->c);
        snprintf(err, errlen, "QUIT: %s: %s", pmc_status_name(st),
                 e ? e->message : "no detail");
        rc = -1;
    }
    drop_link(wk);
    return rc;
}

/* One message, with its connection around it under --fresh. */
static void one_message(worker *wk, int measured)
{
    char err[400];
    uint64_t t0 = now_ns();
    int rc;

    err[0] = 0;
    if (!wk->c && open_link(wk, err, sizeof err) < 0)
        rc = 2;
    else
        rc = load_message(wk->c, wk->w, err, sizeof err);
    if (rc == 2) {
        drop_link(wk); /* out of step: an MTA drops it too */
    } else if (wk->o->fresh) {
        char qerr[300];

        if (quit_link(wk, qerr, sizeof qerr) < 0 && rc == 0) {
            snprintf(err, sizeof err, "%s", qerr);
            rc = 2;
        }
    }
    if (rc) {
        note_error(wk, err);
        return;
    }
    if (!measured)
        return;
    if (wk->nlat == wk->cap) {
        size_t cap = wk->cap ? 2 * wk->cap : 1024;
        uint64_t *p = realloc(wk->lat_ns, cap * sizeof *p);
        if (!p) {
            wk->nomem = 1;
            return;
        }
        wk->lat_ns = p;
        wk->cap = cap;
    }
    wk->lat_ns[wk->nlat++] = now_ns() - t0;
}

static void *run_worker(void *arg)
{
    worker *wk = arg;
    char err[400];

    for (unsigned i = 0; i < wk->o->warmup; i++)
        one_message(wk, 0);
    /* A connection that only serves measured messages must exist before
     * the clock starts. */
    if (!wk->o->fresh && !wk->c && open_link(wk, err, sizeof err) < 0)
        note_error(wk, err);
    pthread_barrier_wait(&bar_warm);
    pthread_barrier_wait(&bar_go);
    for (unsigned i = 0; i < wk->o->msgs && !wk->nomem; i++) {
        if (deadline_ns && now_ns() >= deadline_ns)
            break;
        one_message(wk, 1);
    }
    pthread_barrier_wait(&bar_done);
    pthread_barrier_wait(&bar_close);
    if (wk->c && quit_link(wk, err, sizeof err) < 0)
        note_error(wk, err);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in µs. */
static double pct_us(const uint64_t *v, size_t n, double p)
{
    size_t k;

    if (n == 0)
        return 0;
    k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1000.0;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* --sync: tell the harness where we are and wait for its go-ahead. */
static void handshake(const char *word)
{
    char line[64];

    printf("%s\n", word);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        clearerr(stdin); /* harness gone: carry on rather than hang */
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    load_opts o;
    load_workload w;
    worker *wks;
    pthread_attr_t attr;
    uint64_t *all, t_start, t_end;
    size_t n = 0;
    unsigned long errors = 0;
    double secs, rate, mean = 0, cpu0, cpu1;
    int rc = load_parse_args(argc, argv, &o);

    if (rc)
        return rc < 0 ? 0 : rc;
    if (load_workload_build(&w, &o) < 0) {
        fprintf(stderr, "pmc-load: out of memory building the message\n");
        return 1;
    }
    wks = calloc(o.conn, sizeof *wks);
    if (!wks) {
        fprintf(stderr, "pmc-load: out of memory\n");
        return 1;
    }
    pthread_barrier_init(&bar_warm, NULL, o.conn + 1);
    pthread_barrier_init(&bar_go, NULL, o.conn + 1);
    pthread_barrier_init(&bar_done, NULL, o.conn + 1);
    pthread_barrier_init(&bar_close, NULL, o.conn + 1);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (unsigned i = 0; i < o.conn; i++) {
        wks[i].o = &o;
        wks[i].w = &w;
        wks[i].sock.fd = -1;
        if (pthread_create(&wks[i].th, &attr, run_worker, &wks[i]) != 0) {
            fprintf(stderr, "pmc-load: cannot start thread %u\n", i);
            return 1;
        }
    }
    pthread_barrier_wait(&bar_warm);
    if (o.sync)
        handshake("ready");
    cpu0 = cpu_s();
    t_start = now_ns();
    if (o.duration > 0)
        deadline_ns = t_start + (uint64_t)(o.duration * 1e9);
    pthread_barrier_wait(&bar_go);
    pthread_barrier_wait(&bar_done);
    t_end = now_ns();
    cpu1 = cpu_s();
    if (o.sync)
        handshake("done");
    pthread_barrier_wait(&bar_close);
    for (unsigned i = 0; i < o.conn; i++) {
        pthread_join(wks[i].th, NULL);
        errors += wks[i].errors;
        n += wks[i].nlat;
    }
    all = malloc((n + 1) * sizeof *all);
    if (!all) {
        fprintf(stderr, "pmc-load: out of memory\n");
        return 1;
    }
    n = 0;
    for (unsigned i = 0; i < o.conn; i++) {
        if (wks[i].nomem) {
            fprintf(stderr, "pmc-load: out of memory for latencies\n");
            errors++;
        }
        memcpy(all + n, wks[i].lat_ns, wks[i].nlat * sizeof *all);
        n += wks[i].nlat;
        free(wks[i].lat_ns);
    }
    qsort(all, n, sizeof *all, cmp_u64);
    for (size_t i = 0; i < n; i++)
        mean += (double)all[i] / 1000.0;
    mean = n ? mean / (double)n : 0;
    secs = (double)(t_end - t_start) / 1e9;
    rate = secs > 0 ? (double)n / secs : 0;

    if (o.json) {
        printf("{\"msgs\": %zu, \"errors\": %lu, \"seconds\": %.6f, "
               "\"msgs_per_s\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
               "\"p99_us\": %.1f, \"max_us\": %.1f, \"mean_us\": %.1f, "
               "\"driver_cpu_us_per_msg\": %.2f, \"conn\": %u, "
               "\"msgs_per_conn\": %u, \"duration\": %.3f, \"warmup\": %u, "
               "\"fresh\": %s, "
               "\"rcpts\": %u, \"headers\": %u, \"body\": %zu, "
               "\"personality\": \"%s\", \"target\": ",
               n, errors, secs, rate, pct_us(all, n, 50), pct_us(all, n, 90),
               pct_us(all, n, 99), pct_us(all, n, 100), mean,
               n ? (cpu1 - cpu0) * 1e6 / (double)n : 0.0, o.conn,
               o.msgs_given || o.duration <= 0 ? o.msgs : 0, o.duration,
               o.warmup, o.fresh ? "true" : "false", o.rcpts, o.headers,
               o.body,
               o.personality == PMC_MTA_POSTFIX ? "postfix" : "sendmail");
        json_string(stdout, o.target);
        printf(", \"first_error\": ");
        if (first_error[0])
            json_string(stdout, first_error);
        else
            printf("null");
        printf("}\n");
    } else {
        char per[64];

        if (o.duration > 0)
            snprintf(per, sizeof per, "%.1f s", o.duration);
        else
            snprintf(per, sizeof per, "%u message(s)", o.msgs);
        printf("pmc-load %s: %u connection(s) x %s, %s, %u rcpt, "
               "%u headers, %zu-byte body, %s\n",
               o.target, o.conn, per,
               o.fresh ? "fresh connection per message" : "reused",
               o.rcpts, o.headers, o.body,
               o.personality == PMC_MTA_POSTFIX ? "postfix" : "sendmail");
        printf("  %zu messages in %.3f s: %.1f msgs/s, %lu error(s)\n", n,
               secs, rate, errors);
        printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  "
               "mean %.1f\n",
               pct_us(all, n, 50), pct_us(all, n, 90), pct_us(all, n, 99),
               pct_us(all, n, 100), mean);
        printf("  driver CPU: %.1f us per message\n",
               n ? (cpu1 - cpu0) * 1e6 / (double)n : 0.0);
    }
    fflush(stdout);
    free(all);
    free(wks);
    load_workload_free(&w);
    return errors ? 1 : 0;
}
