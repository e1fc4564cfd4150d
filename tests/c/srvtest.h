/* Helpers shared by the server test programs: a small milter, a server on
 * its own thread, and MTA-side connections through pmc_client. */
#ifndef SRVTEST_H
#define SRVTEST_H

#define _GNU_SOURCE
#include "pmcore.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

/* Not every program uses every helper. */
#define SRVTEST_UNUSED __attribute__((unused))

SRVTEST_UNUSED static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

SRVTEST_UNUSED static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

SRVTEST_UNUSED static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* --- the milter --- */

typedef struct app {
    atomic_int opens, closes, connects, eoms, aborts, close_h, helos;
    atomic_int slow_ms;   /* helo "slow" sleeps this long */
    atomic_int eom_ms;    /* eom sleeps this long */
    int pipe_w;           /* child hooks and conn_open write here, or -1 */
    atomic_int order_bad; /* events seen out of order */
    atomic_int big_body;  /* eom replaces the body with this many bytes */
} app;

typedef struct cud {
    app *a;
    int last;             /* last event, to check ordering */
} cud;

SRVTEST_UNUSED static void note(cud *u, int ev)
{
    /* Within a message events only move forward; MAIL starts over. */
    if (ev != PMC_EV_ENVFROM && ev < u->last)
        atomic_fetch_add(&u->a->order_bad, 1);
    u->last = ev;
}

SRVTEST_UNUSED static void pipe_note(app *a, char tag)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%c%ld\n", tag, (long)getpid());

    if (a->pipe_w >= 0 && write(a->pipe_w, buf, (size_t)n) < 0)
        perror("write");
}

SRVTEST_UNUSED static void *h_open(void *ap, const pmc_conn_info *ci)
{
    app *a = ap;
    cud *u = calloc(1, sizeof *u);

    (void)ci;
    if (!u)
        abort();
    u->a = a;
    atomic_fetch_add(&a->opens, 1);
    pipe_note(a, 'o');
    return u;
}

SRVTEST_UNUSED static void h_close_conn(void *ap, void *ud)
{
    app *a = ap;

    atomic_fetch_add(&a->closes, 1);
    free(ud);
}

SRVTEST_UNUSED
static int h_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    cud *u = ud;

    (void)s;
    (void)ci;
    note(u, PMC_EV_CONNECT);
    atomic_fetch_add(&u->a->connects, 1);
    return PMC_CONTINUE;
}

SRVTEST_UNUSED static int h_helo(pmc_session *s, void *ud, pmc_str helo)
{
    cud *u = ud;

    (void)s;
    note(u, PMC_EV_HELO);
    atomic_fetch_add(&u->a->helos, 1);
    if (helo.len == 4 && !memcmp(helo.ptr, "slow", 4))
        sleep_ms(atomic_load(&u->a->slow_ms));
    return PMC_CONTINUE;
}

SRVTEST_UNUSED
static int h_envfrom(pmc_session *s, void *ud, const pmc_args *args)
{
    (void)s;
    (void)args;
    note(ud, PMC_EV_ENVFROM);
    return PMC_CONTINUE;
}

SRVTEST_UNUSED
static int h_envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    note(ud, PMC_EV_ENVRCPT);
    if (strstr(args->argv[0].ptr, "bad")) {
        pmc_session_setreply(s, "550", "5.1.1", "no such user");
        return PMC_REJECT;
    }
    return PMC_CONTINUE;
}

SRVTEST_UNUSED
static int h_header(pmc_session *s, void *ud, pmc_str n, pmc_str v)
{
    (void)s;
    (void)n;
    (void)v;
    note(ud, PMC_EV_HEADER);
    return PMC_CONTINUE;
}

SRVTEST_UNUSED static int h_eoh(pmc_session *s, void *ud)
{
    (void)s;
    note(ud, PMC_EV_EOH);
    return PMC_CONTINUE;
}

SRVTEST_UNUSED
static int h_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    (void)s;
    (void)p;
    (void)n;
    note(ud, PMC_EV_BODY);
    return PMC_CONTINUE;
}

SRVTEST_UNUSED static int h_eom(pmc_session *s, void *ud)
{
    cud *u = ud;
    pmc_str n = {"X-Pmc", 5}, v = {"yes", 3};
    int ms = atomic_load(&u->a->eom_ms);

    note(u, PMC_EV_EOM);
    if (ms)
        sleep_ms(ms);
    pmc_session_addheader(s, n, v);
    if (atomic_load(&u->a->big_body)) {
        size_t left = (size_t)atomic_load(&u->a->big_body);
        static const char chunk[8192] = {'x'};
        while (left) {
            size_t k = left < sizeof chunk ? left : sizeof chunk;
            pmc_session_replacebody(s, chunk, k);
            left -= k;
        }
    }
    atomic_fetch_add(&u->a->eoms, 1);
    return PMC_CONTINUE;
}

SRVTEST_UNUSED static int h_abort(pmc_session *s, void *ud)
{
    cud *u = ud;

    (void)s;
    atomic_fetch_add(&u->a->aborts, 1);
    u->last = 0;
    return PMC_CONTINUE;
}

