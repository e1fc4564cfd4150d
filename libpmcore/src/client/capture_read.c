/* The capture reader (pmcore/capture.h): each line of a capture file
 * (docs/capture-format.md) back into the bytes that went over the socket.
 * The escapes are the format's own (proto/capture_format.c), the packets
 * are encoded by the wire layer (pmc_encode), so the reader holds only
 * how a line is laid out.  The file is read whole: captures are replayed
 * and compared, not streamed. */
#define _POSIX_C_SOURCE 200809L
#include "internal_client.h"
#include "pmcore/capture.h"
#include "../proto/capture_format.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct rec {
    pmc_capture_record pub;
    size_t off; /* of its bytes in the store, which moves as it grows */
} rec;

struct pmc_capture {
    pmc_capture_info info;
    rec *recs;
    size_t n, cap;
    pmc_buf store; /* every record's bytes, one after the other */
    pmc_buf peer;
};

/* One reading. */
typedef struct rd {
    pmc_capture *c;
    const char *text, *end;
    const char *line;   /* the first byte of the line being read */
    unsigned lineno;
    const char *path;   /* for messages; NULL for a buffer */
    pmc_error *err;
    pmc_buf tmp;        /* a payload being put together */
    int started;        /* a start record was read */
} rd;

/* The system's reason for errno e, thread-safe.  The XSI strerror_r is
 * asked for above, but a binding may build the core with _GNU_SOURCE
 * (Debian's Perl does), which gives the GNU one: the call goes to
 * whichever of these takes what strerror_r returns. */
static const char *xsi_reason(int rc, char *buf, size_t n, int e)
{
    if (rc != 0)
        snprintf(buf, n, "error %d", e);
    return buf;
}

static const char *gnu_reason(const char *s, char *buf, size_t n, int e)
{
    (void)buf;
    (void)n;
    (void)e;
    return s;
}

#define reason(e, buf, n)                                                  \
    _Generic(strerror_r((e), (buf), (n)), int: xsi_reason,                 \
             default: gnu_reason)(strerror_r((e), (buf), (n)), (buf), (n), \
                                  (e))

static pmc_status fail(rd *r, pmc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static pmc_status fail(rd *r, pmc_status code, const char *fmt, ...)
{
    char why[200];
    pmc_error tmp;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (r->path)
        return pmci_set_error(r->err ? r->err : &tmp, code,
                              (uint64_t)(r->line - r->text), "%s:%u: %s",
                              r->path, r->lineno, why);
    return pmci_set_error(r->err ? r->err : &tmp, code,
                          (uint64_t)(r->line - r->text), "line %u: %s",
                          r->lineno, why);
}

static pmc_status nomem(rd *r)
{
    return fail(r, PMC_ERR_NOMEM, "out of memory");
}

/* The escaped text p[0..n) onto out; what is wrong named after 'what'. */
static pmc_status unesc(rd *r, pmc_buf *out, const char *p, size_t n,
                        const char *what)
{
    size_t bad = 0;
    pmc_status st = pmci_cap_unescape(out, p, n, &bad);

    if (st == PMC_ERR_NOMEM)
        return nomem(r);
    if (st != PMC_OK)
        return fail(r, PMC_ERR_FORMAT, "bad escape '%.*s' in %s",
                    (int)(n - bad < 4 ? n - bad : 4), p + bad, what);
    return PMC_OK;
}

/* A number of p[0..n): decimal, or hexadecimal after 0x; -1 when it is
 * none or above max. */
static int number(const char *p, size_t n, uint64_t max, uint64_t *v)
{
    unsigned base = 10;

    if (n > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
        n -= 2;
    }
    if (n == 0)
        return -1;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = p[i] >= '0' && p[i] <= '9'   ? p[i] - '0'
                : base == 16 && p[i] >= 'a' && p[i] <= 'f' ? p[i] - 'a' + 10
                : base == 16 && p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 10
                                                             : -1;
        if (d < 0 || *v > (max - (uint64_t)d) / base)
            return -1;
        *v = *v * base + (uint64_t)d;
    }
    return 0;
}

/* The next token of [*p, end), tokens one space apart; 0 at the end. */
static int token(const char **p, const char *end, const char **t, size_t *n)
{
    const char *sp;

    if (*p >= end)
        return 0;
    *t = *p;
    sp = memchr(*p, ' ', (size_t)(end - *p));
    *n = (size_t)((sp ? sp : end) - *t);
    *p = sp ? sp + 1 : end;
    return 1;
}

