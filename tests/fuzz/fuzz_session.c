/*
 * libFuzzer target: the filter side (pmc_session) and the reply decoder.
 *
 * Input layout (tests/fuzz/vec2seed.py writes the same header for seeds):
 *
 *   byte 0  handlers present: connect helo envfrom envrcpt data header eoh
 *           body (bit 0..7)
 *   byte 1  bit 0..4: eom abort close unknown negotiate present;
 *           bit 5: skip_any_event; bit 6: small max_packet;
 *           bit 7: end the session with pmc_session_end instead of eof
 *   byte 2  actions wanted (PMC_ACT_* low 8 bits)
 *   byte 3  protocol wanted: NR_HDR NR_CONN NR_HELO NR_MAIL NR_RCPT NR_DATA
 *           NR_UNKN NR_EOH (bit 0..7)
 *   byte 4  bit 0: NR_BODY, 1: SKIP, 2: RCPT_REJ, 3: HDR_LEADSPC,
 *           4: request macro lists, 5..7: version (0 = 6, 1..4 = 2..5)
 *   byte 5  seed of the handlers' behaviour
 *   byte 6  how often handlers do something other than continue (0 = never)
 *   byte 7  split pattern: bits 0-1 mode (whole, byte by byte, fixed size,
 *           random sizes), bits 2-7 size or seed
 *   rest    the bytes the MTA sends
 *
 * Invariants checked (abort() on violation, so libFuzzer reports it):
 *  - the output is a sequence of whole, well-formed reply packets (decoded
 *    with pmc_decoder), with OPTNEG's reply first, modifications only right
 *    before a final reply, and body replacement packets last and contiguous;
 *  - an error from feed leaves the session closed with that sticky error,
 *    and nothing is appended to the output afterwards;
 *  - close ends every connection that was negotiated or ran a handler
 *    (a command after QUIT_NC opens a new one);
 *  - feeding the stream split differs in nothing from feeding it whole:
 *    same handler calls with the same arguments, same output bytes, same
 *    final error (the handlers' choices depend only on the call order).
 */
#include "pmcore.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

enum { HDR_LEN = 8 };

/* FUZZ_DUMP=1 traces handlers, actions and output, to read a crash input. */
static int dump;

/* State of one run over the input (the input is run whole and split). */
typedef struct run {
    const uint8_t *hdr;
    uint32_t rng;
    unsigned density;
    pmc_buf log;    /* every handler call and its arguments */
    pmc_buf out;    /* every byte the session produced */
    unsigned close_calls;
    int open;   /* a handler ran for a connection not closed since */
    /* plan for a handler that answered PMC_PENDING */
    int resume_verdict;
    int resume_again;   /* first resume with PMC_PENDING once more */
    unsigned defer;     /* feeds to let pass before resuming */
    int pending_eom;
} run;

static uint32_t next(run *r)
{
    /* xorshift32: cheap, and deterministic for a given header */
    uint32_t x = r->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return r->rng = x;
}

static int chance(run *r) { return (next(r) & 255u) < r->density; }

static void log_bytes(run *r, const void *p, size_t n)
{
    uint32_t len = (uint32_t)n;
    CHECK(pmc_buf_append(&r->log, &len, sizeof len) == PMC_OK);
    if (n)
        CHECK(pmc_buf_append(&r->log, p, n) == PMC_OK);
}

static void log_str(run *r, pmc_str s)
{
    CHECK(s.ptr != NULL);
    CHECK(s.ptr[s.len] == 0); /* promised by the header */
    log_bytes(r, s.ptr, s.len);
}

static void log_event(run *r, pmc_session *s, pmc_event ev)
{
    uint8_t b = (uint8_t)ev;
    if (ev != PMC_EV_NEGOTIATE && ev != PMC_EV_CLOSE)
        r->open = 1;
    CHECK(pmc_session_current_event(s) == ev);
    if (dump)
        fprintf(stderr, "event %s\n", pmc_event_name(ev));
    log_bytes(r, &b, 1);
}

/* Arguments for actions: valid ones and ones the session must refuse. */
static const pmc_str names[] = {
    {"X-Fuzz", 6}, {"Subject", 7}, {"", 0}, {"Bad\0Name", 8}, {"X:y", 3}};
