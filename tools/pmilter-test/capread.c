/* Reading a capture file (docs/capture-format.md) back into the packets
 * that went over the socket: the inverse of the core's capture_write.c. */
#include "pmt.h"
#include "replay.h"

#include <stdlib.h>
#include <string.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Undo the escapes of p[0..n) onto out; -1 on a bad escape. */
static int unescape(const char *p, size_t n, pmc_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)p[i];
        if (b == '\\') {
            if (++i >= n)
                return -1;
            switch (p[i]) {
            case '0': b = 0; break;
            case '\\': b = '\\'; break;
            case 'n': b = '\n'; break;
            case 'r': b = '\r'; break;
            case 't': b = '\t'; break;
            case 'x': {
                int h = i + 2 < n ? hexval(p[i + 1]) : -1;
                int l = h >= 0 ? hexval(p[i + 2]) : -1;
                if (l < 0)
                    return -1;
                b = (uint8_t)(h << 4 | l);
                i += 2;
                break;
            }
            default: return -1;
            }
        }
        pmc_buf_append(out, &b, 1);
    }
    return 0;
}

/* The next space-separated token of [*p, end). */
static int token(const char **p, const char *end, const char **t,
                 size_t *tn)
{
    while (*p < end && **p == ' ')
        (*p)++;
    if (*p >= end)
        return 0;
    *t = *p;
    while (*p < end && **p != ' ')
        (*p)++;
    *tn = (size_t)(*p - *t);
    return 1;
}

static void put32(pmc_buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
    pmc_buf_append(b, x, 4);
}

/* "macros STAGE name=value ...": the stage letter, then NUL-terminated
 * names and values. */
static int macros(const char *p, const char *end, pmc_buf *pl)
{
    const char *t;
    size_t tn;

    if (!token(&p, end, &t, &tn) || unescape(t, tn, pl) || pl->len != 1)
        return -1;
    while (token(&p, end, &t, &tn)) {
        const char *eq = memchr(t, '=', tn);
        if (!eq || unescape(t, (size_t)(eq - t), pl))
            return -1;
        pmc_buf_append(pl, "", 1);
        if (unescape(eq + 1, tn - (size_t)(eq - t) - 1, pl))
            return -1;
        pmc_buf_append(pl, "", 1);
    }
    return 0;
}

/* "options version=V actions=0xA protocol=0xP [rest=ESC]". */
static int options(const char *p, const char *end, pmc_buf *pl)
{
    static const char *const want[3] = {"version=", "actions=", "protocol="};
    const char *t;
    size_t tn;

    for (int k = 0; k < 3; k++) {
        size_t wl = strlen(want[k]);
        char num[24];
        char *e;
        if (!token(&p, end, &t, &tn) || tn <= wl || tn - wl >= sizeof num ||
            memcmp(t, want[k], wl) != 0)
            return -1;
        memcpy(num, t + wl, tn - wl);
        num[tn - wl] = 0;
        unsigned long v = strtoul(num, &e, 0);
        if (*e || v > 0xffffffffUL)
            return -1;
        put32(pl, (uint32_t)v);
    }
    if (token(&p, end, &t, &tn)) {
        if (tn < 5 || memcmp(t, "rest=", 5) != 0 ||
            unescape(t + 5, tn - 5, pl))
            return -1;
    }
    return 0;
}

/* One "MS DIR KIND [PAYLOAD]" line into r; 1 for a line that is not a
 * packet (start, end, or a kind this reader does not know), -1 when it
 * does not parse.  A body's record ("MS > B =N") gets its length in
 * *blob, for the caller to take the N bytes after the line; "MS D cut N"
 * gives 2 with N in *blob. */
