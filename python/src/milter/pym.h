/* pym.h - shared declarations of the `milter` extension module.
 *
 * The module is glue only: it turns libpmcore events into Python calls and
 * Python return values into verdicts.  Everything that knows the protocol is
 * in libpmcore (pmcore.h).  Files:
 *   module.c     module object, constants, global settings, functions
 *   context.c    the milter.Context type (actions on the current session)
 *   callbacks.c  the pmc_handlers table: argument conversion and results
 *   negotiate.c  the negotiate handler (pymilter's opts-list semantics)
 *   testconn.c   _TestConn: a session driven in-process by the pmc_client
 *   testclient.c _TestConn's MTA-side calls (testconn.h is their header)
 *   server.c     main()/stop()/opensocket() on the libpmcore server
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

/* Callback slots, in pymilter's order; the names appear in messages. */
enum {
    SLOT_CONNECT, SLOT_HELO, SLOT_ENVFROM, SLOT_ENVRCPT, SLOT_HEADER,
    SLOT_EOH, SLOT_BODY, SLOT_EOM, SLOT_ABORT, SLOT_CLOSE, SLOT_UNKNOWN,
    SLOT_DATA, SLOT_NEGOTIATE, SLOT_COUNT
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
} pym_conn;

typedef struct ContextObject {
    PyObject_HEAD
    pmc_session *s;    /* NULL once the connection closed ("dead") */
    PyObject *priv;    /* setpriv/getpriv; starts as None */
    int in_cb;         /* a handler of this connection runs Python now */
    unsigned symlists; /* stages given a macro list in this negotiation */
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

/* callbacks.c */
extern const pmc_handlers pym_handlers;
PyObject *pym_decode(const char *p, size_t n);
int pym_call(pym_conn *c, pmc_session *s, int slot, PyObject *args,
             int *verdict);
ContextObject *pym_conn_ctx(pym_conn *c, pmc_session *s);
int pym_policy_verdict(pmc_session *s);

/* negotiate.c */
int pym_negotiate(pmc_session *s, void *ud, pmc_negotiation *n);

/* module.c helpers */
PyObject *pym_error(const char *msg);

/* gil.c: PyGILState_Ensure that keeps an engine thread's thread state
 * between callbacks (release with PyGILState_Release as usual). */
PyGILState_STATE pym_gil_ensure(void);

/* server.c */
PyObject *pym_main(PyObject *self, PyObject *args, PyObject *kw);
PyObject *pym_stop(PyObject *self, PyObject *args);
PyObject *pym_opensocket(PyObject *self, PyObject *args);
int pym_server_init(PyObject *m);
/* A callback raised SystemExit/KeyboardInterrupt: stop main() (drain). */
void pym_exit_requested(void);

#endif
