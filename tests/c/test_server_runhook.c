/*
 * Lead mode's run_begin/run_end: the leader brackets the steps of one
 * wake-up with them when there are several (a binding takes its GIL once
 * for the run instead of once per handler).  They must come in pairs on
 * one thread, never nest, and the handlers of those steps must run
 * between them; with them or without, every conversation gets the same
 * replies.  Many connections send whole conversations at once, so wake-ups
 * find several ready.  And a leader taken over in the middle of a step
 * that reads the loop's buffer (a handler blocks with more packets behind
 * it in the same read) must leave that step its bytes.
 */
#include "srvtest.h"

#define NCONN 16

static char dir[64];
static _Thread_local int in_run;
static atomic_int begins, ends, unpaired, opens_in_run;

static void run_begin(void *ap)
{
    (void)ap;
    if (in_run)
        atomic_fetch_add(&unpaired, 1);
    in_run = 1;
    atomic_fetch_add(&begins, 1);
}

static void run_end(void *ap)
{
    (void)ap;
    if (!in_run)
        atomic_fetch_add(&unpaired, 1);
    in_run = 0;
    atomic_fetch_add(&ends, 1);
}

static void *open_hook(void *ap, const pmc_conn_info *ci)
{
    if (in_run)
        atomic_fetch_add(&opens_in_run, 1);
    return h_open(ap, ci);
}

/* The reply codes of NCONN simultaneous conversations, all equal, into
 * codes; 0 when they differ or one failed. */
static int burst(const char *path, char *codes, size_t cap)
{
    int fd[NCONN];
    pmc_buf b = {0};
    static uint8_t in[4096];
    char got[64];
    int same = 1;

    raw_conversation(&b);
    for (int i = 0; i < NCONN; i++)
        fd[i] = dial_unix(path);
    for (int i = 0; i < NCONN; i++)
        if (fd[i] < 0 || write(fd[i], b.data, b.len) != (ssize_t)b.len)
            same = 0;
    for (int i = 0; i < NCONN; i++) {
        size_t n = fd[i] >= 0 ? read_all(fd[i], in, sizeof in, 3000) : 0;
        codes_of(in, n, i ? got : codes, i ? sizeof got : cap);
        if (i && strcmp(got, codes) != 0)
            same = 0;
        if (fd[i] >= 0)
            close(fd[i]);
    }
    pmc_buf_free(&b);
    return same && codes[0] == 'O';
}

static void run(int lead_us, int hooks, char *codes, size_t cap)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[100], spec[160];

    memset(&a, 0, sizeof a);
    srvtest_lead_us = (unsigned)lead_us;
    base_config(&cfg, &a);
    srvtest_lead_us = 0;
    cfg.model = lead_us ? PMC_MODEL_THREADS : PMC_MODEL_LOOP;
    cfg.threads = 4;
    cfg.conn_open = open_hook;
    if (hooks) {
        cfg.run_begin = run_begin;
        cfg.run_end = run_end;
    }
    snprintf(p, sizeof p, "%s/run.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", p);
    codes[0] = 0;
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    for (int round = 0; round < 5; round++)
        if (!burst(p, codes, cap)) {
            codes[0] = 0;
            break;
        }
    srv_stop(&t, 1000);
}

/* raw_conversation with another HELO name. */
static void conversation(pmc_buf *b, const char *helo)
{
    static const uint8_t opt[12] = {0, 0, 0, 6, 0, 0, 1, 0xff,
                                    0, 0x1f, 0xff, 0xff};
    put(b, 'O', opt, 12);
    put(b, 'C', "mta\0" "4\0\x19" "192.0.2.1", 4 + 1 + 2 + 10);
    put(b, 'H', helo, strlen(helo) + 1);
    put(b, 'M', "<a@x>", 6);
    put(b, 'R', "<good@x>", 9);
    put(b, 'T', NULL, 0);
    put(b, 'L', "Subject\0hi", 11);
    put(b, 'N', NULL, 0);
    put(b, 'B', "Hello.\r\n", 8);
    put(b, 'E', NULL, 0);
    put(b, 'Q', NULL, 0);
}

static void test_takeover(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[100], spec[160], want[64], got[64];
    pmc_buf slow = {0}, quick = {0};
    static uint8_t in[4096];
    int fd[NCONN], ok = 1;

    memset(&a, 0, sizeof a);
    srvtest_lead_us = 2000;
    base_config(&cfg, &a);
    srvtest_lead_us = 0;
    cfg.model = PMC_MODEL_THREADS;
    cfg.threads = 4;
    atomic_store(&a.slow_ms, 200); /* far past the 2 ms lead */
    snprintf(p, sizeof p, "%s/take.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    conversation(&slow, "slow");
    conversation(&quick, "quick.example");
    for (int i = 0; i < NCONN; i++)
        fd[i] = dial_unix(p);
    /* The slow one's whole conversation in one read: its step blocks in
     * HELO with the rest of it still in the buffer it was given. */
    if (fd[0] < 0 || write(fd[0], slow.data, slow.len) != (ssize_t)slow.len)
        ok = 0;
    sleep_ms(50); /* taken over by now */
    for (int i = 1; i < NCONN; i++)
        if (fd[i] < 0 ||
            write(fd[i], quick.data, quick.len) != (ssize_t)quick.len)
            ok = 0;
    for (int i = NCONN - 1; i >= 0; i--) {
        size_t n = fd[i] >= 0 ? read_all(fd[i], in, sizeof in, 5000) : 0;
        codes_of(in, n, i == NCONN - 1 ? want : got,
                 i == NCONN - 1 ? sizeof want : sizeof got);
        if (i < NCONN - 1 && strcmp(got, want) != 0) {
            DIAG("connection %d: '%s', not '%s'", i, got, want);
            ok = 0;
        }
        if (fd[i] >= 0)
            close(fd[i]);
    }
    CHECK(ok && !strcmp(want, "Occcccccchc"),
          "taken over inside a step: every conversation answered whole "
          "('%s')", want);
    CHECK(atomic_load(&a.helos) == NCONN, "every HELO handled once (%d)",
          atomic_load(&a.helos));
    pmc_buf_free(&slow);
    pmc_buf_free(&quick);
    srv_stop(&t, 1000);
}

int main(void)
{
    char ref[64], lead[64], plain[64];

    snprintf(dir, sizeof dir, "/tmp/pmc-run-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    run(0, 0, ref, sizeof ref);
    CHECK(ref[0] == 'O', "loop model: %d conversations answered ('%s')",
          NCONN, ref);
    run(2000, 0, plain, sizeof plain);
    CHECK(!strcmp(plain, ref), "lead mode without the hooks: same replies");
    CHECK(atomic_load(&begins) == 0, "no hooks, no calls");
    run(2000, 1, lead, sizeof lead);
    CHECK(!strcmp(lead, ref), "lead mode with the hooks: same replies "
                              "('%s')", lead);
    CHECK(atomic_load(&begins) > 0 && atomic_load(&begins) ==
                                          atomic_load(&ends),
          "runs happened, each begun and ended (%d, %d)",
          atomic_load(&begins), atomic_load(&ends));
    CHECK(atomic_load(&unpaired) == 0,
          "never nested, ended on the thread that began it");
    CHECK(atomic_load(&opens_in_run) > 0,
          "handlers ran inside runs (%d connection opens)",
          atomic_load(&opens_in_run));
    test_takeover();
    rmdir(dir);
    return tap_done();
}
