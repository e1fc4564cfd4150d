/* module.c - the `milter` module: constants, milter.error, settings and
 * callback registration.  Names, values, signatures and error messages are
 * pymilter's (spec/pymilter-api.md 1.2-1.4). */
#include "pym.h"

#include <string.h>

pym_globals pym;

PyObject *pym_error(const char *msg)
{
    PyErr_SetString(pym.error, msg);
    return NULL;
}

/* set_*_callback(f): store f (or clear with None), return the old one. */
static PyObject *set_slot(int slot, PyObject *f)
{
    PyObject *old = pym.cb[slot];

    if (f != Py_None && !PyCallable_Check(f)) {
        PyErr_SetString(PyExc_TypeError, "callback parameter must be callable");
        return NULL;
    }
    if (f == Py_None) {
        pym.cb[slot] = NULL;
    } else {
        Py_INCREF(f);
        pym.cb[slot] = f;
    }
    return old ? old : Py_NewRef(Py_None);
}

/* set_<name>_callback for each S row of PYM_EVENTS. */
#define PYM_SETTER_R(ev, name)
#define PYM_SETTER_S(ev, name)                                           \
    static PyObject *set_##name##_callback(PyObject *self, PyObject *f)  \
    {                                                                    \
        (void)self;                                                      \
        return set_slot(SLOT_##ev, f);                                   \
    }
#define PYM_SETTER(ev, name, how) PYM_SETTER_##how(ev, name)
PYM_EVENTS(PYM_SETTER)
#undef PYM_SETTER

static PyObject *m_register(PyObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"name", "unknown", "data", "negotiate", NULL};
    static const int slots[] = {SLOT_UNKNOWN, SLOT_DATA, SLOT_NEGOTIATE};
    const char *name;
    PyObject *cb[3] = {NULL, NULL, NULL}, *old;
    int i;

    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|OOO:register", kwlist,
                                     &name, &cb[0], &cb[1], &cb[2]))
        return NULL;
    for (i = 0; i < 3; i++) {
        if (cb[i] != NULL && cb[i] != Py_None && !PyCallable_Check(cb[i]))
            return PyErr_Format(PyExc_TypeError,
                                "%s parameter must be callable", kwlist[i + 1]);
    }
    for (i = 0; i < 3; i++) {
        if (cb[i] == NULL)
            continue; /* omitted: the slot keeps its callback */
        old = set_slot(slots[i], cb[i]);
        Py_XDECREF(old);
    }
    /* Copied: pymilter kept a pointer into the str (spec 6.11). */
    snprintf(pym.name, sizeof pym.name, "%s", name);
    Py_RETURN_NONE;
}

