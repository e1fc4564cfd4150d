/* The records of a capture file (docs/capture-format.md): the bytes of
 * each direction cut into packets, one line per packet, buffered and
 * written in large pieces.  Any write error is returned so the caller
 * drops the file; nothing here waits. */
#define _GNU_SOURCE
#include "capture.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Written to the file once this much is buffered, and at the end. */
#define CAP_FLUSH 16384
/* A length above this is not a milter packet: the rest of the direction
 * is recorded as raw bytes. */
#define CAP_MAX_PACKET (16u * 1024 * 1024)

typedef struct framer {
    uint8_t hdr[5];     /* length (4 bytes, network order) and command */
    unsigned nh;
    uint32_t need;      /* payload bytes still to come */
    pmc_buf pk;         /* the payload so far */
    long long t;        /* when the packet's first byte was seen */
    int raw;            /* not packets any more */
} framer;

struct pmci_capfile {
    int dirfd;          /* the capture directory's (not ours) */
    int fd;
    char name[96];
    long long t0;       /* monotonic ms at the start */
    long long size;     /* bytes written to the file */
    pmc_buf out;
    framer fr[2];       /* 0: MTA to milter, 1: milter to MTA */
};

pmci_capfile *pmci_capfile_new(int dirfd, const char *name)
{
    pmci_capfile *f = calloc(1, sizeof *f);

    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    snprintf(f->name, sizeof f->name, "%s", name);
    f->dirfd = dirfd;
    /* Regular files do not block on O_NONBLOCK, but a FIFO someone put
     * there under this name would. */
    f->fd = openat(dirfd, f->name,
                   O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NONBLOCK,
                   0640);
    if (f->fd < 0) {
        int e = errno;
        free(f);
        errno = e;
        return NULL;
    }
    return f;
}

static int flush(pmci_capfile *f)
{
    size_t off = 0;

    while (off < f->out.len) {
        ssize_t w = write(f->fd, f->out.data + off, f->out.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return -1;
        }
        off += (size_t)w;
    }
    f->size += (long long)f->out.len;
    f->out.len = 0;
    return 0;
}

static int put(pmci_capfile *f, const void *p, size_t n)
{
    if (pmc_buf_append(&f->out, p, n) != PMC_OK) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static const char HEX[] = "0123456789abcdef";

/* Bytes as the format's escapes: printable ASCII as it is, except the
 * backslash; in a token (tok) also the space and '=', which separate
 * tokens and names from values there. */
static int put_esc(pmci_capfile *f, const uint8_t *p, size_t n, int tok)
{
    uint8_t *o;

    if (pmci_buf_reserve(&f->out, n * 4) != PMC_OK) {
        errno = ENOMEM;
        return -1;
    }
    o = f->out.data + f->out.len;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = p[i];
        if (b > 0x20 && b < 0x7f && b != '\\' && !(tok && b == '=')) {
            *o++ = b;
            continue;
        }
        if (b == ' ' && !tok) {
            *o++ = b;
            continue;
        }
        *o++ = '\\';
        switch (b) {
        case 0: *o++ = '0'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'x';
            *o++ = (uint8_t)HEX[b >> 4];
            *o++ = (uint8_t)HEX[b & 15];
        }
    }
    f->out.len = (size_t)(o - f->out.data);
    return 0;
}

