/*
 * veclex.c - tokens of the vector format (tests/vectors/README.md,
 * "Syntax"): lexing a line, building and comparing token lines, and
 * printing them back in vector syntax.
 */
#include "veclex.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tokens and lines ---------------------------------------------------- */

void vline_free(vline *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->t[i].bytes);
    free(l->t);
    memset(l, 0, sizeof *l);
}

int vline_add(vline *l, int type, const void *p, size_t len, int64_t num)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        vtok *t = realloc(l->t, cap * sizeof *t);
        if (!t)
            return -1;
        l->t = t;
        l->cap = cap;
    }
    vtok *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    t->type = type;
    t->num = num;
    if (type != VT_NUM) {
        t->bytes = malloc(len + 1);
        if (!t->bytes)
            return -1;
        if (len)
            memcpy(t->bytes, p, len);
        t->bytes[len] = 0;
        t->len = len;
    }
    l->n++;
    return 0;
}

int vline_add_str(vline *l, const void *p, size_t len)
{
    return vline_add(l, VT_STR, p, len, 0);
}

int vline_add_num(vline *l, int64_t num)
{
    return vline_add(l, VT_NUM, NULL, 0, num);
}

int vec_number(const char *w, int64_t *out)
{
    const char *p = w;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!*p)
        return 0;
    int base = 10;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
        if (!*p)
            return 0;
    }
    for (const char *q = p; *q; q++)
        if (base == 10 ? !isdigit((unsigned char)*q)
                       : !isxdigit((unsigned char)*q))
            return 0;
    errno = 0;
    unsigned long long v = strtoull(p, NULL, base);
    if (errno)
        return 0;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 1;
}

int vline_add_word(vline *l, const char *w)
{
    int64_t n;
    if (vec_number(w, &n))
        return vline_add_num(l, n);
    return vline_add(l, VT_WORD, w, strlen(w), 0);
}

int vtok_equal(const vtok *a, const vtok *b)
{
    if (a->type != b->type)
        return 0;
    if (a->type == VT_NUM)
        return a->num == b->num;
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

static void print_bytes(FILE *f, const uint8_t *p, size_t len)
{
    /* Long strings (bodies, big headers) would drown the diff: show the head
     * and the length. */
    size_t show = len > 100 ? 80 : len;
    fputc('"', f);
    for (size_t i = 0; i < show; i++) {
        uint8_t c = p[i];
        switch (c) {
        case '\\': fputs("\\\\", f); break;
        case '"': fputs("\\\"", f); break;
        case 0: fputs("\\0", f); break;
        case '\r': fputs("\\r", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c >= 0x7f)
                fprintf(f, "\\x%02x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
    if (show < len)
        fprintf(f, "...(%zu bytes)", len);
}

void vline_print(const vline *l, void *file)
{
    FILE *f = file;
    for (size_t i = 0; i < l->n; i++) {
        const vtok *t = &l->t[i];
        if (i)
            fputc(' ', f);
        if (t->type == VT_NUM)
            fprintf(f, "%lld", (long long)t->num);
        else if (t->type == VT_WORD)
            fputs((const char *)t->bytes, f);
        else
            print_bytes(f, t->bytes, t->len);
    }
}

/* ---- tokenizer ---------------------------------------------------------- */

/* Lexing errors: a message for the caller to prefix with file and line. */
typedef struct lexerr {
    char *buf;
    size_t len;
} lexerr;

static int fail(lexerr *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf, e->len, fmt, ap);
    va_end(ap);
    return -1;
}

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

int vbuf_put(vbuf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            return -1;
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Quoted string starting at *pp (on the opening quote), with its optional
 * "*N" repetition.  Appends a VT_STR token. */
static int lex_string(const char **pp, vline *out, lexerr *e)
{
    const char *p = *pp + 1;
    vbuf b = {0};
    for (;;) {
        uint8_t c = (uint8_t)*p;
        if (c == 0) {
            free(b.p);
            return fail(e, "unterminated string");
        }
        p++;
        if (c == '"')
            break;
        if (c == '\\') {
            char x = *p++;
            switch (x) {
            case '\\': c = '\\'; break;
            case '"': c = '"'; break;
            case '0': c = 0; break;
            case 'r': c = '\r'; break;
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'x': {
                int h = p[0] ? hexval(p[0]) : -1;
                int l = h >= 0 && p[1] ? hexval(p[1]) : -1;
                if (l < 0) {
                    free(b.p);
                    return fail(e, "bad \\x escape");
                }
                c = (uint8_t)(h * 16 + l);
                p += 2;
                break;
            }
            default:
                free(b.p);
                return fail(e, "unknown escape \\%c", x ? x : '0');
            }
        }
        if (vbuf_put(&b, &c, 1)) {
            free(b.p);
            return fail(e, "out of memory");
        }
    }
    unsigned long rep = 1;
    if (*p == '*') {
        char *end;
        p++;
        if (!isdigit((unsigned char)*p)) {
            free(b.p);
            return fail(e, "'*' must be followed by a count");
        }
        rep = strtoul(p, &end, 10);
        p = end;
    }
    vbuf r = {0};
    int bad = vbuf_put(&r, NULL, 0);
    for (unsigned long i = 0; i < rep && !bad; i++)
        bad = vbuf_put(&r, b.p, b.len);
    free(b.p);
    if (bad || vline_add_str(out, r.p, r.len)) {
        free(r.p);
        return fail(e, "out of memory");
    }
    free(r.p);
    *pp = p;
    return 0;
}

/* Bare word: up to a blank or a quote (so KEY="value" lexes as the word
 * "KEY=" followed by a string).  u32:N and u16:N become byte strings. */
static int lex_word(const char **pp, vline *out, lexerr *e)
{
    const char *p = *pp;
    const char *s = p;
    while (*p && !isspace((unsigned char)*p) && *p != '"')
        p++;
    size_t n = (size_t)(p - s);
    char *w = malloc(n + 1);
    if (!w)
        return fail(e, "out of memory");
    memcpy(w, s, n);
    w[n] = 0;
    int rc = 0;
    if (strncmp(w, "u32:", 4) == 0 || strncmp(w, "u16:", 4) == 0) {
        int64_t v;
        int wide = w[1] == '3';
        if (!vec_number(w + 4, &v) || v < 0 ||
            (uint64_t)v > (wide ? 0xFFFFFFFFull : 0xFFFFull)) {
            rc = fail(e, "bad %s", w);
        } else {
            uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16),
                            (uint8_t)(v >> 8), (uint8_t)v};
            if (wide ? vline_add_str(out, b, 4) : vline_add_str(out, b + 2, 2))
                rc = fail(e, "out of memory");
        }
    } else if (vline_add_word(out, w)) {
        rc = fail(e, "out of memory");
    }
    free(w);
    *pp = p;
    return rc;
}

int vec_tokenize(const char *line, vline *out, char *err, size_t errlen)
{
    lexerr le = {err, errlen};
    lexerr *e = &le;
    const char *p = line;
    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            return 0;
        if (*p == '"' ? lex_string(&p, out, e) : lex_word(&p, out, e))
            return -1;
    }
}
