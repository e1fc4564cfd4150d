/*
 * Server process models and descriptor exhaustion: prefork respawn,
 * recycling, reload and child hooks; fork per connection; accept back-off
 * on EMFILE (in a forked child with a low RLIMIT_NOFILE, so this process's
 * limit is untouched).
 */
#include "srvtest.h"

#include <sys/resource.h>
#include <sys/wait.h>

static char dir[64];
static int hook_pipe[2];

static int on_child_init(void *ap)
{
    pipe_note(ap, 'i');
    return 0;
}

static void on_child_exit(void *ap)
{
    pipe_note(ap, 'e');
}

static atomic_int reloads;

static void on_reload(void *ap)
{
    (void)ap;
    atomic_fetch_add(&reloads, 1);
}

/* Hook lines ("i123", "e123", "o123") seen so far. */
typedef struct lines {
    char tag[256];
    long pid[256];
    int n;
} lines;

/* Read hook lines until 'want' lines with 'tag' were seen in total, or ms
 * pass.  Returns how many with that tag there are. */
static int wait_tag(lines *L, char tag, int want, int ms)
{
    long long end = now_ms() + ms;
    static char buf[4096];
    static size_t have;

    for (;;) {
        int cnt = 0;
        for (int i = 0; i < L->n; i++)
            cnt += L->tag[i] == tag;
        if (cnt >= want || now_ms() > end)
            return cnt;
        {
            struct pollfd p = {hook_pipe[0], POLLIN, 0};
            ssize_t r;
            char *nl;
            if (poll(&p, 1, 50) <= 0)
                continue;
            r = read(hook_pipe[0], buf + have, sizeof buf - 1 - have);
            if (r <= 0)
                continue;
            have += (size_t)r;
            buf[have] = 0;
            while ((nl = strchr(buf, '\n')) && L->n < 256) {
                *nl = 0;
                L->tag[L->n] = buf[0];
                L->pid[L->n] = strtol(buf + 1, NULL, 10);
                L->n++;
                memmove(buf, nl + 1, have - (size_t)(nl + 1 - buf) + 1);
                have -= (size_t)(nl + 1 - buf);
            }
        }
    }
}

static long nth_pid(const lines *L, char tag, int k)
{
    for (int i = 0; i < L->n; i++)
        if (L->tag[i] == tag && k-- == 0)
            return L->pid[i];
    return -1;
}

static void on_before_fork(void *ap)
{
    pipe_note(ap, 'b');
}

static void on_after_fork(void *ap)
{
    pipe_note(ap, 'a');
}

/* The master's warnings (a worker's death), kept for the checks. */
static pthread_mutex_t warn_mu = PTHREAD_MUTEX_INITIALIZER;
static char warned[1024];
static pid_t test_pid;

static void log_warnings(void *ap, int level, uint64_t conn, const char *qid,
                         const char *msg)
{
    (void)ap;
    (void)conn;
    (void)qid;
    if (level > PMC_LOG_WARNING || getpid() != test_pid)
        return;
    pthread_mutex_lock(&warn_mu);
    snprintf(warned + strlen(warned), sizeof warned - strlen(warned),
             "%s\n", msg);
    pthread_mutex_unlock(&warn_mu);
}

static int warned_has(const char *what)
{
    int r;

    pthread_mutex_lock(&warn_mu);
    r = strstr(warned, what) != NULL;
    pthread_mutex_unlock(&warn_mu);
    return r;
}

static void proc_config(pmc_server_config *cfg, app *a,
                        pmc_server_model model)
{
    memset(a, 0, sizeof *a);
    base_config(cfg, a);
    cfg->model = model;
    a->pipe_w = hook_pipe[1];
    cfg->child_init = on_child_init;
    cfg->child_exit = on_child_exit;
    cfg->reload = on_reload;
    cfg->before_fork = on_before_fork;
    cfg->after_fork_parent = on_after_fork;
}

/* Start cfg's server on dir/NAME.sock, whose path goes to p; as
 * srv_start. */
static int proc_start(tsrv *t, pmc_server_config *cfg, const char *name,
                      char *p, size_t cap)
{
    char spec[160];

    snprintf(p, cap, "%s/%s.sock", dir, name);
    snprintf(spec, sizeof spec, "unix:%s", p);
    return srv_start(t, cfg, spec);
}

/* The fork hooks ran in this process, in pairs (before, after), once per
 * child: 'forks' of them. */
