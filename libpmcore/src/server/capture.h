/* Capture of conversations to files (docs/capture-format.md); private to
 * the server.  The server calls in at four points: a connection opens,
 * bytes were read from it, bytes were written to it, it closes.  Nothing
 * here can fail a conversation: a capture that cannot be written is
 * dropped and counted. */
#ifndef PMCORE_SERVER_CAPTURE_H
#define PMCORE_SERVER_CAPTURE_H

#include "internal_server.h"

/* The capture settings of a server: its directory and rotation limits. */
typedef struct pmci_capture pmci_capture;
/* One connection's capture file. */
typedef struct pmci_capfile pmci_capfile;

/* capture.c */
/* From cfg's capture fields, or PMCORE_CAPTURE when set: NULL in *out
 * when capture is off.  PMC_ERR_ARGUMENT with a message naming the
 * variable or field when the directory cannot be used or the value does
 * not parse; PMC_ERR_NOMEM. */
PMCI_HIDDEN pmc_status pmci_capture_new(const pmc_server_config *cfg,
                                        pmci_capture **out, pmc_error *err);
PMCI_HIDDEN void pmci_capture_free(pmci_capture *cap);
/* After a file of 'bytes' bytes was completed: remove the oldest files
 * once the directory holds more than the limits allow. */
PMCI_HIDDEN void pmci_capture_rotate(pmci_capture *cap, uint64_t bytes);
/* Create the file of connection ci; NULL when that failed (counted by the
 * caller). */
PMCI_HIDDEN pmci_capfile *pmci_capfile_open(pmci_capture *cap,
                                            const pmc_conn_info *ci);
PMCI_HIDDEN const char *pmci_capture_dir(const pmci_capture *cap);
/* How many drops so far in this process, the new one included. */
PMCI_HIDDEN unsigned long pmci_capture_dropped(pmci_capture *cap);

/* capture_write.c: the records.  Each returns 0, or -1 when the file
 * failed; the caller then drops it with pmci_capfile_drop. */
PMCI_HIDDEN int pmci_capfile_start(pmci_capfile *f, const pmc_conn_info *ci,
                                   long long now_ms);
/* Bytes of one direction (0: MTA to milter, 1: milter to MTA), as they
 * went over the socket; records are written per complete packet. */
PMCI_HIDDEN int pmci_capfile_bytes(pmci_capfile *f, int dir,
                                   const uint8_t *p, size_t n,
                                   long long now_ms);
/* The end record, flush and close.  Returns the file size, or -1 when
 * it failed (the file is then removed and f freed all the same). */
PMCI_HIDDEN long long pmci_capfile_end(pmci_capfile *f, long long now_ms);
/* Give up: close, remove the file, free f. */
PMCI_HIDDEN void pmci_capfile_drop(pmci_capfile *f);
/* Used by capture.c to make and name the file. */
PMCI_HIDDEN pmci_capfile *pmci_capfile_new(int dirfd, const char *name);

/* The server's hooks (capture.c): one line each at the points where a
 * connection opens, reads, writes and closes.  c->cap is NULL when the
 * connection is not captured, so a server without capture pays a test. */
PMCI_HIDDEN void pmci_cap_open(pmci_conn *c);
PMCI_HIDDEN void pmci_cap_io(pmci_conn *c, int dir, const uint8_t *p,
                             size_t n);
PMCI_HIDDEN void pmci_cap_close(pmci_conn *c);

#endif
