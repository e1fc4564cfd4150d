/* dispatch.c - the Milter package's standard callbacks, run from C, and
 * the decoding of Milter.Base's *_bytes methods, which lives only here.
 *
 * Milter.runmilter registers, for each event, a small Python function that
 * finds the connection's Milter object (ctx.getpriv()) and calls its
 * method; header, envfrom and envrcpt go through Base's *_bytes methods,
 * which apply the method's @decode strategy.  That chain cost about half
 * the Python work of a message (callgrind: some 5,000 instructions per
 * header).  Each of those functions carries a `_milter_std` attribute,
 * (method, Base's *_bytes function or None, the method *_bytes calls or
 * None): when the registered callable has it and the context's priv is
 * set, the method is called here directly.  Base's *_bytes methods are
 * milter._call_decoded, so the @decode strategy is applied by one function
 * (call_decoded) whichever way a callback comes.  Anything unusual (no
 * priv, an overridden or replaced *_bytes method) takes the Python path.
 *
 * The @noreply rule (Milter.noreply) lives here too, as milter._noreply:
 * the decorator's wrapper calls it, and when the method to call is that
 * wrapper, its body is run here (see call_noreply), which spares a Python
 * frame and its lookups per event (callgrind: about 2,500 instructions a
 * header). */
#include "pym.h"

#include <string.h>

#if PY_VERSION_HEX < 0x03090000
/* 3.8 has vectorcall only under a private name: call with a tuple. */
static PyObject *vectorcall38(PyObject *f, PyObject *const *args,
                              size_t nargsf, PyObject *kw)
{
    Py_ssize_t i, n = (Py_ssize_t)(nargsf & ~PY_VECTORCALL_ARGUMENTS_OFFSET);
    PyObject *t = PyTuple_New(n), *res;

    (void)kw;
    if (t == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        PyTuple_SET_ITEM(t, i, Py_NewRef(args[i]));
    res = PyObject_Call(f, t, NULL);
    Py_DECREF(t);
    return res;
}
#define PyObject_Vectorcall vectorcall38
#endif

typedef struct {
    PyObject *fn;       /* a weak reference to the callable this entry
                           describes: a strong one would keep a closure's
                           objects (contexts) alive after it was replaced */
    PyObject *name;     /* the method to call on priv; NULL: not ours */
    PyObject *bytes_fn; /* Base's *_bytes function, or NULL */
    PyObject *target;   /* the method that one calls ('header'), or NULL */
} std_entry;

/* One entry per slot, for the last callable seen there (the GIL guards
 * it): the attribute is read once per registration, not per call. */
static std_entry cache[SLOT_COUNT];
static PyObject *s_std, *s_strategy, *s_default, *s_bytes, *s_header,
    *s_header_bytes, *s_envfrom, *s_envrcpt, *s_dict, *s_get, *s_decode,
    *s_utf8, *s_protocol, *s_noreply, *s_then;

/* What milter._noreply_mark learnt of @noreply's wrapper: its code (every
 * wrapper shares it, so comparing codes recognises one) and where its
 * closure keeps what the body uses. */
static struct {
    PyObject *code;
    PyObject *globals; /* Milter's namespace: NOREPLY and _then */
    PyObject *cont;    /* milter.CONTINUE */
    Py_ssize_t func, nr, name, check;
} nrw;

int pym_dispatch_init(void)
{
    static const struct {
        PyObject **p;
        const char *text;
    } names[] = {
        {&s_std, "_milter_std"},         {&s_strategy, "error_strategy"},
        {&s_default, "surrogateescape"}, {&s_bytes, "bytes"},
        {&s_header, "header"},           {&s_header_bytes, "header_bytes"},
        {&s_envfrom, "envfrom"},         {&s_envrcpt, "envrcpt"},
        {&s_dict, "__dict__"},           {&s_get, "get"},
        {&s_decode, "decode"},           {&s_utf8, "utf-8"},
        {&s_protocol, "_protocol"},      {&s_noreply, "NOREPLY"},
        {&s_then, "_then"},
    };

    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if ((*names[i].p = PyUnicode_InternFromString(names[i].text)) == NULL)
            return -1;
    return (nrw.cont = PyLong_FromLong(PMC_CONTINUE)) != NULL ? 0 : -1;
}

static int lookup_attr(PyObject *o, PyObject *name, PyObject **res)
{
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttr(o, name, res);
#else
    *res = PyObject_GetAttr(o, name);
    if (*res != NULL)
        return 1;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return -1;
    PyErr_Clear();
    return 0;
#endif
}

/* The entry for cb, read from its _milter_std attribute when cb changed.
 * NULL when cb is not one of the package's functions. */
static int same(PyObject *ref, PyObject *cb)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *o = NULL;
    int r = ref != NULL && PyWeakref_GetRef(ref, &o) > 0 && o == cb;

    Py_XDECREF(o);
    return r;
#else
    return ref != NULL && PyWeakref_GET_OBJECT(ref) == cb;
#endif
}