static int is(const char *t, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(t, word, n) == 0;
}

/* A record whose bytes are the next ones of the store. */
static pmc_status add(rd *r, long long ms, int dir, int raw, uint8_t cmd,
                      size_t off)
{
    pmc_capture *c = r->c;
    rec *x;

    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        rec *v = realloc(c->recs, cap * sizeof *v);
        if (!v)
            return nomem(r);
        c->recs = v;
        c->cap = cap;
    }
    x = &c->recs[c->n++];
    memset(x, 0, sizeof *x);
    x->pub.ms = ms;
    x->pub.dir = (pmc_capture_dir)dir;
    x->pub.raw = raw;
    x->pub.cmd = cmd;
    x->pub.line = r->lineno;
    x->pub.len = c->store.len - off;
    x->off = off;
    return PMC_OK;
}

/* A packet of r->tmp's payload. */
static pmc_status packet(rd *r, long long ms, int dir, uint8_t cmd)
{
    size_t off = r->c->store.len;

    /* The writer records longer ones as raw bytes. */
    if (r->tmp.len > PMCI_CAP_MAX_PACKET - 1)
        return fail(r, PMC_ERR_FORMAT, "a packet longer than %u bytes",
                    PMCI_CAP_MAX_PACKET);
    if (pmc_encode(&r->c->store, cmd, r->tmp.data, r->tmp.len) != PMC_OK)
        return nomem(r);
    return add(r, ms, dir, 0, cmd, off);
}

/* "macros STAGE NAME=VALUE ...": the stage letter, then NUL-terminated
 * names and values. */
static pmc_status macros(rd *r, const char *p, const char *le)
{
    const char *t;
    size_t n;
    pmc_status st;

    if (!token(&p, le, &t, &n))
        return fail(r, PMC_ERR_FORMAT, "macros without their stage");
    if ((st = unesc(r, &r->tmp, t, n, "the macros' stage")))
        return st;
    if (r->tmp.len != 1)
        return fail(r, PMC_ERR_FORMAT, "a macros' stage of %zu bytes, not "
                    "one", r->tmp.len);
    while (token(&p, le, &t, &n)) {
        const char *eq = memchr(t, '=', n);
        if (!eq)
            return fail(r, PMC_ERR_FORMAT, "a macro '%.*s' without '='",
                        (int)(n < 40 ? n : 40), t);
        if ((st = unesc(r, &r->tmp, t, (size_t)(eq - t), "a macro name")) ||
            (st = pmc_buf_append(&r->tmp, "", 1)) ||
            (st = unesc(r, &r->tmp, eq + 1, n - (size_t)(eq - t) - 1,
                        "a macro value")) ||
            (st = pmc_buf_append(&r->tmp, "", 1)))
            return st == PMC_ERR_NOMEM ? nomem(r) : st;
    }
    return PMC_OK;
}

/* "options version=V actions=0xA protocol=0xP [rest=ESC]". */
static pmc_status options(rd *r, const char *p, const char *le, int dir)
{
    static const char *const key[3] = {"version=", "actions=", "protocol="};
    pmc_capture_options *o = dir ? &r->c->info.negotiated
                                 : &r->c->info.offer;
    uint32_t v[3];
    uint8_t w[12];
    const char *t;
    size_t n;

    for (int k = 0; k < 3; k++) {
        size_t kl = strlen(key[k]);
        uint64_t x;
        if (!token(&p, le, &t, &n) || n < kl ||
            memcmp(t, key[k], kl) != 0 ||
            number(t + kl, n - kl, UINT32_MAX, &x) != 0)
            return fail(r, PMC_ERR_FORMAT, "options without a number "
                        "%.*s at its place", (int)kl, key[k]);
        v[k] = (uint32_t)x;
        pmci_put32(w + 4 * k, v[k]);
    }
    if (pmc_buf_append(&r->tmp, w, sizeof w) != PMC_OK)
        return nomem(r);
    if (token(&p, le, &t, &n)) {
        pmc_status st;
        if (n < 5 || memcmp(t, "rest=", 5) != 0 || p < le)
            return fail(r, PMC_ERR_FORMAT, "options followed by '%.*s', "
                        "not one rest=", (int)(le - t < 40 ? le - t : 40),
                        t);
        if ((st = unesc(r, &r->tmp, t + 5, n - 5, "options' rest")))
            return st;
    }
    if (!o->present) {
        o->present = 1;
        o->version = v[0];
        o->actions = v[1];
        o->protocol = v[2];
    }
    return PMC_OK;
}

