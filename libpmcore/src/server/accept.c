/* The listening sockets: added before the run, watched while the loop may
 * accept (the cap, recycling, and back-off when the process or system runs
 * out of descriptors, EMFILE/ENFILE, where retrying at once would spin on a
 * listener that stays readable), and closed at the end. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

void pmci_listeners_enable(pmci_loop *l, int on)
{
    pmc_server *srv = l->srv;

    for (size_t i = 0; i < srv->nls; i++) {
        pmci_listener *ls = srv->ls[i];
        if (ls->it.fd < 0 || ls->in_epoll == on)
            continue;
        if (on) {
            /* Workers of a prefork pool share the listeners: wake one. */
            uint32_t ev = EPOLLIN | (srv->is_child ? EPOLLEXCLUSIVE : 0);
            if (pmci_loop_add(l, &ls->it, ev) == 0)
                ls->in_epoll = 1;
        } else {
            epoll_ctl(l->ep, EPOLL_CTL_DEL, ls->it.fd, NULL);
            ls->in_epoll = 0;
        }
    }
    l->listening = on;
}

int pmci_may_accept(const pmci_loop *l)
{
    return l->accept_mode && !l->stopping && !l->backoff_until &&
           (!l->cap || l->active < l->cap) &&
           (!l->max_accepts || l->accepted < l->max_accepts);
}

void pmci_accept_update(pmci_loop *l)
{
    int want = pmci_may_accept(l);

    if (want != l->listening)
        pmci_listeners_enable(l, want);
}

static void tune(int fd)
{
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

/* Take one connection from 'ls': its descriptor (counted, and tuned for
 * TCP), PMCI_ACCEPT_AGAIN when the try was interrupted and another may
 * follow, or -1 when there is nothing more to take now (none waiting, an
 * error, or a back-off begun).  What to do with it is the loop's. */
int pmci_accept_one(pmci_loop *l, pmci_listener *ls,
                    struct sockaddr_storage *sa, socklen_t *salen)
{
    pmc_server *srv = l->srv;
    char et[100];
    int fd = accept4(ls->it.fd, (struct sockaddr *)sa, salen,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return -1;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO)
            return PMCI_ACCEPT_AGAIN;
        l->st.accept_errors++;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            int ms = srv->cfg.accept_backoff_ms > 0
                         ? srv->cfg.accept_backoff_ms
                         : 200;
            l->st.accept_backoffs++;
            l->backoff_until = pmci_now_ms() + ms;
            l->due = 0;
            pmci_log(srv, PMC_LOG_WARNING, 0, NULL,
                     "accept: %s; not accepting for %d ms",
                     pmci_errtext(e, et, sizeof et), ms);
        } else {
            pmci_log(srv, PMC_LOG_ERR, 0, NULL, "accept: %s",
                     pmci_errtext(e, et, sizeof et));
        }
        return -1;
    }
    l->accepted++;
    l->st.conn_accepted++;
    if (ls->tcp)
        tune(fd);
    return fd;
}

/* A stop: the host may hold another descriptor of a listener (Perl keeps
 * its socket and gives the server a duplicate), so closing ours would not
 * stop the kernel completing connections that nobody accepts and that are
 * reset at exit.  Shut down, the socket refuses them at once instead, and a
 * load balancer retries elsewhere.  Not where others accept from the same
 * socket: the PREFORK master and workers, whose workers (of a newer
 * generation, after a reload) may still be serving it. */
void pmci_listeners_shut(pmci_loop *l)
{
    pmc_server *srv = l->srv;

    if (!l->accept_mode || srv->is_child)
        return;
    for (size_t i = 0; i < srv->nls; i++)
        if (srv->ls[i]->it.fd >= 0)
            shutdown(srv->ls[i]->it.fd, SHUT_RDWR);
}

/* --- the listeners: added before the run, closed at its end --- */

static pmc_status nomem(pmc_error *err)
{
    pmc_error tmp;

    return pmci_set_error(err ? err : &tmp, PMC_ERR_NOMEM, 0, "out of memory");
}

pmc_status pmci_listener_add(pmc_server *srv, int fd, const char *path,
                             pmc_error *err)
{
    pmci_listener *l;
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;

    if (srv->nls == srv->cap_ls) {
        size_t cap = srv->cap_ls ? srv->cap_ls * 2 : 4;
        pmci_listener **n = realloc(srv->ls, cap * sizeof *n);
        if (!n)
            return nomem(err);
        srv->ls = n;
        srv->cap_ls = cap;
    }
    l = calloc(1, sizeof *l);
    if (!l || (path && !(l->unlink_path = strdup(path)))) {
        free(l);
        return nomem(err);
    }
    l->it.kind = PMCI_K_LISTENER;
    l->it.fd = fd;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        l->tcp = sa.ss_family == AF_INET || sa.ss_family == AF_INET6;
    if (path) {
        struct stat st;
        if (stat(path, &st) == 0) {
            l->dev = st.st_dev;
            l->ino = st.st_ino;
        }
    }
    srv->ls[srv->nls++] = l;
    return PMC_OK;
}

/* Remove a unix path only if it still names our socket: another instance
 * may have replaced it meanwhile. */
static void unlink_ours(const pmci_listener *l)
{
    struct stat st;

    if (l->unlink_path && stat(l->unlink_path, &st) == 0 &&
        S_ISSOCK(st.st_mode) && st.st_dev == l->dev && st.st_ino == l->ino)
        unlink(l->unlink_path);
}

void pmci_close_listeners(pmc_server *srv)
{
    for (size_t i = 0; i < srv->nls; i++) {
        pmci_listener *l = srv->ls[i];
        if (l->it.fd >= 0) {
            close(l->it.fd);
            l->it.fd = -1;
            if (!srv->is_child)
                unlink_ours(l);
        }
        l->in_epoll = 0;
    }
}
