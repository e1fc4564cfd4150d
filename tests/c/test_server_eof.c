/*
 * The peer's end, wherever it comes: a conversation cut at every byte
 * offset by a FIN, a half-close or a reset, in each threading model, over
 * TCP (where the end often arrives in the same epoll edge as the last
 * bytes, which is what used to leave connections open), and ends that come
 * while a handler runs or while a large reply is being written.  After each
 * case the connection must be released: conn_close and the session's close
 * handler ran once, the server's counters say nothing is active, and the
 * process holds no more descriptors than before.
 */
#include "srvtest.h"

enum end_kind { END_FIN, END_HALF, END_RESET };
static const char *const end_name[] = {"FIN", "half-close", "reset"};

/* Connections made so far: the server may not have accepted the last one
 * yet when its peer is already gone, so its own counters cannot say. */
static int dialed;

/* Wait until every connection made so far has been closed by the server. */
static int settled(app *a, pmc_server *srv, int ms)
{
    long long end = now_ms() + ms;
    pmc_server_stats st;

    for (;;) {
        pmc_server_stats_get(srv, &st);
        if (atomic_load(&a->closes) == dialed &&
            atomic_load(&a->opens) == dialed && st.conn_active == 0)
            return 1;
        if (now_ms() > end)
            return 0;
        sleep_ms(1);
    }
}

