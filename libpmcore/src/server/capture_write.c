/* The records of a capture file (docs/capture-format.md): the bytes of
 * each direction cut into packets, one line per packet, buffered and
 * written in large pieces.  Any write error is returned so the caller
 * drops the file; nothing here waits.  The escapes are the format's
 * (proto/capture_format.c), which the reader undoes.
 *
 * This runs on every byte a captured server reads or writes, so it is
 * written for speed: a packet that arrived whole is escaped straight from
 * the read buffer, and bodies go out verbatim as they arrive. */
#define _GNU_SOURCE
#include "capture.h"
#include "../proto/capture_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Written to the file once this much is buffered, and at the end. */
#define CAP_FLUSH 65536

typedef struct framer {
    uint8_t hdr[5];     /* length (4 bytes, network order) and command */
    unsigned nh;
    uint32_t need;      /* payload bytes still to come */
    int blob;           /* this payload is going out verbatim */
    pmc_buf pk;         /* the payload so far, when it came in pieces */
    long long t;        /* when the packet's first byte was seen */
    int raw;            /* not packets any more */
} framer;

struct pmci_capfile {
    int dirfd;          /* the capture directory's (not ours) */
    int fd;
    char name[96];
    long long t0;       /* monotonic ms at the start */
    long long size;     /* bytes written to the file */
    long long tlast;    /* the last record time written, as text: */
    char tbuf[24];      /* most records of a round share it (< 16 digits) */
    size_t tlen;
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

/* Room for n more bytes at the end of the buffer. */
static inline uint8_t *room(pmci_capfile *f, size_t n)
{
    if (n > f->out.cap - f->out.len &&
        pmci_buf_reserve(&f->out, n) != PMC_OK) {
        errno = ENOMEM;
        return NULL;
    }
    return f->out.data + f->out.len;
}

static inline int put(pmci_capfile *f, const void *p, size_t n)
{
    uint8_t *o = room(f, n);

    if (!o)
        return -1;
    memcpy(o, p, n);
    f->out.len += n;
    return 0;
}

/* p[0..n) escaped as mode says (the rule is the format's own, shared
 * with the reader).  In PMCI_PMCI_ESC_MACROS, *nuls counts the NULs (the
 * caller checks the shape). */
static int put_esc(pmci_capfile *f, const uint8_t *p, size_t n, int mode,
                   size_t *nuls)
{
    if (pmci_cap_escape(&f->out, p, n, mode, nuls) != PMC_OK) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* "MS D " with D '>' or '<': the start of a packet record. */
static int head(pmci_capfile *f, long long t, int dir)
{
    uint8_t *o = room(f, 32);

    if (!o)
        return -1;
    if (t != f->tlast || f->tlen == 0) {
        char d[24];
        int k = 0;
        unsigned long long v = t > f->t0 ? (unsigned long long)(t - f->t0)
                                         : 0;
        do
            d[k++] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        f->tlen = 0;
        while (k)
            f->tbuf[f->tlen++] = d[--k];
        f->tlast = t;
    }
    memcpy(o, f->tbuf, 16); /* room has it; a constant size is inlined */
    o += f->tlen;
    *o++ = ' ';
    *o++ = dir ? '<' : '>';
    *o++ = ' ';
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
    if (put_fmt(f, PMCI_CAP_FIRST_LINE "0 start time=%s.%03ldZ pid=%ld "
                "conn=%llu family=%s port=%u peer=", when,
                ts.tv_nsec / 1000000, (long)getpid(),
                (unsigned long long)ci->id, fam, (unsigned)ci->peer_port) ||
        put_esc(f, (const uint8_t *)ci->peer, strlen(ci->peer), PMCI_ESC_TOKEN,
                NULL) ||
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
    size_t mark = f->out.len, nuls = 0;

    if (n == 0 || (n > 1 && p[n - 1] != 0))
        return 1;
    if (put(f, "macros ", 7) || put_esc(f, p, 1, PMCI_ESC_TOKEN, NULL))
        return -1;
    if (n > 1 && (put(f, " ", 1) ||
                  put_esc(f, p + 1, n - 1, PMCI_ESC_MACROS, &nuls)))
        return -1;
    if (nuls % 2) {
        /* A name without a value: not the shape; undo. */
        f->out.len = mark;
        return 1;
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
    if (n > 12 && (put(f, " rest=", 6) || put_esc(f, p + 12, n - 12, PMCI_ESC_TOKEN, NULL)))
        return -1;
    return 0;
}

/* A whole packet's line. */
static int record(pmci_capfile *f, int dir, long long t, uint8_t cmd,
                  const uint8_t *p, size_t n)
{
    int r = 1;

    if (head(f, t, dir))
        return -1;
    if (cmd == 'D' && dir == 0)
        r = put_macros(f, p, n);
    else if (cmd == 'O')
        r = put_options(f, p, n);
    if (r < 0)
        return -1;
    if (r > 0) {
        uint8_t *o = room(f, 8);
        if (!o)
            return -1;
        if (pmci_cap_plain(cmd, PMCI_ESC_TOKEN))
            *o++ = cmd;
        else
            o = pmci_cap_esc1(o, cmd);
        if (n)
            *o++ = ' ';
        f->out.len = (size_t)(o - f->out.data);
        if (n && put_esc(f, p, n, PMCI_ESC_PAYLOAD, NULL))
            return -1;
    }
    return put(f, "\n", 1);
}

/* Bytes that are not packets: as they came. */
static int raw(pmci_capfile *f, int dir, const uint8_t *p, size_t n,
               long long now_ms)
{
    if (head(f, now_ms, dir) || put(f, "raw ", 4) ||
        put_esc(f, p, n, PMCI_ESC_PAYLOAD, NULL) ||
        put(f, "\n", 1))
        return -1;
    return 0;
}

/* Bodies are the bulk of a conversation and text already: their payload
 * goes out verbatim after a line giving its length. */
static int is_blob(int dir, uint8_t cmd)
{
    return dir == 0 ? cmd == 'B' : cmd == 'b';
}

/* The header of a packet is complete: its length, and for a body the
 * record's first line.  -1 on a write error. */
static int packet_start(pmci_capfile *f, int dir, framer *fr,
                        long long now_ms)
{
    char num[16];
    int k;

    fr->need = be32(fr->hdr);
    if (fr->need == 0 || fr->need > PMCI_CAP_MAX_PACKET) {
        fr->raw = 1;
        return raw(f, dir, fr->hdr, 5, now_ms);
    }
    fr->need--; /* the command byte was part of the length */
    fr->blob = fr->need > 0 && is_blob(dir, fr->hdr[4]);
    if (fr->need == 0) {
        fr->nh = 0;
        return record(f, dir, fr->t, fr->hdr[4], NULL, 0);
    }
    if (!fr->blob)
        return 0;
    k = snprintf(num, sizeof num, " =%u\n", (unsigned)fr->need);
    return head(f, fr->t, dir) || put(f, &fr->hdr[4], 1) ||
           put(f, num, (size_t)k) ? -1 : 0;
}

int pmci_capfile_bytes(pmci_capfile *f, int dir, const uint8_t *p, size_t n,
                       long long now_ms)
{
    framer *fr = &f->fr[dir];

    while (n > 0) {
        size_t take;

        if (fr->raw) {
            if (raw(f, dir, p, n, now_ms))
                return -1;
            break;
        }
        if (fr->nh < 5) {
            if (fr->nh == 0)
                fr->t = now_ms;
            if (fr->nh == 0 && n >= 5) {
                memcpy(fr->hdr, p, 5);
                fr->nh = 5;
                p += 5;
                n -= 5;
            } else {
                fr->hdr[fr->nh++] = *p++;
                n--;
            }
            if (fr->nh == 5 && packet_start(f, dir, fr, now_ms))
                return -1;
            continue;
        }
        take = n < fr->need ? n : fr->need;
        if (fr->blob) {
            if (put(f, p, take))
                return -1;
        } else if (fr->pk.len == 0 && take == fr->need) {
            /* The whole payload is here: no copy. */
            if (record(f, dir, fr->t, fr->hdr[4], p, take))
                return -1;
        } else if (pmc_buf_append(&fr->pk, p, take) != PMC_OK) {
            errno = ENOMEM;
            return -1;
        }
        p += take;
        n -= take;
        fr->need -= (uint32_t)take;
        if (fr->need > 0)
            continue;
        if (fr->blob ? put(f, "\n", 1)
            : fr->pk.len ? record(f, dir, fr->t, fr->hdr[4], fr->pk.data,
                                  fr->pk.len)
                         : 0)
            return -1;
        fr->pk.len = 0;
        fr->nh = 0;
        fr->blob = 0;
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
     * raw bytes that came.  A body's length went out with its first
     * bytes, so its record is filled up with NULs and followed by "cut N":
     * its last N bytes never came. */
    for (int d = 0; d < 2; d++) {
        framer *fr = &f->fr[d];
        pmc_buf cut = {0};
        int bad;
        if (fr->raw || fr->nh == 0)
            continue;
        if (fr->blob) {
            char num[16];
            uint8_t *o = room(f, fr->need);
            if (!o)
                goto fail;
            memset(o, 0, fr->need);
            f->out.len += fr->need;
            snprintf(num, sizeof num, "cut %u\n", (unsigned)fr->need);
            if (put(f, "\n", 1) || head(f, now_ms, d) ||
                put(f, num, strlen(num)))
                goto fail;
            continue;
        }
        bad = pmc_buf_append(&cut, fr->hdr, fr->nh) != PMC_OK ||
              pmc_buf_append(&cut, fr->pk.data, fr->pk.len) != PMC_OK ||
              raw(f, d, cut.data, cut.len, now_ms);
        pmc_buf_free(&cut);
        if (bad)
            goto fail;
    }
    if (head(f, now_ms, 0))
        goto fail;
    /* head wrote "MS > "; the end record has no direction. */
    f->out.len -= 2;
    if (put(f, "end\n", 4) || flush(f))
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
