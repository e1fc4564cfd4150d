/*
 * pmcore/server.h - sockets, the event loop, and the process and thread
 * models that run sessions on real connections.  Part of pmcore.h; include
 * pmcore.h, not this file.
 */
#ifndef PMCORE_SERVER_H
#define PMCORE_SERVER_H

#include "proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Server: sockets, event loop, process and thread models                   */
/* ------------------------------------------------------------------------ */
/*
 * The server runs sessions on real connections.  Linux only (epoll,
 * accept4, eventfd).  It never installs a signal handler and never calls
 * signal() or sigaction(): writes use MSG_NOSIGNAL so a closed peer gives
 * EPIPE instead of SIGPIPE, and child processes are reaped with waitpid on
 * their own pids only (never waitpid(-1)), their end being noticed on a
 * socketpair each (which also carries drain requests and counters), so a
 * host's own children and SIGCHLD handling are left alone.  Every
 * descriptor it opens is close-on-exec.  Stop and reload reach it through
 * pmc_server_stop / pmc_server_reload (async-signal-safe, so a host's own
 * signal handler may call them) or through the tick hook and wake_fd below
 * (for bindings whose signal handlers must run on the interpreter's thread).
 *
 * Threads.  pmc_server_run blocks the calling thread (the "loop thread").
 * Where handlers run depends on the model:
 *   PMC_MODEL_LOOP     on the loop thread, one connection at a time; a
 *                      handler that blocks stalls every connection.
 *   PMC_MODEL_THREADS  on a bounded pool of worker threads.  One connection
 *                      is never processed by two workers at once and its
 *                      events stay in order; different connections run in
 *                      parallel, so handlers and the app data they share
 *                      must be thread-safe.  A handler that blocks holds one
 *                      worker: when every worker is blocked, new input waits.
 *                      Bindings with a global lock (Python's GIL, a Perl
 *                      interpreter) must take it inside each handler and
 *                      hook, and must not hold it while calling
 *                      pmc_server_run.
 *   PMC_MODEL_PREFORK  in worker processes forked by pmc_server_run, each
 *                      running its own event loop (as PMC_MODEL_LOOP).
 *   PMC_MODEL_FORK     in a process forked for each connection.
 * In the forked models the child never returns from pmc_server_run: it
 * leaves with _exit() (status 0, or 1 when child_init failed), so a host
 * language's exit handlers do not run twice.  conn_open, the session
 * handlers and conn_close of one connection never run on two threads at
 * once; in THREADS successive steps of a connection may run on different
 * pool threads, each step seeing everything the previous one wrote (the
 * hand-off goes through a mutex), so per-connection data needs no lock.
 * The fn of pmc_server_resume runs under the same rule, as one more step
 * of its connection.
 * In the other models they all run on one thread.  tick and reload run on
 * the loop thread, possibly while handlers run on pool threads; log may be
 * called from any thread at once and must be thread-safe.  THREADS with
 * pool_lead_us runs the loop itself on the pool threads, and tick and
 * reload on the calling thread (see there).
 */

/* Socket families of a parsed spec. */
enum pmc_sock_family {
    PMC_SOCK_UNIX = 1,  /* "unix:/path" or "local:/path" */
    PMC_SOCK_INET = 2,  /* "inet:port", "inet:port@host", "inet:host:port",
                           "inet:port@[a.b.c.d]", "inet:[a.b.c.d]:port" */
    PMC_SOCK_INET6 = 3  /* "inet6:port", "inet6:port@[addr]",
                           "inet6:port@addr", "inet:[addr]:port" */
};

/* A parsed socket spec. */
typedef struct pmc_sockspec {
    int family;      /* PMC_SOCK_* */
    char path[108];  /* PMC_SOCK_UNIX: absolute path */
    char host[256];  /* PMC_SOCK_INET*: host or address without brackets;
                        "" = every address of the family */
    uint16_t port;   /* PMC_SOCK_INET*: 0 asks the kernel for a free port */
} pmc_sockspec;

