/* The metrics a running server keeps, their Prometheus text, and the
 * /metrics and /health endpoint, against well-behaved and hostile HTTP
 * peers. */
#include "srvtest.h"

#include <dirent.h>

static char dir[64];

/* Send req (length n) to the endpoint, read the whole answer into out
 * (NUL-terminated).  Returns the length read, or -1. */
static int http_raw_fd(int fd, const char *req, size_t n, char *out,
                       size_t cap)
{
    size_t got = 0;
    ssize_t r;

    if (fd < 0)
        return -1;
    if (n && send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    while (got < cap - 1 && (r = recv(fd, out + got, cap - 1 - got, 0)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(fd);
    return (int)got;
}

static int http_raw(const char *path, const char *req, size_t n, char *out,
                    size_t cap)
{
    return http_raw_fd(dial_unix(path), req, n, out, cap);
}

static int http_get(const char *path, const char *target, char *out,
                    size_t cap)
{
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n",
                     target);
    return http_raw(path, req, (size_t)n, out, cap);
}

/* The value of the series line that starts with 'series ' in a
 * /metrics answer, or -1. */
static long long value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while ((p = strstr(p, series))) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return atoll(p + n + 1);
        p += n;
    }
    return -1;
}

static void test_text_before_run(void)
{
    app a = {0};
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_buf b = {0};

    a.pipe_w = -1;
    base_config(&cfg, &a);
    srv = pmc_server_new(&cfg, NULL);
    CHECK(pmc_server_health(srv) == PMC_HEALTH_STOPPED &&
              pmc_health_http_status(PMC_HEALTH_STOPPED) == 503 &&
              pmc_health_http_status(PMC_HEALTH_OK) == 200,
          "health: stopped before the run, 503");
    CHECK(pmc_server_metrics_text(srv, &b) == PMC_OK, "metrics text");
    pmc_buf_append(&b, "", 1);
    CHECK(value_of((char *)b.data, "pmcore_messages_total") == 0 &&
              value_of((char *)b.data,
                       "pmcore_connections_closed_total{reason=\"quit\"}") ==
                  0 &&
              value_of((char *)b.data, "pmcore_health") == 0 &&
              strstr((char *)b.data,
                     "# TYPE pmcore_callback_duration_seconds histogram\n"),
          "metrics text: every series at 0, the types declared");
    pmc_buf_free(&b);
    pmc_server_free(srv);
}

/* Start a LOOP server with its endpoint at dir/m.sock. */
static int start_with_metrics(tsrv *t, app *a, pmc_server_model model,
                              char *msock, size_t cap, uint16_t *port)
{
    pmc_server_config cfg;
    int lfd;

    memset(a, 0, sizeof *a);
    a->pipe_w = -1;
    base_config(&cfg, a);
    cfg.model = model;
    cfg.workers = 1;
    snprintf(msock, cap, "%s/m.sock", dir);
    {
        static char spec[96];
        snprintf(spec, sizeof spec, "unix:%s", msock);
        cfg.metrics_listen = spec;
    }
    lfd = srv_start(t, &cfg, "inet:0@127.0.0.1");
    if (lfd < 0)
        return 0;
    *port = port_of(lfd);
    for (int i = 0; i < 200 && access(msock, F_OK) != 0; i++)
        sleep_ms(5);
    return access(msock, F_OK) == 0;
}

/* Threads of this process now. */
static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void *nothing(void *arg)
{
    return arg;
}

