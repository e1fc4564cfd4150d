/*
 * pmcore.h - the contract of libpmcore, a milter protocol engine.
 *
 * libpmcore speaks both sides of the Sendmail/Postfix milter protocol
 * (versions 2 to 6).  It is built in layers, bottom up:
 *
 *   wire     bytes <-> packets.  No I/O, no allocation per packet.
 *   session  one MTA connection seen from the filter: feed it bytes, it calls
 *            a handler table and appends reply bytes to an output buffer.
 *            No I/O.  Negotiation, macros, state, action legality and reply
 *            text rules all live here, so every binding behaves the same.
 *   client   the MTA side: encodes commands with Postfix or Sendmail quirks,
 *            decodes replies and collects the modifications a filter asked
 *            for.  Used by tests, tools and benchmarks.
 *
 * Conventions that hold for every function below unless it says otherwise:
 *
 *  - Errors are values.  Functions return a pmc_status; PMC_OK is 0.  Nothing
 *    in the library aborts the process, prints, or exits.
 *  - Strings are byte strings with an explicit length (pmc_str).  They may
 *    contain NUL and 8-bit bytes.  Strings the library hands out are also
 *    followed by a NUL byte (ptr[len] == 0) so C callers may use them as C
 *    strings when they know there is no interior NUL.
 *  - Pointers the library hands to a handler are views into its buffers and
 *    stay valid only until that handler returns.  Copy what you keep.
 *  - Objects are not thread-safe.  One object may be used by one thread at a
 *    time; different objects may be used by different threads at once.  The
 *    library has no global mutable state.
 *  - Every public symbol starts with pmc_ or PMC_.
 */
#ifndef PMCORE_H
#define PMCORE_H

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
/* Protocol constants (the values on the wire; names follow libmilter's).   */
/* ------------------------------------------------------------------------ */

/* Highest protocol version libpmcore speaks. */
#define PMC_PROTO_VERSION 6

/* Action flags (SMFIF_*): what the filter may ask the MTA to change. */
#define PMC_ACT_ADDHDRS     0x001u /* 'h' add and 'i' insert header */
#define PMC_ACT_CHGBODY     0x002u /* 'b' replace body */
#define PMC_ACT_ADDRCPT     0x004u /* '+' add recipient */
#define PMC_ACT_DELRCPT     0x008u /* '-' delete recipient */
#define PMC_ACT_CHGHDRS     0x010u /* 'm' change or delete header */
#define PMC_ACT_QUARANTINE  0x020u /* 'q' quarantine */
#define PMC_ACT_CHGFROM     0x040u /* 'e' change envelope sender */
#define PMC_ACT_ADDRCPT_PAR 0x080u /* '2' add recipient with ESMTP args */
#define PMC_ACT_SETSYMLIST  0x100u /* macro lists in the negotiation reply */
#define PMC_ACT_ALL         0x1FFu

/* Protocol flags (SMFIP_*).  NO* = "do not send", NR_* = "do not wait for a
 * reply", the rest are extensions. */
#define PMC_P_NOCONNECT   0x000001u
#define PMC_P_NOHELO      0x000002u
#define PMC_P_NOMAIL      0x000004u
#define PMC_P_NORCPT      0x000008u
#define PMC_P_NOBODY      0x000010u
#define PMC_P_NOHDRS      0x000020u
#define PMC_P_NOEOH       0x000040u
#define PMC_P_NR_HDR      0x000080u
#define PMC_P_NOUNKNOWN   0x000100u
#define PMC_P_NODATA      0x000200u
#define PMC_P_SKIP        0x000400u
#define PMC_P_RCPT_REJ    0x000800u
#define PMC_P_NR_CONN     0x001000u
#define PMC_P_NR_HELO     0x002000u
#define PMC_P_NR_MAIL     0x004000u
#define PMC_P_NR_RCPT     0x008000u
#define PMC_P_NR_DATA     0x010000u
#define PMC_P_NR_UNKN     0x020000u
#define PMC_P_NR_EOH      0x040000u
#define PMC_P_NR_BODY     0x080000u
#define PMC_P_HDR_LEADSPC 0x100000u
#define PMC_P_MDS_256K    0x10000000u
#define PMC_P_MDS_1M      0x20000000u

/* Every NR_* bit; the session can fake any of them when the MTA lacks it. */
#define PMC_P_NR_MASK \
    (PMC_P_NR_HDR | PMC_P_NR_CONN | PMC_P_NR_HELO | PMC_P_NR_MAIL | \
     PMC_P_NR_RCPT | PMC_P_NR_DATA | PMC_P_NR_UNKN | PMC_P_NR_EOH | \
     PMC_P_NR_BODY)
/* Every NO* bit. */
#define PMC_P_NO_MASK \
    (PMC_P_NOCONNECT | PMC_P_NOHELO | PMC_P_NOMAIL | PMC_P_NORCPT | \
     PMC_P_NOBODY | PMC_P_NOHDRS | PMC_P_NOEOH | PMC_P_NOUNKNOWN | \
     PMC_P_NODATA)
/* What a version-6 MTA (Sendmail, Postfix) offers. */
#define PMC_P_ALL_V6 0x1FFFFFu

/* Macro stages, as used in the negotiation reply (note EOM=5 before EOH=6). */
enum pmc_stage {
    PMC_STAGE_CONNECT = 0,
    PMC_STAGE_HELO = 1,
    PMC_STAGE_ENVFROM = 2,
    PMC_STAGE_ENVRCPT = 3,
    PMC_STAGE_DATA = 4,
    PMC_STAGE_EOM = 5,
    PMC_STAGE_EOH = 6,
    PMC_STAGE_COUNT = 7
};

/* Packet size limits. */
#define PMC_CHUNK_MAX 65535u                   /* body chunk, either way */
#define PMC_DEFAULT_MAX_PACKET (1024u * 1024u) /* default decoder limit */
#define PMC_REPLY_LINE_MAX 980u                /* bytes per reply line */
#define PMC_REPLY_LINES_MAX 32u                /* lines per reply */

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

/* ------------------------------------------------------------------------ */
/* Wire layer                                                               */
/* ------------------------------------------------------------------------ */

/* One decoded packet.  'payload' points into the bytes given to the decoder
 * (or its internal buffer for a packet that arrived in pieces) and is valid
 * until the next call on the decoder.  payload[len] is readable and is 0
 * only when the packet came from the internal buffer; do not rely on it. */
typedef struct pmc_packet {
    uint8_t cmd;
    const uint8_t *payload;
    size_t len;      /* payload length, i.e. the length field minus 1 */
    uint64_t offset; /* stream offset of the packet's first length byte */
} pmc_packet;

/* Incremental decoder.  Initialise with pmc_decoder_init, release with
 * pmc_decoder_free.  Usage:
 *
 *     pmc_decoder_input(&d, bytes, n);            // borrow the bytes
 *     while ((st = pmc_decoder_next(&d, &pkt)) == PMC_OK && pkt_ready)
 *         ...;
 *
 * The fields are private; they are public only so the struct can be embedded
 * without an allocation. */
typedef struct pmc_decoder {
    pmc_buf partial;       /* bytes of a packet that arrived in pieces */
    int partial_done;      /* the last packet handed out lives in 'partial' */
    pmc_buf stash;         /* queued input the decoder owns */
    int reading_stash;     /* 'in' points into 'stash' */
    const uint8_t *in;     /* input not yet consumed (borrowed or stash) */
    size_t in_len;
    uint64_t consumed;     /* stream offset of the next unread byte */
    size_t max_packet;     /* limit on the length field */
    int commands_checked;  /* nonzero: only milter command bytes are valid */
    pmc_error err;         /* sticky */
} pmc_decoder;

/* max_packet: largest accepted value of the length field (command byte plus
 * payload); 0 means PMC_DEFAULT_MAX_PACKET.  check_commands: nonzero makes
 * bytes that are not MTA commands (O D C H M R T L N B E U A Q K) an error
 * (the session uses this; the client decodes replies and passes 0). */
PMC_API void pmc_decoder_init(pmc_decoder *d, size_t max_packet,
                              int check_commands);
PMC_API void pmc_decoder_free(pmc_decoder *d);

/* Hand the decoder n more bytes.  The bytes are borrowed: they must stay
 * valid and unchanged until pmc_decoder_next has returned "no packet" or an
 * error, or until pmc_decoder_stash is called.  If the decoder still holds
 * stashed input, the new bytes are copied behind it instead.  Must not be
 * called while borrowed (unstashed) input remains.  On allocation failure
 * the sticky error becomes PMC_ERR_NOMEM. */
PMC_API void pmc_decoder_input(pmc_decoder *d, const uint8_t *p, size_t n);

/* Take the next whole packet.  Returns PMC_OK and sets *ready to 1 with *pkt
 * filled, or PMC_OK with *ready 0 when more bytes are needed (every borrowed
 * byte is then consumed or copied), or an error (sticky; *ready 0). */
PMC_API pmc_status pmc_decoder_next(pmc_decoder *d, pmc_packet *pkt,
                                    int *ready);