/* Parse a socket spec without touching the system (no name lookup).
 * Accepted forms: unix:/path, local:/path (the path must be absolute and
 * fit sun_path), inet:port, inet:port@host, inet:host:port (Postfix),
 * inet6:port, inet6:port@[addr], inet6:port@addr, inet:[addr]:port.  In
 * the inet: forms a bracketed dotted quad (inet:port@[192.0.2.1], as
 * libmilter configurations write it) is IPv4, any other bracketed address
 * IPv6.  Ports
 * are decimal, 0..65535.  A host made only of digits and dots must be a
 * valid dotted quad; an inet6 host must be a valid IPv6 address; other
 * inet hosts are names, resolved by pmc_listen.  Returns PMC_OK, or
 * PMC_ERR_ARGUMENT with err (may be NULL) naming the spec and the fault
 * ("inet:99999@127.0.0.1: port out of range").  Thread-safe. */
PMC_API pmc_status pmc_sockspec_parse(const char *spec, pmc_sockspec *out,
                                      pmc_error *err);

/* Create a listening socket for a spec: SO_REUSEADDR (TCP), close-on-exec,
 * non-blocking.  backlog <= 0 means SOMAXCONN.  For unix sockets, mode
 * (e.g. 0660; 0 = leave what the umask gives) is applied to the path after
 * bind and before listen, so no peer can connect under other permissions;
 * an existing path is handled safely: a socket nobody answers on (stale) is
 * removed and replaced, a socket with a live server (also one too busy to
 * accept, its backlog full) fails with EADDRINUSE and a message saying
 * another milter listens there, anything else fails with EEXIST.  Names are resolved with getaddrinfo
 * (which may block).  Returns the descriptor, owned by the caller, or -1
 * with err (may be NULL) holding PMC_ERR_ARGUMENT (bad spec) or PMC_ERR_IO
 * and a message naming the spec, the step and the system error
 * ("unix:/nonexist/x: bind: No such file or directory"), and errno set to
 * the system error (EINVAL for a bad spec).  Thread-safe. */
PMC_API int pmc_listen(const char *spec, int mode, int backlog,
                       pmc_error *err);

/* Log levels, syslog's numbers. */
#define PMC_LOG_ERR 3
#define PMC_LOG_WARNING 4
#define PMC_LOG_NOTICE 5
#define PMC_LOG_INFO 6
#define PMC_LOG_DEBUG 7

typedef enum pmc_server_model {
    PMC_MODEL_LOOP = 0,
    PMC_MODEL_THREADS = 1,
    PMC_MODEL_PREFORK = 2,
    PMC_MODEL_FORK = 3
} pmc_server_model;

/* The connection being opened, for conn_open.  Valid during the call. */
typedef struct pmc_conn_info {
    uint64_t id;       /* unique within the server (and across its worker
                          processes); also given to log */
    int fd;            /* the connected socket (the server's; do not close) */
    int family;        /* AF_UNIX, AF_INET or AF_INET6; 0 if unknown */
    char peer[112];    /* peer address text ("127.0.0.1", "::1", a unix
                          path or ""), NUL-terminated */
    uint16_t peer_port;/* host byte order; 0 for unix sockets */
} pmc_conn_info;

/* Server configuration.  Initialise with pmc_server_config_init, then set
 * at least 'handlers'.  pmc_server_new and pmc_serve_fd copy it; 'handlers',
 * 'app' and the session.symlist strings are not copied and must outlive the
 * server (or the pmc_serve_fd call). */
