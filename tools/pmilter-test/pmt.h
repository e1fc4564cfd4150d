/* pmilter-test: declarations shared by its files.  The tool plays an MTA
 * (Postfix or Sendmail) against a milter socket with libpmcore's client,
 * prints what was said, and applies the filter's modifications to the
 * message. */
#ifndef PMT_H
#define PMT_H

#include "pmcore.h"

#include <stdio.h>

/* Exit codes; documented in pmilter-test.1. */
enum {
    PMT_EXIT_ACCEPT = 0,
    PMT_EXIT_REJECT = 1,
    PMT_EXIT_TEMPFAIL = 2,
    PMT_EXIT_DISCARD = 3,
    PMT_EXIT_PROTOCOL = 4,
    PMT_EXIT_CONNECT = 5,
    PMT_EXIT_USAGE = 64
};

/* What happened to a message or a connection, in rising severity: the exit
 * code is that of the most severe outcome of the run. */
typedef enum pmt_outcome {
    PMT_OUT_NONE = 0, /* nothing decided (message in progress) */
    PMT_OUT_ABORTED,  /* ABORT before EOM: no verdict, exits 0 */
    PMT_OUT_ACCEPT,
    PMT_OUT_DISCARD,
    PMT_OUT_REJECT,
    PMT_OUT_TEMPFAIL
} pmt_outcome;

/* A growable array of NUL-terminated byte strings. */
typedef struct pmt_strv {
    char **v;
    size_t *len;
    size_t n, cap;
} pmt_strv;

/* Header fields: names[i] and values[i] go together. */
typedef struct pmt_fields {
    pmt_strv names, values;
} pmt_fields;

enum pmt_rcpt_state {
    PMT_RCPT_SENT,      /* sent, no verdict against it */
    PMT_RCPT_REFUSED,   /* 5xx */
    PMT_RCPT_TEMPFAILED,/* 4xx */
    PMT_RCPT_ADDED,     /* added by the filter at EOM */
    PMT_RCPT_DELETED    /* removed by the filter at EOM */
};

typedef struct pmt_rcpt {
    char *addr;
    char *args;   /* ESMTP arguments joined by spaces, or NULL */
    int state;
    char *reply;  /* SMTP reply text for refused ones, or NULL */
} pmt_rcpt;

/* One message of the conversation: what was sent, then the result. */
typedef struct pmt_message {
    unsigned number;
    char *from, *from_args;
    char *new_from, *new_from_args; /* CHGFROM, or NULL */
    pmt_rcpt *rcpts;
    size_t nrcpts, cap_rcpts;
    pmt_fields headers;             /* as sent */
    pmc_buf body;                   /* as sent (CR LF line ends) */
    pmt_fields result;              /* after the modifications */
    pmc_buf new_body;
    int body_replaced;
    char *quarantine;
    size_t nmods;
    int reached_eom;
    pmt_outcome outcome;
    const char *decided_at;         /* event that decided, or NULL */
    char *reply;                    /* SMTP text of that verdict, or NULL */
} pmt_message;

/* Options from the command line. */
typedef struct pmt_opts {
    const char *socket;
    const char *message_file; /* NULL with --script */
    const char *script_file;
    pmc_personality personality;
    const char *from;
    pmt_strv rcpts;
    const char *client_addr;  /* "192.0.2.1", "::1", "/path", "unknown" */
    unsigned client_port;
    const char *client_name;  /* NULL: unresolved, sent as "[addr]" */
    const char *helo;
    pmt_strv macros;          /* "STAGE:NAME=VALUE" as given */
    int default_macros;
    int proto_version;
    int timeout_s;
    int json;
    int quiet;
    int crlf;
    int ignore_verdicts;
    const char *output;
    const char *replay;       /* --replay FILE|DIR, or NULL */
} pmt_opts;

/* The conversation: the client, what was negotiated, and the messages.
 * The MTA state (verdicts, SKIP, ABORT) is the client's own. */
typedef struct pmt_conv {
    const pmt_opts *o;
    struct pmt_report *rep;
    pmc_client *cli;
    int fd;
    pmc_fd_transport_state tst;
    int negotiated, quit;
    uint32_t version, actions, protocol;
    pmt_strv user_macros[PMC_STAGE_COUNT]; /* "name", "value" pairs */
    pmt_strv unset_macros[PMC_STAGE_COUNT];
    char client_addr[128];
    char client_name[256];
    char helo_name[256];
    pmt_message *msg;         /* current message, or NULL */
    unsigned nmessages;
    pmt_outcome worst;
    int failed;               /* protocol error: exit PMT_EXIT_PROTOCOL */
} pmt_conv;

