/* A session's life: configuration defaults, creation (with the macro
 * lists a configuration asks for, set as the filter's own request would
 * set them) and release. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

void pmc_config_init(pmc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->version = PMC_PROTO_VERSION;
}

pmc_session *pmc_session_new(const pmc_handlers *h, void *ud,
                             const pmc_config *cfg)
{
    pmc_session *s;

    if (h == NULL)
        return NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->h = h;
    s->ud = ud;
    if (cfg)
        s->cfg = *cfg;
    else
        pmc_config_init(&s->cfg);
    for (int i = 0; i < PMC_STAGE_COUNT; i++) {
        s->cfg.symlist[i] = NULL;
        if (cfg && cfg->symlist[i] &&
            pmc_session_setsymlist(s, i, cfg->symlist[i]) != PMC_OK) {
            pmc_session_free(s);
            return NULL;
        }
    }
    pmc_decoder_init(&s->dec, s->cfg.max_packet, 1);
    s->cur_event = PMC_EV_COUNT;
    /* Like libmilter, close is owed for every connection, even one that
     * never negotiated: bindings free per-connection state there. */
    s->conn_open = 1;
    return s;
}

void pmc_session_free(pmc_session *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < PMC_STAGE_COUNT; i++)
        free(s->symlist[i]);
    pmc_decoder_free(&s->dec);
    pmc_buf_free(&s->out);
    pmc_buf_free(&s->body);
    pmc_buf_free(&s->reply);
    pmci_macros_free(&s->macros);
    free(s->argv);
    free(s);
}
