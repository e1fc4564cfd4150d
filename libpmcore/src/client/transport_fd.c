/* Client transport over a connected descriptor.  poll() before every read
 * and write gives each a timeout without touching the descriptor's
 * blocking mode, which stays the caller's business. */
#define _POSIX_C_SOURCE 200809L
#include "internal_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int failed(pmc_fd_transport_state *st, const char *what, int err)
{
    char text[100];

    /* The XSI strerror_r, which _POSIX_C_SOURCE selects, is thread-safe. */
    if (strerror_r(err, text, sizeof text) != 0)
        snprintf(text, sizeof text, "error %d", err);
    snprintf(st->message, sizeof st->message, "%s on descriptor %d: %s",
             what, st->fd, text);
    return PMC_TRANSPORT_FAILED;
}

/* Wait until fd is ready for 'events'.  Returns 0 when ready, or a
 * PMC_TRANSPORT_* failure.  A signal must not cut the timeout short or
 * stretch it, so the deadline is fixed up front. */
static int wait_for(pmc_fd_transport_state *st, short events)
{
    long long deadline = st->timeout_ms > 0 ? now_ms() + st->timeout_ms : 0;
    struct pollfd pfd;
    int left = -1, n;

    for (;;) {
        if (st->timeout_ms > 0) {
            long long d = deadline - now_ms();
            left = d > 0 ? (int)d : 0;
        }
        pfd.fd = st->fd;
        pfd.events = events;
        pfd.revents = 0;
        n = poll(&pfd, 1, left);
        if (n > 0) {
            if (pfd.revents & POLLNVAL)
                return failed(st, "poll", EBADF);
            /* HUP and ERR fall through: the read or write reports them. */
            return 0;
        }
        if (n == 0) {
            snprintf(st->message, sizeof st->message,
                     "nothing happened on descriptor %d within %d ms",
                     st->fd, st->timeout_ms);
            return PMC_TRANSPORT_TIMEOUT;
        }
        if (errno != EINTR)
            return failed(st, "poll", errno);
    }
}

static int fd_send(void *ctx, const uint8_t *p, size_t n)
{
    pmc_fd_transport_state *st = ctx;
    int rc;

    st->message[0] = 0;
    while (n > 0) {
        ssize_t k;

        if ((rc = wait_for(st, POLLOUT)) != 0)
            return rc;
        /* MSG_NOSIGNAL: a filter that went away must not kill the caller
         * with SIGPIPE; descriptors that are not sockets get write(). */
        k = send(st->fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == ENOTSOCK)
            k = write(st->fd, p, n);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return failed(st, "write", errno);
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static long fd_recv(void *ctx, uint8_t *p, size_t n)
{
    pmc_fd_transport_state *st = ctx;
    int rc;

    st->message[0] = 0;
    for (;;) {
        ssize_t k;

        if ((rc = wait_for(st, POLLIN)) != 0)
            return rc;
        k = read(st->fd, p, n);
        if (k >= 0)
            return (long)k;
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return failed(st, "read", errno);
    }
}

static const char *fd_why(void *ctx)
{
    pmc_fd_transport_state *st = ctx;

    return st->message[0] ? st->message : NULL;
}

void pmc_transport_fd(pmc_transport *tr, pmc_fd_transport_state *st, int fd,
                      int timeout_ms)
{
    memset(st, 0, sizeof *st);
    st->fd = fd;
    st->timeout_ms = timeout_ms;
    memset(tr, 0, sizeof *tr);
    tr->send = fd_send;
    tr->recv = fd_recv;
    tr->ctx = st;
    tr->why = fd_why;
}
