/* Wrappers around the user's handlers that time each call for the
 * per-event latency counters and pass the connection's own user data.
 * The session's user data is the server's connection object. */
#define _POSIX_C_SOURCE 200809L
#include "internal_server.h"

#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline __attribute__((always_inline)) void took(pmci_conn *c,
                                                      pmc_event ev,
                                                      uint64_t t0)
{
    uint64_t t1 = now_ns(), d = t1 - t0;

    /* The loop's clock for this wake-up, if the step ends here. */
    c->clock_ns = t1;

    PMCI_COUNT(c->st.cb_count[ev]);
    PMCI_STORE(c->st.cb_ns_sum[ev], c->st.cb_ns_sum[ev] + d);
    if (d > c->st.cb_ns_max[ev])
        PMCI_STORE(c->st.cb_ns_max[ev], d);
    pmci_metrics_took(&c->st, ev, d);
}

#define H(c) ((c)->srv->cfg.handlers)

#define WRAP0(name, EV)                                                    \
    static int t_##name(pmc_session *s, void *ud)                          \
    {                                                                      \
        pmci_conn *c = ud;                                                 \
        uint64_t t0 = now_ns();                                            \
        int v = H(c)->name(s, c->ud);                                      \
        took(c, EV, t0);                                                   \
        return v;                                                          \
    }
#define WRAP1(name, EV, T)                                                 \
    static int t_##name(pmc_session *s, void *ud, T a)                     \
    {                                                                      \
        pmci_conn *c = ud;                                                 \
        uint64_t t0 = now_ns();                                            \
        int v = H(c)->name(s, c->ud, a);                                   \
        took(c, EV, t0);                                                   \
        return v;                                                          \
    }

WRAP1(negotiate, PMC_EV_NEGOTIATE, pmc_negotiation *)
WRAP1(connect, PMC_EV_CONNECT, const pmc_connect_info *)
WRAP1(helo, PMC_EV_HELO, pmc_str)
WRAP1(envfrom, PMC_EV_ENVFROM, const pmc_args *)
WRAP1(envrcpt, PMC_EV_ENVRCPT, const pmc_args *)
WRAP0(data, PMC_EV_DATA)
WRAP0(eoh, PMC_EV_EOH)
WRAP0(eom, PMC_EV_EOM)
WRAP0(abort, PMC_EV_ABORT)
WRAP0(close, PMC_EV_CLOSE)
WRAP1(unknown, PMC_EV_UNKNOWN, pmc_str)

static int t_header(pmc_session *s, void *ud, pmc_str name, pmc_str value)
{
    pmci_conn *c = ud;
    uint64_t t0 = now_ns();
    int v = H(c)->header(s, c->ud, name, value);

    took(c, PMC_EV_HEADER, t0);
    return v;
}

static int t_body(pmc_session *s, void *ud, const uint8_t *p, size_t n)
{
    pmci_conn *c = ud;
    uint64_t t0 = now_ns();
    int v = H(c)->body(s, c->ud, p, n);

    took(c, PMC_EV_BODY, t0);
    return v;
}

/* NULL stays NULL: the session derives the NO* bits from absent handlers. */
void pmci_handlers_wrap(pmc_handlers *t, const pmc_handlers *h)
{
#define W(name) t->name = h->name ? t_##name : NULL
    W(negotiate);
    W(connect);
    W(helo);
    W(envfrom);
    W(envrcpt);
    W(data);
    W(header);
    W(eoh);
    W(body);
    W(eom);
    W(abort);
    W(close);
    W(unknown);
#undef W
}
