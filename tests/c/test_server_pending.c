/*
 * Handlers answered later (PMC_PENDING + pmc_server_resume) on real
 * sockets: pending at several stages and answered from another thread,
 * actions and progress from the answer, other connections going on
 * meanwhile, input queued while pending, no read timeout while pending,
 * answers for connections that are gone, and drain with a pending message.
 * In every model.
 */
#include "srvtest.h"

static char dir[64];
/* The server the handlers answer through.  Set before the server thread
 * starts (srv_start fills t->srv first), so a PREFORK or FORK child, forked
 * by that thread, inherits the right pointer. */
static tsrv *cur_t;
static atomic_int gone;       /* answers that found no connection */
static atomic_int bad_id;     /* conn id accessor disagreed with conn_open */
static atomic_ullong never_id;/* the connection whose EOM is never answered */

typedef struct pconn {
    uint64_t id;              /* from conn_open */
    int mode;                 /* how EOM is answered, from MAIL */
} pconn;

enum { EOM_NOW, EOM_LATER, EOM_SLOW, EOM_PROGRESS, EOM_NEVER };

static void *p_open(void *ap, const pmc_conn_info *ci)
{
    pconn *u = calloc(1, sizeof *u);

    (void)ap;
    if (!u)
        abort();
    u->id = ci->id;
    return u;
}

static atomic_int closes;

static void p_close(void *ap, void *ud)
{
    (void)ap;
    free(ud);
    atomic_fetch_add(&closes, 1);
}

/* --- answers from another thread --- */

typedef struct job {
    uint64_t id;
    int ms;
    int verdict;
    int what;                 /* 0 plain, 1 add a header, 2 setreply,
                                 3 progress and keep pending */
} job;

static int answer(pmc_session *s, void *arg)
{
    job *j = arg;
    int v = j->verdict;

    if (!s) {
        atomic_fetch_add(&gone, 1);
        free(j);
        return 0;
    }
    if (pmc_server_conn_id(s) != j->id)
        atomic_fetch_add(&bad_id, 1);
    if (j->what == 1)
        pmc_session_addheader(s, S("X-Late"), S("yes"));
    else if (j->what == 2)
        pmc_session_setreply(s, "550", "5.1.1", "decided later");
    else if (j->what == 3)
        pmc_session_progress(s);
    free(j);
    return v;
}

/* Answering threads still running in this process: the server must
 * outlive their pmc_server_resume calls (see stop()). */
static atomic_int laters;

static void *later_thread(void *arg)
{
    job *j = arg;

    sleep_ms(j->ms);
    if (pmc_server_resume(cur_t->srv, j->id, answer, j) != PMC_OK)
        abort();
    atomic_fetch_sub(&laters, 1);
    return NULL;
}

static void later(uint64_t id, int ms, int verdict, int what)
{
    pthread_t th;
    job *j = calloc(1, sizeof *j);

    if (!j)
        abort();
    j->id = id;
    j->ms = ms;
    j->verdict = verdict;
    j->what = what;
    atomic_fetch_add(&laters, 1);
    if (pthread_create(&th, NULL, later_thread, j) != 0)
        abort();
    pthread_detach(th);
}

/* srv_stop once every answering thread of this process has made its call
 * (in PREFORK and FORK they ran in the children). */
static pmc_status stop(tsrv *t, int drain_ms)
{
    long long end = now_ms() + 10000;

    while (atomic_load(&laters) > 0 && now_ms() < end)
        sleep_ms(5);
    return srv_stop(t, drain_ms);
}

/* --- the milter: pends where the conversation asks it to --- */

static int p_connect(pmc_session *s, void *ud, const pmc_connect_info *ci)
{
    pconn *u = ud;

    if (pmc_server_conn_id(s) != u->id)
        atomic_fetch_add(&bad_id, 1);
    if (ci->host.len == 12 && !memcmp(ci->host.ptr, "pend-connect", 12)) {
        later(u->id, 100, PMC_CONTINUE, 0);
        return PMC_PENDING;
    }
    return PMC_CONTINUE;
}

static int p_envfrom(pmc_session *s, void *ud, const pmc_args *a)
{
    pconn *u = ud;

    (void)s;
    u->mode = strstr(a->argv[0].ptr, "later")      ? EOM_LATER
              : strstr(a->argv[0].ptr, "slow")     ? EOM_SLOW
              : strstr(a->argv[0].ptr, "progress") ? EOM_PROGRESS
              : strstr(a->argv[0].ptr, "never")    ? EOM_NEVER
                                                   : EOM_NOW;
    return PMC_CONTINUE;
}

