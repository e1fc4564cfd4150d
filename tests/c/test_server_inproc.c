/*
 * The in-process transport with a wait hook (pmc_transport_session):
 * pending handlers answered by the hook at several stages, with actions,
 * no-reply events pipelined behind a pending one, and a hook that does not
 * answer.  And pmc_session_close_reason: QUIT, QUIT_NC, EOF, errors, ends
 * by the host, in a bare session and under the server.
 */
#include "srvtest.h"

/* --- a filter whose handlers defer their answers --- */

typedef struct deferred {
    int verdict;          /* what the hook answers */
    int what;             /* 0 plain, 1 add a header, 2 reply text */
    int owed;             /* a handler is waiting for the hook */
    int waits;            /* hook calls */
    int answer;           /* the hook answers (0: it does nothing) */
    int headers;          /* header handler calls */
    int closes, aborts;
    pmc_close_reason reason;
} deferred;

static int defer(deferred *d, int verdict, int what)
{
    d->verdict = verdict;
    d->what = what;
    d->owed = 1;
    return PMC_PENDING;
}

static int d_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    (void)s;
    (void)ci;
    return defer(ud, PMC_CONTINUE, 0);
}

static int d_envrcpt(pmc_session *s, void *ud, const pmc_args *a)
{
    (void)s;
    if (strstr(a->argv[0].ptr, "bad"))
        return defer(ud, PMC_REJECT, 2);
    return PMC_CONTINUE;
}

static int d_header(pmc_session *s, void *ud, pmc_str n, pmc_str v)
{
    deferred *d = ud;

    (void)s;
    (void)n;
    (void)v;
    d->headers++;
    return defer(d, PMC_NOREPLY, 0);
}

static int d_eom(pmc_session *s, void *ud)
{
    (void)s;
    return defer(ud, PMC_CONTINUE, 1);
}

static int d_abort(pmc_session *s, void *ud)
{
    deferred *d = ud;

    (void)s;
    d->aborts++;
    return PMC_CONTINUE;
}

static int d_close(pmc_session *s, void *ud)
{
    deferred *d = ud;

    d->closes++;
    d->reason = pmc_session_close_reason(s);
    return PMC_CONTINUE;
}

static const pmc_handlers dh = {
    .connect = d_connect,
    .envrcpt = d_envrcpt,
    .header = d_header,
    .eom = d_eom,
    .abort = d_abort,
    .close = d_close,
};

static void hook(pmc_session *s, void *arg)
{
    deferred *d = arg;

    d->waits++;
    if (!d->answer || !d->owed)
        return;
    d->owed = 0;
    if (d->what == 1)
        pmc_session_addheader(s, S("X-Deferred"), S("yes"));
    else if (d->what == 2)
        pmc_session_setreply(s, "550", "5.7.1", "deferred no");
    pmc_session_resume(s, d->verdict);
}

static pmc_client *client_on(pmc_session *s, deferred *d, pmc_transport *tr,
                             uint32_t protocol)
{
    pmc_client_config cc;

    if (pmc_transport_session(tr, s, hook, d) != PMC_OK)
        abort();
    pmc_client_config_init(&cc, PMC_MTA_POSTFIX);
    cc.protocol = protocol;
    return pmc_client_new(&cc, tr);
}