static void check_fork_hooks(lines *L, int forks, const char *label)
{
    int nb = wait_tag(L, 'b', forks, 2000);
    int na = wait_tag(L, 'a', forks, 2000);
    int expect_b = 1, ok = 1;

    CHECK(nb == forks && na == forks,
          "%s: before_fork %d, after_fork_parent %d, for %d forks", label,
          nb, na, forks);
    for (int i = 0; i < L->n; i++) {
        if (L->tag[i] != 'b' && L->tag[i] != 'a')
            continue;
        if (L->tag[i] != (expect_b ? 'b' : 'a') || L->pid[i] != getpid())
            ok = 0;
        expect_b = !expect_b;
    }
    CHECK(ok && expect_b, "%s: fork hooks alternate before/after, in the "
          "parent", label);
}

static int alive(long pid)
{
    return kill((pid_t)pid, 0) == 0;
}

static void test_prefork(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128];
    lines L = {0};
    long w0, w1;
    int hdr, n;
    pmc_server_stats s;

    proc_config(&cfg, &a, PMC_MODEL_PREFORK);
    cfg.workers = 2;
    cfg.max_conn_per_worker = 1;
    test_pid = getpid();
    cfg.log = log_warnings;
    cfg.log_level = PMC_LOG_WARNING;
    if (proc_start(&t, &cfg, "prefork", p, sizeof p) < 0)
        return;
    CHECK(wait_tag(&L, 'i', 2, 3000) == 2, "prefork: two workers started");
    w0 = nth_pid(&L, 'i', 0);
    w1 = nth_pid(&L, 'i', 1);
    CHECK(w0 > 0 && w1 > 0 && w0 != w1 && w0 != getpid(),
          "prefork: distinct worker pids");
    CHECK(full_conv(dial_unix(p), &hdr) == 'c' && hdr, "prefork: served");
    CHECK(wait_tag(&L, 'o', 1, 1000) == 1 &&
              (nth_pid(&L, 'o', 0) == w0 || nth_pid(&L, 'o', 0) == w1),
          "prefork: conn_open ran in a worker");

    /* Two at once: one worker each (cap 1 per worker). */
    {
        cli *k1 = cli_new(dial_unix(p), 3000);
        cli *k2 = cli_new(dial_unix(p), 3000);
        CHECK(cli_hello(k1, "a") == PMC_OK && cli_hello(k2, "b") == PMC_OK,
              "prefork: two concurrent connections");
        CHECK(wait_tag(&L, 'o', 3, 1000) == 3 &&
                  nth_pid(&L, 'o', 1) != nth_pid(&L, 'o', 2),
              "prefork: on different workers");
        pmc_client_quit(k1->c);
        pmc_client_quit(k2->c);
        cli_free(k1);
        cli_free(k2);
    }

    /* A killed worker is replaced, and says what it took with it: one
     * connection each is open on both workers. */
    {
        cli *k1 = cli_new(dial_unix(p), 3000);
        cli *k2 = cli_new(dial_unix(p), 3000);
        char want[96];
        CHECK(cli_hello(k1, "a") == PMC_OK && cli_hello(k2, "b") == PMC_OK,
              "prefork: two connections held");
        CHECK(wait_tag(&L, 'o', 5, 1000) == 5, "prefork: both opened");
        /* The workers' reports reach the master. */
        for (long long end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
            pmc_server_stats_get(t.srv, &s);
            if (s.conn_active == 2)
                break;
        }
        CHECK(s.conn_active == 2, "prefork: 2 active (%llu)",
              (unsigned long long)s.conn_active);
        kill((pid_t)w0, SIGKILL);
        CHECK(wait_tag(&L, 'i', 3, 3000) == 3,
              "prefork: killed worker respawned");
        CHECK(nth_pid(&L, 'i', 2) != w0 && nth_pid(&L, 'i', 2) != w1,
              "prefork: new pid");
        sleep_ms(100);
        CHECK(!alive(w0), "prefork: dead worker reaped");
        snprintf(want, sizeof want, "worker %ld was killed by signal %d", w0,
                 SIGKILL);
        for (long long end = now_ms() + 5000;
             now_ms() < end && !warned_has(want); sleep_ms(20))
            ;
        for (long long end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
            pmc_server_stats_get(t.srv, &s);
            if (s.conn_active == 1)
                break;
        }
        CHECK(warned_has(want) &&
                  warned_has("1 connection(s) lost; replacing it"),
              "prefork: the death was logged with pid, signal and loss: %s",
              warned);
        CHECK(s.conn_active == 1,
              "prefork: the lost connection is no longer active (%llu)",
              (unsigned long long)s.conn_active);
        CHECK(full_conv(dial_unix(p), &hdr) == 'c', "prefork: still serving");
        pmc_client_quit(k1->c);
        pmc_client_quit(k2->c);
        cli_free(k1);
        cli_free(k2);
    }

    /* Reload: new workers, old ones leave through child_exit. */
    pmc_server_reload(t.srv);
    n = wait_tag(&L, 'i', 5, 3000);
    CHECK(n == 5, "prefork: reload started two new workers (%d inits)", n);
    n = wait_tag(&L, 'e', 2, 3000);
    CHECK(n == 2, "prefork: old workers exited (%d exits)", n);
    CHECK(reloads == 1, "prefork: reload hook ran once in the master");
    CHECK(full_conv(dial_unix(p), &hdr) == 'c', "prefork: served after reload");
    /* A worker's counters and the master's reaping come after the peer
     * saw its answer: wait for them, not a fixed 100 ms. */
    for (long long end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
        pmc_server_stats_get(t.srv, &s);
        if (s.messages >= 3 && s.conn_accepted >= 7 &&
            s.workers_spawned >= 5 && s.workers_exited >= 3)
            break;
    }
    CHECK(s.messages == 3 && s.conn_accepted == 7,
          "prefork: workers report counters (messages %llu, accepted %llu)",
          (unsigned long long)s.messages,
          (unsigned long long)s.conn_accepted);
    CHECK(s.workers_spawned == 5 && s.workers_exited == 3,
          "prefork: spawned %llu exited %llu",
          (unsigned long long)s.workers_spawned,
          (unsigned long long)s.workers_exited);

    CHECK(srv_stop(&t, 2000) == PMC_OK, "prefork: stopped");
    n = wait_tag(&L, 'e', 4, 2000);
    CHECK(n == 4, "prefork: every worker ran child_exit (%d)", n);
    for (int i = 0; i < L.n; i++)
        if (L.tag[i] == 'i')
            CHECK(!alive(L.pid[i]), "prefork: worker %ld gone", L.pid[i]);
    CHECK(access(p, F_OK) != 0, "prefork: socket removed");
    check_fork_hooks(&L, 5, "prefork");
}

