/* kd_synth: synthetic implicit feedback drawn from a known low-rank model.
 *
 * Users and items get latent vectors in R^rank: a cluster centre plus individual noise,
 * with dimension r scaled by decay^r (a decaying spectrum, so a small model can learn the
 * head of it and a larger one more).  Each item has a Zipf-like popularity.  User u's
 * n_u items (lognormal around the mean) are drawn without replacement from
 *     p(i | u) ∝ exp(beta * <x_u, y_i> + log popularity_i)
 * by the Gumbel-top-k trick; with probability `noise` an interaction is replaced by a
 * uniformly random item.  Then each user's items are split into train/valid/test.
 */
#ifndef KD_SYNTH_H
#define KD_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "kd_dataset.h"
#include "kd_model.h"

typedef struct kd_synth_params {
    uint32_t users, items;
    double   mean;        /* mean interactions per user */
    double   spread;      /* sigma of log(n_u) */
    uint32_t rank;        /* true latent rank */
    double   decay;       /* spectrum: dimension r is scaled by decay^r */
    uint32_t clusters;    /* user and item clusters */
    double   cluster_share; /* share of latent variance explained by the cluster centre */
    double   beta;        /* affinity scale (inverse temperature) */
    double   zipf;        /* popularity exponent: log pop_i = -zipf * log(1 + popularity rank) */
    double   noise;       /* probability an interaction is uniform noise */
    double   test_ratio, valid_ratio;
    uint64_t seed;
    /* how to compute, not what: neither is in the provenance (the dataset is the same) */
    int      threads;     /* 0: all online CPUs */
    int      path;        /* KD_SYNTH_AUTO, or KD_SYNTH_REFERENCE (one user at a time, for tests) */
} kd_synth_params;

enum { KD_SYNTH_AUTO = 0, KD_SYNTH_REFERENCE = 1 };

/* The defaults documented in kd-gen --help. */
kd_synth_params kd_synth_defaults(void);

/* Checks ranges; usage error naming the bad parameter. */
int kd_synth_check(const kd_synth_params *p, kd_err *e);

/* Generates a dataset (ids are 0..n-1).  If truth is not NULL it receives the generating
 * model itself as MF parameters of dimension rank (P = scaled user factors, Q = item
 * factors, item bias = log popularity): the ceiling any learned model can reach. */
int kd_synth_generate(kd_dataset *d, const kd_synth_params *p, kd_model *truth, kd_err *e);

/* w[k] = expf(x[k]) for x[k] <= 0, n % 8 == 0, by the generator's vector expf (glibc's
 * algorithm, which must give libm's floats bit for bit; exposed for test_synth). */
void kd_synth_expf(const float *x, float *w, size_t n);

/* Writes every parameter as provenance lines (synth.*=...). */
int kd_synth_prov(const kd_synth_params *p, kd_buf *prov);

#endif
