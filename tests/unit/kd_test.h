/* A minimal unit-test harness: CHECK(cond) counts and reports; kd_test_done() prints
 * "<file>: N passed, N failed" and returns the exit status. */
#ifndef KD_TEST_H
#define KD_TEST_H

#include <math.h>
#include <stdio.h>

static int kd_test_pass, kd_test_fail;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) kd_test_pass++;                                                      \
        else { kd_test_fail++; fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                          \
    do {                                                                               \
        double kd_a_ = (a), kd_b_ = (b);                                               \
        if (fabs(kd_a_ - kd_b_) <= (tol) * (1 + fabs(kd_b_))) kd_test_pass++;          \
        else { kd_test_fail++; fprintf(stderr, "%s:%d: FAILED: %s = %.9g, %s = %.9g\n", \
                                       __FILE__, __LINE__, #a, kd_a_, #b, kd_b_); }    \
    } while (0)

static inline int kd_test_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, kd_test_pass, kd_test_fail);
    return kd_test_fail ? 1 : 0;
}

#endif