static const std_entry *entry_for(int slot, PyObject *cb)
{
    std_entry *e = &cache[slot];
    PyObject *a = NULL;

    if (same(e->fn, cb))
        return e->name ? e : NULL;
    Py_CLEAR(e->fn);
    Py_CLEAR(e->name);
    Py_CLEAR(e->bytes_fn);
    Py_CLEAR(e->target);
    if (!PyType_SUPPORTS_WEAKREFS(Py_TYPE(cb)))
        return NULL; /* not a function: not one of ours */
    e->fn = PyWeakref_NewRef(cb, NULL);
    if (e->fn == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (lookup_attr(cb, s_std, &a) < 0) {
        PyErr_Clear();
        return NULL;
    }
    if (a != NULL && PyTuple_Check(a) && PyTuple_GET_SIZE(a) == 3 &&
        PyUnicode_Check(PyTuple_GET_ITEM(a, 0))) {
        PyObject *b = PyTuple_GET_ITEM(a, 1), *t = PyTuple_GET_ITEM(a, 2);
        e->name = Py_NewRef(PyTuple_GET_ITEM(a, 0));
        PyUnicode_InternInPlace(&e->name);
        if (b != Py_None && PyUnicode_Check(t)) {
            e->bytes_fn = Py_NewRef(b);
            e->target = Py_NewRef(t);
            PyUnicode_InternInPlace(&e->target);
        }
    }
    Py_XDECREF(a);
    return e->name ? e : NULL;
}

/* The @decode strategy of meth: error_strategy in the __dict__ of its
 * function (of the method's function for a bound method), else the
 * default.  New reference, or NULL with an exception set. */
static PyObject *strategy(PyObject *meth)
{
    PyObject *func = meth, *dict, *v;
    int r;

    if (Py_TYPE(meth) == &PyMethod_Type)
        func = PyMethod_GET_FUNCTION(meth);
    if (PyFunction_Check(func)) {
        /* Most methods have no attributes: no lookup in an empty dict
         * (some 90 instructions a call). */
        dict = ((PyFunctionObject *)func)->func_dict;
        v = dict != NULL && PyDict_GET_SIZE(dict) != 0
                ? PyDict_GetItemWithError(dict, s_strategy) : NULL;
        if (v == NULL && PyErr_Occurred())
            return NULL;
        return Py_NewRef(v != NULL ? v : s_default);
    }
    /* Any other callable: its __dict__, if it has one, read with get(). */
    r = lookup_attr(func, s_dict, &dict);
    if (r <= 0)
        return r < 0 ? NULL : Py_NewRef(s_default);
    v = PyObject_CallMethodObjArgs(dict, s_get, s_strategy, s_default, NULL);
    Py_DECREF(dict);
    return v;
}

/* A header value straight from the engine's buffer. */
static PyObject *raw_bytes(const pym_raw *raw)
{
    return PyBytes_FromStringAndSize(raw->p, raw->n);
}

/* The error handler's name when st is a str the decoder takes as it is;
 * NULL when only bytes.decode can tell what becomes of it. */
static const char *plain_errors(PyObject *st)
{
    const char *errors;
    Py_ssize_t len;

    if (!PyUnicode_CheckExact(st))
        return NULL;
    errors = PyUnicode_AsUTF8AndSize(st, &len);
    if (errors == NULL || strlen(errors) != (size_t)len) {
        PyErr_Clear();
        return NULL;
    }
    return errors;
}

/* What strategy st asks for: 1 for 'bytes' (keep them), else 0 with
 * plain_errors(st) in *errors, NULL there too for a handler not registered
 * (yet: one registered later is still bytes.decode's, which is slower but
 * the same); -1 on error.  The last exact str judged is kept with its
 * verdict (it cannot change, and a method's strategy is the same object
 * from call to call), which spares a comparison and a UTF-8 view per
 * call. */
static int judge(PyObject *st, const char **errors)
{
    static PyObject *last;
    static const char *last_errors;
    static int last_keep;
    int keep;

    if (st == last) {
        *errors = last_errors;
        return last_keep;
    }
    keep = PyObject_RichCompareBool(st, s_bytes, Py_EQ);
    if (keep < 0)
        return -1;
    *errors = keep ? NULL : plain_errors(st);
    if (*errors != NULL) {
        /* An unknown handler is bytes.decode's to report, with a frame. */
        PyObject *h = PyCodec_LookupError(*errors);
        if (h == NULL)
            *errors = NULL;
        Py_XDECREF(h);
        PyErr_Clear();
    }
    if (PyUnicode_CheckExact(st)) {
        Py_XSETREF(last, Py_NewRef(st));
        last_errors = *errors;
        last_keep = keep;
    }
    return keep;
}

/* b.decode('utf-8', st), or b itself when that raises UnicodeDecodeError
 * (the 'strict' strategy lets the bytes through); errors is
 * plain_errors(st).  raw, when given, stands for b, which is made only if
 * needed. */
static PyObject *decode_arg(PyObject *b, const pym_raw *raw, PyObject *st,
                            const char *errors)
{
    PyObject *s, *own = NULL;

    if (errors != NULL && raw != NULL) {
        s = PyUnicode_DecodeUTF8(raw->p, raw->n, errors);
    } else {
        if (raw != NULL && (b = own = raw_bytes(raw)) == NULL)
            return NULL;
        if (errors != NULL && PyBytes_CheckExact(b))
            s = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(b),
                                     PyBytes_GET_SIZE(b), errors);
        else
            s = PyObject_CallMethodObjArgs(b, s_decode, s_utf8, st, NULL);
    }
    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        s = own != NULL ? Py_NewRef(own)
                        : raw != NULL ? raw_bytes(raw) : Py_NewRef(b);
    }
    Py_XDECREF(own);
    return s;
}

