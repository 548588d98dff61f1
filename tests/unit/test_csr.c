/* Unit tests of CSR building: radix sort, duplicate merging, membership. */
#include <stdlib.h>

#include "kd_csr.h"
#include "kd_rng.h"
#include "kd_test.h"

static int cmp_pair(const void *a, const void *b)
{
    const kd_pair *x = a, *y = b;
    if (x->row != y->row) return x->row < y->row ? -1 : 1;
    return (x->col > y->col) - (x->col < y->col);
}

int main(void)
{
    kd_err e;
    kd_rng r = kd_rng_seed(5);
    enum { N = 20000 };
    kd_pair *p = malloc(N * sizeof *p), *q = malloc(N * sizeof *q);
    for (int k = 0; k < N; k++) {
        p[k].row = kd_rng_below(&r, 300) * 70001u % 100000u; /* spans the high 16 bits too */
        p[k].col = kd_rng_below(&r, 90000);
        q[k] = p[k];
    }
    /* reference: qsort + unique */
    qsort(q, N, sizeof *q, cmp_pair);
    int m = 1;
    for (int k = 1; k < N; k++)
        if (cmp_pair(&q[k], &q[m - 1])) q[m++] = q[k];
    uint64_t got = kd_pairs_sort_unique(p, N);
    CHECK(got == (uint64_t)m);
    int same = 1;
    for (int k = 0; k < m; k++) same &= !cmp_pair(&p[k], &q[k]);
    CHECK(same);

    kd_pair d[] = { { 1, 3 }, { 0, 2 }, { 1, 3 }, { 1, 0 }, { 2, 1 } };
    kd_csr c;
    CHECK(kd_csr_from_pairs(&c, 3, 4, d, 5, &e) == 0);
    CHECK(kd_csr_nnz(&c) == 4);
    CHECK(kd_csr_len(&c, 0) == 1 && kd_csr_len(&c, 1) == 2 && kd_csr_len(&c, 2) == 1);
    CHECK(kd_csr_has(&c, 1, 3) && kd_csr_has(&c, 1, 0) && !kd_csr_has(&c, 1, 2) && !kd_csr_has(&c, 0, 3));
    kd_csr_free(&c);
    kd_pair bad[] = { { 5, 0 } };
    CHECK(kd_csr_from_pairs(&c, 3, 4, bad, 1, &e) == -1);
    free(p);
    free(q);
    return kd_test_done("test_csr");
}
