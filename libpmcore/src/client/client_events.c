/* Client events: what an MTA sends for each SMTP step, with the quirks of
 * its personality, and the state its verdicts leave behind. */
#include "internal_client.h"
#include "../proto/order.h"

#include <stdlib.h>
#include <string.h>

typedef struct ev_desc {
    uint8_t cmd;
    pmc_event ev;
    int stage;            /* macros sent with it, or -1 for none */
    uint32_t no_bit;      /* "do not send" */
    uint32_t nr_bit;      /* "do not wait for a reply" */
    uint32_t min_version; /* the filter's version must have the event */
    int in_message;       /* part of a message: a verdict can end it */
} ev_desc;

static const ev_desc EV_CONNECT = {'C', PMC_EV_CONNECT, PMC_STAGE_CONNECT,
                                   PMC_P_NOCONNECT, PMC_P_NR_CONN, 2, 0};
static const ev_desc EV_HELO = {'H', PMC_EV_HELO, PMC_STAGE_HELO,
                                PMC_P_NOHELO, PMC_P_NR_HELO, 2, 0};
static const ev_desc EV_MAIL = {'M', PMC_EV_ENVFROM, PMC_STAGE_ENVFROM,
                                PMC_P_NOMAIL, PMC_P_NR_MAIL, 2, 1};
static const ev_desc EV_RCPT = {'R', PMC_EV_ENVRCPT, PMC_STAGE_ENVRCPT,
                                PMC_P_NORCPT, PMC_P_NR_RCPT, 2, 1};
static const ev_desc EV_DATA = {'T', PMC_EV_DATA, PMC_STAGE_DATA,
                                PMC_P_NODATA, PMC_P_NR_DATA, 4, 1};
static const ev_desc EV_HEADER = {'L', PMC_EV_HEADER, PMC_STAGE_EOH,
                                  PMC_P_NOHDRS, PMC_P_NR_HDR, 2, 1};
static const ev_desc EV_EOH = {'N', PMC_EV_EOH, PMC_STAGE_EOH, PMC_P_NOEOH,
                               PMC_P_NR_EOH, 2, 1};
static const ev_desc EV_BODY = {'B', PMC_EV_BODY, PMC_STAGE_EOM,
                                PMC_P_NOBODY, PMC_P_NR_BODY, 2, 1};
static const ev_desc EV_EOM = {'E', PMC_EV_EOM, PMC_STAGE_EOM, 0, 0, 2, 1};
static const ev_desc EV_UNKNOWN = {'U', PMC_EV_UNKNOWN, -1, PMC_P_NOUNKNOWN,
                                   PMC_P_NR_UNKN, 3, 0};

static int postfix(const pmc_client *c)
{
    return c->cfg.personality == PMC_MTA_POSTFIX;
}

static int one_of(uint8_t code, const char *set)
{
    return code != 0 && strchr(set, code) != NULL;
}

/* Why the event would not go out now, or PMC_UNSENT_NONE. */
static pmc_unsent unsent(const pmc_client *c, const ev_desc *d)
{
    if (c->skip_cmd == d->cmd)
        return PMC_UNSENT_SKIP;
    if (!c->cfg.ignore_verdicts && c->conn_done)
        return PMC_UNSENT_CONN_ENDED;
    if (!c->cfg.ignore_verdicts && d->in_message && c->msg_done)
        return PMC_UNSENT_MSG_ENDED;
    if (c->protocol & d->no_bit)
        return PMC_UNSENT_NEGOTIATED;
    if (c->version < d->min_version)
        return PMC_UNSENT_VERSION;
    return PMC_UNSENT_NONE;
}

static pmc_status nomem(pmc_client *c)
{
    c->out.len = 0;
    return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                         "out of memory encoding a command");
}

static pmc_status add_macros(pmc_client *c, const ev_desc *d)
{
    pmc_part parts[2] = {{&d->cmd, 1, 0}, {NULL, 0, 0}};
    const pmc_buf *m = d->stage >= 0 ? &c->macros[d->stage] : NULL;
    size_t n = 1;

    if (m != NULL && m->len > 0) {
        parts[1].ptr = m->data;
        parts[1].len = m->len;
        n = 2;
    }
    /* Postfix sends a list for every event, even an empty one; Sendmail
     * only non-empty lists of the stages it knows. */
    if (!postfix(c) && (n == 1 || strchr("CHMRTNE", d->cmd) == NULL))
        return PMC_OK;
    return pmc_encode_parts(&c->out, 'D', parts, n) == PMC_OK ? PMC_OK
                                                              : nomem(c);
}

