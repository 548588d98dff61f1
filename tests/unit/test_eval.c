/* Unit tests of ranking and metrics against a brute-force reference: score everything
 * with kd_rank_score_ref (the scoring chain, scalar fmaf), sort all candidates, apply the
 * textbook formulas.  The kernels themselves are tested in test_rank.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_eval.h"
#include "kd_rank.h"
#include "kd_rng.h"
#include "kd_test.h"

typedef struct cand { float s; uint32_t i; } cand;
static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int in_row(const kd_csr *m, uint32_t u, uint32_t i) { return kd_csr_has(m, u, i); }

/* textbook metrics of one user, K given */
static void reference_user(const kd_model *m, const kd_dataset *d, uint32_t u, uint32_t K, double *out)
{
    cand *c = malloc(d->n_items * sizeof *c);
    uint32_t n = 0, T = kd_csr_len(&d->test, u);
    for (uint32_t i = 0; i < d->n_items; i++)
        if (!in_row(&d->train, u, i) && !in_row(&d->valid, u, i)) c[n++] = (cand){ kd_rank_score_ref(m, u, i), i };
    qsort(c, n, sizeof *c, cmp_cand);
    double hits = 0, dcg = 0, idcg = 0, ap = 0, rr = 0;
    for (uint32_t r = 0; r < K && r < n; r++) {
        int rel = in_row(&d->test, u, c[r].i);
        if (rel) {
            hits++;
            dcg += 1 / log2(r + 2.0);
            ap += hits / (r + 1);
            if (!rr) rr = 1.0 / (r + 1);
        }
    }
    for (uint32_t r = 0; r < (T < K ? T : K); r++) idcg += 1 / log2(r + 2.0);
    out[KD_M_RECALL] = hits / T;
    out[KD_M_NDCG] = dcg / idcg;
    out[KD_M_PRECISION] = hits / K;
    out[KD_M_HITRATE] = hits > 0;
    out[KD_M_MRR] = rr;
    out[KD_M_MAP] = ap / (T < K ? T : K);
    free(c);
}

/* a random dataset: some users with nearly every item in train, some with few test items */
static void make_dataset(kd_dataset *d, uint32_t U, uint32_t I, uint64_t seed)
{
    kd_err e;
    kd_rng r = kd_rng_seed(seed);
    kd_pair *tr = malloc((size_t)U * I * sizeof *tr), *va = malloc((size_t)U * I * sizeof *va),
            *te = malloc((size_t)U * I * sizeof *te);
    uint64_t ntr = 0, nva = 0, nte = 0;
    for (uint32_t u = 0; u < U; u++) {
        double p_train = u % 7 == 0 ? 0.9 : 0.15;
        for (uint32_t i = 0; i < I; i++) {
            double x = kd_rng_unif(&r);
            kd_pair p = { u, i };
            if (x < p_train) tr[ntr++] = p;
            else if (x < p_train + 0.04) va[nva++] = p;
            else if (x < p_train + 0.12) te[nte++] = p;
        }
    }
    memset(d, 0, sizeof *d);
    d->n_users = U;
    d->n_items = I;
    d->user_ids = calloc(U, 8);
    d->item_ids = calloc(I, 8);
    kd_csr_from_pairs(&d->train, U, I, tr, ntr, &e);
    kd_csr_from_pairs(&d->valid, U, I, va, nva, &e);
    kd_csr_from_pairs(&d->test, U, I, te, nte, &e);
    free(tr); free(va); free(te);
}

static void test_against_reference(uint32_t U, uint32_t I, uint32_t dim, int ties, uint64_t seed)
{
    kd_err e;
    kd_dataset d;
    kd_model m;
    make_dataset(&d, U, I, seed);
    kd_model_alloc(&m, U, I, dim, &e);
    kd_model_init_normal(&m, seed, 1.0f);
    if (ties) { /* coarse values: many exactly equal scores */
        for (size_t k = 0; k < ((size_t)U + I) * m.stride; k++) m.P[k] = roundf(m.P[k]);
        for (uint32_t i = 0; i < I; i++) m.bi[i] = 0;
    } else {
        for (uint32_t i = 0; i < I; i++) m.bi[i] = 0.1f * (float)(i % 5);
    }
    kd_eval_opts o = { .ks = { 1, 3, 10, 30 }, .nk = 4, .split = KD_SPLIT_TEST, .threads = 3, .keep_per_user = 1 };
    kd_eval_result res;
    CHECK(kd_evaluate(&m, &d, &o, &res, &e) == 0);
    double mean[KD_N_METRICS][4] = { { 0 } }, ref[KD_N_METRICS];
    uint32_t evaluated = 0;
    int per_user_ok = 1;
    for (uint32_t u = 0; u < U; u++) {
        if (!kd_csr_len(&d.test, u)) continue;
        evaluated++;
        for (int x = 0; x < o.nk; x++) {
            reference_user(&m, &d, u, o.ks[x], ref);
            for (int mi = 0; mi < KD_N_METRICS; mi++) {
                mean[mi][x] += ref[mi];
                double got = res.per_user[(size_t)u * KD_N_METRICS * o.nk + mi * o.nk + x];
                per_user_ok &= fabs(got - ref[mi]) < 1e-12;
            }
        }
    }
    CHECK(per_user_ok);
    CHECK(res.users_eval == evaluated && res.users_eval + res.users_skipped == U);
    int means_ok = 1;
    for (int mi = 0; mi < KD_N_METRICS; mi++)
        for (int x = 0; x < o.nk; x++) means_ok &= fabs(res.mean[mi][x] - mean[mi][x] / evaluated) < 1e-12;
    CHECK(means_ok);
    /* thread count never changes a figure */
    kd_eval_result r1;
    o.threads = 1;
    CHECK(kd_evaluate(&m, &d, &o, &r1, &e) == 0);
    CHECK(!memcmp(r1.mean, res.mean, sizeof res.mean));
    kd_eval_result_free(&r1);
    kd_eval_result_free(&res);
    kd_model_free(&m);
    kd_dataset_free(&d);
}

