/* kd_synth: the synthetic generator (model in kd_synth.h). */
#include "kd_synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_cli.h"
#include "kd_par.h"
#include "kd_prov.h"
#include "kd_rng.h"
#include "kd_vec.h"

kd_synth_params kd_synth_defaults(void)
{
    kd_synth_params p = {
        .users = 1000, .items = 500, .mean = 30, .spread = 0.5, .rank = 160, .decay = 0.99,
        .clusters = 160, .cluster_share = 0.95, .beta = 4.0, .zipf = 0.6, .noise = 0.05,
        .test_ratio = 0.2, .valid_ratio = 0.1, .seed = 1,
    };
    return p;
}

int kd_synth_check(const kd_synth_params *p, kd_err *e)
{
    if (p->users < 1 || p->users > 100000000)  return kd_fail_usage(e, "--users must be in 1..1e8");
    if (p->items < 2 || p->items > 100000000)  return kd_fail_usage(e, "--items must be in 2..1e8");
    if (!(p->mean >= 1) || p->mean > p->items / 2.0)
        return kd_fail_usage(e, "--mean must be in [1, items/2]");
    if (!(p->spread >= 0 && p->spread <= 3))   return kd_fail_usage(e, "--spread must be in [0, 3]");
    if (p->rank < 1 || p->rank > 1024)         return kd_fail_usage(e, "--rank must be in 1..1024");
    if (!(p->decay > 0 && p->decay <= 1))      return kd_fail_usage(e, "--decay must be in (0, 1]");
    if (p->clusters < 1)                       return kd_fail_usage(e, "--clusters must be at least 1");
    if (!(p->cluster_share >= 0 && p->cluster_share <= 1))
        return kd_fail_usage(e, "--cluster-share must be in [0, 1]");
    if (!(p->beta >= 0 && p->beta <= 100))     return kd_fail_usage(e, "--beta must be in [0, 100]");
    if (!(p->zipf >= 0 && p->zipf <= 5))       return kd_fail_usage(e, "--zipf must be in [0, 5]");
    if (!(p->noise >= 0 && p->noise <= 1))     return kd_fail_usage(e, "--noise must be in [0, 1]");
    if (!(p->test_ratio > 0 && p->test_ratio < 1))
        return kd_fail_usage(e, "--test-ratio must be in (0, 1)");
    if (!(p->valid_ratio >= 0 && p->valid_ratio < 1))
        return kd_fail_usage(e, "--valid-ratio must be in [0, 1)");
    return 0;
}

int kd_synth_prov(const kd_synth_params *p, kd_buf *b)
{
    kd_prov_str(b, "source", "synth");
    kd_prov_u64(b, "synth.users", p->users);
    kd_prov_u64(b, "synth.items", p->items);
    kd_prov_f64(b, "synth.mean", p->mean);
    kd_prov_f64(b, "synth.spread", p->spread);
    kd_prov_u64(b, "synth.rank", p->rank);
    kd_prov_f64(b, "synth.decay", p->decay);
    kd_prov_u64(b, "synth.clusters", p->clusters);
    kd_prov_f64(b, "synth.cluster_share", p->cluster_share);
    kd_prov_f64(b, "synth.beta", p->beta);
    kd_prov_f64(b, "synth.zipf", p->zipf);
    kd_prov_f64(b, "synth.noise", p->noise);
    kd_prov_f64(b, "split.test_ratio", p->test_ratio);
    kd_prov_f64(b, "split.valid_ratio", p->valid_ratio);
    kd_prov_u64(b, "seed", p->seed);
    return kd_buf_error(b) ? -1 : 0;
}

/* x = sqrt(share) * centre[c] + sqrt(1 - share) * N(0, I), c uniform among clusters, for
 * rows [k0, k1); row k takes draws k * (1 + 2 rank) .. of the stream r (one for the cluster,
 * two per Box-Muller normal), so rows can be drawn by any thread in any order */
static void latent_rows(float *x, uint32_t k0, uint32_t k1, uint32_t rank, const float *centres, uint32_t clusters,
                        double share, kd_rng r)
{
    double a = sqrt(share), b = sqrt(1 - share);
    r.s += (uint64_t)k0 * (1 + 2 * (uint64_t)rank) * 0x9e3779b97f4a7c15ULL; /* SplitMix64: skip ahead */
    for (uint32_t k = k0; k < k1; k++) {
        const float *c = centres + (size_t)kd_rng_below(&r, clusters) * rank;
        for (uint32_t d = 0; d < rank; d++)
            x[(size_t)k * rank + d] = (float)(a * c[d] + b * kd_rng_normal(&r));
    }
}

