/* kd_rank: score every item for a user and select the top K, excluding items the user
 * already has (train, and valid when evaluating on test).
 *
 * Scoring is a users x items matrix product against an item-major copy of the item
 * embeddings (Qt, dim x items_pad), so the inner loop broadcasts one user coordinate and
 * multiplies 16..32 items at a time.  Each score is accumulated over k = 0..dim-1 in order
 * and the biases added last, in both the one-user and the blocked path: they give the
 * same bits.  Order of results: score descending, ties broken by the lower item index.
 * Excluded items never appear; a user with fewer than K candidates gets fewer results.
 */
#ifndef KD_RANK_H
#define KD_RANK_H

#include <stdint.h>

#include "kd_csr.h"
#include "kd_model.h"

typedef struct kd_ranker {
    const kd_model *m;
    uint32_t n_items, items_pad; /* items_pad = n_items rounded up to 32 */
    float   *Qt;                 /* (dim, items_pad) item embeddings, item-major; pad = 0 */
    float   *bi;                 /* (items_pad) item biases; pad = 0 */
} kd_ranker;

#define KD_RANK_BLOCK 64u /* users scored together by kd_rank_score_block */

int  kd_ranker_init(kd_ranker *r, const kd_model *m, kd_err *e);
void kd_ranker_free(kd_ranker *r);

/* scores[0..items_pad) for user u (entries past n_items are padding). */
void kd_rank_score_user(const kd_ranker *r, uint32_t u, float *scores);
/* Scores of users [u0, u0+nu), nu <= KD_RANK_BLOCK, into out (nu, items_pad). */
void kd_rank_score_block(const kd_ranker *r, uint32_t u0, uint32_t nu, float *out);

/* Up to K best items of scores[0..n) not listed in any row excl[x][0..excl_len[x]).
 * Writes items/vals in rank order; returns how many.  Excluded entries of scores are
 * overwritten with -inf (the caller's scratch). */
uint32_t kd_topk(float *scores, uint32_t n, const uint32_t *const *excl, const uint32_t *excl_len,
                 int nx, uint32_t K, uint32_t *items, float *vals);

/* The reference: full sort of all candidates (tests compare kd_topk against it). */
uint32_t kd_topk_naive(const float *scores, uint32_t n, const uint32_t *const *excl,
                       const uint32_t *excl_len, int nx, uint32_t K, uint32_t *items, float *vals);

#endif
