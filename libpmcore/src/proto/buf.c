/* Growable byte buffers.  Growth doubles so appends are amortised O(1). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

pmc_status pmci_buf_reserve(pmc_buf *b, size_t extra)
{
    size_t need, cap;
    uint8_t *p;

    if (extra <= b->cap - b->len)
        return PMC_OK;
    if (extra > SIZE_MAX - b->len)
        return PMC_ERR_NOMEM;
    need = b->len + extra;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return PMC_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return PMC_OK;
}

pmc_status pmc_buf_append(pmc_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return PMC_OK;
    if (pmci_buf_reserve(b, n) != PMC_OK)
        return PMC_ERR_NOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return PMC_OK;
}

void pmc_buf_consume(pmc_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void pmc_buf_free(pmc_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
