/* kd_bpr: uniform positive and negative sampling, the BPR loss and its records. */
#include "kd_bpr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_rng.h"
#include "kd_vec.h"

uint32_t kd_sample_negative(const uint32_t *row, uint32_t len, uint32_t n_items, uint64_t key)
{
    /* rejection: expected 1/(1 - density) draws; bounded, then an exact fallback */
    for (uint64_t t = 0; t < 32; t++) {
        uint32_t j = kd_below(kd_rng_at(key, t), n_items);
        if (!kd_sorted_has(row, len, j)) return j;
    }
    /* the r-th item not in the row, walking the sorted row */
    uint32_t r = kd_below(kd_rng_at(key, 32), n_items - len), j = r;
    for (uint32_t k = 0; k < len && row[k] <= j; k++) j++;
    return j;
}

int kd_bpr_init(kd_bpr *b, const kd_dataset *d, uint32_t neg, uint64_t seed, kd_err *e)
{
    b->d = d;
    b->neg = neg;
    b->seed = seed;
    b->pos = NULL;
    b->part_W = 0;
    b->part_off = NULL;
    b->part_pos = NULL;
    b->records = NULL;
    b->records_ctx = NULL;
    uint64_t nnz = b->nnz = kd_csr_nnz(&d->train);
    if (nnz == 0)
        return kd_fail(e, "dataset has no train interactions");
    if (neg == 0)
        return kd_fail_usage(e, "--neg must be at least 1");
    for (uint32_t u = 0; u < d->n_users; u++) {
        uint32_t len = kd_csr_len(&d->train, u);
        if (len && d->n_items - len < neg)
            return kd_fail(e, "user %llu has %u train items of %u: fewer than --neg %u negatives are left",
                           (unsigned long long)d->user_ids[u], len, d->n_items, neg);
    }
    b->pos = kd_alloc_array(nnz, sizeof *b->pos);
    if (!b->pos)
        return kd_fail(e, "out of memory");
    for (uint32_t u = 0; u < d->n_users; u++)
        for (uint64_t k = d->train.indptr[u]; k < d->train.indptr[u + 1]; k++) b->pos[k] = (kd_pair){ u, d->train.idx[k] };
    b->words = ((uint64_t)d->n_items + 63) / 64;
    b->bits = NULL;
    if ((uint64_t)d->n_users * b->words * 8 <= (64u << 20) &&
        (b->bits = kd_calloc_array((uint64_t)d->n_users * b->words, 8)))
        for (uint32_t u = 0; u < d->n_users; u++)
            for (uint64_t k = d->train.indptr[u]; k < d->train.indptr[u + 1]; k++)
                b->bits[u * b->words + d->train.idx[k] / 64] |= 1ull << (d->train.idx[k] % 64);
    return 0;
}

void kd_bpr_free(kd_bpr *b)
{
    free(b->pos);
    free(b->bits);
    free(b->part_off);
    free(b->part_pos);
    b->part_off = NULL;
    b->part_pos = NULL;
    b->part_W = 0;
    b->pos = NULL;
    b->bits = NULL;
}

/* kd_sample_negative for user u: the same draws; with the bitset one load per test, and
 * the user's row is only looked up when the draws run out */
static inline uint32_t negative_of(const kd_bpr *b, uint32_t u, uint64_t key)
{
    const kd_csr *tr = &b->d->train;
    uint32_t n_items = b->d->n_items;
    if (b->bits) {
        const uint64_t *bits = b->bits + (uint64_t)u * b->words;
        for (uint64_t t = 0; t < 32; t++) {
            uint32_t j = kd_below(kd_rng_at(key, t), n_items);
            if (!(bits[j / 64] >> (j % 64) & 1)) return j;
        }
    }
    /* repeats the 32 draws, then falls back */
    return kd_sample_negative(tr->idx + tr->indptr[u], kd_csr_len(tr, u), n_items, key);
}

/* two mixing rounds give the unit its own stream (the first is the epoch's); one more
 * per draw */
static inline uint64_t epoch_key(const kd_bpr *b, uint64_t epoch)
{
    return kd_mix64(b->seed ^ (epoch * 0xd1342543de82ef95ULL));
}

static inline uint64_t unit_key(const kd_bpr *b, uint64_t epoch, uint64_t unit)
{
    return kd_mix64(epoch_key(b, epoch) + unit * 0x9e3779b97f4a7c15ULL);
}

/* the unit's positive: an interaction index drawn uniformly */
static inline uint64_t unit_positive(const kd_bpr *b, uint64_t key)
{
    return (uint64_t)(((unsigned __int128)kd_rng_at(key, 0) * b->nnz) >> 64);
}

static inline void sample_key(const kd_bpr *b, uint64_t key, uint32_t *u, uint32_t *i, uint32_t *js)
{
    kd_pair p = b->pos[unit_positive(b, key)];
    *u = p.row;
    *i = p.col;
    for (uint32_t n = 0; n < b->neg; n++)
        js[n] = negative_of(b, p.row, key + (uint64_t)(n + 1) * 0x632be59bd9b4e019ULL);
}

void kd_bpr_sample(const kd_bpr *b, uint64_t epoch, uint64_t unit, uint32_t *u, uint32_t *i, uint32_t *js)
{
    sample_key(b, unit_key(b, epoch, unit), u, i, js);
}

