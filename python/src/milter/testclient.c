/* testclient.c - the MTA side of milter._TestConn: each method makes one
 * libpmcore client call (pmc_client_*) and returns its result as
 * (code, text, mods, event); client failures raise milter.error with the
 * status name in .status. */
#include "testconn.h"

#include <string.h>

static PyObject *client_error(TestConnObject *self, pmc_status st)
{
    const pmc_error *e = pmc_client_error(self->cl);
    PyObject *exc = PyObject_CallFunction(
        pym.error, "s", e ? e->message : pmc_status_name(st));
    PyObject *name = PyUnicode_FromString(pmc_status_name(st));

    if (exc != NULL && name != NULL) {
        PyObject_SetAttrString(exc, "status", name);
        PyErr_SetObject(pym.error, exc);
    }
    Py_XDECREF(exc);
    Py_XDECREF(name);
    return NULL;
}

/* Over a socket (fd=) the client does only I/O, no Python: other threads
 * (other test clients) run meanwhile. */
#define CLIENT_CALL(self, st, expr)                                       \
    do {                                                                  \
        if ((self)->s == NULL) {                                          \
            Py_BEGIN_ALLOW_THREADS                                        \
            st = (expr);                                                  \
            Py_END_ALLOW_THREADS                                          \
        } else {                                                          \
            st = (expr);                                                  \
        }                                                                 \
    } while (0)

static PyObject *str_bytes(pmc_str s)
{
    return PyBytes_FromStringAndSize(s.ptr, (Py_ssize_t)s.len);
}

/* (code, text, mods, event): code '' when no reply; mods a list of
 * (code, index, a, b or None). */
static PyObject *result(TestConnObject *self, pmc_status st,
                        const pmc_result *r)
{
    PyObject *mods, *out;
    size_t i;

    self->busy = 0;
    if (st != PMC_OK)
        return pym_tc_after(self, client_error(self, st));
    mods = PyList_New(0);
    for (i = 0; mods != NULL && i < r->nmods; i++) {
        const pmc_reply *m = &r->mods[i];
        PyObject *t = Py_BuildValue(
            "(C k N N)", m->code, (unsigned long)m->index, str_bytes(m->a),
            m->has_b ? str_bytes(m->b) : Py_NewRef(Py_None));
        if (t == NULL || PyList_Append(mods, t) < 0)
            Py_CLEAR(mods);
        Py_XDECREF(t);
    }
    if (mods == NULL)
        return pym_tc_after(self, NULL);
    out = Py_BuildValue("(s# N N s)", r->code ? (const char *)&r->code : "",
                        (Py_ssize_t)(r->code ? 1 : 0), str_bytes(r->text),
                        mods, r->code ? pmc_event_name(r->event) : NULL);
    return pym_tc_after(self, out);
}

PyObject *TC_negotiate(TestConnObject *self, PyObject *noargs)
{
    pmc_result r;
    (void)noargs;
    if (pym_tc_enter(self, 1))
        return NULL;
    {
        pmc_status cst;
        CLIENT_CALL(self, cst, pmc_client_negotiate(self->cl, &r));
        return result(self, cst, &r);
    }
}

PyObject *TC_negotiated(TestConnObject *self, PyObject *noargs)
{
    uint32_t v = 0, a = 0, p = 0;
    (void)noargs;
    if (self->cl)
        pmc_client_negotiated(self->cl, &v, &a, &p);
    return Py_BuildValue("(kkk)", (unsigned long)v, (unsigned long)a,
                         (unsigned long)p);
}

PyObject *TC_symlist(TestConnObject *self, PyObject *args)
{
    int stage;
    const char *l;

    if (!PyArg_ParseTuple(args, "i", &stage))
        return NULL;
    l = self->cl ? pmc_client_symlist(self->cl, stage) : NULL;
    if (l == NULL)
        Py_RETURN_NONE;
    return PyBytes_FromString(l);
}

/* The byte strings of a sequence as pmc_str views, NULL-terminated, and
 * the sequence that keeps them alive (*seq, to release after the call).
 * NULL with an exception set when an item is not bytes. */
static pmc_str *bytes_views(PyObject *list, const char *what, PyObject **seq,
                            Py_ssize_t *n)
{
    pmc_str *v;
    Py_ssize_t i;

    if ((*seq = PySequence_Fast(list, what)) == NULL)
        return NULL;
    *n = PySequence_Fast_GET_SIZE(*seq);
    if ((v = PyMem_Calloc((size_t)*n + 1, sizeof *v)) == NULL) {
        Py_CLEAR(*seq);
        return (pmc_str *)PyErr_NoMemory();
    }
    for (i = 0; i < *n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(*seq, i);
        if (!PyBytes_Check(o)) {
            PyErr_SetString(PyExc_TypeError, what);
            PyMem_Free(v);
            Py_CLEAR(*seq);
            return NULL;
        }
        v[i].ptr = PyBytes_AS_STRING(o);
        v[i].len = (size_t)PyBytes_GET_SIZE(o);
    }
    return v;
}

PyObject *TC_set_macros(TestConnObject *self, PyObject *args)
{
    int stage;
    PyObject *pairs, *seq;
    pmc_str *v;
    Py_ssize_t n;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "iO", &stage, &pairs) || pym_tc_enter(self, 1))
        return NULL;
    self->busy = 0;
    v = bytes_views(pairs, "macro names and values must be bytes", &seq, &n);
    if (v == NULL)
        return NULL;
    st = pmc_client_set_macros(self->cl, stage, v, (size_t)(n / 2));
    PyMem_Free(v);
    Py_DECREF(seq);
    if (st != PMC_OK)
        return client_error(self, st);
    Py_RETURN_NONE;
}

