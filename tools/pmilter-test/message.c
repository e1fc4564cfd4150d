/* The message side: read an RFC 5322 file into the fields and body an MTA
 * would send, apply a filter's modifications the way Postfix does, and
 * write the result. */
#include "pmt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int pmt_read_file(const char *path, pmc_buf *out, char *err, size_t errlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char chunk[8192];
    size_t n;
    int nomem = 0;

    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while (!nomem && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        nomem = pmc_buf_append(out, chunk, n) != PMC_OK;
    if (nomem || ferror(f)) {
        snprintf(err, errlen, nomem ? "%s: out of memory"
                                    : "cannot read %s", path);
        if (f != stdin)
            fclose(f);
        return -1;
    }
    if (f != stdin)
        fclose(f);
    return 0;
}

/* The next line without its LF or CR LF; 0 at the end. */
static int next_line(const char *p, size_t len, size_t *pos, const char **l,
                     size_t *n, int *had_nl)
{
    const char *s = p + *pos, *nl;
    size_t left = len - *pos;

    if (left == 0)
        return 0;
    nl = memchr(s, '\n', left);
    *n = nl ? (size_t)(nl - s) : left;
    *pos += nl ? *n + 1 : *n;
    *had_nl = nl != NULL;
    if (*n > 0 && s[*n - 1] == '\r')
        (*n)--;
    *l = s;
    return 1;
}

int pmt_parse_message(const char *data, size_t len, int keep_space,
                      pmt_parsed *out, char *err, size_t errlen)
{
    size_t pos = 0, start, n, lineno = 0;
    const char *l;
    int nl;
    pmc_buf value = {0};
    char *name = NULL;
    size_t nlen = 0;

    memset(out, 0, sizeof *out);
    /* An mbox "From " separator is not a header field. */
    if (len >= 5 && memcmp(data, "From ", 5) == 0)
        next_line(data, len, &pos, &l, &n, &nl);
    for (;;) {
        start = pos;
        if (!next_line(data, len, &pos, &l, &n, &nl) || n == 0)
            break;
        lineno++;
        if (l[0] == ' ' || l[0] == '\t') {
            if (name == NULL) {
                snprintf(err, errlen, "line %zu: a continuation line "
                         "before any header field", lineno);
                goto fail;
            }
            /* MTAs hand folded values to milters with bare LF. */
            pmc_buf_append(&value, "\n", 1);
            pmc_buf_append(&value, l, n);
            continue;
        }
        const char *colon = memchr(l, ':', n);
        if (colon == NULL || colon == l) {
            pos = start; /* not a field: the body starts here */
            break;
        }
        if (name)
            pmt_fields_push(&out->headers, name, nlen,
                            value.len ? (char *)value.data : "", value.len);
        free(name);
        nlen = (size_t)(colon - l);
        name = pmt_strndup(l, nlen);
        value.len = 0;
        colon++;
        if (!keep_space && colon < l + n && *colon == ' ')
            colon++;
        pmc_buf_append(&value, colon, (size_t)(l + n - colon));
    }
    if (name)
        pmt_fields_push(&out->headers, name, nlen,
                        value.len ? (char *)value.data : "", value.len);
    free(name);
    name = NULL;
    pmc_buf_free(&value);
    /* The body goes to the milter with CR LF line ends, as on the wire. */
    while (next_line(data, len, &pos, &l, &n, &nl)) {
        if (pmc_buf_append(&out->body, l, n) != PMC_OK ||
            (nl && pmc_buf_append(&out->body, "\r\n", 2) != PMC_OK)) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return 0;
fail:
    free(name);
    pmc_buf_free(&value);
    pmt_parsed_free(out);
    return -1;
}

void pmt_parsed_free(pmt_parsed *p)
{
    pmt_fields_free(&p->headers);
    pmc_buf_free(&p->body);
}

static void fields_insert(pmt_fields *f, size_t at, const pmc_reply *m)
{
    pmt_fields_push(f, m->a.ptr, m->a.len, m->b.ptr, m->b.len);
    for (size_t i = f->names.n - 1; i > at; i--) {
        pmt_strv *sv[2] = {&f->names, &f->values};
        for (int k = 0; k < 2; k++) {
            char *t = sv[k]->v[i];
            size_t tl = sv[k]->len[i];
            sv[k]->v[i] = sv[k]->v[i - 1];
            sv[k]->len[i] = sv[k]->len[i - 1];
            sv[k]->v[i - 1] = t;
            sv[k]->len[i - 1] = tl;
        }
    }
}

static void fields_delete(pmt_fields *f, size_t at)
{
    pmt_strv *sv[2] = {&f->names, &f->values};

    for (int k = 0; k < 2; k++) {
        free(sv[k]->v[at]);
        memmove(sv[k]->v + at, sv[k]->v + at + 1,
                (sv[k]->n - at - 1) * sizeof *sv[k]->v);
        memmove(sv[k]->len + at, sv[k]->len + at + 1,
                (sv[k]->n - at - 1) * sizeof *sv[k]->len);
        sv[k]->n--;
    }
}

/* CHGHEADER: 1-based among the fields of that name (0 counts as 1); an
 * empty value deletes; no such field appends a non-empty value. */
static void change_header(pmt_fields *f, const pmc_reply *m)
{
    uint32_t want = m->index ? m->index : 1, seen = 0;

    for (size_t i = 0; i < f->names.n; i++) {
        if (f->names.len[i] != m->a.len ||
            strncasecmp(f->names.v[i], m->a.ptr, m->a.len) != 0 ||
            ++seen != want)
            continue;
        if (m->b.len == 0) {
            fields_delete(f, i);
        } else {
            free(f->values.v[i]);
            f->values.v[i] = pmt_strndup(m->b.ptr, m->b.len);
            f->values.len[i] = m->b.len;
        }
        return;
    }
    if (m->b.len)
        pmt_fields_push(f, m->a.ptr, m->a.len, m->b.ptr, m->b.len);
}

static void add_rcpt(pmt_message *m, const pmc_reply *r)
{
    pmt_rcpt *rc;

    if (m->nrcpts == m->cap_rcpts) {
        m->cap_rcpts = m->cap_rcpts ? m->cap_rcpts * 2 : 4;
        m->rcpts = pmt_xalloc(m->rcpts, m->cap_rcpts * sizeof *m->rcpts);
    }
    rc = &m->rcpts[m->nrcpts++];
    memset(rc, 0, sizeof *rc);
    rc->addr = pmt_strndup(r->a.ptr, r->a.len);
    if (r->has_b)
        rc->args = pmt_strndup(r->b.ptr, r->b.len);
    rc->state = PMT_RCPT_ADDED;
}

static void del_rcpt(pmt_message *m, const pmc_reply *r)
{
    char *a = pmt_strndup(r->a.ptr, r->a.len);

    for (size_t i = 0; i < m->nrcpts; i++)
        if ((m->rcpts[i].state == PMT_RCPT_SENT ||
             m->rcpts[i].state == PMT_RCPT_ADDED) &&
            pmt_addr_eq(m->rcpts[i].addr, a))
            m->rcpts[i].state = PMT_RCPT_DELETED;
    free(a);
}

/* Postfix applies the modifications in the order they arrive; so do we.
 * The tool adds no Received: field of its own, so INSHEADER index N puts
 * the field before the (N+1)th field of the message as received. */
void pmt_message_apply(pmt_message *m, const pmc_reply *mods, size_t n)
{
    int body_started = 0;

    for (size_t i = 0; i < n; i++) {
        const pmc_reply *r = &mods[i];

        switch (r->code) {
        case 'h':
            pmt_fields_push(&m->result, r->a.ptr, r->a.len, r->b.ptr,
                            r->b.len);
            break;
        case 'i':
            fields_insert(&m->result, r->index < m->result.names.n
                                          ? r->index : m->result.names.n, r);
            break;
        case 'm':
            change_header(&m->result, r);
            break;
        case 'b':
            if (!body_started) {
                m->new_body.len = 0;
                body_started = 1;
            }
            pmc_buf_append(&m->new_body, r->a.ptr, r->a.len);
            m->body_replaced = 1;
            break;
        case 'e':
            free(m->new_from);
            free(m->new_from_args);
            m->new_from = pmt_strndup(r->a.ptr, r->a.len);
            m->new_from_args = r->has_b ? pmt_strndup(r->b.ptr, r->b.len)
                                        : NULL;
            break;
        case '+':
        case '2':
            add_rcpt(m, r);
            break;
        case '-':
            del_rcpt(m, r);
            break;
        case 'q':
            free(m->quarantine);
            m->quarantine = pmt_strndup(r->a.ptr, r->a.len);
            break;
        default: /* 'p' progress changes nothing */
            continue;
        }
        m->nmods++;
    }
}

/* Write bytes with line ends made uniform: LF, or CR LF with crlf. */
static void put_lines(FILE *f, const char *p, size_t n, int crlf)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
            continue;
        if (p[i] == '\n' && crlf)
            fputc('\r', f);
        fputc(p[i], f);
    }
}

