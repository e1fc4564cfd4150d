/* aio.c - callbacks that are coroutines (async def, or any awaitable).
 *
 * Under main(): the handler that got the awaitable returns PMC_PENDING and
 * hands it to an asyncio event loop on a thread of its own (started at the
 * first coroutine, stopped when main() returns).  When it finishes, its
 * result becomes the verdict and pmc_server_resume answers the event on
 * the connection's thread.  Context methods called meanwhile (from the
 * coroutine, on the asyncio thread) run on the connection's thread too:
 * each is a pmc_server_resume request that keeps the handler pending, and
 * the caller waits for it with the GIL released.  The connection's thread
 * never waits for the asyncio thread, so the two cannot deadlock.
 *
 * abort and close have no answer to wait for: their coroutines are
 * scheduled and not awaited; a later coroutine of the same connection
 * starts only after them.  negotiate cannot be a coroutine.
 *
 * In a _TestConn (Milter.testctx) everything runs on the caller's thread:
 * the wait hook of the in-process transport (or run_pending(), in raw mode)
 * runs the awaitable to completion on a private event loop and resumes the
 * session. */
#include "pym.h"

#include <pthread.h>
#include <string.h>

static const char helper_src[] =
    "import asyncio\n"
    "import threading\n"
    "CancelledError = asyncio.CancelledError\n"
    "\n"
    "async def drive(prev, aw, done):\n"
    "    try:\n"
    "        if prev is not None:\n"
    "            await asyncio.wait([asyncio.wrap_future(prev)])\n"
    "        res = await aw\n"
    "    except BaseException as e:\n"
    "        if asyncio.iscoroutine(aw):\n"
    "            aw.close()\n"
    "        done(None, e)\n"
    "    else:\n"
    "        done(res, None)\n"
    "\n"
    "def run_here(loop, aw):\n"
    "    async def one():\n"
    "        return await aw\n"
    "    return loop.run_until_complete(one())\n"
    "\n"
    "class Runner(object):\n"
    "    def __init__(self):\n"
    "        self.loop = asyncio.new_event_loop()\n"
    "        ready = threading.Event()\n"
    "        self.thread = threading.Thread(target=self._run, args=(ready,),\n"
    "                                       name='milter-asyncio',\n"
    "                                       daemon=True)\n"
    "        self.thread.start()\n"
    "        ready.wait()\n"
    "\n"
    "    def _run(self, ready):\n"
    "        asyncio.set_event_loop(self.loop)\n"
    "        self.loop.call_soon(ready.set)\n"
    "        self.loop.run_forever()\n"
    "\n"
    "    def submit(self, prev, aw, done):\n"
    "        return asyncio.run_coroutine_threadsafe(drive(prev, aw, done),\n"
    "                                                self.loop)\n"
    "\n"
    "    def close(self):\n"
    "        async def cancel_rest():\n"
    "            me = asyncio.current_task()\n"
    "            rest = [t for t in asyncio.all_tasks() if t is not me]\n"
    "            for t in rest:\n"
    "                t.cancel()\n"
    "            await asyncio.gather(*rest, return_exceptions=True)\n"
    "        try:\n"
    "            asyncio.run_coroutine_threadsafe(cancel_rest(),\n"
    "                                             self.loop).result(10)\n"
    "        finally:\n"
    "            self.loop.call_soon_threadsafe(self.loop.stop)\n"
    "            self.thread.join()\n"
    "            self.loop.close()\n";

static PyObject *helper;  /* the helper's globals */
static PyObject *runner;  /* the Runner of the current main(), or NULL */