static const pmc_str values[] = {
    {"v", 1}, {"", 0}, {" lead", 5}, {"multi\n\tline", 11}, {"a\0b", 3}};
static const char *const rcodes[] = {"550", "451", "250", "5x0", "55",
                                     "421", NULL};
static const char *const xcodes[] = {NULL, "5.7.1", "4.2.0", "5.7.1000",
                                     "x.y.z", "4.7.1", "5.1"};
static char long_text[1200];
static uint8_t body_buf[140000];
static const char *texts[] = {NULL, "no", "100% sure", "cr\r\nlf", long_text};
static const size_t body_sizes[] = {0, 1, 100, 65535, 65536, sizeof body_buf};

#define PICK(r, arr) (arr)[next(r) % (sizeof(arr) / sizeof((arr)[0]))]

/* Call one action chosen at random; log its status, which must not depend on
 * how the input was split either. */
static void do_action(run *r, pmc_session *s)
{
    pmc_status st;
    pmc_str v;
    unsigned kind = next(r) % 17;
    switch (kind) {
    case 0: st = pmc_session_addheader(s, PICK(r, names), PICK(r, values)); break;
    case 1: st = pmc_session_insheader(s, next(r) % 3, PICK(r, names), PICK(r, values)); break;
    case 2: st = pmc_session_chgheader(s, PICK(r, names), next(r) % 3, PICK(r, values)); break;
    case 3: st = pmc_session_addrcpt(s, PICK(r, values)); break;
    case 4: {
        pmc_str a = PICK(r, values);
        st = pmc_session_addrcpt_par(s, PICK(r, names), (next(r) & 1) ? &a : NULL);
        break;
    }
    case 5: st = pmc_session_delrcpt(s, PICK(r, names)); break;
    case 6: {
        pmc_str a = PICK(r, values);
        st = pmc_session_chgfrom(s, PICK(r, names), (next(r) & 1) ? &a : NULL);
        break;
    }
    case 7: st = pmc_session_replacebody(s, body_buf, PICK(r, body_sizes)); break;
    case 8: st = pmc_session_quarantine(s, PICK(r, values)); break;
    case 9: st = pmc_session_progress(s); break;
    case 10:
    case 11:
        st = pmc_session_setreply(s, PICK(r, rcodes), PICK(r, xcodes), PICK(r, texts));
        break;
    case 12: {
        const char *lines[3] = {PICK(r, texts), "second", PICK(r, texts)};
        for (size_t i = 0; i < 3; i++)
            if (!lines[i])
                lines[i] = "";
        st = pmc_session_setmlreply(s, PICK(r, rcodes), PICK(r, xcodes), lines,
                                    1 + next(r) % 3);
        break;
    }
    case 13: {
        static const char *const mac[] = {"i", "{i}", "j", "{daemon_name}", "",
                                          "{rcpt_addr}", "_"};
        const char *m = PICK(r, mac);
        int found = pmc_session_getsymval(s, m, strlen(m), &v);
        log_bytes(r, &found, sizeof found);
        if (found)
            log_str(r, v);
        return;
    }
    case 14: {
        size_t cur = 0;
        pmc_str n;
        int stage = (int)(next(r) % (PMC_STAGE_COUNT + 1));
        while (pmc_session_macro_next(s, stage, &cur, &n, &v)) {
            log_str(r, n);
            log_str(r, v);
        }
        return;
    }
    case 15: st = pmc_session_setsymlist(s, PMC_STAGE_EOM, "i"); break;
    default: {
        /* Every message counted ended with a packet that was counted. */
        pmc_session_stats ss;
        pmc_session_stats_get(s, &ss);
        CHECK(ss.messages <= ss.packets_in);
        return;
    }
    }
    if (dump)
        fprintf(stderr, "  action %u -> %s\n", kind, pmc_status_name(st));
    if (st != PMC_OK) {
        const pmc_error *e = pmc_session_action_error(s);
        CHECK(e != NULL && e->code == st);
        CHECK(memchr(e->message, 0, sizeof e->message) != NULL);
    }
    log_bytes(r, &st, sizeof st);
}

