/*
 * pmcore_perl_server.c - sockets and serving through libpmcore's server
 * layer: setconn's listener (pmc_listen), one adopted connection
 * (pmc_serve_fd) and the built-in dispatchers (pmc_server_run).
 */
#include "pmcore_perl.h"

#include <errno.h>
#include <string.h>

int pmp_listen(pTHX_ const char *spec, int mode, int backlog, SV **why)
{
    pmc_error err;
    int fd, e;

    memset(&err, 0, sizeof err);
    fd = pmc_listen(spec, mode, backlog, &err);
    e = errno;
    *why = fd >= 0 ? &PL_sv_undef : sv_2mortal(newSVpv(err.message, 0));
    errno = e; /* setconn reports $! as 1.27 did */
    return fd;
}

static void *pmp_conn_open(void *app, const pmc_conn_info *ci)
{
    PERL_UNUSED_ARG(ci);
    return app;
}

static void pmp_conn_close(void *app, void *ud)
{
    PERL_UNUSED_ARG(app);
    ((pmp_ctx *)ud)->s = NULL; /* the server frees the session */
}

/* An engine line as the log sink gets it: the connection, the queue id
 * once known, the text (mortal). */
static SV *pmp_log_text(pTHX_ uint64_t id, const char *qid, const char *msg)
{
    if (!id)
        return sv_2mortal(newSVpvf("%s\n", msg));
    return sv_2mortal(newSVpvf("conn %" UVuf "%s%s%s: %s\n", (UV)id,
                               qid ? " (queue " : "", qid ? qid : "",
                               qid ? ")" : "", msg));
}

static void pmp_conn_log(void *app, int level, uint64_t id, const char *qid,
                         const char *msg)
{
    pmp_ctx *c = app;
    dTHXa(c->perl);
    unsigned exits = pmp_exit_count();
    /* In its own scope: inside the server loop nothing else frees
     * mortals. */
    ENTER;
    SAVETMPS;
    pmp_log(aTHX_ c, level, pmp_log_text(aTHX_ id, qid, msg));
    if (pmp_exit_count() != exits)
        return; /* the log sink exited: Perl unwound this scope */
    FREETMPS;
    LEAVE;
}

pmc_status pmp_serve_fd(pTHX_ pmp_ctx *c, int fd, SV **why)
{
    static uint64_t conn_id;
    pmc_server_config cfg;
    pmc_error err;
    pmc_status st;

    pmc_server_config_init(&cfg);
    cfg.session = c->cfg;
    cfg.handlers = &c->h;
    cfg.app = c;
    cfg.conn_open = pmp_conn_open;
    cfg.conn_close = pmp_conn_close;
    cfg.log = pmp_conn_log;
    cfg.log_level = PMC_LOG_WARNING;
    if (c->read_timeout_ms >= 0)
        cfg.read_timeout_ms = c->read_timeout_ms;
    if (c->idle_timeout_ms >= 0)
        cfg.idle_timeout_ms = c->idle_timeout_ms;
    memset(&err, 0, sizeof err);
    st = pmc_serve_fd(&cfg, fd, ++conn_id, NULL, &err);
    c->s = NULL;
    *why = st == PMC_OK ? &PL_sv_undef
                        : sv_2mortal(newSVpvf("%s (%s)", err.message,
                                              pmc_status_name(st)));
    return st;
}


/* --- the built-in dispatchers: pmc_server_run --------------------------- */

typedef struct pmp_srv {
    PerlInterpreter *perl;
    SV *milter;        /* the Sendmail::PMilter object */
    HV *opts;          /* the dispatcher's options */
    pmp_ctx *tmpl;     /* handler table shared by every connection */
    SV *tmpl_rv;
    unsigned long requests;  /* connections of this process */
    pmc_server *srv;
    pmc_server_model model;
} pmp_srv;

/* Call a method of the milter; returns its scalar result (mortal) or NULL
 * after a die, which is logged. */
static SV *pmp_method(pTHX_ pmp_srv *m, const char *name, SV *a, SV *b)
{
    dSP;
    SV *rv = NULL;
    int n;

    PUSHMARK(SP);
    XPUSHs(m->milter);
    if (a) XPUSHs(a);
    if (b) XPUSHs(b);
    PUTBACK;
    n = pmp_safe_call(aTHX_ PMP_CALL_METHOD, name, G_SCALAR);
    if (n < 0) {
        pmp_exit_stop();
        return NULL;
    }
    SPAGAIN;
    if (n > 0)
        rv = POPs;
    PUTBACK;
    if (SvTRUE(ERRSV)) {
        pmp_log(aTHX_ m->tmpl, PMC_LOG_ERR, sv_2mortal(newSVsv(ERRSV)));
        return NULL;
    }
    return rv;
}

