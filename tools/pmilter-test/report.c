/* The two outputs: a transcript for people, printed as the conversation
 * goes so a filter that hangs shows where, and one JSON document for
 * programs, printed at the end. */
#include "pmt.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct pmt_report {
    const pmt_opts *o;
    FILE *out;
    pmc_buf steps, msgs, errors; /* JSON arrays' members */
    size_t nsteps, nmsgs, nerrors;
    pmc_buf nego;                /* JSON object, or empty */
    int leadspc;                 /* HDR_LEADSPC negotiated */
};

static const struct { uint32_t bit; const char *name; } ACTS[] = {
    {PMC_ACT_ADDHDRS, "ADDHDRS"}, {PMC_ACT_CHGBODY, "CHGBODY"},
    {PMC_ACT_ADDRCPT, "ADDRCPT"}, {PMC_ACT_DELRCPT, "DELRCPT"},
    {PMC_ACT_CHGHDRS, "CHGHDRS"}, {PMC_ACT_QUARANTINE, "QUARANTINE"},
    {PMC_ACT_CHGFROM, "CHGFROM"}, {PMC_ACT_ADDRCPT_PAR, "ADDRCPT_PAR"},
    {PMC_ACT_SETSYMLIST, "SETSYMLIST"}, {0, NULL}};
static const struct { uint32_t bit; const char *name; } PROTS[] = {
    {PMC_P_NOCONNECT, "NOCONNECT"}, {PMC_P_NOHELO, "NOHELO"},
    {PMC_P_NOMAIL, "NOMAIL"}, {PMC_P_NORCPT, "NORCPT"},
    {PMC_P_NOBODY, "NOBODY"}, {PMC_P_NOHDRS, "NOHDRS"},
    {PMC_P_NOEOH, "NOEOH"}, {PMC_P_NR_HDR, "NR_HDR"},
    {PMC_P_NOUNKNOWN, "NOUNKNOWN"}, {PMC_P_NODATA, "NODATA"},
    {PMC_P_SKIP, "SKIP"}, {PMC_P_RCPT_REJ, "RCPT_REJ"},
    {PMC_P_NR_CONN, "NR_CONN"}, {PMC_P_NR_HELO, "NR_HELO"},
    {PMC_P_NR_MAIL, "NR_MAIL"}, {PMC_P_NR_RCPT, "NR_RCPT"},
    {PMC_P_NR_DATA, "NR_DATA"}, {PMC_P_NR_UNKN, "NR_UNKN"},
    {PMC_P_NR_EOH, "NR_EOH"}, {PMC_P_NR_BODY, "NR_BODY"},
    {PMC_P_HDR_LEADSPC, "HDR_LEADSPC"}, {PMC_P_MDS_256K, "MDS_256K"},
    {PMC_P_MDS_1M, "MDS_1M"}, {0, NULL}};

/* Reply and modification codes: the transcript's label, JSON's name. */
static const struct { uint8_t code; const char *label, *json; } CODES[] = {
    {'c', "CONTINUE", "continue"}, {'a', "ACCEPT", "accept"},
    {'r', "REJECT", "reject"}, {'t', "TEMPFAIL", "tempfail"},
    {'d', "DISCARD", "discard"}, {'y', "REPLYCODE", "replycode"},
    {'s', "SKIP", "skip"}, {'4', "SHUTDOWN", "shutdown"},
    {'p', "PROGRESS", "progress"}, {'h', "ADDHEADER", "add_header"},
    {'i', "INSHEADER", "insert_header"}, {'m', "CHGHEADER", "change_header"},
    {'e', "CHGFROM", "change_from"}, {'+', "ADDRCPT", "add_rcpt"},
    {'2', "ADDRCPT_PAR", "add_rcpt_par"}, {'-', "DELRCPT", "delete_rcpt"},
    {'b', "REPLBODY", "replace_body"}, {'q', "QUARANTINE", "quarantine"},
    {0, "?", "unknown"}};

