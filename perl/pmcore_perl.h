/*
 * pmcore_perl.h - the Perl side of libpmcore: conversion and lifecycle only.
 *
 * A Sendmail::PMilter::Context hash carries one pmp_ctx in ext magic (so the
 * hash keeps exactly the 1.27 fields and the C state dies with it).  The
 * pmp_ctx holds the handler table handed to the core and the Perl callbacks
 * it calls.  Protocol logic stays in libpmcore.
 */
#ifndef PMCORE_PERL_H
#define PMCORE_PERL_H

#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"

#include "pmcore.h"

#ifndef LIKELY /* perl < 5.22 */
#define LIKELY(cond) (cond)
#endif

/* Argument positions whose SVs a connection keeps (envfrom's ESMTP
 * arguments beyond these get fresh SVs). */
#define PMP_POOL_SLOTS 8

typedef struct pmp_ctx {
    PerlInterpreter *perl; /* callbacks run in this interpreter */
    HV *hv;                /* the Context hash; it owns us (no refcount) */
    pmc_session *s;        /* the session of the running conversation */
    pmc_session *own;      /* a session we created (sans-I/O use) */
    pmc_handlers h;        /* only events with a Perl callback are set */
    pmc_config cfg;
    char *symlist[PMC_STAGE_COUNT];
    SV *cb[PMC_EV_COUNT];  /* CODE refs, refcounted */
    SV *quit_cb;           /* the undocumented 1.27 'quit' hook */
    SV *log_cb;            /* log sink; NULL = warn */
    HV *cbs_hv;            /* the callbacks hash (refcounted) */
    SV *self;              /* server connections: keeps the Context alive */
    SV *cb_sv;             /* the value SV of the hash's {cb} (refcounted) */
    SV *ctx_rv;            /* $_[0] of the callbacks: refers to hv only
                            * during a call (else a cycle hv -> us -> hv) */
    SV *pool[PMP_POOL_SLOTS]; /* argument SVs reused between callbacks,
                               * one per argument position */
    int busy;              /* a callback runs: its arguments are in use */
    int compat;            /* 1: reproduce 1.27's negotiation */
    int die_verdict;       /* pmc verdict after a die or a bad return */
    int failed;            /* the last callback died or returned garbage */
    int reply_set;         /* setreply ran: {reply} to delete after it */
    int read_timeout_ms, idle_timeout_ms;
    size_t max_packet;
} pmp_ctx;

/* Context hash -> pmp_ctx; croaks when missing and 'need' is set. */
pmp_ctx *pmp_ctx_get(pTHX_ SV *ctx, int need);
/* Build the pmp_ctx of a Context from its callbacks hash and options. */
void pmp_ctx_attach(pTHX_ SV *ctx, HV *callbacks, HV *opts);

/* The entry named NAME of a table of COUNT structs of SIZE bytes whose
 * first member is a const char *name; NULL when none is. */
const void *pmp_by_name(const void *table, size_t count, size_t size,
                        const char *name);

/* Context actions: NULL on success, else a mortal "sentence (STATUS)". */
SV *pmp_action(pTHX_ pmp_ctx *c, const char *op, SV **a, int n);
SV *pmp_getsymval(pTHX_ pmp_ctx *c, SV *name);
/* 1.27's EOM-only and capability checks (croak); the die of a failed
 * action with $Sendmail::PMilter::Context::ERROR set. */
void pmp_eom_flag(pTHX_ SV *ctx, const char *name, UV flag,
                  const char *flagname);
void pmp_action_die(pTHX_ const char *op, SV *err);
SV *pmp_stage_macros(pTHX_ pmp_ctx *c, int letter);

/* Sans-I/O use of a Context: own a session and feed it. */
pmc_session *pmp_open(pTHX_ pmp_ctx *c);
SV *pmp_status_sv(pTHX_ pmc_status st);
int pmp_core_verdict(int smfis);

/* Serve one connected descriptor with pmc_serve_fd. */
pmc_status pmp_serve_fd(pTHX_ pmp_ctx *c, int fd, SV **why);
/* A listening socket for a spec (pmc_listen); -1 with errno and *why. */
int pmp_listen(pTHX_ const char *spec, int mode, int backlog, SV **why);

/* Run a built-in dispatcher's server on a listening descriptor. */
SV *pmp_server_run(pTHX_ SV *milter, int fd, HV *opts, SV *tmpl_rv);

/* Calls into Perl from under the engine: call_sv/call_method/call_pv
 * with G_EVAL that also catch exit().  Returns the count, or -1 when the
 * code called exit: Perl has then unwound every scope (callers must not
 * FREETMPS/LEAVE what they entered before) and the exit is pending. */
enum { PMP_CALL_SV, PMP_CALL_METHOD, PMP_CALL_PV };
I32 pmp_safe_call(pTHX_ int how, const void *what, I32 flags);
int pmp_exit_pending(void);
/* Exits caught so far: a caller compares it around a call to learn
 * whether an exit unwound its scope. */
unsigned pmp_exit_count(void);
/* The server of this process (NULL when none): stopped on an exit. */
void pmp_exit_server(pmc_server *srv);
/* The server this process runs (set for the run), or NULL. */
pmc_server *pmp_running_server(void);
void pmp_exit_stop(void);
/* Go on with a pending exit (does not return); nothing if none. */
void pmp_exit_resume(pTHX);

/* Logging through the log callback or warn. */
void pmp_log(pTHX_ pmp_ctx *c, int level, SV *msg);

/* The in-process MTA used by the tests (pmcore_perl_client.c). */
typedef struct pmp_pipe {
    pmc_client *cl;
    pmc_transport tr;
    pmc_fd_transport_state fdst;
    SV *ctx;  /* RV to the Context, kept alive by the pipe */
} pmp_pipe;
pmp_pipe *pmp_pipe_new(pTHX_ SV *ctx, int fd, HV *opts);
void pmp_pipe_free(pTHX_ pmp_pipe *p);
SV *pmp_pipe_call(pTHX_ pmp_pipe *p, const char *op, SV **a, int n);

#endif
