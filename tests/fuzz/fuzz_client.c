/*
 * libFuzzer target: the MTA side (pmc_client) reading arbitrary filter
 * replies through a fake transport.
 *
 * Input layout (tests/fuzz/vec2seed.py writes the same header for seeds):
 *
 *   byte 0  bit 0: Sendmail personality (else Postfix); bit 1:
 *           ignore_verdicts; bit 2: set macros; bit 3: small max_packet;
 *           bit 4: sends fail after the 8th; bit 5: offer version 2..5
 *           (from byte 1) instead of 6; bit 6: offer actions from byte 1;
 *           bit 7: offer protocol from byte 2 instead of all v6 bits
 *   byte 1  actions offered (with bit 6), version (with bit 5)
 *   byte 2  protocol offered: every v6 bit but those selected here
 *   byte 3  how recv hands out the bytes: bits 0-1 mode (all at once, one
 *           byte, fixed size, random sizes), bits 2-7 size or seed
 *   rest    the bytes the filter "sends", then end of stream
 *
 * The client plays a whole Postfix- or Sendmail-style connection, two
 * messages, and every view it returns is read in full (ASan catches stale
 * or short ones).  Invariants: a result's code is one the header allows for
 * the call, strings are NUL-terminated, and after an error that leaves the
 * connection out of step every later call returns PMC_ERR_CLOSED.
 */
#include "pmcore.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

enum { HDR_LEN = 4 };

typedef struct fake {
    const uint8_t *p;
    size_t left;
    uint8_t split;
    uint32_t rng;
    unsigned sends;
    int fail_sends;
    int closed;
} fake;

static int fake_send(void *ctx, const uint8_t *p, size_t n)
{
    fake *f = ctx;
    CHECK(!f->closed);
    CHECK(n > 0 && p != NULL);
    volatile uint8_t sink = p[0] ^ p[n - 1]; /* the bytes must be readable */
    (void)sink;
    return (f->fail_sends && ++f->sends > 8) ? PMC_TRANSPORT_FAILED : 0;
}

static long fake_recv(void *ctx, uint8_t *p, size_t n)
{
    fake *f = ctx;
    size_t k;
    CHECK(!f->closed && n > 0);
    switch (f->split & 3) {
    case 0: k = f->left; break;
    case 1: k = 1; break;
    case 2: k = 1 + (f->split >> 2); break;
    default:
        f->rng = f->rng * 1103515245u + 12345u;
        k = 1 + (f->rng >> 16) % 100;
    }
    if (k > f->left)
        k = f->left;
    if (k > n)
        k = n;
    memcpy(p, f->p, k);
    f->p += k;
    f->left -= k;
    return (long)k;
}

static void fake_close(void *ctx)
{
    fake *f = ctx;
    CHECK(!f->closed); /* closed once */
    f->closed = 1;
}

static const char *fake_why(void *ctx)
{
    (void)ctx;
    return "fuzz transport";
}

static void check_str(pmc_str s)
{
    CHECK(s.ptr != NULL);
    CHECK(s.ptr[s.len] == 0);
    for (size_t i = 0; i < s.len; i++) /* readable in full */
        (void)*(volatile const char *)&s.ptr[i];
}

/* Check one call's outcome; returns 1 when the conversation can go on. */
static int check(pmc_client *c, pmc_status st, const pmc_result *r,
                 const char *codes)
{
    if (st != PMC_OK) {
        const pmc_error *e = pmc_client_error(c);
        CHECK(e != NULL && e->code == st);
        CHECK(memchr(e->message, 0, sizeof e->message) != NULL);
        if (st == PMC_ERR_IO || st == PMC_ERR_TIMEOUT ||
            st == PMC_ERR_BAD_REPLY) {
            /* out of step: nothing more may be sent or read */
            CHECK(pmc_client_data(c, NULL) == PMC_ERR_CLOSED);
            CHECK(pmc_client_quit(c) == PMC_ERR_CLOSED);
            return 0;
        }
        return st != PMC_ERR_CLOSED;
    }
    if (!r)
        return 1;
    CHECK(r->code == 0 || strchr(codes, r->code) != NULL);
    CHECK((r->code == 0) == (r->event == PMC_EV_COUNT));
    check_str(r->text);
    CHECK(r->code == 'y' || r->text.len == 0);
    CHECK((r->nmods == 0) == (r->mods == NULL));
    for (size_t i = 0; i < r->nmods; i++) {
        const pmc_reply *m = &r->mods[i];
        CHECK(strchr("himeb+2-qp", m->code) != NULL);
        check_str(m->a);
        check_str(m->b);
        CHECK(m->has_b || m->b.len == 0);
    }
    return 1;
}