/* Copy the borrowed input that is left into the decoder's own buffer, so the
 * caller may reuse its bytes.  PMC_ERR_NOMEM on failure. */
PMC_API pmc_status pmc_decoder_stash(pmc_decoder *d);

/* The stream ended.  PMC_OK if no packet was in progress, otherwise
 * PMC_ERR_TRUNCATED (recorded in the sticky error). */
PMC_API pmc_status pmc_decoder_eof(pmc_decoder *d);

/* Bytes held that do not yet make a whole packet. */
PMC_API size_t pmc_decoder_pending(const pmc_decoder *d);

/* The sticky error, or NULL if none. */
PMC_API const pmc_error *pmc_decoder_error(const pmc_decoder *d);

/* Append one packet (length, command, payload) to an output buffer.
 * payload may be NULL when len is 0.  PMC_ERR_ARGUMENT if len + 1 does not
 * fit the 32-bit length field; PMC_ERR_NOMEM on allocation failure (the
 * buffer is then unchanged). */
PMC_API pmc_status pmc_encode(pmc_buf *out, uint8_t cmd, const void *payload,
                              size_t len);

/* Append a packet whose payload is the concatenation of n parts.  Each part
 * is (ptr, len); a part with nul=1 is followed by one NUL byte.  Used for the
 * "name\0value\0" shapes. */
typedef struct pmc_part {
    const void *ptr;
    size_t len;
    int nul;
} pmc_part;
PMC_API pmc_status pmc_encode_parts(pmc_buf *out, uint8_t cmd,
                                    const pmc_part *parts, size_t n);

/* ------------------------------------------------------------------------ */
/* Session: the filter side of one connection                               */
/* ------------------------------------------------------------------------ */

/* What a handler returns.  The numeric values are libmilter's SMFIS_* so the
 * bindings can pass them through. */
typedef enum pmc_verdict {
    PMC_CONTINUE = 0, /* go on; at EOM it means accept */
    PMC_REJECT = 1,   /* 5xx ('y' when a 5xx text was set, else 'r') */
    PMC_DISCARD = 2,  /* accept and silently drop the message */
    PMC_ACCEPT = 3,   /* accept; skip the rest of this message */
    PMC_TEMPFAIL = 4, /* 4xx ('y' when a 4xx text was set, else 't') */
    PMC_NOREPLY = 7,  /* no reply for this event (needs NR, else faked 'c') */
    PMC_SKIP = 8,     /* skip the rest of the body ('s' if negotiated) */
    PMC_ALL_OPTS = 10,/* negotiate handler only: see pmc_negotiation */
    PMC_PENDING = 100 /* answer later with pmc_session_resume */
} pmc_verdict;

/* The events of the milter protocol, in the order a message meets them. */
typedef enum pmc_event {
    PMC_EV_NEGOTIATE = 0,
    PMC_EV_CONNECT,
    PMC_EV_HELO,
    PMC_EV_ENVFROM,
    PMC_EV_ENVRCPT,
    PMC_EV_DATA,
    PMC_EV_HEADER,
    PMC_EV_EOH,
    PMC_EV_BODY,
    PMC_EV_EOM,
    PMC_EV_ABORT,
    PMC_EV_CLOSE,
    PMC_EV_UNKNOWN,
    PMC_EV_COUNT
} pmc_event;

/* The stable lower-case name of an event ("connect", "eom", ...). */
PMC_API const char *pmc_event_name(pmc_event ev);

typedef struct pmc_session pmc_session;

/* CONNECT as the MTA sent it.  'family' is the byte from the wire: 'U'
 * unknown (port 0, addr empty), 'L' unix socket (addr is the path), '4'
 * IPv4, '6' IPv6.  'addr' has Sendmail's "IPv6:" prefix removed; 'raw_addr'
 * is the address exactly as sent.  'addr_bin' holds the address in network
 * order (4 bytes for '4', 16 for '6') when addr_bin_len is nonzero, i.e.
 * when the text parsed as an address of its family. */
typedef struct pmc_connect_info {
    pmc_str host;
    char family;
    uint16_t port; /* host byte order */
    pmc_str addr;
    pmc_str raw_addr;
    uint8_t addr_bin[16];
    size_t addr_bin_len;
} pmc_connect_info;

/* MAIL and RCPT arguments: argv[0] is the address as sent (with or without
 * <>, possibly empty), the rest are ESMTP parameters.  argc >= 1. */
typedef struct pmc_args {
    const pmc_str *argv;
    size_t argc;
} pmc_args;

/* Negotiation, handed to the negotiate handler.  mta_* are the MTA's offer
 * (v1 defaults applied: actions 0 reads as 0x0F, protocol 0 as 0x3F).  The
 * reply fields hold the session's proposal, derived from the config and the
 * handler table (see pmc_config); the handler may change them and return
 * PMC_CONTINUE, return PMC_ALL_OPTS (libmilter's meaning: every offered
 * action, the derived NO* bits, SKIP if offered, nothing else), or return
 * PMC_REJECT to refuse the MTA (the session ends with PMC_ERR_NEGOTIATION).
 * After the handler the session enforces the offer: NR bits the MTA lacks
 * are dropped and faked, NODATA and NOUNKNOWN the MTA lacks are dropped, and
 * any other bit (action or protocol) the MTA did not offer ends the session
 * with PMC_ERR_NEGOTIATION, as libmilter does. */
typedef struct pmc_negotiation {
    uint32_t mta_version, mta_actions, mta_protocol;
    uint32_t version, actions, protocol;
} pmc_negotiation;

/* The handler table.  A NULL entry means "no handler": the session asks the
 * MTA not to send that event (NO* bit) when it can, and answers CONTINUE
 * itself when the event comes anyway.  Every handler gets the session and
 * the user data given to pmc_session_new.  Handlers may call the pmc_session
 * action functions on their own session; they must not call feed, eof,
 * resume or free on it.  Return values other than those listed count as a
 * callback error: the MTA gets TEMPFAIL (or CONTINUE where the MTA was
 * promised no reply) and pmc_session_stats counts it.
 *
 * Verdicts allowed: every message handler may return CONTINUE, REJECT,
 * DISCARD, ACCEPT, TEMPFAIL, NOREPLY or PENDING.  SKIP is honoured from body
 * (and from any event if pmc_config.skip_any_event is set, for Postfix which
 * skips "further events of the same type") when the MTA granted SKIP;
 * otherwise it is sent as CONTINUE.  abort's and close's return values are
 * ignored (the protocol has no reply for them). */
typedef struct pmc_handlers {
    int (*negotiate)(pmc_session *s, void *ud, pmc_negotiation *n);
    int (*connect)(pmc_session *s, void *ud, const pmc_connect_info *ci);
    int (*helo)(pmc_session *s, void *ud, pmc_str helo);
    int (*envfrom)(pmc_session *s, void *ud, const pmc_args *args);
    int (*envrcpt)(pmc_session *s, void *ud, const pmc_args *args);
    int (*data)(pmc_session *s, void *ud);
    /* 'value' is every byte between the name's NUL and the packet's final
     * NUL, so interior NULs survive; without HDR_LEADSPC the MTA has already
     * removed one leading space. */
    int (*header)(pmc_session *s, void *ud, pmc_str name, pmc_str value);
    int (*eoh)(pmc_session *s, void *ud);
    int (*body)(pmc_session *s, void *ud, const uint8_t *chunk, size_t len);
    int (*eom)(pmc_session *s, void *ud);
    int (*abort)(pmc_session *s, void *ud);
    int (*close)(pmc_session *s, void *ud);
    int (*unknown)(pmc_session *s, void *ud, pmc_str command);
} pmc_handlers;

/* Session configuration.  Initialise with pmc_config_init, then change what
 * you need.  The session copies it (and the symlist strings). */
typedef struct pmc_config {
    uint32_t version;  /* highest version to answer with, 2..6 (default 6) */
    uint32_t actions;  /* PMC_ACT_* the filter wants (default 0) */
    /* Protocol bits the filter wants on top of the derived NO* bits:
     * NR_* (no reply), SKIP, RCPT_REJ, HDR_LEADSPC.  NR bits the MTA does not
     * offer are faked; SKIP, RCPT_REJ and HDR_LEADSPC the MTA does not offer
     * are left out (pmc_session_protocol tells what was granted).  Default 0. */
    uint32_t protocol;
    /* Largest packet accepted from the MTA (length field); 0 = default. */
    size_t max_packet;
    /* Macro list per stage to request in the negotiation reply, as a
     * space-separated list ("j {daemon_name}"); NULL = no request for that
     * stage, "" = send no macros at that stage.  Sent only when the MTA
     * offers SETSYMLIST; the session then sets that action bit itself. */
    const char *symlist[PMC_STAGE_COUNT];
    /* Nonzero: SKIP is honoured from every event, not only body (Postfix
     * skips further events of the same type).  Default 0: body only, which
     * both MTAs accept. */
    int skip_any_event;
} pmc_config;

PMC_API void pmc_config_init(pmc_config *cfg);

/* Create a session.  'h' must stay valid for the session's life (it is not
 * copied); 'cfg' is copied (NULL = defaults).  Returns NULL when out of
 * memory.  Thread-safe. */