static void maybe_actions(run *r, pmc_session *s)
{
    if (!chance(r))
        return;
    unsigned n = 1 + next(r) % 4;
    while (n--)
        do_action(r, s);
}

static int verdict(run *r, pmc_session *s, pmc_event ev)
{
    static const int choices[] = {
        PMC_REJECT, PMC_DISCARD, PMC_ACCEPT, PMC_TEMPFAIL, PMC_NOREPLY,
        PMC_SKIP,   PMC_PENDING, PMC_PENDING, 5, -1, PMC_ALL_OPTS};
    maybe_actions(r, s);
    if (!chance(r))
        return PMC_CONTINUE;
    int v = PICK(r, choices);
    if (dump)
        fprintf(stderr, "  verdict %d\n", v);
    if (v == PMC_PENDING) {
        static const int later[] = {PMC_CONTINUE, PMC_REJECT, PMC_TEMPFAIL,
                                    PMC_ACCEPT,   PMC_DISCARD, PMC_NOREPLY,
                                    PMC_SKIP,     42};
        r->resume_verdict = PICK(r, later);
        r->resume_again = (next(r) & 7) == 0;
        r->defer = next(r) % 3;
        r->pending_eom = ev == PMC_EV_EOM;
    }
    return v;
}

/* --- handlers ------------------------------------------------------------- */

static int h_negotiate(pmc_session *s, void *ud, pmc_negotiation *n)
{
    run *r = ud;
    log_event(r, s, PMC_EV_NEGOTIATE);
    log_bytes(r, n, sizeof *n);
    maybe_actions(r, s);
    if (!chance(r))
        return PMC_CONTINUE;
    switch (next(r) % 5) {
    case 0: return PMC_ALL_OPTS;
    case 1: return PMC_REJECT;
    case 2: n->protocol ^= 1u << (next(r) % 21); return PMC_CONTINUE;
    case 3: n->actions ^= 1u << (next(r) % 9); return PMC_CONTINUE;
    default: n->version = next(r) % 8; return PMC_CONTINUE;
    }
}

static int h_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    run *r = ud;
    log_event(r, s, PMC_EV_CONNECT);
    log_str(r, ci->host);
    log_bytes(r, &ci->family, 1);
    log_bytes(r, &ci->port, sizeof ci->port);
    log_str(r, ci->addr);
    log_str(r, ci->raw_addr);
    CHECK(ci->addr_bin_len == 0 || ci->addr_bin_len == 4 ||
          ci->addr_bin_len == 16);
    log_bytes(r, ci->addr_bin, ci->addr_bin_len);
    return verdict(r, s, PMC_EV_CONNECT);
}

static int h_helo(pmc_session *s, void *ud, pmc_str helo)
{
    run *r = ud;
    log_event(r, s, PMC_EV_HELO);
    log_str(r, helo);
    return verdict(r, s, PMC_EV_HELO);
}

static int args_event(pmc_session *s, run *r, pmc_event ev, const pmc_args *a)
{
    log_event(r, s, ev);
    CHECK(a->argc >= 1);
    for (size_t i = 0; i < a->argc; i++)
        log_str(r, a->argv[i]);
    return verdict(r, s, ev);
}

static int h_envfrom(pmc_session *s, void *ud, const pmc_args *a)
{
    return args_event(s, ud, PMC_EV_ENVFROM, a);
}

static int h_envrcpt(pmc_session *s, void *ud, const pmc_args *a)
{
    return args_event(s, ud, PMC_EV_ENVRCPT, a);
}

static int plain_event(pmc_session *s, run *r, pmc_event ev)
{
    log_event(r, s, ev);
    return verdict(r, s, ev);
}

static int h_data(pmc_session *s, void *ud) { return plain_event(s, ud, PMC_EV_DATA); }
static int h_eoh(pmc_session *s, void *ud) { return plain_event(s, ud, PMC_EV_EOH); }
static int h_eom(pmc_session *s, void *ud) { return plain_event(s, ud, PMC_EV_EOM); }
static int h_abort(pmc_session *s, void *ud) { return plain_event(s, ud, PMC_EV_ABORT); }

