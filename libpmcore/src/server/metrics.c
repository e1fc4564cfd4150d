/* The server's counters as their readers get them: the snapshot
 * (pmc_server_stats_get, which adds the live connections' counts), the
 * Prometheus text (docs/metrics.md) and the health a load balancer checks.
 * The counting itself stays where the events happen (connections,
 * trampolines, common.c); this file only reads and renders. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void pmc_server_stats_get(pmc_server *srv, pmc_server_stats *out)
{
    pthread_mutex_lock(&srv->mu);
    *out = srv->stats;
    /* Connections hand their counters over when they close: add what
     * the live ones have counted so far. */
    for (const pmci_conn *c = srv->live; c; c = c->lnext)
        pmci_conn_peek(c, out);
    pthread_mutex_unlock(&srv->mu);
}

pmc_health pmc_server_health(pmc_server *srv)
{
    if (!atomic_load(&srv->running))
        return PMC_HEALTH_STOPPED;
    /* Asked by pmc_server_stop, or begun by the tick hook (Perl's and
     * Python's signal handlers) or the master. */
    if (atomic_load(&srv->stop_req) || atomic_load(&srv->draining))
        return PMC_HEALTH_DRAINING;
    if (srv->cfg.model == PMC_MODEL_PREFORK &&
        atomic_load(&srv->workers_live) == 0)
        return PMC_HEALTH_NO_WORKERS;
    return PMC_HEALTH_OK;
}

int pmc_health_http_status(pmc_health h)
{
    return h == PMC_HEALTH_OK ? 200 : 503;
}

const char *pmc_health_name(pmc_health h)
{
    switch (h) {
    case PMC_HEALTH_OK:
        return "ok";
    case PMC_HEALTH_DRAINING:
        return "draining";
    case PMC_HEALTH_NO_WORKERS:
        return "no workers";
    default:
        return "stopped";
    }
}

/* ---- Prometheus text ---------------------------------------------------- */

/* Reply codes by what they mean to an operator: the verdicts, then the
 * modifications.  Codes not listed (negotiation, setsymlist) are not
 * series. */
static const struct {
    char code;
    const char *name;
} verdicts[] = {
    {'c', "continue"}, {'a', "accept"}, {'r', "reject"},  {'t', "tempfail"},
    {'d', "discard"},  {'y', "reply"},  {'s', "skip"},
}, mods[] = {
    {'h', "add_header"}, {'i', "insert_header"}, {'m', "change_header"},
    {'+', "add_rcpt"},   {'2', "add_rcpt_par"},  {'-', "delete_rcpt"},
    {'b', "replace_body"}, {'e', "change_from"}, {'q', "quarantine"},
    {'p', "progress"},
};

static const char *const end_names[PMC_END_COUNT] = {
    "quit", "eof", "reset", "timeout", "protocol_error", "shutdown",
};

typedef struct out {
    pmc_buf *b;
    pmc_status st;
} out;

static void put(out *o, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    int n;

    if (o->st != PMC_OK)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        n = (int)strlen(line); /* names are short: never cut in practice */
    o->st = pmc_buf_append(o->b, line, (size_t)n);
}

