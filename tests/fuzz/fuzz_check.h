/* The fuzz targets' invariant check: abort() so libFuzzer reports the input. */
#ifndef PMC_FUZZ_CHECK_H
#define PMC_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                          \
    do {                                                                  \
        if (!(c)) {                                                       \
            fprintf(stderr, "invariant failed: %s at %s:%d\n", #c,        \
                    __FILE__, __LINE__);                                  \
            abort();                                                      \
        }                                                                 \
    } while (0)

#endif
