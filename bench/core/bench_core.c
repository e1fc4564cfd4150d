/*
 * bench_core: cost of the session layer for a typical Postfix conversation.
 *
 * The MTA's bytes are encoded once, in memory, before timing starts: OPTNEG,
 * CONNECT and HELO for the connection, then per message MAIL, RCPT, DATA,
 * 12 headers, EOH, one 4 KiB body chunk and EOM, each preceded by Postfix's
 * MACRO packet, and ABORT before the next message as Postfix sends it.  Every
 * handler exists and returns CONTINUE, and no NR bit is negotiated, so every
 * command but MACRO and ABORT gets a reply, as with a real filter.
 *
 * Each round trip (MACRO + command, which Postfix writes in one flush) is
 * one pmc_session_feed call followed by taking the output: what a server
 * does for one read.  No I/O is involved.
 *
 * usage: bench_core [-n MESSAGES] [-m reuse|batch|fresh|both] [-q]
 *   reuse: one connection, MESSAGES messages on it, one feed per round trip
 *   batch: as reuse, but each whole message in one feed
 *   fresh: a new session (OPTNEG, CONNECT, HELO, QUIT) per message
 *   both:  all three (fresh with MESSAGES/4)
 *   -q     no table (for instruction counting under callgrind)
 */
/* clock_gettime is POSIX, not C11 */
#define _POSIX_C_SOURCE 200809L
#include "pmcore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The encoded conversation: one buffer, cut into round trips. */
typedef struct trip {
    size_t off, len;
    int replies; /* reply packets expected from the filter */
} trip;

typedef struct script {
    pmc_buf bytes;
    trip trips[64];
    size_t ntrips;
} script;

static script conn_open, message, conn_close;
/* The same message as one round trip: every packet in one feed, as when a
 * server's read takes a whole pipelined batch.  Shows the per-feed cost. */
static script batch;

static void die(const char *what)
{
    fprintf(stderr, "bench_core: %s\n", what);
    exit(1);
}

static void must(pmc_status st)
{
    if (st != PMC_OK)
        die(pmc_status_name(st));
}

/* Start a new round trip in a script. */
static void trip_begin(script *sc, int replies)
{
    if (sc->ntrips == sizeof sc->trips / sizeof sc->trips[0])
        die("too many round trips");
    sc->trips[sc->ntrips].off = sc->bytes.len;
    sc->trips[sc->ntrips].replies = replies;
    sc->ntrips++;
}

static void trip_end(script *sc)
{
    trip *t = &sc->trips[sc->ntrips - 1];
    t->len = sc->bytes.len - t->off;
}

/* A MACRO packet for stage command 'stage' with NULL-terminated pairs. */
static void macro(script *sc, char stage, const char *const *kv)
{
    pmc_part parts[16];
    size_t n = 0;
    parts[n++] = (pmc_part){&stage, 1, 0};
    for (; kv && kv[0]; kv += 2) {
        parts[n++] = (pmc_part){kv[0], strlen(kv[0]), 1};
        parts[n++] = (pmc_part){kv[1], strlen(kv[1]), 1};
    }
    must(pmc_encode_parts(&sc->bytes, 'D', parts, n));
}

/* One command, its strings NUL-terminated as the protocol wants. */
static void command(script *sc, char cmd, const char *const *strs)
{
    pmc_part parts[8];
    size_t n = 0;
    for (; strs && strs[0]; strs++)
        parts[n++] = (pmc_part){strs[0], strlen(strs[0]), 1};
    must(pmc_encode_parts(&sc->bytes, (uint8_t)cmd, parts, n));
}

