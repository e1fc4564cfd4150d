/*
 * veccover.c - the coverage table check (see veccover.h).  The table is
 * documentation that other runners do not read, so the C runner makes sure
 * it never drifts from the vectors' 'covers' lines.
 */
/* strdup: POSIX, which -std=c11 hides otherwise. */
#define _POSIX_C_SOURCE 200809L

#include "veccover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKLIST_ITEMS 10

void covset_free(covset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->p[i].item);
        free(s->p[i].vector);
    }
    free(s->p);
    memset(s, 0, sizeof *s);
}

int covset_add(covset *s, const char *item, const char *vector)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        covpair *p = realloc(s->p, cap * sizeof *p);
        if (!p)
            return -1;
        s->p = p;
        s->cap = cap;
    }
    covpair *c = &s->p[s->n];
    c->item = strdup(item);
    c->vector = strdup(vector);
    if (!c->item || !c->vector) {
        free(c->item);
        free(c->vector);
        return -1;
    }
    s->n++;
    return 0;
}

static int has(const covset *s, const char *item, const char *vector)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->p[i].item, item) == 0 &&
            strcmp(s->p[i].vector, vector) == 0)
            return 1;
    return 0;
}

/* One table row: "| A.11.N | text | `a`, `b` |".  The vectors are the
 * backquoted words of the last cell. */
static int parse_row(char *line, covset *s)
{
    char item[16];
    if (sscanf(line, "| %15s |", item) != 1 || strncmp(item, "A.11.", 5) != 0)
        return 0;
    char *last = strrchr(line, '|');
    if (!last)
        return 0;
    *last = 0;
    char *cell = strrchr(line, '|');
    if (!cell)
        return 0;
    for (char *p = cell; (p = strchr(p, '`')) != NULL;) {
        char *end = strchr(p + 1, '`');
        if (!end)
            break;
        *end = 0;
        if (covset_add(s, item, p + 1))
            return -1;
        p = end + 1;
    }
    return 0;
}

int cov_load_table(const char *readme, covset *s)
{
    FILE *f = fopen(readme, "r");
    if (!f)
        return -1;
    /* Table rows can be long (many vectors): read with a growing line. */
    size_t cap = 4096, len = 0;
    char *line = malloc(cap);
    int c, rc = line ? 0 : -1;
    while (rc == 0) {
        c = fgetc(f);
        if (c != EOF && c != '\n') {
            if (len + 1 == cap) {
                char *l = realloc(line, cap * 2);
                if (!l) {
                    rc = -1;
                    break;
                }
                line = l;
                cap *= 2;
            }
            line[len++] = (char)c;
            continue;
        }
        line[len] = 0;
        rc = parse_row(line, s);
        len = 0;
        if (c == EOF)
            break;
    }
    free(line);
    fclose(f);
    return rc;
}

size_t cov_compare(const covset *table, const covset *claimed, int print)
{
    size_t bad = 0;
    for (size_t i = 0; i < claimed->n; i++)
        if (!has(table, claimed->p[i].item, claimed->p[i].vector)) {
            if (print)
                printf("#   %s covers %s but the table does not list it\n",
                       claimed->p[i].vector, claimed->p[i].item);
            bad++;
        }
    for (size_t i = 0; i < table->n; i++)
        if (!has(claimed, table->p[i].item, table->p[i].vector)) {
            if (print)
                printf("#   the table lists %s under %s but its covers "
                       "line does not say so (or there is no such vector)\n",
                       table->p[i].vector, table->p[i].item);
            bad++;
        }
    for (int k = 1; k <= CHECKLIST_ITEMS; k++) {
        /* Room for any int: gcc -O1 does not track k's range and would
         * otherwise warn that the name may be cut (-Wformat-truncation). */
        char item[sizeof "A.11." + 11];
        int found = 0;
        snprintf(item, sizeof item, "A.11.%d", k);
        for (size_t i = 0; i < table->n && !found; i++)
            found = strcmp(table->p[i].item, item) == 0;
        if (!found) {
            if (print)
                printf("#   %s has no vector\n", item);
            bad++;
        }
    }
    return bad;
}