typedef struct latent_job {
    float *x;
    uint32_t n, rank, clusters;
    const float *centres;
    double share;
    kd_rng r;
} latent_job;

static void latent_thread(void *ctx, int t, int T)
{
    latent_job *j = ctx;
    unsigned long long lo, hi;
    kd_par_range(j->n, t, T, &lo, &hi);
    latent_rows(j->x, (uint32_t)lo, (uint32_t)hi, j->rank, j->centres, j->clusters, j->share, j->r);
}

/* n latent rows, as if drawn one after another from r (which is advanced past them) */
static int latent(float *x, uint32_t n, uint32_t rank, const float *centres, uint32_t clusters, double share,
                  kd_rng *r, int threads, kd_err *e)
{
    latent_job j = { x, n, rank, clusters, centres, share, *r };
    if (kd_par_run(threads, latent_thread, &j, e))
        return -1;
    r->s += (uint64_t)n * (1 + 2 * (uint64_t)rank) * 0x9e3779b97f4a7c15ULL;
    return 0;
}

/* the number of interactions of a user: lognormal around the mean, within [3, items/2] */
static uint32_t user_count(const kd_synth_params *p, kd_rng *r)
{
    double z = kd_rng_normal(r);
    double want = p->mean * exp(p->spread * z - p->spread * p->spread / 2);
    uint32_t n = (uint32_t)(want + 0.5), half = p->items / 2 ? p->items / 2 : 1;
    return n < 3 ? (3 < half ? 3 : half) : n > half ? half : n;
}

/* logit[i] = logpop[i] + sum_r x[r] * Yt[r][i]: one axpy per latent dimension, 16 items
 * per vector, in a fixed order (logit is 64-byte aligned, Yt and logpop need not be) */
KD_CLONES static void user_logits(const float *x, const float *Yt, const float *logpop, uint32_t R, uint32_t I16,
                                  float *logit)
{
    for (uint32_t i = 0; i < I16; i += 16) *(kd_v16 *)(logit + i) = *(const kd_v16u *)(logpop + i);
    for (uint32_t r = 0; r < R; r++) {
        float xr = x[r];
        const float *y = Yt + (size_t)r * I16;
        for (uint32_t i = 0; i < I16; i += 16) *(kd_v16 *)(logit + i) += xr * *(const kd_v16u *)(y + i);
    }
}

typedef struct synth_job {
    const kd_synth_params *p;
    const float *X, *Yt, *logpop;
    const uint64_t *off;
    kd_pair *pairs;
    uint32_t I16;
    int failed;
} synth_job;

static void synth_thread(void *ctx, int t, int T)
{
    synth_job *j = ctx;
    const kd_synth_params *p = j->p;
    uint32_t I = p->items, R = p->rank;
    float *logit = NULL;
    double *cdf = kd_alloc_array((uint64_t)I + 1, 8);
    uint8_t *taken = calloc(I, 1);
    uint32_t *chosen = kd_alloc_array(I, 4);
    if (posix_memalign((void **)&logit, 64, (size_t)j->I16 * 4) || !cdf || !taken || !chosen) {
        j->failed = 1;
        free(cdf); free(taken); free(chosen);
        return;
    }
    unsigned long long lo, hi;
    kd_par_range(p->users, t, T, &lo, &hi);
    for (uint32_t u = (uint32_t)lo; u < hi; u++) {
        kd_rng rng = kd_rng_seed(kd_key(p->seed, 0x55534552ULL /* "USER" */, u));
        uint32_t n = user_count(p, &rng);
        user_logits(j->X + (size_t)u * R, j->Yt, j->logpop, R, j->I16, logit);
        float mx = logit[0];
        for (uint32_t i = 1; i < I; i++) mx = logit[i] > mx ? logit[i] : mx;
        /* sequential sampling without replacement = Plackett-Luce = Gumbel-top-k in law;
         * draws hitting an item already taken are rejected, and the CDF is rebuilt
         * without the taken items if that happens too often */
        uint32_t got = 0, rejects = 0;
        int rebuild = 1;
        while (got < n) {
            if (rebuild) {
                cdf[0] = 0;
                for (uint32_t i = 0; i < I; i++)
                    cdf[i + 1] = cdf[i] + (taken[i] ? 0.0 : (double)expf(logit[i] - mx));
                rebuild = 0;
                rejects = 0;
            }
            uint32_t item;
            if (kd_rng_unif(&rng) < p->noise) {
                item = kd_rng_below(&rng, I);
            } else {
                double x = kd_rng_unif(&rng) * cdf[I];
                uint32_t a = 0, b = I; /* first i with cdf[i+1] > x */
                while (a < b) {
                    uint32_t mid = a + (b - a) / 2;
                    if (cdf[mid + 1] > x) b = mid; else a = mid + 1;
                }
                item = a < I ? a : I - 1;
            }
            if (taken[item]) {
                if (++rejects > 4 * n + 64) rebuild = 1;
                continue;
            }
            taken[item] = 1;
            chosen[got++] = item;
        }
        kd_pair *out = j->pairs + j->off[u];
        for (uint32_t k = 0; k < n; k++) {
            out[k] = (kd_pair){ u, chosen[k] };
            taken[chosen[k]] = 0;
        }
    }
    free(logit); free(cdf); free(taken); free(chosen);
}

