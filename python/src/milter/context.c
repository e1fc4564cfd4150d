/* context.c - milter.Context: one MTA connection's actions.
 *
 * Each method converts its arguments to bytes and calls the matching
 * pmc_session_* action; legality (stage, negotiated flags, reply syntax) is
 * decided by the core.  Failures raise milter.error with pymilter's fixed
 * message; the core's sentence is in the exception's 'reason' attribute. */
#include "pym.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

/* Bytes of a str (UTF-8, surrogateescape so decoded arguments round-trip)
 * or of a bytes-like object.  'what' names the argument in TypeErrors. */
typedef struct { Py_buffer view; PyObject *tmp; int has_view; } arg_bytes;

/* o (a str) is ASCII: its buffer is its UTF-8. */
static int ascii(PyObject *o)
{
#if PY_VERSION_HEX < 0x030C0000
    if (!PyUnicode_IS_READY(o))
        return 0;
#endif
    return PyUnicode_IS_ASCII(o);
}

/* A tuple of a METH_FASTCALL method's arguments, for PyArg_ParseTuple
 * where the short ways do not apply; NULL on error. */
static PyObject *tuple_of(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *t = PyTuple_New(nargs);
    Py_ssize_t i;

    for (i = 0; t != NULL && i < nargs; i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(args[i]));
    return t;
}