static int p_envrcpt(pmc_session *s, void *ud, const pmc_args *a)
{
    pconn *u = ud;

    (void)s;
    if (strstr(a->argv[0].ptr, "pend-reject")) {
        later(u->id, 80, PMC_REJECT, 2);
        return PMC_PENDING;
    }
    return PMC_CONTINUE;
}

static int p_eom(pmc_session *s, void *ud)
{
    pconn *u = ud;

    switch (u->mode) {
    case EOM_LATER:
        later(u->id, 150, PMC_CONTINUE, 1);
        return PMC_PENDING;
    case EOM_SLOW:
        later(u->id, 600, PMC_CONTINUE, 1);
        return PMC_PENDING;
    case EOM_PROGRESS:
        /* The first answer only sends progress; the second decides. */
        later(u->id, 50, PMC_PENDING, 3);
        later(u->id, 150, PMC_ACCEPT, 0);
        return PMC_PENDING;
    case EOM_NEVER:
        atomic_store(&never_id, u->id);
        return PMC_PENDING;
    default:
        pmc_session_addheader(s, S("X-Now"), S("yes"));
        return PMC_CONTINUE;
    }
}

static atomic_int aborts;

static int p_abort(pmc_session *s, void *ud)
{
    (void)s;
    (void)ud;
    atomic_fetch_add(&aborts, 1);
    return PMC_CONTINUE;
}

static const pmc_handlers phandlers = {
    .connect = p_connect,
    .envfrom = p_envfrom,
    .envrcpt = p_envrcpt,
    .eom = p_eom,
    .abort = p_abort,
};

static void pconfig(pmc_server_config *cfg, pmc_server_model model)
{
    pmc_server_config_init(cfg);
    cfg->handlers = &phandlers;
    cfg->session.actions = PMC_ACT_ADDHDRS;
    cfg->conn_open = p_open;
    cfg->conn_close = p_close;
    cfg->model = model;
    cfg->threads = 3;
    cfg->workers = 1;
    if (getenv("SRVTEST_LOG")) {
        cfg->log = log_stderr;
        cfg->log_level = PMC_LOG_DEBUG;
    }
}

static void reset(void)
{
    atomic_store(&gone, 0);
    atomic_store(&bad_id, 0);
    atomic_store(&closes, 0);
    atomic_store(&aborts, 0);
    atomic_store(&never_id, 0);
}

static int start(tsrv *t, pmc_server_config *cfg, const char *name,
                 char *path, size_t cap)
{
    char spec[160];

    snprintf(path, cap, "%s/%s", dir, name);
    snprintf(spec, sizeof spec, "unix:%s", path);
    cur_t = t;
    if (srv_start(t, cfg, spec) < 0)
        return -1;
    return 0;
}

/* Read until 'want' bytes came (or the peer closed, or ms passed). */
static size_t read_until(int fd, uint8_t *out, size_t cap, size_t want,
                         int ms)
{
    size_t at = 0;
    long long end = now_ms() + ms;

    while (at < want) {
        struct pollfd pl = {fd, POLLIN, 0};
        long long left = end - now_ms();
        ssize_t n;
        if (left < 0 || poll(&pl, 1, (int)left) <= 0)
            break;
        n = read(fd, out + at, cap - at);
        if (n <= 0)
            break;
        at += (size_t)n;
    }
    return at;
}

/* One message; returns the EOM reply code, fills *mods with the codes of
 * the modifications ("h", "ph", ...). */
static int message(cli *k, const char *from, const char *rcpt, char *mods,
                   size_t cap, pmc_result *r)
{
    pmc_str rc = S(rcpt);
    pmc_status st = pmc_client_message(k->c, S(from), &rc, 1, MSG,
                                       strlen(MSG), r);
    size_t i;

    if (st != PMC_OK) {
        const pmc_error *e = pmc_client_error(k->c);
        DIAG("client: %s: %s", pmc_status_name(st), e ? e->message : "?");
        return -1;
    }
    for (i = 0; i < r->nmods && i + 1 < cap; i++)
        mods[i] = (char)r->mods[i].code;
    mods[i] = 0;
    return r->code;
}

/* Pending at CONNECT, RCPT and EOM, answered from another thread, with a
 * header, a reply text and progress added by the answers. */