static void build(void)
{
    static const char *const conn_mac[] = {
        "j", "mx.example.net", "{daemon_name}", "mx.example.net",
        "{daemon_addr}", "192.0.2.25", "v", "Postfix 3.7.11", "_",
        "client.example.org [198.51.100.7]", NULL};
    static const char *const mail_mac[] = {
        "{mail_addr}", "alice@example.org", "{mail_host}", "example.org",
        "{mail_mailer}", "smtp", NULL};
    static const char *const rcpt_mac[] = {
        "i", "4Xk2Lq0NvTz9", "{rcpt_addr}", "bob@example.com",
        "{rcpt_host}", "example.com", "{rcpt_mailer}", "local", NULL};
    static const char *const qid[] = {"i", "4Xk2Lq0NvTz9", NULL};
    static const char *const headers[12][2] = {
        {"Received", "from client.example.org (client.example.org "
                     "[198.51.100.7])\n\tby mx.example.net (Postfix) with "
                     "ESMTPS id 4Xk2Lq0NvTz9\n\tfor <bob@example.com>; "
                     "Sun, 22 Nov 2026 03:00:00 +0000 (UTC)"},
        {"DKIM-Signature", "v=1; a=rsa-sha256; c=relaxed/relaxed; "
                           "d=example.org; s=sel1; h=from:to:subject:date;"
                           "\n\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;"
                           "\n\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ=="},
        {"From", "Alice <alice@example.org>"},
        {"To", "Bob <bob@example.com>"},
        {"Subject", "Quarterly numbers"},
        {"Date", "Sun, 22 Nov 2026 03:59:58 +0000"},
        {"Message-ID", "<20261122035958.1234@example.org>"},
        {"MIME-Version", "1.0"},
        {"Content-Type", "text/plain; charset=utf-8"},
        {"Content-Transfer-Encoding", "8bit"},
        {"X-Mailer", "bench_core"},
        {"List-Unsubscribe", "<mailto:unsubscribe@example.org>"}};
    static char body[4096];
    /* version 6, actions 0x1FF, protocol 0x1FFFFF, big-endian */
    static const uint8_t optneg[12] = {0, 0, 0, 6, 0, 0, 1, 0xFF,
                                       0, 0x1F, 0xFF, 0xFF};

    /* Body: 64-byte CRLF lines. */
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (i % 64 == 62) ? '\r' : (i % 64 == 63) ? '\n' : 'a' + i % 26;

    /* Connection: OPTNEG as Postfix offers it, CONNECT, HELO. */
    trip_begin(&conn_open, 1);
    must(pmc_encode(&conn_open.bytes, 'O', optneg, sizeof optneg));
    trip_end(&conn_open);
    trip_begin(&conn_open, 1);
    macro(&conn_open, 'C', conn_mac);
    {
        static const uint8_t c[] = "client.example.org\0" "4\0\x19"
                                   "198.51.100.7";
        must(pmc_encode(&conn_open.bytes, 'C', c, sizeof c));
    }
    trip_end(&conn_open);
    trip_begin(&conn_open, 1);
    macro(&conn_open, 'H', NULL);
    command(&conn_open, 'H', (const char *const[]){"client.example.org", NULL});
    trip_end(&conn_open);

    /* One message. */
    trip_begin(&message, 1);
    macro(&message, 'M', mail_mac);
    command(&message, 'M', (const char *const[]){"<alice@example.org>",
                                                 "SIZE=5120", "BODY=8BITMIME",
                                                 NULL});
    trip_end(&message);
    trip_begin(&message, 1);
    macro(&message, 'R', rcpt_mac);
    command(&message, 'R', (const char *const[]){"<bob@example.com>", NULL});
    trip_end(&message);
    trip_begin(&message, 1);
    macro(&message, 'T', qid);
    command(&message, 'T', NULL);
    trip_end(&message);
    for (int i = 0; i < 12; i++) {
        trip_begin(&message, 1);
        macro(&message, 'L', qid);
        command(&message, 'L',
                (const char *const[]){headers[i][0], headers[i][1], NULL});
        trip_end(&message);
    }
    trip_begin(&message, 1);
    macro(&message, 'N', qid);
    command(&message, 'N', NULL);
    trip_end(&message);
    trip_begin(&message, 1);
    macro(&message, 'B', qid);
    must(pmc_encode(&message.bytes, 'B', body, sizeof body));
    trip_end(&message);
    trip_begin(&message, 1);
    macro(&message, 'E', qid);
    command(&message, 'E', NULL);
    trip_end(&message);
    trip_begin(&message, 0);
    command(&message, 'A', NULL);
    trip_end(&message);

    batch.bytes = message.bytes; /* shared, not copied */
    batch.ntrips = 1;
    batch.trips[0].len = message.bytes.len;
    for (size_t i = 0; i < message.ntrips; i++)
        batch.trips[0].replies += message.trips[i].replies;

    trip_begin(&conn_close, 0);
    command(&conn_close, 'Q', NULL);
    trip_end(&conn_close);
}

/* --- the null filter --------------------------------------------------- */

