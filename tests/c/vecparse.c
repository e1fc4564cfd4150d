/*
 * vecparse.c - the vector file parser.  Follows tests/vectors/README.md;
 * every malformed line is an error with its line number, because a vector
 * that silently means something else proves nothing.
 */
/* strdup, strtok_r, opendir: POSIX, which -std=c11 hides otherwise. */
#define _POSIX_C_SOURCE 200809L

#include "vecparse.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const event_names[PMC_EV_COUNT] = {
    "negotiate", "connect", "helo", "envfrom", "envrcpt", "data", "header",
    "eoh", "body", "eom", "abort", "close", "unknown"};

int vec_event_from_name(const char *name)
{
    for (int i = 0; i < PMC_EV_COUNT; i++)
        if (strcmp(name, event_names[i]) == 0)
            return i;
    return -1;
}

const char *vec_event_name(int ev)
{
    return ev >= 0 && ev < PMC_EV_COUNT ? event_names[ev] : "?";
}

static const struct {
    const char *name;
    int value;
} verdicts[] = {
    {"continue", PMC_CONTINUE}, {"reject", PMC_REJECT},
    {"discard", PMC_DISCARD},   {"accept", PMC_ACCEPT},
    {"tempfail", PMC_TEMPFAIL}, {"noreply", PMC_NOREPLY},
    {"skip", PMC_SKIP},         {"all_opts", PMC_ALL_OPTS},
    {"pending", PMC_PENDING},
};

int vec_verdict(const vtok *t, int *out)
{
    if (t->type == VT_NUM) {
        *out = (int)t->num;
        return 0;
    }
    if (t->type != VT_WORD)
        return -1;
    for (size_t i = 0; i < sizeof verdicts / sizeof verdicts[0]; i++)
        if (strcmp((const char *)t->bytes, verdicts[i].name) == 0) {
            *out = verdicts[i].value;
            return 0;
        }
    return -1;
}

/* ---- lines of a vector -------------------------------------------------- */

typedef struct perr {
    char *buf;
    size_t len;
    const char *path;
    int lineno;
} perr;

