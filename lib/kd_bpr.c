/* kd_bpr: uniform positive and negative sampling, the BPR loss and its records. */
#include "kd_bpr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_rng.h"
#include "kd_vec.h"

static void free_workers(kd_bpr *b);

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
    b->part_work = NULL;
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
    free_workers(b);
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

/* Replica mode: one worker's state.  users/order/start/bits are carved from one
 * allocation (mem); the struct is two cache lines, so workers' cursors never share one. */
struct kd_bpr_worker {
    void     *mem;
    uint32_t *users;   /* (n) the worker's users with train items, in id order */
    uint32_t *order;   /* (n) the epoch's order of users */
    uint64_t *start;   /* (n + 1) the unit at which each user of the order starts */
    uint64_t *row;     /* (n) where each user of the order starts in train.idx */
    uint64_t *bits;    /* (words) train items of user `cur` */
    uint64_t  n;
    uint64_t  epoch;   /* the epoch order/start are for (UINT64_MAX: none yet) */
    uint64_t  okey;    /* that epoch's order stream */
    uint64_t  at;      /* cursor: position in order of the last unit's user */
    uint64_t  cur_row; /* where cur's items start in train.idx */
    uint32_t  cur;     /* user whose items bits holds (KD_NO_ITEM: none) */
    uint32_t  cur_len; /* and how many */
    uint32_t  rot;     /* offset of the current run in its user's sorted row */
    uint8_t   pad[128 - 8 * 11 - 4 * 3];
};
_Static_assert(sizeof(kd_bpr_worker) == 128, "a worker's state is two cache lines");

static void free_workers(kd_bpr *b)
{
    if (b->part_work)
        for (uint32_t w = 0; w < b->part_W; w++) free(b->part_work[w].mem);
    free(b->part_work);
    b->part_work = NULL;
}

int kd_bpr_partition(kd_bpr *b, uint32_t W, kd_err *e)
{
    if (b->part_W == W)
        return 0;
    free_workers(b);
    free(b->part_off);
    free(b->part_pos);
    b->part_W = 0;
    b->part_off = kd_calloc_array((uint64_t)W + 1, sizeof *b->part_off);
    b->part_pos = kd_alloc_array(b->nnz, sizeof *b->part_pos);
    void *work = NULL;
    if (!b->part_off || !b->part_pos || posix_memalign(&work, 64, (size_t)W * sizeof(kd_bpr_worker)))
        return kd_fail(e, "out of memory");
    b->part_work = work;
    memset(work, 0, (size_t)W * sizeof(kd_bpr_worker));
    b->part_W = W; /* from here on free_workers frees what the loop below allocated */
    /* a stable counting sort of the positives by worker: in user, then item order within */
    for (uint64_t k = 0; k < b->nnz; k++) b->part_off[b->pos[k].row % W + 1]++;
    for (uint32_t w = 0; w < W; w++) b->part_off[w + 1] += b->part_off[w];
    uint64_t *next = kd_alloc_array(W, sizeof *next);
    if (!next) {
        b->part_W = 0;
        free_workers(b);
        return kd_fail(e, "out of memory");
    }
    memcpy(next, b->part_off, (size_t)W * sizeof *next);
    for (uint64_t k = 0; k < b->nnz; k++) b->part_pos[next[b->pos[k].row % W]++] = b->pos[k];
    free(next);
    const kd_csr *tr = &b->d->train;
    for (uint32_t w = 0; w < W; w++) {
        kd_bpr_worker *s = &b->part_work[w];
        uint64_t n = 0;
        for (uint64_t u = w; u < b->d->n_users; u += W) n += kd_csr_len(tr, (uint32_t)u) > 0;
        /* (n) users and (n) order as uint32, then (n + 1) start, (n) row, (words) bits */
        uint64_t bytes = 8 * (n + (n + 1) + n + b->words);
        if (!(s->mem = kd_calloc_array(bytes, 1))) {
            free_workers(b);
            b->part_W = 0;
            return kd_fail(e, "out of memory");
        }
        s->users = s->mem;
        s->order = s->users + n;
        s->start = (uint64_t *)s->mem + n;
        s->row = s->start + n + 1;
        s->bits = s->row + n;
        s->n = n;
        s->epoch = UINT64_MAX;
        s->cur = KD_NO_ITEM;
        n = 0;
        for (uint64_t u = w; u < b->d->n_users; u += W)
            if (kd_csr_len(tr, (uint32_t)u)) s->users[n++] = (uint32_t)u;
    }
    return 0;
}

