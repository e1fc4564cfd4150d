/*
 * Session and wire API tests for what the conversation vectors cannot
 * express: the decoder's own interface, pending answers with input queued
 * behind them, output consumption, statistics, reply formatting limits and
 * action error details.  Conversations themselves are tested by vecrun.
 */
#include "pmcore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* pmci_reply_format: the reply text, without a session around it. */
#include "internal.h"

static pmc_str S(const char *s)
{
    pmc_str r = {s, strlen(s)};
    return r;
}

/* Build an MTA stream; strings are given with their NULs explicitly. */
static void put(pmc_buf *b, char cmd, const void *p, size_t n)
{
    if (pmc_encode(b, (uint8_t)cmd, p, n) != PMC_OK)
        abort();
}

static void optneg(pmc_buf *b, uint32_t v, uint32_t a, uint32_t p)
{
    uint8_t o[12];
    for (int i = 0; i < 4; i++) {
        o[i] = (uint8_t)(v >> (24 - 8 * i));
        o[4 + i] = (uint8_t)(a >> (24 - 8 * i));
        o[8 + i] = (uint8_t)(p >> (24 - 8 * i));
    }
    put(b, 'O', o, 12);
}

/* The session's counters by value; the fill pattern makes a
 * pmc_session_stats_get that copies nothing fail every count checked. */
static pmc_session_stats stats_of(const pmc_session *s)
{
    pmc_session_stats st;

    memset(&st, 0xff, sizeof st);
    pmc_session_stats_get(s, &st);
    return st;
}

/* Reply codes in the session's output, as a string ("Occy"), consumed. */
static void codes(pmc_session *s, char *dst, size_t cap)
{
    size_t n, at = 0, k = 0;
    const uint8_t *o = pmc_session_output(s, &n);

    while (at + 5 <= n && k + 1 < cap) {
        uint32_t len = (uint32_t)o[at] << 24 | (uint32_t)o[at + 1] << 16 |
                       (uint32_t)o[at + 2] << 8 | o[at + 3];
        dst[k++] = (char)o[at + 4];
        at += 4 + len;
    }
    dst[k] = 0;
    pmc_session_consume(s, n);
}

/* ---- decoder ---------------------------------------------------------- */

static void test_decoder(void)
{
    pmc_decoder d;
    pmc_packet p;
    pmc_buf in = {0};
    int ready, count = 0;

    put(&in, 'H', "a\0", 2);
    put(&in, 'T', NULL, 0);
    put(&in, 'B', "xyz", 3);

    /* Many packets in one input: all come straight from the input. */
    pmc_decoder_init(&d, 0, 1);
    pmc_decoder_input(&d, in.data, in.len);
    while (pmc_decoder_next(&d, &p, &ready) == PMC_OK && ready) {
        count++;
        if (count == 3) {
            CHECK(p.cmd == 'B' && p.len == 3 && !memcmp(p.payload, "xyz", 3),
                  "third packet is the body");
            CHECK(p.offset == 7 + 5, "offsets count from the stream start");
            CHECK(p.payload >= in.data && p.payload < in.data + in.len,
                  "whole packets are not copied");
        }
    }
    CHECK(count == 3, "three packets from one input");
    CHECK(pmc_decoder_pending(&d) == 0, "nothing pending after whole input");
    CHECK(pmc_decoder_eof(&d) == PMC_OK, "eof between packets is clean");
    pmc_decoder_free(&d);

    /* Cut inside the second packet, then end the stream. */
    pmc_decoder_init(&d, 0, 1);
    pmc_decoder_input(&d, in.data, 9);
    count = 0;
    while (pmc_decoder_next(&d, &p, &ready) == PMC_OK && ready)
        count++;
    CHECK(count == 1, "one whole packet before the cut");
    CHECK(pmc_decoder_pending(&d) == 2, "two bytes of the next are held");
    CHECK(pmc_decoder_eof(&d) == PMC_ERR_TRUNCATED, "eof inside a packet");
    CHECK(pmc_decoder_error(&d) && pmc_decoder_error(&d)->offset == 7,
          "truncation names the packet's offset");
    CHECK(pmc_decoder_next(&d, &p, &ready) == PMC_ERR_TRUNCATED && !ready,
          "errors are sticky");
    pmc_decoder_free(&d);

    /* A limit of 4 bytes: "B xyz" has length 4 and passes, 5 would not. */
    pmc_decoder_init(&d, 4, 1);
    pmc_decoder_input(&d, in.data + 12, in.len - 12);
    CHECK(pmc_decoder_next(&d, &p, &ready) == PMC_OK && ready,
          "a packet at the limit is accepted");
    pmc_decoder_free(&d);
    pmc_decoder_init(&d, 3, 1);
    pmc_decoder_input(&d, in.data + 12, in.len - 12);
    CHECK(pmc_decoder_next(&d, &p, &ready) == PMC_ERR_TOO_BIG,
          "a packet over the limit is refused");
    CHECK(strstr(pmc_decoder_error(&d)->message, "over the limit") != NULL,
          "the message says why");
    pmc_decoder_free(&d);

    /* Reply bytes are not commands: only a command-checking decoder
     * refuses them. */
    pmc_buf_free(&in);
    put(&in, 'y', "550 x\0", 6);
    pmc_decoder_init(&d, 0, 0);
    pmc_decoder_input(&d, in.data, in.len);
    CHECK(pmc_decoder_next(&d, &p, &ready) == PMC_OK && ready && p.cmd == 'y',
          "a reply decoder takes reply codes");
    pmc_decoder_free(&d);
    pmc_decoder_init(&d, 0, 1);
    pmc_decoder_input(&d, in.data, in.len);
    CHECK(pmc_decoder_next(&d, &p, &ready) == PMC_ERR_UNKNOWN_COMMAND,
          "a command decoder refuses reply codes");
    pmc_decoder_free(&d);
    pmc_buf_free(&in);

    /* The guessing of foreign traffic. */
    pmc_decoder_init(&d, 0, 1);
    pmc_decoder_input(&d, (const uint8_t *)"GET / HTTP/1.0\r\n", 16);
    CHECK(pmc_decoder_next(&d, &p, &ready) == PMC_ERR_TOO_BIG &&
              strstr(pmc_decoder_error(&d)->message, "HTTP") != NULL,
          "HTTP on the milter port is named as such");
    pmc_decoder_free(&d);
}

