/* Parsed command payloads, handed from commands.c to the session. */
#ifndef PMCORE_COMMANDS_H
#define PMCORE_COMMANDS_H

#include "internal.h"

#include <string.h>

typedef struct pmci_cmd {
    pmc_connect_info ci; /* 'C' */
    pmc_str a;           /* HELO name, header name, UNKNOWN line, body bytes */
    pmc_str b;           /* header value */
    pmc_args args;       /* 'M' and 'R' */
} pmci_cmd;

/* Payload parsers.  On a malformed payload the session fails (abort and
 * close run) and the error is returned. */
PMCI_HIDDEN pmc_status pmci_parse_connect(pmc_session *s, const pmc_packet *p,
                                          pmc_connect_info *ci);
/* The first NUL-terminated string (HELO, UNKNOWN); 'what' names it in the
 * error message. */
PMCI_HIDDEN pmc_status pmci_parse_string(pmc_session *s, const pmc_packet *p,
                                         pmc_str *out, const char *what);
PMCI_HIDDEN pmc_status pmci_parse_args(pmc_session *s, const pmc_packet *p,
                                       pmc_args *args);
/* Fail the session for a malformed payload; 'what' says what is wrong. */
PMCI_HIDDEN pmc_status pmci_bad_payload(pmc_session *s, const pmc_packet *p,
                                        const char *what);

/* "name\0value\0": the value is everything up to the final NUL, so NULs
 * inside it survive.  Inline: a message has a dozen headers or more. */
static inline pmc_status pmci_parse_header(pmc_session *s,
                                           const pmc_packet *p, pmci_cmd *c)
{
    const uint8_t *nul = pmci_find_nul(p->payload, p->len);
    size_t rest;

    if (nul == NULL)
        return pmci_bad_payload(s, p, "the header name has no terminating "
                                      "NUL");
    c->a.ptr = (const char *)p->payload;
    c->a.len = (size_t)(nul - p->payload);
    rest = p->len - c->a.len - 1;
    if (rest == 0) {
        c->b.ptr = (const char *)nul; /* the name's NUL: an empty value */
        c->b.len = 0;
        return PMC_OK;
    }
    if (p->payload[p->len - 1] != 0)
        return pmci_bad_payload(s, p, "the header value has no terminating "
                                      "NUL");
    c->b.ptr = (const char *)nul + 1;
    c->b.len = rest - 1;
    return PMC_OK;
}

#endif
