/*
 * Server tests on real sockets: socket specs, the event loop (pipelined and
 * split input, timeouts, the connection cap, drain), fd adoption, the
 * thread pool (ordering, a blocking handler), counters and descriptor
 * hygiene.  Process models and EMFILE are in test_server_procs.c.
 */
#include "srvtest.h"

static char dir[64];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* --- socket specs --- */

static void test_parse(void)
{
    pmc_sockspec ss;
    pmc_error e;
    static const struct {
        const char *spec;
        int family;
        const char *host;
        int port;
        const char *path;
    } good[] = {
        {"unix:/tmp/x.sock", PMC_SOCK_UNIX, "", 0, "/tmp/x.sock"},
        {"local:/var/run/m", PMC_SOCK_UNIX, "", 0, "/var/run/m"},
        {"inet:8890", PMC_SOCK_INET, "", 8890, ""},
        {"inet:8890@127.0.0.1", PMC_SOCK_INET, "127.0.0.1", 8890, ""},
        {"inet:8890@localhost", PMC_SOCK_INET, "localhost", 8890, ""},
        {"inet:127.0.0.1:25", PMC_SOCK_INET, "127.0.0.1", 25, ""},
        {"inet:[::1]:25", PMC_SOCK_INET6, "::1", 25, ""},
        {"inet6:8890", PMC_SOCK_INET6, "", 8890, ""},
        {"inet6:8890@[::1]", PMC_SOCK_INET6, "::1", 8890, ""},
        {"inet6:8890@::1", PMC_SOCK_INET6, "::1", 8890, ""},
        {"inet:0@127.0.0.1", PMC_SOCK_INET, "127.0.0.1", 0, ""},
        {"inet:65535", PMC_SOCK_INET, "", 65535, ""},
        /* libmilter's bracketed IPv4, and Postfix's form of it */
        {"inet:8890@[127.0.0.1]", PMC_SOCK_INET, "127.0.0.1", 8890, ""},
        {"inet:[192.0.2.7]:25", PMC_SOCK_INET, "192.0.2.7", 25, ""},
        {"inet:8890@[::1]", PMC_SOCK_INET6, "::1", 8890, ""},
        {"inet6:8890@[2001:db8::1]", PMC_SOCK_INET6, "2001:db8::1", 8890,
         ""},
    };
    static const struct {
        const char *spec;
        const char *msg;
    } bad[] = {
        {"inet:99999@127.0.0.1", "inet:99999@127.0.0.1: port out of range"},
        {"inet:65536", "inet:65536: port out of range"},
        {"inet:abc@127.0.0.1", "bad port"},
        {"inet:@127.0.0.1", "bad port"},
        {"inet:25@", "empty host"},
        {"inet:25@300.1.2.3", "invalid IPv4 address"},
        {"inet6:25@[::g]", "invalid IPv6 address"},
        {"inet6:25@1.2.3.4", "invalid IPv6 address"},
        {"inet6:25@[1.2.3.4]", "invalid IPv6 address"},
        {"inet:25@[300.1.2.3]", "invalid IPv6 address"},
        {"inet:25@[]", "empty host"},
        {"unix:relative/path", "must be absolute"},
        {"tcp:25", "unknown socket type"},
        {"", "unknown socket type"},
        {"unix:", "must be absolute"},
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        pmc_status st = pmc_sockspec_parse(good[i].spec, &ss, &e);
        if (!CHECK(st == PMC_OK, "parse %s", good[i].spec))
            DIAG("%s", e.message);
        if (st != PMC_OK)
            continue;
        CHECK(ss.family == good[i].family && !strcmp(ss.host, good[i].host) &&
                  ss.port == good[i].port && !strcmp(ss.path, good[i].path),
              "parse %s: family %d host '%s' port %u path '%s'",
              good[i].spec, ss.family, ss.host, ss.port, ss.path);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pmc_status st = pmc_sockspec_parse(bad[i].spec, &ss, &e);
        CHECK(st == PMC_ERR_ARGUMENT && strstr(e.message, bad[i].msg) &&
                  !strncmp(e.message, bad[i].spec, strlen(bad[i].spec)),
              "bad spec '%s' gave %s '%s'", bad[i].spec, pmc_status_name(st),
              e.message);
    }
    {
        char longp[200];
        memset(longp, 'a', sizeof longp);
        memcpy(longp, "unix:/", 6);
        longp[sizeof longp - 1] = 0;
        CHECK(pmc_sockspec_parse(longp, &ss, &e) == PMC_ERR_ARGUMENT &&
                  strstr(e.message, "too long"),
              "long unix path: %s", e.message);
    }
}

