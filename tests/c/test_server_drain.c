/*
 * A stop behind a load balancer: a connection the kernel completed before
 * the stop, still waiting in the listen queue when the stop began, is
 * accepted and served like any other instead of being reset when the
 * listener closes (HAProxy connected it and already sent the MTA's first
 * packet; a reset would be a milter failure to the MTA).
 *
 * And when the host keeps its own descriptor of the listening socket (Perl
 * gives the server a duplicate), the stop still refuses new connections at
 * once rather than letting them queue until the process exits and they are
 * reset.
 *
 * The tick hook makes the order certain: it runs on the loop thread,
 * dials the server (the kernel completes the handshake, the loop has not
 * accepted) and asks for the stop, which begins before the loop looks at
 * its listener again.
 */
#include "srvtest.h"

static uint16_t port;
static atomic_int queued_fd = -1;

static int dial_then_stop(void *ap)
{
    (void)ap;
    if (atomic_load(&queued_fd) >= 0)
        return 0;
    atomic_store(&queued_fd, dial_inet("127.0.0.1", port));
    return 1;
}

static void test_queued_at_stop(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    cli *k;
    int lfd, hdr = 0;
    long long end;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 2;
    cfg.pool_lead_us = 0; /* the tick on the loop thread: see above */
    cfg.tick = dial_then_stop;
    cfg.tick_interval_ms = 50;
    cfg.drain_timeout_ms = 5000;
    atomic_store(&queued_fd, -1);
    lfd = srv_start(&t, &cfg, "inet:0@127.0.0.1");
    if (!CHECK(lfd >= 0, "%s: started", label))
        return;
    port = port_of(lfd);
    end = now_ms() + 3000;
    while (atomic_load(&queued_fd) < 0 && now_ms() < end)
        sleep_ms(5);
    if (!CHECK(atomic_load(&queued_fd) >= 0, "%s: dialed from the tick",
               label)) {
        srv_stop(&t, 0);
        return;
    }
    k = cli_new(atomic_load(&queued_fd), 3000);
    CHECK(cli_hello(k, "queued") == PMC_OK,
          "%s: the queued connection negotiates after the stop began", label);
    CHECK(pmc_server_health(t.srv) == PMC_HEALTH_DRAINING,
          "%s: health says draining for a stop the tick asked for", label);
    CHECK(cli_message(k, &hdr) == 'c' && hdr, "%s: and its message is served",
          label);
    CHECK(pmc_client_quit(k->c) == PMC_OK && wait_closed(k->fd, 2000),
          "%s: closed at its QUIT", label);
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(t.rc == PMC_OK && atomic_load(&a.opens) == 1 &&
              atomic_load(&a.closes) == 1,
          "%s: the run ends with it (opens %d, closes %d)", label,
          atomic_load(&a.opens), atomic_load(&a.closes));
    cli_free(k);
    srv_stop(&t, 0);
}

/* The server listens on a duplicate; the host's descriptor stays open. */
static void test_host_keeps_listener(pmc_server_model model,
                                     const char *label)
{
    app a;
    pmc_server_config cfg;
    pmc_error e;
    tsrv t;
    cli *k;
    int host_fd, f;
    uint16_t p;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.workers = 1;
    memset(&t, 0, sizeof t);
    host_fd = pmc_listen("inet:0@127.0.0.1", 0, 0, &e);
    if (!CHECK(host_fd >= 0, "%s: listen", label))
        return;
    p = port_of(host_fd);
    t.srv = pmc_server_new(&cfg, &e);
    CHECK(t.srv && pmc_server_add_fd(t.srv, dup(host_fd), &e) == PMC_OK,
          "%s: the server adopts a duplicate", label);
    if (pthread_create(&t.th, NULL, srv_thread, &t) != 0)
        abort();
    t.running = 1;
    /* A connection open across the stop keeps the run going. */
    k = cli_new(dial_inet("127.0.0.1", p), 3000);
    CHECK(cli_hello(k, "kept") == PMC_OK, "%s: a connection open", label);
    pmc_server_stop(t.srv, 5000);
    /* The loop thread shuts the listener when it gets to the stop: until
     * then a connect still gets in (and is let go: an EOF the drain
     * serves), however long a fixed sleep was.  One caught by the shut
     * itself is reset; the next is refused. */
    for (long long end = now_ms() + 5000;; sleep_ms(10)) {
        f = dial_inet("127.0.0.1", p);
        if ((f < 0 && errno != ECONNRESET) || now_ms() > end)
            break;
        if (f >= 0)
            close(f);
    }
    CHECK(f < 0 && errno == ECONNREFUSED,
          "%s: new connections refused while the host holds the socket",
          label);
    if (f >= 0)
        close(f);
    CHECK(cli_message(k, NULL) == 'c' && pmc_client_quit(k->c) == PMC_OK &&
              wait_closed(k->fd, 2000),
          "%s: the open one served to its QUIT", label);
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(t.rc == PMC_OK, "%s: the run ends", label);
    cli_free(k);
    srv_stop(&t, 0);
    close(host_fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    test_queued_at_stop(PMC_MODEL_LOOP, "loop");
    test_queued_at_stop(PMC_MODEL_THREADS, "threads");
    test_host_keeps_listener(PMC_MODEL_LOOP, "loop");
    test_host_keeps_listener(PMC_MODEL_FORK, "fork");
    return tap_done();
}
