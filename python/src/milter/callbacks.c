/* callbacks.c - the pmc_handlers table of the binding.
 *
 * Each handler takes the GIL, converts the event into pymilter's argument
 * types (spec/pymilter-api.md 2.2-2.3), calls the Python callback and turns
 * its result into a verdict.  No Python exception ever leaves a handler:
 * failures are reported and answered by the exception policy. */
#include "pym.h"

#include <arpa/inet.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>

#define PYM_NAME(ev, name, how) [SLOT_##ev] = #name,
const char *const pym_slot_names[SLOT_COUNT] = {PYM_EVENTS(PYM_NAME)};
#undef PYM_NAME

#define PYM_ONE(ev, name, how) +1
_Static_assert(0 PYM_EVENTS(PYM_ONE) == PMC_EV_COUNT,
               "PYM_EVENTS must list every PMC_EV_* event");
#undef PYM_ONE

/* The one decoding rule for every str argument: UTF-8, with undecodable
 * bytes kept as lone surrogates so nothing fails and
 * s.encode('utf-8', 'surrogateescape') gives the exact bytes back. */
PyObject *pym_decode(const char *p, size_t n)
{
    return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "surrogateescape");
}

static PyObject *slot_cb(pym_conn *c, int slot)
{
    return c->cb ? c->cb[slot] : pym.cb[slot];
}

ContextObject *pym_conn_ctx(pym_conn *c, pmc_session *s)
{
    if (c->ctx == NULL) {
        c->ctx = pym_context_new(s);
        if (c->ctx != NULL) {
            c->ctx->srv = c->srv;
            c->ctx->conn_id = c->id;
        }
    }
    return c->ctx;
}

/* The verdict of the exception policy, with pymilter's reply text. */
int pym_policy_verdict(pmc_session *s)
{
    char text[96];
    int pol = pym.exception_policy;

    if (pol == PMC_TEMPFAIL || pol == PMC_REJECT) {
        /* The core doubles '%' on the wire, so the name goes in as is. */
        snprintf(text, sizeof text, "pymilter: untrapped exception in %.40s",
                 pym.name);
        (void)pmc_session_setreply(s, pol == PMC_TEMPFAIL ? "451" : "554",
                                   pol == PMC_TEMPFAIL ? "4.3.0" : "5.3.0",
                                   text);
    }
    return pol;
}

/* Print the current exception and clear it.  SystemExit and
 * KeyboardInterrupt are not printed: PyErr_Print would exit the process
 * from inside the engine.  They are kept on the connection (or handed to
 * main()) so the host re-raises them once the engine call has returned. */
void pym_report(pym_conn *c)
{
    if (PyErr_ExceptionMatches(PyExc_SystemExit) ||
        PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
        PyObject *v = pym_take_exc();
        if (v == NULL)
            return;
        if (c->pending_exc == NULL)
            c->pending_exc = v;
        else
            Py_DECREF(v);
        if (c->owner == NULL)
            pym_exit_requested();
        return;
    }
    PyErr_Print();
}

/* The last int accepted per event and its verdict (the GIL guards them):
 * the same object again (small ints are shared, and an int cannot
 * change) is the same verdict, without a conversion and a check. */
static PyObject *last_res[SLOT_COUNT];
static int last_verdict[SLOT_COUNT];

