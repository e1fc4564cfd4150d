/* pmc-pingpong: the transport floor for make bench-c.
 *
 * A null server (no milter protocol, no work: it answers every read with a
 * fixed reply) and a client that makes the same exchanges per message as
 * pmc-load with its defaults (Postfix personality, 1 rcpt, 12 headers, a
 * 4 KiB body, reused connections): 18 request/reply round trips.  What it
 * measures is what the kernel charges for those round trips on a unix
 * socket and on loopback TCP, which no milter can go below; bench-c puts
 * the TCP/unix ratio of this next to libpmcore's.
 *
 * usage: pmc-pingpong unix|tcp CONN SECONDS
 * prints one JSON line: transport, conn, msgs, msgs_per_s, round trips. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Request sizes of one message as pmc-load sends them (macros included):
 * MAIL, RCPT, DATA, 12 headers, EOH, BODY, EOM. */
static const int req_sizes[] = {120, 60, 30, 50, 50, 50, 50, 50, 50,
                                50,  50, 50, 50, 50, 50, 5,  4101, 31};
#define EXCHANGES (int)(sizeof req_sizes / sizeof req_sizes[0])
#define REPLY 5      /* SMFIR_CONTINUE */
#define EOM_REPLY 35 /* an added header and CONTINUE */

static int use_tcp;

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int sock(void)
{
    int one = 1;
    int fd = socket(use_tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC,
                    0);

    /* As the milter and pmc-load do: no Nagle on request/reply traffic. */
    if (fd >= 0 && use_tcp)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Listen on a fresh address; fills *ss with it. */
static int listen_any(struct sockaddr_storage *ss, socklen_t *len)
{
    int fd = sock();

    memset(ss, 0, sizeof *ss);
    if (fd < 0)
        return -1;
    if (use_tcp) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        *len = sizeof *a; /* port 0: the kernel picks one */
    } else {
        struct sockaddr_un *u = (struct sockaddr_un *)ss;
        u->sun_family = AF_UNIX;
        snprintf(u->sun_path, sizeof u->sun_path, "/tmp/pmc-pingpong-%ld",
                 (long)getpid());
        unlink(u->sun_path);
        *len = sizeof *u;
    }
    if (bind(fd, (struct sockaddr *)ss, *len) != 0 || listen(fd, 256) != 0 ||
        getsockname(fd, (struct sockaddr *)ss, len) != 0) {
        perror("pmc-pingpong: listen");
        return -1;
    }
    return fd;
}

/* The null server: each whole request gets its reply (the EOM-sized one
 * for a message's last), however the bytes were split into reads. */
static void serve(int ls)
{
    static char buf[65536], out[64];
    static int got[65536], step[65536]; /* by descriptor */
    struct epoll_event e = {.events = EPOLLIN, .data.fd = ls}, ev[64];
    int ep = epoll_create1(EPOLL_CLOEXEC), one = 1;

    memset(out, 'r', sizeof out);
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &e);
    for (;;) {
        int n = epoll_wait(ep, ev, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == ls) {
                int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c < 0 || c >= 65536) {
                    if (c >= 0)
                        close(c);
                    continue;
                }
                got[c] = step[c] = 0;
                if (use_tcp)
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                e.events = EPOLLIN | EPOLLET;
                e.data.fd = c;
                epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                continue;
            }
            for (;;) { /* edge-triggered: read until EAGAIN */
                ssize_t r = read(fd, buf, sizeof buf);
                if (r == 0) {
                    close(fd);
                    break;
                }
                if (r < 0)
                    break;
                got[fd] += (int)r;
                while (got[fd] >= req_sizes[step[fd]]) {
                    got[fd] -= req_sizes[step[fd]];
                    if (send(fd, out, step[fd] == EXCHANGES - 1 ?
                             EOM_REPLY : REPLY, MSG_NOSIGNAL) < 0)
                        break;
                    step[fd] = (step[fd] + 1) % EXCHANGES;
                }
            }
        }
    }
}

int main(int argc, char **argv)
{
    static char out[8192], buf[65536];
    struct sockaddr_storage ss;
    socklen_t len;
    struct epoll_event ev[64];
    int n, ls, ep, *fds, *step;
    double secs, t0, end, el;
    long long rts = 0;
    pid_t pid;

    if (argc != 4 || (strcmp(argv[1], "unix") && strcmp(argv[1], "tcp")) ||
        (n = atoi(argv[2])) <= 0 || (secs = atof(argv[3])) <= 0) {
        fprintf(stderr, "usage: pmc-pingpong unix|tcp CONN SECONDS\n");
        return 2;
    }
    use_tcp = strcmp(argv[1], "tcp") == 0;
    if ((ls = listen_any(&ss, &len)) < 0)
        return 1;
    if ((pid = fork()) == 0) {
        serve(ls);
        _exit(0);
    }
    close(ls);
    memset(out, 'q', sizeof out);
    ep = epoll_create1(EPOLL_CLOEXEC);
    fds = calloc((size_t)n, sizeof *fds);
    step = calloc((size_t)n, sizeof *step);
    for (int i = 0; i < n; i++) {
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        fds[i] = sock();
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&ss, len) != 0) {
            perror("pmc-pingpong: connect");
            kill(pid, SIGKILL);
            return 1;
        }
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
        if (send(fds[i], out, (size_t)req_sizes[0], 0) < 0)
            return 1;
    }
    t0 = now();
    end = t0 + secs;
    while (now() < end) {
        int k = epoll_wait(ep, ev, 64, 1000);
        for (int i = 0; i < k; i++) {
            int c = (int)ev[i].data.u32;
            /* A reply is at most 35 bytes: one read takes it whole. */
            if (read(fds[c], buf, sizeof buf) <= 0) {
                fprintf(stderr, "pmc-pingpong: the server went away\n");
                kill(pid, SIGKILL);
                return 1;
            }
            rts++;
            step[c] = (step[c] + 1) % EXCHANGES;
            if (send(fds[c], out, (size_t)req_sizes[step[c]], 0) < 0)
                return 1;
        }
    }
    el = now() - t0;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (!use_tcp)
        unlink(((struct sockaddr_un *)&ss)->sun_path);
    printf("{\"transport\": \"%s\", \"conn\": %d, \"round_trips\": %lld, "
           "\"msgs_per_s\": %.1f}\n", argv[1], n, rts,
           (double)rts / EXCHANGES / el);
    return 0;
}
