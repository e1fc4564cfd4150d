/* The server object: configuration, listeners, lifecycle requests,
 * counters and logging.  The models themselves live in loop.c (one event
 * loop, optionally with a thread pool) and procs.c (processes). */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

long long pmci_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pmc_server_config_init(pmc_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    pmc_config_init(&cfg->session);
    cfg->log_level = PMC_LOG_INFO;
    cfg->read_timeout_ms = 300000;
    cfg->idle_timeout_ms = 7210000;
    cfg->accept_backoff_ms = 200;
    cfg->model = PMC_MODEL_LOOP;
    cfg->drain_timeout_ms = 30000;
    cfg->tick_interval_ms = 1000;
    cfg->wake_fd = -1;
}

void pmci_log(pmc_server *srv, int level, uint64_t conn_id,
              const char *queue_id, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (!srv->cfg.log || level > srv->cfg.log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv->cfg.log(srv->cfg.app, level, conn_id, queue_id, msg);
}

void pmci_stats_add(pmci_stats *to, const pmci_stats *from)
{
    /* Every member is a uint64_t, so the struct adds as an array; maxima
     * are the exception. */
    const uint64_t *f = (const uint64_t *)from;
    uint64_t *t = (uint64_t *)to;
    size_t n = offsetof(pmci_stats, cb_ns_max) / sizeof(uint64_t);

    for (size_t i = 0; i < n; i++)
        t[i] += f[i];
    for (int i = 0; i < PMC_EV_COUNT; i++)
        if (from->cb_ns_max[i] > to->cb_ns_max[i])
            to->cb_ns_max[i] = from->cb_ns_max[i];
}

void pmci_stats_merge(pmc_server *srv, pmci_stats *delta)
{
    pthread_mutex_lock(&srv->mu);
    pmci_stats_add(&srv->stats, delta);
    pthread_mutex_unlock(&srv->mu);
    memset(delta, 0, sizeof *delta);
}

void pmc_server_stats_get(pmc_server *srv, pmc_server_stats *out)
{
    pthread_mutex_lock(&srv->mu);
    *out = srv->stats;
    pthread_mutex_unlock(&srv->mu);
}

static pmc_status fail(pmc_error *err, pmc_status code, const char *fmt,
                       const char *arg)
{
    pmc_error tmp;

    return pmci_set_error(err ? err : &tmp, code, 0, fmt, arg);
}

pmc_server *pmc_server_new(const pmc_server_config *cfg, pmc_error *err)
{
    pmc_server *srv;

    if (!cfg || !cfg->handlers) {
        fail(err, PMC_ERR_ARGUMENT, "%s", "the server needs a handler table");
        return NULL;
    }
    if ((unsigned)cfg->model > PMC_MODEL_FORK) {
        fail(err, PMC_ERR_ARGUMENT, "%s", "unknown server model");
        return NULL;
    }
    srv = calloc(1, sizeof *srv);
    if (!srv) {
        fail(err, PMC_ERR_NOMEM, "%s", "out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    pmci_handlers_wrap(&srv->tramp, cfg->handlers);
    srv->control_fd = -1;
    atomic_init(&srv->stop_req, 0);
    atomic_init(&srv->stop_drain, 0);
    atomic_init(&srv->reload_req, 0);
    if (pthread_mutex_init(&srv->mu, NULL) != 0) {
        free(srv);
        fail(err, PMC_ERR_NOMEM, "%s", "cannot create a mutex");
        return NULL;
    }
    pmci_rq_init(srv);
    srv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->wakefd < 0) {
        pthread_mutex_destroy(&srv->rq_mu);
        pthread_mutex_destroy(&srv->mu);
        free(srv);
        fail(err, PMC_ERR_IO, "eventfd: %s", "cannot create");
        return NULL;
    }
    return srv;
}

static pmc_status add_listener(pmc_server *srv, int fd, const char *path,
                               pmc_error *err)
{
    pmci_listener *l;
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;

    if (srv->nls == srv->cap_ls) {
        size_t cap = srv->cap_ls ? srv->cap_ls * 2 : 4;
        pmci_listener **n = realloc(srv->ls, cap * sizeof *n);
        if (!n)
            return fail(err, PMC_ERR_NOMEM, "%s", "out of memory");
        srv->ls = n;
        srv->cap_ls = cap;
    }
    l = calloc(1, sizeof *l);
    if (!l || (path && !(l->unlink_path = strdup(path)))) {
        free(l);
        return fail(err, PMC_ERR_NOMEM, "%s", "out of memory");
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

int pmc_server_listen(pmc_server *srv, const char *spec, int mode,
                      pmc_error *err)
{
    pmc_sockspec ss;
    int fd;

    if (srv->ran) {
        fail(err, PMC_ERR_SEQUENCE, "%s", "the server is running");
        return -1;
    }
    if (pmc_sockspec_parse(spec, &ss, err) != PMC_OK)
        return -1;
    fd = pmc_listen(spec, mode, srv->cfg.backlog, err);
    if (fd < 0)
        return -1;
    if (add_listener(srv, fd, ss.family == PMC_SOCK_UNIX ? ss.path : NULL,
                     err) != PMC_OK) {
        close(fd);
        if (ss.family == PMC_SOCK_UNIX)
            unlink(ss.path);
        return -1;
    }
    return fd;
}

pmc_status pmc_server_add_fd(pmc_server *srv, int fd, pmc_error *err)
{
    int listening = 0, fl;
    socklen_t len = sizeof listening;

    if (srv->ran)
        return fail(err, PMC_ERR_SEQUENCE, "%s", "the server is running");
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        !listening)
        return fail(err, PMC_ERR_ARGUMENT, "%s",
                    "the descriptor is not a listening socket");
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return fail(err, PMC_ERR_IO, "%s", "fcntl failed on the descriptor");
    return add_listener(srv, fd, NULL, err);
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

/* Forget the children list (the master at exit, a new child at fork: the
 * list belongs to the master). */
void pmci_free_children(pmc_server *srv)
{
    while (srv->children) {
        pmci_child *ch = srv->children;
        srv->children = ch->next;
        if (ch->it.fd >= 0)
            close(ch->it.fd);
        free(ch);
    }
    srv->nchildren = 0;
}

void pmc_server_free(pmc_server *srv)
{
    if (!srv)
        return;
    pmci_close_listeners(srv);
    for (size_t i = 0; i < srv->nls; i++) {
        free(srv->ls[i]->unlink_path);
        free(srv->ls[i]);
    }
    free(srv->ls);
    pmci_free_children(srv);
    pmci_rq_close(srv);
    if (srv->wakefd >= 0)
        close(srv->wakefd);
    pthread_mutex_destroy(&srv->rq_mu);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

/* Only write() and lock-free atomics: callable from a signal handler. */
static void wake(pmc_server *srv)
{
    uint64_t one = 1;
    int saved = errno;
    ssize_t r = write(srv->wakefd, &one, sizeof one);

    (void)r; /* a full counter already wakes the loop */
    errno = saved;
}

void pmc_server_stop(pmc_server *srv, int drain_ms)
{
    int expected = 0;

    if (drain_ms < 0)
        drain_ms = srv->cfg.drain_timeout_ms;
    if (drain_ms < 0)
        drain_ms = 0;
    if (drain_ms > INT_MAX - 1)
        drain_ms = INT_MAX - 1;
    /* stop_req holds drain + 1, so one atomic carries both facts. */
    atomic_compare_exchange_strong(&srv->stop_req, &expected, drain_ms + 1);
    wake(srv);
}

void pmc_server_reload(pmc_server *srv)
{
    atomic_fetch_add(&srv->reload_req, 1);
    wake(srv);
}

pmc_status pmc_server_run(pmc_server *srv, pmc_error *err)
{
    pmci_loop l;
    pmc_status st;

    if (srv->ran)
        return fail(err, PMC_ERR_SEQUENCE, "%s",
                    "pmc_server_run may be called only once");
    srv->ran = 1;
    if (srv->nls == 0)
        return fail(err, PMC_ERR_ARGUMENT, "%s", "the server has no listener");
    if (srv->cfg.model == PMC_MODEL_PREFORK) {
        st = pmci_run_prefork(srv, err);
        pmci_rq_close(srv);
        return st;
    }
    st = pmci_loop_init(&l, srv, srv->cfg.model == PMC_MODEL_FORK ? 2 : 1);
    if (st == PMC_OK)
        st = pmci_loop_run(&l);
    if (st != PMC_OK && err)
        *err = l.err;
    pmci_loop_fini(&l);
    pmci_rq_close(srv);
    return st;
}
