/*
 * libFuzzer target: the capture reader (pmc_capture_parse) on arbitrary
 * text.  Capture files are read by tools from directories anyone with
 * write access there could fill, so the reader must take any bytes.
 *
 * Input: the text of a capture file, as it is.  Seeds are in
 * tests/fuzz/regress/capture (files a server wrote).
 *
 * Invariants: no read past the text (ASan); a capture read is made of
 * packets as they go on the wire (a whole packet's length field is its
 * size less four, its command byte is the record's), lines only grow and
 * records lie within the text's lines; a refusal is FORMAT or TRUNCATED
 * with a message naming the line, and its offset lies inside the text.
 */
#include "pmcore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pmc_capture *c = NULL;
    pmc_error e;
    pmc_status st;
    size_t lines = 1;

    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    memset(&e, 0, sizeof e);
    st = pmc_capture_parse(data, size, &c, &e);
    if (st != PMC_OK) {
        CHECK(c == NULL);
        CHECK(st == PMC_ERR_FORMAT || st == PMC_ERR_TRUNCATED ||
              st == PMC_ERR_NOMEM);
        CHECK(strncmp(e.message, "line ", 5) == 0);
        CHECK(e.offset <= size);
        return 0;
    }
    {
        const pmc_capture_info *in = pmc_capture_get_info(c);
        unsigned last = 0;
        CHECK(in->format == 1);
        CHECK(in->peer.ptr != NULL && in->peer.ptr[in->peer.len] == 0);
        CHECK(memchr(in->start_time, 0, sizeof in->start_time) != NULL);
        CHECK(memchr(in->family, 0, sizeof in->family) != NULL);
        for (size_t i = 0; i < pmc_capture_count(c); i++) {
            const pmc_capture_record *r = pmc_capture_record_at(c, i);
            CHECK(r != NULL && r->line >= 2 && r->line <= lines &&
                  r->line >= last);
            CHECK(r->dir == PMC_CAPTURE_TO_MILTER ||
                  r->dir == PMC_CAPTURE_TO_MTA);
            last = r->line;
            if (!r->raw) {
                uint32_t l;
                CHECK(r->len >= 5);
                l = (uint32_t)r->bytes[0] << 24 |
                    (uint32_t)r->bytes[1] << 16 |
                    (uint32_t)r->bytes[2] << 8 | r->bytes[3];
                CHECK(l == r->len - 4 && r->bytes[4] == r->cmd);
                CHECK(l <= 16u * 1024 * 1024);
            } else {
                /* Read in full: ASan sees a short or stale view. */
                volatile uint8_t sum = 0;
                for (size_t k = 0; k < r->len; k++)
                    sum ^= r->bytes[k];
                (void)sum;
            }
        }
        CHECK(pmc_capture_record_at(c, pmc_capture_count(c)) == NULL);
    }
    pmc_capture_free(c);
    return 0;
}
