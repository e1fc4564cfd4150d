/*
 * pmc-load: a milter load driver on the libpmcore client.  Shared
 * declarations of its parts: options, the socket and transport to the
 * filter, the message workload, and the report.
 */
#ifndef PMC_LOAD_H
#define PMC_LOAD_H

#include "pmcore.h"

#include <stddef.h>
#include <stdint.h>

typedef struct load_opts {
    const char *target;         /* socket spec as given */
    pmc_sockspec spec;          /* parsed */
    unsigned conn;              /* concurrent connections */
    unsigned msgs;              /* measured messages per connection */
    double duration;            /* > 0: measure for this many seconds
                                   (msgs, if given, still caps) */
    int msgs_given;
    unsigned warmup;            /* unmeasured messages per connection */
    int fresh;                  /* a new connection per message */
    unsigned rcpts;
    unsigned headers;
    size_t body;                /* body bytes */
    pmc_personality personality;
    const char *expect_header;  /* NULL = no check */
    int json;
    int sync;                   /* stdin/stdout hand-shake around the run */
    int timeout_ms;             /* per read or write */
    unsigned max_errors_shown;
} load_opts;

/* Parse argv into o.  Returns 0, or 2 after printing usage (also for
 * --help, which returns -1 so the caller exits 0). */
int load_parse_args(int argc, char **argv, load_opts *o);

/* A connection to the filter with a blocking client transport: one send()
 * per event and one recv() per read, the timeouts being the socket's
 * SO_SNDTIMEO/SO_RCVTIMEO, so the driver spends no poll() per step. */
typedef struct load_sock {
    int fd;
    int timeout_ms;
    char why[160];
} load_sock;

/* Connect to the spec (TCP_NODELAY on TCP).  0, or -1 with s->why set. */
int load_sock_open(load_sock *s, const pmc_sockspec *spec, int timeout_ms);
void load_sock_close(load_sock *s);
/* Fill tr to use s (tr.close is NULL: the caller closes the socket). */
void load_sock_transport(load_sock *s, pmc_transport *tr);

/* The message every connection sends, built once and read by all threads. */
typedef struct load_workload {
    pmc_str from[2];        /* MAIL argv: sender, SIZE= */
    pmc_str *rcpts;         /* n_rcpts recipients, argv[0] form */
    pmc_str *hdr_names, *hdr_values;
    unsigned n_rcpts, n_headers;
    char *body;
    size_t body_len;
    const char *expect_header;
} load_workload;

int load_workload_build(load_workload *w, const load_opts *o);
void load_workload_free(load_workload *w);

/* Open a client on tr, set the personality's macros and do OPTNEG,
 * CONNECT and HELO.  Returns the client, or NULL with 'err' filled (the
 * client, if one was made, is freed). */
pmc_client *load_session_open(const load_opts *o, const pmc_transport *tr,
                              char *err, size_t errlen);
/* Send one message and check every reply: 'c' (or no reply where none is
 * owed) before EOM, 'c' or 'a' at EOM, and the expected header among
 * EOM's modifications.  Returns 0 on success; 1 for an unexpected but
 * well-formed reply (the connection may go on); 2 when the connection is
 * out of step (I/O or protocol error) and must be dropped.  'err' gets a
 * sentence on failure. */
int load_message(pmc_client *c, const load_workload *w, char *err,
                 size_t errlen);

#endif
