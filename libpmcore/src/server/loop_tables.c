/* The loop's books on its connections: which connection an id names, for
 * the answers pmc_server_resume queues by id. */
#define _GNU_SOURCE
#include "internal_server.h"

#include <stdlib.h>

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