static void test_recycle(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128];
    lines L = {0};
    int hdr;

    proc_config(&cfg, &a, PMC_MODEL_PREFORK);
    cfg.workers = 1;
    cfg.max_conn_per_worker = 1;
    cfg.max_requests_per_worker = 2;
    if (proc_start(&t, &cfg, "recycle", p, sizeof p) < 0)
        return;
    for (int i = 0; i < 3; i++)
        CHECK(full_conv(dial_unix(p), &hdr) == 'c', "recycle: conversation %d",
              i);
    CHECK(wait_tag(&L, 'o', 3, 2000) == 3, "recycle: three opens");
    CHECK(nth_pid(&L, 'o', 0) == nth_pid(&L, 'o', 1) &&
              nth_pid(&L, 'o', 2) != nth_pid(&L, 'o', 0),
          "recycle: a new worker after two connections");
    CHECK(wait_tag(&L, 'e', 1, 2000) >= 1 &&
              nth_pid(&L, 'e', 0) == nth_pid(&L, 'o', 0),
          "recycle: child_exit in the retired worker");
    CHECK(wait_tag(&L, 'i', 2, 1000) == 2, "recycle: child_init per worker");
    srv_stop(&t, 1000);
}

/* What a worker's open connections count reaches the master within
 * about a second, with no accept or close to carry it (the worker reports
 * them on a timer, not at each accept and close); closing counts exactly
 * once. */
static void test_prefork_open_counts(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128];
    pmc_server_stats s;
    lines L = {0};
    long long t0, took = -1;
    int hdr;
    cli *k;

    proc_config(&cfg, &a, PMC_MODEL_PREFORK);
    cfg.workers = 1;
    if (proc_start(&t, &cfg, "opencounts", p, sizeof p) < 0)
        return;
    k = cli_new(dial_unix(p), 3000);
    CHECK(cli_hello(k, "a") == PMC_OK && cli_message(k, &hdr) == 'c' &&
              cli_message(k, &hdr) == 'c',
          "open counts: two messages on an open connection");
    /* Its hook lines read here, not by the next test. */
    CHECK(wait_tag(&L, 'o', 1, 2000) == 1, "open counts: one conn_open");
    t0 = now_ms();
    for (long long end = t0 + 4000; now_ms() < end; sleep_ms(20)) {
        pmc_server_stats_get(t.srv, &s);
        if (s.messages == 2) {
            took = now_ms() - t0;
            break;
        }
    }
    CHECK(took >= 0 && took <= 2500 && s.conn_active == 1,
          "open counts: in the master while the connection is open "
          "(%lld ms, messages %llu, active %llu)", took,
          (unsigned long long)s.messages, (unsigned long long)s.conn_active);
    CHECK(cli_message(k, &hdr) == 'c', "open counts: a third message");
    pmc_client_quit(k->c);
    cli_free(k);
    for (long long end = now_ms() + 4000; now_ms() < end; sleep_ms(20)) {
        pmc_server_stats_get(t.srv, &s);
        if (s.conn_active == 0)
            break;
    }
    sleep_ms(1200); /* a planned report, if any, has gone too */
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.conn_active == 0 && s.messages == 3 && s.replies['h'] == 3 &&
              s.cb_count[PMC_EV_EOM] == 3,
          "open counts: closed, each message counted once (messages %llu, "
          "h %llu, eom %llu)",
          (unsigned long long)s.messages, (unsigned long long)s.replies['h'],
          (unsigned long long)s.cb_count[PMC_EV_EOM]);
    srv_stop(&t, 1000);
}

