/* Capture (docs/capture-format.md): the records the writer makes from the
 * bytes of a connection, however they are cut; a server writing a file per
 * conversation in each model; rotation; bad settings refused at start-up;
 * and a capture that cannot be written being dropped and counted while the
 * conversation goes on. */
#include "srvtest.h"

#include "capture.h"

#include <sys/resource.h>

static char dir[64];

/* The *.pmcap files of the directory, sorted; returns how many. */
static size_t list(char names[][128], size_t max)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (!d)
        return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        size_t l = strlen(e->d_name);
        if (l > 6 && strcmp(e->d_name + l - 6, ".pmcap") == 0)
            snprintf(names[n++], 128, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, n, 128, (int (*)(const void *, const void *))strcmp);
    return n;
}

static void clear_dir(void)
{
    char names[64][128], p[256];
    size_t n = list(names, 64);

    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
}

static size_t slurped; /* the length of the last file slurp read */

/* A whole file as a string (malloc'd), or NULL. */
static char *slurp(const char *name)
{
    char p[256];
    FILE *f;
    char *s;
    long n;

    snprintf(p, sizeof p, "%s/%s", dir, name);
    if ((f = fopen(p, "rb")) == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    s = calloc(1, (size_t)n + 1);
    slurped = fread(s, 1, (size_t)n, f);
    fclose(f);
    return s;
}

/* --- the writer on its own ------------------------------------------------ */

static void put_packet(uint8_t *out, size_t *n, char cmd, const void *p,
                       size_t len)
{
    uint32_t l = (uint32_t)len + 1;

    out[(*n)++] = (uint8_t)(l >> 24);
    out[(*n)++] = (uint8_t)(l >> 16);
    out[(*n)++] = (uint8_t)(l >> 8);
    out[(*n)++] = (uint8_t)l;
    out[(*n)++] = (uint8_t)cmd;
    memcpy(out + *n, p, len);
    *n += len;
}

/* Write a conversation's two streams through the writer, cutting the
 * MTA's every 'cut' bytes (0: whole); returns the file's text. */
static char *write_streams(const char *name, const uint8_t *mta, size_t mn,
                           const uint8_t *flt, size_t fn, size_t cut)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    pmc_conn_info ci;
    pmci_capfile *f = pmci_capfile_new(dfd, name);
    long long size;

    memset(&ci, 0, sizeof ci);
    ci.id = 7;
    ci.family = AF_INET;
    snprintf(ci.peer, sizeof ci.peer, "192.0.2.1");
    ci.peer_port = 2525;
    if (!f || pmci_capfile_start(f, &ci, 1000) != 0)
        return NULL;
    for (size_t off = 0; off < mn;) {
        size_t k = cut && mn - off > cut ? cut : mn - off;
        if (pmci_capfile_bytes(f, 0, mta + off, k, 1000 + (long long)off))
            return NULL;
        off += k;
    }
    if (pmci_capfile_bytes(f, 1, flt, fn, 2000))
        return NULL;
    size = pmci_capfile_end(f, 3000);
    close(dfd);
    return size > 0 ? slurp(name) : NULL;
}

/* The text without the time that starts each line. */
static char *untimed(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    int bol = 1;

    for (; *s; s++) {
        if (bol) {
            const char *d = s;
            while (*d >= '0' && *d <= '9')
                d++;
            if (d > s && *d == ' ')
                s = d;
        }
        *o++ = *s;
        bol = *s == '\n';
    }
    *o = 0;
    return out;
}