static int code_ix(uint8_t c)
{
    int i = 0;
    while (CODES[i].code && CODES[i].code != c)
        i++;
    return i;
}

const char *pmt_outcome_name(pmt_outcome o)
{
    switch (o) {
    case PMT_OUT_ACCEPT: return "accepted";
    case PMT_OUT_ABORTED: return "aborted";
    case PMT_OUT_DISCARD: return "discarded";
    case PMT_OUT_REJECT: return "rejected";
    case PMT_OUT_TEMPFAIL: return "tempfailed";
    default: return "undecided";
    }
}

/* ---- text helpers -------------------------------------------------------- */

/* Bytes for a transcript line: control bytes escaped so one packet stays
 * on one line. */
static void put_esc(FILE *f, const char *p, size_t n, size_t max)
{
    size_t i;

    for (i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '\r')
            fputs("\\r", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c == '\\')
            fputs("\\\\", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    if (i < n)
        fputs("...", f);
}

static void put_flags(FILE *f, uint32_t v, int prot)
{
    int any = 0;

    for (int i = 0; prot ? PROTS[i].name != NULL : ACTS[i].name != NULL;
         i++) {
        uint32_t bit = prot ? PROTS[i].bit : ACTS[i].bit;
        if (v & bit) {
            fprintf(f, " %s", prot ? PROTS[i].name : ACTS[i].name);
            any = 1;
            v &= ~bit;
        }
    }
    if (v)
        fprintf(f, " 0x%x", (unsigned)v);
    if (!any && !v)
        fputs(" (none)", f);
}

/* A transcript line's start; the label is padded only when text follows,
 * so no line ends in blanks. */
static void head(FILE *f, const char *dir, const char *label, int more)
{
    if (more)
        fprintf(f, "%s %-11s ", dir, label);
    else
        fprintf(f, "%s %s", dir, label);
}

/* ---- JSON helpers -------------------------------------------------------- */

static void j_raw(pmc_buf *b, const char *s)
{
    pmc_buf_append(b, s, strlen(s));
}

/* A JSON string.  Bytes that are not UTF-8 come out as \u00XX, their
 * Latin-1 reading, so any byte string makes valid JSON. */
static void j_str(pmc_buf *b, const char *p, size_t n)
{
    char esc[8];

    j_raw(b, "\"");
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3
                   : (c >> 3) == 30 ? 4 : 0;
        int ok = k > 0 && i + k <= n;

        for (size_t j = 1; ok && j < k; j++)
            ok = ((unsigned char)p[i + j] >> 6) == 2;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            pmc_buf_append(b, esc, 2);
        } else if (c == '\n') {
            j_raw(b, "\\n");
        } else if (c == '\r') {
            j_raw(b, "\\r");
        } else if (c == '\t') {
            j_raw(b, "\\t");
        } else if (c < 0x20 || c == 0x7f || !ok) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            j_raw(b, esc);
            i++;
            continue;
        } else {
            pmc_buf_append(b, p + i, k);
            i += k;
            continue;
        }
        i++;
    }
    j_raw(b, "\"");
}

static void j_cstr(pmc_buf *b, const char *s)
{
    if (s)
        j_str(b, s, strlen(s));
    else
        j_raw(b, "null");
}

static void j_key(pmc_buf *b, const char *k)
{
    j_cstr(b, k);
    j_raw(b, ":");
}

static void j_uint(pmc_buf *b, unsigned long long v)
{
    char t[32];
    snprintf(t, sizeof t, "%llu", v);
    j_raw(b, t);
}

static void j_flags(pmc_buf *b, uint32_t v, int prot)
{
    int first = 1;

    j_raw(b, "[");
    for (int i = 0; prot ? PROTS[i].name != NULL : ACTS[i].name != NULL;
         i++) {
        if (v & (prot ? PROTS[i].bit : ACTS[i].bit)) {
            if (!first)
                j_raw(b, ",");
            j_cstr(b, prot ? PROTS[i].name : ACTS[i].name);
            first = 0;
        }
    }
    j_raw(b, "]");
}

