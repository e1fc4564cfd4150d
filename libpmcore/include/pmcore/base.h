/*
 * pmcore/base.h - what every layer of libpmcore shares: the export macro,
 * status codes and errors, byte strings and buffers.  Part of pmcore.h;
 * include pmcore.h, not this file.
 */
#ifndef PMCORE_BASE_H
#define PMCORE_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bindings that compile the core into their extension may define PMC_API
 * as empty (with -fvisibility=hidden) so nothing of the core is exported. */
#ifndef PMC_API
#if defined(__GNUC__)
#define PMC_API __attribute__((visibility("default")))
#else
#define PMC_API
#endif
#endif

#define PMC_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                  */
/* ------------------------------------------------------------------------ */

typedef enum pmc_status {
    PMC_OK = 0,
    /* Wire: bad framing.  The connection cannot continue. */
    PMC_ERR_ZERO_LENGTH,    /* a packet length field of 0 */
    PMC_ERR_TOO_BIG,        /* a packet length over the configured limit */
    PMC_ERR_TRUNCATED,      /* end of stream inside a packet */
    PMC_ERR_UNKNOWN_COMMAND,/* a command byte that is not a milter command */
    /* Session: bad content or order from the MTA.  Connection ends. */
    PMC_ERR_BAD_PAYLOAD,    /* a payload of the wrong shape for its command */
    PMC_ERR_BAD_FAMILY,     /* CONNECT with an unknown address family */
    PMC_ERR_BAD_MACRO,      /* MACRO with an odd count or unterminated name */
    PMC_ERR_VERSION,        /* OPTNEG offers a version below 2 */
    PMC_ERR_NEGOTIATION,    /* the filter requires what the MTA did not offer,
                               or the negotiate handler refused */
    PMC_ERR_SEQUENCE,       /* a command where it cannot be (data before
                               OPTNEG, a second OPTNEG, CONNECT twice) */
    PMC_ERR_CLOSED,         /* the session has ended (QUIT, EOF, error) */
    /* Actions called by the filter.  The session itself is not harmed. */
    PMC_ERR_NOT_NEGOTIATED, /* the action flag was not negotiated */
    PMC_ERR_WRONG_STAGE,    /* not allowed at this point of the conversation */
    PMC_ERR_REPLY_TEXT,     /* an invalid SMTP reply code or text */
    PMC_ERR_ARGUMENT,       /* a bad argument (NULL, NUL inside a name, ...) */
    PMC_ERR_PENDING,        /* a call that needs no pending handler, or
                               resume without one */
    /* Resources. */
    PMC_ERR_NOMEM,
    /* Client side. */
    PMC_ERR_BAD_REPLY,      /* the filter sent a reply the MTA cannot take */
    PMC_ERR_IO,             /* a read or write on a descriptor failed */
    PMC_ERR_TIMEOUT,        /* no reply within the timeout */
    /* Capture files (pmcore/capture.h). */
    PMC_ERR_FORMAT,         /* not a capture file, a version this library
                               does not read, or a record that does not
                               parse */
    PMC_STATUS_COUNT
} pmc_status;

/* The stable name of a status ("TOO_BIG", "OK", ...).  Never NULL; unknown
 * values give "UNKNOWN".  Thread-safe. */
PMC_API const char *pmc_status_name(pmc_status st);

/* A detailed error.  'offset' is the byte offset, counted from the first
 * byte ever fed to the object, of the packet (or byte) at fault; for action
 * errors it is the offset of the packet being handled.  'message' is a
 * complete English sentence without a trailing newline. */
typedef struct pmc_error {
    pmc_status code;
    uint64_t offset;
    char message[200];
} pmc_error;

/* ------------------------------------------------------------------------ */
/* Byte strings and buffers                                                 */
/* ------------------------------------------------------------------------ */

typedef struct pmc_str {
    const char *ptr; /* never NULL when handed out by the library */
    size_t len;
} pmc_str;

/* A growable byte buffer.  Owned by whoever embeds it; release with
 * pmc_buf_free.  A zeroed pmc_buf is a valid empty buffer. */
typedef struct pmc_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} pmc_buf;

/* Append n bytes.  PMC_ERR_NOMEM on allocation failure (buffer unchanged). */
PMC_API pmc_status pmc_buf_append(pmc_buf *b, const void *p, size_t n);
/* Drop the first n bytes (n > len drops all). */
PMC_API void pmc_buf_consume(pmc_buf *b, size_t n);
/* Free the storage; the buffer is empty and reusable afterwards. */
PMC_API void pmc_buf_free(pmc_buf *b);

#ifdef __cplusplus
}
#endif
#endif /* PMCORE_BASE_H */
