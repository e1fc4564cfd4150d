/* Scripted conversations: one SMTP-level step per line (format in
 * pmilter-test.1, SCRIPTS).  The script is walked twice: once to check it
 * before anything is sent, once to run it. */
#include "pmt.h"

#include <stdlib.h>
#include <string.h>

typedef struct walk {
    pmt_conv *cv;
    int exec;
    const char *path;
    unsigned lineno;
    char *hname;       /* header waiting for continuation lines */
    pmc_buf hvalue;
    pmc_buf body;      /* consecutive body lines: one chunk */
    int have_body;
} walk;

static int bad(walk *w, const char *fmt, const char *arg)
{
    fprintf(stderr, "pmilter-test: %s:%u: ", w->path, w->lineno);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return -2;
}

/* Split on blanks; words point into 'line', which is modified. */
static size_t words(char *line, char **v, size_t max)
{
    size_t n = 0;

    while (*line && n < max) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line)
            break;
        v[n++] = line;
        while (*line && *line != ' ' && *line != '\t')
            line++;
        if (*line)
            *line++ = 0;
    }
    return n;
}

static const char *rest_of(const char *line, size_t skip_words)
{
    while (skip_words--) {
        line += strspn(line, " \t");
        line += strcspn(line, " \t");
    }
    return line + strspn(line, " \t");
}

static int flush_header(walk *w)
{
    int rc = 0;

    if (w->hname == NULL)
        return 0;
    if (w->exec) {
        pmc_str n = {w->hname, strlen(w->hname)};
        pmc_str v = {w->hvalue.len ? (char *)w->hvalue.data : "",
                     w->hvalue.len};
        rc = pmt_ev_header(w->cv, n, v);
    }
    free(w->hname);
    w->hname = NULL;
    w->hvalue.len = 0;
    return rc;
}

static int flush_body(walk *w)
{
    int rc = 0;

    if (!w->have_body)
        return 0;
    if (w->exec)
        rc = pmt_ev_body(w->cv, w->body.data, w->body.len);
    w->body.len = 0;
    w->have_body = 0;
    return rc;
}

static int argv_event(walk *w, char **v, size_t n, int rcpt)
{
    pmc_str argv[64];

    if (n < 2)
        return bad(w, "%s needs an address", v[0]);
    for (size_t i = 1; i < n; i++)
        argv[i - 1] = (pmc_str){v[i], strlen(v[i])};
    /* "<>" and "" are both the null sender; '""' writes the empty one. */
    if (strcmp(v[1], "\"\"") == 0)
        argv[0] = (pmc_str){"", 0};
    if (!w->exec)
        return 0;
    return rcpt ? pmt_ev_rcpt(w->cv, argv, n - 1)
                : pmt_ev_mail(w->cv, argv, n - 1);
}

static int cmd_connect(walk *w, char **v, size_t n)
{
    const pmt_opts *o = w->cv ? w->cv->o : NULL;
    const char *host = n > 1 ? v[1] : o ? o->client_name : NULL;
    const char *addr = n > 2 ? v[2] : o ? o->client_addr : "192.0.2.10";
    unsigned long port = o ? o->client_port : 0;
    const char *bare;
    char family, *end;

    if (n > 4)
        return bad(w, "%s takes at most HOST ADDR PORT", v[0]);
    if (n > 3) {
        port = strtoul(v[3], &end, 10);
        if (*end || port > 65535)
            return bad(w, "bad port '%s'", v[3]);
    }
    if (host && strcmp(host, "-") == 0)
        host = NULL;
    pmt_family_of(addr, &family, &bare);
    if (!w->exec)
        return 0;
    return pmt_ev_connect(w->cv, host, family,
                          family == 'L' ? 0 : (unsigned)port, bare);
}

static int cmd_message(walk *w, const char *name)
{
    pmc_buf raw = {0};
    char err[300] = "", path[4096];
    const char *slash = strrchr(w->path, '/');
    int rc = 0;

    if (!*name)
        return bad(w, "%s needs a file name", "message");
    /* Relative names are read beside the script, so a script and its
     * messages move together. */
    if (name[0] != '/' && slash)
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - w->path),
                 w->path, name);
    else
        snprintf(path, sizeof path, "%s", name);
    /* Any bytes are a message (the core decides where its header section
     * ends), so checking means only that the file can be read. */
    if (pmt_read_file(path, &raw, err, sizeof err) != 0) {
        pmc_buf_free(&raw);
        return bad(w, "%s", err);
    }
    if (w->exec) {
        rc = pmt_ev_data(w->cv);
        if (rc == 0)
            rc = pmt_send_message(w->cv, (const char *)raw.data, raw.len, 0);
        if (rc == -2)
            rc = bad(w, "%s: out of memory", path);
    }
    pmc_buf_free(&raw);
    return rc;
}

static int cmd_macro(walk *w, char **v, size_t n, const char *value_rest)
{
    int stage;
    char *eq;

    if (n < 3)
        return bad(w, "%s needs STAGE NAME[=VALUE]", v[0]);
    stage = pmt_stage_from_name(v[1]);
    if (stage < 0)
        return bad(w, "unknown macro stage '%s' (connect, helo, mail, "
                   "rcpt, data, eoh, eom)", v[1]);
    eq = strchr(v[2], '=');
    if (eq == v[2])
        return bad(w, "%s: empty macro name", v[2]);
    if (!w->exec)
        return 0;
    /* The value is the rest of the line after '=', blanks included. */
    if (eq) {
        *eq = 0;
        return pmt_set_macro(w->cv, stage, v[2],
                             strchr(value_rest, '=') + 1);
    }
    return pmt_set_macro(w->cv, stage, v[2], NULL);
}