/* obj.name: 1 with the function in *m when obj.name is a function bound
 * to obj (the class's, or one set on the instance as a bound method), 0
 * with the attribute itself, -1 on error.  Where the interpreter declares
 * _PyObject_GetMethod (3.9-3.12), the class's function comes without a
 * bound method made and dropped on each call (what a method call in
 * Python does; callgrind: some 250 instructions a call, two calls per
 * header); elsewhere through the attribute. */
static int get_method(PyObject *obj, PyObject *name, PyObject **m)
{
    PyObject *a = NULL;

#if PY_VERSION_HEX >= 0x03090000 && PY_VERSION_HEX < 0x030D0000
    if (_PyObject_GetMethod(obj, name, &a)) {
        *m = a;
        return 1;
    }
#else
    a = PyObject_GetAttr(obj, name);
#endif
    *m = a;
    if (a == NULL)
        return -1;
    if (Py_TYPE(a) == &PyMethod_Type && PyMethod_GET_SELF(a) == obj) {
        *m = Py_NewRef(PyMethod_GET_FUNCTION(a));
        Py_DECREF(a);
        return 1;
    }
    return 0;
}

static PyObject *call_noreply(PyObject *w, PyObject *obj, PyObject **args,
                              Py_ssize_t n);

/* m(*args) for what get_method gave: unbound ones get obj first.  args
 * has a spare slot before args[0].  Inline: a call of its own cost some
 * 20 instructions an event. */
