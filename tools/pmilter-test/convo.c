/* Driving the filter: one function per SMTP step.  Each sets that stage's
 * macros, calls libpmcore's client, and reports what was sent and what came
 * back.  The client keeps the MTA state (what SKIP and the verdicts stop,
 * when ABORT is owed); its results and pmc_client_state tell the transcript
 * why an event was not sent or not answered, and the verdicts decide each
 * message's outcome. */
#include "pmt.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How the transcript names an event and its NO and NR bits, and the stage
 * of the macros sent with it (-1: none). */
typedef struct evd {
    uint8_t cmd;
    const char *name;
    int stage;
    const char *no_name, *nr_name;
} evd;

static const evd E_CONNECT = {'C', "CONNECT", PMC_STAGE_CONNECT,
    "NOCONNECT", "NR_CONN"};
static const evd E_HELO = {'H', "HELO", PMC_STAGE_HELO, "NOHELO",
    "NR_HELO"};
static const evd E_MAIL = {'M', "MAIL", PMC_STAGE_ENVFROM, "NOMAIL",
    "NR_MAIL"};
static const evd E_RCPT = {'R', "RCPT", PMC_STAGE_ENVRCPT, "NORCPT",
    "NR_RCPT"};
static const evd E_DATA = {'T', "DATA", PMC_STAGE_DATA, "NODATA",
    "NR_DATA"};
static const evd E_HEADER = {'L', "HEADER", PMC_STAGE_EOH, "NOHDRS",
    "NR_HDR"};
static const evd E_EOH = {'N', "EOH", PMC_STAGE_EOH, "NOEOH", "NR_EOH"};
static const evd E_BODY = {'B', "BODY", PMC_STAGE_EOM, "NOBODY",
    "NR_BODY"};
static const evd E_EOM = {'E', "EOM", PMC_STAGE_EOM, NULL, NULL};
static const evd E_UNKNOWN = {'U', "UNKNOWN", -1, "NOUNKNOWN", "NR_UNKN"};
static const evd E_ABORT = {'A', "ABORT", -1, NULL, NULL};

static int postfix(const pmt_conv *cv)
{
    return cv->o->personality == PMC_MTA_POSTFIX;
}

static int one_of(uint8_t code, const char *set)
{
    return code != 0 && strchr(set, code) != NULL;
}

/* ---- what the client did ------------------------------------------------ */

/* The reason strings built below; the tool handles one event at a time. */
static char reason[160];

static const char *why_not_sent(const pmt_conv *cv, const evd *d,
                                const pmc_result *r)
{
    switch (r->unsent) {
    case PMC_UNSENT_NONE:
        return NULL;
    case PMC_UNSENT_SKIP:
        return "the filter answered SKIP";
    case PMC_UNSENT_CONN_ENDED:
        return "a verdict ended the connection";
    case PMC_UNSENT_MSG_ENDED:
        return "a verdict ended the message";
    case PMC_UNSENT_NEGOTIATED:
        snprintf(reason, sizeof reason, "the filter negotiated %s",
                 d->no_name);
        return reason;
    case PMC_UNSENT_VERSION:
        snprintf(reason, sizeof reason, "protocol version %u has no %s",
                 (unsigned)cv->version, d->name);
        return reason;
    case PMC_UNSENT_EMPTY:
        break;
    }
    return "nothing to send";
}

static const char *why_no_reply(const evd *d, const pmc_result *r)
{
    if (!r->sent || r->awaited)
        return NULL;
    if (r->dropped)
        return "out of order: the filter drops it (docs/state-table.md)";
    if (d->nr_name == NULL) {
        snprintf(reason, sizeof reason, "%s has none", d->name);
        return reason;
    }
    snprintf(reason, sizeof reason, "the filter negotiated %s", d->nr_name);
    return reason;
}

int pmt_ended(const pmt_conv *cv)
{
    pmc_client_state_info s;

    pmc_client_state(cv->cli, &s);
    return s.message_ended || s.connection_ended;
}

static int abort_owed(const pmt_conv *cv)
{
    pmc_client_state_info s;

    if (!cv->negotiated)
        return 0;
    pmc_client_state(cv->cli, &s);
    return s.abort_owed;
}

/* ---- outcomes ------------------------------------------------------------ */

