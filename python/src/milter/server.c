/* server.c - main(), stop() and opensocket() on the libpmcore server.
 *
 * main() runs pmc_server_run with the GIL released, on a bounded thread
 * pool (handlers take the GIL themselves).  Signals stay Python's: the
 * server wakes on signal.set_wakeup_fd's pipe and every tick, and the tick
 * hook runs Python's handlers (PyErr_CheckSignals) on this thread, so
 * Ctrl-C raises KeyboardInterrupt from main() and user handlers run.
 * SIGTERM and SIGHUP, when the application left them at their defaults,
 * stop main() gracefully (drain) as pymilter's libmilter did. */
#include "pym.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#ifndef PYM_POOL_LEAD_US
#define PYM_POOL_LEAD_US 2000
#endif

static pmc_server *running;   /* guarded by the GIL */
static PyObject *main_exc;    /* exception to raise from main() */
static int listen_fd = -1;    /* from opensocket() */

/* Keep the first exception that should end main() (SystemExit from a
 * callback, KeyboardInterrupt from a signal handler). */
static void keep_exc(PyObject *v)
{
    if (main_exc == NULL)
        main_exc = v;
    else
        Py_DECREF(v);
}

static void *conn_open(void *app, const pmc_conn_info *ci)
{
    pym_conn *c = PyMem_RawCalloc(1, sizeof(pym_conn));

    (void)app;
    if (c != NULL) {
        c->srv = running; /* set before the server's threads started */
        c->id = ci->id;
    }
    return c;
}

static void conn_close(void *app, void *ud)
{
    pym_conn *c = ud;
    int g;

    (void)app;
    if (c == NULL)
        return;
    g = pym_gil_take();
    if (c->ctx != NULL) { /* close never ran (the session never started) */
        pym_context_detach(c->ctx);
        Py_CLEAR(c->ctx);
    }
    if (c->pending_exc != NULL) {
        keep_exc(c->pending_exc);
        c->pending_exc = NULL;
        if (running)
            pmc_server_stop(running, -1);
    }
    pym_gil_give(g);
    PyMem_RawFree(c);
}

static int tick(void *app)
{
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = 0;

    (void)app;
    pym_log_flush();
    if (PyErr_CheckSignals() < 0) {
        PyObject *v = pym_take_exc();
        if (v != NULL)
            keep_exc(v);
        pmc_server_stop(running, 0); /* an exception: stop now */
    }
    if (main_exc != NULL)
        stop = 1;
    PyGILState_Release(g);
    return stop;
}

/* milter.error("<what>: <why>").  pymilter's fixed words come first so
 * code matching them keeps working; the rest is what an operator needs to
 * fix the setup (for the core's failures its sentence: the spec, the step
 * and the system error).  'reason' holds <why> alone, 'errno' the system
 * error, or None when no system call failed (a bad spec, a misuse). */
static PyObject *server_error(const char *what, const char *why,
                              int sys_errno)
{
    PyObject *msg = PyUnicode_FromFormat("%s: %s", what, why), *exc, *v;

    if (msg == NULL)
        return NULL;
    exc = PyObject_CallFunctionObjArgs(pym.error, msg, NULL);
    Py_DECREF(msg);
    if (exc == NULL)
        return NULL;
    /* The core cuts a long spec at a byte count, maybe inside a UTF-8
     * sequence: 'replace' as PyUnicode_FromFormat does above. */
    v = PyUnicode_DecodeUTF8(why, (Py_ssize_t)strlen(why), "replace");
    if (v != NULL)
        PyObject_SetAttrString(exc, "reason", v);
    Py_XDECREF(v);
    if (sys_errno > 0) {
        v = PyLong_FromLong(sys_errno);
    } else {
        v = Py_None;
        Py_INCREF(v);
    }
    if (v != NULL)
        PyObject_SetAttrString(exc, "errno", v);
    Py_XDECREF(v);
    PyErr_Clear(); /* an attribute that failed to set is no reason to hide
                      the error itself */
    PyErr_SetObject(pym.error, exc);
    Py_DECREF(exc);
    return NULL;
}

