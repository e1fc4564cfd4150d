/*
 * vecexec.c - plays one vector against a pmc_session and records the log.
 *
 * Log order is the README's: reply bytes already in the session's output
 * are decoded (and consumed) when a handler is entered and after every
 * feed, resume, act and eof, so each reply lands after the event that
 * caused it and before the next event line.
 */
#include "vecexec.h"

#include "vecact.h"

#include <stdlib.h>
#include <string.h>

typedef struct vrun {
    const vector *v;
    pmc_session *s;
    pmc_handlers h;
    vlog *log;
    int calls[PMC_EV_COUNT];
    pmc_negotiation *neg; /* set while the negotiate handler runs */
    int stopped;          /* the session ended: feed nothing more */
} vrun;

/* Decode every whole reply packet waiting in the output, then consume it. */
static void drain_output(vrun *r)
{
    size_t len;
    const uint8_t *out = pmc_session_output(r->s, &len);
    size_t used = vlog_replies(r->log, out, len);
    if (used)
        pmc_session_consume(r->s, used);
}

/* Play the script lines for this call of 'ev'; returns the verdict of the
 * last matching 'return' line (continue when there is none). */
static int play(vrun *r, int ev)
{
    int nth = ++r->calls[ev];
    int verdict = PMC_CONTINUE;
    for (size_t i = 0; i < r->v->nacts; i++) {
        const vaction *a = &r->v->acts[i];
        if (a->event != ev || (a->nth && a->nth != nth))
            continue;
        const vtok *w = &a->line.t[0];
        const char *word = (const char *)w->bytes;
        if (w->type == VT_WORD && strcmp(word, "return") == 0) {
            if (a->line.n != 2 || vec_verdict(&a->line.t[1], &verdict))
                vlog_runner_error(r->log, "return", "bad verdict");
        } else if (vec_action(r->s, r->log, r->neg, &a->line)) {
            vlog_runner_error(r->log, word, "bad action line");
        }
    }
    return verdict;
}

/* ---- handlers ----------------------------------------------------------- */

/* Every handler starts here: earlier replies first, then the event line. */
static vline *enter(vrun *r, int ev)
{
    drain_output(r);
    vline *l = vlog_line(r->log, "event");
    vlog_word(r->log, l, vec_event_name(ev));
    return l;
}

static int h_negotiate(pmc_session *s, void *ud, pmc_negotiation *n)
{
    (void)s;
    vrun *r = ud;
    vline *l = enter(r, PMC_EV_NEGOTIATE);
    vlog_num(r->log, l, n->mta_version);
    vlog_num(r->log, l, n->mta_actions);
    vlog_num(r->log, l, n->mta_protocol);
    r->neg = n;
    int verdict = play(r, PMC_EV_NEGOTIATE);
    r->neg = NULL;
    return verdict;
}

static int h_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    (void)s;
    vrun *r = ud;
    vline *l = enter(r, PMC_EV_CONNECT);
    char fam[2] = {ci->family, 0};
    vlog_str(r->log, l, ci->host.ptr, ci->host.len);
    vlog_str(r->log, l, fam, 1);
    vlog_num(r->log, l, ci->port);
    vlog_str(r->log, l, ci->addr.ptr, ci->addr.len);
    return play(r, PMC_EV_CONNECT);
}

static int one_str(vrun *r, int ev, pmc_str a)
{
    vline *l = enter(r, ev);
    vlog_str(r->log, l, a.ptr, a.len);
    return play(r, ev);
}

static int h_helo(pmc_session *s, void *ud, pmc_str helo)
{
    (void)s;
    return one_str(ud, PMC_EV_HELO, helo);
}

static int argv_event(vrun *r, int ev, const pmc_args *args)
{
    vline *l = enter(r, ev);
    for (size_t i = 0; i < args->argc; i++)
        vlog_str(r->log, l, args->argv[i].ptr, args->argv[i].len);
    return play(r, ev);
}

static int h_envfrom(pmc_session *s, void *ud, const pmc_args *args)
{
    (void)s;
    return argv_event(ud, PMC_EV_ENVFROM, args);
}

static int h_envrcpt(pmc_session *s, void *ud, const pmc_args *args)
{
    (void)s;
    return argv_event(ud, PMC_EV_ENVRCPT, args);
}

static int bare(vrun *r, int ev)
{
    enter(r, ev);
    return play(r, ev);
}

static int h_data(pmc_session *s, void *ud)
{
    (void)s;
    return bare(ud, PMC_EV_DATA);
}

static int h_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    (void)s;
    vrun *r = ud;
    vline *l = enter(r, PMC_EV_HEADER);
    vlog_str(r->log, l, name.ptr, name.len);
    vlog_str(r->log, l, value.ptr, value.len);
    return play(r, PMC_EV_HEADER);
}

static int h_eoh(pmc_session *s, void *ud)
{
    (void)s;
    return bare(ud, PMC_EV_EOH);
}

static int h_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    (void)s;
    pmc_str b = {(const char *)p, n};
    return one_str(ud, PMC_EV_BODY, b);
}

static int h_eom(pmc_session *s, void *ud)
{
    (void)s;
    return bare(ud, PMC_EV_EOM);
}

static int h_abort(pmc_session *s, void *ud)
{
    (void)s;
    return bare(ud, PMC_EV_ABORT);
}

static int h_close(pmc_session *s, void *ud)
{
    (void)s;
    return bare(ud, PMC_EV_CLOSE);
}

static int h_unknown(pmc_session *s, void *ud, pmc_str cmd)
{
    (void)s;
    return one_str(ud, PMC_EV_UNKNOWN, cmd);
}

