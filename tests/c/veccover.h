/*
 * veccover.h - keeps the coverage table of tests/vectors/README.md honest:
 * every row "| A.11.N | ... | `vec`, `vec` |" must list exactly the
 * vectors whose 'covers' line names that item, and every item must have a
 * vector.
 */
#ifndef VECCOVER_H
#define VECCOVER_H

#include <stddef.h>

typedef struct covpair {
    char *item;   /* "A.11.3" */
    char *vector; /* vector name */
} covpair;

typedef struct covset {
    covpair *p;
    size_t n, cap;
} covset;

void covset_free(covset *s);
int covset_add(covset *s, const char *item, const char *vector);

/* Read the table rows of a README into *s.  Returns 0, or -1 if the file
 * cannot be read. */
int cov_load_table(const char *readme, covset *s);

/* Compare the table with what the vectors claim ('claimed' holds one pair
 * per covers word) and return the number of differences; items A.11.1 to
 * A.11.10 without a vector count too.  With 'print', each difference is
 * also printed on stdout as a "# " line. */
size_t cov_compare(const covset *table, const covset *claimed, int print);

#endif