static void test_encode(void)
{
    pmc_buf b = {0};
    pmc_part parts[2] = {{"ab", 2, 1}, {"c", 1, 0}};

    CHECK(pmc_encode_parts(&b, 'h', parts, 2) == PMC_OK && b.len == 4 + 5 &&
              !memcmp(b.data, "\0\0\0\5hab\0c", 9),
          "parts with NULs encode as one packet");
    pmc_buf_free(&b);
    CHECK(pmc_encode(&b, 'c', NULL, 0) == PMC_OK && b.len == 5 &&
              b.data[3] == 1,
          "an empty packet has length 1");
    pmc_buf_free(&b);
}

/* ---- reply text ------------------------------------------------------- */

static int fmt(const char *rcode, const char *xcode, const char *const *lines,
               size_t n, const char *want)
{
    pmc_buf b = {0};
    pmc_error e;
    int ok;

    if (pmci_reply_format(&b, rcode, xcode, lines, n, &e) != PMC_OK) {
        ok = want == NULL;
    } else {
        ok = want && b.len == strlen(want) + 1 &&
             !memcmp(b.data, want, b.len);
    }
    pmc_buf_free(&b);
    return ok;
}

static void test_reply_text(void)
{
    const char *one[] = {"go away"};
    const char *pct[] = {"100% sure"};
    const char *pct2[] = {"100%% sure"};
    const char *pct3[] = {"%%% %%%x%"};
    const char *two[] = {"first", "second"};
    const char *crlf[] = {"a\r\nb"};
    const char *none[] = {NULL};
    const char *lines[33];
    char longline[1000];

    CHECK(fmt("550", "5.7.1", one, 1, "550 5.7.1 go away"), "plain reply");
    CHECK(fmt("550", NULL, one, 1, "550 go away"), "no extended code");
    CHECK(fmt("450", "4.7.26", one, 1, "450 4.7.26 go away"),
          "two-digit detail is valid");
    CHECK(fmt("550", "5.123.456", one, 1, "550 5.123.456 go away"),
          "three-digit subject and detail are valid");
    CHECK(fmt("550", "5.7.1", none, 1, "550 5.7.1"), "no text");
    CHECK(fmt("550", NULL, none, 1, "550"), "code only");
    CHECK(fmt("550", "5.7.1", pct, 1, "550 5.7.1 100%% sure"),
          "percent is doubled");
    CHECK(fmt("550", "5.7.1", pct2, 1, "550 5.7.1 100%% sure"),
          "a doubled percent stays as it is");
    CHECK(fmt("550", NULL, pct3, 1, "550 %%%% %%%%x%%"),
          "three percents are a pair and a lone one");
    CHECK(fmt("550", "5.7.1", two, 2, "550-5.7.1 first\r\n550 5.7.1 second"),
          "multi-line format");
    CHECK(fmt("451", NULL, two, 2, "451-4.0.0 first\r\n451 4.0.0 second"),
          "multi-line without an extended code gets 4.0.0");
    CHECK(fmt("550", NULL, two, 2, "550-5.0.0 first\r\n550 5.0.0 second"),
          "multi-line without an extended code gets 5.0.0");
    CHECK(fmt("550", "4.7.1", one, 1, NULL), "class mismatch refused");
    CHECK(fmt("250", NULL, one, 1, NULL), "2xx refused");
    CHECK(fmt("55", NULL, one, 1, NULL), "short code refused");
    CHECK(fmt("5a0", NULL, one, 1, NULL), "non-digit code refused");
    CHECK(fmt("550", "5.7", one, 1, NULL), "two-part xcode refused");
    CHECK(fmt("550", "5.7.1234", one, 1, NULL), "four-digit detail refused");
    CHECK(fmt("550", "5..1", one, 1, NULL), "empty subject refused");
    CHECK(fmt("550", NULL, crlf, 1, NULL), "CR/LF refused");
    for (int i = 0; i < 33; i++)
        lines[i] = "x";
    {
        char want[32 * 14];
        size_t at = 0;
        for (int i = 0; i < 32; i++)
            at += (size_t)snprintf(want + at, sizeof want - at, "550%c5.7.1 x%s",
                                   i < 31 ? '-' : ' ', i < 31 ? "\r\n" : "");
        CHECK(fmt("550", "5.7.1", lines, 32, want), "32 lines are allowed");
    }
    CHECK(fmt("550", NULL, lines, 33, NULL), "33 lines are refused");
    /* 980 bytes on the wire: "550 5.7.1 " is 10, so 970 of text fit. */
    memset(longline, 'a', 970);
    longline[970] = 0;
    lines[0] = longline;
    {
        pmc_buf b = {0};
        CHECK(pmci_reply_format(&b, "550", "5.7.1", lines, 1, NULL) == PMC_OK,
              "a 980-byte line fits");
        pmc_buf_free(&b);
    }
    longline[970] = 'a';
    longline[971] = 0;
    CHECK(fmt("550", "5.7.1", lines, 1, NULL), "a 981-byte line does not");
    /* Doubling counts: "a%" times 323 and an 'a' are the 970 bytes of
     * text that fit, one more "a%" (648 bytes given) is over. */
    for (int i = 0; i < 323; i++)
        memcpy(longline + 2 * i, "a%", 2);
    memcpy(longline + 646, "a", 2);
    {
        pmc_buf b = {0};
        CHECK(pmci_reply_format(&b, "550", "5.7.1", lines, 1, NULL) == PMC_OK,
              "doubled percent signs fit at 980");
        pmc_buf_free(&b);
    }
    memcpy(longline + 646, "a%", 3);
    CHECK(fmt("550", "5.7.1", lines, 1, NULL),
          "doubling is counted against the limit");
}

