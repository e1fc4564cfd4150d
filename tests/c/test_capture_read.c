/* The capture reader (pmcore/capture.h) against the capture writer: what a
 * server wrote reads back as exactly the bytes that went over the socket,
 * packet by packet, however the bytes were cut and whatever they hold;
 * bad files are refused with the line at fault; and a file cut anywhere
 * (a capture still being written) is refused as cut, never read as a
 * different conversation. */
#include "srvtest.h"

#include "capture.h"

static char dir[64];

/* --- streams of packets ---------------------------------------------------- */

/* One direction's bytes and where each packet starts. */
typedef struct stream {
    pmc_buf b;
    size_t at[512];
    size_t n;
} stream;

static void pk(stream *s, uint8_t cmd, const void *p, size_t n)
{
    s->at[s->n++] = s->b.len;
    if (pmc_encode(&s->b, cmd, p, n) != PMC_OK)
        abort();
}

/* Bytes that are no packet (or a packet's first part) at the end. */
static void tail(stream *s, const void *p, size_t n)
{
    s->at[s->n++] = s->b.len;
    pmc_buf_append(&s->b, p, n);
}

/* Whether the records of one direction, joined, are the stream's bytes,
 * and each record one of its pieces, in order; diag says how not. */
static int matches(const pmc_capture *c, pmc_capture_dir d, const stream *s,
                   char *diag, size_t dn)
{
    pmc_buf all = {0};
    size_t k = 0, bad_at = (size_t)-1;
    int ok;

    for (size_t i = 0; i < pmc_capture_count(c); i++) {
        const pmc_capture_record *r = pmc_capture_record_at(c, i);
        if (r->dir != d)
            continue;
        if (bad_at == (size_t)-1 &&
            (k >= s->n || s->at[k] != all.len ||
             (k + 1 < s->n ? s->at[k + 1] : s->b.len) - s->at[k] != r->len))
            bad_at = k;
        pmc_buf_append(&all, r->bytes, r->len);
        k++;
    }
    ok = all.len == s->b.len &&
         (all.len == 0 || memcmp(all.data, s->b.data, all.len) == 0) &&
         k == s->n && bad_at == (size_t)-1;
    snprintf(diag, dn, "%zu bytes in %zu records, wanted %zu in %zu; first "
             "record off: %zd", all.len, k, s->b.len, s->n, (ssize_t)bad_at);
    pmc_buf_free(&all);
    return ok;
}

static int same_as(const pmc_capture *c, pmc_capture_dir d, const stream *s,
                   const char *what)
{
    char diag[200];
    int ok = matches(c, d, s, diag, sizeof diag);

    if (!CHECK(ok, "%s: the %zu bytes that went, a record a packet", what,
               s->b.len))
        DIAG("%s", diag);
    return ok;
}

static char *path_of(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

/* Both streams through the writer, the MTA's cut every 'cut' bytes (0:
 * whole), the milter's all at once; read back.  NULL if anything failed. */
static pmc_capture *write_read(const char *name, const stream *mta,
                               const stream *flt, size_t cut,
                               const char *peer)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    pmc_conn_info ci;
    pmci_capfile *f = pmci_capfile_new(dfd, name);
    pmc_capture *c = NULL;
    pmc_error e;
    char p[256];

    memset(&ci, 0, sizeof ci);
    ci.id = 7;
    ci.family = AF_INET6;
    snprintf(ci.peer, sizeof ci.peer, "%s", peer);
    ci.peer_port = 2525;
    if (!f || pmci_capfile_start(f, &ci, 1000) != 0)
        abort();
    for (size_t off = 0; off < mta->b.len;) {
        size_t k = cut && mta->b.len - off > cut ? cut : mta->b.len - off;
        if (pmci_capfile_bytes(f, 0, mta->b.data + off, k,
                               1000 + (long long)off))
            abort();
        off += k;
    }
    if (flt->b.len && pmci_capfile_bytes(f, 1, flt->b.data, flt->b.len, 2000))
        abort();
    if (pmci_capfile_end(f, 3000) < 0)
        abort();
    close(dfd);
    if (pmc_capture_read_file(path_of(name, p, sizeof p), &c, &e) != PMC_OK)
        DIAG("%s: %s", name, e.message);
    unlink(p);
    return c;
}

