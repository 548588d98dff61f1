/* Unit tests of the generator: the blocked path gives the reference path's datasets bit
 * for bit over a sweep of parameters and any thread count, and its expf is libm's. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kd_synth.h"
#include "kd_test.h"

static int same_csr(const kd_csr *a, const kd_csr *b)
{
    return a->rows == b->rows && a->cols == b->cols && kd_csr_nnz(a) == kd_csr_nnz(b) &&
           !memcmp(a->indptr, b->indptr, ((size_t)a->rows + 1) * 8) && !memcmp(a->idx, b->idx, kd_csr_nnz(a) * 4);
}

static int same_dataset(const kd_dataset *a, const kd_dataset *b)
{
    return a->n_users == b->n_users && a->n_items == b->n_items && same_csr(&a->train, &b->train) &&
           same_csr(&a->valid, &b->valid) && same_csr(&a->test, &b->test);
}

static int same_model(const kd_model *a, const kd_model *b)
{
    if (a->n_users != b->n_users || a->n_items != b->n_items || a->dim != b->dim) return 0;
    int same = 1;
    for (uint32_t u = 0; u < a->n_users; u++)
        same &= !memcmp(a->P + (size_t)u * a->stride, b->P + (size_t)u * b->stride, (size_t)a->dim * 4);
    for (uint32_t i = 0; i < a->n_items; i++)
        same &= !memcmp(a->Q + (size_t)i * a->stride, b->Q + (size_t)i * b->stride, (size_t)a->dim * 4);
    return same && !memcmp(a->bi, b->bi, (size_t)a->n_items * 4);
}

/* expf over [-112, 0] (every float down to where glibc returns 0, and past it), one float
 * in `stride` (all of them with stride 1): the blocked path's CDF is libm's only if this
 * holds for every float it can meet */
static void test_expf_is_libm(uint32_t stride)
{
    enum { N = 4096 };
    float *x = malloc(N * 4), *w = malloc(N * 4);
    uint64_t bad = 0, seen = 0;
    uint32_t n = 0;
    for (uint64_t b = 0x80000000u; b <= 0xc2e00000u; b += stride) {
        uint32_t bits = (uint32_t)b;
        memcpy(&x[n++], &bits, 4);
        if (n == N || b + stride > 0xc2e00000u) {
            while (n % 8) x[n++] = -1.0f;
            kd_synth_expf(x, w, n);
            for (uint32_t k = 0; k < n; k++) {
                float ref = expf(x[k]);
                bad += memcmp(&ref, &w[k], 4) != 0;
            }
            seen += n;
            n = 0;
        }
    }
    CHECK(seen > 0x42e00000u / stride);
    CHECK(bad == 0);
    /* the one input in [-112, 0] where libm's FMA build and its plain build differ */
    x[0] = -0x1.f8cbb2p5f;
    for (int k = 1; k < 8; k++) x[k] = -(float)k;
    kd_synth_expf(x, w, 8);
    CHECK(w[0] == expf(x[0]));
    free(x);
    free(w);
}

/* the same dataset (and truth) from both paths, for 1, 2 and 3 threads */
static void check_paths(kd_synth_params p)
{
    kd_err e;
    kd_dataset ref, d;
    kd_model tref, t;
    p.path = KD_SYNTH_REFERENCE;
    p.threads = 1;
    if (kd_synth_generate(&ref, &p, &tref, &e)) {
        CHECK(!"reference path failed");
        return;
    }
    int same = 1;
    for (int T = 1; T <= 3; T++) {
        p.path = KD_SYNTH_AUTO;
        p.threads = T;
        CHECK(kd_synth_generate(&d, &p, &t, &e) == 0);
        same &= same_dataset(&ref, &d) && same_model(&tref, &t);
        kd_dataset_free(&d);
        kd_model_free(&t);
    }
    if (!same)
        fprintf(stderr, "differs: users %u items %u mean %g rank %u clusters %u beta %g zipf %g noise %g seed %llu\n",
                p.users, p.items, p.mean, p.rank, p.clusters, p.beta, p.zipf, p.noise, (unsigned long long)p.seed);
    CHECK(same);
    kd_dataset_free(&ref);
    kd_model_free(&tref);
}

static void test_blocked_path_is_the_reference(void)
{
    kd_synth_params p = kd_synth_defaults();
    check_paths(p); /* the default study's dataset */
    /* sizes around the tile (8 items), the checkpoint (32) and the group (16 users) */
    static const uint32_t users[] = { 1, 15, 17, 33, 130 }, items[] = { 2, 3, 31, 33, 64, 257 };
    static const uint32_t ranks[] = { 1, 7, 33 };
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 6; b++) {
            p = kd_synth_defaults();
            p.users = users[a];
            p.items = items[b];
            p.rank = ranks[(a + b) % 3];
            p.clusters = 1 + (a * 7 + b) % 9;
            p.mean = p.items / 2.0 < 5 ? 1 : 5 + (a + b) % 4 * 3;
            p.seed = 100 + a * 10 + b;
            check_paths(p);
        }
    /* the edges of the model: peaked (rebuilds of the CDF; with no noise at all both paths
     * would loop for ever once only zero weights are left), flat, all noise, no noise */
    p = kd_synth_defaults();
    p.users = 70; p.items = 90; p.rank = 12; p.mean = 40;
    double betas[] = { 100, 0, 10, 4 }, zipfs[] = { 5, 0, 2, 0.6 }, noises[] = { 0.02, 0, 1, 0.5 };
    for (int k = 0; k < 4; k++) {
        p.beta = betas[k];
        p.zipf = zipfs[k];
        p.noise = noises[k];
        p.spread = k == 3 ? 3 : 0.5;
        p.seed = k;
        check_paths(p);
    }
    p = kd_synth_defaults();
    p.users = 40; p.items = 3000; p.rank = 160; p.decay = 1; p.cluster_share = 0; p.seed = 9;
    check_paths(p);
}

int main(int argc, char **argv)
{
    /* every float with `test_synth all` (a few seconds), one in 61 by default */
    test_expf_is_libm(argc > 1 && !strcmp(argv[1], "all") ? 1 : 61);
    test_blocked_path_is_the_reference();
    return kd_test_done("test_synth");
}