static int parse_line(const char *p, const char *end, pmt_rec *r,
                      size_t *blob)
{
    const char *t, *dir;
    size_t tn;
    pmc_buf pl = {0};
    char num[24];
    char *e;
    int rc = 0;

    if (!token(&p, end, &t, &tn) || tn >= sizeof num)
        return -1;
    memcpy(num, t, tn);
    num[tn] = 0;
    r->ms = strtoll(num, &e, 10);
    if (*e)
        return -1;
    if (!token(&p, end, &dir, &tn))
        return -1;
    if (tn != 1 || (*dir != '>' && *dir != '<'))
        return 1;
    r->dir = *dir == '<';
    if (!token(&p, end, &t, &tn))
        return -1;
    if (p < end)
        p++; /* the one space before a payload */
    memset(&r->pkt, 0, sizeof r->pkt);
    r->raw = 0;
    if (tn == 3 && memcmp(t, "cut", 3) == 0) {
        *blob = strtoul(p, &e, 10);
        return e == end && e != p ? 2 : -1;
    }
    if (tn == 3 && memcmp(t, "raw", 3) == 0) {
        r->raw = 1;
        r->cmd = 0;
        return unescape(p, (size_t)(end - p), &r->pkt) ? -1 : 0;
    }
    if (tn == 6 && memcmp(t, "macros", 6) == 0) {
        r->cmd = 'D';
        rc = macros(p, end, &pl);
    } else if (tn == 7 && memcmp(t, "options", 7) == 0) {
        r->cmd = 'O';
        rc = options(p, end, &pl);
    } else {
        pmc_buf c = {0};
        if (unescape(t, tn, &c) || c.len != 1) {
            pmc_buf_free(&c);
            return -1;
        }
        r->cmd = c.data[0];
        pmc_buf_free(&c);
        if (r->cmd == (r->dir ? 'b' : 'B') && p < end && *p == '=') {
            *blob = strtoul(p + 1, &e, 10);
            if (e != end || e == p + 1)
                return -1;
            put32(&r->pkt, (uint32_t)*blob + 1);
            pmc_buf_append(&r->pkt, &r->cmd, 1);
            return 0;
        }
        rc = unescape(p, (size_t)(end - p), &pl);
    }
    if (rc == 0) {
        put32(&r->pkt, (uint32_t)pl.len + 1);
        pmc_buf_append(&r->pkt, &r->cmd, 1);
        pmc_buf_append(&r->pkt, pl.data, pl.len);
    }
    pmc_buf_free(&pl);
    return rc;
}

void pmt_capture_free(pmt_capture *c)
{
    for (size_t i = 0; i < c->n; i++)
        pmc_buf_free(&c->recs[i].pkt);
    free(c->recs);
    memset(c, 0, sizeof *c);
}

int pmt_capture_read(const char *path, pmt_capture *c, char *err,
                     size_t errlen)
{
    pmc_buf text = {0};
    const char *p, *end;
    unsigned line = 1;

    memset(c, 0, sizeof *c);
    if (pmt_read_file(path, &text, err, errlen) != 0)
        return -1;
    p = (const char *)text.data;
    end = p + text.len;
    {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *magic = "pmcore-capture ";
        size_t ml = strlen(magic);
        if (!nl || (size_t)(nl - p) <= ml || memcmp(p, magic, ml) != 0) {
            snprintf(err, errlen, "%s: not a pmcore capture file", path);
            goto bad;
        }
        if ((size_t)(nl - p) != ml + 1 || p[ml] != '1') {
            snprintf(err, errlen, "%s: capture format '%.*s' is not "
                     "version 1, the one this pmilter-test reads", path,
                     (int)(nl - p), p);
            goto bad;
        }
        p = nl + 1;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        pmt_rec r;
        size_t blob = 0;
        int rc;
        line++;
        if (le == p) {
            p = le + 1;
            continue;
        }
        rc = parse_line(p, le, &r, &blob);
        if (rc < 0) {
            snprintf(err, errlen, "%s:%u: bad record", path, line);
            goto bad;
        }
        if (rc == 2) {
            /* The previous body of that direction lost its last bytes:
             * what came is sent as it came. */
            size_t k = c->n;
            while (k > 0 && c->recs[k - 1].dir != r.dir)
                k--;
            if (k == 0 || c->recs[k - 1].pkt.len < 5 + blob) {
                snprintf(err, errlen, "%s:%u: bad cut record", path, line);
                goto bad;
            }
            c->recs[k - 1].pkt.len -= blob;
            c->recs[k - 1].raw = 1;
            p = le + 1;
            continue;
        }
        if (rc == 0 && blob) {
            /* The body's bytes follow the line, then a line end. */
            if ((size_t)(end - le) < blob + 2 || le[1 + blob] != '\n') {
                pmc_buf_free(&r.pkt);
                snprintf(err, errlen, "%s:%u: body shorter than its "
                         "length", path, line);
                goto bad;
            }
            pmc_buf_append(&r.pkt, le + 1, blob);
            le += 1 + blob;
        }
        if (rc == 0) {
            if (c->n == c->cap) {
                c->cap = c->cap ? c->cap * 2 : 64;
                c->recs = pmt_xalloc(c->recs, c->cap * sizeof *c->recs);
            }
            r.line = line;
            c->recs[c->n++] = r;
        } else {
            const char *sp = memchr(p, ' ', (size_t)(le - p));
            if (sp && le - sp == 4 && memcmp(sp, " end", 4) == 0)
                c->complete = 1;
        }
        p = le + 1;
    }
    pmc_buf_free(&text);
    return 0;
bad:
    pmc_buf_free(&text);
    pmt_capture_free(c);
    return -1;
}
