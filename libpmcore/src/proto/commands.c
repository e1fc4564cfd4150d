/*
 * Payload parsing.  Every view handed to a handler ends at a NUL that is
 * part of the packet, so C handlers may treat them as C strings; a payload
 * that lacks the NUL it needs is refused rather than guessed at.
 */
#define _POSIX_C_SOURCE 200809L
#include "commands.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char empty[1] = "";

pmc_status pmci_bad_payload(pmc_session *s, const pmc_packet *p,
                            const char *what)
{
    return pmci_fail(s, PMC_ERR_BAD_PAYLOAD,
                     "command '%c' at offset %llu: %s", p->cmd,
                     (unsigned long long)p->offset, what);
}

/* The first NUL-terminated string of the payload. */
static int first_string(const pmc_packet *p, pmc_str *out)
{
    const uint8_t *nul = p->len ? memchr(p->payload, 0, p->len) : NULL;

    if (nul == NULL)
        return 0;
    out->ptr = (const char *)p->payload;
    out->len = (size_t)(nul - p->payload);
    return 1;
}

pmc_status pmci_parse_connect(pmc_session *s, const pmc_packet *p,
                              pmc_connect_info *ci)
{
    const uint8_t *q, *end = p->payload + p->len, *nul;
    int af;

    memset(ci, 0, sizeof *ci);
    if (!first_string(p, &ci->host))
        return pmci_bad_payload(s, p, "the host name has no terminating NUL");
    q = p->payload + ci->host.len + 1;
    if (q >= end)
        return pmci_bad_payload(s, p, "the address family is missing");
    ci->family = (char)*q++;
    ci->addr.ptr = ci->raw_addr.ptr = empty;
    switch (ci->family) {
    case 'U':
        return PMC_OK; /* nothing follows an unknown family */
    case '4': case '6': case 'L':
        break;
    default:
        return pmci_fail(s, PMC_ERR_BAD_FAMILY,
                         "CONNECT at offset %llu has unknown address family "
                         "0x%02x",
                         (unsigned long long)p->offset,
                         (unsigned)(uint8_t)ci->family);
    }
    if (end - q < 2)
        return pmci_bad_payload(s, p, "the port is missing");
    ci->port = (uint16_t)(q[0] << 8 | q[1]);
    q += 2;
    nul = memchr(q, 0, (size_t)(end - q));
    if (nul == NULL)
        return pmci_bad_payload(s, p, "the address has no terminating NUL");
    ci->raw_addr.ptr = (const char *)q;
    ci->raw_addr.len = (size_t)(nul - q);
    ci->addr = ci->raw_addr;
    /* Sendmail writes IPv6 client addresses as "IPv6:addr". */
    if (ci->family == '6' && ci->addr.len >= 5 &&
        strncasecmp(ci->addr.ptr, "IPv6:", 5) == 0) {
        ci->addr.ptr += 5;
        ci->addr.len -= 5;
    }
    af = ci->family == '4' ? AF_INET : ci->family == '6' ? AF_INET6 : 0;
    if (af && inet_pton(af, ci->addr.ptr, ci->addr_bin) == 1)
        ci->addr_bin_len = af == AF_INET ? 4 : 16;
    return PMC_OK;
}

/* MAIL and RCPT: NUL-separated strings.  An empty payload is taken as an
 * empty address rather than refused: some MTA paths send nothing for the
 * null sender, and refusing would fail the whole connection. */
pmc_status pmci_parse_args(pmc_session *s, const pmc_packet *p,
                           pmc_args *args)
{
    static const pmc_str empty_arg = {empty, 0};
    size_t i = 0;
    const char *q, *end;

    if (p->len == 0) {
        args->argv = &empty_arg;
        args->argc = 1;
        return PMC_OK;
    }
    if (p->payload[p->len - 1] != 0)
        return pmci_bad_payload(s, p, "the last argument has no terminating NUL");
    q = (const char *)p->payload;
    end = q + p->len;
    while (q < end) {
        const char *nul = (const char *)pmci_find_nul((const uint8_t *)q,
                                                      (size_t)(end - q));
        if (i == s->argv_cap) {
            size_t cap = s->argv_cap ? 2 * s->argv_cap : 8;
            pmc_str *n = realloc(s->argv, cap * sizeof *n);
            if (n == NULL)
                return pmci_fail(s, PMC_ERR_NOMEM,
                                 "out of memory parsing arguments");
            s->argv = n;
            s->argv_cap = cap;
        }
        s->argv[i].ptr = q;
        s->argv[i].len = (size_t)(nul - q);
        q = nul + 1;
        i++;
    }
    args->argv = s->argv;
    args->argc = i;
    return PMC_OK;
}

pmc_status pmci_parse_string(pmc_session *s, const pmc_packet *p,
                             pmc_str *out, const char *what)
{
    char msg[80];

    if (first_string(p, out))
        return PMC_OK;
    snprintf(msg, sizeof msg, "%s has no terminating NUL", what);
    return pmci_bad_payload(s, p, msg);
}