static void j_sep(pmc_buf *b, size_t *count)
{
    if ((*count)++)
        j_raw(b, ",");
}

/* ---- the report ---------------------------------------------------------- */

struct pmt_report *pmt_report_new(const pmt_opts *o)
{
    struct pmt_report *rep = pmt_xalloc(NULL, sizeof *rep);

    memset(rep, 0, sizeof *rep);
    rep->o = o;
    rep->out = stdout;
    if (!o->json && !o->quiet) {
        fprintf(rep->out, "pmilter-test %s: %s, %s personality, %s%s\n",
                PMC_VERSION_STRING, o->socket,
                o->personality == PMC_MTA_POSTFIX ? "Postfix" : "Sendmail",
                o->script_file ? "script " : "message ",
                o->script_file ? o->script_file
                : o->message_file ? o->message_file : "(built-in)");
        fflush(rep->out);
    }
    return rep;
}

void pmt_report_free(struct pmt_report *rep)
{
    if (rep == NULL)
        return;
    pmc_buf_free(&rep->steps);
    pmc_buf_free(&rep->msgs);
    pmc_buf_free(&rep->errors);
    pmc_buf_free(&rep->nego);
    free(rep);
}

static int text(const struct pmt_report *rep)
{
    return !rep->o->json && !rep->o->quiet;
}

void pmt_report_negotiation(struct pmt_report *rep, const pmc_client *c,
                            const pmc_client_config *offer)
{
    uint32_t v, a, p;
    FILE *f = rep->out;
    pmc_buf *b = &rep->nego;

    pmc_client_negotiated(c, &v, &a, &p);
    rep->leadspc = (p & PMC_P_HDR_LEADSPC) != 0;
    if (text(rep)) {
        fprintf(f, "-> OPTNEG      version %u, actions 0x%x, protocol 0x%x\n",
                (unsigned)offer->version, (unsigned)offer->actions,
                (unsigned)offer->protocol);
        fprintf(f, "<- OPTNEG      version %u\n   actions    ", (unsigned)v);
        put_flags(f, a, 0);
        fputs("\n   protocol   ", f);
        put_flags(f, p, 1);
        fputc('\n', f);
        for (int s = 0; s < PMC_STAGE_COUNT; s++) {
            const char *l = pmc_client_symlist(c, s);
            if (l)
                fprintf(f, "   macros      %s: %s\n", pmt_stage_name(s), l);
        }
        fflush(f);
    }
    j_raw(b, "{");
    j_key(b, "offered");
    j_raw(b, "{");
    j_key(b, "version");
    j_uint(b, offer->version);
    j_raw(b, ",");
    j_key(b, "actions");
    j_flags(b, offer->actions, 0);
    j_raw(b, ",");
    j_key(b, "protocol");
    j_flags(b, offer->protocol, 1);
    j_raw(b, "},");
    j_key(b, "version");
    j_uint(b, v);
    j_raw(b, ",");
    j_key(b, "actions");
    j_flags(b, a, 0);
    j_raw(b, ",");
    j_key(b, "protocol");
    j_flags(b, p, 1);
    j_raw(b, ",");
    j_key(b, "macro_lists");
    j_raw(b, "{");
    size_t n = 0;
    for (int s = 0; s < PMC_STAGE_COUNT; s++) {
        const char *l = pmc_client_symlist(c, s);
        if (l) {
            j_sep(b, &n);
            j_key(b, pmt_stage_name(s));
            j_cstr(b, l);
        }
    }
    j_raw(b, "}}");
}