/* pymilter's specs: "PATH" (no colon) means unix; the rest (including
 * libmilter's inet:PORT@[IPv4]) goes to the core as is. */
static PyObject *core_spec(const char *errmsg)
{
    const char *s;

    if (pym.conn_spec == NULL) {
        server_error(errmsg, "no socket spec (call setconn() first)", 0);
        return NULL;
    }
    s = PyUnicode_AsUTF8(pym.conn_spec);
    if (s == NULL)
        return NULL;
    if (strchr(s, ':') == NULL)
        return PyBytes_FromFormat("unix:%s", s);
    return PyBytes_FromString(s);
}

PyObject *pym_opensocket(PyObject *self, PyObject *args)
{
    unsigned char rm;
    PyObject *spec;
    pmc_error err;
    int fd, e;

    (void)self;
    /* rmsock is pymilter's; it no longer matters: libmilter unlinked the
     * path even if a live milter listened there, so a second instance
     * silently took its socket over.  The core replaces a stale socket and
     * refuses a live one, with or without it. */
    if (!PyArg_ParseTuple(args, "b:opensocket", &rm))
        return NULL;
    if (running)
        return server_error("cannot opensocket", "main() is running", 0);
    if (listen_fd >= 0)
        return server_error("cannot opensocket",
                            "a socket is already open for main()", 0);
    spec = core_spec("cannot opensocket");
    if (spec == NULL)
        return NULL;
    memset(&err, 0, sizeof err);
    fd = pmc_listen(PyBytes_AS_STRING(spec), 0,
                    pym.backlog > 0 ? pym.backlog : 0, &err);
    e = errno;
    Py_DECREF(spec);
    if (fd < 0)
        return server_error("cannot opensocket", err.message,
                            err.code == PMC_ERR_IO ? e : 0);
    listen_fd = fd;
    Py_RETURN_NONE;
}

/* SIGTERM/SIGHUP left at SIG_DFL get a handler that stops main()
 * gracefully; returns the previous handlers to restore (or NULL).  One
 * found ignored stays ignored: inherited from nohup, that is the operator
 * asking the milter to outlive a hangup. */
static PyObject *install_default_stops(PyObject *sigmod, PyObject *stopper)
{
    static const char *const names[] = {"SIGTERM", "SIGHUP"};
    PyObject *saved = PyList_New(0), *dfl;
    int i;

    if (saved == NULL)
        return NULL;
    dfl = PyObject_GetAttrString(sigmod, "SIG_DFL");
    for (i = 0; dfl != NULL && i < 2; i++) {
        PyObject *num = PyObject_GetAttrString(sigmod, names[i]);
        PyObject *cur = num ? PyObject_CallMethod(sigmod, "getsignal", "O",
                                                  num) : NULL;
        if (cur != NULL && PyObject_RichCompareBool(cur, dfl, Py_EQ) == 1) {
            PyObject *r = PyObject_CallMethod(sigmod, "signal", "OO", num,
                                              stopper);
            if (r != NULL) {
                PyObject *t = PyTuple_Pack(2, num, cur);
                if (t != NULL)
                    PyList_Append(saved, t);
                Py_XDECREF(t);
            }
            Py_XDECREF(r);
        }
        Py_XDECREF(num);
        Py_XDECREF(cur);
        PyErr_Clear();
    }
    Py_XDECREF(dfl);
    return saved;
}

static void restore_signals(PyObject *sigmod, PyObject *saved)
{
    Py_ssize_t i;

    for (i = 0; saved != NULL && i < PyList_GET_SIZE(saved); i++) {
        PyObject *t = PyList_GET_ITEM(saved, i);
        PyObject *r = PyObject_CallMethod(sigmod, "signal", "OO",
                                          PyTuple_GET_ITEM(t, 0),
                                          PyTuple_GET_ITEM(t, 1));
        Py_XDECREF(r);
        PyErr_Clear();
    }
}