static inline __attribute__((always_inline)) PyObject *
call_got(int unbound, PyObject *m, PyObject *obj, PyObject **args,
         Py_ssize_t n)
{
    if (unbound) {
        PyObject *save = args[-1], *res;
        if (PyFunction_Check(m) && PyFunction_GET_CODE(m) == nrw.code)
            return call_noreply(m, obj, args, n);
        args[-1] = obj;
        res = PyObject_Vectorcall(m, args - 1, (size_t)n + 1, NULL);
        args[-1] = save;
        return res;
    }
    return PyObject_Vectorcall(m, args, (size_t)n, NULL);
}

/* self.name(*args), as Python's method call does it.  Through get_method
 * where that makes no bound method (not 3.13 on), so that a @noreply
 * wrapper found there is run by call_noreply. */
static PyObject *call_method(PyObject *name, PyObject *self,
                             PyObject *const *args, Py_ssize_t n)
{
    PyObject *small[9], **stack = small, *res;
#if PY_VERSION_HEX < 0x030D0000
    PyObject *m;
    int unbound;
#endif

    if (n + 1 > 9 && (stack = PyMem_Malloc((size_t)(n + 1) *
                                           sizeof *stack)) == NULL)
        return PyErr_NoMemory();
    stack[0] = self;
    if (n > 0)
        memcpy(stack + 1, args, (size_t)n * sizeof *stack);
#if PY_VERSION_HEX < 0x030D0000
    res = NULL;
    if ((unbound = get_method(self, name, &m)) >= 0) {
        res = call_got(unbound, m, self, stack + 1, n);
        Py_DECREF(m);
    }
#else
    res = PyObject_VectorcallMethod(name, stack, (size_t)n + 1, NULL);
#endif
    if (stack != small)
        PyMem_Free(stack);
    return res;
}

/* The @noreply rule: when the event's NR bit was negotiated
 * (self._protocol & nr; the engine answers for an MTA that lacks NR), the
 * method must have returned CONTINUE and the verdict is Milter.NOREPLY,
 * looked up now (Milter.test rebinds it); otherwise rc stands.  name is
 * the method's, for the error. */
static PyObject *noreply_rule(PyObject *self, PyObject *rc, PyObject *nr,
                              PyObject *name)
{
    PyObject *p, *v;
    int on;
    long a, b;

    if (nrw.globals == NULL)
        return PyErr_Format(PyExc_RuntimeError,
                            "@noreply: Milter is not imported");
    if ((p = PyObject_GetAttr(self, s_protocol)) == NULL)
        return NULL;
    /* Ints as they always are here without PyNumber_And's new object. */
    if (PyLong_CheckExact(p) && PyLong_CheckExact(nr) &&
        ((a = PyLong_AsLong(p)) != -1 || !PyErr_Occurred()) &&
        ((b = PyLong_AsLong(nr)) != -1 || !PyErr_Occurred())) {
        on = (a & b) != 0;
    } else {
        PyErr_Clear();
        v = PyNumber_And(p, nr);
        on = v != NULL ? PyObject_IsTrue(v) : -1;
        Py_XDECREF(v);
    }
    Py_DECREF(p);
    if (on <= 0)
        return on < 0 ? NULL : Py_NewRef(rc);
    /* Milter's CONTINUE is milter's, which nothing rebinds. */
    if ((on = PyObject_RichCompareBool(rc, nrw.cont, Py_NE)) != 0) {
        if (on > 0)
            PyErr_Format(PyExc_RuntimeError,
                         "%S return code must be CONTINUE with @noreply",
                         name);
        return NULL;
    }
    if ((v = PyDict_GetItemWithError(nrw.globals, s_noreply)) == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_AttributeError,
                            "module 'Milter' has no attribute 'NOREPLY'");
        return NULL;
    }
    return Py_NewRef(v);
}