/* How a step's arguments read in the transcript. */
static void text_args(FILE *f, const pmt_step *st)
{
    if (strcmp(st->command, "CONNECT") == 0 && st->nargs >= 2) {
        put_esc(f, st->args[0].ptr, st->args[0].len, 200);
        fprintf(f, ", %s", st->args[1].ptr);
        if (st->nargs >= 4) {
            fputc(' ', f);
            put_esc(f, st->args[2].ptr, st->args[2].len, 200);
            fprintf(f, " port %s", st->args[3].ptr);
        }
    } else if (strcmp(st->command, "HEADER") == 0 && st->nargs == 2) {
        put_esc(f, st->args[0].ptr, st->args[0].len, 200);
        fputs(": ", f);
        put_esc(f, st->args[1].ptr, st->args[1].len, 200);
    } else if (strcmp(st->command, "BODY") == 0 && st->nargs == 1) {
        fprintf(f, "%zu bytes: ", st->args[0].len);
        put_esc(f, st->args[0].ptr, st->args[0].len, 48);
    } else {
        for (size_t i = 0; i < st->nargs; i++) {
            if (i)
                fputc(' ', f);
            put_esc(f, st->args[i].ptr, st->args[i].len, 400);
        }
    }
}

static void text_reply(FILE *f, const pmc_reply *m)
{
    head(f, "<-", CODES[code_ix(m->code)].label,
         m->code != 'p' && (m->a.len || m->code == 'i' || m->code == 'm'));
    switch (m->code) {
    case 'h':
        put_esc(f, m->a.ptr, m->a.len, 200);
        fputs(": ", f);
        put_esc(f, m->b.ptr, m->b.len, 400);
        break;
    case 'i':
    case 'm':
        fprintf(f, "#%u ", (unsigned)m->index);
        put_esc(f, m->a.ptr, m->a.len, 200);
        if (m->code == 'm' && m->b.len == 0) {
            fputs(" (delete)", f);
            break;
        }
        fputs(": ", f);
        put_esc(f, m->b.ptr, m->b.len, 400);
        break;
    case 'b':
        fprintf(f, "%zu bytes: ", m->a.len);
        put_esc(f, m->a.ptr, m->a.len, 48);
        break;
    default:
        put_esc(f, m->a.ptr, m->a.len, 400);
        if (m->has_b && m->b.len) {
            fputc(' ', f);
            put_esc(f, m->b.ptr, m->b.len, 400);
        }
    }
    fputc('\n', f);
}

static void json_mod(pmc_buf *b, const pmc_reply *m)
{
    j_raw(b, "{");
    j_key(b, "type");
    j_cstr(b, CODES[code_ix(m->code)].json);
    switch (m->code) {
    case 'h': case 'i': case 'm':
        if (m->code != 'h') {
            j_raw(b, ",");
            j_key(b, "index");
            j_uint(b, m->index);
        }
        j_raw(b, ",");
        j_key(b, "name");
        j_str(b, m->a.ptr, m->a.len);
        j_raw(b, ",");
        j_key(b, "value");
        j_str(b, m->b.ptr, m->b.len);
        break;
    case 'e': case '+': case '2': case '-':
        j_raw(b, ",");
        j_key(b, m->code == 'e' ? "sender" : "recipient");
        j_str(b, m->a.ptr, m->a.len);
        if (m->has_b) {
            j_raw(b, ",");
            j_key(b, "args");
            j_str(b, m->b.ptr, m->b.len);
        }
        break;
    case 'b':
        j_raw(b, ",");
        j_key(b, "data");
        j_str(b, m->a.ptr, m->a.len);
        break;
    case 'q':
        j_raw(b, ",");
        j_key(b, "reason");
        j_str(b, m->a.ptr, m->a.len);
        break;
    default:
        break;
    }
    j_raw(b, "}");
}