SRVTEST_UNUSED static int h_close(pmc_session *s, void *ud)
{
    cud *u = ud;

    (void)s;
    atomic_fetch_add(&u->a->close_h, 1);
    return PMC_CONTINUE;
}

static const pmc_handlers handlers = {
    .connect = h_connect,
    .helo = h_helo,
    .envfrom = h_envfrom,
    .envrcpt = h_envrcpt,
    .header = h_header,
    .eoh = h_eoh,
    .body = h_body,
    .eom = h_eom,
    .abort = h_abort,
    .close = h_close,
};

/* SRVTEST_LOG=1 prints the server's log lines, for debugging. */
SRVTEST_UNUSED static void log_stderr(void *ap, int level, uint64_t conn,
                                      const char *qid, const char *msg)
{
    (void)ap;
    fprintf(stderr, "# [%ld] <%d> conn %llu %s: %s\n", (long)getpid(), level,
            (unsigned long long)conn, qid ? qid : "-", msg);
}

/* pool_lead_us for the THREADS runs in lead mode. */
static unsigned srvtest_lead_us;

SRVTEST_UNUSED static void base_config(pmc_server_config *cfg, app *a)
{
    pmc_server_config_init(cfg);
    cfg->pool_lead_us = srvtest_lead_us;
    cfg->handlers = &handlers;
    cfg->app = a;
    cfg->session.actions = PMC_ACT_ADDHDRS;
    cfg->conn_open = h_open;
    cfg->conn_close = h_close_conn;
    if (getenv("SRVTEST_LOG")) {
        cfg->log = log_stderr;
        cfg->log_level = PMC_LOG_DEBUG;
    }
    a->pipe_w = -1;
}

/* --- a server on its own thread --- */

typedef struct tsrv {
    pmc_server *srv;
    pthread_t th;
    pmc_status rc;
    pmc_error err;
    int running;
} tsrv;

SRVTEST_UNUSED static void *srv_thread(void *p)
{
    tsrv *t = p;

    t->rc = pmc_server_run(t->srv, &t->err);
    return NULL;
}

/* Start a server on 'spec'; returns the listening fd or -1. */
SRVTEST_UNUSED
static int srv_start(tsrv *t, const pmc_server_config *cfg, const char *spec)
{
    pmc_error e;
    int fd;

    memset(t, 0, sizeof *t);
    t->srv = pmc_server_new(cfg, &e);
    if (!t->srv) {
        DIAG("pmc_server_new: %s", e.message);
        return -1;
    }
    fd = pmc_server_listen(t->srv, spec, 0, &e);
    if (fd < 0) {
        DIAG("pmc_server_listen: %s", e.message);
        pmc_server_free(t->srv);
        t->srv = NULL;
        return -1;
    }
    if (pthread_create(&t->th, NULL, srv_thread, t) != 0)
        abort();
    t->running = 1;
    return fd;
}

SRVTEST_UNUSED static pmc_status srv_stop(tsrv *t, int drain_ms)
{
    if (!t->srv)
        return PMC_ERR_ARGUMENT;
    if (t->running) {
        pmc_server_stop(t->srv, drain_ms);
        pthread_join(t->th, NULL);
        t->running = 0;
    }
    pmc_server_free(t->srv);
    t->srv = NULL;
    return t->rc;
}