static void test_fork(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128];
    lines L = {0};
    pmc_server_stats s;
    int hdr;
    cli *k;

    proc_config(&cfg, &a, PMC_MODEL_FORK);
    cfg.max_connections = 4;
    if (proc_start(&t, &cfg, "fork", p, sizeof p) < 0)
        return;
    for (int i = 0; i < 3; i++)
        CHECK(full_conv(dial_unix(p), &hdr) == 'c' && hdr,
              "fork: conversation %d", i);
    CHECK(wait_tag(&L, 'o', 3, 2000) == 3, "fork: three opens");
    CHECK(nth_pid(&L, 'o', 0) != nth_pid(&L, 'o', 1) &&
              nth_pid(&L, 'o', 1) != nth_pid(&L, 'o', 2) &&
              nth_pid(&L, 'o', 0) != getpid(),
          "fork: one process per connection");
    /* Each child is reaped once it has exited, which under valgrind (its
     * leak check at exit) can take a while. */
    for (long long end = now_ms() + 5000; now_ms() < end; sleep_ms(20)) {
        pmc_server_stats_get(t.srv, &s);
        if (s.workers_exited == 3 && s.conn_active == 0)
            break;
    }
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.workers_spawned == 3 && s.workers_exited == 3 &&
              s.conn_accepted == 3 && s.conn_active == 0 && s.messages == 3,
          "fork: counters (spawned %llu exited %llu accepted %llu active "
          "%llu messages %llu)",
          (unsigned long long)s.workers_spawned,
          (unsigned long long)s.workers_exited,
          (unsigned long long)s.conn_accepted,
          (unsigned long long)s.conn_active, (unsigned long long)s.messages);

    /* A stop keeps a child between messages serving its MTA (the next
     * message of the SMTP session comes on this connection) and ends with
     * the MTA's QUIT. */
    k = cli_new(dial_unix(p), 3000);
    CHECK(cli_hello(k, "x") == PMC_OK, "fork: idle child");
    {
        long long t0 = now_ms();
        pmc_server_stop(t.srv, 5000);
        CHECK(!wait_closed(k->fd, 300), "fork: the stop keeps it");
        CHECK(cli_message(k, &hdr) == 'c' && hdr,
              "fork: a message during the drain");
        CHECK(pmc_client_quit(k->c) == PMC_OK && wait_closed(k->fd, 1000),
              "fork: child closed its connection at QUIT");
        CHECK(srv_stop(&t, 5000) == PMC_OK && now_ms() - t0 < 2000,
              "fork: the stop ends with it (%lld ms)", now_ms() - t0);
    }
    cli_free(k);
    check_fork_hooks(&L, 4, "fork");
}

static int failing_init(void *ap)
{
    pipe_note(ap, 'f');
    return 1;
}

/* A worker whose child_init fails exits; the master replaces it, but only
 * after a pause, not in a fork storm. */
static void test_init_failure(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128];
    lines L = {0};
    int n;

    proc_config(&cfg, &a, PMC_MODEL_PREFORK);
    cfg.workers = 1;
    cfg.child_init = failing_init;
    if (proc_start(&t, &cfg, "initfail", p, sizeof p) < 0)
        return;
    sleep_ms(1500);
    n = wait_tag(&L, 'f', 100, 0);
    CHECK(n >= 1 && n <= 3, "init failure: %d attempts in 1.5 s", n);
    wait_tag(&L, 'e', 100, 0);
    n = 0;
    for (int i = 0; i < L.n; i++)
        for (int j = 0; j < L.n; j++)
            n += L.tag[i] == 'e' && L.tag[j] == 'f' && L.pid[i] == L.pid[j];
    CHECK(n == 0, "init failure: no child_exit after a failed child_init");
    CHECK(srv_stop(&t, 0) == PMC_OK, "init failure: stopped");
}

