/* pmilter-test: play Postfix or Sendmail against a milter socket and show
 * what the milter did.  Options, the two modes (a message file, a script)
 * and the exit status; see pmilter-test.1. */
#include "pmt.h"
#include "replay.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* Sent when no message file is given: enough to exercise every step. */
static const char BUILTIN_MESSAGE[] =
    "From: Sender <sender@example.org>\n"
    "To: Recipient <recipient@example.com>\n"
    "Subject: pmilter-test message\n"
    "Message-ID: <pmilter-test.1@example.org>\n"
    "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
    "\n"
    "This message was sent by pmilter-test.\n";

static void usage(FILE *f)
{
    fputs(
"usage: pmilter-test [OPTIONS] SOCKET [MESSAGE-FILE]\n"
"       pmilter-test [OPTIONS] --script FILE SOCKET\n"
"       pmilter-test --replay FILE|DIR --socket SOCKET [-t SECONDS] [-q]\n"
"SOCKET: unix:/path, inet:PORT@HOST, inet6:PORT@[ADDR]\n"
"  -f, --from ADDR          envelope sender (default <sender@example.org>)\n"
"  -r, --rcpt ADDR          envelope recipient, repeatable\n"
"                           (default <recipient@example.com>)\n"
"      --client-addr ADDR   client address: IPv4, IPv6, /path, unknown\n"
"                           (default 192.0.2.10)\n"
"      --client-port PORT   client port (default 54321)\n"
"      --client-name NAME   client host name, '-' for unresolved\n"
"                           (default client.example.org)\n"
"      --helo NAME          HELO name (default the client name)\n"
"  -D, --macro STAGE:NAME=VALUE  set a macro (STAGE: connect helo mail\n"
"                           rcpt data eoh eom); STAGE:NAME removes one\n"
"      --no-default-macros  send only the macros given with --macro\n"
"  -p, --personality P      postfix (default) or sendmail\n"
"      --postfix, --sendmail  the same\n"
"      --proto-version N    protocol version offered, 2..6 (default 6)\n"
"  -t, --timeout SECONDS    per reply and for connecting (default 10)\n"
"  -s, --script FILE        run a scripted conversation\n"
"      --replay FILE|DIR    play captured conversations (PMCORE_CAPTURE)\n"
"                           again and print how the replies differ;\n"
"                           exits 0 identical, 1 differ, 2 error\n"
"      --socket SOCKET      the milter's socket (instead of the argument)\n"
"  -j, --json               one JSON document instead of a transcript\n"
"  -q, --quiet              no transcript; only the resulting message\n"
"  -o, --output FILE        write the resulting message to FILE\n"
"                           (%d in FILE: the message number)\n"
"      --crlf               resulting message with CR LF line ends\n"
"      --ignore-verdicts    send every event even after a final verdict\n"
"  -h, --help               this text\n"
"  -V, --version            the version\n"
"Exit status: 0 accepted, 1 rejected, 2 tempfailed, 3 discarded,\n"
"4 protocol error, 5 cannot connect, 64 usage error.  See pmilter-test(1).\n",
        f);
}

static int bad_usage(const char *fmt, const char *arg)
{
    fputs("pmilter-test: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(pmilter-test --help lists the options)\n", stderr);
    return PMT_EXIT_USAGE;
}

/* Options take addresses with or without the angle brackets. */
static char *bracket(const char *a)
{
    size_t n = strlen(a);
    char *s;

    if (n == 0 || a[0] == '<')
        return pmt_strndup(a[0] ? a : "<>", a[0] ? n : 2);
    s = pmt_xalloc(NULL, n + 3);
    snprintf(s, n + 3, "<%s>", a);
    return s;
}

static int parse_macro(pmt_conv *cv, const char *spec)
{
    char buf[1024], *colon, *eq;
    int stage;

    snprintf(buf, sizeof buf, "%s", spec);
    colon = strchr(buf, ':');
    if (colon == NULL)
        return -1;
    *colon = 0;
    stage = pmt_stage_from_name(buf);
    if (stage < 0 || colon[1] == 0 || colon[1] == '=')
        return -1;
    eq = strchr(colon + 1, '=');
    if (eq)
        *eq = 0;
    return pmt_set_macro(cv, stage, colon + 1, eq ? eq + 1 : NULL);
}

static int check_macro(const char *spec)
{
    const char *colon = strchr(spec, ':');
    char stage[32];

    if (colon == NULL || (size_t)(colon - spec) >= sizeof stage)
        return -1;
    snprintf(stage, sizeof stage, "%.*s", (int)(colon - spec), spec);
    return pmt_stage_from_name(stage) < 0 || colon[1] == 0 ||
           colon[1] == '=' ? -1 : 0;
}

