/* The /metrics and /health endpoint: a thread of its own beside the run,
 * so a scrape never waits for a handler and the loop never waits for a
 * scraper.  Up to 16 peers are read at once, each with its own deadline,
 * and answered as soon as their request has ended: a silent or slow peer
 * holds one slot for the deadline at most, and gives it up earlier to a
 * new peer when all are taken.  Only the process that started it serves: a forked
 * worker or child closes its copy of the sockets at once (atfork). */
#define _GNU_SOURCE
#include "internal_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQ_MAX 4096         /* a request line and headers, at most */
#define DEADLINE_MS 2000     /* to read a request and write the answer */

typedef struct pmci_http {
    pmc_server *srv;
    int lfd;
    int wake[2];             /* a byte in wake[1] stops the thread */
    pthread_t th;
    char unlink_path[108];   /* unix: the path we created, else "" */
} pmci_http;

/* The endpoint of this process, for the fork handlers: one server per
 * process runs with metrics (a second one starting finds it taken). */
static pthread_mutex_t active_mu = PTHREAD_MUTEX_INITIALIZER;
static pmci_http *active;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* The stats lock is held across fork, so a child never inherits it taken
 * by the scraping thread, which does not exist in the child. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&active_mu);
    if (active)
        pthread_mutex_lock(&active->srv->mu);
}

static void fork_parent(void)
{
    if (active)
        pthread_mutex_unlock(&active->srv->mu);
    pthread_mutex_unlock(&active_mu);
}

static void fork_child(void)
{
    if (active) {
        pthread_mutex_unlock(&active->srv->mu);
        close(active->lfd);
        close(active->wake[0]);
        close(active->wake[1]);
        active->srv->http = NULL; /* the thread is not in this process */
        free(active);
        active = NULL;
    }
    pthread_mutex_unlock(&active_mu);
}

