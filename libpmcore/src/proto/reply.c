/*
 * SMTP reply text for REPLYCODE ('y').  MTAs splice this text into their own
 * SMTP dialogue, so a bad code or a stray CR/LF would corrupt the MTA's
 * reply: we refuse those here instead of letting the MTA fail later.  A
 * single '%' would too (sendmail uses the text as a printf format), so it
 * goes out doubled.  Every binding's setreply ends here, so these are the
 * reply rules of all of them.
 */
#include "internal.h"

#include <string.h>

static int digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* An enhanced status code "c.s.d": subject and detail have 1 to 3 digits
 * (RFC 3463), so "5.7.26" is valid. */
static int valid_xcode(const char *x, char klass)
{
    const char *dot1, *dot2;
    size_t n = strlen(x), subj, det;

    if (n < 5 || x[0] != klass || x[1] != '.')
        return 0;
    dot1 = x + 1;
    dot2 = strchr(dot1 + 1, '.');
    if (dot2 == NULL)
        return 0;
    subj = (size_t)(dot2 - dot1 - 1);
    det = n - (size_t)(dot2 - x) - 1;
    return subj >= 1 && subj <= 3 && det >= 1 && det <= 3 &&
           digits(dot1 + 1, subj) && digits(dot2 + 1, det);
}

static pmc_status append_line(pmc_buf *out, const char *rcode, char sep,
                              const char *xcode, const char *text,
                              size_t line_no, pmc_error *err)
{
    size_t start = out->len;
    pmc_status st = PMC_OK;

    st |= pmc_buf_append(out, rcode, 3);
    st |= pmc_buf_append(out, &sep, 1);
    if (xcode) {
        st |= pmc_buf_append(out, xcode, strlen(xcode));
        if (text && *text)
            st |= pmc_buf_append(out, " ", 1);
    }
    for (const char *t = text; t && *t; t++) {
        if (*t == '\r' || *t == '\n')
            return pmci_set_error(err, PMC_ERR_REPLY_TEXT, 0,
                                  "reply line %zu contains CR or LF",
                                  line_no + 1);
        if (*t != '%') {
            st |= pmc_buf_append(out, t, 1);
            continue;
        }
        /* Doubled on the wire; a pair is one '%' doubled by its writer. */
        st |= pmc_buf_append(out, "%%", 2);
        if (t[1] == '%')
            t++;
    }
    if (st != PMC_OK)
        return pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
    if (out->len - start > PMC_REPLY_LINE_MAX)
        return pmci_set_error(err, PMC_ERR_REPLY_TEXT, 0,
                              "reply line %zu is %zu bytes on the wire, over "
                              "the limit of %u",
                              line_no + 1, out->len - start,
                              PMC_REPLY_LINE_MAX);
    return PMC_OK;
}

pmc_status pmci_reply_format(pmc_buf *out, const char *rcode,
                             const char *xcode, const char *const *lines,
                             size_t n, pmc_error *err)
{
    pmc_error scratch;
    size_t start = out->len;
    pmc_status st;

    if (err == NULL)
        err = &scratch;
    if (rcode == NULL || strlen(rcode) != 3 || !digits(rcode, 3) ||
        (rcode[0] != '4' && rcode[0] != '5'))
        return pmci_set_error(err, PMC_ERR_REPLY_TEXT, 0,
                              "reply code must be three digits starting "
                              "with 4 or 5");
    /* libmilter's smfi_setmlreply put one on every line when none was
     * given; filters written against it expect the same bytes. */
    if (xcode == NULL && n >= 2)
        xcode = rcode[0] == '4' ? "4.0.0" : "5.0.0";
    if (xcode && !valid_xcode(xcode, rcode[0]))
        return pmci_set_error(err, PMC_ERR_REPLY_TEXT, 0,
                              "extended code \"%.20s\" is not of the form "
                              "%c.N.N (1 to 3 digits each) matching the "
                              "reply code",
                              xcode, rcode[0]);
    if (n == 0 || n > PMC_REPLY_LINES_MAX)
        return pmci_set_error(err, PMC_ERR_REPLY_TEXT, 0,
                              "a reply has 1 to %u lines, not %zu",
                              PMC_REPLY_LINES_MAX, n);
    for (size_t i = 0; i < n; i++) {
        if (n > 1 && lines[i] == NULL) {
            out->len = start;
            return pmci_set_error(err, PMC_ERR_ARGUMENT, 0,
                                  "reply line %zu is NULL", i + 1);
        }
        st = append_line(out, rcode, i + 1 < n ? '-' : ' ', xcode, lines[i],
                         i, err);
        if (st == PMC_OK && i + 1 < n)
            st = pmc_buf_append(out, "\r\n", 2);
        if (st != PMC_OK) {
            out->len = start;
            return st == PMC_ERR_NOMEM && err->code != PMC_ERR_NOMEM
                       ? pmci_set_error(err, st, 0, "out of memory")
                       : err->code;
        }
    }
    /* A one-line reply with neither xcode nor text is just the code. */
    if (n == 1 && xcode == NULL && (lines[0] == NULL || !*lines[0]))
        out->len--;
    if (pmc_buf_append(out, "", 1) != PMC_OK) {
        out->len = start;
        return pmci_set_error(err, PMC_ERR_NOMEM, 0, "out of memory");
    }
    return PMC_OK;
}