/* What the verdict means for later events, as the MTA sees it.  The state
 * is kept even with ignore_verdicts: only sending ignores it. */
static pmc_ended after_verdict(pmc_client *c, const ev_desc *d, uint8_t code)
{
    int ends_conn = 0, ends_msg = 0;

    if (code == 's') {
        c->skip_cmd = d->cmd;
        return PMC_ENDED_NONE;
    }
    switch (d->cmd) {
    case 'C':
        ends_conn = one_of(code, "arty");
        break;
    case 'H':
        ends_conn = one_of(code, postfix(c) ? "arty" : "a");
        break;
    case 'R':
        ends_msg = one_of(code, "ad");
        break;
    case 'M': case 'T': case 'L': case 'N': case 'B':
        ends_msg = one_of(code, "artdy");
        break;
    default:
        break;
    }
    if (code == '4')
        ends_conn = 1;
    if (ends_conn)
        c->conn_done = 1;
    if (ends_msg)
        c->msg_done = 1;
    if (ends_conn || ends_msg)
        c->in_msg = 0;
    return ends_conn ? PMC_ENDED_CONNECTION
                     : ends_msg ? PMC_ENDED_MESSAGE : PMC_ENDED_NONE;
}

/* Send one event (after whatever is already in c->out) and await its
 * reply if one is owed.  r has been reset by the caller. */
static pmc_status run(pmc_client *c, const ev_desc *d, const pmc_part *parts,
                      size_t nparts, pmc_result *r)
{
    pmc_status st;

    /* Postfix's skip lasts until an event of another type comes along. */
    if (c->skip_cmd != 0 && c->skip_cmd != d->cmd)
        c->skip_cmd = 0;
    if ((r->unsent = unsent(c, d)) != PMC_UNSENT_NONE)
        return pmci_cli_flush(c); /* an ABORT may be waiting in out */
    if ((st = add_macros(c, d)) != PMC_OK)
        return st;
    if (pmc_encode_parts(&c->out, d->cmd, parts, nparts) != PMC_OK)
        return nomem(c);
    if ((st = pmci_cli_flush(c)) != PMC_OK)
        return st;
    r->sent = 1;
    /* The filter drops a command out of order without a word, and waiting
     * for its reply would only wait for the timeout.  Only ignore_verdicts
     * sends such commands on purpose (after a verdict that ended the
     * message); other callers are trusted to call in an MTA's order. */
    if (pmci_order_move(&c->filter_state, c->protocol,
                        pmci_order_state_of(d->cmd)) == PMCI_ORDER_DROP &&
        c->cfg.ignore_verdicts) {
        r->dropped = 1;
        return PMC_OK;
    }
    if (c->protocol & d->nr_bit)
        return PMC_OK;
    r->awaited = 1;
    st = pmci_cli_await(c, d->cmd, d->ev, r);
    if (st == PMC_OK) {
        r->ended = after_verdict(c, d, r->code);
        pmci_order_after_verdict(&c->filter_state,
                                 r->code == 'a' ? 1
                                 : one_of(r->code, "rtdy") ? 2
                                                            : 0);
    }
    return st;
}

/* Common start of every event call: r NULL means "not wanted". */
static pmc_status begin(pmc_client *c, pmc_result **r)
{
    if (*r == NULL)
        *r = &c->scratch;
    pmci_cli_result_reset(c, *r);
    c->out.len = 0;
    return pmci_cli_usable(c, 1);
}

static int abort_owed(const pmc_client *c)
{
    if (c->conn_done && !c->cfg.ignore_verdicts)
        return 0;
    return postfix(c) ? c->txn : c->in_msg;
}

static pmc_status add_abort(pmc_client *c)
{
    if (pmc_encode(&c->out, 'A', NULL, 0) != PMC_OK)
        return nomem(c);
    (void)pmci_order_abort_move(&c->filter_state, c->protocol);
    c->txn = c->in_msg = c->msg_done = 0;
    c->skip_cmd = 0;
    return PMC_OK;
}

static pmc_status bad_arg(pmc_client *c, const char *what)
{
    return pmci_cli_fail(c, PMC_ERR_ARGUMENT, c->rx, "%s", what);
}

static int has_nul(const char *p, size_t n)
{
    return n > 0 && memchr(p, 0, n) != NULL;
}

