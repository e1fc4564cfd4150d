/*
 * Tests of the client (MTA side): exact bytes per personality through a
 * recording transport with canned filter replies, reply decoding and its
 * errors, and whole conversations with a real pmc_session, in process and
 * over a socketpair with the fd transport.
 */
#define _POSIX_C_SOURCE 200809L
#include "pmcore.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

/* Payload from a string literal with embedded NULs. */
#define LIT(s) (s), (sizeof(s) - 1)
#define STR(s) ((pmc_str){(s), sizeof(s) - 1})

/* ---- a recording transport with canned replies ------------------------- */

typedef struct fake {
    pmc_buf sent;
    pmc_buf replies;
    size_t rpos;
    size_t step;    /* bytes per recv; 0 = as many as asked */
    int closed;     /* close callback calls */
} fake;

static int fake_send(void *ctx, const uint8_t *p, size_t n)
{
    fake *f = ctx;
    return pmc_buf_append(&f->sent, p, n) == PMC_OK ? 0 : -1;
}

static long fake_recv(void *ctx, uint8_t *p, size_t n)
{
    fake *f = ctx;
    size_t left = f->replies.len - f->rpos;

    if (f->step && n > f->step)
        n = f->step;
    if (n > left)
        n = left;
    if (n)
        memcpy(p, f->replies.data + f->rpos, n);
    f->rpos += n;
    return (long)n;
}

static void fake_close(void *ctx)
{
    ((fake *)ctx)->closed++;
}

static pmc_client *fake_client(fake *f, pmc_personality pers,
                               pmc_client_config *cfgp)
{
    pmc_transport tr = {fake_send, fake_recv, f, fake_close, NULL};
    pmc_client_config cfg;

    memset(f, 0, sizeof *f);
    if (cfgp == NULL) {
        pmc_client_config_init(&cfg, pers);
        cfgp = &cfg;
    }
    return pmc_client_new(cfgp, &tr);
}

static void fake_free(fake *f)
{
    pmc_buf_free(&f->sent);
    pmc_buf_free(&f->replies);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void optneg(pmc_buf *b, uint32_t v, uint32_t a, uint32_t p,
                   const void *extra, size_t n)
{
    uint8_t x[12];
    pmc_part parts[2] = {{x, 12, 0}, {extra, n, 0}};

    put32(x, v);
    put32(x + 4, a);
    put32(x + 8, p);
    pmc_encode_parts(b, 'O', parts, n ? 2 : 1);
}

static void offer(pmc_buf *b, const pmc_client_config *cfg)
{
    uint8_t x[12];

    put32(x, cfg->version);
    put32(x + 4, cfg->actions);
    put32(x + 8, cfg->protocol);
    pmc_encode(b, 'O', x, 12);
}

static void reply(pmc_buf *b, uint8_t code)
{
    pmc_encode(b, code, NULL, 0);
}

static void replies(pmc_buf *b, const char *codes)
{
    for (; *codes; codes++)
        reply(b, (uint8_t)*codes);
}

static int same(const pmc_buf *got, const pmc_buf *want)
{
    size_t i;

    if (got->len == want->len &&
        (got->len == 0 || memcmp(got->data, want->data, got->len) == 0))
        return 1;
    for (i = 0; i < got->len && i < want->len; i++)
        if (got->data[i] != want->data[i])
            break;
    DIAG("bytes differ at %zu (got %zu bytes, want %zu)", i, got->len,
         want->len);
    return 0;
}

/* Negotiate with a canned answer; the offer bytes are dropped from sent. */
static pmc_status fake_negotiate(pmc_client *c, fake *f, uint32_t v,
                                 uint32_t a, uint32_t p)
{
    pmc_result r;
    pmc_status st;

    optneg(&f->replies, v, a, p, NULL, 0);
    st = pmc_client_negotiate(c, &r);
    f->sent.len = 0;
    return st;
}

static const char *errmsg(const pmc_client *c)
{
    const pmc_error *e = pmc_client_error(c);
    return e ? e->message : "(none)";
}

/* A client that negotiated version v and protocol p with no actions, and
 * its end. */
static pmc_client *negotiated(fake *f, pmc_personality pers, uint32_t v,
                              uint32_t p)
{
    pmc_client *c = fake_client(f, pers, NULL);

    fake_negotiate(c, f, v, 0, p);
    return c;
}

static void done(pmc_client *c, fake *f)
{
    pmc_client_free(c);
    fake_free(f);
}

/* A result that says "sent, reply read". */
static int answered(const pmc_result *r, uint8_t code)
{
    return r->sent == 1 && r->unsent == PMC_UNSENT_NONE && r->awaited == 1 &&
           r->code == code;
}

static int unsent_as(const pmc_result *r, pmc_unsent why)
{
    return r->sent == 0 && r->unsent == why && r->awaited == 0 &&
           r->code == 0 && r->ended == PMC_ENDED_NONE;
}

static pmc_client_state_info state_of(const pmc_client *c)
{
    pmc_client_state_info s;

    memset(&s, 0x55, sizeof s); /* every field must be written */
    pmc_client_state(c, &s);
    return s;
}

/* ---- negotiation -------------------------------------------------------- */

static void test_negotiate(void)
{
    fake f;
    pmc_client_config cfg;
    pmc_client *c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    pmc_buf want = {0};
    pmc_result r;
    uint32_t v, a, p;
    static const char lists[] =
        "\0\0\0\0j {daemon_name}\0\0\0\0\x05i\0\0\0\0\x06\0\0\0\0\0j\0";

    pmc_client_config_init(&cfg, PMC_MTA_POSTFIX);
    offer(&want, &cfg);
    optneg(&f.replies, 6, PMC_ACT_ADDHDRS | PMC_ACT_SETSYMLIST,
           PMC_P_NOHELO | PMC_P_SKIP, lists, sizeof lists - 1);
    f.step = 1;
    CHECK(pmc_client_negotiate(c, &r) == PMC_OK && r.code == 'O' &&
              r.event == PMC_EV_NEGOTIATE,
          "negotiate: O answered, read one byte at a time");
    CHECK(same(&f.sent, &want), "negotiate: offer bytes 6/0x1FF/0x1FFFFF");
    pmc_client_negotiated(c, &v, &a, &p);
    CHECK(v == 6 && a == (PMC_ACT_ADDHDRS | PMC_ACT_SETSYMLIST) &&
              p == (PMC_P_NOHELO | PMC_P_SKIP),
          "negotiate: filter's answer kept");
    CHECK(pmc_client_symlist(c, PMC_STAGE_CONNECT) &&
              strcmp(pmc_client_symlist(c, PMC_STAGE_CONNECT), "j") == 0,
          "negotiate: later record for a stage wins");
    CHECK(pmc_client_symlist(c, PMC_STAGE_EOM) &&
              strcmp(pmc_client_symlist(c, PMC_STAGE_EOM), "i") == 0,
          "negotiate: EOM list (stage 5)");
    CHECK(pmc_client_symlist(c, PMC_STAGE_EOH) &&
              pmc_client_symlist(c, PMC_STAGE_EOH)[0] == 0,
          "negotiate: empty list kept as empty");
    CHECK(pmc_client_symlist(c, PMC_STAGE_HELO) == NULL &&
              pmc_client_symlist(c, 9) == NULL,
          "negotiate: no list where none asked");
    CHECK(pmc_client_negotiate(c, &r) == PMC_ERR_SEQUENCE,
          "negotiate: twice is a sequence error");
    pmc_client_free(c);
    CHECK(f.closed == 1, "free: closes the transport once");
    fake_free(&f);
    pmc_buf_free(&want);

    /* Replies the MTA must refuse. */
    struct {
        const char *name;
        uint32_t v, a, p;
        const char *extra;
        size_t n;
    } bad[] = {
        {"negotiate: unoffered action bit", 6, 0x200, 0, NULL, 0},
        {"negotiate: unoffered protocol bit", 6, 0, PMC_P_MDS_256K, NULL, 0},
        {"negotiate: version above offer", 7, 0, 0, NULL, 0},
        {"negotiate: version 1", 1, 0, 0, NULL, 0},
        {"negotiate: record without NUL", 6, 0, 0, "\0\0\0\0j", 5},
        {"negotiate: record for stage 9", 6, 0, 0, "\0\0\0\x09j\0", 6},
        {"negotiate: record cut short", 6, 0, 0, "\0\0", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
        optneg(&f.replies, bad[i].v, bad[i].a, bad[i].p, bad[i].extra,
               bad[i].n);
        CHECK(pmc_client_negotiate(c, &r) == PMC_ERR_BAD_REPLY &&
                  pmc_client_error(c)->code == PMC_ERR_BAD_REPLY,
              "%s", bad[i].name);
        pmc_client_free(c);
        fake_free(&f);
    }

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    pmc_encode(&f.replies, 'O', "\0\0\0\x06", 4);
    CHECK(pmc_client_negotiate(c, &r) == PMC_ERR_BAD_REPLY,
          "negotiate: short payload");
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_CLOSED,
          "after a bad reply every call is CLOSED");
    pmc_client_free(c);
    fake_free(&f);

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    reply(&f.replies, 'p');
    reply(&f.replies, 'c');
    CHECK(pmc_client_negotiate(c, &r) == PMC_ERR_BAD_REPLY,
          "negotiate: 'c' is no answer to OPTNEG (progress before is fine)");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);
    fake_free(&f);

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_SEQUENCE && f.sent.len == 0,
          "events before negotiate: SEQUENCE, nothing sent");
    pmc_client_free(c);
    fake_free(&f);

    pmc_client_config_init(&cfg, PMC_MTA_SENDMAIL);
    cfg.version = 9;
    CHECK(pmc_client_new(&cfg, &(pmc_transport){fake_send, fake_recv, &f,
                                               NULL, NULL}) == NULL,
          "new: version 9 refused");
}

/* ---- personalities ------------------------------------------------------ */

static void set_macros(pmc_client *c)
{
    pmc_str conn[] = {STR("j"), STR("mx.example"), STR("{daemon_name}"),
                      STR("smtpd")};
    pmc_str mail[] = {STR("{mail_addr}"), STR("a@b")};
    pmc_str eoh[] = {STR("i"), STR("Q1")};
    pmc_str eom[] = {STR("i"), STR("Q2")};

    pmc_client_set_macros(c, PMC_STAGE_CONNECT, conn, 2);
    pmc_client_set_macros(c, PMC_STAGE_ENVFROM, mail, 1);
    pmc_client_set_macros(c, PMC_STAGE_EOH, eoh, 1);
    pmc_client_set_macros(c, PMC_STAGE_EOM, eom, 1);
}

