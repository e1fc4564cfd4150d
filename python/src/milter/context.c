/* context.c - milter.Context: one MTA connection's actions.
 *
 * Each method converts its arguments to bytes and calls the matching
 * pmc_session_* action; legality (stage, negotiated flags, reply syntax) is
 * decided by the core.  Failures raise milter.error with pymilter's fixed
 * message; the core's sentence is in the exception's 'reason' attribute. */
#include "pym.h"

#include <string.h>

/* Bytes of a str (UTF-8, surrogateescape so decoded arguments round-trip)
 * or of a bytes-like object.  'what' names the argument in TypeErrors. */
typedef struct { Py_buffer view; PyObject *tmp; int has_view; } arg_bytes;

static int get_bytes(PyObject *o, arg_bytes *b, pmc_str *out, const char *what)
{
    memset(b, 0, sizeof *b);
    if (PyUnicode_Check(o)) {
        b->tmp = PyUnicode_AsEncodedString(o, "utf-8", "surrogateescape");
        if (b->tmp == NULL)
            return -1;
        out->ptr = PyBytes_AS_STRING(b->tmp);
        out->len = (size_t)PyBytes_GET_SIZE(b->tmp);
        return 0;
    }
    if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.100s",
                     what, Py_TYPE(o)->tp_name);
        return -1;
    }
    b->has_view = 1;
    out->ptr = b->view.buf;
    out->len = (size_t)b->view.len;
    return 0;
}

static void put_bytes(arg_bytes *b)
{
    if (b->has_view)
        PyBuffer_Release(&b->view);
    Py_XDECREF(b->tmp);
}

/* A NUL-terminated copy for the char* parts of the API; NULL on error. */
static char *cstr(PyObject *o, const char *what)
{
    arg_bytes b;
    pmc_str s;
    char *r;

    if (get_bytes(o, &b, &s, what) < 0)
        return NULL;
    r = PyMem_Malloc(s.len + 1);
    if (r == NULL) {
        put_bytes(&b);
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(r, s.ptr, s.len);
    r[s.len] = 0;
    put_bytes(&b);
    return r;
}

/* Only the error of the call that just failed is reported: 'fresh' is 0
 * when the binding refused before reaching the core. */
static PyObject *fail_core(ContextObject *self, const char *msg, int fresh)
{
    const pmc_error *e = self->s && fresh ?
                         pmc_session_action_error(self->s) : NULL;
    PyObject *exc = PyObject_CallFunction(pym.error, "s", msg);

    if (exc == NULL)
        return NULL;
    if (e != NULL) {
        PyObject *r = PyUnicode_FromString(e->message);
        PyObject *n = PyUnicode_FromString(pmc_status_name(e->code));
        if (r != NULL)
            PyObject_SetAttrString(exc, "reason", r);
        if (n != NULL)
            PyObject_SetAttrString(exc, "status", n);
        Py_XDECREF(r);
        Py_XDECREF(n);
    }
    PyErr_SetObject(pym.error, exc);
    Py_DECREF(exc);
    return NULL;
}

static PyObject *fail(ContextObject *self, const char *msg)
{
    return fail_core(self, msg, 1);
}

/* pymilter's validity check, plus: the session is only touched while one of
 * its handlers runs Python (another thread may be inside the core for it
 * at any other time). */
static int check(ContextObject *self)
{
    if (self->s == NULL) {
        pym_error("bad context");
        return -1;
    }
    if (!self->in_cb) {
        pym_error("context used outside of its callbacks");
        return -1;
    }
    return 0;
}

ContextObject *pym_context_new(pmc_session *s)
{
    ContextObject *c = PyObject_GC_New(ContextObject, &pym_ContextType);

    if (c == NULL)
        return NULL;
    c->s = s;
    c->priv = Py_None;
    Py_INCREF(Py_None);
    c->in_cb = 0;
    c->symlists = 0;
    pym.ctx_new++;
    PyObject_GC_Track(c);
    return c;
}

void pym_context_detach(ContextObject *c)
{
    c->s = NULL;
}

static int Context_traverse(ContextObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->priv);
    return 0;
}