/* Worker w's order of users for `epoch`: its users in id order, Fisher-Yates shuffled
 * (draw i from counter i of the (epoch, w) stream); start[] the prefix sums of their
 * train lengths and row[] their rows, so a new user's run reads these in order. */
static void worker_epoch(const kd_bpr *b, kd_bpr_worker *s, uint64_t epoch, uint32_t w)
{
    const kd_csr *tr = &b->d->train;
    s->okey = kd_key(epoch_key(b, epoch), w, 1);
    memcpy(s->order, s->users, (size_t)s->n * sizeof *s->order);
    for (uint64_t x = s->n; x > 1; x--) {
        uint32_t y = kd_below(kd_rng_at(s->okey, x - 1), (uint32_t)x), t = s->order[x - 1];
        s->order[x - 1] = s->order[y];
        s->order[y] = t;
    }
    s->start[0] = 0;
    for (uint64_t x = 0; x < s->n; x++) {
        s->row[x] = tr->indptr[s->order[x]];
        s->start[x + 1] = s->start[x] + (tr->indptr[s->order[x] + 1] - s->row[x]);
    }
    s->epoch = epoch;
    s->at = 0;
}

/* Makes position `at` of the order the current user: its items into the bitset (the
 * previous user's taken out), its run's rotation from counter n + at of the stream. */
static inline void worker_user(const kd_bpr *b, kd_bpr_worker *s, uint64_t at)
{
    const uint32_t *idx = b->d->train.idx;
    uint32_t u = s->order[at];
    uint32_t len = (uint32_t)(s->start[at + 1] - s->start[at]);
    /* the next user's row, for its turn */
    if (at + 1 < s->n) __builtin_prefetch(idx + s->row[at + 1]);
    if (u != s->cur) {
        if (s->cur != KD_NO_ITEM)
            for (uint64_t k = s->cur_row; k < s->cur_row + s->cur_len; k++) s->bits[idx[k] / 64] = 0;
        for (uint64_t k = s->row[at]; k < s->row[at] + len; k++) s->bits[idx[k] / 64] |= 1ull << (idx[k] % 64);
        s->cur = u;
        s->cur_row = s->row[at];
        s->cur_len = len;
    }
    s->at = at;
    s->rot = kd_below(kd_rng_at(s->okey, s->n + at), len);
}

void kd_bpr_sample_part(const kd_bpr *b, uint64_t epoch, uint32_t w, uint64_t k0, uint64_t n, uint32_t *ids)
{
    kd_bpr_worker *s = &b->part_work[w];
    const kd_csr *tr = &b->d->train;
    uint64_t ek = epoch_key(b, epoch), W = b->part_W, S = 2 + (uint64_t)b->neg;
    uint32_t n_items = b->d->n_items;
    if (n == 0)
        return;
    if (s->epoch != epoch) {
        worker_epoch(b, s, epoch, w);
        worker_user(b, s, 0);
    }
    if (!(k0 >= s->start[s->at] && k0 < s->start[s->at + 1])) {
        /* not where the last call left off: find k0's user (binary search in start) */
        uint64_t lo = 0, hi = s->n;
        while (hi - lo > 1) {
            uint64_t mid = lo + (hi - lo) / 2;
            if (s->start[mid] <= k0) lo = mid; else hi = mid;
        }
        worker_user(b, s, lo);
    }
    for (uint64_t k = k0; k < k0 + n; k++, ids += S) {
        if (k >= s->start[s->at + 1]) worker_user(b, s, s->at + 1);
        uint32_t u = s->cur, len = (uint32_t)(s->start[s->at + 1] - s->start[s->at]);
        const uint32_t *row = tr->idx + s->row[s->at];
        uint32_t o = (uint32_t)(k - s->start[s->at]) + s->rot;
        ids[0] = u;
        ids[1] = row[o >= len ? o - len : o];
        /* unit k of worker w has its own stream for its negatives */
        uint64_t key = kd_mix64(ek + (k * W + w) * 0x9e3779b97f4a7c15ULL);
        for (uint32_t j = 0; j < b->neg; j++) {
            uint64_t jk = key + (uint64_t)(j + 1) * 0x632be59bd9b4e019ULL;
            uint32_t x = KD_NO_ITEM;
            for (uint64_t t = 0; t < 32; t++) {
                uint32_t c = kd_below(kd_rng_at(jk, t), n_items);
                if (!(s->bits[c / 64] >> (c % 64) & 1)) { x = c; break; }
            }
            /* the same draws as kd_sample_negative, which repeats them, then falls back */
            ids[2 + j] = x != KD_NO_ITEM ? x : kd_sample_negative(row, len, n_items, jk);
        }
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