static void test_listen_unix(void)
{
    char p[128], spec[160];
    pmc_error e;
    struct stat st;
    int fd, fd2, c;

    /* A mode is applied to the path. */
    path_in(p, sizeof p, "mode.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    fd = pmc_listen(spec, 0660, 0, &e);
    if (!CHECK(fd >= 0, "listen %s", spec))
        DIAG("%s", e.message);
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0660,
          "mode 0660 applied (got %o)", (unsigned)(st.st_mode & 0777));
    CHECK(fd >= 0 && (fcntl(fd, F_GETFD) & FD_CLOEXEC) &&
              (fcntl(fd, F_GETFL) & O_NONBLOCK),
          "listener is close-on-exec and non-blocking");
    /* A live server keeps its path. */
    fd2 = pmc_listen(spec, 0, 0, &e);
    CHECK(fd2 < 0 && errno == EADDRINUSE && strstr(e.message, spec) &&
              strstr(e.message, "another milter is already listening") &&
              strstr(e.message, "Address already in use"),
          "live socket refused: %s", e.message);
    c = dial_unix(p);
    CHECK(c >= 0, "the first server still answers");
    if (c >= 0)
        close(c);
    close(fd);
    /* Now stale: replaced. */
    fd2 = pmc_listen(spec, 0, 0, &e);
    if (!CHECK(fd2 >= 0, "stale socket replaced"))
        DIAG("%s", e.message);
    c = dial_unix(p);
    CHECK(c >= 0, "replacement answers");
    if (c >= 0)
        close(c);
    if (fd2 >= 0)
        close(fd2);
    unlink(p);

    /* Not a socket: refused, file untouched. */
    path_in(p, sizeof p, "plain");
    snprintf(spec, sizeof spec, "local:%s", p);
    fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(fd);
    fd = pmc_listen(spec, 0, 0, &e);
    CHECK(fd < 0 && errno == EEXIST && strstr(e.message, "not a socket"),
          "not-a-socket path refused: %s", e.message);
    CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode), "regular file kept");
    unlink(p);

    fd = pmc_listen("unix:/nonexist/x", 0, 0, &e);
    CHECK(fd < 0 && !strcmp(e.message, "unix:/nonexist/x: bind: "
                                       "No such file or directory"),
          "missing directory: %s", e.message);
    fd = pmc_listen("bogus:1", 0, 0, &e);
    CHECK(fd < 0 && errno == EINVAL && e.code == PMC_ERR_ARGUMENT,
          "unknown scheme: %s", e.message);
}

/* A live server too busy to accept: its backlog is full, so a probing
 * connect gets EAGAIN instead of a connection.  It must still count as
 * live, or a second instance would unlink the path of a loaded milter. */
static void test_listen_unix_full_backlog(void)
{
    char p[100], spec[160]; /* p fits sun_path */
    struct sockaddr_un sa;
    pmc_error e;
    int fd, fd2, c, queued[64], n = 0, r = 0;

    path_in(p, sizeof p, "busy.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", p);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
              listen(fd, 1) == 0,
          "busy listener: %s", strerror(errno));
    /* Nobody accepts: queue connections until the kernel refuses one. */
    while (n < 64) {
        c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        r = connect(c, (struct sockaddr *)&sa, sizeof sa);
        if (r != 0) {
            int err = errno;
            close(c);
            errno = err;
            break;
        }
        queued[n++] = c;
    }
    CHECK(r != 0 && errno == EAGAIN && n >= 1,
          "backlog filled after %d connections (last: %s)", n,
          strerror(errno));
    fd2 = pmc_listen(spec, 0, 0, &e);
    CHECK(fd2 < 0 && errno == EADDRINUSE && strstr(e.message, spec) &&
              strstr(e.message, "another milter is already listening") &&
              strstr(e.message, "backlog is full"),
          "busy live socket refused: %s", e.message);
    if (fd2 >= 0)
        close(fd2);
    /* The path is still the busy server's: once it accepts, it answers. */
    for (int i = 0; i < n; i++) {
        c = accept(fd, NULL, NULL);
        if (c >= 0)
            close(c);
        close(queued[i]);
    }
    c = dial_unix(p);
    CHECK(c >= 0, "the busy server kept its path: %s", strerror(errno));
    if (c >= 0)
        close(c);
    close(fd);
    unlink(p);
}

static void test_listen_inet(void)
{
    pmc_error e;
    char spec[64];
    int fd, fd2, c;
    uint16_t port;

    fd = pmc_listen("inet:0@127.0.0.1", 0, 0, &e);
    if (!CHECK(fd >= 0, "inet listen"))
        DIAG("%s", e.message);
    port = port_of(fd);
    c = dial_inet("127.0.0.1", port);
    CHECK(c >= 0, "inet connect");
    if (c >= 0)
        close(c);
    snprintf(spec, sizeof spec, "inet:%u@127.0.0.1", port);
    fd2 = pmc_listen(spec, 0, 0, &e);
    CHECK(fd2 < 0 && strstr(e.message, "bind: Address already in use"),
          "port in use: %s", e.message);
    close(fd);
    snprintf(spec, sizeof spec, "inet:localhost:%u", port);
    fd = pmc_listen(spec, 0, 0, &e);
    if (!CHECK(fd >= 0, "Postfix form with a name"))
        DIAG("%s", e.message);
    if (fd >= 0)
        close(fd);

    fd = pmc_listen("inet6:0@[::1]", 0, 0, &e);
    if (fd < 0 && strstr(e.message, "Cannot assign")) {
        DIAG("no IPv6 loopback; skipping inet6 checks");
    } else {
        if (!CHECK(fd >= 0, "inet6 listen"))
            DIAG("%s", e.message);
        c = dial_inet("::1", port_of(fd));
        CHECK(c >= 0, "inet6 connect");
        if (c >= 0)
            close(c);
        if (fd >= 0)
            close(fd);
    }
    fd = pmc_listen("inet:0@[127.0.0.1]", 0, 0, &e);
    if (!CHECK(fd >= 0, "bracketed IPv4 listen"))
        DIAG("%s", e.message);
    if (fd >= 0) {
        c = dial_inet("127.0.0.1", port_of(fd));
        CHECK(c >= 0, "bracketed IPv4 is an IPv4 listener");
        if (c >= 0)
            close(c);
        close(fd);
    }
    fd = pmc_listen("inet:1@192.0.2.55", 0, 0, &e);
    CHECK(fd < 0 && strstr(e.message, "inet:1@192.0.2.55: bind:"),
          "unassigned address: %s", e.message);
    fd = pmc_listen("inet:25@no-such-host.invalid", 0, 0, &e);
    CHECK(fd < 0 && strstr(e.message, "cannot resolve host"),
          "bad host: %s", e.message);
}

