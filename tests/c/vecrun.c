/*
 * vecrun - the C runner for the conversation vectors in tests/vectors.
 *
 * usage: vecrun [--no-split] FILE.vec|DIR ...
 *
 * Each vector is fed whole, one byte at a time and split in two at every
 * offset (tests/vectors/README.md); every run must produce the expected log
 * exactly.  Prints TAP (tap.h): one test line per vector, a diff-like view
 * of the first failing run as diagnostics, then the plan.  When a directory
 * holds a README.md, its coverage table is checked against the vectors'
 * covers lines too (one more test line).  Exits 1 if any vector failed, 2
 * on usage errors (before any TAP, so there is no plan).  --no-split skips
 * the split runs (quick checks under valgrind).
 */
/* strdup, strtok_r, opendir: POSIX, which -std=c11 hides otherwise. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"
#include "veccover.h"
#include "vecexec.h"

#define CONTEXT_BEFORE 3
#define CONTEXT_AFTER 8

static int no_split;

/* ---- collecting files --------------------------------------------------- */

typedef struct pathlist {
    char **p;
    size_t n, cap;
} pathlist;

static int add_path(pathlist *pl, const char *path)
{
    if (pl->n == pl->cap) {
        size_t cap = pl->cap ? pl->cap * 2 : 64;
        char **p = realloc(pl->p, cap * sizeof *p);
        if (!p)
            return -1;
        pl->p = p;
        pl->cap = cap;
    }
    pl->p[pl->n] = strdup(path);
    return pl->p[pl->n++] ? 0 : -1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every *.vec file of a directory, sorted so runs are reproducible. */
static int add_dir(pathlist *pl, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t first = pl->n;
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n <= 4 || strcmp(de->d_name + n - 4, ".vec") != 0)
            continue;
        size_t len = strlen(dir) + 1 + n + 1;
        char *p = malloc(len);
        if (!p) {
            rc = -1;
            break;
        }
        snprintf(p, len, "%s/%s", dir, de->d_name);
        rc = add_path(pl, p);
        free(p);
    }
    closedir(d);
    qsort(pl->p + first, pl->n - first, sizeof *pl->p, cmp_str);
    return rc;
}

static void free_paths(pathlist *pl)
{
    for (size_t i = 0; i < pl->n; i++)
        free(pl->p[i]);
    free(pl->p);
}

/* ---- comparing ---------------------------------------------------------- */

static int line_equal(const vline *a, const vline *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (!vtok_equal(&a->t[i], &b->t[i]))
            return 0;
    return 1;
}

/* Index of the first differing line, or -1 when the logs are equal. */
static long first_difference(const vector *v, const vlog *g)
{
    size_t n = v->nexpect < g->n ? v->nexpect : g->n;
    for (size_t i = 0; i < n; i++)
        if (!line_equal(&v->expect[i], &g->l[i]))
            return (long)i;
    return v->nexpect == g->n ? -1 : (long)n;
}

static void print_line(const char *tag, const vline *l)
{
    printf("#   %s ", tag);
    vline_print(l, stdout);
    if (l->lineno)
        printf("    (line %d)", l->lineno);
    putchar('\n');
}

/* Common lines before the difference, then expected (-) and actual (+)
 * lines side by side from there on. */
static void print_diff(const vector *v, const vlog *g, size_t at)
{
    size_t from = at > CONTEXT_BEFORE ? at - CONTEXT_BEFORE : 0;
    for (size_t i = from; i < at; i++)
        print_line(" ", &g->l[i]);
    for (size_t i = at; i < at + CONTEXT_AFTER; i++) {
        if (i >= v->nexpect && i >= g->n)
            break;
        if (i < v->nexpect && i < g->n && line_equal(&v->expect[i], &g->l[i])) {
            print_line(" ", &g->l[i]);
            continue;
        }
        /* A line only one side has is shown alone. */
        if (i < v->nexpect)
            print_line("-", &v->expect[i]);
        if (i < g->n)
            print_line("+", &g->l[i]);
    }
}

