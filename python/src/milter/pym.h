/* pym.h - shared declarations of the `milter` extension module.
 *
 * The module is glue only: it turns libpmcore events into Python calls and
 * Python return values into verdicts.  Everything that knows the protocol is
 * in libpmcore (pmcore.h).  Files:
 *   module.c     module object, constants, global settings, functions
 *   context.c    the milter.Context type (actions on the current session)
 *   callbacks.c  the pmc_handlers table: argument conversion and results
 *   dispatch.c   the Milter package's standard callbacks called from C
 *   negotiate.c  the negotiate handler (pymilter's opts-list semantics)
 *   testconn.c   _TestConn: a session driven in-process by the pmc_client
 *   testclient.c _TestConn's MTA-side calls (testconn.h is their header)
 *   server.c     main()/stop()/opensocket() on the libpmcore server
 *   log.c        the engine's log lines into logging's "milter" logger
 */
#ifndef PYM_H
#define PYM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "pmcore.h"

#if PY_VERSION_HEX < 0x030A0000
/* Py_NewRef arrived in 3.10; the binding supports 3.8. */
static inline PyObject *pym_newref(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
#define Py_NewRef(o) pym_newref((PyObject *)(o))
#endif

/* The one table of callbacks, in PMC_EV_* order, so a slot is the core's
 * event.  Columns: the event, pymilter's name (in messages, as
 * _TestConn's dict key, and the field of pmc_handlers) and how pymilter
 * registers it: S by set_<name>_callback, R by register()'s keywords.
 * The slot enum, the names, pym_handlers, the setters and _TestConn's
 * handler selection are generated from it. */
#define PYM_EVENTS(X)                                                   \
    X(NEGOTIATE, negotiate, R) X(CONNECT, connect, S) X(HELO, helo, S)  \
    X(ENVFROM, envfrom, S) X(ENVRCPT, envrcpt, S) X(DATA, data, R)      \
    X(HEADER, header, S) X(EOH, eoh, S) X(BODY, body, S)                \
    X(EOM, eom, S) X(ABORT, abort, S) X(CLOSE, close, S)                \
    X(UNKNOWN, unknown, R)

enum {
#define PYM_SLOT(ev, name, how) SLOT_##ev = PMC_EV_##ev,
    PYM_EVENTS(PYM_SLOT)
#undef PYM_SLOT
    SLOT_COUNT = PMC_EV_COUNT
};
extern const char *const pym_slot_names[SLOT_COUNT];

/* Process-wide settings made through the module functions.  Only touched
 * with the GIL held. */
typedef struct pym_globals {
    PyObject *cb[SLOT_COUNT];   /* strong refs or NULL */
    char name[64];              /* register()'s name, copied (40 used) */
    int flags;                  /* set_flags(): kept, ignored (see docs) */
    int exception_policy;
    unsigned long ctx_new, ctx_del; /* getdiag() */
    PyObject *error;            /* milter.error */
    PyObject *conn_spec;        /* setconn() str or NULL */
    int timeout;                /* settimeout(), seconds */
    int backlog;                /* setbacklog(), 0 = default */
    int dbg;
} pym_globals;
extern pym_globals pym;

/* One MTA connection as the binding sees it: the 'ud' of every handler.
 * Allocated with PyMem_RawCalloc so it can be made without the GIL. */
typedef struct pym_conn {
    struct ContextObject *ctx; /* made lazily; NULL after close */
    PyObject **cb;             /* NULL = the global table (pym.cb) */
    PyObject *owner;           /* keeps cb alive (a _TestConn), borrowed */
    int raw_negotiate;         /* _TestConn for vectors: opts start from the
                                  session's proposal, not the MTA's offer */
    PyObject *pending_exc;     /* _TestConn: SystemExit/KeyboardInterrupt to
                                  re-raise once the engine call returns */
    pmc_server *srv;           /* under main(): answers go through it */
    uint64_t id;               /* the server's connection id */
    PyObject *coro;            /* _TestConn: the awaitable a pending
                                  callback returned, run by the wait hook */
    int coro_slot;
    PyObject *loop;            /* _TestConn: its private asyncio loop */
} pym_conn;

typedef struct ContextObject {
    PyObject_HEAD
    pmc_session *s;    /* NULL once the connection closed ("dead") */
    PyObject *priv;    /* setpriv/getpriv; starts as None */
    int in_cb;         /* a handler of this connection runs Python now */
    unsigned symlists; /* stages given a macro list in this negotiation */
    int pending;       /* a coroutine callback's answer is pending */
    pmc_server *srv;   /* under main(): actions while pending go through
                          pmc_server_resume to the connection's thread */
    uint64_t conn_id;
    PyObject *fut;     /* the pending coroutine's concurrent future */
    PyObject *tail;    /* the last abort/close coroutine's future: later
                          coroutines of this connection wait for it */
} ContextObject;

extern PyTypeObject pym_ContextType;
extern PyTypeObject pym_TestConnType;

/* context.c */
ContextObject *pym_context_new(pmc_session *s);
void pym_context_detach(ContextObject *c);

/* The current exception, normalized and with its traceback attached, as a
 * new reference (cleared from the thread); NULL if none.  One spelling for
 * 3.8-3.11 (PyErr_Fetch) and 3.12+ (where PyErr_Fetch is deprecated). */
static inline PyObject *pym_take_exc(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;

    PyErr_Fetch(&t, &v, &tb);
    if (t == NULL)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb != NULL && v != NULL)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

/* Raise exc again (steals the reference); NULL does nothing. */
static inline void pym_restore_exc(PyObject *exc)
{
    if (exc != NULL)
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_XDECREF(exc);
}

/* aio.c: coroutine callbacks. */
int pym_is_awaitable(PyObject *o);
/* A callback returned an awaitable (stolen): schedule it.  Returns the
 * verdict for the handler (PMC_PENDING, or CONTINUE for abort/close), or
 * -1 with an exception set. */
int pym_aio_start(pym_conn *c, ContextObject *ctx, int slot, PyObject *aw);
/* _TestConn: run the pending awaitable to completion on the private loop
 * and resume the session.  Returns the resume status, PMC_ERR_PENDING when
 * nothing was pending. */
pmc_status pym_aio_run_pending(pym_conn *c, pmc_session *s);
/* Drop a pending awaitable (the session ended). */
void pym_aio_drop(pym_conn *c, ContextObject *ctx);
/* Run op(s, arg) on the session of ctx: directly inside a callback (or in
 * a _TestConn), through the server to the connection's thread while a
 * coroutine is pending.  -1 with milter.error set when the context cannot
 * be used. */
int pym_ctx_run(ContextObject *ctx, void (*op)(pmc_session *s, void *arg),
                void *arg);
/* main(): stop the asyncio thread (after the server ran). */
void pym_aio_shutdown(void);
/* A forked child: the parent's asyncio thread does not exist here. */
void pym_aio_forget(void);
/* Print an exception from a callback (SystemExit and KeyboardInterrupt go
 * to main() instead); steals exc. */
void pym_aio_report(PyObject *exc);
int pym_result_verdict(int slot, PyObject *res, int *v);

/* callbacks.c */
extern const pmc_handlers pym_handlers;
/* Report the current exception of a callback of c (SystemExit and
 * KeyboardInterrupt are kept for the host) and clear it. */
void pym_report(pym_conn *c);
PyObject *pym_decode(const char *p, size_t n);
int pym_call(pym_conn *c, pmc_session *s, int slot, PyObject *args,
             int *verdict);
/* The bytes of an argument not made yet (see pym_dispatch). */
typedef struct pym_raw {
    const char *p;
    Py_ssize_t n;
} pym_raw;
int pym_call_v(pym_conn *c, pmc_session *s, int slot, PyObject *const *args,
               Py_ssize_t n, const pym_raw *raw, int *verdict);
ContextObject *pym_conn_ctx(pym_conn *c, pmc_session *s);
int pym_policy_verdict(pmc_session *s);

/* dispatch.c */
int pym_dispatch_init(void);
PyObject *pym_call_decoded(PyObject *mod, PyObject *args);
PyObject *pym_noreply(PyObject *mod, PyObject *const *args, Py_ssize_t n);
PyObject *pym_noreply_mark(PyObject *mod, PyObject *w);
PyObject *pym_dispatch(int slot, PyObject *cb, ContextObject *ctx,
                       PyObject *const *args, Py_ssize_t n,
                       const pym_raw *raw);

/* negotiate.c */
int pym_negotiate(pmc_session *s, void *ud, pmc_negotiation *n);

/* module.c helpers */
PyObject *pym_error(const char *msg);

/* gil.c: take the GIL on an engine thread, keeping the thread's state
 * between callbacks; give it back with pym_gil_give(the value returned). */
#define PYM_GIL_SAVE (-1)
#define PYM_GIL_HELD (-2)
int pym_gil_take(void);
void pym_gil_give(int g);

/* server.c */
PyObject *pym_main(PyObject *self, PyObject *args, PyObject *kw);
PyObject *pym_metrics_text(PyObject *self, PyObject *noargs);
PyObject *pym_stop(PyObject *self, PyObject *args);
PyObject *pym_opensocket(PyObject *self, PyObject *args);
int pym_server_init(PyObject *m);
/* A callback raised SystemExit/KeyboardInterrupt: stop main() (drain). */
void pym_exit_requested(void);
/* The same, from a coroutine: keep exc (stolen) for main() to raise. */
void pym_exit_with(PyObject *exc);

/* log.c: the core's log sink (any thread), the level to produce (from
 * the "milter" logger and setdbg), and the drain of lines queued by
 * threads without the GIL (call with the GIL). */
void pym_log_line(void *app, int level, uint64_t id, const char *qid,
                  const char *msg);
int pym_log_level(void);
void pym_log_flush(void);

#endif
