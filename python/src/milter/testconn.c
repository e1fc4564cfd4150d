/* testconn.c - milter._TestConn, a private type for Milter.testctx and the
 * test suite: one real pmc_session with the binding's handlers, driven in
 * the same thread by a pmc_client over pmc_transport_session (client mode),
 * or fed raw bytes (raw mode, for the language-neutral vectors).  Every byte
 * goes through the same wire and session code as in production. */
#include "testconn.h"

#include <string.h>

static int parse_callbacks(TestConnObject *self, PyObject *d)
{
    int i;

    for (i = 0; i < SLOT_COUNT; i++) {
        PyObject *f = PyDict_GetItemString(d, pym_slot_names[i]);
        if (f == NULL || f == Py_None)
            continue;
        if (!PyCallable_Check(f)) {
            PyErr_Format(PyExc_TypeError, "%s callback must be callable",
                         pym_slot_names[i]);
            return -1;
        }
        Py_INCREF(f);
        self->cbs[i] = f;
    }
    return 0;
}

/* handlers: an iterable of event names that get a handler; the others are
 * NULL so the session derives NO* bits (vectors' "handlers=" line). */
static int parse_handlers(TestConnObject *self, PyObject *names)
{
    PyObject *it, *o;
    int i;

    memset(&self->handlers, 0, sizeof self->handlers);
    it = PyObject_GetIter(names);
    if (it == NULL)
        return -1;
    while ((o = PyIter_Next(it)) != NULL) {
        const char *n = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
        for (i = 0; n != NULL && i < SLOT_COUNT; i++)
            if (strcmp(n, pym_slot_names[i]) == 0)
                break;
        Py_DECREF(o);
        if (n == NULL || i == SLOT_COUNT) {
            Py_DECREF(it);
            PyErr_SetString(PyExc_ValueError, "unknown handler name");
            return -1;
        }
        switch (i) {
#define PYM_TAKE(ev, name, how)                                      \
        case SLOT_##ev: self->handlers.name = pym_handlers.name; break;
        PYM_EVENTS(PYM_TAKE)
#undef PYM_TAKE
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static int parse_config(pmc_config *cfg, PyObject *d, PyObject **keep)
{
    PyObject *v, *sl;
    Py_ssize_t pos = 0;
    PyObject *k;

    pmc_config_init(cfg);
    if (d == NULL || d == Py_None)
        return 0;
#define U32(key, field)                                                  \
    if ((v = PyDict_GetItemString(d, key)) != NULL) {                    \
        cfg->field = (uint32_t)PyLong_AsUnsignedLongMask(v);             \
        if (PyErr_Occurred())                                            \
            return -1;                                                   \
    }
    U32("version", version)
    U32("actions", actions)
    U32("protocol", protocol)
    if ((v = PyDict_GetItemString(d, "max_packet")) != NULL)
        cfg->max_packet = PyLong_AsSize_t(v);
    if ((v = PyDict_GetItemString(d, "skip_any_event")) != NULL)
        cfg->skip_any_event = PyObject_IsTrue(v);
    if (PyErr_Occurred())
        return -1;
    /* symlist: {stage: bytes}; the bytes stay alive in *keep until the
     * session has copied them. */
    sl = PyDict_GetItemString(d, "symlist");
    if (sl == NULL)
        return 0;
    *keep = PyList_New(0);
    if (*keep == NULL)
        return -1;
    while (PyDict_Next(sl, &pos, &k, &v)) {
        long st = PyLong_AsLong(k);
        if (st < 0 || st >= PMC_STAGE_COUNT || !PyBytes_Check(v)) {
            PyErr_SetString(PyExc_ValueError, "bad symlist entry");
            return -1;
        }
        PyList_Append(*keep, v);
        cfg->symlist[st] = PyBytes_AS_STRING(v);
    }
    return 0;
}

/* The in-process transport's wait hook: a callback returned a coroutine
 * (the session is pending); run it here and answer. */
static void tc_wait(pmc_session *s, void *arg)
{
    TestConnObject *self = arg;

    (void)pym_aio_run_pending(&self->conn, s);
}

static int TestConn_init(TestConnObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"callbacks", "session", "handlers", "client",
                             "personality", "actions", "protocol",
                             "version", "raw_negotiate", "fd", "timeout_ms",
                             NULL};
    PyObject *cbs = NULL, *sess = NULL, *handlers = NULL, *keep = NULL;
    int client = 1, pers = PMC_MTA_POSTFIX, raw = 0, fd = -1, tmo = 10000;
    unsigned long act = PMC_ACT_ALL, proto = PMC_P_ALL_V6, ver = 6;
    pmc_config cfg;
    pmc_client_config ccfg;

    if (self->s != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_TestConn already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOOpikkkpii:_TestConn",
                                     kwlist, &cbs, &sess, &handlers, &client,
                                     &pers, &act, &proto, &ver, &raw, &fd,
                                     &tmo))
        return -1;
    if (self->cl != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_TestConn already initialised");
        return -1;
    }
    if (fd >= 0) {
        /* Client only, over a connected socket to a running milter: the
         * descriptor stays the caller's. */
        pmc_client_config_init(&ccfg, pers ? PMC_MTA_SENDMAIL
                                           : PMC_MTA_POSTFIX);
        ccfg.actions = (uint32_t)act;
        ccfg.protocol = (uint32_t)proto;
        ccfg.version = (uint32_t)ver;
        pmc_transport_fd(&self->tr, &self->fdst, fd, tmo);
        self->cl = pmc_client_new(&ccfg, &self->tr);
        if (self->cl == NULL) {
            PyErr_SetString(PyExc_ValueError, "cannot create client");
            return -1;
        }
        return 0;
    }
    if (cbs != NULL && cbs != Py_None) {
        if (!PyDict_Check(cbs)) {
            PyErr_SetString(PyExc_TypeError, "callbacks must be a dict");
            return -1;
        }
        if (parse_callbacks(self, cbs) < 0)
            return -1;
        self->conn.cb = self->cbs;
    }
    if (handlers != NULL && handlers != Py_None) {
        if (parse_handlers(self, handlers) < 0)
            return -1;
    } else {
        self->handlers = pym_handlers;
    }
    if (parse_config(&cfg, sess, &keep) < 0) {
        Py_XDECREF(keep);
        return -1;
    }
    self->conn.owner = (PyObject *)self;
    self->conn.raw_negotiate = raw;
    self->s = pmc_session_new(&self->handlers, &self->conn, &cfg);
    Py_XDECREF(keep);
    if (self->s == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (client) {
        pmc_client_config_init(&ccfg, pers ? PMC_MTA_SENDMAIL
                                           : PMC_MTA_POSTFIX);
        ccfg.actions = (uint32_t)act;
        ccfg.protocol = (uint32_t)proto;
        ccfg.version = (uint32_t)ver;
        if (pmc_transport_session(&self->tr, self->s, tc_wait, self) !=
            PMC_OK) {
            PyErr_NoMemory();
            return -1;
        }
        self->cl = pmc_client_new(&ccfg, &self->tr);
        if (self->cl == NULL)
            self->tr.close(self->tr.ctx); /* releases the hook's state */
        if (self->cl == NULL) {
            PyErr_SetString(PyExc_ValueError, "cannot create client");
            return -1;
        }
    }
    return 0;
}

/* Called after every engine call: a SystemExit or KeyboardInterrupt raised
 * inside a callback is re-raised here, in the caller's frame. */
PyObject *pym_tc_after(TestConnObject *self, PyObject *ok)
{
    PyObject *e = self->conn.pending_exc;

    if (e == NULL)
        return ok;
    self->conn.pending_exc = NULL;
    Py_XDECREF(ok);
    pym_restore_exc(e);
    return NULL;
}

int pym_tc_enter(TestConnObject *self, int need_client)
{
    if (self->s == NULL && (self->cl == NULL || !need_client)) {
        PyErr_SetString(PyExc_RuntimeError, "_TestConn not initialised");
        return -1;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError,
                        "_TestConn used from inside one of its callbacks");
        return -1;
    }
    if (need_client && self->cl == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_TestConn has no client");
        return -1;
    }
    self->busy = 1;
    return 0;
}

/* Raw mode. */
static PyObject *TC_feed(TestConnObject *self, PyObject *args)
{
    Py_buffer b;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "y*", &b))
        return NULL;
    if (pym_tc_enter(self, 0)) {
        PyBuffer_Release(&b);
        return NULL;
    }
    st = pmc_session_feed(self->s, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    self->busy = 0;
    return pym_tc_after(self, PyUnicode_FromString(pmc_status_name(st)));
}

