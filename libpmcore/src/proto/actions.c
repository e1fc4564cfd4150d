/*
 * What a filter may ask of the MTA.  Each action checks that it was
 * negotiated and that the conversation is at a point where the MTA reads it:
 * a modification sent at the wrong time is read by the MTA as the reply to
 * something else, which desynchronises the connection.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pmc_status action_fail(pmc_session *s, pmc_status code,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static pmc_status action_fail(pmc_session *s, pmc_status code,
                              const char *fmt, ...)
{
    va_list ap;

    s->action_err.code = code;
    s->action_err.offset = s->cur_offset;
    va_start(ap, fmt);
    vsnprintf(s->action_err.message, sizeof s->action_err.message, fmt, ap);
    va_end(ap);
    return code;
}

static int handling(const pmc_session *s, pmc_event ev)
{
    return (s->in_handler || s->pending) && s->cur_event == ev;
}

/* Modifications: negotiated flag, EOM, and a live session. */
static pmc_status may_modify(pmc_session *s, uint32_t flag, const char *what)
{
    if (s->closed)
        return action_fail(s, PMC_ERR_CLOSED, "%s: the session has ended",
                           what);
    if (!(s->actions & flag))
        return action_fail(s, PMC_ERR_NOT_NEGOTIATED,
                           "%s needs action flag 0x%03lx, which was not "
                           "negotiated",
                           what, (unsigned long)flag);
    if (!handling(s, PMC_EV_EOM))
        return action_fail(s, PMC_ERR_WRONG_STAGE,
                           "%s is only allowed at end of message, not in "
                           "%s",
                           what, pmc_event_name(s->cur_event));
    return PMC_OK;
}

/* A string the MTA reads as a C string must not hold a NUL, or the MTA
 * would silently act on a shorter one. */
static int clean(pmc_str v)
{
    return v.ptr != NULL && memchr(v.ptr, 0, v.len) == NULL;
}

static pmc_status bad_arg(pmc_session *s, const char *what, const char *arg)
{
    return action_fail(s, PMC_ERR_ARGUMENT,
                       "%s: %s is missing or contains a NUL byte", what, arg);
}

static pmc_status emit(pmc_session *s, uint8_t code, const pmc_part *parts,
                       size_t n)
{
    if (pmc_encode_parts(&s->out, code, parts, n) != PMC_OK)
        return action_fail(s, PMC_ERR_NOMEM, "out of memory");
    PMCI_COUNT(s->stats.replies[code]);
    return PMC_OK;
}

static pmc_status header_op(pmc_session *s, uint8_t code, int indexed,
                            uint32_t index, pmc_str name, pmc_str value,
                            uint32_t flag, const char *what)
{
    uint8_t idx[4];
    pmc_part parts[3];
    size_t n = 0;
    pmc_status st;

    if ((st = may_modify(s, flag, what)) != PMC_OK)
        return st;
    if (!clean(name) || name.len == 0)
        return bad_arg(s, what, "the header name");
    if (!clean(value))
        return bad_arg(s, what, "the header value");
    if (indexed) {
        pmci_put32(idx, index);
        parts[n++] = (pmc_part){idx, 4, 0};
    }
    parts[n++] = (pmc_part){name.ptr, name.len, 1};
    parts[n++] = (pmc_part){value.ptr, value.len, 1};
    return emit(s, code, parts, n);
}

pmc_status pmc_session_addheader(pmc_session *s, pmc_str name, pmc_str value)
{
    return header_op(s, 'h', 0, 0, name, value, PMC_ACT_ADDHDRS, "addheader");
}

pmc_status pmc_session_insheader(pmc_session *s, uint32_t index, pmc_str name,
                                 pmc_str value)
{
    return header_op(s, 'i', 1, index, name, value, PMC_ACT_ADDHDRS,
                     "insheader");
}

pmc_status pmc_session_chgheader(pmc_session *s, pmc_str name, uint32_t index,
                                 pmc_str value)
{
    return header_op(s, 'm', 1, index, name, value, PMC_ACT_CHGHDRS,
                     "chgheader");
}

/* One address, optionally followed by one ESMTP argument string. */
static pmc_status address_op(pmc_session *s, uint8_t code, pmc_str addr,
                             const pmc_str *args, uint32_t flag,
                             const char *what)
{
    pmc_part parts[2];
    pmc_status st;

    if ((st = may_modify(s, flag, what)) != PMC_OK)
        return st;
    if (!clean(addr) || addr.len == 0)
        return bad_arg(s, what, "the address");
    if (args && !clean(*args))
        return bad_arg(s, what, "the ESMTP argument string");
    parts[0] = (pmc_part){addr.ptr, addr.len, 1};
    if (args)
        parts[1] = (pmc_part){args->ptr, args->len, 1};
    return emit(s, code, parts, args ? 2 : 1);
}

pmc_status pmc_session_addrcpt(pmc_session *s, pmc_str rcpt)
{
    return address_op(s, '+', rcpt, NULL, PMC_ACT_ADDRCPT, "addrcpt");
}