static PyObject *graceful_stop(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    if (running)
        pmc_server_stop(running, -1);
    Py_RETURN_NONE;
}

static PyMethodDef stopper_def = {"_graceful_stop", graceful_stop,
                                  METH_VARARGS, NULL};

/* Signal plumbing for one main() run, set up on the main thread only
 * (Python's wakeup fd and handlers belong to it). */
typedef struct {
    PyObject *sigmod, *stopper, *saved, *oldwake;
    int pfd[2];
} sigstate;

static int is_main_thread(void)
{
    PyObject *thr = PyImport_ImportModule("threading");
    PyObject *cur = thr ? PyObject_CallMethod(thr, "current_thread", NULL)
                        : NULL;
    PyObject *mainth = thr ? PyObject_CallMethod(thr, "main_thread", NULL)
                           : NULL;
    int r = cur != NULL && cur == mainth;

    Py_XDECREF(thr);
    Py_XDECREF(cur);
    Py_XDECREF(mainth);
    PyErr_Clear();
    return r;
}

static void signals_setup(sigstate *ss)
{
    memset(ss, 0, sizeof *ss);
    ss->pfd[0] = ss->pfd[1] = -1;
    if (!is_main_thread())
        return; /* tick still runs; Python delivers signals elsewhere */
    ss->sigmod = PyImport_ImportModule("signal");
    if (ss->sigmod == NULL) {
        PyErr_Clear();
        return;
    }
    if (pipe(ss->pfd) == 0) {
        int i;
        for (i = 0; i < 2; i++) {
            fcntl(ss->pfd[i], F_SETFL, O_NONBLOCK);
            fcntl(ss->pfd[i], F_SETFD, FD_CLOEXEC);
        }
        ss->oldwake = PyObject_CallMethod(ss->sigmod, "set_wakeup_fd", "i",
                                          ss->pfd[1]);
        if (ss->oldwake == NULL) {
            PyErr_Clear();
            close(ss->pfd[0]);
            close(ss->pfd[1]);
            ss->pfd[0] = ss->pfd[1] = -1;
        }
    }
    ss->stopper = PyCFunction_New(&stopper_def, NULL);
    ss->saved = ss->stopper ? install_default_stops(ss->sigmod, ss->stopper)
                            : NULL;
    PyErr_Clear();
}

static void signals_restore(sigstate *ss)
{
    PyObject *pending = pym_take_exc(); /* keep the caller's error */

    if (ss->sigmod != NULL) {
        if (ss->oldwake != NULL) {
            PyObject *r = PyObject_CallMethod(ss->sigmod, "set_wakeup_fd",
                                              "O", ss->oldwake);
            Py_XDECREF(r);
            PyErr_Clear();
        }
        restore_signals(ss->sigmod, ss->saved);
    }
    if (ss->pfd[0] >= 0) {
        close(ss->pfd[0]);
        close(ss->pfd[1]);
    }
    Py_XDECREF(ss->oldwake);
    Py_XDECREF(ss->saved);
    Py_XDECREF(ss->stopper);
    Py_XDECREF(ss->sigmod);
    pym_restore_exc(pending);
}

/* PREFORK: the interpreter is prepared for fork as os.fork() does: the
 * GIL is held across fork() (taken in before_fork, released in the parent
 * by after_fork_parent and in the child by child_init). */
static PyGILState_STATE fork_gil;

static void before_fork(void *app)
{
    (void)app;
    fork_gil = PyGILState_Ensure();
    PyOS_BeforeFork();
}

static void after_fork_parent(void *app)
{
    (void)app;
    PyOS_AfterFork_Parent();
    PyGILState_Release(fork_gil);
}