static PyObject *TC_eof(TestConnObject *self, PyObject *noargs)
{
    pmc_status st;
    (void)noargs;
    if (pym_tc_enter(self, 0))
        return NULL;
    st = pmc_session_eof(self->s);
    self->busy = 0;
    return pym_tc_after(self, PyUnicode_FromString(pmc_status_name(st)));
}

/* Raw mode: run the coroutine a pending callback returned and answer with
 * its result; the resume's status name ('PENDING' when nothing was). */
static PyObject *TC_run_pending(TestConnObject *self, PyObject *noargs)
{
    pmc_status st;
    (void)noargs;
    if (pym_tc_enter(self, 0))
        return NULL;
    st = pym_aio_run_pending(&self->conn, self->s);
    self->busy = 0;
    return pym_tc_after(self, PyUnicode_FromString(pmc_status_name(st)));
}

static PyObject *TC_pending(TestConnObject *self, PyObject *noargs)
{
    (void)noargs;
    return PyBool_FromLong(self->s != NULL && pmc_session_is_pending(self->s));
}

static PyObject *TC_output(TestConnObject *self, PyObject *noargs)
{
    size_t n = 0;
    const uint8_t *p;
    PyObject *b;
    (void)noargs;
    if (self->s == NULL)
        return PyBytes_FromStringAndSize("", 0);
    p = pmc_session_output(self->s, &n);
    b = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    if (b != NULL)
        pmc_session_consume(self->s, n);
    return b;
}

