/*
 * The session's byte scanners against plain references: the inline NUL
 * search used by the payload parsers, and the MACRO check that rides on the
 * copy.  Both read in 8- and 16-byte blocks with an overlapping last block,
 * so every length around the block sizes and every NUL position is tried;
 * each buffer is a heap block of exactly its length, so ASan catches a
 * read past the end.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* A deterministic byte source, so a failure is the same on every run. */
static uint32_t rng = 12345;
static uint8_t next_byte(void)
{
    rng = rng * 1103515245u + 12345u;
    return (uint8_t)(rng >> 16);
}

static void test_find_nul(void)
{
    for (size_t n = 0; n <= 80; n++) {
        /* No NUL at all, then one NUL at each position, then two. */
        for (size_t at = 0; at <= n + 1; at++) {
            uint8_t *p = malloc(n ? n : 1);
            int ok;
            for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)(next_byte() | 1); /* never 0 */
            if (at < n)
                p[at] = 0;
            if (at + 5 < n)
                p[at + 5] = 0;
            ok = pmci_find_nul(p, n) == (n ? memchr(p, 0, n) : NULL);
            CHECK(ok,
                  "pmci_find_nul agrees with memchr (length %zu, case %zu)",
                  n, at);
            free(p);
        }
    }
}

/* A MACRO packet's payload is the stage byte and the pairs; the reference
 * counts terminators one by one. */
static int reference_valid(const uint8_t *p, size_t n)
{
    size_t nuls = 0;

    if (n == 0)
        return 1;
    if (p[n - 1] != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        nuls += p[i] == 0;
    return nuls % 2 == 0;
}

static void test_macros_store(void)
{
    static const pmc_handlers none;

    for (size_t n = 0; n <= 72; n++) {
        for (size_t round = 0; round < 24; round++) {
            pmc_session *s = pmc_session_new(&none, NULL, NULL);
            uint8_t *payload = malloc(n + 1);
            pmc_packet pkt;
            pmc_status st;
            int want;

            payload[0] = 'M';
            /* Sparse NULs (about one byte in eight), last byte usually a
             * NUL, so both verdicts come up at every length. */
            for (size_t i = 1; i <= n; i++)
                payload[i] = (next_byte() & 7) ? (uint8_t)(next_byte() | 1)
                                               : 0;
            if (n && round % 4 != 3)
                payload[n] = 0;
            pkt.cmd = 'D';
            pkt.payload = payload;
            pkt.len = n + 1;
            pkt.offset = 0;
            want = reference_valid(payload + 1, n);
            st = pmci_macros_store(s, PMCI_SLOT_MAIL, &pkt);
            CHECK((st == PMC_OK) == want,
                  "MACRO check agrees with a count (length %zu, case %zu)", n,
                  round);
            if (st == PMC_OK)
                CHECK(s->macros.slot[PMCI_SLOT_MAIL].len == n &&
                          (n == 0 || memcmp(s->macros.slot[PMCI_SLOT_MAIL].data,
                                            payload + 1, n) == 0),
                      "a valid MACRO is kept byte for byte "
                      "(length %zu, case %zu)",
                      n, round);
            else
                CHECK(st == PMC_ERR_BAD_MACRO && pmc_session_is_closed(s),
                      "a bad MACRO fails the session (length %zu, case %zu)",
                      n, round);
            free(payload);
            pmc_session_free(s);
        }
    }
}

int main(void)
{
    test_find_nul();
    test_macros_store();
    return tap_done();
}