static int Context_clear(ContextObject *self)
{
    Py_CLEAR(self->priv);
    return 0;
}

static void Context_dealloc(ContextObject *self)
{
    PyObject_GC_UnTrack(self);
    Context_clear(self);
    pym.ctx_del++;
    PyObject_GC_Del(self);
}

static PyObject *Context_getsymval(ContextObject *self, PyObject *args)
{
    const char *name;
    Py_ssize_t n;
    pmc_str v;

    if (!PyArg_ParseTuple(args, "s#:getsymval", &name, &n) || check(self))
        return NULL;
    if (!pmc_session_getsymval(self->s, name, (size_t)n, &v))
        Py_RETURN_NONE;
    return pym_decode(v.ptr, v.len);
}

/* pymilter passed the text to libmilter unchanged, and Milter.Base makes
 * users double '%'; the core doubles every '%' itself, so "%%" is turned
 * back into "%" first to keep the wire bytes pymilter sent. */
static void undouble(char *t)
{
    char *w = t;

    for (; *t; t++) {
        *w++ = *t;
        if (t[0] == '%' && t[1] == '%')
            t++;
    }
    *w = 0;
}

/* Any number of lines reaches the core, which refuses more than 32 with
 * the same milter.error as other bad replies (pymilter: TypeError). */
static PyObject *Context_setreply(ContextObject *self, PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args), i, nl;
    char *rcode = NULL, *xcode = NULL, **lines = NULL;
    PyObject *r = NULL;
    pmc_status st;

    if (n < 2) {
        PyErr_Format(PyExc_TypeError,
                     "setreply() takes at least 2 arguments (%zd given)", n);
        return NULL;
    }
    if (check(self))
        return NULL;
    nl = n - 2;
    lines = PyMem_Calloc((size_t)nl + 1, sizeof *lines);
    if (lines == NULL)
        return PyErr_NoMemory();
    rcode = cstr(PyTuple_GET_ITEM(args, 0), "rcode");
    if (rcode == NULL)
        goto out;
    if (PyTuple_GET_ITEM(args, 1) != Py_None &&
        (xcode = cstr(PyTuple_GET_ITEM(args, 1), "xcode")) == NULL)
        goto out;
    for (i = 0; i < nl; i++) {
        lines[i] = cstr(PyTuple_GET_ITEM(args, i + 2), "reply line");
        if (lines[i] == NULL)
            goto out;
        undouble(lines[i]);
    }
    if (nl >= 2)
        /* libmilter's multi-line replies always carry an enhanced code:
         * without one, X.0.0 of the reply's class. */
        st = pmc_session_setmlreply(self->s, rcode,
                                    xcode ? xcode
                                    : rcode[0] == '4' ? "4.0.0" : "5.0.0",
                                    (const char *const *)lines, (size_t)nl);
    else
        st = pmc_session_setreply(self->s, rcode, xcode, lines[0]);
    if (st != PMC_OK)
        fail(self, "cannot set reply");
    else
        r = Py_NewRef(Py_None);
out:
    PyMem_Free(rcode);
    PyMem_Free(xcode);
    for (i = 0; i < nl; i++)
        PyMem_Free(lines[i]);
    PyMem_Free(lines);
    return r;
}

/* Shared shape of the (name, value) actions. */
static PyObject *Context_addheader(ContextObject *self, PyObject *args)
{
    PyObject *f, *v;
    int idx = -1;
    arg_bytes bf, bv;
    pmc_str sf, sv;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "OO|i:addheader", &f, &v, &idx) ||
        check(self))
        return NULL;
    if (get_bytes(f, &bf, &sf, "field") < 0)
        return NULL;
    if (get_bytes(v, &bv, &sv, "value") < 0) {
        put_bytes(&bf);
        return NULL;
    }
    st = idx < 0 ? pmc_session_addheader(self->s, sf, sv)
                 : pmc_session_insheader(self->s, (uint32_t)idx, sf, sv);
    put_bytes(&bf);
    put_bytes(&bv);
    if (st != PMC_OK)
        return fail(self, "cannot add header");
    Py_RETURN_NONE;
}

