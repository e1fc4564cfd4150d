/*
 * The session: one MTA connection seen from the filter.  Bytes go in through
 * pmc_session_feed, handlers run, reply bytes collect in 'out'.  The rules a
 * conversation must keep (who replies when, what resets what) live here and
 * in negotiate.c; parsing of command payloads is in commands.c.  Creating
 * a session is session_new.c, ending one session_end.c, reading one from
 * outside session_peek.c.
 */
#include "internal.h"
#include "commands.h"
#include "order.h"

#include <string.h>

/* The NR bit that silences each event's reply; 0 where a reply is always
 * owed (EOM) or never (abort, close, negotiate is answered separately). */
static const uint32_t nr_bit[PMC_EV_COUNT] = {
    [PMC_EV_CONNECT] = PMC_P_NR_CONN, [PMC_EV_HELO] = PMC_P_NR_HELO,
    [PMC_EV_ENVFROM] = PMC_P_NR_MAIL, [PMC_EV_ENVRCPT] = PMC_P_NR_RCPT,
    [PMC_EV_DATA] = PMC_P_NR_DATA,    [PMC_EV_HEADER] = PMC_P_NR_HDR,
    [PMC_EV_EOH] = PMC_P_NR_EOH,      [PMC_EV_BODY] = PMC_P_NR_BODY,
    [PMC_EV_UNKNOWN] = PMC_P_NR_UNKN,
};

int pmci_reply_owed(const pmc_session *s, pmc_event ev)
{
    if ((unsigned)ev >= PMC_EV_COUNT || ev == PMC_EV_NEGOTIATE ||
        ev == PMC_EV_ABORT || ev == PMC_EV_CLOSE)
        return 0;
    /* A chunk that came with EOB is answered by EOM's reply. */
    if (ev == PMC_EV_BODY && s->pending_eob)
        return 1;
    return !(s->protocol & nr_bit[ev]);
}

int pmc_verdict_valid(pmc_event ev, int v)
{
    switch (v) {
    case PMC_CONTINUE: case PMC_REJECT: case PMC_DISCARD: case PMC_ACCEPT:
    case PMC_TEMPFAIL: case PMC_NOREPLY: case PMC_SKIP:
        return 1;
    case PMC_ALL_OPTS:
        return ev == PMC_EV_NEGOTIATE;
    default:
        return 0;
    }
}

static int skip_allowed(const pmc_session *s, pmc_event ev)
{
    if (!(s->protocol & PMC_P_SKIP))
        return 0;
    if (ev == PMC_EV_BODY && !s->pending_eob)
        return 1;
    return s->cfg.skip_any_event && ev != PMC_EV_EOM && !s->pending_eob;
}

/* Send the replacement body: contiguous, in chunks the MTA accepts.  An
 * empty replacement still needs one packet, or the body would stay. */
__attribute__((noinline)) static pmc_status flush_body(pmc_session *s)
{
    size_t off = 0, n;

    if (!s->body_replaced)
        return PMC_OK;
    do {
        n = s->body.len - off;
        if (n > PMC_CHUNK_MAX)
            n = PMC_CHUNK_MAX;
        /* An empty replacement has no storage at all: no pointer maths
         * on NULL. */
        if (pmc_encode(&s->out, 'b', n ? s->body.data + off : NULL, n) !=
            PMC_OK)
            return PMC_ERR_NOMEM;
        PMCI_COUNT(s->stats.replies['b']);
        off += n;
    } while (off < s->body.len);
    return PMC_OK;
}

/* Most replies are one byte with no payload: write them directly. */
static inline pmc_status put_code(pmc_buf *out, uint8_t code)
{
    uint8_t *w;

    if (out->cap - out->len < 5 && pmci_buf_reserve(out, 5) != PMC_OK)
        return PMC_ERR_NOMEM;
    w = out->data + out->len;
    w[0] = w[1] = w[2] = 0;
    w[3] = 1;
    w[4] = code;
    out->len += 5;
    return PMC_OK;
}

static pmc_status finish_slow(pmc_session *s, pmc_event ev, int v);

/* Answer an event with the handler's verdict.  The common case, go on with
 * no reply text and nothing to flush, stays small enough to inline. */