int kd_bpr_partition(kd_bpr *b, uint32_t W, kd_err *e)
{
    if (b->part_W == W)
        return 0;
    free(b->part_off);
    free(b->part_pos);
    b->part_W = 0;
    b->part_off = kd_calloc_array((uint64_t)W + 1, sizeof *b->part_off);
    b->part_pos = kd_alloc_array(b->nnz, sizeof *b->part_pos);
    if (!b->part_off || !b->part_pos)
        return kd_fail(e, "out of memory");
    /* a stable counting sort of the positives by worker: in user, then item order within */
    for (uint64_t k = 0; k < b->nnz; k++) b->part_off[b->pos[k].row % W + 1]++;
    for (uint32_t w = 0; w < W; w++) b->part_off[w + 1] += b->part_off[w];
    uint64_t *next = kd_alloc_array(W, sizeof *next);
    if (!next)
        return kd_fail(e, "out of memory");
    memcpy(next, b->part_off, (size_t)W * sizeof *next);
    for (uint64_t k = 0; k < b->nnz; k++) b->part_pos[next[b->pos[k].row % W]++] = b->pos[k];
    free(next);
    b->part_W = W;
    return 0;
}

void kd_bpr_sample_part(const kd_bpr *b, uint64_t epoch, uint32_t w, uint64_t k0, uint64_t n, uint32_t *ids)
{
    uint64_t ek = epoch_key(b, epoch), W = b->part_W, S = 2 + (uint64_t)b->neg;
    const kd_pair *pos = b->part_pos + b->part_off[w];
    uint64_t count = b->part_off[w + 1] - b->part_off[w];
    for (uint64_t k = k0; k < k0 + n; k++, ids += S) {
        /* unit k of worker w has its own stream; W = 1 gives plain unit k's */
        uint64_t key = kd_mix64(ek + (k * W + w) * 0x9e3779b97f4a7c15ULL);
        kd_pair p = pos[(uint64_t)(((unsigned __int128)kd_rng_at(key, 0) * count) >> 64)];
        ids[0] = p.row;
        ids[1] = p.col;
        for (uint32_t j = 0; j < b->neg; j++)
            ids[2 + j] = negative_of(b, p.row, key + (uint64_t)(j + 1) * 0x632be59bd9b4e019ULL);
    }
}

static int bpr_part_init(void *ctx, uint32_t W, kd_err *e) { return kd_bpr_partition(ctx, W, e); }

static uint64_t bpr_part_units(void *ctx, uint32_t w)
{
    const kd_bpr *b = ctx;
    return b->part_off[w + 1] - b->part_off[w];
}

static void bpr_part_sample(void *ctx, uint64_t epoch, uint32_t w, uint64_t k0, uint64_t n, uint32_t *ids)
{
    kd_bpr_sample_part(ctx, epoch, w, k0, n, ids);
}

KD_CLONES static double bpr_produce_ids(void *ctx, const kd_model *m, const uint32_t *ids, kd_rec *recs, void *scratch)
{
    const kd_bpr *b = ctx;
    uint32_t u = ids[0], i = ids[1];
    const uint32_t *j = ids + 2;
    const float *pu = m->P + (size_t)u * m->stride;
    float si = kd_dot(pu, m->Q + (size_t)i * m->stride, m->stride) + m->bi[i];
    double loss = 0;
    for (uint32_t n = 0; n < b->neg; n++) {
        float sj = kd_dot(pu, m->Q + (size_t)j[n] * m->stride, m->stride) + m->bi[j[n]];
        float l = 0, g = kd_bpr_grad(si - sj, &l);
        loss += l;
        kd_bpr_records(recs + 2 * n, i, j[n], g);
    }
    return loss;
}

/* Unit `unit` of `epoch` sampled into a row (u, i, j_1..j_neg): in `local` (2 + 64 ids),
 * or in the task's scratch for more negatives. */
static inline const uint32_t *sample_row(const kd_bpr *b, uint64_t epoch, uint64_t unit, uint32_t *local, void *scratch)
{
    uint32_t *ids = b->neg <= 64 ? local : scratch;
    kd_bpr_sample(b, epoch, unit, &ids[0], &ids[1], ids + 2);
    return ids;
}

KD_CLONES static double bpr_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                                    kd_rec *recs, void *scratch)
{
    uint32_t local[2 + 64];
    const uint32_t *ids = sample_row(ctx, epoch, unit, local, scratch);
    *user = ids[0];
    return bpr_produce_ids(ctx, m, ids, recs, scratch);
}

/* the same two, for a loss on BPR's units: its records instead of BPR's */
static double loss_produce_ids(void *ctx, const kd_model *m, const uint32_t *ids, kd_rec *recs, void *scratch)
{
    const kd_bpr *b = ctx;
    return b->records(b->records_ctx, m, ids, recs, scratch);
}

static double loss_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                           kd_rec *recs, void *scratch)
{
    const kd_bpr *b = ctx;
    uint32_t local[2 + 64];
    const uint32_t *ids = sample_row(b, epoch, unit, local, scratch);
    *user = ids[0];
    return b->records(b->records_ctx, m, ids, recs, scratch);
}

kd_sgd_task kd_bpr_task(kd_bpr *b)
{
    kd_sgd_task t = {
        .units = kd_csr_nnz(&b->d->train), .recs_per_unit = 2 * b->neg, .samples_per_unit = b->neg,
        .scratch_bytes = b->neg > 64 ? (2 + (size_t)b->neg) * 4 : 0, .produce = bpr_produce,
        .part_init = bpr_part_init, .part_units = bpr_part_units, .part_sample = bpr_part_sample,
        .ids_per_unit = 2 + b->neg, .produce_ids = bpr_produce_ids, .ctx = b,
    };
    return t;
}

kd_sgd_task kd_bpr_task_with(kd_bpr *b, double (*records)(void *ctx, const kd_model *m, const uint32_t *ids,
                                                          kd_rec *recs, void *scratch), void *ctx)
{
    b->records = records;
    b->records_ctx = ctx;
    kd_sgd_task t = kd_bpr_task(b);
    t.produce = loss_produce;
    t.produce_ids = loss_produce_ids;
    return t;
}
