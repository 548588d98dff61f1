/* kd_sgd: reproducible parallel SGD -- replica, block and hogwild schemes -- with early
 * stopping (design in kd_sgd.h). */
#include "kd_sgd.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kd_cli.h"
#include "kd_eval.h"
#include "kd_par.h"
#include "kd_vec.h"

double kd_softplus_neg(double x) { return x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); }
double kd_sigmoid_neg(double x) { return x > 0 ? exp(-x) / (1 + exp(-x)) : 1 / (1 + exp(x)); }

typedef struct sgd_run {
    kd_model *m;
    const kd_sgd_params *p;
    kd_barrier bar;
    uint64_t epoch;
    float lr;
    /* the block being trained */
    const kd_sgd_task *task;
    uint64_t b0, nb;      /* units [b0, b0 + nb) of task */
    uint32_t *users;      /* (units per block) user of each unit, KD_NO_ITEM = none */
    kd_rec *recs;         /* (units per block * R) */
    double *loss;         /* (units per block) */
    float *pu_old;        /* (units per block, stride) p_u as B1 read it */
    float **delta;        /* per thread (stride) */
    uint8_t **scratch;    /* per thread */
    float *G;             /* Adagrad accumulators (P | Q | pad | bi), or NULL */
    /* the schedule of one epoch: blocks of each task, interleaved */
    const kd_sgd_task *tasks;
    int ntasks;
    uint64_t upb[KD_MAX_TASKS];    /* units per block of each task */
    double task_loss[KD_MAX_TASKS];
    double *hog_loss;     /* per thread and task, hogwild */
    /* replicas: W workers with private item rows, merged in fixed order each round */
    uint32_t W;
    kd_model *view;       /* (W) the model as worker w sees it: shared P, its own Q and bi */
    float **rep;          /* (W) that worker's Q (n_items, stride) then bi (n_items) */
    uint64_t wunits[KD_MAX_TASKS][64]; /* units of each task each worker runs an epoch */
    uint32_t **ids;       /* per worker (KD_BATCH, ids_per_unit): units sampled ahead */
    size_t rec_stride;    /* records between two workers' buffers: the most any task needs */
    uint64_t rounds;      /* merges an epoch */
    double *rep_loss;     /* (W, KD_MAX_TASKS) */
} sgd_run;

#define KD_BATCH 64u    /* units a worker samples ahead: not part of it */
#ifndef KD_PREFETCH
#define KD_PREFETCH 4u  /* units ahead whose rows are prefetched */
#endif

/* Every line of the rows a unit will touch (user, then items), for reading soon. */
static inline void prefetch_rows(const kd_model *m, const uint32_t *ids, uint32_t S)
{
    for (uint32_t c = 0; c < m->stride; c += 16) __builtin_prefetch(m->P + (size_t)ids[0] * m->stride + c);
    for (uint32_t k = 1; k < S; k++)
        for (uint32_t c = 0; c < m->stride; c += 16) __builtin_prefetch(m->Q + (size_t)ids[k] * m->stride + c);
}

/* Adagrad step on one row: x += lr * g / sqrt(G + eps), G += g^2, g = s*v - decay*x */
static inline __attribute__((always_inline)) void ada_row(float *x, float *G, float lr, float s, const float *v, float decay, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        float g = s * v[k] - decay * x[k];
        G[k] += g * g;
        x[k] += lr * g / (sqrtf(G[k]) + 1e-7f);
    }
}

/* The user step of a unit: p_u += lr * (sum coef_k q_k - reg p_u); saves p_u first. */
static inline __attribute__((always_inline)) void apply_user(sgd_run *r, kd_model *m, uint32_t u, const kd_rec *recs, uint32_t R,
                                                              float *delta, float *save)
{
    float *pu = m->P + (size_t)u * m->stride;
    kd_copy16(save, pu, m->stride);
    for (uint32_t k = 0; k < m->stride; k += 16) *(kd_v16 *)(delta + k) = (kd_v16){ 0 };
    for (uint32_t k = 0; k < R; k++)
        if (recs[k].item != KD_NO_ITEM)
            kd_axpy(delta, recs[k].coef, m->Q + (size_t)recs[k].item * m->stride, m->stride);
    if (r->G)
        ada_row(pu, r->G + (size_t)u * m->stride, r->lr, 1.0f, delta, (float)r->p->reg, m->dim);
    else
        kd_scale_axpy(pu, 1.0f - r->lr * (float)r->p->reg, r->lr, delta, m->stride);
}

