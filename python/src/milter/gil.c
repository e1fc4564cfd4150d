/* gil.c - the GIL for the engine's threads.
 *
 * PyGILState_Ensure on a thread with no Python thread state makes one, and
 * the matching Release deletes it: every callback on a pool thread paid for
 * a new thread state and a new frame stack (callgrind: about 1,700
 * instructions per callback in Ensure/Release alone, and some 30,000 per
 * message with the frame-stack set-up).  pym_gil_ensure keeps the thread
 * state of an engine thread for the thread's life instead: one extra
 * Ensure, never paired, dropped by a thread-exit destructor.  Once a
 * thread has its state, taking the GIL is PyEval_RestoreThread and giving
 * it back PyEval_SaveThread (about 300 instructions less per callback
 * than the Ensure/Release pair). */
#include "pym.h"

#include <pthread.h>

static pthread_key_t kept_key;
static pthread_once_t kept_once = PTHREAD_ONCE_INIT;

/* Thread exit: give back the kept reference, which deletes the thread
 * state.  Engine threads end while main() waits for them (without the
 * GIL), so the interpreter is alive and the GIL can be taken. */
static void drop_kept(void *unused)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();

    (void)unused;
    if (ts == NULL || !Py_IsInitialized())
        return;
    PyEval_RestoreThread(ts);
    PyGILState_Release(PyGILState_LOCKED);
}

static void make_key(void)
{
    (void)pthread_key_create(&kept_key, drop_kept);
}

/* The thread state running now on this thread (NULL when it does not
 * hold the GIL): public from 3.13, the same function's older spelling
 * before (PyGILState_Check can answer yes for a thread that does not hold
 * the GIL when its check is disabled, and cost more). */
#if PY_VERSION_HEX >= 0x030D0000
#define current_ts() PyThreadState_GetUnchecked()
#else
#define current_ts() _PyThreadState_UncheckedGet()
#endif

/* The state this thread keeps (an engine thread's), so a take need not
 * look it up. */
static _Thread_local PyThreadState *kept_ts;

int pym_gil_take(void)
{
    PyThreadState *ts = kept_ts ? kept_ts : PyGILState_GetThisThreadState();
    PyGILState_STATE g;

    if (ts != NULL) {
        /* Held already (a run's take, or a _TestConn called from Python):
         * nothing to do, and nothing to undo in pym_gil_give.  Otherwise
         * take it with the thread's state, skipping PyGILState_Ensure's
         * nesting count, which only the kept reference uses here. */
        if (current_ts() == ts)
            return PYM_GIL_HELD;
        PyEval_RestoreThread(ts);
        return PYM_GIL_SAVE;
    }
    g = PyGILState_Ensure();
    (void)PyGILState_Ensure(); /* the thread's own reference */
    pthread_once(&kept_once, make_key);
    (void)pthread_setspecific(kept_key, &kept_key);
    kept_ts = PyGILState_GetThisThreadState();
    return (int)g;
}

void pym_gil_give(int g)
{
    if (g == PYM_GIL_SAVE)
        (void)PyEval_SaveThread();
    else if (g != PYM_GIL_HELD)
        PyGILState_Release((PyGILState_STATE)g);
}
