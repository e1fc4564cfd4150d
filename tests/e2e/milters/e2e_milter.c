/*
 * e2e_milter - the C milter of the end-to-end suite, on libpmcore's own
 * server API (no binding involved).
 *
 *   e2e_milter SOCKET CTLDIR
 *
 * Each message says what the milter does to it; tests/e2e/README.md is the
 * contract it shares with e2e_milter.pl and e2e_milter.py.  It has every
 * mode the Sendmail suite uses; the modes a C program cannot have (dying)
 * and the ones only the Postfix suite asks for (macros, echo8, slow) are
 * left out.  SIGTERM or SIGINT stops it after the messages in flight.
 */
#define _POSIX_C_SOURCE 200809L
#include "pmcore.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LANG "c"
#define MAX_RCPTS 128
#define MAX_LIST 4096

static pmc_server *volatile the_server;
static const char *ctl_dir;

static void on_signal(int sig)
{
    (void)sig;
    if (the_server)
        pmc_server_stop(the_server, 10000);
}

/* One SMTP connection; the message fields are reset at MAIL and ABORT. */
typedef struct conn {
    unsigned done;
    char modes[MAX_LIST];       /* the X-E2E-Mode values, space-separated */
    char seen[MAX_LIST];        /* header names, comma-separated */
    char *rcpts[MAX_RCPTS];     /* as the MTA sent them, with <> */
    size_t nrcpts;
} conn;

static pmc_str S(const char *s)
{
    return (pmc_str){s, strlen(s)};
}

static void new_message(conn *c)
{
    for (size_t i = 0; i < c->nrcpts; i++)
        free(c->rcpts[i]);
    c->nrcpts = 0;
    c->modes[0] = c->seen[0] = '\0';
}

static void append(char *list, const char *sep, const char *p, size_t n)
{
    size_t len = strlen(list);

    if (len + strlen(sep) + n + 1 > MAX_LIST)
        return;
    if (len)
        strcat(list, sep);
    strncat(list, p, n);
}

/* The local part of an address with or without <>, into buf. */
static const char *local_part(pmc_str a, char *buf, size_t size)
{
    size_t i = 0, n = 0;

    if (a.len && a.ptr[0] == '<')
        i = 1;
    while (i < a.len && a.ptr[i] != '@' && a.ptr[i] != '>' && n + 1 < size)
        buf[n++] = a.ptr[i++];
    buf[n] = '\0';
    return buf;
}

/* "reject" or "tempfail" for PREFIX-reject..., else NULL. */
static const char *verdict_of(const char *text, const char *prefix)
{
    static const char *verbs[] = {"reject", "tempfail", "discard"};
    size_t n = strlen(prefix);

    if (strncmp(text, prefix, n) != 0 || text[n] != '-')
        return NULL;
    for (size_t i = 0; i < sizeof verbs / sizeof *verbs; i++)
        if (strncmp(text + n + 1, verbs[i], strlen(verbs[i])) == 0)
            return verbs[i];
    return NULL;
}

static int refuse(pmc_session *s, const char *stage, const char *verb)
{
    char first[128];
    const char *lines[2] = {first, "second line from " LANG};
    int reject = strcmp(verb, "reject") == 0;

    if (strcmp(verb, "discard") == 0)
        return PMC_DISCARD;
    snprintf(first, sizeof first, "e2e " LANG " %ss at %s", verb, stage);
    pmc_session_setmlreply(s, reject ? "550" : "451",
                           reject ? "5.7.1" : "4.7.1", lines, 2);
    return reject ? PMC_REJECT : PMC_TEMPFAIL;
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
    if (ud)
        new_message(ud);
    free(ud);
}

static int connect_ev(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    char path[4096], verb[32] = "";
    FILE *f;

    (void)ud;
    (void)ci;
    snprintf(path, sizeof path, "%s/connect", ctl_dir);
    f = fopen(path, "r");
    if (!f)
        return PMC_CONTINUE;
    if (fscanf(f, "%31s", verb) != 1)
        verb[0] = '\0';
    fclose(f);
    return verb[0] ? refuse(s, "connect", verb) : PMC_CONTINUE;
}

static int helo(pmc_session *s, void *ud, pmc_str name)
{
    char buf[256];
    const char *verb;

    (void)ud;
    snprintf(buf, sizeof buf, "%.*s", (int)name.len, name.ptr);
    verb = verdict_of(buf, "helo");
    return verb ? refuse(s, "helo", verb) : PMC_CONTINUE;
}

static int envfrom(pmc_session *s, void *ud, const pmc_args *args)
{
    char lp[256];
    const char *verb;

    if (!ud)
        return PMC_TEMPFAIL;
    new_message(ud);
    verb = verdict_of(local_part(args->argv[0], lp, sizeof lp), "mail");
    return verb ? refuse(s, "mail", verb) : PMC_CONTINUE;
}

static int envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    conn *c = ud;
    char lp[256];
    const char *verb;

    verb = verdict_of(local_part(args->argv[0], lp, sizeof lp), "rcpt");
    if (verb)
        return refuse(s, "rcpt", verb);
    if (c->nrcpts < MAX_RCPTS)
        c->rcpts[c->nrcpts++] = strndup(args->argv[0].ptr, args->argv[0].len);
    return PMC_CONTINUE;
}

static int header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    conn *c = ud;

    (void)s;
    append(c->seen, ",", name.ptr, name.len);
    if (name.len == 10 && strncasecmp(name.ptr, "X-E2E-Mode", 10) == 0)
        append(c->modes, " ", value.ptr, value.len);
    return PMC_CONTINUE;
}