typedef struct pmc_server_config {
    pmc_config session;          /* copied into each session */
    const pmc_handlers *handlers;/* required */
    void *app;                   /* passed to every hook */

    /* Called once per connection before its first handler, on the thread
     * that will run its handlers.  The result is the 'ud' argument of every
     * session handler of that connection (NULL is fine).  Under the server
     * the handlers' ud is this value; pmc_session_userdata belongs to the
     * server and must not be used.
     * A handler may return PMC_PENDING and be answered later through
     * pmc_server_resume (ci->id, or pmc_server_conn_id, names the
     * connection). */
    void *(*conn_open)(void *app, const pmc_conn_info *ci);
    /* Called exactly once per connection whose conn_open ran, after the
     * session ended (its close handler, if any, has run), also for
     * connections that never negotiated, timed out or failed.  The socket
     * is already closed. */
    void (*conn_close)(void *app, void *conn_ud);
    /* Log sink; NULL = silent.  queue_id is macro 'i' when known, else
     * NULL.  Strings are valid during the call.  May be called from any
     * thread (and from worker processes), concurrently. */
    void (*log)(void *app, int level, uint64_t conn_id, const char *queue_id,
                const char *msg);
    int log_level;          /* lines above this level are not produced;
                               default PMC_LOG_INFO */

    /* Timeouts in ms; <= 0 disables.  read_timeout_ms applies while a
     * packet is partly received, while the MTA owes the rest of a message
     * (between MAIL and the end of the message) and while replies wait for
     * room to be written; default 300000 (Postfix's content timeout).
     * idle_timeout_ms applies between messages; default 7210000 (libmilter's
     * 7210 s).  Neither runs while a handler runs.  While a handler is
     * pending (PMC_PENDING) the MTA owes nothing, so the read timeout does
     * not apply: the connection is under the idle timeout, a safety net
     * for an answer that never comes (the MTA usually gives up first and
     * closes, which ends the session at once). */
    int read_timeout_ms;
    int idle_timeout_ms;
    /* Most concurrent connections (per worker process for PREFORK, see
     * max_conn_per_worker; child processes for FORK); at the cap the server
     * stops accepting until one closes (connections wait in the backlog).
     * 0 = no cap.  Default 0. */
    unsigned max_connections;
    int backlog;            /* for pmc_server_listen; <= 0 = SOMAXCONN */
    /* After accept fails with EMFILE, ENFILE, ENOBUFS or ENOMEM, stop
     * accepting for this long (ms) and log it, instead of spinning.  Existing
     * connections are served meanwhile.  Default 200. */
    int accept_backoff_ms;

    pmc_server_model model; /* default PMC_MODEL_LOOP */
    unsigned threads;       /* THREADS: workers; 0 = 2 x online CPUs,
                               at least 4, at most 64 */
    /* THREADS, lead mode: when nonzero, the event loop runs on a pool
     * thread (the leader), which runs each step itself: no hand-off
     * between threads per command, as in LOOP.  Another pool thread
     * watches it, and when a step has run this long (microseconds) it
     * takes the event loop over, so a handler that blocks holds only its
     * own connection; the blocked thread rejoins the pool when its
     * handler returns.  The pool has threads + 1 threads: up to `threads`
     * handlers may block at once while the loop still runs (one more, and
     * everything waits until one returns).  Handlers, conn_open/close and
     * log run on pool threads; tick and reload run on the thread that
     * called pmc_server_run, which only waits for them, so they run on
     * time whatever the handlers do (they may run while a handler does).
     * For bindings whose handlers serialize on a lock (a GIL), where the
     * classic pool's hand-offs cost more than the handlers.  Default 0:
     * the classic pool. */
    unsigned pool_lead_us;
    unsigned workers;       /* PREFORK: worker processes; 0 = 4 */
    /* PREFORK: concurrent connections per worker; 1 reproduces
     * Sendmail::PMilter's prefork dispatcher.  0 = max_connections. */
    unsigned max_conn_per_worker;
    /* PREFORK: a worker that has accepted this many connections stops
     * accepting, finishes them and exits, and is replaced.  0 = never. */
    unsigned max_requests_per_worker;
    /* PREFORK and FORK: run in each child process after fork, before it
     * accepts or serves; nonzero makes the child exit (status 1; a PREFORK
     * master then waits 1 s before replacing it).  child_exit runs in the
     * child after its last connection closed, before _exit.  NULL = none. */
    int (*child_init)(void *app);
    void (*child_exit)(void *app);

    /* Drain deadline (ms) used when stop comes from tick, or from
     * pmc_server_stop with drain_ms < 0.  Default 30000. */
    int drain_timeout_ms;
    /* Called on the loop thread (the master in PREFORK and FORK) every
     * tick_interval_ms and whenever wake_fd becomes readable; nonzero asks
     * for a graceful stop with drain_timeout_ms.  NULL = none.
     * tick_interval_ms <= 0 = only on wake_fd; default 1000. */
    int (*tick)(void *app);
    int tick_interval_ms;
    /* A descriptor of the host's (e.g. the pipe of Python's
     * signal.set_wakeup_fd); -1 = none (default).  It must be non-blocking:
     * when it is readable the server reads and discards what is there, then
     * calls tick.  Not closed by the server. */
    int wake_fd;
    /* Called on the loop thread (the master in PREFORK) when a reload is
     * requested, before PREFORK replaces its workers.  NULL = none. */
    void (*reload)(void *app);
    /* PREFORK and FORK: called in the parent just before each fork() and
     * just after it (after_fork_parent also when fork failed), on the loop
     * thread, always in pairs and never nested.  The child gets neither:
     * child_init is the first hook it runs.  For hosts that must prepare
     * for fork (Python: PyOS_BeforeFork, PyOS_AfterFork_Parent, and
     * PyOS_AfterFork_Child in child_init).  NULL = none. */
    void (*before_fork)(void *app);
    void (*after_fork_parent)(void *app);

    /* Where to answer HTTP GET /metrics (pmc_server_metrics_text) and
     * GET /health (pmc_server_health), as a socket spec (inet:PORT@ADDR,
     * inet6:PORT@ADDR or unix:PATH); NULL = the environment variable
     * PMCORE_METRICS, and none when that is unset or empty.  The event
     * loop of the process that calls pmc_server_run (the master in
     * PREFORK and FORK) serves it, from the start of the run to its end,
     * between the steps of connections and with no thread of its own: in
     * LOOP, a handler that blocks delays the answers, so a hung milter
     * stops answering /health.  Up to 16 peers are served at once, each
     * with a 2 s limit for sending the request and reading the answer (the
     * oldest gives its place up to a new peer when all are taken).  A spec
     * that does not parse or cannot be listened on makes pmc_server_run
     * fail at once, with a message that names it. */
    const char *metrics_listen;

    /* Capture (docs/capture-format.md): when capture_dir is set, every
     * connection is written to a file of its own in that directory, both
     * directions with timestamps, for `pmilter-test --replay`.  The
     * directory must exist and be writable when the server is created
     * (pmc_server_new, pmc_serve_fd), else they fail with PMC_ERR_ARGUMENT
     * and a message naming it.  Files are named
     * YYYYMMDDTHHMMSS.mmmZ-PID-CONNID.pmcap (UTC, when the connection
     * opened), so each process of a PREFORK or FORK server writes its own
     * and names sort by age.  Writing never blocks or fails a
     * conversation: a capture whose file cannot be created or written
     * (ENOSPC, EIO...) is deleted and counted in capture_dropped, and the
     * conversation goes on.  Rotation: after conversations end, the oldest
     * *.pmcap files of the directory are removed so that at most
     * capture_max_files files (0 = 1000) and capture_max_bytes bytes
     * (0 = 1 GiB) remain; each process checks the directory every few
     * files, so the limits may be exceeded by a few files in between.
     * The environment variable PMCORE_CAPTURE, when set and not empty,
     * replaces these three fields: "DIR[,files=N][,size=BYTES]", BYTES
     * with an optional k, M or G suffix (powers of 1024); a bad value
     * makes pmc_server_new fail with a message naming PMCORE_CAPTURE.
     * The string is copied; NULL (default) = no capture. */
    const char *capture_dir;
    unsigned capture_max_files;
    uint64_t capture_max_bytes;

    /* THREADS, lead mode: the leader calls run_begin before it runs the
     * steps of one wake-up when there are two or more, and run_end after
     * them, on the same thread, always in pairs (also when another thread
     * took the loop over during one of the steps).  For a binding whose
     * handlers take a lock (a GIL): take it once for the run instead of
     * once per handler; the handlers must then take it recursively, or
     * see that they hold it.  Between the two the leader also reads and
     * writes the sockets of those connections (without blocking).  NULL =
     * none. */
    void (*run_begin)(void *app);
    void (*run_end)(void *app);
} pmc_server_config;