static inline __attribute__((always_inline)) void apply_item(sgd_run *r, kd_model *m, const kd_rec *c, const float *pu_old)
{
    float *q = m->Q + (size_t)c->item * m->stride;
    float *bi = m->bi + c->item;
    if (r->G) {
        float *Gq = r->G + ((size_t)m->n_users + c->item) * m->stride;
        float *Gb = r->G + ((size_t)m->n_users + m->n_items + 1) * m->stride + c->item;
        ada_row(q, Gq, r->lr, c->coef, pu_old, (float)r->p->reg, m->dim);
        float g = c->coef - (float)r->p->reg_bias * *bi;
        *Gb += g * g;
        *bi += r->lr * g / (sqrtf(*Gb) + 1e-7f);
    } else {
        kd_scale_axpy(q, 1.0f - r->lr * (float)r->p->reg, r->lr * c->coef, pu_old, m->stride);
        *bi = (1.0f - r->lr * (float)r->p->reg_bias) * *bi + r->lr * c->coef;
    }
}

/* apply_user then apply_item on both records, for a unit of exactly two records on two
 * different items (a BPR triple) under SGD: the same arithmetic, bit for bit, in one pass
 * over the three rows -- no copy of p_u, no delta row, each row loaded once. */
static inline __attribute__((always_inline)) void apply_pair(sgd_run *r, kd_model *m, uint32_t u, const kd_rec *recs)
{
    float *pu = m->P + (size_t)u * m->stride;
    float *qi = m->Q + (size_t)recs[0].item * m->stride, *qj = m->Q + (size_t)recs[1].item * m->stride;
    float ci = recs[0].coef, cj = recs[1].coef, lr = r->lr;
    float keep = 1.0f - lr * (float)r->p->reg, si = lr * ci, sj = lr * cj;
    const kd_v16 zero = { 0 };
    for (uint32_t k = 0; k < m->stride; k += 16) {
        kd_v16 p = *(const kd_v16 *)(pu + k), a = *(const kd_v16 *)(qi + k), b = *(const kd_v16 *)(qj + k);
        kd_v16 delta = (zero + ci * a) + cj * b;
        *(kd_v16 *)(pu + k) = keep * p + lr * delta;
        *(kd_v16 *)(qi + k) = keep * a + si * p;
        *(kd_v16 *)(qj + k) = keep * b + sj * p;
    }
    float keep_b = 1.0f - lr * (float)r->p->reg_bias;
    m->bi[recs[0].item] = keep_b * m->bi[recs[0].item] + lr * ci;
    m->bi[recs[1].item] = keep_b * m->bi[recs[1].item] + lr * cj;
}

/* One unit's updates, sequentially (hogwild and replica workers). */
static inline __attribute__((always_inline)) void apply_unit(sgd_run *r, kd_model *m, uint32_t u, const kd_rec *recs, uint32_t R,
                                                              float *delta, float *save)
{
    if (R == 2 && !r->G && recs[0].item != KD_NO_ITEM && recs[1].item != KD_NO_ITEM && recs[0].item != recs[1].item) {
        apply_pair(r, m, u, recs);
        return;
    }
    apply_user(r, m, u, recs, R, delta, save);
    for (uint32_t j = 0; j < R; j++)
        if (recs[j].item != KD_NO_ITEM) apply_item(r, m, &recs[j], save);
}

/* Records of different threads or workers start on their own cache lines: sharing a line
 * made every write of one worker invalidate the other's (measured: 2 threads slower than 1). */
static inline size_t rec_lines(uint32_t R)
{
    return ((size_t)R * sizeof(kd_rec) + 63) / 64 * (64 / sizeof(kd_rec));
}

/* Row ownership, r % T, without a division per record (Lemire's fastmod; T < 2^16). */
static inline uint32_t owner(uint32_t r, uint64_t magic, uint32_t T)
{
    return (uint32_t)(((unsigned __int128)(magic * r) * T) >> 64);
}