pmc_status pmc_session_addrcpt_par(pmc_session *s, pmc_str rcpt,
                                   const pmc_str *args)
{
    if (args && args->len == 0)
        args = NULL;
    if (args == NULL && (s->actions & PMC_ACT_ADDRCPT))
        return address_op(s, '+', rcpt, NULL, PMC_ACT_ADDRCPT, "addrcpt");
    return address_op(s, '2', rcpt, args, PMC_ACT_ADDRCPT_PAR, "addrcpt_par");
}

pmc_status pmc_session_delrcpt(pmc_session *s, pmc_str rcpt)
{
    return address_op(s, '-', rcpt, NULL, PMC_ACT_DELRCPT, "delrcpt");
}

pmc_status pmc_session_chgfrom(pmc_session *s, pmc_str from,
                               const pmc_str *args)
{
    if (args && args->len == 0)
        args = NULL;
    /* The null sender "<>" is a legal new sender; an empty string is not. */
    return address_op(s, 'e', from, args, PMC_ACT_CHGFROM, "chgfrom");
}

pmc_status pmc_session_replacebody(pmc_session *s, const void *p, size_t n)
{
    pmc_status st;

    if ((st = may_modify(s, PMC_ACT_CHGBODY, "replacebody")) != PMC_OK)
        return st;
    if (p == NULL && n > 0)
        return bad_arg(s, "replacebody", "the body");
    if (pmc_buf_append(&s->body, p, n) != PMC_OK)
        return action_fail(s, PMC_ERR_NOMEM, "out of memory");
    s->body_replaced = 1;
    return PMC_OK;
}

pmc_status pmc_session_quarantine(pmc_session *s, pmc_str reason)
{
    pmc_part part = {reason.ptr, reason.len, 1};
    pmc_status st;

    if ((st = may_modify(s, PMC_ACT_QUARANTINE, "quarantine")) != PMC_OK)
        return st;
    if (!clean(reason) || reason.len == 0)
        return bad_arg(s, "quarantine", "the reason");
    return emit(s, 'q', &part, 1);
}

pmc_status pmc_session_progress(pmc_session *s)
{
    pmc_event ev = s->cur_event;

    if (s->closed)
        return action_fail(s, PMC_ERR_CLOSED,
                           "progress: the session has ended");
    if (!(s->in_handler || s->pending) || ev == PMC_EV_COUNT ||
        ev == PMC_EV_NEGOTIATE || !pmci_reply_owed(s, ev))
        return action_fail(s, PMC_ERR_WRONG_STAGE,
                           "progress is only allowed while the MTA waits "
                           "for a reply, not in %s",
                           pmc_event_name(ev));
    return emit(s, 'p', NULL, 0);
}

static pmc_status set_reply(pmc_session *s, const char *rcode,
                            const char *xcode, const char *const *lines,
                            size_t n)
{
    pmc_status st;

    if (s->closed)
        return action_fail(s, PMC_ERR_CLOSED, "setreply: the session has "
                                              "ended");
    s->reply.len = 0;
    s->reply_class = 0;
    st = pmci_reply_format(&s->reply, rcode, xcode, lines, n, &s->action_err);
    if (st != PMC_OK) {
        s->reply.len = 0;
        s->action_err.offset = s->cur_offset;
        return st;
    }
    s->reply_class = rcode[0];
    return PMC_OK;
}

pmc_status pmc_session_setreply(pmc_session *s, const char *rcode,
                                const char *xcode, const char *text)
{
    return set_reply(s, rcode, xcode, &text, 1);
}

pmc_status pmc_session_setmlreply(pmc_session *s, const char *rcode,
                                  const char *xcode, const char *const *lines,
                                  size_t n)
{
    if (lines == NULL)
        return action_fail(s, PMC_ERR_ARGUMENT, "setmlreply: no lines");
    return set_reply(s, rcode, xcode, lines, n);
}

pmc_status pmc_session_setsymlist(pmc_session *s, int stage, const char *list)
{
    char *copy = NULL;

    if (stage < 0 || stage >= PMC_STAGE_COUNT)
        return action_fail(s, PMC_ERR_ARGUMENT,
                           "setsymlist: stage %d is not 0 to 6", stage);
    if (s->negotiated && !(s->in_handler && s->cur_event == PMC_EV_NEGOTIATE))
        return action_fail(s, PMC_ERR_WRONG_STAGE,
                           "setsymlist is only allowed before negotiation "
                           "or from the negotiate handler");
    if (list && strpbrk(list, "\r\n"))
        return action_fail(s, PMC_ERR_ARGUMENT,
                           "setsymlist: the list contains CR or LF");
    if (list) {
        size_t n = strlen(list) + 1;
        if ((copy = malloc(n)) == NULL)
            return action_fail(s, PMC_ERR_NOMEM, "out of memory");
        memcpy(copy, list, n);
    }
    free(s->symlist[stage]);
    s->symlist[stage] = copy;
    return PMC_OK;
}
