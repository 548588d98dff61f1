/* Unit tests of the ranking kernels: every SIMD path this CPU runs (forced in turn)
 * against the scalar fmaf reference, bit for bit, the fused top-K against a full sort
 * (kd_topk_naive) with heavy ties, K beyond the candidates and all-excluded users, and
 * the reservoir's key selection and sort (kd_rank_select_keys, kd_rank_sort_keys) against
 * qsort on patterns chosen to hurt a median-of-three quickselect. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_rank.h"
#include "kd_rng.h"
#include "kd_test.h"

/* shapes that cross every edge: panels of 64 items, tiles of 6 users, dims not a
 * multiple of 16, one user, more users than a chunk (60) */
static const uint32_t DIMS[] = { 1, 5, 16, 24, 32, 64, 100 };
static const uint32_t ITEMS[] = { 1, 45, 64, 130, 257 };

static void random_model(kd_model *m, uint32_t U, uint32_t I, uint32_t D, uint64_t seed, int ties)
{
    kd_err e;
    kd_model_alloc(m, U, I, D, &e);
    kd_model_init_normal(m, seed, 1.0f);
    kd_rng r = kd_rng_seed(seed + 99);
    if (ties) { /* small integers: a few distinct scores, many exact ties */
        for (size_t k = 0; k < ((size_t)U + I) * m->stride; k++) m->P[k] = (m->P[k] > 0.5f) - (m->P[k] < -0.5f);
        for (uint32_t i = 0; i < I; i++) m->bi[i] = (float)kd_rng_below(&r, 2);
    } else {
        for (uint32_t i = 0; i < I; i++) m->bi[i] = (float)(kd_rng_unif(&r) - 0.5);
        for (uint32_t u = 0; u < U; u++) m->bu[u] = (float)(kd_rng_unif(&r) - 0.5);
    }
}

/* every score of every path equals the reference's bits */
static void test_scores_every_path(void)
{
    kd_err e;
    int tried[KD_N_ISA] = { 0 };
    for (int isa = 0; isa < KD_N_ISA; isa++) {
        if (!kd_rank_isa_supported(isa)) {
            printf("test_rank: %s path not supported by this CPU, skipped\n", kd_rank_isa_name(isa));
            continue;
        }
        CHECK(kd_rank_force_isa(isa) == 0);
        int same = 1, checked = 0;
        for (size_t a = 0; a < sizeof DIMS / sizeof *DIMS; a++)
            for (size_t b = 0; b < sizeof ITEMS / sizeof *ITEMS; b++) {
                uint32_t U = 70, I = ITEMS[b], D = DIMS[a];
                kd_model m;
                kd_ranker rk;
                random_model(&m, U, I, D, 10 * a + b, 0);
                CHECK(kd_ranker_init_ex(&rk, &m, (int)((a + b) & 1), &e) == 0 && rk.isa == isa); /* both slot orders */
                float *out = aligned_alloc(64, (size_t)KD_RANK_BLOCK * rk.items_pad * 4);
                /* blocks of every size 1..13, then a full block */
                for (uint32_t u0 = 0, nu = 1; u0 < U; u0 += nu, nu = nu < 13 ? nu + 1 : KD_RANK_BLOCK) {
                    uint32_t n = U - u0 < nu ? U - u0 : nu;
                    kd_rank_score_block(&rk, u0, n, out);
                    for (uint32_t x = 0; x < n; x++)
                        for (uint32_t i = 0; i < I; i++) {
                            float ref = kd_rank_score_ref(&m, u0 + x, i);
                            same &= !memcmp(&ref, &out[(size_t)x * rk.items_pad + i], 4);
                            checked++;
                        }
                }
                kd_rank_score_user(&rk, U - 1, out);
                for (uint32_t i = 0; i < I; i++) {
                    float ref = kd_rank_score_ref(&m, U - 1, i);
                    same &= !memcmp(&ref, &out[i], 4);
                }
                free(out);
                kd_ranker_free(&rk);
                kd_model_free(&m);
            }
        CHECK(same && checked > 0);
        tried[isa] = 1;
    }
    CHECK(tried[KD_ISA_GENERIC]);
    CHECK(kd_rank_force_isa(-1) == 0);
}