static int fail(perr *e, const char *fmt, ...)
{
    /* Line 0: a problem with the file as a whole. */
    int k = e->lineno ? snprintf(e->buf, e->len, "%s:%d: ", e->path, e->lineno)
                      : snprintf(e->buf, e->len, "%s: ", e->path);
    if (k < 0 || (size_t)k >= e->len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf + k, e->len - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}


static int is_word(const vtok *t, const char *w)
{
    return t->type == VT_WORD && strcmp((const char *)t->bytes, w) == 0;
}

static int push(void **arr, size_t *n, size_t size)
{
    void *p = realloc(*arr, (*n + 1) * size);
    if (!p)
        return -1;
    *arr = p;
    memset((char *)p + *n * size, 0, size);
    (*n)++;
    return 0;
}

/* Move tokens [from, n) of 'src' into a fresh line; src keeps the rest
 * (the moved tokens are left without bytes, so freeing src stays safe). */
static int take_tail(vline *src, size_t from, vline *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->lineno = src->lineno;
    size_t n = src->n > from ? src->n - from : 0;
    if (n == 0)
        return 0;
    dst->t = malloc(n * sizeof *dst->t);
    if (!dst->t)
        return -1;
    for (size_t i = 0; i < n; i++) {
        dst->t[i] = src->t[from + i];
        src->t[from + i].bytes = NULL;
    }
    dst->n = dst->cap = n;
    return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
    int64_t v;
    if (!vec_number(s, &v) || v < 0 || v > 0xFFFFFFFFll)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int parse_handlers(vector *v, const char *list, perr *e)
{
    if (strcmp(list, "all") == 0) {
        v->handlers = ((1u << PMC_EV_COUNT) - 1) & ~(1u << PMC_EV_NEGOTIATE);
        return 0;
    }
    v->handlers = 0;
    if (strcmp(list, "none") == 0)
        return 0;
    char *copy = strdup(list);
    if (!copy)
        return fail(e, "out of memory");
    int rc = 0;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int ev = vec_event_from_name(tok);
        if (ev < 0) {
            rc = fail(e, "unknown handler '%s'", tok);
            break;
        }
        v->handlers |= 1u << ev;
    }
    free(copy);
    return rc;
}

static int parse_milter(vector *v, vline *l, perr *e)
{
    for (size_t i = 1; i < l->n; i++) {
        vtok *t = &l->t[i];
        if (t->type != VT_WORD)
            return fail(e, "milter: expected KEY=VALUE");
        char *key = (char *)t->bytes;
        char *eq = strchr(key, '=');
        if (!eq)
            return fail(e, "milter: '%s' has no '='", key);
        *eq = 0;
        const char *val = eq + 1;
        if (strncmp(key, "symlist.", 8) == 0) {
            int st = key[8] - '0';
            if (key[8] == 0 || key[9] != 0 || st < 0 || st >= PMC_STAGE_COUNT)
                return fail(e, "milter: bad stage in %s", key);
            if (*val || i + 1 >= l->n || l->t[i + 1].type != VT_STR)
                return fail(e, "milter: %s needs a quoted list", key);
            i++;
            free(v->symlist[st]);
            v->symlist[st] = strdup((const char *)l->t[i].bytes);
            if (!v->symlist[st])
                return fail(e, "out of memory");
            v->has_symlist[st] = 1;
            continue;
        }
        uint32_t n = 0;
        if (strcmp(key, "handlers") == 0) {
            if (parse_handlers(v, val, e))
                return -1;
        } else if (parse_u32(val, &n)) {
            return fail(e, "milter: %s needs a number", key);
        } else if (strcmp(key, "version") == 0) {
            v->version = n;
        } else if (strcmp(key, "actions") == 0) {
            v->actions = n;
        } else if (strcmp(key, "protocol") == 0) {
            v->protocol = n;
        } else if (strcmp(key, "max_packet") == 0) {
            v->max_packet = n;
        } else if (strcmp(key, "skip_any_event") == 0) {
            v->skip_any_event = (int)n;
        } else {
            return fail(e, "milter: unknown key '%s'", key);
        }
    }
    return 0;
}

static int parse_on(vector *v, vline *l, perr *e)
{
    if (l->n < 3 || l->t[1].type != VT_WORD || l->t[2].type != VT_WORD)
        return fail(e, "on: expected 'on EVENT[#N] ACTION ...'");
    char *ev = (char *)l->t[1].bytes;
    int nth = 0;
    char *hash = strchr(ev, '#');
    if (hash) {
        int64_t n;
        *hash = 0;
        if (!vec_number(hash + 1, &n) || n < 1)
            return fail(e, "on: bad call number");
        nth = (int)n;
    }
    int event = vec_event_from_name(ev);
    if (event < 0)
        return fail(e, "on: unknown event '%s'", ev);
    if (push((void **)&v->acts, &v->nacts, sizeof *v->acts))
        return fail(e, "out of memory");
    vaction *a = &v->acts[v->nacts - 1];
    a->event = event;
    a->nth = nth;
    return take_tail(l, 2, &a->line) ? fail(e, "out of memory") : 0;
}

/* Append packet or raw bytes to the last byte segment (or start one). */
static int add_bytes(vector *v, vline *l, size_t from, int framed, perr *e)
{
    vbuf b = {0};
    int bad = 0;
    if (framed) {
        if (l->n < 2 || l->t[1].type != VT_WORD || l->t[1].len != 1)
            return fail(e, "send: expected a one-letter command");
        uint8_t hdr[5] = {0, 0, 0, 0, l->t[1].bytes[0]};
        bad = vbuf_put(&b, hdr, 5);
        from = 2;
    }
    for (size_t i = from; i < l->n && !bad; i++) {
        if (l->t[i].type != VT_STR) {
            free(b.p);
            return fail(e, "%s: token %zu is not a string, u32 or u16",
                        framed ? "send" : "raw", i);
        }
        bad = vbuf_put(&b, l->t[i].bytes, l->t[i].len);
    }
    if (framed && !bad) {
        size_t n = b.len - 4; /* command byte plus payload */
        b.p[0] = (uint8_t)(n >> 24);
        b.p[1] = (uint8_t)(n >> 16);
        b.p[2] = (uint8_t)(n >> 8);
        b.p[3] = (uint8_t)n;
    }
    if (!bad && (v->nsteps == 0 || v->steps[v->nsteps - 1].kind != VS_BYTES))
        bad = push((void **)&v->steps, &v->nsteps, sizeof *v->steps);
    if (!bad) {
        vstep *s = &v->steps[v->nsteps - 1];
        s->kind = VS_BYTES;
        vbuf seg = {s->bytes, s->len, s->len};
        bad = vbuf_put(&seg, b.p, b.len);
        s->bytes = seg.p;
        s->len = seg.len;
    }
    free(b.p);
    return bad ? fail(e, "out of memory") : 0;
}

static int parse_line(vector *v, vline *l, perr *e)
{
    vtok *k = &l->t[0];
    if (k->type != VT_WORD)
        return fail(e, "a line must start with a keyword");
    if (is_word(k, "name")) {
        if (l->n != 2 || l->t[1].type != VT_WORD || v->name)
            return fail(e, "name: expected one word, once");
        v->name = strdup((const char *)l->t[1].bytes);
        return v->name ? 0 : fail(e, "out of memory");
    }
    if (is_word(k, "covers")) {
        for (size_t i = 1; i < l->n; i++)
            if (l->t[i].type != VT_WORD ||
                vline_add_word(&v->covers, (const char *)l->t[i].bytes))
                return fail(e, "covers: expected words");
        return 0;
    }
    if (is_word(k, "milter"))
        return parse_milter(v, l, e);
    if (is_word(k, "on"))
        return parse_on(v, l, e);
    if (is_word(k, "send"))
        return add_bytes(v, l, 1, 1, e);
    if (is_word(k, "raw"))
        return add_bytes(v, l, 1, 0, e);
    if (is_word(k, "resume")) {
        int verdict;
        if (l->n != 2 || vec_verdict(&l->t[1], &verdict))
            return fail(e, "resume: expected a verdict");
        if (push((void **)&v->steps, &v->nsteps, sizeof *v->steps))
            return fail(e, "out of memory");
        v->steps[v->nsteps - 1].kind = VS_RESUME;
        v->steps[v->nsteps - 1].verdict = verdict;
        return 0;
    }
    if (is_word(k, "act")) {
        if (l->n < 2 || l->t[1].type != VT_WORD)
            return fail(e, "act: expected an action");
        if (push((void **)&v->steps, &v->nsteps, sizeof *v->steps))
            return fail(e, "out of memory");
        vstep *s = &v->steps[v->nsteps - 1];
        s->kind = VS_ACT;
        return take_tail(l, 1, &s->line) ? fail(e, "out of memory") : 0;
    }
    if (is_word(k, "expect")) {
        if (l->n < 2)
            return fail(e, "expect: empty");
        if (push((void **)&v->expect, &v->nexpect, sizeof *v->expect))
            return fail(e, "out of memory");
        if (take_tail(l, 1, &v->expect[v->nexpect - 1]))
            return fail(e, "out of memory");
        return 0;
    }
    return fail(e, "unknown keyword '%s'", (const char *)k->bytes);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    vbuf b = {0};
    char tmp[8192];
    size_t n;
    int bad = vbuf_put(&b, NULL, 0);
    while (!bad && (n = fread(tmp, 1, sizeof tmp, f)) > 0)
        bad = vbuf_put(&b, tmp, n);
    if (ferror(f))
        bad = 1;
    fclose(f);
    if (bad) {
        free(b.p);
        return NULL;
    }
    b.p[b.len] = 0;
    *len = b.len;
    return (char *)b.p;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int vec_parse_file(const char *path, vector *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    v->version = 6;
    v->handlers = ((1u << PMC_EV_COUNT) - 1) & ~(1u << PMC_EV_NEGOTIATE);
    perr e = {err, errlen, path, 0};
    v->path = strdup(path);
    size_t len;
    char *text = v->path ? read_file(path, &len) : NULL;
    if (!text)
        return fail(&e, "cannot read: %s", strerror(errno));
    if (strlen(text) != len) {
        free(text);
        return fail(&e, "NUL byte in file");
    }
    int rc = 0;
    char *p = text;
    while (*p && rc == 0) {
        e.lineno++;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = 0;
        char *s = p;
        while (isspace((unsigned char)*s))
            s++;
        if (*s && *s != '#') {
            vline l = {0};
            l.lineno = e.lineno;
            char msg[200];
            rc = vec_tokenize(s, &l, msg, sizeof msg);
            if (rc)
                fail(&e, "%s", msg);
            if (rc == 0 && l.n)
                rc = parse_line(v, &l, &e);
            vline_free(&l);
        }
        p = nl ? nl + 1 : p + strlen(p);
    }
    free(text);
    if (rc)
        return -1;
    e.lineno = 0;
    if (!v->name)
        return fail(&e, "no 'name' line");
    /* The README makes the name the file name: catch copy-paste slips. */
    const char *b = base_name(path);
    size_t nl = strlen(v->name);
    if (strncmp(b, v->name, nl) != 0 || strcmp(b + nl, ".vec") != 0)
        return fail(&e, "name '%s' does not match the file name", v->name);
    if (v->nexpect == 0)
        return fail(&e, "no 'expect' lines");
    for (size_t i = 0; i < v->nacts; i++) {
        const vtok *t = &v->acts[i].line.t[0];
        e.lineno = v->acts[i].line.lineno;
        if (is_word(t, "resume"))
            return fail(&e, "'resume' is a conversation line, not a handler "
                            "action");
    }
    return 0;
}

void vec_free(vector *v)
{
    free(v->path);
    free(v->name);
    vline_free(&v->covers);
    for (int i = 0; i < PMC_STAGE_COUNT; i++)
        free(v->symlist[i]);
    for (size_t i = 0; i < v->nacts; i++)
        vline_free(&v->acts[i].line);
    free(v->acts);
    for (size_t i = 0; i < v->nsteps; i++) {
        free(v->steps[i].bytes);
        vline_free(&v->steps[i].line);
    }
    free(v->steps);
    for (size_t i = 0; i < v->nexpect; i++)
        vline_free(&v->expect[i]);
    free(v->expect);
    memset(v, 0, sizeof *v);
}