/* "MS cut K": the last body of that direction lost its last K bytes. */
static pmc_status cut(rd *r, int dir, const char *p, const char *le)
{
    pmc_capture *c = r->c;
    uint64_t k;
    rec *x = NULL;

    if (number(p, (size_t)(le - p), SIZE_MAX, &k) != 0)
        return fail(r, PMC_ERR_FORMAT, "a cut without its byte count");
    for (size_t i = c->n; i > 0 && !x; i--)
        if ((int)c->recs[i - 1].pub.dir == dir)
            x = &c->recs[i - 1];
    if (!x || x->pub.raw || x->pub.cmd != (dir ? 'b' : 'B') ||
        k > x->pub.len - 5)
        return fail(r, PMC_ERR_FORMAT, "a cut of %llu bytes, and no body "
                    "that long before it in that direction",
                    (unsigned long long)k);
    x->pub.len -= (size_t)k;
    x->pub.raw = 1;
    return PMC_OK;
}

/* "MS > B =N", a LF, N bytes and a LF: a body sent verbatim.  *next is
 * set past it; the line count goes on over the bytes' own LFs. */
static pmc_status body(rd *r, long long ms, int dir, uint8_t cmd,
                       const char *p, const char *le, const char **next)
{
    uint64_t n;
    const char *b = le + 1;
    size_t off = r->c->store.len;
    unsigned first = r->lineno;
    pmc_status st;

    if (number(p, (size_t)(le - p), PMCI_CAP_MAX_PACKET - 1, &n) != 0 ||
        n == 0)
        return fail(r, PMC_ERR_FORMAT, "a body's length '%.*s' is not a "
                    "number from 1 to %u", (int)(le - p < 20 ? le - p : 20),
                    p, PMCI_CAP_MAX_PACKET - 1);
    if ((uint64_t)(r->end - b) < n + 1)
        return fail(r, PMC_ERR_TRUNCATED, "the file ends inside the %llu "
                    "bytes of this body", (unsigned long long)n);
    if (b[n] != '\n')
        return fail(r, PMC_ERR_FORMAT, "the %llu bytes of this body are "
                    "not followed by a line end", (unsigned long long)n);
    if (pmc_encode(&r->c->store, cmd, b, (size_t)n) != PMC_OK)
        return nomem(r);
    if ((st = add(r, ms, dir, 0, cmd, off)) != PMC_OK)
        return st;
    r->c->recs[r->c->n - 1].pub.line = first;
    for (const char *q = b; (q = memchr(q, '\n', (size_t)(b + n - q)));
         q++)
        r->lineno++;
    r->lineno++; /* the bytes' last line; the loop counts the next one */
    *next = b + n + 1;
    return PMC_OK;
}

/* "MS D WORD [PAYLOAD]", p after "D ". */
static pmc_status packet_line(rd *r, long long ms, int dir, const char *p,
                              const char *le, const char **next)
{
    const char *w;
    size_t wn;
    pmc_status st;
    uint8_t cmd;

    r->tmp.len = 0;
    if (!token(&p, le, &w, &wn) || wn == 0)
        return fail(r, PMC_ERR_FORMAT, "a packet record without its "
                    "command");
    if (is(w, wn, "raw")) {
        size_t off = r->c->store.len;
        if (p == le)
            return fail(r, PMC_ERR_FORMAT, "raw without its bytes");
        if ((st = unesc(r, &r->c->store, p, (size_t)(le - p), "raw bytes")))
            return st;
        return add(r, ms, dir, 1, 0, off);
    }
    if (is(w, wn, "cut"))
        return cut(r, dir, p, le);
    if (is(w, wn, "macros"))
        return (st = macros(r, p, le)) ? st : packet(r, ms, dir, 'D');
    if (is(w, wn, "options"))
        return (st = options(r, p, le, dir)) ? st : packet(r, ms, dir, 'O');
    if ((st = unesc(r, &r->tmp, w, wn, "the command")))
        return st;
    if (r->tmp.len != 1)
        return fail(r, PMC_ERR_FORMAT, "'%.*s' is neither a command byte "
                    "nor a word of the format", (int)(wn < 20 ? wn : 20), w);
    cmd = r->tmp.data[0];
    r->tmp.len = 0;
    if (cmd == (dir ? 'b' : 'B') && p < le && *p == '=')
        return body(r, ms, dir, cmd, p + 1, le, next);
    if ((st = unesc(r, &r->tmp, p, (size_t)(le - p), "the payload")))
        return st;
    return packet(r, ms, dir, cmd);
}

