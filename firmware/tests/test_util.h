/* test_util.h - tiny helpers shared by the kernel tests (compare, report). */
#ifndef REDS_TEST_UTIL_H
#define REDS_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "reds_types.h"

/** Compare n int8 values; print the first mismatch. Returns 1 on mismatch, 0 when bit-exact. */
static inline int reds_check_equal(const char *what, int32_t case_idx, const int8_t *got,
                                   const int8_t *want, int32_t n)
{
    for (int32_t i = 0; i < n; ++i) {
        if (got[i] != want[i]) {
            printf("FAIL %s case %d: element %d got %d want %d\n", what, (int)case_idx, (int)i,
                   (int)got[i], (int)want[i]);
            return 1;
        }
    }
    return 0;
}

/** Check a status; print and return 1 when it differs from the expected one. */
static inline int reds_check_status(const char *what, reds_status got, reds_status want)
{
    if (got != want) {
        printf("FAIL %s: status %d, want %d\n", what, (int)got, (int)want);
        return 1;
    }
    return 0;
}

#endif /* REDS_TEST_UTIL_H */