PMC_API pmc_session *pmc_session_new(const pmc_handlers *h, void *ud,
                                     const pmc_config *cfg);

/* Free the session and everything it owns.  Calls no handler: to run abort
 * and close, call pmc_session_eof (or pmc_session_end) first.  Close is owed
 * for every session, even one that never received a byte (as libmilter
 * calls xxfi_close for every connection).  NULL is fine. */
PMC_API void pmc_session_free(pmc_session *s);

/* Feed bytes received from the MTA.  Any split is fine: the results do not
 * depend on how the stream is cut.  Handlers run from inside this call; reply
 * bytes are appended to the output buffer.  The bytes are not kept after the
 * call returns (what is needed is copied).
 *
 * Commands that come out of order are handled as libmilter's state table
 * handles them, with the differences docs/state-table.md lists: a message
 * that is open ends with abort, and a command that cannot follow even HELO
 * is dropped with no handler and no reply (counted in
 * pmc_session_stats.commands_ignored).
 *
 * Returns PMC_OK while the conversation goes on (also when a handler returned
 * PMC_PENDING: bytes fed meanwhile are queued), PMC_ERR_CLOSED once the MTA
 * said QUIT (the output may still hold bytes to send; then close the
 * connection), or an error from the MTA's bytes.  On an error the session has
 * already run abort (inside a message) and close, the error is sticky
 * (pmc_session_error), and nothing more will be appended to the output:
 * close the connection. */
PMC_API pmc_status pmc_session_feed(pmc_session *s, const void *bytes,
                                    size_t n);

/* The MTA closed its side.  Runs abort (inside a message) and close, once.
 * Returns PMC_OK, or PMC_ERR_TRUNCATED if a packet was cut off, or the
 * sticky error if the session had already failed. */
PMC_API pmc_status pmc_session_eof(pmc_session *s);

/* End the session for a reason of the host's (a timeout, a stop): runs abort
 * (inside a message) and close, once, and makes further feeds return
 * PMC_ERR_CLOSED.  'why' may be PMC_OK.  Returns PMC_OK. */
PMC_API pmc_status pmc_session_end(pmc_session *s, pmc_status why);

/* Answer the event whose handler returned PMC_PENDING, exactly as if the
 * handler had returned 'verdict' (PMC_PENDING again keeps waiting), then go
 * on with queued input, which may run more handlers.  Returns as
 * pmc_session_feed does, or PMC_ERR_PENDING when nothing is pending. */
PMC_API pmc_status pmc_session_resume(pmc_session *s, int verdict);

/* Nonzero while a handler's answer is pending. */
PMC_API int pmc_session_is_pending(const pmc_session *s);

/* Why the close handler ran, or why the session ended. */
typedef enum pmc_close_reason {
    PMC_CLOSE_NONE = 0,  /* no close yet: the session is open and no
                            QUIT_NC was seen */
    PMC_CLOSE_QUIT,      /* the MTA sent QUIT */
    PMC_CLOSE_QUIT_NC,   /* the MTA sent QUIT_NC: close ran, the session
                            stays open for a new connection */
    PMC_CLOSE_EOF,       /* pmc_session_eof: the stream ended between
                            packets */
    PMC_CLOSE_ERROR,     /* bad input from the MTA (pmc_session_error says
                            which), a cut-off packet at EOF, or out of
                            memory */
    PMC_CLOSE_HOST       /* pmc_session_end: the host ended it (a timeout,
                            a stop, an I/O error; under the server the
                            session error names the status) */
} pmc_close_reason;

/* The reason of the last close (or end) of the session: read it in the
 * close handler to tell a QUIT from a dropped connection, or afterwards.
 * PMC_CLOSE_NONE before any.  A QUIT_NC reason stays until the next close.
 * Same thread rules as the session. */
PMC_API pmc_close_reason pmc_session_close_reason(const pmc_session *s);
/* Nonzero once the session has ended (QUIT, EOF, end, or error). */
PMC_API int pmc_session_is_closed(const pmc_session *s);

/* Bytes waiting to go to the MTA.  The pointer is valid until the next call
 * on the session.  After writing k bytes, call pmc_session_consume. */
PMC_API const uint8_t *pmc_session_output(const pmc_session *s, size_t *len);
PMC_API void pmc_session_consume(pmc_session *s, size_t k);

/* The sticky error, or NULL if none. */
PMC_API const pmc_error *pmc_session_error(const pmc_session *s);
/* The error of the last action call that failed (or NULL): actions return a
 * status, and this gives the sentence behind it. */
PMC_API const pmc_error *pmc_session_action_error(const pmc_session *s);

/* What was negotiated (valid after OPTNEG; 0 before). */
PMC_API uint32_t pmc_session_version(const pmc_session *s);
PMC_API uint32_t pmc_session_actions(const pmc_session *s);
/* The protocol bits sent to the MTA. */
PMC_API uint32_t pmc_session_protocol(const pmc_session *s);
/* The MTA's offer. */
PMC_API void pmc_session_offer(const pmc_session *s, uint32_t *version,
                               uint32_t *actions, uint32_t *protocol);

/* The user data given to pmc_session_new, and a way to change it. */
PMC_API void *pmc_session_userdata(const pmc_session *s);
PMC_API void pmc_session_set_userdata(pmc_session *s, void *ud);

/* The event being handled (or pending), or PMC_EV_COUNT outside handlers. */
PMC_API pmc_event pmc_session_current_event(const pmc_session *s);

/* Counters, for metrics. */
typedef struct pmc_session_stats {
    uint64_t packets_in;       /* packets decoded */
    uint64_t bytes_in;
    uint64_t messages;         /* EOM handled */
    uint64_t replies[128];     /* replies sent, indexed by reply code byte */
    uint64_t callback_errors;  /* invalid verdicts from handlers */
    uint64_t noreply_violations; /* verdicts swallowed because of NR */
    uint64_t macros_ignored;   /* MACRO packets for stages not kept */
    uint64_t commands_ignored; /* commands dropped unanswered because they
                                  came out of order (docs/state-table.md) */
} pmc_session_stats;
PMC_API const pmc_session_stats *pmc_session_stats_get(const pmc_session *s);

/* -- Macros -------------------------------------------------------------- */

/* Look a macro up, searching the stages from the latest (EOM) back to
 * CONNECT; "x" and "{x}" name the same macro.  Returns 1 and sets *value (a
 * view valid until the next feed, resume or eof) or 0 if unknown.  Callable
 * from handlers and between feeds. */
PMC_API int pmc_session_getsymval(const pmc_session *s, const char *name,
                                  size_t name_len, pmc_str *value);

/* Iterate over the macros of one stage (PMC_STAGE_*), in the order the MTA
 * sent them.  *cursor starts at 0.  Returns 1 with name and value set, 0 at
 * the end.  Views valid as for getsymval. */
PMC_API int pmc_session_macro_next(const pmc_session *s, int stage,
                                   size_t *cursor, pmc_str *name,
                                   pmc_str *value);

/* Request a macro list for a stage in the negotiation reply.  Only from the
 * negotiate handler or before the first feed (PMC_ERR_WRONG_STAGE
 * otherwise); PMC_ERR_ARGUMENT for a bad stage or a list with CR, LF or NUL.
 * Replaces an earlier list for that stage; NULL removes it. */
PMC_API pmc_status pmc_session_setsymlist(pmc_session *s, int stage,
                                          const char *list);

/* -- Actions ------------------------------------------------------------- */
/*
 * Each returns PMC_OK or an error (details in pmc_session_action_error); an
 * error never harms the session.  Rules common to all:
 *  - PMC_ERR_NOT_NEGOTIATED: the action's flag was not negotiated.
 *  - PMC_ERR_WRONG_STAGE: modifications (header, recipient, sender, body,
 *    quarantine) only from the eom handler or while EOM is pending.
 *  - PMC_ERR_ARGUMENT: NULL where a string is needed, NUL inside a name,
 *    address or argument string.
 * Modification packets are queued and sent before the EOM's final reply;
 * body replacement packets go out contiguously, after the other
 * modifications, in chunks of at most 65535 bytes.
 */

/* Reply text for the next REJECT or TEMPFAIL verdict of the current event.
 * rcode: three digits, first 4 or 5.  xcode: NULL (none) or an enhanced code
 * "c.s.d" whose class c equals rcode's first digit, subject and detail of 1
 * to 3 digits.  text: may be NULL; must not hold CR or LF; '%' is doubled on
 * the wire (Sendmail reads the text as a format; Postfix undoubles).  Each
 * wire line must fit PMC_REPLY_LINE_MAX.  The text is used once: by the
 * verdict of the handler that set it, if that verdict's class matches rcode
 * (REJECT with 5xx, TEMPFAIL with 4xx), and is dropped otherwise. */
PMC_API pmc_status pmc_session_setreply(pmc_session *s, const char *rcode,
                                        const char *xcode, const char *text);
/* Multi-line form: n lines (1..32), each as for setreply's text.  Sent as
 * "rcode-xcode line\r\n" ... "rcode xcode last". */