static inline pmc_status finish(pmc_session *s, pmc_event ev, int v)
{
    s->cur_event = PMC_EV_COUNT;
    /* PMC_CONTINUE is 0: one test for a verdict, a chunk answered by EOM
     * and a reply text. */
    if (ev == PMC_EV_EOM ||
        ((unsigned)v | (unsigned)s->pending_eob | (unsigned)s->reply_class))
        return finish_slow(s, ev, v);
    if (s->protocol & nr_bit[ev])
        return PMC_OK;
    if (put_code(&s->out, 'c') != PMC_OK)
        return pmci_fail(s, PMC_ERR_NOMEM, "out of memory");
    PMCI_COUNT(s->stats.replies['c']);
    return PMC_OK;
}

__attribute__((noinline)) static pmc_status finish_slow(pmc_session *s,
                                                        pmc_event ev, int v)
{
    uint8_t code;
    pmc_status st = PMC_OK;

    /* NOREPLY where none is owed, what a no-reply handler (Python's
     * @noreply) answers to every event: nothing to do, as for CONTINUE
     * (a reply text always has its class). */
    if (v == PMC_NOREPLY && !(s->pending_eob | s->reply_class) &&
        (s->protocol & nr_bit[ev]))
        return PMC_OK;
    if (!pmc_verdict_valid(ev, v)) {
        PMCI_COUNT(s->stats.callback_errors);
        v = PMC_TEMPFAIL;
    }
    if (!pmci_reply_owed(s, ev)) {
        if (v != PMC_CONTINUE && v != PMC_NOREPLY)
            s->stats.noreply_violations++;
        s->reply.len = 0;
        s->reply_class = 0;
        return PMC_OK;
    }
    switch (v) {
    case PMC_REJECT: code = s->reply_class == '5' ? 'y' : 'r'; break;
    case PMC_TEMPFAIL: code = s->reply_class == '4' ? 'y' : 't'; break;
    case PMC_DISCARD: code = 'd'; break;
    case PMC_ACCEPT: code = 'a'; break;
    case PMC_SKIP: code = skip_allowed(s, ev) ? 's' : 'c'; break;
    default: code = 'c'; break;
    }
    if (ev == PMC_EV_EOM || s->pending_eob)
        st = flush_body(s);
    if (st == PMC_OK)
        st = code == 'y' ? pmc_encode(&s->out, 'y', s->reply.data,
                                      s->reply.len)
                         : put_code(&s->out, code);
    if (st != PMC_OK)
        return pmci_fail(s, PMC_ERR_NOMEM, "out of memory sending a reply");
    PMCI_COUNT(s->stats.replies[code]);
    s->reply.len = 0;
    s->reply_class = 0;

    /* A verdict ends the message, except at RCPT and UNKNOWN where a
     * rejection concerns that command only (libmilter's CT_IGNO).  Only a
     * verdict the MTA heard moves the conversation: one swallowed by NR
     * returned above, and the MTA goes on with the message. */
    pmci_order_verdict(s, v);
    if (ev == PMC_EV_EOM || s->pending_eob) {
        s->in_msg = 0;
        s->pending_eob = 0;
        pmci_forget_message_edits(s);
        PMCI_COUNT(s->stats.messages);
    } else if (v == PMC_ACCEPT) {
        s->in_msg = 0; /* the MTA skips the rest of this message */
    } else if (v == PMC_REJECT || v == PMC_TEMPFAIL || v == PMC_DISCARD) {
        if (ev != PMC_EV_ENVRCPT && ev != PMC_EV_UNKNOWN)
            s->in_msg = 0;
    }
    return PMC_OK;
}

/* Call the handler for 'ev'; an absent handler continues. */
static inline __attribute__((always_inline)) int invoke(pmc_session *s,
                                                       pmc_event ev,
                                                       const pmci_cmd *c)
{
    const pmc_handlers *h = s->h;
    int v = PMC_CONTINUE;

    s->cur_event = ev;
    s->in_handler = 1;
    switch (ev) {
    case PMC_EV_CONNECT: if (h->connect) v = h->connect(s, s->ud, &c->ci); break;
    case PMC_EV_HELO: if (h->helo) v = h->helo(s, s->ud, c->a); break;
    case PMC_EV_ENVFROM: if (h->envfrom) v = h->envfrom(s, s->ud, &c->args); break;
    case PMC_EV_ENVRCPT: if (h->envrcpt) v = h->envrcpt(s, s->ud, &c->args); break;
    case PMC_EV_DATA: if (h->data) v = h->data(s, s->ud); break;
    case PMC_EV_HEADER: if (h->header) v = h->header(s, s->ud, c->a, c->b); break;
    case PMC_EV_EOH: if (h->eoh) v = h->eoh(s, s->ud); break;
    case PMC_EV_BODY:
        if (h->body)
            v = h->body(s, s->ud, (const uint8_t *)c->a.ptr, c->a.len);
        break;
    case PMC_EV_EOM: if (h->eom) v = h->eom(s, s->ud); break;
    case PMC_EV_UNKNOWN: if (h->unknown) v = h->unknown(s, s->ud, c->a); break;
    default: break;
    }
    s->in_handler = 0;
    return v;
}

