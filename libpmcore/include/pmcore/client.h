/*
 * pmcore/client.h - the MTA side: a client that speaks to one filter, and
 * its transports.  Part of pmcore.h; include pmcore.h, not this file.
 */
#ifndef PMCORE_CLIENT_H
#define PMCORE_CLIENT_H

#include "proto.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* The lines of a REPLYCODE text (the text of a 'y' reply, as in
 * pmc_result), the inverse of the filter's setreply and setmlreply: one
 * line a call, *cursor starting at 0.  Returns 1 with rcode (the line's
 * first three bytes), xcode (the enhanced code after the separator, three
 * dot-separated runs of digits; empty when the line has none) and text
 * (the rest, '%' still doubled as on the wire) set as views into 'reply';
 * 0 after the last line.  Any thread. */
PMC_API int pmc_reply_next_line(pmc_str reply, size_t *cursor, pmc_str *rcode,
                                pmc_str *xcode, pmc_str *text);

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
 * open with nothing to answer what it owes.  send fails when the session
 * reports an error for the bytes; bytes sent after the session closed are
 * dropped.  close calls pmc_session_eof (running abort and close handlers if
 * they are still owed).  The session must outlive the client; the caller
 * frees it.  Not thread-safe beyond the session's own rules.
 *
 * wait is for filters whose handlers return PMC_PENDING (deferred work:
 * coroutines, a job queue); NULL when none does.  Whenever the session is
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
 * with the handler unanswered, running abort and close.  Without wait, a
 * pending handler is never answered: recv fails as above.  'arg' is passed
 * through; it must outlive the client.
 *
 * With wait, the transport holds a small allocation that its close releases
 * (a client calls close exactly once, at quit or at free), so 'tr' must be
 * given to a client.  Returns PMC_OK, or PMC_ERR_NOMEM ('tr' unusable);
 * with wait NULL it allocates nothing and always returns PMC_OK. */
PMC_API pmc_status pmc_transport_session(pmc_transport *tr, pmc_session *s,
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
/* Send ABORT now (unless the connection was ended by a verdict).  r, when
 * not NULL, tells whether ABORT went out: r->sent 1, or r->sent 0 with
 * r->unsent PMC_UNSENT_CONN_ENDED.  ABORT has no reply, so r->code and
 * r->awaited are 0. */
PMC_API pmc_status pmc_client_abort(pmc_client *c, pmc_result *r);
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

/* ------------------------------------------------------------------------ */
/* Splitting a message into header fields and a body                        */
/* ------------------------------------------------------------------------ */
/*
 * The one place that turns message text into what an MTA puts in HEADER
 * and BODY packets; pmc_client_message and pmilter-test both use it.  The
 * rules, and the MTA behaviour behind each (docs/message-splitting.md):
 *  - LF or CR LF ends a line; a bare CR is an ordinary byte;
 *  - a first line that starts with "From " and is not a field (the mbox
 *    separator) is dropped;
 *  - a field is a name of printable ASCII (33..126, no ':'), optional
 *    blanks, then ':'; the name excludes those blanks.  Any other line
 *    (empty name, a blank or 8-bit byte or NUL inside the name, no colon)
 *    ends the header section and is the first line of the body;
 *  - lines that start with a space or tab continue the field before them,
 *    joined with a bare LF (the CR of their CR LF dropped);
 *  - without HDR_LEADSPC one space after the colon is removed; with it the
 *    value is everything after the colon;
 *  - a value is cut at its first NUL, which the packet cannot carry;
 *  - an empty line ends the header section and belongs to neither part;
 *  - the body gets CR LF for every LF not preceded by CR, and a last line
 *    without a line end gets one; no line is too long.
 *
 * Usage:
 *
 *     pmc_msg_split sp;
 *     pmc_msg_split_init(&sp, text, len, leadspc);
 *     while ((st = pmc_msg_split_next(&sp, &name, &value, &more)) == PMC_OK
 *            && more)
 *         ...send the field...;
 *     st = pmc_msg_split_body(&sp, &body);   // appends to a pmc_buf
 *     pmc_msg_split_free(&sp);
 *
 * The text is borrowed: it must stay valid and unchanged until the last
 * call.  The fields are private; they are public only so the struct can
 * live on the stack.  One thread at a time per splitter.
 */
typedef struct pmc_msg_split {
    const char *msg;
    size_t len;
    size_t pos;      /* start of the next unread line */
    size_t body_at;  /* where the body starts, once in_body */
    int in_body;
    int leadspc;
    pmc_buf value;   /* the current field's value */
} pmc_msg_split;

/* Start splitting len bytes at msg (msg may be NULL when len is 0).
 * leadspc nonzero: HDR_LEADSPC was negotiated, so values keep the space
 * after the colon.  Allocates nothing. */
PMC_API void pmc_msg_split_init(pmc_msg_split *sp, const void *msg,
                                size_t len, int leadspc);
/* The next header field: PMC_OK with *more 1 and *name, *value set, or
 * PMC_OK with *more 0 once the header section has ended (and on every call
 * after that).  *name points into the text; *value into the splitter, valid
 * until the next call on it; neither holds a NUL.  PMC_ERR_NOMEM (*more 0)
 * when a folded value cannot be joined; the splitter may be freed then. */
PMC_API pmc_status pmc_msg_split_next(pmc_msg_split *sp, pmc_str *name,
                                      pmc_str *value, int *more);
/* Append the body, with CR LF line ends, to *out (which the caller owns);
 * header fields not yet read are passed over.  PMC_ERR_NOMEM leaves *out
 * with part of the body.  May be called again: it appends the same bytes. */
PMC_API pmc_status pmc_msg_split_body(pmc_msg_split *sp, pmc_buf *out);
/* The body as the text has it, line ends unchanged: *body views the text
 * from where the body starts to its end (header fields not yet read are
 * passed over).  For hosts that pass the body on themselves, such as a
 * test harness that feeds it in chunks.  PMC_ERR_NOMEM as for _next. */
PMC_API pmc_status pmc_msg_split_rest(pmc_msg_split *sp, pmc_str *body);
/* Release what the splitter holds (views from it die).  Zeroed or freed
 * splitters are fine. */
PMC_API void pmc_msg_split_free(pmc_msg_split *sp);

/* Run one whole message as an MTA would: MAIL from, RCPT for each of
 * nrcpts recipients (argv[0] only), DATA, each header, EOH, the body and
 * EOM.  'msg' is split by pmc_msg_split (above), with leadspc from the
 * negotiated HDR_LEADSPC bit.  Stops early when a verdict ends the message
 * or every recipient was refused.  r gets the result that decided (r->event
 * tells which; EOM's, with its modifications, when the message got there).
 * nrcpts must be at least 1 (PMC_ERR_ARGUMENT).  Errors as for the events. */
PMC_API pmc_status pmc_client_message(pmc_client *c, pmc_str from,
                                      const pmc_str *rcpts, size_t nrcpts,
                                      const void *msg, size_t len,
                                      pmc_result *r);

#ifdef __cplusplus
}
#endif
#endif /* PMCORE_CLIENT_H */
