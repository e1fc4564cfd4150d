/* Declarations shared by proto's files, and by the layers above through
 * their own private headers; not part of the contract. */
#ifndef PMCORE_INTERNAL_H
#define PMCORE_INTERNAL_H

/* Only the public parts at and below this layer: proto knows nothing of
 * the client or the server. */
#include "pmcore/proto.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define PMCI_HIDDEN __attribute__((visibility("hidden")))

static inline uint32_t pmci_get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline void pmci_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* The high bit of each zero byte of an 8-byte word, and only of those: the
 * +0x7f is done on 7-bit values, so it cannot carry into the next byte. */
static inline uint64_t pmci_zero_byte_flags(uint64_t w)
{
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7fULL;

    return ~(((w & low7) + low7) | w | low7);
}

/* memchr(p, 0, n), inline for the short strings of milter payloads
 * (header names, ESMTP arguments), where a library call costs more than
 * the search: 16 bytes a step, the last step overlapping. */
static inline const uint8_t *pmci_find_nul(const uint8_t *p, size_t n)
{
#if defined(__SSE2__)
    if (n >= 16) {
        const __m128i zero = _mm_setzero_si128();
        size_t i = 0;
        unsigned m;

        do {
            m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
                _mm_loadu_si128((const __m128i *)(const void *)(p + i)),
                zero));
            if (m)
                return p + i + __builtin_ctz(m);
            i += 16;
        } while (i + 16 <= n);
        if (i == n)
            return NULL;
        /* Bit k of the last, overlapping block is byte n - 16 + k; the
         * shift keeps the bytes from i on, with bit 0 for byte i. */
        m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(
                _mm_loadu_si128((const __m128i *)(const void *)(p + n - 16)),
                zero)) >>
            (16 - (n - i));
        return m ? p + i + __builtin_ctz(m) : NULL;
    }
#endif
    return n ? memchr(p, 0, n) : NULL;
}

/* Nonzero for the bytes that are MTA commands (wire.c). */
PMCI_HIDDEN extern const uint8_t pmci_mta_command[256];

/* The decoder's common case, inlined into the session loop: a whole, valid
 * packet at the head of the input.  Returns 0 when the slow path must
 * decide (partial packets, errors, limits). */
static inline int pmci_decoder_fast(pmc_decoder *d, pmc_packet *pkt)
{
    uint32_t len;

    if (d->in_len < 5 || d->partial.len != 0 || d->partial_done ||
        d->err.code != PMC_OK)
        return 0;
    len = pmci_get32(d->in);
    /* len - 1 wraps for a zero length, so one compare covers both ends. */
    if (len - 1 >= d->max_packet || d->in_len - 4 < len ||
        !(pmci_mta_command[d->in[4]] || !d->commands_checked))
        return 0;
    pkt->cmd = d->in[4];
    pkt->payload = d->in + 5;
    pkt->len = len - 1;
    pkt->offset = d->consumed;
    d->in += 4 + (size_t)len;
    d->in_len -= 4 + (size_t)len;
    d->consumed += 4 + (uint64_t)len;
    return 1;
}

/* Returned inside the session when a handler is pending or the session
 * was closed by a handler: stop dispatching.  Never leaves the library. */
#define PMCI_STOP ((pmc_status)(PMC_STATUS_COUNT + 1))