static void writer_tests(void)
{
    uint8_t mta[1024], flt[256], all[256];
    size_t mn = 0, fn = 0;
    static const uint8_t opt[12] = {0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff,
                                    0xff};
    static const char mac[] = "Cj\0mx a=b\0{daemon_name}\0smtpd";
    static const char body[] = "line one\r\nline two\r\n";
    char *whole, *bytewise, *line, *cut;

    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    put_packet(mta, &mn, 'O', opt, sizeof opt);
    put_packet(mta, &mn, 'D', mac, sizeof mac);
    put_packet(mta, &mn, 'L', all, sizeof all);
    put_packet(mta, &mn, 'B', body, sizeof body - 1);
    put_packet(mta, &mn, 'N', "", 0);
    put_packet(flt, &fn, 'y', "550 5.7.1 no\0", 13);
    put_packet(flt, &fn, 'c', "", 0);
    memcpy(mta + mn, "\0\0\0\x09Qtrunc", 10); /* cut off by the end */
    mn += 10;

    whole = write_streams("w1.pmcap", mta, mn, flt, fn, 0);
    bytewise = write_streams("w2.pmcap", mta, mn, flt, fn, 1);
    if (!CHECK(whole && bytewise, "the writer wrote both files"))
        return;
    CHECK(strncmp(whole, "pmcore-capture 1\n0 start time=", 30) == 0,
          "first line is the format and version, then the start record");
    CHECK(strstr(whole, " pid=") && strstr(whole, " conn=7 family=inet "
                                           "port=2525 peer=192.0.2.1\n"),
          "the start record names the connection and the peer");
    CHECK(strstr(whole, "\n0 > options version=6 actions=0x000001ff "
                        "protocol=0x001fffff\n") != NULL,
          "negotiation is written as its three fields");
    CHECK(strstr(whole, "\n0 > macros C j=mx\\x20a\\x3db "
                        "{daemon_name}=smtpd\n") != NULL,
          "macros are name=value tokens, spaces and '=' escaped");
    line = strstr(whole, " > L ");
    CHECK(line && strncmp(line + 5, "\\0\\x01\\x02", 10) == 0 &&
              strstr(line, "\\t\\n\\x0b\\x0c\\r") &&
              strstr(line, " !\"#") && strstr(line, "[\\\\]") &&
              strstr(line, "}~\\x7f\\x80") && strstr(line, "\\xff\n"),
          "payload bytes: printable as they are, the rest escaped");
    CHECK(strstr(whole, "\n0 > B =20\nline one\r\nline two\r\n\n") != NULL,
          "a body chunk: its length, then its bytes as they are");
    CHECK(strstr(whole, "\n0 > N\n") != NULL,
          "a packet without payload is its command alone");
    CHECK(strstr(whole, "\n1000 < y 550 5.7.1 no\\0\n1000 < c\n") != NULL,
          "the milter's replies, with their time since the start");
    CHECK(strstr(whole, " > raw \\0\\0\\0\\tQtrunc\n2000 end\n") != NULL,
          "a packet cut off by the end is kept as raw bytes, then the end");
    /* Byte by byte, each packet's time is when its first byte came, so
     * the times differ; without them the files must be the same. */
    {
        /* After the start records, which hold the wall clock. */
        char *a = untimed(strstr(whole, "\n0 >")),
             *b = untimed(strstr(bytewise, "\n0 >"));
        CHECK(strcmp(a, b) == 0, "fed one byte at a time, the same records");
        free(a);
        free(b);
    }
    if (tap_failed)
        DIAG("whole:\n%s\nbyte by byte:\n%s", whole, bytewise);
    free(whole);
    free(bytewise);

    /* A body cut off by the end: its length was written before the
     * bytes, so the record is filled up and marked. */
    mn = 0;
    put_packet(mta, &mn, 'B', body, sizeof body - 1);
    mn -= 12;
    cut = write_streams("w3.pmcap", mta, mn, flt, 0, 0);
    CHECK(cut && memmem(cut, slurped, "\n0 > B =20\nline one\0\0\0\0\0\0"
                        "\0\0\0\0\0\0\n2000 > cut 12\n2000 end\n", 49),
          "a body cut off: NULs for the missing bytes, then 'cut N'");
    free(cut);
    clear_dir();
}

/* --- a server ------------------------------------------------------------- */

/* Serve n conversations on a unix socket with cfg; the stats after. */
static void serve(pmc_server_config *cfg, int n, int *eom_ok,
                  pmc_server_stats *st)
{
    tsrv t;
    char path[96];

    snprintf(path, sizeof path, "unix:%s/sock", dir);
    *eom_ok = 0;
    if (srv_start(&t, cfg, path) < 0)
        return;
    for (int i = 0; i < n; i++) {
        int hdr = 0, fd = dial_unix(path + 5);
        if (fd >= 0 && full_conv(fd, &hdr) == 'c' && hdr)
            (*eom_ok)++;
    }
    /* PREFORK workers report what they counted when they end. */
    pmc_server_stop(t.srv, 2000);
    pthread_join(t.th, NULL);
    t.running = 0;
    pmc_server_stats_get(t.srv, st);
    srv_stop(&t, 0);
}