static pmt_outcome outcome_of(uint8_t code, pmc_str text)
{
    switch (code) {
    case 'c': case 'a': return PMT_OUT_ACCEPT;
    case 'r': return PMT_OUT_REJECT;
    case 't': case '4': return PMT_OUT_TEMPFAIL;
    case 'd': return PMT_OUT_DISCARD;
    case 'y':
        return text.len && text.ptr[0] == '4' ? PMT_OUT_TEMPFAIL
                                              : PMT_OUT_REJECT;
    default: return PMT_OUT_NONE;
    }
}

static void worsen(pmt_conv *cv, pmt_outcome o)
{
    if (o > cv->worst)
        cv->worst = o;
}

static void decide(pmt_conv *cv, pmt_outcome o, const char *at,
                   const pmc_result *r)
{
    pmt_message *m = cv->msg;

    if (m == NULL || m->outcome != PMT_OUT_NONE || o == PMT_OUT_NONE)
        return;
    m->outcome = o;
    m->decided_at = at;
    if (r && r->code == 'y')
        m->reply = pmt_strndup(r->text.ptr, r->text.len);
}

static void write_output(pmt_conv *cv, pmt_message *m, char *path,
                         size_t n)
{
    const char *o = cv->o->output, *pct = o ? strstr(o, "%d") : NULL;
    FILE *f;

    path[0] = 0;
    if (o == NULL || !m->reached_eom)
        return;
    if (pct)
        snprintf(path, n, "%.*s%u%s", (int)(pct - o), o, m->number, pct + 2);
    else
        snprintf(path, n, "%s", o);
    f = fopen(path, "wb");
    if (f == NULL) {
        pmt_report_error(cv->rep, "output", "cannot write %s", path);
        path[0] = 0;
        return;
    }
    pmt_message_write(m, f, cv->o->crlf,
                      (cv->protocol & PMC_P_HDR_LEADSPC) != 0);
    if (fclose(f) != 0) {
        pmt_report_error(cv->rep, "output", "cannot write %s", path);
        path[0] = 0;
    }
}

/* The message is over (EOM, ABORT, a new MAIL or the end): report it. */
static void finish_message(pmt_conv *cv)
{
    pmt_message *m = cv->msg;
    char path[1024];
    int left = 0, temp = 0;

    if (m == NULL)
        return;
    cv->msg = NULL;
    for (size_t i = 0; i < m->nrcpts; i++) {
        left += m->rcpts[i].state == PMT_RCPT_SENT;
        temp += m->rcpts[i].state == PMT_RCPT_TEMPFAILED;
    }
    if (m->outcome == PMT_OUT_NONE && m->nrcpts > 0 && left == 0) {
        m->outcome = temp ? PMT_OUT_TEMPFAIL : PMT_OUT_REJECT;
        m->decided_at = "RCPT";
    }
    /* After a protocol error the message stays undecided: the MTA would
     * have taken its default action, not aborted it. */
    if (m->outcome == PMT_OUT_NONE && !cv->failed)
        m->outcome = PMT_OUT_ABORTED;
    worsen(cv, m->outcome);
    write_output(cv, m, path, sizeof path);
    pmt_report_message(cv->rep, m, path[0] ? path : NULL);
    pmt_message_free(m);
}

int pmt_rcpts_left(const pmt_conv *cv)
{
    int left = 0;

    if (cv->msg)
        for (size_t i = 0; i < cv->msg->nrcpts; i++)
            left += cv->msg->rcpts[i].state == PMT_RCPT_SENT;
    return left;
}

/* ---- sending ------------------------------------------------------------- */

static int failed(pmt_conv *cv, const char *what)
{
    const pmc_error *e = pmc_client_error(cv->cli);
    pmc_status code = e ? e->code : PMC_ERR_IO;

    if (code == PMC_ERR_ARGUMENT || code == PMC_ERR_SEQUENCE ||
        code == PMC_ERR_CLOSED) {
        pmt_report_error(cv->rep, "usage", "%s: %s", what,
                         e ? e->message : "refused by the client");
        cv->failed = PMT_EXIT_USAGE;
        return -1;
    }
    pmt_report_error(cv->rep, "protocol", "%s: %s (%s)", what,
                     e ? e->message : "failed", pmc_status_name(code));
    cv->failed = PMT_EXIT_PROTOCOL;
    return -1;
}