/* strv.c */
int pmt_strv_push(pmt_strv *sv, const char *p, size_t n);
void pmt_strv_free(pmt_strv *sv);
void pmt_fields_free(pmt_fields *f);
int pmt_fields_push(pmt_fields *f, const char *name, size_t nlen,
                    const char *value, size_t vlen);
char *pmt_strndup(const char *p, size_t n);
void *pmt_xalloc(void *p, size_t n);
int pmt_addr_eq(const char *a, const char *b);
const char *pmt_addr_bare(const char *a, size_t *len);

/* sock.c: connect to a milter socket spec; -1 with msg filled on failure. */
int pmt_connect(const char *spec, int timeout_ms, char *msg, size_t msglen);

/* message.c */
/* DATA is the caller's; this sends the message's fields, EOH, body and EOM
 * as the core splits them (with the negotiated HDR_LEADSPC).  stop: once a
 * verdict ends the message, send and report nothing more (the message-file
 * mode); 0 reports the rest as not sent (scripts).  0, -1 after an event
 * failed (reported), or -2 out of memory. */
int pmt_send_message(pmt_conv *cv, const char *data, size_t len, int stop);
int pmt_read_file(const char *path, pmc_buf *out, char *err, size_t errlen);
void pmt_message_apply(pmt_message *m, const pmc_reply *mods, size_t n);
void pmt_message_write(const pmt_message *m, FILE *f, int crlf,
                       int leadspc);
void pmt_message_free(pmt_message *m);

/* macros.c */
int pmt_set_macro(pmt_conv *cv, int stage, const char *name,
                  const char *value);
int pmt_stage_from_name(const char *s);
const char *pmt_stage_name(int stage);
/* Put the stage's macros into the client (and into m, for the report). */
int pmt_load_macros(pmt_conv *cv, int stage, const char *addr, pmt_strv *m);

/* convo.c: each returns 0, or -1 after a protocol error (reported). */
int pmt_conv_open(pmt_conv *cv, const pmt_opts *o, struct pmt_report *rep);
void pmt_conv_close(pmt_conv *cv);
int pmt_negotiate(pmt_conv *cv);
int pmt_ev_connect(pmt_conv *cv, const char *host, char family,
                   unsigned port, const char *addr);
int pmt_ev_helo(pmt_conv *cv, const char *name);
int pmt_ev_mail(pmt_conv *cv, const pmc_str *argv, size_t argc);
int pmt_ev_rcpt(pmt_conv *cv, const pmc_str *argv, size_t argc);
int pmt_ev_data(pmt_conv *cv);
int pmt_ev_header(pmt_conv *cv, pmc_str name, pmc_str value);
int pmt_ev_eoh(pmt_conv *cv);
int pmt_ev_body(pmt_conv *cv, const void *p, size_t n);
int pmt_ev_eom(pmt_conv *cv);
int pmt_ev_abort(pmt_conv *cv);
int pmt_ev_unknown(pmt_conv *cv, const char *line);
int pmt_ev_quit(pmt_conv *cv, int keep_connection);
int pmt_rcpts_left(const pmt_conv *cv);
/* A verdict ended the message or the connection, so the client sends no
 * more of it (never with --ignore-verdicts). */
int pmt_ended(const pmt_conv *cv);
int pmt_family_of(const char *addr, char *family, const char **bare);

/* script.c: check (exec 0, cv may be NULL) or run a script; 0, -1 after
 * an event failed (reported), -2 for a script error (printed). */
int pmt_run_script(pmt_conv *cv, const char *text, size_t len,
                   const char *path, int exec);

/* report.c */
typedef struct pmt_step {
    const char *command;      /* "CONNECT", "RCPT", ... */
    const pmc_str *args;      /* shown after the command */
    size_t nargs;
    const char *const *macros;/* name, value pairs sent with it */
    size_t nmacros;
    const char *not_sent;     /* why it was not sent, or NULL */
    const char *no_reply;     /* why no reply was awaited, or NULL */
    const pmc_result *r;      /* the reply, or NULL */
} pmt_step;

struct pmt_report *pmt_report_new(const pmt_opts *o);
void pmt_report_free(struct pmt_report *rep);
void pmt_report_step(struct pmt_report *rep, const pmt_step *st);
void pmt_report_negotiation(struct pmt_report *rep, const pmc_client *c,
                            const pmc_client_config *offer);
void pmt_report_note(struct pmt_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pmt_report_message(struct pmt_report *rep, const pmt_message *m,
                        const char *written_to);
void pmt_report_error(struct pmt_report *rep, const char *kind,
                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void pmt_report_end(struct pmt_report *rep, pmt_outcome worst, int code);
const char *pmt_outcome_name(pmt_outcome o);

#endif