/* One block of one task, on thread t of T (all threads call it between barriers).
 * Inlined into the KD_CLONES callers so the row updates get the wide SIMD paths. */
static inline __attribute__((always_inline)) void run_block(sgd_run *r, int t, int T)
{
    const kd_sgd_task *task = r->task;
    kd_model *m = r->m;
    uint32_t R = task->recs_per_unit, uT = (uint32_t)T;
    uint64_t magic = UINT64_MAX / uT + 1;
    unsigned long long lo, hi;
    /* A: produce records from the parameters as they stand */
    kd_par_range(r->nb, t, T, &lo, &hi);
    for (uint64_t s = lo; s < hi; s++)
        r->loss[s] = task->produce(task->ctx, m, r->epoch, r->b0 + s, &r->users[s], r->recs + s * R, r->scratch[t]);
    kd_barrier_wait(&r->bar);
    /* B1: users, by owner, in unit order */
    for (uint64_t s = 0; s < r->nb; s++) {
        uint32_t u = r->users[s];
        if (u == KD_NO_ITEM || (T > 1 && owner(u, magic, uT) != (uint32_t)t)) continue;
        apply_user(r, m, u, r->recs + s * R, R, r->delta[t], r->pu_old + s * m->stride);
    }
    kd_barrier_wait(&r->bar);
    /* B2: items, by owner, in record order */
    for (uint64_t s = 0; s < r->nb; s++) {
        if (r->users[s] == KD_NO_ITEM) continue;
        const kd_rec *c = r->recs + s * R;
        for (uint32_t k = 0; k < R; k++)
            if (c[k].item != KD_NO_ITEM && (T == 1 || owner(c[k].item, magic, uT) == (uint32_t)t))
                apply_item(r, m, &c[k], r->pu_old + s * m->stride);
    }
    kd_barrier_wait(&r->bar);
}

KD_CLONES static void epoch_blocked(void *ctx, int t, int T)
{
    sgd_run *r = ctx;
    uint64_t done[KD_MAX_TASKS] = { 0 }, nblocks[KD_MAX_TASKS];
    for (int k = 0; k < r->ntasks; k++)
        nblocks[k] = (r->tasks[k].units + r->upb[k] - 1) / r->upb[k];
    for (;;) {
        /* next: the task least far along its own blocks (ties: the first) */
        int next = -1;
        double best = 2;
        for (int k = 0; k < r->ntasks; k++)
            if (done[k] < nblocks[k] && (double)(done[k] + 1) / (double)nblocks[k] < best) {
                best = (double)(done[k] + 1) / (double)nblocks[k];
                next = k;
            }
        if (next < 0) break;
        /* every thread computes the same schedule; thread 0 publishes the block */
        if (t == 0) {
            r->task = &r->tasks[next];
            r->b0 = done[next] * r->upb[next];
            r->nb = r->task->units - r->b0 < r->upb[next] ? r->task->units - r->b0 : r->upb[next];
        }
        kd_barrier_wait(&r->bar);
        run_block(r, t, T);
        if (t == 0)
            for (uint64_t s = 0; s < r->nb; s++) r->task_loss[next] += r->loss[s];
        done[next]++;
    }
}

KD_CLONES static void epoch_hogwild(void *ctx, int t, int T)
{
    sgd_run *r = ctx;
    kd_model *m = r->m;
    for (int k = 0; k < r->ntasks; k++) {
        const kd_sgd_task *task = &r->tasks[k];
        uint32_t R = task->recs_per_unit;
        kd_rec *recs = r->recs + (size_t)t * rec_lines(R);
        float *save = r->pu_old + (size_t)t * m->stride;
        unsigned long long lo, hi;
        kd_par_range(task->units, t, T, &lo, &hi);
        double loss = 0;
        for (uint64_t s = lo; s < hi; s++) {
            uint32_t u;
            loss += task->produce(task->ctx, m, r->epoch, s, &u, recs, r->scratch[t]);
            if (u == KD_NO_ITEM) continue;
            apply_unit(r, m, u, recs, R, r->delta[t], save);
        }
        r->hog_loss[(size_t)t * KD_MAX_TASKS + k] = loss;
    }
}