static int abort_ev(pmc_session *s, void *ud)
{
    (void)s;
    new_message(ud);
    return PMC_CONTINUE;
}

/* What body=SIZE puts in: make_body in tests/e2e/harness.py. */
static void replace_body(pmc_session *s, size_t size)
{
    char rep[94 * 12];
    size_t total = 0, k = 0, n;

    for (size_t i = 0; i < sizeof rep; i++)
        rep[i] = (char)(33 + i % 94);
    while (size - total > 1000) {
        n = 10 + (k * 37) % 900;
        pmc_session_replacebody(s, rep + k % 94, n);
        pmc_session_replacebody(s, "\r\n", 2);
        total += n + 2;
        k++;
    }
    pmc_session_replacebody(s, rep + k % 94, size - total - 2);
    pmc_session_replacebody(s, "\r\n", 2);
}

static void apply(pmc_session *s, conn *c, const char *mode)
{
    const char *arg = strchr(mode, '=');
    size_t n = arg ? (size_t)(arg - mode) : strlen(mode);
    char buf[512], lp[256];

    arg = arg ? arg + 1 : "";
#define IS(name) (n == strlen(name) && strncmp(mode, name, n) == 0)
    if (IS("addhdr")) {
        pmc_session_addheader(s, S("X-Added"), S("added by " LANG));
    } else if (IS("inshdr")) {
        pmc_session_insheader(s, (uint32_t)atoi(arg), S("X-Inserted"),
                              S("inserted by " LANG));
    } else if (IS("chghdr")) {
        pmc_session_chgheader(s, S("Subject"), 1, S("changed by " LANG));
    } else if (IS("delhdr")) {
        pmc_session_chgheader(s, S("X-Drop"), 2, S(""));
    } else if (IS("body")) {
        replace_body(s, (size_t)atol(arg));
    } else if (IS("addrcpt")) {
        for (int i = 1; i <= atoi(arg); i++) {
            snprintf(buf, sizeof buf, "<added-%03d@sink.test>", i);
            pmc_session_addrcpt(s, S(buf));
        }
    } else if (IS("addrcpt_par")) {
        pmc_str args;
        snprintf(buf, sizeof buf, "%s", arg);
        for (char *p = buf; *p; p++)
            if (*p == '+')
                *p = ' ';
        args = S(buf);
        pmc_session_addrcpt_par(s, S("<par@sink.test>"), &args);
    } else if (IS("delrcpt")) {
        for (size_t i = 0; i < c->nrcpts; i++)
            if (strncmp(local_part(S(c->rcpts[i]), lp, sizeof lp), "del-",
                        4) == 0)
                pmc_session_delrcpt(s, S(c->rcpts[i]));
    } else if (IS("chgfrom")) {
        snprintf(buf, sizeof buf, "<%s>", arg);
        pmc_session_chgfrom(s, S(buf), NULL);
    } else if (IS("quarantine")) {
        pmc_session_quarantine(s, S("e2e " LANG " quarantine"));
    } else if (IS("seen")) {
        pmc_session_addheader(s, S("X-E2E-Seen"), S(c->seen));
    }
#undef IS
}

static int eom(pmc_session *s, void *ud)
{
    conn *c = ud;
    char modes[MAX_LIST], line[MAX_LIST + 64], lp[256];
    const char *verb;
    char *save, *m;

    snprintf(modes, sizeof modes, "%s", c->modes);
    for (m = strtok_r(modes, " \t", &save); m; m = strtok_r(NULL, " \t", &save))
        if ((verb = verdict_of(m, "eom")))
            return refuse(s, "eom", verb);
    snprintf(modes, sizeof modes, "%s", c->modes);
    for (m = strtok_r(modes, " \t", &save); m; m = strtok_r(NULL, " \t", &save))
        apply(s, c, m);
    c->done++;
    snprintf(line, sizeof line, LANG " msg=%u rcpts=", c->done);
    for (size_t i = 0; i < c->nrcpts; i++) {
        local_part(S(c->rcpts[i]), lp, sizeof lp);
        append(line, i ? "," : "", lp, strlen(lp));
    }
    pmc_session_addheader(s, S("X-E2E-Milter"), S(line));
    return PMC_CONTINUE;
}

static void log_line(void *app, int level, uint64_t conn_id,
                     const char *queue_id, const char *msg)
{
    (void)app;
    fprintf(stderr, "e2e_milter[%d] conn %llu%s%s: %s\n", level,
            (unsigned long long)conn_id, queue_id ? " queue " : "",
            queue_id ? queue_id : "", msg);
}

int main(int argc, char **argv)
{
    static const pmc_handlers handlers = {
        .connect = connect_ev, .helo = helo, .envfrom = envfrom,
        .envrcpt = envrcpt, .header = header, .abort = abort_ev, .eom = eom,
    };
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error err;
    struct sigaction sa;
    pmc_status rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKET-SPEC CTLDIR\n", argv[0]);
        return 2;
    }
    ctl_dir = argv[2];
    pmc_server_config_init(&cfg);
    cfg.handlers = &handlers;
    cfg.session.actions = PMC_ACT_ALL & ~PMC_ACT_SETSYMLIST;
    cfg.conn_open = conn_open;
    cfg.conn_close = conn_close;
    cfg.log = log_line;
    srv = pmc_server_new(&cfg, &err);
    /* 0666: Postfix's smtpd runs as user postfix. */
    if (!srv || pmc_server_listen(srv, argv[1], 0666, &err) < 0) {
        fprintf(stderr, "e2e_milter: %s\n", err.message);
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
        fprintf(stderr, "e2e_milter: %s\n", err.message);
    pmc_server_free(srv);
    return rc == PMC_OK ? 0 : 1;
}