/* ---- the blocked path: the same draws, 16 users at a time ----
 *
 * synth_thread spends nearly all its time on one axpy per latent dimension over all items
 * (the logits stream from L3: about 100 cycles per user x item) and on a scalar expf per
 * item.  The blocked path computes exactly the same numbers, in the same rounding order,
 * only arranged differently:
 *  - logits of a group of 16 users are vectors over users (one lane per user), so each
 *    item's latent row is broadcast once for 64 users and the sums stay in registers for
 *    the whole rank; each sum adds the same products in the same order r = 0, 1, ...
 *    as user_logits (no fused multiply-add, -ffp-contract=off), so it is the same float;
 *  - expf is glibc's algorithm (the ARM optimized-routines expf: a 32-entry table of
 *    2^(k/32) and a cubic in double) on 8 lanes, with the fused multiply-adds of the
 *    x86-64 FMA build that libm picks on any CPU with FMA; test_synth checks it against
 *    libm's expf over every float in [-112, 0];
 *  - the CDF is the same running double sum, per lane, kept every 32 items only: a draw
 *    finds its block among the checkpoints and replays at most 32 additions, which give
 *    the same doubles as the full sum;
 *  - a rebuild (rare once items >> interactions per user) builds the full CDF of that one
 *    user exactly as synth_thread does.
 * So the pairs are bit-identical to synth_thread's for every parameter setting; test_synth
 * compares the two paths over a sweep of parameters. */
#define SY_LANES 16 /* users per group: one 16-float vector */
#define SY_GROUPS 4 /* groups per register tile, so per pass over Y */
#define SY_TILE 4   /* items per register tile (x 4 groups = 16 accumulators) */
#define SY_CK 32    /* items per CDF checkpoint */

typedef double kd_v8d __attribute__((vector_size(64)));
typedef float kd_v8f __attribute__((vector_size(32)));
typedef uint64_t kd_v8u __attribute__((vector_size(64)));
typedef int64_t kd_v8l __attribute__((vector_size(64)));

/* glibc's __exp2f_data.tab: bits(2^(k/32)) - (k << 47) */
static const uint64_t exp2f_tab[32] = {
    0x3ff0000000000000ULL, 0x3fefd9b0d3158574ULL, 0x3fefb5586cf9890fULL, 0x3fef9301d0125b51ULL,
    0x3fef72b83c7d517bULL, 0x3fef54873168b9aaULL, 0x3fef387a6e756238ULL, 0x3fef1e9df51fdee1ULL,
    0x3fef06fe0a31b715ULL, 0x3feef1a7373aa9cbULL, 0x3feedea64c123422ULL, 0x3feece086061892dULL,
    0x3feebfdad5362a27ULL, 0x3feeb42b569d4f82ULL, 0x3feeab07dd485429ULL, 0x3feea47eb03a5585ULL,
    0x3feea09e667f3bcdULL, 0x3fee9f75e8ec5f74ULL, 0x3feea11473eb0187ULL, 0x3feea589994cce13ULL,
    0x3feeace5422aa0dbULL, 0x3feeb737b0cdc5e5ULL, 0x3feec49182a3f090ULL, 0x3feed503b23e255dULL,
    0x3feee89f995ad3adULL, 0x3feeff76f2fb5e47ULL, 0x3fef199bdd85529cULL, 0x3fef3720dcef9069ULL,
    0x3fef5818dcfba487ULL, 0x3fef7c97337b9b5fULL, 0x3fefa4afa2a490daULL, 0x3fefd0765b6e4540ULL,
};