PMC_API pmc_status pmc_session_setmlreply(pmc_session *s, const char *rcode,
                                          const char *xcode,
                                          const char *const *lines, size_t n);

PMC_API pmc_status pmc_session_addheader(pmc_session *s, pmc_str name,
                                         pmc_str value);
/* index 0 = before every header. */
PMC_API pmc_status pmc_session_insheader(pmc_session *s, uint32_t index,
                                         pmc_str name, pmc_str value);
/* index: 1-based among headers of that name; an empty value deletes. */
PMC_API pmc_status pmc_session_chgheader(pmc_session *s, pmc_str name,
                                         uint32_t index, pmc_str value);
PMC_API pmc_status pmc_session_addrcpt(pmc_session *s, pmc_str rcpt);
/* args: ESMTP parameters, one space-separated string; NULL/empty = none
 * (then sent as '+' if ADDRCPT is negotiated, otherwise as '2'). */
PMC_API pmc_status pmc_session_addrcpt_par(pmc_session *s, pmc_str rcpt,
                                           const pmc_str *args);
PMC_API pmc_status pmc_session_delrcpt(pmc_session *s, pmc_str rcpt);
/* args may be NULL. */
PMC_API pmc_status pmc_session_chgfrom(pmc_session *s, pmc_str from,
                                       const pmc_str *args);
/* Append to the replacement body (call repeatedly for large bodies). */
PMC_API pmc_status pmc_session_replacebody(pmc_session *s, const void *p,
                                           size_t n);
PMC_API pmc_status pmc_session_quarantine(pmc_session *s, pmc_str reason);
/* Tell the MTA to keep waiting: only while the MTA waits for this event's
 * reply (inside a handler or while pending, never for a no-reply event).
 * The 'p' packet goes to the output at once. */
PMC_API pmc_status pmc_session_progress(pmc_session *s);

/* ------------------------------------------------------------------------ */
/* Reply text (exposed for bindings and tests)                              */
/* ------------------------------------------------------------------------ */

/* Build the wire text of a reply into 'out' (appended, NUL-terminated as on
 * the wire).  Same rules as pmc_session_setmlreply; 'err' (may be NULL) gets
 * the reason on failure. */
PMC_API pmc_status pmc_reply_format(pmc_buf *out, const char *rcode,
                                    const char *xcode,
                                    const char *const *lines, size_t n,
                                    pmc_error *err);

/* ------------------------------------------------------------------------ */
/* Client: the MTA side                                                     */
/* ------------------------------------------------------------------------ */
/*
 * A client plays the MTA against one filter connection: it encodes commands
 * the way Postfix or Sendmail does, waits for the replies a filter owes, and
 * collects the modifications it asks for.  It is built for tests, tools and
 * benchmarks; it does no SMTP.  One client object belongs to one thread at a
 * time.
 *
 * Like an MTA, the client keeps state between calls:
 *  - events the filter asked not to get (NO* bits), events its protocol
 *    version lacks (UNKNOWN before v3, DATA before v4), and events skipped
 *    after a SKIP reply are not sent; the call returns PMC_OK, r->code 0,
 *    r->sent 0 and r->unsent says why;
 *  - events the filter asked not to answer (NR_* bits) are sent and not
 *    waited for; r->code 0, r->sent 1, r->awaited 0;
 *  - a verdict that ends the message (ACCEPT, REJECT, TEMPFAIL, DISCARD or
 *    'y' to MAIL, DATA, a header, EOH or a body chunk; ACCEPT or DISCARD to
 *    RCPT) makes the client send nothing more of that message: later events
 *    up to EOM return r->code 0.  A verdict that ends the connection
 *    (ACCEPT, REJECT, TEMPFAIL or 'y' to CONNECT; the same to HELO under
 *    Postfix, ACCEPT only under Sendmail; SHUTDOWN '4' under Postfix) does
 *    the same for every later event except QUIT.  r->ended tells which
 *    of the two a verdict did, and pmc_client_state whether the current
 *    message or the connection is over.  Set
 *    pmc_client_config.ignore_verdicts to send everything regardless;
 *  - ABORT goes out before MAIL (and before QUIT) when the personality's MTA
 *    would send one: Postfix after any earlier MAIL not yet aborted
 *    (including after EOM), Sendmail only while a message is in progress
 *    (MAIL sent, no EOM, ABORT or message-ending verdict yet).
 *
 * Failures: PMC_ERR_IO (the transport failed, or the filter closed the
 * stream while a reply was owed), PMC_ERR_TIMEOUT (the transport timed
 * out), PMC_ERR_BAD_REPLY (bad framing, an unknown or unexpected reply code,
 * a malformed payload, a modification outside EOM or without its negotiated
 * action, a negotiation reply with bits not offered).  These three leave the
 * connection out of step, as they do for an MTA: every later call except
 * pmc_client_free returns PMC_ERR_CLOSED.  PMC_ERR_ARGUMENT (bad arguments,
 * nothing sent), PMC_ERR_SEQUENCE (an event before pmc_client_negotiate, or
 * a second negotiation), PMC_ERR_CLOSED (after QUIT or a failure) and
 * PMC_ERR_NOMEM before anything was sent do not harm the client (NOMEM while
 * reading a reply does, like the three above).  pmc_client_error gives the
 * sentence; its 'offset' is the offset, in the bytes received from the
 * filter, of the packet at fault (or of the next byte, for transport
 * errors).
 */

typedef enum pmc_personality {
    PMC_MTA_POSTFIX = 0,  /* MACRO before every event (each header 'L' with
                             the EOH macros, each chunk 'B' with the EOM
                             macros, UNKNOWN 'U' empty), empty ones included;
                             ABORT after EOM; '[addr]' host when unknown;
                             SKIP skips further events of the same type;
                             QUARANTINE accepted at any stage; header packets
                             over 64 KiB sent as they are */
    PMC_MTA_SENDMAIL = 1  /* MACRO only when non-empty, only before C, H, M,
                             R, T, N and E; "IPv6:" prefix; ABORT only inside
                             a message; SKIP ends the body only */
} pmc_personality;

typedef struct pmc_client pmc_client;

/* Initialise with pmc_client_config_init, then change what you need.  The
 * client copies it. */
typedef struct pmc_client_config {
    pmc_personality personality;
    uint32_t version;  /* offered, 2..6; default 6 */
    uint32_t actions;  /* offered; default PMC_ACT_ALL */
    uint32_t protocol; /* offered; default PMC_P_ALL_V6 */
    size_t max_packet; /* largest reply packet accepted (length field);
                          0 = PMC_DEFAULT_MAX_PACKET */
    int ignore_verdicts; /* nonzero: send every event even after a verdict
                            that ended the message or connection (to test
                            a filter's recovery); default 0 */
} pmc_client_config;

/* Defaults for personality p.  Thread-safe. */
PMC_API void pmc_client_config_init(pmc_client_config *cfg,
                                    pmc_personality p);

/* One reply or modification from the filter, decoded.  Strings are views
 * into the client (see pmc_result) and are followed by a NUL byte.
 *   'h' a=name b=value        'i','m' index, a=name b=value
 *   'e' a=sender [b=args]     '2' a=recipient [b=args]
 *   '+','-' a=recipient       'b' a=body bytes of this packet
 *   'q' a=reason              'p' (progress; nothing)
 * Unused strings are empty (never a NULL ptr). */
typedef struct pmc_reply {
    uint8_t code;      /* the reply byte */
    uint32_t index;    /* 'i' and 'm' */
    pmc_str a;
    pmc_str b;
    int has_b;         /* 1 when b was present on the wire ('h','i','m'
                          always; 'e' and '2' when args were sent) */
} pmc_reply;

/* Why an event call sent nothing (pmc_result.unsent).  The reasons are
 * tested in this order, so the first that applies is given. */
typedef enum pmc_unsent {
    PMC_UNSENT_NONE = 0,   /* it was sent, or the call failed */
    PMC_UNSENT_SKIP,       /* the filter answered SKIP to the previous
                              event of this type and no event of another
                              type came between (a SKIP to a body chunk
                              also stops the rest of that body call) */
    PMC_UNSENT_CONN_ENDED, /* a verdict ended the connection */
    PMC_UNSENT_MSG_ENDED,  /* a verdict ended the current message */
    PMC_UNSENT_NEGOTIATED, /* the filter negotiated the event's NO* bit
                              (NOCONNECT, NOHELO, NOMAIL, NORCPT, NODATA,
                              NOHDRS, NOEOH, NOBODY, NOUNKNOWN) */
    PMC_UNSENT_VERSION,    /* the negotiated version lacks the event
                              (UNKNOWN before 3, DATA before 4) */
    PMC_UNSENT_EMPTY       /* pmc_client_body with n 0: nothing to send */
} pmc_unsent;

/* What a final reply meant for later events, as the personality's MTA sees
 * it (pmc_result.ended); see the section comment for which replies end
 * what.  EOM ends its message whatever the reply, so it gives
 * PMC_ENDED_NONE unless the reply ended the connection (SHUTDOWN). */