/* Defaults as documented above; cfg->session gets pmc_config_init.
 * Thread-safe. */
PMC_API void pmc_server_config_init(pmc_server_config *cfg);

/* Why a connection ended, for pmc_server_stats.conn_ended. */
typedef enum pmc_conn_end {
    PMC_END_QUIT = 0,   /* the MTA said QUIT */
    PMC_END_EOF,        /* the MTA closed between packets */
    PMC_END_RESET,      /* a read or write failed (reset, broken pipe) */
    PMC_END_TIMEOUT,    /* the read or idle timeout */
    PMC_END_PROTOCOL,   /* bad input, a packet cut off, out of memory */
    PMC_END_SHUTDOWN,   /* the server stopped, or the host ended it */
    PMC_END_COUNT
} pmc_conn_end;

#define PMC_LATENCY_BUCKETS 16

/* Counters.  Replies are counted by reply code byte; callback latency is
 * per event (PMC_EV_*), measured around each handler call, in ns.  A
 * connection keeps its own counters and hands them to the server when it
 * closes; pmc_server_stats_get adds those of the open connections, so a
 * snapshot includes every reply already sent (a connection in the middle
 * of a step may show some of the step's counts and not others).  In
 * PREFORK workers send their counters to the master after each batch of
 * accepts and each closed connection, and those of their open connections
 * once a second while any is open, so the master's snapshot lags by at
 * most one event per worker for accepts, closes and conn_active, and by at
 * most a second for what open connections did; FORK children send theirs
 * when they end. */
