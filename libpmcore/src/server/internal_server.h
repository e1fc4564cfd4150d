/* Declarations shared by the server's files; not part of the contract. */
#ifndef PMCORE_INTERNAL_SERVER_H
#define PMCORE_INTERNAL_SERVER_H

#include "../proto/internal.h"
#include "pmcore/server.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/types.h>

/* One read takes up to this much: enough for a whole typical message. */
#define PMCI_SRV_RBUF 65536
/* A connection's epoll events (plus EPOLLOUT while output waits). */
#define PMCI_CONN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

/* What an epoll registration points at; the first member of each object. */
enum pmci_kind {
    PMCI_K_LISTENER = 1,
    PMCI_K_CONN,
    PMCI_K_CHILD,   /* a forked process's death pipe or control socket */
    PMCI_K_WAKE,    /* the server's eventfd: stop, reload */
    PMCI_K_HOSTWAKE,/* the host's wake_fd */
    PMCI_K_CONTROL, /* a prefork worker's socket to its master */
    PMCI_K_POOL,    /* the pool's eventfd: finished jobs */
    PMCI_K_HTTP     /* the metrics endpoint's listener or a peer of it */
};

typedef struct pmci_item {
    int kind;
    int fd;
} pmci_item;

typedef struct pmci_listener {
    pmci_item it;
    int tcp;            /* accepted sockets get NODELAY and KEEPALIVE */
    int in_epoll;
    char *unlink_path;  /* a unix path we created, removed at free */
    dev_t dev;
    ino_t ino;
} pmci_listener;

/* Counters a connection or worker gathers without locks, merged later. */
typedef pmc_server_stats pmci_stats;
/* The counters a loop keeps itself (accepting, timeouts, the children of
 * a supervising loop): each names a member of pmci_stats, which
 * pmci_loop_stats_merge adds it to.  Merged after every batch of
 * accepts, so a whole pmci_stats here cost each connection a pass over
 * its 3 KiB and a clear of them. */
#define PMCI_LOOP_COUNTERS(X) \
    X(conn_accepted) X(conn_active) X(conn_refused) X(conn_read_timeouts) \
    X(conn_idle_timeouts) X(accept_errors) X(accept_backoffs) \
    X(workers_spawned) X(workers_exited)
typedef struct pmci_loop_stats {
#define PMCI_LOOP_FIELD(f) uint64_t f;
    PMCI_LOOP_COUNTERS(PMCI_LOOP_FIELD)
#undef PMCI_LOOP_FIELD
} pmci_loop_stats;
/* A counter that another thread may read as it changes (see PMCI_COUNT). */
#define PMCI_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* Job bits: what a connection's next processing step must do. */
#define PMCI_JOB_INPUT 1u /* feed conn->in */
#define PMCI_JOB_EOF 2u   /* the peer closed its side */
#define PMCI_JOB_END 4u   /* end the session (timeout, stop, I/O error) */
#define PMCI_JOB_RESUME 8u /* run conn->rq_job (pmc_server_resume) */

/* While a handler is pending the session queues what the MTA sends; past
 * this many unread bytes the server stops reading until it is answered, so
 * a peer cannot make it buffer without bound. */
#define PMCI_PENDING_READ_MAX (256u * 1024u)

/* One pmc_server_resume request. */
typedef struct pmci_resume {
    uint64_t id;
    int (*fn)(pmc_session *s, void *arg);
    void *arg;
    struct pmci_resume *next;
} pmci_resume;

typedef struct pmci_conn pmci_conn;
struct pmci_conn {
    pmci_item it;
    uint64_t id;
    pmc_server *srv;
    pmc_session *s;
    void *ud;
    pmc_conn_info info;
    int opened;          /* conn_open ran */
    int finished;        /* conn_close ran: only the socket is left */