typedef enum pmc_ended {
    PMC_ENDED_NONE = 0,    /* no reply, or one that ends nothing */
    PMC_ENDED_MESSAGE,     /* later events of this message are not sent */
    PMC_ENDED_CONNECTION   /* no later event is sent until QUIT or QUIT_NC */
} pmc_ended;

/* The outcome of one call.  Every view in it (text, mods and their strings)
 * points into the client and stays valid until the next call on the client
 * that sends or receives (any event, negotiate, abort, quit, message) or
 * pmc_client_free.  Every call taking a pmc_result sets every member; the
 * members after 'event' tell what the client did with the command, and
 * mean something only when the call returned PMC_OK. */
typedef struct pmc_result {
    uint8_t code;        /* final reply byte ('O' for negotiation; 'c','a',
                            'r','t','d','y','s', '4'), or 0 when none was
                            sent or awaited */
    pmc_str text;        /* for 'y': the reply text without its NUL;
                            otherwise empty */
    size_t nmods;        /* modifications ('q' outside EOM under Postfix)
                            and PROGRESS 'p' packets, in arrival order */
    const pmc_reply *mods; /* NULL when nmods is 0 */
    pmc_event event;     /* the event the code answers; PMC_EV_COUNT when
                            code is 0 */
    int sent;            /* 1 when the command went to the filter (for a
                            body: at least one chunk; for a message: the
                            call that decided, as for the rest of r) */
    pmc_unsent unsent;   /* why not, when sent is 0; PMC_UNSENT_NONE when
                            sent is 1 */
    int awaited;         /* 1 when the client read the filter's final reply
                            (code is then nonzero); 0 when nothing was sent,
                            when the filter negotiated the event's NR_* bit,
                            when it drops the command (dropped), and for
                            ABORT, which has no reply */
    pmc_ended ended;     /* what code ended: set from the reply even with
                            ignore_verdicts (which only makes the client
                            send regardless) */
    int dropped;         /* 1 when, with ignore_verdicts, the command was
                            sent out of order (after a verdict that ended
                            the message) and the filter drops it unanswered,
                            as the session does (docs/state-table.md); the
                            client then does not wait for a reply */
} pmc_result;

/* Values a transport's send and recv return on failure. */
#define PMC_TRANSPORT_FAILED  (-1)
#define PMC_TRANSPORT_TIMEOUT (-2)

/* A transport the client writes to and reads from.  Members after ctx are
 * optional (NULL = none), so {send, recv, ctx} is a complete transport.  The
 * client calls them from the thread that calls the client. */
typedef struct pmc_transport {
    /* Send all n bytes; return 0, PMC_TRANSPORT_FAILED or
     * PMC_TRANSPORT_TIMEOUT. */
    int (*send)(void *ctx, const uint8_t *p, size_t n);
    /* Receive up to n (> 0) bytes; return the count, 0 at end of stream,
     * PMC_TRANSPORT_FAILED or PMC_TRANSPORT_TIMEOUT. */
    long (*recv)(void *ctx, uint8_t *p, size_t n);
    void *ctx;
    /* Called once when the client is done with the connection: by
     * pmc_client_quit after QUIT was sent, or by pmc_client_free if quit
     * was not called. */
    void (*close)(void *ctx);
    /* A sentence on the last failure or end of stream, or NULL; the client
     * copies it into its error at once. */
    const char *(*why)(void *ctx);
} pmc_transport;

/* A transport on one connected descriptor used both ways (a socket).  Each
 * read, and each wait for room to write, gives up after timeout_ms
 * milliseconds (<= 0: wait forever) with PMC_TRANSPORT_TIMEOUT; EINTR is
 * retried with the remaining time.  Writes use MSG_NOSIGNAL so a closed
 * peer gives an error, not SIGPIPE (plain write() on non-sockets).  The
 * descriptor stays the caller's: the transport never closes it (its close
 * member is NULL).
 * 'tr' is filled in; 'st' holds the transport's state and must outlive every
 * use of 'tr'.  Its fields are private. */
typedef struct pmc_fd_transport_state {
    int fd;
    int timeout_ms;
    char message[160]; /* the last failure, for why() */
} pmc_fd_transport_state;
PMC_API void pmc_transport_fd(pmc_transport *tr, pmc_fd_transport_state *st,
                              int fd, int timeout_ms);

/* A transport that drives a pmc_session in the same thread: send feeds the
 * bytes to the session (running its handlers); recv hands out the session's
 * output.  recv returns 0 (end of stream) when the session has no output and
 * is closed, and PMC_TRANSPORT_FAILED when it has no output and is still
 * open: the filter owes nothing (for instance a handler is PMC_PENDING, which
 * this transport cannot wait for), so waiting would never end.  send fails
 * when the session reports an error for the bytes; bytes sent after the
 * session closed are dropped.  close calls pmc_session_eof (running abort and
 * close handlers if they are still owed).  The session must outlive the
 * client; the caller frees it.  Not thread-safe beyond the session's own
 * rules. */
PMC_API void pmc_transport_session(pmc_transport *tr, pmc_session *s);

/* As pmc_transport_session, for filters whose handlers return PMC_PENDING
 * (deferred work: coroutines, a job queue).  Whenever the session is
 * pending after send has fed it, and whenever recv finds no output while
 * it is pending, the transport calls wait(s, arg) on the calling thread.
 * wait must answer the pending handler by calling pmc_session_resume (it
 * may first run the deferred work and use the session's actions, as a
 * handler may); it must not call feed, eof or free.  wait is called again
 * while it makes progress (the session left the pending state, or resumed
 * and took the next queued packet, which pended again).  A wait that
 * returns without resuming is not called again for that input: send still
 * succeeds (the bytes are queued in the session), recv then fails with
 * PMC_TRANSPORT_FAILED (the client reports PMC_ERR_IO, and why() says a
 * handler is still pending), and close (pmc_session_eof) ends the session
 * with the handler unanswered, running abort and close.  wait NULL behaves
 * as pmc_transport_session.  'arg' is passed through; it must outlive the
 * client.  The transport holds a small allocation that its close releases
 * (a client calls close exactly once, at quit or at free), so 'tr' must be
 * given to a client.  Returns PMC_OK, or PMC_ERR_NOMEM ('tr' unusable). */
PMC_API pmc_status pmc_transport_session_ex(pmc_transport *tr,
                                            pmc_session *s,
                                            void (*wait)(pmc_session *s,
                                                         void *arg),
                                            void *arg);

/* Create a client on a transport ('tr' is copied; its ctx must outlive the
 * client).  cfg NULL = pmc_client_config_init(cfg, PMC_MTA_POSTFIX).  NULL
 * when out of memory or when cfg->version is not 2..6.  Sends nothing.
 * Thread-safe. */
PMC_API pmc_client *pmc_client_new(const pmc_client_config *cfg,
                                   const pmc_transport *tr);
/* Close the transport if pmc_client_quit did not, and free everything the
 * client owns (views in results die).  Sends nothing.  NULL is fine. */
PMC_API void pmc_client_free(pmc_client *c);

/* The error behind the last failed call, or NULL if none failed yet.  Valid
 * until the next call on the client. */
PMC_API const pmc_error *pmc_client_error(const pmc_client *c);

/* Send OPTNEG with the configured offer and read the filter's 'O' reply
 * (PROGRESS before it is allowed).  PMC_ERR_BAD_REPLY if the reply is short,
 * its version is below 2 or above the offer, its actions or protocol hold a
 * bit that was not offered (Sendmail's rule; Postfix is laxer), or a
 * macro-list record (uint32 stage 0..6, then "names\0") is malformed.  On
 * PMC_OK r->code is 'O' and the results are available below.  r may be
 * NULL (here and in every call taking a pmc_result). */
PMC_API pmc_status pmc_client_negotiate(pmc_client *c, pmc_result *r);
/* What the filter answered (all 0 before a successful negotiation).  Any
 * pointer may be NULL. */
PMC_API void pmc_client_negotiated(const pmc_client *c, uint32_t *version,
                                   uint32_t *actions, uint32_t *protocol);
/* The macro list the filter asked for at a stage, or NULL if none.  Owned
 * by the client, valid until pmc_client_free.  The client does not filter
 * the macros it sends by these lists: callers that want to honour them read
 * them here. */
PMC_API const char *pmc_client_symlist(const pmc_client *c, int stage);

/* Set the macros sent before the events of one stage (PMC_STAGE_*), from
 * now on, replacing the earlier set of that stage.  pairs holds n name,
 * value pairs (2*n strings: name, value, name, value, ...); the client
 * copies them; n 0 clears the stage.  PMC_ERR_ARGUMENT for a bad stage, an
 * empty name, a NULL ptr with a nonzero len, or a NUL inside a name or value
 * (the wire cannot carry it).  Stage letters: CONNECT 'C', HELO 'H',
 * ENVFROM 'M', ENVRCPT 'R', DATA 'T', EOH 'N' (and 'L' before each header
 * under Postfix), EOM 'E' (and 'B' before each body chunk under Postfix). */
PMC_API pmc_status pmc_client_set_macros(pmc_client *c, int stage,
                                         const pmc_str *pairs, size_t n);

