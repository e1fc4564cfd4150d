/* Client I/O: sending one event's packets and reading up to a final reply.
 * Results live in client-owned buffers so the caller gets plain views. */
#include "internal_client.h"

#include <stdlib.h>
#include <string.h>

void pmci_cli_result_reset(pmc_client *c, pmc_result *r)
{
    c->store.len = 0;
    c->npend = 0;
    c->body_run = 0;
    c->text_off = PMCI_CLI_NONE;
    memset(r, 0, sizeof *r);
    r->text.ptr = "";
    r->event = PMC_EV_COUNT;
}

pmc_status pmci_cli_flush(pmc_client *c)
{
    int rc;
    const char *why;

    if (c->out.len == 0)
        return PMC_OK;
    rc = c->tr.send(c->tr.ctx, c->out.data, c->out.len);
    c->out.len = 0;
    if (rc == 0)
        return PMC_OK;
    why = c->tr.why != NULL ? c->tr.why(c->tr.ctx) : NULL;
    return pmci_cli_fail(c, rc == PMC_TRANSPORT_TIMEOUT ? PMC_ERR_TIMEOUT
                                                        : PMC_ERR_IO,
                         c->rx, "sending to the filter %s%s%s",
                         rc == PMC_TRANSPORT_TIMEOUT ? "timed out"
                                                     : "failed",
                         why ? ": " : "", why ? why : "");
}

/* Point the result's views into the store now that it no longer moves. */
static pmc_status finish(pmc_client *c, pmc_result *r)
{
    const char *base = (const char *)c->store.data;

    if (c->npend > c->cap_mods) {
        pmc_reply *m = realloc(c->mods, c->npend * sizeof *m);
        if (m == NULL)
            return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                                 "out of memory collecting modifications");
        c->mods = m;
        c->cap_mods = c->npend;
    }
    for (size_t i = 0; i < c->npend; i++) {
        pmc_reply *m = &c->mods[i];
        *m = c->pend[i].r;
        m->a.ptr = c->pend[i].a_off != PMCI_CLI_NONE
                       ? base + c->pend[i].a_off : "";
        m->b.ptr = c->pend[i].b_off != PMCI_CLI_NONE
                       ? base + c->pend[i].b_off : "";
    }
    r->nmods = c->npend;
    r->mods = c->npend ? c->mods : NULL;
    if (c->text_off != PMCI_CLI_NONE)
        r->text.ptr = base + c->text_off;
    return PMC_OK;
}

static pmc_status on_eof(pmc_client *c, uint8_t cmd)
{
    const char *why = c->tr.why != NULL ? c->tr.why(c->tr.ctx) : NULL;

    if (pmc_decoder_eof(&c->dec) != PMC_OK)
        return pmci_cli_fail(c, PMC_ERR_IO, c->rx,
                             "the filter closed the connection inside a "
                             "reply packet to '%c'%s%s",
                             cmd, why ? ": " : "", why ? why : "");
    return pmci_cli_fail(c, PMC_ERR_IO, c->rx,
                         "the filter closed the connection while a reply "
                         "to '%c' was owed%s%s",
                         cmd, why ? ": " : "", why ? why : "");
}

static pmc_status await_final(pmc_client *c, uint8_t cmd, pmc_event ev,
                              pmc_result *r)
{
    pmc_packet pkt;
    int ready, final = 0;
    pmc_status st;
    long n;

    for (;;) {
        st = pmc_decoder_next(&c->dec, &pkt, &ready);
        if (st != PMC_OK) {
            const pmc_error *e = pmc_decoder_error(&c->dec);
            return pmci_cli_fail(c, st == PMC_ERR_NOMEM ? st
                                                        : PMC_ERR_BAD_REPLY,
                                 e ? e->offset : c->rx, "%s",
                                 e ? e->message : "bad reply framing");
        }
        if (ready) {
            st = pmci_cli_reply(c, cmd, &pkt, &final, r);
            if (st != PMC_OK)
                return st;
            if (!final)
                continue;
            /* A filter that answers twice leaves bytes behind; keep them
             * so the next command sees the desync an MTA would. */
            if (pmc_decoder_stash(&c->dec) != PMC_OK)
                return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                                     "out of memory keeping reply bytes");
            r->event = ev;
            return finish(c, r);
        }
        n = c->tr.recv(c->tr.ctx, c->rbuf, sizeof c->rbuf);
        if (n == 0)
            return on_eof(c, cmd);
        if (n < 0) {
            const char *why = c->tr.why != NULL ? c->tr.why(c->tr.ctx)
                                                : NULL;
            return pmci_cli_fail(
                c, n == PMC_TRANSPORT_TIMEOUT ? PMC_ERR_TIMEOUT : PMC_ERR_IO,
                c->rx, "waiting for the filter's reply to '%c' %s%s%s", cmd,
                n == PMC_TRANSPORT_TIMEOUT ? "timed out" : "failed",
                why ? ": " : "", why ? why : "");
        }
        if ((size_t)n > sizeof c->rbuf)
            return pmci_cli_fail(c, PMC_ERR_IO, c->rx,
                                 "the transport returned more bytes than "
                                 "asked for");
        c->rx += (uint64_t)n;
        pmc_decoder_input(&c->dec, c->rbuf, (size_t)n);
    }
}

pmc_status pmci_cli_await(pmc_client *c, uint8_t cmd, pmc_event ev,
                          pmc_result *r)
{
    pmc_status st = await_final(c, cmd, ev, r);

    /* Whatever stopped the read (even memory) left part of a reply unread,
     * so the stream can no longer be trusted. */
    if (st != PMC_OK)
        c->state = PMCI_CLI_FAILED;
    return st;
}
