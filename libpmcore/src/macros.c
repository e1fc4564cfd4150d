/*
 * The macro table.  The MTA sends MACRO packets before the command they
 * belong to; we keep one slot per stage, like libmilter, so a command can
 * clear what belongs to later stages and a lookup can fall back to earlier
 * ones.  Slots hold the packet's pairs verbatim: a lookup is a short scan,
 * and storing costs one copy with no per-macro allocation.
 */
#include "internal.h"

#include <string.h>

int pmci_slot_of_letter(uint8_t letter)
{
    switch (letter) {
    case 'C': return PMCI_SLOT_CONNECT;
    case 'H': return PMCI_SLOT_HELO;
    case 'M': return PMCI_SLOT_MAIL;
    case 'R': return PMCI_SLOT_RCPT;
    case 'T': return PMCI_SLOT_DATA;
    case 'N': return PMCI_SLOT_EOH;
    case 'E': return PMCI_SLOT_EOM;
    default: return -1;
    }
}

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

int pmci_macros_valid(const uint8_t *p, size_t n)
{
    size_t strings = 0;
    const uint8_t *end = p + n, *nul;

    while (p < end) {
        nul = memchr(p, 0, (size_t)(end - p));
        if (nul == NULL)
            return 0;
        p = nul + 1;
        strings++;
    }
    return strings % 2 == 0;
}

pmc_status pmci_macros_store(pmci_macros *m, int slot, const uint8_t *p,
                             size_t n)
{
    m->slot[slot].len = 0;
    return pmc_buf_append(&m->slot[slot], p, n);
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