/* A helper name (borrowed), compiling the helper at first use. */
static PyObject *helper_get(const char *name)
{
    PyObject *r;

    if (helper == NULL) {
        PyObject *g = PyDict_New();
        if (g == NULL)
            return NULL;
        PyObject *nm = PyUnicode_FromString("milter._aio");
        if (nm == NULL ||
            PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) <
                0 ||
            PyDict_SetItemString(g, "__name__", nm) < 0) {
            Py_XDECREF(nm);
            Py_DECREF(g);
            return NULL;
        }
        Py_DECREF(nm);
        r = PyRun_String(helper_src, Py_file_input, g, g);
        if (r == NULL) {
            Py_DECREF(g);
            return NULL;
        }
        Py_DECREF(r);
        helper = g;
    }
    r = PyDict_GetItemString(helper, name);
    if (r == NULL)
        PyErr_Format(PyExc_RuntimeError, "milter: no helper %s", name);
    return r;
}

int pym_is_awaitable(PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);

    return PyCoro_CheckExact(o) ||
           (t->tp_as_async != NULL && t->tp_as_async->am_await != NULL);
}

/* Close a coroutine that will never run, so Python does not warn that it
 * was never awaited. */
static void discard(PyObject *aw)
{
    if (PyCoro_CheckExact(aw)) {
        PyObject *r = PyObject_CallMethod(aw, "close", NULL);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
    }
    Py_DECREF(aw);
}

void pym_aio_report(PyObject *exc)
{
    if (exc == NULL)
        return;
    if (PyErr_GivenExceptionMatches(exc, PyExc_SystemExit) ||
        PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt)) {
        pym_exit_with(exc);
        return;
    }
    pym_restore_exc(exc);
    PyErr_Print();
}

/* --- under main() --------------------------------------------------- */

typedef struct answer {
    ContextObject *ctx;  /* strong */
    int verdict;
    int policy;          /* answer by the exception policy */
} answer;

/* On the connection's thread: the coroutine's verdict for its event. */
static int aio_resume(pmc_session *s, void *arg)
{
    answer *a = arg;
    int v = PMC_CONTINUE;
    PyGILState_STATE g = PyGILState_Ensure();

    if (s != NULL) {
        a->ctx->pending = 0;
        Py_CLEAR(a->ctx->fut);
        v = a->policy ? pym_policy_verdict(s) : a->verdict;
    }
    Py_DECREF(a->ctx);
    PyGILState_Release(g);
    PyMem_RawFree(a);
    return v;
}

typedef struct done_arg {
    ContextObject *ctx;  /* strong */
    pmc_server *srv;
    uint64_t id;
    int slot;
    int bg;              /* abort/close: nothing to answer */
} done_arg;

static void done_free(PyObject *cap)
{
    done_arg *d = PyCapsule_GetPointer(cap, "milter.done");

    if (d != NULL) {
        Py_XDECREF(d->ctx);
        PyMem_Free(d);
    }
}

/* done(result, exception), on the asyncio thread, when the coroutine has
 * finished (or was cancelled because its connection ended). */