typedef struct pmc_server_stats {
    uint64_t conn_accepted;
    uint64_t conn_active;
    uint64_t conn_refused;     /* accepted and closed at once: out of
                                  memory, fork failed */
    uint64_t conn_read_timeouts;
    uint64_t conn_idle_timeouts;
    uint64_t accept_errors;    /* failed accept() calls */
    uint64_t accept_backoffs;  /* times accepting was paused (EMFILE...) */
    uint64_t messages;         /* EOM answered */
    uint64_t protocol_errors;  /* sessions ended by bad input */
    uint64_t callback_errors;  /* invalid verdicts from handlers */
    uint64_t io_errors;        /* reads or writes that failed */
    uint64_t workers_spawned;  /* PREFORK workers and FORK children */
    uint64_t workers_exited;
    uint64_t captures;         /* capture files completed */
    uint64_t capture_dropped;  /* captures given up: the file could not be
                                  created or written (disk full...) */
    uint64_t replies[128];
    uint64_t cb_count[PMC_EV_COUNT];
    uint64_t cb_ns_sum[PMC_EV_COUNT];
    /* Connections closed, by why (PMC_END_*). */
    uint64_t conn_ended[PMC_END_COUNT];
    /* Negotiations by the protocol version the MTA offered: 2 to 6 at
     * their index, 7 for anything above 6 (index 0 and 1 stay 0: the core
     * refuses versions below 2). */
    uint64_t negotiations[8];
    /* Handler latency per event: how many calls took at most
     * pmc_latency_bounds_ns[i] (and more than the bound before it); the
     * last bucket counts the rest.  Not cumulative. */
    uint64_t cb_hist[PMC_EV_COUNT][PMC_LATENCY_BUCKETS];
    /* Must stay last: merged as maxima, everything above as sums. */
    uint64_t cb_ns_max[PMC_EV_COUNT];
} pmc_server_stats;

/* The upper bounds of cb_hist's buckets but the last, in ns: from 10 us
 * to 5 s. */
extern PMC_API const uint64_t pmc_latency_bounds_ns[PMC_LATENCY_BUCKETS - 1];

typedef struct pmc_server pmc_server;