/* r = a * b + c rounded once, lane by lane (a vector FMA where the target has one; libm's
 * exact fma elsewhere).  Macros, not functions: a 64-byte vector passed by value to a
 * function compiled without AVX-512 has another ABI (gcc's -Wpsabi). */
#define SY_FMA8(r, a, b, c)                                                          \
    do {                                                                             \
        for (int k_ = 0; k_ < 8; k_++) (r)[k_] = __builtin_fma((a)[k_], (b)[k_], (c)[k_]); \
    } while (0)

/* w[k] = expf(x[k]) for 8 floats x[k] <= 0 (given as doubles): glibc's expf, step by step */
static inline __attribute__((always_inline)) void expf8(const kd_v8d *xp, kd_v8f *wp)
{
    const kd_v8d inv = (kd_v8d){ 0 } + 0x1.71547652b82fep+0 * 32, shift = (kd_v8d){ 0 } + 0x1.8p+52;
    const kd_v8d c0 = (kd_v8d){ 0 } + 0x1.c6af84b912394p-5 / 32 / 32 / 32;
    const kd_v8d c1 = (kd_v8d){ 0 } + 0x1.ebfce50fac4f3p-3 / 32 / 32, c2 = (kd_v8d){ 0 } + 0x1.62e42ff0c52d6p-1 / 32;
    const kd_v8d one = (kd_v8d){ 0 } + 1.0;
    kd_v8d x = *xp, kd, r, nkd, z, r2, y;
    SY_FMA8(kd, inv, x, shift);      /* x * 32 / ln 2 rounded to an integer k, in the low bits */
    kd_v8u ki = (kd_v8u)kd, t;
    kd -= shift;
    nkd = -kd;
    SY_FMA8(r, inv, x, nkd);         /* x * 32 / ln 2 - k, in [-1/2, 1/2] */
    /* t = exp2f_tab[ki % 32]: two 16-entry permutes and a select, not 8 scalar loads */
    kd_v8u t0, t1, t2, t3, i16 = ki & 15, hi = -((ki >> 4) & 1);
    memcpy(&t0, exp2f_tab, 64);
    memcpy(&t1, exp2f_tab + 8, 64);
    memcpy(&t2, exp2f_tab + 16, 64);
    memcpy(&t3, exp2f_tab + 24, 64);
    t = (__builtin_shuffle(t0, t1, i16) & ~hi) | (__builtin_shuffle(t2, t3, i16) & hi);
    t += ki << 47;                   /* 2^(k/32) */
    SY_FMA8(z, c0, r, c1);
    r2 = r * r;
    SY_FMA8(y, c2, r, one);
    SY_FMA8(y, z, r2, y);
    y *= (kd_v8d)t;
    kd_v8l under = x < -0x1.9fe368p6; /* below log(2^-150): glibc returns 0 */
    y = (kd_v8d)((kd_v8l)y & ~under);
    *wp = __builtin_convertvector(y, kd_v8f); /* the float expf returns */
}

#define SY_SPLAT16(v, s)                                  \
    do {                                                  \
        for (int k_ = 0; k_ < 16; k_++) (v)[k_] = (s);    \
    } while (0)
#define SY_MAX16(m, a)                                                  \
    do {                                                                \
        for (int k_ = 0; k_ < 16; k_++) (m)[k_] = (a)[k_] > (m)[k_] ? (a)[k_] : (m)[k_]; \
    } while (0)