/* milter._noreply(self, rc, nr, name): noreply_rule, for the wrapper. */
PyObject *pym_noreply(PyObject *mod, PyObject *const *args, Py_ssize_t n)
{
    (void)mod;
    if (n != 4)
        return PyErr_Format(PyExc_TypeError,
                            "_noreply(self, rc, nr, name)");
    return noreply_rule(args[0], args[1], args[2], args[3]);
}

/* The index of name in names, or -1. */
static Py_ssize_t index_of(PyObject *names, const char *name)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *o = PyTuple_GET_ITEM(names, i);
        if (PyUnicode_Check(o) &&
            PyUnicode_CompareWithASCIIString(o, name) == 0)
            return i;
    }
    return -1;
}

/* milter._noreply_mark(wrapper): learn @noreply's wrapper, from one of
 * them (Milter.noreply passes each one it makes; a reloaded Milter's new
 * code replaces the old, whose wrappers then run as Python), and the
 * namespace the rule reads.  A wrapper whose closure lacks a name the
 * body uses is left to Python. */
PyObject *pym_noreply_mark(PyObject *mod, PyObject *w)
{
    PyObject *code, *free;
    Py_ssize_t f, r, nm, c;

    (void)mod;
    if (!PyFunction_Check(w))
        return PyErr_Format(PyExc_TypeError, "_noreply_mark(function)");
    code = PyFunction_GET_CODE(w);
    if (code == nrw.code)
        Py_RETURN_NONE;
    if ((free = PyObject_GetAttrString(code, "co_freevars")) == NULL)
        return NULL;
    if (!PyTuple_Check(free)) {
        Py_DECREF(free);
        return PyErr_Format(PyExc_TypeError, "co_freevars is not a tuple");
    }
    f = index_of(free, "func");
    r = index_of(free, "nr");
    nm = index_of(free, "name");
    c = index_of(free, "check");
    Py_DECREF(free);
    Py_XSETREF(nrw.globals, Py_NewRef(PyFunction_GET_GLOBALS(w)));
    Py_CLEAR(nrw.code);
    if (f < 0 || r < 0 || nm < 0 || c < 0)
        Py_RETURN_NONE;
    nrw.code = Py_NewRef(code);
    nrw.func = f;
    nrw.nr = r;
    nrw.name = nm;
    nrw.check = c;
    Py_RETURN_NONE;
}

/* A new reference to what cell i of w's closure holds, or NULL with a
 * NameError, as Python's for a free variable with no value. */
static PyObject *free_var(PyObject *w, Py_ssize_t i)
{
    PyObject *cells = PyFunction_GET_CLOSURE(w);
    PyObject *v = PyCell_GET(PyTuple_GET_ITEM(cells, i));

    if (v == NULL)
        PyErr_SetString(PyExc_NameError,
                        "@noreply's wrapper: a free variable has no value");
    Py_XINCREF(v);
    return v;
}

/* What @noreply's wrapper w does, without its frame: func(obj, *args),
 * then the rule on an int, or _then(rc, check, obj) on anything else (an
 * awaitable is checked once awaited).  The cells are read when the body
 * reads them, and held: they are writable (cell_contents). */
static PyObject *call_noreply(PyObject *w, PyObject *obj, PyObject **args,
                              Py_ssize_t n)
{
    PyObject *func, *rc, *nr = NULL, *name = NULL, *check = NULL, *then;
    PyObject *res = NULL;

    if ((func = free_var(w, nrw.func)) == NULL)
        return NULL;
    rc = call_got(1, func, obj, args, n);
    Py_DECREF(func);
    if (rc == NULL)
        return NULL;
    if (PyLong_CheckExact(rc)) {
        if ((nr = free_var(w, nrw.nr)) != NULL &&
            (name = free_var(w, nrw.name)) != NULL &&
            (res = noreply_rule(obj, rc, nr, name)) == NULL &&
            (check = free_var(w, nrw.check)) != NULL) {
            /* Raised again by check(), so that the report has a frame
             * and a traceback, as the wrapper's had. */
            PyObject *two[2] = {obj, rc};
            PyErr_Clear();
            res = PyObject_Vectorcall(check, two, 2, NULL);
        }
    } else if ((check = free_var(w, nrw.check)) != NULL &&
               (then = PyDict_GetItemWithError(nrw.globals, s_then))
                   != NULL) {
        PyObject *three[3] = {rc, check, obj};
        Py_INCREF(then);
        res = PyObject_Vectorcall(then, three, 3, NULL);
        Py_DECREF(then);
    } else if (check != NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_NameError, "name '_then' is not defined");
    }
    Py_DECREF(rc);
    Py_XDECREF(nr);
    Py_XDECREF(name);
    Py_XDECREF(check);
    return res;
}

