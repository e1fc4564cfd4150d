/*
 * vecexec.h - one run of a vector against a pmc_session: the handler table
 * that plays the vector's script, the feeding plan, and the log it
 * produces (tests/vectors/README.md, "expected log").
 */
#ifndef VECEXEC_H
#define VECEXEC_H

#include "veclog.h"

/* How the input bytes reach pmc_session_feed. */
enum vfeed {
    VF_WHOLE, /* each segment in one call */
    VF_BYTES, /* one byte per call */
    VF_SPLIT  /* each segment whole, except the one holding the cut offset,
                 which is fed in two calls split there */
};

/* Total input bytes of a vector (cut offsets range over 1..total-1). */
size_t vec_input_len(const vector *v);

/* Run the vector once.  'cut' is the stream offset for VF_SPLIT.  Returns 0
 * with the log in *out, or -1 when the runner itself failed (out of
 * memory); *out is then freed. */
int vec_exec(const vector *v, int feed, size_t cut, vlog *out);

#endif
