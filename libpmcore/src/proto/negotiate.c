/*
 * OPTNEG.  The reply must never hold a protocol bit the MTA did not offer:
 * Postfix does not check, acts on NR bits it never offered, and the two
 * sides then disagree about who speaks next.  So NR bits the MTA lacks are
 * dropped from the reply and faked by the session (it answers CONTINUE
 * itself), and anything else unoffered is either dropped (when we derived
 * it) or refused (when a negotiate handler insisted), as libmilter does.
 */
#include "internal.h"

#include <string.h>

/* Extension bits a filter may ask for through pmc_config.protocol. */
#define EXTENSIONS (PMC_P_SKIP | PMC_P_RCPT_REJ | PMC_P_HDR_LEADSPC)

static uint32_t derived_no_bits(const pmc_handlers *h)
{
    uint32_t p = 0;

    if (!h->connect) p |= PMC_P_NOCONNECT;
    if (!h->helo) p |= PMC_P_NOHELO;
    if (!h->envfrom) p |= PMC_P_NOMAIL;
    if (!h->envrcpt) p |= PMC_P_NORCPT;
    if (!h->body) p |= PMC_P_NOBODY;
    if (!h->header) p |= PMC_P_NOHDRS;
    if (!h->eoh) p |= PMC_P_NOEOH;
    if (!h->unknown) p |= PMC_P_NOUNKNOWN;
    if (!h->data) p |= PMC_P_NODATA;
    return p;
}

static uint32_t min3(uint32_t a, uint32_t b, uint32_t c)
{
    uint32_t m = a < b ? a : b;
    return m < c ? m : c;
}

static pmc_status append_symlists(pmc_session *s, pmc_buf *pl)
{
    uint8_t stage[4];

    for (int i = 0; i < PMC_STAGE_COUNT; i++) {
        if (s->symlist[i] == NULL)
            continue;
        pmci_put32(stage, (uint32_t)i);
        if (pmc_buf_append(pl, stage, 4) != PMC_OK ||
            pmc_buf_append(pl, s->symlist[i], strlen(s->symlist[i]) + 1) !=
                PMC_OK)
            return PMC_ERR_NOMEM;
    }
    return PMC_OK;
}

static int have_symlists(const pmc_session *s)
{
    for (int i = 0; i < PMC_STAGE_COUNT; i++)
        if (s->symlist[i])
            return 1;
    return 0;
}

/* Apply a negotiate handler's choice, refusing what the MTA cannot do. */
static pmc_status enforce(pmc_session *s, pmc_negotiation *n)
{
    uint32_t offered = s->mta_protocol, extra;

    if (n->version < 2 || n->version > s->mta_version ||
        n->version > PMC_PROTO_VERSION)
        return pmci_fail(s, PMC_ERR_NEGOTIATION,
                         "negotiate chose version %lu; the MTA offered %lu",
                         (unsigned long)n->version,
                         (unsigned long)s->mta_version);
    if (n->actions & ~s->mta_actions)
        return pmci_fail(s, PMC_ERR_NEGOTIATION,
                         "the filter needs actions 0x%lx the MTA does not "
                         "offer (offered 0x%lx)",
                         (unsigned long)(n->actions & ~s->mta_actions),
                         (unsigned long)s->mta_actions);
    n->protocol &= ~(PMC_P_NR_MASK & ~offered);
    n->protocol &= ~((PMC_P_NODATA | PMC_P_NOUNKNOWN) & ~offered);
    extra = n->protocol & ~offered;
    if (extra)
        return pmci_fail(s, PMC_ERR_NEGOTIATION,
                         "the filter needs protocol bits 0x%lx the MTA does "
                         "not offer (offered 0x%lx)",
                         (unsigned long)extra, (unsigned long)offered);
    return PMC_OK;
}

pmc_status pmci_negotiate(pmc_session *s, const uint8_t *p, size_t n)
{
    pmc_negotiation neg;
    uint32_t no_bits;
    uint8_t fixed[12];
    pmc_buf pl = {0};
    pmc_status st;
    int v;

    if (s->negotiated)
        return pmci_fail(s, PMC_ERR_SEQUENCE, "a second OPTNEG");
    if (n < 12)
        return pmci_fail(s, PMC_ERR_BAD_PAYLOAD,
                         "OPTNEG payload is %zu bytes; it needs 12", n);
    s->mta_version = pmci_get32(p);
    s->mta_actions = pmci_get32(p + 4);
    s->mta_protocol = pmci_get32(p + 8);
    if (s->mta_version < 2)
        return pmci_fail(s, PMC_ERR_VERSION,
                         "the MTA offers protocol version %lu; at least 2 "
                         "is needed",
                         (unsigned long)s->mta_version);
    /* Version 1 MTAs sent 0 to mean "the v1 set". */
    if (s->mta_actions == 0)
        s->mta_actions = 0x0F;
    if (s->mta_protocol == 0)
        s->mta_protocol = 0x3F;

    no_bits = derived_no_bits(s->h) & s->mta_protocol;
    neg.mta_version = s->mta_version;
    neg.mta_actions = s->mta_actions;
    neg.mta_protocol = s->mta_protocol;
    neg.version = min3(s->mta_version, s->cfg.version, PMC_PROTO_VERSION);
    neg.actions = s->cfg.actions & PMC_ACT_ALL & ~PMC_ACT_SETSYMLIST;
    neg.protocol = no_bits |
                   (s->cfg.protocol & (PMC_P_NR_MASK | EXTENSIONS) &
                    s->mta_protocol);
    if (s->h->negotiate == NULL) {
        if ((st = enforce(s, &neg)) != PMC_OK)
            return st;
    } else {
        s->in_handler = 1;
        s->cur_event = PMC_EV_NEGOTIATE;
        v = s->h->negotiate(s, s->ud, &neg);
        s->in_handler = 0;
        s->cur_event = PMC_EV_COUNT;
        if (v == PMC_ALL_OPTS) {
            neg.actions = s->mta_actions;
            neg.protocol = no_bits | (s->mta_protocol & PMC_P_SKIP);
        } else if (v != PMC_CONTINUE) {
            return pmci_fail(s, PMC_ERR_NEGOTIATION,
                             "the negotiate handler refused the MTA's offer "
                             "(returned %d)", v);
        }
        if ((st = enforce(s, &neg)) != PMC_OK)
            return st;
    }
    if (have_symlists(s) && (s->mta_actions & PMC_ACT_SETSYMLIST))
        neg.actions |= PMC_ACT_SETSYMLIST;

    s->version = neg.version;
    s->actions = neg.actions;
    s->protocol = neg.protocol;
    s->negotiated = 1;

    pmci_put32(fixed, s->version);
    pmci_put32(fixed + 4, s->actions);
    pmci_put32(fixed + 8, s->protocol);
    st = pmc_buf_append(&pl, fixed, 12);
    if (st == PMC_OK && (s->actions & PMC_ACT_SETSYMLIST))
        st = append_symlists(s, &pl);
    if (st == PMC_OK)
        st = pmc_encode(&s->out, 'O', pl.data, pl.len);
    pmc_buf_free(&pl);
    if (st != PMC_OK)
        return pmci_fail(s, PMC_ERR_NOMEM, "out of memory negotiating");
    PMCI_COUNT(s->stats.replies['O']);
    return PMC_OK;
}