/* The same SMTP session driven through both personalities. */
static void drive(pmc_client *c, const char *family, const char *addr)
{
    pmc_result r;
    pmc_str from = STR("<a@b>"), to = STR("<c@d>");

    pmc_client_connect(c, NULL, family[0], 25, addr, &r);
    pmc_client_helo(c, "client.example", &r);
    pmc_client_mail(c, &from, 1, &r);
    pmc_client_rcpt(c, &to, 1, &r);
    pmc_client_data(c, &r);
    pmc_client_header(c, STR("Subject"), STR("hi"), &r);
    pmc_client_eoh(c, &r);
    pmc_client_body(c, LIT("body\r\n"), &r);
    pmc_client_eom(c, &r);
    pmc_client_mail(c, &from, 1, &r);
    pmc_client_rcpt(c, &to, 1, &r);
    pmc_client_quit(c);
}

static void test_postfix_bytes(void)
{
    fake f;
    pmc_client *c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    pmc_buf w = {0};

    fake_negotiate(c, &f, 6, PMC_ACT_ALL, PMC_P_SKIP);
    set_macros(c);
    replies(&f.replies, "ccccccccccc");
    drive(c, "4", "192.0.2.1");

    pmc_encode(&w, 'D', LIT("Cj\0mx.example\0{daemon_name}\0smtpd\0"));
    pmc_encode(&w, 'C', LIT("[192.0.2.1]\0" "4\0\x19" "192.0.2.1\0"));
    pmc_encode(&w, 'D', LIT("H"));
    pmc_encode(&w, 'H', LIT("client.example\0"));
    pmc_encode(&w, 'D', LIT("M{mail_addr}\0a@b\0"));
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'D', LIT("R"));
    pmc_encode(&w, 'R', LIT("<c@d>\0"));
    pmc_encode(&w, 'D', LIT("T"));
    pmc_encode(&w, 'T', NULL, 0);
    pmc_encode(&w, 'D', LIT("Li\0Q1\0"));
    pmc_encode(&w, 'L', LIT("Subject\0hi\0"));
    pmc_encode(&w, 'D', LIT("Ni\0Q1\0"));
    pmc_encode(&w, 'N', NULL, 0);
    pmc_encode(&w, 'D', LIT("Bi\0Q2\0"));
    pmc_encode(&w, 'B', LIT("body\r\n"));
    pmc_encode(&w, 'D', LIT("Ei\0Q2\0"));
    pmc_encode(&w, 'E', NULL, 0);
    pmc_encode(&w, 'A', NULL, 0); /* ABORT after EOM, before MAIL */
    pmc_encode(&w, 'D', LIT("M{mail_addr}\0a@b\0"));
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'D', LIT("R"));
    pmc_encode(&w, 'R', LIT("<c@d>\0"));
    pmc_encode(&w, 'A', NULL, 0); /* the open transaction, before QUIT */
    pmc_encode(&w, 'Q', NULL, 0);
    CHECK(same(&f.sent, &w), "postfix: exact packet sequence");
    CHECK(f.rpos == f.replies.len, "postfix: every reply consumed");
    CHECK(f.closed == 1, "quit: closes the transport");
    CHECK(pmc_client_eoh(c, NULL) == PMC_ERR_CLOSED, "after quit: CLOSED");
    pmc_client_free(c);
    CHECK(f.closed == 1, "free after quit: no second close");
    fake_free(&f);
    pmc_buf_free(&w);
}

static void test_sendmail_bytes(void)
{
    fake f;
    pmc_client *c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    pmc_buf w = {0};
    pmc_result r;
    pmc_str from = STR("<a@b>");

    fake_negotiate(c, &f, 6, PMC_ACT_ALL, PMC_P_SKIP);
    set_macros(c);
    replies(&f.replies, "ccccccccccc");
    drive(c, "6", "2001:db8::1");

    pmc_encode(&w, 'D', LIT("Cj\0mx.example\0{daemon_name}\0smtpd\0"));
    pmc_encode(&w, 'C', LIT("[IPv6:2001:db8::1]\0" "6\0\x19"
                            "IPv6:2001:db8::1\0"));
    pmc_encode(&w, 'H', LIT("client.example\0"));
    pmc_encode(&w, 'D', LIT("M{mail_addr}\0a@b\0"));
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'R', LIT("<c@d>\0"));
    pmc_encode(&w, 'T', NULL, 0);
    pmc_encode(&w, 'L', LIT("Subject\0hi\0"));
    pmc_encode(&w, 'D', LIT("Ni\0Q1\0"));
    pmc_encode(&w, 'N', NULL, 0);
    pmc_encode(&w, 'B', LIT("body\r\n"));
    pmc_encode(&w, 'D', LIT("Ei\0Q2\0"));
    pmc_encode(&w, 'E', NULL, 0);
    /* no ABORT after EOM */
    pmc_encode(&w, 'D', LIT("M{mail_addr}\0a@b\0"));
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'R', LIT("<c@d>\0"));
    pmc_encode(&w, 'A', NULL, 0); /* message in progress at QUIT */
    pmc_encode(&w, 'Q', NULL, 0);
    CHECK(same(&f.sent, &w), "sendmail: exact packet sequence");
    pmc_client_free(c);
    fake_free(&f);

    /* MAIL while a message is in progress: ABORT first. */
    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "cc");
    pmc_client_mail(c, &from, 1, &r);
    pmc_client_mail(c, &from, 1, &r);
    w.len = 0;
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'A', NULL, 0);
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    CHECK(same(&f.sent, &w), "sendmail: ABORT before MAIL inside a message");
    f.sent.len = 0;
    reply(&f.replies, 'c');
    pmc_client_connect(c, "host", '6', 25, "IPv6:::1", &r);
    w.len = 0;
    pmc_encode(&w, 'C', LIT("host\0" "6\0\x19" "IPv6:::1\0"));
    CHECK(same(&f.sent, &w), "sendmail: IPv6: prefix not doubled");
    f.sent.len = 0;
    reply(&f.replies, 'c');
    pmc_client_connect(c, NULL, 'U', 0, NULL, &r);
    w.len = 0;
    pmc_encode(&w, 'C', LIT("[unknown]\0U"));
    CHECK(same(&f.sent, &w), "connect: family U sends no port or address");
    CHECK(pmc_client_connect(c, "h", 'X', 1, "a", &r) == PMC_ERR_ARGUMENT,
          "connect: bad family is an argument error");
    pmc_client_free(c);
    fake_free(&f);
    pmc_buf_free(&w);
}

/* ---- NO*, NR and versions ----------------------------------------------- */

static void test_no_nr(void)
{
    fake f;
    pmc_client *c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    pmc_buf w = {0};
    pmc_result r;
    pmc_str from = STR("<a@b>"), to = STR("<c@d>");
    pmc_status st;

    fake_negotiate(c, &f, 6, 0,
                   PMC_P_NOHELO | PMC_P_NR_RCPT | PMC_P_NOHDRS |
                       PMC_P_NR_BODY | PMC_P_NOUNKNOWN | PMC_P_NR_CONN);
    /* Only MAIL, DATA, EOH and EOM get replies. */
    replies(&f.replies, "cccc");
    st = pmc_client_connect(c, "h", '4', 25, "192.0.2.1", &r);
    CHECK(st == PMC_OK && r.code == 0 && r.sent && !r.awaited,
          "NR_CONN: sent, code 0, nothing read");
    st = pmc_client_helo(c, "x", &r);
    CHECK(st == PMC_OK && unsent_as(&r, PMC_UNSENT_NEGOTIATED),
          "NOHELO: code 0, PMC_UNSENT_NEGOTIATED");
    pmc_client_mail(c, &from, 1, &r);
    CHECK(r.code == 'c' && r.event == PMC_EV_ENVFROM, "MAIL answered");
    st = pmc_client_rcpt(c, &to, 1, &r);
    CHECK(st == PMC_OK && r.code == 0 && r.event == PMC_EV_COUNT &&
              r.sent && !r.awaited && r.unsent == PMC_UNSENT_NONE,
          "NR_RCPT: code 0, sent, not awaited");
    pmc_client_data(c, &r);
    CHECK(r.code == 'c', "DATA answered");
    st = pmc_client_header(c, STR("A"), STR("b"), &r);
    CHECK(st == PMC_OK && r.code == 0, "NOHDRS: code 0");
    pmc_client_eoh(c, &r);
    st = pmc_client_body(c, LIT("x"), &r);
    CHECK(st == PMC_OK && r.code == 0 && r.sent && !r.awaited,
          "NR_BODY: code 0, sent, not awaited");
    st = pmc_client_unknown(c, "VRFY x", &r);
    CHECK(st == PMC_OK && r.code == 0, "NOUNKNOWN: code 0");
    pmc_client_eom(c, &r);
    CHECK(r.code == 'c', "EOM answered");
    pmc_encode(&w, 'C', LIT("h\0" "4\0\x19" "192.0.2.1\0"));
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'R', LIT("<c@d>\0"));
    pmc_encode(&w, 'T', NULL, 0);
    pmc_encode(&w, 'N', NULL, 0);
    pmc_encode(&w, 'B', LIT("x"));
    pmc_encode(&w, 'E', NULL, 0);
    CHECK(same(&f.sent, &w), "NO*/NR: only the wanted packets");
    CHECK(f.rpos == f.replies.len, "NO*/NR: exactly the owed replies read");
    pmc_client_free(c);
    fake_free(&f);

    /* A version-2 filter has neither DATA nor UNKNOWN; v3 has UNKNOWN. */
    for (uint32_t v = 2; v <= 4; v++) {
        c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
        fake_negotiate(c, &f, v, 0, 0);
        replies(&f.replies, "cc");
        pmc_client_data(c, &r);
        int data_sent = r.code == 'c';
        pmc_client_unknown(c, "X", &r);
        int unk_sent = r.code == 'c';
        char name[80];
        snprintf(name, sizeof name, "version %u: DATA %s, UNKNOWN %s",
                 (unsigned)v, v >= 4 ? "sent" : "not sent",
                 v >= 3 ? "sent" : "not sent");
        CHECK(data_sent == (v >= 4) && unk_sent == (v >= 3), "%s", name);
        pmc_client_free(c);
        fake_free(&f);
    }

    /* Postfix UNKNOWN: an empty 'D U' first. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    reply(&f.replies, 'r');
    pmc_client_unknown(c, "VRFY x", &r);
    w.len = 0;
    pmc_encode(&w, 'D', LIT("U"));
    pmc_encode(&w, 'U', LIT("VRFY x\0"));
    CHECK(same(&f.sent, &w) && r.code == 'r', "postfix: D U before UNKNOWN");
    pmc_client_free(c);
    fake_free(&f);
    pmc_buf_free(&w);
}

/* ---- SKIP --------------------------------------------------------------- */

static size_t count_cmd(const pmc_buf *b, uint8_t cmd)
{
    size_t n = 0;

    for (size_t i = 0; i + 5 <= b->len;) {
        uint32_t len = (uint32_t)b->data[i] << 24 | b->data[i + 1] << 16 |
                       b->data[i + 2] << 8 | b->data[i + 3];
        if (b->data[i + 4] == cmd)
            n++;
        i += 4 + len;
    }
    return n;
}

