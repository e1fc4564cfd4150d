/* The driver's connection to the filter and its client transport.
 *
 * libpmcore's pmc_transport_fd polls before every read and write; the driver
 * instead uses a blocking socket with SO_RCVTIMEO/SO_SNDTIMEO, so one event
 * costs it one send() and one recv() and the driver stays cheap next to the
 * milter it measures on a small machine. */
#define _GNU_SOURCE
#include "load.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(load_sock *s, const char *what)
{
    int e = errno;

    snprintf(s->why, sizeof s->why, "%s: %s", what, strerror(e));
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    errno = e;
    return -1;
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static int open_unix(load_sock *s, const pmc_sockspec *spec)
{
    struct sockaddr_un sa;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, spec->path, strlen(spec->path) + 1);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return fail(s, "socket");
    set_timeouts(s->fd, s->timeout_ms);
    if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        return fail(s, "connect");
    return 0;
}

static int open_inet(load_sock *s, const pmc_sockspec *spec)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc, one = 1;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = spec->family == PMC_SOCK_INET6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%u", spec->port);
    rc = getaddrinfo(spec->host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(s->why, sizeof s->why, "%.100s: %s", spec->host,
                 gai_strerror(rc));
        return -1;
    }
    s->fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        freeaddrinfo(res);
        return fail(s, "socket");
    }
    set_timeouts(s->fd, s->timeout_ms);
    /* An MTA writes one event per write and, with no-reply steps, several
     * in a row: Nagle would hold the later ones back for the filter's
     * delayed ACK. */
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    rc = connect(s->fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc < 0)
        return fail(s, "connect");
    return 0;
}

int load_sock_open(load_sock *s, const pmc_sockspec *spec, int timeout_ms)
{
    s->fd = -1;
    s->timeout_ms = timeout_ms;
    s->why[0] = 0;
    return spec->family == PMC_SOCK_UNIX ? open_unix(s, spec)
                                         : open_inet(s, spec);
}

void load_sock_close(load_sock *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

static int timed_out(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

static int tr_send(void *ctx, const uint8_t *p, size_t n)
{
    load_sock *s = ctx;

    while (n > 0) {
        ssize_t k = send(s->fd, p, n, MSG_NOSIGNAL);

        if (k < 0) {
            if (errno == EINTR)
                continue;
            snprintf(s->why, sizeof s->why, "send: %s", strerror(errno));
            return timed_out() ? PMC_TRANSPORT_TIMEOUT : PMC_TRANSPORT_FAILED;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static long tr_recv(void *ctx, uint8_t *p, size_t n)
{
    load_sock *s = ctx;

    for (;;) {
        ssize_t k = recv(s->fd, p, n, 0);

        if (k >= 0)
            return (long)k;
        if (errno == EINTR)
            continue;
        snprintf(s->why, sizeof s->why, "recv: %s", strerror(errno));
        return timed_out() ? PMC_TRANSPORT_TIMEOUT : PMC_TRANSPORT_FAILED;
    }
}

static const char *tr_why(void *ctx)
{
    load_sock *s = ctx;

    return s->why[0] ? s->why : NULL;
}

void load_sock_transport(load_sock *s, pmc_transport *tr)
{
    memset(tr, 0, sizeof *tr);
    tr->send = tr_send;
    tr->recv = tr_recv;
    tr->ctx = s;
    tr->why = tr_why;
}