/* a random sorted exclusion row per user: none, some, or all items */
static void make_excl(kd_csr *c, uint32_t U, uint32_t I, double p, uint64_t seed)
{
    kd_err e;
    kd_rng r = kd_rng_seed(seed);
    kd_pair *pr = malloc(((size_t)U * I + 1) * sizeof *pr);
    uint64_t n = 0;
    for (uint32_t u = 0; u < U; u++) {
        double q = u % 9 == 4 ? 1.0 : u % 9 == 7 ? 0.0 : p; /* all excluded, none excluded */
        for (uint32_t i = 0; i < I; i++)
            if (kd_rng_unif(&r) < q) pr[n++] = (kd_pair){ u, i };
    }
    kd_csr_from_pairs(c, U, I, pr, n, &e);
    free(pr);
}

static void test_topk_every_path(void)
{
    kd_err e;
    static const uint32_t Ks[] = { 1, 3, 10, 64, 300 };
    for (int isa = 0; isa < KD_N_ISA; isa++) {
        if (kd_rank_force_isa(isa)) continue;
        int ok = 1, all_excluded_seen = 0, short_seen = 0;
        for (int ties = 0; ties < 2; ties++)
            for (int ord = 0; ord < 2; ord++)
            for (size_t b = 0; b < sizeof ITEMS / sizeof *ITEMS; b++) {
                uint32_t U = 67, I = ITEMS[b], D = ties ? 4 : 24;
                kd_model m;
                kd_ranker rk;
                kd_csr train, valid;
                random_model(&m, U, I, D, 7 + b, ties);
                make_excl(&train, U, I, 0.3, 40 + b);
                make_excl(&valid, U, I, 0.05, 50 + b);
                CHECK(kd_ranker_init_ex(&rk, &m, ord, &e) == 0);
                uint32_t users[67], counts[67];
                for (uint32_t u = 0; u < U; u++) users[u] = (u * 37) % U; /* any order */
                const kd_csr *excl[2] = { &train, &valid };
                float *s = malloc(I * 4);
                for (size_t kk = 0; kk < sizeof Ks / sizeof *Ks; kk++)
                    for (int nx = 0; nx <= 2; nx++) {
                        uint32_t K = Ks[kk];
                        uint32_t *items = malloc((size_t)U * K * 4), *ref = malloc((size_t)K * 4);
                        float *vals = malloc((size_t)U * K * 4), *rv = malloc((size_t)K * 4);
                        /* all users at once (more than a chunk), and one at a time */
                        for (int one = 0; one < 2; one++) {
                            if (one) for (uint32_t x = 0; x < U; x++)
                                ok &= kd_rank_topk(&rk, users + x, 1, excl, nx, K, items + (size_t)x * K, vals + (size_t)x * K,
                                                   counts + x) == 0;
                            else ok &= kd_rank_topk(&rk, users, U, excl, nx, K, items, vals, counts) == 0;
                            for (uint32_t x = 0; x < U; x++) {
                                uint32_t u = users[x];
                                const uint32_t *ex[2] = { train.idx + train.indptr[u], valid.idx + valid.indptr[u] };
                                uint32_t exl[2] = { kd_csr_len(&train, u), kd_csr_len(&valid, u) };
                                for (uint32_t i = 0; i < I; i++) s[i] = kd_rank_score_ref(&m, u, i);
                                uint32_t n = kd_topk_naive(s, I, ex, exl, nx, K, ref, rv);
                                ok &= counts[x] == n && !memcmp(items + (size_t)x * K, ref, n * 4) &&
                                      !memcmp(vals + (size_t)x * K, rv, n * 4);
                                all_excluded_seen |= nx > 0 && exl[0] == I && n == 0;
                                short_seen |= n > 0 && n < K;
                            }
                        }
                        free(items); free(ref); free(vals); free(rv);
                    }
                free(s);
                kd_ranker_free(&rk);
                kd_csr_free(&train);
                kd_csr_free(&valid);
                kd_model_free(&m);
            }
        CHECK(ok);
        CHECK(all_excluded_seen && short_seen); /* the edge cases did occur */
    }
    CHECK(kd_rank_force_isa(-1) == 0);
}

