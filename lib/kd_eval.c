/* kd_eval: threaded full-ranking evaluation and single-user latency. */
#include "kd_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_par.h"
#include "kd_rank.h"
#include "kd_rng.h"

int kd_eval_check(const kd_model *m, const kd_dataset *d, int split, const char *model_name, kd_err *e)
{
    if (m->n_users != d->n_users || m->n_items != d->n_items)
        return kd_fail(e, "%s: model is %u users x %u items, the dataset %u x %u (a model for another dataset?)",
                       model_name, m->n_users, m->n_items, d->n_users, d->n_items);
    const kd_csr *s = split == KD_SPLIT_VALID ? &d->valid : &d->test;
    if (kd_csr_nnz(s) == 0)
        return kd_fail(e, "dataset has no %s split (no interactions in it)", split == KD_SPLIT_VALID ? "valid" : "test");
    return 0;
}

typedef struct eval_job {
    const kd_model *m;
    const kd_dataset *d;
    const kd_eval_opts *o;
    kd_ranker rk;
    uint32_t kmax;
    double *per_user;
    uint32_t *top_items;
    float *top_scores;
    int failed;
} eval_job;

#define EVAL_CHUNK 60u /* users handed to kd_rank_topk at once */

static void eval_thread(void *ctx, int t, int T)
{
    eval_job *j = ctx;
    const kd_dataset *d = j->d;
    const kd_csr *truth = j->o->split == KD_SPLIT_VALID ? &d->valid : &d->test;
    const kd_csr *excl[2] = { &d->train, &d->valid };
    int nk = j->o->nk, nm = KD_N_METRICS * nk, none = j->o->split == KD_SPLIT_NONE;
    int nx = j->o->split == KD_SPLIT_TEST ? 2 : 1;
    uint32_t K = j->kmax, users[EVAL_CHUNK], counts[EVAL_CHUNK], nu = 0;
    unsigned long long lo, hi;
    kd_par_range(d->n_users, t, T, &lo, &hi);
    uint32_t *items = malloc((size_t)EVAL_CHUNK * K * 4);
    float *vals = malloc((size_t)EVAL_CHUNK * K * 4);
    if (!items || !vals) {
        j->failed = 1;
        free(items); free(vals);
        return;
    }
    for (uint64_t u = lo; u < hi; u++) {
        /* gather users to evaluate; rank them when the chunk is full or the range ends */
        double *out = j->per_user + (size_t)u * nm;
        if (kd_csr_len(truth, (uint32_t)u) == 0 || none)
            for (int k = 0; k < nm; k++) out[k] = NAN;
        if (kd_csr_len(truth, (uint32_t)u) || none) users[nu++] = (uint32_t)u;
        if (nu < EVAL_CHUNK && u + 1 < hi) continue;
        if (kd_rank_topk(&j->rk, users, nu, excl, nx, K, items, vals, counts)) {
            j->failed = 1;
            break;
        }
        for (uint32_t x = 0; x < nu; x++) {
            uint32_t v = users[x], n = counts[x];
            const uint32_t *it = items + (size_t)x * K;
            const float *sc = vals + (size_t)x * K;
            if (!none)
                kd_metrics_user(it, n, truth->idx + truth->indptr[v], kd_csr_len(truth, v), j->o->ks, nk,
                                j->per_user + (size_t)v * nm);
            if (j->top_items) {
                uint32_t keep = j->o->topk_keep;
                for (uint32_t r = 0; r < keep; r++) {
                    j->top_items[(size_t)v * keep + r] = r < n ? it[r] : UINT32_MAX;
                    j->top_scores[(size_t)v * keep + r] = r < n ? sc[r] : NAN;
                }
            }
        }
        nu = 0;
    }
    free(items);
    free(vals);
}

