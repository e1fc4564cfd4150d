/*
 * The loop reads the clock once per wake-up, after the wake-up's steps,
 * and dates the connections those steps put back on a timeout list with
 * it.  A handler that runs longer than the timeout must therefore not
 * start the connection's timeout before it ran: the MTA gets the whole
 * timeout after the reply.  And the timeout must still fire when the MTA
 * then says nothing.  In each threading model.
 */
#include "srvtest.h"

static char dir[64];

static void test_slow_handler(pmc_server_model model, const char *label)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[100], spec[160];
    cli *k;
    int hdr, closed;
    long long t0, dt;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.model = model;
    cfg.threads = 3;
    cfg.idle_timeout_ms = 300;  /* between messages */
    cfg.read_timeout_ms = 300;  /* inside one */
    atomic_store(&a.eom_ms, 500); /* each EOM takes longer than that */
    snprintf(p, sizeof p, "%s/clock.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    k = cli_new(dial_unix(p), 5000);
    CHECK(cli_hello(k, "slow.example") == PMC_OK, "%s: negotiated", label);
    CHECK(cli_message(k, &hdr) == 'c' && hdr,
          "%s: a message with a slow EOM answered", label);
    /* Well inside the idle timeout counted from the reply, well past it
     * counted from before the handler. */
    sleep_ms(100);
    CHECK(cli_message(k, &hdr) == 'c' && hdr,
          "%s: the next message 100 ms after the reply is still served",
          label);
    t0 = now_ms();
    closed = wait_closed(k->fd, 3000);
    dt = now_ms() - t0;
    CHECK(closed && dt >= 250 && dt < 1000,
          "%s: then silence: idle timeout after %lld ms", label, dt);
    cli_free(k);
    srv_stop(&t, 0);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/pmc-clock-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_slow_handler(PMC_MODEL_LOOP, "loop");
    test_slow_handler(PMC_MODEL_THREADS, "threads");
    srvtest_lead_us = 2000;
    test_slow_handler(PMC_MODEL_THREADS, "threads+lead");
    srvtest_lead_us = 0;
    rmdir(dir);
    return tap_done();
}
