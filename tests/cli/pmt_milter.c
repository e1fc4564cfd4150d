/*
 * pmt_milter - the milter pmilter-test's suite talks to.  It asks for every
 * event and every action, and what it does is chosen by the message:
 *
 *   MAIL FROM containing "spammer"   550 5.7.1 at MAIL
 *   RCPT TO <reject@...>             550 5.1.1 for that recipient
 *   RCPT TO <temp@...>               451 4.3.0 for that recipient
 *   Subject containing "discard"     DISCARD at EOM
 *   Subject containing "tempfail"    451 4.7.1 at EOM
 *   Subject containing "reject"      550 5.7.1 at EOM
 *   Subject containing "modify"      every modification (see eom below)
 *   anything else                    X-Pmt-Count: N (messages on this
 *                                    connection) and X-Pmt-Macros: the
 *                                    values of i, j and {daemon_name}
 *   HELO name "bad.example"          554 5.7.1 at HELO
 *
 * With --log FILE it also takes EOH and the body, and appends what it
 * received of each message to FILE, as tests/c/test_client.c records it for
 * the split cases (tests/cli/files/split.cases): "header NAME VALUE" in hex,
 * "eoh", "body HEX" per chunk, "eom".  --leadspc asks for HDR_LEADSPC.
 *
 * --changed is the next version of this milter, changed on purpose for the
 * replay tests (tests/cli/replay.sh): "spammer" is refused with another
 * text, and the default EOM adds X-Pmt-Version: 2 after X-Pmt-Count.
 * When the server captured (PMCORE_CAPTURE), the last line on stderr is
 * "pmt_milter: captures N, dropped M".
 *
 * usage: pmt_milter [--log FILE] [--leadspc] [--changed] SOCKET-SPEC
 *        (prints "listening PORT" for inet:0)
 */
#include "pmcore.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

static pmc_server *volatile the_server;
static int changed;

static void on_signal(int sig)
{
    (void)sig;
    if (the_server)
        pmc_server_stop(the_server, 0);
}

typedef struct conn {
    unsigned messages;
    char subject[256];
} conn;

static pmc_str S(const char *s)
{
    return (pmc_str){s, strlen(s)};
}

static void *conn_open(void *app, const pmc_conn_info *ci)
{
    (void)app;
    (void)ci;
    return calloc(1, sizeof(conn));
}

static void conn_close(void *app, void *ud)
{
    (void)app;
    free(ud);
}

static int has(pmc_str s, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; i + n <= s.len; i++)
        if (memcmp(s.ptr + i, needle, n) == 0)
            return 1;
    return 0;
}

/* Present so CONNECT (and its macros) is sent. */
static int connect_ev(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    (void)s;
    (void)ud;
    (void)ci;
    return PMC_CONTINUE;
}

static int helo(pmc_session *s, void *ud, pmc_str name)
{
    (void)ud;
    if (name.len == 11 && memcmp(name.ptr, "bad.example", 11) == 0) {
        pmc_session_setreply(s, "554", "5.7.1", "bad HELO");
        return PMC_REJECT;
    }
    return PMC_CONTINUE;
}

static int envfrom(pmc_session *s, void *ud, const pmc_args *a)
{
    conn *c = ud;

    c->subject[0] = 0;
    if (has(a->argv[0], "spammer")) {
        pmc_session_setreply(s, "550", "5.7.1",
                             changed ? "sender blocked" : "sender refused");
        return PMC_REJECT;
    }
    return PMC_CONTINUE;
}

static int envrcpt(pmc_session *s, void *ud, const pmc_args *a)
{
    (void)ud;
    if (has(a->argv[0], "<reject@")) {
        pmc_session_setreply(s, "550", "5.1.1", "no such user");
        return PMC_REJECT;
    }
    if (has(a->argv[0], "<temp@")) {
        pmc_session_setreply(s, "451", "4.3.0", "try later");
        return PMC_TEMPFAIL;
    }
    return PMC_CONTINUE;
}

static const char *log_path;

/* One log line: a word, then each string in hex.  The file is opened per
 * line so every line is on disk before the reply that follows it. */
static void log_line(const char *word, const pmc_str *v, size_t n)
{
    FILE *f;

    if (log_path == NULL || (f = fopen(log_path, "ab")) == NULL)
        return;
    fputs(word, f);
    for (size_t i = 0; i < n; i++) {
        fputc(' ', f);
        for (size_t k = 0; k < v[i].len; k++)
            fprintf(f, "%02x", (unsigned char)v[i].ptr[k]);
    }
    fputc('\n', f);
    fclose(f);
}

static int eoh(pmc_session *s, void *ud)
{
    (void)s;
    (void)ud;
    log_line("eoh", NULL, 0);
    return PMC_CONTINUE;
}

static int body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    pmc_str chunk = {(const char *)p, n};

    (void)s;
    (void)ud;
    log_line("body", &chunk, 1);
    return PMC_CONTINUE;
}

static int header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    conn *c = ud;
    pmc_str nv[2] = {name, value};

    (void)s;
    log_line("header", nv, 2);
    if (name.len == 7 && strncasecmp(name.ptr, "Subject", 7) == 0)
        snprintf(c->subject, sizeof c->subject, "%.*s", (int)value.len,
                 value.ptr);
    return PMC_CONTINUE;
}