/* For SY_GROUPS groups of 16 users and items [0, ipad) (ipad % SY_TILE == 0):
 *   L[g][i][lane] = lp[i] + sum_{r < R} Xt[g][r][lane] * Y[i][r]   (in the order r = 0, 1, ...)
 *   mx[g][lane]   = max over i of L[g][i][lane]
 * Xt, L and mx are 64-byte aligned; L's groups are lstride floats apart.  Padding items
 * have lp = -inf and Y = 0, so they never win the max.  The register tile is 64 users x
 * 4 items (16 accumulators, one broadcast per item and rank for 4 products): measured
 * against 32 x 8 and 48 x 5 it ran nearest to the mul+add peak, since the 4 groups' Xt
 * (40 KB at rank 160) stays in L1 and Y is read once per 64 users. */
KD_CLONES static void block_logits(const float *Xt, const float *Y, const float *lp, uint32_t R, uint32_t ipad,
                                   size_t lstride, float *L, float *mx)
{
    kd_v16 m[SY_GROUPS];
    for (int h = 0; h < SY_GROUPS; h++) SY_SPLAT16(m[h], -INFINITY);
    for (uint32_t i0 = 0; i0 < ipad; i0 += SY_TILE) {
        const float *y = Y + (size_t)i0 * R;
        kd_v16 a[SY_GROUPS][SY_TILE];
        /* unrolled, so the accumulators live in registers for the whole rank */
#pragma GCC unroll 4
        for (int j = 0; j < SY_TILE; j++) {
            kd_v16 v;
            SY_SPLAT16(v, lp[i0 + j]);
#pragma GCC unroll 4
            for (int h = 0; h < SY_GROUPS; h++) a[h][j] = v;
        }
        /* the next tile's rows (16 R contiguous bytes) come from memory: one line of them
         * every 4 ranks, so they are in L1 when its first broadcast needs them (without
         * this the kernel stalled on that first miss of every line) */
        const char *next = i0 + SY_TILE < ipad ? (const char *)(y + (size_t)SY_TILE * R) : NULL;
        for (uint32_t r = 0; r < R; r++) {
            kd_v16 x[SY_GROUPS];
            if (next && r % 4 == 0) __builtin_prefetch(next + (size_t)r * 16);
#pragma GCC unroll 4
            for (int h = 0; h < SY_GROUPS; h++) x[h] = *(const kd_v16 *)(Xt + ((size_t)h * R + r) * 16);
#pragma GCC unroll 4
            for (int j = 0; j < SY_TILE; j++) {
                float yj = y[(size_t)j * R + r];
#pragma GCC unroll 4
                for (int h = 0; h < SY_GROUPS; h++) a[h][j] += x[h] * yj;
            }
        }
#pragma GCC unroll 4
        for (int h = 0; h < SY_GROUPS; h++) {
            kd_v16 *l = (kd_v16 *)(L + (size_t)h * lstride + (size_t)i0 * 16);
#pragma GCC unroll 4
            for (int j = 0; j < SY_TILE; j++) {
                l[j] = a[h][j];
                SY_MAX16(m[h], a[h][j]);
            }
        }
    }
    for (int h = 0; h < SY_GROUPS; h++) *(kd_v16 *)(mx + (size_t)h * 16) = m[h];
}

/* One group: L[i] (logits of items i < I) becomes W[i] = expf(L[i] - mx), in place, and
 * ck[b] = sum_{i < 32 b} W[i] (in double, in item order, per lane) for b = 0..nb-1, and
 * ck[nb] = the whole sum (nb = ceil(I / 32)). */
KD_CLONES static void group_weights(float *L, uint32_t I, const float *mx, double *ck)
{
    kd_v16 m = *(const kd_v16 *)mx;
    kd_v8d c0 = { 0 }, c1 = { 0 };
    uint32_t nb = (I + SY_CK - 1) / SY_CK;
    for (uint32_t b = 0; b < nb; b++) {
        *(kd_v8d *)(ck + (size_t)b * 16) = c0;
        *(kd_v8d *)(ck + (size_t)b * 16 + 8) = c1;
        uint32_t end = b * SY_CK + SY_CK < I ? b * SY_CK + SY_CK : I;
        for (uint32_t i = b * SY_CK; i < end; i++) {
            kd_v16 *li = (kd_v16 *)(L + (size_t)i * 16), d = *li - m;
            kd_v8f dlo, dhi;
            memcpy(&dlo, &d, 32);
            memcpy(&dhi, (float *)&d + 8, 32);
            kd_v8d x0 = __builtin_convertvector(dlo, kd_v8d), x1 = __builtin_convertvector(dhi, kd_v8d);
            kd_v8f f0, f1;
            expf8(&x0, &f0);
            expf8(&x1, &f1);
            memcpy(li, &f0, 32);
            memcpy((float *)li + 8, &f1, 32);
            c0 += __builtin_convertvector(f0, kd_v8d);
            c1 += __builtin_convertvector(f1, kd_v8d);
        }
    }
    *(kd_v8d *)(ck + (size_t)nb * 16) = c0;
    *(kd_v8d *)(ck + (size_t)nb * 16 + 8) = c1;
}