    /* Handed between the loop and a worker under the pool's mutex. */
    pmc_buf in;          /* THREADS: bytes read by the loop, not yet fed */
    const uint8_t *bp;   /* LOOP and lead mode: borrowed input (the
                            loop's buffer) */
    uint8_t *own_rbuf;   /* lead mode: a read buffer this step was lent
                            and the loop gave up when another thread took
                            it over; back to the loop after the step */
    size_t bn;
    unsigned job;
    pmc_status end_why;
    int busy;            /* a worker owns it */

    /* Results of the last step, read by the loop. */
    int in_msg;          /* the MTA owes the rest of a message */
    int partial;         /* a packet is partly received */
    int out_left;        /* output waits for EPOLLOUT */
    int closed;          /* the session is over */
    int io_failed;
    int quiet;           /* the step left nothing but in_msg to act on
                            (pmci_conn_step_input) */
    int keep_fd;         /* pmc_serve_fd: the socket stays the caller's */

    /* Loop-thread state. */
    int rd_pending;      /* input may be waiting: read when possible */
    int want_out;        /* EPOLLOUT is registered */
    int eof_seen;
    int hup;             /* epoll reported the peer's end (RDHUP, HUP or
                            ERR): keep reading until read says so */
    int tlist;           /* which timeout list holds it, or -1 */
    long long deadline;
    pmci_conn *tprev, *tnext;
    pmci_conn *qnext;    /* pool queue, or the loop's list of the dead */
    pmci_conn *anext;    /* the loop's re-read list (a conn may be on it
                            and in the pool at once) */
    int on_again;
    int lead_read;       /* lead mode: queued to be read, then stepped */

    int pending;         /* a handler's answer is pending */
    size_t queued;       /* unread input the session holds */
    pmci_resume *rq, *rq_tail; /* loop thread: requests not yet handed on */
    pmci_resume *rq_job; /* the step's: requests to run now */
    int rq_listed;       /* on the loop's list of conns to resume */
    pmci_conn *qnext_rq; /* that list */
    pmci_conn *hnext;    /* the loop's id table */

    struct pmci_capfile *cap; /* capture file (capture.h), or NULL */
    uint64_t clock_ns;   /* the clock (ns) as the step's last callback
                            returned, or 0: LOOP's wake-up takes it as its
                            own clock instead of reading it again */
    /* Counters.  The owner counts without locks (PMCI_COUNT, PMCI_STORE)
     * and they reach the server when the connection closes (and, in a
     * prefork worker, before each report); pmc_server_stats_get adds
     * those of the live connections, which it finds on srv->live. */
    pmci_stats st;       /* unmerged counters */
    pmc_session_stats seen; /* session counters already merged (under
                               srv->mu) */
    pmci_conn *lprev, *lnext; /* srv->live, under srv->mu */
    int live;
};

struct pmci_loop;
typedef struct pmci_pool pmci_pool;
typedef struct pmci_http pmci_http;

/* What a process model adds to the loop of a process that supervises
 * others (the PREFORK master, the FORK loop); the loop calls these and
 * knows nothing of processes.  Other loops have none (l->procs NULL). */
typedef struct pmci_loop_procs {
    /* FORK: an accepted connection, to serve in a process of its own. */
    void (*accepted)(struct pmci_loop *l, int fd);
    /* A child's socket (PMCI_K_CHILD) is ready. */
    void (*child_event)(struct pmci_loop *l, pmci_item *it);
    /* After each round of events: reap, replace what is missing. */
    void (*round)(struct pmci_loop *l);
    /* The loop stops: the children are told to drain. */
    void (*stop)(struct pmci_loop *l, int drain_ms);
    /* A reload was asked for (NULL: nothing to do). */
    void (*reload)(struct pmci_loop *l);
    /* The children's next deadline, or LLONG_MAX. */
    long long (*timer)(struct pmci_loop *l);
} pmci_loop_procs;