pmc_status pmc_client_negotiate(pmc_client *c, pmc_result *r)
{
    uint8_t offer[12];
    pmc_status st;

    if (r == NULL)
        r = &c->scratch;
    pmci_cli_result_reset(c, r);
    if ((st = pmci_cli_usable(c, 0)) != PMC_OK)
        return st;
    pmci_put32(offer, c->cfg.version);
    pmci_put32(offer + 4, c->cfg.actions);
    pmci_put32(offer + 8, c->cfg.protocol);
    c->out.len = 0;
    if (pmc_encode(&c->out, 'O', offer, sizeof offer) != PMC_OK)
        return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                             "out of memory encoding OPTNEG");
    if ((st = pmci_cli_flush(c)) != PMC_OK)
        return st;
    r->sent = r->awaited = 1;
    st = pmci_cli_await(c, 'O', PMC_EV_NEGOTIATE, r);
    if (st == PMC_OK) {
        c->state = PMCI_CLI_READY;
        c->filter_state = PMCI_ST_OPTS;
    }
    return st;
}

pmc_status pmc_client_connect(pmc_client *c, const char *host, char family,
                              uint16_t port, const char *addr, pmc_result *r)
{
    static const char v6[] = "IPv6:";
    uint8_t fam = (uint8_t)family, nport[2];
    pmc_part parts[8];
    size_t n = 0, alen;
    int prefix;
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    if (family != 'U' && family != 'L' && family != '4' && family != '6')
        return bad_arg(c, "the address family must be 'U', 'L', '4' or '6'");
    if (addr == NULL)
        addr = "";
    alen = strlen(addr);
    /* Sendmail writes IPv6 client addresses in its "IPv6:" form. */
    prefix = !postfix(c) && family == '6' && strncmp(addr, v6, 5) != 0;
    if (host != NULL) {
        parts[n++] = (pmc_part){host, strlen(host), 1};
    } else {
        /* What both MTAs show for a client without a usable name. */
        parts[n++] = (pmc_part){"[", 1, 0};
        if (prefix)
            parts[n++] = (pmc_part){v6, 5, 0};
        parts[n++] = alen ? (pmc_part){addr, alen, 0}
                          : (pmc_part){"unknown", 7, 0};
        parts[n++] = (pmc_part){"]", 1, 1};
    }
    parts[n++] = (pmc_part){&fam, 1, 0};
    if (family != 'U') {
        nport[0] = (uint8_t)(port >> 8);
        nport[1] = (uint8_t)port;
        parts[n++] = (pmc_part){nport, 2, 0};
        if (prefix)
            parts[n++] = (pmc_part){v6, 5, 0};
        parts[n++] = (pmc_part){addr, alen, 1};
    }
    return run(c, &EV_CONNECT, parts, n, r);
}

pmc_status pmc_client_helo(pmc_client *c, const char *helo, pmc_result *r)
{
    pmc_part part;
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    if (helo == NULL)
        return bad_arg(c, "the HELO name is NULL");
    part = (pmc_part){helo, strlen(helo), 1};
    return run(c, &EV_HELO, &part, 1, r);
}

/* MAIL and RCPT: argv as NUL-terminated strings. */
static pmc_status send_argv(pmc_client *c, const ev_desc *d,
                            const pmc_str *argv, size_t argc, pmc_result *r)
{
    pmc_part few[8], *parts = few;
    pmc_status st;

    if (argv == NULL || argc == 0)
        return bad_arg(c, "argv needs at least the address");
    for (size_t i = 0; i < argc; i++)
        if ((argv[i].ptr == NULL && argv[i].len > 0) ||
            has_nul(argv[i].ptr, argv[i].len))
            return bad_arg(c, "an argv string is NULL or holds a NUL byte");
    if (argc > sizeof few / sizeof few[0]) {
        parts = calloc(argc, sizeof *parts);
        if (parts == NULL)
            return nomem(c);
    }
    for (size_t i = 0; i < argc; i++)
        parts[i] = (pmc_part){argv[i].len ? argv[i].ptr : "", argv[i].len, 1};
    if (d->cmd == 'M') {
        if (abort_owed(c))
            st = add_abort(c);
        else
            st = PMC_OK;
        c->txn = c->in_msg = 1;
        c->msg_done = 0;
        if (st == PMC_OK)
            st = run(c, d, parts, argc, r);
    } else {
        st = run(c, d, parts, argc, r);
    }
    if (parts != few)
        free(parts);
    return st;
}

pmc_status pmc_client_mail(pmc_client *c, const pmc_str *argv, size_t argc,
                           pmc_result *r)
{
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    return send_argv(c, &EV_MAIL, argv, argc, r);
}

pmc_status pmc_client_rcpt(pmc_client *c, const pmc_str *argv, size_t argc,
                           pmc_result *r)
{
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    return send_argv(c, &EV_RCPT, argv, argc, r);
}