PMCI_HIDDEN pmc_status pmci_set_error(pmc_error *e, pmc_status code,
                                      uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
PMCI_HIDDEN pmc_status pmci_buf_reserve(pmc_buf *b, size_t extra);

/* Macro slots in lookup order: later slots shadow earlier ones, and EOM
 * comes after EOH (sendmail 8.17.2 order) so EOM values win at EOM. */
enum pmci_slot {
    PMCI_SLOT_CONNECT, PMCI_SLOT_HELO, PMCI_SLOT_MAIL, PMCI_SLOT_RCPT,
    PMCI_SLOT_DATA, PMCI_SLOT_EOH, PMCI_SLOT_EOM, PMCI_SLOTS
};

typedef struct pmci_macros {
    pmc_buf slot[PMCI_SLOTS]; /* name\0value\0 pairs, as received */
} pmci_macros;

/* Slot + 1 per MACRO stage letter; 0 for stages we do not keep. */
PMCI_HIDDEN extern const int8_t pmci_slot_of_letter1[256];
PMCI_HIDDEN int pmci_slot_of_stage(int stage);
/* Check a MACRO packet (stage byte first, len >= 1) and keep its pairs in
 * the session's 'slot'.  When the payload is not whole NUL-terminated
 * name/value pairs, or cannot be kept, the session fails (pmci_fail) and
 * the error is returned. */
PMCI_HIDDEN pmc_status pmci_macros_store(pmc_session *s, int slot,
                                         const pmc_packet *pkt);
/* Empty 'slot' and every later one.  Inline: with a constant slot it is a
 * few stores, and every command but DATA and the body clears some. */
static inline void pmci_macros_clear_from(pmci_macros *m, int slot)
{
    for (int i = slot; i < PMCI_SLOTS; i++)
        m->slot[i].len = 0;
}
PMCI_HIDDEN void pmci_macros_free(pmci_macros *m);

struct pmc_session {
    const pmc_handlers *h;
    void *ud;
    pmc_config cfg;
    char *symlist[PMC_STAGE_COUNT]; /* owned copies */

    pmc_decoder dec;
    pmc_buf out;
    pmc_buf body;        /* replacement body, sent just before EOM's reply */
    int body_replaced;
    pmc_buf reply;       /* wire text for the next REJECT/TEMPFAIL */
    char reply_class;    /* '4' or '5'; 0 when no text is set */

    /* Negotiation. */
    int negotiated;
    uint32_t mta_version, mta_actions, mta_protocol;
    uint32_t version, actions, protocol;

    /* Conversation state. */
    int conn_open;       /* close is owed */
    int connected;       /* CONNECT seen since the last QUIT_NC */
    int in_msg;          /* inside a transaction: abort is owed on reset */
    int state;           /* enum pmci_state (order.h) */
    int closed;
    int in_handler;
    pmc_event cur_event; /* PMC_EV_COUNT outside handlers */
    int pending;
    int pending_eob;     /* pending body chunk came with EOB: eom follows */
    int close_reason;    /* pmc_close_reason of the last close or end */
    uint64_t cur_offset;

    pmci_macros macros;
    pmc_str *argv;
    size_t argv_cap;

    pmc_session_stats stats;
    pmc_error err;
    pmc_error action_err;
};

/* The edits a filter asked for in the current message (body, reply
 * text): gone when the message ends, however it ends. */
static inline void pmci_forget_message_edits(pmc_session *s)
{
    s->body.len = 0;
    s->body_replaced = 0;
    s->reply.len = 0;
    s->reply_class = 0;
}

/* session_end.c: below everything else of the session, so any part may
 * end it. */
PMCI_HIDDEN pmc_status pmci_fail(pmc_session *s, pmc_status code,
                                 const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Fail with the decoder's sticky error. */
PMCI_HIDDEN pmc_status pmci_fail_from_decoder(pmc_session *s);
/* Inside a message, forget its edits and run the abort handler; outside
 * one, nothing. */
PMCI_HIDDEN void pmci_run_abort(pmc_session *s);
/* Run the close handler if this connection still owes it. */
PMCI_HIDDEN void pmci_run_close(pmc_session *s);
/* The end of the session, whatever ended it. */
PMCI_HIDDEN void pmci_shut(pmc_session *s);

/* reply.c: the wire text of a reply, appended to 'out' and NUL-terminated
 * as on the wire, by the rules of pmc_session_setmlreply (which uses it
 * for setreply too); 'err' (may be NULL) gets the reason on failure. */
PMCI_HIDDEN pmc_status pmci_reply_format(pmc_buf *out, const char *rcode,
                                         const char *xcode,
                                         const char *const *lines, size_t n,
                                         pmc_error *err);

/* negotiate.c */
PMCI_HIDDEN pmc_status pmci_negotiate(pmc_session *s, const uint8_t *p,
                                      size_t n);
/* session.c */
PMCI_HIDDEN int pmci_reply_owed(const pmc_session *s, pmc_event ev);

/* What a driver of sessions (the server) reads of one after every step,
 * for its timeouts and draining.  Declared here, below the driver, so the
 * session never needs to know who drives it. */
typedef struct pmci_session_view {
    size_t out_len;  /* output waiting to be sent */
    size_t queued;   /* input held unread: a partial packet, or what came
                        while a handler is pending */
    int closed;      /* pmc_session_is_closed */
    int in_msg;      /* between MAIL and the end of that message: the MTA
                        owes more of it */
    int pending;     /* pmc_session_is_pending */
} pmci_session_view;
/* Inline, with pmc_decoder_pending's rule and trim's test below: the loop
 * runs them once per round trip, and a call into another file for each
 * cost it some 600 instructions a message. */
static inline size_t pmci_decoder_pending(const pmc_decoder *d)
{
    return (d->partial_done ? 0 : d->partial.len) + d->in_len;
}
static inline void pmci_session_view_get(const pmc_session *s,
                                         pmci_session_view *v)
{
    v->out_len = s->out.len;
    v->queued = pmci_decoder_pending(&s->dec);
    v->closed = s->closed;
    v->in_msg = s->in_msg;
    v->pending = s->pending;
}
/* Give back large idle buffers; between steps only. */
#define PMCI_TRIM_KEEP (16u * 1024u)
PMCI_HIDDEN void pmci_session_trim_now(pmc_session *s);
static inline void pmci_session_trim(pmc_session *s)
{
    /* Most steps have nothing to give back: every buffer is small. */
    if (!s->pending &&
        (s->dec.partial.cap > PMCI_TRIM_KEEP ||
         s->dec.stash.cap > PMCI_TRIM_KEEP || s->out.cap > PMCI_TRIM_KEEP ||
         s->body.cap > PMCI_TRIM_KEEP))
        pmci_session_trim_now(s);
}
/* The counters in place: a driver that looks at them on every step (the
 * server, the in-process transport) would pay for a 1 KiB copy each time
 * with pmc_session_stats_get.  Valid as long as the session.  messages,
 * callback_errors and replies[] are written with PMCI_COUNT, so another
 * thread may read them with __atomic_load_n (the server adds a live
 * connection's counts when its statistics are read). */
PMCI_HIDDEN const pmc_session_stats *pmci_session_stats(const pmc_session *s);

/* One more in a counter another thread may read while this one counts:
 * a relaxed atomic store (a plain add on x86, no lock prefix), since only
 * the session's own thread writes it. */
#define PMCI_COUNT(x) __atomic_store_n(&(x), (x) + 1, __ATOMIC_RELAXED)

#endif