static void test_stages(pmc_server_model model, const char *label)
{
    pmc_server_config cfg;
    tsrv t;
    char p[128], mods[16];
    cli *k;
    pmc_result r;
    pmc_str rc = S("<pend-reject@x>"), from = S("<a@x>");
    long long t0;
    int code;

    reset();
    pconfig(&cfg, model);
    if (start(&t, &cfg, "stages.sock", p, sizeof p) < 0)
        return;
    k = cli_new(dial_unix(p), 3000);
    CHECK(pmc_client_negotiate(k->c, &r) == PMC_OK, "%s: negotiate", label);
    t0 = now_ms();
    CHECK(pmc_client_connect(k->c, "pend-connect", '4', 25, "192.0.2.1",
                             &r) == PMC_OK && r.code == 'c',
          "%s: pending connect answered", label);
    CHECK(now_ms() - t0 >= 90, "%s: connect waited for its answer (%lld ms)",
          label, now_ms() - t0);
    CHECK(pmc_client_mail(k->c, &from, 1, &r) == PMC_OK && r.code == 'c',
          "%s: mail", label);
    CHECK(pmc_client_rcpt(k->c, &rc, 1, &r) == PMC_OK && r.code == 'y' &&
              strstr(r.text.ptr, "550 5.1.1 decided later"),
          "%s: pending rcpt rejected with the answer's text ('%c' %s)",
          label, r.code ? r.code : '0', r.text.ptr);
    pmc_client_abort(k->c, NULL);

    t0 = now_ms();
    code = message(k, "<later@x>", "<b@x>", mods, sizeof mods, &r);
    CHECK(code == 'c' && !strcmp(mods, "h") && r.nmods == 1 &&
              !strcmp(r.mods[0].a.ptr, "X-Late"),
          "%s: pending eom answered with the answer's header ('%c' '%s')",
          label, code > 0 ? code : '0', mods);
    CHECK(now_ms() - t0 >= 140, "%s: eom waited (%lld ms)", label,
          now_ms() - t0);
    code = message(k, "<progress@x>", "<b@x>", mods, sizeof mods, &r);
    CHECK(code == 'a' && !strcmp(mods, "p"),
          "%s: an answer that keeps pending sent progress first "
          "('%c' '%s')", label, code > 0 ? code : '0', mods);
    code = message(k, "<now@x>", "<b@x>", mods, sizeof mods, &r);
    CHECK(code == 'c' && !strcmp(mods, "h"),
          "%s: a message answered at once after pending ones", label);
    pmc_client_quit(k->c);
    cli_free(k);
    CHECK(stop(&t, 1000) == PMC_OK, "%s: stopped", label);
    CHECK(atomic_load(&bad_id) == 0 && atomic_load(&gone) == 0,
          "%s: ids matched, no answer lost (bad %d, gone %d)", label,
          atomic_load(&bad_id), atomic_load(&gone));
}

/* While one connection's EOM is pending, others are served. */
static void test_others(pmc_server_model model, const char *label)
{
    pmc_server_config cfg;
    tsrv t;
    char p[128];
    cli *slow, *fast;
    pmc_result r;
    pmc_str from = S("<slow@x>"), to = S("<b@x>");
    long long t0;
    int n = 0;

    reset();
    pconfig(&cfg, model);
    if (start(&t, &cfg, "others.sock", p, sizeof p) < 0)
        return;
    slow = cli_new(dial_unix(p), 3000);
    cli_hello(slow, "slow");
    pmc_client_mail(slow->c, &from, 1, &r);
    pmc_client_rcpt(slow->c, &to, 1, &r);
    pmc_client_eoh(slow->c, &r);
    /* Send EOM without reading its answer: the filter is now pending. */
    {
        uint8_t pkt[5] = {0, 0, 0, 1, 'E'};
        CHECK(write(slow->fd, pkt, 5) == 5, "%s: eom sent", label);
    }
    t0 = now_ms();
    for (int i = 0; i < 3; i++) {
        fast = cli_new(dial_unix(p), 3000);
        n += cli_hello(fast, "fast") == PMC_OK &&
             message(fast, "<now@x>", "<c@x>", (char[8]){0}, 8, &r) == 'c';
        pmc_client_quit(fast->c);
        cli_free(fast);
    }
    CHECK(n == 3 && now_ms() - t0 < 500,
          "%s: 3 other connections served while one is pending (%d in "
          "%lld ms)", label, n, now_ms() - t0);
    {
        uint8_t buf[256];
        char codes[16];
        /* 'h' "X-Late\0yes\0" (16 bytes) and 'c' (5). */
        size_t got = read_until(slow->fd, buf, sizeof buf, 21, 3000);
        codes_of(buf, got, codes, sizeof codes);
        CHECK(!strcmp(codes, "hc") && now_ms() - t0 >= 500,
              "%s: the pending one got its header and reply after its "
              "answer ('%s')", label, codes);
    }
    cli_free(slow);
    stop(&t, 1000);
}

