/* kd_metrics: Recall, NDCG, Precision, HitRate, MRR, MAP at several K in one pass. */
#include "kd_metrics.h"

#include "kd_csr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const kd_metric_names[KD_N_METRICS] = { "recall", "ndcg", "precision", "hitrate", "mrr", "map" };

int kd_metric_parse(const char *s, int *metric, uint32_t *k)
{
    const char *at = strchr(s, '@');
    if (!at) return -1;
    for (int m = 0; m < KD_N_METRICS; m++) {
        size_t n = strlen(kd_metric_names[m]);
        if ((size_t)(at - s) == n && !strncmp(s, kd_metric_names[m], n)) {
            char *end;
            unsigned long v = strtoul(at + 1, &end, 10);
            if (*end || v == 0 || v > 100000 || at[1] == '-' || at[1] == '+') return -1;
            *metric = m;
            *k = (uint32_t)v;
            return 0;
        }
    }
    return -1;
}

void kd_metrics_user(const uint32_t *ranked, uint32_t n, const uint32_t *truth, uint32_t T,
                     const uint32_t *ks, int nk, double *out)
{
    for (int x = 0; x < nk; x++) {
        uint32_t K = ks[x], lim = n < K ? n : K, hits = 0;
        double dcg = 0, idcg = 0, ap = 0, rr = 0;
        for (uint32_t r = 0; r < lim; r++)
            if (kd_sorted_has(truth, T, ranked[r])) {
                hits++;
                dcg += 1.0 / log2(r + 2.0);
                ap += (double)hits / (r + 1.0);
                if (rr == 0) rr = 1.0 / (r + 1.0);
            }
        uint32_t ideal = T < K ? T : K;
        for (uint32_t r = 0; r < ideal; r++) idcg += 1.0 / log2(r + 2.0);
        out[KD_M_RECALL * nk + x] = (double)hits / T;
        out[KD_M_NDCG * nk + x] = dcg / idcg;
        out[KD_M_PRECISION * nk + x] = (double)hits / K;
        out[KD_M_HITRATE * nk + x] = hits > 0;
        out[KD_M_MRR * nk + x] = rr;
        out[KD_M_MAP * nk + x] = ap / ideal;
    }
}