KD_CLONES static void epoch_replicas(void *ctx, int t, int T)
{
    sgd_run *r = ctx;
    kd_model *m = r->m;
    uint32_t W = r->W, uT = (uint32_t)T;
    for (uint64_t q = 0; q < r->rounds; q++) {
        /* each worker runs its share of the round of every task, in order: plain sequential
         * SGD on its own user rows and item replica, touching nothing another worker writes */
        for (uint32_t w = (uint32_t)t; w < W; w += uT) {
            kd_model *v = &r->view[w];
            float *save = r->pu_old + (size_t)w * m->stride;
            for (int k = 0; k < r->ntasks; k++) {
                const kd_sgd_task *task = &r->tasks[k];
                uint32_t R = task->recs_per_unit, S = task->ids_per_unit;
                kd_rec *recs = r->recs + (size_t)w * r->rec_stride; /* workers may be on different tasks */
                uint64_t n = r->wunits[k][w], lo = n * q / r->rounds, hi = n * (q + 1) / r->rounds;
                double loss = 0;
                if (task->units_are_users) {
                    for (uint64_t x = lo; x < hi; x++) {
                        uint32_t u;
                        loss += task->produce(task->ctx, v, r->epoch, w + x * W, &u, recs, r->scratch[w]);
                        if (u != KD_NO_ITEM) apply_unit(r, v, u, recs, R, r->delta[w], save);
                    }
                } else {
                    uint32_t *ids = r->ids[w];
                    for (uint64_t b0 = lo; b0 < hi; b0 += KD_BATCH) {
                        uint32_t nb = hi - b0 < KD_BATCH ? (uint32_t)(hi - b0) : KD_BATCH;
                        /* sampled ahead: the draws do not depend on the model, and the rows a
                         * few units on can be fetched while this one computes */
                        task->part_sample(task->ctx, r->epoch, w, b0, nb, ids);
                        for (uint32_t x = 0; x < nb; x++) {
                            if (KD_PREFETCH && x + KD_PREFETCH < nb) prefetch_rows(v, ids + (size_t)(x + KD_PREFETCH) * S, S);
                            const uint32_t *row = ids + (size_t)x * S;
                            loss += task->produce_ids(task->ctx, v, row, recs, r->scratch[w]);
                            apply_unit(r, v, row[0], recs, R, r->delta[w], save);
                        }
                    }
                }
                r->rep_loss[(size_t)w * KD_MAX_TASKS + k] += loss;
            }
        }
        kd_barrier_wait(&r->bar);
        /* merge, by item ranges: master += sum over workers of (replica - master), in worker
         * order ... */
        unsigned long long a, b;
        kd_par_range(m->n_items, t, T, &a, &b);
        for (uint64_t i = a; i < b; i++) {
            float *qm = m->Q + i * m->stride;
            for (uint32_t c = 0; c < m->stride; c += 16) {
                kd_v16 base = *(const kd_v16 *)(qm + c), acc = base;
                for (uint32_t w = 0; w < W; w++) acc += *(const kd_v16 *)(r->rep[w] + i * m->stride + c) - base;
                *(kd_v16 *)(qm + c) = acc;
            }
            float bb = m->bi[i], accb = bb;
            for (uint32_t w = 0; w < W; w++) accb += r->view[w].bi[i] - bb;
            m->bi[i] = accb;
        }
        kd_barrier_wait(&r->bar);
        /* ... then each worker's thread copies the merged rows into its replica, so that the
         * next round finds them in its own core's cache (when other threads wrote them there,
         * the round's random row reads each missed to the other core) */
        for (uint32_t w = (uint32_t)t; w < W; w += uT) {
            memcpy(r->rep[w], m->Q, (size_t)m->n_items * m->stride * 4);
            memcpy(r->view[w].bi, m->bi, (size_t)m->n_items * 4);
        }
    }
    /* the caller reads the master and the losses once every thread is back */
}

void kd_train_log_free(kd_train_log *log)
{
    free(log->loss);
    free(log->throughput);
    free(log->valid);
    memset(log, 0, sizeof *log);
}