/* --- the event loop --- */

static void test_basic(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    int hdr = 0, code, lfd;
    pmc_server_stats s;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 3;
    path_in(p, sizeof p, "basic.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    lfd = srv_start(&t, &cfg, spec);
    CHECK(lfd >= 0, "%s: start", label);
    if (lfd < 0)
        return;
    code = full_conv(dial_unix(p), &hdr);
    CHECK(code == 'c' && hdr, "%s: message accepted with header (%d, %d)",
          label, code, hdr);
    code = full_conv(dial_unix(p), &hdr);
    CHECK(code == 'c' && hdr, "%s: second connection", label);
    CHECK(srv_stop(&t, 1000) == PMC_OK, "%s: run returned OK", label);
    CHECK(a.opens == 2 && a.closes == 2 && a.close_h == 2,
          "%s: hooks paired (%d opens, %d closes, %d close handlers)", label,
          a.opens, a.closes, a.close_h);
    CHECK(access(p, F_OK) != 0, "%s: socket path removed", label);
    (void)s;
}

static atomic_int log_lines, log_warnings, log_qid;

/* Protocol errors must arrive with a connection id, and with the queue id
 * once the MTA sent macro 'i'. */
static void logsink(void *ap, int level, uint64_t conn, const char *qid,
                    const char *msg)
{
    (void)ap;
    atomic_fetch_add(&log_lines, 1);
    if (level == PMC_LOG_WARNING && conn != 0 && strstr(msg, "protocol"))
        atomic_fetch_add(&log_warnings, 1);
    if (qid && !strcmp(qid, "4XyZ12"))
        atomic_fetch_add(&log_qid, 1);
}

/* A body bigger than one read: the loop reads it over several turns. */
static int big_message(int fd)
{
    cli *k = cli_new(fd, 5000);
    size_t n = 300 * 1024;
    char *msg = malloc(n + 64);
    pmc_result r;
    pmc_str rc = S("<good@x>");
    pmc_status st;
    int ok;

    if (!msg)
        abort();
    strcpy(msg, "Subject: big\r\n\r\n");
    for (size_t i = strlen(msg); i < n; i++)
        msg[i] = (i % 78 == 77) ? '\n' : 'x';
    msg[n] = 0;
    st = cli_hello(k, "big");
    if (st == PMC_OK)
        st = pmc_client_message(k->c, S("<a@x>"), &rc, 1, msg, n, &r);
    ok = st == PMC_OK && r.code == 'c';
    pmc_client_quit(k->c);
    cli_free(k);
    free(msg);
    return ok;
}

static void test_tcp_and_adopt(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error e;
    tsrv t;
    int lfd, lfd6, hdr = 0, fd;
    uint16_t port, port6 = 0;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 2;
    memset(&t, 0, sizeof t);
    srv = pmc_server_new(&cfg, &e);
    lfd = pmc_server_listen(srv, "inet:0@127.0.0.1", 0, &e);
    if (!CHECK(lfd >= 0, "%s: tcp listen", label))
        DIAG("%s", e.message);
    port = port_of(lfd);
    /* Adopt a listener made elsewhere (an inherited descriptor). */
    lfd6 = pmc_listen("inet6:0@[::1]", 0, 0, &e);
    if (lfd6 >= 0) {
        port6 = port_of(lfd6);
        if (!CHECK(pmc_server_add_fd(srv, lfd6, &e) == PMC_OK,
                   "%s: add_fd", label))
            DIAG("%s", e.message);
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(pmc_server_add_fd(srv, fd, &e) == PMC_ERR_ARGUMENT,
          "%s: add_fd refuses a socket that is not listening", label);
    close(fd);
    t.srv = srv;
    pthread_create(&t.th, NULL, srv_thread, &t);
    t.running = 1;
    CHECK(full_conv(dial_inet("127.0.0.1", port), &hdr) == 'c' && hdr,
          "%s: message over TCP", label);
    if (lfd6 >= 0)
        CHECK(full_conv(dial_inet("::1", port6), &hdr) == 'c' && hdr,
              "%s: message over IPv6 on an adopted listener", label);
    CHECK(big_message(dial_inet("127.0.0.1", port)),
          "%s: 300 KiB body over TCP", label);
    CHECK(srv_stop(&t, 1000) == PMC_OK, "%s: stopped", label);
    CHECK(a.opens == a.closes && a.eoms == (lfd6 >= 0 ? 3 : 2),
          "%s: hooks %d/%d, eoms %d", label, a.opens, a.closes, a.eoms);
}

static void test_stats(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    pmc_server_stats s;
    int fd, hdr;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.log = logsink;
    path_in(p, sizeof p, "stats.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    full_conv(dial_unix(p), &hdr);
    full_conv(dial_unix(p), &hdr);
    /* Garbage: an HTTP request. */
    fd = dial_unix(p);
    if (write(fd, "GET / HTTP/1.0\r\n\r\n", 18) != 18)
        perror("write");
    CHECK(wait_closed(fd, 2000), "garbage connection closed");
    close(fd);
    wait_count(&a.closes, 3, 5000);
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.conn_accepted == 3 && s.conn_active == 0,
          "accepted %llu active %llu", (unsigned long long)s.conn_accepted,
          (unsigned long long)s.conn_active);
    CHECK(s.messages == 2, "messages %llu", (unsigned long long)s.messages);
    CHECK(s.protocol_errors == 1, "protocol errors %llu",
          (unsigned long long)s.protocol_errors);
    CHECK(s.replies['h'] == 2 && s.replies['O'] == 2 && s.replies['y'] == 2,
          "replies h %llu O %llu y %llu", (unsigned long long)s.replies['h'],
          (unsigned long long)s.replies['O'],
          (unsigned long long)s.replies['y']);
    CHECK(s.cb_count[PMC_EV_EOM] == 2 && s.cb_count[PMC_EV_HEADER] == 6 &&
              s.cb_ns_sum[PMC_EV_EOM] > 0 &&
              s.cb_ns_max[PMC_EV_EOM] <= s.cb_ns_sum[PMC_EV_EOM],
          "latency counters (eom %llu, header %llu)",
          (unsigned long long)s.cb_count[PMC_EV_EOM],
          (unsigned long long)s.cb_count[PMC_EV_HEADER]);
    CHECK(a.opens == 3 && a.closes == 3, "garbage connection got both hooks");
    CHECK(log_warnings == 1, "protocol error logged with its connection id");

    /* Bad input inside a message: the log line carries the queue id. */
    {
        static const uint8_t o[12] = {0, 0, 0, 6, 0, 0, 1, 0xff,
                                      0, 0x1f, 0xff, 0xff};
        pmc_buf b = {0};
        put(&b, 'O', o, 12);
        put(&b, 'D', "Mi\0" "4XyZ12", 10);
        put(&b, 'M', "<a@x>", 6);
        put(&b, 'Z', "junk", 4); /* not a command */
        fd = dial_unix(p);
        if (write(fd, b.data, b.len) != (ssize_t)b.len)
            perror("write");
        CHECK(wait_closed(fd, 2000), "bad command closes the connection");
        close(fd);
        pmc_buf_free(&b);
        sleep_ms(50);
        CHECK(log_qid == 1 && log_warnings == 2,
              "protocol error logged with queue id (%d, %d)", (int)log_qid,
              (int)log_warnings);
    }
    srv_stop(&t, 0);
}

/* The same conversation whole, byte by byte, and split at random points
 * gives the same replies, in one loop model and the pool. */
static void test_pipelined_split(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160], whole[64], bytes[64], random_[64];
    pmc_buf conv = {0};
    uint8_t out[8192];
    size_t n;
    int fd;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 2;
    cfg.log = logsink;
    path_in(p, sizeof p, "pipe.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    raw_conversation(&conv);

    fd = dial_unix(p);
    if (write(fd, conv.data, conv.len) != (ssize_t)conv.len)
        perror("write");
    n = read_all(fd, out, sizeof out, 3000);
    codes_of(out, n, whole, sizeof whole);
    close(fd);

    fd = dial_unix(p);
    for (size_t i = 0; i < conv.len; i++) {
        if (write(fd, conv.data + i, 1) != 1)
            perror("write");
        if (i % 16 == 0)
            sleep_ms(1);
    }
    n = read_all(fd, out, sizeof out, 3000);
    codes_of(out, n, bytes, sizeof bytes);
    close(fd);

    fd = dial_unix(p);
    srand(7);
    for (size_t i = 0; i < conv.len;) {
        size_t k = 1 + (size_t)rand() % 40;
        if (k > conv.len - i)
            k = conv.len - i;
        if (write(fd, conv.data + i, k) != (ssize_t)k)
            perror("write");
        i += k;
        sleep_ms(1);
    }
    n = read_all(fd, out, sizeof out, 3000);
    codes_of(out, n, random_, sizeof random_);
    close(fd);

    CHECK(!strcmp(whole, "Occccyccccchccccchc"),
          "%s: pipelined replies '%s'", label, whole);
    CHECK(!strcmp(whole, bytes), "%s: byte by byte '%s' vs '%s'", label,
          bytes, whole);
    CHECK(!strcmp(whole, random_), "%s: random splits '%s' vs '%s'", label,
          random_, whole);
    CHECK(a.order_bad == 0, "%s: events in order", label);
    pmc_buf_free(&conv);
    srv_stop(&t, 0);
}

/* Replies bigger than the socket buffer: the rest goes out on EPOLLOUT,
 * and a peer that stops reading meets the read timeout. */
static void test_big_reply(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    pmc_buf conv = {0};
    static const uint8_t o[12] = {0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff,
                                  0xff};
    size_t total = 0, body = 0, at = 0, cap = 5 << 20;
    uint8_t *buf = malloc(cap);
    char last = 0;
    int fd;
    long long t0;

    if (!buf)
        abort();
    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 2;
    cfg.read_timeout_ms = 400;
    cfg.session.actions = PMC_ACT_ADDHDRS | PMC_ACT_CHGBODY;
    atomic_store(&a.big_body, 4 << 20);
    path_in(p, sizeof p, "big.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0) {
        free(buf);
        return;
    }
    put(&conv, 'O', o, 12);
    put(&conv, 'M', "<a@x>", 6);
    put(&conv, 'R', "<good@x>", 9);
    put(&conv, 'B', "hi\r\n", 4);
    put(&conv, 'E', NULL, 0);

    /* Slow reader: everything arrives, in order. */
    fd = dial_unix(p);
    if (write(fd, conv.data, conv.len) != (ssize_t)conv.len)
        perror("write");
    sleep_ms(100);
    while (total < cap) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t n;
        if (poll(&pf, 1, 1000) != 1)
            break;
        n = read(fd, buf + total, cap - total < 65536 ? cap - total : 65536);
        if (n <= 0)
            break;
        total += (size_t)n;
        /* Stop once the final 'c' of EOM arrived. */
        while (at + 5 <= total) {
            uint32_t len = (uint32_t)buf[at] << 24 |
                           (uint32_t)buf[at + 1] << 16 |
                           (uint32_t)buf[at + 2] << 8 | buf[at + 3];
            if (at + 4 + len > total)
                break;
            last = (char)buf[at + 4];
            if (last == 'b')
                body += len - 1;
            at += 4 + len;
        }
        if (last == 'c' && body)
            break;
        sleep_ms(2);
    }
    CHECK(body == (size_t)(4 << 20) && last == 'c',
          "%s: 4 MiB body to a slow reader (%zu bytes, last '%c')", label,
          body, last ? last : '-');
    close(fd);

    /* A reader that never reads: closed by the read timeout. */
    fd = dial_unix(p);
    t0 = now_ms();
    if (write(fd, conv.data, conv.len) != (ssize_t)conv.len)
        perror("write");
    for (int i = 0; i < 300 && atomic_load(&a.closes) < 2; i++)
        sleep_ms(10);
    CHECK(atomic_load(&a.closes) == 2 && now_ms() - t0 < 2500,
          "%s: stalled reader dropped after the timeout (%lld ms)", label,
          now_ms() - t0);
    close(fd);
    pmc_buf_free(&conv);
    free(buf);
    srv_stop(&t, 0);
}

static void test_timeouts(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    pmc_server_stats s;
    long long t0, dt;
    int fd, closed;
    cli *k;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.read_timeout_ms = 300;
    cfg.idle_timeout_ms = 900;
    path_in(p, sizeof p, "timeout.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;

    /* Half a packet: the read timeout. */
    fd = dial_unix(p);
    t0 = now_ms();
    if (write(fd, "\0\0", 2) != 2)
        perror("write");
    closed = wait_closed(fd, 3000);
    dt = now_ms() - t0;
    CHECK(closed && dt >= 250 && dt < 800, "read timeout after %lld ms", dt);
    close(fd);

    /* Negotiated, then silent between messages: the idle timeout. */
    fd = dial_unix(p);
    k = cli_new(fd, 2000);
    CHECK(cli_hello(k, "idle.example") == PMC_OK, "hello before idling");
    t0 = now_ms();
    closed = wait_closed(fd, 3000);
    dt = now_ms() - t0;
    CHECK(closed && dt >= 800 && dt < 1500, "idle timeout after %lld ms", dt);
    cli_free(k);

    /* Inside a message the shorter read timeout applies. */
    fd = dial_unix(p);
    k = cli_new(fd, 2000);
    cli_hello(k, "msg.example");
    {
        pmc_str from = S("<a@x>");
        pmc_client_mail(k->c, &from, 1, NULL);
    }
    t0 = now_ms();
    closed = wait_closed(fd, 3000);
    dt = now_ms() - t0;
    CHECK(closed && dt >= 250 && dt < 800,
          "read timeout inside a message after %lld ms", dt);
    cli_free(k);
    wait_count(&a.closes, 3, 5000);

    pmc_server_stats_get(t.srv, &s);
    CHECK(s.conn_read_timeouts == 2 && s.conn_idle_timeouts == 1,
          "timeout counters read %llu idle %llu",
          (unsigned long long)s.conn_read_timeouts,
          (unsigned long long)s.conn_idle_timeouts);
    CHECK(a.aborts >= 1 && a.closes == 3, "abort and hooks on timeouts");
    srv_stop(&t, 0);
}

static int replied_within(int fd, int ms)
{
    struct pollfd pf = {fd, POLLIN, 0};

    return poll(&pf, 1, ms) == 1;
}

static void test_cap(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    pmc_buf opt = {0};
    cli *k1, *k2;
    int f3;
    static const uint8_t o[12] = {0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff,
                                  0xff};

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.max_connections = 2;
    path_in(p, sizeof p, "cap.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    k1 = cli_new(dial_unix(p), 2000);
    k2 = cli_new(dial_unix(p), 2000);
    CHECK(cli_hello(k1, "one") == PMC_OK && cli_hello(k2, "two") == PMC_OK,
          "two connections served");
    put(&opt, 'O', o, 12);
    f3 = dial_unix(p); /* sits in the backlog */
    CHECK(f3 >= 0, "third connect queued");
    if (write(f3, opt.data, opt.len) != (ssize_t)opt.len)
        perror("write");
    CHECK(!replied_within(f3, 300), "third not served at the cap");
    pmc_client_quit(k1->c);
    cli_free(k1);
    CHECK(replied_within(f3, 2000), "third served once one closed");
    close(f3);
    cli_free(k2);
    pmc_buf_free(&opt);
    srv_stop(&t, 0);
}

/* --- drain --- */

static void test_drain(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    cli *busy, *idle;
    pmc_result r;
    pmc_str from = S("<a@x>"), to = S("<good@x>");
    long long t0;
    int f, hdr = 0;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 2;
    path_in(p, sizeof p, "drain.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    busy = cli_new(dial_unix(p), 3000);
    idle = cli_new(dial_unix(p), 3000);
    cli_hello(busy, "busy");
    cli_hello(idle, "idle");
    pmc_client_mail(busy->c, &from, 1, &r);
    pmc_client_rcpt(busy->c, &to, 1, &r);
    pmc_client_header(busy->c, S("Subject"), S("x"), &r);

    t0 = now_ms();
    pmc_server_stop(t.srv, 5000);
    /* Between messages is not idle to an MTA: it sends the next message
     * of its SMTP session over this connection, so the stop keeps it. */
    CHECK(!wait_closed(idle->fd, 300), "%s: connection between messages "
          "kept", label);
    f = dial_unix(p);
    CHECK(f < 0, "%s: new connections refused after stop", label);
    if (f >= 0)
        close(f);
    /* The message in flight completes. */
    CHECK(pmc_client_eoh(busy->c, &r) == PMC_OK &&
              pmc_client_body(busy->c, "hi\r\n", 4, &r) == PMC_OK &&
              pmc_client_eom(busy->c, &r) == PMC_OK && r.code == 'c',
          "%s: in-flight message completed", label);
    for (size_t i = 0; i < r.nmods; i++)
        hdr |= r.mods[i].code == 'h';
    CHECK(hdr, "%s: with its header", label);
    CHECK(!wait_closed(busy->fd, 100), "%s: and kept after it", label);
    /* The MTA's next message on the kept connection is served whole. */
    CHECK(cli_message(idle, &hdr) == 'c' && hdr,
          "%s: a new message on a kept connection, during the drain", label);
    /* Each ends when the MTA ends it, and the run with the last. */
    CHECK(pmc_client_quit(busy->c) == PMC_OK && wait_closed(busy->fd, 1000),
          "%s: QUIT ends one", label);
    CHECK(pmc_client_quit(idle->c) == PMC_OK && wait_closed(idle->fd, 1000),
          "%s: QUIT ends the other", label);
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(now_ms() - t0 < 2000 && t.rc == PMC_OK,
          "%s: run returned once the MTA closed", label);
    CHECK(a.closes == 2 && a.eoms == 2, "%s: hooks after drain", label);
    cli_free(busy);
    cli_free(idle);
    srv_stop(&t, 0);

    /* A message that never ends is cut at the deadline. */
    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    busy = cli_new(dial_unix(p), 3000);
    idle = cli_new(dial_unix(p), 3000);
    cli_hello(busy, "busy");
    cli_hello(idle, "idle");
    pmc_client_mail(busy->c, &from, 1, &r);
    t0 = now_ms();
    pmc_server_stop(t.srv, 300);
    CHECK(wait_closed(busy->fd, 2000), "%s: stalled message cut", label);
    CHECK(wait_closed(idle->fd, 500), "%s: and the connection between "
          "messages", label);
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(now_ms() - t0 >= 250 && now_ms() - t0 < 1500,
          "%s: at the deadline (%lld ms)", label, now_ms() - t0);
    CHECK(a.aborts == 1 && a.closes == 2, "%s: abort ran on the cut message",
          label);
    cli_free(busy);
    cli_free(idle);
    srv_stop(&t, 0);
}

/* Stop before run: run returns at once. */
static void test_stop_before_run(void)
{
    app a;
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error e;
    char p[128], spec[160];

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    path_in(p, sizeof p, "early.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    srv = pmc_server_new(&cfg, &e);
    pmc_server_listen(srv, spec, 0, &e);
    pmc_server_stop(srv, 0);
    CHECK(pmc_server_run(srv, &e) == PMC_OK, "run after stop returns");
    CHECK(pmc_server_run(srv, &e) == PMC_ERR_SEQUENCE, "second run refused");
    pmc_server_free(srv);
    cfg.handlers = NULL;
    CHECK(pmc_server_new(&cfg, &e) == NULL && e.code == PMC_ERR_ARGUMENT,
          "no handlers refused");
}

/* --- tick and wake_fd --- */

typedef struct tickapp {
    app a;
    atomic_int ticks;
    atomic_int stop_at;
} tickapp;

static int on_tick(void *ap)
{
    tickapp *t = ap;
    int n = atomic_fetch_add(&t->ticks, 1) + 1;

    return n >= atomic_load(&t->stop_at);
}

static void test_tick(void)
{
    tickapp ta;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    int pfd[2];
    long long t0;

    memset(&ta, 0, sizeof ta);
    base_config(&cfg, &ta.a);
    cfg.tick = on_tick;
    cfg.tick_interval_ms = 0; /* only on the wake fd */
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) != 0)
        return;
    cfg.wake_fd = pfd[0];
    atomic_store(&ta.stop_at, 2);
    path_in(p, sizeof p, "tick.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    sleep_ms(100);
    CHECK(ta.ticks == 0, "no tick without a wake-up");
    if (write(pfd[1], "\x0f", 1) != 1)
        perror("write");
    wait_count(&ta.ticks, 1, 5000);
    sleep_ms(100); /* room for a second tick, which would be wrong */
    CHECK(ta.ticks == 1 && t.running, "one tick per wake-up, still running");
    t0 = now_ms();
    if (write(pfd[1], "\x02", 1) != 1)
        perror("write");
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(now_ms() - t0 < 1000 && ta.ticks == 2,
          "tick returning nonzero stopped the server");
    srv_stop(&t, 0);
    close(pfd[0]);
    close(pfd[1]);

    /* Periodic ticks. */
    memset(&ta, 0, sizeof ta);
    base_config(&cfg, &ta.a);
    cfg.tick = on_tick;
    cfg.tick_interval_ms = 50;
    atomic_store(&ta.stop_at, 4);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    t0 = now_ms();
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(now_ms() - t0 >= 150 && now_ms() - t0 < 1000,
          "periodic ticks (%lld ms for 4)", now_ms() - t0);
    srv_stop(&t, 0);
}

/* pmc_server_stop from a signal handler, delivered to the loop thread
 * itself so its epoll_wait is interrupted. */
static pmc_server *_Atomic sig_srv;

static void on_usr1(int sig)
{
    int e = errno; /* a handler must leave errno as it found it */
    pmc_server *srv = atomic_load(&sig_srv);

    (void)sig;
    if (srv)
        pmc_server_stop(srv, 0);
    errno = e;
}

static void test_signal_stop(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    struct sigaction sa, old;
    long long t0;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    path_in(p, sizeof p, "signal.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    atomic_store(&sig_srv, t.srv);
    sleep_ms(50);
    t0 = now_ms();
    pthread_kill(t.th, SIGUSR1);
    pthread_join(t.th, NULL);
    t.running = 0;
    atomic_store(&sig_srv, NULL);
    sigaction(SIGUSR1, &old, NULL);
    CHECK(t.rc == PMC_OK && now_ms() - t0 < 1000,
          "stop from a signal handler on the loop thread");
    srv_stop(&t, 0);
}

/* --- fd adoption --- */

typedef struct serve_arg {
    pmc_server_config *cfg;
    int fd;
    pmc_status rc;
    pmc_error err;
    pmc_server_stats stats;
} serve_arg;

static void *serve_thread(void *p)
{
    serve_arg *s = p;

    s->rc = pmc_serve_fd(s->cfg, s->fd, 42, &s->stats, &s->err);
    return NULL;
}

static void test_serve_fd(void)
{
    app a;
    pmc_server_config cfg;
    serve_arg sa;
    pthread_t th;
    int sv[2], hdr = 0, code;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.read_timeout_ms = 300;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return;
    memset(&sa, 0, sizeof sa);
    sa.cfg = &cfg;
    sa.fd = sv[0];
    pthread_create(&th, NULL, serve_thread, &sa);
    code = full_conv(sv[1], &hdr); /* closes sv[1] */
    pthread_join(th, NULL);
    CHECK(code == 'c' && hdr, "serve_fd: message served");
    CHECK(sa.rc == PMC_OK, "serve_fd: OK after QUIT (%s)",
          pmc_status_name(sa.rc));
    CHECK(fcntl(sv[0], F_GETFD) >= 0, "serve_fd: fd left open");
    CHECK(sa.stats.messages == 1 && sa.stats.replies['h'] == 1,
          "serve_fd: stats");
    CHECK(a.opens == 1 && a.closes == 1, "serve_fd: hooks");
    close(sv[0]);

    /* Garbage ends with the protocol error. */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    sa.fd = sv[0];
    pthread_create(&th, NULL, serve_thread, &sa);
    if (write(sv[1], "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) != 11)
        perror("write");
    pthread_join(th, NULL);
    CHECK(sa.rc != PMC_OK && sa.rc != PMC_ERR_TIMEOUT && sa.err.message[0],
          "serve_fd: TLS hello is a protocol error (%s: %s)",
          pmc_status_name(sa.rc), sa.err.message);
    CHECK(a.closes == 2, "serve_fd: conn_close after garbage");
    close(sv[0]);
    close(sv[1]);

    /* Half a packet: the read timeout. */
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    sa.fd = sv[0];
    pthread_create(&th, NULL, serve_thread, &sa);
    if (write(sv[1], "\0\0\0", 3) != 3)
        perror("write");
    pthread_join(th, NULL);
    CHECK(sa.rc == PMC_ERR_TIMEOUT, "serve_fd: timeout (%s)",
          pmc_status_name(sa.rc));
    close(sv[0]);
    close(sv[1]);
}

/* --- the thread pool --- */

typedef struct conv_arg {
    const char *path;
    const char *helo;
    int code;
    long long ms;
} conv_arg;

static void *conv_thread(void *p)
{
    conv_arg *c = p;
    long long t0 = now_ms();
    cli *k = cli_new(dial_unix(c->path), 10000);
    int hdr;

    c->code = cli_hello(k, c->helo) == PMC_OK ? cli_message(k, &hdr) : -1;
    pmc_client_quit(k->c);
    cli_free(k);
    c->ms = now_ms() - t0;
    return NULL;
}

static void test_threads(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    conv_arg slow = {0}, fast = {0};
    pthread_t ts, tf;
    pthread_t many[8];
    conv_arg margs[8];

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = PMC_MODEL_THREADS;
    cfg.threads = 4;
    atomic_store(&a.slow_ms, 2000);
    path_in(p, sizeof p, "threads.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    slow.path = fast.path = p;
    slow.helo = "slow";
    fast.helo = "fast";
    pthread_create(&ts, NULL, conv_thread, &slow);
    sleep_ms(100); /* the slow helo is now blocking a worker */
    pthread_create(&tf, NULL, conv_thread, &fast);
    pthread_join(tf, NULL);
    pthread_join(ts, NULL);
    CHECK(fast.code == 'c' && fast.ms < 500,
          "a blocked handler does not delay another connection (%lld ms)",
          fast.ms);
    CHECK(slow.code == 'c' && slow.ms >= 2000,
          "the slow one finished (%lld ms)", slow.ms);

    /* Many connections at once, each in order. */
    for (int i = 0; i < 8; i++) {
        margs[i].path = p;
        margs[i].helo = "many";
        pthread_create(&many[i], NULL, conv_thread, &margs[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(many[i], NULL);
        CHECK(margs[i].code == 'c', "parallel connection %d", i);
    }
    CHECK(a.order_bad == 0, "events of each connection in order");
    CHECK(srv_stop(&t, 1000) == PMC_OK && a.opens == 10 && a.closes == 10,
          "threads: hooks paired (%d/%d)", a.opens, a.closes);
}

/* Lead mode: the leading pool thread blocks in a step, the other one
 * (threads = 1 makes two) takes the loop over, and the host's tick runs
 * on the thread that called pmc_server_run, at once. */
typedef struct leadapp {
    tickapp ta;
    pthread_t home;
    atomic_int off_home; /* ticks run on another thread */
} leadapp;

static int on_lead_tick(void *ap)
{
    leadapp *la = ap;

    if (!pthread_equal(pthread_self(), la->home))
        atomic_fetch_add(&la->off_home, 1);
    return on_tick(&la->ta);
}

static void test_lead(void)
{
    leadapp la;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    conv_arg slow = {0}, fast = {0};
    pthread_t ts, tf;
    int pfd[2];

    memset(&la, 0, sizeof la);
    base_config(&cfg, &la.ta.a);
    cfg.model = PMC_MODEL_THREADS;
    cfg.threads = 1;
    cfg.pool_lead_us = 1000;
    cfg.tick = on_lead_tick;
    cfg.tick_interval_ms = 0;
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) != 0)
        return;
    cfg.wake_fd = pfd[0];
    atomic_store(&la.ta.stop_at, 2);
    atomic_store(&la.ta.a.slow_ms, 600);
    path_in(p, sizeof p, "lead.sock");
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    la.home = t.th;
    slow.path = fast.path = p;
    slow.helo = "slow";
    fast.helo = "fast";
    pthread_create(&ts, NULL, conv_thread, &slow);
    sleep_ms(100); /* the leader is in the slow helo */
    pthread_create(&tf, NULL, conv_thread, &fast);
    pthread_join(tf, NULL);
    CHECK(fast.code == 'c' && fast.ms < 300,
          "lead: the other thread took the loop over (%lld ms)", fast.ms);
    if (write(pfd[1], "\x0f", 1) != 1) /* a tick while one blocks */
        perror("write");
    sleep_ms(100);
    CHECK(la.ta.ticks == 1 && t.running,
          "lead: the tick ran while a handler blocked");
    pthread_join(ts, NULL);
    CHECK(slow.code == 'c' && slow.ms >= 600, "lead: the slow one finished");
    if (write(pfd[1], "\x02", 1) != 1)
        perror("write");
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(la.ta.ticks == 2 && la.off_home == 0,
          "lead: ticks ran on the home thread only, and stopped it");
    CHECK(t.rc == PMC_OK && la.ta.a.opens == 2 && la.ta.a.closes == 2,
          "lead: run returned on its thread, hooks paired (%d/%d)",
          la.ta.a.opens, la.ta.a.closes);
    srv_stop(&t, 0);
    close(pfd[0]);
    close(pfd[1]);
}

int main(void)
{
    int fds0 = count_fds(), fds1;

    snprintf(dir, sizeof dir, "/tmp/pmc-srv-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_parse();
    test_listen_unix();
    test_listen_unix_full_backlog();
    test_listen_inet();
    test_basic(PMC_MODEL_LOOP, "loop");
    test_basic(PMC_MODEL_THREADS, "threads");
    test_stats();
    test_tcp_and_adopt(PMC_MODEL_LOOP, "loop");
    test_tcp_and_adopt(PMC_MODEL_THREADS, "threads");
    test_pipelined_split(PMC_MODEL_LOOP, "loop");
    test_pipelined_split(PMC_MODEL_THREADS, "threads");
    test_timeouts();
    test_big_reply(PMC_MODEL_LOOP, "loop");
    test_big_reply(PMC_MODEL_THREADS, "threads");
    test_cap();
    test_drain(PMC_MODEL_LOOP, "loop");
    test_drain(PMC_MODEL_THREADS, "threads");
    test_stop_before_run();
    test_signal_stop();
    test_tick();
    test_serve_fd();
    test_threads();
    /* Again in lead mode: steps on the loop's thread, the loop handed to
     * a pool thread when one blocks (test_threads blocks one for 2 s). */
    srvtest_lead_us = 2000;
    test_basic(PMC_MODEL_THREADS, "threads+lead");
    test_tcp_and_adopt(PMC_MODEL_THREADS, "threads+lead");
    test_pipelined_split(PMC_MODEL_THREADS, "threads+lead");
    test_big_reply(PMC_MODEL_THREADS, "threads+lead");
    test_drain(PMC_MODEL_THREADS, "threads+lead");
    test_tick();
    test_threads();
    srvtest_lead_us = 0;
    test_lead();
    fds1 = count_fds();
    CHECK(fds0 == fds1, "no leaked descriptors (%d before, %d after)", fds0,
          fds1);
    rmdir(dir);
    return tap_done();
}