/* The events.  Each sends its MACRO packet (per personality) and command in
 * one transport send, then, if the filter owes a reply, reads up to the
 * final reply, collecting PROGRESS (and at EOM the modifications) into *r.
 * See the section comment above for what is not sent and for errors. */
/* host NULL: unknown host, sent as "[addr]" ("[IPv6:addr]" under
 * Sendmail for '6'; "[unknown]" without an address).  family 'U' (port and
 * addr not sent), 'L' (addr is the socket path), '4' or '6'; the Sendmail
 * personality adds "IPv6:" to IPv6 addresses that lack it.  addr NULL is
 * "".  PMC_ERR_ARGUMENT for another family. */
PMC_API pmc_status pmc_client_connect(pmc_client *c, const char *host,
                                      char family, uint16_t port,
                                      const char *addr, pmc_result *r);
PMC_API pmc_status pmc_client_helo(pmc_client *c, const char *helo,
                                   pmc_result *r);
/* argv[0] is the sender exactly as it goes on the wire ("<a@b>", "<>", or
 * Postfix's non-SMTP forms "a@b" and ""); the rest are ESMTP parameters;
 * argc >= 1; no string may hold a NUL (PMC_ERR_ARGUMENT). */
PMC_API pmc_status pmc_client_mail(pmc_client *c, const pmc_str *argv,
                                   size_t argc, pmc_result *r);
PMC_API pmc_status pmc_client_rcpt(pmc_client *c, const pmc_str *argv,
                                   size_t argc, pmc_result *r);
PMC_API pmc_status pmc_client_data(pmc_client *c, pmc_result *r);
/* name and value go out as given ("name\0value\0"): an MTA has already
 * removed the leading space unless HDR_LEADSPC was negotiated.  No size
 * cap, as with Postfix. */
PMC_API pmc_status pmc_client_header(pmc_client *c, pmc_str name,
                                     pmc_str value, pmc_result *r);
PMC_API pmc_status pmc_client_eoh(pmc_client *c, pmc_result *r);
/* Sends the body in chunks of at most PMC_CHUNK_MAX bytes, each waiting
 * for its reply unless NR_BODY; r gets the last reply.  After a SKIP ('s')
 * the remaining chunks, and later body calls of this message, are not sent.
 * n 0 sends nothing. */
PMC_API pmc_status pmc_client_body(pmc_client *c, const void *p, size_t n,
                                   pmc_result *r);
/* End of message: reads modification packets (h i m e + 2 - b q, each
 * needing its negotiated action; under Postfix 'b' packets must be one
 * contiguous run) and PROGRESS, then the final reply. */
PMC_API pmc_status pmc_client_eom(pmc_client *c, pmc_result *r);
/* Send ABORT now (unless the connection was ended by a verdict). */
PMC_API pmc_status pmc_client_abort(pmc_client *c);
/* As pmc_client_abort, telling in r whether ABORT went out: r->sent 1, or
 * r->sent 0 with r->unsent PMC_UNSENT_CONN_ENDED.  ABORT has no reply, so
 * r->code and r->awaited are 0.  r NULL is the same as pmc_client_abort. */
PMC_API pmc_status pmc_client_abort_ex(pmc_client *c, pmc_result *r);
PMC_API pmc_status pmc_client_unknown(pmc_client *c, const char *line,
                                      pmc_result *r);
/* Send ABORT if the personality would, then QUIT, then close the transport
 * (which ends an in-process session).  Allowed before negotiation.  Later
 * calls return PMC_ERR_CLOSED; after a failure quit sends nothing and
 * returns PMC_ERR_CLOSED too (pmc_client_free still closes the transport). */
PMC_API pmc_status pmc_client_quit(pmc_client *c);
/* As quit but with QUIT_NC: the transport stays open and the client expects
 * a new CONNECT; the negotiation is kept. */
PMC_API pmc_status pmc_client_quit_nc(pmc_client *c);

/* The client's MTA-side state: what it will do with the next events.  A
 * snapshot of plain values; the caller owns it. */
typedef struct pmc_client_state_info {
    int message_ended;    /* a verdict ended the current message (or, after
                             EOM, the last one): its events up to EOM are
                             not sent; cleared by MAIL, ABORT and QUIT_NC */
    int connection_ended; /* a verdict ended the connection: no event and
                             no ABORT is sent until QUIT_NC starts a new
                             one, or QUIT */
    int abort_owed;       /* the next MAIL, QUIT or QUIT_NC goes after an
                             ABORT, by the personality's rule (above) */
} pmc_client_state_info;

/* Fill *out with the client's state.  The two *_ended are 0 with
 * ignore_verdicts (the client then sends everything; r->ended still tells
 * what each verdict meant).  Everything is 0 before negotiation, and after
 * QUIT or a failure (nothing more is sent; later calls return
 * PMC_ERR_CLOSED).  Reads only: results and pmc_client_error stay as they
 * are.  The client's thread rule applies (one thread at a time). */
PMC_API void pmc_client_state(const pmc_client *c,
                              pmc_client_state_info *out);

/* Run one whole message as an MTA would: MAIL from, RCPT for each of
 * nrcpts recipients (argv[0] only), DATA, each header, EOH, the body and
 * EOM.  'msg' is an RFC 5322 message (CRLF or LF line ends): the header
 * section is split into fields, continuation lines joined with a bare LF and
 * one space after the colon removed (kept with HDR_LEADSPC), and the body's
 * line ends are sent as CRLF.  Stops early when a verdict ends the message
 * or every recipient was refused.  r gets the result that decided (r->event
 * tells which; EOM's, with its modifications, when the message got there).
 * nrcpts must be at least 1 (PMC_ERR_ARGUMENT).  Errors as for the events. */
PMC_API pmc_status pmc_client_message(pmc_client *c, pmc_str from,
                                      const pmc_str *rcpts, size_t nrcpts,
                                      const void *msg, size_t len,
                                      pmc_result *r);

/* ------------------------------------------------------------------------ */
/* Server: sockets, event loop, process and thread models                   */
/* ------------------------------------------------------------------------ */
/*
 * The server runs sessions on real connections.  Linux only (epoll,
 * accept4, eventfd).  It never installs a signal handler and never calls
 * signal() or sigaction(): writes use MSG_NOSIGNAL so a closed peer gives
 * EPIPE instead of SIGPIPE, and child processes are reaped with waitpid on
 * their own pids only (never waitpid(-1)), their end being noticed on a
 * socketpair each (which also carries drain requests and counters), so a
 * host's own children and SIGCHLD handling are left alone.  Every
 * descriptor it opens is close-on-exec.  Stop and reload reach it through
 * pmc_server_stop / pmc_server_reload (async-signal-safe, so a host's own
 * signal handler may call them) or through the tick hook and wake_fd below
 * (for bindings whose signal handlers must run on the interpreter's thread).
 *
 * Threads.  pmc_server_run blocks the calling thread (the "loop thread").
 * Where handlers run depends on the model:
 *   PMC_MODEL_LOOP     on the loop thread, one connection at a time; a
 *                      handler that blocks stalls every connection.
 *   PMC_MODEL_THREADS  on a bounded pool of worker threads.  One connection
 *                      is never processed by two workers at once and its
 *                      events stay in order; different connections run in
 *                      parallel, so handlers and the app data they share
 *                      must be thread-safe.  A handler that blocks holds one
 *                      worker: when every worker is blocked, new input waits.
 *                      Bindings with a global lock (Python's GIL, a Perl
 *                      interpreter) must take it inside each handler and
 *                      hook, and must not hold it while calling
 *                      pmc_server_run.
 *   PMC_MODEL_PREFORK  in worker processes forked by pmc_server_run, each
 *                      running its own event loop (as PMC_MODEL_LOOP).
 *   PMC_MODEL_FORK     in a process forked for each connection.
 * In the forked models the child never returns from pmc_server_run: it
 * leaves with _exit() (status 0, or 1 when child_init failed), so a host
 * language's exit handlers do not run twice.  conn_open, the session
 * handlers and conn_close of one connection never run on two threads at
 * once; in THREADS successive steps of a connection may run on different
 * pool threads, each step seeing everything the previous one wrote (the
 * hand-off goes through a mutex), so per-connection data needs no lock.
 * The fn of pmc_server_resume runs under the same rule, as one more step
 * of its connection.
 * In the other models they all run on one thread.  tick and reload run on
 * the loop thread, possibly while handlers run on pool threads; log may be
 * called from any thread at once and must be thread-safe.  THREADS with
 * pool_lead_us runs the loop itself on the pool threads, and tick and
 * reload on the calling thread (see there).
 */

/* Socket families of a parsed spec. */
enum pmc_sock_family {
    PMC_SOCK_UNIX = 1,  /* "unix:/path" or "local:/path" */
    PMC_SOCK_INET = 2,  /* "inet:port", "inet:port@host", "inet:host:port",
                           "inet:port@[a.b.c.d]", "inet:[a.b.c.d]:port" */
    PMC_SOCK_INET6 = 3  /* "inet6:port", "inet6:port@[addr]",
                           "inet6:port@addr", "inet:[addr]:port" */
};