static PyObject *TC_error(TestConnObject *self, PyObject *noargs)
{
    const pmc_error *e = self->s ? pmc_session_error(self->s) : NULL;
    (void)noargs;
    if (e == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(sKs)", pmc_status_name(e->code),
                         (unsigned long long)e->offset, e->message);
}

static PyObject *TC_closed(TestConnObject *self, PyObject *noargs)
{
    (void)noargs;
    return PyBool_FromLong(self->s ? pmc_session_is_closed(self->s) : 1);
}

static PyObject *TC_context(TestConnObject *self, PyObject *noargs)
{
    (void)noargs;
    return Py_NewRef(self->conn.ctx ? (PyObject *)self->conn.ctx : Py_None);
}

/* The session's negotiated values (what the filter sent in 'O'). */
static PyObject *TC_session_negotiated(TestConnObject *self, PyObject *noargs)
{
    (void)noargs;
    if (self->s == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(kkk)",
                         (unsigned long)pmc_session_version(self->s),
                         (unsigned long)pmc_session_actions(self->s),
                         (unsigned long)pmc_session_protocol(self->s));
}

static int TestConn_traverse(TestConnObject *self, visitproc visit, void *arg)
{
    int i;
    for (i = 0; i < SLOT_COUNT; i++)
        Py_VISIT(self->cbs[i]);
    Py_VISIT(self->conn.ctx);
    Py_VISIT(self->conn.pending_exc);
    Py_VISIT(self->conn.coro);
    /* conn.loop is not visited: it never refers back to us, and a cycle
     * collection must not clear it before dealloc closes it. */
    return 0;
}