/* The lines of a reply text as "rcode|xcode|text;" each. */
static int lines_of(const char *reply, const char *want)
{
    pmc_str r = {reply, strlen(reply)}, rc, xc, tx;
    char got[512];
    size_t cur = 0, at = 0;

    while (pmc_reply_next_line(r, &cur, &rc, &xc, &tx) && at < 400)
        at += (size_t)snprintf(got + at, sizeof got - at, "%.*s|%.*s|%.*s;",
                               (int)rc.len, rc.ptr, (int)xc.len, xc.ptr,
                               (int)tx.len, tx.ptr);
    got[at] = 0;
    return strcmp(got, want) == 0;
}

static void test_reply_lines(void)
{
    const char *two[] = {"100% sure", "5.7.1 is in the text"};
    pmc_buf b = {0};

    CHECK(lines_of("550 5.7.1 go away", "550|5.7.1|go away;"), "one line");
    CHECK(lines_of("550-5.7.1 a\r\n550 5.7.1 b", "550|5.7.1|a;550|5.7.1|b;"),
          "two lines");
    CHECK(lines_of("451 try later", "451||try later;"), "no xcode");
    CHECK(lines_of("550", "550||;"), "the code alone");
    CHECK(lines_of("550 5.7.1", "550|5.7.1|;"), "no text");
    CHECK(lines_of("550 5.7 x", "550||5.7 x;"), "two parts are text");
    CHECK(lines_of("550 5.a.1 x", "550||5.a.1 x;"), "letters are text");
    CHECK(lines_of("", "||;"), "an empty text is one empty line");
    CHECK(lines_of("550 a\r\n", "550||a;||;"), "a CRLF at the end");
    CHECK(pmci_reply_format(&b, "451", NULL, two, 2, NULL) == PMC_OK &&
              lines_of((const char *)b.data,
                       "451|4.0.0|100%% sure;451|4.0.0|5.7.1 is in the text;"),
          "what the formatter writes reads back");
    pmc_buf_free(&b);
}

