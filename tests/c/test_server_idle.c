/*
 * Many idle connections on one event-loop process: 5,000 connections, each
 * negotiated and past CONNECT and HELO, must fit in 64 MiB of server RSS,
 * and a new message must still be answered in under 10 ms.  The server runs
 * in a child process so its RSS is its own; it stops through its wake_fd
 * and tick hook, the way a binding delivers a signal.
 */
#include "srvtest.h"

#include <sys/resource.h>
#include <sys/wait.h>

static int stop_tick(void *ap)
{
    (void)ap;
    return 1; /* only called when the wake pipe has a byte */
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}

static _Noreturn void server_child(const char *spec, int wake)
{
    app a;
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error e;
    pmc_status st;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.wake_fd = wake;
    cfg.tick = stop_tick;
    cfg.tick_interval_ms = 0;
    srv = pmc_server_new(&cfg, &e);
    if (!srv || pmc_server_listen(srv, spec, 0, &e) < 0) {
        DIAG("server: %s", e.message);
        _exit(1);
    }
    st = pmc_server_run(srv, &e);
    pmc_server_free(srv);
    _exit(st == PMC_OK && a.opens == a.closes ? 0 : 1);
}

static int cmp_ll(const void *x, const void *y)
{
    long long a = *(const long long *)x, b = *(const long long *)y;

    return a < b ? -1 : a > b;
}

int main(void)
{
    char dir[64], p[128], spec[160];
    const char *pre = getenv("LD_PRELOAD");
    int valgrind = pre && strstr(pre, "vgpreload");
    int want = valgrind ? 300 : 5000, n = 0, wake[2], status = 0, hdr;
    struct rlimit rl;
    cli **conns;
    pid_t pid;
    long kib;
    long long t[5];

    snprintf(dir, sizeof dir, "/tmp/pmc-idle-XXXXXX");
    if (!mkdtemp(dir) || pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return 1;
    snprintf(p, sizeof p, "%s/idle.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", p);
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)want + 100) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)want + 100) {
        want = (int)rl.rlim_cur - 100;
        DIAG("RLIMIT_NOFILE allows only %d connections", want);
    }
    pid = fork();
    if (pid == 0) {
        close(wake[1]);
        server_child(spec, wake[0]);
    }
    close(wake[0]);
    for (int i = 0; i < 200 && access(p, F_OK) != 0; i++)
        sleep_ms(10);

    conns = calloc((size_t)want, sizeof *conns);
    if (!conns)
        return 1;
    for (; n < want; n++) {
        int fd = dial_unix(p);
        if (fd < 0)
            break;
        conns[n] = cli_new(fd, 5000);
        if (cli_hello(conns[n], "idle.example") != PMC_OK) {
            cli_free(conns[n]);
            break;
        }
    }
    CHECK(n == want, "%d of %d idle connections negotiated", n, want);
    kib = rss_kib(pid);
    DIAG("server RSS with %d idle connections: %ld KiB", n, kib);
    /* Under valgrind the RSS and the times are valgrind's. */
    CHECK(kib > 0 && (valgrind || kib <= 64 * 1024), "RSS %ld KiB <= 64 MiB",
          kib);

    /* A new message on a new connection, and on an old one. */
    for (int i = 0; i < 5; i++) {
        long long t0 = now_ms();
        int code = full_conv(dial_unix(p), &hdr);
        t[i] = code == 'c' && hdr ? now_ms() - t0 : 1000000;
    }
    qsort(t, 5, sizeof t[0], cmp_ll);
    CHECK(t[2] < (valgrind ? 200 : 10),
          "new connection answered in %lld ms (median of 5)", t[2]);
    /* A median here too: one message alone failed at 10 ms on a loaded
     * host, one preemption of the client or the server. */
    if (n >= 5) {
        for (int i = 0; i < 5; i++) {
            long long t0 = now_ms();
            int code = cli_message(conns[n / 2 + i], &hdr);
            t[i] = code == 'c' && hdr ? now_ms() - t0 : 1000000;
        }
        qsort(t, 5, sizeof t[0], cmp_ll);
        CHECK(t[2] < (valgrind ? 200 : 10),
              "message on an idle connection in %lld ms (median of 5)", t[2]);
    }

    for (int i = 0; i < n; i++)
        cli_free(conns[i]);
    free(conns);
    if (write(wake[1], "T", 1) != 1)
        perror("write");
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "server stopped through its wake fd, hooks paired");
    close(wake[1]);
    rmdir(dir);
    return tap_done();
}