/* Map a callback's result to a verdict; NULL-free path only. */
int pym_result_verdict(int slot, PyObject *res, int *v)
{
    long n;
    int over = 0;

    if (res == last_res[slot]) {
        *v = last_verdict[slot];
        return 0;
    }
    if (!PyLong_Check(res)) {
        PyErr_Format(pym.error, "The %s callback must return int",
                     pym_slot_names[slot]);
        return -1;
    }
    n = PyLong_AsLongAndOverflow(res, &over);
    if (n == -1 && PyErr_Occurred())
        return -1;
    if (!over && n >= INT_MIN && n <= INT_MAX &&
        pmc_verdict_valid((pmc_event)slot, (int)n)) {
        *v = (int)n;
        if (PyLong_CheckExact(res)) {
            Py_XSETREF(last_res[slot], Py_NewRef(res));
            last_verdict[slot] = *v;
        }
        return 0;
    }
    /* pymilter passed these on and the MTA hung (issue #63). */
    PyErr_Format(pym.error,
                 "The %s callback returned %R, which is not a milter "
                 "return code (CONTINUE, REJECT, DISCARD, ACCEPT, "
                 "TEMPFAIL, NOREPLY or SKIP)", pym_slot_names[slot], res);
    return -1;
}

/* Call slot's callback with (ctx,) + args (borrowed; n items, any of
 * them NULL when building it failed, with the error set; with raw, the
 * last one is not made yet, see pym_dispatch).  Returns the verdict
 * through *verdict; -1 when the callback failed. */
int pym_call_v(pym_conn *c, pmc_session *s, int slot, PyObject *const *args,
               Py_ssize_t n, const pym_raw *raw, int *verdict)
{
    PyObject *cb = slot_cb(c, slot), *res = NULL;
    ContextObject *ctx;
    Py_ssize_t i;
    int v = PMC_CONTINUE, was;

    if (cb == NULL) {
        *verdict = PMC_CONTINUE;
        return 0;
    }
    Py_INCREF(cb); /* the slot may be replaced while the callback runs */
    ctx = pym_conn_ctx(c, s);
    if (ctx == NULL)
        goto fail;
    for (i = 0; i < n - (raw != NULL); i++)
        if (args[i] == NULL)
            goto fail;
    was = ctx->in_cb;
    ctx->in_cb = 1;
    res = pym_dispatch(slot, cb, ctx, args, n, raw);
    ctx->in_cb = was;
    if (res != NULL && res == last_res[slot]) {
        /* The usual result, the int of last time: its verdict without
         * the calls below (an int is not awaitable). */
        Py_DECREF(cb);
        Py_DECREF(res);
        *verdict = last_verdict[slot];
        return 0;
    }
    if (res != NULL && pym_is_awaitable(res)) {
        /* async def: answered when the coroutine is done (aio.c). */
        PyObject *aw = res;
        res = NULL;
        v = pym_aio_start(c, ctx, slot, aw);
        if (v < 0)
            goto fail;
        Py_DECREF(cb);
        *verdict = v;
        return 0;
    }
    if (res == NULL || pym_result_verdict(slot, res, &v) < 0)
        goto fail;
    Py_DECREF(cb);
    Py_DECREF(res);
    *verdict = v;
    return 0;
fail:
    pym_report(c);
    Py_DECREF(cb);
    Py_XDECREF(res);
    *verdict = pym_policy_verdict(s);
    return -1;
}

/* pym_call_v with the arguments in a tuple (stolen; NULL when building it
 * failed). */
int pym_call(pym_conn *c, pmc_session *s, int slot, PyObject *args,
             int *verdict)
{
    PyObject *none = NULL;
    int r;

    if (args == NULL)
        r = pym_call_v(c, s, slot, &none, 1, NULL, verdict);
    else
        r = pym_call_v(c, s, slot, &PyTuple_GET_ITEM(args, 0),
                       PyTuple_GET_SIZE(args), NULL, verdict);
    Py_XDECREF(args);
    return r;
}

/* Most handlers: take the GIL only when a callback exists, so events the
 * application ignores cost no Python work. */
#define ENTER(slot)                                                        \
    pym_conn *c = ud;                                                      \
    int v = PMC_CONTINUE;                                                  \
    int g = pym_gil_take();                                                \
    if (slot_cb(c, slot) == NULL) {                                        \
        pym_gil_give(g);                                                   \
        return PMC_CONTINUE;                                               \
    }
#define LEAVE() pym_gil_give(g); return v