/* --- EMFILE back-off, in a child process --- */

static atomic_int backoff_logs;

static void emfile_log(void *ap, int level, uint64_t conn, const char *qid,
                       const char *msg)
{
    (void)ap;
    (void)conn;
    (void)qid;
    if (level == PMC_LOG_WARNING && strstr(msg, "not accepting"))
        atomic_fetch_add(&backoff_logs, 1);
}

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void emfile_child(void)
{
    app a;
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    struct rlimit rl;
    int fds[64], nf = 0, hdr, last;
    cli *k;
    pmc_server_stats s;
    double c0;
    pmc_buf opt = {0};
    static const uint8_t o[12] = {0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff,
                                  0xff};

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.log = emfile_log;
    cfg.accept_backoff_ms = 200;
    snprintf(p, sizeof p, "%s/emfile.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    k = cli_new(dial_unix(p), 3000);
    CHECK(cli_hello(k, "before") == PMC_OK, "emfile: first connection");

    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = (rlim_t)count_fds() + 16;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0, "emfile: lower the limit");
    while (nf < 64) {
        int fd = dial_unix(p);
        if (fd < 0)
            break;
        fds[nf++] = fd;
        sleep_ms(5);
    }
    CHECK(nf > 0 && nf < 64 && (errno == EMFILE || errno == ENFILE),
          "emfile: out of descriptors after %d connections (%s)", nf,
          strerror(errno));
    sleep_ms(100);
    c0 = cpu_s();
    sleep_ms(1000);
    CHECK(cpu_s() - c0 < 0.2, "emfile: no busy loop (%.3f s CPU in 1 s)",
          cpu_s() - c0);
    pmc_server_stats_get(t.srv, &s);
    CHECK(s.accept_backoffs >= 1 && backoff_logs >= 1,
          "emfile: back-off counted (%llu) and logged (%d)",
          (unsigned long long)s.accept_backoffs, (int)backoff_logs);
    CHECK(cli_message(k, &hdr) == 'c' && hdr,
          "emfile: existing connection still served");

    /* The last one waits in the backlog; free descriptors and it is
     * accepted. */
    last = fds[--nf];
    put(&opt, 'O', o, 12);
    if (send(last, opt.data, opt.len, MSG_NOSIGNAL) != (ssize_t)opt.len)
        perror("send");
    for (int i = 0; i < 4 && nf > 0; i++)
        close(fds[--nf]);
    {
        struct pollfd pf = {last, POLLIN, 0};
        CHECK(poll(&pf, 1, 3000) == 1, "emfile: accepting again afterwards");
    }
    close(last);
    while (nf > 0)
        close(fds[--nf]);
    pmc_client_quit(k->c);
    cli_free(k);
    pmc_buf_free(&opt);
    srv_stop(&t, 0);
}

static void test_emfile(void)
{
    int status;
    pid_t pid;
    const char *pre = getenv("LD_PRELOAD");

    /* Valgrind keeps descriptors of its own above the soft limit and
     * closes accepted ones that land there, so EMFILE cannot be staged
     * under it. */
    if (pre && strstr(pre, "vgpreload")) {
        DIAG("EMFILE test skipped under valgrind");
        return;
    }

    /* A child, because the lowered descriptor limit stays with the
     * process; tap_fork hands its checks back to be numbered here. */
    pid = tap_fork();
    if (pid == 0) {
        emfile_child();
        tap_child_exit(0);
    }
    if (pid < 0) {
        CHECK(0, "emfile: fork: %s", strerror(errno));
        return;
    }
    status = tap_join(pid);
    CHECK(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "emfile: child exited cleanly");
}

int main(void)
{
    int fds0, fds1;

    snprintf(dir, sizeof dir, "/tmp/pmc-procs-XXXXXX");
    if (!mkdtemp(dir) || pipe2(hook_pipe, O_CLOEXEC) != 0) {
        perror("setup");
        return 1;
    }
    fds0 = count_fds();
    test_emfile(); /* first: it forks while this process has one thread */
    test_prefork();
    test_recycle();
    test_prefork_open_counts();
    test_fork();
    test_init_failure();
    fds1 = count_fds();
    CHECK(fds0 == fds1, "no leaked descriptors (%d before, %d after)", fds0,
          fds1);
    close(hook_pipe[0]);
    close(hook_pipe[1]);
    rmdir(dir);
    return tap_done();
}