KD_CLONES void kd_synth_expf(const float *x, float *w, size_t n)
{
    for (size_t k = 0; k < n; k += 8) {
        kd_v8f f;
        memcpy(&f, x + k, 32);
        kd_v8d d = __builtin_convertvector(f, kd_v8d);
        expf8(&d, &f);
        memcpy(w + k, &f, 32);
    }
}

/* user u's draws, as synth_thread makes them, from its lane of W and ck */
static void draw_user(const kd_synth_params *p, uint32_t u, const float *W, const double *ck, int lane,
                      uint8_t *taken, uint32_t *chosen, double *cdf, kd_pair *out)
{
    uint32_t I = p->items, nb = (I + SY_CK - 1) / SY_CK;
    kd_rng rng = kd_rng_seed(kd_key(p->seed, 0x55534552ULL /* "USER" */, u));
    uint32_t n = user_count(p, &rng);
    uint32_t got = 0, rejects = 0;
    int full = 0; /* 0: the first CDF (nothing taken), through ck; 1: cdf[] after a rebuild */
    double total = ck[(size_t)nb * 16 + lane];
    while (got < n) {
        if (rejects > 4 * n + 64) {
            cdf[0] = 0;
            for (uint32_t i = 0; i < I; i++)
                cdf[i + 1] = cdf[i] + (taken[i] ? 0.0 : (double)W[(size_t)i * 16 + lane]);
            total = cdf[I];
            full = 1;
            rejects = 0;
        }
        uint32_t item;
        if (kd_rng_unif(&rng) < p->noise) {
            item = kd_rng_below(&rng, I);
        } else {
            double x = kd_rng_unif(&rng) * total;
            uint32_t a = 0, b;
            if (full) {
                b = I; /* first i with cdf[i+1] > x */
                while (a < b) {
                    uint32_t mid = a + (b - a) / 2;
                    if (cdf[mid + 1] > x) b = mid; else a = mid + 1;
                }
            } else {
                b = nb; /* first block whose end is > x, then the item inside it */
                while (a < b) {
                    uint32_t mid = a + (b - a) / 2;
                    if (ck[(size_t)(mid + 1) * 16 + lane] > x) b = mid; else a = mid + 1;
                }
                if (a < nb) {
                    double c = ck[(size_t)a * 16 + lane];
                    uint32_t i = a * SY_CK, end = i + SY_CK < I ? i + SY_CK : I;
                    for (; i < end; i++) {
                        c += (double)W[(size_t)i * 16 + lane];
                        if (c > x) break;
                    }
                    a = i;
                } else {
                    a = I;
                }
            }
            item = a < I ? a : I - 1;
        }
        if (taken[item]) {
            ++rejects;
            continue;
        }
        taken[item] = 1;
        chosen[got++] = item;
    }
    for (uint32_t k = 0; k < n; k++) {
        out[k] = (kd_pair){ u, chosen[k] };
        taken[chosen[k]] = 0;
    }
}

typedef struct block_job {
    const kd_synth_params *p;
    const float *X, *Y, *lp; /* X: (users, rank) scaled; Y: (ipad, rank); lp: (ipad) */
    const uint64_t *off;
    kd_pair *pairs;
    uint32_t ipad;
    int failed;
} block_job;