typedef pmc_status (*send_fn)(pmt_conv *cv, const void *a, pmc_result *r);

/* One event: macros, the call and the report.  The stage's macros are
 * loaded even for an event the client will not send: they go out only with
 * a sent event, and each event loads its own first. */
static int event(pmt_conv *cv, const evd *d, const char *macro_addr,
                 int show_macros, const pmc_str *args, size_t nargs,
                 send_fn fn, const void *fa, pmc_result *r)
{
    pmt_strv m = {0};
    pmt_step st = {0};
    pmc_status s;

    if (!cv->negotiated) {
        pmt_report_error(cv->rep, "usage", "%s before negotiation", d->name);
        cv->failed = PMT_EXIT_USAGE;
        return -1;
    }
    st.command = d->name;
    st.args = args;
    st.nargs = nargs;
    if (d->stage >= 0 && pmt_load_macros(cv, d->stage, macro_addr, &m) != 0) {
        pmt_strv_free(&m);
        cv->failed = PMT_EXIT_USAGE;
        return -1;
    }
    s = fn(cv, fa, r);
    if (s != PMC_OK) {
        pmt_strv_free(&m);
        return failed(cv, d->name);
    }
    st.not_sent = why_not_sent(cv, d, r);
    if (st.not_sent == NULL) {
        if (show_macros) {
            st.macros = (const char *const *)m.v;
            st.nmacros = m.n / 2;
        }
        st.no_reply = why_no_reply(d, r);
        if (st.no_reply == NULL)
            st.r = r;
    }
    pmt_report_step(cv->rep, &st);
    pmt_strv_free(&m);
    return 0;
}

/* ---- negotiation and connection ----------------------------------------- */

/* The offer for the chosen version: Postfix's milter_protocol masks (v2 the
 * seven NO* bits of the SMTP events, v3 adds NOUNKNOWN, v4 and v5 NODATA,
 * v6 everything), all actions. */
static void offer_for(pmc_client_config *cfg, const pmt_opts *o)
{
    pmc_client_config_init(cfg, o->personality);
    cfg->ignore_verdicts = o->ignore_verdicts;
    if (o->proto_version == 0 || o->proto_version == 6)
        return;
    cfg->version = (uint32_t)o->proto_version;
    cfg->protocol = 0x7Fu;
    if (o->proto_version >= 3)
        cfg->protocol |= PMC_P_NOUNKNOWN;
    if (o->proto_version >= 4)
        cfg->protocol |= PMC_P_NODATA;
}

int pmt_conv_open(pmt_conv *cv, const pmt_opts *o, struct pmt_report *rep)
{
    pmc_client_config cfg;
    pmc_transport tr;
    char msg[400];

    memset(cv, 0, sizeof *cv);
    cv->o = o;
    cv->rep = rep;
    cv->fd = pmt_connect(o->socket, o->timeout_s * 1000, msg, sizeof msg);
    if (cv->fd < 0) {
        pmt_report_error(rep, "connect", "%s", msg);
        return -1;
    }
    offer_for(&cfg, o);
    pmc_transport_fd(&tr, &cv->tst, cv->fd, o->timeout_s * 1000);
    cv->cli = pmc_client_new(&cfg, &tr);
    if (cv->cli == NULL) {
        pmt_report_error(rep, "usage", "cannot create the client "
                         "(protocol version %d?)", o->proto_version);
        cv->failed = PMT_EXIT_USAGE;
        close(cv->fd);
        cv->fd = -1;
        return -1;
    }
    return 0;
}

void pmt_conv_close(pmt_conv *cv)
{
    finish_message(cv);
    pmc_client_free(cv->cli);
    if (cv->fd >= 0)
        close(cv->fd);
    for (int i = 0; i < PMC_STAGE_COUNT; i++) {
        pmt_strv_free(&cv->user_macros[i]);
        pmt_strv_free(&cv->unset_macros[i]);
    }
}

