/*
 * The trivial benchmark milter on libpmcore's server: a handler for every
 * event, each answering CONTINUE, and "X-PMC-Bench: yes" added at EOM.
 * Its twin on Sendmail's libmilter is milter_libmilter.c; both must do the
 * same work for the comparison to mean anything.
 *
 * usage: milter_pmcore SPEC [--noreply] [--model loop|threads|prefork|fork]
 *                           [--workers N] [--lead US] [--reject]
 *   --noreply  negotiate no-reply for every step but EOM (rspamd style)
 *   --model    server model (default loop); --workers sets the prefork
 *              process count or the thread pool size
 *   --reject   reject every recipient (the driver's own test uses it)
 * SIGTERM or SIGINT stops it at once.
 */
#define _POSIX_C_SOURCE 200809L
#include "pmcore.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pmc_server *volatile the_server;
static int verdict = PMC_CONTINUE; /* PMC_NOREPLY under --noreply */
static int reject_rcpt;

static void on_signal(int sig)
{
    (void)sig;
    if (the_server)
        pmc_server_stop(the_server, 0);
}

static int on_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    (void)s, (void)ud, (void)ci;
    return verdict;
}

static int on_helo(pmc_session *s, void *ud, pmc_str helo)
{
    (void)s, (void)ud, (void)helo;
    return verdict;
}

static int on_envfrom(pmc_session *s, void *ud, const pmc_args *args)
{
    (void)s, (void)ud, (void)args;
    return verdict;
}

static int on_envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    (void)s, (void)ud, (void)args;
    return reject_rcpt ? PMC_REJECT : verdict;
}

static int on_data(pmc_session *s, void *ud)
{
    (void)s, (void)ud;
    return verdict;
}

static int on_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    (void)s, (void)ud, (void)name, (void)value;
    return verdict;
}

static int on_eoh(pmc_session *s, void *ud)
{
    (void)s, (void)ud;
    return verdict;
}

static int on_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    (void)s, (void)ud, (void)p, (void)n;
    return verdict;
}

static int on_eom(pmc_session *s, void *ud)
{
    static const pmc_str name = {"X-PMC-Bench", 11}, value = {"yes", 3};

    (void)ud;
    pmc_session_addheader(s, name, value);
    return PMC_CONTINUE;
}

static int on_abort(pmc_session *s, void *ud)
{
    (void)s, (void)ud;
    return PMC_CONTINUE;
}

static int on_close(pmc_session *s, void *ud)
{
    (void)s, (void)ud;
    return PMC_CONTINUE;
}

static int on_unknown(pmc_session *s, void *ud, pmc_str cmd)
{
    (void)s, (void)ud, (void)cmd;
    return verdict;
}

static void log_line(void *app, int level, uint64_t conn_id,
                     const char *queue_id, const char *msg)
{
    (void)app, (void)queue_id;
    fprintf(stderr, "milter_pmcore[%d] conn %llu: %s\n", level,
            (unsigned long long)conn_id, msg);
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s SPEC [--noreply] [--model loop|threads|"
                    "prefork|fork] [--workers N] [--lead US] [--reject]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv)
{
    static const pmc_handlers handlers = {
        .connect = on_connect, .helo = on_helo, .envfrom = on_envfrom,
        .envrcpt = on_envrcpt, .data = on_data, .header = on_header,
        .eoh = on_eoh, .body = on_body, .eom = on_eom, .abort = on_abort,
        .close = on_close, .unknown = on_unknown,
    };
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error err;
    struct sigaction sa;
    pmc_status rc;
    unsigned workers = 0;

    if (argc < 2 || argv[1][0] == '-')
        return usage(argv[0]);
    pmc_server_config_init(&cfg);
    cfg.handlers = &handlers;
    cfg.session.actions = PMC_ACT_ADDHDRS;
    cfg.log = log_line;
    cfg.log_level = PMC_LOG_WARNING;
    cfg.model = PMC_MODEL_LOOP;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--noreply") == 0) {
            verdict = PMC_NOREPLY;
            cfg.session.protocol = PMC_P_NR_MASK;
        } else if (strcmp(argv[i], "--reject") == 0) {
            reject_rcpt = 1;
        } else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            const char *m = argv[++i];
            if (strcmp(m, "loop") == 0) cfg.model = PMC_MODEL_LOOP;
            else if (strcmp(m, "threads") == 0) cfg.model = PMC_MODEL_THREADS;
            else if (strcmp(m, "prefork") == 0) cfg.model = PMC_MODEL_PREFORK;
            else if (strcmp(m, "fork") == 0) cfg.model = PMC_MODEL_FORK;
            else return usage(argv[0]);
        } else if (strcmp(argv[i], "--lead") == 0 && i + 1 < argc) {
            cfg.pool_lead_us = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = (unsigned)strtoul(argv[++i], NULL, 10);
        } else {
            return usage(argv[0]);
        }
    }
    cfg.threads = workers;
    cfg.workers = workers;

    srv = pmc_server_new(&cfg, &err);
    if (!srv) {
        fprintf(stderr, "milter_pmcore: %s\n", err.message);
        return 1;
    }
    if (pmc_server_listen(srv, argv[1], 0600, &err) < 0) {
        fprintf(stderr, "milter_pmcore: %s\n", err.message);
        pmc_server_free(srv);
        return 1;
    }
    the_server = srv;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    rc = pmc_server_run(srv, &err);
    the_server = NULL;
    if (rc != PMC_OK)
        fprintf(stderr, "milter_pmcore: %s\n", err.message);
    pmc_server_free(srv);
    return rc == PMC_OK ? 0 : 1;
}