/* Input sent while a handler is pending is queued and answered in order
 * once the answer comes; the read timeout does not run while pending. */
static void test_queued_and_timeout(pmc_server_model model, const char *label)
{
    pmc_server_config cfg;
    tsrv t;
    char p[128], codes[64];
    pmc_buf b = {0};
    uint8_t in[1024];
    size_t got;
    int fd;
    pmc_server_stats st;

    reset();
    pconfig(&cfg, model);
    cfg.read_timeout_ms = 60;   /* shorter than the pending EOM (150) */
    if (start(&t, &cfg, "queued.sock", p, sizeof p) < 0)
        return;
    {
        static const uint8_t opt[12] = {0, 0, 0, 6, 0, 0, 1, 0xff,
                                        0, 0x1f, 0xff, 0xff};
        put(&b, 'O', opt, 12);
        put(&b, 'C', "mta\0" "4\0\x19" "192.0.2.1", 4 + 1 + 2 + 10);
        put(&b, 'M', "<later@x>", 10);
        put(&b, 'R', "<b@x>", 6);
        put(&b, 'E', NULL, 0);
        /* Pipelined behind the pending EOM. */
        put(&b, 'M', "<now@x>", 8);
        put(&b, 'R', "<b@x>", 6);
        put(&b, 'E', NULL, 0);
        put(&b, 'Q', NULL, 0);
    }
    fd = dial_unix(p);
    CHECK(fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len,
          "%s: conversation sent", label);
    got = read_all(fd, in, sizeof in, 2000);
    codes_of(in, got, codes, sizeof codes);
    CHECK(!strcmp(codes, "Occchccchc"),
          "%s: queued input answered in order after the pending EOM "
          "('%s')", label, codes);
    close(fd);
    pmc_buf_free(&b);
    /* The closing connection's counters are merged before its hook. */
    wait_count(&closes, 1, 5000);
    pmc_server_stats_get(t.srv, &st);
    CHECK(atomic_load(&aborts) == 0 && st.conn_read_timeouts == 0,
          "%s: no read timeout cut the pending message (%llu)", label,
          (unsigned long long)st.conn_read_timeouts);
    stop(&t, 1000);
}

/* Answers for connections that are gone get s == NULL. */
static void test_gone(pmc_server_model model, const char *label)
{
    pmc_server_config cfg;
    tsrv t;
    char p[128];
    cli *k;
    pmc_result r;
    pmc_str from = S("<never@x>"), to = S("<b@x>");
    long long end;

    reset();
    pconfig(&cfg, model);
    if (start(&t, &cfg, "gone.sock", p, sizeof p) < 0)
        return;
    k = cli_new(dial_unix(p), 3000);
    cli_hello(k, "gone");
    pmc_client_mail(k->c, &from, 1, &r);
    pmc_client_rcpt(k->c, &to, 1, &r);
    {
        uint8_t pkt[5] = {0, 0, 0, 1, 'E'};
        CHECK(write(k->fd, pkt, 5) == 5, "%s: eom sent", label);
    }
    end = now_ms() + 2000;
    while (!atomic_load(&never_id) && now_ms() < end)
        sleep_ms(5);
    /* The MTA gives up: the session ends with abort and close. */
    cli_free(k);
    end = now_ms() + 2000;
    while (atomic_load(&closes) < 1 && now_ms() < end)
        sleep_ms(5);
    CHECK(atomic_load(&closes) == 1 && atomic_load(&aborts) == 1,
          "%s: closing while pending ran abort and close", label);
    later(atomic_load(&never_id), 0, PMC_CONTINUE, 0);
    later(987654321, 0, PMC_CONTINUE, 0);
    end = now_ms() + 2000;
    while (atomic_load(&gone) < 2 && now_ms() < end)
        sleep_ms(5);
    CHECK(atomic_load(&gone) == 2,
          "%s: late answers and unknown ids got NULL (%d)", label,
          atomic_load(&gone));
    stop(&t, 1000);
}