/* "MS start KEY=VALUE ...": keys this reader does not know are skipped. */
static pmc_status start(rd *r, const char *p, const char *le)
{
    pmc_capture_info *in = &r->c->info;
    const char *t;
    size_t n;
    pmc_status st;

    if (r->started++)
        return fail(r, PMC_ERR_FORMAT, "a second start record");
    while (token(&p, le, &t, &n)) {
        const char *eq = memchr(t, '=', n), *v;
        size_t vn;
        uint64_t x = 0;
        int bad = 0;
        if (!eq)
            return fail(r, PMC_ERR_FORMAT, "'%.*s' in the start record "
                        "is no KEY=VALUE", (int)(n < 40 ? n : 40), t);
        v = eq + 1;
        vn = n - (size_t)(v - t);
        n = (size_t)(eq - t);
        if (is(t, n, "time") || is(t, n, "family")) {
            int time = is(t, n, "time");
            char *dst = time ? in->start_time : in->family;
            size_t cap = time ? sizeof in->start_time : sizeof in->family;
            r->tmp.len = 0;
            if ((st = unesc(r, &r->tmp, v, vn, "the start record")))
                return st;
            bad = r->tmp.len >= cap;
            if (!bad && r->tmp.len)
                memcpy(dst, r->tmp.data, r->tmp.len);
            if (!bad)
                dst[r->tmp.len] = 0;
        } else if (is(t, n, "pid")) {
            bad = number(v, vn, INT64_MAX, &x) != 0;
            in->pid = (long long)x;
        } else if (is(t, n, "conn")) {
            bad = number(v, vn, UINT64_MAX, &x) != 0;
            in->conn = x;
        } else if (is(t, n, "port")) {
            bad = number(v, vn, 65535, &x) != 0;
            in->port = (unsigned)x;
        } else if (is(t, n, "peer")) {
            if ((st = unesc(r, &r->c->peer, v, vn, "the peer")) ||
                (st = pmc_buf_append(&r->c->peer, "", 1)))
                return st == PMC_ERR_NOMEM ? nomem(r) : st;
        }
        if (bad)
            return fail(r, PMC_ERR_FORMAT, "a bad %.*s= in the start "
                        "record", (int)n, t);
    }
    return PMC_OK;
}

/* One record from r->line to le (its LF, or the end); *next is where the
 * next one starts. */
static pmc_status line(rd *r, const char *le, const char **next)
{
    const char *p = r->line, *t;
    size_t n;
    uint64_t ms;

    *next = le + 1;
    if (r->c->info.complete)
        return fail(r, PMC_ERR_FORMAT, "a record after the end record");
    /* Decimal only: number() would take 0x too. */
    if (!token(&p, le, &t, &n) || (n > 1 && (t[1] == 'x' || t[1] == 'X')) ||
        number(t, n, INT64_MAX, &ms) != 0)
        return fail(r, PMC_ERR_FORMAT, "a record that does not start with "
                    "its time in milliseconds");
    if (!token(&p, le, &t, &n))
        return fail(r, PMC_ERR_FORMAT, "a time and no record");
    if (is(t, n, ">") || is(t, n, "<"))
        return packet_line(r, (long long)ms, *t == '<', p, le, next);
    if (is(t, n, "start"))
        return start(r, p, le);
    if (is(t, n, "end")) {
        r->c->info.complete = 1;
        r->c->info.end_ms = (long long)ms;
    }
    return PMC_OK; /* end, or a kind of a later writer: skipped */
}

/* "pmcore-capture 1": the format and its version. */
static pmc_status first_line(rd *r, const char **next)
{
    size_t ml = strlen(PMCI_CAP_MAGIC), len = (size_t)(r->end - r->text);
    const char *nl = memchr(r->text, '\n', len);
    uint64_t v;

    if (len == 0)
        return fail(r, PMC_ERR_TRUNCATED, "the file is empty (a capture "
                    "not written yet?)");
    if (memcmp(r->text, PMCI_CAP_MAGIC, len < ml ? len : ml) != 0)
        return fail(r, PMC_ERR_FORMAT, "not a pmcore capture file");
    if (!nl)
        return fail(r, PMC_ERR_TRUNCATED, "the file ends inside its first "
                    "line");
    if ((size_t)(nl - r->text) < ml ||
        number(r->text + ml, (size_t)(nl - r->text) - ml, UINT32_MAX,
               &v) != 0)
        return fail(r, PMC_ERR_FORMAT, "not a pmcore capture file");
    if (v != PMCI_CAP_VERSION)
        return fail(r, PMC_ERR_FORMAT, "capture format '%.*s' is not "
                    "version %d, the one this library reads",
                    (int)(nl - r->text < 40 ? nl - r->text : 40), r->text,
                    PMCI_CAP_VERSION);
    r->c->info.format = (unsigned)v;
    *next = nl + 1;
    return PMC_OK;
}

