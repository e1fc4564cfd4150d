/*
 * veclog.c - building log lines, and turning the reply packets a session
 * wrote into 'reply' lines (tests/vectors/README.md, "expect reply").
 * The helpers tolerate a NULL line (after an allocation failure): the
 * failure is recorded in the log's oom flag instead.
 */
#include "veclog.h"

#include <stdlib.h>
#include <string.h>

void vlog_free(vlog *g)
{
    for (size_t i = 0; i < g->n; i++)
        vline_free(&g->l[i]);
    free(g->l);
    memset(g, 0, sizeof *g);
}

vline *vlog_line(vlog *g, const char *word)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 32;
        vline *l = realloc(g->l, cap * sizeof *l);
        if (!l) {
            g->oom = 1;
            return NULL;
        }
        g->l = l;
        g->cap = cap;
    }
    vline *l = &g->l[g->n++];
    memset(l, 0, sizeof *l);
    if (vline_add_word(l, word))
        g->oom = 1;
    return l;
}

void vlog_word(vlog *g, vline *l, const char *w)
{
    if (l && vline_add_word(l, w))
        g->oom = 1;
}

void vlog_str(vlog *g, vline *l, const void *p, size_t n)
{
    if (l && vline_add_str(l, p, n))
        g->oom = 1;
}

void vlog_num(vlog *g, vline *l, int64_t n)
{
    if (l && vline_add_num(l, n))
        g->oom = 1;
}

void vlog_runner_error(vlog *g, const char *what, const char *why)
{
    vline *l = vlog_line(g, "runner-error");
    vlog_word(g, l, what);
    vlog_str(g, l, why, strlen(why));
}

void vlog_fail(vlog *g, const char *action, pmc_status st)
{
    vline *l = vlog_line(g, "fail");
    vlog_word(g, l, action);
    vlog_word(g, l, pmc_status_name(st));
}

/* ---- replies ----------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* NUL-terminated strings filling the payload; a last piece without its NUL
 * is shown as well (it would be a library bug worth seeing). */
static void add_strings(vlog *g, vline *l, const uint8_t *p, size_t n)
{
    while (n) {
        const uint8_t *z = memchr(p, 0, n);
        size_t k = z ? (size_t)(z - p) : n;
        vlog_str(g, l, p, k);
        k += z ? 1 : 0;
        p += k;
        n -= k;
    }
}

/* "name\0value\0" where the value may hold NULs: the name runs to the first
 * NUL, the value to the packet's final NUL (as the session reads headers). */
static void add_header(vlog *g, vline *l, const uint8_t *p, size_t n)
{
    const uint8_t *z = memchr(p, 0, n);
    if (!z) {
        vlog_str(g, l, p, n);
        return;
    }
    size_t k = (size_t)(z - p);
    vlog_str(g, l, p, k);
    p += k + 1;
    n -= k + 1;
    if (n && p[n - 1] == 0)
        n--;
    vlog_str(g, l, p, n);
}

static void log_reply(vlog *g, uint8_t code, const uint8_t *p, size_t n)
{
    char c[2] = {(char)code, 0};
    vline *l = vlog_line(g, "reply");
    vlog_word(g, l, c);
    switch (code) {
    case 'O':
        if (n < 12) {
            vlog_str(g, l, p, n);
            return;
        }
        for (int i = 0; i < 3; i++)
            vlog_num(g, l, be32(p + 4 * i));
        p += 12;
        n -= 12;
        /* Macro-list records: uint32 stage, "list\0". */
        while (n >= 4) {
            vlog_num(g, l, be32(p));
            p += 4;
            n -= 4;
            const uint8_t *z = memchr(p, 0, n);
            size_t k = z ? (size_t)(z - p) : n;
            vlog_str(g, l, p, k);
            k += z ? 1 : 0;
            p += k;
            n -= k;
        }
        if (n)
            vlog_str(g, l, p, n);
        return;
    case 'i':
    case 'm':
        if (n < 4) {
            vlog_str(g, l, p, n);
            return;
        }
        vlog_num(g, l, be32(p));
        add_header(g, l, p + 4, n - 4);
        return;
    case 'h':
        add_header(g, l, p, n);
        return;
    case 'b':
        vlog_str(g, l, p, n);
        return;
    default:
        add_strings(g, l, p, n);
    }
}

size_t vlog_replies(vlog *g, const uint8_t *out, size_t len)
{
    size_t used = 0;
    while (len - used >= 5) {
        uint32_t plen = be32(out + used);
        if (plen == 0 || len - used - 4 < plen)
            break;
        log_reply(g, out[used + 4], out + used + 5, plen - 1);
        used += 4 + (size_t)plen;
    }
    return used;
}