typedef struct pmci_child {
    pmci_item it;        /* death pipe (FORK) or control socket (PREFORK) */
    pid_t pid;
    int gen;             /* PREFORK generation; older ones drain */
    int exited;          /* EOF seen; waiting for waitpid */
    int told;            /* asked to drain */
    long long kill_at;   /* SIGKILL if still alive then; 0 = never */
    long long started;
    uint64_t conns;      /* PREFORK: its open connections, as its reports
                            tell (they lag by at most one event) */
    struct pmci_child *next;
} pmci_child;

struct pmc_server {
    pmc_server_config cfg;
    pmc_handlers tramp;  /* the user's handlers wrapped for timing */

    pmci_listener **ls;
    size_t nls, cap_ls;

    int wakefd;          /* eventfd for stop and reload */
    atomic_int running;  /* inside pmc_server_run (for the health) */
    atomic_uint workers_live; /* PREFORK: workers alive now */
    pmci_http *http;     /* the /metrics and /health endpoint, or NULL */
    atomic_int stop_req;
    atomic_int stop_drain;
    atomic_int draining; /* a stop began, however asked (for the health) */
    atomic_int reload_req;
    int ran;

    pthread_mutex_t mu;  /* guards stats, live and each seen */
    pmci_stats stats;
    pmci_conn *live;     /* connections whose counters are not all in
                            stats yet */

    uint64_t id_base;    /* connection ids: id_base + counter */
    uint64_t id_next;

    /* PREFORK and FORK bookkeeping (loop thread only). */
    pmci_child *children;
    unsigned nchildren;
    int gen;
    int is_child;        /* this process is a worker or a FORK child */
    int control_fd;      /* PREFORK worker: socket to the master, or -1 */

    /* pmc_server_resume requests from any thread, for the loop. */
    pthread_mutex_t rq_mu;
    pmci_resume *rq_head, *rq_tail;
    int rq_closed;       /* run is over: answer requests at once */
    struct pmci_capture *cap; /* capture settings (capture.h), or NULL */
};

typedef struct pmci_tlist {
    pmci_conn *head, *tail;
} pmci_tlist;

typedef struct pmci_loop {
    pmc_server *srv;
    int ep;
    int accept_mode;     /* 0 none, 1 connections, 2 fork per connection */
    unsigned cap;        /* concurrent connections or children; 0 = none */
    unsigned active;
    unsigned accepted;   /* by this loop, for recycling */
    unsigned max_accepts;/* 0 = no limit */
    int listening;       /* listeners are in the epoll set */
    long long backoff_until;
    int stopping;
    long long drain_deadline;
    int drain_expired;
    long long next_tick;
    unsigned closed_since_trim; /* connections ended since the heap was
                                   last given back */
    long long trim_at;   /* when to give it back; 0 = not planned */
    pmci_tlist tl[2];    /* 0 idle, 1 read */
    pmci_conn *tl_fresh[2]; /* the first of each list's tail appended since
                               the clock was last read: undated yet */
    long long now;       /* the clock at the last wake-up, in ms */
    uint64_t clock_ns;   /* this wake-up's clock, read by a callback's
                            timing (pmci_conn.clock_ns), or 0 */
    long long due;       /* nothing of expire's is due before this (a
                            lower bound; 0 = look at everything) */
    pmci_conn *again;    /* conns whose last read filled the buffer */
    pmci_conn *dead;     /* finished, freed after the current events */
    uint8_t *rbuf;       /* NULL: lead mode lost it and found no other
                            (reads go through a small stack buffer) */
    uint8_t *rbuf_spare; /* lead mode: for a new leader, see lead() */
    pmci_conn *lent;     /* lead mode: whose step reads rbuf now */
    pmci_pool *pool;
    int lead;            /* lead mode: steps queue on runq for the leader */
    pmci_conn *runq, *runq_tail;
    pmci_item pool_item;
    pmci_item wake, hostwake, control;
    pmci_loop_stats st;  /* loop-side counters not yet merged */
    long long report_at; /* PREFORK worker: the next report of its open
                            connections' counters (0: none planned) */
    pmci_conn **tab;     /* connections by id (chained by hnext) */
    size_t tab_cap, tab_n;
    long long respawn_at;/* PREFORK master: earliest next spawn */
    const pmci_loop_procs *procs; /* the process model's, or NULL */
    pmci_http *http;     /* the endpoint, when this loop serves it */
    long long http_due;  /* its next deadline, or LLONG_MAX */
    pmc_status result;
    pmc_error err;
} pmci_loop;

