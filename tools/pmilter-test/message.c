/* The message side: read a message file, send it as the core splits it
 * (pmc_msg_split), apply a filter's modifications the way Postfix does,
 * and write the result. */
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

int pmt_send_message(pmt_conv *cv, const char *data, size_t len, int stop)
{
    pmc_msg_split sp;
    pmc_str name, value;
    pmc_buf body = {0};
    int more = 1, rc = 0;

#define GOING (rc == 0 && !(stop && pmt_ended(cv)))
    pmc_msg_split_init(&sp, data, len,
                       (cv->protocol & PMC_P_HDR_LEADSPC) != 0);
    while (GOING && more) {
        if (pmc_msg_split_next(&sp, &name, &value, &more) != PMC_OK)
            rc = -2;
        else if (more)
            rc = pmt_ev_header(cv, name, value);
    }
    if (GOING)
        rc = pmt_ev_eoh(cv);
    if (GOING) {
        if (pmc_msg_split_body(&sp, &body) != PMC_OK)
            rc = -2;
        else
            rc = pmt_ev_body(cv, body.data, body.len);
    }
    if (GOING)
        rc = pmt_ev_eom(cv);
#undef GOING
    pmc_buf_free(&body);
    pmc_msg_split_free(&sp);
    return rc;
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
