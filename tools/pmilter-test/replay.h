/* pmilter-test --replay: a captured conversation played against a milter
 * again, its replies compared with the captured ones. */
#ifndef PMT_REPLAY_H
#define PMT_REPLAY_H

#include "pmcore.h"

#include <stddef.h>

/* Exit codes of --replay; documented in pmilter-test.1. */
enum { PMT_REPLAY_SAME = 0, PMT_REPLAY_DIFFER = 1, PMT_REPLAY_ERROR = 2 };

/* One packet of a capture, as it went over the socket. */
typedef struct pmt_rec {
    long long ms;   /* since the capture started */
    int dir;        /* 0: MTA to milter, 1: milter to MTA */
    int raw;        /* bytes that were not packets (pkt holds them) */
    uint8_t cmd;
    unsigned line;  /* in the file, for messages */
    pmc_buf pkt;    /* length, command and payload */
} pmt_rec;

typedef struct pmt_capture {
    pmt_rec *recs;
    size_t n, cap;
    int complete;   /* the end record is there */
} pmt_capture;

/* capread.c: 0, or -1 with err filled (the file cannot be read, is not a
 * capture of a version this tool reads, or a record does not parse). */
int pmt_capture_read(const char *path, pmt_capture *c, char *err,
                     size_t errlen);
void pmt_capture_free(pmt_capture *c);

/* replay.c: FILE or every *.pmcap of DIR against the socket; prints the
 * differences; returns one of the codes above. */
int pmt_replay(const char *path, const char *socket, int timeout_s,
               int quiet);

#endif