/* ---- verdicts ---------------------------------------------------------- */

static void test_verdicts(void)
{
    static const int answers[] = {PMC_CONTINUE, PMC_REJECT, PMC_DISCARD,
                                  PMC_ACCEPT,   PMC_TEMPFAIL, PMC_NOREPLY,
                                  PMC_SKIP};
    int ok = 1;

    for (int ev = 0; ev < PMC_EV_COUNT; ev++)
        for (size_t i = 0; i < sizeof answers / sizeof *answers; i++)
            ok &= pmc_verdict_valid((pmc_event)ev, answers[i]);
    CHECK(ok, "the seven answers are valid for every event");
    CHECK(pmc_verdict_valid(PMC_EV_NEGOTIATE, PMC_ALL_OPTS),
          "ALL_OPTS answers negotiate");
    CHECK(!pmc_verdict_valid(PMC_EV_EOM, PMC_ALL_OPTS) &&
              !pmc_verdict_valid(PMC_EV_CONNECT, PMC_ALL_OPTS),
          "ALL_OPTS answers nothing else");
    CHECK(!pmc_verdict_valid(PMC_EV_HELO, 5) &&
              !pmc_verdict_valid(PMC_EV_HELO, 6) &&
              !pmc_verdict_valid(PMC_EV_HELO, 9) &&
              !pmc_verdict_valid(PMC_EV_HELO, -1) &&
              !pmc_verdict_valid(PMC_EV_HELO, 11),
          "the gaps in libmilter's numbering are not verdicts");
    CHECK(!pmc_verdict_valid(PMC_EV_EOM, PMC_PENDING),
          "PENDING is a request, not an answer");
}

/* ---- pending answers -------------------------------------------------- */

struct pend {
    int helo_calls, mail_calls, eom_calls, close_calls, abort_calls;
    int pend_helo, pend_eom;
};

static int p_helo(pmc_session *s, void *ud, pmc_str h)
{
    struct pend *p = ud;
    (void)s;
    (void)h;
    p->helo_calls++;
    return p->pend_helo ? PMC_PENDING : PMC_CONTINUE;
}

static int p_mail(pmc_session *s, void *ud, const pmc_args *a)
{
    struct pend *p = ud;
    (void)s;
    (void)a;
    p->mail_calls++;
    return PMC_CONTINUE;
}

static int p_eom(pmc_session *s, void *ud)
{
    struct pend *p = ud;
    (void)s;
    p->eom_calls++;
    return p->pend_eom ? PMC_PENDING : PMC_CONTINUE;
}

static int p_close(pmc_session *s, void *ud)
{
    struct pend *p = ud;
    (void)s;
    p->close_calls++;
    return 0;
}

static int p_abort(pmc_session *s, void *ud)
{
    struct pend *p = ud;
    (void)s;
    p->abort_calls++;
    return 0;
}

static const pmc_handlers pend_handlers = {
    .helo = p_helo, .envfrom = p_mail, .eom = p_eom, .close = p_close,
    .abort = p_abort,
};