static void block_thread(void *ctx, int t, int T)
{
    block_job *j = ctx;
    const kd_synth_params *p = j->p;
    uint32_t I = p->items, R = p->rank, G = SY_GROUPS, nb = (I + SY_CK - 1) / SY_CK;
    size_t lstride = (size_t)j->ipad * 16;
    float *Xt = NULL, *L = NULL, *mx = NULL;
    double *ck = NULL, *cdf = kd_alloc_array((uint64_t)I + 1, 8);
    uint8_t *taken = calloc(I, 1);
    uint32_t *chosen = kd_alloc_array(I, 4);
    if (posix_memalign((void **)&Xt, 64, (size_t)G * R * 64) || posix_memalign((void **)&L, 64, G * lstride * 4) ||
        posix_memalign((void **)&mx, 64, (size_t)G * 64) || posix_memalign((void **)&ck, 64, ((size_t)nb + 1) * 128) ||
        !cdf || !taken || !chosen) {
        j->failed = 1;
        goto done;
    }
    unsigned long long lo, hi;
    kd_par_range(p->users, t, T, &lo, &hi);
    for (uint64_t u0 = lo; u0 < hi; u0 += (uint64_t)G * SY_LANES) {
        uint32_t nu = hi - u0 < (uint64_t)G * SY_LANES ? (uint32_t)(hi - u0) : G * SY_LANES;
        for (uint32_t g = 0; g < G; g++) /* users past nu are zeros */
            for (uint32_t r = 0; r < R; r++)
                for (uint32_t l = 0; l < SY_LANES; l++) {
                    uint32_t k = g * SY_LANES + l;
                    Xt[((size_t)g * R + r) * 16 + l] = k < nu ? j->X[(u0 + k) * R + r] : 0.0f;
                }
        block_logits(Xt, j->Y, j->lp, R, j->ipad, lstride, L, mx);
        for (uint32_t g = 0; g * SY_LANES < nu; g++) {
            float *W = L + g * lstride;
            group_weights(W, I, mx + (size_t)g * 16, ck);
            for (uint32_t l = 0; l < SY_LANES && g * SY_LANES + l < nu; l++) {
                uint64_t u = u0 + g * SY_LANES + l;
                draw_user(p, (uint32_t)u, W, ck, (int)l, taken, chosen, cdf, j->pairs + j->off[u]);
            }
        }
    }
done:
    free(Xt); free(L); free(mx); free(ck); free(cdf); free(taken); free(chosen);
}

/* The blocked path keeps the logits of SY_GROUPS x 16 users per thread: past SY_MAX_BLOCK
 * bytes (items beyond ~1M) the reference path, which needs 17 bytes per item, is used. */
#define SY_MAX_BLOCK (256u << 20)

