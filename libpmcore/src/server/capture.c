/* Capture settings and files: PMCORE_CAPTURE or the config's fields, the
 * directory check at start-up, one file per connection, rotation, and the
 * server's four hooks.  The records themselves are capture_write.c's. */
#define _GNU_SOURCE
#include "capture.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CAP_FILES_DEFAULT 1000u
#define CAP_BYTES_DEFAULT (1024ull * 1024 * 1024)
#define CAP_SUFFIX ".pmcap"

struct pmci_capture {
    char *dir;
    int dirfd;
    unsigned max_files;
    uint64_t max_bytes;
    pthread_mutex_t mu;     /* the rest */
    unsigned since_scan;    /* files completed since the last scan */
    uint64_t bytes_since;   /* and their bytes */
    unsigned long dropped;  /* for the log: the first and each 2^n-th */
};

static pmc_status bad(pmc_error *err, const char *src, const char *val,
                      const char *why, int e)
{
    char et[100];
    pmc_error tmp;

    return pmci_set_error(err ? err : &tmp, PMC_ERR_ARGUMENT, 0,
                          "%s=%s: %s%s%s", src, val, why, e ? ": " : "",
                          e ? pmci_errtext(e, et, sizeof et) : "");
}

/* "123", "64k", "10M", "1G": powers of 1024.  0 on success. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: return -1;
    }
    if (*end || v == 0)
        return -1;
    *out = v;
    return 0;
}

/* "DIR[,files=N][,size=BYTES]" into dir (allocated), files and bytes. */
static pmc_status parse_env(const char *val, char **dir, unsigned *files,
                            uint64_t *bytes, pmc_error *err)
{
    const char *comma = strchr(val, ',');
    size_t dlen = comma ? (size_t)(comma - val) : strlen(val);

    if (dlen == 0)
        return bad(err, "PMCORE_CAPTURE", val, "no directory before the "
                   "options (DIR[,files=N][,size=BYTES])", 0);
    while (comma) {
        const char *opt = comma + 1;
        char buf[64];
        size_t n;
        uint64_t v;

        comma = strchr(opt, ',');
        n = comma ? (size_t)(comma - opt) : strlen(opt);
        if (n >= sizeof buf)
            n = sizeof buf - 1;
        memcpy(buf, opt, n);
        buf[n] = 0;
        if (strncmp(buf, "files=", 6) == 0 && parse_size(buf + 6, &v) == 0 &&
            strpbrk(buf + 6, "kKmMgG") == NULL && v <= 100000000u) {
            *files = (unsigned)v;
        } else if (strncmp(buf, "size=", 5) == 0 &&
                   parse_size(buf + 5, &v) == 0) {
            *bytes = v;
        } else {
            char why[128];
            snprintf(why, sizeof why, "bad option '%s' (DIR[,files=N]"
                     "[,size=BYTES], BYTES with k, M or G)", buf);
            return bad(err, "PMCORE_CAPTURE", val, why, 0);
        }
    }
    *dir = strndup(val, dlen);
    if (!*dir)
        return pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
    return PMC_OK;
}

/* The directory must take a file now: a typo or a read-only mount is
 * found at start-up, not as one dropped capture per connection. */
static pmc_status check_dir(pmci_capture *cap, const char *src,
                            const char *val, pmc_error *err)
{
    char probe[64];
    int fd;

    cap->dirfd = open(cap->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cap->dirfd < 0)
        return bad(err, src, val, "cannot open the directory", errno);
    snprintf(probe, sizeof probe, ".pmcap-probe-%ld", (long)getpid());
    fd = openat(cap->dirfd, probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                0600);
    if (fd < 0)
        return bad(err, src, val, "cannot create files in the directory",
                   errno);
    close(fd);
    unlinkat(cap->dirfd, probe, 0);
    return PMC_OK;
}

pmc_status pmci_capture_new(const pmc_server_config *cfg, pmci_capture **out,
                            pmc_error *err)
{
    const char *env = getenv("PMCORE_CAPTURE");
    const char *src = "capture_dir", *val = cfg->capture_dir;
    pmci_capture *cap;
    pmc_status st;

    *out = NULL;
    if (env && *env) {
        src = "PMCORE_CAPTURE";
        val = env;
    }
    if (!val)
        return PMC_OK;
    cap = calloc(1, sizeof *cap);
    if (!cap)
        return pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
    cap->dirfd = -1;
    cap->max_files = cfg->capture_max_files;
    cap->max_bytes = cfg->capture_max_bytes;
    if (val == env) {
        st = parse_env(env, &cap->dir, &cap->max_files, &cap->max_bytes, err);
    } else if (!*val) {
        st = bad(err, src, "\"\"", "empty directory name", 0);
    } else {
        cap->dir = strdup(val);
        st = cap->dir ? PMC_OK
                      : pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
    }
    if (st == PMC_OK)
        st = check_dir(cap, src, val, err);
    if (st == PMC_OK && pthread_mutex_init(&cap->mu, NULL) != 0)
        st = pmci_set_error(err, PMC_ERR_NOMEM, 0, "cannot create a mutex");
    if (st != PMC_OK) {
        if (cap->dirfd >= 0)
            close(cap->dirfd);
        free(cap->dir);
        free(cap);
        return st;
    }
    if (!cap->max_files)
        cap->max_files = CAP_FILES_DEFAULT;
    if (!cap->max_bytes)
        cap->max_bytes = CAP_BYTES_DEFAULT;
    *out = cap;
    return PMC_OK;
}

