/* kd_bpr: the BPR loss as a kd_sgd task, and its negative sampler.
 *
 * A unit is one positive (u, i) drawn uniformly from the train interactions, with `neg`
 * negatives j drawn uniformly from the items u has not interacted with in train.  Each
 * triple contributes -log sigmoid(x), x = score(u,i) - score(u,j), as two records of
 * user u: (i, +g) and (j, -g) with g = sigmoid(-x).  An epoch is as many units as train
 * interactions (so neg triples per interaction).
 */
#ifndef KD_BPR_H
#define KD_BPR_H

#include <math.h>
#include <stdint.h>

#include "kd_dataset.h"
#include "kd_sgd.h"

typedef struct kd_bpr {
    const kd_dataset *d;
    uint32_t *row_of;   /* (nnz train) user of each train interaction */
    uint64_t *bits;     /* (n_users, words) train membership bitset, or NULL when too large */
    uint64_t  words;    /* 64-bit words per user row */
    uint32_t  neg;
    uint64_t  seed;
} kd_bpr;

/* Checks every user has at least `neg` items outside train; builds row_of, and a
 * membership bitset when users x items / 8 bytes <= 64 MiB (one load per rejection test
 * instead of a binary search; the draws, and so the results, are the same either way). */
int  kd_bpr_init(kd_bpr *b, const kd_dataset *d, uint32_t neg, uint64_t seed, kd_err *e);
void kd_bpr_free(kd_bpr *b);
kd_sgd_task kd_bpr_task(kd_bpr *b);

/* The user of a unit (kd_sgd_task.user_of); ctx is the kd_bpr. */
uint32_t kd_bpr_user_of(void *ctx, uint64_t epoch, uint64_t unit);

/* The sampling of unit `unit` in `epoch`: its user, positive and negatives (neg of them). */
void kd_bpr_sample(const kd_bpr *b, uint64_t epoch, uint64_t unit, uint32_t *u, uint32_t *i, uint32_t *js);

/* A uniform item not in the sorted row[0..len) of n_items, from the stream `key` (never
 * fails when len < n_items). */
uint32_t kd_sample_negative(const uint32_t *row, uint32_t len, uint32_t n_items, uint64_t key);

/* BPR on one margin x = s_ui - s_uj, in single precision: returns g = sigmoid(-x) and
 * adds softplus(-x) to *loss; stable for any x.  Every loss built on BPR uses this, so a
 * zero weight on its own term reproduces plain BPR bit for bit. */
static inline float kd_bpr_grad(float x, float *loss)
{
    float ex = expf(-fabsf(x));
    *loss += logf(1 + ex) + (x < 0 ? -x : 0.0f);
    return x > 0 ? ex / (1 + ex) : 1 / (1 + ex);
}

/* Plain BPR records for a triple with margin x = s_ui - s_uj (g = sigmoid(-x)). */
static inline void kd_bpr_records(kd_rec *r, uint32_t i, uint32_t j, float g)
{
    r[0] = (kd_rec){ i, g };
    r[1] = (kd_rec){ j, -g };
}

#endif