static void test_skip(void)
{
    static uint8_t big[2 * 65535 + 10];
    fake f;
    pmc_client *c;
    pmc_result r;
    pmc_str from = STR("<a@b>");

    for (int pers = 0; pers < 2; pers++) {
        c = fake_client(&f, (pmc_personality)pers, NULL);
        fake_negotiate(c, &f, 6, 0, PMC_P_SKIP);
        replies(&f.replies, "csccc");
        pmc_client_mail(c, &from, 1, &r);
        pmc_client_body(c, big, sizeof big, &r);
        CHECK(answered(&r, 's') && count_cmd(&f.sent, 'B') == 1,
              pers ? "sendmail: SKIP stops the remaining chunks"
                   : "postfix: SKIP stops the remaining chunks");
        pmc_client_body(c, LIT("more"), &r);
        CHECK(unsent_as(&r, PMC_UNSENT_SKIP) &&
                  count_cmd(&f.sent, 'B') == 1,
              "SKIP: later body calls of the message not sent, "
              "PMC_UNSENT_SKIP");
        pmc_client_eom(c, &r);
        CHECK(r.code == 'c', "SKIP: EOM still sent");
        pmc_client_mail(c, &from, 1, &r);
        f.sent.len = 0;
        pmc_client_body(c, LIT("x"), &r);
        CHECK(r.code == 'c' && count_cmd(&f.sent, 'B') == 1,
              "SKIP: next message's body sent again");
        pmc_client_free(c);
        fake_free(&f);
    }

    /* Chunking: 65536 bytes go as 65535 + 1. */
    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, PMC_P_NR_BODY);
    pmc_client_body(c, big, 65536, &r);
    /* Length fields: 0x00010000 (B + 65535 bytes), then 2 (B + 1). */
    CHECK(f.sent.len == 2 * 5 + 65536 && f.sent.data[0] == 0 &&
              f.sent.data[1] == 1 && f.sent.data[2] == 0 &&
              f.sent.data[3] == 0 && f.sent.data[65540 + 3] == 2 &&
              count_cmd(&f.sent, 'B') == 2,
          "body: 65536 bytes sent as chunks of 65535 and 1");
    pmc_client_free(c);
    fake_free(&f);

    /* Postfix: SKIP at a header skips the other headers until EOH. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, PMC_P_SKIP);
    replies(&f.replies, "scc");
    pmc_client_header(c, STR("A"), STR("1"), &r);
    CHECK(r.code == 's', "postfix: SKIP at a header accepted");
    pmc_client_header(c, STR("B"), STR("2"), &r);
    CHECK(unsent_as(&r, PMC_UNSENT_SKIP) && count_cmd(&f.sent, 'L') == 1 &&
              count_cmd(&f.sent, 'D') == 1,
          "postfix: next header (and its D) not sent, PMC_UNSENT_SKIP");
    pmc_client_eoh(c, &r);
    pmc_client_header(c, STR("C"), STR("3"), &r);
    CHECK(r.code == 'c' && count_cmd(&f.sent, 'L') == 2,
          "postfix: another event type ends the skip");
    pmc_client_free(c);
    fake_free(&f);

    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, PMC_P_SKIP);
    reply(&f.replies, 's');
    CHECK(pmc_client_header(c, STR("A"), STR("1"), &r) == PMC_ERR_BAD_REPLY,
          "sendmail: SKIP at a header is a bad reply");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);
    fake_free(&f);

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    reply(&f.replies, 's');
    CHECK(pmc_client_body(c, LIT("x"), &r) == PMC_ERR_BAD_REPLY,
          "SKIP without negotiating it is a bad reply");
    pmc_client_free(c);
    fake_free(&f);

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, PMC_P_SKIP);
    reply(&f.replies, 's');
    CHECK(pmc_client_eom(c, &r) == PMC_ERR_BAD_REPLY,
          "SKIP at EOM is a bad reply");
    pmc_client_free(c);
    fake_free(&f);
}

/* ---- what the client did: pmc_result's report and pmc_client_state ----- */

