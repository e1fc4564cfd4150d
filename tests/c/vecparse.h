/*
 * vecparse.h - reading conversation vectors (tests/vectors/README.md).
 *
 * A vector file becomes a 'vector': the session configuration, the handler
 * script, the input cut into segments (resume and act lines separate them)
 * and the expected log, as token lines (veclex.h).
 */
#ifndef VECPARSE_H
#define VECPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "pmcore.h"
#include "veclex.h"

/* Handler script line: "on EVENT[#N] ACTION TOKENS...". */
typedef struct vaction {
    int event; /* pmc_event */
    int nth;   /* 1-based call number, 0 = every call */
    vline line; /* the ACTION word and its arguments */
} vaction;

/* The conversation: byte segments separated by control steps. */
enum vstep_kind { VS_BYTES, VS_RESUME, VS_ACT };
typedef struct vstep {
    int kind;
    uint8_t *bytes; /* VS_BYTES */
    size_t len;
    int verdict;    /* VS_RESUME */
    vline line;     /* VS_ACT: ACTION word and arguments */
} vstep;

typedef struct vector {
    char *path;
    char *name;
    vline covers;
    /* milter line */
    uint32_t version, actions, protocol;
    size_t max_packet;
    int skip_any_event;
    unsigned handlers; /* bit per pmc_event present */
    int has_symlist[PMC_STAGE_COUNT];
    char *symlist[PMC_STAGE_COUNT];
    vaction *acts;
    size_t nacts;
    vstep *steps;
    size_t nsteps;
    vline *expect;
    size_t nexpect;
} vector;

/* Parse a file.  Returns 0 and fills *v, or -1 with a message in err. */
int vec_parse_file(const char *path, vector *v, char *err, size_t errlen);
void vec_free(vector *v);

/* Names used by the format. */
int vec_event_from_name(const char *name); /* -1 if unknown */
const char *vec_event_name(int ev);
/* A verdict token (word or number); returns 0 and sets *out, or -1. */
int vec_verdict(const vtok *t, int *out);

#endif