/* --- the writer's every kind of record, read back --------------------------- */

static void kinds_tests(void)
{
    stream mta = {0}, flt = {0};
    uint8_t all[256], opt[40] = {0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0x1f, 0xff,
                                  0xff};
    static const char mac[] = "Cj\0mx a=b\0{daemon_name}\0sm\\tpd\0_\0\xff\t";
    static const char odd[] = "Hname-without-value"; /* not macro-shaped */
    static const char body[] = "line one\r\n\0line = two\\\r\n";
    const pmc_capture_info *in;
    pmc_capture *c;

    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    memcpy(opt + 12, "\0\0\0\x01{rcpt_addr} i\0", 18);
    pk(&mta, 'O', opt, 12);
    pk(&mta, 'D', mac, sizeof mac);   /* ends in its NUL: macro-shaped */
    pk(&mta, 'D', odd, sizeof odd);   /* a name without a value */
    pk(&mta, 'D', "T", 1);            /* a stage and no macros */
    pk(&mta, 'D', "", 0);
    pk(&mta, 'O', opt, 5);            /* too short for options */
    pk(&mta, 'L', all, sizeof all);
    pk(&mta, 'H', " lead and trail ", 16);
    pk(&mta, 'B', body, sizeof body - 1);
    pk(&mta, 'B', "", 0);
    pk(&mta, 'N', "", 0);
    pk(&mta, '\\', "\\", 1);          /* no milter command, but a packet */
    pk(&mta, ' ', "=", 1);
    pk(&mta, 0x01, all, 3);
    pk(&mta, '=', "", 0);
    pk(&mta, 'B', all, sizeof all);
    tail(&mta, "\0\0\0\x09Qtrunc", 10); /* cut off by the end: raw */
    pk(&flt, 'O', opt, sizeof opt);     /* with its macro lists */
    pk(&flt, 'y', "550 5.7.1 no\0", 13);
    pk(&flt, 'b', all, sizeof all);
    pk(&flt, 'h', "X-A\0v \\ w\0", 10);
    pk(&flt, 'c', "", 0);

    for (int i = 0; i < 3; i++) {
        static const size_t cuts[3] = {0, 1, 7};
        size_t cut = cuts[i];
        char name[32], what[64];
        snprintf(name, sizeof name, "k%zu.pmcap", cut);
        c = write_read(name, &mta, &flt, cut, "2001:db8::1 x=y\\z");
        if (!CHECK(c != NULL, "cut every %zu bytes: the file reads", cut))
            continue;
        snprintf(what, sizeof what, "MTA to milter, cut every %zu", cut);
        same_as(c, PMC_CAPTURE_TO_MILTER, &mta, what);
        snprintf(what, sizeof what, "milter to MTA, cut every %zu", cut);
        same_as(c, PMC_CAPTURE_TO_MTA, &flt, what);
        pmc_capture_free(c);
    }
    c = write_read("k.pmcap", &mta, &flt, 0, "2001:db8::1 x=y\\z");
    if (!c)
        return;
    in = pmc_capture_get_info(c);
    CHECK(in->format == 1 && strlen(in->start_time) == 24 &&
              in->start_time[23] == 'Z' && in->pid == (long long)getpid() &&
              in->conn == 7 && strcmp(in->family, "inet6") == 0 &&
              in->port == 2525,
          "the start record: time, pid, conn, family, port");
    CHECK(in->peer.len == 17 &&
              memcmp(in->peer.ptr, "2001:db8::1 x=y\\z", 18) == 0,
          "the peer, unescaped (spaces, '=' and backslash in it)");
    CHECK(in->offer.present && in->offer.version == 6 &&
              in->offer.actions == 0x1ff && in->offer.protocol == 0x1fffff &&
              in->negotiated.present && in->negotiated.version == 6,
          "both sides' options: the offer and what was negotiated");
    CHECK(in->complete && in->end_ms == 2000, "complete, with the end's "
          "time");
    {
        const pmc_capture_record *r0 = pmc_capture_record_at(c, 0);
        const pmc_capture_record *rl = NULL, *raw = NULL;
        for (size_t i = 0; i < pmc_capture_count(c); i++) {
            const pmc_capture_record *r = pmc_capture_record_at(c, i);
            if (r->raw)
                raw = r;
            if (r->dir == PMC_CAPTURE_TO_MTA)
                rl = r;
        }
        CHECK(r0 && r0->cmd == 'O' && r0->line == 3 && !r0->raw &&
                  r0->dir == PMC_CAPTURE_TO_MILTER && r0->ms == 0,
              "the first record: OPTNEG on line 3 at 0 ms");
        CHECK(rl && rl->cmd == 'c' && rl->dir == PMC_CAPTURE_TO_MTA &&
                  rl->ms == 1000,
              "the last: the milter's continue, 1000 ms in");
        CHECK(raw && raw->cmd == 0 && raw->len == 10 && raw->ms == 2000 &&
                  raw == pmc_capture_record_at(c, pmc_capture_count(c) - 1),
              "the cut-off packet: raw, its 10 bytes, last, when it ended");
        CHECK(pmc_capture_record_at(c, pmc_capture_count(c)) == NULL,
              "no record past the count");
    }
    pmc_capture_free(c);

    /* A body cut off: its record holds the bytes that came, marked raw. */
    {
        stream m2 = {0}, none = {0};
        pk(&m2, 'N', "", 0);
        pk(&m2, 'B', body, sizeof body - 1);
        m2.b.len -= 9;
        pk(&none, 'c', "", 0);
        none.b.len = 0;
        none.n = 0;
        c = write_read("cutbody.pmcap", &m2, &none, 0, "");
        if (c) {
            const pmc_capture_record *r = pmc_capture_record_at(c, 1);
            same_as(c, PMC_CAPTURE_TO_MILTER, &m2, "a body cut off");
            CHECK(r && r->raw && r->cmd == 'B' &&
                      r->len == 5 + sizeof body - 1 - 9,
                  "the cut body: raw, 'B', what came of it");
            pmc_capture_free(c);
        }
        pmc_buf_free(&m2.b);
        pmc_buf_free(&none.b);
    }
    pmc_buf_free(&mta.b);
    pmc_buf_free(&flt.b);
}

