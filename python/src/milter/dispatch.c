/* dispatch.c - the Milter package's standard callbacks, run from C.
 *
 * Milter.runmilter registers, for each event, a small Python function that
 * finds the connection's Milter object (ctx.getpriv()) and calls its
 * method; header, envfrom and envrcpt go through Base's *_bytes methods,
 * which apply the method's @decode strategy.  That chain cost about half
 * the Python work of a message (callgrind: some 5,000 instructions per
 * header).  Each of those functions carries a `_milter_std` attribute,
 * (method, Base's *_bytes function or None, the method *_bytes calls or
 * None): when the registered callable has it and the context's priv is
 * set, the method is called here directly, with the decoding done exactly
 * as the *_bytes methods do it.  Anything unusual (no priv, an overridden
 * or replaced *_bytes method, a strategy that is not a str on a plain
 * function) takes the Python path, which decides as before. */
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
static PyObject *s_std, *s_strategy, *s_default, *s_bytes;

int pym_dispatch_init(void)
{
    s_std = PyUnicode_InternFromString("_milter_std");
    s_strategy = PyUnicode_InternFromString("error_strategy");
    s_default = PyUnicode_InternFromString("surrogateescape");
    s_bytes = PyUnicode_InternFromString("bytes");
    return s_std && s_strategy && s_default && s_bytes ? 0 : -1;
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

/* self.name(*args), as Python's method call does it. */
static PyObject *call_method(PyObject *name, PyObject *self,
                             PyObject *const *args, Py_ssize_t n)
{
#if PY_VERSION_HEX >= 0x03090000
    PyObject *small[8], **stack = small, *res;

    if (n + 1 > 8 && (stack = PyMem_Malloc((size_t)(n + 1) *
                                           sizeof *stack)) == NULL)
        return PyErr_NoMemory();
    stack[0] = self;
    if (n > 0)
        memcpy(stack + 1, args, (size_t)n * sizeof *stack);
    res = PyObject_VectorcallMethod(name, stack, (size_t)n + 1, NULL);
    if (stack != small)
        PyMem_Free(stack);
    return res;
#else
    PyObject *m = PyObject_GetAttr(self, name), *res;

    if (m == NULL)
        return NULL;
    res = PyObject_Vectorcall(m, args, (size_t)n, NULL);
    Py_DECREF(m);
    return res;
#endif
}

/* The @decode strategy of meth as Milter._strategy finds it.  1 with
 * *st borrowed, 0 when only the Python code can tell, -1 on error. */
static int strategy(PyObject *meth, PyObject **st)
{
    PyObject *func = meth, *dict, *v;

    if (Py_TYPE(meth) == &PyMethod_Type)
        func = PyMethod_GET_FUNCTION(meth);
    if (!PyFunction_Check(func))
        return 0;
    dict = ((PyFunctionObject *)func)->func_dict;
    v = dict != NULL ? PyDict_GetItemWithError(dict, s_strategy) : NULL;
    if (v == NULL) {
        if (PyErr_Occurred())
            return -1;
        *st = s_default;
        return 1;
    }
    if (!PyUnicode_CheckExact(v))
        return 0;
    *st = v;
    return 1;
}

/* b.decode('utf-8', errors), or b itself when that raises
 * UnicodeDecodeError (the 'strict' strategy lets the bytes through). */
static PyObject *decode_or_keep(PyObject *b, const char *errors)
{
    PyObject *s = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(b),
                                       PyBytes_GET_SIZE(b), errors);

    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return Py_NewRef(b);
    }
    return s;
}

/* obj.name: 1 with the function in *m when obj.name is a function bound
 * to obj (the class's, or one set on the instance as a bound method), 0
 * with the attribute itself, -1 on error. */
static int get_method(PyObject *obj, PyObject *name, PyObject **m)
{
    PyObject *a = PyObject_GetAttr(obj, name);

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

/* m(*args) for what get_method gave: unbound ones get obj first.  args
 * has a spare slot before args[0]. */
static PyObject *call_got(int unbound, PyObject *m, PyObject *obj,
                          PyObject **args, Py_ssize_t n)
{
    if (unbound) {
        PyObject *save = args[-1], *res;
        args[-1] = obj;
        res = PyObject_Vectorcall(m, args - 1, (size_t)n + 1, NULL);
        args[-1] = save;
        return res;
    }
    return PyObject_Vectorcall(m, args, (size_t)n, NULL);
}

/* A header value straight from the engine's buffer. */
static PyObject *raw_bytes(const pym_raw *raw)
{
    return PyBytes_FromStringAndSize(raw->p, raw->n);
}

/* raw.decode('utf-8', errors), or the bytes as decode_or_keep does. */
static PyObject *raw_decode_or_keep(const pym_raw *raw, const char *errors)
{
    PyObject *s = PyUnicode_DecodeUTF8(raw->p, raw->n, errors);

    if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return raw_bytes(raw);
    }
    return s;
}