/* Drain waits for a pending message; at the deadline it is cut, and an
 * answer after the run got NULL at once. */
static void test_drain(pmc_server_model model, const char *label)
{
    pmc_server_config cfg;
    tsrv t;
    char p[128], codes[16];
    cli *k;
    pmc_result r;
    pmc_str from = S("<later@x>"), to = S("<b@x>");
    uint8_t pkt[5] = {0, 0, 0, 1, 'E'}, buf[256];
    long long t0, end;
    size_t got;

    reset();
    pconfig(&cfg, model);
    if (start(&t, &cfg, "pdrain.sock", p, sizeof p) < 0)
        return;
    k = cli_new(dial_unix(p), 3000);
    cli_hello(k, "drain");
    pmc_client_mail(k->c, &from, 1, &r);
    pmc_client_rcpt(k->c, &to, 1, &r);
    CHECK(write(k->fd, pkt, 5) == 5, "%s: eom sent", label);
    sleep_ms(20);
    t0 = now_ms();
    pmc_server_stop(t.srv, 5000);
    /* The answer, then the connection is kept for the MTA's QUIT. */
    got = read_all(k->fd, buf, 16 + 5, 2000); /* 'h' X-Late, 'c' */
    codes_of(buf, got, codes, sizeof codes);
    CHECK(!strcmp(codes, "hc"), "%s: the pending message was answered "
          "during the drain ('%s')", label, codes);
    pkt[4] = 'Q';
    CHECK(write(k->fd, pkt, 5) == 5 && wait_closed(k->fd, 2000),
          "%s: closed at the MTA's QUIT", label);
    pkt[4] = 'E';
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(t.rc == PMC_OK && now_ms() - t0 >= 100 && now_ms() - t0 < 2000,
          "%s: run returned after the answer (%lld ms)", label,
          now_ms() - t0);
    cli_free(k);
    stop(&t, 0);

    /* Never answered: cut at the deadline. */
    reset();
    if (start(&t, &cfg, "pdrain2.sock", p, sizeof p) < 0)
        return;
    from = S("<never@x>");
    k = cli_new(dial_unix(p), 3000);
    cli_hello(k, "drain");
    pmc_client_mail(k->c, &from, 1, &r);
    pmc_client_rcpt(k->c, &to, 1, &r);
    CHECK(write(k->fd, pkt, 5) == 5, "%s: eom sent", label);
    end = now_ms() + 2000;
    while (!atomic_load(&never_id) && now_ms() < end)
        sleep_ms(5);
    t0 = now_ms();
    pmc_server_stop(t.srv, 200);
    CHECK(wait_closed(k->fd, 2000), "%s: cut at the drain deadline", label);
    pthread_join(t.th, NULL);
    t.running = 0;
    CHECK(now_ms() - t0 >= 150 && atomic_load(&aborts) == 1 &&
              atomic_load(&closes) == 1,
          "%s: after %lld ms, abort and close ran", label, now_ms() - t0);
    /* The run is over: the answer comes back at once, with NULL. */
    {
        job *j = calloc(1, sizeof *j);
        j->id = atomic_load(&never_id);
        CHECK(pmc_server_resume(t.srv, j->id, answer, j) == PMC_OK &&
                  atomic_load(&gone) == 1,
              "%s: an answer after the run gets NULL at once", label);
    }
    cli_free(k);
    stop(&t, 0);
}

static void run_model(pmc_server_model model, const char *label)
{
    test_stages(model, label);
    test_others(model, label);
    test_queued_and_timeout(model, label);
    test_gone(model, label);
    test_drain(model, label);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/pmc-pend-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    run_model(PMC_MODEL_LOOP, "loop");
    run_model(PMC_MODEL_THREADS, "threads");
    /* One worker process: the answers come from a thread of the worker,
     * through the server object it inherited. */
    test_stages(PMC_MODEL_PREFORK, "prefork");
    test_queued_and_timeout(PMC_MODEL_PREFORK, "prefork");
    test_stages(PMC_MODEL_FORK, "fork");
    test_queued_and_timeout(PMC_MODEL_FORK, "fork");
    {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            DIAG("could not remove %s", dir);
    }
    return tap_done();
}