/* Random packets, random bytes, random cuts: the reader gives back what
 * the writer was given, every time. */
static void random_tests(void)
{
    unsigned seed = 20261207, good = 0;
    const int rounds = 150;

    for (int round = 0; round < rounds; round++) {
        stream mta = {0}, flt = {0};
        pmc_capture *c;
        uint8_t p[3000];
        int n = 1 + rand_r(&seed) % 40;
        for (int i = 0; i < n; i++) {
            stream *s = rand_r(&seed) % 3 ? &mta : &flt;
            static const char cmds[] = "ODDDLBBHMbhyc\\=";
            uint8_t cmd = rand_r(&seed) % 5
                              ? (uint8_t)cmds[rand_r(&seed) % 15]
                              : (uint8_t)rand_r(&seed);
            size_t len = (size_t)rand_r(&seed) %
                         (rand_r(&seed) % 4 ? 40 : sizeof p);
            for (size_t k = 0; k < len; k++) {
                /* Macro-shaped payloads now and then. */
                int r = rand_r(&seed) % 10;
                p[k] = r < 2 ? 0 : r < 4 ? (uint8_t)"= \\\n"[r & 3]
                                         : (uint8_t)rand_r(&seed);
            }
            pk(s, cmd, p, len);
        }
        c = write_read("r.pmcap", &mta, &flt,
                       (size_t)rand_r(&seed) % 3 ? 0
                                                 : 1 + rand_r(&seed) % 64,
                       "peer");
        if (c) {
            char d0[200], d1[200];
            int ok = matches(c, PMC_CAPTURE_TO_MILTER, &mta, d0, sizeof d0) &
                     matches(c, PMC_CAPTURE_TO_MTA, &flt, d1, sizeof d1);
            if (!ok && good == (unsigned)round)
                DIAG("round %d: %s / %s", round, d0, d1);
            good += ok;
        }
        pmc_capture_free(c);
        pmc_buf_free(&mta.b);
        pmc_buf_free(&flt.b);
    }
    CHECK(good == (unsigned)rounds, "%u of %d random conversations read "
          "back byte for byte", good, rounds);
}

