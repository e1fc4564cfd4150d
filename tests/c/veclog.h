/*
 * veclog.h - the log a vector run produces: one token line per handler
 * call, action failure, macro lookup, reply packet and end of session
 * (tests/vectors/README.md, "expected log").
 */
#ifndef VECLOG_H
#define VECLOG_H

#include "vecparse.h"

typedef struct vlog {
    vline *l;
    size_t n, cap;
    int oom; /* an allocation failed: the log is incomplete */
} vlog;

void vlog_free(vlog *g);

/* A new line starting with 'word'; NULL (and oom set) on failure.  The
 * helpers below accept that NULL and do nothing. */
vline *vlog_line(vlog *g, const char *word);
void vlog_word(vlog *g, vline *l, const char *w);
void vlog_str(vlog *g, vline *l, const void *p, size_t n);
void vlog_num(vlog *g, vline *l, int64_t n);

/* "fail ACTION STATUS". */
void vlog_fail(vlog *g, const char *action, pmc_status st);
/* "runner-error WHAT WHY": a script line the runner could not execute; no
 * vector expects it, so a broken vector fails and says why. */
void vlog_runner_error(vlog *g, const char *what, const char *why);

/* Log a "reply" line for every whole packet in out[0..len) and return the
 * number of bytes they took (a partial packet at the end is left). */
size_t vlog_replies(vlog *g, const uint8_t *out, size_t len);

#endif
