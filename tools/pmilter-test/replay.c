/* --replay: play the MTA side of a capture against a milter, byte for
 * byte, and compare the milter's replies with the captured ones.
 *
 * The capture is cut into turns: the MTA's packets up to the next reply,
 * then the milter's replies up to the next MTA packet.  A turn whose
 * captured replies hold k final replies (a verdict, or the negotiation
 * answer) is over when the milter has sent k final replies again; a turn
 * without replies (macros, ABORT, QUIT, events negotiated as no-reply)
 * waits for none, as the MTA did not.  Progress packets are not compared:
 * they say how long a milter took, not what it decided. */
#include "pmt.h"
#include "replay.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_final(uint8_t code)
{
    return strchr("acdrtysfO4", code) != NULL && code != 0;
}

/* The transcript's names for the MTA's commands. */
static const char *event_name(uint8_t cmd)
{
    switch (cmd) {
    case 'O': return "OPTNEG";
    case 'C': return "CONNECT";
    case 'H': return "HELO";
    case 'M': return "MAIL";
    case 'R': return "RCPT";
    case 'T': return "DATA";
    case 'L': return "HEADER";
    case 'N': return "EOH";
    case 'B': return "BODY";
    case 'E': return "EOM";
    case 'A': return "ABORT";
    case 'Q': return "QUIT";
    case 'K': return "QUIT_NC";
    case 'U': return "UNKNOWN";
    default: return "a command";
    }
}

/* Bytes shown in a line: printable ASCII as it is, the rest escaped as in
 * the capture format. */
static void show(pmc_buf *o, const uint8_t *p, size_t n)
{
    char x[8];

    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
            pmc_buf_append(o, p + i, 1);
            continue;
        }
        if (p[i] == 0)
            snprintf(x, sizeof x, "\\0");
        else if (p[i] == '\\')
            snprintf(x, sizeof x, "\\\\");
        else
            snprintf(x, sizeof x, "\\x%02x", p[i]);
        pmc_buf_append(o, x, strlen(x));
    }
}

static void add(pmc_buf *o, const char *s)
{
    pmc_buf_append(o, s, strlen(s));
}