/* Create a server (no listener yet).  NULL with err (may be NULL) set on a
 * bad config (PMC_ERR_ARGUMENT: no handlers, unknown model, a capture
 * directory or PMCORE_CAPTURE value that cannot be used) or failure
 * (PMC_ERR_NOMEM, PMC_ERR_IO).  Thread-safe. */
PMC_API pmc_server *pmc_server_new(const pmc_server_config *cfg,
                                   pmc_error *err);
/* Listen on a spec (see pmc_listen; backlog from the config).  Several
 * listeners are allowed.  The server owns the socket: when it stops (or is
 * freed) it closes it and removes a unix socket path it created, if the
 * path still names that socket.  Returns the descriptor (for getsockname, e.g.
 * to learn a port given as 0) or -1 with err set.  Not while running. */
PMC_API int pmc_server_listen(pmc_server *srv, const char *spec, int mode,
                              pmc_error *err);
/* Adopt a listening socket (inherited from a parent, systemd, ...).  The
 * server takes ownership: it makes it non-blocking and close-on-exec and
 * closes it when it stops.  PMC_ERR_ARGUMENT if fd is not a listening
 * socket.  Not while running. */
PMC_API pmc_status pmc_server_add_fd(pmc_server *srv, int fd, pmc_error *err);
/* Serve until stopped.  Returns PMC_OK after a stop (all connections
 * closed, worker processes reaped, threads joined), or an error with err
 * set (PMC_ERR_ARGUMENT: no listener; PMC_ERR_SEQUENCE: run twice;
 * PMC_ERR_NOMEM, PMC_ERR_IO: a resource failed).  Call it once, from one
 * thread.  Forked children never return (see above). */
PMC_API pmc_status pmc_server_run(pmc_server *srv, pmc_error *err);
/* Ask for a graceful stop: stop accepting (listeners are closed), serve
 * every open connection, messages and all, until the MTA ends it (QUIT or
 * EOF) for at most drain_ms (< 0 = drain_timeout_ms; 0 = close everything
 * now), then end what is left (abort and close handlers run) and return
 * from pmc_server_run.  Connections between messages are kept too: an MTA
 * sends every message of an SMTP session over one milter connection and
 * takes a close as the milter failing (its default action, a tempfail),
 * so only the deadline closes a connection the MTA still holds.  A handler already running is never interrupted: run
 * returns after it.  PREFORK and FORK forward the stop to every child
 * process and kill (SIGKILL) one still alive 2 s after the deadline.  Before run, run
 * returns at once.  Async-signal-safe and thread-safe; the first stop's
 * deadline wins.  srv must stay valid (do not free it concurrently). */
PMC_API void pmc_server_stop(pmc_server *srv, int drain_ms);
/* Ask for a reload: the reload hook runs on the loop thread; in PREFORK
 * new workers are then started and the old ones drain (they stop
 * accepting, finish their connections and exit).  In the other models only
 * the hook runs.  Async-signal-safe and thread-safe. */
PMC_API void pmc_server_reload(pmc_server *srv);
/* A consistent snapshot of the counters.  Thread-safe (any thread, also
 * while running; not from a signal handler). */
PMC_API void pmc_server_stats_get(pmc_server *srv, pmc_server_stats *out);
/* The counters in Prometheus's text format (version 0.0.4), appended to
 * *out: the series and their meaning are listed in docs/metrics.md.
 * Thread-safe, as pmc_server_stats_get.  PMC_ERR_NOMEM leaves part of the
 * text in *out. */
PMC_API pmc_status pmc_server_metrics_text(pmc_server *srv, pmc_buf *out);

/* What a load balancer's health check gets (GET /health). */
typedef enum pmc_health {
    PMC_HEALTH_OK = 0,      /* serving: "200 ok" */
    PMC_HEALTH_DRAINING,    /* a stop has begun: "503 draining" */
    PMC_HEALTH_NO_WORKERS,  /* a PREFORK master with no live worker:
                               "503 no workers" */
    PMC_HEALTH_STOPPED      /* not running (before the run or after it) */
} pmc_health;
/* The server's health now.  Thread-safe, async-signal-safe. */
PMC_API pmc_health pmc_server_health(pmc_server *srv);
/* The HTTP status and the one-line body of a health state ("ok",
 * "draining", "no workers", "stopped"). */