static void test_report_unsent(void)
{
    fake f;
    pmc_client *c;
    pmc_result r;
    pmc_str from = STR("<a@b>"), to = STR("<c@d>");

    /* NO* bits: negotiated, every event call says so. */
    c = negotiated(&f, PMC_MTA_POSTFIX, 6, PMC_P_NO_MASK);
    pmc_client_connect(c, "h", '4', 25, "192.0.2.1", &r);
    int all = unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_helo(c, "x", &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_mail(c, &from, 1, &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_rcpt(c, &to, 1, &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_data(c, &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_header(c, STR("A"), STR("1"), &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_eoh(c, &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_body(c, LIT("x"), &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    pmc_client_unknown(c, "X", &r);
    all = all && unsent_as(&r, PMC_UNSENT_NEGOTIATED);
    CHECK(all && count_cmd(&f.sent, 'C') == 0 && count_cmd(&f.sent, 'U') == 0,
          "unsent: NO* bits give PMC_UNSENT_NEGOTIATED for each event");
    reply(&f.replies, 'c');
    pmc_client_eom(c, &r);
    CHECK(answered(&r, 'c') && r.event == PMC_EV_EOM &&
              r.ended == PMC_ENDED_NONE,
          "unsent: EOM has no NO bit: sent and answered");
    pmc_client_body(c, NULL, 0, &r);
    CHECK(r.sent == 0 && r.unsent == PMC_UNSENT_EMPTY,
          "unsent: an empty body gives PMC_UNSENT_EMPTY");
    done(c, &f);

    /* Versions: DATA before 4, UNKNOWN before 3. */
    c = negotiated(&f, PMC_MTA_SENDMAIL, 2, 0);
    pmc_client_data(c, &r);
    int data = unsent_as(&r, PMC_UNSENT_VERSION);
    pmc_client_unknown(c, "X", &r);
    CHECK(data && unsent_as(&r, PMC_UNSENT_VERSION) && f.sent.len == 0,
          "unsent: version 2 gives PMC_UNSENT_VERSION for DATA and UNKNOWN");
    done(c, &f);
    c = negotiated(&f, PMC_MTA_POSTFIX, 3, 0);
    reply(&f.replies, 'c');
    pmc_client_unknown(c, "X", &r);
    int unk = answered(&r, 'c');
    pmc_client_data(c, &r);
    CHECK(unk && unsent_as(&r, PMC_UNSENT_VERSION),
          "unsent: version 3 has UNKNOWN, not DATA");
    done(c, &f);

    /* A verdict that ends the message, then one that ends the
     * connection; the connection is tested first, before the NO* bits. */
    c = negotiated(&f, PMC_MTA_POSTFIX, 6, PMC_P_NOHELO);
    replies(&f.replies, "cr");
    pmc_client_mail(c, &from, 1, &r);
    pmc_client_rcpt(c, &to, 1, &r);
    CHECK(answered(&r, 'r') && r.ended == PMC_ENDED_NONE,
          "ended: REJECT at RCPT refuses only the recipient");
    reply(&f.replies, 'd');
    pmc_client_rcpt(c, &to, 1, &r);
    CHECK(answered(&r, 'd') && r.ended == PMC_ENDED_MESSAGE,
          "ended: DISCARD at RCPT ends the message");
    pmc_client_data(c, &r);
    int d1 = unsent_as(&r, PMC_UNSENT_MSG_ENDED);
    pmc_client_eom(c, &r);
    CHECK(d1 && unsent_as(&r, PMC_UNSENT_MSG_ENDED),
          "unsent: DATA and EOM give PMC_UNSENT_MSG_ENDED");
    reply(&f.replies, 'c');
    pmc_client_unknown(c, "NOOP", &r);
    CHECK(answered(&r, 'c'), "unsent: UNKNOWN is no part of the message");
    done(c, &f);

    c = negotiated(&f, PMC_MTA_POSTFIX, 6, PMC_P_NOHELO);
    reply(&f.replies, 't');
    pmc_client_connect(c, "h", '4', 25, "192.0.2.1", &r);
    CHECK(answered(&r, 't') && r.ended == PMC_ENDED_CONNECTION,
          "ended: TEMPFAIL at CONNECT ends the connection");
    f.sent.len = 0;
    pmc_client_helo(c, "x", &r);
    int h = unsent_as(&r, PMC_UNSENT_CONN_ENDED);
    pmc_client_mail(c, &from, 1, &r);
    int m = unsent_as(&r, PMC_UNSENT_CONN_ENDED);
    pmc_client_unknown(c, "NOOP", &r);
    int u = unsent_as(&r, PMC_UNSENT_CONN_ENDED);
    CHECK(h && m && u && f.sent.len == 0,
          "unsent: after it, PMC_UNSENT_CONN_ENDED (before NOHELO)");
    CHECK(pmc_client_abort(c, &r) == PMC_OK &&
              unsent_as(&r, PMC_UNSENT_CONN_ENDED) && f.sent.len == 0,
          "abort: not sent after a verdict ended the connection");
    done(c, &f);
}

static void test_report_sent(void)
{
    fake f;
    pmc_client *c;
    pmc_client_config cfg;
    pmc_result r;
    pmc_str from = STR("<a@b>"), to = STR("<c@d>");
    pmc_status st;

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    optneg(&f.replies, 6, 0, 0, NULL, 0);
    st = pmc_client_negotiate(c, &r);
    CHECK(st == PMC_OK && answered(&r, 'O') && r.ended == PMC_ENDED_NONE,
          "negotiate: sent and answered");
    f.sent.len = 0;
    CHECK(pmc_client_abort(c, &r) == PMC_OK && r.sent == 1 &&
              r.awaited == 0 && r.code == 0 && count_cmd(&f.sent, 'A') == 1,
          "abort: sent, ABORT has no reply");
    done(c, &f);

    /* What each verdict ends, per personality. */
    static const struct {
        pmc_personality pers;
        char at, code;
        pmc_ended want;
    } cases[] = {
        {PMC_MTA_POSTFIX, 'C', 'r', PMC_ENDED_CONNECTION},
        {PMC_MTA_SENDMAIL, 'C', 'a', PMC_ENDED_CONNECTION},
        {PMC_MTA_POSTFIX, 'H', 'r', PMC_ENDED_CONNECTION},
        {PMC_MTA_SENDMAIL, 'H', 'r', PMC_ENDED_NONE},
        {PMC_MTA_SENDMAIL, 'H', 'a', PMC_ENDED_CONNECTION},
        {PMC_MTA_POSTFIX, 'M', 'r', PMC_ENDED_MESSAGE},
        {PMC_MTA_SENDMAIL, 'M', 'a', PMC_ENDED_MESSAGE},
        {PMC_MTA_POSTFIX, 'M', '4', PMC_ENDED_CONNECTION},
        {PMC_MTA_SENDMAIL, 'R', 't', PMC_ENDED_NONE},
        {PMC_MTA_POSTFIX, 'R', 'a', PMC_ENDED_MESSAGE},
        {PMC_MTA_POSTFIX, 'E', 'r', PMC_ENDED_NONE},
        {PMC_MTA_POSTFIX, 'E', '4', PMC_ENDED_CONNECTION},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c = negotiated(&f, cases[i].pers, 6, 0);
        reply(&f.replies, (uint8_t)cases[i].code);
        switch (cases[i].at) {
        case 'C': pmc_client_connect(c, "h", 'U', 0, NULL, &r); break;
        case 'H': pmc_client_helo(c, "x", &r); break;
        case 'M': pmc_client_mail(c, &from, 1, &r); break;
        case 'R': pmc_client_rcpt(c, &to, 1, &r); break;
        default: pmc_client_eom(c, &r); break;
        }
        if (!answered(&r, (uint8_t)cases[i].code) ||
            r.ended != cases[i].want) {
            DIAG("case %zu: %c '%c' ended %d", i, cases[i].at, cases[i].code,
                 (int)r.ended);
            ok = 0;
        }
        done(c, &f);
    }
    CHECK(ok, "ended: each verdict as the personality's MTA sees it");

    /* ignore_verdicts: r.ended still says what the verdict meant, and the
     * client sends on; a filter drops a RCPT after a refused MAIL unanswered
     * (docs/state-table.md), so the client does not wait for a reply. */
    pmc_client_config_init(&cfg, PMC_MTA_POSTFIX);
    cfg.ignore_verdicts = 1;
    c = fake_client(&f, PMC_MTA_POSTFIX, &cfg);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "r");
    pmc_client_mail(c, &from, 1, &r);
    CHECK(answered(&r, 'r') && r.ended == PMC_ENDED_MESSAGE,
          "ignore_verdicts: r.ended still set");
    pmc_client_state_info s = state_of(c);
    CHECK(s.message_ended == 0 && s.connection_ended == 0,
          "ignore_verdicts: the state says nothing ended");
    pmc_client_rcpt(c, &to, 1, &r);
    CHECK(r.sent && r.dropped && !r.awaited && r.code == 0 &&
              count_cmd(&f.sent, 'R') == 1 && f.rpos == f.replies.len,
          "ignore_verdicts: RCPT sent after the REJECT, dropped, not awaited");
    done(c, &f);

    /* pmc_client_message: r is the deciding call's. */
    c = negotiated(&f, PMC_MTA_SENDMAIL, 6, 0);
    reply(&f.replies, 'c');
    pmc_encode(&f.replies, 'y', LIT("550 5.7.1 no\0"));
    st = pmc_client_message(c, from, &to, 1, LIT("A: b\n\nbody\n"), &r);
    CHECK(st == PMC_OK && answered(&r, 'y') && r.event == PMC_EV_ENVRCPT &&
              r.ended == PMC_ENDED_NONE,
          "message: r tells about the RCPT that decided");
    done(c, &f);
}

/* Does the next MAIL go after an ABORT?  Sends MAIL (answered 'c'). */
static int mail_aborts(pmc_client *c, fake *f)
{
    pmc_str from = STR("<a@b>");
    pmc_result r;

    f->sent.len = 0;
    reply(&f->replies, 'c');
    if (pmc_client_mail(c, &from, 1, &r) != PMC_OK)
        return -1;
    return count_cmd(&f->sent, 'A') == 1;
}

static void test_state(void)
{
    fake f;
    pmc_client *c;
    pmc_result r;
    pmc_client_state_info s;
    pmc_str from = STR("<a@b>"), to = STR("<c@d>");
    pmc_status st;
    char name[120];

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    s = state_of(c);
    CHECK(!s.message_ended && !s.connection_ended && !s.abort_owed,
          "state: all 0 before negotiation");
    fake_negotiate(c, &f, 6, 0, 0);
    s = state_of(c);
    CHECK(!s.message_ended && !s.connection_ended && !s.abort_owed,
          "state: all 0 after negotiation");
    done(c, &f);

    for (int pers = 0; pers < 2; pers++) {
        const char *pn = pers ? "sendmail" : "postfix";

        /* REJECT at RCPT: the message goes on, ABORT owed by both. */
        c = negotiated(&f, (pmc_personality)pers, 6, 0);
        replies(&f.replies, "cr");
        pmc_client_mail(c, &from, 1, &r);
        pmc_client_rcpt(c, &to, 1, &r);
        s = state_of(c);
        snprintf(name, sizeof name, "state %s: REJECT at RCPT: message "
                 "open, ABORT owed", pn);
        CHECK(!s.message_ended && !s.connection_ended && s.abort_owed &&
                  mail_aborts(c, &f) == 1, "%s", name);

        done(c, &f);
        c = negotiated(&f, (pmc_personality)pers, 6, 0);
        /* REJECT at MAIL: message ended; Postfix still owes ABORT for the
         * transaction, Sendmail's message is over. */
        reply(&f.replies, 'r');
        pmc_client_mail(c, &from, 1, &r);
        s = state_of(c);
        snprintf(name, sizeof name, "state %s: REJECT at MAIL: message "
                 "ended, ABORT %s", pn, pers ? "not owed" : "owed");
        CHECK(s.message_ended && !s.connection_ended &&
                  s.abort_owed == !pers && mail_aborts(c, &f) == !pers,
              "%s", name);
        s = state_of(c);
        snprintf(name, sizeof name, "state %s: the next MAIL clears "
                 "message_ended", pn);
        CHECK(!s.message_ended && s.abort_owed, "%s", name);

        /* After EOM only Postfix owes ABORT. */
        reply(&f.replies, 'c');
        pmc_client_eom(c, &r);
        s = state_of(c);
        snprintf(name, sizeof name, "state %s: after EOM ABORT %s", pn,
                 pers ? "not owed" : "owed");
        CHECK(!s.message_ended && s.abort_owed == !pers &&
                  mail_aborts(c, &f) == !pers, "%s", name);
        pmc_client_abort(c, NULL);
        s = state_of(c);
        snprintf(name, sizeof name, "state %s: nothing owed after ABORT",
                 pn);
        CHECK(!s.abort_owed && mail_aborts(c, &f) == 0, "%s", name);
        done(c, &f);

        /* REJECT at CONNECT: the connection is over, no ABORT. */
        c = negotiated(&f, (pmc_personality)pers, 6, 0);
        reply(&f.replies, 'r');
        pmc_client_connect(c, "h", '4', 25, "192.0.2.1", &r);
        s = state_of(c);
        f.sent.len = 0;
        pmc_client_mail(c, &from, 1, &r);
        snprintf(name, sizeof name, "state %s: REJECT at CONNECT: "
                 "connection ended, no ABORT", pn);
        CHECK(s.connection_ended && !s.message_ended && !s.abort_owed &&
                  f.sent.len == 0 && unsent_as(&r, PMC_UNSENT_CONN_ENDED),
              "%s", name);
        st = pmc_client_quit_nc(c);
        s = state_of(c);
        snprintf(name, sizeof name, "state %s: QUIT_NC (no ABORT) starts "
                 "afresh", pn);
        CHECK(st == PMC_OK && !s.connection_ended && !s.message_ended &&
                  !s.abort_owed && count_cmd(&f.sent, 'A') == 0 &&
                  count_cmd(&f.sent, 'K') == 1, "%s", name);
        done(c, &f);
    }

    /* abort_owed also announces the ABORT before QUIT. */
    c = negotiated(&f, PMC_MTA_POSTFIX, 6, 0);
    reply(&f.replies, 'c');
    pmc_client_mail(c, &from, 1, &r);
    s = state_of(c);
    f.sent.len = 0;
    CHECK(s.abort_owed && pmc_client_quit(c) == PMC_OK &&
              count_cmd(&f.sent, 'A') == 1 && count_cmd(&f.sent, 'Q') == 1,
          "state: abort_owed, and QUIT goes after an ABORT");
    s = state_of(c);
    CHECK(!s.message_ended && !s.connection_ended && !s.abort_owed,
          "state: all 0 after QUIT");
    done(c, &f);

    /* After a failure nothing more is sent: all 0. */
    c = negotiated(&f, PMC_MTA_POSTFIX, 6, 0);
    reply(&f.replies, 'c');
    pmc_client_mail(c, &from, 1, &r);
    CHECK(pmc_client_rcpt(c, &to, 1, &r) == PMC_ERR_IO,
          "state: the filter hangs up");
    s = state_of(c);
    CHECK(!s.message_ended && !s.connection_ended && !s.abort_owed,
          "state: all 0 after a failure");
    done(c, &f);
}

/* ---- replies and modifications ------------------------------------------ */

static void test_mods(void)
{
    fake f;
    pmc_client *c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    pmc_result r;
    pmc_buf *b = &f.replies;

    fake_negotiate(c, &f, 6, PMC_ACT_ALL & ~PMC_ACT_SETSYMLIST, 0);
    pmc_encode(b, 'p', NULL, 0);
    pmc_encode(b, 'h', LIT("X-A\0one\0"));
    pmc_encode(b, 'i', LIT("\0\0\0\x02X-B\0two\0"));
    pmc_encode(b, 'm', LIT("\0\0\0\x01Subject\0\0"));
    pmc_encode(b, 'e', LIT("<n@b>\0SIZE=1\0"));
    pmc_encode(b, 'e', LIT("<m@b>\0"));
    pmc_encode(b, '+', LIT("<x@y>\0"));
    pmc_encode(b, '-', LIT("<c@d>\0"));
    pmc_encode(b, '2', LIT("<z@y>\0NOTIFY=NEVER\0"));
    pmc_encode(b, 'q', LIT("held\0"));
    pmc_encode(b, 'b', LIT("new "));
    pmc_encode(b, 'b', LIT("body"));
    pmc_encode(b, 'h', LIT("X-N\0a\0b\0")); /* interior NUL survives */
    pmc_encode(b, 'y', LIT("550 5.7.1 no\0"));
    f.step = 3;
    CHECK(pmc_client_eom(c, &r) == PMC_OK, "eom: mods then final");
    CHECK(r.code == 'y' && r.text.len == 12 &&
              memcmp(r.text.ptr, "550 5.7.1 no", 13) == 0,
          "eom: 'y' text (NUL-terminated view)");
    CHECK(r.nmods == 13 && r.event == PMC_EV_EOM,
          "eom: 13 mods incl. progress");
    if (r.nmods == 13) {
        const pmc_reply *m = r.mods;
        CHECK(m[0].code == 'p', "mod: progress recorded in order");
        CHECK(m[1].code == 'h' && m[1].a.len == 3 &&
                  strcmp(m[1].a.ptr, "X-A") == 0 &&
                  strcmp(m[1].b.ptr, "one") == 0 && m[1].has_b,
              "mod: h name/value");
        CHECK(m[2].code == 'i' && m[2].index == 2 &&
                  strcmp(m[2].a.ptr, "X-B") == 0 &&
                  strcmp(m[2].b.ptr, "two") == 0,
              "mod: i index/name/value");
        CHECK(m[3].code == 'm' && m[3].index == 1 && m[3].b.len == 0 &&
                  m[3].has_b && strcmp(m[3].a.ptr, "Subject") == 0,
              "mod: m with empty value (delete)");
        CHECK(m[4].code == 'e' && strcmp(m[4].a.ptr, "<n@b>") == 0 &&
                  m[4].has_b && strcmp(m[4].b.ptr, "SIZE=1") == 0,
              "mod: e with args");
        CHECK(m[5].code == 'e' && !m[5].has_b && m[5].b.ptr &&
                  m[5].b.len == 0,
              "mod: e without args");
        CHECK(m[6].code == '+' && strcmp(m[6].a.ptr, "<x@y>") == 0,
              "mod: + recipient");
        CHECK(m[7].code == '-' && strcmp(m[7].a.ptr, "<c@d>") == 0,
              "mod: - recipient");
        CHECK(m[8].code == '2' && strcmp(m[8].b.ptr, "NOTIFY=NEVER") == 0,
              "mod: 2 recipient with args");
        CHECK(m[9].code == 'q' && strcmp(m[9].a.ptr, "held") == 0,
              "mod: q reason");
        CHECK(m[10].code == 'b' && m[10].a.len == 4 &&
                  memcmp(m[10].a.ptr, "new ", 4) == 0 &&
                  m[11].code == 'b' && memcmp(m[11].a.ptr, "body", 4) == 0,
              "mod: b chunks raw");
        CHECK(m[12].code == 'h' && m[12].b.len == 3 &&
                  memcmp(m[12].b.ptr, "a\0b", 4) == 0,
              "mod: h value keeps an interior NUL");
    }
    pmc_client_free(c);
    fake_free(&f);

    /* Errors in modifications, one client each. */
    struct {
        const char *name;
        pmc_personality pers;
        uint32_t actions;
        uint8_t stage_cmd; /* 'R' rcpt or 'E' eom */
        uint8_t code;
        const char *payload;
        size_t n;
    } bad[] = {
        {"mod: h without ADDHDRS", PMC_MTA_POSTFIX, PMC_ACT_CHGHDRS, 'E',
         'h', "a\0b\0", 4},
        {"mod: h at RCPT", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'R', 'h', "a\0b\0",
         4},
        {"mod: q at RCPT under sendmail", PMC_MTA_SENDMAIL, PMC_ACT_ALL, 'R',
         'q', "r\0", 2},
        {"mod: h without value", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'E', 'h',
         "a\0", 2},
        {"mod: h without final NUL", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'E', 'h',
         "a\0b", 3},
        {"mod: i shorter than its index", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'E',
         'i', "\0\0", 2},
        {"mod: + with trailing bytes", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'E', '+',
         "a\0b", 3},
        {"mod: e args not NUL-ended", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'E', 'e',
         "a\0b", 3},
        {"mod: q empty payload", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'E', 'q', "",
         0},
        {"reply: unknown code Z", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'E', 'Z', "",
         0},
        {"reply: 'c' with a payload", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'R', 'c',
         "x", 1},
        {"reply: 'y' with 250", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'R', 'y',
         "250 ok\0", 7},
        {"reply: 'y' without NUL", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'R', 'y',
         "550 no", 6},
        {"reply: 'p' with payload", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'R', 'p',
         "x", 1},
        {"reply: '4' under sendmail", PMC_MTA_SENDMAIL, PMC_ACT_ALL, 'R', '4',
         "", 0},
        {"reply: 'O' outside negotiation", PMC_MTA_POSTFIX, PMC_ACT_ALL, 'R',
         'O', "", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pmc_str to = STR("<c@d>");
        pmc_status st;

        c = fake_client(&f, bad[i].pers, NULL);
        fake_negotiate(c, &f, 6, bad[i].actions, 0);
        pmc_encode(&f.replies, bad[i].code, bad[i].payload, bad[i].n);
        reply(&f.replies, 'c');
        st = bad[i].stage_cmd == 'R' ? pmc_client_rcpt(c, &to, 1, &r)
                                     : pmc_client_eom(c, &r);
        CHECK(st == PMC_ERR_BAD_REPLY, "%s", bad[i].name);
        if (st != PMC_ERR_BAD_REPLY)
            DIAG("got %s", pmc_status_name(st));
        pmc_client_free(c);
        fake_free(&f);
    }

    /* Postfix: quarantine at any stage, not final. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, PMC_ACT_QUARANTINE, 0);
    pmc_encode(&f.replies, 'q', LIT("spam\0"));
    reply(&f.replies, 'c');
    CHECK(pmc_client_helo(c, "x", &r) == PMC_OK && r.code == 'c' &&
              r.nmods == 1 && r.mods[0].code == 'q' &&
              strcmp(r.mods[0].a.ptr, "spam") == 0,
          "postfix: q at HELO collected, c final");
    pmc_client_free(c);
    fake_free(&f);

    /* Postfix: body replacement interleaved with other edits. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, PMC_ACT_ALL, 0);
    pmc_encode(&f.replies, 'b', LIT("a"));
    pmc_encode(&f.replies, 'h', LIT("X\0y\0"));
    pmc_encode(&f.replies, 'b', LIT("b"));
    reply(&f.replies, 'c');
    CHECK(pmc_client_eom(c, &r) == PMC_ERR_BAD_REPLY,
          "postfix: interleaved body replacement refused");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);
    fake_free(&f);

    /* Progress before a final reply at any event. */
    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "ppt");
    CHECK(pmc_client_helo(c, "x", &r) == PMC_OK && r.code == 't' &&
              r.nmods == 2 && r.mods[1].code == 'p',
          "progress: collected before the final reply");
    /* The views of a result die at the next call; a fresh one is empty. */
    reply(&f.replies, 'c');
    pmc_client_helo(c, "x", &r);
    CHECK(r.nmods == 0 && r.mods == NULL && r.text.ptr &&
              r.text.len == 0,
          "result: reset for each command");
    pmc_client_free(c);
    fake_free(&f);
}

/* ---- end of stream, verdict state, misc --------------------------------- */

static void test_eof_and_state(void)
{
    fake f;
    pmc_client *c;
    pmc_result r;
    pmc_str from = STR("<a@b>"), to = STR("<c@d>");
    pmc_client_config cfg;

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_IO,
          "EOF while a reply is owed: IO");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);
    fake_free(&f);

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    pmc_encode(&f.replies, 'c', NULL, 0);
    f.replies.len -= 1;
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_IO &&
              strstr(errmsg(c), "inside") != NULL,
          "EOF inside a reply packet: IO, says so");
    pmc_client_free(c);
    fake_free(&f);

    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    pmc_buf_append(&f.replies, "\0\0\0\0c", 5);
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_BAD_REPLY,
          "zero-length reply packet: BAD_REPLY");
    pmc_client_free(c);
    fake_free(&f);

    pmc_client_config_init(&cfg, PMC_MTA_POSTFIX);
    cfg.max_packet = 16;
    c = fake_client(&f, PMC_MTA_POSTFIX, &cfg);
    fake_negotiate(c, &f, 6, 0, 0);
    pmc_encode(&f.replies, 'y', LIT("550 a long reply text\0"));
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_BAD_REPLY,
          "reply over max_packet: BAD_REPLY");
    pmc_client_free(c);
    fake_free(&f);

    /* REJECT at MAIL ends the message: nothing more until the next MAIL. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "rc");
    pmc_client_mail(c, &from, 1, &r);
    CHECK(r.code == 'r', "verdict: MAIL rejected");
    f.sent.len = 0;
    pmc_client_rcpt(c, &to, 1, &r);
    int rc1 = r.code;
    pmc_client_data(c, &r);
    int rc2 = r.code;
    pmc_client_eom(c, &r);
    CHECK(rc1 == 0 && rc2 == 0 && r.code == 0 && f.sent.len == 0,
          "verdict: rest of the rejected message not sent");
    pmc_client_mail(c, &from, 1, &r);
    CHECK(r.code == 'c' && f.sent.data[4] == 'A',
          "verdict: next MAIL sent, after ABORT under postfix");
    pmc_client_free(c);
    fake_free(&f);

    /* RCPT reject keeps the transaction; ACCEPT at CONNECT ends it all. */
    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "crca");
    pmc_client_mail(c, &from, 1, &r);
    pmc_client_rcpt(c, &to, 1, &r);
    pmc_client_rcpt(c, &to, 1, &r);
    CHECK(r.code == 'c', "verdict: RCPT reject keeps the message going");
    pmc_client_connect(c, "h", 'L', 0, "/sock", &r);
    CHECK(r.code == 'a', "verdict: ACCEPT at CONNECT");
    f.sent.len = 0;
    pmc_client_helo(c, "x", &r);
    pmc_client_unknown(c, "X", &r);
    CHECK(r.code == 0 && f.sent.len == 0,
          "verdict: connection accepted, nothing more sent");
    pmc_client_quit(c);
    CHECK(f.sent.len == 5 && f.sent.data[4] == 'Q',
          "verdict: QUIT still sent");
    pmc_client_free(c);
    fake_free(&f);

    /* ignore_verdicts sends regardless. */
    pmc_client_config_init(&cfg, PMC_MTA_POSTFIX);
    cfg.ignore_verdicts = 1;
    c = fake_client(&f, PMC_MTA_POSTFIX, &cfg);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "rc");
    pmc_client_mail(c, &from, 1, &r);
    pmc_client_rcpt(c, &to, 1, &r);
    CHECK(r.sent && r.dropped && r.code == 0,
          "ignore_verdicts: RCPT sent after MAIL reject, and dropped");
    pmc_client_mail(c, &from, 1, &r);
    CHECK(r.code == 'c' && !r.dropped,
          "ignore_verdicts: MAIL after it is in order again");
    pmc_client_free(c);
    fake_free(&f);

    /* QUIT_NC: K, and the connection may start again. */
    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "ac");
    pmc_client_connect(c, "h", 'U', 0, NULL, &r);
    pmc_client_quit_nc(c);
    CHECK(f.closed == 0 && f.sent.data[f.sent.len - 1] == 'K',
          "quit_nc: K sent, transport kept");
    pmc_client_connect(c, "h", 'U', 0, NULL, &r);
    CHECK(r.code == 'c', "quit_nc: new CONNECT after an accepted one");
    pmc_client_free(c);
    fake_free(&f);

    /* SHUTDOWN under Postfix ends the connection like a 421. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "4");
    CHECK(pmc_client_mail(c, &from, 1, &r) == PMC_OK && r.code == '4',
          "postfix: SHUTDOWN '4' is a final reply");
    f.sent.len = 0;
    pmc_client_rcpt(c, &to, 1, &r);
    pmc_client_abort(c, NULL);
    CHECK(r.code == 0 && f.sent.len == 0,
          "postfix: nothing sent after SHUTDOWN (ABORT neither)");
    pmc_client_free(c);
    fake_free(&f);

    /* ACCEPT at RCPT ends the message; explicit ABORT resets. */
    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "cac");
    pmc_client_mail(c, &from, 1, &r);
    pmc_client_rcpt(c, &to, 1, &r);
    f.sent.len = 0;
    pmc_client_eom(c, &r);
    CHECK(r.code == 0 && f.sent.len == 0,
          "verdict: ACCEPT at RCPT, EOM not sent");
    pmc_client_abort(c, NULL);
    pmc_client_mail(c, &from, 1, &r);
    CHECK(f.sent.len == 5 + 11 && f.sent.data[4] == 'A' && r.code == 'c',
          "abort: sent on request, then MAIL without another ABORT");
    pmc_client_free(c);
    fake_free(&f);

    /* Postfix sends headers over 64 KiB as they are. */
    {
        size_t n = 70000;
        char *v = malloc(n);
        c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
        fake_negotiate(c, &f, 6, 0, PMC_P_NR_HDR);
        memset(v, 'v', n);
        pmc_client_header(c, STR("X-Big"), (pmc_str){v, n}, &r);
        CHECK(count_cmd(&f.sent, 'L') == 1 &&
                  f.sent.len == 5 + 1 + 5 + 6 + n + 1,
              "postfix: 70000-byte header in one packet");
        pmc_client_free(c);
        fake_free(&f);
        free(v);
    }

    /* Macros: arguments checked. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    {
        pmc_str bad1[] = {STR(""), STR("v")};
        pmc_str bad2[] = {STR("n"), {"a\0b", 3}};
        CHECK(pmc_client_set_macros(c, 7, bad1, 0) == PMC_ERR_ARGUMENT &&
                  pmc_client_set_macros(c, 0, bad1, 1) ==
                      PMC_ERR_ARGUMENT &&
                  pmc_client_set_macros(c, 0, bad2, 1) == PMC_ERR_ARGUMENT,
              "set_macros: bad stage, empty name, NUL in value");
        pmc_str m[] = {STR("j"), STR("x")};
        CHECK(pmc_client_set_macros(c, 0, m, 1) == PMC_OK &&
                  pmc_client_set_macros(c, 0, NULL, 0) == PMC_OK,
              "set_macros: set and clear");
    }
    pmc_client_free(c);
    fake_free(&f);
}

/* ---- whole message parsing ---------------------------------------------- */