static PyObject *m_set_flags(PyObject *self, PyObject *args)
{
    (void)self;
    if (!PyArg_ParseTuple(args, "i:set_flags", &pym.flags))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *m_set_exception_policy(PyObject *self, PyObject *args)
{
    int p;

    (void)self;
    if (!PyArg_ParseTuple(args, "i:set_exception_policy", &p))
        return NULL;
    if (p != PMC_CONTINUE && p != PMC_REJECT && p != PMC_ACCEPT &&
        p != PMC_TEMPFAIL)
        return pym_error("invalid exception policy");
    pym.exception_policy = p;
    Py_RETURN_NONE;
}

static PyObject *m_setdbg(PyObject *self, PyObject *args)
{
    (void)self;
    if (!PyArg_ParseTuple(args, "i:setdbg", &pym.dbg))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *m_setbacklog(PyObject *self, PyObject *args)
{
    int n;

    (void)self;
    if (!PyArg_ParseTuple(args, "i:setbacklog", &n))
        return NULL;
    if (n <= 0)
        return pym_error("cannot set backlog");
    pym.backlog = n;
    Py_RETURN_NONE;
}

static PyObject *m_settimeout(PyObject *self, PyObject *args)
{
    (void)self;
    if (!PyArg_ParseTuple(args, "i:settimeout", &pym.timeout))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *m_setconn(PyObject *self, PyObject *args)
{
    PyObject *spec;

    (void)self;
    if (!PyArg_ParseTuple(args, "U:setconn", &spec))
        return NULL;
    if (PyUnicode_GET_LENGTH(spec) == 0)
        return pym_error("cannot set connection");
    Py_INCREF(spec);
    Py_XSETREF(pym.conn_spec, spec);
    Py_RETURN_NONE;
}

static PyObject *m_getdiag(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return Py_BuildValue("(kk)", pym.ctx_new, pym.ctx_del);
}

/* pymilter reports the run-time libmilter version; runmilter needs it to
 * be at least (1, 0, 1) to use negotiation, which libpmcore always has. */
static PyObject *m_getversion(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return Py_BuildValue("(iii)", 1, 0, 1);
}

/* _macro_name(name): the name as libpmcore compares macro names (without
 * braces), for Milter.testctx, which plays the MTA's part in Python. */
static PyObject *m_macro_name(PyObject *self, PyObject *arg)
{
    PyObject *b, *r;
    pmc_str n;

    (void)self;
    if (!PyUnicode_Check(arg))
        return PyErr_Format(PyExc_TypeError, "macro name must be str");
    b = PyUnicode_AsEncodedString(arg, "utf-8", "surrogateescape");
    if (b == NULL)
        return NULL;
    n.ptr = PyBytes_AS_STRING(b);
    n.len = (size_t)PyBytes_GET_SIZE(b);
    n = pmc_macro_name(n);
    r = pym_decode(n.ptr, n.len);
    Py_DECREF(b);
    return r;
}

/* _reply_lines(text): a REPLYCODE text as setreply() took it, (rcode,
 * xcode or None, *lines), read by libpmcore (pmc_reply_next_line) for
 * Milter.testctx, which plays the MTA's part in Python. */
static PyObject *m_reply_lines(PyObject *self, PyObject *arg)
{
    PyObject *lines, *t = NULL, *rc = NULL, *xc = NULL, *l;
    pmc_str r, rcode, xcode, text, last_x = {NULL, 0};
    size_t cur = 0;
    Py_ssize_t i, n;

    (void)self;
    if (!PyBytes_Check(arg))
        return PyErr_Format(PyExc_TypeError, "reply text must be bytes");
    r.ptr = PyBytes_AS_STRING(arg);
    r.len = (size_t)PyBytes_GET_SIZE(arg);
    if ((lines = PyList_New(0)) == NULL)
        return NULL;
    while (pmc_reply_next_line(r, &cur, &rcode, &xcode, &text)) {
        if (xcode.len > 0)
            last_x = xcode;
        l = pym_decode(text.ptr, text.len);
        if (l == NULL || PyList_Append(lines, l) < 0) {
            Py_XDECREF(l);
            goto out;
        }
        Py_DECREF(l);
    }
    /* The codes of the last line, as pymilter's callers read them. */
    rc = pym_decode(rcode.ptr, rcode.len);
    xc = last_x.ptr ? pym_decode(last_x.ptr, last_x.len) : Py_NewRef(Py_None);
    n = PyList_GET_SIZE(lines);
    if (rc == NULL || xc == NULL || (t = PyTuple_New(n + 2)) == NULL)
        goto out;
    PyTuple_SET_ITEM(t, 0, Py_NewRef(rc));
    PyTuple_SET_ITEM(t, 1, Py_NewRef(xc));
    for (i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i + 2, Py_NewRef(PyList_GET_ITEM(lines, i)));
out:
    Py_XDECREF(rc);
    Py_XDECREF(xc);
    Py_DECREF(lines);
    return t;
}

/* _split_message(data): ([(name, value), ...], body) of RFC 5322 bytes,
 * split by libpmcore (pmc_msg_split: docs/message-splitting.md) as an MTA
 * hands them to a filter; the body keeps its line ends.  For
 * Milter.testctx, which plays the MTA's part in Python. */
static PyObject *m_split_message(PyObject *self, PyObject *arg)
{
    PyObject *hdrs, *t, *r = NULL;
    pmc_msg_split sp;
    pmc_str name, value, body;
    int more = 1;

    (void)self;
    if (!PyBytes_Check(arg))
        return PyErr_Format(PyExc_TypeError, "message must be bytes");
    if ((hdrs = PyList_New(0)) == NULL)
        return NULL;
    pmc_msg_split_init(&sp, PyBytes_AS_STRING(arg),
                       (size_t)PyBytes_GET_SIZE(arg), 0);
    while (more) {
        if (pmc_msg_split_next(&sp, &name, &value, &more) != PMC_OK) {
            PyErr_NoMemory();
            goto out;
        }
        if (!more)
            break;
        t = Py_BuildValue("(y#y#)", name.ptr, (Py_ssize_t)name.len,
                          value.ptr, (Py_ssize_t)value.len);
        if (t == NULL || PyList_Append(hdrs, t) < 0) {
            Py_XDECREF(t);
            goto out;
        }
        Py_DECREF(t);
    }
    if (pmc_msg_split_rest(&sp, &body) != PMC_OK) {
        PyErr_NoMemory();
        goto out;
    }
    r = Py_BuildValue("(Oy#)", hdrs, body.ptr, (Py_ssize_t)body.len);
out:
    pmc_msg_split_free(&sp);
    Py_DECREF(hdrs);
    return r;
}

static PyMethodDef methods[] = {
    {"_reply_lines", m_reply_lines, METH_O, NULL},
    {"_split_message", m_split_message, METH_O, NULL},
    {"_macro_name", m_macro_name, METH_O, NULL},
    {"_call_decoded", pym_call_decoded, METH_VARARGS, NULL},
    {"_noreply", (PyCFunction)(void (*)(void))pym_noreply, METH_FASTCALL,
     NULL},
    {"_noreply_mark", pym_noreply_mark, METH_O, NULL},
    {"set_flags", m_set_flags, METH_VARARGS,
     "set_flags(flags): kept for compatibility; negotiation decides."},
#define PYM_SETDEF_R(ev, name)
#define PYM_SETDEF_S(ev, name)                                           \
    {"set_" #name "_callback", set_##name##_callback, METH_O, NULL},
#define PYM_SETDEF(ev, name, how) PYM_SETDEF_##how(ev, name)
    PYM_EVENTS(PYM_SETDEF)
#undef PYM_SETDEF
    {"set_exception_policy", m_set_exception_policy, METH_VARARGS,
     "set_exception_policy(code): CONTINUE, REJECT, ACCEPT or TEMPFAIL."},
    {"register", (PyCFunction)(void (*)(void))m_register,
     METH_VARARGS | METH_KEYWORDS,
     "register(name, unknown=None, data=None, negotiate=None)"},
    {"opensocket", pym_opensocket, METH_VARARGS,
     "opensocket(rmsock): listen now.  An existing unix socket is replaced\n"
     "only if no milter answers on it (rmsock or not)."},
    {"main", (PyCFunction)(void (*)(void))pym_main,
     METH_VARARGS | METH_KEYWORDS,
     "main(*, threads=0, workers=0): serve until stopped (stop(),\n"
     "SIGTERM, SIGHUP); Ctrl-C raises KeyboardInterrupt.  threads sizes\n"
     "the callback pool (0: twice the CPUs, 4 to 64); workers > 0 serves\n"
     "from that many prefork worker processes instead."},
    {"setdbg", m_setdbg, METH_VARARGS, "setdbg(level)"},
    {"setbacklog", m_setbacklog, METH_VARARGS, "setbacklog(n)"},
    {"settimeout", m_settimeout, METH_VARARGS, "settimeout(secs)"},
    {"setconn", m_setconn, METH_VARARGS, "setconn(spec)"},
    {"stop", pym_stop, METH_NOARGS, "stop(): make main() return."},
    {"_metrics_text", pym_metrics_text, METH_NOARGS,
     "_metrics_text() -> the running server's counters in Prometheus's "
     "text format, or None outside main()."},
    {"getdiag", m_getdiag, METH_NOARGS,
     "getdiag() -> (contexts created, contexts deleted)"},
    {"getversion", m_getversion, METH_NOARGS,
     "getversion() -> (1, 0, 1): the protocol level provided."},
    {NULL, NULL, 0, NULL}
};

static struct PyModuleDef moddef = {
    PyModuleDef_HEAD_INIT, "milter",
    "This module interfaces with Sendmail's libmilter functionality, "
    "allowing one to write email filters directly in Python.\n\n"
    "This implementation runs on libpmcore (no libmilter).",
    -1, methods, NULL, NULL, NULL, NULL
};

static const struct { const char *name; long value; } constants[] = {
    {"CONTINUE", 0}, {"REJECT", 1}, {"DISCARD", 2}, {"ACCEPT", 3},
    {"TEMPFAIL", 4}, {"NOREPLY", 7}, {"SKIP", 8}, {"ALL_OPTS", 10},
    {"SUCCESS", 0}, {"FAILURE", -1}, {"VERSION", 0x01000001},
    {"ADDHDRS", 0x1}, {"CHGBODY", 0x2}, {"MODBODY", 0x2}, {"ADDRCPT", 0x4},
    {"DELRCPT", 0x8}, {"CHGHDRS", 0x10}, {"QUARANTINE", 0x20},
    {"CHGFROM", 0x40}, {"ADDRCPT_PAR", 0x80}, {"SETSYMLIST", 0x100},
    {"V1_ACTS", 0xF}, {"V2_ACTS", 0x3F}, {"CURR_ACTS", 0x1FF},
    {"M_CONNECT", 0}, {"M_HELO", 1}, {"M_ENVFROM", 2}, {"M_ENVRCPT", 3},
    {"M_DATA", 4}, {"M_EOM", 5}, {"M_EOH", 6},
    {"P_NOCONNECT", 0x1}, {"P_NOHELO", 0x2}, {"P_NOMAIL", 0x4},
    {"P_NORCPT", 0x8}, {"P_NOBODY", 0x10}, {"P_NOHDRS", 0x20},
    {"P_NOEOH", 0x40}, {"P_NOUNKNOWN", 0x100}, {"P_NODATA", 0x200},
    {"P_NR_HDR", 0x80}, {"P_NR_CONN", 0x1000}, {"P_NR_HELO", 0x2000},
    {"P_NR_MAIL", 0x4000}, {"P_NR_RCPT", 0x8000}, {"P_NR_DATA", 0x10000},
    {"P_NR_UNKN", 0x20000}, {"P_NR_EOH", 0x40000}, {"P_NR_BODY", 0x80000},
    {"P_SKIP", 0x400}, {"P_RCPT_REJ", 0x800}, {"P_HDR_LEADSPC", 0x100000},
};

/* The one exported symbol.  -fvisibility=hidden hides everything else;
 * PyMODINIT_FUNC only marks itself visible from Python 3.9 on. */
__attribute__((visibility("default"))) PyMODINIT_FUNC PyInit_milter(void)
{
    PyObject *m;
    size_t i;

    if (PyType_Ready(&pym_ContextType) < 0 ||
        PyType_Ready(&pym_TestConnType) < 0)
        return NULL;
    m = PyModule_Create(&moddef);
    if (m == NULL)
        return NULL;
    for (i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(m, constants[i].name,
                                    constants[i].value) < 0)
            goto fail;
    if (pym.error == NULL) {
        pym.error = PyErr_NewException("milter.error", NULL, NULL);
        if (pym.error == NULL)
            goto fail;
        strcpy(pym.name, "pythonfilter");
        pym.flags = (int)PMC_ACT_ALL;
        pym.exception_policy = PMC_TEMPFAIL;
        pym.timeout = 7210;
    }
    Py_INCREF(pym.error);
    if (PyModule_AddObject(m, "error", pym.error) < 0) {
        Py_DECREF(pym.error);
        goto fail;
    }
    /* Private: the in-process engine Milter.testctx drives. */
    Py_INCREF(&pym_TestConnType);
    if (PyModule_AddObject(m, "_TestConn", (PyObject *)&pym_TestConnType) < 0) {
        Py_DECREF(&pym_TestConnType);
        goto fail;
    }
    if (pym_server_init(m) < 0 || pym_dispatch_init() < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