/* the dense-row selection keeps agreeing with the full sort */
static void test_topk_dense(void)
{
    kd_rng r = kd_rng_seed(4);
    int ok = 1;
    for (int trial = 0; trial < 200; trial++) {
        uint32_t n = 1 + kd_rng_below(&r, 300), K = 1 + kd_rng_below(&r, 60);
        float s[300];
        uint32_t ex[300], nex = 0;
        for (uint32_t i = 0; i < n; i++) s[i] = (float)kd_rng_below(&r, 20); /* ties */
        for (uint32_t i = 0; i < n; i++) if (kd_rng_unif(&r) < 0.3) ex[nex++] = i;
        const uint32_t *exs[1] = { ex };
        uint32_t a[300], b[300];
        float va[300], vb[300];
        uint32_t nb = kd_topk_naive(s, n, exs, &nex, 1, K, b, vb), na = kd_topk(s, n, exs, &nex, 1, K, a, va);
        ok &= na == nb && !memcmp(a, b, na * 4);
    }
    CHECK(ok);
}

/* ---------------------------------------------------------------- key selection */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static const char *const PATTERNS[] = {
    "random", "random mod 7", "3 values at the top", "all equal", "all 0", "all UINT64_MAX",
    "0 and UINT64_MAX", "random with 0 and UINT64_MAX", "ascending", "descending from UINT64_MAX",
    "ascending, then the minimum", "organ pipe", "sawtooth of 8", "sawtooth of sqrt(n)",
    "alternating low and high", "median-of-3 killer", "rank keys (16 scores, distinct items)",
};
#define N_PATTERNS (sizeof PATTERNS / sizeof *PATTERNS)

/* key x of n in pattern p; the random ones draw kd_rng_at(kd_key(7, p, n), x) */
static uint64_t pattern_key(uint32_t p, uint32_t x, uint32_t n)
{
    uint64_t r = kd_rng_at(kd_key(7, p, n), x), h = n / 2;
    uint32_t w = 1;
    while ((uint64_t)(w + 1) * (w + 1) <= n) w++;
    switch (p) {
    case 0: return r;
    case 1: return r % 7;
    case 2: return UINT64_MAX - r % 3;
    case 3: return 0x8000000000000000ULL;
    case 4: return 0;
    case 5: return UINT64_MAX;
    case 6: return r & 1 ? UINT64_MAX : 0;
    case 7: return r % 4 == 0 ? 0 : r % 4 == 1 ? UINT64_MAX : r;
    case 8: return x;
    case 9: return UINT64_MAX - x;
    case 10: return x + 1 < n ? x + 1 : 0;
    case 11: return x < h ? x : n - 1 - x;
    case 12: return x % 8;
    case 13: return x % w;
    case 14: return x & 1 ? UINT64_MAX - x : x;
    case 15: /* Musser's sequence against first/middle/last (n odd: one more key at the end) */
        if (x >= 2 * h) return 2 * h + 1;
        if (x < h) return x % 2 == 0 ? x + 1 : h + x;
        return 2 * (x - h + 1);
    default: return (r % 16) << 32 | x; /* the ranker's shape: ties in score, item below */
    }
}

/* One case: select k of a copy of in[0..n), then sort the kept ones, against a qsort'ed
 * copy (ref).  a, tmp: scratch of n keys.  Returns 1 if every property holds. */
static int select_case(const uint64_t *in, const uint64_t *ref, uint32_t n, uint32_t k, uint64_t *a, uint64_t *tmp)
{
    uint32_t h = k < n ? k : n;
    int ok = 1;
    memcpy(a, in, (size_t)n * 8);
    kd_rank_select_keys(a, n, k);
    /* a[0..h) is the multiset of the h smallest keys, a[h..n) the rest: nothing added,
     * dropped or changed */
    memcpy(tmp, a, (size_t)n * 8);
    qsort(tmp, h, 8, cmp_u64);
    qsort(tmp + h, n - h, 8, cmp_u64);
    ok &= !memcmp(tmp, ref, (size_t)n * 8);
    if (k <= n) ok &= a[k - 1] == ref[k - 1]; /* the k-th smallest at k-1 (nth_element) */
    kd_rank_sort_keys(a, h);
    ok &= !memcmp(a, ref, (size_t)h * 8); /* ascending: rank order */
    /* the whole input sorted */
    memcpy(a, in, (size_t)n * 8);
    kd_rank_sort_keys(a, n);
    ok &= !memcmp(a, ref, (size_t)n * 8);
    return ok;
}

/* every pattern at sizes around the sort's cutoff (16), powers of two and up to 5000,
 * with k = 1, 2, around the cutoff, a quarter, a half, n-1, n, n+1 and a random k */
