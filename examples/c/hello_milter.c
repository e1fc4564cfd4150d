/*
 * hello_milter - a complete milter written in C on libpmcore.
 *
 * It adds "X-Hello: world" to every message and rejects the recipient
 * <nobody@example.com> with 550 5.1.1.  It serves on the socket spec given
 * on the command line and stops cleanly on SIGTERM or SIGINT, letting
 * messages in flight finish (10 s at most).
 *
 *   cc -std=c11 -Ilibpmcore/include examples/c/hello_milter.c \
 *      build/libpmcore.a -pthread -o hello_milter
 *   ./hello_milter unix:/run/hello.sock        (or inet:8890@127.0.0.1)
 *
 * Postfix: smtpd_milters = unix:/run/hello.sock
 * Sendmail: INPUT_MAIL_FILTER(`hello', `S=unix:/run/hello.sock')
 *
 * The library installs no signal handler: this program installs its own
 * and calls pmc_server_stop, which is async-signal-safe.
 */
#define _POSIX_C_SOURCE 200809L
#include "pmcore.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a signal handler may reach: set before the handlers go in. */
static pmc_server *volatile the_server;

static void on_signal(int sig)
{
    (void)sig;
    if (the_server)
        pmc_server_stop(the_server, 10000);
}

/* Per-connection state: what conn_open returns is every handler's 'ud'. */
typedef struct conn {
    unsigned messages;
} conn;

static void *conn_open(void *app, const pmc_conn_info *ci)
{
    (void)app;
    (void)ci;
    return calloc(1, sizeof(conn)); /* NULL is allowed too */
}

static void conn_close(void *app, void *ud)
{
    (void)app;
    free(ud);
}

static int envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    (void)ud;
    /* argv[0] is the address as the MTA sent it, usually with <>. */
    if (args->argv[0].len == 20 &&
        memcmp(args->argv[0].ptr, "<nobody@example.com>", 20) == 0) {
        pmc_session_setreply(s, "550", "5.1.1", "No such user here");
        return PMC_REJECT; /* this recipient only; the message goes on */
    }
    return PMC_CONTINUE;
}

static int eom(pmc_session *s, void *ud)
{
    conn *c = ud;
    pmc_str name = {"X-Hello", 7}, value = {"world", 5};

    if (c)
        c->messages++;
    /* Modifications are allowed only here, at the end of the message. */
    pmc_session_addheader(s, name, value);
    return PMC_CONTINUE;
}

/* Lines from the server: protocol errors, timeouts, back-off. */
static void log_line(void *app, int level, uint64_t conn_id,
                     const char *queue_id, const char *msg)
{
    (void)app;
    fprintf(stderr, "hello_milter[%d] conn %llu%s%s: %s\n", level,
            (unsigned long long)conn_id, queue_id ? " queue " : "",
            queue_id ? queue_id : "", msg);
}

int main(int argc, char **argv)
{
    /* Only the events we handle are asked for: the session derives the
     * protocol's "do not send" bits from the NULL entries. */
    static const pmc_handlers handlers = {
        .envrcpt = envrcpt,
        .eom = eom,
    };
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_server_stats st;
    pmc_error err;
    struct sigaction sa;
    pmc_status rc;

    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET-SPEC (unix:/path, inet:port@host, "
                        "inet6:port@[addr])\n", argv[0]);
        return 2;
    }
    pmc_server_config_init(&cfg);
    cfg.handlers = &handlers;
    cfg.session.actions = PMC_ACT_ADDHDRS;
    cfg.conn_open = conn_open;
    cfg.conn_close = conn_close;
    cfg.log = log_line;
    cfg.model = PMC_MODEL_LOOP; /* handlers here never block */

    srv = pmc_server_new(&cfg, &err);
    if (!srv) {
        fprintf(stderr, "hello_milter: %s\n", err.message);
        return 1;
    }
    if (pmc_server_listen(srv, argv[1], 0660, &err) < 0) {
        fprintf(stderr, "hello_milter: %s\n", err.message);
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
    pmc_server_stats_get(srv, &st);
    fprintf(stderr, "hello_milter: %llu connections, %llu messages%s%s\n",
            (unsigned long long)st.conn_accepted,
            (unsigned long long)st.messages, rc == PMC_OK ? "" : "; ",
            rc == PMC_OK ? "" : err.message);
    pmc_server_free(srv);
    return rc == PMC_OK ? 0 : 1;
}
