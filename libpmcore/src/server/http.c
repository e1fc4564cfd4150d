/* The /metrics and /health endpoint, served by the run's event loop like
 * any other socket.  A thread of its own would make the whole process
 * multi-threaded, and glibc then takes its slower locked paths in every
 * system call and allocation: about 2,500 instructions a message on
 * bench-c's milter, past the 2% the metrics may cost.  In the loop, the
 * endpoint answers between two steps; a loop stuck in a callback stops
 * answering /health too, which is what a load balancer should see.
 *
 * Up to 16 peers are served at once, each with its own deadline, and
 * answered as soon as their request has ended: a silent or slow peer
 * holds one slot for the deadline at most, and gives it up earlier to a
 * new peer when all are taken.  Only the process that started it serves: a
 * forked worker or child closes its copy of the sockets at once (atfork). */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQ_MAX 4096         /* a request line and headers, at most */
#define DEADLINE_MS 2000     /* to read a request and write the answer */
#define SLOTS 16
#define PAUSE_MS 100         /* out of descriptors: accept again after */

typedef struct client {
    pmci_item it;            /* fd -1: free */
    long long deadline;
    size_t len;              /* of req */
    pmc_buf out;             /* the answer, once the request ended */
    size_t sent;
    char req[REQ_MAX];
} client;

struct pmci_http {
    pmci_item lit;           /* the listener */
    pmc_server *srv;
    pmci_loop *l;            /* the loop that serves it, or NULL */
    int listening;           /* lit is in the loop's epoll set */
    long long paused_until;  /* accept4 ran out of descriptors: 0 or when
                                to listen again */
    char unlink_path[108];   /* unix: the path we created, else "" */
    client cl[SLOTS];
};

/* The endpoint of this process, for the fork handler: one server per
 * process serves metrics (a second one starting finds it taken).  The
 * mutex also covers every change to the slots, so a fork from another
 * thread (a callback's) never copies one half made: the child closes
 * exactly the sockets the endpoint holds. */
static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;
static pmci_http *active;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void close_all(pmci_http *h)
{
    for (int i = 0; i < SLOTS; i++) {
        if (h->cl[i].it.fd >= 0)
            close(h->cl[i].it.fd);
        pmc_buf_free(&h->cl[i].out);
    }
    close(h->lit.fd);
}

static void fork_prepare(void) { pthread_mutex_lock(&active_mu); }
static void fork_parent(void) { pthread_mutex_unlock(&active_mu); }

/* Not this process's endpoint: the sockets go, the listener stays the
 * parent's (and its unix path too), and a loop that goes on in the child
 * (a callback's fork that returns) no longer looks at it. */
static void fork_child(void)
{
    if (active) {
        close_all(active);
        if (active->l) {
            active->l->http = NULL;
            active->l->http_due = LLONG_MAX;
        }
        active->srv->http = NULL;
        free(active);
        active = NULL;
    }
    pthread_mutex_unlock(&active_mu);
}