/* Run a handler and answer it, unless it asked to answer later. */
static inline __attribute__((always_inline)) pmc_status
handle(pmc_session *s, pmc_event ev, const pmci_cmd *c)
{
    int v = invoke(s, ev, c);

    if (v == PMC_PENDING) {
        s->pending = 1;
        return PMCI_STOP;
    }
    /* A host that ended the session from inside a handler. */
    if (__builtin_expect(s->closed, 0))
        return PMCI_STOP;
    return finish(s, ev, v);
}

/* EOB may carry a last body chunk: it goes to body first, and eom runs only
 * if body let the message go on (libmilter does the same). */
static pmc_status after_eob_body(pmc_session *s, int v)
{
    static const pmci_cmd none;

    if (v == PMC_CONTINUE || v == PMC_NOREPLY || v == PMC_SKIP) {
        s->pending_eob = 0;
        return handle(s, PMC_EV_EOM, &none);
    }
    return finish(s, PMC_EV_EOM, v);
}

/* One packet.  A single switch, and the NUL checks of the payload parsers
 * only: this runs for every packet of every message. */
static inline __attribute__((always_inline)) pmc_status
dispatch(pmc_session *s, const pmc_packet *p)
{
    pmci_cmd c;
    pmc_status st;

    s->cur_offset = p->offset;
    s->stats.packets_in++;
    switch (p->cmd) {
    case 'O':
        return pmci_negotiate(s, p->payload, p->len);
    case 'D': {
        int slot = p->len ? pmci_slot_of_letter1[p->payload[0]] - 1 : -1;
        /* Stages we do not keep are dropped unread, as libmilter does:
         * Postfix sends one before every header and body chunk, and
         * nothing reads them. */
        if (slot < 0) {
            s->stats.macros_ignored++;
            return PMC_OK;
        }
        return pmci_macros_store(s, slot, p);
    }
    case 'A':
        /* An ABORT the table drops still forgets the message's macros:
         * a reset to HELO is what ABORT means wherever it comes. */
        if (pmci_order_abort(s))
            pmci_run_abort(s);
        pmci_macros_clear_from(&s->macros, PMCI_SLOT_MAIL);
        return PMC_OK;
    case 'Q':
        /* QUIT ends the session from any state (libmilter drops one out
         * of order and ends at the EOF that follows: the same handlers
         * run, and nothing the MTA sends after its QUIT is read). */
        s->state = PMCI_ST_QUIT;
        s->close_reason = PMC_CLOSE_QUIT;
        pmci_shut(s);
        return PMC_ERR_CLOSED;
    case 'K':
        s->close_reason = PMC_CLOSE_QUIT_NC;
        pmci_run_abort(s);
        pmci_run_close(s);
        s->connected = 0;
        /* Taken in any state: libmilter takes it only after EOM or
         * UNKNOWN, and elsewhere drops it and then the new CONNECT too,
         * leaving the MTA waiting for replies (docs/state-table.md §7). */
        s->state = PMCI_ST_Q_NC;
        pmci_macros_clear_from(&s->macros, PMCI_SLOT_CONNECT);
        return PMC_OK;
    case 'C':
        s->conn_open = 1;
        /* Ends the session where libmilter would drop it: a new client
         * under the filter's feet with no close between is not something
         * to carry on from (docs/state-table.md). */
        if (s->connected)
            return pmci_fail(s, PMC_ERR_SEQUENCE,
                             "a second CONNECT at offset %llu without "
                             "QUIT_NC",
                             (unsigned long long)p->offset);
        if (!pmci_order_admit(s, PMCI_ST_CONN))
            return PMC_OK;
        if ((st = pmci_parse_connect(s, p, &c.ci)) != PMC_OK)
            return st;
        s->connected = 1;
        pmci_macros_clear_from(&s->macros, PMCI_SLOT_HELO);
        return handle(s, PMC_EV_CONNECT, &c);
    case 'H':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_HELO))
            return PMC_OK;
        if ((st = pmci_parse_string(s, p, &c.a, "the HELO name")) != PMC_OK)
            return st;
        /* Only after UNKNOWN can a message still be open here: libmilter
         * forgets it without abort, we end it (docs/state-table.md §7). */
        pmci_run_abort(s);
        pmci_macros_clear_from(&s->macros, PMCI_SLOT_MAIL);
        return handle(s, PMC_EV_HELO, &c);
    case 'M':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_MAIL))
            return PMC_OK;
        if ((st = pmci_parse_args(s, p, &c.args)) != PMC_OK)
            return st;
        /* As for HELO: an open message here came through UNKNOWN. */
        pmci_run_abort(s);
        s->in_msg = 1;
        pmci_macros_clear_from(&s->macros, PMCI_SLOT_RCPT);
        return handle(s, PMC_EV_ENVFROM, &c);
    case 'R':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_RCPT))
            return PMC_OK;
        if ((st = pmci_parse_args(s, p, &c.args)) != PMC_OK)
            return st;
        s->in_msg = 1;
        pmci_macros_clear_from(&s->macros, PMCI_SLOT_DATA);
        return handle(s, PMC_EV_ENVRCPT, &c);
    case 'T':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_DATA))
            return PMC_OK;
        s->in_msg = 1;
        return handle(s, PMC_EV_DATA, &c);
    case 'L':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_HDRS))
            return PMC_OK;
        if ((st = pmci_parse_header(s, p, &c)) != PMC_OK)
            return st;
        s->in_msg = 1;
        return handle(s, PMC_EV_HEADER, &c);
    case 'N':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_EOHS))
            return PMC_OK;
        s->in_msg = 1;
        return handle(s, PMC_EV_EOH, &c);
    case 'B':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_BODY))
            return PMC_OK;
        c.a.ptr = (const char *)p->payload;
        c.a.len = p->len;
        s->in_msg = 1;
        return handle(s, PMC_EV_BODY, &c);
    case 'E':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_ENDM))
            return PMC_OK;
        s->in_msg = 1;
        if (p->len > 0 && s->h->body) {
            int v;
            c.a.ptr = (const char *)p->payload;
            c.a.len = p->len;
            s->pending_eob = 1;
            v = invoke(s, PMC_EV_BODY, &c);
            if (v == PMC_PENDING) {
                s->pending = 1;
                return PMCI_STOP;
            }
            return after_eob_body(s, v);
        }
        return handle(s, PMC_EV_EOM, &c);
    case 'U':
        s->conn_open = 1;
        if (!pmci_order_admit(s, PMCI_ST_UNKN))
            return PMC_OK;
        if ((st = pmci_parse_string(s, p, &c.a, "the command line")) !=
            PMC_OK)
            return st;
        return handle(s, PMC_EV_UNKNOWN, &c);
    default:
        return pmci_fail(s, PMC_ERR_UNKNOWN_COMMAND,
                         "unknown command byte 0x%02x at offset %llu",
                         p->cmd, (unsigned long long)p->offset);
    }
}