static void server_tests(void)
{
    pmc_server_config cfg;
    pmc_server_stats st;
    app a;
    char names[64][128];
    size_t n;
    int ok;
    char *text;

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.capture_dir = dir;
    serve(&cfg, 2, &ok, &st);
    n = list(names, 64);
    CHECK(ok == 2 && n == 2 && st.captures == 2 && st.capture_dropped == 0,
          "LOOP: a file per conversation (%zu files, %llu captures, "
          "%d answered)", n, (unsigned long long)st.captures, ok);
    text = n ? slurp(names[0]) : NULL;
    CHECK(text && strstr(text, " < h X-Pmc\\0yes\\0\n") &&
              strstr(text, " > M <a@example.org>\\0\n") &&
              strstr(text, " > Q\n") && strstr(text, " end\n"),
          "the file holds both directions up to QUIT and the end");
    CHECK(text && strstr(text, "family=unix"), "the peer's family");
    free(text);
    clear_dir();

    /* Rotation: the newest three stay. */
    cfg.capture_max_files = 3;
    serve(&cfg, 12, &ok, &st);
    n = list(names, 64);
    CHECK(ok == 12 && n == 3 && st.captures == 12,
          "files=3: 12 conversations leave 3 files (%zu)", n);
    CHECK(n == 3 && strstr(names[0], "-0000000010.pmcap") &&
              strstr(names[2], "-0000000012.pmcap"),
          "the oldest were removed (%s .. %s)", n ? names[0] : "-",
          n ? names[n - 1] : "-");
    clear_dir();
    cfg.capture_max_files = 0;
    cfg.capture_max_bytes = 5000;
    serve(&cfg, 8, &ok, &st);
    {
        struct stat sb;
        char p[256];
        long long total = 0;
        n = list(names, 64);
        for (size_t i = 0; i < n; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            if (stat(p, &sb) == 0)
                total += sb.st_size;
        }
        CHECK(ok == 8 && n >= 1 && n < 8 && total <= 5000,
              "size=5000: %zu files, %lld bytes kept", n, total);
    }
    clear_dir();
    cfg.capture_max_bytes = 0;

    /* THREADS: conversations captured on the pool's threads. */
    cfg.model = PMC_MODEL_THREADS;
    cfg.threads = 4;
    serve(&cfg, 4, &ok, &st);
    n = list(names, 64);
    CHECK(ok == 4 && n == 4 && st.captures == 4 && st.capture_dropped == 0,
          "THREADS: a file per conversation (%zu)", n);
    clear_dir();

    /* PREFORK: the workers write, each under its own pid. */
    cfg.model = PMC_MODEL_PREFORK;
    cfg.workers = 2;
    serve(&cfg, 4, &ok, &st);
    n = list(names, 64);
    {
        char own[32];
        int foreign = 0;
        snprintf(own, sizeof own, "Z-%ld-", (long)getpid());
        for (size_t i = 0; i < n; i++)
            foreign += strstr(names[i], own) == NULL;
        CHECK(ok == 4 && n == 4 && foreign == 4 && st.captures == 4,
              "PREFORK: 4 files written by the workers (%zu, %llu counted)",
              n, (unsigned long long)st.captures);
    }
    clear_dir();
    cfg.model = PMC_MODEL_LOOP;

    /* A file that cannot be written: the capture goes, the mail flows.
     * RLIMIT_FSIZE makes every write past 300 bytes fail with EFBIG, as a
     * full disk fails with ENOSPC (the CLI suite fills a real tmpfs). */
    {
        struct rlimit old, lim;
        signal(SIGXFSZ, SIG_IGN);
        getrlimit(RLIMIT_FSIZE, &old);
        lim = old;
        lim.rlim_cur = 300;
        setrlimit(RLIMIT_FSIZE, &lim);
        serve(&cfg, 3, &ok, &st);
        setrlimit(RLIMIT_FSIZE, &old);
        n = list(names, 64);
        CHECK(ok == 3, "writes failing: every conversation still answered "
              "(%d of 3)", ok);
        CHECK(n == 0 && st.capture_dropped == 3 && st.captures == 0,
              "and each capture dropped, counted and removed (%zu files, "
              "%llu dropped)", n, (unsigned long long)st.capture_dropped);
    }
    clear_dir();
}

/* --- pmc_serve_fd --------------------------------------------------------------- */

typedef struct fdjob {
    pmc_server_config *cfg;
    int fd;
    pmc_server_stats st;
    pmc_status rc;
} fdjob;