static void test_counts(void)
{
    app a;
    tsrv t;
    char msock[96], text[65536];
    uint16_t port;
    cli *k;
    int hdr, ok = 1, i;
    long long quit = -1;

    int threads;
    pthread_t th;

    /* TSan starts a thread of its own at the first pthread_create: have
     * it before the count. */
    if (pthread_create(&th, NULL, nothing, NULL) == 0)
        pthread_join(th, NULL);
    threads = count_threads();
    if (!CHECK(start_with_metrics(&t, &a, PMC_MODEL_LOOP, msock,
                                  sizeof msock, &port),
               "loop: server and endpoint started"))
        return;
    /* The loop serves the endpoint: a second thread in the process would
     * put glibc on its locked paths for every call the loop makes. */
    CHECK(count_threads() == threads + 1,
          "the endpoint runs on the server's thread (threads %d, then %d)",
          threads, count_threads());
    CHECK(http_get(msock, "/health", text, sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 200 OK\r\n", 17) &&
              strstr(text, "\r\n\r\nok\n"),
          "/health: 200 ok while serving");
    k = cli_new(dial_inet("127.0.0.1", port), 5000);
    ok = cli_hello(k, "helo.example") == PMC_OK;
    for (i = 0; i < 3; i++)
        ok &= cli_message(k, &hdr) == 'c' && hdr;
    pmc_client_quit(k->c);
    cli_free(k);
    CHECK(ok, "three messages through the milter");
    for (i = 0; i < 200 && quit != 1; i++) {
        sleep_ms(10);
        if (http_get(msock, "/metrics", text, sizeof text) > 0)
            quit = value_of(text,
                            "pmcore_connections_closed_total{reason=\"quit\"}");
    }
    CHECK(quit == 1 && !strncmp(text, "HTTP/1.0 200 OK\r\n", 17) &&
              strstr(text, "Content-Type: text/plain; version=0.0.4"),
          "/metrics: 200, Prometheus text, the QUIT counted");
    CHECK(value_of(text, "pmcore_messages_total") == 3 &&
              value_of(text, "pmcore_connections_accepted_total") == 1 &&
              value_of(text, "pmcore_connections_active") == 0,
          "/metrics: messages and connections");
    if (!CHECK(value_of(text, "pmcore_verdicts_total{verdict=\"reply\"}") == 3 &&
              value_of(text, "pmcore_modifications_total{kind=\"add_header\"}") ==
                  3 &&
              value_of(text, "pmcore_negotiations_total{mta_version=\"6\"}") ==
                  1,
          "/metrics: verdicts, modifications, negotiations by version"))
        DIAG("reject %lld add_header %lld v6 %lld",
             value_of(text, "pmcore_verdicts_total{verdict=\"reply\"}"),
             value_of(text, "pmcore_modifications_total{kind=\"add_header\"}"),
             value_of(text, "pmcore_negotiations_total{mta_version=\"6\"}"));
    CHECK(value_of(text, "pmcore_callback_duration_seconds_count"
                         "{callback=\"eom\"}") == 3 &&
              value_of(text, "pmcore_callback_duration_seconds_bucket"
                             "{callback=\"eom\",le=\"+Inf\"}") == 3 &&
              value_of(text, "pmcore_callback_duration_seconds_bucket"
                             "{callback=\"eom\",le=\"5.000000000\"}") == 3,
          "/metrics: the eom latency histogram is cumulative up to +Inf");
    CHECK(http_get(msock, "/nothing", text, sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 404", 12),
          "another path: 404");
    CHECK(http_raw(msock, "POST /metrics HTTP/1.0\r\n\r\n", 26, text,
                   sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 405", 12),
          "another method: 405");
    CHECK(http_raw(msock, "HEAD /health HTTP/1.0\r\n\r\n", 25, text,
                   sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 200", 12) &&
              strstr(text, "\r\n\r\n")[4] == '\0',
          "HEAD: the head without the body");
    srv_stop(&t, 0);
    CHECK(access(msock, F_OK) != 0, "the endpoint's socket is removed at the end");
}

/* A stop with a connection inside a message: the drain shows. */
static void test_draining(void)
{
    app a;
    tsrv t;
    char msock[96], text[4096];
    uint16_t port;
    cli *k;
    pmc_result r;
    pmc_str from = S("<a@example.org>");

    if (!CHECK(start_with_metrics(&t, &a, PMC_MODEL_LOOP, msock,
                                  sizeof msock, &port),
               "drain: server started"))
        return;
    k = cli_new(dial_inet("127.0.0.1", port), 5000);
    CHECK(cli_hello(k, "h") == PMC_OK &&
              pmc_client_mail(k->c, &from, 1, &r) == PMC_OK,
          "drain: a message open");
    pmc_server_stop(t.srv, 5000);
    sleep_ms(50);
    CHECK(http_get(msock, "/health", text, sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 503", 12) &&
              strstr(text, "\r\n\r\ndraining\n"),
          "/health: 503 draining once the stop began");
    cli_free(k);
    srv_stop(&t, 0);
}

static int fail_init(void *ap)
{
    (void)ap;
    return 1;
}

/* A PREFORK master whose worker cannot start has none alive for the
 * second it waits before replacing it. */
static void test_no_workers(void)
{
    app a;
    tsrv t;
    pmc_server_config cfg;
    char spec[128], msock[96], text[4096];
    int lfd, seen = 0;

    memset(&a, 0, sizeof a);
    a.pipe_w = -1;
    base_config(&cfg, &a);
    cfg.model = PMC_MODEL_PREFORK;
    cfg.workers = 1;
    cfg.child_init = fail_init;
    cfg.log = NULL;
    snprintf(msock, sizeof msock, "%s/p.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", msock);
    cfg.metrics_listen = spec;
    lfd = srv_start(&t, &cfg, "inet:0@127.0.0.1");
    if (!CHECK(lfd >= 0, "prefork: started"))
        return;
    for (int i = 0; i < 300 && !seen; i++) {
        sleep_ms(10);
        if (http_get(msock, "/health", text, sizeof text) > 0 &&
            strstr(text, "\r\n\r\nno workers\n") &&
            !strncmp(text, "HTTP/1.0 503", 12))
            seen = 1;
    }
    CHECK(seen, "/health: 503 no workers while the master has none alive");
    srv_stop(&t, 0);
}

static void test_bad_specs(void)
{
    app a = {0};
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error e;
    pmc_status st;
    int busy;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    char spec[64];

    a.pipe_w = -1;
    base_config(&cfg, &a);
    cfg.metrics_listen = "bogus";
    srv = pmc_server_new(&cfg, NULL);
    pmc_server_listen(srv, "inet:0@127.0.0.1", 0, NULL);
    st = pmc_server_run(srv, &e);
    CHECK(st == PMC_ERR_ARGUMENT && strstr(e.message, "metrics_listen=bogus"),
          "a bad spec stops the run at once, named: %s", e.message);
    pmc_server_free(srv);

    cfg.metrics_listen = NULL;
    setenv("PMCORE_METRICS", "inet:99999@127.0.0.1", 1);
    srv = pmc_server_new(&cfg, NULL);
    pmc_server_listen(srv, "inet:0@127.0.0.1", 0, NULL);
    st = pmc_server_run(srv, &e);
    CHECK(st == PMC_ERR_ARGUMENT &&
              strstr(e.message, "PMCORE_METRICS=inet:99999@127.0.0.1"),
          "a bad PMCORE_METRICS is named: %s", e.message);
    pmc_server_free(srv);
    unsetenv("PMCORE_METRICS");

    busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    bind(busy, (struct sockaddr *)&sa, sizeof sa);
    listen(busy, 1);
    getsockname(busy, (struct sockaddr *)&sa, &len);
    snprintf(spec, sizeof spec, "inet:%u@127.0.0.1", ntohs(sa.sin_port));
    cfg.metrics_listen = spec;
    srv = pmc_server_new(&cfg, NULL);
    pmc_server_listen(srv, "inet:0@127.0.0.1", 0, NULL);
    st = pmc_server_run(srv, &e);
    CHECK(st == PMC_ERR_IO && strstr(e.message, spec),
          "a port in use is named: %s", e.message);
    pmc_server_free(srv);
    close(busy);
}

/* Hostile HTTP peers: cut at every byte, stalled, flooding.  Each is
 * bounded by the deadline, and nothing is left behind. */
static void test_hostile(void)
{
    static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    app a;
    tsrv t;
    char msock[96], text[65536], junk[8192];
    uint16_t port;
    int base, ok = 1, fd;
    long long t0;

    if (!CHECK(start_with_metrics(&t, &a, PMC_MODEL_LOOP, msock,
                                  sizeof msock, &port),
               "hostile: server started"))
        return;
    http_get(msock, "/health", text, sizeof text);
    /* The most seen over a moment: sanitizer runtimes open descriptors of
     * their own now and then. */
    base = 0;
    for (int i = 0; i < 5; i++, sleep_ms(10))
        if (count_fds() > base)
            base = count_fds();
    for (size_t cut = 0; cut < sizeof req - 1; cut++) {
        fd = dial_unix(msock);
        if (fd < 0 || (cut && send(fd, req, cut, MSG_NOSIGNAL) != (ssize_t)cut))
            ok = 0;
        close(fd);
    }
    CHECK(ok && http_get(msock, "/health", text, sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 200", 12),
          "a request cut at every byte: then the next is answered");
    fd = dial_unix(msock); /* says nothing */
    t0 = now_ms();
    CHECK(http_get(msock, "/health", text, sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 200", 12) && now_ms() - t0 < 3000,
          "a silent peer holds the endpoint for at most its deadline");
    close(fd);
    memset(junk, 'A', sizeof junk);
    CHECK(http_raw(msock, junk, sizeof junk, text, sizeof text) <= 0,
          "a request without an end is closed unanswered");
    CHECK(http_get(msock, "/metrics", text, sizeof text) > 0 &&
              !strncmp(text, "HTTP/1.0 200", 12),
          "then the next is answered");
    for (int i = 0; i < 200 && count_fds() > base; i++)
        sleep_ms(10);
    CHECK(count_fds() <= base, "descriptors back at the baseline (%d, %d)",
          count_fds(), base);
    srv_stop(&t, 0);
}

/* While cut_port is set, sends from a socket bound to that port (the
 * endpoint's side of its peers) are cut short: every other call says
 * EAGAIN, the others take 100 bytes at most.  An answer of a few KiB fits
 * any socket buffer, so without this the endpoint would never have to
 * finish one later.  The library is linked statically: its send is this. */
static _Atomic unsigned cut_port;

ssize_t send(int fd, const void *p, size_t n, int flags)
{
    static _Atomic unsigned flip;
    unsigned port = cut_port;
    struct sockaddr_in me;
    socklen_t ml = sizeof me;

    if (port && getsockname(fd, (struct sockaddr *)&me, &ml) == 0 &&
        me.sin_family == AF_INET && ntohs(me.sin_port) == port) {
        if (flip++ & 1) {
            errno = EAGAIN;
            return -1;
        }
        n = n > 100 ? 100 : n;
    }
    return sendto(fd, p, n, flags, NULL, 0);
}

/* A scraper over TCP that does not read, and an endpoint that can send
 * only a little at a time: the answer waits in the endpoint, the loop
 * serves the MTA and other scrapers meanwhile, and the whole answer
 * arrives once it reads. */
static void test_slow_reader(void)
{
    pmc_server_config cfg;
    app a;
    tsrv t;
    static char spec[64];
    char text[65536], *big;
    int lfd, slow, hdr = 0, rcv = 1024, got = 0, r, free_fd;
    uint16_t mport;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    long long t0, clen = -1;
    const char *body;

    /* A free port for the endpoint (which has no port 0 to report). */
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    free_fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(free_fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(free_fd, (struct sockaddr *)&sa, &sl);
    mport = ntohs(sa.sin_port);
    close(free_fd);
    snprintf(spec, sizeof spec, "inet:%u@127.0.0.1", mport);
    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.metrics_listen = spec;
    lfd = srv_start(&t, &cfg, "inet:0@127.0.0.1");
    if (!CHECK(lfd >= 0, "slow reader: server started"))
        return;
    slow = -1;
    for (int i = 0; i < 200 && slow < 0; i++) {
        slow = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
        if (connect(slow, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(slow);
            slow = -1;
            sleep_ms(5);
        }
    }
    cut_port = mport;
    {
        static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
        send(slow, req, sizeof req - 1, MSG_NOSIGNAL);
    }
    sleep_ms(100);
    t0 = now_ms();
    CHECK(full_conv(dial_inet("127.0.0.1", port_of(lfd)), &hdr) == 'c' && hdr &&
              now_ms() - t0 < 1000,
          "a scraper that does not read: the milter still answers the MTA");
    {
        static const char req[] = "GET /health HTTP/1.0\r\n\r\n";
        int fd = dial_inet("127.0.0.1", mport);
        CHECK(http_raw_fd(fd, req, sizeof req - 1, text, sizeof text) > 0 &&
                  !strncmp(text, "HTTP/1.0 200", 12),
              "and another scraper is answered");
    }
    big = malloc(1 << 20);
    while (big && got < (1 << 20) - 1 &&
           (r = (int)recv(slow, big + got, (size_t)((1 << 20) - 1 - got), 0)) > 0)
        got += r;
    if (big) {
        big[got] = '\0';
        if ((body = strstr(big, "\r\n\r\n")) &&
            strstr(big, "Content-Length: "))
            clen = atoll(strstr(big, "Content-Length: ") + 16);
        CHECK(body && clen > 0 && (long long)(got - (body + 4 - big)) == clen &&
                  strstr(body, "pmcore_messages_total"),
              "the slow scraper gets the whole answer (%d bytes, body %lld)",
              got, clen);
    }
    free(big);
    close(slow);
    cut_port = 0;
    srv_stop(&t, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/pmc-metrics-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    test_text_before_run();
    test_counts();
    test_draining();
    test_no_workers();
    test_bad_specs();
    test_hostile();
    test_slow_reader();
    rmdir(dir);
    return tap_done();
}