static pmc_str S(const char *s)
{
    pmc_str v = {s, strlen(s)};
    return v;
}

static uint8_t big_body[70000];

/* One connection: negotiation, CONNECT, HELO, a message event by event,
 * UNKNOWN, a message in one call, QUIT.  Stops at the first failure. */
static void converse(pmc_client *c, int macros)
{
    pmc_result r;
    pmc_status st;
    const char *verdicts = "cartdys4";

    st = pmc_client_negotiate(c, &r);
    if (!check(c, st, &r, "O"))
        return;
    if (st == PMC_OK) {
        uint32_t v, a, p;
        pmc_client_negotiated(c, &v, &a, &p);
        CHECK(v >= 2 && v <= 6);
        for (int i = 0; i < PMC_STAGE_COUNT; i++) {
            const char *l = pmc_client_symlist(c, i);
            if (l)
                (void)strlen(l);
        }
    }
    if (macros) {
        pmc_str kv[] = {S("j"), S("mx"), S("{daemon_name}"), S("smtpd"),
                        S("i"), S("4Xq")};
        for (int i = 0; i < PMC_STAGE_COUNT; i++)
            CHECK(pmc_client_set_macros(c, i, kv, 1 + i % 3) == PMC_OK);
    }
    pmc_str from[] = {S("<a@example.org>"), S("SIZE=10")};
    pmc_str to1 = S("<b@example.com>"), to2 = S("<c@example.com>");

#define STEP(call, codes)                                                 \
    do {                                                                  \
        st = (call);                                                      \
        if (!check(c, st, &r, codes))                                     \
            return;                                                       \
    } while (0)
    STEP(pmc_client_connect(c, NULL, '6', 25, "2001:db8::1", &r), verdicts);
    STEP(pmc_client_helo(c, "client.example.org", &r), verdicts);
    STEP(pmc_client_mail(c, from, 2, &r), verdicts);
    STEP(pmc_client_rcpt(c, &to1, 1, &r), verdicts);
    STEP(pmc_client_rcpt(c, &to2, 1, &r), verdicts);
    STEP(pmc_client_data(c, &r), verdicts);
    STEP(pmc_client_header(c, S("Subject"), S("hi"), &r), verdicts);
    STEP(pmc_client_header(c, S("To"), S("b@example.com"), &r), verdicts);
    STEP(pmc_client_eoh(c, &r), verdicts);
    STEP(pmc_client_body(c, big_body, sizeof big_body, &r), verdicts);
    STEP(pmc_client_eom(c, &r), "cartdy4");
    STEP(pmc_client_unknown(c, "VRFY root", &r), verdicts);
    {
        static const char msg[] = "Subject: two\r\nX-A:  b\r\n c\r\n\r\nbody\n";
        STEP(pmc_client_message(c, from[0], &to1, 1, msg, sizeof msg - 1, &r),
             verdicts);
    }
    st = pmc_client_abort(c, NULL);
    if (!check(c, st, NULL, ""))
        return;
    st = pmc_client_quit(c);
    check(c, st, NULL, "");
#undef STEP
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < HDR_LEN)
        return 0;
    const uint8_t *h = data;
    pmc_client_config cfg;
    pmc_client_config_init(&cfg, (h[0] & 1) ? PMC_MTA_SENDMAIL : PMC_MTA_POSTFIX);
    cfg.ignore_verdicts = (h[0] & 2) != 0;
    if (h[0] & 8)
        cfg.max_packet = 64;
    if (h[0] & 0x20)
        cfg.version = 2 + h[1] % 4;
    if (h[0] & 0x40)
        cfg.actions = h[1];
    if (h[0] & 0x80)
        cfg.protocol = PMC_P_ALL_V6 & ~((uint32_t)h[2] * 0x2109u);

    fake f = {data + HDR_LEN, size - HDR_LEN, h[3], h[3], 0, (h[0] & 0x10) != 0,
              0};
    pmc_transport tr = {fake_send, fake_recv, &f, fake_close, fake_why};
    pmc_client *c = pmc_client_new(&cfg, &tr);
    CHECK(c != NULL);
    converse(c, (h[0] & 4) != 0);
    pmc_client_free(c);
    CHECK(f.closed); /* quit or free closed the transport, once */
    return 0;
}
