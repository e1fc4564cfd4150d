/* negotiate.c - pymilter's negotiate callback on top of pmc_negotiation.
 *
 * pymilter calls cb(ctx, opts) with opts = [offered actions, offered
 * protocol | every NR bit, 0, 0] (the NR bits because they can be faked).
 * CONTINUE means "request opts[0] and opts[1]"; ALL_OPTS means every offered
 * action plus SKIP; anything else refuses the MTA.  Enforcing the offer
 * (dropping or faking bits, refusing unoffered ones) is the core's job. */
#include "pym.h"

static int read_opts(PyObject *opts, pmc_negotiation *n)
{
    Py_ssize_t len;
    unsigned long v[2];
    int i;

    if (!PyList_Check(opts)) {
        PyErr_SetString(PyExc_TypeError, "negotiate: opts must stay a list");
        return -1;
    }
    len = PyList_GET_SIZE(opts);
    for (i = 0; i < 2; i++) {
        /* A shortened list keeps the offered value (pymilter read past its
         * end here, spec 6.11). */
        PyObject *o = i < len ? PyList_GET_ITEM(opts, i) : NULL;
        if (o == NULL) {
            v[i] = i == 0 ? n->actions : n->protocol;
            continue;
        }
        v[i] = PyLong_AsUnsignedLongMask(o); /* negative values wrap */
        if (v[i] == (unsigned long)-1 && PyErr_Occurred())
            return -1;
    }
    n->actions = (uint32_t)v[0];
    n->protocol = (uint32_t)v[1];
    return 0;
}

int pym_negotiate(pmc_session *s, void *ud, pmc_negotiation *n)
{
    pym_conn *c = ud;
    PyObject *cb, *opts = NULL, *args;
    int g = pym_gil_take();
    int v = PMC_ALL_OPTS;

    cb = c->cb ? c->cb[SLOT_NEGOTIATE] : pym.cb[SLOT_NEGOTIATE];
    if (cb == NULL)
        goto out; /* no callback: ALL_OPTS, and no context is made */
    /* _TestConn running the language-neutral vectors starts opts from the
     * session's own proposal, so a callback that changes nothing keeps the
     * configured proposal, as the C runner does. */
    if (c->raw_negotiate) /* + the offer and version, for the vector log */
        opts = Py_BuildValue("[kkiikkkk]", (unsigned long)n->actions,
                             (unsigned long)n->protocol, 0, 0,
                             (unsigned long)n->mta_version,
                             (unsigned long)n->mta_actions,
                             (unsigned long)n->mta_protocol,
                             (unsigned long)n->version);
    else
        opts = Py_BuildValue("[kkii]", (unsigned long)n->mta_actions,
                             (unsigned long)(n->mta_protocol | PMC_P_NR_MASK),
                             0, 0);
    args = opts ? PyTuple_Pack(1, opts) : NULL; /* pym_call steals args */
    if (c->ctx != NULL)
        c->ctx->symlists = 0;
    /* pym_call prints errors and answers them by the exception policy:
     * under CONTINUE the list is used as it stands, as in pymilter; any
     * verdict but CONTINUE and ALL_OPTS refuses the MTA. */
    (void)pym_call(c, s, SLOT_NEGOTIATE, args, &v);
    if (v == PMC_CONTINUE) {
        if (c->raw_negotiate && PyList_Check(opts) &&
            PyList_GET_SIZE(opts) >= 8)
            n->version = (uint32_t)PyLong_AsUnsignedLongMask(
                PyList_GET_ITEM(opts, 7));
        if (PyErr_Occurred() || read_opts(opts, n) < 0) {
            PyErr_Print();
            v = PMC_REJECT;
        }
    } else if (v != PMC_ALL_OPTS) {
        v = PMC_REJECT;
    }
    Py_XDECREF(opts);
out:
    pym_gil_give(g);
    return v;
}