/* The message-file mode: one SMTP session with one message. */
static int run_message(pmt_conv *cv, const char *data, size_t len)
{
    const pmt_opts *o = cv->o;
    char family;
    const char *addr;
    char *from = bracket(o->from);
    pmc_str argv;
    int rc = -1;

    pmt_family_of(o->client_addr, &family, &addr);
    if (pmt_ev_connect(cv, o->client_name, family, family == 'L' ? 0
                       : o->client_port, addr) != 0 ||
        pmt_ev_helo(cv, o->helo) != 0)
        goto out;
    if (pmt_ended(cv)) {
        rc = 0;
        goto out;
    }
    argv = (pmc_str){from, strlen(from)};
    if (pmt_ev_mail(cv, &argv, 1) != 0)
        goto out;
    for (size_t i = 0; i < o->rcpts.n && !pmt_ended(cv); i++) {
        char *r = bracket(o->rcpts.v[i]);
        pmc_str ra = {r, strlen(r)};
        int x = pmt_ev_rcpt(cv, &ra, 1);
        free(r);
        if (x != 0)
            goto out;
    }
    /* Like an MTA: no DATA when the message is decided or every recipient
     * was refused. */
    if (pmt_ended(cv) || (pmt_rcpts_left(cv) == 0 && !o->ignore_verdicts) ||
        pmt_ev_data(cv) != 0) {
        rc = cv->failed ? -1 : 0;
        goto out;
    }
    /* Out of memory (-2) ends the run as pmt_xalloc does. */
    if ((rc = pmt_send_message(cv, data, len, 1)) == -2)
        fputs("pmilter-test: out of memory\n", stderr);
out:
    free(from);
    return rc;
}

static int exit_code(pmt_outcome worst)
{
    switch (worst) {
    case PMT_OUT_REJECT: return PMT_EXIT_REJECT;
    case PMT_OUT_TEMPFAIL: return PMT_EXIT_TEMPFAIL;
    case PMT_OUT_DISCARD: return PMT_EXIT_DISCARD;
    default: return PMT_EXIT_ACCEPT;
    }
}

/* Everything after the options: check the input, converse, report. */
static int run(const pmt_opts *o)
{
    pmt_conv cv;
    struct pmt_report *rep;
    pmc_buf input = {0};
    char err[300] = "";
    int rc, code;

    /* Read and check the input before connecting, so a typo costs no
     * conversation. */
    if (o->script_file || o->message_file) {
        const char *path = o->script_file ? o->script_file : o->message_file;
        if (pmt_read_file(path, &input, err, sizeof err) != 0)
            return bad_usage("%s", err);
    } else {
        pmc_buf_append(&input, BUILTIN_MESSAGE, sizeof BUILTIN_MESSAGE - 1);
    }
    if (o->script_file &&
        pmt_run_script(NULL, (char *)input.data, input.len, o->script_file,
                       0) != 0) {
        pmc_buf_free(&input);
        return PMT_EXIT_USAGE;
    }

    rep = pmt_report_new(o);
    if (pmt_conv_open(&cv, o, rep) != 0) {
        code = cv.failed ? cv.failed : PMT_EXIT_CONNECT;
        pmt_report_end(rep, PMT_OUT_NONE, code);
        pmt_report_free(rep);
        pmc_buf_free(&input);
        return code;
    }
    for (size_t i = 0; i < o->macros.n; i++)
        parse_macro(&cv, o->macros.v[i]);

    rc = pmt_negotiate(&cv);
    if (rc == 0 && o->script_file)
        rc = pmt_run_script(&cv, (char *)input.data, input.len,
                            o->script_file, 1);
    else if (rc == 0)
        rc = run_message(&cv, (char *)input.data, input.len);
    if (rc == 0)
        rc = pmt_ev_quit(&cv, 0);
    pmt_conv_close(&cv);
    code = rc == -2 ? PMT_EXIT_USAGE
           : cv.failed ? cv.failed : exit_code(cv.worst);
    pmt_report_end(rep, cv.worst, code);
    pmt_report_free(rep);
    pmc_buf_free(&input);
    return code;
}

enum { O_CADDR = 256, O_CPORT, O_CNAME, O_HELO, O_NODEF, O_POSTFIX,
       O_SENDMAIL, O_PVER, O_CRLF, O_IGNORE, O_REPLAY, O_SOCKET };

