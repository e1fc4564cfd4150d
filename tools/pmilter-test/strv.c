/* Small containers and address helpers.  Allocation failure ends the
 * program: a test tool has nothing sensible to do without memory. */
#include "pmt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void *pmt_xalloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);

    if (q == NULL) {
        fputs("pmilter-test: out of memory\n", stderr);
        exit(PMT_EXIT_USAGE);
    }
    return q;
}

char *pmt_strndup(const char *p, size_t n)
{
    char *s = pmt_xalloc(NULL, n + 1);

    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    return s;
}

int pmt_strv_push(pmt_strv *sv, const char *p, size_t n)
{
    if (sv->n == sv->cap) {
        sv->cap = sv->cap ? sv->cap * 2 : 8;
        sv->v = pmt_xalloc(sv->v, sv->cap * sizeof *sv->v);
        sv->len = pmt_xalloc(sv->len, sv->cap * sizeof *sv->len);
    }
    sv->v[sv->n] = pmt_strndup(p, n);
    sv->len[sv->n] = n;
    sv->n++;
    return 0;
}

void pmt_strv_free(pmt_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    free(sv->len);
    memset(sv, 0, sizeof *sv);
}

int pmt_fields_push(pmt_fields *f, const char *name, size_t nlen,
                    const char *value, size_t vlen)
{
    pmt_strv_push(&f->names, name, nlen);
    pmt_strv_push(&f->values, value, vlen);
    return 0;
}

void pmt_fields_free(pmt_fields *f)
{
    pmt_strv_free(&f->names);
    pmt_strv_free(&f->values);
}

/* The address inside <...> (or the whole string), for comparisons. */
const char *pmt_addr_bare(const char *a, size_t *len)
{
    size_t n = strlen(a);

    while (n && isspace((unsigned char)*a)) {
        a++;
        n--;
    }
    while (n && isspace((unsigned char)a[n - 1]))
        n--;
    if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
        a++;
        n -= 2;
    }
    *len = n;
    return a;
}

/* MTAs compare recipients case-insensitively for DELRCPT. */
int pmt_addr_eq(const char *a, const char *b)
{
    size_t na, nb;
    const char *pa = pmt_addr_bare(a, &na), *pb = pmt_addr_bare(b, &nb);

    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (tolower((unsigned char)pa[i]) != tolower((unsigned char)pb[i]))
            return 0;
    return 1;
}
