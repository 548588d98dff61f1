/* kd_metrics: top-K accuracy of one user's ranked list against that user's held-out items.
 *
 * With rel_r = 1 if the item at rank r (0-based) is held out, T = number held out:
 *   Recall@K    = sum_{r<K} rel_r / T
 *   Precision@K = sum_{r<K} rel_r / K
 *   HitRate@K   = 1 if any rel_r = 1 for r < K, else 0
 *   NDCG@K      = DCG / IDCG, DCG = sum_{r<K} rel_r / log2(r + 2),
 *                 IDCG = sum_{r < min(K, T)} 1 / log2(r + 2)
 *   MRR@K       = 1 / (r + 1) for the first r < K with rel_r = 1, else 0
 *   MAP@K       = sum_{r<K} rel_r * Precision@(r+1) / min(K, T)
 */
#ifndef KD_METRICS_H
#define KD_METRICS_H

#include <stdint.h>

enum kd_metric { KD_M_RECALL, KD_M_NDCG, KD_M_PRECISION, KD_M_HITRATE, KD_M_MRR, KD_M_MAP, KD_N_METRICS };

extern const char *const kd_metric_names[KD_N_METRICS]; /* "recall", "ndcg", ... */

/* Parses "ndcg@10" into metric and K; -1 if not of that form. */
int kd_metric_parse(const char *s, int *metric, uint32_t *k);

/* Fills out[m * nk + x] with metric m at K = ks[x] for a ranked list of n items
 * (n may be shorter than the largest K), held-out items in sorted `truth` (T > 0). */
void kd_metrics_user(const uint32_t *ranked, uint32_t n, const uint32_t *truth, uint32_t T,
                     const uint32_t *ks, int nk, double *out);

#endif