static void test_scores_bit_identical(void)
{
    kd_err e;
    kd_model m;
    kd_ranker rk;
    kd_model_alloc(&m, 9, 45, 24, &e);
    kd_model_init_normal(&m, 3, 1.0f);
    for (uint32_t i = 0; i < 45; i++) m.bi[i] = 0.01f * (float)i;
    for (uint32_t u = 0; u < 9; u++) m.bu[u] = -0.3f * (float)u;
    kd_ranker_init(&rk, &m, &e);
    float *block = aligned_alloc(64, 9 * rk.items_pad * 4), *one = aligned_alloc(64, rk.items_pad * 4);
    kd_rank_score_block(&rk, 0, 9, block);
    int same = 1;
    for (uint32_t u = 0; u < 9; u++) {
        kd_rank_score_user(&rk, u, one);
        for (uint32_t i = 0; i < 45; i++) {
            float ref = kd_rank_score_ref(&m, u, i);
            same &= !memcmp(&ref, &one[i], 4) && !memcmp(&ref, &block[u * rk.items_pad + i], 4);
        }
    }
    CHECK(same);
    free(block); free(one);
    kd_ranker_free(&rk);
    kd_model_free(&m);
}

/* kd_rank_topm_rows: the listed rows (any order, any threads) get kd_rank_topm_into's
 * bits, every other row keeps what it held; more rows than one of its chunks, and users
 * with fewer candidates than M (their padding too). */
static void test_topm_rows(void)
{
    kd_err e = { 0 };
    kd_dataset d;
    kd_model m;
    uint32_t U = 150, I = 37, M = 30;
    make_dataset(&d, U, I, 5);
    kd_model_alloc(&m, U, I, 8, &e);
    kd_model_init_normal(&m, 6, 1.0f);
    uint32_t *all = NULL, *it = malloc((size_t)U * M * 4), rows[150], n = 0;
    float *alls = NULL, *sc = malloc((size_t)U * M * 4);
    CHECK(kd_rank_topm(&m, &d, M, 2, &all, &alls, &e) == 0);
    for (uint32_t u = U; u-- > 0;) /* rows 2, 5, 8, ... listed backwards */
        if (u % 3 == 2) rows[n++] = u;
    for (int T = 1; T <= 3; T++) {
        memset(it, 0xab, (size_t)U * M * 4);
        memset(sc, 0xab, (size_t)U * M * 4);
        CHECK(kd_rank_topm_rows(&m, &d, M, rows, n, T, it, sc, &e) == 0);
        int ok = 1, padded = 0;
        for (uint32_t u = 0; u < U; u++) {
            const uint8_t *a = (const uint8_t *)(it + (size_t)u * M), *b = (const uint8_t *)(sc + (size_t)u * M);
            if (u % 3 == 2) {
                ok &= !memcmp(a, all + (size_t)u * M, M * 4) && !memcmp(b, alls + (size_t)u * M, M * 4);
                padded |= all[(size_t)u * M + M - 1] == UINT32_MAX;
            } else {
                for (uint32_t x = 0; x < M * 4; x++) ok &= a[x] == 0xab && b[x] == 0xab;
            }
        }
        CHECK(ok);
        CHECK(padded); /* the heavy users (u % 7 == 0) have fewer than M candidates */
    }
    uint32_t bad = U;
    CHECK(kd_rank_topm_rows(&m, &d, M, &bad, 1, 1, it, sc, &e) == -1 && e.code == KD_EXIT_USAGE);
    uint32_t twice[3] = { 4, 9, 4 };
    memset(it, 0xab, (size_t)U * M * 4);
    CHECK(kd_rank_topm_rows(&m, &d, M, twice, 3, 1, it, sc, &e) == -1 && e.code == KD_EXIT_USAGE);
    CHECK(kd_rank_topm_rows(&m, &d, M, twice, 2, 1, it, sc, &e) == 0); /* 4 and 9: distinct */
    CHECK(kd_rank_topm_rows(&m, &d, 0, twice, 2, 1, it, sc, &e) == -1 && e.code == KD_EXIT_USAGE);
    CHECK(kd_rank_topm_rows(&m, &d, I + 1, rows, 0, 1, it, sc, &e) == -1); /* M checked even with no rows */
    memset(it, 0xab, (size_t)U * M * 4);
    CHECK(kd_rank_topm_rows(&m, &d, M, rows, 0, 2, it, sc, &e) == 0);
    int untouched = 1;
    for (size_t x = 0; x < (size_t)U * M * 4; x++) untouched &= ((const uint8_t *)it)[x] == 0xab;
    CHECK(untouched);
    free(all); free(alls); free(it); free(sc);
    kd_model_free(&m);
    kd_dataset_free(&d);
}

int main(void)
{
    test_topm_rows();
    test_scores_bit_identical();
    test_against_reference(50, 37, 8, 0, 1);
    test_against_reference(80, 64, 16, 1, 2);
    test_against_reference(30, 200, 3, 0, 3);
    int m;
    uint32_t k;
    CHECK(kd_metric_parse("ndcg@10", &m, &k) == 0 && m == KD_M_NDCG && k == 10);
    CHECK(kd_metric_parse("ndcg@0", &m, &k) == -1 && kd_metric_parse("foo@3", &m, &k) == -1 &&
          kd_metric_parse("recall", &m, &k) == -1);
    return kd_test_done("test_eval");
}