static int line(walk *w, char *l)
{
    char copy[8192], *v[66];
    size_t n, len = strlen(l);
    const char *rest;

    if (len && l[len - 1] == '\r')
        l[--len] = 0;
    /* A blank-led line continues the header above it. */
    if ((l[0] == ' ' || l[0] == '\t') && w->hname) {
        pmc_buf_append(&w->hvalue, "\n", 1);
        pmc_buf_append(&w->hvalue, l, len);
        return 0;
    }
    if (len >= sizeof copy)
        return bad(w, "line longer than %s bytes", "8191");
    memcpy(copy, l, len + 1);
    n = words(copy, v, 66);
    if (n == 0 || v[0][0] == '#')
        return 0;
    if (n > 64)
        return bad(w, "too many words (at most %s)", "64");
    rest = rest_of(l, 1);
    if (strcmp(v[0], "body") != 0 && flush_body(w) != 0)
        return -1;
    if (flush_header(w) != 0)
        return -1;

    if (strcmp(v[0], "connect") == 0)
        return cmd_connect(w, v, n);
    if (strcmp(v[0], "helo") == 0 || strcmp(v[0], "ehlo") == 0) {
        if (n != 2)
            return bad(w, "%s takes one name", v[0]);
        return w->exec ? pmt_ev_helo(w->cv, v[1]) : 0;
    }
    if (strcmp(v[0], "mail") == 0)
        return argv_event(w, v, n, 0);
    if (strcmp(v[0], "rcpt") == 0)
        return argv_event(w, v, n, 1);
    if (strcmp(v[0], "data") == 0)
        return n != 1 ? bad(w, "%s takes no argument", v[0])
               : w->exec ? pmt_ev_data(w->cv) : 0;
    if (strcmp(v[0], "header") == 0) {
        const char *colon = strchr(rest, ':');
        if (colon == NULL || colon == rest)
            return bad(w, "%s needs 'Name: value'", v[0]);
        w->hname = pmt_strndup(rest, (size_t)(colon - rest));
        colon++;
        /* The MTA drops the space after the colon unless the filter
         * asked for it (HDR_LEADSPC). */
        if (*colon == ' ' &&
            !(w->exec && (w->cv->protocol & PMC_P_HDR_LEADSPC)))
            colon++;
        pmc_buf_append(&w->hvalue, colon, strlen(colon));
        return 0;
    }
    if (strcmp(v[0], "eoh") == 0)
        return n != 1 ? bad(w, "%s takes no argument", v[0])
               : w->exec ? pmt_ev_eoh(w->cv) : 0;
    if (strcmp(v[0], "body") == 0) {
        /* Everything after "body " is the line, blanks included. */
        const char *text = len > 4 ? l + 5 : "";
        pmc_buf_append(&w->body, text, strlen(text));
        pmc_buf_append(&w->body, "\r\n", 2);
        w->have_body = 1;
        return 0;
    }
    if (strcmp(v[0], "message") == 0)
        return cmd_message(w, rest);
    if (strcmp(v[0], "eom") == 0)
        return n != 1 ? bad(w, "%s takes no argument", v[0])
               : w->exec ? pmt_ev_eom(w->cv) : 0;
    if (strcmp(v[0], "abort") == 0 || strcmp(v[0], "rset") == 0)
        return n != 1 ? bad(w, "%s takes no argument", v[0])
               : w->exec ? pmt_ev_abort(w->cv) : 0;
    if (strcmp(v[0], "unknown") == 0)
        return !*rest ? bad(w, "%s needs the SMTP command line", v[0])
               : w->exec ? pmt_ev_unknown(w->cv, rest) : 0;
    if (strcmp(v[0], "macro") == 0)
        return cmd_macro(w, v, n, rest);
    if (strcmp(v[0], "quit") == 0 || strcmp(v[0], "quit-nc") == 0)
        return n != 1 ? bad(w, "%s takes no argument", v[0])
               : w->exec ? pmt_ev_quit(w->cv, v[0][4] == '-') : 0;
    return bad(w, "unknown command '%s'", v[0]);
}

int pmt_run_script(pmt_conv *cv, const char *text, size_t len,
                   const char *path, int exec)
{
    walk w = {0};
    size_t pos = 0;
    int rc = 0;

    w.cv = cv;
    w.exec = exec;
    w.path = path;
    while (rc == 0 && pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - text - pos) : len - pos;
        char *l = pmt_strndup(text + pos, n);

        w.lineno++;
        if (memchr(text + pos, 0, n))
            rc = bad(&w, "%s", "NUL byte in the script");
        else
            rc = line(&w, l);
        free(l);
        pos += n + (nl != NULL);
    }
    if (rc == 0)
        rc = flush_body(&w);
    if (rc == 0)
        rc = flush_header(&w);
    free(w.hname);
    pmc_buf_free(&w.hvalue);
    pmc_buf_free(&w.body);
    return rc;
}
