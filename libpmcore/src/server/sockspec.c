/* Socket specs as Sendmail::PMilter, pymilter and Postfix write them, and
 * the listening sockets they name. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static pmc_status bad(pmc_error *err, const char *spec, const char *why)
{
    pmc_error tmp;

    pmci_set_error(err ? err : &tmp, PMC_ERR_ARGUMENT, 0, "%.80s: %s", spec,
                   why);
    errno = EINVAL;
    return PMC_ERR_ARGUMENT;
}

static int parse_port(const char *p, size_t n, uint16_t *port)
{
    unsigned long v = 0;

    if (n == 0 || n > 5)
        return n == 0 ? -1 : -2;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v > 65535)
        return -2;
    *port = (uint16_t)v;
    return 0;
}

static int all_digits_dots(const char *h)
{
    for (; *h; h++)
        if (!(*h == '.' || (*h >= '0' && *h <= '9')))
            return 0;
    return 1;
}

/* A bracketed host is IPv6 unless it is a dotted quad: libmilter took
 * inet:port@[a.b.c.d] for IPv4, and Postfix writes inet:[a.b.c.d]:port. */
static int bracket_is_v6(const char *h, size_t n)
{
    char tmp[16], quad[16];

    if (n == 0 || n >= sizeof quad)
        return 1;
    memcpy(quad, h, n);
    quad[n] = 0;
    return !(all_digits_dots(quad) && inet_pton(AF_INET, quad, tmp) == 1);
}

/* Fill host and port from "port@host", "host:port" or "port". */
static pmc_status parse_inet(const char *spec, const char *rest, int v6,
                             pmc_sockspec *out, pmc_error *err)
{
    const char *at = strchr(rest, '@'), *portp = rest, *host = "";
    size_t plen, hlen;
    int r;
    char tmp[16];

    if (at) {
        plen = (size_t)(at - rest);
        host = at + 1;
        hlen = strlen(host);
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
            host++;
            hlen -= 2;
            v6 = v6 || bracket_is_v6(host, hlen);
            if (hlen == 0)
                return bad(err, spec, "empty host after '@'");
        } else if (hlen == 0) {
            return bad(err, spec, "empty host after '@'");
        }
    } else if (!v6 && strchr(rest, ':')) {
        /* Postfix writes inet:host:port and inet:[addr]:port. */
        const char *colon = strrchr(rest, ':');
        host = rest;
        hlen = (size_t)(colon - rest);
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
            host++;
            hlen -= 2;
            v6 = bracket_is_v6(host, hlen);
        }
        portp = colon + 1;
        plen = strlen(portp);
    } else {
        plen = strlen(rest);
        hlen = 0;
    }
    r = parse_port(portp, plen, &out->port);
    if (r == -2)
        return bad(err, spec, "port out of range");
    if (r < 0)
        return bad(err, spec, "bad port (a decimal number is expected)");
    if (hlen >= sizeof out->host)
        return bad(err, spec, "host name too long");
    memcpy(out->host, host, hlen);
    out->host[hlen] = 0;
    out->family = v6 ? PMC_SOCK_INET6 : PMC_SOCK_INET;
    if (v6 && hlen && inet_pton(AF_INET6, out->host, tmp) != 1)
        return bad(err, spec, "invalid IPv6 address");
    if (!v6 && hlen && all_digits_dots(out->host) &&
        inet_pton(AF_INET, out->host, tmp) != 1)
        return bad(err, spec, "invalid IPv4 address");
    return PMC_OK;
}

pmc_status pmc_sockspec_parse(const char *spec, pmc_sockspec *out,
                              pmc_error *err)
{
    const char *rest;

    if (!spec || !out)
        return bad(err, spec ? spec : "(null)", "no spec");
    memset(out, 0, sizeof *out);
    if (!strncmp(spec, "unix:", 5) || !strncmp(spec, "local:", 6)) {
        rest = strchr(spec, ':') + 1;
        if (rest[0] != '/')
            return bad(err, spec, "the socket path must be absolute");
        if (strlen(rest) >= sizeof out->path)
            return bad(err, spec, "socket path too long");
        strcpy(out->path, rest);
        out->family = PMC_SOCK_UNIX;
        return PMC_OK;
    }
    if (!strncmp(spec, "inet:", 5))
        return parse_inet(spec, spec + 5, 0, out, err);
    if (!strncmp(spec, "inet6:", 6))
        return parse_inet(spec, spec + 6, 1, out, err);
    return bad(err, spec,
               "unknown socket type (expected unix:, local:, inet: or inet6:)");
}

