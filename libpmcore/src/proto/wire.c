/*
 * Wire layer: milter packets are a 4-byte big-endian length (command byte
 * plus payload), the command byte, then the payload.  The decoder hands out
 * packets straight from the caller's bytes when they are whole and copies
 * only a packet that arrives in pieces, so a read holding many pipelined
 * packets costs no copy at all.
 */
#include "internal.h"

#include <string.h>

/* The commands an MTA sends; a table keeps the per-packet check to one
 * load. */
const uint8_t pmci_mta_command[256] = {
    ['O'] = 1, ['D'] = 1, ['C'] = 1, ['H'] = 1, ['M'] = 1, ['R'] = 1,
    ['T'] = 1, ['L'] = 1, ['N'] = 1, ['B'] = 1, ['E'] = 1, ['U'] = 1,
    ['A'] = 1, ['Q'] = 1, ['K'] = 1,
};

/* Non-milter traffic on a milter port is common (scanners, browsers, TLS
 * clients); naming it turns a baffling "packet too big" into an answer. */
static const char *guess_traffic(const uint8_t *p, size_t n)
{
    static const struct {
        const char *prefix;
        size_t len;
        const char *what;
    } known[] = {
        {"GET ", 4, "an HTTP request"},   {"POST", 4, "an HTTP request"},
        {"HEAD", 4, "an HTTP request"},   {"PUT ", 4, "an HTTP request"},
        {"OPTI", 4, "an HTTP request"},   {"CONN", 4, "an HTTP request"},
        {"SSH-", 4, "an SSH client"},     {"EHLO", 4, "an SMTP client"},
        {"HELO", 4, "an SMTP client"},    {"\x16\x03", 2, "a TLS handshake"},
        {"\x03\x00", 2, "an RDP (TPKT) connection"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (n >= known[i].len && memcmp(p, known[i].prefix, known[i].len) == 0)
            return known[i].what;
    return NULL;
}

void pmc_decoder_init(pmc_decoder *d, size_t max_packet, int check_commands)
{
    memset(d, 0, sizeof *d);
    d->max_packet = max_packet ? max_packet : PMC_DEFAULT_MAX_PACKET;
    d->commands_checked = check_commands;
}

void pmc_decoder_free(pmc_decoder *d)
{
    pmc_buf_free(&d->partial);
    pmc_buf_free(&d->stash);
    d->in = NULL;
    d->in_len = 0;
}

void pmc_decoder_input(pmc_decoder *d, const uint8_t *p, size_t n)
{
    if (d->reading_stash && d->in_len == 0) {
        /* The queue ran dry: go back to borrowing, which costs no copy. */
        d->reading_stash = 0;
        d->stash.len = 0;
    }
    if (!d->reading_stash) {
        d->in = p;
        d->in_len = n;
        return;
    }
    memmove(d->stash.data, d->in, d->in_len);
    d->stash.len = d->in_len;
    if (pmc_buf_append(&d->stash, p, n) != PMC_OK)
        pmci_set_error(&d->err, PMC_ERR_NOMEM, d->consumed,
                       "out of memory queueing input");
    d->in = d->stash.data;
    d->in_len = d->stash.len;
}

__attribute__((noinline)) static pmc_status check_length(pmc_decoder *d, const uint8_t *hdr,
                               uint64_t at)
{
    uint32_t len = pmci_get32(hdr);
    const char *what;

    if (len == 0)
        return pmci_set_error(&d->err, PMC_ERR_ZERO_LENGTH, at,
                              "packet at offset %llu has length 0",
                              (unsigned long long)at);
    if (len > d->max_packet) {
        what = guess_traffic(hdr, 4);
        return pmci_set_error(
            &d->err, PMC_ERR_TOO_BIG, at,
            "packet at offset %llu has length %lu, over the limit of %zu "
            "bytes%s%s",
            (unsigned long long)at, (unsigned long)len, d->max_packet,
            what ? "; the bytes look like " : "", what ? what : "");
    }
    return PMC_OK;
}

static pmc_status check_command(pmc_decoder *d, uint8_t cmd, uint64_t at)
{
    if (!d->commands_checked || pmci_mta_command[cmd])
        return PMC_OK;
    return pmci_set_error(&d->err, PMC_ERR_UNKNOWN_COMMAND, at,
                          "packet at offset %llu has unknown command byte "
                          "0x%02x",
                          (unsigned long long)at, cmd);
}

/* Move up to 'want' borrowed bytes into the partial buffer. */
static pmc_status take(pmc_decoder *d, size_t want)
{
    size_t n = want < d->in_len ? want : d->in_len;

    if (n == 0)
        return PMC_OK; /* an empty feed may come with no buffer at all */
    if (pmc_buf_append(&d->partial, d->in, n) != PMC_OK)
        return pmci_set_error(&d->err, PMC_ERR_NOMEM, d->consumed,
                              "out of memory buffering a packet");
    d->in += n;
    d->in_len -= n;
    return PMC_OK;
}

/* A partial packet has bytes in d->partial; d->consumed is still its start
 * offset until it completes. */
static pmc_status next_from_partial(pmc_decoder *d, pmc_packet *pkt,
                                    int *ready)
{
    pmc_buf *b = &d->partial;
    uint32_t len;

    if (b->len < 4) {
        if (take(d, 4 - b->len) != PMC_OK)
            return d->err.code;
        if (b->len < 4)
            return PMC_OK;
    }
    if (check_length(d, b->data, d->consumed) != PMC_OK)
        return d->err.code;
    len = pmci_get32(b->data);
    if (b->len < 5 && d->in_len > 0 && take(d, 1) != PMC_OK)
        return d->err.code;
    if (b->len >= 5 && check_command(d, b->data[4], d->consumed) != PMC_OK)
        return d->err.code;
    if (b->len < 4 + (size_t)len) {
        if (take(d, 4 + (size_t)len - b->len) != PMC_OK)
            return d->err.code;
        if (b->len < 4 + (size_t)len)
            return PMC_OK;
    }
    pkt->cmd = b->data[4];
    pkt->payload = b->data + 5;
    pkt->len = len - 1;
    pkt->offset = d->consumed;
    d->consumed += 4 + (uint64_t)len;
    d->partial_done = 1;
    *ready = 1;
    return PMC_OK;
}

/* Everything but a whole, valid packet at the head of the input: errors,
 * packets in pieces, and input too short to judge. */
__attribute__((noinline)) static pmc_status next_slow(pmc_decoder *d,
                                                    pmc_packet *pkt,
                                                    int *ready)
{
    if (d->err.code != PMC_OK)
        return d->err.code;
    if (d->partial_done) {
        /* The packet handed out last time lived in 'partial'. */
        d->partial.len = 0;
        d->partial_done = 0;
    }
    if (d->partial.len > 0)
        return next_from_partial(d, pkt, ready);
    if (d->in_len < 4)
        return take(d, d->in_len);
    if (check_length(d, d->in, d->consumed) != PMC_OK)
        return d->err.code;
    if (d->in_len >= 5 && check_command(d, d->in[4], d->consumed) != PMC_OK)
        return d->err.code;
    if (pmci_decoder_fast(d, pkt)) {
        *ready = 1;
        return PMC_OK;
    }
    return take(d, d->in_len);
}

pmc_status pmc_decoder_next(pmc_decoder *d, pmc_packet *pkt, int *ready)
{
    if (pmci_decoder_fast(d, pkt)) {
        *ready = 1;
        return PMC_OK;
    }
    *ready = 0;
    return next_slow(d, pkt, ready);
}

pmc_status pmc_decoder_stash(pmc_decoder *d)
{
    if (d->reading_stash || d->in_len == 0)
        return PMC_OK;
    d->stash.len = 0;
    if (pmc_buf_append(&d->stash, d->in, d->in_len) != PMC_OK)
        return pmci_set_error(&d->err, PMC_ERR_NOMEM, d->consumed,
                              "out of memory queueing input");
    d->in = d->stash.data;
    d->reading_stash = 1;
    return PMC_OK;
}

pmc_status pmc_decoder_eof(pmc_decoder *d)
{
    if (d->err.code != PMC_OK)
        return d->err.code;
    if (d->partial_done) {
        d->partial.len = 0;
        d->partial_done = 0;
    }
    if (d->partial.len > 0 || d->in_len > 0)
        return pmci_set_error(&d->err, PMC_ERR_TRUNCATED, d->consumed,
                              "stream ended inside the packet at offset %llu",
                              (unsigned long long)d->consumed);
    return PMC_OK;
}

size_t pmc_decoder_pending(const pmc_decoder *d)
{
    return pmci_decoder_pending(d);
}

const pmc_error *pmc_decoder_error(const pmc_decoder *d)
{
    return d->err.code != PMC_OK ? &d->err : NULL;
}

pmc_status pmc_encode_parts(pmc_buf *out, uint8_t cmd, const pmc_part *parts,
                            size_t n)
{
    size_t total = 1;
    uint8_t *w;

    for (size_t i = 0; i < n; i++) {
        size_t add = parts[i].len + (parts[i].nul ? 1 : 0);
        if (add > UINT32_MAX - total)
            return PMC_ERR_ARGUMENT;
        total += add;
    }
    if (pmci_buf_reserve(out, 4 + total) != PMC_OK)
        return PMC_ERR_NOMEM;
    w = out->data + out->len;
    pmci_put32(w, (uint32_t)total);
    w[4] = cmd;
    w += 5;
    for (size_t i = 0; i < n; i++) {
        if (parts[i].len)
            memcpy(w, parts[i].ptr, parts[i].len);
        w += parts[i].len;
        if (parts[i].nul)
            *w++ = 0;
    }
    out->len += 4 + total;
    return PMC_OK;
}

pmc_status pmc_encode(pmc_buf *out, uint8_t cmd, const void *payload,
                      size_t len)
{
    pmc_part part = {payload, len, 0};

    return pmc_encode_parts(out, cmd, &part, len ? 1 : 0);
}