PMC_API int pmc_health_http_status(pmc_health h);
PMC_API const char *pmc_health_name(pmc_health h);
/* Answer a pending handler later, from any thread.  A handler of
 * connection conn_id returned PMC_PENDING; when the work it started is
 * done, call this.  The request is queued and the server woken; fn(s, arg)
 * then runs on the thread that owns the connection (the loop thread in
 * LOOP and PREFORK workers, a pool thread in THREADS, the child in FORK),
 * never at the same time as a handler of that connection.  fn may use the
 * session's actions as the pending handler could (addheader while EOM is
 * pending, setreply, progress, getsymval) and returns the verdict given to
 * pmc_session_resume: the pending event is answered, queued input goes on
 * (running more handlers), and the output is sent.  fn returning
 * PMC_PENDING keeps the handler pending: a way to run actions on the
 * connection's thread (progress, say) before the answer.  If the session is
 * not pending when fn runs, its return value is ignored.
 *
 * fn is called exactly once per successful call: with s == NULL when the
 * connection is gone (closed, timed out, ended by a stop; also when the
 * server is not running any more, then on the calling thread at once), so
 * arg can be freed; s is valid only during fn.  Requests for one
 * connection run in the order they were made.  Returns PMC_OK, or
 * PMC_ERR_NOMEM (nothing queued, fn not called; arg stays the caller's).
 * Thread-safe; not async-signal-safe.  srv must stay valid until
 * pmc_server_free, which answers requests still queued with s == NULL.
 * In the forked models a request only reaches connections of the process
 * that makes it.  pmc_serve_fd has no server object: its handlers must not
 * return PMC_PENDING (such a connection waits for its timeouts).
 *
 * Drain: a pending connection is kept open until it is answered (and then
 * until its message ends, as any other), at most until the drain deadline;
 * at the deadline it is ended (abort and close run) and the late fn gets
 * s == NULL. */
PMC_API pmc_status pmc_server_resume(pmc_server *srv, uint64_t conn_id,
                                     int (*fn)(pmc_session *s, void *arg),
                                     void *arg);
/* The id of the server connection a session belongs to (the
 * pmc_conn_info.id given to conn_open), for pmc_server_resume.  Only for
 * sessions run by a pmc_server or pmc_serve_fd, from their handlers or fn;
 * any other session gives an undefined result. */
PMC_API uint64_t pmc_server_conn_id(const pmc_session *s);
/* Close listeners, remove unix socket paths the server created, free.  Not
 * while pmc_server_run runs.  NULL is fine. */
PMC_API void pmc_server_free(pmc_server *srv);

/* Serve one connected socket to completion on the calling thread, with
 * blocking waits (poll) and the config's timeouts; the fd's blocking mode
 * is left as it is.  For Net::Server-style hosts and custom dispatchers.
 * conn_open and conn_close run as in the server (conn_id is passed in
 * pmc_conn_info and to log); the model, listener, tick and process fields
 * are ignored.  The fd is NOT closed: it stays the caller's.  If stats is
 * not NULL the connection's counters are added to it (not thread-safe:
 * one stats object per thread).  Returns PMC_OK when the MTA ended the
 * connection (QUIT or end of stream between packets), PMC_ERR_TIMEOUT,
 * PMC_ERR_IO (read or write failed), PMC_ERR_ARGUMENT (no handlers, bad
 * fd, unusable capture settings), PMC_ERR_NOMEM, or the protocol error that ended the session; err
 * (may be NULL) gets the sentence.  Thread-safe for different fds. */
PMC_API pmc_status pmc_serve_fd(const pmc_server_config *cfg, int fd,
                                uint64_t conn_id, pmc_server_stats *stats,
                                pmc_error *err);

#ifdef __cplusplus
}
#endif
#endif /* PMCORE_SERVER_H */
