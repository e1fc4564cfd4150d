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

/* Copy n >= 8 bytes and return the parity of the count of zero bytes
 * among them.  The last block is copied again, overlapping, keeping only
 * the flags of its bytes not seen yet; the parity of all the flags is the
 * parity of their XOR. */
#if defined(__SSE2__)
#include <emmintrin.h>

static unsigned copy_count_parity(uint8_t *dst, const uint8_t *p, size_t n)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i v;
    unsigned acc = 0;
    size_t i = 0;

    if (n < 16) {
        /* Two 8-byte halves, the second overlapping the first. */
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + n - 8, &b, 8);
        v = _mm_set_epi64x((long long)b, (long long)a);
        acc = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
        /* Bytes 8 + (16 - n) .. 15 of the vector are new; drop the rest
         * of the second half. */
        acc &= 0xFFu | (0xFF00u & ~((1u << (8 + 16 - n)) - 1));
        return (unsigned)__builtin_parity(acc);
    }
    for (; i + 16 <= n; i += 16) {
        v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        _mm_storeu_si128((__m128i *)(void *)(dst + i), v);
        acc ^= (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero));
    }
    if (i < n) {
        v = _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16));
        _mm_storeu_si128((__m128i *)(void *)(dst + n - 16), v);
        acc ^= (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)) &
               ~((1u << (16 - (n - i))) - 1);
    }
    return (unsigned)__builtin_parity(acc);
}
#else
static unsigned copy_count_parity(uint8_t *dst, const uint8_t *p, size_t n)
{
    uint64_t w, odd = 0;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        memcpy(dst + i, &w, 8);
        odd ^= pmci_zero_byte_flags(w);
    }
    if (i < n) {
        unsigned fresh = (unsigned)(n - i) * 8;
        memcpy(&w, p + n - 8, 8);
        memcpy(dst + n - 8, &w, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        odd ^= pmci_zero_byte_flags(w) & ((UINT64_C(1) << fresh) - 1);
#else
        odd ^= pmci_zero_byte_flags(w) & ~((UINT64_C(1) << (64 - fresh)) - 1);
#endif
    }
    odd ^= odd >> 32;
    odd ^= odd >> 16;
    odd ^= odd >> 8;
    return (unsigned)(odd >> 7) & 1;
}
#endif

pmc_status pmci_macros_store(pmc_session *s, int slot, const pmc_packet *pkt)
{
    pmc_buf *b = &s->macros.slot[slot];
    const uint8_t *p = pkt->payload + 1;
    size_t n = pkt->len - 1;
    unsigned odd = 0;

    /* Pairs of NUL-terminated strings: the last byte ends a string and the
     * count of terminators is even.  The check rides on the copy, and only
     * the count's parity matters. */
    b->len = 0;
    if (n == 0)
        return PMC_OK;
    if (p[n - 1] != 0)
        goto bad;
    if (n > b->cap && pmci_buf_reserve(b, n) != PMC_OK)
        return pmci_fail(s, PMC_ERR_NOMEM, "out of memory storing macros");
    if (n >= 8) {
        odd = copy_count_parity(b->data, p, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            b->data[i] = p[i];
            odd ^= p[i] == 0;
        }
    }
    if (odd)
        goto bad;
    b->len = n;
    return PMC_OK;
bad:
    b->len = 0;
    return pmci_fail(s, PMC_ERR_BAD_MACRO,
                     "MACRO for stage '%c' at offset %llu is not a list of "
                     "NUL-terminated name/value pairs",
                     pkt->payload[0], (unsigned long long)pkt->offset);
}

void pmci_macros_free(pmci_macros *m)
{
    for (int i = 0; i < PMCI_SLOTS; i++)
        pmc_buf_free(&m->slot[i]);
}

pmc_str pmc_macro_name(pmc_str name)
{
    if (name.ptr == NULL)
        name.len = 0;
    else if (name.len >= 2 && name.ptr[0] == '{' &&
             name.ptr[name.len - 1] == '}') {
        name.ptr++;
        name.len -= 2;
    }
    return name;
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
    pmc_str n, v, want = {name, name_len};

    if (s == NULL || name == NULL)
        return 0;
    want = pmc_macro_name(want);
    for (int slot = PMCI_SLOTS - 1; slot >= 0; slot--) {
        size_t cursor = 0;
        while (next_pair(&s->macros.slot[slot], &cursor, &n, &v)) {
            n = pmc_macro_name(n);
            if (n.len == want.len && memcmp(n.ptr, want.ptr, want.len) == 0) {
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