static PyObject *aio_done(PyObject *cap, PyObject *args)
{
    done_arg *d = PyCapsule_GetPointer(cap, "milter.done");
    PyObject *res, *exc, *cancelled;
    answer *a;
    int v = PMC_CONTINUE, policy = 0;

    if (d == NULL || !PyArg_ParseTuple(args, "OO", &res, &exc))
        return NULL;
    if (exc != Py_None) {
        cancelled = helper_get("CancelledError");
        if (cancelled == NULL ||
            !PyErr_GivenExceptionMatches(exc, cancelled)) {
            PyErr_Clear();
            Py_INCREF(exc);
            pym_aio_report(exc);
        }
        policy = 1;
    } else if (!d->bg && pym_result_verdict(d->slot, res, &v) < 0) {
        pym_aio_report(pym_take_exc());
        policy = 1;
    }
    if (d->bg)
        Py_RETURN_NONE;
    a = PyMem_RawMalloc(sizeof *a);
    if (a == NULL)
        return PyErr_NoMemory();
    Py_INCREF(d->ctx);
    a->ctx = d->ctx;
    a->verdict = v;
    a->policy = policy;
    if (pmc_server_resume(d->srv, d->id, aio_resume, a) != PMC_OK) {
        /* Out of memory: the connection waits until the MTA gives up. */
        Py_DECREF(a->ctx);
        PyMem_RawFree(a);
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyMethodDef done_def = {"_done", aio_done, METH_VARARGS, NULL};

static PyObject *get_runner(void)
{
    if (runner == NULL) {
        PyObject *cls = helper_get("Runner");
        if (cls == NULL)
            return NULL;
        runner = PyObject_CallObject(cls, NULL);
    }
    return runner;
}

static int start_server(pym_conn *c, ContextObject *ctx, int slot,
                        PyObject *aw, int bg)
{
    done_arg *d;
    PyObject *cap, *done, *fut, *r = get_runner();

    if (r == NULL) {
        discard(aw);
        return -1;
    }
    d = PyMem_Calloc(1, sizeof *d);
    if (d == NULL) {
        discard(aw);
        PyErr_NoMemory();
        return -1;
    }
    Py_INCREF(ctx);
    d->ctx = ctx;
    d->srv = c->srv;
    d->id = c->id;
    d->slot = slot;
    d->bg = bg;
    cap = PyCapsule_New(d, "milter.done", done_free);
    if (cap == NULL) {
        Py_DECREF(ctx);
        PyMem_Free(d);
        discard(aw);
        return -1;
    }
    done = PyCFunction_New(&done_def, cap);
    Py_DECREF(cap);
    if (done == NULL) {
        discard(aw);
        return -1;
    }
    fut = PyObject_CallMethod(r, "submit", "OOO",
                              ctx->tail ? ctx->tail : Py_None, aw, done);
    Py_DECREF(done);
    if (fut == NULL) {
        discard(aw);
        return -1;
    }
    Py_DECREF(aw);
    if (bg) {
        Py_XSETREF(ctx->tail, fut);
        return PMC_CONTINUE;
    }
    Py_XSETREF(ctx->fut, fut);
    ctx->pending = 1;
    return PMC_PENDING;
}

void pym_aio_shutdown(void)
{
    PyObject *r = runner;

    if (r == NULL)
        return;
    runner = NULL;
    {
        PyObject *x = PyObject_CallMethod(r, "close", NULL);
        if (x == NULL)
            PyErr_Print();
        Py_XDECREF(x);
    }
    Py_DECREF(r);
}

void pym_aio_forget(void)
{
    /* Its thread is in the parent only: keep the object, never touch it
     * (finalizing a loop whose thread is gone is not safe). */
    runner = NULL;
}

/* --- in a _TestConn ------------------------------------------------- */

static PyObject *tc_loop(pym_conn *c)
{
    if (c->loop == NULL) {
        PyObject *aio = PyImport_ImportModule("asyncio");
        if (aio == NULL)
            return NULL;
        c->loop = PyObject_CallMethod(aio, "new_event_loop", NULL);
        Py_DECREF(aio);
    }
    return c->loop;
}

/* Run aw (stolen) to completion here; a new reference or NULL. */
static PyObject *run_here(pym_conn *c, PyObject *aw)
{
    PyObject *fn = helper_get("run_here"), *loop = tc_loop(c), *r;

    if (fn == NULL || loop == NULL) {
        discard(aw);
        return NULL;
    }
    r = PyObject_CallFunctionObjArgs(fn, loop, aw, NULL);
    Py_DECREF(aw);
    return r;
}

pmc_status pym_aio_run_pending(pym_conn *c, pmc_session *s)
{
    PyObject *aw = c->coro, *res;
    int v = PMC_CONTINUE;

    if (aw == NULL)
        return PMC_ERR_PENDING;
    c->coro = NULL;
    res = run_here(c, aw);
    if (res == NULL || pym_result_verdict(c->coro_slot, res, &v) < 0) {
        pym_report(c);
        v = pym_policy_verdict(s);
    }
    Py_XDECREF(res);
    if (c->ctx != NULL)
        c->ctx->pending = 0;
    return pmc_session_resume(s, v);
}

void pym_aio_drop(pym_conn *c, ContextObject *ctx)
{
    if (c->coro != NULL) {
        PyObject *aw = c->coro;
        c->coro = NULL;
        discard(aw);
    }
    if (ctx != NULL) {
        if (ctx->fut != NULL) {
            PyObject *r = PyObject_CallMethod(ctx->fut, "cancel", NULL);
            if (r == NULL)
                PyErr_Clear();
            Py_XDECREF(r);
            Py_CLEAR(ctx->fut);
        }
        ctx->pending = 0;
    }
}

/* --- the entry point from pym_call ---------------------------------- */

int pym_aio_start(pym_conn *c, ContextObject *ctx, int slot, PyObject *aw)
{
    int bg = slot == SLOT_ABORT || slot == SLOT_CLOSE;

    if (slot == SLOT_NEGOTIATE) {
        discard(aw);
        PyErr_SetString(pym.error,
                        "The negotiate callback cannot be a coroutine");
        return -1;
    }
    if (c->srv != NULL)
        return start_server(c, ctx, slot, aw, bg);
    if (bg) {
        /* Nothing waits for it: run it now, outside the callback (as
         * under main(), its context methods are refused). */
        int was = ctx->in_cb;
        PyObject *r;
        ctx->in_cb = 0;
        r = run_here(c, aw);
        ctx->in_cb = was;
        if (r == NULL)
            return -1;
        Py_DECREF(r);
        return PMC_CONTINUE;
    }
    Py_XSETREF(c->coro, aw);
    c->coro_slot = slot;
    ctx->pending = 1;
    return PMC_PENDING;
}

/* --- context methods while pending ---------------------------------- */

typedef struct xcall {
    void (*op)(pmc_session *s, void *arg);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int gone;
} xcall;

/* On the connection's thread: run the method's core call, keep the
 * handler pending. */
static int xcall_fn(pmc_session *s, void *p)
{
    xcall *x = p;

    if (s != NULL)
        x->op(s, x->arg);
    else
        x->gone = 1;
    pthread_mutex_lock(&x->mu);
    x->done = 1;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    return PMC_PENDING;
}

static int refuse_outside(void)
{
    PyObject *exc = PyObject_CallFunction(pym.error, "s",
                                          "context used outside of its "
                                          "callbacks");
    PyObject *st;

    if (exc == NULL)
        return -1;
    /* The binding's own check for the core's rule: no handler runs and
     * nothing is pending, so an action is at the wrong stage. */
    st = PyUnicode_FromString(pmc_status_name(PMC_ERR_WRONG_STAGE));
    if (st != NULL)
        PyObject_SetAttrString(exc, "status", st);
    Py_XDECREF(st);
    PyErr_SetObject(pym.error, exc);
    Py_DECREF(exc);
    return -1;
}

int pym_ctx_run(ContextObject *ctx, void (*op)(pmc_session *s, void *arg),
                void *arg)
{
    xcall x;
    pmc_status st;

    if (ctx->s == NULL) {
        pym_error("bad context");
        return -1;
    }
    if (ctx->in_cb || (ctx->pending && ctx->srv == NULL)) {
        op(ctx->s, arg);
        return 0;
    }
    if (!ctx->pending)
        return refuse_outside();
    memset(&x, 0, sizeof x);
    x.op = op;
    x.arg = arg;
    pthread_mutex_init(&x.mu, NULL);
    pthread_cond_init(&x.cv, NULL);
    st = pmc_server_resume(ctx->srv, ctx->conn_id, xcall_fn, &x);
    if (st == PMC_OK) {
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&x.mu);
        while (!x.done)
            pthread_cond_wait(&x.cv, &x.mu);
        pthread_mutex_unlock(&x.mu);
        Py_END_ALLOW_THREADS
    }
    pthread_cond_destroy(&x.cv);
    pthread_mutex_destroy(&x.mu);
    if (st != PMC_OK) {
        PyErr_NoMemory();
        return -1;
    }
    if (x.gone) {
        pym_error("bad context");
        return -1;
    }
    return 0;
}