static PyObject *Context_chgheader(ContextObject *self, PyObject *args)
{
    PyObject *f, *v;
    int idx;
    arg_bytes bf, bv;
    pmc_str sf, sv = {"", 0};
    pmc_status st;

    if (!PyArg_ParseTuple(args, "OiO:chgheader", &f, &idx, &v) || check(self))
        return NULL;
    if (idx < 0)
        return fail_core(self, "cannot change header", 0);
    if (get_bytes(f, &bf, &sf, "field") < 0)
        return NULL;
    memset(&bv, 0, sizeof bv);
    if (v != Py_None && get_bytes(v, &bv, &sv, "value") < 0) {
        put_bytes(&bf);
        return NULL;
    }
    st = pmc_session_chgheader(self->s, sf, (uint32_t)idx, sv);
    put_bytes(&bf);
    put_bytes(&bv);
    if (st != PMC_OK)
        return fail(self, "cannot change header");
    Py_RETURN_NONE;
}

/* addrcpt, chgfrom: (address, params=None). */
static PyObject *addr_params(ContextObject *self, PyObject *args,
                             const char *fmt, int rcpt, const char *msg)
{
    PyObject *a, *p = Py_None;
    arg_bytes ba, bp;
    pmc_str sa, sp;
    pmc_status st;

    if (!PyArg_ParseTuple(args, fmt, &a, &p) || check(self))
        return NULL;
    if (get_bytes(a, &ba, &sa, "address") < 0)
        return NULL;
    memset(&bp, 0, sizeof bp);
    if (p != Py_None && get_bytes(p, &bp, &sp, "params") < 0) {
        put_bytes(&ba);
        return NULL;
    }
    if (rcpt)
        st = p == Py_None ? pmc_session_addrcpt(self->s, sa)
                          : pmc_session_addrcpt_par(self->s, sa, &sp);
    else
        st = pmc_session_chgfrom(self->s, sa, p == Py_None ? NULL : &sp);
    put_bytes(&ba);
    put_bytes(&bp);
    if (st != PMC_OK)
        return fail(self, msg);
    Py_RETURN_NONE;
}

static PyObject *Context_addrcpt(ContextObject *self, PyObject *args)
{
    return addr_params(self, args, "O|O:addrcpt", 1, "cannot add recipient");
}

static PyObject *Context_chgfrom(ContextObject *self, PyObject *args)
{
    return addr_params(self, args, "O|O:chgfrom", 0, "cannot change sender");
}

/* delrcpt, quarantine: one string. */
static PyObject *one_str(ContextObject *self, PyObject *args, const char *fmt,
                         pmc_status (*fn)(pmc_session *, pmc_str),
                         const char *msg)
{
    PyObject *a;
    arg_bytes b;
    pmc_str s;
    pmc_status st;

    if (!PyArg_ParseTuple(args, fmt, &a) || check(self))
        return NULL;
    if (get_bytes(a, &b, &s, "argument") < 0)
        return NULL;
    st = fn(self->s, s);
    put_bytes(&b);
    if (st != PMC_OK)
        return fail(self, msg);
    Py_RETURN_NONE;
}

static PyObject *Context_delrcpt(ContextObject *self, PyObject *args)
{
    return one_str(self, args, "O:delrcpt", pmc_session_delrcpt,
                   "cannot delete recipient");
}

static PyObject *Context_quarantine(ContextObject *self, PyObject *args)
{
    return one_str(self, args, "O:quarantine", pmc_session_quarantine,
                   "cannot quarantine message");
}

static PyObject *Context_replacebody(ContextObject *self, PyObject *args)
{
    PyObject *a;
    arg_bytes b;
    pmc_str s;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "O:replacebody", &a) || check(self))
        return NULL;
    if (get_bytes(a, &b, &s, "body") < 0)
        return NULL;
    st = pmc_session_replacebody(self->s, s.ptr, s.len);
    put_bytes(&b);
    if (st != PMC_OK)
        return fail(self, "cannot replace message body");
    Py_RETURN_NONE;
}