pmc_status pmc_client_data(pmc_client *c, pmc_result *r)
{
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    return run(c, &EV_DATA, NULL, 0, r);
}

pmc_status pmc_client_header(pmc_client *c, pmc_str name, pmc_str value,
                             pmc_result *r)
{
    pmc_part parts[2];
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    if ((name.ptr == NULL && name.len > 0) ||
        (value.ptr == NULL && value.len > 0) || has_nul(name.ptr, name.len))
        return bad_arg(c, "a header name or value is NULL, or the name "
                          "holds a NUL byte");
    parts[0] = (pmc_part){name.len ? name.ptr : "", name.len, 1};
    parts[1] = (pmc_part){value.len ? value.ptr : "", value.len, 1};
    return run(c, &EV_HEADER, parts, 2, r);
}

pmc_status pmc_client_eoh(pmc_client *c, pmc_result *r)
{
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    return run(c, &EV_EOH, NULL, 0, r);
}

pmc_status pmc_client_body(pmc_client *c, const void *p, size_t n,
                           pmc_result *r)
{
    const uint8_t *b = p;
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    if (p == NULL && n > 0)
        return bad_arg(c, "the body is NULL");
    if (n == 0)
        r->unsent = PMC_UNSENT_EMPTY;
    for (size_t off = 0; off < n;) {
        size_t k = n - off < PMC_CHUNK_MAX ? n - off : PMC_CHUNK_MAX;
        pmc_part part = {b + off, k, 0};

        if (off > 0)
            pmci_cli_result_reset(c, r);
        st = run(c, &EV_BODY, &part, 1, r);
        /* Not sendable now means NOBODY, a SKIP or a verdict: stop. */
        if (st != PMC_OK || unsent(c, &EV_BODY) != PMC_UNSENT_NONE)
            return st;
        off += k;
    }
    return PMC_OK;
}

pmc_status pmc_client_eom(pmc_client *c, pmc_result *r)
{
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    st = run(c, &EV_EOM, NULL, 0, r);
    c->in_msg = 0;
    return st;
}

pmc_status pmc_client_unknown(pmc_client *c, const char *line,
                              pmc_result *r)
{
    pmc_part part;
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    if (line == NULL)
        return bad_arg(c, "the command line is NULL");
    part = (pmc_part){line, strlen(line), 1};
    return run(c, &EV_UNKNOWN, &part, 1, r);
}

pmc_status pmc_client_abort(pmc_client *c, pmc_result *r)
{
    pmc_status st;

    if ((st = begin(c, &r)) != PMC_OK)
        return st;
    if (c->conn_done && !c->cfg.ignore_verdicts) {
        c->txn = c->in_msg = c->msg_done = 0;
        r->unsent = PMC_UNSENT_CONN_ENDED;
        return PMC_OK;
    }
    if ((st = add_abort(c)) != PMC_OK || (st = pmci_cli_flush(c)) != PMC_OK)
        return st;
    r->sent = 1;
    return PMC_OK;
}

void pmc_client_state(const pmc_client *c, pmc_client_state_info *out)
{
    int obey = !c->cfg.ignore_verdicts;

    memset(out, 0, sizeof *out);
    /* Before negotiation nothing happened yet; after QUIT or a failure
     * nothing more is sent, ABORT included. */
    if (c->state != PMCI_CLI_READY)
        return;
    out->connection_ended = obey && c->conn_done;
    out->message_ended = obey && c->msg_done;
    out->abort_owed = abort_owed(c);
}

static pmc_status quit(pmc_client *c, uint8_t cmd)
{
    pmc_status st;

    pmci_cli_result_reset(c, &c->scratch);
    c->out.len = 0;
    if (c->state == PMCI_CLI_QUIT || c->state == PMCI_CLI_FAILED)
        return pmci_cli_usable(c, 1);
    if (c->state == PMCI_CLI_READY && abort_owed(c) &&
        (st = add_abort(c)) != PMC_OK)
        return st;
    if (pmc_encode(&c->out, cmd, NULL, 0) != PMC_OK)
        return nomem(c);
    st = pmci_cli_flush(c);
    c->conn_done = c->msg_done = c->txn = c->in_msg = 0;
    c->skip_cmd = 0;
    if (cmd == 'Q') {
        c->state = PMCI_CLI_QUIT;
        pmci_cli_close_transport(c);
    } else {
        c->filter_state = PMCI_ST_Q_NC;
    }
    return st;
}

pmc_status pmc_client_quit(pmc_client *c)
{
    return quit(c, 'Q');
}

pmc_status pmc_client_quit_nc(pmc_client *c)
{
    return quit(c, 'K');
}
