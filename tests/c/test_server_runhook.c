/*
 * Lead mode's run_begin/run_end: the leader brackets the steps of one
 * wake-up with them when there are several (a binding takes its GIL once
 * for the run instead of once per handler).  They must come in pairs on
 * one thread, never nest, and the handlers of those steps must run
 * between them; with them or without, every conversation gets the same
 * replies.  Many connections send whole conversations at once, so wake-ups
 * find several ready.
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
    rmdir(dir);
    return tap_done();
}