static PyObject *hostaddr(const pmc_connect_info *ci, int *family)
{
    char ip[INET6_ADDRSTRLEN];

    switch (ci->family) {
    case '4':
    case '6': {
        int af = ci->family == '4' ? AF_INET : AF_INET6;
        PyObject *a;
        *family = af;
        if (ci->addr_bin_len != 0 &&
            inet_ntop(af, ci->addr_bin, ip, sizeof ip) != NULL)
            a = PyUnicode_FromString(ip);
        else /* the MTA's text did not parse: pass it on as sent */
            a = pym_decode(ci->addr.ptr, ci->addr.len);
        if (a == NULL)
            return NULL;
        if (af == AF_INET)
            return Py_BuildValue("(Ni)", a, (int)ci->port);
        return Py_BuildValue("(Niii)", a, (int)ci->port, 0, 0);
    }
    case 'L':
        *family = AF_UNIX;
        return pym_decode(ci->addr.ptr, ci->addr.len);
    default:
        *family = 0;
        Py_RETURN_NONE;
    }
}

static int h_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    ENTER(SLOT_CONNECT)
    int fam = 0;
    PyObject *addr = hostaddr(ci, &fam);
    PyObject *a = addr ? Py_BuildValue("(NiN)",
                                       pym_decode(ci->host.ptr, ci->host.len),
                                       fam, addr) : NULL;
    pym_call(c, s, SLOT_CONNECT, a, &v);
    LEAVE();
}

static int h_helo(pmc_session *s, void *ud, pmc_str helo)
{
    ENTER(SLOT_HELO)
    PyObject *a = pym_decode(helo.ptr, helo.len);
    pym_call_v(c, s, SLOT_HELO, &a, 1, NULL, &v);
    Py_XDECREF(a);
    LEAVE();
}

/* MAIL/RCPT arguments stay bytes, one object per word, as in pymilter,
 * handed over from an array (no tuple made and dropped per command). */
static int h_args(pmc_session *s, pym_conn *c, int slot, const pmc_args *args)
{
    PyObject *small[8], **a = small, *none = NULL;
    Py_ssize_t i, n = (Py_ssize_t)args->argc;
    int v;

    if (n > 8 && (a = PyMem_Malloc((size_t)n * sizeof *a)) == NULL) {
        PyErr_NoMemory();
        pym_call_v(c, s, slot, &none, 1, NULL, &v);
        return v;
    }
    for (i = 0; i < n; i++)
        if ((a[i] = PyBytes_FromStringAndSize(
                 args->argv[i].ptr, (Py_ssize_t)args->argv[i].len)) == NULL)
            break;
    pym_call_v(c, s, slot, a, i < n ? i + 1 : n, NULL, &v);
    while (i-- > 0)
        Py_DECREF(a[i]);
    if (a != small)
        PyMem_Free(a);
    return v;
}

static int h_envfrom(pmc_session *s, void *ud, const pmc_args *args)
{
    ENTER(SLOT_ENVFROM)
    v = h_args(s, c, SLOT_ENVFROM, args);
    LEAVE();
}

static int h_envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    ENTER(SLOT_ENVRCPT)
    v = h_args(s, c, SLOT_ENVRCPT, args);
    LEAVE();
}

/* Header names repeat from message to message: the last ones decoded are
 * kept (the GIL guards them) and shared, which saves a decode and an
 * allocation per header.  A str is immutable, so sharing one cannot be
 * seen but through `is`.  Two ways per set, the one hit last first: with
 * one, two common names of a set (Date and MIME-Version did) evicted each
 * other at every message; 128 sets of two hold some 60 common names
 * without three in a set. */
#define NAME_SETS 128
#define NAME_MAX_LEN 40
typedef struct {
    PyObject *str;
    size_t len;
    char raw[NAME_MAX_LEN];
} name_slot;
static name_slot names[NAME_SETS][2];