/* In a worker: stopping is the supervisor's business (it tells each
 * worker to drain, and a worker whose supervisor vanished drains on its
 * own), so SIGTERM, SIGHUP and SIGINT sent to the whole process group
 * (systemd, Ctrl-C) are ignored here, and the supervisor's wakeup pipe is
 * let go. */
static void worker_signals(void)
{
    static const char *const names[] = {"SIGTERM", "SIGHUP", "SIGINT"};
    PyObject *sig = PyImport_ImportModule("signal");
    PyObject *ign = sig ? PyObject_GetAttrString(sig, "SIG_IGN") : NULL;
    int i;

    for (i = 0; ign != NULL && i < 3; i++) {
        PyObject *num = PyObject_GetAttrString(sig, names[i]);
        PyObject *r = num ? PyObject_CallMethod(sig, "signal", "OO", num, ign)
                          : NULL;
        Py_XDECREF(r);
        Py_XDECREF(num);
    }
    if (sig != NULL) {
        PyObject *r = PyObject_CallMethod(sig, "set_wakeup_fd", "i", -1);
        Py_XDECREF(r);
    }
    Py_XDECREF(ign);
    Py_XDECREF(sig);
    PyErr_Clear();
}

static int child_init(void *app)
{
    (void)app;
    PyOS_AfterFork_Child();
    pym_aio_forget();
    worker_signals();
    PyGILState_Release(fork_gil);
    return 0;
}

/* A worker leaves with _exit(): flush what Python buffered. */
static void child_exit(void *app)
{
    PyGILState_STATE g = PyGILState_Ensure();
    static const char *const names[] = {"stdout", "stderr"};
    int i;

    (void)app;
    for (i = 0; i < 2; i++) {
        PyObject *f = PySys_GetObject(names[i]); /* borrowed */
        PyObject *r = f ? PyObject_CallMethod(f, "flush", NULL) : NULL;
        Py_XDECREF(r);
        PyErr_Clear();
    }
    PyGILState_Release(g);
}

/* main(*, threads=0, workers=0, inline=False): pymilter's main() takes no
 * arguments.  threads sizes the callback thread pool (0 = the core's
 * default: twice the online CPUs, at least 4, at most 64); workers > 0
 * serves from that many worker processes instead (the prefork model: each
 * worker runs one event loop; this process only supervises them); inline
 * runs the callbacks on this thread, in the event loop (the LOOP model):
 * no hand-off to a pool thread per command, but a callback that blocks
 * holds every connection. */