static int get_bytes(PyObject *o, arg_bytes *b, pmc_str *out, const char *what)
{
    memset(b, 0, sizeof *b);
    if (PyUnicode_Check(o)) {
        /* ASCII text is its own UTF-8: the str's buffer, no copy (the
         * caller holds o for as long as out is used). */
        if (ascii(o)) {
            out->ptr = PyUnicode_DATA(o);
            out->len = (size_t)PyUnicode_GET_LENGTH(o);
            return 0;
        }
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

/* One action on the session, as plain C so it can run on the
 * connection's thread while the caller waits without the GIL (aio.c). */
enum { A_SYMVAL, A_REPLY, A_MLREPLY, A_ADDHDR, A_INSHDR, A_CHGHDR,
       A_ADDRCPT, A_ADDRCPT_PAR, A_CHGFROM, A_DELRCPT, A_QUARANTINE,
       A_BODY, A_PROGRESS, A_SYMLIST };

typedef struct act {
    int kind;
    pmc_str a, b;
    int has_b;
    uint32_t idx;
    const char *rcode, *xcode, *text, *list;
    const char *const *lines;
    size_t nl;
    int stage;
    /* results */
    pmc_status st;
    pmc_error err;       /* the core's sentence when st != PMC_OK */
    int found;           /* getsymval */
    char *val;           /* getsymval: a copy (short[] or PyMem_Raw) */
    size_t val_len;
    char short_val[64];
} act;

/* getsymval copies the value: the session's buffer may change once the
 * connection's thread goes on. */
static pmc_status run_symval(pmc_session *s, act *x)
{
    pmc_str v;

    x->found = pmc_session_getsymval(s, x->a.ptr, x->a.len, &v);
    if (x->found) {
        x->val = v.len < sizeof x->short_val ? x->short_val
                                              : PyMem_RawMalloc(v.len + 1);
        if (x->val == NULL)
            return PMC_ERR_NOMEM;
        memcpy(x->val, v.ptr, v.len);
        x->val_len = v.len;
    }
    return PMC_OK;
}

#define RUN(fn, call) \
    static pmc_status fn(pmc_session *s, act *x) { return call; }
RUN(run_reply, pmc_session_setreply(s, x->rcode, x->xcode, x->text))
RUN(run_mlreply,
    pmc_session_setmlreply(s, x->rcode, x->xcode, x->lines, x->nl))
RUN(run_addhdr, pmc_session_addheader(s, x->a, x->b))
RUN(run_inshdr, pmc_session_insheader(s, x->idx, x->a, x->b))
RUN(run_chghdr, pmc_session_chgheader(s, x->a, x->idx, x->b))
RUN(run_addrcpt, pmc_session_addrcpt(s, x->a))
RUN(run_addrcpt_par, pmc_session_addrcpt_par(s, x->a, &x->b))
RUN(run_chgfrom, pmc_session_chgfrom(s, x->a, x->has_b ? &x->b : NULL))
RUN(run_delrcpt, pmc_session_delrcpt(s, x->a))
RUN(run_quarantine, pmc_session_quarantine(s, x->a))
RUN(run_body, pmc_session_replacebody(s, x->a.ptr, x->a.len))
RUN(run_progress, ((void)x, pmc_session_progress(s)))
RUN(run_symlist, pmc_session_setsymlist(s, x->stage, x->list))
#undef RUN

/* The one table of context actions: the core's call of each kind and
 * pymilter's fixed message when it fails. */
static const struct {
    pmc_status (*run)(pmc_session *s, act *x);
    const char *fail;
} actions[] = {
    [A_SYMVAL] = {run_symval, NULL},
    [A_REPLY] = {run_reply, "cannot set reply"},
    [A_MLREPLY] = {run_mlreply, "cannot set reply"},
    [A_ADDHDR] = {run_addhdr, "cannot add header"},
    [A_INSHDR] = {run_inshdr, "cannot add header"},
    [A_CHGHDR] = {run_chghdr, "cannot change header"},
    [A_ADDRCPT] = {run_addrcpt, "cannot add recipient"},
    [A_ADDRCPT_PAR] = {run_addrcpt_par, "cannot add recipient"},
    [A_CHGFROM] = {run_chgfrom, "cannot change sender"},
    [A_DELRCPT] = {run_delrcpt, "cannot delete recipient"},
    [A_QUARANTINE] = {run_quarantine, "cannot quarantine message"},
    [A_BODY] = {run_body, "cannot replace message body"},
    [A_PROGRESS] = {run_progress, "cannot notify progress"},
    [A_SYMLIST] = {run_symlist, "cannot set macro list"},
};

static void act_run(pmc_session *s, void *p)
{
    act *x = p;
    const pmc_error *e;

    x->st = actions[x->kind].run(s, x);
    if (x->kind != A_SYMVAL && x->st != PMC_OK &&
        (e = pmc_session_action_error(s)) != NULL)
        x->err = *e;
}

/* milter.error(msg) with the core's sentence and status name when the
 * core refused (e NULL: the binding refused before reaching it). */
static PyObject *fail_err(const char *msg, const pmc_error *e)
{
    PyObject *exc = PyObject_CallFunction(pym.error, "s", msg);

    if (exc == NULL)
        return NULL;
    if (e != NULL && e->code != PMC_OK) {
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

/* Run x on the session; None, or milter.error if the core refused. */
static PyObject *perform(ContextObject *self, act *x)
{
    if (pym_ctx_run(self, act_run, x) < 0)
        return NULL;
    if (x->st != PMC_OK)
        return fail_err(actions[x->kind].fail, &x->err);
    Py_RETURN_NONE;
}

/* pymilter's validity check, plus: the session is only touched while one of
 * its handlers runs Python or while a coroutine of it is pending (another
 * thread may be inside the core for it at any other time).  The final word
 * is pym_ctx_run's; this only keeps pymilter's order of errors (a bad
 * context before a bad argument). */
static int check(ContextObject *self)
{
    if (self->s == NULL) {
        pym_error("bad context");
        return -1;
    }
    if (!self->in_cb && !self->pending)
        return pym_ctx_run(self, act_run, NULL);
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
    c->pending = 0;
    c->srv = NULL;
    c->conn_id = 0;
    c->fut = NULL;
    c->tail = NULL;
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
    Py_VISIT(self->fut);
    Py_VISIT(self->tail);
    return 0;
}

static int Context_clear(ContextObject *self)
{
    Py_CLEAR(self->priv);
    Py_CLEAR(self->fut);
    Py_CLEAR(self->tail);
    return 0;
}

static void Context_dealloc(ContextObject *self)
{
    PyObject_GC_UnTrack(self);
    Context_clear(self);
    pym.ctx_del++;
    PyObject_GC_Del(self);
}

/* Called for a macro or two per message by many milters: an ASCII str
 * name (the usual) is read without a tuple or a format parse; anything
 * else goes through "s#" as before. */
static PyObject *Context_getsymval(ContextObject *self, PyObject *const *args,
                                   Py_ssize_t nargs)
{
    const char *name = NULL;
    Py_ssize_t n = 0;
    act x;
    PyObject *r;

    if (nargs == 1 && PyUnicode_Check(args[0]) && ascii(args[0])) {
        name = PyUnicode_DATA(args[0]);
        n = PyUnicode_GET_LENGTH(args[0]);
    } else {
        PyObject *t = tuple_of(args, nargs);
        int ok = t != NULL &&
                 PyArg_ParseTuple(t, "s#:getsymval", &name, &n);
        Py_XDECREF(t); /* name points into args[0] or its UTF-8 copy */
        if (!ok)
            return NULL;
    }
    if (check(self))
        return NULL;
    memset(&x, 0, offsetof(act, short_val));
    x.kind = A_SYMVAL;
    x.a.ptr = name;
    x.a.len = (size_t)n;
    if (pym_ctx_run(self, act_run, &x) < 0)
        return NULL;
    if (x.st != PMC_OK)
        return PyErr_NoMemory();
    if (!x.found)
        Py_RETURN_NONE;
    r = pym_decode(x.val, x.val_len);
    if (x.val != x.short_val)
        PyMem_RawFree(x.val);
    return r;
}

/* Any number of lines reaches the core, which refuses more than 32 with
 * the same milter.error as other bad replies (pymilter: TypeError).  The
 * text goes as the user wrote it: the core keeps a doubled '%' and
 * supplies X.0.0 to multi-line replies, which is what pymilter sent. */
static PyObject *Context_setreply(ContextObject *self, PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args), i, nl;
    char *rcode = NULL, *xcode = NULL, **lines = NULL;
    PyObject *r = NULL;
    act x;

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
    }
    memset(&x, 0, sizeof x);
    x.kind = nl >= 2 ? A_MLREPLY : A_REPLY;
    x.rcode = rcode;
    x.xcode = xcode;
    x.text = lines[0];
    x.lines = (const char *const *)lines;
    x.nl = (size_t)nl;
    r = perform(self, &x);
out:
    PyMem_Free(rcode);
    PyMem_Free(xcode);
    for (i = 0; i < nl; i++)
        PyMem_Free(lines[i]);
    PyMem_Free(lines);
    return r;
}

/* The index of addheader(field, value, idx) when the arguments are the
 * usual ones (two, or a third that is an int in range): 0, else -1 (the
 * general parse then decides, with its messages). */
static int plain_idx(PyObject *const *args, Py_ssize_t nargs, int *idx)
{
    long l;
    int over;

    if (nargs == 2)
        return 0;
    if (nargs != 3 || !PyLong_CheckExact(args[2]))
        return -1;
    l = PyLong_AsLongAndOverflow(args[2], &over);
    if (over || l < INT_MIN || l > INT_MAX || (l == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    *idx = (int)l;
    return 0;
}

/* Called once a message by most milters: the arguments come as an array
 * (no tuple, no format string to read) when they are the usual ones. */
static PyObject *Context_addheader(ContextObject *self,
                                   PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *f, *v, *r;
    int idx = -1;
    arg_bytes bf, bv;
    act x;

    if (plain_idx(args, nargs, &idx) == 0) {
        f = args[0];
        v = args[1];
    } else {
        PyObject *t = tuple_of(args, nargs);
        int ok = t != NULL &&
                 PyArg_ParseTuple(t, "OO|i:addheader", &f, &v, &idx);
        Py_XDECREF(t); /* f and v are args[0] and args[1]: still held */
        if (!ok)
            return NULL;
    }
    if (check(self))
        return NULL;
    memset(&x, 0, sizeof x);
    if (get_bytes(f, &bf, &x.a, "field") < 0)
        return NULL;
    if (get_bytes(v, &bv, &x.b, "value") < 0) {
        put_bytes(&bf);
        return NULL;
    }
    x.kind = idx < 0 ? A_ADDHDR : A_INSHDR;
    x.idx = (uint32_t)idx;
    r = perform(self, &x);
    put_bytes(&bf);
    put_bytes(&bv);
    return r;
}

static PyObject *Context_chgheader(ContextObject *self, PyObject *args)
{
    PyObject *f, *v, *r;
    int idx;
    arg_bytes bf, bv;
    act x;

    if (!PyArg_ParseTuple(args, "OiO:chgheader", &f, &idx, &v) || check(self))
        return NULL;
    if (idx < 0)
        return fail_err(actions[A_CHGHDR].fail, NULL);
    memset(&x, 0, sizeof x);
    x.b.ptr = "";
    if (get_bytes(f, &bf, &x.a, "field") < 0)
        return NULL;
    memset(&bv, 0, sizeof bv);
    if (v != Py_None && get_bytes(v, &bv, &x.b, "value") < 0) {
        put_bytes(&bf);
        return NULL;
    }
    x.kind = A_CHGHDR;
    x.idx = (uint32_t)idx;
    r = perform(self, &x);
    put_bytes(&bf);
    put_bytes(&bv);
    return r;
}

/* addrcpt, chgfrom: (address, params=None). */
static PyObject *addr_params(ContextObject *self, PyObject *args,
                             const char *fmt, int rcpt)
{
    PyObject *a, *p = Py_None, *r;
    arg_bytes ba, bp;
    act x;

    if (!PyArg_ParseTuple(args, fmt, &a, &p) || check(self))
        return NULL;
    memset(&x, 0, sizeof x);
    if (get_bytes(a, &ba, &x.a, "address") < 0)
        return NULL;
    memset(&bp, 0, sizeof bp);
    if (p != Py_None && get_bytes(p, &bp, &x.b, "params") < 0) {
        put_bytes(&ba);
        return NULL;
    }
    x.has_b = p != Py_None;
    x.kind = rcpt ? (x.has_b ? A_ADDRCPT_PAR : A_ADDRCPT) : A_CHGFROM;
    r = perform(self, &x);
    put_bytes(&ba);
    put_bytes(&bp);
    return r;
}

static PyObject *Context_addrcpt(ContextObject *self, PyObject *args)
{
    return addr_params(self, args, "O|O:addrcpt", 1);
}

static PyObject *Context_chgfrom(ContextObject *self, PyObject *args)
{
    return addr_params(self, args, "O|O:chgfrom", 0);
}

/* delrcpt, quarantine, replacebody: one string. */
static PyObject *one_str(ContextObject *self, PyObject *args, const char *fmt,
                         int kind, const char *what)
{
    PyObject *a, *r;
    arg_bytes b;
    act x;

    if (!PyArg_ParseTuple(args, fmt, &a) || check(self))
        return NULL;
    memset(&x, 0, sizeof x);
    if (get_bytes(a, &b, &x.a, what) < 0)
        return NULL;
    x.kind = kind;
    r = perform(self, &x);
    put_bytes(&b);
    return r;
}

static PyObject *Context_delrcpt(ContextObject *self, PyObject *args)
{
    return one_str(self, args, "O:delrcpt", A_DELRCPT, "argument");
}

static PyObject *Context_quarantine(ContextObject *self, PyObject *args)
{
    return one_str(self, args, "O:quarantine", A_QUARANTINE, "argument");
}

static PyObject *Context_replacebody(ContextObject *self, PyObject *args)
{
    return one_str(self, args, "O:replacebody", A_BODY, "body");
}

static PyObject *Context_progress(ContextObject *self, PyObject *noargs)
{
    act x;

    (void)noargs;
    if (check(self))
        return NULL;
    memset(&x, 0, sizeof x);
    x.kind = A_PROGRESS;
    return perform(self, &x);
}

/* str or bytes (Milter.Base passes bytes, spec 6.7).  Only in negotiate:
 * elsewhere the core refuses (WRONG_STAGE) and this raises, where
 * libmilter returned success without effect. */
static PyObject *Context_setsymlist(ContextObject *self, PyObject *args)
{
    int stage;
    PyObject *m, *r;
    char *list;
    act x;

    if (!PyArg_ParseTuple(args, "iO:setsymlist", &stage, &m) || check(self))
        return NULL;
    if (stage < 0 || stage >= PMC_STAGE_COUNT ||
        (self->symlists & (1u << stage)))
        return fail_err(actions[A_SYMLIST].fail, NULL);
    list = cstr(m, "macros");
    if (list == NULL)
        return NULL;
    memset(&x, 0, sizeof x);
    x.kind = A_SYMLIST;
    x.stage = stage;
    x.list = list;
    r = perform(self, &x);
    PyMem_Free(list);
    if (r != NULL)
        self->symlists |= 1u << stage;
    return r;
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
    {"getsymval", (PyCFunction)(void (*)(void))Context_getsymval,
     METH_FASTCALL,
     "getsymval(name) -> str or None: a macro's value."},
    {"setreply", (PyCFunction)Context_setreply, METH_VARARGS,
     "setreply(rcode, xcode, *lines): reply text for REJECT/TEMPFAIL."},
    {"addheader", (PyCFunction)(void (*)(void))Context_addheader,
     METH_FASTCALL,
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
