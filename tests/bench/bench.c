/* bench: the machine's and kdrec's kernels' speed, for make bench (never in the tests).
 *   bench format MODEL    compression with and without byte-shuffle, decode MB/s
 *   bench peak            the FMA rate of one and two cores (24 independent zmm chains)
 *   bench rank U I D [F1 F2]  scoring GFLOP/s per SIMD path, 1 and 2 threads, against floors
 *   bench eval DATA MODEL [LABEL F1 F2]  full evaluation users/s (vs the pre-issue-13 scheme),
 *                         kernel GFLOP/s on real data vs floors, latency vs stream
 */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h"
#include "kd_eval.h"
#include "kd_par.h"
#include "kd_rank.h"
#include "kd_rng.h"
#include "kd_vec.h"

/* The FMA rate one core sustains: 24 independent zmm accumulators (FMA latency x ports
 * needs 8 on Zen 4/5; 24 leaves no doubt), each updated by a dependent FMA chain. */
__attribute__((target("avx512f,fma"))) static double peak_fma(long iters)
{
    __m512 a[24], x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < 24; k++) a[k] = _mm512_set1_ps((float)k * 1e-3f);
    double t0 = kd_now();
    for (long i = 0; i < iters; i++) {
        _Pragma("GCC unroll 24")
        for (int k = 0; k < 24; k++) a[k] = _mm512_fmadd_ps(a[k], x, y);
    }
    double t = kd_now() - t0;
    float s = 0;
    for (int k = 0; k < 24; k++) s += _mm512_reduce_add_ps(a[k]);
    if (s == 12345) puts("");
    return (double)iters * 24 * 16 * 2 / t / 1e9;
}

static void peak_thread(void *ctx, int t, int T)
{
    (void)T;
    ((double *)ctx)[t] = peak_fma(20000000);
}

static int cmd_peak(void)
{
    double one[1], two[2];
    kd_err e;
    if (!kd_rank_isa_supported(KD_ISA_AVX512)) {
        puts("FMA peak: needs AVX-512F (not on this CPU), skipped");
        return 0;
    }
    kd_par_run(1, peak_thread, one, &e);
    kd_par_run(2, peak_thread, two, &e);
    printf("FMA peak (24 independent zmm chains): 1 core %.1f GFLOP/s, 2 cores %.1f GFLOP/s\n", one[0], two[0] + two[1]);
    return 0;
}

static int cmd_format(const char *path)
{
    kd_err e;
    kd_art *a;
    if (kd_art_load(path, 0, &a, &e)) { fprintf(stderr, "bench: %s\n", e.msg); return 1; }
    uint64_t raw = 0;
    for (uint32_t k = 0; k < a->n; k++) raw += a->sec[k].bytes;
    for (int level = 1; level <= 9; level += 5) {
        kd_buf on = { 0 }, off = { 0 };
        kd_art_encode_ex(a, level, 1, &on, &e);
        kd_art_encode_ex(a, level, 0, &off, &e);
        printf("model %s, zlib %d: raw %llu B, shuffled %zu B (%.3fx), plain %zu B (%.3fx): shuffle saves %.1f%%\n", path,
               level, (unsigned long long)raw, on.len, (double)raw / on.len, off.len, (double)raw / off.len,
               100.0 * (1 - (double)on.len / off.len));
        if (level == 6 || level == 1) {
            /* decode throughput: parse (inflate + unshuffle + verify) repeatedly */
            double t0 = kd_now();
            int reps = 0;
            while (kd_now() - t0 < 0.5) {
                kd_art *b;
                kd_art_parse(on.p, on.len, "bench", &b, &e);
                kd_art_free(b);
                reps++;
            }
            printf("  decode (verify checksums, inflate, unshuffle): %.0f MB/s of raw data\n",
                   raw * (double)reps / (kd_now() - t0) / 1e6);
        }
        kd_buf_free(&on);
        kd_buf_free(&off);
    }
    kd_art_free(a);
    return 0;
}

/* ---- scoring kernels on a random model: into score rows, and fused with top-K */

typedef struct rank_job {
    const kd_ranker *rk;
    uint32_t users, K;
    int fused;
} rank_job;