static void register_atfork(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static void drop(client *c)
{
    int fd = c->it.fd;

    pthread_mutex_lock(&active_mu);
    c->it.fd = -1; /* before the close: the number may be reused at once */
    pthread_mutex_unlock(&active_mu);
    close(fd);
    pmc_buf_free(&c->out);
}

/* The target of a "GET /path HTTP/1.x" line, up to '?' or the blank:
 * 1 when it is exactly 'path'. */
static int target_is(const char *t, size_t len, const char *path)
{
    return len == strlen(path) && memcmp(t, path, len) == 0;
}

/* The whole answer to req, into out. */
static int answer(pmci_http *h, const char *req, pmc_buf *out)
{
    const char *sp = strchr(req, ' '), *t, *end;
    const char *status = "404 Not Found", *type = "text/plain";
    pmc_buf body = {0};
    char head[256];
    size_t tl;
    int get, only_head, n, ok;

    only_head = sp && sp - req == 4 && memcmp(req, "HEAD", 4) == 0;
    get = only_head || (sp && sp - req == 3 && memcmp(req, "GET", 3) == 0);
    t = sp ? sp + 1 : "";
    end = t + strcspn(t, " ?\r\n");
    tl = (size_t)(end - t);
    if (!get) {
        status = "405 Method Not Allowed";
        pmc_buf_append(&body, "only GET\n", 9);
    } else if (target_is(t, tl, "/metrics")) {
        status = "200 OK";
        type = "text/plain; version=0.0.4; charset=utf-8";
        if (pmc_server_metrics_text(h->srv, &body) != PMC_OK) {
            status = "500 Internal Server Error";
            body.len = 0;
        }
    } else if (target_is(t, tl, "/health")) {
        pmc_health hs = pmc_server_health(h->srv);
        const char *word = pmc_health_name(hs);
        status = pmc_health_http_status(hs) == 200 ? "200 OK"
                                                   : "503 Service Unavailable";
        pmc_buf_append(&body, word, strlen(word));
        pmc_buf_append(&body, "\n", 1);
    } else {
        pmc_buf_append(&body, "not found: try /metrics or /health\n", 35);
    }
    n = snprintf(head, sizeof head,
                 "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, type, body.len);
    ok = pmc_buf_append(out, head, (size_t)n) == PMC_OK &&
         (only_head || pmc_buf_append(out, body.data, body.len) == PMC_OK);
    pmc_buf_free(&body);
    return ok;
}

/* Send what is left of c's answer; done (all sent, or the peer failed)
 * frees the slot, else the loop waits for room to write. */
static void send_out(pmci_http *h, client *c)
{
    while (c->sent < c->out.len) {
        ssize_t w = send(c->it.fd, c->out.data + c->sent,
                         c->out.len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            struct epoll_event e = {.events = EPOLLOUT, .data.ptr = &c->it};
            if (epoll_ctl(h->l->ep, EPOLL_CTL_MOD, c->it.fd, &e) != 0)
                break;
            return;
        }
        if (w <= 0)
            break;
        c->sent += (size_t)w;
    }
    drop(c);
}

/* Read what c's peer sent; answer once the request's headers ended. */
static void on_readable(pmci_http *h, client *c)
{
    ssize_t r = recv(c->it.fd, c->req + c->len, REQ_MAX - 1 - c->len,
                     MSG_DONTWAIT);

    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        drop(c);
        return;
    }
    c->len += (size_t)r;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
        if (answer(h, c->req, &c->out)) {
            c->sent = 0;
            send_out(h, c);
            return;
        }
    } else if (c->len < REQ_MAX - 1) {
        return;
    }
    drop(c); /* out of memory, or a request that does not end */
}

/* 0, or -1 when epoll refused the change. */
static int listen_on(pmci_http *h, int on)
{
    if (on == h->listening)
        return 0;
    if (on ? pmci_loop_add(h->l, &h->lit, EPOLLIN) != 0
           : epoll_ctl(h->l->ep, EPOLL_CTL_DEL, h->lit.fd, NULL) != 0)
        return -1;
    h->listening = on;
    return 0;
}

/* Something of the endpoint is due at t: the loop looks then. */
static void due_at(pmci_loop *l, long long t)
{
    if (t < l->http_due)
        l->http_due = t;
    if (t < l->due)
        l->due = t;
}

/* Take the connections waiting.  With every slot taken, the peer nearest
 * its deadline makes room, so a flood of silent peers cannot keep a
 * scraper waiting behind them. */
static void on_accept(pmci_http *h)
{
    for (int k = 0; k < SLOTS; k++) {
        int fd = accept4(h->lit.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        client *c = NULL;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* The listener stays readable: not again at once. */
                listen_on(h, 0);
                h->paused_until = pmci_now_ms() + PAUSE_MS;
                due_at(h->l, h->paused_until);
            }
            return;
        }
        for (int i = 0; i < SLOTS && !c; i++)
            if (h->cl[i].it.fd < 0)
                c = &h->cl[i];
        if (!c) {
            c = &h->cl[0];
            for (int i = 1; i < SLOTS; i++)
                if (h->cl[i].deadline < c->deadline)
                    c = &h->cl[i];
            drop(c);
        }
        pthread_mutex_lock(&active_mu);
        c->it.fd = fd;
        pthread_mutex_unlock(&active_mu);
        c->len = 0;
        c->sent = 0;
        c->deadline = pmci_now_ms() + DEADLINE_MS;
        if (pmci_loop_add(h->l, &c->it, EPOLLIN) != 0) {
            drop(c);
            continue;
        }
        due_at(h->l, c->deadline);
    }
}