int kd_evaluate(const kd_model *m, const kd_dataset *d, const kd_eval_opts *o, kd_eval_result *r, kd_err *e)
{
    memset(r, 0, sizeof *r);
    double t0 = kd_now();
    if ((o->nk < 1 && o->split != KD_SPLIT_NONE) || o->nk > KD_MAX_KS)
        return kd_fail_usage(e, "between 1 and %d values of K", KD_MAX_KS);
    eval_job j = { .m = m, .d = d, .o = o };
    for (int x = 0; x < o->nk; x++) {
        if (o->ks[x] == 0 || o->ks[x] > d->n_items)
            return kd_fail_usage(e, "K = %u is not in 1..%u (the number of items)", o->ks[x], d->n_items);
        if (o->ks[x] > j.kmax) j.kmax = o->ks[x];
    }
    if (o->topk_keep > j.kmax) j.kmax = o->topk_keep;
    int nm = KD_N_METRICS * o->nk;
    j.per_user = kd_alloc_array((uint64_t)d->n_users * (nm ? nm : 1), 8);
    if (o->topk_keep) {
        j.top_items = kd_alloc_array((uint64_t)d->n_users * o->topk_keep, 4);
        j.top_scores = kd_alloc_array((uint64_t)d->n_users * o->topk_keep, 4);
    }
    /* users without items in the split are never ranked: their rows must read as empty
     * (UINT32_MAX / NaN, as kd_eval.h promises), not as whatever malloc left there */
    if (j.top_items && j.top_scores)
        for (size_t x = 0; x < (size_t)d->n_users * o->topk_keep; x++) {
            j.top_items[x] = UINT32_MAX;
            j.top_scores[x] = NAN;
        }
    if (!j.per_user || (o->topk_keep && (!j.top_items || !j.top_scores)) || kd_ranker_init_ex(&j.rk, m, 1, e)) {
        free(j.per_user); free(j.top_items); free(j.top_scores);
        return e->code ? -1 : kd_fail(e, "out of memory");
    }
    int T = o->threads < 1 ? 1 : o->threads;
    if (kd_par_run(T, eval_thread, &j, e) || j.failed) {
        kd_ranker_free(&j.rk);
        free(j.per_user); free(j.top_items); free(j.top_scores);
        return e->code ? -1 : kd_fail(e, "out of memory");
    }
    kd_ranker_free(&j.rk);
    for (uint32_t u = 0; u < d->n_users; u++) {
        const double *v = j.per_user + (size_t)u * nm;
        if (nm == 0 || isnan(v[0])) {
            r->users_skipped++;
            continue;
        }
        r->users_eval++;
        for (int mi = 0; mi < KD_N_METRICS; mi++)
            for (int x = 0; x < o->nk; x++) r->mean[mi][x] += v[mi * o->nk + x];
    }
    for (int mi = 0; mi < KD_N_METRICS; mi++)
        for (int x = 0; x < o->nk; x++) r->mean[mi][x] = r->users_eval ? r->mean[mi][x] / r->users_eval : 0;
    if (o->keep_per_user) r->per_user = j.per_user;
    else free(j.per_user);
    r->top_items = j.top_items;
    r->top_scores = j.top_scores;
    r->seconds = kd_now() - t0;
    return 0;
}

void kd_eval_result_free(kd_eval_result *r)
{
    free(r->per_user);
    free(r->top_items);
    free(r->top_scores);
    memset(r, 0, sizeof *r);
}

/* kd_rank_topm's threads: each ranks its contiguous range of the rows -- every user, or
 * the list `rows` -- and pads the short lists.  All users go straight into the output
 * rows (kd_rank_topk writes (nu, M) in user order); listed rows, not adjacent in general,
 * are ranked a chunk at a time into the thread's buffer and copied to their rows.  A
 * user's list depends only on that user, so neither path nor chunking changes a bit. */
typedef struct topm_job {
    const kd_dataset *d;
    kd_ranker rk;
    uint32_t M;
    const uint32_t *rows; /* NULL: every user */
    uint64_t nrows;
    uint32_t *items;
    float *scores;
    int failed;
} topm_job;

#define TOPM_BLOCK 960u /* users per kd_rank_topk call: 16 of its chunks */
#define TOPM_ROWS  60u  /* listed rows per call: one of its chunks, so the buffer is small */