int pmt_negotiate(pmt_conv *cv)
{
    pmc_client_config offer;
    pmc_result r;

    offer_for(&offer, cv->o);
    if (pmc_client_negotiate(cv->cli, &r) != PMC_OK)
        return failed(cv, "OPTNEG");
    pmc_client_negotiated(cv->cli, &cv->version, &cv->actions,
                          &cv->protocol);
    cv->negotiated = 1;
    pmt_report_negotiation(cv->rep, cv->cli, &offer);
    return 0;
}

int pmt_family_of(const char *addr, char *family, const char **bare)
{
    *bare = addr;
    if (addr == NULL || !addr[0] || strcmp(addr, "unknown") == 0) {
        *family = 'U';
        *bare = "";
    } else if (strncmp(addr, "unix:", 5) == 0) {
        *family = 'L';
        *bare = addr + 5;
    } else if (addr[0] == '/') {
        *family = 'L';
    } else if (strchr(addr, ':')) {
        *family = '6';
    } else {
        *family = '4';
    }
    return 0;
}

typedef struct conn_args {
    const char *host, *addr;
    char family;
    unsigned port;
} conn_args;

static pmc_status do_connect(pmt_conv *cv, const void *a, pmc_result *r)
{
    const conn_args *c = a;
    return pmc_client_connect(cv->cli, c->host, c->family,
                              (uint16_t)c->port, c->addr, r);
}

int pmt_ev_connect(pmt_conv *cv, const char *host, char family,
                   unsigned port, const char *addr)
{
    static const char *const fam[] = {"unknown", "unix", "inet", "inet6"};
    conn_args ca = {host, addr, family, port};
    char portbuf[16], shown[300];
    pmc_str args[4];
    pmc_result r;
    int rc;

    snprintf(cv->client_addr, sizeof cv->client_addr, "%s", addr ? addr : "");
    snprintf(cv->client_name, sizeof cv->client_name, "%s", host ? host : "");
    /* What goes on the wire for an unresolved client (see the client). */
    if (host)
        snprintf(shown, sizeof shown, "%s", host);
    else
        snprintf(shown, sizeof shown, "[%s%s]",
                 family == '6' && !postfix(cv) &&
                     strncmp(addr ? addr : "", "IPv6:", 5) ? "IPv6:" : "",
                 addr && addr[0] ? addr : "unknown");
    snprintf(portbuf, sizeof portbuf, "%u", port);
    args[0] = (pmc_str){shown, strlen(shown)};
    args[1] = (pmc_str){fam[family == 'L' ? 1 : family == '4' ? 2
                            : family == '6' ? 3 : 0], 0};
    args[1].len = strlen(args[1].ptr);
    args[2] = (pmc_str){addr ? addr : "", addr ? strlen(addr) : 0};
    args[3] = (pmc_str){portbuf, strlen(portbuf)};
    rc = event(cv, &E_CONNECT, NULL, 1, args, family == 'U' ? 2 : 4,
               do_connect, &ca, &r);
    if (rc == 0 && r.code && cv->msg == NULL &&
        (one_of(r.code, "rty4")))
        worsen(cv, outcome_of(r.code, r.text));
    return rc;
}

static pmc_status do_helo(pmt_conv *cv, const void *a, pmc_result *r)
{
    return pmc_client_helo(cv->cli, a, r);
}

int pmt_ev_helo(pmt_conv *cv, const char *name)
{
    pmc_str arg = {name, strlen(name)};
    pmc_result r;
    int rc;

    snprintf(cv->helo_name, sizeof cv->helo_name, "%s", name);
    rc = event(cv, &E_HELO, NULL, 1, &arg, 1, do_helo, name, &r);
    if (rc == 0 && r.code && one_of(r.code, "rty4"))
        worsen(cv, outcome_of(r.code, r.text));
    return rc;
}

typedef struct argv_args {
    const pmc_str *argv;
    size_t argc;
} argv_args;

static pmc_status do_mail(pmt_conv *cv, const void *a, pmc_result *r)
{
    const argv_args *v = a;
    return pmc_client_mail(cv->cli, v->argv, v->argc, r);
}

static pmc_status do_rcpt(pmt_conv *cv, const void *a, pmc_result *r)
{
    const argv_args *v = a;
    return pmc_client_rcpt(cv->cli, v->argv, v->argc, r);
}