/* The first packet must be OPTNEG. */
__attribute__((noinline)) static pmc_status before_optneg(pmc_session *s,
                                                          const pmc_packet *p)
{
    s->cur_offset = p->offset;
    s->stats.packets_in++;
    if (p->cmd == 'O') {
        pmc_status st = pmci_negotiate(s, p->payload, p->len);

        if (st == PMC_OK)
            s->state = PMCI_ST_OPTS;
        return st;
    }
    /* libmilter would run HELO and MAIL handlers here, for a filter whose
     * protocol was never agreed; what comes first on a milter port that
     * is not OPTNEG is more likely not milter at all (docs/state-table.md). */
    return pmci_fail(s, PMC_ERR_SEQUENCE,
                     "command '%c' at offset %llu came before OPTNEG", p->cmd,
                     (unsigned long long)p->offset);
}

/* The largest packet length the inline path below may cut from the input,
 * or 0 when every packet must go through the decoder and the OPTNEG check:
 * the decoder holds a partial packet or an error, or nothing has been
 * negotiated yet.  Folding these into the length limit leaves one compare
 * per packet for all of them. */
static inline size_t inline_limit(const pmc_session *s)
{
    const pmc_decoder *d = &s->dec;
    size_t dirty = (size_t)d->partial_done | (size_t)d->err.code |
                   d->partial.len | (size_t)!s->negotiated;

    return dirty ? 0 : d->max_packet;
}

/* Decode and dispatch until input runs out, a handler is pending, or the
 * conversation ends.  The input cursor lives in locals: handlers are calls
 * the compiler cannot see through, and a cursor kept only in the decoder
 * would be reloaded from memory after each of them.  It is written back
 * before every dispatch, so the decoder is always current when a handler
 * runs or the loop stops. */