static void test_pending(void)
{
    struct pend st = {.pend_helo = 1, .pend_eom = 1};
    pmc_config cfg;
    pmc_session *s;
    pmc_buf in = {0};
    char got[32];

    pmc_config_init(&cfg);
    cfg.actions = PMC_ACT_ADDHDRS;
    s = pmc_session_new(&pend_handlers, &st, &cfg);
    optneg(&in, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&in, 'H', "mx\0", 3);
    put(&in, 'M', "<a@b>\0", 6);
    CHECK(pmc_session_feed(s, in.data, in.len) == PMC_OK, "feed with a "
                                                          "pending helo");
    CHECK(pmc_session_is_pending(s) && st.helo_calls == 1 &&
              st.mail_calls == 0,
          "MAIL waits behind the pending HELO");
    CHECK(pmc_session_current_event(s) == PMC_EV_HELO, "HELO is pending");
    codes(s, got, sizeof got);
    CHECK(strcmp(got, "O") == 0, "only the negotiation reply so far");
    CHECK(pmc_session_progress(s) == PMC_OK, "progress while pending");
    /* More input while pending is queued behind the first. */
    pmc_buf_free(&in);
    put(&in, 'E', NULL, 0);
    CHECK(pmc_session_feed(s, in.data, 2) == PMC_OK &&
              pmc_session_feed(s, in.data + 2, in.len - 2) == PMC_OK,
          "feeding while pending is accepted");
    memset(in.data, 0xEE, in.len); /* the session must have copied it */
    CHECK(pmc_session_resume(s, PMC_CONTINUE) == PMC_OK, "resume");
    CHECK(st.mail_calls == 1 && st.eom_calls == 1, "queued input ran");
    CHECK(pmc_session_current_event(s) == PMC_EV_EOM &&
              pmc_session_is_pending(s),
          "EOM pending now");
    CHECK(pmc_session_addheader(s, S("X-Late"), S("yes")) == PMC_OK,
          "modifications while EOM is pending");
    CHECK(pmc_session_resume(s, PMC_PENDING) == PMC_OK &&
              pmc_session_is_pending(s),
          "resume with PENDING keeps waiting");
    CHECK(pmc_session_resume(s, PMC_ACCEPT) == PMC_OK, "resume EOM");
    codes(s, got, sizeof got);
    CHECK(strcmp(got, "pccha") == 0, "replies in order");
    if (strcmp(got, "pccha") != 0)
        DIAG("got %s", got);
    CHECK(pmc_session_resume(s, PMC_CONTINUE) == PMC_ERR_PENDING,
          "resume with nothing pending");
    CHECK(pmc_session_eof(s) == PMC_OK && st.close_calls == 1 &&
              st.abort_calls == 0,
          "eof after a finished message closes once, no abort");
    CHECK(pmc_session_feed(s, "x", 1) == PMC_ERR_CLOSED, "closed stays closed");
    pmc_session_free(s);
    pmc_buf_free(&in);

    /* EOF while a handler is pending inside a message. */
    memset(&st, 0, sizeof st);
    st.pend_eom = 1;
    s = pmc_session_new(&pend_handlers, &st, &cfg);
    optneg(&in, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&in, 'M', "<a@b>\0", 6);
    put(&in, 'E', NULL, 0);
    pmc_session_feed(s, in.data, in.len);
    CHECK(pmc_session_eof(s) == PMC_OK && st.abort_calls == 1 &&
              st.close_calls == 1,
          "eof during a pending EOM aborts and closes");
    CHECK(pmc_session_resume(s, PMC_CONTINUE) == PMC_ERR_CLOSED,
          "a late answer is refused");
    pmc_session_free(s);
    pmc_buf_free(&in);
}

/* ---- actions and their errors ---------------------------------------- */

struct acts {
    pmc_status st[16];
    int n;
};

static int a_helo(pmc_session *s, void *ud, pmc_str h)
{
    struct acts *a = ud;
    (void)h;
    a->st[a->n++] = pmc_session_addheader(s, S("X"), S("y"));
    return PMC_CONTINUE;
}

static int a_eom(pmc_session *s, void *ud)
{
    struct acts *a = ud;
    pmc_str nul_value = {"a\0b", 3};
    pmc_str args = S("NOTIFY=NEVER");
    a->st[a->n++] = pmc_session_addheader(s, S("X"), nul_value);
    a->st[a->n++] = pmc_session_addheader(s, S(""), S("v"));
    a->st[a->n++] = pmc_session_chgheader(s, S("X"), 1, S("v"));
    a->st[a->n++] = pmc_session_quarantine(s, S(""));
    a->st[a->n++] = pmc_session_addrcpt_par(s, S("<x@y>"), &args);
    a->st[a->n++] = pmc_session_addrcpt_par(s, S("<x@y>"), NULL);
    a->st[a->n++] = pmc_session_setreply(s, "550", "5.7.1", "bad\ntext");
    return PMC_CONTINUE;
}