void pmci_capture_free(pmci_capture *cap)
{
    if (!cap)
        return;
    close(cap->dirfd);
    pthread_mutex_destroy(&cap->mu);
    free(cap->dir);
    free(cap);
}

const char *pmci_capture_dir(const pmci_capture *cap)
{
    return cap->dir;
}

unsigned long pmci_capture_dropped(pmci_capture *cap)
{
    unsigned long n;

    pthread_mutex_lock(&cap->mu);
    n = ++cap->dropped;
    pthread_mutex_unlock(&cap->mu);
    return n;
}

pmci_capfile *pmci_capfile_open(pmci_capture *cap, const pmc_conn_info *ci)
{
    struct timespec ts;
    struct tm tm;
    char name[96], when[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y%m%dT%H%M%S", &tm);
    snprintf(name, sizeof name, "%s.%03ldZ-%ld-%010llu" CAP_SUFFIX, when,
             ts.tv_nsec / 1000000, (long)getpid(),
             (unsigned long long)ci->id);
    return pmci_capfile_new(cap->dirfd, name);
}

/* --- rotation ------------------------------------------------------------ */

typedef struct capent {
    char *name;
    uint64_t size;
} capent;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const capent *)a)->name, ((const capent *)b)->name);
}

static int is_capture(const char *n)
{
    size_t len = strlen(n), sl = sizeof CAP_SUFFIX - 1;

    return n[0] != '.' && len > sl && strcmp(n + len - sl, CAP_SUFFIX) == 0;
}

/* List the directory's captures, oldest first (names start with the UTC
 * time), and remove the oldest until both limits hold. */
static void scan(pmci_capture *cap)
{
    int fd = openat(cap->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    capent *v = NULL;
    size_t n = 0, capn = 0, first = 0;
    uint64_t total = 0;
    struct dirent *e;

    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        if (!is_capture(e->d_name) ||
            fstatat(cap->dirfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(sb.st_mode))
            continue;
        if (n == capn) {
            capent *nv = realloc(v, (capn ? capn * 2 : 64) * sizeof *v);
            if (!nv)
                break;
            v = nv;
            capn = capn ? capn * 2 : 64;
        }
        v[n].name = strdup(e->d_name);
        if (!v[n].name)
            break;
        v[n].size = (uint64_t)sb.st_size;
        total += v[n++].size;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, by_name);
    while (first < n && (n - first > cap->max_files || total > cap->max_bytes)) {
        /* Another process may have removed it first: that is fine. */
        unlinkat(cap->dirfd, v[first].name, 0);
        total -= v[first++].size;
    }
    for (size_t i = 0; i < n; i++)
        free(v[i].name);
    free(v);
}

void pmci_capture_rotate(pmci_capture *cap, uint64_t bytes)
{
    /* A scan reads the whole directory, so it runs once per a sixteenth
     * of the limits (at most every 64 files): the directory can exceed
     * them by that much between scans. */
    unsigned every = cap->max_files / 16;

    if (every > 64)
        every = 64;
    pthread_mutex_lock(&cap->mu);
    cap->since_scan++;
    cap->bytes_since += bytes;
    if (cap->since_scan > every || cap->bytes_since > cap->max_bytes / 16) {
        cap->since_scan = 0;
        cap->bytes_since = 0;
        scan(cap);
    }
    pthread_mutex_unlock(&cap->mu);
}

/* --- the server's hooks ----------------------------------------------------- */

static void dropped(pmci_conn *c, const char *why)
{
    unsigned long n = pmci_capture_dropped(c->srv->cap);

    PMCI_COUNT(c->st.capture_dropped);
    /* A full disk drops every conversation: log the first drop and then
     * ever more rarely, not one line per connection. */
    if ((n & (n - 1)) == 0)
        pmci_log(c->srv, PMC_LOG_WARNING, c->id, NULL,
                 "capture dropped (%lu so far): %s in %s", n, why,
                 pmci_capture_dir(c->srv->cap));
}

void pmci_cap_open(pmci_conn *c)
{
    char et[100];

    if (!c->srv->cap || c->cap)
        return;
    c->cap = pmci_capfile_open(c->srv->cap, &c->info);
    if (!c->cap) {
        dropped(c, pmci_errtext(errno, et, sizeof et));
        return;
    }
    if (pmci_capfile_start(c->cap, &c->info, pmci_now_ms()) != 0) {
        int e = errno;
        pmci_capfile_drop(c->cap);
        c->cap = NULL;
        dropped(c, pmci_errtext(e, et, sizeof et));
    }
}

void pmci_cap_io(pmci_conn *c, int dir, const uint8_t *p, size_t n)
{
    char et[100];

    if (pmci_capfile_bytes(c->cap, dir, p, n, pmci_now_ms()) != 0) {
        int e = errno;
        pmci_capfile_drop(c->cap);
        c->cap = NULL;
        dropped(c, pmci_errtext(e, et, sizeof et));
    }
}

void pmci_cap_close(pmci_conn *c)
{
    char et[100];
    long long size;

    if (!c->cap)
        return;
    size = pmci_capfile_end(c->cap, pmci_now_ms());
    c->cap = NULL;
    if (size < 0) {
        dropped(c, pmci_errtext(errno, et, sizeof et));
        return;
    }
    PMCI_COUNT(c->st.captures);
    pmci_capture_rotate(c->srv->cap, (uint64_t)size);
}