void pmt_report_step(struct pmt_report *rep, const pmt_step *st)
{
    pmc_buf *b = &rep->steps;
    FILE *f = rep->out;

    if (text(rep)) {
        head(f, st->not_sent ? "--" : "->", st->command, st->nargs > 0);
        text_args(f, st);
        if (st->not_sent)
            fprintf(f, "  [not sent: %s]", st->not_sent);
        else if (st->no_reply && strstr(st->no_reply, "has none") == NULL)
            fprintf(f, "  [no reply: %s]", st->no_reply);
        fputc('\n', f);
        if (st->nmacros) {
            fputs("   macros      ", f);
            for (size_t i = 0; i < st->nmacros; i++) {
                fprintf(f, "%s%s=", i ? " " : "", st->macros[2 * i]);
                put_esc(f, st->macros[2 * i + 1],
                        strlen(st->macros[2 * i + 1]), 200);
            }
            fputc('\n', f);
        }
        if (st->r) {
            for (size_t i = 0; i < st->r->nmods; i++)
                text_reply(f, &st->r->mods[i]);
            if (st->r->code) {
                head(f, "<-", CODES[code_ix(st->r->code)].label,
                     st->r->code == 'y');
                if (st->r->code == 'y') {
                    put_esc(f, st->r->text.ptr, st->r->text.len, 1000);
                }
                fputc('\n', f);
            }
        }
        fflush(f);
    }
    j_sep(b, &rep->nsteps);
    j_raw(b, "{");
    j_key(b, "command");
    j_cstr(b, st->command);
    j_raw(b, ",");
    j_key(b, "args");
    j_raw(b, "[");
    for (size_t i = 0; i < st->nargs; i++) {
        if (i)
            j_raw(b, ",");
        j_str(b, st->args[i].ptr, st->args[i].len);
    }
    j_raw(b, "],");
    j_key(b, "sent");
    j_raw(b, st->not_sent ? "false" : "true");
    if (st->not_sent) {
        j_raw(b, ",");
        j_key(b, "not_sent");
        j_cstr(b, st->not_sent);
    }
    if (st->nmacros) {
        j_raw(b, ",");
        j_key(b, "macros");
        j_raw(b, "{");
        for (size_t i = 0; i < st->nmacros; i++) {
            if (i)
                j_raw(b, ",");
            j_key(b, st->macros[2 * i]);
            j_cstr(b, st->macros[2 * i + 1]);
        }
        j_raw(b, "}");
    }
    j_raw(b, ",");
    j_key(b, "reply");
    if (st->r && st->r->code) {
        j_cstr(b, CODES[code_ix(st->r->code)].json);
        if (st->r->code == 'y') {
            j_raw(b, ",");
            j_key(b, "text");
            j_str(b, st->r->text.ptr, st->r->text.len);
        }
    } else {
        j_raw(b, "null");
        if (!st->not_sent && st->no_reply) {
            j_raw(b, ",");
            j_key(b, "no_reply");
            j_cstr(b, st->no_reply);
        }
    }
    if (st->r && st->r->nmods) {
        j_raw(b, ",");
        j_key(b, "modifications");
        j_raw(b, "[");
        for (size_t i = 0; i < st->r->nmods; i++) {
            if (i)
                j_raw(b, ",");
            json_mod(b, &st->r->mods[i]);
        }
        j_raw(b, "]");
    }
    j_raw(b, "}");
}

void pmt_report_note(struct pmt_report *rep, const char *fmt, ...)
{
    va_list ap;

    if (!text(rep))
        return;
    fputs("   (", rep->out);
    va_start(ap, fmt);
    vfprintf(rep->out, fmt, ap);
    va_end(ap);
    fputs(")\n", rep->out);
}

static const char *rcpt_state(int s)
{
    switch (s) {
    case PMT_RCPT_REFUSED: return "refused";
    case PMT_RCPT_TEMPFAILED: return "tempfailed";
    case PMT_RCPT_ADDED: return "added";
    case PMT_RCPT_DELETED: return "deleted";
    default: return "accepted";
    }
}