int kd_synth_generate(kd_dataset *d, const kd_synth_params *p, kd_model *truth, kd_err *e)
{
    if (kd_synth_check(p, e))
        return -1;
    memset(d, 0, sizeof *d);
    uint32_t U = p->users, I = p->items, R = p->rank;
    int threads = p->threads > 0 ? p->threads : kd_cli_default_threads();
    uint32_t ipad = (I + SY_TILE - 1) / SY_TILE * SY_TILE;  /* Y and lp padded for whole tiles */
    int groups = p->path != KD_SYNTH_REFERENCE && (uint64_t)SY_GROUPS * ipad * SY_LANES * 4 <= SY_MAX_BLOCK;
    kd_rng rng = kd_rng_seed(kd_key(p->seed, 0x53594e5448ULL /* "SYNTH" */, 0));
    float *cu = kd_alloc_array((uint64_t)p->clusters * R, 4), *ci = kd_alloc_array((uint64_t)p->clusters * R, 4);
    float *X = kd_alloc_array((uint64_t)U * R, 4), *Y = kd_calloc_array((uint64_t)ipad * R, 4);
    uint32_t I16 = (I + 15) & ~15u; /* rows of Yt padded with zeros for whole vectors */
    float *Yt = groups ? NULL : kd_calloc_array((uint64_t)I16 * R, 4);
    float *logpop = kd_calloc_array(I16 > ipad ? I16 : ipad, 4), *scale = kd_alloc_array(R, 4);
    uint32_t *perm = kd_alloc_array(I, 4);
    uint64_t npairs = 0;
    kd_pair *pairs = NULL;
    int ret = -1;
    if (!cu || !ci || !X || !Y || (!groups && !Yt) || !logpop || !scale || !perm) {
        kd_fail(e, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < (size_t)p->clusters * R; k++) cu[k] = (float)kd_rng_normal(&rng);
    for (size_t k = 0; k < (size_t)p->clusters * R; k++) ci[k] = (float)kd_rng_normal(&rng);
    if (latent(X, U, R, cu, p->clusters, p->cluster_share, &rng, threads, e) ||
        latent(Y, I, R, ci, p->clusters, p->cluster_share, &rng, threads, e))
        goto done;
    /* fold spectrum and beta into the user side: logit = <X'_u, Y_i> + log pop_i */
    double norm = 0;
    for (uint32_t r = 0; r < R; r++) norm += pow(p->decay, 2.0 * r);
    for (uint32_t r = 0; r < R; r++) scale[r] = (float)(p->beta * pow(p->decay, r) / sqrt(norm));
    for (uint32_t u = 0; u < U; u++)
        for (uint32_t r = 0; r < R; r++) X[(size_t)u * R + r] *= scale[r];
    if (!groups)
        for (uint32_t i = 0; i < I; i++)
            for (uint32_t r = 0; r < R; r++) Yt[(size_t)r * I16 + i] = Y[(size_t)i * R + r];
    if (truth) {
        if (kd_model_alloc(truth, U, I, R, e))
            goto done;
        for (uint32_t u = 0; u < U; u++)
            memcpy(truth->P + (size_t)u * truth->stride, X + (size_t)u * R, (size_t)R * 4);
        for (uint32_t i = 0; i < I; i++)
            memcpy(truth->Q + (size_t)i * truth->stride, Y + (size_t)i * R, (size_t)R * 4);
    }
    for (uint32_t i = 0; i < I; i++) perm[i] = i;
    for (uint32_t k = I; k > 1; k--) {
        uint32_t j = kd_rng_below(&rng, k), t = perm[k - 1];
        perm[k - 1] = perm[j];
        perm[j] = t;
    }
    for (uint32_t k = 0; k < I; k++) logpop[perm[k]] = (float)(-p->zipf * log(1.0 + k));
    if (truth)
        memcpy(truth->bi, logpop, (size_t)I * 4);

    /* every user has its own random stream (seed, user): users can be drawn in parallel
     * and the dataset does not depend on the thread count */
    uint64_t *off = kd_alloc_array((uint64_t)U + 1, 8);
    if (!off) {
        kd_fail(e, "out of memory");
        goto done;
    }
    off[0] = 0;
    for (uint32_t u = 0; u < U; u++) {
        kd_rng ur = kd_rng_seed(kd_key(p->seed, 0x55534552ULL /* "USER" */, u));
        off[u + 1] = off[u] + user_count(p, &ur);
    }
    free(pairs);
    pairs = kd_alloc_array(off[U] ? off[U] : 1, sizeof *pairs);
    if (!pairs) {
        free(off);
        kd_fail(e, "out of memory");
        goto done;
    }
    int failed;
    if (groups) {
        for (uint32_t i = I; i < ipad; i++) logpop[i] = -INFINITY; /* padding never wins the max */
        block_job job = { .p = p, .X = X, .Y = Y, .lp = logpop, .off = off, .pairs = pairs, .ipad = ipad };
        failed = kd_par_run(threads, block_thread, &job, e) || job.failed;
    } else {
        synth_job job = { .p = p, .X = X, .Yt = Yt, .logpop = logpop, .off = off, .pairs = pairs, .I16 = I16 };
        failed = kd_par_run(threads, synth_thread, &job, e) || job.failed;
    }
    if (failed) {
        free(off);
        if (!e->code) kd_fail(e, "out of memory");
        goto done;
    }
    npairs = off[U];
    free(off);
    d->n_users = U;
    d->n_items = I;
    d->user_ids = kd_alloc_array(U, 8);
    d->item_ids = kd_alloc_array(I, 8);
    if (!d->user_ids || !d->item_ids) {
        kd_fail(e, "out of memory");
        goto done;
    }
    for (uint32_t u = 0; u < U; u++) d->user_ids[u] = u;
    for (uint32_t i = 0; i < I; i++) d->item_ids[i] = i;
    kd_csr all;
    if (kd_csr_from_pairs(&all, U, I, pairs, npairs, e))
        goto done;
    free(pairs);
    pairs = NULL;
    if (kd_split_random(d, &all, p->test_ratio, p->valid_ratio, p->seed, e))
        goto done;
    ret = 0;
done:
    if (ret) {
        kd_dataset_free(d);
        if (truth) kd_model_free(truth);
    }
    free(cu); free(ci); free(X); free(Y); free(Yt); free(logpop); free(scale); free(perm); free(pairs);
    return ret;
}
