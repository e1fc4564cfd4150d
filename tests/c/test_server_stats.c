/*
 * pmc_server_stats_get while connections are open: a connection hands its
 * counters to the server only when it closes, so a reader must get the
 * live connections' counts added, at once (no waiting for a merge), and
 * each count exactly once when the connection then closes.  In each
 * threading model; under ThreadSanitizer (make test-tsan) this is also the
 * check that reading them from another thread is not a data race.
 */
#include "srvtest.h"

static char dir[64];

static int settled(pmc_server *srv, uint64_t messages, int ms)
{
    long long end = now_ms() + ms;
    pmc_server_stats st;

    for (;;) {
        pmc_server_stats_get(srv, &st);
        if (st.conn_active == 0 && st.messages == messages)
            return 1;
        if (now_ms() > end)
            return 0;
        sleep_ms(1);
    }
}

static void test_live(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    pmc_server_stats s;
    cli *k1, *k2;
    int hdr;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 3;
    snprintf(p, sizeof p, "%s/live.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    k1 = cli_new(dial_unix(p), 5000);
    k2 = cli_new(dial_unix(p), 5000);
    CHECK(cli_hello(k1, "one.example") == PMC_OK &&
              cli_hello(k2, "two.example") == PMC_OK,
          "%s: two connections negotiated", label);
    CHECK(cli_message(k1, &hdr) == 'c' && cli_message(k1, &hdr) == 'c' &&
              cli_message(k2, &hdr) == 'c',
          "%s: three messages answered", label);

    /* Read right after the last EOM reply came back: no sleep. */
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.messages == 3 && s.conn_active == 2 && s.conn_accepted == 2,
          "%s: open connections' messages counted (%llu, active %llu)",
          label, (unsigned long long)s.messages,
          (unsigned long long)s.conn_active);
    CHECK(s.replies['h'] == 3 && s.replies['O'] == 2 &&
              s.cb_count[PMC_EV_EOM] == 3 && s.cb_count[PMC_EV_HELO] == 2 &&
              s.cb_ns_max[PMC_EV_EOM] <= s.cb_ns_sum[PMC_EV_EOM],
          "%s: their replies and callback counters (h %llu, O %llu, "
          "eom %llu)",
          label, (unsigned long long)s.replies['h'],
          (unsigned long long)s.replies['O'],
          (unsigned long long)s.cb_count[PMC_EV_EOM]);

    /* One closes: its counts move to the server, not twice. */
    pmc_client_quit(k1->c);
    cli_free(k1);
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.messages == 3 && s.replies['h'] == 3,
          "%s: a closing connection is counted once (%llu)", label,
          (unsigned long long)s.messages);
    CHECK(cli_message(k2, &hdr) == 'c', "%s: a fourth message", label);
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.messages == 4 && s.cb_count[PMC_EV_EOM] == 4,
          "%s: counted while the other one closes (%llu)", label,
          (unsigned long long)s.messages);
    pmc_client_quit(k2->c);
    cli_free(k2);
    CHECK(settled(t.srv, 4, 2000), "%s: all closed, four messages", label);
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.replies['h'] == 4 && s.cb_count[PMC_EV_EOM] == 4 &&
              s.cb_count[PMC_EV_CLOSE] == 2,
          "%s: the totals after both closed (h %llu, close %llu)", label,
          (unsigned long long)s.replies['h'],
          (unsigned long long)s.cb_count[PMC_EV_CLOSE]);
    /* Each event's latency buckets hold its calls, no more, no fewer; an
     * event never called has no time either (the merge skips those). */
    int odd = -1;
    for (int ev = 0; ev < PMC_EV_COUNT && odd < 0; ev++) {
        uint64_t in = 0;
        for (int i = 0; i < PMC_LATENCY_BUCKETS; i++)
            in += s.cb_hist[ev][i];
        if (in != s.cb_count[ev] || s.cb_ns_max[ev] > s.cb_ns_sum[ev] ||
            (s.cb_count[ev] == 0 && s.cb_ns_sum[ev] != 0))
            odd = ev;
    }
    CHECK(odd < 0 && s.cb_count[PMC_EV_HEADER] >= 4 &&
              s.cb_count[PMC_EV_UNKNOWN] == 0,
          "%s: every event's buckets add up to its calls (first odd: %d)",
          label, odd);
    srv_stop(&t, 1000);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/pmc-stats-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_live(PMC_MODEL_LOOP, "loop");
    test_live(PMC_MODEL_THREADS, "threads");
    srvtest_lead_us = 2000;
    test_live(PMC_MODEL_THREADS, "threads+lead");
    srvtest_lead_us = 0;
    rmdir(dir);
    return tap_done();
}