int kd_train_log_to_art(const kd_train_log *log, kd_art *a, int no_timing, kd_err *e)
{
    if (kd_art_add_f64(a, "train.loss", log->epochs_run, 1, log->loss, e) ||
        kd_art_add_f64(a, "train.valid", log->n_valid, 2, log->valid, e))
        return -1;
    if (no_timing)
        return 0;
    if (kd_art_add_f64(a, "train.throughput", log->epochs_run, 1, log->throughput, e))
        return -1;
    return kd_art_set_volatile(a, "train.throughput");
}

static void progress(const kd_sgd_params *p, uint64_t epoch, double loss, double rate, const char *extra)
{
    if (p->verbosity >= 2)
        fprintf(stderr, "%s: epoch %llu/%u loss %.5f %.3g samples/s%s\n", p->prog, (unsigned long long)epoch,
                p->epochs, loss, rate, extra);
    else if (kd_cli_progress_ok(p->verbosity))
        fprintf(stderr, "\r%s: epoch %llu/%u loss %.5f %.3g samples/s%s\033[K", p->prog,
                (unsigned long long)epoch, p->epochs, loss, rate, extra);
}

int kd_sgd_train(kd_model *m, const kd_dataset *d, const kd_sgd_task *tasks, int ntasks,
                 const kd_sgd_params *p, kd_train_log *log, kd_err *e)
{
    memset(log, 0, sizeof *log);
    if (!(p->lr > 0) || !isfinite(p->lr)) return kd_fail_usage(e, "--lr must be positive");
    if (p->valid_every && kd_csr_nnz(&d->valid) == 0)
        return kd_fail_usage(e, "early stopping needs a validation split, and this dataset has none");
    if (ntasks < 1 || ntasks > KD_MAX_TASKS) return kd_fail(e, "bad number of training tasks");
    int T = p->threads < 1 ? 1 : p->threads;
    sgd_run r = { .m = m, .p = p, .tasks = tasks, .ntasks = ntasks, .W = p->hogwild ? 0 : p->replicas };
    if (r.W) {
        if (r.W > 64) return kd_fail_usage(e, "--replicas: at most 64 workers");
        if (p->optim != KD_OPT_SGD) return kd_fail_usage(e, "--replicas works with --optim sgd only");
        for (int k = 0; k < ntasks; k++)
            if (!tasks[k].units_are_users && !(tasks[k].part_units && tasks[k].part_sample && tasks[k].produce_ids))
                return kd_fail_usage(e, "--replicas is not available for this loss");
    }
    /* the per-worker buffers of replica mode are indexed by worker, not thread */
    int NB = r.W ? (int)r.W : T;
    uint64_t max_units = 0, max_recs = 0, max_scratch = 0, samples = 0;
    for (int k = 0; k < ntasks; k++) {
        uint32_t R = tasks[k].recs_per_unit;
        r.upb[k] = KD_SGD_BLOCK / R ? KD_SGD_BLOCK / R : 1;
        uint64_t units = p->hogwild ? (uint64_t)T : r.W ? (uint64_t)r.W : r.upb[k];
        max_units = units > max_units ? units : max_units;
        uint64_t need = (p->hogwild || r.W) ? units * rec_lines(R) : units * R;
        max_recs = need > max_recs ? need : max_recs;
        max_scratch = tasks[k].scratch_bytes > max_scratch ? tasks[k].scratch_bytes : max_scratch;
        samples += (uint64_t)((double)tasks[k].units * tasks[k].samples_per_unit);
    }
    r.users = kd_alloc_array(max_units, 4);
    if (max_recs > SIZE_MAX / sizeof *r.recs || posix_memalign((void **)&r.recs, 64, (size_t)max_recs * sizeof *r.recs))
        r.recs = NULL;
    r.loss = kd_alloc_array(max_units, sizeof *r.loss);
    r.hog_loss = kd_calloc_array((uint64_t)T * KD_MAX_TASKS, sizeof *r.hog_loss);
    r.scratch = kd_calloc_array((uint64_t)NB, sizeof *r.scratch);
    r.delta = kd_calloc_array((uint64_t)NB, sizeof *r.delta);
    void *pu_old = NULL;
    kd_model best = { 0 };
    kd_pool *pool = NULL;
    int ret = -1;
    log->loss = kd_alloc_array(p->epochs ? p->epochs : 1, 8);
    log->throughput = kd_alloc_array(p->epochs ? p->epochs : 1, 8);
    log->valid = kd_alloc_array(2 * (uint64_t)(p->epochs ? p->epochs : 1), 8);
    if (!r.users || !r.recs || !r.loss || !r.hog_loss || !r.scratch || !r.delta || !log->loss ||
        !log->throughput || !log->valid || posix_memalign(&pu_old, 64, (size_t)(max_units * m->stride * 4 + 64))) {
        kd_fail(e, "out of memory");
        goto done;
    }
    r.pu_old = pu_old;
    for (int t = 0; t < NB; t++) {
        if (max_scratch && !(r.scratch[t] = aligned_alloc(64, (max_scratch + 63) & ~(size_t)63))) {
            kd_fail(e, "out of memory");
            goto done;
        }
        if (posix_memalign((void **)&r.delta[t], 64, (size_t)m->stride * 4)) {
            r.delta[t] = NULL;
            kd_fail(e, "out of memory");
            goto done;
        }
    }
    if (p->optim == KD_OPT_ADAGRAD) {
        r.G = kd_calloc_array(((uint64_t)m->n_users + m->n_items + 1) * m->stride + m->n_items, 4);
        if (!r.G) { kd_fail(e, "out of memory"); goto done; }
    }
    if (p->valid_every && kd_model_alloc(&best, m->n_users, m->n_items, m->dim, e))
        goto done;
    if (r.W) {
        uint64_t S = 1, all = 0;
        for (int k = 0; k < ntasks; k++) all += tasks[k].units;
        uint64_t per = p->round_units ? p->round_units : KD_ROUND_UNITS;
        r.rounds = (all + per - 1) / per;
        r.rounds = r.rounds ? r.rounds : 1;
        for (int k = 0; k < ntasks; k++) {
            r.rec_stride = rec_lines(tasks[k].recs_per_unit) > r.rec_stride ? rec_lines(tasks[k].recs_per_unit) : r.rec_stride;
            if (tasks[k].units_are_users) {
                for (uint32_t w = 0; w < r.W; w++)
                    r.wunits[k][w] = w < tasks[k].units ? (tasks[k].units - w + r.W - 1) / r.W : 0;
                continue;
            }
            if (tasks[k].part_init && tasks[k].part_init(tasks[k].ctx, r.W, e))
                goto done;
            uint64_t sum = 0;
            for (uint32_t w = 0; w < r.W; w++) sum += r.wunits[k][w] = tasks[k].part_units(tasks[k].ctx, w);
            if (sum != tasks[k].units) { kd_fail(e, "internal error: workers' units do not add up"); goto done; }
            S = tasks[k].ids_per_unit > S ? tasks[k].ids_per_unit : S;
        }
        r.view = kd_calloc_array(r.W, sizeof *r.view);
        r.rep = kd_calloc_array(r.W, sizeof *r.rep);
        r.ids = kd_calloc_array(r.W, sizeof *r.ids);
        r.rep_loss = kd_calloc_array((uint64_t)r.W * KD_MAX_TASKS, sizeof *r.rep_loss);
        if (!r.view || !r.rep || !r.ids || !r.rep_loss) { kd_fail(e, "out of memory"); goto done; }
        for (uint32_t w = 0; w < r.W; w++)
            if (!(r.ids[w] = kd_alloc_array(KD_BATCH, S * 4))) { kd_fail(e, "out of memory"); goto done; }
        size_t qn = (size_t)m->n_items * m->stride;
        for (uint32_t w = 0; w < r.W; w++) {
            if (posix_memalign((void **)&r.rep[w], 64, (qn + m->n_items + 16) * 4)) {
                r.rep[w] = NULL;
                kd_fail(e, "out of memory (%u item replicas)", r.W);
                goto done;
            }
            memcpy(r.rep[w], m->Q, qn * 4);
            memcpy(r.rep[w] + qn, m->bi, (size_t)m->n_items * 4);
            r.view[w] = *m;
            r.view[w].Q = r.rep[w];
            r.view[w].bi = r.rep[w] + qn;
        }
    }
    kd_barrier_init(&r.bar, (unsigned)T);
    if (!(pool = kd_pool_new(T, e)))
        goto done;
    double best_value = -1;
    uint32_t since_best = 0;
    for (uint64_t ep = 0; ep < p->epochs; ep++) {
        r.epoch = ep;
        r.lr = (float)(p->lr * pow(p->lr_decay, (double)ep));
        for (int k = 0; k < ntasks; k++) {
            r.task_loss[k] = 0;
            if (tasks[k].epoch_begin && tasks[k].epoch_begin(tasks[k].ctx, m, ep, e))
                goto done;
        }
        double t0 = kd_now();
        if (r.W) memset(r.rep_loss, 0, (size_t)r.W * KD_MAX_TASKS * sizeof *r.rep_loss);
        kd_pool_run(pool, p->hogwild ? epoch_hogwild : r.W ? epoch_replicas : epoch_blocked, &r);
        double secs = kd_now() - t0, loss = 0;
        for (int k = 0; k < ntasks; k++) {
            if (p->hogwild)
                for (int t = 0; t < T; t++) r.task_loss[k] += r.hog_loss[(size_t)t * KD_MAX_TASKS + k];
            for (uint32_t w = 0; w < r.W; w++) r.task_loss[k] += r.rep_loss[(size_t)w * KD_MAX_TASKS + k];
            loss += r.task_loss[k] / (double)(tasks[k].units ? tasks[k].units : 1);
        }
        log->loss[ep] = loss;
        log->throughput[ep] = secs > 0 ? (double)samples / secs : 0;
        log->epochs_run = (uint32_t)ep + 1;
        if (!isfinite(loss) || !kd_model_finite(m)) {
            if (kd_cli_progress_ok(p->verbosity) && p->verbosity < 2) fputc('\n', stderr);
            kd_fail(e, "training diverged at epoch %llu (loss %g); try a smaller --lr", (unsigned long long)ep + 1, loss);
            goto done;
        }
        char extra[96] = "";
        if (p->valid_every && (ep + 1) % p->valid_every == 0) {
            kd_eval_opts o = { .ks = { p->select_k }, .nk = 1, .split = KD_SPLIT_VALID, .threads = T };
            kd_eval_result res;
            if (kd_evaluate(m, d, &o, &res, e))
                goto done;
            double v = res.mean[p->select_metric][0];
            kd_eval_result_free(&res);
            log->valid[2 * log->n_valid] = (double)ep + 1;
            log->valid[2 * log->n_valid + 1] = v;
            log->n_valid++;
            snprintf(extra, sizeof extra, " valid %s@%u %.5f", kd_metric_names[p->select_metric], p->select_k, v);
            if (v > best_value) {
                best_value = v;
                since_best = 0;
                log->best_epoch = (uint32_t)ep + 1;
                kd_model_copy(&best, m);
            } else if (++since_best >= p->patience) {
                progress(p, ep + 1, loss, log->throughput[ep], extra);
                log->stopped_early = 1;
                break;
            }
        }
        progress(p, ep + 1, loss, log->throughput[ep], extra);
    }
    if (kd_cli_progress_ok(p->verbosity) && p->verbosity < 2) fputc('\n', stderr);
    if (p->valid_every && log->best_epoch)
        kd_model_copy(m, &best);
    ret = 0;
done:
    kd_pool_free(pool);
    if (ret) kd_train_log_free(log);
    kd_model_free(&best);
    for (int t = 0; t < NB; t++) {
        if (r.scratch) free(r.scratch[t]);
        if (r.delta) free(r.delta[t]);
    }
    for (uint32_t w = 0; r.rep && w < r.W; w++) free(r.rep[w]);
    for (uint32_t w = 0; r.ids && w < r.W; w++) free(r.ids[w]);
    free(r.rep); free(r.view); free(r.ids); free(r.rep_loss);
    free(r.scratch); free(r.delta); free(r.users); free(r.recs); free(r.loss); free(r.hog_loss);
    free(pu_old); free(r.G);
    return ret;
}