static void text_message(struct pmt_report *rep, const pmt_message *m,
                         const char *written_to)
{
    FILE *f = rep->out;

    if (!rep->o->quiet) {
        fprintf(f, "== message %u: %s", m->number,
                pmt_outcome_name(m->outcome));
        if (m->decided_at)
            fprintf(f, " at %s", m->decided_at);
        if (m->reply) {
            fputs(": ", f);
            put_esc(f, m->reply, strlen(m->reply), 1000);
        }
        if (m->reached_eom)
            fprintf(f, ", %zu modification%s", m->nmods,
                    m->nmods == 1 ? "" : "s");
        fputc('\n', f);
        fputs("   from        ", f);
        put_esc(f, m->from, strlen(m->from), 400);
        if (m->new_from) {
            fputs(" -> ", f);
            put_esc(f, m->new_from, strlen(m->new_from), 400);
            if (m->new_from_args)
                fprintf(f, " %s", m->new_from_args);
            fputs(" (changed by the filter)", f);
        }
        fputc('\n', f);
        for (size_t i = 0; i < m->nrcpts; i++) {
            const pmt_rcpt *r = &m->rcpts[i];
            fputs("   to          ", f);
            put_esc(f, r->addr, strlen(r->addr), 400);
            if (r->args)
                fprintf(f, " %s", r->args);
            if (r->state != PMT_RCPT_SENT)
                fprintf(f, " (%s%s%s)", rcpt_state(r->state),
                        r->reply ? ": " : "", r->reply ? r->reply : "");
            fputc('\n', f);
        }
        if (m->quarantine)
            fprintf(f, "   quarantine  %s\n", m->quarantine);
        if (m->body_replaced)
            fprintf(f, "   body        replaced by the filter (%zu bytes)\n",
                    m->new_body.len);
    }
    if (!m->reached_eom)
        return;
    if (written_to) {
        if (!rep->o->quiet)
            fprintf(f, "   written to  %s\n", written_to);
        return;
    }
    if (!rep->o->quiet)
        fprintf(f, "--- resulting message %u ---\n", m->number);
    pmt_message_write(m, f, rep->o->crlf, rep->leadspc);
    if (!rep->o->quiet)
        fprintf(f, "--- end of message %u ---\n", m->number);
}

void pmt_report_message(struct pmt_report *rep, const pmt_message *m,
                        const char *written_to)
{
    pmc_buf *b = &rep->msgs;

    if (!rep->o->json) {
        text_message(rep, m, written_to);
        fflush(rep->out);
        return;
    }
    j_sep(b, &rep->nmsgs);
    j_raw(b, "{");
    j_key(b, "number");
    j_uint(b, m->number);
    j_raw(b, ",");
    j_key(b, "outcome");
    j_cstr(b, pmt_outcome_name(m->outcome));
    j_raw(b, ",");
    j_key(b, "decided_at");
    j_cstr(b, m->decided_at);
    j_raw(b, ",");
    j_key(b, "reply");
    j_cstr(b, m->reply);
    j_raw(b, ",");
    j_key(b, "from");
    j_cstr(b, m->from);
    j_raw(b, ",");
    j_key(b, "from_args");
    j_cstr(b, m->from_args);
    j_raw(b, ",");
    j_key(b, "new_from");
    j_cstr(b, m->new_from);
    j_raw(b, ",");
    j_key(b, "recipients");
    j_raw(b, "[");
    for (size_t i = 0; i < m->nrcpts; i++) {
        if (i)
            j_raw(b, ",");
        j_raw(b, "{");
        j_key(b, "address");
        j_cstr(b, m->rcpts[i].addr);
        j_raw(b, ",");
        j_key(b, "args");
        j_cstr(b, m->rcpts[i].args);
        j_raw(b, ",");
        j_key(b, "state");
        j_cstr(b, rcpt_state(m->rcpts[i].state));
        j_raw(b, ",");
        j_key(b, "reply");
        j_cstr(b, m->rcpts[i].reply);
        j_raw(b, "}");
    }
    j_raw(b, "],");
    j_key(b, "quarantine");
    j_cstr(b, m->quarantine);
    j_raw(b, ",");
    j_key(b, "reached_eom");
    j_raw(b, m->reached_eom ? "true" : "false");
    j_raw(b, ",");
    j_key(b, "modifications");
    j_uint(b, m->nmods);
    if (m->reached_eom) {
        const pmc_buf *body = m->body_replaced ? &m->new_body : &m->body;
        j_raw(b, ",");
        j_key(b, "headers");
        j_raw(b, "[");
        for (size_t i = 0; i < m->result.names.n; i++) {
            if (i)
                j_raw(b, ",");
            j_raw(b, "[");
            j_str(b, m->result.names.v[i], m->result.names.len[i]);
            j_raw(b, ",");
            j_str(b, m->result.values.v[i], m->result.values.len[i]);
            j_raw(b, "]");
        }
        j_raw(b, "],");
        j_key(b, "body_replaced");
        j_raw(b, m->body_replaced ? "true" : "false");
        j_raw(b, ",");
        j_key(b, "body");
        j_str(b, (const char *)body->data, body->len);
        j_raw(b, ",");
        j_key(b, "written_to");
        j_cstr(b, written_to);
    }
    j_raw(b, "}");
}