static int put_fmt(pmci_capfile *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int put_fmt(pmci_capfile *f, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return put(f, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

int pmci_capfile_start(pmci_capfile *f, const pmc_conn_info *ci,
                       long long now_ms)
{
    struct timespec ts;
    struct tm tm;
    char when[40];
    const char *fam = ci->family == AF_UNIX    ? "unix"
                      : ci->family == AF_INET  ? "inet"
                      : ci->family == AF_INET6 ? "inet6"
                                               : "unknown";

    f->t0 = now_ms;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    if (put_fmt(f, "pmcore-capture 1\n0 start time=%s.%03ldZ pid=%ld "
                "conn=%llu family=%s port=%u peer=", when,
                ts.tv_nsec / 1000000, (long)getpid(),
                (unsigned long long)ci->id, fam, (unsigned)ci->peer_port) ||
        put_esc(f, (const uint8_t *)ci->peer, strlen(ci->peer), 1) ||
        put(f, "\n", 1))
        return -1;
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* A macro packet's payload: the stage letter, then name NUL value NUL
 * pairs.  Written as tokens when it has that shape; 1 when it has not
 * (the caller writes it as a plain packet). */
static int put_macros(pmci_capfile *f, const uint8_t *p, size_t n)
{
    size_t i = 1, strings = 0;

    if (n == 0 || (n > 1 && p[n - 1] != 0))
        return 1;
    for (size_t k = 1; k < n; k++)
        strings += p[k] == 0;
    if (strings % 2)
        return 1;
    if (put(f, "macros ", 7) || put_esc(f, p, 1, 1))
        return -1;
    while (i < n) {
        size_t nl = strlen((const char *)p + i);
        size_t vl = strlen((const char *)p + i + nl + 1);
        if (put(f, " ", 1) || put_esc(f, p + i, nl, 1) || put(f, "=", 1) ||
            put_esc(f, p + i + nl + 1, vl, 1))
            return -1;
        i += nl + vl + 2;
    }
    return 0;
}

/* Negotiation: version, actions and protocol flags, then what follows
 * (the milter's macro lists) as one escaped token. */
static int put_options(pmci_capfile *f, const uint8_t *p, size_t n)
{
    if (n < 12)
        return 1;
    if (put_fmt(f, "options version=%u actions=0x%08x protocol=0x%08x",
                (unsigned)be32(p), (unsigned)be32(p + 4),
                (unsigned)be32(p + 8)))
        return -1;
    if (n > 12 && (put(f, " rest=", 6) || put_esc(f, p + 12, n - 12, 1)))
        return -1;
    return 0;
}

static int record(pmci_capfile *f, int dir, framer *fr)
{
    uint8_t cmd = fr->hdr[4];
    int r = 1;

    if (put_fmt(f, "%lld %c ", fr->t - f->t0, dir ? '<' : '>'))
        return -1;
    if (cmd == 'D' && dir == 0)
        r = put_macros(f, fr->pk.data, fr->pk.len);
    else if (cmd == 'O')
        r = put_options(f, fr->pk.data, fr->pk.len);
    if (r < 0)
        return -1;
    if (r > 0 && (put_esc(f, &cmd, 1, 1) ||
                  (fr->pk.len && put(f, " ", 1)) ||
                  put_esc(f, fr->pk.data, fr->pk.len, 0)))
        return -1;
    fr->pk.len = 0;
    fr->nh = 0;
    return put(f, "\n", 1);
}

/* Bytes that are not packets: as they came. */
static int raw(pmci_capfile *f, int dir, const uint8_t *p, size_t n,
               long long now_ms)
{
    if (put_fmt(f, "%lld %c raw ", now_ms - f->t0, dir ? '<' : '>') ||
        put_esc(f, p, n, 0) || put(f, "\n", 1))
        return -1;
    return 0;
}

int pmci_capfile_bytes(pmci_capfile *f, int dir, const uint8_t *p, size_t n,
                       long long now_ms)
{
    framer *fr = &f->fr[dir];

    while (n > 0) {
        if (fr->raw)
            return raw(f, dir, p, n, now_ms) ||
                   (f->out.len >= CAP_FLUSH && flush(f)) ? -1 : 0;
        if (fr->nh < 5) {
            if (fr->nh == 0)
                fr->t = now_ms;
            fr->hdr[fr->nh++] = *p++;
            n--;
            if (fr->nh < 5)
                continue;
            fr->need = be32(fr->hdr);
            if (fr->need == 0 || fr->need > CAP_MAX_PACKET) {
                /* What was framed so far goes out as raw bytes too. */
                fr->raw = 1;
                if (raw(f, dir, fr->hdr, 5, now_ms))
                    return -1;
                continue;
            }
            fr->need--; /* the command byte was part of the length */
        } else {
            size_t take = n < fr->need ? n : fr->need;
            if (pmc_buf_append(&fr->pk, p, take) != PMC_OK) {
                errno = ENOMEM;
                return -1;
            }
            p += take;
            n -= take;
            fr->need -= (uint32_t)take;
        }
        if (fr->need == 0 && record(f, dir, fr))
            return -1;
    }
    if (f->out.len >= CAP_FLUSH && flush(f))
        return -1;
    return 0;
}

static void release(pmci_capfile *f)
{
    pmc_buf_free(&f->out);
    pmc_buf_free(&f->fr[0].pk);
    pmc_buf_free(&f->fr[1].pk);
    free(f);
}

long long pmci_capfile_end(pmci_capfile *f, long long now_ms)
{
    long long size;
    int e;

    /* A packet cut off by the end of the connection is recorded as the
     * raw bytes that came. */
    for (int d = 0; d < 2; d++) {
        framer *fr = &f->fr[d];
        pmc_buf cut = {0};
        int bad;
        if (fr->raw || fr->nh == 0)
            continue;
        bad = pmc_buf_append(&cut, fr->hdr, fr->nh) != PMC_OK ||
              pmc_buf_append(&cut, fr->pk.data, fr->pk.len) != PMC_OK ||
              raw(f, d, cut.data, cut.len, now_ms);
        pmc_buf_free(&cut);
        if (bad)
            goto fail;
    }
    if (put_fmt(f, "%lld end\n", now_ms - f->t0) || flush(f))
        goto fail;
    if (close(f->fd) != 0) {
        f->fd = -1;
        goto fail;
    }
    size = f->size;
    release(f);
    return size;
fail:
    e = errno;
    pmci_capfile_drop(f);
    errno = e;
    return -1;
}

void pmci_capfile_drop(pmci_capfile *f)
{
    int e = errno;

    if (f->fd >= 0)
        close(f->fd);
    /* A partial capture would replay as a different conversation, and on
     * a full disk removing it gives the space back. */
    unlinkat(f->dirfd, f->name, 0);
    release(f);
    errno = e;
}