/* The NUL-terminated strings of a payload, one after another. */
static const uint8_t *str_at(const uint8_t *p, size_t n, size_t *off,
                             size_t *len)
{
    const uint8_t *s = p + *off, *z;

    if (*off >= n)
        return NULL;
    z = memchr(s, 0, n - *off);
    *len = z ? (size_t)(z - s) : n - *off;
    *off += *len + 1;
    return s;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* A reply packet as a line for people: the verdict, the modification and
 * its arguments, or the reply text. */
static char *describe(const uint8_t *pkt, size_t len)
{
    uint8_t code = pkt[4];
    const uint8_t *p = pkt + 5;
    size_t n = len - 5, off = 0, l1 = 0, l2 = 0;
    const uint8_t *a, *b;
    pmc_buf o = {0};
    char num[64];

    switch (code) {
    case 'a': add(&o, "accept"); break;
    case 'c': add(&o, "continue"); break;
    case 'd': add(&o, "discard"); break;
    case 'r': add(&o, "reject"); break;
    case 't': add(&o, "tempfail"); break;
    case 's': add(&o, "skip"); break;
    case 'f': add(&o, "connection failure"); break;
    case '4': add(&o, "shutdown"); break;
    case 'y': add(&o, "reply "); show(&o, p, n && !p[n - 1] ? n - 1 : n);
        break;
    case 'O':
        if (n >= 12) {
            snprintf(num, sizeof num, "negotiated version %u actions 0x%x "
                     "protocol 0x%x", (unsigned)be32(p),
                     (unsigned)be32(p + 4), (unsigned)be32(p + 8));
            add(&o, num);
            if (n > 12) {
                add(&o, " macros ");
                show(&o, p + 12, n - 12);
            }
        } else {
            add(&o, "negotiation reply ");
            show(&o, p, n);
        }
        break;
    case 'h': case 'i': case 'm':
        add(&o, code == 'h' ? "add header " : code == 'i'
                ? "insert header " : "change header ");
        if (code != 'h' && n >= 4) {
            snprintf(num, sizeof num, "#%u ", (unsigned)be32(p));
            add(&o, num);
            off = 4;
        }
        a = str_at(p, n, &off, &l1);
        b = str_at(p, n, &off, &l2);
        if (a)
            show(&o, a, l1);
        add(&o, ": ");
        if (b)
            show(&o, b, l2);
        break;
    case '+': case '-': case '2': case 'e':
        add(&o, code == '-' ? "delete recipient " : code == 'e'
                ? "change sender " : "add recipient ");
        a = str_at(p, n, &off, &l1);
        b = str_at(p, n, &off, &l2);
        if (a)
            show(&o, a, l1);
        if (b && l2) {
            add(&o, " ");
            show(&o, b, l2);
        }
        break;
    case 'b':
        snprintf(num, sizeof num, "replace body chunk (%zu bytes) ", n);
        add(&o, num);
        show(&o, p, n > 60 ? 60 : n);
        if (n > 60)
            add(&o, "...");
        break;
    case 'q': add(&o, "quarantine "); show(&o, p, n && !p[n - 1] ? n - 1 : n);
        break;
    case 'p': add(&o, "progress"); break;
    default:
        add(&o, "reply code ");
        show(&o, &code, 1);
        add(&o, " ");
        show(&o, p, n);
    }
    pmc_buf_append(&o, "", 1);
    return (char *)o.data;
}

/* --- the socket ----------------------------------------------------------- */

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 1 read, 0 end of stream, -1 error, -2 timeout. */
static int read_full(int fd, uint8_t *p, size_t n, int timeout_ms)
{
    while (n > 0) {
        struct pollfd pf = {fd, POLLIN, 0};
        int rc = poll(&pf, 1, timeout_ms);
        ssize_t r;
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            return -2;
        if (rc < 0)
            return -1;
        r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? 0 : -1;
        p += r;
        n -= (size_t)r;
    }
    return 1;
}

/* One reply packet into *out (whole, length included). */
static int read_packet(int fd, pmc_buf *out, int timeout_ms)
{
    uint8_t h[4];
    uint32_t len;
    uint8_t *body;
    int rc = read_full(fd, h, 4, timeout_ms);

    if (rc != 1)
        return rc;
    len = be32(h);
    if (len == 0 || len > 64u * 1024 * 1024)
        return -1;
    body = pmt_xalloc(NULL, len);
    rc = read_full(fd, body, len, timeout_ms);
    out->len = 0;
    pmc_buf_append(out, h, 4);
    pmc_buf_append(out, body, len);
    free(body);
    return rc;
}

/* --- comparing ------------------------------------------------------------ */

typedef struct replay {
    const char *path;
    int quiet;
    unsigned diffs;       /* turns that differ */
    unsigned message;     /* MAIL commands so far */
} replay;

typedef struct lines {
    char **v;
    size_t n;
} lines;

static void lines_push(lines *l, char *s)
{
    l->v = pmt_xalloc(l->v, (l->n + 1) * sizeof *l->v);
    l->v[l->n++] = s;
}

static void lines_free(lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* Print what differs between then and now, without the lines both begin
 * and end with. */
static void compare(replay *rp, const char *at, long long ms, lines *then,
                    lines *now)
{
    size_t pre = 0, suf = 0;

    while (pre < then->n && pre < now->n &&
           strcmp(then->v[pre], now->v[pre]) == 0)
        pre++;
    if (pre == then->n && pre == now->n)
        return;
    while (suf < then->n - pre && suf < now->n - pre &&
           strcmp(then->v[then->n - 1 - suf], now->v[now->n - 1 - suf]) == 0)
        suf++;
    rp->diffs++;
    if (rp->message)
        printf("%s: %s of message %u (%lld ms into the capture):\n",
               rp->path, at, rp->message, ms);
    else
        printf("%s: %s (%lld ms into the capture):\n", rp->path, at, ms);
    for (size_t i = pre; i < then->n - suf; i++)
        printf("  then: %s\n", then->v[i]);
    if (then->n - suf == pre)
        printf("  then: (nothing)\n");
    for (size_t i = pre; i < now->n - suf; i++)
        printf("  now:  %s\n", now->v[i]);
    if (now->n - suf == pre)
        printf("  now:  (nothing)\n");
}

/* Play one capture.  0 identical, 1 differ, 2 could not replay. */
static int replay_file(const char *path, const char *socket, int timeout_s,
                       int quiet)
{
    pmc_capture *cap;
    pmc_error e;
    replay rp = {path, quiet, 0, 0};
    char err[400];
    pmc_buf got = {0};
    int fd, rc = PMT_REPLAY_SAME, closed = 0;
    size_t i = 0, n;

    if (pmc_capture_read_file(path, &cap, &e) != PMC_OK) {
        fprintf(stderr, "pmilter-test: %s\n", e.message);
        return PMT_REPLAY_ERROR;
    }
    fd = pmt_connect(socket, timeout_s * 1000, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "pmilter-test: %s\n", err);
        pmc_capture_free(cap);
        return PMT_REPLAY_ERROR;
    }
    n = pmc_capture_count(cap);
    while (i < n && !closed) {
        size_t j = i, k;
        unsigned finals = 0, want = 0;
        lines then = {0}, now = {0};
        uint8_t last = 0;
        long long ms = pmc_capture_record_at(cap, i)->ms;
        const pmc_capture_record *r;

        for (; j < n && (r = pmc_capture_record_at(cap, j))->dir ==
                            PMC_CAPTURE_TO_MILTER; j++) {
            if (!r->raw)
                last = r->cmd;
            if (last == 'M' && !r->raw)
                rp.message++;
            if (send_all(fd, r->bytes, r->len) != 0) {
                /* The milter may have closed after a verdict; what it
                 * said up to here is compared. */
                closed = 1;
                break;
            }
        }
        for (k = j; k < n && (r = pmc_capture_record_at(cap, k))->dir ==
                                PMC_CAPTURE_TO_MTA; k++) {
            if (r->raw || r->cmd == 'p')
                continue;
            want++;
            finals += is_final(r->cmd);
            lines_push(&then, describe(r->bytes, r->len));
            ms = r->ms;
        }
        /* Replies with no verdict among them: wait for as many. */
        if (finals)
            want = finals;
        while (!closed && want > 0) {
            int r = read_packet(fd, &got, timeout_s * 1000);
            if (r != 1) {
                lines_push(&now, pmt_strndup(r == -2 ? "(no reply in time)"
                                             : "(the milter closed the "
                                               "connection)", r == -2 ? 18
                                             : 34));
                closed = 1;
                break;
            }
            if (got.data[4] == 'p')
                continue;
            lines_push(&now, describe(got.data, got.len));
            if (!finals || is_final(got.data[4]))
                want--;
        }
        compare(&rp, event_name(last), ms, &then, &now);
        lines_free(&then);
        lines_free(&now);
        i = k;
    }
    close(fd);
    pmc_buf_free(&got);
    if (rp.diffs)
        rc = PMT_REPLAY_DIFFER;
    if (!quiet || rc != PMT_REPLAY_SAME)
        printf("%s: %s (%zu packets%s)\n", path,
               rc == PMT_REPLAY_SAME ? "identical" : "differs", n,
               pmc_capture_get_info(cap)->complete ? ""
                                                   : ", capture incomplete");
    pmc_capture_free(cap);
    return rc;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pmt_replay(const char *path, const char *socket, int timeout_s,
               int quiet)
{
    struct stat sb;
    DIR *d;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    unsigned same = 0, differ = 0, failed = 0;

    if (stat(path, &sb) != 0) {
        fprintf(stderr, "pmilter-test: %s: %s\n", path, strerror(errno));
        return PMT_REPLAY_ERROR;
    }
    if (!S_ISDIR(sb.st_mode))
        return replay_file(path, socket, timeout_s, quiet);
    if ((d = opendir(path)) == NULL) {
        fprintf(stderr, "pmilter-test: %s: %s\n", path, strerror(errno));
        return PMT_REPLAY_ERROR;
    }
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= 6 ||
            strcmp(e->d_name + l - 6, ".pmcap") != 0)
            continue;
        names = pmt_xalloc(names, (n + 1) * sizeof *names);
        names[n] = pmt_xalloc(NULL, strlen(path) + l + 2);
        sprintf(names[n++], "%s/%s", path, e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        int rc = replay_file(names[i], socket, timeout_s, 1);
        same += rc == PMT_REPLAY_SAME;
        differ += rc == PMT_REPLAY_DIFFER;
        failed += rc == PMT_REPLAY_ERROR;
        free(names[i]);
    }
    free(names);
    printf("%zu conversations, %u identical, %u differ", n, same, differ);
    if (failed)
        printf(", %u could not be replayed", failed);
    printf("\n");
    if (n == 0) {
        fprintf(stderr, "pmilter-test: no *.pmcap file in %s\n", path);
        return PMT_REPLAY_ERROR;
    }
    return failed ? PMT_REPLAY_ERROR
           : differ ? PMT_REPLAY_DIFFER : PMT_REPLAY_SAME;
}