/* A parsed socket spec. */
typedef struct pmc_sockspec {
    int family;      /* PMC_SOCK_* */
    char path[108];  /* PMC_SOCK_UNIX: absolute path */
    char host[256];  /* PMC_SOCK_INET*: host or address without brackets;
                        "" = every address of the family */
    uint16_t port;   /* PMC_SOCK_INET*: 0 asks the kernel for a free port */
} pmc_sockspec;

/* Parse a socket spec without touching the system (no name lookup).
 * Accepted forms: unix:/path, local:/path (the path must be absolute and
 * fit sun_path), inet:port, inet:port@host, inet:host:port (Postfix),
 * inet6:port, inet6:port@[addr], inet6:port@addr, inet:[addr]:port.  In
 * the inet: forms a bracketed dotted quad (inet:port@[192.0.2.1], as
 * libmilter configurations write it) is IPv4, any other bracketed address
 * IPv6.  Ports
 * are decimal, 0..65535.  A host made only of digits and dots must be a
 * valid dotted quad; an inet6 host must be a valid IPv6 address; other
 * inet hosts are names, resolved by pmc_listen.  Returns PMC_OK, or
 * PMC_ERR_ARGUMENT with err (may be NULL) naming the spec and the fault
 * ("inet:99999@127.0.0.1: port out of range").  Thread-safe. */
PMC_API pmc_status pmc_sockspec_parse(const char *spec, pmc_sockspec *out,
                                      pmc_error *err);

/* Create a listening socket for a spec: SO_REUSEADDR (TCP), close-on-exec,
 * non-blocking.  backlog <= 0 means SOMAXCONN.  For unix sockets, mode
 * (e.g. 0660; 0 = leave what the umask gives) is applied to the path after
 * bind and before listen, so no peer can connect under other permissions;
 * an existing path is handled safely: a socket nobody answers on (stale) is
 * removed and replaced, a socket with a live server (also one too busy to
 * accept, its backlog full) fails with EADDRINUSE and a message saying
 * another milter listens there, anything else fails with EEXIST.  Names are resolved with getaddrinfo
 * (which may block).  Returns the descriptor, owned by the caller, or -1
 * with err (may be NULL) holding PMC_ERR_ARGUMENT (bad spec) or PMC_ERR_IO
 * and a message naming the spec, the step and the system error
 * ("unix:/nonexist/x: bind: No such file or directory"), and errno set to
 * the system error (EINVAL for a bad spec).  Thread-safe. */
PMC_API int pmc_listen(const char *spec, int mode, int backlog,
                       pmc_error *err);

/* Log levels, syslog's numbers. */
#define PMC_LOG_ERR 3
#define PMC_LOG_WARNING 4
#define PMC_LOG_NOTICE 5
#define PMC_LOG_INFO 6
#define PMC_LOG_DEBUG 7

typedef enum pmc_server_model {
    PMC_MODEL_LOOP = 0,
    PMC_MODEL_THREADS = 1,
    PMC_MODEL_PREFORK = 2,
    PMC_MODEL_FORK = 3
} pmc_server_model;

/* The connection being opened, for conn_open.  Valid during the call. */
typedef struct pmc_conn_info {
    uint64_t id;       /* unique within the server (and across its worker
                          processes); also given to log */
    int fd;            /* the connected socket (the server's; do not close) */
    int family;        /* AF_UNIX, AF_INET or AF_INET6; 0 if unknown */
    char peer[112];    /* peer address text ("127.0.0.1", "::1", a unix
                          path or ""), NUL-terminated */
    uint16_t peer_port;/* host byte order; 0 for unix sockets */
} pmc_conn_info;

/* Server configuration.  Initialise with pmc_server_config_init, then set
 * at least 'handlers'.  pmc_server_new and pmc_serve_fd copy it; 'handlers',
 * 'app' and the session.symlist strings are not copied and must outlive the
 * server (or the pmc_serve_fd call). */
typedef struct pmc_server_config {
    pmc_config session;          /* copied into each session */
    const pmc_handlers *handlers;/* required */
    void *app;                   /* passed to every hook */

    /* Called once per connection before its first handler, on the thread
     * that will run its handlers.  The result is the 'ud' argument of every
     * session handler of that connection (NULL is fine).  Under the server
     * the handlers' ud is this value; pmc_session_userdata and
     * pmc_session_set_userdata belong to the server and must not be used.
     * A handler may return PMC_PENDING and be answered later through
     * pmc_server_resume (ci->id, or pmc_server_conn_id, names the
     * connection). */
    void *(*conn_open)(void *app, const pmc_conn_info *ci);
    /* Called exactly once per connection whose conn_open ran, after the
     * session ended (its close handler, if any, has run), also for
     * connections that never negotiated, timed out or failed.  The socket
     * is already closed. */
    void (*conn_close)(void *app, void *conn_ud);
    /* Log sink; NULL = silent.  queue_id is macro 'i' when known, else
     * NULL.  Strings are valid during the call.  May be called from any
     * thread (and from worker processes), concurrently. */
    void (*log)(void *app, int level, uint64_t conn_id, const char *queue_id,
                const char *msg);
    int log_level;          /* lines above this level are not produced;
                               default PMC_LOG_INFO */

    /* Timeouts in ms; <= 0 disables.  read_timeout_ms applies while a
     * packet is partly received, while the MTA owes the rest of a message
     * (between MAIL and the end of the message) and while replies wait for
     * room to be written; default 300000 (Postfix's content timeout).
     * idle_timeout_ms applies between messages; default 7210000 (libmilter's
     * 7210 s).  Neither runs while a handler runs.  While a handler is
     * pending (PMC_PENDING) the MTA owes nothing, so the read timeout does
     * not apply: the connection is under the idle timeout, a safety net
     * for an answer that never comes (the MTA usually gives up first and
     * closes, which ends the session at once). */
    int read_timeout_ms;
    int idle_timeout_ms;
    /* Most concurrent connections (per worker process for PREFORK, see
     * max_conn_per_worker; child processes for FORK); at the cap the server
     * stops accepting until one closes (connections wait in the backlog).
     * 0 = no cap.  Default 0. */
    unsigned max_connections;
    int backlog;            /* for pmc_server_listen; <= 0 = SOMAXCONN */
    /* After accept fails with EMFILE, ENFILE, ENOBUFS or ENOMEM, stop
     * accepting for this long (ms) and log it, instead of spinning.  Existing
     * connections are served meanwhile.  Default 200. */
    int accept_backoff_ms;

    pmc_server_model model; /* default PMC_MODEL_LOOP */
    unsigned threads;       /* THREADS: workers; 0 = 2 x online CPUs,
                               at least 4, at most 64 */
    /* THREADS: after a step, a worker with no other job queued keeps a
     * connection that waits for the MTA's next command for up to this
     * long (microseconds) and reads it itself, saving the round trip
     * through the loop thread.  For bindings whose callbacks serialize
     * anyway (a GIL).  Default 0: every step goes back to the loop. */
    unsigned pool_linger_us;
    /* THREADS, lead mode: when nonzero, the event loop runs on a pool
     * thread (the leader), which runs each step itself: no hand-off
     * between threads per command, as in LOOP.  Another pool thread
     * watches it, and when a step has run this long (microseconds) it
     * takes the event loop over, so a handler that blocks holds only its
     * own connection; the blocked thread rejoins the pool when its
     * handler returns.  The pool has threads + 1 threads: up to `threads`
     * handlers may block at once while the loop still runs (one more, and
     * everything waits until one returns).  Handlers, conn_open/close and
     * log run on pool threads; tick and reload run on the thread that
     * called pmc_server_run, which only waits for them, so they run on
     * time whatever the handlers do (they may run while a handler does).
     * pool_linger_us is unused in this mode.  For bindings whose handlers
     * serialize on a lock (a GIL), where the classic pool's hand-offs cost
     * more than the handlers.  Default 0: the classic pool. */
    unsigned pool_lead_us;
    unsigned workers;       /* PREFORK: worker processes; 0 = 4 */
    /* PREFORK: concurrent connections per worker; 1 reproduces
     * Sendmail::PMilter's prefork dispatcher.  0 = max_connections. */
    unsigned max_conn_per_worker;
    /* PREFORK: a worker that has accepted this many connections stops
     * accepting, finishes them and exits, and is replaced.  0 = never. */
    unsigned max_requests_per_worker;
    /* PREFORK and FORK: run in each child process after fork, before it
     * accepts or serves; nonzero makes the child exit (status 1; a PREFORK
     * master then waits 1 s before replacing it).  child_exit runs in the
     * child after its last connection closed, before _exit.  NULL = none. */
    int (*child_init)(void *app);
    void (*child_exit)(void *app);

    /* Drain deadline (ms) used when stop comes from tick, or from
     * pmc_server_stop with drain_ms < 0.  Default 30000. */
    int drain_timeout_ms;
    /* Called on the loop thread (the master in PREFORK and FORK) every
     * tick_interval_ms and whenever wake_fd becomes readable; nonzero asks
     * for a graceful stop with drain_timeout_ms.  NULL = none.
     * tick_interval_ms <= 0 = only on wake_fd; default 1000. */
    int (*tick)(void *app);
    int tick_interval_ms;
    /* A descriptor of the host's (e.g. the pipe of Python's
     * signal.set_wakeup_fd); -1 = none (default).  It must be non-blocking:
     * when it is readable the server reads and discards what is there, then
     * calls tick.  Not closed by the server. */
    int wake_fd;
    /* Called on the loop thread (the master in PREFORK) when a reload is
     * requested, before PREFORK replaces its workers.  NULL = none. */
    void (*reload)(void *app);
    /* PREFORK and FORK: called in the parent just before each fork() and
     * just after it (after_fork_parent also when fork failed), on the loop
     * thread, always in pairs and never nested.  The child gets neither:
     * child_init is the first hook it runs.  For hosts that must prepare
     * for fork (Python: PyOS_BeforeFork, PyOS_AfterFork_Parent, and
     * PyOS_AfterFork_Child in child_init).  NULL = none. */
    void (*before_fork)(void *app);
    void (*after_fork_parent)(void *app);
} pmc_server_config;