static void end_conn(int fd, enum end_kind how)
{
    if (how == END_RESET) {
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else if (how == END_HALF) {
        shutdown(fd, SHUT_WR);
        return;
    }
    close(fd);
}

/* One connection that sends n bytes of conv and ends; 1 when released. */
static int one_case(app *a, tsrv *t, uint16_t port, const uint8_t *conv,
                    size_t n, enum end_kind how)
{
    int fd = dial_inet("127.0.0.1", port), ok = 1;

    if (fd < 0)
        return 0;
    dialed++;
    /* One send, so the bytes and the end tend to share one segment
     * train and one epoll edge. */
    if (n && send(fd, conv, n, MSG_NOSIGNAL) != (ssize_t)n)
        ok = 0;
    end_conn(fd, how);
    if (how == END_HALF) {
        /* The peer still reads: the server must close its side. */
        ok &= wait_closed(fd, 2000);
        close(fd);
    }
    return ok && settled(a, t->srv, 2000);
}

/* A server of one model on a TCP port of 127.0.0.1, with the milter of
 * srvtest.h and the raw conversation the cases cut. */
typedef struct fixture {
    app a;
    tsrv t;
    pmc_buf conv;
    uint16_t port;
} fixture;

static int fixture_start(fixture *f, pmc_server_model model,
                         unsigned lead_us, unsigned actions, const char *label)
{
    pmc_server_config cfg;
    int lfd;

    memset(f, 0, sizeof *f);
    dialed = 0;
    base_config(&cfg, &f->a);
    cfg.model = model;
    cfg.threads = 2;
    cfg.pool_lead_us = lead_us;
    if (actions)
        cfg.session.actions = actions;
    raw_conversation(&f->conv);
    lfd = srv_start(&f->t, &cfg, "inet:0@127.0.0.1");
    if (!CHECK(lfd >= 0, "%s: server started", label)) {
        pmc_buf_free(&f->conv);
        return 0;
    }
    f->port = port_of(lfd);
    return 1;
}

static void fixture_stop(fixture *f)
{
    srv_stop(&f->t, 0);
    pmc_buf_free(&f->conv);
}

static void every_offset(pmc_server_model model, unsigned lead_us,
                         const char *label)
{
    fixture f;
    int fds0 = count_fds(), fds_srv;

    if (!fixture_start(&f, model, lead_us, 0, label))
        return;
    /* Let the server set up (epoll, pool) before counting its own. */
    full_conv(dial_inet("127.0.0.1", f.port), NULL);
    dialed++;
    settled(&f.a, f.t.srv, 2000);
    fds_srv = count_fds();
    for (int how = END_FIN; how <= END_RESET; how++) {
        size_t bad = 0, first_bad = 0;
        int fds;
        for (size_t n = 0; n < f.conv.len; n++)
            if (!one_case(&f.a, &f.t, f.port, f.conv.data, n,
                          (enum end_kind)how) &&
                bad++ == 0)
                first_bad = n;
        CHECK(bad == 0,
              "%s: %s at every offset of %zu: %zu left open (first at %zu)",
              label, end_name[how], f.conv.len, bad, first_bad);
        fds = count_fds();
        CHECK(fds == fds_srv, "%s: %s: descriptors back (%d, baseline %d)",
              label, end_name[how], fds, fds_srv);
    }
    CHECK(f.a.close_h == f.a.opens,
          "%s: the close handler ran once per connection (%d of %d)", label,
          (int)f.a.close_h, (int)f.a.opens);
    CHECK(srv_stop(&f.t, 0) == PMC_OK, "%s: stopped", label);
    CHECK(count_fds() == fds0, "%s: no descriptor left after stop", label);
    pmc_buf_free(&f.conv);
}

/* Length of the conversation up to and including its first EOM. */
static size_t through_first_eom(const pmc_buf *b)
{
    size_t at = 0;

    while (at + 5 <= b->len) {
        uint32_t len = (uint32_t)b->data[at] << 24 |
                       (uint32_t)b->data[at + 1] << 16 |
                       (uint32_t)b->data[at + 2] << 8 | b->data[at + 3];
        char cmd = (char)b->data[at + 4];
        at += 4 + len;
        if (cmd == 'E')
            return at;
    }
    return b->len;
}

/* Ends while the EOM handler runs, and while a 4 MiB reply is being
 * written to a peer that stopped reading. */
static void busy_ends(pmc_server_model model, unsigned lead_us,
                      const char *label)
{
    fixture f;
    size_t n;

    if (!fixture_start(&f, model, lead_us, PMC_ACT_ADDHDRS | PMC_ACT_CHGBODY,
                       label))
        return;
    n = through_first_eom(&f.conv);

    atomic_store(&f.a.eom_ms, 100);
    for (int how = END_FIN; how <= END_RESET; how++)
        CHECK(one_case(&f.a, &f.t, f.port, f.conv.data, n, (enum end_kind)how),
              "%s: %s while the EOM handler runs: released", label,
              end_name[how]);
    atomic_store(&f.a.eom_ms, 0);

    atomic_store(&f.a.big_body, 4 << 20);
    for (int how = END_FIN; how <= END_RESET; how += 2) {
        int fd = dial_inet("127.0.0.1", f.port);
        int small = 4096;
        CHECK(fd >= 0, "%s: connected", label);
        if (fd < 0)
            break;
        dialed++;
        /* A small receive window, so the reply cannot all be sent. */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        CHECK(send(fd, f.conv.data, n, MSG_NOSIGNAL) == (ssize_t)n,
              "%s: sent", label);
        sleep_ms(100);
        end_conn(fd, (enum end_kind)how);
        CHECK(settled(&f.a, f.t.srv, 2000),
              "%s: %s while a large reply is written: released", label,
              end_name[how]);
    }
    /* A half-closed peer that still reads gets the whole reply, then the
     * end. */
    {
        int fd = dial_inet("127.0.0.1", f.port);
        static uint8_t sink[8 << 20];
        size_t got;
        CHECK(fd >= 0 && send(fd, f.conv.data, n, MSG_NOSIGNAL) == (ssize_t)n,
              "%s: sent", label);
        dialed++;
        shutdown(fd, SHUT_WR);
        got = read_all(fd, sink, sizeof sink, 3000);
        CHECK(got > (4u << 20), "%s: half-closed peer read the reply (%zu)",
              label, got);
        close(fd);
        CHECK(settled(&f.a, f.t.srv, 2000), "%s: then released", label);
    }
    atomic_store(&f.a.big_body, 0);
    CHECK(f.a.close_h == f.a.opens,
          "%s: close handler once per connection (%d of %d)", label,
          (int)f.a.close_h, (int)f.a.opens);
    fixture_stop(&f);
}

/* A stop with a peer that went away inside a message does not wait for
 * the drain deadline. */
static void stop_after_gone(pmc_server_model model, unsigned lead_us,
                            const char *label)
{
    fixture f;
    int fd;
    long long t0;

    if (!fixture_start(&f, model, lead_us, 0, label))
        return;
    fd = dial_inet("127.0.0.1", f.port);
    /* OPTNEG through the first RCPT, and a macro packet, then FIN. */
    {
        static const uint8_t mac[] = {0, 0, 0, 7, 'D', 'R',
                                      'i', 0, 'Q', '1', 0};
        size_t upto = 0;
        int seen = 0;
        while (upto + 5 <= f.conv.len) {
            uint32_t len = (uint32_t)f.conv.data[upto + 3];
            char cmd = (char)f.conv.data[upto + 4];
            upto += 4 + len;
            if (cmd == 'R' && ++seen == 1)
                break;
        }
        CHECK(send(fd, f.conv.data, upto, MSG_NOSIGNAL) == (ssize_t)upto &&
                  send(fd, mac, sizeof mac, MSG_NOSIGNAL) ==
                      (ssize_t)sizeof mac,
              "%s: sent", label);
    }
    sleep_ms(50);
    close(fd);
    sleep_ms(50);
    t0 = now_ms();
    pmc_server_stop(f.t.srv, 10000);
    pthread_join(f.t.th, NULL);
    f.t.running = 0;
    CHECK(now_ms() - t0 < 2000, "%s: stop with a gone peer took %lld ms",
          label, now_ms() - t0);
    CHECK(f.a.aborts >= 1 && f.a.closes == 1, "%s: abort and close ran",
          label);
    fixture_stop(&f);
}

int main(void)
{
    int fds0 = count_fds();
    static const struct {
        pmc_server_model model;
        unsigned lead_us;
        const char *label;
    } models[] = {
        {PMC_MODEL_LOOP, 0, "loop"},
        {PMC_MODEL_THREADS, 0, "threads"},
        {PMC_MODEL_THREADS, 2000, "threads+lead"},
    };

    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        every_offset(models[i].model, models[i].lead_us, models[i].label);
        busy_ends(models[i].model, models[i].lead_us, models[i].label);
        stop_after_gone(models[i].model, models[i].lead_us, models[i].label);
    }
    CHECK(count_fds() == fds0, "no leaked descriptors (%d before, %d after)",
          fds0, count_fds());
    return tap_done();
}