/* connect(host, family, port, addr): host str, bytes (any bytes, to test
 * non-UTF-8 names) or None; family one of 'U' 'L' '4' '6'. */
PyObject *TC_connect(TestConnObject *self, PyObject *args)
{
    PyObject *hobj;
    const char *host = NULL, *addr;
    int fam;
    unsigned short port;
    pmc_result r;

    if (!PyArg_ParseTuple(args, "OCHz", &hobj, &fam, &port, &addr))
        return NULL;
    if (PyBytes_Check(hobj))
        host = PyBytes_AS_STRING(hobj);
    else if (hobj != Py_None && (host = PyUnicode_AsUTF8(hobj)) == NULL)
        return NULL;
    if (pym_tc_enter(self, 1))
        return NULL;
    {
        pmc_status cst;
        CLIENT_CALL(self, cst,
                    pmc_client_connect(self->cl, host, (char)fam, port,
                                       addr, &r));
        return result(self, cst, &r);
    }
}

/* An event whose one argument is a byte string (HELO, UNKNOWN). */
static PyObject *string_call(TestConnObject *self, PyObject *args,
                             pmc_status (*call)(pmc_client *, const char *,
                                                pmc_result *))
{
    const char *text;
    pmc_result r;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "y", &text) || pym_tc_enter(self, 1))
        return NULL;
    CLIENT_CALL(self, st, call(self->cl, text, &r));
    return result(self, st, &r);
}

PyObject *TC_helo(TestConnObject *self, PyObject *args)
{
    return string_call(self, args, pmc_client_helo);
}

static PyObject *argv_call(TestConnObject *self, PyObject *args, int rcpt)
{
    PyObject *list, *seq;
    pmc_str *v;
    Py_ssize_t n;
    pmc_result r;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "O", &list))
        return NULL;
    v = bytes_views(list, "arguments must be a sequence of bytes", &seq, &n);
    if (v == NULL)
        return NULL;
    if (pym_tc_enter(self, 1)) {
        PyMem_Free(v);
        Py_DECREF(seq);
        return NULL;
    }
    CLIENT_CALL(self, st, rcpt ? pmc_client_rcpt(self->cl, v, (size_t)n, &r)
                               : pmc_client_mail(self->cl, v, (size_t)n, &r));
    PyMem_Free(v);
    Py_DECREF(seq);
    return result(self, st, &r);
}

PyObject *TC_mail(TestConnObject *self, PyObject *args)
{
    return argv_call(self, args, 0);
}

PyObject *TC_rcpt(TestConnObject *self, PyObject *args)
{
    return argv_call(self, args, 1);
}

PyObject *TC_header(TestConnObject *self, PyObject *args)
{
    pmc_str n, v;
    Py_ssize_t nl, vl;
    pmc_result r;

    if (!PyArg_ParseTuple(args, "y#y#", &n.ptr, &nl, &v.ptr, &vl) ||
        pym_tc_enter(self, 1))
        return NULL;
    n.len = (size_t)nl;
    v.len = (size_t)vl;
    {
        pmc_status cst;
        CLIENT_CALL(self, cst, pmc_client_header(self->cl, n, v, &r));
        return result(self, cst, &r);
    }
}

PyObject *TC_body(TestConnObject *self, PyObject *args)
{
    Py_buffer b;
    pmc_result r;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "y*", &b))
        return NULL;
    if (pym_tc_enter(self, 1)) {
        PyBuffer_Release(&b);
        return NULL;
    }
    memset(&r, 0, sizeof r);
    CLIENT_CALL(self, st, pmc_client_body(self->cl, b.buf, (size_t)b.len, &r));
    PyBuffer_Release(&b);
    return result(self, st, &r);
}

PyObject *TC_unknown(TestConnObject *self, PyObject *args)
{
    return string_call(self, args, pmc_client_unknown);
}

#define NOARG(fn, call)                                                   \
    PyObject *fn(TestConnObject *self, PyObject *noargs)                  \
    {                                                                     \
        pmc_result r;                                                     \
        pmc_status cst;                                                   \
        (void)noargs;                                                     \
        if (pym_tc_enter(self, 1))                                               \
            return NULL;                                                  \
        CLIENT_CALL(self, cst, call(self->cl, &r));                       \
        return result(self, cst, &r);                                     \
    }
NOARG(TC_data, pmc_client_data)
NOARG(TC_eoh, pmc_client_eoh)
NOARG(TC_eom, pmc_client_eom)

#define NORESULT(fn, call)                                                \
    PyObject *fn(TestConnObject *self, PyObject *noargs)                  \
    {                                                                     \
        pmc_status st;                                                    \
        (void)noargs;                                                     \
        if (pym_tc_enter(self, 1))                                               \
            return NULL;                                                  \
        CLIENT_CALL(self, st, call(self->cl));                            \
        self->busy = 0;                                                   \
        if (st != PMC_OK)                                                 \
            return pym_tc_after(self, client_error(self, st));                   \
        return pym_tc_after(self, Py_NewRef(Py_None));                           \
    }
/* abort() returns None, as quit() does: whether ABORT went out is not
 * part of the Python API. */
static pmc_status abort_now(pmc_client *c)
{
    return pmc_client_abort(c, NULL);
}
NORESULT(TC_abort, abort_now)
NORESULT(TC_quit, pmc_client_quit)
NORESULT(TC_quit_nc, pmc_client_quit_nc)