static PyObject *header_name(const char *p, size_t n)
{
    name_slot *set, tmp;
    PyObject *str;

    if (n == 0 || n > NAME_MAX_LEN)
        return pym_decode(p, n);
    set = names[((unsigned)n * 31u + (unsigned char)p[0] * 7u +
                 (unsigned char)p[n - 1]) % NAME_SETS];
    if (set[0].str != NULL && set[0].len == n &&
        memcmp(set[0].raw, p, n) == 0)
        return Py_NewRef(set[0].str);
    if (set[1].str != NULL && set[1].len == n &&
        memcmp(set[1].raw, p, n) == 0) {
        tmp = set[0];
        set[0] = set[1];
        set[1] = tmp;
        return Py_NewRef(set[0].str);
    }
    str = pym_decode(p, n);
    if (str != NULL) {
        Py_XDECREF(set[1].str);
        set[1] = set[0];
        set[0].str = Py_NewRef(str);
        set[0].len = n;
        memcpy(set[0].raw, p, n);
    }
    return str;
}

static int h_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    ENTER(SLOT_HEADER)
    /* The value is made where it is used: Milter's header_bytes would
     * turn bytes into str at once. */
    pym_raw raw = {value.ptr, (Py_ssize_t)value.len};
    PyObject *a[2];
    a[0] = header_name(name.ptr, name.len);
    a[1] = NULL;
    pym_call_v(c, s, SLOT_HEADER, a, 2, a[0] ? &raw : NULL, &v);
    Py_XDECREF(a[0]);
    LEAVE();
}

static int h_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    ENTER(SLOT_BODY)
    PyObject *a = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    pym_call_v(c, s, SLOT_BODY, &a, 1, NULL, &v);
    Py_XDECREF(a);
    LEAVE();
}

static int h_unknown(pmc_session *s, void *ud, pmc_str cmd)
{
    ENTER(SLOT_UNKNOWN)
    PyObject *a = pym_decode(cmd.ptr, cmd.len);
    pym_call_v(c, s, SLOT_UNKNOWN, &a, 1, NULL, &v);
    Py_XDECREF(a);
    LEAVE();
}

#define NOARG_HANDLER(fn, slot)                                  \
    static int fn(pmc_session *s, void *ud)                      \
    {                                                            \
        ENTER(slot)                                              \
        pym_call_v(c, s, slot, NULL, 0, NULL, &v);               \
        LEAVE();                                                 \
    }
NOARG_HANDLER(h_data, SLOT_DATA)
NOARG_HANDLER(h_eoh, SLOT_EOH)
NOARG_HANDLER(h_eom, SLOT_EOM)
NOARG_HANDLER(h_abort, SLOT_ABORT)

/* close: called exactly once per connection that reached the filter,
 * making the context if no earlier callback needed one (pymilter skipped
 * close then).  Afterwards the context is detached, so later use raises
 * "bad context", and the connection's reference to it is dropped. */
static int h_close(pmc_session *s, void *ud)
{
    pym_conn *c = ud;
    int v = PMC_CONTINUE;
    int g = pym_gil_take();

    /* Ended while a coroutine was pending: its answer is not wanted. */
    pym_aio_drop(c, c->ctx);
    if (slot_cb(c, SLOT_CLOSE) != NULL)
        pym_call_v(c, s, SLOT_CLOSE, NULL, 0, NULL, &v);
    if (c->ctx != NULL) {
        ContextObject *ctx = c->ctx;
        c->ctx = NULL;
        pym_context_detach(ctx);
        Py_DECREF(ctx);
    }
    pym_gil_give(g);
    return PMC_CONTINUE;
}

/* negotiate.c has the negotiate handler. */
#define h_negotiate pym_negotiate
#define PYM_HANDLER(ev, name, how) .name = h_##name,
const pmc_handlers pym_handlers = {PYM_EVENTS(PYM_HANDLER)};
#undef PYM_HANDLER
#undef h_negotiate