/* Pads user lists x < nu of (it, sc) past counts[x] with UINT32_MAX / NaN. */
static void topm_pad(uint32_t *it, float *sc, const uint32_t *counts, uint32_t nu, uint32_t M)
{
    for (uint32_t x = 0; x < nu; x++)
        for (uint32_t r = counts[x]; r < M; r++) {
            it[(size_t)x * M + r] = UINT32_MAX;
            sc[(size_t)x * M + r] = NAN;
        }
}

static void topm_thread(void *ctx, int t, int T)
{
    topm_job *j = ctx;
    const kd_csr *excl[1] = { &j->d->train };
    uint32_t users[TOPM_BLOCK], counts[TOPM_BLOCK], M = j->M, block = j->rows ? TOPM_ROWS : TOPM_BLOCK;
    uint32_t *buf_it = NULL;
    float *buf_sc = NULL;
    unsigned long long lo, hi;
    kd_par_range(j->nrows, t, T, &lo, &hi);
    if (j->rows && lo < hi) {
        buf_it = kd_alloc_array((uint64_t)TOPM_ROWS * M, 4);
        buf_sc = kd_alloc_array((uint64_t)TOPM_ROWS * M, 4);
        if (!buf_it || !buf_sc) {
            j->failed = 1;
            goto done;
        }
    }
    for (uint64_t x0 = lo; x0 < hi; x0 += block) {
        uint32_t nu = hi - x0 < block ? (uint32_t)(hi - x0) : block;
        for (uint32_t x = 0; x < nu; x++) users[x] = j->rows ? j->rows[x0 + x] : (uint32_t)(x0 + x);
        uint32_t *it = buf_it ? buf_it : j->items + (size_t)x0 * M;
        float *sc = buf_sc ? buf_sc : j->scores + (size_t)x0 * M;
        if (kd_rank_topk(&j->rk, users, nu, excl, 1, M, it, sc, counts)) {
            j->failed = 1;
            goto done;
        }
        topm_pad(it, sc, counts, nu, M);
        for (uint32_t x = 0; buf_it && x < nu; x++) {
            memcpy(j->items + (size_t)users[x] * M, it + (size_t)x * M, (size_t)M * 4);
            memcpy(j->scores + (size_t)users[x] * M, sc + (size_t)x * M, (size_t)M * 4);
        }
    }
done:
    free(buf_it);
    free(buf_sc);
}

/* Usage error unless 1 <= M <= the items (each entry point checks before any work) */
static int topm_check(const kd_dataset *d, uint32_t M, kd_err *e)
{
    if (M == 0 || M > d->n_items)
        return kd_fail_usage(e, "top-M = %u is not in 1..%u (the number of items)", M, d->n_items);
    return 0;
}

/* Ranks j's rows with `threads` threads (j->d, M, rows, output set; M checked). */
static int topm_run(topm_job *j, const kd_model *m, int threads, kd_err *e)
{
    if (kd_ranker_init_ex(&j->rk, m, 1, e)) return -1;
    int r = kd_par_run(threads < 1 ? 1 : threads, topm_thread, j, e);
    kd_ranker_free(&j->rk);
    if (r) return -1;
    return j->failed ? kd_fail(e, "out of memory") : 0;
}

int kd_rank_topm_into(const kd_model *m, const kd_dataset *d, uint32_t M, int threads, uint32_t *items,
                      float *scores, kd_err *e)
{
    if (topm_check(d, M, e)) return -1;
    topm_job j = { .d = d, .M = M, .nrows = d->n_users, .items = items, .scores = scores };
    return topm_run(&j, m, threads, e);
}

