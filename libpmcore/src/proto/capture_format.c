/* The escapes of the capture format, both ways (capture_format.h).  The
 * writer escapes every byte a captured server reads or writes, so escaping
 * looks at 16 bytes at a time where SSE2 is there; the reader runs once
 * per replayed file and copies the runs between backslashes. */
#include "capture_format.h"

#include <string.h>

static const char HEX[] = "0123456789abcdef";

uint8_t *pmci_cap_esc1(uint8_t *o, uint8_t b)
{
    *o++ = '\\';
    switch (b) {
    case 0: *o++ = '0'; break;
    case '\\': *o++ = '\\'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    default:
        *o++ = 'x';
        *o++ = (uint8_t)HEX[b >> 4];
        *o++ = (uint8_t)HEX[b & 15];
    }
    return o;
}

pmc_status pmci_cap_escape(pmc_buf *out, const uint8_t *p, size_t n,
                           int mode, size_t *nuls)
{
    uint8_t *o, *start;
    size_t i = 0, z = 0;

    /* Four bytes out per byte in at most, and 16 of slack: blocks are
     * stored whole, then overwritten. */
    if (n > (SIZE_MAX - 32) / 4)
        return PMC_ERR_NOMEM;
    if (n * 4 + 32 > out->cap - out->len &&
        pmci_buf_reserve(out, n * 4 + 32) != PMC_OK)
        return PMC_ERR_NOMEM;
    o = start = out->data + out->len;
#ifdef __SSE2__
    {
        /* Signed compares: bytes from 0x80 up are negative, so "below
         * 0x20" catches them with the control characters. */
        const __m128i lo = _mm_set1_epi8(mode ? 0x21 : 0x20);
        const __m128i del = _mm_set1_epi8(0x7f);
        const __m128i bs = _mm_set1_epi8('\\');
        const __m128i eq = _mm_set1_epi8(mode ? '=' : '\\');
        uint8_t tmp[32] = {0}; /* defined bytes past a short string */

        while (i < n) {
            unsigned r = n - i < 16 ? (unsigned)(n - i) : 16, pos = 0;
            unsigned off = 0; /* where the block starts in tmp */
            __m128i v;
            unsigned mask;
            if (r == 16) {
                v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
            } else if (n >= 16) {
                /* The last 16 bytes, of which the first 16 - r were
                 * done: no copy, no read past the end. */
                off = 16 - r;
                v = _mm_loadu_si128(
                    (const __m128i *)(const void *)(p + n - 16));
            } else {
                memcpy(tmp, p, n);
                v = _mm_loadu_si128((const __m128i *)(void *)tmp);
            }
            mask = (unsigned)_mm_movemask_epi8(_mm_or_si128(
                _mm_or_si128(_mm_cmplt_epi8(v, lo), _mm_cmpeq_epi8(v, del)),
                _mm_or_si128(_mm_cmpeq_epi8(v, bs), _mm_cmpeq_epi8(v, eq))));
            mask = (mask >> off) & ((1u << r) - 1);
            _mm_storeu_si128((__m128i *)(void *)tmp, v);
            _mm_storeu_si128((__m128i *)(void *)o,
                             _mm_loadu_si128(
                                 (const __m128i *)(void *)(tmp + off)));
            if (mask == 0) {
                o += r;
                i += r;
                continue;
            }
            do {
                unsigned k = (unsigned)__builtin_ctz(mask);
                uint8_t b = tmp[off + k];
                _mm_storeu_si128((__m128i *)(void *)o,
                                 _mm_loadu_si128((const __m128i *)(void *)(
                                     tmp + off + pos)));
                o += k - pos;
                if (b == 0 && mode == PMCI_ESC_MACROS) {
                    if (i + k + 1 < n)
                        *o++ = z % 2 ? ' ' : '=';
                    z++;
                } else {
                    o = pmci_cap_esc1(o, b);
                }
                pos = k + 1;
                mask &= mask - 1;
            } while (mask);
            _mm_storeu_si128((__m128i *)(void *)o,
                             _mm_loadu_si128((const __m128i *)(void *)(
                                 tmp + off + pos)));
            o += r - pos;
            i += r;
        }
    }
#else
    for (; i < n; i++) {
        if (pmci_cap_plain(p[i], mode)) {
            *o++ = p[i];
        } else if (p[i] == 0 && mode == PMCI_ESC_MACROS) {
            if (i + 1 < n)
                *o++ = z % 2 ? ' ' : '=';
            z++;
        } else {
            o = pmci_cap_esc1(o, p[i]);
        }
    }
#endif
    if (nuls)
        *nuls = z;
    out->len += (size_t)(o - start);
    return PMC_OK;
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

pmc_status pmci_cap_unescape(pmc_buf *out, const char *p, size_t n,
                             size_t *bad)
{
    uint8_t *o;
    size_t i = 0;

    if (n == 0)
        return PMC_OK;
    /* Escapes only shorten: n bytes of room are enough. */
    if (pmci_buf_reserve(out, n) != PMC_OK)
        return PMC_ERR_NOMEM;
    o = out->data + out->len;
    while (i < n) {
        const char *bs = memchr(p + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (p + i)) : n - i;
        int h, l;

        memcpy(o, p + i, run);
        o += run;
        i += run;
        if (i == n)
            break;
        if (i + 1 == n)
            goto fail;
        switch (p[i + 1]) {
        case '0': *o++ = 0; break;
        case '\\': *o++ = '\\'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'x':
            h = i + 3 < n ? hexval((unsigned char)p[i + 2]) : -1;
            l = h >= 0 ? hexval((unsigned char)p[i + 3]) : -1;
            if (l < 0)
                goto fail;
            *o++ = (uint8_t)(h << 4 | l);
            i += 2;
            break;
        default: goto fail;
        }
        i += 2;
    }
    out->len = (size_t)(o - out->data);
    return PMC_OK;
fail:
    out->len = (size_t)(o - out->data);
    if (bad)
        *bad = i;
    return PMC_ERR_BAD_PAYLOAD;
}