/* header_bytes(fld, val) / envfrom_bytes(*b) / envrcpt_bytes(*b) of Base,
 * without their Python frames.  header's field is a str already.  With
 * raw, the last argument is missing from args: the header value, made
 * here as a str directly when it is decoded, as bytes otherwise. */
static PyObject *call_bytes(const std_entry *e, int slot, PyObject *priv,
                            PyObject *const *args, Py_ssize_t n,
                            const pym_raw *raw)
{
    PyObject *small[9], **conv = small, *b, *meth = NULL, *st, *res = NULL;
    PyObject *own = NULL; /* the value as bytes, once made */
    const char *errors;
    Py_ssize_t i, len, done = 0;
    int unbound, r;

    if (n + 1 > 9 && (conv = PyMem_Malloc((size_t)(n + 1) *
                                          sizeof *conv)) == NULL)
        return PyErr_NoMemory();
    conv[0] = NULL;
    memcpy(conv + 1, args, (size_t)n * sizeof *conv); /* borrowed yet */
#define NEED_BYTES()                                                       \
    do {                                                                   \
        if (raw != NULL && own == NULL) {                                  \
            if ((own = raw_bytes(raw)) == NULL)                            \
                goto out;                                                  \
            conv[n] = own;                                                 \
        }                                                                  \
    } while (0)
    unbound = get_method(priv, e->name, &b);
    if (unbound < 0)
        goto out;
    if (!unbound || b != e->bytes_fn) {
        /* Overridden, or replaced on the instance: call what is there. */
        NEED_BYTES();
        res = call_got(unbound, b, priv, conv + 1, n);
        Py_DECREF(b);
        goto out;
    }
    Py_DECREF(b);
    unbound = get_method(priv, e->target, &meth);
    if (unbound < 0)
        goto out;
    /* Milter._strategy looks at the function of a bound method. */
    r = strategy(meth, &st);
    if (r <= 0) {
        if (r == 0) {
            NEED_BYTES();
            res = call_method(e->name, priv, conv + 1, n);
        }
        goto out;
    }
    if (PyUnicode_Compare(st, s_bytes) == 0) {
        /* Raw bytes: header_bytes also puts the method in its own place
         * so later headers go straight in. */
        if (slot == SLOT_HEADER) {
            PyObject *bm = unbound ? PyMethod_New(meth, priv)
                                   : Py_NewRef(meth);
            r = bm != NULL ? PyObject_SetAttr(priv, e->name, bm) : -1;
            Py_XDECREF(bm);
            if (r < 0)
                goto out;
        }
        NEED_BYTES();
        res = call_got(unbound, meth, priv, conv + 1, n);
        goto out;
    }
    errors = PyUnicode_AsUTF8AndSize(st, &len);
    if (errors == NULL || strlen(errors) != (size_t)len) {
        PyErr_Clear(); /* let bytes.decode say what is wrong with it */
        NEED_BYTES();
        res = call_method(e->name, priv, conv + 1, n);
        goto out;
    }
#undef NEED_BYTES
    for (i = 0; i < n; i++, done++) {
        PyObject *a = args[i];
        if (raw != NULL && i == n - 1)
            conv[i + 1] = raw_decode_or_keep(raw, errors);
        else if ((slot != SLOT_HEADER || i == 1) && PyBytes_CheckExact(a))
            conv[i + 1] = decode_or_keep(a, errors);
        else
            conv[i + 1] = Py_NewRef(a);
        if (conv[i + 1] == NULL)
            goto out;
    }
    res = call_got(unbound, meth, priv, conv + 1, n);
out:
    Py_XDECREF(meth);
    for (i = 0; i < done; i++)
        Py_DECREF(conv[i + 1]);
    Py_XDECREF(own);
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
        res = call_bytes(e, slot, priv, args, n, raw);
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