int kd_rank_topm_rows(const kd_model *m, const kd_dataset *d, uint32_t M, const uint32_t *rows, uint32_t nrows,
                      int threads, uint32_t *items, float *scores, kd_err *e)
{
    if (topm_check(d, M, e)) return -1;
    /* a row listed twice would have two threads write it at once (the same bits, but a
     * race): refused, at one bit a user of scratch */
    uint8_t *seen = nrows ? calloc((size_t)d->n_users / 8 + 1, 1) : NULL;
    if (nrows && !seen) return kd_fail(e, "out of memory (a row set of %u users)", d->n_users);
    for (uint32_t x = 0; x < nrows; x++) {
        uint32_t r = rows[x];
        const char *why = r >= d->n_users ? "is not a user" : seen[r >> 3] >> (r & 7) & 1 ? "is listed twice" : NULL;
        if (why) {
            free(seen);
            return kd_fail_usage(e, "row %u %s (%u users)", r, why, d->n_users);
        }
        seen[r >> 3] |= (uint8_t)(1u << (r & 7));
    }
    free(seen);
    /* nothing to rank (a caller re-ranking every R-th row lists none when R exceeds the
     * rows): the ranker's packing of the item matrix would be the whole cost */
    if (nrows == 0) return 0;
    topm_job j = { .d = d, .M = M, .rows = rows, .nrows = nrows, .items = items, .scores = scores };
    return topm_run(&j, m, threads, e);
}

int kd_rank_topm(const kd_model *m, const kd_dataset *d, uint32_t M, int threads, uint32_t **items,
                 float **scores, kd_err *e)
{
    *items = NULL;
    *scores = NULL;
    if (topm_check(d, M, e)) return -1;
    uint32_t *it = kd_alloc_array((uint64_t)d->n_users * M, 4);
    float *sc = kd_alloc_array((uint64_t)d->n_users * M, 4);
    if (!it || !sc) {
        free(it); free(sc);
        return kd_fail(e, "out of memory (top-%u lists of %u users)", M, d->n_users);
    }
    if (kd_rank_topm_into(m, d, M, threads, it, sc, e)) {
        free(it); free(sc);
        return -1;
    }
    *items = it;
    *scores = sc;
    return 0;
}

uint32_t kd_eval_latency(const kd_model *m, const kd_dataset *d, int split, uint32_t K, uint32_t n,
                         uint64_t seed, double **us, kd_err *e)
{
    *us = NULL;
    const kd_csr *truth = split == KD_SPLIT_VALID ? &d->valid : &d->test;
    kd_ranker rk;
    uint32_t *users = kd_alloc_array(d->n_users, 4), cnt = 0;
    if (!users) { kd_fail(e, "out of memory"); return 0; }
    for (uint32_t u = 0; u < d->n_users; u++)
        if (kd_csr_len(truth, u)) users[cnt++] = u;
    if (n && n < cnt) { /* a seeded sample, in random order */
        kd_rng r = kd_rng_seed(kd_key(seed, 0x4c4154ULL /* "LAT" */, 0));
        for (uint32_t k = 0; k < n; k++) {
            uint32_t j = k + kd_rng_below(&r, cnt - k), t = users[k];
            users[k] = users[j];
            users[j] = t;
        }
        cnt = n;
    }
    float *vals = kd_alloc_array(K ? K : 1, 4);
    uint32_t *items = kd_alloc_array(K ? K : 1, 4);
    double *t = kd_alloc_array(cnt ? cnt : 1, 8);
    if (!vals || !items || !t || kd_ranker_init_ex(&rk, m, 1, e)) {
        free(users); free(vals); free(items); free(t);
        if (!e->code) kd_fail(e, "out of memory");
        return 0;
    }
    const kd_csr *excl[2] = { &d->train, &d->valid };
    int nx = split == KD_SPLIT_TEST ? 2 : 1, oom = 0;
    for (int pass = 0; pass < 2; pass++) { /* pass 0 warms caches and branch predictors */
        uint32_t lim = pass == 0 ? (cnt < 200 ? cnt : 200) : cnt;
        for (uint32_t k = 0; k < lim; k++) {
            uint32_t got;
            double t0 = kd_now();
            oom |= kd_rank_topk(&rk, &users[k], 1, excl, nx, K, items, vals, &got) != 0;
            double t1 = kd_now();
            if (pass) t[k] = (t1 - t0) * 1e6;
        }
    }
    kd_ranker_free(&rk);
    if (oom) {
        free(t);
        t = NULL;
        cnt = 0;
        kd_fail(e, "out of memory");
    }
    free(vals); free(items); free(users);
    *us = t;
    return cnt;
}
