/* kd_eval: full-ranking evaluation of a model on a split, and its timing.
 *
 * For every user with at least one item in the split: score all items, exclude the
 * user's train items (and valid items when evaluating on test), take the top max(K), and
 * compute every metric at every K (kd_metrics.h).  Means are over evaluated users, summed
 * in user order, so the result does not depend on the thread count.
 */
#ifndef KD_EVAL_H
#define KD_EVAL_H

#include <stdint.h>

#include "kd_dataset.h"
#include "kd_metrics.h"
#include "kd_model.h"

#define KD_MAX_KS 8

/* NONE: rank every user, excluding train items only, and keep the top lists (no metrics) */
enum kd_split { KD_SPLIT_TEST, KD_SPLIT_VALID, KD_SPLIT_NONE };

typedef struct kd_eval_opts {
    uint32_t ks[KD_MAX_KS];
    int      nk;
    int      split;        /* enum kd_split */
    int      threads;
    int      keep_per_user; /* fill per_user */
    uint32_t topk_keep;     /* if > 0, keep each user's top-N items and scores */
} kd_eval_opts;

typedef struct kd_eval_result {
    uint32_t users_eval, users_skipped;
    double   mean[KD_N_METRICS][KD_MAX_KS];
    double  *per_user;     /* (n_users, KD_N_METRICS * nk), NaN for skipped users */
    uint32_t *top_items;   /* (n_users, topk_keep) ranked items (UINT32_MAX past the end) */
    float   *top_scores;   /* (n_users, topk_keep) */
    double   seconds;      /* wall time of the whole evaluation */
} kd_eval_result;

/* Checks that model and dataset agree (users, items) and the split exists. */
int kd_eval_check(const kd_model *m, const kd_dataset *d, int split, const char *model_name, kd_err *e);

int  kd_evaluate(const kd_model *m, const kd_dataset *d, const kd_eval_opts *o, kd_eval_result *r, kd_err *e);
void kd_eval_result_free(kd_eval_result *r);

/* Every user's top M items (train items excluded) and scores, (n_users, M) each, by the
 * same kernel and threads as kd_evaluate; UINT32_MAX / NaN past a user's candidates. */
int kd_rank_topm(const kd_model *m, const kd_dataset *d, uint32_t M, int threads, uint32_t **items,
                 float **scores, kd_err *e);
/* The same into the caller's (n_users, M) arrays (a per-epoch ranking reuses them). */
int kd_rank_topm_into(const kd_model *m, const kd_dataset *d, uint32_t M, int threads, uint32_t *items,
                      float *scores, kd_err *e);
/* Only the users rows[0..nrows) (distinct, any order), into their rows of the caller's
 * (n_users, M) arrays; every other row is left as it was.  A listed row gets the bits
 * kd_rank_topm_into gives it, whatever the list and threads (a partial re-ranking).  A row
 * out of range or listed twice is a usage error; nrows = 0 changes nothing and costs nothing. */
int kd_rank_topm_rows(const kd_model *m, const kd_dataset *d, uint32_t M, const uint32_t *rows, uint32_t nrows,
                      int threads, uint32_t *items, float *scores, kd_err *e);

/* Single-user latency: times score + exclusion + top-K for `n` users chosen with `seed`
 * among those with items in the split (all of them if n = 0 or larger), after a warm-up.
 * Fills us[] (microseconds per user, unsorted) and returns how many were timed. */
uint32_t kd_eval_latency(const kd_model *m, const kd_dataset *d, int split, uint32_t K, uint32_t n,
                         uint64_t seed, double **us, kd_err *e);

#endif