static void build_handlers(vrun *r)
{
    unsigned m = r->v->handlers;
    pmc_handlers *h = &r->h;
    memset(h, 0, sizeof *h);
#define HAS(ev) (m & (1u << (ev)))
    if (HAS(PMC_EV_NEGOTIATE)) h->negotiate = h_negotiate;
    if (HAS(PMC_EV_CONNECT)) h->connect = h_connect;
    if (HAS(PMC_EV_HELO)) h->helo = h_helo;
    if (HAS(PMC_EV_ENVFROM)) h->envfrom = h_envfrom;
    if (HAS(PMC_EV_ENVRCPT)) h->envrcpt = h_envrcpt;
    if (HAS(PMC_EV_DATA)) h->data = h_data;
    if (HAS(PMC_EV_HEADER)) h->header = h_header;
    if (HAS(PMC_EV_EOH)) h->eoh = h_eoh;
    if (HAS(PMC_EV_BODY)) h->body = h_body;
    if (HAS(PMC_EV_EOM)) h->eom = h_eom;
    if (HAS(PMC_EV_ABORT)) h->abort = h_abort;
    if (HAS(PMC_EV_CLOSE)) h->close = h_close;
    if (HAS(PMC_EV_UNKNOWN)) h->unknown = h_unknown;
#undef HAS
}

/* ---- feeding ------------------------------------------------------------ */

size_t vec_input_len(const vector *v)
{
    size_t n = 0;
    for (size_t i = 0; i < v->nsteps; i++)
        if (v->steps[i].kind == VS_BYTES)
            n += v->steps[i].len;
    return n;
}

static void feed(vrun *r, const uint8_t *p, size_t n)
{
    if (n == 0 || r->stopped)
        return;
    pmc_status st = pmc_session_feed(r->s, p, n);
    drain_output(r);
    /* PMC_ERR_CLOSED after QUIT, or an error: either way the session has
     * ended and a real server would close the connection. */
    if (st != PMC_OK || pmc_session_is_closed(r->s))
        r->stopped = 1;
}

/* Feed one segment that starts at stream offset 'base'. */
static void feed_segment(vrun *r, const vstep *sp, int mode, size_t base,
                         size_t cut)
{
    if (mode == VF_BYTES) {
        for (size_t i = 0; i < sp->len && !r->stopped; i++)
            feed(r, sp->bytes + i, 1);
    } else if (mode == VF_SPLIT && cut > base && cut < base + sp->len) {
        feed(r, sp->bytes, cut - base);
        feed(r, sp->bytes + (cut - base), sp->len - (cut - base));
    } else {
        feed(r, sp->bytes, sp->len);
    }
}

static void log_end(vrun *r, pmc_status eof_status)
{
    const pmc_error *e = pmc_session_error(r->s);
    vline *l = vlog_line(r->log, "end");
    if (e && e->code != PMC_OK && e->code != PMC_ERR_CLOSED) {
        vlog_word(r->log, l, "error");
        vlog_word(r->log, l, pmc_status_name(e->code));
        vlog_num(r->log, l, (int64_t)e->offset);
    } else if (eof_status != PMC_OK && eof_status != PMC_ERR_CLOSED) {
        /* An error with no sticky record: the offset is unknown. */
        vlog_word(r->log, l, "error");
        vlog_word(r->log, l, pmc_status_name(eof_status));
        vlog_num(r->log, l, -1);
    } else {
        vlog_word(r->log, l, "ok");
    }
}

static void new_session(vrun *r)
{
    const vector *v = r->v;
    pmc_config cfg;
    pmc_config_init(&cfg);
    cfg.version = v->version;
    cfg.actions = v->actions;
    cfg.protocol = v->protocol;
    cfg.max_packet = v->max_packet;
    cfg.skip_any_event = v->skip_any_event;
    for (int i = 0; i < PMC_STAGE_COUNT; i++)
        cfg.symlist[i] = v->has_symlist[i] ? v->symlist[i] : NULL;
    build_handlers(r);
    r->s = pmc_session_new(&r->h, r, &cfg);
}

int vec_exec(const vector *v, int mode, size_t cut, vlog *out)
{
    vrun r;
    memset(&r, 0, sizeof r);
    memset(out, 0, sizeof *out);
    r.v = v;
    r.log = out;
    new_session(&r);
    if (!r.s)
        return -1;
    size_t base = 0;
    for (size_t i = 0; i < v->nsteps; i++) {
        const vstep *sp = &v->steps[i];
        if (sp->kind == VS_BYTES) {
            feed_segment(&r, sp, mode, base, cut);
            base += sp->len;
        } else if (r.stopped) {
            continue;
        } else if (sp->kind == VS_RESUME) {
            pmc_status st = pmc_session_resume(r.s, sp->verdict);
            drain_output(&r);
            if (st == PMC_ERR_PENDING)
                vlog_fail(r.log, "resume", st);
            else if (st != PMC_OK || pmc_session_is_closed(r.s))
                r.stopped = 1;
        } else if (vec_action(r.s, r.log, NULL, &sp->line)) {
            vlog_runner_error(r.log, "act", "bad action line");
        } else {
            drain_output(&r);
        }
    }
    pmc_status eof_status = PMC_OK;
    if (!pmc_session_is_closed(r.s)) {
        eof_status = pmc_session_eof(r.s);
        drain_output(&r);
    }
    log_end(&r, eof_status);
    pmc_session_free(r.s);
    if (out->oom) {
        vlog_free(out);
        return -1;
    }
    return 0;
}
