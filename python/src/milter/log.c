/* log.c - the engine's log lines into Python's logging (logger "milter").
 *
 * The core may log from any thread: the loop thread, a pool thread, a
 * prefork worker.  A thread that holds the GIL logs at once.  Any other
 * thread only queues the line: taking the GIL from under the engine could
 * wait on a thread that itself waits for the engine (pmc_server_stop holds
 * the GIL), so the queue is drained by the next thread that has the GIL
 * anyway (the 200 ms tick, the callbacks, main() on its way out).  The
 * queue is bounded; what does not fit is counted and reported.
 */
#include "pym.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define PYM_LOG_QUEUE_MAX 1024

typedef struct logrec {
    struct logrec *next;
    int level;
    uint64_t id;
    int has_qid;
    char text[]; /* qid '\0' msg '\0' */
} logrec;

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static logrec *q_head, **q_tail = &q_head;
static unsigned q_len;
static unsigned long q_dropped;
static PyObject *logger; /* logging.getLogger("milter"), once asked for */

/* syslog's numbers (PMC_LOG_*) to logging's.  NOTICE has no logging
 * level of its own: INFO. */
static int py_level(int level)
{
    if (level < PMC_LOG_ERR) /* syslog's CRIT, ALERT, EMERG */
        return 50;
    if (level == PMC_LOG_ERR)
        return 40;
    if (level == PMC_LOG_WARNING)
        return 30;
    if (level <= PMC_LOG_INFO)
        return 20;
    return 10;
}

/* logging.getLogger("milter"), made once (GIL held); NULL with no error
 * set when logging cannot be imported (interpreter shutting down). */
static PyObject *get_logger(void)
{
    PyObject *mod;

    if (logger != NULL)
        return logger;
    if ((mod = PyImport_ImportModule("logging")) == NULL) {
        PyErr_Clear();
        return NULL;
    }
    logger = PyObject_CallMethod(mod, "getLogger", "s", "milter");
    Py_DECREF(mod);
    if (logger == NULL)
        PyErr_Clear();
    return logger;
}

/* One record to the logger (GIL held).  The text names the connection
 * and the queue id, so the stock formats show them; `extra` gives them as
 * the record's conn_id and queue_id for formats and filters that want
 * them.  Whatever exception the caller had set survives the call. */
static void emit(int level, uint64_t id, const char *qid, const char *msg)
{
    PyObject *lg, *text, *extra, *kw, *args, *meth, *r;
    PyObject *et, *ev, *tb;

    PyErr_Fetch(&et, &ev, &tb);
    if ((lg = get_logger()) == NULL)
        goto out;
    if (id)
        text = qid ? PyUnicode_FromFormat("conn %llu (queue %s): %s",
                                          (unsigned long long)id, qid, msg)
                   : PyUnicode_FromFormat("conn %llu: %s",
                                          (unsigned long long)id, msg);
    else
        text = PyUnicode_FromString(msg);
    extra = Py_BuildValue("{s:K,s:s}", "conn_id", (unsigned long long)id,
                          "queue_id", qid);
    kw = extra ? Py_BuildValue("{s:O}", "extra", extra) : NULL;
    args = text ? Py_BuildValue("(iO)", py_level(level), text) : NULL;
    meth = PyObject_GetAttrString(lg, "log");
    r = meth && args && kw ? PyObject_Call(meth, args, kw) : NULL;
    /* A handler that raises must not take the conversation down. */
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(meth);
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_XDECREF(extra);
    Py_XDECREF(text);
out:
    PyErr_Restore(et, ev, tb);
}

void pym_log_flush(void)
{
    logrec *r, *next;
    unsigned long dropped;

    pthread_mutex_lock(&q_lock);
    r = q_head;
    q_head = NULL;
    q_tail = &q_head;
    q_len = 0;
    dropped = q_dropped;
    q_dropped = 0;
    pthread_mutex_unlock(&q_lock);
    for (; r != NULL; r = next) {
        const char *qid = r->has_qid ? r->text : NULL;
        next = r->next;
        emit(r->level, r->id, qid, r->text + strlen(r->text) + 1);
        PyMem_RawFree(r);
    }
    if (dropped) {
        char line[96];
        snprintf(line, sizeof line, "%lu log line(s) dropped: the log "
                 "queue was full", dropped);
        emit(PMC_LOG_WARNING, 0, NULL, line);
    }
}

void pym_log_line(void *app, int level, uint64_t id, const char *qid,
                  const char *msg)
{
    size_t ql = qid ? strlen(qid) : 0, ml = strlen(msg);
    logrec *r;

    (void)app;
    if (PyGILState_Check()) {
        pym_log_flush(); /* what waited comes first */
        emit(level, id, qid, msg);
        return;
    }
    r = PyMem_RawMalloc(sizeof *r + ql + ml + 2);
    pthread_mutex_lock(&q_lock);
    if (r == NULL || q_len >= PYM_LOG_QUEUE_MAX) {
        q_dropped++;
        pthread_mutex_unlock(&q_lock);
        PyMem_RawFree(r);
        return;
    }
    r->next = NULL;
    r->level = level;
    r->id = id;
    r->has_qid = qid != NULL;
    memcpy(r->text, qid ? qid : "", ql + 1);
    memcpy(r->text + ql + 1, msg, ml + 1);
    *q_tail = r;
    q_tail = &r->next;
    q_len++;
    pthread_mutex_unlock(&q_lock);
}

int pym_log_level(void)
{
    PyObject *lg, *v;
    long lvl;

    if (pym.dbg > 0)
        return PMC_LOG_DEBUG;
    if ((lg = get_logger()) == NULL)
        return PMC_LOG_WARNING;
    if ((v = PyObject_CallMethod(lg, "getEffectiveLevel", NULL)) == NULL) {
        PyErr_Clear();
        return PMC_LOG_WARNING;
    }
    lvl = PyLong_AsLong(v);
    Py_DECREF(v);
    if (lvl == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return PMC_LOG_WARNING;
    }
    /* The lines logging would drop are not made at all. */
    if (lvl <= 10)
        return PMC_LOG_DEBUG;
    if (lvl <= 20)
        return PMC_LOG_INFO;
    if (lvl <= 30)
        return PMC_LOG_WARNING;
    return PMC_LOG_ERR; /* the core makes nothing above ERR */
}