static const char *mode_name(int mode, size_t cut, char *buf, size_t len)
{
    if (mode == VF_WHOLE)
        return "whole";
    if (mode == VF_BYTES)
        return "byte by byte";
    snprintf(buf, len, "split at offset %zu", cut);
    return buf;
}

/* One run; 0 when its log matches, 1 (reported) otherwise. */
static int check_run(const vector *v, int mode, size_t cut)
{
    vlog g;
    char buf[64];
    if (vec_exec(v, mode, cut, &g)) {
        tap_ok(0, "%s (%s): runner out of memory", v->name,
               mode_name(mode, cut, buf, sizeof buf));
        return 1;
    }
    long at = first_difference(v, &g);
    if (at >= 0) {
        tap_ok(0, "%s (%s): log differs at entry %ld", v->name,
               mode_name(mode, cut, buf, sizeof buf), at + 1);
        print_diff(v, &g, (size_t)at);
    }
    vlog_free(&g);
    return at >= 0;
}

static int run_vector(const vector *v)
{
    if (check_run(v, VF_WHOLE, 0) || check_run(v, VF_BYTES, 0))
        return 1;
    size_t total = vec_input_len(v);
    for (size_t cut = 1; !no_split && cut < total; cut++)
        if (check_run(v, VF_SPLIT, cut))
            return 1;
    tap_ok(1, "%s", v->name);
    return 0;
}

/* Every covers word of a vector as (item, vector) pairs. */
static int add_claims(covset *claimed, const vector *v)
{
    for (size_t i = 0; i < v->covers.n; i++)
        if (covset_add(claimed, (const char *)v->covers.t[i].bytes, v->name))
            return -1;
    return 0;
}

/* Directory argument: its vectors, and its README's table if there is one. */
static int add_dir_arg(pathlist *pl, const char *dir, covset *table,
                       int *have_table)
{
    size_t len = strlen(dir) + sizeof "/README.md";
    char *readme = malloc(len);
    if (!readme)
        return -1;
    snprintf(readme, len, "%s/README.md", dir);
    if (cov_load_table(readme, table) == 0)
        *have_table = 1;
    free(readme);
    return add_dir(pl, dir);
}

int main(int argc, char **argv)
{
    pathlist pl = {0};
    covset table = {0}, claimed = {0};
    int have_table = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (strcmp(argv[i], "--no-split") == 0) {
            no_split = 1;
            continue;
        }
        int rc = stat(argv[i], &st) != 0 ? -1
                 : S_ISDIR(st.st_mode)
                     ? add_dir_arg(&pl, argv[i], &table, &have_table)
                     : add_path(&pl, argv[i]);
        if (rc) {
            fprintf(stderr, "vecrun: cannot use %s\n", argv[i]);
            free_paths(&pl);
            covset_free(&table);
            return 2;
        }
    }
    if (pl.n == 0) {
        fprintf(stderr, "usage: vecrun [--no-split] FILE.vec|DIR ...\n");
        free_paths(&pl);
        covset_free(&table);
        return 2;
    }
    for (size_t i = 0; i < pl.n; i++) {
        vector v;
        char err[512];
        if (vec_parse_file(pl.p[i], &v, err, sizeof err))
            tap_ok(0, "%s: %s", pl.p[i], err);
        else if (add_claims(&claimed, &v))
            tap_ok(0, "%s: out of memory", v.name);
        else
            run_vector(&v);
        vec_free(&v);
        fflush(stdout);
    }
    if (have_table) {
        size_t bad = cov_compare(&table, &claimed, 0);
        tap_ok(!bad, "coverage-table (%zu differences)", bad);
        if (bad)
            cov_compare(&table, &claimed, 1);
    }
    free_paths(&pl);
    covset_free(&table);
    covset_free(&claimed);
    return tap_done();
}