static int h_close(pmc_session *s, void *ud)
{
    run *r = ud;
    log_event(r, s, PMC_EV_CLOSE);
    maybe_actions(r, s);
    r->close_calls++;
    r->open = 0;
    return PMC_CONTINUE;
}

static int h_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    run *r = ud;
    log_event(r, s, PMC_EV_HEADER);
    log_str(r, name);
    log_str(r, value);
    return verdict(r, s, PMC_EV_HEADER);
}

static int h_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    run *r = ud;
    log_event(r, s, PMC_EV_BODY);
    log_bytes(r, p, n);
    return verdict(r, s, PMC_EV_BODY);
}

static int h_unknown(pmc_session *s, void *ud, pmc_str cmd)
{
    run *r = ud;
    log_event(r, s, PMC_EV_UNKNOWN);
    log_str(r, cmd);
    return verdict(r, s, PMC_EV_UNKNOWN);
}

/* --- output checks --------------------------------------------------------- */

static int is_final(uint8_t c) { return strchr("cartdys", c) != NULL; }

static size_t count_nul(const uint8_t *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += p[i] == 0;
    return k;
}

/* The shape of one reply packet, as an MTA would check it. */
static void check_packet(const pmc_packet *p, int first)
{
    const uint8_t *d = p->payload;
    size_t n = p->len;
    CHECK((p->cmd == 'O') == first);
    switch (p->cmd) {
    case 'O':
        CHECK(n >= 12);
        break;
    case 'c': case 'a': case 'r': case 't': case 'd': case 's': case 'p':
        CHECK(n == 0);
        break;
    case 'y':
        CHECK(n >= 4 && d[n - 1] == 0 && count_nul(d, n) == 1);
        CHECK((d[0] == '4' || d[0] == '5') && d[1] >= '0' && d[1] <= '9' &&
              d[2] >= '0' && d[2] <= '9');
        break;
    case 'h':
        CHECK(n >= 2 && d[n - 1] == 0 && d[0] != 0);
        break;
    case 'i': case 'm':
        CHECK(n >= 6 && d[n - 1] == 0 && d[4] != 0);
        break;
    case '+': case '-': case 'q':
        CHECK(n >= 1 && d[n - 1] == 0 && count_nul(d, n) == 1);
        break;
    case 'e': case '2':
        CHECK(n >= 1 && d[n - 1] == 0 && count_nul(d, n) <= 2);
        break;
    case 'b':
        CHECK(n <= PMC_CHUNK_MAX);
        break;
    default:
        CHECK(!"unexpected reply code");
    }
}

/* Decode everything the session wrote.  Between two final replies the order
 * must be: other modifications, then body replacement (progress anywhere);
 * modifications are always followed by a final reply. */
static void check_output(const pmc_buf *out)
{
    pmc_decoder d;
    pmc_packet p;
    int ready, first = 1;
    int phase = 0; /* 0: progress, 1: modifications, 2: body */
    pmc_decoder_init(&d, 0xFFFFFFFFu, 0);
    pmc_decoder_input(&d, out->data, out->len);
    for (;;) {
        CHECK(pmc_decoder_next(&d, &p, &ready) == PMC_OK);
        if (!ready)
            break;
        if (dump)
            fprintf(stderr, "out: '%c' %zu bytes\n", p.cmd, p.len);
        check_packet(&p, first);
        first = 0;
        if (p.cmd == 'O' || is_final(p.cmd)) {
            phase = 0;
        } else if (p.cmd == 'p') {
            /* progress goes out at once, between modifications too */
        } else if (p.cmd == 'b') {
            phase = 2;
        } else {
            CHECK(phase <= 1);
            phase = 1;
        }
    }
    CHECK(pmc_decoder_pending(&d) == 0); /* only whole packets */
    CHECK(phase == 0); /* queued modifications never go out without a verdict */
    pmc_decoder_free(&d);
}

/* --- driving a session ------------------------------------------------------ */

typedef struct outcome {
    pmc_status err;
    uint64_t err_offset;
} outcome;

