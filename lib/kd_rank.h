/* kd_rank: score every item for a user and select the top K, excluding items the user
 * already has (train, and valid when evaluating on test).
 *
 * Items are packed once per model into panels of 64 items, [panel][1 + dim][64]: row 0
 * holds the 64 item biases, rows 1..dim the embeddings, so one panel is a contiguous
 * stream and stays in L1 while a chunk of users is scored against it.  For top-K
 * (kd_ranker_init_ex, ordered) items go into the slots by descending score for the mean
 * user, so likely winners come first and raise each user's threshold early; results do
 * not depend on it.  Score rows are fastest unordered (slot = item: no scatter).  A register tile
 * of users x items (AVX-512: 6 users x 64 items in 24 zmm accumulators; AVX2: 6 x 16 in
 * 12 ymm) broadcasts one user coordinate and fuses it into the tile with FMA.
 *
 * Every score is ONE chain in one order, whichever tile, clone or thread computes it:
 *     s = bi[i] + bu[u];  for k = 0..dim-1: s = fma(P[u][k], Q[i][k], s)
 * with a correctly rounded fused multiply-add (the FMA instruction, or fmaf() on the
 * baseline clone), so an AVX-512, an AVX2 and a plain x86-64 machine rank identically;
 * kd_rank_score_ref is that chain written out.  (Before issue 13 scores were mul then
 * add, so the last bits of scores, and rarely a near-tie's order, changed then.)
 *
 * Top-K is fused with scoring: after each tile, one compare per register against the
 * user's current K-th score; only the few winners are checked against the user's sorted
 * exclusion rows (walked forward, items arrive in increasing order) and enter a small
 * reservoir, cut back to the K best by a quickselect when it fills (no score row is
 * written, no dense exclusion mask is built).
 * Order of results: score descending, ties broken by the lower item index.  Excluded
 * items never appear; a user with fewer than K candidates gets fewer results.
 *
 * The SIMD path is chosen at kd_ranker_init: the best the CPU runs, or the one named by
 * the environment variable KD_SIMD (avx512, avx2, generic), or kd_rank_force_isa().
 */
#ifndef KD_RANK_H
#define KD_RANK_H

#include <stdint.h>

#include "kd_csr.h"
#include "kd_model.h"

enum kd_isa { KD_ISA_GENERIC, KD_ISA_AVX2, KD_ISA_AVX512, KD_N_ISA };

#define KD_RANK_PANEL 64u /* items per packed panel */

typedef struct kd_ranker {
    const kd_model *m;
    uint32_t n_items, items_pad; /* items_pad = n_items rounded up to 32: score rows' stride */
    uint32_t dim, n_panels;      /* n_panels = ceil(n_items / 64) */
    size_t   panel_floats;       /* (1 + dim) * 64 */
    float   *panels;             /* (n_panels, 1 + dim, 64) in slot order; slots past n_items are 0 */
    uint32_t *slot_item;         /* (n_panels * 64) item in each slot, UINT32_MAX past n_items */
    int      isa;                /* enum kd_isa */
    int      ordered;            /* slots in mean-user order (else slot = item) */
} kd_ranker;

#define KD_RANK_BLOCK 64u /* most users kd_rank_score_block scores in one call */

/* Fails (kd_err) on out of memory, or when KD_SIMD names an unknown or unsupported path. */
int  kd_ranker_init(kd_ranker *r, const kd_model *m, kd_err *e); /* kd_ranker_init_ex(r, m, 0, e) */
int  kd_ranker_init_ex(kd_ranker *r, const kd_model *m, int ordered, kd_err *e);
void kd_ranker_free(kd_ranker *r);

/* The paths this CPU can run; the name of one ("avx512", "avx2", "generic"). */
int         kd_rank_isa_supported(int isa);
const char *kd_rank_isa_name(int isa);
/* Later kd_ranker_init calls use `isa` (tests run every clone this way); -1 restores
 * the default.  Returns -1, changing nothing, if the CPU cannot run it.  Not thread-safe:
 * call it while no ranker is being set up. */
int kd_rank_force_isa(int isa);

/* The reference: one score by the chain above, scalar fmaf (tests compare against it). */
float kd_rank_score_ref(const kd_model *m, uint32_t u, uint32_t i);

/* scores[0..items_pad) for user u (entries past n_items are left as they were). */
void kd_rank_score_user(const kd_ranker *r, uint32_t u, float *scores);
/* Scores of users [u0, u0+nu), nu <= KD_RANK_BLOCK, into out (nu, items_pad). */
void kd_rank_score_block(const kd_ranker *r, uint32_t u0, uint32_t nu, float *out);

/* Fused scoring and selection: for each users[x], x < nu, its up to K best items not in
 * row users[x] of any excl[0..nx) (sorted CSR rows; nx <= 2), into items/vals
 * (nu, K) in rank order, and their number into counts[x].  -1 if out of memory (a
 * selection buffer of about 2K entries per user of a 60-user chunk). */
int kd_rank_topk(const kd_ranker *r, const uint32_t *users, uint32_t nu, const kd_csr *const *excl, int nx,
                 uint32_t K, uint32_t *items, float *vals, uint32_t *counts);

/* Selection on a given score row: up to K best items of scores[0..n) not listed in any
 * row excl[x][0..excl_len[x]).  Writes items/vals in rank order; returns how many.
 * Excluded entries of scores are overwritten with -inf (the caller's scratch). */
uint32_t kd_topk(float *scores, uint32_t n, const uint32_t *const *excl, const uint32_t *excl_len,
                 int nx, uint32_t K, uint32_t *items, float *vals);

/* The reference: full sort of all candidates (tests compare kd_topk against it). */
uint32_t kd_topk_naive(const float *scores, uint32_t n, const uint32_t *const *excl,
                       const uint32_t *excl_len, int nx, uint32_t K, uint32_t *items, float *vals);

/* The reservoir's cut and final sort on its 64-bit keys (a key is the score's bits
 * flipped so that ascending key = descending score, then the item: ascending key is rank
 * order), exposed for the unit tests.  kd_rank_select_keys reorders a[0..n), 1 <= k <= n,
 * so that a[0..k) hold the k smallest keys in some order and a[k-1] is the k-th smallest
 * (k > n only permutes a; the ranker calls it with k < n).  kd_rank_sort_keys sorts
 * a[0..n) ascending.  Equal keys are allowed (the ranker's never are: the item is in the
 * key), only slower.  Neither adds, drops or changes a key. */
void kd_rank_select_keys(uint64_t *a, uint32_t n, uint32_t k);
void kd_rank_sort_keys(uint64_t *a, uint32_t n);

#endif
