/* Declarations shared by the client's files; not part of the contract. */
#ifndef PMCORE_INTERNAL_CLIENT_H
#define PMCORE_INTERNAL_CLIENT_H

#include "../proto/internal.h"
#include "pmcore/client.h"

/* One read's worth of reply bytes; replies are small except REPLBODY. */
#define PMCI_CLI_RBUF 16384

/* An offset into 'store' that names no string. */
#define PMCI_CLI_NONE ((size_t)-1)

/* A modification as collected: string positions are offsets into 'store'
 * because the store may move while later packets are appended. */
typedef struct pmci_cli_mod {
    pmc_reply r;
    size_t a_off, b_off;
} pmci_cli_mod;

enum pmci_cli_state {
    PMCI_CLI_NEW,    /* OPTNEG not yet done */
    PMCI_CLI_READY,
    PMCI_CLI_FAILED, /* out of step with the filter: nothing more is sent */
    PMCI_CLI_QUIT
};

struct pmc_client {
    pmc_client_config cfg;
    pmc_transport tr;
    int tr_closed;
    int state;
    pmc_error err;

    pmc_decoder dec;
    uint64_t rx;                       /* bytes received, for offsets */
    pmc_buf out;                       /* one event's packets */
    pmc_buf macros[PMC_STAGE_COUNT];   /* name\0value\0 pairs */
    char *symlist[PMC_STAGE_COUNT];

    uint32_t version, actions, protocol; /* the filter's answer */

    /* MTA-side conversation state. */
    int conn_done; /* a verdict ended the connection */
    int msg_done;  /* a verdict ended the current message */
    int txn;       /* MAIL sent and no ABORT since (Postfix's ABORT rule) */
    int in_msg;    /* message in progress (Sendmail's ABORT rule) */
    uint8_t skip_cmd; /* command letter being skipped after 's', or 0 */
    int filter_state; /* where the filter stands (order.h), to know which
                         commands it will drop unanswered */

    /* Results of the current command. */
    pmc_buf store;
    pmci_cli_mod *pend;
    size_t npend, cap_pend;
    pmc_reply *mods;
    size_t cap_mods;
    size_t text_off; /* 'y' text in the store, or PMCI_CLI_NONE */
    int body_run;  /* 'b' packets at this EOM: 0 none, 1 in a run, 2 ended */
    pmc_result scratch; /* stands in when the caller passes r NULL */

    uint8_t rbuf[PMCI_CLI_RBUF];
};

/* The files' functions, bottom up: each file calls only what is declared
 * in its own section or above it (the public calls are on top:
 * client_events.c, and client_message.c over it). */

/* client.c */
PMCI_HIDDEN pmc_status pmci_cli_fail(pmc_client *c, pmc_status code,
                                     uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
PMCI_HIDDEN pmc_status pmci_cli_usable(pmc_client *c, int need_negotiated);
PMCI_HIDDEN void pmci_cli_close_transport(pmc_client *c);

/* client_negotiate.c: the filter's answer to OPTNEG. */
PMCI_HIDDEN pmc_status pmci_cli_optneg_reply(pmc_client *c,
                                             const pmc_packet *pkt);

/* client_reply.c: one reply packet while awaiting 'cmd'.  Sets *final when
 * it was the final reply. */
PMCI_HIDDEN pmc_status pmci_cli_reply(pmc_client *c, uint8_t cmd,
                                      const pmc_packet *pkt, int *final,
                                      pmc_result *r);
PMCI_HIDDEN pmc_status pmci_cli_store(pmc_client *c, const void *p,
                                      size_t n, size_t *off);

/* client_io.c */
PMCI_HIDDEN void pmci_cli_result_reset(pmc_client *c, pmc_result *r);
PMCI_HIDDEN pmc_status pmci_cli_flush(pmc_client *c);
/* Read packets until the final reply to 'cmd'; fills r. */
PMCI_HIDDEN pmc_status pmci_cli_await(pmc_client *c, uint8_t cmd,
                                      pmc_event ev, pmc_result *r);

#endif