static void collect(run *r, pmc_session *s)
{
    size_t n;
    const uint8_t *p = pmc_session_output(s, &n);
    if (n) {
        CHECK(pmc_buf_append(&r->out, p, n) == PMC_OK);
        pmc_session_consume(s, n);
    }
    p = pmc_session_output(s, &n);
    CHECK(n == 0);
}

/* Answer pending handlers as planned.  'more' says whether more input will
 * be fed; a deferred answer then waits for later feeds. */
static pmc_status settle(run *r, pmc_session *s, pmc_status st, int more)
{
    while (st == PMC_OK && pmc_session_is_pending(s)) {
        if (more && r->defer) {
            r->defer--;
            break;
        }
        if (r->pending_eom)
            maybe_actions(r, s); /* modifications are legal while pending */
        if (r->resume_again) {
            r->resume_again = 0;
            st = pmc_session_resume(s, PMC_PENDING);
            CHECK(st == PMC_OK && pmc_session_is_pending(s));
        }
        st = pmc_session_resume(s, r->resume_verdict);
        if (dump)
            fprintf(stderr, "  resume %d -> %s\n", r->resume_verdict,
                    pmc_status_name(st));
        collect(r, s);
    }
    return st;
}

static size_t piece(const uint8_t *hdr, uint32_t *rng, size_t left,
                    size_t total)
{
    size_t n;
    unsigned mode = hdr[7] & 3;
    /* Byte by byte costs a feed per byte: on big inputs it would eat the
     * fuzzing time, and random pieces find the same boundaries there. */
    if (mode == 1 && total > 4096)
        mode = 3;
    switch (mode) {
    case 0: n = left; break;
    case 1: n = 1; break;
    case 2: n = 1 + (hdr[7] >> 2); break;
    default:
        *rng = *rng * 1103515245u + 12345u;
        n = 1 + (*rng >> 16) % 64;
    }
    return n < left ? n : left;
}

static void drive(run *r, const pmc_handlers *h, const pmc_config *cfg,
                  const uint8_t *data, size_t size, int split, outcome *o)
{
    pmc_session *s = pmc_session_new(h, r, cfg);
    if (!s)
        abort(); /* no allocation limit is set: NULL means a bug */
    pmc_status st = PMC_OK;
    size_t pos = 0, out_at_error = 0;
    uint32_t rng = r->hdr[7];
    int failed = 0;

    while (pos < size) {
        size_t n = split ? piece(r->hdr, &rng, size - pos, size) : size - pos;
        st = pmc_session_feed(s, data + pos, n);
        pos += n;
        collect(r, s);
        st = settle(r, s, st, pos < size);
        if (st != PMC_OK)
            break;
    }
    if (st != PMC_OK && st != PMC_ERR_CLOSED) {
        /* An error from the MTA's bytes: closed, sticky, silent. */
        const pmc_error *e = pmc_session_error(s);
        failed = 1;
        out_at_error = r->out.len;
        CHECK(pmc_session_is_closed(s));
        CHECK(e != NULL && e->code == st);
        CHECK(pmc_session_feed(s, "\0\0\0\1A", 5) != PMC_OK);
        collect(r, s);
    }
    if (st == PMC_ERR_CLOSED)
        CHECK(pmc_session_is_closed(s));
    if (r->hdr[1] & 0x80)
        (void)pmc_session_end(s, PMC_ERR_TIMEOUT);
    else
        st = pmc_session_eof(s);
    collect(r, s);
    CHECK(pmc_session_is_closed(s));
    CHECK(!failed || r->out.len == out_at_error);
    /* Every connection that got as far as a handler, or a negotiation reply,
     * has been closed. */
    if (h->close) {
        CHECK(!r->open);
        CHECK(r->out.len < 5 || r->out.data[4] != 'O' || r->close_calls > 0);
    }

    const pmc_error *e = pmc_session_error(s);
    if (dump && e)
        fprintf(stderr, "session error: %s\n", e->message);
    o->err = e ? e->code : PMC_OK;
    o->err_offset = e ? e->offset : 0;
    check_output(&r->out);
    pmc_session_free(s);
}

