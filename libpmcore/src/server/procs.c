/* Process models.  PREFORK: the master runs no connections; it keeps
 * 'workers' processes, each an event loop on the shared listeners, replaces
 * those that die or retire, and replaces all of them on reload.  FORK: the
 * loop accepts and forks one process per connection.
 *
 * Each child gets one end of a SOCK_SEQPACKET socketpair.  The master
 * learns of a child's death by end of stream on it (no SIGCHLD handler, no
 * waitpid(-1): the host's other children are not ours to reap), tells it to
 * drain by sending the deadline, and receives its counters as messages. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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
    atomic_store(&srv->workers_live, 0);
}

/* In a new child: drop what belongs to the master. */
static void child_setup(pmci_loop *l, int control)
{
    pmc_server *srv = l->srv;

    srv->is_child = 1;
    pmci_free_children(srv);
    close(l->ep);
    l->ep = -1;
    /* The eventfd is shared with the master across fork: a stop written
     * by this process must not wake the master, nor the reverse. */
    close(srv->wakefd);
    srv->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_store(&srv->stop_req, 0);
    atomic_store(&srv->reload_req, 0);
    memset(&srv->stats, 0, sizeof srv->stats);
    pmci_rq_child(srv);
    srv->control_fd = control;
}

static _Noreturn void child_leave(pmc_server *srv, int status)
{
    if (status == 0 && srv->cfg.child_exit)
        srv->cfg.child_exit(srv->cfg.app);
    pmci_worker_report(srv, 1);
    _exit(status);
}

static _Noreturn void worker_main(pmci_loop *master, int control)
{
    pmc_server *srv = master->srv;
    pmci_loop l;
    pmc_status st;

    child_setup(master, control);
    srv->id_base = (uint64_t)getpid() << 32;
    srv->id_next = 0;
    if (srv->wakefd < 0)
        _exit(1);
    if (srv->cfg.child_init && srv->cfg.child_init(srv->cfg.app) != 0)
        child_leave(srv, 1);
    st = pmci_loop_init(&l, srv, 1);
    if (st == PMC_OK) {
        if (srv->cfg.max_conn_per_worker)
            l.cap = srv->cfg.max_conn_per_worker;
        l.max_accepts = srv->cfg.max_requests_per_worker;
        st = pmci_loop_run(&l);
    }
    pmci_loop_fini(&l);
    pmci_close_listeners(srv);
    pmci_rq_close(srv);
    child_leave(srv, st == PMC_OK ? 0 : 1);
}

static _Noreturn void conn_child_main(pmci_loop *master, int control, int fd,
                                      uint64_t id)
{
    pmc_server *srv = master->srv;

    child_setup(master, control);
    pmci_close_listeners(srv);
    if (srv->cfg.child_init && srv->cfg.child_init(srv->cfg.app) != 0) {
        close(fd);
        child_leave(srv, 1);
    }
    pmci_serve_blocking(srv, fd, id, control, 0, NULL);
    pmci_rq_close(srv);
    /* The master counted the accept and the open connection itself. */
    pthread_mutex_lock(&srv->mu);
    srv->stats.conn_accepted = 0;
    srv->stats.conn_active = 0;
    pthread_mutex_unlock(&srv->mu);
    child_leave(srv, 0);
}

/* Fork a child.  Returns the child record in the master; in the child,
 * runs 'fd' (FORK) or a worker loop (fd < 0) and never returns. */
static pmci_child *spawn(pmci_loop *l, int fd, uint64_t id)
{
    pmc_server *srv = l->srv;
    pmci_child *ch = calloc(1, sizeof *ch);
    int sv[2];
    pid_t pid;
    char et[100];

    if (!ch)
        return NULL;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        pmci_log(srv, PMC_LOG_ERR, 0, NULL, "socketpair: %s",
                 pmci_errtext(errno, et, sizeof et));
        free(ch);
        return NULL;
    }
    if (srv->cfg.before_fork)
        srv->cfg.before_fork(srv->cfg.app);
    pid = fork();
    if (pid != 0 && srv->cfg.after_fork_parent) {
        int e = errno;
        srv->cfg.after_fork_parent(srv->cfg.app);
        errno = e;
    }
    if (pid < 0) {
        pmci_log(srv, PMC_LOG_ERR, 0, NULL, "fork: %s",
                 pmci_errtext(errno, et, sizeof et));
        close(sv[0]);
        close(sv[1]);
        free(ch);
        return NULL;
    }
    if (pid == 0) {
        free(ch);
        close(sv[0]);
        if (fd >= 0)
            conn_child_main(l, sv[1], fd, id);
        worker_main(l, sv[1]);
    }
    close(sv[1]);
    ch->it.kind = PMCI_K_CHILD;
    ch->it.fd = sv[0];
    ch->pid = pid;
    ch->gen = srv->gen;
    ch->started = pmci_now_ms();
    if (pmci_loop_add(l, &ch->it, EPOLLIN) != 0) {
        /* Unwatchable: stop it rather than lose track of it. */
        kill(pid, SIGKILL);
        ch->exited = 1;
    }
    ch->next = srv->children;
    srv->children = ch;
    srv->nchildren++;
    atomic_store(&srv->workers_live, srv->nchildren);
    l->st.workers_spawned++;
    pmci_log(srv, PMC_LOG_DEBUG, 0, NULL, "started child %ld", (long)pid);
    return ch;
}