void pmt_message_write(const pmt_message *m, FILE *f, int crlf, int leadspc)
{
    const pmc_buf *body = m->body_replaced ? &m->new_body : &m->body;

    for (size_t i = 0; i < m->result.names.n; i++) {
        fwrite(m->result.names.v[i], 1, m->result.names.len[i], f);
        /* The MTA removed the space after the colon, unless the filter
         * asked to see it (HDR_LEADSPC); put it back the same way. */
        fputs(leadspc ? ":" : ": ", f);
        put_lines(f, m->result.values.v[i], m->result.values.len[i], crlf);
        fputs(crlf ? "\r\n" : "\n", f);
    }
    fputs(crlf ? "\r\n" : "\n", f);
    put_lines(f, (const char *)body->data, body->len, crlf);
}

void pmt_message_free(pmt_message *m)
{
    if (m == NULL)
        return;
    free(m->from);
    free(m->from_args);
    free(m->new_from);
    free(m->new_from_args);
    for (size_t i = 0; i < m->nrcpts; i++) {
        free(m->rcpts[i].addr);
        free(m->rcpts[i].args);
        free(m->rcpts[i].reply);
    }
    free(m->rcpts);
    pmt_fields_free(&m->headers);
    pmt_fields_free(&m->result);
    pmc_buf_free(&m->body);
    pmc_buf_free(&m->new_body);
    free(m->quarantine);
    free(m->reply);
    free(m);
}
