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

/* x = sqrt(share) * centre[c] + sqrt(1 - share) * N(0, I), c uniform among clusters */
static void latent(float *x, uint32_t n, uint32_t rank, const float *centres, uint32_t clusters,
                   double share, kd_rng *r)
{
    double a = sqrt(share), b = sqrt(1 - share);
    for (uint32_t k = 0; k < n; k++) {
        const float *c = centres + (size_t)kd_rng_below(r, clusters) * rank;
        for (uint32_t d = 0; d < rank; d++)
            x[(size_t)k * rank + d] = (float)(a * c[d] + b * kd_rng_normal(r));
    }
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

int kd_synth_generate(kd_dataset *d, const kd_synth_params *p, kd_model *truth, kd_err *e)
{
    if (kd_synth_check(p, e))
        return -1;
    memset(d, 0, sizeof *d);
    uint32_t U = p->users, I = p->items, R = p->rank;
    kd_rng rng = kd_rng_seed(kd_key(p->seed, 0x53594e5448ULL /* "SYNTH" */, 0));
    float *cu = kd_alloc_array((uint64_t)p->clusters * R, 4), *ci = kd_alloc_array((uint64_t)p->clusters * R, 4);
    float *X = kd_alloc_array((uint64_t)U * R, 4), *Y = kd_alloc_array((uint64_t)I * R, 4);
    uint32_t I16 = (I + 15) & ~15u; /* rows of Yt padded with zeros for whole vectors */
    float *Yt = kd_calloc_array((uint64_t)I16 * R, 4), *logpop = kd_calloc_array(I16, 4);
    uint32_t *perm = kd_alloc_array(I, 4);
    uint64_t npairs = 0;
    kd_pair *pairs = NULL;
    int ret = -1;
    if (!cu || !ci || !X || !Y || !Yt || !logpop || !perm) {
        kd_fail(e, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < (size_t)p->clusters * R; k++) cu[k] = (float)kd_rng_normal(&rng);
    for (size_t k = 0; k < (size_t)p->clusters * R; k++) ci[k] = (float)kd_rng_normal(&rng);
    latent(X, U, R, cu, p->clusters, p->cluster_share, &rng);
    latent(Y, I, R, ci, p->clusters, p->cluster_share, &rng);
    /* fold spectrum and beta into the user side: logit = <X'_u, Y_i> + log pop_i */
    double norm = 0;
    for (uint32_t r = 0; r < R; r++) norm += pow(p->decay, 2.0 * r);
    for (uint32_t r = 0; r < R; r++) {
        float s = (float)(p->beta * pow(p->decay, r) / sqrt(norm));
        for (uint32_t u = 0; u < U; u++) X[(size_t)u * R + r] *= s;
    }
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
    synth_job job = { .p = p, .X = X, .Yt = Yt, .logpop = logpop, .off = off, .pairs = pairs, .I16 = I16 };
    if (kd_par_run(kd_cli_default_threads(), synth_thread, &job, e) || job.failed) {
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
    free(cu); free(ci); free(X); free(Y); free(Yt); free(logpop); free(perm); free(pairs);
    return ret;
}