/* The command line into *o: -1 to go on, or the status to exit with. */
static int parse(pmt_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        {"from", required_argument, 0, 'f'},
        {"rcpt", required_argument, 0, 'r'},
        {"client-addr", required_argument, 0, O_CADDR},
        {"client-port", required_argument, 0, O_CPORT},
        {"client-name", required_argument, 0, O_CNAME},
        {"helo", required_argument, 0, O_HELO},
        {"macro", required_argument, 0, 'D'},
        {"no-default-macros", no_argument, 0, O_NODEF},
        {"personality", required_argument, 0, 'p'},
        {"postfix", no_argument, 0, O_POSTFIX},
        {"sendmail", no_argument, 0, O_SENDMAIL},
        {"proto-version", required_argument, 0, O_PVER},
        {"timeout", required_argument, 0, 't'},
        {"script", required_argument, 0, 's'},
        {"json", no_argument, 0, 'j'},
        {"quiet", no_argument, 0, 'q'},
        {"output", required_argument, 0, 'o'},
        {"crlf", no_argument, 0, O_CRLF},
        {"ignore-verdicts", no_argument, 0, O_IGNORE},
        {"replay", required_argument, 0, O_REPLAY},
        {"socket", required_argument, 0, O_SOCKET},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    char *end;
    int c;
    long v;

    memset(o, 0, sizeof *o);
    o->personality = PMC_MTA_POSTFIX;
    o->from = "<sender@example.org>";
    o->client_addr = "192.0.2.10";
    o->client_port = 54321;
    o->client_name = "client.example.org";
    o->default_macros = 1;
    o->timeout_s = 10;

    while ((c = getopt_long(argc, argv, "f:r:D:p:t:s:jqo:hV", longs, NULL))
           != -1) {
        switch (c) {
        case 'f': o->from = optarg; break;
        case 'r': pmt_strv_push(&o->rcpts, optarg, strlen(optarg)); break;
        case O_CADDR: o->client_addr = optarg; break;
        case O_CPORT:
            v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 65535)
                return bad_usage("bad --client-port '%s'", optarg);
            o->client_port = (unsigned)v;
            break;
        case O_CNAME:
            o->client_name = strcmp(optarg, "-") ? optarg : NULL;
            break;
        case O_HELO: o->helo = optarg; break;
        case 'D':
            if (check_macro(optarg) != 0)
                return bad_usage("bad --macro '%s' (STAGE:NAME=VALUE)",
                                 optarg);
            pmt_strv_push(&o->macros, optarg, strlen(optarg));
            break;
        case O_NODEF: o->default_macros = 0; break;
        case 'p':
            if (strcmp(optarg, "postfix") == 0)
                o->personality = PMC_MTA_POSTFIX;
            else if (strcmp(optarg, "sendmail") == 0)
                o->personality = PMC_MTA_SENDMAIL;
            else
                return bad_usage("unknown personality '%s' (postfix, "
                                 "sendmail)", optarg);
            break;
        case O_POSTFIX: o->personality = PMC_MTA_POSTFIX; break;
        case O_SENDMAIL: o->personality = PMC_MTA_SENDMAIL; break;
        case O_PVER:
            v = strtol(optarg, &end, 10);
            if (*end || v < 2 || v > 6)
                return bad_usage("--proto-version '%s': 2 to 6", optarg);
            o->proto_version = (int)v;
            break;
        case 't':
            v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 86400)
                return bad_usage("bad --timeout '%s' (seconds)", optarg);
            o->timeout_s = (int)v;
            break;
        case 's': o->script_file = optarg; break;
        case 'j': o->json = 1; break;
        case 'q': o->quiet = 1; break;
        case 'o': o->output = optarg; break;
        case O_CRLF: o->crlf = 1; break;
        case O_IGNORE: o->ignore_verdicts = 1; break;
        case O_REPLAY: o->replay = optarg; break;
        case O_SOCKET: o->socket = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("pmilter-test %s\n", PMC_VERSION_STRING); return 0;
        default: return bad_usage("%s", "bad option");
        }
    }
    if (o->replay) {
        if (!o->socket || optind < argc || o->script_file) {
            bad_usage("%s", "--replay takes FILE or DIR, --socket SOCKET, "
                      "and no other input");
            return PMT_REPLAY_ERROR;
        }
        return -1;
    }
    if (!o->socket && optind >= argc)
        return bad_usage("%s", "no SOCKET given");
    if (!o->socket)
        o->socket = argv[optind++];
    if (optind < argc)
        o->message_file = argv[optind++];
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (o->script_file && o->message_file)
        return bad_usage("%s", "give a MESSAGE-FILE or --script, not both");
    if (o->rcpts.n == 0)
        pmt_strv_push(&o->rcpts, "<recipient@example.com>", 23);
    if (o->helo == NULL)
        o->helo = o->client_name ? o->client_name : "client.example.org";
    return -1;
}

int main(int argc, char **argv)
{
    pmt_opts o;
    int code = parse(&o, argc, argv);

    if (code < 0 && o.replay)
        code = pmt_replay(o.replay, o.socket, o.timeout_s, o.quiet);
    else if (code < 0)
        code = run(&o);
    pmt_strv_free(&o.rcpts);
    pmt_strv_free(&o.macros);
    return code;
}
