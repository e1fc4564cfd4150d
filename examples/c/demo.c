/*
 * demo: a small milter on the pmc_session API, driven in-process by the
 * pmc_client playing Postfix, with a transcript of the conversation.
 *
 * The filter
 *   - refuses the recipient <spam@example.com> with
 *     "550 5.7.1 <spam@example.com>: recipient refused by the pmcore demo";
 *   - adds "X-Pmcore-Demo: checked, N recipient(s)" to every message at EOM.
 *
 * No socket is involved: pmc_transport_session hands what the client sends
 * straight to the session and the session's output back to the client, so
 * the same filter code would serve a real MTA through a server.
 */
#include "pmcore.h"

#include <stdio.h>
#include <string.h>

/* ---- the filter ---------------------------------------------------------- */

/* Per-connection state, reached through the session's user data. */
typedef struct demo_filter {
    unsigned rcpts; /* recipients accepted in the current message */
} demo_filter;

static int demo_envfrom(pmc_session *s, void *ud, const pmc_args *args)
{
    demo_filter *f = ud;
    (void)s;
    (void)args;
    f->rcpts = 0; /* a new message starts */
    return PMC_CONTINUE;
}

static int demo_envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    static const char spam[] = "<spam@example.com>";
    demo_filter *f = ud;
    pmc_str to = args->argv[0];

    if (to.len == sizeof spam - 1 && memcmp(to.ptr, spam, to.len) == 0) {
        /* The text goes with this REJECT only; a failure here would leave a
         * plain 5xx, which is still a correct answer. */
        if (pmc_session_setreply(s, "550", "5.7.1",
                                 "<spam@example.com>: recipient refused by "
                                 "the pmcore demo") != PMC_OK)
            fprintf(stderr, "setreply: %s\n",
                    pmc_session_action_error(s)->message);
        return PMC_REJECT;
    }
    f->rcpts++;
    return PMC_CONTINUE;
}

static int demo_eom(pmc_session *s, void *ud)
{
    demo_filter *f = ud;
    char value[64];
    int n = snprintf(value, sizeof value, "checked, %u recipient%s", f->rcpts,
                     f->rcpts == 1 ? "" : "s");
    pmc_str name = {"X-Pmcore-Demo", 13};
    pmc_str val = {value, (size_t)n};

    if (pmc_session_addheader(s, name, val) != PMC_OK)
        fprintf(stderr, "addheader: %s\n",
                pmc_session_action_error(s)->message);
    return PMC_CONTINUE;
}

/* Only the events the filter cares about have handlers: the session asks
 * the MTA not to send the others (NO* bits) and answers for them itself. */
static const pmc_handlers demo_handlers = {
    .envfrom = demo_envfrom,
    .envrcpt = demo_envrcpt,
    .eom = demo_eom,
};

/* ---- the transcript -------------------------------------------------------- */

static int failed;
static int nr_negotiated; /* with no NR bits, "no reply" means "not sent" */

static const char *code_name(uint8_t c)
{
    switch (c) {
    case 'O': return "options";
    case 'c': return "continue";
    case 'a': return "accept";
    case 'r': return "reject";
    case 't': return "tempfail";
    case 'd': return "discard";
    case 'y': return "reply";
    case 's': return "skip";
    case '4': return "shutdown";
    case 'h': return "add header";
    case 'i': return "insert header";
    case 'm': return "change header";
    case 'e': return "change sender";
    case '+': return "add recipient";
    case '2': return "add recipient (ESMTP)";
    case '-': return "delete recipient";
    case 'b': return "replace body";
    case 'q': return "quarantine";
    case 'p': return "progress";
    default: return "?";
    }
}

/* Print the outcome of one client call: modifications, then the verdict. */
static void show(const char *what, pmc_client *c, pmc_status st,
                 const pmc_result *r)
{
    if (st == PMC_OK && r && r->code == 0 && !nr_negotiated) {
        printf("MTA    - %s  (not sent: no handler)\n",
               what);
        return;
    }
    printf("MTA    > %s\n", what);
    if (st != PMC_OK) {
        const pmc_error *e = pmc_client_error(c);
        printf("  error: %s: %s\n", pmc_status_name(st),
               e ? e->message : "(no detail)");
        failed = 1;
        return;
    }
    if (!r)
        return;
    for (size_t i = 0; i < r->nmods; i++) {
        const pmc_reply *m = &r->mods[i];
        printf("filter <   '%c' %s", m->code, code_name(m->code));
        if (m->a.len)
            printf(": %.*s", (int)m->a.len, m->a.ptr);
        if (m->has_b)
            printf("%s%.*s", m->code == 'h' ? ": " : " ", (int)m->b.len,
                   m->b.ptr);
        printf("\n");
    }
    if (r->code == 0)
        printf("           (not sent, or no reply owed)\n");
    else if (r->code == 'y')
        printf("filter <   'y' %.*s\n", (int)r->text.len, r->text.ptr);
    else
        printf("filter <   '%c' %s\n", r->code, code_name(r->code));
}