static int h_neg(pmc_session *s, void *u, pmc_negotiation *n)
{ (void)s; (void)u; (void)n; return PMC_CONTINUE; }
static int h_conn(pmc_session *s, void *u, const pmc_connect_info *ci)
{ (void)s; (void)u; (void)ci; return PMC_CONTINUE; }
static int h_str(pmc_session *s, void *u, pmc_str v)
{ (void)s; (void)u; (void)v; return PMC_CONTINUE; }
static int h_args(pmc_session *s, void *u, const pmc_args *a)
{ (void)s; (void)u; (void)a; return PMC_CONTINUE; }
static int h_none(pmc_session *s, void *u)
{ (void)s; (void)u; return PMC_CONTINUE; }
static int h_hdr(pmc_session *s, void *u, pmc_str n, pmc_str v)
{ (void)s; (void)u; (void)n; (void)v; return PMC_CONTINUE; }
static int h_body(pmc_session *s, void *u, const uint8_t *p, size_t n)
{ (void)s; (void)u; (void)p; (void)n; return PMC_CONTINUE; }

static const pmc_handlers handlers = {
    .negotiate = h_neg, .connect = h_conn, .helo = h_str, .envfrom = h_args,
    .envrcpt = h_args, .data = h_none, .header = h_hdr, .eoh = h_none,
    .body = h_body, .eom = h_none, .abort = h_none, .close = h_none,
    .unknown = h_str};

/* Feed every round trip of a script, checking that each got exactly the
 * expected number of 5-byte CONTINUE replies (the OPTNEG reply differs). */
static void play(pmc_session *s, const script *sc)
{
    for (size_t i = 0; i < sc->ntrips; i++) {
        const trip *t = &sc->trips[i];
        size_t n;
        pmc_status st = pmc_session_feed(s, sc->bytes.data + t->off, t->len);
        if (st != PMC_OK && st != PMC_ERR_CLOSED)
            die(pmc_session_error(s)->message);
        pmc_session_output(s, &n);
        if (sc == &conn_open ? n < 5 : n != 5 * (size_t)t->replies)
            die("unexpected reply bytes");
        pmc_session_consume(s, n);
    }
}

static pmc_session *open_session(void)
{
    pmc_session *s = pmc_session_new(&handlers, NULL, NULL);
    if (!s)
        die("out of memory");
    play(s, &conn_open);
    return s;
}

static void close_session(pmc_session *s)
{
    play(s, &conn_close);
    pmc_session_free(s);
}

static void run_reuse(long n)
{
    pmc_session *s = open_session();
    for (long i = 0; i < n; i++)
        play(s, &message);
    pmc_session_stats st;
    pmc_session_stats_get(s, &st);
    if (st.messages != (uint64_t)n)
        die("message count mismatch");
    close_session(s);
}

static void run_batch(long n)
{
    pmc_session *s = open_session();
    for (long i = 0; i < n; i++)
        play(s, &batch);
    close_session(s);
}

static void run_fresh(long n)
{
    for (long i = 0; i < n; i++) {
        pmc_session *s = open_session();
        play(s, &message);
        close_session(s);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *mode, void (*fn)(long), long n, int quiet)
{
    double t0 = now();
    fn(n);
    double dt = now() - t0;
    if (!quiet)
        printf("%-6s %10ld %10.3f %14.0f %12.1f\n", mode, n, dt,
               dt > 0 ? (double)n / dt : 0.0,
               dt > 0 ? (double)n * (double)message.bytes.len / dt / 1e6 : 0.0);
}

int main(int argc, char **argv)
{
    long n = 200000;
    const char *mode = "both";
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc)
            mode = argv[++i];
        else if (!strcmp(argv[i], "-q"))
            quiet = 1;
        else {
            fprintf(stderr, "usage: bench_core [-n MESSAGES] "
                            "[-m reuse|batch|fresh|both] [-q]\n");
            return 2;
        }
    }
    build();
    if (!quiet) {
        printf("conversation: %zu bytes per message in %zu round trips\n",
               message.bytes.len, message.ntrips);
        printf("%-6s %10s %10s %14s %12s\n", "mode", "messages", "seconds",
               "messages/s", "MB/s in");
    }
    if (!strcmp(mode, "reuse") || !strcmp(mode, "both"))
        report("reuse", run_reuse, n, quiet);
    if (!strcmp(mode, "batch") || !strcmp(mode, "both"))
        report("batch", run_batch, n, quiet);
    if (!strcmp(mode, "fresh") || !strcmp(mode, "both"))
        report("fresh", run_fresh, strcmp(mode, "both") ? n : n / 4, quiet);
    pmc_buf_free(&conn_open.bytes);
    pmc_buf_free(&message.bytes); /* also batch's */
    pmc_buf_free(&conn_close.bytes);
    return 0;
}
