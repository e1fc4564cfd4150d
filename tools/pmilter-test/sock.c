/* Connecting to a milter: the spec forms are the ones milters listen on
 * (parsed by libpmcore), connected with a timeout so a silent host cannot
 * hang the tool. */
#include "pmt.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Non-blocking connect, then wait for it; the descriptor is left blocking
 * because the fd transport waits with poll itself. */
static int connect_wait(int fd, const struct sockaddr *sa, socklen_t len,
                        int timeout_ms)
{
    int fl = fcntl(fd, F_GETFL), err = 0;
    socklen_t elen = sizeof err;
    struct pollfd p = {fd, POLLOUT, 0};
    int rc;

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    rc = connect(fd, sa, len);
    if (rc < 0 && errno != EINPROGRESS)
        return -1;
    if (rc < 0) {
        do
            rc = poll(&p, 1, timeout_ms > 0 ? timeout_ms : -1);
        while (rc < 0 && errno == EINTR);
        if (rc == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            return -1;
        if (err) {
            errno = err;
            return -1;
        }
    }
    return fcntl(fd, F_SETFL, fl);
}

static int connect_unix(const pmc_sockspec *ss, int timeout_ms)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, ss->path, strlen(ss->path) + 1);
    if (connect_wait(fd, (struct sockaddr *)&sun, sizeof sun, timeout_ms)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int connect_inet(const pmc_sockspec *ss, int timeout_ms,
                        char *msg, size_t msglen)
{
    struct addrinfo hints, *res, *ai;
    char port[8];
    int fd = -1, rc, e = ECONNREFUSED, one = 1;
    /* An empty host means "this machine": milters listen on every address
     * for "inet:PORT", and the loopback address reaches them. */
    const char *host = ss->host[0] ? ss->host
                       : ss->family == PMC_SOCK_INET6 ? "::1" : "127.0.0.1";

    memset(&hints, 0, sizeof hints);
    hints.ai_family = ss->family == PMC_SOCK_INET6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%u", ss->port);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        snprintf(msg, msglen, "cannot resolve %s: %s", host,
                 gai_strerror(rc));
        errno = 0;
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            e = errno;
            continue;
        }
        if (connect_wait(fd, ai->ai_addr, ai->ai_addrlen, timeout_ms) == 0)
            break;
        e = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = e;
        return -1;
    }
    /* One packet per write, as MTAs do; Nagle would delay replies. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int pmt_connect(const char *spec, int timeout_ms, char *msg, size_t msglen)
{
    pmc_sockspec ss;
    pmc_error err;
    int fd;

    msg[0] = 0;
    if (pmc_sockspec_parse(spec, &ss, &err) != PMC_OK) {
        snprintf(msg, msglen, "%s", err.message);
        return -1;
    }
    if (ss.family != PMC_SOCK_UNIX && ss.port == 0) {
        snprintf(msg, msglen, "%s: a port is needed to connect", spec);
        return -1;
    }
    fd = ss.family == PMC_SOCK_UNIX ? connect_unix(&ss, timeout_ms)
                                    : connect_inet(&ss, timeout_ms, msg,
                                                   msglen);
    if (fd < 0 && msg[0] == 0)
        snprintf(msg, msglen, "cannot connect to %s: %s", spec,
                 strerror(errno));
    else if (fd < 0) {
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", msg);
        snprintf(msg, msglen, "cannot connect to %s: %s", spec, tmp);
    }
    return fd;
}
