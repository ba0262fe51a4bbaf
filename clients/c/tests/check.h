/* What the C client's socket test programs share: CHECK counts a passed or failed
 * condition and names a failed one with its line. Each program is its own executable. */
#ifndef DDN_TESTS_CHECK_H
#define DDN_TESTS_CHECK_H

#include <stdio.h>

static int passed, failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            passed++;                                                          \
        } else {                                                               \
            failed++;                                                          \
            printf("FAILED  %s:%d: %s\n", __FILE__, __LINE__, #cond);          \
        }                                                                      \
    } while (0)

#endif