static void macro(pmc_session *s, const char *name, char *out, size_t n)
{
    pmc_str v;
    size_t len = strlen(out);

    if (pmc_session_getsymval(s, name, strlen(name), &v))
        snprintf(out + len, n - len, "%s%s=%.*s", len ? " " : "", name,
                 (int)v.len, v.ptr);
}

static int eom(pmc_session *s, void *ud)
{
    conn *c = ud;
    pmc_str subj = S(c->subject);
    char buf[600] = "";

    c->messages++;
    log_line("eom", NULL, 0);
    if (has(subj, "discard"))
        return PMC_DISCARD;
    if (has(subj, "tempfail")) {
        pmc_session_setreply(s, "451", "4.7.1", "greylisted");
        return PMC_TEMPFAIL;
    }
    if (has(subj, "reject")) {
        pmc_session_setreply(s, "550", "5.7.1", "content refused");
        return PMC_REJECT;
    }
    if (has(subj, "modify")) {
        pmc_str args = S("NOTIFY=NEVER");
        snprintf(buf, sizeof buf, "[modified] %s", c->subject);
        pmc_session_insheader(s, 0, S("X-Top"), S("first"));
        pmc_session_addheader(s, S("X-Added"), S("yes"));
        pmc_session_chgheader(s, S("Subject"), 1, S(buf));
        pmc_session_chgheader(s, S("X-Remove"), 1, S(""));
        pmc_session_chgfrom(s, S("<new-sender@example.org>"), NULL);
        pmc_session_addrcpt(s, S("<added@example.com>"));
        pmc_session_addrcpt_par(s, S("<added2@example.com>"), &args);
        pmc_session_delrcpt(s, S("<bob@example.com>"));
        pmc_session_quarantine(s, S("held for review"));
        pmc_session_replacebody(s, "replaced body\r\nline 2\r\n", 23);
        return PMC_CONTINUE;
    }
    snprintf(buf, sizeof buf, "%u", c->messages);
    pmc_session_addheader(s, S("X-Pmt-Count"), S(buf));
    if (changed)
        pmc_session_addheader(s, S("X-Pmt-Version"), S("2"));
    buf[0] = 0;
    macro(s, "i", buf, sizeof buf);
    macro(s, "j", buf, sizeof buf);
    macro(s, "{daemon_name}", buf, sizeof buf);
    macro(s, "{if_name}", buf, sizeof buf);
    macro(s, "{rcpt_addr}", buf, sizeof buf);
    if (buf[0])
        pmc_session_addheader(s, S("X-Pmt-Macros"), S(buf));
    return PMC_CONTINUE;
}

static int abort_msg(pmc_session *s, void *ud)
{
    conn *c = ud;

    (void)s;
    c->subject[0] = 0;
    return PMC_CONTINUE;
}

int main(int argc, char **argv)
{
    static pmc_handlers handlers = {
        .connect = connect_ev, .helo = helo, .envfrom = envfrom, .envrcpt = envrcpt,
        .header = header, .eom = eom, .abort = abort_msg,
    };
    int leadspc = 0;
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error err;
    struct sigaction sa;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd;

    for (; argc > 2; argc--, argv++) {
        if (strcmp(argv[1], "--leadspc") == 0) {
            leadspc = 1;
        } else if (strcmp(argv[1], "--changed") == 0) {
            changed = 1;
        } else if (strcmp(argv[1], "--log") == 0 && argc > 3) {
            log_path = argv[2];
            argc--, argv++;
        } else {
            break;
        }
    }
    if (argc != 2) {
        fprintf(stderr, "usage: pmt_milter [--log FILE] [--leadspc] "
                        "[--changed] SOCKET-SPEC\n");
        return 2;
    }
    /* Only the logging milter asks for EOH and the body, so the other
     * tests see the NOEOH and NOBODY they were written against. */
    if (log_path) {
        handlers.eoh = eoh;
        handlers.body = body;
    }
    pmc_server_config_init(&cfg);
    cfg.handlers = &handlers;
    cfg.session.actions = PMC_ACT_ALL & ~PMC_ACT_SETSYMLIST;
    if (leadspc)
        cfg.session.protocol |= PMC_P_HDR_LEADSPC;
    cfg.conn_open = conn_open;
    cfg.conn_close = conn_close;
    srv = pmc_server_new(&cfg, &err);
    if (!srv) {
        fprintf(stderr, "pmt_milter: %s\n", err.message);
        return 1;
    }
    fd = pmc_server_listen(srv, argv[1], 0600, &err);
    if (fd < 0) {
        fprintf(stderr, "pmt_milter: %s\n", err.message);
        return 1;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6))
        printf("listening %u\n",
               ntohs(ss.ss_family == AF_INET
                         ? ((struct sockaddr_in *)&ss)->sin_port
                         : ((struct sockaddr_in6 *)&ss)->sin6_port));
    else
        printf("listening %s\n", argv[1]);
    fflush(stdout);
    the_server = srv;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (pmc_server_run(srv, &err) != PMC_OK)
        fprintf(stderr, "pmt_milter: %s\n", err.message);
    the_server = NULL;
    {
        pmc_server_stats st;
        pmc_server_stats_get(srv, &st);
        if (st.captures || st.capture_dropped)
            fprintf(stderr, "pmt_milter: captures %llu, dropped %llu\n",
                    (unsigned long long)st.captures,
                    (unsigned long long)st.capture_dropped);
    }
    pmc_server_free(srv);
    return 0;
}