/* --- a server's capture of a real socket -------------------------------------- */

/* Sends a conversation to a capturing server, takes every byte of its
 * answer, and reads the file the server wrote: the MTA's records are the
 * bytes sent, the milter's the bytes received. */
static void server_tests(void)
{
    pmc_server_config cfg;
    app a;
    tsrv t;
    stream mta = {0}, flt = {0};
    char spec[96], path[256], name[256] = "";
    static uint8_t got[1 << 20];
    uint8_t all[256], opt[12] = {0, 0, 0, 6, 0, 0, 1, 0xff, 0, 0, 0, 0};
    static const char mac[] = "Cj\0mx.example\0_\0a b=c\xff\0{x}\0\0";
    static const char con[] = "host.example\0" "4\x04\xd2" "192.0.2.1";
    static const char hdr[] = "Subject\0caf\xc3\xa9 \\ = \t\0";
    pmc_capture *c = NULL;
    pmc_error e;
    size_t n;
    int fd;
    DIR *d;
    struct dirent *de;

    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    pk(&mta, 'O', opt, sizeof opt);
    pk(&mta, 'D', mac, sizeof mac - 1);
    pk(&mta, 'C', con, sizeof con);
    pk(&mta, 'H', "helo.example", 13);
    pk(&mta, 'M', "<a@example.org>\0SIZE=10\0", 24);
    pk(&mta, 'R', "<good@example.org>", 19);
    pk(&mta, 'R', "<bad@example.org>", 18);
    pk(&mta, 'L', hdr, sizeof hdr - 1);
    pk(&mta, 'N', "", 0);
    pk(&mta, 'B', all, sizeof all);
    pk(&mta, 'B', "\r\n.\r\n", 5);
    pk(&mta, 'E', "", 0);
    pk(&mta, 'Q', "", 0);

    memset(&a, 0, sizeof a);
    base_config(&cfg, &a);
    cfg.session.actions |= PMC_ACT_CHGBODY;
    a.big_body = 20000; /* the milter's 'b' packets: bodies both ways */
    cfg.capture_dir = dir;
    snprintf(spec, sizeof spec, "unix:%s/sock", dir);
    if (srv_start(&t, &cfg, spec) < 0) {
        CHECK(0, "the capturing server started");
        return;
    }
    fd = dial_unix(spec + 5);
    if (fd >= 0 && write(fd, mta.b.data, mta.b.len) != (ssize_t)mta.b.len)
        DIAG("short write");
    n = fd >= 0 ? read_all(fd, got, sizeof got, 5000) : 0;
    if (fd >= 0)
        close(fd);
    srv_stop(&t, 2000); /* the file is complete once the server is done */

    /* What came back, cut into its packets. */
    for (size_t off = 0; off + 5 <= n;) {
        uint32_t l = (uint32_t)got[off] << 24 | (uint32_t)got[off + 1] << 16 |
                     (uint32_t)got[off + 2] << 8 | got[off + 3];
        if (off + 4 + l > n)
            break;
        pk(&flt, got[off + 4], got + off + 5, l - 1);
        off += 4 + l;
    }
    CHECK(flt.b.len == n && n > 20000,
          "the milter answered in whole packets (%zu bytes)", n);

    if ((d = opendir(dir)) != NULL) {
        while ((de = readdir(d)) != NULL)
            if (strstr(de->d_name, ".pmcap"))
                snprintf(name, sizeof name, "%s", de->d_name);
        closedir(d);
    }
    if (!CHECK(name[0] && pmc_capture_read_file(path_of(name, path,
                                                        sizeof path),
                                                &c, &e) == PMC_OK,
               "the server's capture file reads"))
        DIAG("%s", name[0] ? e.message : "no file");
    if (c) {
        const pmc_capture_info *in = pmc_capture_get_info(c);
        same_as(c, PMC_CAPTURE_TO_MILTER, &mta, "server, MTA to milter");
        same_as(c, PMC_CAPTURE_TO_MTA, &flt, "server, milter to MTA");
        CHECK(in->complete && strcmp(in->family, "unix") == 0 &&
                  in->offer.actions == 0x1ff && in->negotiated.present &&
                  (in->negotiated.actions & PMC_ACT_CHGBODY),
              "the server's start, options and end");
    }
    pmc_capture_free(c);
    unlink(path);
    pmc_buf_free(&mta.b);
    pmc_buf_free(&flt.b);
}