static void fork_conn(pmci_loop *l, int fd)
{
    pmc_server *srv = l->srv;
    pmci_child *ch = spawn(l, fd, srv->id_base + ++srv->id_next);

    close(fd);
    if (!ch) {
        l->st.conn_refused++;
        return;
    }
    l->active++;
    l->st.conn_active++;
}

static void children_reap(pmci_loop *l, int force);

static void child_event(pmci_loop *l, pmci_child *ch)
{
    for (;;) {
        pmci_stats msg;
        ssize_t n = recv(ch->it.fd, &msg, sizeof msg, MSG_DONTWAIT);
        if (n == (ssize_t)sizeof msg) {
            ch->conns += msg.conn_active; /* a delta; wraps when negative */
            pmci_stats_merge(l->srv, &msg);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n > 0)
            continue; /* not a report: ignore */
        /* End of stream: the child has exited or is exiting. */
        epoll_ctl(l->ep, EPOLL_CTL_DEL, ch->it.fd, NULL);
        close(ch->it.fd);
        ch->it.fd = -1;
        ch->exited = 1;
        children_reap(l, 0);
        return;
    }
}

/* A child that died (a signal, a failure) takes its connections with it:
 * say which, how, and what was lost, and stop counting them as open. */
static void report_death(pmci_loop *l, pmci_child *ch, int status)
{
    pmc_server *srv = l->srv;
    /* FORK: the master counts the child's one connection itself. */
    uint64_t lost = l->accept_mode == 2 ? 1 : ch->conns;
    char how[96];

    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "was killed by signal %d (%s)",
                 WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(how, sizeof how, "exited with status %d",
                 WEXITSTATUS(status));
    /* A report can lag one event: never "lose" more than were open. */
    if ((int64_t)lost < 0)
        lost = 0;
    pmci_log(srv, PMC_LOG_WARNING, 0, NULL,
             "%s %ld %s; %llu connection(s) lost%s",
             l->accept_mode == 2 ? "connection process" : "worker",
             (long)ch->pid, how, (unsigned long long)lost,
             l->accept_mode == 2 || l->stopping ? "" : "; replacing it");
    if (l->accept_mode != 2)
        l->st.conn_active -= lost;
}

static void reaped(pmci_loop *l, pmci_child *ch, int status)
{
    long long now = pmci_now_ms();
    int bad = !WIFEXITED(status) || WEXITSTATUS(status) != 0;

    l->st.workers_exited++;
    if (bad)
        report_death(l, ch, status);
    if (l->accept_mode == 2) {
        l->active--;
        l->st.conn_active--;
        pmci_accept_update(l);
    } else if (bad && now - ch->started < 1000) {
        /* Dying at once again and again must not become a fork storm. */
        l->respawn_at = now + 1000;
    }
    pmci_loop_stats_merge(l->srv, &l->st);
}

static void children_reap(pmci_loop *l, int force)
{
    pmc_server *srv = l->srv;
    pmci_child **pp = &srv->children;
    long long now = pmci_now_ms();

    (void)force;
    while (*pp) {
        pmci_child *ch = *pp;
        int status = 0;
        if (ch->kill_at && now >= ch->kill_at && !ch->exited) {
            pmci_log(srv, PMC_LOG_WARNING, 0, NULL,
                     "child %ld still running after its drain deadline; "
                     "killing it", (long)ch->pid);
            kill(ch->pid, SIGKILL);
            ch->kill_at = 0;
        }
        if (ch->exited && waitpid(ch->pid, &status, WNOHANG) == ch->pid) {
            *pp = ch->next;
            srv->nchildren--;
            atomic_store(&srv->workers_live, srv->nchildren);
            reaped(l, ch, status);
            free(ch);
            continue;
        }
        pp = &ch->next;
    }
}