/* Defaults as documented above; cfg->session gets pmc_config_init.
 * Thread-safe. */
PMC_API void pmc_server_config_init(pmc_server_config *cfg);

/* Counters.  Replies are counted by reply code byte; callback latency is
 * per event (PMC_EV_*), measured around each handler call, in ns.  A
 * connection's counters reach the server at the end of each message, at
 * least every 32 round trips, and when it closes.  In
 * PREFORK workers send their counters to the master after each batch of
 * accepts and each closed connection, so the master's snapshot (including
 * conn_active) lags by at most one event per worker; FORK children send
 * theirs when they end. */
typedef struct pmc_server_stats {
    uint64_t conn_accepted;
    uint64_t conn_active;
    uint64_t conn_refused;     /* accepted and closed at once: out of
                                  memory, fork failed */
    uint64_t conn_read_timeouts;
    uint64_t conn_idle_timeouts;
    uint64_t accept_errors;    /* failed accept() calls */
    uint64_t accept_backoffs;  /* times accepting was paused (EMFILE...) */
    uint64_t messages;         /* EOM answered */
    uint64_t protocol_errors;  /* sessions ended by bad input */
    uint64_t callback_errors;  /* invalid verdicts from handlers */
    uint64_t io_errors;        /* reads or writes that failed */
    uint64_t workers_spawned;  /* PREFORK workers and FORK children */
    uint64_t workers_exited;
    uint64_t replies[128];
    uint64_t cb_count[PMC_EV_COUNT];
    uint64_t cb_ns_sum[PMC_EV_COUNT];
    uint64_t cb_ns_max[PMC_EV_COUNT];
} pmc_server_stats;

typedef struct pmc_server pmc_server;

/* Create a server (no listener yet).  NULL with err (may be NULL) set on a
 * bad config (PMC_ERR_ARGUMENT: no handlers, unknown model) or failure
 * (PMC_ERR_NOMEM, PMC_ERR_IO).  Thread-safe. */
PMC_API pmc_server *pmc_server_new(const pmc_server_config *cfg,
                                   pmc_error *err);
/* Listen on a spec (see pmc_listen; backlog from the config).  Several
 * listeners are allowed.  The server owns the socket: when it stops (or is
 * freed) it closes it and removes a unix socket path it created, if the
 * path still names that socket.  Returns the descriptor (for getsockname, e.g.
 * to learn a port given as 0) or -1 with err set.  Not while running. */
PMC_API int pmc_server_listen(pmc_server *srv, const char *spec, int mode,
                              pmc_error *err);
/* Adopt a listening socket (inherited from a parent, systemd, ...).  The
 * server takes ownership: it makes it non-blocking and close-on-exec and
 * closes it when it stops.  PMC_ERR_ARGUMENT if fd is not a listening
 * socket.  Not while running. */
PMC_API pmc_status pmc_server_add_fd(pmc_server *srv, int fd, pmc_error *err);
/* Serve until stopped.  Returns PMC_OK after a stop (all connections
 * closed, worker processes reaped, threads joined), or an error with err
 * set (PMC_ERR_ARGUMENT: no listener; PMC_ERR_SEQUENCE: run twice;
 * PMC_ERR_NOMEM, PMC_ERR_IO: a resource failed).  Call it once, from one
 * thread.  Forked children never return (see above). */
PMC_API pmc_status pmc_server_run(pmc_server *srv, pmc_error *err);
/* Ask for a graceful stop: stop accepting (listeners are closed), close
 * connections that are between messages at once, let those inside a
 * message finish it (closed once its EOM reply is written or it aborts) for
 * at most drain_ms (< 0 = drain_timeout_ms; 0 = close everything now), then
 * end what is left (abort and close handlers run) and return from
 * pmc_server_run.  A handler already running is never interrupted: run
 * returns after it.  PREFORK and FORK forward the stop to every child
 * process and kill (SIGKILL) one still alive 2 s after the deadline.  Before run, run
 * returns at once.  Async-signal-safe and thread-safe; the first stop's
 * deadline wins.  srv must stay valid (do not free it concurrently). */
PMC_API void pmc_server_stop(pmc_server *srv, int drain_ms);
/* Ask for a reload: the reload hook runs on the loop thread; in PREFORK
 * new workers are then started and the old ones drain (they stop
 * accepting, finish their connections and exit).  In the other models only
 * the hook runs.  Async-signal-safe and thread-safe. */
PMC_API void pmc_server_reload(pmc_server *srv);
/* A consistent snapshot of the counters.  Thread-safe (any thread, also
 * while running; not from a signal handler). */
PMC_API void pmc_server_stats_get(pmc_server *srv, pmc_server_stats *out);
/* Answer a pending handler later, from any thread.  A handler of
 * connection conn_id returned PMC_PENDING; when the work it started is
 * done, call this.  The request is queued and the server woken; fn(s, arg)
 * then runs on the thread that owns the connection (the loop thread in
 * LOOP and PREFORK workers, a pool thread in THREADS, the child in FORK),
 * never at the same time as a handler of that connection.  fn may use the
 * session's actions as the pending handler could (addheader while EOM is
 * pending, setreply, progress, getsymval) and returns the verdict given to
 * pmc_session_resume: the pending event is answered, queued input goes on
 * (running more handlers), and the output is sent.  fn returning
 * PMC_PENDING keeps the handler pending: a way to run actions on the
 * connection's thread (progress, say) before the answer.  If the session is
 * not pending when fn runs, its return value is ignored.
 *
 * fn is called exactly once per successful call: with s == NULL when the
 * connection is gone (closed, timed out, ended by a stop; also when the
 * server is not running any more, then on the calling thread at once), so
 * arg can be freed; s is valid only during fn.  Requests for one
 * connection run in the order they were made.  Returns PMC_OK, or
 * PMC_ERR_NOMEM (nothing queued, fn not called; arg stays the caller's).
 * Thread-safe; not async-signal-safe.  srv must stay valid until
 * pmc_server_free, which answers requests still queued with s == NULL.
 * In the forked models a request only reaches connections of the process
 * that makes it.  pmc_serve_fd has no server object: its handlers must not
 * return PMC_PENDING (such a connection waits for its timeouts).
 *
 * Drain: a pending connection is kept open until it is answered (and then
 * until its message ends, as any other), at most until the drain deadline;
 * at the deadline it is ended (abort and close run) and the late fn gets
 * s == NULL. */
PMC_API pmc_status pmc_server_resume(pmc_server *srv, uint64_t conn_id,
                                     int (*fn)(pmc_session *s, void *arg),
                                     void *arg);
/* The id of the server connection a session belongs to (the
 * pmc_conn_info.id given to conn_open), for pmc_server_resume.  Only for
 * sessions run by a pmc_server or pmc_serve_fd, from their handlers or fn;
 * any other session gives an undefined result. */
PMC_API uint64_t pmc_server_conn_id(const pmc_session *s);
/* Close listeners, remove unix socket paths the server created, free.  Not
 * while pmc_server_run runs.  NULL is fine. */
PMC_API void pmc_server_free(pmc_server *srv);

/* Serve one connected socket to completion on the calling thread, with
 * blocking waits (poll) and the config's timeouts; the fd's blocking mode
 * is left as it is.  For Net::Server-style hosts and custom dispatchers.
 * conn_open and conn_close run as in the server (conn_id is passed in
 * pmc_conn_info and to log); the model, listener, tick and process fields
 * are ignored.  The fd is NOT closed: it stays the caller's.  If stats is
 * not NULL the connection's counters are added to it (not thread-safe:
 * one stats object per thread).  Returns PMC_OK when the MTA ended the
 * connection (QUIT or end of stream between packets), PMC_ERR_TIMEOUT,
 * PMC_ERR_IO (read or write failed), PMC_ERR_ARGUMENT (no handlers, bad
 * fd), PMC_ERR_NOMEM, or the protocol error that ended the session; err
 * (may be NULL) gets the sentence.  Thread-safe for different fds. */
PMC_API pmc_status pmc_serve_fd(const pmc_server_config *cfg, int fd,
                                uint64_t conn_id, pmc_server_stats *stats,
                                pmc_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PMCORE_H */