/* --- bad files ----------------------------------------------------------------- */

/* text must be refused with code, and a message holding want. */
static void refused(const char *text, pmc_status code, const char *want)
{
    pmc_capture *c = (pmc_capture *)&c;
    pmc_error e;
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1); /* exactly: ASan sees a read past it */
    pmc_status st;

    memcpy(copy, text, n);
    memset(&e, 0, sizeof e);
    st = pmc_capture_parse(copy, n, &c, &e);
    if (!CHECK(st == code && c == NULL && strstr(e.message, want),
               "refused as %s: %s", pmc_status_name(code), want))
        DIAG("got %s: %s", pmc_status_name(st), e.message);
    pmc_capture_free(st == PMC_OK ? c : NULL);
    free(copy);
}

#define HEAD "pmcore-capture 1\n0 start time=x pid=1 conn=2 family=unix " \
             "port=0 peer=\n"

static void bad_tests(void)
{
    pmc_capture *c;
    pmc_error e;

    refused("", PMC_ERR_TRUNCATED, "line 1: the file is empty");
    refused("From: a@b\n\nhello\n", PMC_ERR_FORMAT,
            "line 1: not a pmcore capture file");
    refused("pmcore-capture one\n", PMC_ERR_FORMAT,
            "not a pmcore capture file");
    refused("pmcore-capture 2\n0 > Q\n", PMC_ERR_FORMAT,
            "line 1: capture format 'pmcore-capture 2' is not version 1");
    refused("pmcore-capt", PMC_ERR_TRUNCATED, "line 1: the file ends inside");
    refused(HEAD "0 > H abc\\q\n", PMC_ERR_FORMAT,
            "line 3: bad escape '\\q' in the payload");
    refused(HEAD "0 > H abc\\x4\n", PMC_ERR_FORMAT, "line 3: bad escape");
    refused(HEAD "0 > H a\n0 > macros C j=x i\n", PMC_ERR_FORMAT,
            "line 4: a macro 'i' without '='");
    refused(HEAD "0 > macros CC j=x\n", PMC_ERR_FORMAT,
            "line 3: a macros' stage of 2 bytes");
    refused(HEAD "0 > options version=6 actions=0x1ff\n", PMC_ERR_FORMAT,
            "line 3: options without a number protocol=");
    refused(HEAD "0 < options version=6 actions=1 protocol=0x1ffffffff\n",
            PMC_ERR_FORMAT, "line 3: options without a number protocol=");
    refused(HEAD "0 > options version=6 actions=1 protocol=2 more=3\n",
            PMC_ERR_FORMAT, "not one rest=");
    refused(HEAD "0 > HH x\n", PMC_ERR_FORMAT,
            "line 3: 'HH' is neither a command byte");
    refused(HEAD "0 >  H\n", PMC_ERR_FORMAT,
            "line 3: a packet record without its command");
    refused(HEAD "zero > H\n", PMC_ERR_FORMAT,
            "line 3: a record that does not start with its time");
    refused(HEAD "0x1 > H\n", PMC_ERR_FORMAT, "line 3: a record that does");
    refused(HEAD "5\n", PMC_ERR_FORMAT, "line 3: a time and no record");
    refused(HEAD "0 > raw\n", PMC_ERR_FORMAT, "raw without its bytes");
    refused(HEAD "0 > H x\n0 > cut 1\n", PMC_ERR_FORMAT,
            "line 4: a cut of 1 bytes, and no body");
    refused(HEAD "0 > B =3\nabc\n0 < cut 1\n", PMC_ERR_FORMAT,
            "line 5: a cut of 1 bytes");
    refused(HEAD "0 > B =3\nabc\n0 > cut 4\n", PMC_ERR_FORMAT,
            "line 5: a cut of 4 bytes");
    refused(HEAD "0 > B =0\n\n", PMC_ERR_FORMAT,
            "line 3: a body's length '0' is not a number from 1");
    refused(HEAD "0 > B =10\nabc\n", PMC_ERR_TRUNCATED,
            "line 3: the file ends inside the 10 bytes of this body");
    refused(HEAD "0 > B =3\nabcd\n", PMC_ERR_FORMAT,
            "line 3: the 3 bytes of this body are not followed by a line");
    /* Lines are counted as an editor counts them, bodies' own included. */
    refused(HEAD "0 > B =6\na\nb\nc\n\n0 > H x\\q\n", PMC_ERR_FORMAT,
            "line 8: bad escape");
    refused(HEAD "0 > Q\n1 end\n1 > Q\n", PMC_ERR_FORMAT,
            "line 5: a record after the end record");
    refused(HEAD "0 start time=y\n", PMC_ERR_FORMAT,
            "line 3: a second start record");
    refused("pmcore-capture 1\n0 start port=70000\n", PMC_ERR_FORMAT,
            "line 2: a bad port= in the start record");
    refused("pmcore-capture 1\n0 start peer\n", PMC_ERR_FORMAT,
            "line 2: 'peer' in the start record is no KEY=VALUE");
    refused(HEAD "0 > H abc", PMC_ERR_TRUNCATED,
            "line 3: the file ends in the middle of this line");

    /* What the format lets a later writer add is skipped. */
    {
        static const char t[] = HEAD "0 note anything at all\n\n"
                                     "0 > Q\n1 end\n";
        CHECK(pmc_capture_parse(t, sizeof t - 1, &c, &e) == PMC_OK &&
                  pmc_capture_count(c) == 1 &&
                  pmc_capture_record_at(c, 0)->line == 5 &&
                  pmc_capture_get_info(c)->complete,
              "a kind of record it does not know, and an empty line, are "
              "skipped");
        pmc_capture_free(c);
    }
    CHECK(pmc_capture_parse(NULL, 3, &c, &e) == PMC_ERR_ARGUMENT &&
              pmc_capture_parse("x", 1, NULL, &e) == PMC_ERR_ARGUMENT,
          "no text, or no place for the capture: ARGUMENT");
    CHECK(pmc_capture_read_file("/nonexistent/x.pmcap", &c, &e) ==
                  PMC_ERR_IO && c == NULL &&
              strstr(e.message, "/nonexistent/x.pmcap: No such file"),
          "a file that is not there: IO, naming it");
    {
        char p[256];
        FILE *f = fopen(path_of("bad.pmcap", p, sizeof p), "w");
        fputs(HEAD "0 > H abc\\q\n", f);
        fclose(f);
        CHECK(pmc_capture_read_file(p, &c, &e) == PMC_ERR_FORMAT &&
                  strstr(e.message, "bad.pmcap:3: bad escape") &&
                  e.offset == sizeof HEAD - 1,
              "from a file, the message starts PATH:LINE: and the offset "
              "is the line's");
        unlink(p);
    }
}