/* Each connection gets its own Context hash (1.27: one per connection). */
static void *pmp_srv_open(void *app, const pmc_conn_info *ci)
{
    pmp_srv *m = app;
    dTHXa(m->perl);
    pmp_ctx *c = NULL;
    SV *rv;
    unsigned exits = pmp_exit_count();

    PERL_UNUSED_ARG(ci);
    m->requests++;
    if (pmp_exit_pending())
        return m->tmpl; /* its handlers end the session at once */
    ENTER;
    SAVETMPS;
    rv = pmp_method(aTHX_ m, "_server_context", NULL, NULL);
    if (pmp_exit_count() != exits)
        return m->tmpl;
    if (rv && SvROK(rv)) {
        SV **o = hv_fetchs((HV *)SvRV(rv), "pmcore", 0);
        pmp_ctx_attach(aTHX_ rv, m->tmpl->cbs_hv,
                       o && SvROK(*o) ? (HV *)SvRV(*o) : NULL);
        c = pmp_ctx_get(aTHX_ rv, 0);
        if (c)
            c->self = newSVsv(rv);
    }
    FREETMPS;
    LEAVE;
    return c ? c : m->tmpl; /* the template serves if Perl failed */
}

static void pmp_srv_close(void *app, void *ud)
{
    pmp_srv *m = app;
    pmp_ctx *c = ud;
    dTHXa(m->perl);
    SV *self = c->self;

    c->s = NULL;
    c->self = NULL;
    SvREFCNT_dec(self); /* frees the Context unless the milter kept it */
}

/* Perl runs %SIG handlers at safe points; calling a Perl sub under
 * G_EVAL gives them one, and a handler that dies cannot unwind through the
 * server's C frames.  _tick answers 1 (stop), 2 (reload) or 0.  A handler
 * that calls exit stops the server: at once where this process runs the
 * callbacks (they cannot run any more), with the usual drain where
 * worker processes do (prefork, postfork), before the exit goes on. */
static int pmp_srv_tick(void *app)
{
    pmp_srv *m = app;
    dTHXa(m->perl);
    dSP;
    int n, what = 0;

    if (pmp_exit_pending())
        return 0; /* the stop is under way */
    ENTER;
    SAVETMPS;
    PUSHMARK(SP);
    PUTBACK;
    n = pmp_safe_call(aTHX_ PMP_CALL_PV, "Sendmail::PMilter::Dispatch::_tick",
                      G_SCALAR | G_NOARGS);
    if (n < 0) {
        pmc_server_stop(m->srv, m->model == PMC_MODEL_LOOP ? 0 : -1);
        return 0;
    }
    SPAGAIN;
    if (n > 0) {
        SV *rv = POPs;
        what = SvOK(rv) ? (int)SvIV(rv) : 0;
    }
    PUTBACK;
    if (SvTRUE(ERRSV)) {
        /* A %SIG handler died; its flag was set first, so ask again. */
        pmp_log(aTHX_ m->tmpl, PMC_LOG_ERR, sv_2mortal(newSVsv(ERRSV)));
        SV *stop = get_sv("Sendmail::PMilter::Dispatch::STOP", GV_ADD);
        SV *reload = get_sv("Sendmail::PMilter::Dispatch::RELOAD", GV_ADD);
        what = SvTRUE(stop) ? 1 : SvTRUE(reload) ? 2 : 0;
        if (what == 2)
            sv_setiv(reload, 0);
    }
    FREETMPS;
    LEAVE;
    if (what == 2)
        pmc_server_reload(m->srv);
    return what == 1;
}

static int pmp_srv_child_init(void *app)
{
    pmp_srv *m = app;
    dTHXa(m->perl);
    SV *rv;
    int fail;

    m->requests = 0;
    ENTER;
    SAVETMPS;
    rv = pmp_method(aTHX_ m, "_child_hook", sv_2mortal(newSVpvs("child_init")),
                    NULL);
    /* A fresh worker that exits: nothing of the engine's is under way. */
    pmp_exit_resume(aTHX);
    fail = rv == NULL;
    FREETMPS;
    LEAVE;
    return fail;
}

static void pmp_srv_child_exit(void *app)
{
    pmp_srv *m = app;
    dTHXa(m->perl);

    /* The worker's connections are closed: the exit goes on (END blocks,
     * its status), without the user's child_exit, as 1.27's would. */
    pmp_exit_resume(aTHX);
    ENTER;
    SAVETMPS;
    (void)pmp_method(aTHX_ m, "_child_hook", sv_2mortal(newSVpvs("child_exit")),
                     sv_2mortal(newSVuv(m->requests)));
    FREETMPS;
    LEAVE;
}