static void test_action_errors(void)
{
    static const pmc_handlers h = {.helo = a_helo, .eom = a_eom};
    struct acts a = {0};
    pmc_config cfg;
    pmc_session *s;
    pmc_buf in = {0};
    char got[32];

    pmc_config_init(&cfg);
    cfg.actions = PMC_ACT_ADDHDRS | PMC_ACT_QUARANTINE | PMC_ACT_ADDRCPT;
    s = pmc_session_new(&h, &a, &cfg);
    optneg(&in, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&in, 'H', "mx\0", 3);
    put(&in, 'E', NULL, 0);
    pmc_session_feed(s, in.data, in.len);
    CHECK(a.n == 8, "every action ran");
    CHECK(a.st[0] == PMC_ERR_WRONG_STAGE, "addheader at HELO: wrong stage");
    CHECK(a.st[1] == PMC_ERR_ARGUMENT, "NUL in a header value is refused");
    CHECK(a.st[2] == PMC_ERR_ARGUMENT, "an empty header name is refused");
    CHECK(a.st[3] == PMC_ERR_NOT_NEGOTIATED, "chgheader not negotiated");
    CHECK(a.st[4] == PMC_ERR_ARGUMENT, "an empty quarantine reason");
    CHECK(a.st[5] == PMC_ERR_NOT_NEGOTIATED,
          "ESMTP args need ADDRCPT_PAR");
    CHECK(a.st[6] == PMC_OK, "no args falls back to '+'");
    CHECK(a.st[7] == PMC_ERR_REPLY_TEXT, "LF in reply text");
    CHECK(pmc_session_action_error(s) &&
              strstr(pmc_session_action_error(s)->message, "CR or LF"),
          "the last action error explains itself");
    codes(s, got, sizeof got);
    CHECK(strcmp(got, "Oc+c") == 0, "only the legal modification went out");
    CHECK(stats_of(s).messages == 1, "one message counted");
    pmc_session_free(s);
    pmc_buf_free(&in);
}

/* ---- body replacement chunking --------------------------------------- */

static size_t big_len;

static int b_eom(pmc_session *s, void *ud)
{
    char *big = ud;
    pmc_session_replacebody(s, big, 70000);
    pmc_session_replacebody(s, big, big_len - 70000);
    return PMC_CONTINUE;
}

static void test_body_chunks(void)
{
    static const pmc_handlers h = {.eom = b_eom};
    pmc_config cfg;
    pmc_session *s;
    pmc_buf in = {0};
    char *big;
    size_t n, at = 0, total = 0, max = 0;
    const uint8_t *o;
    char seq[16];
    int k = 0;

    big_len = 3 * 65535 + 7;
    big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    pmc_config_init(&cfg);
    cfg.actions = PMC_ACT_CHGBODY;
    s = pmc_session_new(&h, big, &cfg);
    optneg(&in, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&in, 'E', NULL, 0);
    pmc_session_feed(s, in.data, in.len);
    o = pmc_session_output(s, &n);
    while (at < n && k < 15) {
        uint32_t len = (uint32_t)o[at] << 24 | (uint32_t)o[at + 1] << 16 |
                       (uint32_t)o[at + 2] << 8 | o[at + 3];
        seq[k++] = (char)o[at + 4];
        if (o[at + 4] == 'b') {
            total += len - 1;
            if (len - 1 > max)
                max = len - 1;
        }
        at += 4 + len;
    }
    seq[k] = 0;
    CHECK(strcmp(seq, "Obbbbc") == 0, "four contiguous chunks then the reply");
    CHECK(total == big_len && max == 65535, "chunks of at most 65535 bytes");
    pmc_session_free(s);
    pmc_buf_free(&in);
    free(big);
}

static int empty_eom(pmc_session *s, void *ud)
{
    (void)ud;
    pmc_session_replacebody(s, NULL, 0);
    return PMC_CONTINUE;
}

/* Replacing the body with nothing still sends one (empty) 'b' packet: with
 * none, the MTA would keep the old body. */