static PyObject *Context_progress(ContextObject *self, PyObject *noargs)
{
    (void)noargs;
    if (check(self))
        return NULL;
    if (pmc_session_progress(self->s) != PMC_OK)
        return fail(self, "cannot notify progress");
    Py_RETURN_NONE;
}

/* str or bytes (Milter.Base passes bytes, spec 6.7).  Only in negotiate:
 * elsewhere the core refuses (WRONG_STAGE) and this raises, where
 * libmilter returned success without effect. */
static PyObject *Context_setsymlist(ContextObject *self, PyObject *args)
{
    int stage;
    PyObject *m;
    char *list;
    pmc_status st;

    if (!PyArg_ParseTuple(args, "iO:setsymlist", &stage, &m) || check(self))
        return NULL;
    if (stage < 0 || stage >= PMC_STAGE_COUNT ||
        (self->symlists & (1u << stage)))
        return fail_core(self, "cannot set macro list", 0);
    list = cstr(m, "macros");
    if (list == NULL)
        return NULL;
    st = pmc_session_setsymlist(self->s, stage, list);
    PyMem_Free(list);
    if (st != PMC_OK)
        return fail(self, "cannot set macro list");
    self->symlists |= 1u << stage;
    Py_RETURN_NONE;
}

static PyObject *Context_setpriv(ContextObject *self, PyObject *obj)
{
    PyObject *old = self->priv;

    Py_INCREF(obj);
    self->priv = obj;
    return old ? old : Py_NewRef(Py_None); /* the reference moves out */
}

static PyObject *Context_getpriv(ContextObject *self, PyObject *noargs)
{
    (void)noargs;
    return Py_NewRef(self->priv ? self->priv : Py_None);
}

static PyMethodDef Context_methods[] = {
    {"getsymval", (PyCFunction)Context_getsymval, METH_VARARGS,
     "getsymval(name) -> str or None: a macro's value."},
    {"setreply", (PyCFunction)Context_setreply, METH_VARARGS,
     "setreply(rcode, xcode, *lines): reply text for REJECT/TEMPFAIL."},
    {"addheader", (PyCFunction)Context_addheader, METH_VARARGS,
     "addheader(field, value, idx=-1): add (idx<0) or insert a header."},
    {"chgheader", (PyCFunction)Context_chgheader, METH_VARARGS,
     "chgheader(field, idx, value): change a header; None deletes."},
    {"addrcpt", (PyCFunction)Context_addrcpt, METH_VARARGS,
     "addrcpt(rcpt, params=None): add a recipient."},
    {"delrcpt", (PyCFunction)Context_delrcpt, METH_VARARGS,
     "delrcpt(rcpt): delete a recipient."},
    {"replacebody", (PyCFunction)Context_replacebody, METH_VARARGS,
     "replacebody(data): append to the replacement body."},
    {"chgfrom", (PyCFunction)Context_chgfrom, METH_VARARGS,
     "chgfrom(sender, params=None): change the envelope sender."},
    {"quarantine", (PyCFunction)Context_quarantine, METH_VARARGS,
     "quarantine(reason): quarantine the message."},
    {"progress", (PyCFunction)Context_progress, METH_NOARGS,
     "progress(): ask the MTA to keep waiting."},
    {"setsymlist", (PyCFunction)Context_setsymlist, METH_VARARGS,
     "setsymlist(stage, macros): request macros (negotiate only)."},
    {"setpriv", (PyCFunction)Context_setpriv, METH_O,
     "setpriv(obj) -> previous object."},
    {"getpriv", (PyCFunction)Context_getpriv, METH_NOARGS,
     "getpriv() -> the object given to setpriv (initially None)."},
    {NULL, NULL, 0, NULL}
};

PyTypeObject pym_ContextType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "milter.Context",
    .tp_basicsize = sizeof(ContextObject),
    .tp_dealloc = (destructor)Context_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The milter context of one MTA connection.",
    .tp_traverse = (traverseproc)Context_traverse,
    .tp_clear = (inquiry)Context_clear,
    .tp_methods = Context_methods,
};
