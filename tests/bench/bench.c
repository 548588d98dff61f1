/* bench: the machine's and kdrec's kernels' speed, for make bench (never in the tests).
 *   bench peak            single-precision peak: independent FMA / mul+add chains
 *   bench format MODEL    compression with and without byte-shuffle, decode MB/s
 *   bench rank U I D T    scoring GFLOP/s and full evaluation time on a random model
 */
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

typedef float v16 __attribute__((vector_size(64)));

/* 12 independent accumulator chains of 16 lanes: enough to cover FMA latency x ports */
__attribute__((target("avx512f,fma"))) static double peak_fma(long iters)
{
    v16 a[12], x = { 0 }, y = { 0 };
    for (int k = 0; k < 12; k++) a[k] = (v16){ 0 } + (float)k * 1e-3f;
    for (int l = 0; l < 16; l++) { x[l] = 0.999999f; y[l] = 1e-7f; }
    double t0 = kd_now();
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = __builtin_ia32_vfmaddps512_mask(a[k], x, y, (short)-1, 4);
    double t = kd_now() - t0;
    float s = 0;
    for (int k = 0; k < 12; k++) s += a[k][0];
    if (s == 12345) puts("");
    return (double)iters * 12 * 16 * 2 / t / 1e9;
}

__attribute__((target("avx512f"))) static double peak_muladd(long iters)
{
    v16 a[12], x = { 0 }, y = { 0 };
    for (int k = 0; k < 12; k++) a[k] = (v16){ 0 } + (float)k * 1e-3f;
    for (int l = 0; l < 16; l++) { x[l] = 0.999999f; y[l] = 1e-7f; }
    double t0 = kd_now();
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < 12; k++) a[k] = a[k] * x + y;
    double t = kd_now() - t0;
    float s = 0;
    for (int k = 0; k < 12; k++) s += a[k][0];
    if (s == 12345) puts("");
    return (double)iters * 12 * 16 * 2 / t / 1e9;
}

typedef struct peak_job { double fma, ma; } peak_job;
static void peak_thread(void *ctx, int t, int T)
{
    peak_job *p = ctx;
    (void)T;
    double f = peak_fma(20000000), m = peak_muladd(20000000);
    p[t].fma = f;
    p[t].ma = m;
}

static int cmd_peak(void)
{
    peak_job one[1], two[2];
    kd_err e;
    kd_par_run(1, peak_thread, one, &e);
    kd_par_run(2, peak_thread, two, &e);
    printf("peak single precision, 1 core:  %.1f GFLOP/s with FMA, %.1f GFLOP/s with separate mul+add (kdrec's kernels)\n",
           one[0].fma, one[0].ma);
    printf("peak single precision, 2 cores: %.1f GFLOP/s with FMA, %.1f GFLOP/s with mul+add\n",
           two[0].fma + two[1].fma, two[0].ma + two[1].ma);
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

typedef struct rank_job { const kd_ranker *rk; uint32_t users; double secs; } rank_job;
static void rank_thread(void *ctx, int t, int T)
{
    rank_job *j = ctx;
    float *out = aligned_alloc(64, (size_t)KD_RANK_BLOCK * j->rk->items_pad * 4);
    unsigned long long lo, hi;
    kd_par_range(j->users / KD_RANK_BLOCK, t, T, &lo, &hi);
    double t0 = kd_now();
    for (unsigned long long b = lo; b < hi; b++) kd_rank_score_block(j->rk, (uint32_t)b * KD_RANK_BLOCK, KD_RANK_BLOCK, out);
    if (t == 0) j->secs = kd_now() - t0;
    free(out);
}

static int cmd_rank(uint32_t U, uint32_t I, uint32_t D, int T)
{
    kd_err e;
    kd_model m;
    kd_dataset d = { 0 };
    if (kd_model_alloc(&m, U, I, D, &e)) return 1;
    kd_model_init_normal(&m, 1, 0.1f);
    kd_ranker rk;
    kd_ranker_init(&rk, &m, &e);
    for (int threads = 1; threads <= T; threads *= 2) {
        rank_job j = { &rk, U < 6400 ? U : 6400, 0 };
        kd_par_run(threads, rank_thread, &j, &e);
        double flops = 2.0 * (j.users / KD_RANK_BLOCK * KD_RANK_BLOCK) * (double)rk.items_pad * D;
        printf("scoring %u x %u at D=%u, %d thread(s): %.1f GFLOP/s\n", j.users, I, D, threads, flops / j.secs / 1e9);
    }
    /* a dataset of uniform random interactions: ~20 train, 5 test per user */
    kd_rng r = kd_rng_seed(3);
    kd_pair *tr = malloc((size_t)U * 20 * sizeof *tr), *te = malloc((size_t)U * 5 * sizeof *te);
    for (uint32_t u = 0; u < U; u++) {
        for (int k = 0; k < 20; k++) tr[(size_t)u * 20 + k] = (kd_pair){ u, kd_rng_below(&r, I) };
        for (int k = 0; k < 5; k++) te[(size_t)u * 5 + k] = (kd_pair){ u, kd_rng_below(&r, I) };
    }
    d.n_users = U;
    d.n_items = I;
    kd_csr_from_pairs(&d.train, U, I, tr, (uint64_t)U * 20, &e);
    kd_csr_from_pairs(&d.test, U, I, te, (uint64_t)U * 5, &e);
    kd_csr_empty(&d.valid, U, I, &e);
    kd_eval_opts o = { .ks = { 10, 20 }, .nk = 2, .split = KD_SPLIT_TEST, .threads = T };
    kd_eval_result res;
    double t0 = kd_now();
    kd_evaluate(&m, &d, &o, &res, &e);
    double t = kd_now() - t0;
    printf("full evaluation of %u users x %u items at D=%u on %d threads: %.2f s (%.0f users/s; %.1f GFLOP/s incl. top-K and metrics)\n",
           U, I, D, T, t, U / t, 2.0 * U * (double)I * D / t / 1e9);
    kd_eval_result_free(&res);
    free(tr); free(te);
    kd_csr_free(&d.train); kd_csr_free(&d.test); kd_csr_free(&d.valid);
    kd_ranker_free(&rk);
    kd_model_free(&m);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "peak")) return cmd_peak();
    if (argc >= 3 && !strcmp(argv[1], "format")) return cmd_format(argv[2]);
    if (argc >= 6 && !strcmp(argv[1], "rank"))
        return cmd_rank((uint32_t)atol(argv[2]), (uint32_t)atol(argv[3]), (uint32_t)atol(argv[4]), atoi(argv[5]));
    fprintf(stderr, "usage: bench peak | format MODEL | rank USERS ITEMS DIM THREADS\n");
    return 2;
}