static char *join_args(const pmc_str *argv, size_t argc)
{
    pmc_buf b = {0};
    char *s;

    if (argc < 2)
        return NULL;
    for (size_t i = 1; i < argc; i++) {
        if (i > 1)
            pmc_buf_append(&b, " ", 1);
        pmc_buf_append(&b, argv[i].ptr, argv[i].len);
    }
    s = pmt_strndup((const char *)b.data, b.len);
    pmc_buf_free(&b);
    return s;
}

int pmt_ev_mail(pmt_conv *cv, const pmc_str *argv, size_t argc)
{
    argv_args v = {argv, argc};
    pmt_message *m;
    pmc_result r;
    int rc;

    finish_message(cv);
    if (abort_owed(cv)) {
        pmt_step st = {.command = "ABORT", .no_reply = "ABORT has none"};
        pmt_report_note(cv->rep, "%s sends ABORT before a new MAIL",
                        postfix(cv) ? "Postfix" : "Sendmail");
        pmt_report_step(cv->rep, &st);
    }
    m = pmt_xalloc(NULL, sizeof *m);
    memset(m, 0, sizeof *m);
    m->number = ++cv->nmessages;
    m->from = pmt_strndup(argv[0].ptr, argv[0].len);
    m->from_args = join_args(argv, argc);
    cv->msg = m;
    rc = event(cv, &E_MAIL, m->from, 1, argv, argc, do_mail, &v, &r);
    if (rc == 0 && r.ended == PMC_ENDED_MESSAGE)
        decide(cv, outcome_of(r.code, r.text), "MAIL", &r);
    return rc;
}

int pmt_ev_rcpt(pmt_conv *cv, const pmc_str *argv, size_t argc)
{
    argv_args v = {argv, argc};
    pmc_result r;
    pmt_message *m = cv->msg;
    pmt_rcpt *rc_;
    char *addr = pmt_strndup(argv[0].ptr, argv[0].len);
    int rc;

    rc = event(cv, &E_RCPT, addr, 1, argv, argc, do_rcpt, &v, &r);
    if (rc != 0 || m == NULL) {
        free(addr);
        return rc;
    }
    if (m->nrcpts == m->cap_rcpts) {
        m->cap_rcpts = m->cap_rcpts ? m->cap_rcpts * 2 : 4;
        m->rcpts = pmt_xalloc(m->rcpts, m->cap_rcpts * sizeof *m->rcpts);
    }
    rc_ = &m->rcpts[m->nrcpts++];
    memset(rc_, 0, sizeof *rc_);
    rc_->addr = addr;
    rc_->args = join_args(argv, argc);
    rc_->state = PMT_RCPT_SENT;
    /* A refusal at RCPT refuses that recipient; the message goes on. */
    if (one_of(r.code, "rty")) {
        rc_->state = outcome_of(r.code, r.text) == PMT_OUT_TEMPFAIL
                         ? PMT_RCPT_TEMPFAILED : PMT_RCPT_REFUSED;
        if (r.code == 'y')
            rc_->reply = pmt_strndup(r.text.ptr, r.text.len);
    } else if (r.ended == PMC_ENDED_MESSAGE) {
        decide(cv, outcome_of(r.code, r.text), "RCPT", &r);
    }
    return 0;
}

static pmc_status do_data(pmt_conv *cv, const void *a, pmc_result *r)
{
    (void)a;
    return pmc_client_data(cv->cli, r);
}

static pmc_status do_eoh(pmt_conv *cv, const void *a, pmc_result *r)
{
    (void)a;
    return pmc_client_eoh(cv->cli, r);
}

static pmc_status do_eom(pmt_conv *cv, const void *a, pmc_result *r)
{
    (void)a;
    return pmc_client_eom(cv->cli, r);
}

/* Verdicts at DATA, headers, EOH and body can end the message. */
static int message_event(pmt_conv *cv, const evd *d, const pmc_str *args,
                         size_t nargs, send_fn fn, const void *a)
{
    pmc_result r;
    int rc = event(cv, d, NULL, d->cmd != 'L' && d->cmd != 'B', args, nargs,
                   fn, a, &r);

    if (rc == 0 && r.ended == PMC_ENDED_MESSAGE)
        decide(cv, outcome_of(r.code, r.text), d->name, &r);
    return rc;
}