static void test_message(void)
{
    fake f;
    pmc_client *c;
    pmc_result r;
    pmc_buf w = {0};
    pmc_str from = STR("<a@b>"), rcpts[2] = {STR("<c@d>"), STR("<e@f>")};
    static const char msg[] = "Subject: hi\r\n"
                              "X-Fold: a\r\n\tb\r\n"
                              "X-NoSpace:x\n"
                              "\r\n"
                              "line1\nline2\r\n";

    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, PMC_ACT_ADDHDRS, 0);
    replies(&f.replies, "ccccccccc");
    pmc_encode(&f.replies, 'h', LIT("X-Seen\0yes\0"));
    reply(&f.replies, 'c');
    CHECK(pmc_client_message(c, from, rcpts, 2, msg, sizeof msg - 1, &r) ==
                  PMC_OK &&
              r.code == 'c' && r.event == PMC_EV_EOM && r.nmods == 1,
          "message: runs to EOM with its mods");
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'R', LIT("<c@d>\0"));
    pmc_encode(&w, 'R', LIT("<e@f>\0"));
    pmc_encode(&w, 'T', NULL, 0);
    pmc_encode(&w, 'L', LIT("Subject\0hi\0"));
    pmc_encode(&w, 'L', LIT("X-Fold\0a\n\tb\0"));
    pmc_encode(&w, 'L', LIT("X-NoSpace\0x\0"));
    pmc_encode(&w, 'N', NULL, 0);
    pmc_encode(&w, 'B', LIT("line1\r\nline2\r\n"));
    pmc_encode(&w, 'E', NULL, 0);
    CHECK(same(&f.sent, &w), "message: fields split, folds as LF, CRLF body");
    pmc_client_free(c);
    fake_free(&f);

    /* Every recipient refused: stop before DATA. */
    c = fake_client(&f, PMC_MTA_POSTFIX, NULL);
    fake_negotiate(c, &f, 6, 0, 0);
    replies(&f.replies, "crt");
    CHECK(pmc_client_message(c, from, rcpts, 2, msg, sizeof msg - 1, &r) ==
                  PMC_OK &&
              r.code == 't' && r.event == PMC_EV_ENVRCPT &&
              count_cmd(&f.sent, 'T') == 0,
          "message: all recipients refused, no DATA");
    pmc_client_free(c);
    fake_free(&f);

    /* A reject at a header ends it there; HDR_LEADSPC keeps the space. */
    c = fake_client(&f, PMC_MTA_SENDMAIL, NULL);
    fake_negotiate(c, &f, 6, 0, PMC_P_HDR_LEADSPC);
    replies(&f.replies, "cccr");
    CHECK(pmc_client_message(c, from, rcpts, 1, msg, sizeof msg - 1, &r) ==
                  PMC_OK &&
              r.code == 'r' && r.event == PMC_EV_HEADER &&
              count_cmd(&f.sent, 'E') == 0,
          "message: stops at a rejecting header");
    w.len = 0;
    pmc_encode(&w, 'M', LIT("<a@b>\0"));
    pmc_encode(&w, 'R', LIT("<c@d>\0"));
    pmc_encode(&w, 'T', NULL, 0);
    pmc_encode(&w, 'L', LIT("Subject\0 hi\0"));
    CHECK(same(&f.sent, &w), "message: HDR_LEADSPC keeps the leading space");
    pmc_client_free(c);
    fake_free(&f);
    pmc_buf_free(&w);
}