/* Base.<target>_bytes(*args): target is header, envfrom or envrcpt
 * (interned).  The method's @decode strategy is applied to the bytes
 * arguments (header: the value only, and only exact bytes), or with
 * 'bytes' none is, and header_bytes is then replaced on the instance by
 * the method itself so later headers go straight in.  With raw, the last
 * argument is missing from args: the header value, made here as a str
 * directly when it is decoded.  With via (pym_dispatch's calls), a
 * strategy only bytes.decode can judge goes through the Python method of
 * that name instead, so what it raises is reported with the frames it
 * would have had without the shortcut. */
static PyObject *call_decoded(PyObject *target, PyObject *via,
                              PyObject *priv, PyObject *const *args,
                              Py_ssize_t n, const pym_raw *raw)
{
    PyObject *small[9], **conv = small, *meth = NULL, *st = NULL;
    PyObject *res = NULL;
    const char *errors = NULL;
    Py_ssize_t i, done = 0;
    int header = target == s_header, unbound, keep;

    if (n + 1 > 9 && (conv = PyMem_Malloc((size_t)(n + 1) *
                                          sizeof *conv)) == NULL)
        return PyErr_NoMemory();
    conv[0] = NULL;
    unbound = get_method(priv, target, &meth);
    if (unbound < 0 || (st = strategy(meth)) == NULL)
        goto out;
    if ((keep = judge(st, &errors)) < 0)
        goto out;
    if (!keep && errors == NULL && via != NULL) {
        memcpy(conv + 1, args, (size_t)n * sizeof *conv);
        if (raw == NULL || (conv[n] = raw_bytes(raw)) != NULL)
            res = call_method(via, priv, conv + 1, n);
        if (raw != NULL)
            Py_XDECREF(conv[n]);
        goto out;
    }
    if (keep && header) {
        PyObject *bm = unbound ? PyMethod_New(meth, priv) : Py_NewRef(meth);
        int r = bm != NULL ? PyObject_SetAttr(priv, s_header_bytes, bm) : -1;
        Py_XDECREF(bm);
        if (r < 0)
            goto out;
    }
    for (i = 0; i < n; i++, done++) {
        PyObject *a = raw != NULL && i == n - 1 ? NULL : args[i];
        int dec = !keep && (header ? i == 1 && (a == NULL ||
                                                 PyBytes_CheckExact(a))
                                   : a == NULL || PyBytes_Check(a));
        if (dec)
            conv[i + 1] = decode_arg(a, a == NULL ? raw : NULL, st, errors);
        else
            conv[i + 1] = a == NULL ? raw_bytes(raw) : Py_NewRef(a);
        if (conv[i + 1] == NULL)
            goto out;
    }
    res = call_got(unbound, meth, priv, conv + 1, n);
out:
    Py_XDECREF(meth);
    Py_XDECREF(st);
    for (i = 0; i < done; i++)
        Py_DECREF(conv[i + 1]);
    if (conv != small)
        PyMem_Free(conv);
    return res;
}

/* milter._call_decoded(self, 'header' | 'envfrom' | 'envrcpt', *args):
 * Milter.Base's *_bytes methods, so they and pym_dispatch share
 * call_decoded. */
