/* Parsed command payloads, handed from commands.c to the session. */
#ifndef PMCORE_COMMANDS_H
#define PMCORE_COMMANDS_H

#include "internal.h"

typedef struct pmci_cmd {
    pmc_connect_info ci; /* 'C' */
    pmc_str a;           /* HELO name, header name, UNKNOWN line, body bytes */
    pmc_str b;           /* header value */
    pmc_args args;       /* 'M' and 'R' */
} pmci_cmd;

/* Parse the payload of C H M R L U B E (others need no parsing).  On a
 * malformed payload the session fails and the error is returned. */
PMCI_HIDDEN pmc_status pmci_parse_command(pmc_session *s, const pmc_packet *p,
                                          pmci_cmd *c);

#endif
