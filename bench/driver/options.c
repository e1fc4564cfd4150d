/* pmc-load command line. */
#define _GNU_SOURCE
#include "load.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: pmc-load --target SPEC [options]\n"
    "  --target SPEC        unix:/path, inet:PORT@127.0.0.1, inet6:PORT@::1\n"
    "  --conn N             concurrent connections (1)\n"
    "  --msgs N             measured messages per connection (100)\n"
    "  --duration SECS      measure for SECS seconds instead (--msgs, if\n"
    "                       also given, caps the count per connection)\n"
    "  --fresh              a new connection for every message\n"
    "  --rcpts N            recipients per message (1)\n"
    "  --headers N          header fields per message (12)\n"
    "  --body BYTES         body size (4096)\n"
    "  --personality P      postfix or sendmail (postfix)\n"
    "  --expect-header NAME fail a message whose EOM lacks add-header NAME\n"
    "  --warmup N           unmeasured messages per connection first (3)\n"
    "  --timeout MS         per read or write (30000)\n"
    "  --json               one JSON object line instead of the summary\n"
    "  --sync               after warm-up print \"ready\" and wait for a line\n"
    "                       on stdin; after the measured messages print\n"
    "                       \"done\" and wait again before closing the\n"
    "                       connections (lets a harness bracket exactly\n"
    "                       the measured part)\n"
    "Exit status: 0 all messages passed, 1 any protocol error or unexpected\n"
    "reply, 2 usage error.\n";

static int number(const char *name, const char *s, unsigned long min,
                  unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "pmc-load: --%s: expected an integer %lu..%lu, "
                        "got '%s'\n", name, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int load_parse_args(int argc, char **argv, load_opts *o)
{
    static const struct option longs[] = {
        {"target", required_argument, 0, 't'},
        {"conn", required_argument, 0, 'c'},
        {"msgs", required_argument, 0, 'm'},
        {"duration", required_argument, 0, 'd'},
        {"fresh", no_argument, 0, 'f'},
        {"rcpts", required_argument, 0, 'r'},
        {"headers", required_argument, 0, 'H'},
        {"body", required_argument, 0, 'b'},
        {"personality", required_argument, 0, 'p'},
        {"expect-header", required_argument, 0, 'e'},
        {"warmup", required_argument, 0, 'w'},
        {"timeout", required_argument, 0, 'T'},
        {"json", no_argument, 0, 'j'},
        {"sync", no_argument, 0, 's'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    pmc_error err;
    unsigned long v;
    int ch;

    memset(o, 0, sizeof *o);
    o->conn = 1;
    o->msgs = 100;
    o->warmup = 3;
    o->rcpts = 1;
    o->headers = 12;
    o->body = 4096;
    o->personality = PMC_MTA_POSTFIX;
    o->timeout_ms = 30000;
    o->max_errors_shown = 5;

    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 't': o->target = optarg; break;
        case 'c':
            if (number("conn", optarg, 1, 10000, &v)) return 2;
            o->conn = (unsigned)v;
            break;
        case 'm':
            if (number("msgs", optarg, 0, 100000000, &v)) return 2;
            o->msgs = (unsigned)v;
            o->msgs_given = 1;
            break;
        case 'd': {
            char *end;
            o->duration = strtod(optarg, &end);
            if (end == optarg || *end || !(o->duration > 0) ||
                o->duration > 86400) {
                fprintf(stderr, "pmc-load: --duration: expected seconds "
                                "(0 < s <= 86400), got '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case 'f': o->fresh = 1; break;
        case 'r':
            if (number("rcpts", optarg, 1, 10000, &v)) return 2;
            o->rcpts = (unsigned)v;
            break;
        case 'H':
            if (number("headers", optarg, 0, 100000, &v)) return 2;
            o->headers = (unsigned)v;
            break;
        case 'b':
            if (number("body", optarg, 0, 512UL << 20, &v)) return 2;
            o->body = v;
            break;
        case 'p':
            if (strcmp(optarg, "postfix") == 0)
                o->personality = PMC_MTA_POSTFIX;
            else if (strcmp(optarg, "sendmail") == 0)
                o->personality = PMC_MTA_SENDMAIL;
            else {
                fprintf(stderr, "pmc-load: --personality: postfix or "
                                "sendmail, got '%s'\n", optarg);
                return 2;
            }
            break;
        case 'e':
            if (!*optarg) {
                fprintf(stderr, "pmc-load: --expect-header: empty name\n");
                return 2;
            }
            o->expect_header = optarg;
            break;
        case 'w':
            if (number("warmup", optarg, 0, 1000000, &v)) return 2;
            o->warmup = (unsigned)v;
            break;
        case 'T':
            if (number("timeout", optarg, 1, 86400000, &v)) return 2;
            o->timeout_ms = (int)v;
            break;
        case 'j': o->json = 1; break;
        case 's': o->sync = 1; break;
        case 'h': fputs(USAGE, stdout); return -1;
        default:
            fprintf(stderr, "pmc-load: unknown or incomplete option '%s'\n%s",
                    argv[optind - 1], USAGE);
            return 2;
        }
    }
    if (o->duration > 0 && !o->msgs_given)
        o->msgs = UINT32_MAX;
    if (optind < argc) {
        fprintf(stderr, "pmc-load: unexpected argument '%s'\n%s",
                argv[optind], USAGE);
        return 2;
    }
    if (!o->target) {
        fprintf(stderr, "pmc-load: --target is required\n%s", USAGE);
        return 2;
    }
    if (pmc_sockspec_parse(o->target, &o->spec, &err) != PMC_OK) {
        fprintf(stderr, "pmc-load: --target: %s\n", err.message);
        return 2;
    }
    if (o->spec.family != PMC_SOCK_UNIX &&
        (o->spec.port == 0 || o->spec.host[0] == 0)) {
        fprintf(stderr, "pmc-load: --target: a TCP target needs a port "
                        "and an address, e.g. inet:8890@127.0.0.1\n");
        return 2;
    }
    return 0;
}