static void test_select_keys(void)
{
    static const uint32_t SIZES[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 18, 31, 32, 33, 63, 64, 65,
                                      100, 127, 128, 129, 255, 256, 257, 1000, 1024, 1025, 4096, 4999, 5000 };
    const uint32_t nmax = 5000;
    uint64_t *in = malloc(nmax * 8), *ref = malloc(nmax * 8), *a = malloc(nmax * 8), *tmp = malloc(nmax * 8);
    kd_rng r = kd_rng_seed(11);
    for (uint32_t p = 0; p < N_PATTERNS; p++) {
        int ok = 1;
        uint32_t cases = 0;
        for (size_t b = 0; b < sizeof SIZES / sizeof *SIZES; b++) {
            uint32_t n = SIZES[b];
            for (uint32_t x = 0; x < n; x++) in[x] = pattern_key(p, x, n);
            memcpy(ref, in, (size_t)n * 8);
            qsort(ref, n, 8, cmp_u64);
            const uint32_t ks[] = { 1, 2, 16, 17, n / 4, n / 2, n - 1, n, n + 1, 1 + (uint32_t)kd_rng_below(&r, n) };
            for (size_t c = 0; c < sizeof ks / sizeof *ks; c++) {
                if (ks[c] == 0 || ks[c] > n + 1) continue; /* k = 16, 17 past n + 1 */
                int one = select_case(in, ref, n, ks[c], a, tmp);
                if (!one && ok) fprintf(stderr, "test_rank: keys %s, n %u, k %u: select or sort wrong\n", PATTERNS[p], n, ks[c]);
                ok &= one;
                cases++;
            }
        }
        CHECK(ok && cases > 0);
    }
    /* n = 0 touches nothing */
    a[0] = 42;
    kd_rank_select_keys(a, 0, 1);
    kd_rank_sort_keys(a, 0);
    CHECK(a[0] == 42);
    free(in); free(ref); free(a); free(tmp);
}

/* The reservoir as kd_rank_topk runs it: keys stream into a buffer of cap > K, which is
 * cut back to the K smallest whenever it fills (so the kept keys come first), then a last
 * cut and the sort; the result is the K smallest of the whole stream. */
static void test_select_reservoir(void)
{
    static const uint32_t Ks[] = { 1, 2, 10, 100, 1000 };
    int ok = 1;
    for (size_t kk = 0; kk < sizeof Ks / sizeof *Ks; kk++)
        for (uint32_t dup = 0; dup < 2; dup++) {
            uint32_t K = Ks[kk], cap = 2 * K + 8, total = 20 * K + 37, n = 0;
            uint64_t *buf = malloc((size_t)cap * 8), *all = malloc((size_t)total * 8), key = kd_key(3, K, dup);
            for (uint32_t x = 0; x < total; x++) {
                all[x] = dup ? kd_rng_at(key, x) % 50 : kd_rng_at(key, x);
                buf[n] = all[x];
                if (++n == cap) {
                    kd_rank_select_keys(buf, n, K);
                    n = K;
                }
            }
            if (n > K) kd_rank_select_keys(buf, n, K);
            kd_rank_sort_keys(buf, K);
            qsort(all, total, 8, cmp_u64);
            ok &= !memcmp(buf, all, (size_t)K * 8);
            free(buf);
            free(all);
        }
    CHECK(ok);
}

/* KD_SIMD names a path; a wrong name is an error, not a silent default */
static void test_env(void)
{
    kd_err e;
    kd_model m;
    kd_ranker rk;
    random_model(&m, 3, 5, 4, 1, 0);
    setenv("KD_SIMD", "generic", 1);
    CHECK(kd_ranker_init(&rk, &m, &e) == 0 && rk.isa == KD_ISA_GENERIC);
    kd_ranker_free(&rk);
    setenv("KD_SIMD", "sse9", 1);
    CHECK(kd_ranker_init(&rk, &m, &e) == -1 && strstr(e.msg, "KD_SIMD=sse9"));
    unsetenv("KD_SIMD");
    CHECK(kd_ranker_init(&rk, &m, &e) == 0);
    kd_ranker_free(&rk);
    CHECK(kd_rank_force_isa(KD_N_ISA) == -1);
    kd_model_free(&m);
}

int main(void)
{
    unsetenv("KD_SIMD");
    test_scores_every_path();
    test_topk_every_path();
    test_topk_dense();
    test_select_keys();
    test_select_reservoir();
    test_env();
    return kd_test_done("test_rank");
}