static pmc_str S(const char *s)
{
    pmc_str v = {s, strlen(s)};
    return v;
}

/* One message as Postfix sends it: MAIL, each RCPT, DATA, headers, EOH,
 * body, EOM.  (pmc_client_message does the same in one call; the demo makes
 * each step visible.) */
static void message(pmc_client *c, const char *from, const char *const *to,
                    size_t nto, const char *const (*hdrs)[2], size_t nhdrs,
                    const char *body)
{
    char line[256];
    pmc_result r;
    pmc_str mail[2] = {S(from), S("SIZE=1024")};
    pmc_status st;

    snprintf(line, sizeof line, "MAIL FROM:%s SIZE=1024", from);
    st = pmc_client_mail(c, mail, 2, &r);
    show(line, c, st, &r);
    for (size_t i = 0; i < nto; i++) {
        pmc_str rcpt = S(to[i]);
        snprintf(line, sizeof line, "RCPT TO:%s", to[i]);
        st = pmc_client_rcpt(c, &rcpt, 1, &r);
        show(line, c, st, &r);
    }
    st = pmc_client_data(c, &r);
    show("DATA", c, st, &r);
    for (size_t i = 0; i < nhdrs; i++) {
        snprintf(line, sizeof line, "header %s: %s", hdrs[i][0], hdrs[i][1]);
        st = pmc_client_header(c, S(hdrs[i][0]), S(hdrs[i][1]), &r);
        show(line, c, st, &r);
    }
    st = pmc_client_eoh(c, &r);
    show("end of headers", c, st, &r);
    snprintf(line, sizeof line, "body (%zu bytes)", strlen(body));
    st = pmc_client_body(c, body, strlen(body), &r);
    show(line, c, st, &r);
    st = pmc_client_eom(c, &r);
    show("end of message", c, st, &r);
}

int main(void)
{
    demo_filter state = {0};
    pmc_config cfg;
    pmc_session *s;
    pmc_transport tr;
    pmc_client *c;
    pmc_result r;
    pmc_status st;
    uint32_t version, actions, protocol;

    /* The filter: it adds headers, so it asks for ADDHDRS. */
    pmc_config_init(&cfg);
    cfg.actions = PMC_ACT_ADDHDRS;
    s = pmc_session_new(&demo_handlers, &state, &cfg);

    /* The MTA: Postfix 3.x defaults, talking to that session. */
    pmc_transport_session(&tr, s, NULL, NULL);
    c = s ? pmc_client_new(NULL, &tr) : NULL;
    if (!c) {
        fprintf(stderr, "demo: out of memory\n");
        return 1;
    }

    printf("pmcore %s demo: a C milter driven by a Postfix-like client\n\n",
           PMC_VERSION_STRING);
    st = pmc_client_negotiate(c, &r);
    show("OPTNEG version 6, all actions, all protocol steps", c, st, &r);
    pmc_client_negotiated(c, &version, &actions, &protocol);
    printf("           negotiated: version %u, actions 0x%03x, protocol "
           "0x%06x\n", version, actions, protocol);
    nr_negotiated = (protocol & PMC_P_NR_MASK) != 0;

    pmc_str conn_macros[] = {S("j"), S("mx.example.net"), S("{daemon_name}"),
                             S("smtpd")};
    pmc_client_set_macros(c, PMC_STAGE_CONNECT, conn_macros, 2);
    st = pmc_client_connect(c, "client.example.org", '4', 40123,
                            "198.51.100.7", &r);
    show("CONNECT client.example.org [198.51.100.7]:40123", c, st, &r);
    st = pmc_client_helo(c, "client.example.org", &r);
    show("HELO client.example.org", c, st, &r);

    printf("\n-- message 1: one good and one refused recipient\n");
    static const char *const to1[] = {"<bob@example.com>",
                                      "<spam@example.com>"};
    static const char *const hdrs1[][2] = {{"From", "Alice <alice@example.org>"},
                                           {"To", "Bob <bob@example.com>"},
                                           {"Subject", "Lunch?"}};
    message(c, "<alice@example.org>", to1, 2, hdrs1, 3,
            "Noon at the usual place?\r\n");

    printf("\n-- message 2: same connection, Postfix sends ABORT first\n");
    static const char *const to2[] = {"<dave@example.com>", "<erin@example.com>"};
    static const char *const hdrs2[][2] = {{"From", "Carol <carol@example.org>"},
                                           {"Subject", "Minutes"}};
    message(c, "<carol@example.org>", to2, 2, hdrs2, 2,
            "Attached are the minutes.\r\n");

    printf("\n");
    st = pmc_client_quit(c);
    show("QUIT", c, st, NULL);

    pmc_session_stats stats;
    pmc_session_stats_get(s, &stats);
    printf("\nfilter side: packets in %llu, messages %llu, replies with "
           "a text %llu\n",
           (unsigned long long)stats.packets_in,
           (unsigned long long)stats.messages,
           (unsigned long long)stats.replies['y']);
    pmc_client_free(c);
    pmc_session_free(s);
    return failed;
}
