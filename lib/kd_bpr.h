/* kd_bpr: the BPR loss as a kd_sgd task, and its negative sampler.
 *
 * A unit is one positive (u, i) drawn uniformly from the train interactions, with `neg`
 * negatives j drawn uniformly from the items u has not interacted with in train.  Each
 * triple contributes -log sigmoid(x), x = score(u,i) - score(u,j), as two records of
 * user u: (i, +g) and (j, -g) with g = sigmoid(-x).  An epoch is as many units as train
 * interactions (so neg triples per interaction).
 *
 * Replica mode samples differently (kd_bpr_sample_part): each worker visits its users in
 * an order shuffled every epoch and, at each user, all of that user's train interactions
 * in a row (a run), so every interaction is a positive exactly once an epoch.  Why: on a
 * model larger than a core's cache, a uniform draw fetched a cold user row (and walked a
 * cold train row for every negative test) per sample; a run keeps p_u and the user's
 * item set in L1 for as many samples as the user has interactions.
 */
#ifndef KD_BPR_H
#define KD_BPR_H

#include <math.h>
#include <stdint.h>

#include "kd_dataset.h"
#include "kd_sgd.h"

typedef struct kd_bpr_worker kd_bpr_worker;   /* replica mode's per-worker state (kd_bpr.c) */

typedef struct kd_bpr {
    const kd_dataset *d;
    uint64_t  nnz;      /* train interactions */
    kd_pair  *pos;      /* (nnz train) each train interaction as (user, item): one load per draw */
    uint32_t  part_W;   /* replica mode: pos grouped by worker u % part_W (0: not built) */
    uint64_t *part_off; /* (part_W + 1) where each worker's positives start in part_pos */
    kd_pair  *part_pos; /* (nnz train) */
    kd_bpr_worker *part_work; /* (part_W) each worker's epoch order, cursor and item bitset */
    uint64_t *bits;     /* (n_users, words) train membership bitset, or NULL when too large */
    uint64_t  words;    /* 64-bit words per user row */
    uint32_t  neg;
    uint64_t  seed;
    /* a loss on BPR's units (kd_bpr_task_with): its records of a sampled row, instead of
     * BPR's own, and its context */
    double  (*records)(void *ctx, const kd_model *m, const uint32_t *ids, kd_rec *recs, void *scratch);
    void     *records_ctx;
} kd_bpr;

/* Checks every user has at least `neg` items outside train; builds row_of, and a
 * membership bitset when users x items / 8 bytes <= 64 MiB (one load per rejection test
 * instead of a binary search; the draws, and so the results, are the same either way). */
int  kd_bpr_init(kd_bpr *b, const kd_dataset *d, uint32_t neg, uint64_t seed, kd_err *e);
void kd_bpr_free(kd_bpr *b);
kd_sgd_task kd_bpr_task(kd_bpr *b);
/* The task of another loss on BPR's units (margin-mse): BPR's sampling, partition and
 * replica adapters, with records(ctx, m, ids, recs, scratch) turning each sampled row
 * ids = (u, i, j_1..j_neg) into its records and returning its loss.  Sets b->records. */
kd_sgd_task kd_bpr_task_with(kd_bpr *b, double (*records)(void *ctx, const kd_model *m, const uint32_t *ids,
                                                          kd_rec *recs, void *scratch), void *ctx);


/* The sampling of unit `unit` in `epoch`: its user, positive and negatives (neg of them). */
void kd_bpr_sample(const kd_bpr *b, uint64_t epoch, uint64_t unit, uint32_t *u, uint32_t *i, uint32_t *js);
/* Replica mode's sampling: the positives grouped by worker (user % W) once, then units
 * k0..k0+n-1 of worker w in `epoch`, as rows (u, i, j_1..j_neg) of ids.  Worker w's epoch
 * is its users (u % W == w) in an order shuffled for (seed, epoch, w), each user's train
 * items in a run, from an offset drawn for the user (a rotation of the sorted row), so
 * each of the worker's interactions is the positive of exactly one unit; negatives are
 * drawn as above, each unit from its own stream.  A unit depends on (seed, epoch, W, w,
 * k) only, so the units of a worker may be asked for in any order; asked for in order
 * (as the engine does) each costs O(1).  Calls for one worker must not overlap: the
 * worker keeps a cursor (the engine runs a worker on one thread at a time). */
int  kd_bpr_partition(kd_bpr *b, uint32_t W, kd_err *e);
void kd_bpr_sample_part(const kd_bpr *b, uint64_t epoch, uint32_t w, uint64_t k0, uint64_t n, uint32_t *ids);

/* A uniform item not in the sorted row[0..len) of n_items, from the stream `key` (never
 * fails when len < n_items). */
uint32_t kd_sample_negative(const uint32_t *row, uint32_t len, uint32_t n_items, uint64_t key);

/* e^-a for a >= 0, in single precision without libm: Cody-Waite reduction a = n ln2 - r,
 * the degree-6 Taylor polynomial of e^r on |r| <= ln2/2, and 2^-n put in the exponent bits.
 * Relative error < 3e-7 (tests/unit/test_train.c).  Inline, so the hot loop makes no
 * call (libm's expf and logf were 15% of a training profile), and the same bits on any
 * libm: only +, * and exact conversions. */
static inline float kd_exp_neg(float a)
{
    if (!(a < 87.0f)) return a != a ? a : 0.0f;   /* NaN stays NaN; e^-87 is below FLT_MIN */
    float n = (float)(int)(a * 1.44269504f + 0.5f);
    float r = (n * 0.693145752f - a) + n * 1.42860677e-6f;   /* ln2 split hi + lo */
    float r2 = r * r, r4 = r2 * r2;   /* Estrin's order: a shorter dependency chain */
    float p = ((1.0f + r) + r2 * (0.5f + r * (1.0f / 6))) + r4 * ((1.0f / 24 + r * (1.0f / 120)) + r2 * (1.0f / 720));
    union { uint32_t u; float f; } s = { (uint32_t)(127 - (int)n) << 23 };
    return p * s.f;
}

/* log(1 + t) for t in [0, 1]: 2 atanh(s), s = t / (2 + t) <= 1/3, odd series to s^13
 * (truncation < 1e-8), evaluated in Estrin's order: a short dependency chain matters more
 * than the operation count in the training loop. */
static inline float kd_log1p_unit(float t)
{
    float s = t / (2.0f + t), z = s * s, z2 = z * z, z4 = z2 * z2;
    float p = (1.0f + z * (1.0f / 3)) + z2 * (0.2f + z * (1.0f / 7)) + z4 * ((1.0f / 9 + z * (1.0f / 11)) + z2 * (1.0f / 13));
    return 2.0f * s * p;
}

/* BPR on one margin x = s_ui - s_uj, in single precision: returns g = sigmoid(-x) and
 * adds softplus(-x) to *loss; stable for any x.  Every loss built on BPR uses this, so a
 * zero weight on its own term reproduces plain BPR bit for bit. */
static inline float kd_bpr_grad(float x, float *loss)
{
    float ex = kd_exp_neg(fabsf(x));
    *loss += kd_log1p_unit(ex) + (x < 0 ? -x : 0.0f);
    return x > 0 ? ex / (1 + ex) : 1 / (1 + ex);
}

/* Plain BPR records for a triple with margin x = s_ui - s_uj (g = sigmoid(-x)). */
static inline void kd_bpr_records(kd_rec *r, uint32_t i, uint32_t j, float g)
{
    r[0] = (kd_rec){ i, g };
    r[1] = (kd_rec){ j, -g };
}

#endif