static inline __attribute__((always_inline)) pmc_status run(pmc_session *s)
{
    pmc_decoder *d = &s->dec;
    const uint8_t *in = d->in;
    size_t left = d->in_len;
    uint64_t at = d->consumed;
    size_t limit = inline_limit(s);
    pmc_packet pkt;
    pmc_status st;
    uint32_t len;
    int ready;

    if (s->pending || s->closed)
        goto stopped;
    for (;;) {
        /* len - 1 wraps for a zero length, so one compare covers both
         * ends of the limit. */
        if (left >= 5 && (len = pmci_get32(in)) - 1 < limit &&
            left - 4 >= len && pmci_mta_command[in[4]]) {
            pkt.cmd = in[4];
            pkt.payload = in + 5;
            pkt.len = len - 1;
            pkt.offset = at;
            in += 4 + (size_t)len;
            left -= 4 + (size_t)len;
            at += 4 + (uint64_t)len;
            d->in = in;
            d->in_len = left;
            d->consumed = at;
        } else {
            /* Input used up between packets, the end of most feeds. */
            if (left == 0 && limit != 0)
                return PMC_OK;
            /* Partial packets, errors, limits and OPTNEG: the decoder
             * decides. */
            if (pmc_decoder_next(d, &pkt, &ready) != PMC_OK)
                return pmci_fail_from_decoder(s);
            if (!ready)
                return PMC_OK;
            in = d->in;
            left = d->in_len;
            at = d->consumed;
            if (__builtin_expect(!s->negotiated, 0)) {
                st = before_optneg(s, &pkt);
                limit = inline_limit(s);
                goto dispatched;
            }
            limit = inline_limit(s);
        }
        st = dispatch(s, &pkt);
    dispatched:
        if (st != PMC_OK) {
            if (st != PMCI_STOP)
                return st;
            break;
        }
    }
stopped:
    if (s->closed)
        return s->err.code != PMC_OK ? s->err.code : PMC_ERR_CLOSED;
    if (d->in_len > 0 && pmc_decoder_stash(d) != PMC_OK)
        return pmci_fail_from_decoder(s);
    return PMC_OK;
}

pmc_status pmc_session_feed(pmc_session *s, const void *bytes, size_t n)
{
    pmc_decoder *d = &s->dec;

    if (s->closed)
        return s->err.code != PMC_OK ? s->err.code : PMC_ERR_CLOSED;
    s->stats.bytes_in += n;
    if (!d->reading_stash) {
        /* Borrow the caller's bytes: no copy (pmc_decoder_input's common
         * case, without the call). */
        d->in = bytes;
        d->in_len = n;
    } else {
        pmc_decoder_input(d, bytes, n);
        if (d->err.code != PMC_OK)
            return pmci_fail_from_decoder(s);
    }
    if (s->pending) {
        if (pmc_decoder_stash(d) != PMC_OK)
            return pmci_fail_from_decoder(s);
        return PMC_OK;
    }
    return run(s);
}

pmc_status pmc_session_resume(pmc_session *s, int verdict)
{
    pmc_event ev = s->cur_event;
    pmc_status st;

    if (s->closed)
        return s->err.code != PMC_OK ? s->err.code : PMC_ERR_CLOSED;
    if (!s->pending || s->in_handler)
        return PMC_ERR_PENDING;
    if (verdict == PMC_PENDING)
        return PMC_OK;
    s->pending = 0;
    if (ev == PMC_EV_BODY && s->pending_eob)
        st = after_eob_body(s, verdict);
    else
        st = finish(s, ev, verdict);
    if (st != PMC_OK && st != PMCI_STOP)
        return st;
    return run(s);
}

pmc_status pmc_session_eof(pmc_session *s)
{
    if (s->closed)
        return s->err.code;
    if (!s->pending && pmc_decoder_eof(&s->dec) != PMC_OK)
        return pmci_fail_from_decoder(s);
    s->close_reason = PMC_CLOSE_EOF;
    pmci_shut(s);
    return PMC_OK;
}

pmc_status pmc_session_end(pmc_session *s, pmc_status why)
{
    if (s->closed)
        return PMC_OK;
    if (why != PMC_OK && s->err.code == PMC_OK)
        pmci_set_error(&s->err, why, s->dec.consumed,
                       "the session was ended by its host (%s)",
                       pmc_status_name(why));
    s->close_reason = PMC_CLOSE_HOST;
    pmci_shut(s);
    return PMC_OK;
}