/* A postfork child whose connection is closed: an exit called in its
 * callbacks goes on now.  Otherwise the engine ends the child. */
static void pmp_srv_fork_exit(void *app)
{
    pmp_srv *m = app;
    dTHXa(m->perl);

    pmp_exit_resume(aTHX);
}

static void pmp_srv_log(void *app, int level, uint64_t id, const char *qid,
                        const char *msg)
{
    pmp_srv *m = app;
    dTHXa(m->perl);
    unsigned exits = pmp_exit_count();
    ENTER; /* as pmp_conn_log */
    SAVETMPS;
    pmp_log(aTHX_ m->tmpl, level, pmp_log_text(aTHX_ id, qid, msg));
    if (pmp_exit_count() != exits)
        return;
    FREETMPS;
    LEAVE;
}

static IV pmp_iv(pTHX_ HV *o, const char *key, IV def)
{
    SV **svp = hv_fetch(o, key, (I32)strlen(key), 0);
    return svp && SvOK(*svp) ? SvIV(*svp) : def;
}

/* Serve a listening descriptor (owned by the server from now on) with the
 * model and limits in 'opts'; returns undef or the error text. */
SV *pmp_server_run(pTHX_ SV *milter, int fd, HV *opts, SV *tmpl_rv)
{
    pmc_server_config cfg;
    pmp_srv m;
    pmc_error err;
    pmc_status st;

    memset(&m, 0, sizeof m);
    m.perl = aTHX;
    m.milter = milter;
    m.opts = opts;
    m.tmpl = pmp_ctx_get(aTHX_ tmpl_rv, 1);
    pmc_server_config_init(&cfg);
    cfg.session = m.tmpl->cfg;
    cfg.handlers = &m.tmpl->h;
    cfg.app = &m;
    cfg.conn_open = pmp_srv_open;
    cfg.conn_close = pmp_srv_close;
    cfg.log = pmp_srv_log;
    cfg.log_level = (int)pmp_iv(aTHX_ opts, "log_level", PMC_LOG_WARNING);
    cfg.model = (pmc_server_model)pmp_iv(aTHX_ opts, "model", PMC_MODEL_LOOP);
    cfg.workers = (unsigned)pmp_iv(aTHX_ opts, "workers", 0);
    cfg.threads = (unsigned)pmp_iv(aTHX_ opts, "threads", 0);
    cfg.max_connections = (unsigned)pmp_iv(aTHX_ opts, "max_connections", 0);
    cfg.max_conn_per_worker =
        (unsigned)pmp_iv(aTHX_ opts, "max_conn_per_worker", 0);
    cfg.max_requests_per_worker =
        (unsigned)pmp_iv(aTHX_ opts, "max_requests_per_worker", 0);
    cfg.read_timeout_ms = (int)pmp_iv(aTHX_ opts, "read_timeout_ms",
                                      cfg.read_timeout_ms);
    cfg.idle_timeout_ms = (int)pmp_iv(aTHX_ opts, "idle_timeout_ms",
                                      cfg.idle_timeout_ms);
    cfg.drain_timeout_ms = (int)pmp_iv(aTHX_ opts, "drain_timeout_ms",
                                       cfg.drain_timeout_ms);
    cfg.tick = pmp_srv_tick;
    cfg.tick_interval_ms = (int)pmp_iv(aTHX_ opts, "tick_ms", 100);
    m.model = cfg.model;
    if (cfg.model == PMC_MODEL_PREFORK) {
        cfg.child_init = pmp_srv_child_init;
        cfg.child_exit = pmp_srv_child_exit;
    } else if (cfg.model == PMC_MODEL_FORK) {
        cfg.child_exit = pmp_srv_fork_exit;
    }
    memset(&err, 0, sizeof err);
    m.srv = pmc_server_new(&cfg, &err);
    if (!m.srv)
        return sv_2mortal(newSVpvf("%s (%s)", err.message,
                                   pmc_status_name(err.code)));
    st = pmc_server_add_fd(m.srv, fd, &err);
    pmp_exit_server(m.srv);
    if (st == PMC_OK)
        st = pmc_server_run(m.srv, &err);
    pmp_exit_server(NULL);
    pmc_server_free(m.srv);
    return st == PMC_OK ? &PL_sv_undef
                        : sv_2mortal(newSVpvf("%s (%s)", err.message,
                                              pmc_status_name(st)));
}