static void register_atfork(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static long long left_ms(long long deadline)
{
    long long d = deadline - pmci_now_ms();
    return d > 0 ? d : 0;
}

/* Wait for fd to be ready for ev, or for the stop.  1 ready, 0 not (the
 * deadline passed, or the stop came). */
static int wait_fd(pmci_http *h, int fd, short ev, long long deadline)
{
    for (;;) {
        struct pollfd p[2] = {{fd, ev, 0}, {h->wake[0], POLLIN, 0}};
        long long ms = left_ms(deadline);
        int n;

        if (ms == 0)
            return 0;
        n = poll(p, 2, (int)ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || p[1].revents)
            return 0;
        return 1;
    }
}

static void write_all(pmci_http *h, int fd, const char *p, size_t n,
                      long long deadline)
{
    while (n > 0) {
        ssize_t w;

        if (!wait_fd(h, fd, POLLOUT, deadline))
            return;
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* The target of a "GET /path HTTP/1.x" line, up to '?' or the blank:
 * 1 when it is exactly 'path'. */
static int target_is(const char *t, size_t len, const char *path)
{
    return len == strlen(path) && memcmp(t, path, len) == 0;
}

static void answer(pmci_http *h, int fd, const char *req, long long deadline)
{
    const char *sp = strchr(req, ' '), *t, *end;
    const char *status = "404 Not Found", *type = "text/plain";
    pmc_buf body = {0}, msg = {0};
    char head[256];
    size_t tl;
    int get, n, code;

    get = sp && ((sp - req == 3 && memcmp(req, "GET", 3) == 0) ||
                 (sp - req == 4 && memcmp(req, "HEAD", 4) == 0));
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
        code = pmc_health_http_status(hs);
        status = code == 200 ? "200 OK" : "503 Service Unavailable";
        pmc_buf_append(&body, word, strlen(word));
        pmc_buf_append(&body, "\n", 1);
    } else {
        pmc_buf_append(&body, "not found: try /metrics or /health\n", 35);
    }
    n = snprintf(head, sizeof head,
                 "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, type, body.len);
    if (pmc_buf_append(&msg, head, (size_t)n) == PMC_OK &&
        (req[0] == 'H' ||
         pmc_buf_append(&msg, body.data, body.len) == PMC_OK))
        write_all(h, fd, (const char *)msg.data, msg.len, deadline);
    pmc_buf_free(&body);
    pmc_buf_free(&msg);
}

/* The clients being read, each with its own deadline, so a silent or
 * slow peer holds only its slot.  When every slot is taken, a new
 * connection takes the oldest one's place. */
#define SLOTS 16

typedef struct client {
    int fd;                  /* -1: free */
    long long deadline;
    size_t len;
    char req[REQ_MAX];
} client;

static void drop(client *c)
{
    close(c->fd);
    c->fd = -1;
}

/* Read what c's peer sent; answer once the request's headers ended.
 * Done (answered, closed, or too long) frees the slot. */
static void on_readable(pmci_http *h, client *c)
{
    ssize_t r = recv(c->fd, c->req + c->len, REQ_MAX - 1 - c->len, 0);

    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (r <= 0) {
        drop(c);
        return;
    }
    c->len += (size_t)r;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
        answer(h, c->fd, c->req, c->deadline);
    else if (c->len < REQ_MAX - 1)
        return;
    drop(c); /* answered, or a request that does not end */
}

static void *http_main(void *arg)
{
    pmci_http *h = arg;
    client cl[SLOTS];
    struct pollfd p[SLOTS + 2];
    int who[SLOTS + 2];

    for (int i = 0; i < SLOTS; i++)
        cl[i].fd = -1;
    for (;;) {
        long long now = pmci_now_ms(), next = -1;
        int n = 0, used = 0, free_slot = -1, ready;

        p[n].fd = h->wake[0];
        p[n].events = POLLIN;
        who[n++] = -2;
        for (int i = 0; i < SLOTS; i++) {
            if (cl[i].fd < 0) {
                free_slot = free_slot < 0 ? i : free_slot;
                continue;
            }
            if (cl[i].deadline <= now) {
                drop(&cl[i]); /* too slow */
                free_slot = free_slot < 0 ? i : free_slot;
                continue;
            }
            used++;
            if (next < 0 || cl[i].deadline < next)
                next = cl[i].deadline;
            p[n].fd = cl[i].fd;
            p[n].events = POLLIN;
            who[n++] = i;
        }
        /* Always accepting: with every slot taken the oldest peer makes
         * room, so a flood of silent peers cannot keep a scraper waiting
         * behind them. */
        p[n].fd = h->lfd;
        p[n].events = POLLIN;
        who[n++] = -1;
        (void)used;
        ready = poll(p, (nfds_t)n, next < 0 ? -1 : (int)(next - now));
        if (ready < 0 && errno != EINTR)
            break;
        if (ready <= 0)
            continue;
        if (p[0].revents)
            break;
        for (int k = 1; k < n; k++) {
            if (!p[k].revents)
                continue;
            if (who[k] >= 0) {
                on_readable(h, &cl[who[k]]);
                continue;
            }
            int fd = accept4(h->lfd, NULL, NULL,
                             SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0) {
                if (free_slot < 0 || cl[free_slot].fd >= 0) {
                    free_slot = 0;
                    for (int i = 1; i < SLOTS; i++)
                        if (cl[i].deadline < cl[free_slot].deadline)
                            free_slot = i;
                    drop(&cl[free_slot]);
                }
                cl[free_slot].fd = fd;
                cl[free_slot].len = 0;
                cl[free_slot].deadline = pmci_now_ms() + DEADLINE_MS;
            } else if (errno != EAGAIN && errno != EINTR &&
                       errno != ECONNABORTED) {
                /* Out of descriptors and the like: give the process a
                 * moment rather than spin on a listener that stays
                 * readable. */
                poll(p, 1, 100);
            }
        }
    }
    for (int i = 0; i < SLOTS; i++)
        if (cl[i].fd >= 0)
            drop(&cl[i]);
    return NULL;
}

pmc_status pmci_http_start(pmc_server *srv, pmc_error *err)
{
    const char *spec = srv->cfg.metrics_listen;
    const char *what = "metrics_listen";
    pmc_error e;
    pmc_sockspec ss;
    pmci_http *h;

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
    h->wake[0] = h->wake[1] = -1;
    if ((h->lfd = pmc_listen(spec, 0, 0, &e)) < 0) {
        free(h);
        return pmci_set_error(err ? err : &e, PMC_ERR_IO, 0, "%s=%s: %s",
                              what, spec, e.message);
    }
    if (ss.family == PMC_SOCK_UNIX)
        memcpy(h->unlink_path, ss.path, sizeof h->unlink_path);
    pthread_mutex_lock(&active_mu);
    if (active || pipe2(h->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
        pthread_create(&h->th, NULL, http_main, h) != 0) {
        int taken = active != NULL;
        pthread_mutex_unlock(&active_mu);
        if (h->wake[0] >= 0) {
            close(h->wake[0]);
            close(h->wake[1]);
        }
        close(h->lfd);
        if (h->unlink_path[0])
            unlink(h->unlink_path);
        free(h);
        return pmci_set_error(err ? err : &e, PMC_ERR_IO, 0, "%s=%s: %s",
                              what, spec,
                              taken ? "another server of this process "
                                      "already serves metrics"
                                    : "cannot start the endpoint's thread");
    }
    active = h;
    srv->http = h;
    pthread_mutex_unlock(&active_mu);
    return PMC_OK;
}

void pmci_http_stop(pmc_server *srv)
{
    pmci_http *h = srv->http;

    if (!h)
        return;
    (void)!write(h->wake[1], "x", 1);
    pthread_join(h->th, NULL);
    pthread_mutex_lock(&active_mu);
    active = NULL;
    srv->http = NULL;
    pthread_mutex_unlock(&active_mu);
    close(h->lfd);
    close(h->wake[0]);
    close(h->wake[1]);
    if (h->unlink_path[0])
        unlink(h->unlink_path);
    free(h);
}