void pmci_http_event(pmci_loop *l, pmci_item *it, uint32_t ev)
{
    pmci_http *h = l->http;
    client *c;

    if (it == &h->lit) {
        on_accept(h);
        return;
    }
    c = (client *)it;
    if (c->out.len)
        send_out(h, c);
    else if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
        on_readable(h, c);
}

long long pmci_http_expire(pmci_loop *l, long long now)
{
    pmci_http *h = l->http;
    long long next = LLONG_MAX;

    if (h->paused_until && now >= h->paused_until)
        h->paused_until = listen_on(h, 1) == 0 ? 0 : now + PAUSE_MS;
    if (h->paused_until)
        next = h->paused_until;
    for (int i = 0; i < SLOTS; i++) {
        client *c = &h->cl[i];
        if (c->it.fd < 0)
            continue;
        if (c->deadline <= now)
            drop(c); /* too slow */
        else if (c->deadline < next)
            next = c->deadline;
    }
    return next;
}

int pmci_http_attach(pmci_loop *l)
{
    pmci_http *h = l->srv->http;

    if (!h || l->srv->is_child || h->l)
        return 0;
    h->l = l;
    l->http = h;
    return listen_on(h, 1);
}

void pmci_http_detach(pmci_loop *l)
{
    if (l->http)
        l->http->l = NULL;
    l->http = NULL;
}

pmc_status pmci_http_start(pmc_server *srv, pmc_error *err)
{
    const char *spec = srv->cfg.metrics_listen;
    const char *what = "metrics_listen";
    pmc_error e;
    pmc_sockspec ss;
    pmci_http *h;
    int taken;

    if (!spec) {
        spec = getenv("PMCORE_METRICS");
        what = "PMCORE_METRICS";
    }
    if (!spec || !*spec)
        return PMC_OK;
    if (pmc_sockspec_parse(spec, &ss, &e) != PMC_OK)
        return pmci_set_error(err ? err : &e, PMC_ERR_ARGUMENT, 0,
                              "%s=%s: %s", what, spec, e.message);
    pthread_once(&atfork_once, register_atfork);
    if (!(h = calloc(1, sizeof *h)))
        return pmci_set_error(err ? err : &e, PMC_ERR_NOMEM, 0,
                              "%s: out of memory", what);
    h->srv = srv;
    h->lit.kind = PMCI_K_HTTP;
    for (int i = 0; i < SLOTS; i++) {
        h->cl[i].it.kind = PMCI_K_HTTP;
        h->cl[i].it.fd = -1;
    }
    pthread_mutex_lock(&active_mu);
    taken = active != NULL;
    if (!taken && (h->lit.fd = pmc_listen(spec, 0, 0, &e)) >= 0) {
        if (ss.family == PMC_SOCK_UNIX)
            memcpy(h->unlink_path, ss.path, sizeof h->unlink_path);
        active = h;
        srv->http = h;
    }
    pthread_mutex_unlock(&active_mu);
    if (srv->http == h)
        return PMC_OK;
    free(h);
    return pmci_set_error(err ? err : &e, PMC_ERR_IO, 0, "%s=%s: %s", what,
                          spec,
                          taken ? "another server of this process already "
                                  "serves metrics"
                                : e.message);
}

void pmci_http_stop(pmc_server *srv)
{
    pmci_http *h = srv->http;

    if (!h)
        return;
    pthread_mutex_lock(&active_mu);
    active = NULL;
    srv->http = NULL;
    pthread_mutex_unlock(&active_mu);
    close_all(h);
    if (h->unlink_path[0])
        unlink(h->unlink_path);
    free(h);
}