/* --- a file cut anywhere ------------------------------------------------------- */

/* A capture a server is still writing ends anywhere, in a line or in a
 * body.  Every prefix of a file is either whole lines, read as the first
 * records of the file, or refused as TRUNCATED; never taken for a
 * different conversation, never read past its end. */
static void cut_tests(void)
{
    stream mta = {0}, flt = {0};
    static const char body[] = "one\r\ntwo\r\n";
    char p[256];
    pmc_capture *whole = NULL;
    pmc_buf text = {0};
    unsigned ok = 0, truncated = 0, other = 0, differ = 0;
    FILE *f;

    pk(&mta, 'O', "\0\0\0\6\0\0\0\1\0\0\0\0", 12);
    pk(&mta, 'D', "Cj\0mx\0", 6);
    pk(&mta, 'H', "helo \\ there", 12);
    pk(&mta, 'B', body, sizeof body - 1);
    pk(&flt, 'b', body, sizeof body - 1);
    pk(&flt, 'c', "", 0);
    {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY);
        pmc_conn_info ci;
        pmci_capfile *w = pmci_capfile_new(dfd, "cut.pmcap");
        memset(&ci, 0, sizeof ci);
        ci.family = AF_UNIX;
        if (!w || pmci_capfile_start(w, &ci, 0) ||
            pmci_capfile_bytes(w, 0, mta.b.data, mta.b.len, 0) ||
            pmci_capfile_bytes(w, 1, flt.b.data, flt.b.len, 1) ||
            pmci_capfile_end(w, 2) < 0)
            abort();
        close(dfd);
    }
    f = fopen(path_of("cut.pmcap", p, sizeof p), "rb");
    if (f) {
        uint8_t buf[4096];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0)
            pmc_buf_append(&text, buf, k);
        fclose(f);
    }
    unlink(p);
    if (!CHECK(text.len > 0 && pmc_capture_parse(text.data, text.len, &whole,
                                                 NULL) == PMC_OK,
               "the whole file reads"))
        return;
    for (size_t len = 0; len < text.len; len++) {
        char *copy = malloc(len ? len : 1);
        pmc_capture *c = NULL;
        pmc_error e;
        pmc_status st;
        memcpy(copy, text.data, len);
        st = pmc_capture_parse(copy, len, &c, &e);
        if (st == PMC_OK) {
            ok++;
            if (len == 0 || copy[len - 1] != '\n')
                differ++;
            /* Its records are the whole file's first ones. */
            for (size_t i = 0; i < pmc_capture_count(c); i++) {
                const pmc_capture_record *a = pmc_capture_record_at(c, i),
                                         *b = pmc_capture_record_at(whole, i);
                if (a->len != b->len || memcmp(a->bytes, b->bytes, a->len))
                    differ++;
            }
        } else if (st == PMC_ERR_TRUNCATED) {
            truncated++;
        } else {
            if (other++ == 0)
                DIAG("cut at %zu: %s", len, e.message);
        }
        pmc_capture_free(c);
        free(copy);
    }
    CHECK(other == 0 && truncated > 0 && ok > 0,
          "cut at each of %zu bytes: %u read, %u refused as TRUNCATED, %u "
          "otherwise", text.len, ok, truncated, other);
    CHECK(differ == 0, "what reads of a cut file is whole lines, the whole "
          "file's first records (%u differ)", differ);
    pmc_capture_free(whole);
    pmc_buf_free(&text);
    pmc_buf_free(&mta.b);
    pmc_buf_free(&flt.b);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/pmc-capread-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    unsetenv("PMCORE_CAPTURE");
    kinds_tests();
    random_tests();
    server_tests();
    bad_tests();
    cut_tests();
    rmdir(dir);
    return tap_done();
}
