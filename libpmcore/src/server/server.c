/* The server object: configuration, listeners, and the run that picks a
 * model.  The models themselves live in loop.c (one event loop, optionally
 * with a thread pool) and procs.c (processes); stop and reload, which any
 * thread may ask for, in resume.c. */
#define _GNU_SOURCE
#include "internal_server.h"
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

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

static pmc_status fail(pmc_error *err, pmc_status code, const char *fmt,
                       const char *arg)
{
    pmc_error tmp;

    return pmci_set_error(err ? err : &tmp, code, 0, fmt, arg);
}

pmc_server *pmc_server_new(const pmc_server_config *cfg, pmc_error *err)
{
    pmc_server *srv;
    pmc_error tmp;

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
    if (pmci_capture_new(cfg, &srv->cap, err ? err : &tmp) != PMC_OK) {
        free(srv);
        return NULL;
    }
    pmci_handlers_wrap(&srv->tramp, cfg->handlers);
    srv->control_fd = -1;
    atomic_init(&srv->stop_req, 0);
    atomic_init(&srv->stop_drain, 0);
    atomic_init(&srv->draining, 0);
    atomic_init(&srv->reload_req, 0);
    atomic_init(&srv->running, 0);
    atomic_init(&srv->workers_live, 0);
    if (pthread_mutex_init(&srv->mu, NULL) != 0) {
        pmci_capture_free(srv->cap);
        free(srv);
        fail(err, PMC_ERR_NOMEM, "%s", "cannot create a mutex");
        return NULL;
    }
    pmci_rq_init(srv);
    srv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->wakefd < 0) {
        pthread_mutex_destroy(&srv->rq_mu);
        pthread_mutex_destroy(&srv->mu);
        pmci_capture_free(srv->cap);
        free(srv);
        fail(err, PMC_ERR_IO, "eventfd: %s", "cannot create");
        return NULL;
    }
    return srv;
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
    if (pmci_listener_add(srv, fd, ss.family == PMC_SOCK_UNIX ? ss.path : NULL,
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
    return pmci_listener_add(srv, fd, NULL, err);
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
    pmci_capture_free(srv->cap);
    free(srv);
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
    /* Healthy from the endpoint's first answer: the listeners already
     * queue connections for the loop about to start. */
    atomic_store(&srv->running, 1);
    if ((st = pmci_http_start(srv, err)) != PMC_OK) {
        atomic_store(&srv->running, 0);
        return st;
    }
    if (srv->cfg.model == PMC_MODEL_PREFORK) {
        st = pmci_run_prefork(srv, err);
    } else if (srv->cfg.model == PMC_MODEL_FORK) {
        st = pmci_run_fork(srv, err);
    } else {
        st = pmci_loop_init(&l, srv, 1);
        if (st == PMC_OK)
            st = pmci_loop_run(&l);
        if (st != PMC_OK && err)
            *err = l.err;
        pmci_loop_fini(&l);
    }
    atomic_store(&srv->running, 0);
    pmci_http_stop(srv);
    pmci_rq_close(srv);
    return st;
}