/* ---- message splitting: the shared cases -------------------------------- */

/* What a filter received of one message, written the way tests/cli/run.sh
 * reads pmt_milter's log: "header NAME VALUE" in hex, "eoh", "body" once
 * before the first chunk, "eom"; the body's bytes apart. */
typedef struct seen {
    pmc_buf log, body;
} seen;

static void log_hex(pmc_buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char x[2];

    pmc_buf_append(b, " ", 1);
    for (size_t i = 0; i < n; i++) {
        x[0] = hex[(unsigned char)p[i] >> 4];
        x[1] = hex[(unsigned char)p[i] & 15];
        pmc_buf_append(b, x, 2);
    }
}

static void log_header(pmc_buf *b, pmc_str name, pmc_str value)
{
    pmc_buf_append(b, "header", 6);
    log_hex(b, name.ptr, name.len);
    log_hex(b, value.ptr, value.len);
    pmc_buf_append(b, "\n", 1);
}

static int s_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    (void)s;
    log_header(&((seen *)ud)->log, name, value);
    return PMC_CONTINUE;
}

static int s_eoh(pmc_session *s, void *ud)
{
    (void)s;
    pmc_buf_append(&((seen *)ud)->log, "eoh\n", 4);
    return PMC_CONTINUE;
}

static int s_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    seen *v = ud;

    (void)s;
    if (v->body.len == 0)
        pmc_buf_append(&v->log, "body\n", 5);
    pmc_buf_append(&v->body, p, n);
    return PMC_CONTINUE;
}

static int s_eom(pmc_session *s, void *ud)
{
    (void)s;
    pmc_buf_append(&((seen *)ud)->log, "eom\n", 4);
    return PMC_CONTINUE;
}

/* One case of tests/cli/files/split.cases. */
typedef struct split_case {
    char name[64];
    int leadspc;
    pmc_buf msg, body;
    pmc_buf log; /* as seen.log should end up */
} split_case;

/* A "..." string (escapes as in tests/vectors/README.md) with an optional
 * *N, appended to out; *p moves past it.  0 on a syntax error. */
static int case_string(const char **p, pmc_buf *out)
{
    const char *s = *p;
    pmc_buf one = {0};
    long times = 1;

    if (*s++ != '"')
        return 0;
    while (*s && *s != '"') {
        char c = *s++;
        if (c == '\\') {
            c = *s++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case '0': c = 0; break;
            case '\\': case '"': break;
            case 'x': {
                char h[3] = {s[0], s[0] ? s[1] : 0, 0}, *e;
                c = (char)strtol(h, &e, 16);
                if (e != h + 2) {
                    pmc_buf_free(&one);
                    return 0;
                }
                s += 2;
                break;
            }
            default:
                pmc_buf_free(&one);
                return 0;
            }
        }
        pmc_buf_append(&one, &c, 1);
    }
    if (*s++ != '"') {
        pmc_buf_free(&one);
        return 0;
    }
    if (*s == '*')
        times = strtol(s + 1, (char **)&s, 10);
    for (long i = 0; i < times; i++)
        pmc_buf_append(out, one.data ? (const char *)one.data : "", one.len);
    pmc_buf_free(&one);
    *p = s;
    return 1;
}

/* Strings to the end of the line, each appended to its own buffer in
 * turn (the last takes the rest); 0 on a syntax error. */
static int case_strings(const char *p, pmc_buf **outs, size_t nouts)
{
    size_t k = 0;

    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == 0)
            return k >= nouts; /* every buffer got at least one string */
        if (!case_string(&p, outs[k < nouts ? k : nouts - 1]))
            return 0;
        if (k < nouts)
            k++;
    }
}

/* Read the next case from the text at *pos; 1 with c filled, 0 at the end,
 * -1 on a syntax error (line number in *lineno). */
static int next_case(char *text, size_t *pos, unsigned *lineno,
                     split_case *c)
{
    int in = 0;

    memset(c, 0, sizeof *c);
    while (text[*pos]) {
        char *line = text + *pos, *nl = strchr(line, '\n');
        pmc_buf name = {0}, value = {0};

        if (nl)
            *nl = 0;
        *pos += strlen(line) + (nl != NULL);
        (*lineno)++;
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line == 0 || *line == '#')
            continue;
        if (strncmp(line, "case ", 5) == 0 && !in) {
            snprintf(c->name, sizeof c->name, "%s", line + 5);
            in = 1;
        } else if (!in) {
            return -1;
        } else if (strcmp(line, "leadspc") == 0) {
            c->leadspc = 1;
        } else if (strncmp(line, "message ", 8) == 0) {
            pmc_buf *o[] = {&c->msg};
            if (!case_strings(line + 8, o, 1))
                return -1;
        } else if (strncmp(line, "body ", 5) == 0) {
            pmc_buf *o[] = {&c->body};
            if (!case_strings(line + 5, o, 1))
                return -1;
        } else if (strncmp(line, "header ", 7) == 0) {
            pmc_buf *o[] = {&name, &value};
            int ok = case_strings(line + 7, o, 2);
            if (ok)
                log_header(&c->log,
                           (pmc_str){(const char *)name.data, name.len},
                           (pmc_str){value.len ? (const char *)value.data
                                               : "", value.len});
            pmc_buf_free(&name);
            pmc_buf_free(&value);
            if (!ok)
                return -1;
        } else if (strcmp(line, "end") == 0) {
            pmc_buf_append(&c->log, "eoh\n", 4);
            if (c->body.len)
                pmc_buf_append(&c->log, "body\n", 5);
            pmc_buf_append(&c->log, "eom\n", 4);
            return 1;
        } else {
            return -1;
        }
    }
    return in ? -1 : 0;
}