static int TestConn_clear(TestConnObject *self)
{
    int i;
    for (i = 0; i < SLOT_COUNT; i++)
        Py_CLEAR(self->cbs[i]);
    Py_CLEAR(self->conn.pending_exc);
    Py_CLEAR(self->conn.coro);
    return 0;
}

static void TestConn_dealloc(TestConnObject *self)
{
    PyObject_GC_UnTrack(self);
    /* Ending the session runs abort/close handlers (Python) once. */
    if (self->cl != NULL)
        pmc_client_free(self->cl);
    else if (self->s != NULL)
        (void)pmc_session_eof(self->s);
    pmc_session_free(self->s);
    if (self->conn.ctx != NULL) {
        pym_context_detach(self->conn.ctx);
        Py_CLEAR(self->conn.ctx);
    }
    if (self->conn.pending_exc != NULL) {
        PyErr_WriteUnraisable(self->conn.pending_exc);
        Py_CLEAR(self->conn.pending_exc);
    }
    TestConn_clear(self);
    if (self->conn.loop != NULL) {
        PyObject *r = PyObject_CallMethod(self->conn.loop, "close", NULL);
        if (r == NULL)
            PyErr_WriteUnraisable(self->conn.loop);
        Py_XDECREF(r);
        Py_CLEAR(self->conn.loop);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef TC_methods[] = {
    {"negotiate", (PyCFunction)TC_negotiate, METH_NOARGS, NULL},
    {"negotiated", (PyCFunction)TC_negotiated, METH_NOARGS, NULL},
    {"session_negotiated", (PyCFunction)TC_session_negotiated, METH_NOARGS,
     NULL},
    {"symlist", (PyCFunction)TC_symlist, METH_VARARGS, NULL},
    {"set_macros", (PyCFunction)TC_set_macros, METH_VARARGS, NULL},
    {"connect", (PyCFunction)TC_connect, METH_VARARGS, NULL},
    {"helo", (PyCFunction)TC_helo, METH_VARARGS, NULL},
    {"mail", (PyCFunction)TC_mail, METH_VARARGS, NULL},
    {"rcpt", (PyCFunction)TC_rcpt, METH_VARARGS, NULL},
    {"data", (PyCFunction)TC_data, METH_NOARGS, NULL},
    {"header", (PyCFunction)TC_header, METH_VARARGS, NULL},
    {"eoh", (PyCFunction)TC_eoh, METH_NOARGS, NULL},
    {"body", (PyCFunction)TC_body, METH_VARARGS, NULL},
    {"eom", (PyCFunction)TC_eom, METH_NOARGS, NULL},
    {"abort", (PyCFunction)TC_abort, METH_NOARGS, NULL},
    {"unknown", (PyCFunction)TC_unknown, METH_VARARGS, NULL},
    {"quit", (PyCFunction)TC_quit, METH_NOARGS, NULL},
    {"quit_nc", (PyCFunction)TC_quit_nc, METH_NOARGS, NULL},
    {"feed", (PyCFunction)TC_feed, METH_VARARGS, NULL},
    {"eof", (PyCFunction)TC_eof, METH_NOARGS, NULL},
    {"run_pending", (PyCFunction)TC_run_pending, METH_NOARGS, NULL},
    {"pending", (PyCFunction)TC_pending, METH_NOARGS, NULL},
    {"output", (PyCFunction)TC_output, METH_NOARGS, NULL},
    {"error", (PyCFunction)TC_error, METH_NOARGS, NULL},
    {"closed", (PyCFunction)TC_closed, METH_NOARGS, NULL},
    {"context", (PyCFunction)TC_context, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}
};

PyTypeObject pym_TestConnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "milter._TestConn",
    .tp_basicsize = sizeof(TestConnObject),
    .tp_dealloc = (destructor)TestConn_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Private: an in-process libpmcore session and client.",
    .tp_traverse = (traverseproc)TestConn_traverse,
    .tp_clear = (inquiry)TestConn_clear,
    .tp_methods = TC_methods,
    .tp_init = (initproc)TestConn_init,
    .tp_new = PyType_GenericNew,
};
