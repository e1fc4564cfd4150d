/*
 * pmcore/capture.h - reading capture files back into the packets that went
 * over the socket.  Part of pmcore.h; include pmcore.h, not this file.
 */
#ifndef PMCORE_CAPTURE_H
#define PMCORE_CAPTURE_H

#include "proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Capture files                                                            */
/* ------------------------------------------------------------------------ */
/*
 * A server with capture on (PMCORE_CAPTURE, or pmc_server_config's
 * capture_dir) writes each conversation to a file; docs/capture-format.md
 * defines the file.  This is its reader, the one the library's writer is
 * tested against: a tool that replays, compares or shows captures reads
 * them here and keeps no rules of the format of its own.
 *
 * A capture is read whole, from a file or a buffer, into records.  Each
 * record is one packet (or a run of bytes that were no packets) of one
 * direction, given back as the exact bytes that went over the socket:
 * the 4-byte length, the command byte and the payload, encoded by
 * pmc_encode.  Sending the records of PMC_CAPTURE_TO_MILTER in order
 * plays the MTA's side of the conversation byte for byte; the records of
 * PMC_CAPTURE_TO_MTA are what the milter answered.
 *
 * Strictness: the reader refuses what it cannot give back exactly.  A
 * line that does not parse, a body shorter than its length and a file
 * that ends in the middle of a line (a capture still being written, or
 * cut off) are errors naming the line; it never hands out a packet
 * that differs from what went over the socket.  Lines of a kind it
 * does not know (a later writer's additions to version 1) are skipped,
 * as the format asks; empty lines too.
 *
 * The capture owns everything it hands out: pointers stay valid until
 * pmc_capture_free.  A capture is not changed after reading, so threads
 * may read one at once.
 */

/* Who sent a record's bytes. */
typedef enum pmc_capture_dir {
    PMC_CAPTURE_TO_MILTER = 0, /* the MTA's commands ('>' in the file) */
    PMC_CAPTURE_TO_MTA = 1     /* the milter's replies ('<') */
} pmc_capture_dir;

/* One record: a packet, or bytes that were no packets. */
typedef struct pmc_capture_record {
    long long ms;          /* milliseconds since the capture started (a
                              monotonic clock; when the first byte went) */
    pmc_capture_dir dir;
    /* 0: a whole packet; bytes = length, cmd, payload.
     * 1: bytes that were no whole packet, as they went: the rest of a
     *    direction after a length of 0 or above 16 MiB, a packet cut off
     *    by the end of the connection (a body among them: its bytes up to
     *    where the connection ended, cmd still 'B' or 'b').  A replayer
     *    sends them; a comparer should not take them for a packet. */
    int raw;
    uint8_t cmd;           /* the command or reply byte; 0 for raw bytes,
                              but a cut body keeps its 'B' or 'b' */
    unsigned line;         /* where the record starts in the file, from 1 */
    const uint8_t *bytes;  /* as they went over the socket */
    size_t len;
} pmc_capture_record;

/* One direction's negotiation, from an "options" record. */
typedef struct pmc_capture_options {
    int present;           /* 0 when the capture has no such record */
    uint32_t version;
    uint32_t actions;      /* SMFIF_* bits */
    uint32_t protocol;     /* SMFIP_* bits */
} pmc_capture_options;

/* What a capture says about itself. */
typedef struct pmc_capture_info {
    unsigned format;       /* the version of the file's format: 1 */
    /* From the start record; empty strings and zeros when there is
     * none.  start_time is UTC, ISO 8601 with milliseconds, as the file
     * has it ("2026-12-06T23:50:56.602Z"). */
    char start_time[32];
    long long pid;         /* the process that served the connection */
    uint64_t conn;         /* its connection id */
    char family[8];        /* "unix", "inet", "inet6" or "unknown" */
    unsigned port;         /* the peer's port */
    pmc_str peer;          /* the peer's address, unescaped */
    /* The first OPTNEG of each side: the MTA's offer, and the milter's
     * answer, which is what was negotiated. */
    pmc_capture_options offer;
    pmc_capture_options negotiated;
    int complete;          /* the end record is there: the connection
                              closed and the file was completed */
    long long end_ms;      /* the end record's time; -1 without one */
} pmc_capture_info;

typedef struct pmc_capture pmc_capture;

/* Read a capture from text[0..len) (the whole file's bytes; the buffer is
 * not kept).  PMC_OK with *out set, to be freed with pmc_capture_free;
 * otherwise *out is NULL and err (when not NULL) says why.  The messages
 * of FORMAT and TRUNCATED start "line N: " (lines counted as an editor
 * counts them, those of verbatim bodies included), and err->offset is
 * the byte offset of that line's start:
 *   PMC_ERR_FORMAT     not a capture file ("not a pmcore capture file"),
 *                      a version other than 1, or a line that does not
 *                      parse (which part is named: a bad escape, a
 *                      macro without '=', a cut of no body...);
 *   PMC_ERR_TRUNCATED  the text ends inside a record: in the middle of a
 *                      line, or of a body's bytes;
 *   PMC_ERR_ARGUMENT   text NULL with len > 0, or out NULL;
 *   PMC_ERR_NOMEM. */
PMC_API pmc_status pmc_capture_parse(const void *text, size_t len,
                                     pmc_capture **out, pmc_error *err);

/* The same from a file.  PMC_ERR_IO when it cannot be opened or read (the
 * message names the file and the system's reason); the messages of
 * pmc_capture_parse start with "PATH:N: " instead of "line N: ". */
PMC_API pmc_status pmc_capture_read_file(const char *path,
                                         pmc_capture **out, pmc_error *err);

/* Free a capture; NULL is allowed. */
PMC_API void pmc_capture_free(pmc_capture *c);

/* The capture's header information; valid until pmc_capture_free. */
PMC_API const pmc_capture_info *pmc_capture_get_info(const pmc_capture *c);

/* How many records, and record i of them (0 to count - 1, in the order of
 * the file, both directions interleaved as they went; NULL when i is out
 * of range). */
PMC_API size_t pmc_capture_count(const pmc_capture *c);
PMC_API const pmc_capture_record *pmc_capture_record_at(const pmc_capture *c,
                                                        size_t i);

#ifdef __cplusplus
}
#endif
#endif /* PMCORE_CAPTURE_H */
