/* Names of statuses and events, and the error setter every layer uses. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>

static const char *const status_names[PMC_STATUS_COUNT] = {
    [PMC_OK] = "OK",
    [PMC_ERR_ZERO_LENGTH] = "ZERO_LENGTH",
    [PMC_ERR_TOO_BIG] = "TOO_BIG",
    [PMC_ERR_TRUNCATED] = "TRUNCATED",
    [PMC_ERR_UNKNOWN_COMMAND] = "UNKNOWN_COMMAND",
    [PMC_ERR_BAD_PAYLOAD] = "BAD_PAYLOAD",
    [PMC_ERR_BAD_FAMILY] = "BAD_FAMILY",
    [PMC_ERR_BAD_MACRO] = "BAD_MACRO",
    [PMC_ERR_VERSION] = "VERSION",
    [PMC_ERR_NEGOTIATION] = "NEGOTIATION",
    [PMC_ERR_SEQUENCE] = "SEQUENCE",
    [PMC_ERR_CLOSED] = "CLOSED",
    [PMC_ERR_NOT_NEGOTIATED] = "NOT_NEGOTIATED",
    [PMC_ERR_WRONG_STAGE] = "WRONG_STAGE",
    [PMC_ERR_REPLY_TEXT] = "REPLY_TEXT",
    [PMC_ERR_ARGUMENT] = "ARGUMENT",
    [PMC_ERR_PENDING] = "PENDING",
    [PMC_ERR_NOMEM] = "NOMEM",
    [PMC_ERR_BAD_REPLY] = "BAD_REPLY",
    [PMC_ERR_IO] = "IO",
    [PMC_ERR_TIMEOUT] = "TIMEOUT",
    [PMC_ERR_FORMAT] = "FORMAT",
};

const char *pmc_status_name(pmc_status st)
{
    if ((unsigned)st >= PMC_STATUS_COUNT || status_names[st] == NULL)
        return "UNKNOWN";
    return status_names[st];
}

static const char *const event_names[PMC_EV_COUNT] = {
    "negotiate", "connect", "helo", "envfrom", "envrcpt", "data", "header",
    "eoh", "body", "eom", "abort", "close", "unknown",
};

const char *pmc_event_name(pmc_event ev)
{
    if ((unsigned)ev >= PMC_EV_COUNT)
        return "none";
    return event_names[ev];
}

pmc_status pmci_set_error(pmc_error *e, pmc_status code, uint64_t offset,
                          const char *fmt, ...)
{
    va_list ap;

    e->code = code;
    e->offset = offset;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}
