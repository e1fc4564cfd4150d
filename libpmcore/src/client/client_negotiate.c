/* Client: the filter's answer to OPTNEG (sending it is an event, in
 * client_events.c). */
#include "internal_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pmc_status bad(pmc_client *c, const pmc_packet *pkt, const char *fmt,
                      ...) __attribute__((format(printf, 3, 4)));

static pmc_status bad(pmc_client *c, const pmc_packet *pkt, const char *fmt,
                      ...)
{
    char what[120];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pmci_cli_fail(c, PMC_ERR_BAD_REPLY, pkt->offset,
                         "negotiation reply at offset %llu: %s",
                         (unsigned long long)pkt->offset, what);
}

/* Records of uint32 stage + "names\0" fill the rest of the packet. */
static pmc_status symlists(pmc_client *c, const pmc_packet *pkt,
                           char *lists[PMC_STAGE_COUNT])
{
    const uint8_t *p = pkt->payload + 12;
    size_t n = pkt->len - 12;

    while (n > 0) {
        uint32_t stage;
        const uint8_t *z;
        char *copy;

        if (n < 5)
            return bad(c, pkt, "a macro-list record is cut short (%zu "
                               "bytes left)", n);
        stage = pmci_get32(p);
        if (stage >= PMC_STAGE_COUNT)
            return bad(c, pkt, "a macro-list record names stage %lu, past "
                               "the last (%d)",
                       (unsigned long)stage, PMC_STAGE_COUNT - 1);
        z = memchr(p + 4, 0, n - 4);
        if (z == NULL)
            return bad(c, pkt, "the macro list of stage %lu is not "
                               "NUL-terminated", (unsigned long)stage);
        copy = malloc((size_t)(z - (p + 4)) + 1);
        if (copy == NULL)
            return pmci_cli_fail(c, PMC_ERR_NOMEM, pkt->offset,
                                 "out of memory storing macro lists");
        memcpy(copy, p + 4, (size_t)(z - (p + 4)) + 1);
        free(lists[stage]); /* a later record for a stage wins */
        lists[stage] = copy;
        n -= (size_t)(z + 1 - p);
        p = z + 1;
    }
    return PMC_OK;
}

pmc_status pmci_cli_optneg_reply(pmc_client *c, const pmc_packet *pkt)
{
    char *lists[PMC_STAGE_COUNT] = {0};
    uint32_t v, a, pr;
    pmc_status st;

    if (pkt->len < 12)
        return bad(c, pkt, "the payload has %zu bytes, not at least "
                           "12", pkt->len);
    v = pmci_get32(pkt->payload);
    a = pmci_get32(pkt->payload + 4);
    pr = pmci_get32(pkt->payload + 8);
    if (v < 2 || v > c->cfg.version)
        return bad(c, pkt, "version %lu is outside 2..%lu, the offer",
                   (unsigned long)v, (unsigned long)c->cfg.version);
    if (a & ~c->cfg.actions)
        return bad(c, pkt, "actions 0x%lx were not offered (offer 0x%lx)",
                   (unsigned long)(a & ~c->cfg.actions),
                   (unsigned long)c->cfg.actions);
    if (pr & ~c->cfg.protocol)
        return bad(c, pkt, "protocol bits 0x%lx were not offered (offer "
                           "0x%lx)",
                   (unsigned long)(pr & ~c->cfg.protocol),
                   (unsigned long)c->cfg.protocol);
    st = symlists(c, pkt, lists);
    if (st != PMC_OK) {
        for (int i = 0; i < PMC_STAGE_COUNT; i++)
            free(lists[i]);
        return st;
    }
    for (int i = 0; i < PMC_STAGE_COUNT; i++) {
        free(c->symlist[i]);
        c->symlist[i] = lists[i];
    }
    c->version = v;
    c->actions = a;
    c->protocol = pr;
    return PMC_OK;
}