static void case_free(split_case *c)
{
    pmc_buf_free(&c->msg);
    pmc_buf_free(&c->body);
    pmc_buf_free(&c->log);
}

/* Send one case with pmc_client_message to an in-process session. */
static void run_case(const split_case *k, pmc_personality pers)
{
    static const pmc_handlers h = {
        .header = s_header, .eoh = s_eoh, .body = s_body, .eom = s_eom,
    };
    seen v = {{0}, {0}};
    pmc_config cfg;
    pmc_client_config ccfg;
    pmc_session *s;
    pmc_transport tr;
    pmc_client *c;
    pmc_result r;
    pmc_str from = STR("<a@example.org>"), to = STR("<b@example.org>");
    const char *who = pers == PMC_MTA_POSTFIX ? "postfix" : "sendmail";
    pmc_status st;

    pmc_config_init(&cfg);
    cfg.protocol = k->leadspc ? PMC_P_HDR_LEADSPC : 0;
    s = pmc_session_new(&h, &v, &cfg);
    pmc_transport_session(&tr, s, NULL, NULL);
    pmc_client_config_init(&ccfg, pers);
    c = pmc_client_new(&ccfg, &tr);
    st = pmc_client_negotiate(c, NULL);
    if (st == PMC_OK)
        st = pmc_client_message(c, from, &to, 1,
                                k->msg.len ? k->msg.data : NULL, k->msg.len,
                                &r);
    if (!CHECK(st == PMC_OK && r.code == 'c' && r.event == PMC_EV_EOM,
               "split %s (%s): the message reaches EOM", k->name, who))
        DIAG("status %s: %s", pmc_status_name(st),
             pmc_client_error(c) ? pmc_client_error(c)->message : "");
    if (!CHECK(v.log.len == k->log.len &&
                   memcmp(v.log.data, k->log.data, v.log.len) == 0,
               "split %s (%s): the filter's events", k->name, who)) {
        pmc_buf_append(&v.log, "", 1);
        pmc_buf_append((pmc_buf *)&k->log, "", 1);
        DIAG("got:\n%s", (char *)v.log.data);
        DIAG("want:\n%s", (char *)k->log.data);
        ((pmc_buf *)&k->log)->len--;
    }
    CHECK(same(&v.body, &k->body), "split %s (%s): the body bytes", k->name,
          who);
    pmc_client_quit(c);
    pmc_client_free(c);
    pmc_session_free(s);
    pmc_buf_free(&v.log);
    pmc_buf_free(&v.body);
}

/* The cases tests/cli/run.sh also runs through pmilter-test; the file is
 * found from the source tree's top (where make runs the suites) unless
 * PMC_SPLIT_CASES names it. */
static void test_split_cases(void)
{
    const char *path = getenv("PMC_SPLIT_CASES");
    FILE *f;
    pmc_buf text = {0};
    char chunk[8192];
    size_t n, pos = 0;
    unsigned lineno = 0, ncases = 0;
    split_case k;
    int got;

    if (path == NULL)
        path = "tests/cli/files/split.cases";
    f = fopen(path, "rb");
    if (!CHECK(f != NULL, "split cases: open %s", path))
        return;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        pmc_buf_append(&text, chunk, n);
    fclose(f);
    pmc_buf_append(&text, "", 1);
    while ((got = next_case((char *)text.data, &pos, &lineno, &k)) == 1) {
        run_case(&k, PMC_MTA_POSTFIX);
        run_case(&k, PMC_MTA_SENDMAIL);
        case_free(&k);
        ncases++;
    }
    case_free(&k);
    CHECK(got == 0, "split cases: %s parsed (stopped at line %u)", path,
          lineno);
    CHECK(ncases >= 25, "split cases: %u cases", ncases);
    pmc_buf_free(&text);
}

/* The splitter's own promises, beyond what a filter sees. */
static void test_split_api(void)
{
    pmc_msg_split sp;
    pmc_str name, value;
    pmc_buf b = {0};
    int more = -1;
    static const char msg[] = "A: 1\n b\n\nx\n";

    pmc_msg_split_init(&sp, NULL, 0, 0);
    CHECK(pmc_msg_split_next(&sp, &name, &value, &more) == PMC_OK &&
              more == 0 && pmc_msg_split_body(&sp, &b) == PMC_OK &&
              b.len == 0,
          "split api: NULL text of length 0 is an empty message");
    pmc_msg_split_free(&sp);

    pmc_msg_split_init(&sp, msg, sizeof msg - 1, 0);
    CHECK(pmc_msg_split_next(&sp, &name, &value, &more) == PMC_OK &&
              more == 1 && name.len == 1 && name.ptr == msg &&
              value.len == 4 && memcmp(value.ptr, "1\n b", 4) == 0,
          "split api: the name points into the text, the value is joined");
    CHECK(pmc_msg_split_next(&sp, &name, &value, &more) == PMC_OK &&
              more == 0 &&
              pmc_msg_split_next(&sp, &name, &value, &more) == PMC_OK &&
              more == 0,
          "split api: the end of the section is reported again");
    CHECK(pmc_msg_split_body(&sp, &b) == PMC_OK &&
              pmc_msg_split_body(&sp, &b) == PMC_OK && b.len == 6 &&
              memcmp(b.data, "x\r\nx\r\n", 6) == 0,
          "split api: the body appends, the same each call");
    pmc_msg_split_free(&sp);
    pmc_msg_split_free(&sp);

    /* The body may be asked for first: the fields are passed over. */
    b.len = 0;
    pmc_msg_split_init(&sp, msg, sizeof msg - 1, 0);
    CHECK(pmc_msg_split_body(&sp, &b) == PMC_OK && b.len == 3 &&
              pmc_msg_split_next(&sp, &name, &value, &more) == PMC_OK &&
              more == 0,
          "split api: body first passes over the fields");
    pmc_msg_split_free(&sp);

    /* The raw body is a view into the text, line ends as they were. */
    pmc_msg_split_init(&sp, msg, sizeof msg - 1, 0);
    CHECK(pmc_msg_split_rest(&sp, &value) == PMC_OK &&
              value.ptr == msg + 9 && value.len == 2 &&
              pmc_msg_split_next(&sp, &name, &value, &more) == PMC_OK &&
              more == 0,
          "split api: the raw body views the text after the blank line");
    pmc_msg_split_free(&sp);
    pmc_buf_free(&b);
}

/* ---- a real filter ------------------------------------------------------ */

typedef struct filt {
    int connects, helos, headers, eoms, aborts, closes, bodies;
    size_t body_bytes;
    char host[64], addr[64], macro_j[32], subject[32];
    int pend_at_helo;
} filt;

static int f_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    filt *f = ud;
    pmc_str v;

    f->connects++;
    snprintf(f->host, sizeof f->host, "%.*s", (int)ci->host.len,
             ci->host.ptr);
    snprintf(f->addr, sizeof f->addr, "%.*s", (int)ci->addr.len,
             ci->addr.ptr);
    if (pmc_session_getsymval(s, "j", 1, &v))
        snprintf(f->macro_j, sizeof f->macro_j, "%.*s", (int)v.len, v.ptr);
    return PMC_CONTINUE;
}

static int f_helo(pmc_session *s, void *ud, pmc_str helo)
{
    filt *f = ud;
    (void)s;
    (void)helo;
    f->helos++;
    return f->pend_at_helo ? PMC_PENDING : PMC_CONTINUE;
}

static int f_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    filt *f = ud;
    (void)s;
    f->headers++;
    if (name.len == 7 && memcmp(name.ptr, "Subject", 7) == 0)
        snprintf(f->subject, sizeof f->subject, "%.*s", (int)value.len,
                 value.ptr);
    return PMC_CONTINUE;
}

static int f_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    filt *f = ud;
    (void)s;
    (void)p;
    f->bodies++;
    f->body_bytes += n;
    return f->body_bytes > 70000 ? PMC_SKIP : PMC_CONTINUE;
}

static int f_eom(pmc_session *s, void *ud)
{
    filt *f = ud;
    f->eoms++;
    pmc_session_progress(s);
    pmc_session_addheader(s, STR("X-Filtered"), STR("yes"));
    pmc_session_replacebody(s, LIT("replaced\r\n"));
    pmc_session_setreply(s, "550", "5.7.1", "100% no");
    return PMC_REJECT;
}

static int f_abort(pmc_session *s, void *ud)
{
    (void)s;
    ((filt *)ud)->aborts++;
    return PMC_CONTINUE;
}

static int f_close(pmc_session *s, void *ud)
{
    (void)s;
    ((filt *)ud)->closes++;
    return PMC_CONTINUE;
}

static const pmc_handlers filter_handlers = {
    .connect = f_connect, .helo = f_helo, .header = f_header,
    .body = f_body, .eom = f_eom, .abort = f_abort, .close = f_close,
};

static pmc_session *filter_session(filt *f)
{
    pmc_config cfg;

    memset(f, 0, sizeof *f);
    pmc_config_init(&cfg);
    cfg.actions = PMC_ACT_ADDHDRS | PMC_ACT_CHGBODY;
    cfg.protocol = PMC_P_SKIP | PMC_P_NR_HDR;
    cfg.symlist[PMC_STAGE_CONNECT] = "j {daemon_name}";
    return pmc_session_new(&filter_handlers, f, &cfg);
}