static void rank_thread(void *ctx, int t, int T)
{
    rank_job *j = ctx;
    unsigned long long lo, hi;
    kd_par_range(j->users / 60, t, T, &lo, &hi);
    if (j->fused) {
        uint32_t users[60], counts[60], *items = malloc((size_t)60 * j->K * 4);
        float *vals = malloc((size_t)60 * j->K * 4);
        for (unsigned long long b = lo; b < hi; b++) {
            for (uint32_t x = 0; x < 60; x++) users[x] = (uint32_t)b * 60 + x;
            if (kd_rank_topk(j->rk, users, 60, NULL, 0, j->K, items, vals, counts)) break;
        }
        free(items); free(vals);
        return;
    }
    float *out = aligned_alloc(64, (size_t)60 * j->rk->items_pad * 4);
    for (unsigned long long b = lo; b < hi; b++) kd_rank_score_block(j->rk, (uint32_t)b * 60, 60, out);
    free(out);
}

/* GFLOP/s of scoring U users x I items at dim D on T threads (the best of 3 runs) */
static double rank_rate(const kd_ranker *rk, uint32_t U, int T, int fused)
{
    kd_err e;
    rank_job j = { rk, U, 20, fused };
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = kd_now();
        kd_par_run(T, rank_thread, &j, &e);
        double t = kd_now() - t0, f = 2.0 * (U / 60 * 60) * (double)rk->n_items * rk->dim / t / 1e9;
        if (f > best) best = f;
    }
    return best;
}

static int cmd_rank(uint32_t U, uint32_t I, uint32_t D, double floor1, double floor2)
{
    kd_err e;
    kd_model m;
    if (kd_model_alloc(&m, U, I, D, &e)) return 1;
    kd_model_init_normal(&m, 1, 0.1f);
    for (int isa = KD_N_ISA - 1; isa > KD_ISA_GENERIC; isa--) {
        kd_ranker rk, ro; /* slot = item for score rows; mean-user order for top-K, as kd_evaluate */
        if (kd_rank_force_isa(isa) || kd_ranker_init(&rk, &m, &e)) continue;
        if (kd_ranker_init_ex(&ro, &m, 1, &e)) return 1;
        for (int T = 1; T <= 2; T++) {
            double fl = T == 1 ? floor1 : floor2, rows = rank_rate(&rk, U, T, 0), fused = rank_rate(&ro, U, T, 1);
            printf("scoring %u x %u at D=%u, %s, %d thread(s): %6.1f GFLOP/s into score rows, %6.1f fused with top-20",
                   U, I, D, kd_rank_isa_name(isa), T, rows, fused);
            if (fl > 0 && isa == KD_ISA_AVX512)
                printf("  (floor: 70%% of sgemm = %.1f: rows %s, fused %s)", fl, rows >= fl ? "met" : "NOT met",
                       fused >= fl ? "met" : "NOT met");
            printf("\n");
        }
        kd_ranker_free(&rk);
        kd_ranker_free(&ro);
    }
    kd_rank_force_isa(-1);
    kd_model_free(&m);
    return 0;
}

/* ---- the evaluation before issue 13, kept here only to be measured against in the
 * same run: item-major Qt, an 8 x 32 mul-then-add tile into a dense 64-user score
 * block, then kd_topk (excluded items overwritten with -inf) and the metrics. */

typedef struct old_eval {
    const kd_model *m;
    const kd_dataset *d;
    uint32_t items_pad, kmax;
    float *Qt, *bi;
    double part[2];
} old_eval;

__attribute__((target("avx512f"))) static void old_score_block(const old_eval *o, uint32_t u0, uint32_t nu, float *out)
{
    const kd_model *m = o->m;
    for (uint32_t g = 0; g < nu; g += 8)
        for (uint32_t i0 = 0; i0 < o->items_pad; i0 += 32) {
            uint32_t n = nu - g < 8 ? nu - g : 8;
            kd_v16 c[8][2];
            for (uint32_t u = 0; u < 8; u++) c[u][0] = c[u][1] = (kd_v16){ 0 };
            const float *q = o->Qt + i0;
            for (uint32_t k = 0; k < m->dim; k++, q += o->items_pad) {
                kd_v16 q0 = *(const kd_v16 *)q, q1 = *(const kd_v16 *)(q + 16);
                for (uint32_t u = 0; u < 8; u++) {
                    float pk = m->P[(size_t)(u0 + g + (u < n ? u : 0)) * m->stride + k];
                    c[u][0] += pk * q0;
                    c[u][1] += pk * q1;
                }
            }
            kd_v16 b0 = *(const kd_v16 *)(o->bi + i0), b1 = *(const kd_v16 *)(o->bi + i0 + 16);
            for (uint32_t u = 0; u < n; u++) {
                float bu = m->bu[u0 + g + u];
                *(kd_v16 *)(out + (size_t)(g + u) * o->items_pad + i0) = (c[u][0] + bu) + b0;
                *(kd_v16 *)(out + (size_t)(g + u) * o->items_pad + i0 + 16) = (c[u][1] + bu) + b1;
            }
        }
}