PyObject *pym_call_decoded(PyObject *mod, PyObject *args)
{
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *name, *target = NULL;

    (void)mod;
    name = n >= 2 ? PyTuple_GET_ITEM(args, 1) : NULL;
    if (name != NULL && PyUnicode_Check(name)) {
        if (PyUnicode_Compare(name, s_header) == 0)
            target = s_header;
        else if (PyUnicode_Compare(name, s_envfrom) == 0)
            target = s_envfrom;
        else if (PyUnicode_Compare(name, s_envrcpt) == 0)
            target = s_envrcpt;
    }
    if (target == NULL)
        return PyErr_Format(PyExc_TypeError,
                            "_call_decoded(self, 'header' | 'envfrom' | "
                            "'envrcpt', *args)");
    return call_decoded(target, NULL, PyTuple_GET_ITEM(args, 0),
                        &PyTuple_GET_ITEM(args, 2), n - 2, NULL);
}

/* Base's *_bytes method on priv, unless priv has its own: then that one,
 * called as Python would. */
static PyObject *call_bytes(const std_entry *e, PyObject *priv,
                            PyObject *const *args, Py_ssize_t n,
                            const pym_raw *raw)
{
    PyObject *small[9], **conv = small, *b, *res = NULL;
    int unbound = get_method(priv, e->name, &b);

    if (unbound < 0)
        return NULL;
    if (unbound && b == e->bytes_fn) {
        Py_DECREF(b);
        return call_decoded(e->target, e->name, priv, args, n, raw);
    }
    if (n + 1 > 9 && (conv = PyMem_Malloc((size_t)(n + 1) *
                                          sizeof *conv)) == NULL) {
        Py_DECREF(b);
        return PyErr_NoMemory();
    }
    conv[0] = NULL;
    memcpy(conv + 1, args, (size_t)n * sizeof *conv);
    if (raw == NULL || (conv[n] = raw_bytes(raw)) != NULL)
        res = call_got(unbound, b, priv, conv + 1, n);
    if (raw != NULL)
        Py_XDECREF(conv[n]);
    Py_DECREF(b);
    if (conv != small)
        PyMem_Free(conv);
    return res;
}

/* Call the slot's callable cb for ctx with args: directly on the Milter
 * object when cb is one of the package's standard functions, else
 * cb(ctx, *args).  With raw, args[n - 1] is not there yet: the bytes of
 * raw (see call_bytes).  New reference, or NULL with an exception set. */
PyObject *pym_dispatch(int slot, PyObject *cb, ContextObject *ctx,
                       PyObject *const *args, Py_ssize_t n,
                       const pym_raw *raw)
{
    const std_entry *e = entry_for(slot, cb);
    PyObject *priv = ctx->priv, *small[8], **stack = small, *res;
    PyObject *own = NULL;
    int t = e != NULL && priv != NULL && priv != Py_None;

    if (t && slot == SLOT_CONNECT && (t = PyObject_IsTrue(priv)) < 0)
        return NULL;
    if (t && e->bytes_fn != NULL) {
        Py_INCREF(priv); /* setpriv may drop it during the call */
        res = call_bytes(e, priv, args, n, raw);
        Py_DECREF(priv);
        return res;
    }
    if (raw != NULL && (own = raw_bytes(raw)) == NULL)
        return NULL;
    if (t) {
        PyObject *two[2];
        if (own != NULL) { /* only header has raw, and it has 2 args */
            two[0] = args[0];
            two[1] = own;
            args = two;
        }
        Py_INCREF(priv);
        res = call_method(e->name, priv, args, n);
        Py_DECREF(priv);
        Py_XDECREF(own);
        return res;
    }
    /* cb(ctx, *args); stack[0] is spare so the callee may use it. */
    if (n + 2 > 8 && (stack = PyMem_Malloc((size_t)(n + 2) *
                                           sizeof *stack)) == NULL) {
        Py_XDECREF(own);
        return PyErr_NoMemory();
    }
    stack[1] = (PyObject *)ctx;
    if (n > 0)
        memcpy(stack + 2, args, (size_t)n * sizeof *stack);
    if (own != NULL)
        stack[n + 1] = own;
    res = PyObject_Vectorcall(cb, stack + 1,
                              ((size_t)n + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET,
                              NULL);
    if (stack != small)
        PyMem_Free(stack);
    Py_XDECREF(own);
    return res;
}
