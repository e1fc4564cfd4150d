/*
 * The macro table.  The MTA sends MACRO packets before the command they
 * belong to; we keep one slot per stage, like libmilter, so a command can
 * clear what belongs to later stages and a lookup can fall back to earlier
 * ones.  Slots hold the packet's pairs verbatim: a lookup is a short scan,
 * and storing costs one copy with no per-macro allocation.
 */
#include "internal.h"

#include <string.h>

const int8_t pmci_slot_of_letter1[256] = {
    ['C'] = PMCI_SLOT_CONNECT + 1, ['H'] = PMCI_SLOT_HELO + 1,
    ['M'] = PMCI_SLOT_MAIL + 1,    ['R'] = PMCI_SLOT_RCPT + 1,
    ['T'] = PMCI_SLOT_DATA + 1,    ['N'] = PMCI_SLOT_EOH + 1,
    ['E'] = PMCI_SLOT_EOM + 1,
};

int pmci_slot_of_stage(int stage)
{
    switch (stage) {
    case PMC_STAGE_CONNECT: return PMCI_SLOT_CONNECT;
    case PMC_STAGE_HELO: return PMCI_SLOT_HELO;
    case PMC_STAGE_ENVFROM: return PMCI_SLOT_MAIL;
    case PMC_STAGE_ENVRCPT: return PMCI_SLOT_RCPT;
    case PMC_STAGE_DATA: return PMCI_SLOT_DATA;
    case PMC_STAGE_EOH: return PMCI_SLOT_EOH;
    case PMC_STAGE_EOM: return PMCI_SLOT_EOM;
    default: return -1;
    }
}

/* Zero bytes in an 8-byte word: the "has zero byte" mask sets the high bit
 * of exactly the zero bytes, because the +0x7f is done on 7-bit values and
 * cannot carry into the next byte. */
static unsigned zero_bytes(uint64_t w)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;
    uint64_t t = ~(((w & low7) + low7) | w | low7);

    /* One flag per byte moved to bit 0, then a multiply sums the bytes into
     * the top one (at most 8, so no byte overflows). */
    return (unsigned)(((t >> 7) * 0x0101010101010101ULL) >> 56);
}

int pmci_macros_valid(const uint8_t *p, size_t n)
{
    size_t nuls = 0, i = 0;
    uint64_t w;

    /* Pairs of NUL-terminated strings: the last byte ends a string and the
     * count of terminators is even.  Counting is cheaper than searching on
     * these short payloads, and a word at a time cheaper still. */
    if (n == 0)
        return 1;
    if (p[n - 1] != 0)
        return 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        nuls += zero_bytes(w);
    }
    for (; i < n; i++)
        nuls += p[i] == 0;
    return nuls % 2 == 0;
}

pmc_status pmci_macros_store(pmci_macros *m, int slot, const uint8_t *p,
                             size_t n)
{
    pmc_buf *b = &m->slot[slot];

    b->len = 0;
    if (n > b->cap && pmci_buf_reserve(b, n) != PMC_OK)
        return PMC_ERR_NOMEM;
    if (n)
        memcpy(b->data, p, n);
    b->len = n;
    return PMC_OK;
}

void pmci_macros_clear_from(pmci_macros *m, int slot)
{
    for (int i = slot; i < PMCI_SLOTS; i++)
        m->slot[i].len = 0;
}

void pmci_macros_free(pmci_macros *m)
{
    for (int i = 0; i < PMCI_SLOTS; i++)
        pmc_buf_free(&m->slot[i]);
}

/* "x" and "{x}" name the same macro. */
static void strip_braces(const char **p, size_t *n)
{
    if (*n >= 2 && (*p)[0] == '{' && (*p)[*n - 1] == '}') {
        (*p)++;
        *n -= 2;
    }
}

static int next_pair(const pmc_buf *b, size_t *cursor, pmc_str *name,
                     pmc_str *value)
{
    const char *base = (const char *)b->data;
    size_t at = *cursor;

    if (at >= b->len)
        return 0;
    name->ptr = base + at;
    name->len = strlen(name->ptr);
    at += name->len + 1;
    value->ptr = base + at;
    value->len = strlen(value->ptr);
    *cursor = at + value->len + 1;
    return 1;
}

int pmc_session_getsymval(const pmc_session *s, const char *name,
                          size_t name_len, pmc_str *value)
{
    pmc_str n, v;

    if (s == NULL || name == NULL)
        return 0;
    strip_braces(&name, &name_len);
    for (int slot = PMCI_SLOTS - 1; slot >= 0; slot--) {
        size_t cursor = 0;
        while (next_pair(&s->macros.slot[slot], &cursor, &n, &v)) {
            strip_braces(&n.ptr, &n.len);
            if (n.len == name_len && memcmp(n.ptr, name, name_len) == 0) {
                *value = v;
                return 1;
            }
        }
    }
    return 0;
}

int pmc_session_macro_next(const pmc_session *s, int stage, size_t *cursor,
                           pmc_str *name, pmc_str *value)
{
    int slot = pmci_slot_of_stage(stage);

    if (s == NULL || slot < 0 || cursor == NULL)
        return 0;
    return next_pair(&s->macros.slot[slot], cursor, name, value);
}
