/* The rules of the capture format (docs/capture-format.md) that its writer
 * (server/capture_write.c) and its reader (client/capture_read.c) share:
 * the first line, the limit past which bytes are no packets, and the
 * escapes.  They live here, in the layer both may include, so the two
 * cannot drift apart.  Private to the core. */
#ifndef PMCORE_CAPTURE_FORMAT_H
#define PMCORE_CAPTURE_FORMAT_H

#include "internal.h"

/* The first line of a file is this, the version and a LF. */
#define PMCI_CAP_MAGIC "pmcore-capture "
#define PMCI_CAP_VERSION 1
/* The writer's first line as one literal (no formatting per file). */
#define PMCI_CAP_STR_(x) #x
#define PMCI_CAP_STR(x) PMCI_CAP_STR_(x)
#define PMCI_CAP_FIRST_LINE PMCI_CAP_MAGIC PMCI_CAP_STR(PMCI_CAP_VERSION) "\n"
/* A packet length above this (or 0) is no milter packet: the rest of that
 * direction is recorded as raw bytes. */
#define PMCI_CAP_MAX_PACKET (16u * 1024 * 1024)

/* What pmci_cap_escape makes of the bytes. */
enum {
    PMCI_ESC_PAYLOAD, /* printable ASCII but the backslash, and the space,
                         stand for themselves */
    PMCI_ESC_TOKEN,   /* the space and '=' are escaped too: they separate
                         tokens, and names from values */
    PMCI_ESC_MACROS   /* a token, but each NUL ends a name (written '=') or
                         a value (written ' '; nothing after the last) */
};

/* Whether byte b stands for itself in mode's text. */
static inline int pmci_cap_plain(uint8_t b, int mode)
{
    if (b < 0x20 || b > 0x7e || b == '\\')
        return 0;
    return mode == PMCI_ESC_PAYLOAD || (b != ' ' && b != '=');
}

/* Byte b escaped at o ("\0", "\n", "\xHH"...); returns the end.  Room for
 * four bytes is the caller's. */
PMCI_HIDDEN uint8_t *pmci_cap_esc1(uint8_t *o, uint8_t b);

/* Append p[0..n) to out as mode says.  In PMCI_ESC_MACROS, *nuls (when
 * not NULL) gets the number of NULs, for the caller to check the shape.
 * PMC_ERR_NOMEM leaves out's length as it was. */
PMCI_HIDDEN pmc_status pmci_cap_escape(pmc_buf *out, const uint8_t *p,
                                       size_t n, int mode, size_t *nuls);

/* Append the bytes that the escaped text p[0..n) stands for.  Hex digits
 * may be of either case.  PMC_ERR_BAD_PAYLOAD for a backslash that starts
 * no escape, with *bad its offset in p (out then holds the bytes before
 * it); PMC_ERR_NOMEM. */
PMCI_HIDDEN pmc_status pmci_cap_unescape(pmc_buf *out, const char *p,
                                         size_t n, size_t *bad);

#endif