static void *serve_fd_thread(void *p)
{
    fdjob *j = p;

    j->rc = pmc_serve_fd(j->cfg, j->fd, 42, &j->st, NULL);
    return NULL;
}

/* The Net::Server-style entry point captures too. */
static void serve_fd_tests(void)
{
    pmc_server_config cfg;
    app a;
    fdjob j;
    pthread_t th;
    int sv[2], hdr = 0, code;
    char names[4][128];
    char *text;

    memset(&a, 0, sizeof a);
    memset(&j, 0, sizeof j);
    base_config(&cfg, &a);
    cfg.capture_dir = dir;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    j.cfg = &cfg;
    j.fd = sv[0];
    pthread_create(&th, NULL, serve_fd_thread, &j);
    code = full_conv(sv[1], &hdr);
    pthread_join(th, NULL);
    close(sv[0]);
    text = list(names, 4) == 1 ? slurp(names[0]) : NULL;
    CHECK(code == 'c' && hdr && j.rc == PMC_OK && j.st.captures == 1 &&
              text && strstr(text, " conn=42 ") && strstr(text, " end\n"),
          "pmc_serve_fd: the conversation captured, counted in its stats");
    free(text);
    clear_dir();
}

/* --- bad settings ------------------------------------------------------------ */

static void refused(const char *env, const char *cfg_dir, const char *want,
                    const char *what)
{
    pmc_server_config cfg;
    pmc_error e;
    pmc_server *srv;
    app a;

    memset(&a, 0, sizeof a);
    memset(&e, 0, sizeof e);
    base_config(&cfg, &a);
    cfg.capture_dir = cfg_dir;
    if (env)
        setenv("PMCORE_CAPTURE", env, 1);
    srv = pmc_server_new(&cfg, &e);
    unsetenv("PMCORE_CAPTURE");
    if (!CHECK(!srv && e.code == PMC_ERR_ARGUMENT && strstr(e.message, want),
               "%s: refused at start-up", what))
        DIAG("message: %s", srv ? "(none, the server was created)"
                                : e.message);
    pmc_server_free(srv);
}

static void setting_tests(void)
{
    char file[128], v[200];
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error e;
    app a;

    snprintf(file, sizeof file, "%s/plain", dir);
    close(open(file, O_WRONLY | O_CREAT, 0600));
    refused("/nonexistent/pmcap", NULL,
            "PMCORE_CAPTURE=/nonexistent/pmcap: cannot open the directory: "
            "No such file or directory", "a directory that does not exist");
    refused(file, NULL, "cannot open the directory: Not a directory",
            "a plain file");
    snprintf(v, sizeof v, "%s,files=ten", dir);
    refused(v, NULL, "PMCORE_CAPTURE=", "files=ten");
    refused(v, NULL, "bad option 'files=ten'", "files=ten names the option");
    snprintf(v, sizeof v, "%s,size=10X", dir);
    refused(v, NULL, "bad option 'size=10X'", "size=10X");
    snprintf(v, sizeof v, "%s,colour=blue", dir);
    refused(v, NULL, "bad option 'colour=blue'", "an unknown option");
    refused(",files=3", NULL, "no directory", "options without a directory");
    refused(NULL, "/nonexistent/pmcap",
            "capture_dir=/nonexistent/pmcap: cannot open", "capture_dir");
    unlink(file);

    /* The variable wins over the config, and good values are taken. */
    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.capture_dir = "/nonexistent/pmcap";
    snprintf(v, sizeof v, "%s,files=5,size=10M", dir);
    setenv("PMCORE_CAPTURE", v, 1);
    srv = pmc_server_new(&cfg, &e);
    unsetenv("PMCORE_CAPTURE");
    CHECK(srv != NULL, "PMCORE_CAPTURE=DIR,files=5,size=10M replaces "
          "capture_dir");
    pmc_server_free(srv);
    setenv("PMCORE_CAPTURE", "", 1);
    base_config(&cfg, &a);
    srv = pmc_server_new(&cfg, &e);
    unsetenv("PMCORE_CAPTURE");
    CHECK(srv != NULL, "an empty PMCORE_CAPTURE is no capture");
    pmc_server_free(srv);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/pmc-capture-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    unsetenv("PMCORE_CAPTURE");
    writer_tests();
    server_tests();
    serve_fd_tests();
    setting_tests();
    rmdir(dir);
    return tap_done();
}