PyObject *pym_main(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"threads", "workers", "inline", NULL};
    unsigned int threads = 0, workers = 0;
    int inline_ = 0;
    pmc_server_config cfg;
    pmc_server *srv;
    pmc_error err;
    pmc_status st;
    PyObject *spec;
    sigstate ss;
    int e;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$IIp:main", kwlist,
                                     &threads, &workers, &inline_))
        return NULL;
    if (running)
        return pym_error("milter module in use");
    memset(&err, 0, sizeof err);
    pmc_server_config_init(&cfg);
    cfg.handlers = &pym_handlers;
    cfg.conn_open = conn_open;
    cfg.conn_close = conn_close;
    /* libmilter logged to syslog; here the lines go to the logger
     * "milter" (log.c), as many as its level lets through, and everything
     * with setdbg(n > 0). */
    cfg.log = pym_log_line;
    cfg.log_level = pym_log_level();
    cfg.tick = tick;
    cfg.tick_interval_ms = 200;
    cfg.model = inline_ ? PMC_MODEL_LOOP : PMC_MODEL_THREADS;
    cfg.threads = threads;
    /* Callbacks take turns on the GIL anyway, so handing each command to
     * a pool thread and back cost more than the callback: the pool thread
     * running the loop runs them itself, and another takes the loop over
     * when one has run for PYM_POOL_LEAD_US (it blocks, or is slow), so
     * only its own connection waits (pmcore.h, pool_lead_us).  This
     * thread runs the tick (signal handlers) only. */
    cfg.pool_lead_us = PYM_POOL_LEAD_US;
    if (workers > 0) {
        cfg.model = PMC_MODEL_PREFORK;
        cfg.workers = workers;
        cfg.before_fork = before_fork;
        cfg.after_fork_parent = after_fork_parent;
        cfg.child_init = child_init;
        cfg.child_exit = child_exit;
    }
    cfg.backlog = pym.backlog;
    /* settimeout(): libmilter's per-command timeout, here the idle time
     * allowed between messages (<= 0 keeps the core's 7210 s). */
    if (pym.timeout > 0)
        cfg.idle_timeout_ms = pym.timeout > INT_MAX / 1000 ? INT_MAX
                                                           : pym.timeout * 1000;
    signals_setup(&ss);
    cfg.wake_fd = ss.pfd[0];
    srv = pmc_server_new(&cfg, &err);
    if (srv == NULL) {
        server_error("cannot run main", err.message, 0);
        signals_restore(&ss);
        return NULL;
    }
    if (listen_fd >= 0) {
        st = pmc_server_add_fd(srv, listen_fd, &err);
        e = errno;
        if (st != PMC_OK) /* the server did not take it */
            close(listen_fd);
        listen_fd = -1;
    } else if ((spec = core_spec("cannot run main")) != NULL) {
        st = pmc_server_listen(srv, PyBytes_AS_STRING(spec), 0, &err) < 0
                 ? PMC_ERR_IO : PMC_OK;
        e = errno;
        Py_DECREF(spec);
    } else {
        pmc_server_free(srv);
        signals_restore(&ss);
        return NULL;
    }
    if (st != PMC_OK) {
        server_error("cannot run main", err.message,
                     err.code == PMC_ERR_IO ? e : 0);
        pmc_server_free(srv);
        signals_restore(&ss);
        return NULL;
    }
    running = srv;
    Py_BEGIN_ALLOW_THREADS
    st = pmc_server_run(srv, &err);
    Py_END_ALLOW_THREADS
    running = NULL;
    /* Coroutines still running answer through srv: before it is freed. */
    pym_aio_shutdown();
    pmc_server_free(srv);
    pym_log_flush(); /* the lines of the last moments, before main returns */
    signals_restore(&ss);
    /* Handlers for signals that arrived after the last tick. */
    if (PyErr_CheckSignals() < 0)
        return NULL;
    if (main_exc != NULL) {
        PyObject *e = main_exc;
        main_exc = NULL;
        pym_restore_exc(e);
        return NULL;
    }
    if (st != PMC_OK)
        return server_error("cannot run main", err.message, 0);
    Py_RETURN_NONE;
}

/* metrics_text(): the running server's counters in Prometheus's text
 * format (pmc_server_metrics_text), or None outside main().  The GIL stays
 * held: main() frees the server only after taking it back. */
PyObject *pym_metrics_text(PyObject *self, PyObject *noargs)
{
    pmc_buf b = {0};
    PyObject *r;

    (void)self;
    (void)noargs;
    if (!running)
        Py_RETURN_NONE;
    if (pmc_server_metrics_text(running, &b) != PMC_OK) {
        pmc_buf_free(&b);
        return PyErr_NoMemory();
    }
    r = PyUnicode_FromStringAndSize(b.len ? (const char *)b.data : "",
                                    (Py_ssize_t)b.len);
    pmc_buf_free(&b);
    return r;
}

PyObject *pym_stop(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    if (running)
        pmc_server_stop(running, -1);
    Py_RETURN_NONE;
}

int pym_server_init(PyObject *m)
{
    (void)m;
    return 0;
}

void pym_exit_requested(void)
{
    if (running)
        pmc_server_stop(running, -1);
}

void pym_exit_with(PyObject *exc)
{
    keep_exc(exc);
    if (running)
        pmc_server_stop(running, -1);
}