static void test_wait_hook(void)
{
    deferred d;
    pmc_config cfg;
    pmc_session *s;
    pmc_transport tr;
    pmc_client *c;
    pmc_result r;
    pmc_str from = S("<a@x>"), bad = S("<bad@x>"), good = S("<good@x>");
    int hdr = 0;

    memset(&d, 0, sizeof d);
    d.answer = 1;
    pmc_config_init(&cfg);
    cfg.actions = PMC_ACT_ADDHDRS;
    cfg.protocol = PMC_P_NR_HDR;
    s = pmc_session_new(&dh, &d, &cfg);
    c = client_on(s, &d, &tr, PMC_P_ALL_V6);
    CHECK(pmc_client_negotiate(c, &r) == PMC_OK, "negotiate");
    CHECK(pmc_client_connect(c, "h", '4', 25, "192.0.2.1", &r) == PMC_OK &&
              r.code == 'c' && d.waits == 1,
          "pending connect answered by the hook (code '%c', waits %d)",
          r.code ? r.code : '0', d.waits);
    /* No envfrom handler: NOMAIL, the client sends nothing. */
    CHECK(pmc_client_mail(c, &from, 1, &r) == PMC_OK, "mail");
    CHECK(pmc_client_rcpt(c, &bad, 1, &r) == PMC_OK && r.code == 'y' &&
              strstr(r.text.ptr, "550 5.7.1 deferred no"),
          "pending rcpt rejected with the hook's text");
    CHECK(pmc_client_rcpt(c, &good, 1, &r) == PMC_OK && r.code == 'c',
          "a recipient not deferred");
    /* Headers get no reply (NR_HDR): each one pends, and the hook runs
     * right after its send, so the next one is not queued behind it. */
    for (int i = 0; i < 3; i++)
        pmc_client_header(c, S("X-H"), S("v"), &r);
    CHECK(d.headers == 3 && d.waits == 5 && !pmc_session_is_pending(s),
          "no-reply headers answered as they were sent (headers %d, waits "
          "%d)", d.headers, d.waits);
    CHECK(pmc_client_eoh(c, &r) == PMC_OK &&
              pmc_client_body(c, "x\r\n", 3, &r) == PMC_OK &&
              pmc_client_eom(c, &r) == PMC_OK && r.code == 'c',
          "pending eom answered");
    for (size_t i = 0; i < r.nmods; i++)
        hdr |= r.mods[i].code == 'h' &&
               !strcmp(r.mods[i].a.ptr, "X-Deferred");
    CHECK(hdr, "with the header the hook added");
    CHECK(pmc_client_quit(c) == PMC_OK && d.closes == 1 &&
              d.reason == PMC_CLOSE_QUIT,
          "quit: close ran with reason QUIT (%d)", (int)d.reason);
    pmc_client_free(c);
    pmc_session_free(s);

    /* Several no-reply events queued behind one pending handler, answered
     * when the client reads: the hook is called while it makes progress. */
    memset(&d, 0, sizeof d);
    d.answer = 1;
    s = pmc_session_new(&dh, &d, &cfg);
    c = client_on(s, &d, &tr, PMC_P_ALL_V6);
    pmc_client_negotiate(c, &r);
    d.answer = 0; /* the connect stays pending for now */
    CHECK(pmc_client_connect(c, "h", '4', 25, "192.0.2.1", &r) ==
              PMC_ERR_IO &&
              strstr(pmc_client_error(c)->message, "did not resume"),
          "a hook that does not answer: the read fails and says why (%s)",
          pmc_client_error(c) ? pmc_client_error(c)->message : "-");
    pmc_client_free(c);
    CHECK(d.closes == 1 && d.reason == PMC_CLOSE_EOF &&
              pmc_session_is_closed(s),
          "close of the transport ended the pending session (EOF)");
    pmc_session_free(s);

    /* A pending header with more headers queued behind it: sent in one
     * feed as raw bytes, answered by one recv through the hook. */
    memset(&d, 0, sizeof d);
    s = pmc_session_new(&dh, &d, &cfg);
    {
        pmc_buf b = {0};
        uint8_t out[256];
        static const uint8_t opt[12] = {0, 0, 0, 6, 0, 0, 1, 0xff,
                                        0, 0x1f, 0xff, 0xff};
        long n;
        if (pmc_transport_session(&tr, s, hook, &d) != PMC_OK)
            abort();
        pmc_encode(&b, 'O', opt, 12);
        pmc_encode(&b, 'M', "<a@x>", 6);
        pmc_encode(&b, 'R', "<b@x>", 6);
        pmc_encode(&b, 'L', "A\0" "1", 4);
        pmc_encode(&b, 'L', "B\0" "2", 4);
        pmc_encode(&b, 'L', "C\0" "3", 4);
        pmc_encode(&b, 'N', NULL, 0);
        d.answer = 0;
        CHECK(tr.send(tr.ctx, b.data, b.len) == 0 && d.headers == 1 &&
                  pmc_session_is_pending(s),
              "first header pending, the rest queued");
        /* What is there (O, and 'c' for MAIL and RCPT) comes without a
         * wait. */
        n = tr.recv(tr.ctx, out, sizeof out);
        CHECK(n == 13 + 4 + 5 + 5 && d.waits == 1,
              "output first, no wait for it (%ld bytes, waits %d)", n,
              d.waits);
        d.answer = 1;
        n = tr.recv(tr.ctx, out, sizeof out);
        CHECK(d.headers == 3 && !pmc_session_is_pending(s) && n == 5 &&
                  out[4] == 'c',
              "one read let the hook answer all three (headers %d, waits "
              "%d)", d.headers, d.waits);
        tr.close(tr.ctx);
        pmc_buf_free(&b);
    }
    pmc_session_free(s);
}

/* --- close reasons --- */

static void feed_raw(pmc_session *s, char cmd, const void *p, size_t n)
{
    pmc_buf b = {0};

    pmc_encode(&b, (uint8_t)cmd, p, n);
    pmc_session_feed(s, b.data, b.len);
    pmc_buf_free(&b);
}

static pmc_session *opened(deferred *d, const pmc_handlers *h)
{
    static const uint8_t opt[12] = {0, 0, 0, 6, 0, 0, 1, 0xff,
                                    0, 0x1f, 0xff, 0xff};
    pmc_session *s;

    memset(d, 0, sizeof *d);
    s = pmc_session_new(h, d, NULL);
    feed_raw(s, 'O', opt, 12);
    return s;
}