SRVTEST_UNUSED static uint16_t port_of(int lfd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;

    if (getsockname(lfd, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    if (sa.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&sa)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

/* --- the MTA side --- */

SRVTEST_UNUSED static int dial_unix(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

SRVTEST_UNUSED static int dial_inet(const char *addr, uint16_t port)
{
    struct sockaddr_storage sa;
    socklen_t len;
    int fd, one = 1;

    memset(&sa, 0, sizeof sa);
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (void *)&sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        len = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (void *)&sa;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, addr, &s4->sin_addr);
        len = sizeof *s4;
    }
    fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

typedef struct cli {
    int fd;
    pmc_fd_transport_state st;
    pmc_transport tr;
    pmc_client *c;
} cli;

/* Wrap a connected fd (owned by the cli afterwards). */
SRVTEST_UNUSED static cli *cli_new(int fd, int timeout_ms)
{
    cli *k = calloc(1, sizeof *k);

    if (!k)
        abort();
    k->fd = fd;
    pmc_transport_fd(&k->tr, &k->st, fd, timeout_ms);
    k->c = pmc_client_new(NULL, &k->tr);
    if (!k->c)
        abort();
    return k;
}

SRVTEST_UNUSED static void cli_free(cli *k)
{
    if (!k)
        return;
    pmc_client_free(k->c);
    if (k->fd >= 0)
        close(k->fd);
    free(k);
}

SRVTEST_UNUSED static pmc_str S(const char *s)
{
    pmc_str r = {s, strlen(s)};
    return r;
}

static const char MSG[] = "From: a@example.org\r\nTo: b@example.org\r\n"
                          "Subject: hi\r\n\r\nHello.\r\n";

/* Negotiate, CONNECT and HELO. */
SRVTEST_UNUSED static pmc_status cli_hello(cli *k, const char *helo)
{
    pmc_result r;
    pmc_status st = pmc_client_negotiate(k->c, &r);

    if (st == PMC_OK)
        st = pmc_client_connect(k->c, "mta.example", '4', 25, "192.0.2.1",
                                &r);
    if (st == PMC_OK)
        st = pmc_client_helo(k->c, helo, &r);
    return st;
}

/* One message with a good and a bad recipient; returns the EOM code and
 * sets *hdr when the X-Pmc header came back. */
SRVTEST_UNUSED static int cli_message(cli *k, int *hdr)
{
    pmc_result r;
    pmc_str rc[2] = {S("<good@example.org>"), S("<bad@example.org>")};
    pmc_status st = pmc_client_message(k->c, S("<a@example.org>"), rc, 2,
                                       MSG, strlen(MSG), &r);

    if (hdr) {
        *hdr = 0;
        for (size_t i = 0; st == PMC_OK && i < r.nmods; i++)
            if (r.mods[i].code == 'h' && r.mods[i].a.len == 5)
                *hdr = 1;
    }
    if (st != PMC_OK) {
        const pmc_error *e = pmc_client_error(k->c);
        DIAG("client: %s: %s", pmc_status_name(st), e ? e->message : "?");
        return -1;
    }
    return r.code;
}

/* A whole conversation on a fresh connection; returns the EOM code. */
SRVTEST_UNUSED static int full_conv(int fd, int *hdr)
{
    cli *k = cli_new(fd, 5000);
    int code = cli_hello(k, "mta.example") == PMC_OK ? cli_message(k, hdr)
                                                     : -1;

    pmc_client_quit(k->c);
    cli_free(k);
    return code;
}

/* Wait up to ms for the peer to close; 1 when it did (EOF or reset). */
SRVTEST_UNUSED static int wait_closed(int fd, int ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char buf[4096];
    long long end = now_ms() + ms;

    for (;;) {
        long long left = end - now_ms();
        ssize_t n;
        if (left < 0 || poll(&p, 1, (int)left) <= 0)
            return 0;
        n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return 1;
    }
}

/* Wait up to ms until a hook's count reaches want; 1 when it did.  The
 * server closes a socket before it merges that connection's counters and
 * runs conn_close, so a peer that saw the close must wait for these. */
SRVTEST_UNUSED static int wait_count(atomic_int *n, int want, int ms)
{
    long long end = now_ms() + ms;

    while (atomic_load(n) < want) {
        if (now_ms() > end)
            return 0;
        sleep_ms(1);
    }
    return 1;
}

/* Read everything until EOF (or ms pass) into out; returns the count. */
SRVTEST_UNUSED static size_t read_all(int fd, uint8_t *out, size_t cap, int ms)
{
    size_t at = 0;
    long long end = now_ms() + ms;

    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        long long left = end - now_ms();
        ssize_t n;
        if (left < 0 || poll(&p, 1, (int)left) <= 0)
            break;
        n = read(fd, out + at, cap - at);
        if (n <= 0)
            break;
        at += (size_t)n;
        if (at == cap)
            break;
    }
    return at;
}

/* Reply codes of a byte stream ("Occcc..."). */
SRVTEST_UNUSED
static void codes_of(const uint8_t *p, size_t n, char *dst, size_t cap)
{
    size_t at = 0, k = 0;

    while (at + 5 <= n && k + 1 < cap) {
        uint32_t len = (uint32_t)p[at] << 24 | (uint32_t)p[at + 1] << 16 |
                       (uint32_t)p[at + 2] << 8 | p[at + 3];
        dst[k++] = (char)p[at + 4];
        at += 4 + len;
    }
    dst[k] = 0;
}

SRVTEST_UNUSED static void put(pmc_buf *b, char cmd, const void *p, size_t n)
{
    if (pmc_encode(b, (uint8_t)cmd, p, n) != PMC_OK)
        abort();
}

/* A whole MTA conversation as raw packets, ending with QUIT. */
SRVTEST_UNUSED static void raw_conversation(pmc_buf *b)
{
    static const uint8_t opt[12] = {0, 0, 0, 6, 0, 0, 1, 0xff,
                                    0, 0x1f, 0xff, 0xff};
    put(b, 'O', opt, 12);
    put(b, 'C', "mta\0" "4\0\x19" "192.0.2.1", 4 + 1 + 2 + 10);
    put(b, 'H', "helo.example", 13);
    put(b, 'M', "<a@x>", 6);
    put(b, 'R', "<good@x>", 9);
    put(b, 'R', "<bad@x>", 8);
    put(b, 'T', NULL, 0);
    put(b, 'L', "Subject\0hi", 11);
    put(b, 'L', "From\0a@x", 9);
    put(b, 'N', NULL, 0);
    put(b, 'B', "Hello.\r\n", 8);
    put(b, 'E', NULL, 0);
    put(b, 'M', "<c@x>", 6);
    put(b, 'R', "<good@x>", 9);
    put(b, 'T', NULL, 0);
    put(b, 'N', NULL, 0);
    put(b, 'E', NULL, 0);
    put(b, 'Q', NULL, 0);
}

#endif