static void old_thread(void *ctx, int t, int T)
{
    old_eval *o = ctx;
    const kd_dataset *d = o->d;
    uint32_t ks[2] = { 10, 20 }, items[20];
    float vals[20], *scores = aligned_alloc(64, (size_t)64 * o->items_pad * 4);
    double out[KD_N_METRICS * 2], sum = 0;
    unsigned long long b0, b1;
    kd_par_range((d->n_users + 63) / 64, t, T, &b0, &b1);
    for (unsigned long long b = b0; b < b1; b++) {
        uint32_t u0 = (uint32_t)b * 64, nu = d->n_users - u0 < 64 ? d->n_users - u0 : 64;
        old_score_block(o, u0, nu, scores);
        for (uint32_t x = 0; x < nu; x++) {
            uint32_t u = u0 + x, T_u = kd_csr_len(&d->test, u);
            if (!T_u) continue;
            const uint32_t *ex[2] = { d->train.idx + d->train.indptr[u], d->valid.idx + d->valid.indptr[u] };
            uint32_t exl[2] = { kd_csr_len(&d->train, u), kd_csr_len(&d->valid, u) };
            uint32_t n = kd_topk(scores + (size_t)x * o->items_pad, d->n_items, ex, exl, 2, 20, items, vals);
            kd_metrics_user(items, n, d->test.idx + d->test.indptr[u], T_u, ks, 2, out);
            sum += out[0];
        }
    }
    o->part[t] = sum;
    free(scores);
}

/* users/s of the old scheme (2 threads), transposition included as kd_evaluate includes its packing */
static double old_users_per_s(const kd_model *m, const kd_dataset *d, uint32_t evaluated, kd_err *e)
{
    double t0 = kd_now();
    old_eval o = { .m = m, .d = d, .items_pad = (m->n_items + 31) & ~31u };
    o.Qt = aligned_alloc(64, ((size_t)m->dim + 1) * o.items_pad * 4);
    memset(o.Qt, 0, ((size_t)m->dim + 1) * o.items_pad * 4);
    o.bi = o.Qt + (size_t)m->dim * o.items_pad;
    for (uint32_t i = 0; i < m->n_items; i++) {
        for (uint32_t k = 0; k < m->dim; k++) o.Qt[(size_t)k * o.items_pad + i] = m->Q[(size_t)i * m->stride + k];
        o.bi[i] = m->bi[i];
    }
    kd_par_run(2, old_thread, &o, e);
    double t = kd_now() - t0;
    free(o.Qt);
    return evaluated / t;
}

/* ---- a real dataset and model: full evaluation, single-user latency, the stream floor */