void pmt_report_error(struct pmt_report *rep, const char *kind,
                      const char *fmt, ...)
{
    char msg[600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Errors always reach stderr, whatever the output format. */
    fprintf(stderr, "pmilter-test: %s error: %s\n", kind, msg);
    if (text(rep)) {
        fprintf(rep->out, "!! %s error: %s\n", kind, msg);
        fflush(rep->out);
    }
    j_sep(&rep->errors, &rep->nerrors);
    j_raw(&rep->errors, "{");
    j_key(&rep->errors, "kind");
    j_cstr(&rep->errors, kind);
    j_raw(&rep->errors, ",");
    j_key(&rep->errors, "message");
    j_cstr(&rep->errors, msg);
    j_raw(&rep->errors, "}");
}

void pmt_report_end(struct pmt_report *rep, pmt_outcome worst, int code)
{
    pmc_buf b = {0};

    if (text(rep)) {
        fprintf(rep->out, "== result: %s, exit status %d\n",
                code == PMT_EXIT_PROTOCOL ? "protocol error"
                : code == PMT_EXIT_CONNECT ? "connection failed"
                : code == PMT_EXIT_USAGE ? "usage error"
                : pmt_outcome_name(worst == PMT_OUT_NONE ? PMT_OUT_ACCEPT
                                                         : worst),
                code);
        fflush(rep->out);
    }
    if (!rep->o->json)
        return;
    j_raw(&b, "{");
    j_key(&b, "socket");
    j_cstr(&b, rep->o->socket);
    j_raw(&b, ",");
    j_key(&b, "personality");
    j_cstr(&b, rep->o->personality == PMC_MTA_POSTFIX ? "postfix"
                                                      : "sendmail");
    j_raw(&b, ",");
    j_key(&b, "negotiation");
    if (rep->nego.len)
        pmc_buf_append(&b, rep->nego.data, rep->nego.len);
    else
        j_raw(&b, "null");
    j_raw(&b, ",");
    j_key(&b, "steps");
    j_raw(&b, "[");
    pmc_buf_append(&b, rep->steps.data, rep->steps.len);
    j_raw(&b, "],");
    j_key(&b, "messages");
    j_raw(&b, "[");
    pmc_buf_append(&b, rep->msgs.data, rep->msgs.len);
    j_raw(&b, "],");
    j_key(&b, "errors");
    j_raw(&b, "[");
    pmc_buf_append(&b, rep->errors.data, rep->errors.len);
    j_raw(&b, "],");
    j_key(&b, "outcome");
    j_cstr(&b, code == PMT_EXIT_PROTOCOL ? "protocol_error"
               : code == PMT_EXIT_CONNECT ? "connect_error"
               : code == PMT_EXIT_USAGE ? "usage_error"
               : pmt_outcome_name(worst == PMT_OUT_NONE ? PMT_OUT_ACCEPT
                                                        : worst));
    j_raw(&b, ",");
    j_key(&b, "exit_status");
    j_uint(&b, (unsigned)code);
    j_raw(&b, "}\n");
    fwrite(b.data, 1, b.len, rep->out);
    fflush(rep->out);
    pmc_buf_free(&b);
}