/* The conversation both session tests run; returns its own check count. */
static void converse(pmc_client *c, const char *label)
{
    static uint8_t body[140000];
    pmc_result r;
    pmc_str from = STR("<a@b>"), to = STR("<c@d>");
    pmc_str conn[] = {STR("j"), STR("mx.example")};
    uint32_t v, a, p;
    static const char msg[] = "Subject: test\r\nTo: c@d\r\n\r\nhello\r\n";

#define NAMED(what) "%s: %s", label, what
    CHECK(pmc_client_negotiate(c, &r) == PMC_OK, NAMED("negotiate"));
    pmc_client_negotiated(c, &v, &a, &p);
    CHECK(v == 6 && (a & PMC_ACT_ADDHDRS) && (a & PMC_ACT_CHGBODY) &&
              (p & PMC_P_SKIP) && (p & PMC_P_NR_HDR) &&
              (p & PMC_P_NOHELO) == 0 && (p & PMC_P_NOMAIL),
          NAMED("negotiated actions and NO*/NR bits"));
    CHECK(pmc_client_symlist(c, PMC_STAGE_CONNECT) &&
              strcmp(pmc_client_symlist(c, PMC_STAGE_CONNECT),
                     "j {daemon_name}") == 0,
          NAMED("macro list from the session"));
    pmc_client_set_macros(c, PMC_STAGE_CONNECT, conn, 1);
    CHECK(pmc_client_connect(c, NULL, '6', 2525, "2001:db8::5", &r) ==
                  PMC_OK &&
              r.code == 'c',
          NAMED("connect"));
    CHECK(pmc_client_helo(c, "client", &r) == PMC_OK && r.code == 'c',
          NAMED("helo"));
    CHECK(pmc_client_mail(c, &from, 1, &r) == PMC_OK && r.code == 0,
          NAMED("mail not sent (no handler: NOMAIL)"));
    CHECK(pmc_client_rcpt(c, &to, 1, &r) == PMC_OK && r.code == 0,
          NAMED("rcpt not sent (NORCPT)"));
    CHECK(pmc_client_header(c, STR("Subject"), STR("x"), &r) == PMC_OK &&
              r.code == 0,
          NAMED("header: NR_HDR, no reply read"));
    memset(body, 'b', sizeof body);
    CHECK(pmc_client_body(c, body, sizeof body, &r) == PMC_OK &&
              r.code == 's',
          NAMED("body: SKIP after the second chunk"));
    CHECK(pmc_client_eom(c, &r) == PMC_OK && r.code == 'y',
          NAMED("eom: 'y'"));
    CHECK(r.text.len > 0 && strstr(r.text.ptr, "5.7.1") &&
              strstr(r.text.ptr, "%%"),
          NAMED("eom: reply text with doubled %"));
    if (r.nmods >= 3) {
        size_t nb = 0, nh = 0, np = 0;
        for (size_t i = 0; i < r.nmods; i++) {
            nb += r.mods[i].code == 'b';
            nh += r.mods[i].code == 'h' &&
                  strcmp(r.mods[i].a.ptr, "X-Filtered") == 0 &&
                  strcmp(r.mods[i].b.ptr, "yes") == 0;
            np += r.mods[i].code == 'p';
        }
        CHECK(nb == 1 && nh == 1 && np == 1,
              NAMED("eom: progress, header and body mods collected"));
    } else {
        CHECK(0, NAMED("eom: mods collected"));
    }
    CHECK(pmc_client_message(c, from, &to, 1, msg, sizeof msg - 1, &r) ==
                  PMC_OK &&
              r.code == 'y' && r.event == PMC_EV_EOM,
          NAMED("a second message via pmc_client_message"));
    CHECK(pmc_client_quit(c) == PMC_OK, NAMED("quit"));
#undef NAMED
}

static void test_session_inproc(void)
{
    filt f;
    pmc_session *s = filter_session(&f);
    pmc_transport tr;
    pmc_client *c;
    pmc_client_config cfg;
    pmc_result r;

    pmc_transport_session(&tr, s, NULL, NULL);
    pmc_client_config_init(&cfg, PMC_MTA_SENDMAIL);
    c = pmc_client_new(&cfg, &tr);
    converse(c, "in-process sendmail");
    CHECK(f.connects == 1 && strcmp(f.host, "[IPv6:2001:db8::5]") == 0 &&
              strcmp(f.addr, "2001:db8::5") == 0,
          "in-process: the filter saw the Sendmail connect");
    CHECK(strcmp(f.macro_j, "mx.example") == 0,
          "in-process: the filter saw the connect macro");
    CHECK(f.bodies == 3 && f.eoms == 2 && f.headers == 3 &&
              strcmp(f.subject, "test") == 0,
          "in-process: the filter saw chunks, headers and EOMs");
    CHECK(f.closes == 1 && pmc_session_is_closed(s),
          "in-process: close ran once after quit");
    pmc_client_free(c);
    pmc_session_free(s);

    /* Postfix personality against the same filter. */
    s = filter_session(&f);
    pmc_transport_session(&tr, s, NULL, NULL);
    c = pmc_client_new(NULL, &tr);
    converse(c, "in-process postfix");
    CHECK(strcmp(f.host, "[2001:db8::5]") == 0, "in-process postfix: host");
    pmc_client_free(c);
    pmc_session_free(s);

    /* Free without quit: the transport's close ends the session. */
    s = filter_session(&f);
    pmc_transport_session(&tr, s, NULL, NULL);
    c = pmc_client_new(NULL, &tr);
    pmc_client_negotiate(c, &r);
    pmc_client_connect(c, "h", '4', 1, "192.0.2.9", &r);
    pmc_client_free(c);
    CHECK(f.closes == 1 && pmc_session_is_closed(s),
          "in-process: free without quit runs close via eof");
    pmc_session_free(s);

    /* A pending handler can never answer here: reported, not hung. */
    s = filter_session(&f);
    f.pend_at_helo = 1;
    pmc_transport_session(&tr, s, NULL, NULL);
    c = pmc_client_new(NULL, &tr);
    pmc_client_negotiate(c, &r);
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_IO &&
              strstr(errmsg(c), "pending") != NULL,
          "in-process: no output and open session is an IO error");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);
    pmc_session_free(s);

    /* The session refuses an offer without the actions it needs. */
    s = filter_session(&f);
    pmc_transport_session(&tr, s, NULL, NULL);
    pmc_client_config_init(&cfg, PMC_MTA_POSTFIX);
    cfg.actions = PMC_ACT_ADDHDRS;
    c = pmc_client_new(&cfg, &tr);
    CHECK(pmc_client_negotiate(c, &r) == PMC_ERR_IO,
          "in-process: session refusing the offer gives IO (EOF)");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);
    pmc_session_free(s);
}

/* ---- over a socket ------------------------------------------------------ */

/* The filter side of a socketpair: read, feed, write, until closed. */
static int serve_fd(int fd)
{
    filt f;
    pmc_session *s = filter_session(&f);
    uint8_t buf[8192];
    int rc = 0;

    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        size_t len;
        const uint8_t *out;
        pmc_status st;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            pmc_session_eof(s);
            break;
        }
        st = pmc_session_feed(s, buf, (size_t)n);
        out = pmc_session_output(s, &len);
        while (len > 0) {
            ssize_t k = write(fd, out, len);
            if (k <= 0)
                break;
            pmc_session_consume(s, (size_t)k);
            out = pmc_session_output(s, &len);
        }
        if (st != PMC_OK)
            break;
    }
    if (f.closes != 1 || f.eoms != 2)
        rc = 1;
    pmc_session_free(s);
    return rc;
}

static void test_socket(void)
{
    int sv[2], status = -1;
    pid_t pid;
    pmc_fd_transport_state st;
    pmc_transport tr;
    pmc_client *c;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        CHECK(0, "socketpair");
        return;
    }
    fflush(stdout); /* the child must not repeat buffered lines */
    pid = fork();
    if (pid == 0) {
        close(sv[0]);
        _exit(serve_fd(sv[1]));
    }
    close(sv[1]);
    pmc_transport_fd(&tr, &st, sv[0], 5000);
    c = pmc_client_new(NULL, &tr);
    converse(c, "socket postfix");
    pmc_client_free(c);
    close(sv[0]);
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "socket: the filter process saw two EOMs and one close");
}

static long long ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_alarm(int sig)
{
    (void)sig;
}

static void test_fd_errors(void)
{
    int sv[2];
    pmc_fd_transport_state st;
    pmc_transport tr;
    pmc_client *c;
    pmc_result r;
    pmc_buf b = {0};
    long long t0;

    /* Timeout: the filter never answers HELO. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    optneg(&b, 6, 0, 0, NULL, 0);
    if (write(sv[1], b.data, b.len) != (ssize_t)b.len)
        CHECK(0, "write");
    pmc_transport_fd(&tr, &st, sv[0], 150);
    c = pmc_client_new(NULL, &tr);
    CHECK(pmc_client_negotiate(c, &r) == PMC_OK, "fd: negotiate");
    t0 = ms_now();
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_TIMEOUT,
          "fd: no reply within the timeout is TIMEOUT");
    CHECK(ms_now() - t0 >= 140 && ms_now() - t0 < 2000,
          "fd: timeout took about 150 ms");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);

    /* EOF: the filter closes while a reply is owed. */
    pmc_transport_fd(&tr, &st, sv[0], 1000);
    c = pmc_client_new(NULL, &tr);
    if (write(sv[1], b.data, b.len) != (ssize_t)b.len)
        CHECK(0, "write");
    pmc_client_negotiate(c, &r);
    shutdown(sv[1], SHUT_WR);
    CHECK(pmc_client_helo(c, "x", &r) == PMC_ERR_IO,
          "fd: EOF while a reply is owed is IO");
    pmc_client_free(c);
    close(sv[1]);

    /* Writing to a closed peer: an error, not SIGPIPE. */
    c = pmc_client_new(NULL, &tr);
    CHECK(pmc_client_negotiate(c, &r) == PMC_ERR_IO,
          "fd: send to a closed peer is IO (no SIGPIPE)");
    DIAG("%s", errmsg(c));
    pmc_client_free(c);
    close(sv[0]);

    /* A filter that stops reading: the write times out. */
    {
        static uint8_t chunk[65535];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        b.len = 0;
        optneg(&b, 6, 0, PMC_P_NR_BODY, NULL, 0);
        if (write(sv[1], b.data, b.len) != (ssize_t)b.len)
            CHECK(0, "write");
        pmc_transport_fd(&tr, &st, sv[0], 100);
        c = pmc_client_new(NULL, &tr);
        pmc_client_negotiate(c, &r);
        pmc_status rc = PMC_OK;
        for (int i = 0; i < 400 && rc == PMC_OK; i++)
            rc = pmc_client_body(c, chunk, sizeof chunk, &r);
        CHECK(rc == PMC_ERR_TIMEOUT,
              "fd: a peer that stops reading makes the send time out");
        DIAG("%s", errmsg(c));
        pmc_client_free(c);
        close(sv[0]);
        close(sv[1]);
        b.len = 0;
        optneg(&b, 6, 0, 0, NULL, 0);
    }

    /* EINTR during the wait: retried, the late reply still arrives. */
    {
        struct sigaction sa, old;
        struct itimerval it = {{0, 0}, {0, 30000}};
        pid_t pid;
        int status;

        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        fflush(stdout); /* the child must not repeat buffered lines */
    pid = fork();
        if (pid == 0) {
            struct timespec d = {0, 200000000};
            close(sv[0]);
            nanosleep(&d, NULL);
            _exit(write(sv[1], b.data, b.len) == (ssize_t)b.len ? 0 : 1);
        }
        close(sv[1]);
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm; /* no SA_RESTART: poll sees EINTR */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGALRM, &sa, &old);
        setitimer(ITIMER_REAL, &it, NULL);
        pmc_transport_fd(&tr, &st, sv[0], 3000);
        c = pmc_client_new(NULL, &tr);
        CHECK(pmc_client_negotiate(c, &r) == PMC_OK && r.code == 'O',
              "fd: EINTR during the wait is retried");
        pmc_client_free(c);
        sigaction(SIGALRM, &old, NULL);
        close(sv[0]);
        waitpid(pid, &status, 0);
    }
    pmc_buf_free(&b);
}

int main(void)
{
    test_negotiate();
    test_postfix_bytes();
    test_sendmail_bytes();
    test_no_nr();
    test_skip();
    test_report_unsent();
    test_report_sent();
    test_state();
    test_mods();
    test_eof_and_state();
    test_message();
    test_split_api();
    test_split_cases();
    test_session_inproc();
    test_socket();
    test_fd_errors();
    return tap_done();
}