static void test_empty_body(void)
{
    static const pmc_handlers h = {.eom = empty_eom};
    pmc_config cfg;
    pmc_session *s;
    pmc_buf in = {0};
    size_t n;
    const uint8_t *o;

    pmc_config_init(&cfg);
    cfg.actions = PMC_ACT_CHGBODY;
    s = pmc_session_new(&h, NULL, &cfg);
    optneg(&in, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&in, 'E', NULL, 0);
    pmc_session_feed(s, in.data, in.len);
    o = pmc_session_output(s, &n);
    CHECK(n == 17 + 5 + 5 && !memcmp(o + 17, "\0\0\0\1b\0\0\0\1c", 10),
          "an empty replacement is one empty 'b' before the reply");
    pmc_session_free(s);
    pmc_buf_free(&in);
}

/* ---- macros through the API ------------------------------------------ */

static void test_macros(void)
{
    static const pmc_handlers h = {0};
    pmc_session *s = pmc_session_new(&h, NULL, NULL);
    pmc_buf in = {0};
    pmc_str v, n;
    size_t cur = 0;
    int count = 0;

    optneg(&in, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&in, 'D', "Cj\0mx.example\0{daemon_name}\0smtpd\0", 34);
    put(&in, 'D', "Ei\0EOMID\0", 9);
    put(&in, 'D', "Ni\0EOHID\0", 9);
    pmc_session_feed(s, in.data, in.len);
    CHECK(pmc_session_getsymval(s, "{j}", 3, &v) && v.len == 10 &&
              !memcmp(v.ptr, "mx.example", 10),
          "{j} finds j");
    CHECK(pmc_session_getsymval(s, "daemon_name", 11, &v) &&
              strcmp(v.ptr, "smtpd") == 0,
          "daemon_name finds {daemon_name}");
    CHECK(pmc_session_getsymval(s, "i", 1, &v) && strcmp(v.ptr, "EOMID") == 0,
          "EOM shadows EOH");
    CHECK(!pmc_session_getsymval(s, "k", 1, &v), "unknown macro");
    while (pmc_session_macro_next(s, PMC_STAGE_CONNECT, &cur, &n, &v))
        count++;
    CHECK(count == 2, "two connect macros iterate");
    CHECK(pmc_session_setsymlist(s, 0, "j") == PMC_ERR_WRONG_STAGE,
          "setsymlist after negotiation is refused");
    n = pmc_macro_name(S("{j}"));
    CHECK(n.len == 1 && n.ptr[0] == 'j', "{j} compares as j");
    n = pmc_macro_name(S("{daemon_name}"));
    CHECK(n.len == 11 && !memcmp(n.ptr, "daemon_name", 11),
          "{daemon_name} compares as daemon_name");
    n = pmc_macro_name(S("i"));
    CHECK(n.len == 1 && n.ptr[0] == 'i', "a bare name stays");
    CHECK(pmc_macro_name(S("{}")).len == 0 &&
              pmc_macro_name(S("{x")).len == 2 &&
              pmc_macro_name(S("}")).len == 1,
          "only a closed pair of braces is taken off");
    pmc_session_free(s);
    pmc_buf_free(&in);
}

/* ---- the end of a session -------------------------------------------- */

static void test_end(void)
{
    struct pend st = {0};
    pmc_session *s = pmc_session_new(&pend_handlers, &st, NULL);
    pmc_buf in = {0};

    optneg(&in, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&in, 'M', "<a@b>\0", 6);
    pmc_session_feed(s, in.data, in.len);
    CHECK(pmc_session_end(s, PMC_ERR_TIMEOUT) == PMC_OK &&
              st.abort_calls == 1 && st.close_calls == 1,
          "end by the host aborts and closes");
    CHECK(pmc_session_error(s) && pmc_session_error(s)->code == PMC_ERR_TIMEOUT,
          "the host's reason is kept");
    CHECK(pmc_session_eof(s) == PMC_ERR_TIMEOUT && st.close_calls == 1,
          "eof after end does not close again");
    pmc_session_free(s);
    pmc_buf_free(&in);

    /* An empty feed, even without a buffer, is no input at all. */
    memset(&st, 0, sizeof st);
    s = pmc_session_new(&pend_handlers, &st, NULL);
    CHECK(pmc_session_feed(s, NULL, 0) == PMC_OK &&
              pmc_session_feed(s, "\0\0", 2) == PMC_OK &&
              pmc_session_feed(s, NULL, 0) == PMC_OK,
          "empty feeds between partial ones");
    CHECK(pmc_session_eof(s) == PMC_ERR_TRUNCATED, "then EOF truncates");
    pmc_session_free(s);

    /* A connection that never negotiated still gets its close, once, as
     * libmilter does: bindings free per-connection state there. */
    memset(&st, 0, sizeof st);
    s = pmc_session_new(&pend_handlers, &st, NULL);
    CHECK(pmc_session_eof(s) == PMC_OK && st.close_calls == 1 &&
              st.abort_calls == 0,
          "eof before negotiation closes once, no abort");
    CHECK(pmc_session_eof(s) == PMC_OK && st.close_calls == 1,
          "a second eof closes nothing");
    pmc_session_free(s);

    CHECK(strcmp(pmc_status_name(PMC_ERR_TOO_BIG), "TOO_BIG") == 0 &&
              strcmp(pmc_status_name((pmc_status)999), "UNKNOWN") == 0,
          "status names");
    CHECK(strcmp(pmc_event_name(PMC_EV_EOM), "eom") == 0, "event names");
}

