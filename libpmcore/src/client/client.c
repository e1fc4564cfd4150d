/* The client object: life cycle, errors and the settings callers change. */
#include "internal_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pmc_client_config_init(pmc_client_config *cfg, pmc_personality p)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->personality = p;
    cfg->version = PMC_PROTO_VERSION;
    cfg->actions = PMC_ACT_ALL;
    cfg->protocol = PMC_P_ALL_V6;
}

pmc_client *pmc_client_new(const pmc_client_config *cfg,
                           const pmc_transport *tr)
{
    pmc_client *c;

    if (tr == NULL || tr->send == NULL || tr->recv == NULL)
        return NULL;
    if (cfg != NULL && (cfg->version < 2 || cfg->version > PMC_PROTO_VERSION))
        return NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (cfg != NULL)
        c->cfg = *cfg;
    else
        pmc_client_config_init(&c->cfg, PMC_MTA_POSTFIX);
    c->tr = *tr;
    pmc_decoder_init(&c->dec, c->cfg.max_packet, 0);
    return c;
}

void pmci_cli_close_transport(pmc_client *c)
{
    if (c->tr_closed)
        return;
    c->tr_closed = 1;
    if (c->tr.close != NULL)
        c->tr.close(c->tr.ctx);
}

void pmc_client_free(pmc_client *c)
{
    if (c == NULL)
        return;
    pmci_cli_close_transport(c);
    pmc_decoder_free(&c->dec);
    pmc_buf_free(&c->out);
    pmc_buf_free(&c->store);
    for (int i = 0; i < PMC_STAGE_COUNT; i++) {
        pmc_buf_free(&c->macros[i]);
        free(c->symlist[i]);
    }
    free(c->pend);
    free(c->mods);
    free(c);
}

const pmc_error *pmc_client_error(const pmc_client *c)
{
    return c->err.code != PMC_OK ? &c->err : NULL;
}

pmc_status pmci_cli_fail(pmc_client *c, pmc_status code, uint64_t offset,
                         const char *fmt, ...)
{
    va_list ap;

    c->err.code = code;
    c->err.offset = offset;
    va_start(ap, fmt);
    vsnprintf(c->err.message, sizeof c->err.message, fmt, ap);
    va_end(ap);
    /* After these the byte streams no longer line up with the filter's
     * idea of the conversation, so an MTA would drop the connection. */
    if (code == PMC_ERR_IO || code == PMC_ERR_TIMEOUT ||
        code == PMC_ERR_BAD_REPLY)
        c->state = PMCI_CLI_FAILED;
    return code;
}

pmc_status pmci_cli_usable(pmc_client *c, int need_negotiated)
{
    switch (c->state) {
    case PMCI_CLI_QUIT:
        return pmci_cli_fail(c, PMC_ERR_CLOSED, c->rx,
                             "the client has already sent QUIT");
    case PMCI_CLI_FAILED:
        return pmci_cli_fail(c, PMC_ERR_CLOSED, c->rx,
                             "the connection to the filter failed earlier");
    case PMCI_CLI_NEW:
        if (need_negotiated)
            return pmci_cli_fail(c, PMC_ERR_SEQUENCE, c->rx,
                                 "call pmc_client_negotiate before sending "
                                 "events");
        return PMC_OK;
    default:
        if (!need_negotiated)
            return pmci_cli_fail(c, PMC_ERR_SEQUENCE, c->rx,
                                 "the client has already negotiated");
        return PMC_OK;
    }
}

void pmc_client_negotiated(const pmc_client *c, uint32_t *version,
                           uint32_t *actions, uint32_t *protocol)
{
    if (version != NULL)
        *version = c->version;
    if (actions != NULL)
        *actions = c->actions;
    if (protocol != NULL)
        *protocol = c->protocol;
}

const char *pmc_client_symlist(const pmc_client *c, int stage)
{
    if (stage < 0 || stage >= PMC_STAGE_COUNT)
        return NULL;
    return c->symlist[stage];
}

static int bad_str(pmc_str s)
{
    return (s.ptr == NULL && s.len > 0) ||
           (s.len > 0 && memchr(s.ptr, 0, s.len) != NULL);
}

pmc_status pmc_client_set_macros(pmc_client *c, int stage,
                                 const pmc_str *pairs, size_t n)
{
    pmc_buf b = {0};

    if (stage < 0 || stage >= PMC_STAGE_COUNT)
        return pmci_cli_fail(c, PMC_ERR_ARGUMENT, c->rx,
                             "macro stage %d is not a PMC_STAGE_* value",
                             stage);
    if (n > 0 && pairs == NULL)
        return pmci_cli_fail(c, PMC_ERR_ARGUMENT, c->rx,
                             "macro pairs are NULL");
    for (size_t i = 0; i < 2 * n; i++) {
        if (bad_str(pairs[i]) || (i % 2 == 0 && pairs[i].len == 0))
            return pmci_cli_fail(c, PMC_ERR_ARGUMENT, c->rx,
                                 "macro %s %zu is empty, NULL or holds a "
                                 "NUL byte",
                                 i % 2 ? "value" : "name", i / 2);
    }
    for (size_t i = 0; i < 2 * n; i++) {
        static const uint8_t nul = 0;
        if (pmc_buf_append(&b, pairs[i].ptr, pairs[i].len) != PMC_OK ||
            pmc_buf_append(&b, &nul, 1) != PMC_OK) {
            pmc_buf_free(&b);
            return pmci_cli_fail(c, PMC_ERR_NOMEM, c->rx,
                                 "out of memory storing macros");
        }
    }
    pmc_buf_free(&c->macros[stage]);
    c->macros[stage] = b;
    return PMC_OK;
}
