/* The loop's books: its epoll set, the two timeout lists that hold every
 * connection no thread is working on, and which connection an id names
 * (for the answers pmc_server_resume queues by id).  Plain data
 * structures: nothing here calls back into the loop. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

int pmci_loop_add(pmci_loop *l, pmci_item *it, uint32_t ev)
{
    struct epoll_event e;

    memset(&e, 0, sizeof e);
    e.events = ev;
    e.data.ptr = it;
    return epoll_ctl(l->ep, EPOLL_CTL_ADD, it->fd, &e);
}

void pmci_loop_each_idle(pmci_loop *l,
                         void (*fn)(pmci_loop *, pmci_conn *))
{
    /* Every connection no worker holds sits on one of the lists; collect
     * first because fn may free or move them. */
    for (int i = 0; i < 2; i++) {
        pmci_conn *c = l->tl[i].head, *next;
        pmci_conn *mark = l->tl[i].tail;
        while (c) {
            next = c == mark ? NULL : c->tnext;
            fn(l, c);
            c = next;
        }
    }
}

/* Connections by id: chained hashing, doubled when it gets full. */

static size_t slot_of(const pmci_loop *l, uint64_t id)
{
    /* Ids are a base plus a counter: a multiplicative hash spreads them. */
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (l->tab_cap - 1);
}

int pmci_tab_add(pmci_loop *l, pmci_conn *c)
{
    if (l->tab_n + 1 > l->tab_cap) {
        size_t cap = l->tab_cap ? l->tab_cap * 2 : 64;
        pmci_conn **t = calloc(cap, sizeof *t), **old = l->tab;
        size_t oldcap = l->tab_cap;
        if (!t)
            return -1;
        l->tab = t;
        l->tab_cap = cap;
        for (size_t i = 0; i < oldcap; i++)
            while (old[i]) {
                pmci_conn *x = old[i];
                size_t k = slot_of(l, x->id);
                old[i] = x->hnext;
                x->hnext = t[k];
                t[k] = x;
            }
        free(old);
    }
    {
        size_t k = slot_of(l, c->id);
        c->hnext = l->tab[k];
        l->tab[k] = c;
        l->tab_n++;
    }
    return 0;
}

void pmci_tab_del(pmci_loop *l, pmci_conn *c)
{
    pmci_conn **pp;

    if (!l->tab_cap)
        return;
    for (pp = &l->tab[slot_of(l, c->id)]; *pp; pp = &(*pp)->hnext)
        if (*pp == c) {
            *pp = c->hnext;
            c->hnext = NULL;
            l->tab_n--;
            return;
        }
}

pmci_conn *pmci_tab_find(pmci_loop *l, uint64_t id)
{
    pmci_conn *c;

    if (!l->tab_cap)
        return NULL;
    for (c = l->tab[slot_of(l, id)]; c; c = c->hnext)
        if (c->id == id)
            return c;
    return NULL;
}