static pmc_status parse(const char *path, const void *text, size_t len,
                        pmc_capture **out, pmc_error *err)
{
    rd r;
    const char *p = NULL;
    pmc_status st;

    if (!out || (!text && len))
        return err ? pmci_set_error(err, PMC_ERR_ARGUMENT, 0, "%s",
                                    out ? "no text" : "no place for the "
                                                      "capture")
                   : PMC_ERR_ARGUMENT;
    *out = NULL;
    memset(&r, 0, sizeof r);
    r.text = r.line = text ? text : "";
    r.end = r.text + len;
    r.path = path;
    r.err = err;
    r.lineno = 1;
    if ((r.c = calloc(1, sizeof *r.c)) == NULL)
        return nomem(&r);
    r.c->info.end_ms = -1;
    st = first_line(&r, &p);
    while (st == PMC_OK && p < r.end) {
        const char *le = memchr(p, '\n', (size_t)(r.end - p));
        r.line = p;
        r.lineno++;
        if (!le)
            st = fail(&r, PMC_ERR_TRUNCATED, "the file ends in the middle "
                      "of this line (a capture still being written, or "
                      "cut off)");
        else if (le == p)
            p = le + 1;
        else
            st = line(&r, le, &p);
    }
    pmc_buf_free(&r.tmp);
    if (st != PMC_OK) {
        pmc_capture_free(r.c);
        return st;
    }
    for (size_t i = 0; i < r.c->n; i++)
        r.c->recs[i].pub.bytes = r.c->store.data + r.c->recs[i].off;
    r.c->info.peer.ptr = r.c->peer.data ? (const char *)r.c->peer.data : "";
    r.c->info.peer.len = r.c->peer.len ? r.c->peer.len - 1 : 0;
    *out = r.c;
    return PMC_OK;
}

pmc_status pmc_capture_parse(const void *text, size_t len, pmc_capture **out,
                             pmc_error *err)
{
    return parse(NULL, text, len, out, err);
}

pmc_status pmc_capture_read_file(const char *path, pmc_capture **out,
                                 pmc_error *err)
{
    pmc_buf text = {0};
    pmc_error tmp;
    pmc_status st = PMC_OK;
    char why[100];
    int fd;

    if (!err)
        err = &tmp;
    if (!path || !out)
        return pmci_set_error(err, PMC_ERR_ARGUMENT, 0, "no %s",
                              path ? "place for the capture" : "path");
    *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return pmci_set_error(err, PMC_ERR_IO, 0, "%s: %s", path,
                              reason(errno, why, sizeof why));
    for (;;) {
        ssize_t k;
        if (pmci_buf_reserve(&text, 65536) != PMC_OK) {
            st = pmci_set_error(err, PMC_ERR_NOMEM, 0, "%s: out of memory",
                                path);
            break;
        }
        k = read(fd, text.data + text.len, text.cap - text.len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            st = pmci_set_error(err, PMC_ERR_IO, text.len, "%s: %s", path,
                                reason(errno, why, sizeof why));
        if (k <= 0)
            break;
        text.len += (size_t)k;
    }
    close(fd);
    if (st == PMC_OK)
        st = parse(path, text.data, text.len, out, err);
    pmc_buf_free(&text);
    return st;
}

void pmc_capture_free(pmc_capture *c)
{
    if (!c)
        return;
    pmc_buf_free(&c->store);
    pmc_buf_free(&c->peer);
    free(c->recs);
    free(c);
}

const pmc_capture_info *pmc_capture_get_info(const pmc_capture *c)
{
    return &c->info;
}

size_t pmc_capture_count(const pmc_capture *c)
{
    return c->n;
}

const pmc_capture_record *pmc_capture_record_at(const pmc_capture *c,
                                                size_t i)
{
    return i < c->n ? &c->recs[i].pub : NULL;
}
