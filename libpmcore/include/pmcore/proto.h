/*
 * pmcore/proto.h - the filter side of the protocol, without I/O: the wire
 * constants, the packet codec and the session (negotiation, macros, state,
 * actions, reply text).  Part of pmcore.h; include pmcore.h, not this file.
 */
#ifndef PMCORE_PROTO_H
#define PMCORE_PROTO_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* Whether a handler of event ev may answer with v: 1 or 0.  The answers
 * are CONTINUE, REJECT, DISCARD, ACCEPT, TEMPFAIL, NOREPLY and SKIP for
 * every event, and ALL_OPTS for PMC_EV_NEGOTIATE only.  PMC_PENDING is not
 * an answer but a request to answer later: a session takes it from any
 * handler but negotiate's, and a binding accepts it only where its API
 * offers it.  What happens to an invalid one: the session answers the
 * event as PMC_TEMPFAIL and counts it in callback_errors (a negotiate
 * handler's ends the session, as any answer but CONTINUE and ALL_OPTS
 * does); a binding calls this first to tell its user which value was
 * wrong, then answers with its own failure policy.  Any thread. */
PMC_API int pmc_verdict_valid(pmc_event ev, int v);

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

/* The user data given to pmc_session_new. */
PMC_API void *pmc_session_userdata(const pmc_session *s);

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
/* Copy the session's counters into *out, as pmc_server_stats_get does for
 * the server's.  Same thread rules as the session. */
PMC_API void pmc_session_stats_get(const pmc_session *s,
                                   pmc_session_stats *out);

/* -- Macros -------------------------------------------------------------- */

/* A macro's name as names are compared: without its braces.  The MTA sends
 * one-letter names bare and longer ones braced ("i", "{daemon_name}"), and
 * filters, lists and MTAs write either form, so a name and its braced form
 * ("x" and "{x}") are the same macro.  Returns a view into 'name' (an empty
 * one for a NULL ptr).  Any thread. */
PMC_API pmc_str pmc_macro_name(pmc_str name);

/* Look a macro up, searching the stages from the latest (EOM) back to
 * CONNECT; names are compared as pmc_macro_name gives them.  Returns 1 and sets *value (a
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
 * to 3 digits.  text: may be NULL; must not hold CR or LF.  Every '%' goes
 * out doubled, since Sendmail reads the text as a format (Postfix
 * undoubles): a lone '%' is doubled here, and a "%%" stands for one '%'
 * its writer doubled already, as libmilter's users were told to, so it
 * goes out as it is ("100% sure" and "100%% sure" both send "100%% sure").
 * Each wire line, doubling counted, must fit PMC_REPLY_LINE_MAX.  The text
 * is used once: by the verdict of the handler that set it, if that
 * verdict's class matches rcode (REJECT with 5xx, TEMPFAIL with 4xx), and
 * is dropped otherwise. */
PMC_API pmc_status pmc_session_setreply(pmc_session *s, const char *rcode,
                                        const char *xcode, const char *text);
/* Multi-line form: n lines (1..32), each as for setreply's text.  Sent as
 * "rcode-xcode line\r\n" ... "rcode xcode last".  With two lines or more
 * and xcode NULL, every line carries "4.0.0" or "5.0.0" (rcode's class), as
 * libmilter's smfi_setmlreply sent them. */
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

#ifdef __cplusplus
}
#endif
#endif /* PMCORE_PROTO_H */