/* ---- order of commands (docs/state-table.md) ------------------------- */

static int eoms;

static int go_on(pmc_session *s, void *ud, const pmc_args *a)
{
    (void)s; (void)ud; (void)a;
    return PMC_CONTINUE;
}

static int count_eom(pmc_session *s, void *ud)
{
    (void)s; (void)ud;
    eoms++;
    return PMC_CONTINUE;
}

static void test_order(void)
{
    /* Without an envrcpt handler the session asks for NORCPT, and EOM may
     * then follow MAIL; with one it may not.  Two sessions side by side in
     * one process: a skip one of them negotiated must not loosen the other
     * (libmilter's skip marks are process-wide). */
    static const pmc_handlers skips = {.envfrom = go_on, .eom = count_eom};
    static const pmc_handlers all = {.envfrom = go_on, .envrcpt = go_on,
                                     .eom = count_eom};
    pmc_session *a = pmc_session_new(&skips, NULL, NULL);
    pmc_session *b = pmc_session_new(&all, NULL, NULL);
    pmc_buf neg = {0}, mail = {0}, eom = {0}, body = {0};
    char got[16];

    optneg(&neg, 6, PMC_ACT_ALL, PMC_P_ALL_V6);
    put(&mail, 'M', "<a@b>\0", 6);
    put(&eom, 'E', NULL, 0);
    put(&body, 'B', "x", 1);
    pmc_session_feed(a, neg.data, neg.len);
    pmc_session_feed(b, neg.data, neg.len);
    pmc_session_feed(a, mail.data, mail.len);
    pmc_session_feed(b, mail.data, mail.len);
    codes(a, got, sizeof got);
    codes(b, got, sizeof got);
    eoms = 0;
    pmc_session_feed(a, eom.data, eom.len);
    codes(a, got, sizeof got);
    CHECK(eoms == 1 && strcmp(got, "c") == 0 &&
              stats_of(a).commands_ignored == 0,
          "order: NORCPT granted, EOM after MAIL is in order");
    pmc_session_feed(b, eom.data, eom.len);
    codes(b, got, sizeof got);
    CHECK(eoms == 1 && got[0] == 0 &&
              stats_of(b).commands_ignored == 1,
          "order: the other session did not get the skip: EOM dropped, "
          "counted, unanswered");
    pmc_session_feed(b, body.data, body.len);
    codes(b, got, sizeof got);
    CHECK(got[0] == 0 && stats_of(b).commands_ignored == 2,
          "order: a body chunk with no message is dropped too");
    pmc_session_feed(b, mail.data, mail.len);
    codes(b, got, sizeof got);
    CHECK(strcmp(got, "c") == 0, "order: MAIL after them is answered");
    pmc_session_eof(a);
    pmc_session_eof(b);
    pmc_session_free(a);
    pmc_session_free(b);
    pmc_buf_free(&neg);
    pmc_buf_free(&mail);
    pmc_buf_free(&eom);
    pmc_buf_free(&body);
}

int main(void)
{
    test_decoder();
    test_encode();
    test_reply_text();
    test_reply_lines();
    test_verdicts();
    test_pending();
    test_action_errors();
    test_body_chunks();
    test_empty_body();
    test_macros();
    test_end();
    test_order();
    return tap_done();
}
