/*
 * veclex.h - tokens of the vector format.  Log lines, expected or
 * produced, are token lists (vline) so that comparison follows the README:
 * numbers numerically, strings by bytes, words exactly.
 */
#ifndef VECLEX_H
#define VECLEX_H

#include <stddef.h>
#include <stdint.h>

enum vtok_type { VT_STR, VT_NUM, VT_WORD };

/* One token.  'bytes' is owned and always followed by a NUL byte, so a
 * string or word can be handed to C string APIs (interior NULs aside). */
typedef struct vtok {
    int type;
    uint8_t *bytes; /* VT_STR and VT_WORD */
    size_t len;
    int64_t num;    /* VT_NUM */
} vtok;

typedef struct vline {
    vtok *t;
    size_t n, cap;
    int lineno; /* source line for expected lines, 0 for produced ones */
} vline;

void vline_free(vline *l);
int vline_add(vline *l, int type, const void *p, size_t len, int64_t num);
/* Add a word, or a number if the text reads as one (so produced words such
 * as the reply code "2" compare the way an expected line reads them). */
int vline_add_word(vline *l, const char *w);
int vline_add_str(vline *l, const void *p, size_t len);
int vline_add_num(vline *l, int64_t num);
/* Token equality per the README. */
int vtok_equal(const vtok *a, const vtok *b);
/* Print a line in vector syntax to a FILE *; long strings are shortened. */
void vline_print(const vline *l, void *file);

/* A bare word that reads as a number: decimal (optionally negative) or 0x
 * hex.  Returns 1 and sets *out, or 0. */
int vec_number(const char *w, int64_t *out);

/* Split one line (no newline) into tokens appended to *out.  Returns 0, or
 * -1 with a message in err. */
int vec_tokenize(const char *line, vline *out, char *err, size_t errlen);

/* A growable byte string, always followed by a NUL once non-empty. */
typedef struct vbuf {
    uint8_t *p;
    size_t len, cap;
} vbuf;
int vbuf_put(vbuf *b, const void *p, size_t n);

#endif