int pmt_ev_data(pmt_conv *cv)
{
    return message_event(cv, &E_DATA, NULL, 0, do_data, NULL);
}

static pmc_status do_header(pmt_conv *cv, const void *a, pmc_result *r)
{
    const pmc_str *nv = a;
    return pmc_client_header(cv->cli, nv[0], nv[1], r);
}

int pmt_ev_header(pmt_conv *cv, pmc_str name, pmc_str value)
{
    pmc_str nv[2] = {name, value};

    if (cv->msg)
        pmt_fields_push(&cv->msg->headers, name.ptr, name.len, value.ptr,
                        value.len);
    return message_event(cv, &E_HEADER, nv, 2, do_header, nv);
}

int pmt_ev_eoh(pmt_conv *cv)
{
    return message_event(cv, &E_EOH, NULL, 0, do_eoh, NULL);
}

static pmc_status do_body(pmt_conv *cv, const void *a, pmc_result *r)
{
    const pmc_str *chunk = a;
    return pmc_client_body(cv->cli, chunk->ptr, chunk->len, r);
}

/* Chunk here rather than in the client so each chunk is reported. */
int pmt_ev_body(pmt_conv *cv, const void *p, size_t n)
{
    const char *b = p;

    if (cv->msg)
        pmc_buf_append(&cv->msg->body, p, n);
    for (size_t off = 0; off < n;) {
        size_t k = n - off < PMC_CHUNK_MAX ? n - off : PMC_CHUNK_MAX;
        pmc_str chunk = {b + off, k};

        if (message_event(cv, &E_BODY, &chunk, 1, do_body, &chunk) != 0)
            return -1;
        off += k;
    }
    return 0;
}

int pmt_ev_eom(pmt_conv *cv)
{
    pmt_message *m = cv->msg;
    pmc_result r;
    int rc;

    rc = event(cv, &E_EOM, NULL, 1, NULL, 0, do_eom, NULL, &r);
    if (rc != 0 || m == NULL)
        return rc;
    if (r.sent) {
        m->reached_eom = 1;
        for (size_t i = 0; i < m->headers.names.n; i++)
            pmt_fields_push(&m->result, m->headers.names.v[i],
                            m->headers.names.len[i], m->headers.values.v[i],
                            m->headers.values.len[i]);
        pmt_message_apply(m, r.mods, r.nmods);
        decide(cv, outcome_of(r.code, r.text), "EOM", &r);
    }
    finish_message(cv);
    return 0;
}

static pmc_status do_abort(pmt_conv *cv, const void *a, pmc_result *r)
{
    (void)a;
    return pmc_client_abort(cv->cli, r);
}

int pmt_ev_abort(pmt_conv *cv)
{
    pmc_result r;
    int rc = event(cv, &E_ABORT, NULL, 0, NULL, 0, do_abort, NULL, &r);

    if (rc == 0)
        finish_message(cv);
    return rc;
}

static pmc_status do_unknown(pmt_conv *cv, const void *a, pmc_result *r)
{
    return pmc_client_unknown(cv->cli, a, r);
}

int pmt_ev_unknown(pmt_conv *cv, const char *line)
{
    pmc_str arg = {line, strlen(line)};
    pmc_result r;

    return event(cv, &E_UNKNOWN, NULL, 1, &arg, 1, do_unknown, line, &r);
}

int pmt_ev_quit(pmt_conv *cv, int keep_connection)
{
    pmt_step st = {.command = keep_connection ? "QUIT_NC" : "QUIT",
                   .no_reply = "QUIT has none"};
    pmc_status s;

    if (cv->quit)
        return 0;
    if (abort_owed(cv)) {
        pmt_step ab = {.command = "ABORT", .no_reply = "ABORT has none"};
        pmt_report_note(cv->rep, "%s sends ABORT before QUIT",
                        postfix(cv) ? "Postfix" : "Sendmail");
        pmt_report_step(cv->rep, &ab);
    }
    s = keep_connection ? pmc_client_quit_nc(cv->cli)
                        : pmc_client_quit(cv->cli);
    if (s != PMC_OK)
        return failed(cv, st.command);
    pmt_report_step(cv->rep, &st);
    finish_message(cv);
    if (!keep_connection)
        cv->quit = 1;
    return 0;
}