static void head(out *o, const char *name, const char *type,
                 const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(out *o, const char *name, const char *type,
                const char *help, uint64_t v)
{
    head(o, name, type, help);
    put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void seconds(out *o, uint64_t ns)
{
    put(o, "%llu.%09llu", (unsigned long long)(ns / 1000000000u),
        (unsigned long long)(ns % 1000000000u));
}

static void latency(out *o, const pmc_server_stats *st)
{
    const char *n = "pmcore_callback_duration_seconds";

    head(o, n, "histogram", "Time the milter's callbacks took.");
    for (int ev = 0; ev < PMC_EV_COUNT; ev++) {
        const char *cb = pmc_event_name((pmc_event)ev);
        uint64_t cum = 0;

        if (st->cb_count[ev] == 0)
            continue;
        for (int i = 0; i < PMC_LATENCY_BUCKETS; i++) {
            cum += st->cb_hist[ev][i];
            put(o, "%s_bucket{callback=\"%s\",le=\"", n, cb);
            if (i < PMC_LATENCY_BUCKETS - 1)
                seconds(o, pmc_latency_bounds_ns[i]);
            else
                put(o, "+Inf");
            put(o, "\"} %llu\n", (unsigned long long)cum);
        }
        put(o, "%s_sum{callback=\"%s\"} ", n, cb);
        seconds(o, st->cb_ns_sum[ev]);
        put(o, "\n%s_count{callback=\"%s\"} %llu\n", n, cb,
            (unsigned long long)st->cb_count[ev]);
    }
}

pmc_status pmc_server_metrics_text(pmc_server *srv, pmc_buf *b)
{
    pmc_server_stats st;
    out o = {b, PMC_OK};
    size_t i;

    pmc_server_stats_get(srv, &st);
    one(&o, "pmcore_connections_accepted_total", "counter",
        "Connections accepted.", st.conn_accepted);
    one(&o, "pmcore_connections_active", "gauge",
        "Connections open now.", st.conn_active);
    one(&o, "pmcore_connections_refused_total", "counter",
        "Connections closed at once (out of memory, fork failed).",
        st.conn_refused);
    head(&o, "pmcore_connections_closed_total", "counter",
         "Connections closed, by why.");
    for (i = 0; i < PMC_END_COUNT; i++)
        put(&o, "pmcore_connections_closed_total{reason=\"%s\"} %llu\n",
            end_names[i], (unsigned long long)st.conn_ended[i]);
    one(&o, "pmcore_accept_errors_total", "counter", "Failed accept calls.",
        st.accept_errors);
    one(&o, "pmcore_messages_total", "counter",
        "Messages that reached end of message.", st.messages);
    head(&o, "pmcore_verdicts_total", "counter",
         "Verdicts sent to the MTA, by kind.");
    for (i = 0; i < sizeof verdicts / sizeof *verdicts; i++)
        put(&o, "pmcore_verdicts_total{verdict=\"%s\"} %llu\n",
            verdicts[i].name,
            (unsigned long long)st.replies[(int)verdicts[i].code]);
    head(&o, "pmcore_modifications_total", "counter",
         "Modifications sent to the MTA, by kind.");
    for (i = 0; i < sizeof mods / sizeof *mods; i++)
        put(&o, "pmcore_modifications_total{kind=\"%s\"} %llu\n",
            mods[i].name, (unsigned long long)st.replies[(int)mods[i].code]);
    one(&o, "pmcore_callback_errors_total", "counter",
        "Callbacks that returned something that is not a verdict.",
        st.callback_errors);
    one(&o, "pmcore_protocol_errors_total", "counter",
        "Conversations ended by bad input from the MTA.",
        st.protocol_errors);
    head(&o, "pmcore_negotiations_total", "counter",
         "Negotiations, by the protocol version the MTA offered.");
    for (i = 2; i < 8; i++) /* "7": 7 or above */
        put(&o, "pmcore_negotiations_total{mta_version=\"%zu\"} %llu\n", i,
            (unsigned long long)st.negotiations[i]);
    latency(&o, &st);
    one(&o, "pmcore_captures_total", "counter",
        "Conversations written to capture files (PMCORE_CAPTURE).",
        st.captures);
    one(&o, "pmcore_capture_dropped_total", "counter",
        "Captures given up because a write failed (a full disk).",
        st.capture_dropped);
    one(&o, "pmcore_workers_spawned_total", "counter",
        "Worker and child processes started.", st.workers_spawned);
    one(&o, "pmcore_workers_exited_total", "counter",
        "Worker and child processes that ended.", st.workers_exited);
    put(&o, "# HELP pmcore_health 1 while the server is healthy (the answer "
            "of GET /health).\n# TYPE pmcore_health gauge\n"
            "pmcore_health %d\n",
        pmc_server_health(srv) == PMC_HEALTH_OK);
    return o.st;
}
