/* testconn.h - private to testconn.c and testclient.c: the _TestConn
 * object and the helpers its two halves share. */
#ifndef PYM_TESTCONN_H
#define PYM_TESTCONN_H

#include "pym.h"

typedef struct {
    PyObject_HEAD
    pym_conn conn;
    PyObject *cbs[SLOT_COUNT];
    pmc_handlers handlers;   /* the session keeps a pointer to it */
    pmc_session *s;
    pmc_client *cl;          /* NULL in raw mode */
    pmc_transport tr;
    pmc_fd_transport_state fdst; /* client over a socket (fd= given) */
    int busy;                /* inside an engine call: no re-entry */
} TestConnObject;

/* Refuse re-entry from a callback and use before init; need_client: the
 * call needs the MTA client (not raw mode).  Marks the object busy. */
int pym_tc_enter(TestConnObject *self, int need_client);
/* Re-raise a SystemExit/KeyboardInterrupt kept from a callback; else ok. */
PyObject *pym_tc_after(TestConnObject *self, PyObject *ok);

/* testclient.c: the MTA-side calls (see the method table in testconn.c). */
PyObject *TC_negotiate(TestConnObject *self, PyObject *args);
PyObject *TC_negotiated(TestConnObject *self, PyObject *args);
PyObject *TC_symlist(TestConnObject *self, PyObject *args);
PyObject *TC_set_macros(TestConnObject *self, PyObject *args);
PyObject *TC_connect(TestConnObject *self, PyObject *args);
PyObject *TC_helo(TestConnObject *self, PyObject *args);
PyObject *TC_mail(TestConnObject *self, PyObject *args);
PyObject *TC_rcpt(TestConnObject *self, PyObject *args);
PyObject *TC_header(TestConnObject *self, PyObject *args);
PyObject *TC_body(TestConnObject *self, PyObject *args);
PyObject *TC_unknown(TestConnObject *self, PyObject *args);
PyObject *TC_data(TestConnObject *self, PyObject *args);
PyObject *TC_eoh(TestConnObject *self, PyObject *args);
PyObject *TC_eom(TestConnObject *self, PyObject *args);
PyObject *TC_abort(TestConnObject *self, PyObject *args);
PyObject *TC_quit(TestConnObject *self, PyObject *args);
PyObject *TC_quit_nc(TestConnObject *self, PyObject *args);

#endif