static void test_close_reason(void)
{
    static const pmc_handlers h = {.abort = d_abort, .close = d_close};
    deferred d;
    pmc_session *s;

    s = opened(&d, &h);
    CHECK(pmc_session_close_reason(s) == PMC_CLOSE_NONE, "NONE at first");
    feed_raw(s, 'Q', NULL, 0);
    CHECK(d.closes == 1 && d.reason == PMC_CLOSE_QUIT &&
              pmc_session_close_reason(s) == PMC_CLOSE_QUIT,
          "QUIT");
    pmc_session_free(s);

    s = opened(&d, &h);
    feed_raw(s, 'C', "h\0" "4\0\x19" "192.0.2.1", 2 + 1 + 2 + 10);
    feed_raw(s, 'K', NULL, 0);
    CHECK(d.closes == 1 && d.reason == PMC_CLOSE_QUIT_NC &&
              !pmc_session_is_closed(s) &&
              pmc_session_close_reason(s) == PMC_CLOSE_QUIT_NC,
          "QUIT_NC: close ran, the session stays open");
    feed_raw(s, 'C', "h\0" "4\0\x19" "192.0.2.1", 2 + 1 + 2 + 10);
    pmc_session_eof(s);
    CHECK(d.closes == 2 && d.reason == PMC_CLOSE_EOF, "then EOF");
    pmc_session_free(s);

    s = opened(&d, &h);
    pmc_session_feed(s, "GET / HTTP/1.0\r\n", 16);
    CHECK(d.closes == 1 && d.reason == PMC_CLOSE_ERROR &&
              pmc_session_error(s) != NULL,
          "garbage: ERROR");
    pmc_session_free(s);

    s = opened(&d, &h);
    pmc_session_feed(s, "\0\0\0\x05M<a", 7);
    pmc_session_eof(s);
    CHECK(d.closes == 1 && d.reason == PMC_CLOSE_ERROR,
          "end of stream inside a packet: ERROR");
    pmc_session_free(s);

    s = opened(&d, &h);
    pmc_session_end(s, PMC_ERR_TIMEOUT);
    CHECK(d.closes == 1 && d.reason == PMC_CLOSE_HOST, "ended by the host");
    pmc_session_free(s);

    /* Close is owed even with no input: the reason says why it came. */
    memset(&d, 0, sizeof d);
    s = pmc_session_new(&h, &d, NULL);
    pmc_session_eof(s);
    CHECK(d.closes == 1 && d.reason == PMC_CLOSE_EOF, "no input, EOF");
    pmc_session_free(s);
}

/* Under the server: a QUIT, a dropped connection and a read timeout. */
static atomic_int srv_reasons[8];

static int s_close(pmc_session *s, void *ud)
{
    (void)ud;
    atomic_fetch_add(&srv_reasons[pmc_session_close_reason(s) & 7], 1);
    return PMC_CONTINUE;
}

static void test_server_reasons(const char *dir)
{
    static const pmc_handlers h = {.close = s_close};
    pmc_server_config cfg;
    tsrv t;
    char p[128], spec[160];
    pmc_result r;
    cli *k;
    long long end;

    pmc_server_config_init(&cfg);
    cfg.handlers = &h;
    cfg.read_timeout_ms = 100;
    snprintf(p, sizeof p, "%s/reason.sock", dir);
    snprintf(spec, sizeof spec, "unix:%s", p);
    if (srv_start(&t, &cfg, spec) < 0)
        return;
    k = cli_new(dial_unix(p), 3000);
    pmc_client_negotiate(k->c, &r);
    pmc_client_quit(k->c);
    cli_free(k);
    k = cli_new(dial_unix(p), 3000);
    pmc_client_negotiate(k->c, &r);
    cli_free(k); /* dropped without QUIT */
    k = cli_new(dial_unix(p), 3000);
    pmc_client_negotiate(k->c, &r);
    CHECK(write(k->fd, "\0\0", 2) == 2, "half a packet sent");
    end = now_ms() + 3000;
    while (atomic_load(&srv_reasons[PMC_CLOSE_HOST]) < 1 && now_ms() < end)
        sleep_ms(10);
    cli_free(k);
    srv_stop(&t, 1000);
    CHECK(atomic_load(&srv_reasons[PMC_CLOSE_QUIT]) == 1 &&
              atomic_load(&srv_reasons[PMC_CLOSE_EOF]) == 1 &&
              atomic_load(&srv_reasons[PMC_CLOSE_HOST]) == 1,
          "server: QUIT %d, EOF %d, timeout (HOST) %d",
          atomic_load(&srv_reasons[PMC_CLOSE_QUIT]),
          atomic_load(&srv_reasons[PMC_CLOSE_EOF]),
          atomic_load(&srv_reasons[PMC_CLOSE_HOST]));
}

int main(void)
{
    char dir[64];

    snprintf(dir, sizeof dir, "/tmp/pmc-inproc-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_wait_hook();
    test_close_reason();
    test_server_reasons(dir);
    rmdir(dir);
    return tap_done();
}