__attribute__((target("avx512f"))) static float stream_avx512(const float *p, size_t n)
{
    __m512 a[8];
    for (int k = 0; k < 8; k++) a[k] = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 128) {
        _Pragma("GCC unroll 8")
        for (int k = 0; k < 8; k++) a[k] = _mm512_add_ps(a[k], _mm512_load_ps(p + i + 16 * k));
    }
    for (int k = 1; k < 8; k++) a[0] = _mm512_add_ps(a[0], a[k]);
    return _mm512_reduce_add_ps(a[0]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmd_evalfile(const char *dpath, const char *mpath, const char *label, double floor1, double floor2)
{
    kd_err e;
    kd_dataset d;
    kd_art *a;
    kd_model m;
    if (kd_dataset_load(&d, dpath, &e) || kd_art_load(mpath, 0, &a, &e) || kd_model_from_art(&m, a, &e)) {
        fprintf(stderr, "bench: %s\n", e.msg);
        return 1;
    }
    kd_art_free(a);
    kd_eval_opts o = { .ks = { 10, 20 }, .nk = 2, .split = KD_SPLIT_TEST, .threads = 2 };
    kd_eval_result r;
    double best = 0, old = 0;
    for (int rep = 0; rep < 3; rep++) { /* interleaved, best of 3 each */
        if (kd_evaluate(&m, &d, &o, &r, &e)) { fprintf(stderr, "bench: %s\n", e.msg); return 1; }
        double ups = r.users_eval / r.seconds, ou = old_users_per_s(&m, &d, r.users_eval, &e);
        if (ups > best) best = ups;
        if (ou > old) old = ou;
        if (rep < 2) kd_eval_result_free(&r);
    }
    printf("%s: full evaluation of %u users x %u items at D=%u, 2 threads, top-20 + exclusions + metrics: %.0f users/s "
           "(%.1f GFLOP/s); the scheme before issue 13, same run: %.0f users/s: %.2fx (floor 4x)\n",
           label, r.users_eval, d.n_items, m.dim, best, 2.0 * best * d.n_items * m.dim / 1e9, old, best / old);
    kd_eval_result_free(&r);
    /* the kernel's rate on this data, top-K and exclusions included, on 1 and 2 threads */
    for (int T = 1; T <= 2; T++) {
        double g = 0;
        o.threads = T;
        for (int rep = 0; rep < 2; rep++) {
            if (kd_evaluate(&m, &d, &o, &r, &e)) { fprintf(stderr, "bench: %s\n", e.msg); return 1; }
            double f = 2.0 * r.users_eval * (double)d.n_items * m.dim / r.seconds / 1e9;
            if (f > g) g = f;
            kd_eval_result_free(&r);
        }
        double fl = T == 1 ? floor1 : floor2;
        printf("%s: D=%u, %d thread(s): %.1f GFLOP/s of scoring, fused with top-20, exclusions and metrics", label, m.dim, T, g);
        if (fl > 0) printf("  (floor: 70%% of sgemm = %.1f: %s)", fl, g >= fl ? "met" : "NOT met");
        printf("\n");
    }
    /* single-user latency against streaming the same packed item bytes from where they
     * live between two requests (L3 here: the panels outgrow L2) */
    double *us;
    uint32_t n = kd_eval_latency(&m, &d, KD_SPLIT_TEST, 20, 3000, 1, &us, &e);
    qsort(us, n, sizeof *us, cmp_double);
    kd_ranker rk;
    kd_ranker_init(&rk, &m, &e);
    size_t nf = rk.n_panels * rk.panel_floats;
    double st[200];
    float sink = 0;
    if (kd_rank_isa_supported(KD_ISA_AVX512)) {
        for (int k = 0; k < 200; k++) {
            double t0 = kd_now();
            sink += stream_avx512(rk.panels, nf);
            st[k] = (kd_now() - t0) * 1e6;
        }
        qsort(st + 20, 180, sizeof *st, cmp_double);
        printf("%s: single-user latency (score + exclusions + top-20, %s) p50 %.1f us, p90 %.1f us; streaming the %.1f MB of "
               "packed items: p50 %.1f us (%.0f GB/s): latency = %.2fx the stream (floor 1.25x)%s\n",
               label, kd_rank_isa_name(rk.isa), us[n / 2], us[n * 9 / 10], nf * 4 / 1e6, st[20 + 90], nf * 4 / st[110] / 1e3,
               us[n / 2] / st[110], sink == 12345 ? " " : "");
    }
    free(us);
    kd_ranker_free(&rk);
    kd_model_free(&m);
    kd_dataset_free(&d);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "peak")) return cmd_peak();
    if (argc >= 3 && !strcmp(argv[1], "format")) return cmd_format(argv[2]);
    if (argc >= 5 && !strcmp(argv[1], "rank"))
        return cmd_rank((uint32_t)atol(argv[2]), (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]),
                        argc >= 6 ? atof(argv[5]) : 0, argc >= 7 ? atof(argv[6]) : 0);
    if (argc >= 4 && !strcmp(argv[1], "eval"))
        return cmd_evalfile(argv[2], argv[3], argc >= 5 ? argv[4] : argv[2], argc >= 6 ? atof(argv[5]) : 0,
                            argc >= 7 ? atof(argv[6]) : 0);
    fprintf(stderr, "usage: bench peak | format MODEL | rank USERS ITEMS DIM [FLOOR1 FLOOR2] | eval DATASET MODEL [LABEL [FLOOR1 FLOOR2]]\n");
    return 2;
}