static void children_stop(pmci_loop *l, int drain_ms)
{
    pmc_server *srv = l->srv;
    long long now = pmci_now_ms();
    int32_t ms = drain_ms;

    for (pmci_child *ch = srv->children; ch; ch = ch->next) {
        if (ch->told || ch->exited || (!l->stopping && ch->gen >= srv->gen))
            continue;
        ch->told = 1;
        ch->kill_at = now + (drain_ms > 0 ? drain_ms : 0) + 2000;
        if (send(ch->it.fd, &ms, sizeof ms, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
            kill(ch->pid, SIGKILL);
    }
}

static long long children_timer(pmci_loop *l)
{
    pmc_server *srv = l->srv;
    long long t = LLONG_MAX, now = pmci_now_ms();

    for (pmci_child *ch = srv->children; ch; ch = ch->next) {
        if (ch->exited && now + 10 < t)
            t = now + 10; /* its exit is imminent: poll waitpid */
        if (ch->kill_at && ch->kill_at < t)
            t = ch->kill_at;
    }
    if (srv->cfg.model == PMC_MODEL_PREFORK && !srv->is_child &&
        !l->stopping && l->respawn_at && l->respawn_at < t)
        t = l->respawn_at;
    return t;
}

static void prefork_maintain(pmci_loop *l)
{
    pmc_server *srv = l->srv;
    unsigned want = srv->cfg.workers ? srv->cfg.workers : 4, have = 0;
    long long now = pmci_now_ms();

    if (l->stopping || (l->respawn_at && now < l->respawn_at))
        return;
    l->respawn_at = 0;
    /* A child that has closed its socket but is not reaped yet still
     * counts: its exit status decides whether to wait before replacing it. */
    for (pmci_child *ch = srv->children; ch; ch = ch->next)
        if (ch->gen == srv->gen && !ch->told)
            have++;
    for (; have < want; have++)
        if (!spawn(l, -1, 0)) {
            l->respawn_at = now + 1000;
            break;
        }
    pmci_loop_stats_merge(srv, &l->st);
}

/* --- what the models add to the loop of the process that supervises ---
 * The loop knows nothing of processes: it calls these through l->procs. */

static void child_item(pmci_loop *l, pmci_item *it)
{
    child_event(l, (pmci_child *)it);
}

static void prefork_round(pmci_loop *l)
{
    if (l->srv->children)
        children_reap(l, 0);
    if (!l->stopping)
        prefork_maintain(l);
}

/* Reload replaces every worker: a new generation starts, the old drains. */
static void prefork_reload(pmci_loop *l)
{
    l->srv->gen++;
    prefork_maintain(l);
    children_stop(l, l->srv->cfg.drain_timeout_ms);
}

static void fork_round(pmci_loop *l)
{
    if (l->srv->children)
        children_reap(l, 0);
}

static const pmci_loop_procs prefork_procs = {
    .accepted = NULL, /* the master accepts nothing */
    .child_event = child_item,
    .round = prefork_round,
    .stop = children_stop,
    .reload = prefork_reload,
    .timer = children_timer,
};

static const pmci_loop_procs fork_procs = {
    .accepted = fork_conn,
    .child_event = child_item,
    .round = fork_round,
    .stop = children_stop,
    .reload = NULL, /* each child serves one connection with its config */
    .timer = children_timer,
};

pmc_status pmci_run_prefork(pmc_server *srv, pmc_error *err)
{
    pmci_loop l;
    pmc_status st = pmci_loop_init(&l, srv, 0);

    l.procs = &prefork_procs;
    if (st == PMC_OK) {
        prefork_maintain(&l);
        st = pmci_loop_run(&l);
    }
    if (st != PMC_OK && err)
        *err = l.err;
    pmci_loop_fini(&l);
    pmci_close_listeners(srv);
    return st;
}

pmc_status pmci_run_fork(pmc_server *srv, pmc_error *err)
{
    pmci_loop l;
    pmc_status st = pmci_loop_init(&l, srv, 2);

    l.procs = &fork_procs;
    if (st == PMC_OK)
        st = pmci_loop_run(&l);
    if (st != PMC_OK && err)
        *err = l.err;
    pmci_loop_fini(&l);
    return st;
}