static void setup(const uint8_t *hdr, pmc_handlers *h, pmc_config *cfg)
{
    memset(h, 0, sizeof *h);
    if (hdr[0] & 0x01) h->connect = h_connect;
    if (hdr[0] & 0x02) h->helo = h_helo;
    if (hdr[0] & 0x04) h->envfrom = h_envfrom;
    if (hdr[0] & 0x08) h->envrcpt = h_envrcpt;
    if (hdr[0] & 0x10) h->data = h_data;
    if (hdr[0] & 0x20) h->header = h_header;
    if (hdr[0] & 0x40) h->eoh = h_eoh;
    if (hdr[0] & 0x80) h->body = h_body;
    if (hdr[1] & 0x01) h->eom = h_eom;
    if (hdr[1] & 0x02) h->abort = h_abort;
    if (hdr[1] & 0x04) h->close = h_close;
    if (hdr[1] & 0x08) h->unknown = h_unknown;
    if (hdr[1] & 0x10) h->negotiate = h_negotiate;

    static const uint32_t nr[8] = {PMC_P_NR_HDR,  PMC_P_NR_CONN, PMC_P_NR_HELO,
                                   PMC_P_NR_MAIL, PMC_P_NR_RCPT, PMC_P_NR_DATA,
                                   PMC_P_NR_UNKN, PMC_P_NR_EOH};
    pmc_config_init(cfg);
    cfg->actions = hdr[2];
    for (int i = 0; i < 8; i++)
        if (hdr[3] & (1u << i))
            cfg->protocol |= nr[i];
    if (hdr[4] & 0x01) cfg->protocol |= PMC_P_NR_BODY;
    if (hdr[4] & 0x02) cfg->protocol |= PMC_P_SKIP;
    if (hdr[4] & 0x04) cfg->protocol |= PMC_P_RCPT_REJ;
    if (hdr[4] & 0x08) cfg->protocol |= PMC_P_HDR_LEADSPC;
    if (hdr[4] & 0x10) {
        cfg->symlist[PMC_STAGE_CONNECT] = "j {daemon_name}";
        cfg->symlist[PMC_STAGE_ENVFROM] = "";
        cfg->symlist[PMC_STAGE_EOM] = "i {rcpt_addr}";
    }
    unsigned v = hdr[4] >> 5;
    cfg->version = (v >= 1 && v <= 4) ? 1 + v : 6;
    cfg->skip_any_event = (hdr[1] & 0x20) != 0;
    cfg->max_packet = (hdr[1] & 0x40) ? 300 : 0;
}

static int same(const pmc_buf *a, const pmc_buf *b)
{
    return a->len == b->len && (a->len == 0 || !memcmp(a->data, b->data, a->len));
}

static void run_init(run *r, const uint8_t *hdr)
{
    memset(r, 0, sizeof *r);
    r->hdr = hdr;
    r->rng = 0x9E3779B9u ^ ((uint32_t)hdr[5] << 8) ^ hdr[6];
    r->density = hdr[6];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR_LEN)
        return 0;
    dump = getenv("FUZZ_DUMP") != NULL;
    if (!long_text[0]) {
        memset(long_text, 'x', sizeof long_text - 1);
        for (size_t i = 0; i < sizeof body_buf; i++)
            body_buf[i] = (uint8_t)("body\r\n"[i % 6]);
    }
    const uint8_t *hdr = data;
    pmc_handlers h;
    pmc_config cfg;
    setup(hdr, &h, &cfg);

    run whole, split;
    outcome ow, os;
    run_init(&whole, hdr);
    drive(&whole, &h, &cfg, data + HDR_LEN, size - HDR_LEN, 0, &ow);
    if ((hdr[7] & 3) != 0) {
        run_init(&split, hdr);
        drive(&split, &h, &cfg, data + HDR_LEN, size - HDR_LEN, 1, &os);
        CHECK(ow.err == os.err && ow.err_offset == os.err_offset);
        CHECK(same(&whole.log, &split.log));
        CHECK(same(&whole.out, &split.out));
        pmc_buf_free(&split.log);
        pmc_buf_free(&split.out);
    }
    pmc_buf_free(&whole.log);
    pmc_buf_free(&whole.out);
    return 0;
}