/* The files' functions, bottom up: each file calls only what is declared
 * in its own section or above it.  Upward there are only the two pointers
 * a loop hands down (the pool's lead function, the process model's
 * pmci_loop_procs), so the loop owns connections, pool and children, and
 * they report back through return values and the fields of pmci_conn. */

/* common.c */
PMCI_HIDDEN long long pmci_now_ms(void);
PMCI_HIDDEN void pmci_log(pmc_server *srv, int level, uint64_t conn_id,
                          const char *queue_id, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
PMCI_HIDDEN void pmci_stats_add(pmci_stats *to, const pmci_stats *from);
/* A handler call's latency into its bucket (pmc_latency_bounds_ns is
 * metrics.c's); metrics.c: why a finished connection ended and what the
 * MTA offered. */
static inline void pmci_metrics_took(pmci_stats *st, pmc_event ev,
                                     uint64_t ns)
{
    /* Inline: it runs for every callback, and most end in the first
     * bucket, one comparison away. */
    int i = 0;

    while (i < PMC_LATENCY_BUCKETS - 1 && ns > pmc_latency_bounds_ns[i])
        i++;
    PMCI_COUNT(st->cb_hist[ev][i]); /* read live by stats_get */
}
PMCI_HIDDEN void pmci_metrics_ended(pmci_stats *st, const pmc_session *s,
                                    int io_failed);
PMCI_HIDDEN void pmci_stats_merge(pmc_server *srv, pmci_stats *delta);
PMCI_HIDDEN void pmci_loop_stats_merge(pmc_server *srv, pmci_loop_stats *d);
/* A prefork worker's counters since its last report go to the master;
 * with 'live', its open connections' too (pmci_collect_live: a pass over
 * every one, so not at every accept and close, see PMCI_LIVE_REPORT_MS). */
PMCI_HIDDEN void pmci_worker_report(pmc_server *srv, int live);
/* How long what a worker's open connections counted may wait before it
 * goes to the master (a report of them all while any is open). */
#define PMCI_LIVE_REPORT_MS 1000

/* errtext.c */
PMCI_HIDDEN const char *pmci_errtext(int e, char *buf, size_t cap);

/* trampolines.c */
PMCI_HIDDEN void pmci_handlers_wrap(pmc_handlers *t, const pmc_handlers *h);

/* resume.c */
PMCI_HIDDEN void pmci_rq_init(pmc_server *srv);
PMCI_HIDDEN void pmci_rq_child(pmc_server *srv);
PMCI_HIDDEN pmci_resume *pmci_rq_take(pmc_server *srv);
PMCI_HIDDEN void pmci_rq_close(pmc_server *srv);
PMCI_HIDDEN void pmci_rq_answer_all(pmci_resume *r);

/* conn.c: the session side of a connection, independent of the model. */
/* 'peer' is the address accept4 returned, or NULL to ask getpeername. */
PMCI_HIDDEN pmci_conn *pmci_conn_new(pmc_server *srv, int fd, uint64_t id,
                                     const struct sockaddr_storage *peer,
                                     socklen_t peer_len);
PMCI_HIDDEN void pmci_conn_open(pmci_conn *c);
PMCI_HIDDEN pmc_status pmci_conn_feed(pmci_conn *c, const uint8_t *p,
                                      size_t n);
PMCI_HIDDEN pmc_status pmci_conn_eof(pmci_conn *c);
PMCI_HIDDEN void pmci_conn_end(pmci_conn *c, pmc_status why);
PMCI_HIDDEN void pmci_conn_note(pmci_conn *c, pmc_status st);
PMCI_HIDDEN int pmci_conn_flush(pmci_conn *c);
PMCI_HIDDEN void pmci_conn_state(pmci_conn *c);
PMCI_HIDDEN void pmci_conn_finish(pmci_conn *c);
/* Move c's counters into the server's; 'closing' (the last call for c)
 * also takes it off srv->live.  On the thread that owns c. */
PMCI_HIDDEN void pmci_conn_collect(pmci_conn *c, int closing);
/* Add the counters c has not handed over yet to *out; under srv->mu, from
 * any thread. */
PMCI_HIDDEN void pmci_conn_peek(const pmci_conn *c, pmci_stats *out);
/* pmci_conn_collect for every live connection; only where the caller's
 * thread owns them all (a prefork worker's loop). */
PMCI_HIDDEN void pmci_collect_live(pmc_server *srv);
PMCI_HIDDEN void pmci_conn_step(pmci_conn *c);
/* pmci_conn_step for input alone, c opened already (LOOP's wake-up, the
 * lead-mode queue, pmci_conn_step's usual case): 1 when the step left
 * nothing for the loop to act on.  The usual round trip (every packet
 * answered, the replies sent whole, no capture) is inline below; the rest
 * of it, from the feed's result on, is ..._rest. */
PMCI_HIDDEN int pmci_conn_step_input_rest(pmci_conn *c, const uint8_t *p,
                                          size_t n, pmc_status st,
                                          size_t sent);
static inline int pmci_conn_step_input(pmci_conn *c, const uint8_t *p,
                                       size_t n)
{
    pmc_session *s = c->s;
    pmc_status st;
    ssize_t w;

    /* A capture sees the input before the session does. */
    if (__builtin_expect(c->cap != NULL, 0))
        return pmci_conn_step_input_rest(c, p, n, PMC_OK, 0);
    st = pmc_session_feed(s, p, n);
    if (st != PMC_OK || s->closed || s->pending ||
        pmci_decoder_pending(&s->dec) != 0)
        return pmci_conn_step_input_rest(c, NULL, 0, st, 0);
    if (s->out.len) {
        w = send(c->it.fd, s->out.data, s->out.len,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
        /* Short, refused or failed: pmci_conn_flush sends again, and
         * knows what each errno means. */
        if (w != (ssize_t)s->out.len)
            return pmci_conn_step_input_rest(c, NULL, 0, PMC_OK,
                                             w > 0 ? (size_t)w : 0);
        s->out.len = 0;
    }
    c->in_msg = s->in_msg;
    c->out_left = c->closed = c->partial = c->pending = 0;
    c->queued = 0;
    return 1;
}
PMCI_HIDDEN void pmci_conn_free(pmci_conn *c);
PMCI_HIDDEN const char *pmci_conn_qid(pmci_conn *c, char *buf, size_t cap);
/* Inside a step: run the resume requests handed to the connection. */
PMCI_HIDDEN void pmci_conn_resumes(pmci_conn *c);

/* serve_fd.c */
PMCI_HIDDEN pmc_status pmci_serve_blocking(pmc_server *srv, int fd,
                                           uint64_t id, int control_fd,
                                           int keep_fd, pmc_error *err);

/* pool.c */
/* 'lead' is what a pool thread runs while it leads (lead mode): the
 * loop's, 1 when the lead was lost, 0 when the loop is over. */
PMCI_HIDDEN pmci_pool *pmci_pool_new(pmci_loop *l, unsigned nthreads,
                                     int (*lead)(pmci_loop *l),
                                     pmc_error *err);
PMCI_HIDDEN int pmci_pool_fd(pmci_pool *p);
PMCI_HIDDEN void pmci_pool_submit(pmci_pool *p, pmci_conn *c);
PMCI_HIDDEN pmci_conn *pmci_pool_done(pmci_pool *p);
PMCI_HIDDEN void pmci_pool_free(pmci_pool *p);
PMCI_HIDDEN void pmci_pool_join(pmci_pool *p);
/* Lead mode (pool_lead_us): a pool thread runs the loop and the steps. */
PMCI_HIDDEN int pmci_pool_leads(const pmci_pool *p);
/* Run c's step as the leader: 1 when still leading after it (the caller
 * goes on with the loop), 0 when a follower took the loop over meanwhile
 * (c went to the done list; the caller is a follower now).  With in, the
 * step is input alone (c opened, no job): pmci_conn_step_input(c, in, n),
 * its result in c->quiet as pmci_conn_step leaves it. */
PMCI_HIDDEN int pmci_pool_lead_step(pmci_pool *p, pmci_conn *c,
                                    const uint8_t *in, size_t n);
/* The loop ended: wake the home thread and the followers. */
PMCI_HIDDEN void pmci_pool_over(pmci_pool *p);
/* Hooks the home thread runs for the leader: */
#define PMCI_DUE_TICK 1u
#define PMCI_DUE_RELOAD 2u
PMCI_HIDDEN void pmci_pool_home(pmci_pool *p, unsigned what);
/* The home thread: start a leader, then run tick and reload for it until
 * the loop is over. */
PMCI_HIDDEN void pmci_pool_lead_run(pmci_pool *p, pmc_server *srv);

/* loop_tables.c */
PMCI_HIDDEN int pmci_loop_add(pmci_loop *l, pmci_item *it, uint32_t ev);
/* The timeout lists: two, each in deadline order because every member of
 * one list got the same timeout when it was appended.  Inline: every step
 * takes a connection off a list and puts it back, and a call to another
 * file for that cost the loop about 5% of its instructions. */
static inline void pmci_tl_remove(pmci_loop *l, pmci_conn *c)
{
    pmci_tlist *t;

    if (c->tlist < 0)
        return;
    t = &l->tl[c->tlist];
    if (l->tl_fresh[c->tlist] == c)
        l->tl_fresh[c->tlist] = c->tnext;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        t->head = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        t->tail = c->tprev;
    c->tprev = c->tnext = NULL;
    c->tlist = -1;
}

/* Append to timeout list 'which' (0 idle, 1 read).  Its deadline is set
 * by the next pmci_tl_date: the clock is read once per wake-up, after the
 * wake-up's steps, not once per connection put back. */
static inline void pmci_tl_append(pmci_loop *l, pmci_conn *c, int which)
{
    pmci_tlist *t = &l->tl[which];

    /* Already last on that list (a lone busy connection, each round
     * trip): the place stays right, only the date is new. */
    if (c->tlist == which && t->tail == c) {
        c->deadline = LLONG_MAX;
        if (!l->tl_fresh[which])
            l->tl_fresh[which] = c;
        return;
    }
    pmci_tl_remove(l, c);
    c->deadline = LLONG_MAX;
    if (!l->tl_fresh[which])
        l->tl_fresh[which] = c;
    c->tlist = which;
    c->tprev = t->tail;
    c->tnext = NULL;
    if (t->tail)
        t->tail->tnext = c;
    else
        t->head = c;
    t->tail = c;
}
/* Date what was appended since the last call: now plus the list's
 * timeout.  Appended in order, each gets a deadline no earlier than those
 * before it, so the lists stay in deadline order. */
static inline void pmci_tl_date(pmci_loop *l, long long now)
{
    if (!l->tl_fresh[0] && !l->tl_fresh[1])
        return;
    for (int i = 0; i < 2; i++) {
        int ms;
        if (!l->tl_fresh[i])
            continue;
        ms = i ? l->srv->cfg.read_timeout_ms : l->srv->cfg.idle_timeout_ms;
        for (pmci_conn *c = l->tl_fresh[i]; c; c = c->tnext)
            c->deadline = ms > 0 ? now + ms : LLONG_MAX;
        l->tl_fresh[i] = NULL;
        if (l->tl[i].head->deadline < l->due)
            l->due = l->tl[i].head->deadline;
    }
}
/* fn on every connection no worker holds; fn may free or move it. */
PMCI_HIDDEN void pmci_loop_each_idle(pmci_loop *l,
                                     void (*fn)(pmci_loop *, pmci_conn *));
PMCI_HIDDEN int pmci_tab_add(pmci_loop *l, pmci_conn *c);
PMCI_HIDDEN void pmci_tab_del(pmci_loop *l, pmci_conn *c);
PMCI_HIDDEN pmci_conn *pmci_tab_find(pmci_loop *l, uint64_t id);

/* http.c: the /metrics and /health endpoint of the run, when the config
 * or PMCORE_METRICS asks for one.  start listens (srv->http); the loop of
 * the process that started it attaches it (loop init) and hands it its
 * events (PMCI_K_HTTP) and the clock (expire: the next deadline, or
 * LLONG_MAX), and detaches it at its end (fini); stop closes it, after
 * the loop. */
PMCI_HIDDEN pmc_status pmci_http_start(pmc_server *srv, pmc_error *err);
PMCI_HIDDEN int pmci_http_attach(pmci_loop *l); /* -1: epoll refused */
PMCI_HIDDEN void pmci_http_detach(pmci_loop *l);
PMCI_HIDDEN void pmci_http_event(pmci_loop *l, pmci_item *it, uint32_t ev);
PMCI_HIDDEN long long pmci_http_expire(pmci_loop *l, long long now);
PMCI_HIDDEN void pmci_http_stop(pmc_server *srv);

/* accept.c */
PMCI_HIDDEN void pmci_listeners_enable(pmci_loop *l, int on);
PMCI_HIDDEN int pmci_may_accept(const pmci_loop *l);
#define PMCI_ACCEPT_AGAIN (-2)
PMCI_HIDDEN int pmci_accept_one(pmci_loop *l, pmci_listener *ls,
                                struct sockaddr_storage *sa,
                                socklen_t *salen);
PMCI_HIDDEN void pmci_accept_update(pmci_loop *l);
PMCI_HIDDEN pmc_status pmci_listener_add(pmc_server *srv, int fd,
                                         const char *path, pmc_error *err);
PMCI_HIDDEN void pmci_close_listeners(pmc_server *srv);
PMCI_HIDDEN void pmci_listeners_shut(pmci_loop *l);

/* loop_conn.c */
PMCI_HIDDEN void pmci_loop_after_step(pmci_loop *l, pmci_conn *c);
PMCI_HIDDEN void pmci_loop_end_conn(pmci_loop *l, pmci_conn *c,
                                    pmc_status why);
PMCI_HIDDEN void pmci_loop_conn_event(pmci_loop *l, pmci_conn *c,
                                      uint32_t ev);
/* Hand the queued pmc_server_resume answers to their connections. */
PMCI_HIDDEN void pmci_loop_resumes(pmci_loop *l);
PMCI_HIDDEN void pmci_loop_accept(pmci_loop *l, pmci_listener *ls);
/* Lead mode: the steps the last round queued, in order.  0 when the lead
 * was lost during one. */
PMCI_HIDDEN int pmci_loop_run_queue(pmci_loop *l);

/* loop.c */
PMCI_HIDDEN pmc_status pmci_loop_init(pmci_loop *l, pmc_server *srv,
                                      int accept_mode);
PMCI_HIDDEN pmc_status pmci_loop_run(pmci_loop *l);
PMCI_HIDDEN void pmci_loop_fini(pmci_loop *l);

/* procs.c: the process models, each a loop that supervises children. */
PMCI_HIDDEN pmc_status pmci_run_prefork(pmc_server *srv, pmc_error *err);
PMCI_HIDDEN pmc_status pmci_run_fork(pmc_server *srv, pmc_error *err);
PMCI_HIDDEN void pmci_free_children(pmc_server *srv);

#endif