static int sys_fail(pmc_error *err, const char *spec, const char *step,
                    int e)
{
    pmc_error tmp;
    char text[100];

    pmci_set_error(err ? err : &tmp, PMC_ERR_IO, 0, "%.80s: %s: %s", spec,
                   step, pmci_errtext(e, text, sizeof text));
    errno = e;
    return -1;
}

/* A unix path already exists: replace it only if it is a socket nobody
 * listens on, so a second instance cannot steal a live server's path. */
static int clear_stale(const char *spec, const char *path, pmc_error *err)
{
    struct stat st;
    struct sockaddr_un sa;
    int fd, r, e;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : sys_fail(err, spec, "stat", errno);
    if (!S_ISSOCK(st.st_mode))
        return sys_fail(err, spec, "exists and is not a socket", EEXIST);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return sys_fail(err, spec, "socket", errno);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    e = errno;
    close(fd);
    /* EAGAIN is a live server with a full backlog: a busy milter is the
     * last one to take over. */
    if (r == 0 || e == EINPROGRESS)
        return sys_fail(err, spec,
                        "another milter is already listening on this socket",
                        EADDRINUSE);
    if (e == EAGAIN)
        return sys_fail(err, spec,
                        "another milter is already listening on this socket "
                        "(its backlog is full)",
                        EADDRINUSE);
    if (e != ECONNREFUSED)
        return sys_fail(err, spec, "probing the existing socket", e);
    if (unlink(path) != 0 && errno != ENOENT)
        return sys_fail(err, spec, "unlink stale socket", errno);
    return 0;
}

static int listen_unix(const char *spec, const pmc_sockspec *ss, int mode,
                       int backlog, pmc_error *err)
{
    struct sockaddr_un sa;
    int fd;

    if (clear_stale(spec, ss->path, err) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return sys_fail(err, spec, "socket", errno);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, ss->path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        return sys_fail(err, spec, "bind", e);
    }
    /* Before listen() nobody can connect, so the mode is in place before
     * the first peer arrives, without touching the process-wide umask. */
    if (mode > 0 && chmod(ss->path, (mode_t)mode) != 0) {
        int e = errno;
        close(fd);
        unlink(ss->path);
        return sys_fail(err, spec, "chmod", e);
    }
    if (listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        unlink(ss->path);
        return sys_fail(err, spec, "listen", e);
    }
    return fd;
}

static int listen_inet(const char *spec, const pmc_sockspec *ss,
                       int backlog, pmc_error *err)
{
    struct addrinfo hints, *ai = NULL;
    char port[8];
    int fd, one = 1, r;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = ss->family == PMC_SOCK_INET6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (ss->family == PMC_SOCK_INET6 || all_digits_dots(ss->host))
        hints.ai_flags |= AI_NUMERICHOST;
    snprintf(port, sizeof port, "%u", (unsigned)ss->port);
    r = getaddrinfo(ss->host[0] ? ss->host : NULL, port, &hints, &ai);
    if (r != 0 || !ai) {
        pmc_error tmp;
        char text[100];
        pmci_set_error(err ? err : &tmp, PMC_ERR_IO, 0,
                       "%.80s: cannot resolve host '%.60s': %s", spec,
                       ss->host,
                       r == EAI_SYSTEM ? pmci_errtext(errno, text, sizeof text)
                                       : gai_strerror(r));
        errno = EADDRNOTAVAIL;
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return sys_fail(err, spec, "socket", errno);
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* inet6:port means IPv6 only; inet:port already covers IPv4. */
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int e = errno;
        freeaddrinfo(ai);
        close(fd);
        return sys_fail(err, spec, "bind", e);
    }
    freeaddrinfo(ai);
    if (listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return sys_fail(err, spec, "listen", e);
    }
    return fd;
}

int pmc_listen(const char *spec, int mode, int backlog, pmc_error *err)
{
    pmc_sockspec ss;

    if (pmc_sockspec_parse(spec, &ss, err) != PMC_OK)
        return -1;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    if (ss.family == PMC_SOCK_UNIX)
        return listen_unix(spec, &ss, mode, backlog, err);
    return listen_inet(spec, &ss, backlog, err);
}
