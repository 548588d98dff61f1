/* kd_sgd: reproducible parallel SGD -- replica, block and hogwild schemes -- and an epoch
 * hook (design in kd_sgd.h).
 *
 * kd_sgd_train in four steps: check the parameters, plan and make the run's one
 * allocation (a table of sizes, then pointers carved from it), set up the scheme
 * (replicas, blocks or hogwild), run the epochs, calling the hook after each. */
#include "kd_sgd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_io.h"    /* kd_alloc_big */
#include "kd_par.h"   /* kd_pool, kd_barrier, kd_par_range, kd_now */
#include "kd_vec.h"   /* kd_v16 row kernels, KD_CLONES */

double kd_softplus_neg(double x) { return x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); }
double kd_sigmoid_neg(double x) { return x > 0 ? exp(-x) / (1 + exp(-x)) : 1 / (1 + exp(x)); }

/* What Adagrad and Adam keep per parameter, laid out like the model it steps (rows of
 * stride floats for P and Q, a float per bias): Adagrad's sums of squared gradients in s1;
 * Adam's first moments in s1, second moments in s2 and each row's step count in nP / nQ
 * (a bias steps with its row and shares its count).  Per-row counts, not one global step,
 * because a sparse row steps only when a unit touches it: its bias correction follows its
 * own steps (the "lazy" Adam of sparse embeddings). */
typedef struct opt_state {
    kd_model s1, s2;
    uint32_t *nP, *nQ;
} opt_state;

/* The state's size: moments of (users + items) x (stride + 1) floats each (rows, then a bias
 * per row), and Adam's step count per row. */
static inline int opt_moments(int optim) { return optim == KD_OPT_ADAM ? 2 : optim == KD_OPT_ADAGRAD ? 1 : 0; }
static inline uint64_t opt_moment_floats(const kd_model *m) { return ((uint64_t)m->n_users + m->n_items) * (m->stride + 1ull); }

/* The same state seen by a transposed task (P <-> Q, bu <-> bi, as tview). */
static opt_state opt_transposed(const opt_state *a)
{
    opt_state t = *a;
    t.s1.P = a->s1.Q, t.s1.Q = a->s1.P, t.s1.bu = a->s1.bi, t.s1.bi = a->s1.bu;
    t.s2.P = a->s2.Q, t.s2.Q = a->s2.P, t.s2.bu = a->s2.bi, t.s2.bi = a->s2.bu;
    t.nP = a->nQ, t.nQ = a->nP;
    return t;
}

typedef struct sgd_run {
    kd_model *m;
    const kd_sgd_params *p;
    int T;                /* threads */
    uint32_t NB;          /* per-thread buffers: one per worker in replica mode, else per thread */
    kd_barrier bar;
    uint64_t epoch;
    float lr;
    uint64_t samples;     /* an epoch's samples, for the measured rate */
    /* the block being trained */
    const kd_sgd_task *task;
    uint64_t b0, nb;      /* units [b0, b0 + nb) of task */
    /* buffers, all carved from mem (see plan_buffers) */
    void *mem;
    uint32_t *users;      /* (units per block) user of each unit, KD_NO_ITEM = none */
    kd_rec *recs;         /* (units per block * R) */
    double *loss;         /* (units per block) */
    float *pu_old;        /* (units per block, stride) p_u as B1 read it */
    float *delta;         /* (NB, stride) */
    uint8_t *scratch;     /* (NB, scratch_stride) */
    size_t scratch_stride;
    /* optimiser state (Adagrad, Adam), shaped like the model: see opt_state */
    int stateful;
    opt_state st, st_t;   /* the state, and the same state transposed (users <-> items) */
    /* the schedule of one epoch: blocks of each task, interleaved */
    const kd_sgd_task *tasks;
    int ntasks;
    uint64_t upb[KD_MAX_TASKS];    /* units per block of each task */
    double task_loss[KD_MAX_TASKS];
    double *hog_loss;     /* (T, KD_MAX_TASKS) hogwild */
    /* replicas: W workers with private item rows, merged in fixed order each round */
    uint32_t W;
    kd_model *view;       /* (W) the model as worker w sees it: shared P, its own Q and bi */
    float *rep;           /* (W, rep_stride) that worker's Q (n_items, stride) then bi (n_items) */
    size_t rep_stride;
    uint64_t wunits[KD_MAX_TASKS][64]; /* units of each task each worker runs an epoch */
    uint32_t *ids;        /* (W, ids_stride = 2 * KD_BATCH * ids_per_unit): units sampled ahead,
                           * this batch and the next */
    size_t ids_stride;
    size_t rec_stride;    /* records between two workers' buffers: the most any task needs */
    uint64_t rounds;      /* merges an epoch */
    int fused;            /* the merge writes the merged rows into the replicas too (below) */
    double *rep_loss;     /* (W, KD_MAX_TASKS) */
    kd_model tview;       /* the master transposed (P <-> Q, bu <-> bi): transposed tasks' updates */
    int any_transposed;
    struct sgd_run *nd;   /* no_decay tasks' updates read this copy: the same but reg = 0 */
    kd_sgd_params p_nd;
} sgd_run;

/* The run a task's updates read (its lr, optimiser state and decay). */
static inline struct sgd_run *apply_run(struct sgd_run *r, const kd_sgd_task *task)
{
    return task->no_decay ? r->nd : r;
}

/* The model a task's updates go to. */
static inline kd_model *apply_model(sgd_run *r, const kd_sgd_task *task, kd_model *m)
{
    return task->transposed ? &r->tview : m;
}

static inline uint8_t *scratch_of(const sgd_run *r, uint32_t t) { return r->scratch + (size_t)t * r->scratch_stride; }
static inline float *delta_of(const sgd_run *r, uint32_t t) { return r->delta + (size_t)t * r->m->stride; }
static inline float *rep_of(const sgd_run *r, uint32_t w) { return r->rep + (size_t)w * r->rep_stride; }

#ifndef KD_BATCH
#define KD_BATCH 256u   /* units a worker samples ahead: not part of it (64: 5-8% slower on amazon-book) */
#endif
#ifndef KD_FUSE_BYTES
/* Item replicas of at least this many bytes get the merged rows from the merge itself
 * (fused) rather than from a copy by their own worker's thread: far beyond a core's L2
 * they are not in its cache either way, and the copy was one more pass over master and
 * every replica each merge (amazon-book at D = 64: 6.4 MB each, two merges an epoch). */
#define KD_FUSE_BYTES (4u << 20)
#endif
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

/* r = the 16 lanes' square roots of x (vector ones: kd_sgd.o is built with -fno-math-errno,
 * Makefile).  By pointer, as kd_hsum16: a 64-byte vector has no one calling convention. */
static inline __attribute__((always_inline)) void sqrt16(kd_v16 *r, const kd_v16 *x)
{
    for (int l = 0; l < 16; l++) (*r)[l] = __builtin_sqrtf((*x)[l]);
}

/* Adagrad's step of one parameter: g = s*v - decay*x, G += g^2, x += lr * g / (sqrt(G) + eps) */
static inline void ada_one(float *x, float *G, float lr, float s, float v, float decay)
{
    float g = s * v - decay * *x;
    *G += g * g;
    *x += lr * g / (sqrtf(*G) + 1e-7f);
}

/* ada_one on a whole padded row (n % 16 == 0, x and v 64-byte aligned; G need not be), 16
 * lanes at a time: each lane does ada_one's operations in its order (IEEE multiply, add,
 * divide and square root round the same in every width), so the bytes are ada_one's.
 * Padding stays zero: v and x are 0 there, so g and G are, and the step is 0 / eps. */
static inline __attribute__((always_inline)) void ada_row16(float *x, float *G, float lr, float s, const float *v, float decay,
                                                             uint32_t n)
{
    for (uint32_t k = 0; k < n; k += 16) {
        kd_v16 xv = *(kd_v16 *)(x + k), g = s * *(const kd_v16 *)(v + k) - decay * xv;
        kd_v16 Gv = *(kd_v16u *)(G + k) + g * g, root;
        sqrt16(&root, &Gv);
        *(kd_v16u *)(G + k) = Gv;
        *(kd_v16 *)(x + k) = xv + lr * g / (root + 1e-7f);
    }
}

#define ADAM_B1  0.9
#define ADAM_B2  0.999
#define ADAM_EPS 1e-8f

/* b^t by squaring: multiplications only, so the same bits on every machine (libm's pow
 * may take another path on another CPU).  Past 2^16 steps both powers are below 1e-28. */
static inline double pow_steps(double b, uint32_t t)
{
    if (t >= 65536u) return 0;
    double r = 1;
    for (; t; t >>= 1, b *= b)
        if (t & 1) r *= b;
    return r;
}

/* Adam's step size for a row's t-th step, bias corrections folded in:
 * x += lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps) = a * m / (sqrt(v) + e2) */
typedef struct adam_step { float a, e2; } adam_step;
static inline adam_step adam_begin(uint32_t *count, float lr)
{
    uint32_t t = *count < UINT32_MAX ? ++*count : *count;
    double c1 = 1 - pow_steps(ADAM_B1, t), c2 = sqrt(1 - pow_steps(ADAM_B2, t));
    return (adam_step){ (float)(lr * c2 / c1), (float)(ADAM_EPS * c2) };
}

/* Adam's step of one parameter x (moments m, v), gradient g = s*u - decay*x */
static inline void adam_one(float *x, float *m, float *v, adam_step st, float s, float u, float decay)
{
    const float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2;
    float g = s * u - decay * *x;
    *m = b1 * *m + (1 - b1) * g;
    *v = b2 * *v + (1 - b2) * g * g;
    *x += st.a * *m / (sqrtf(*v) + st.e2);
}

/* adam_one on a whole padded row (n % 16 == 0, x and u 64-byte aligned; the moments need
 * not be), 16 lanes at a time, operation for operation as ada_row16 is ada_one's; padding
 * stays zero (g, m and v are 0 there, the step 0 / e2). */
static inline __attribute__((always_inline)) void adam_row16(float *x, float *m, float *v, adam_step st, float s,
                                                              const float *u, float decay, uint32_t n)
{
    const float b1 = (float)ADAM_B1, b2 = (float)ADAM_B2;
    for (uint32_t k = 0; k < n; k += 16) {
        kd_v16 xv = *(kd_v16 *)(x + k), g = s * *(const kd_v16 *)(u + k) - decay * xv;
        kd_v16 mv = b1 * *(kd_v16u *)(m + k) + (1 - b1) * g;
        kd_v16 vv = b2 * *(kd_v16u *)(v + k) + (1 - b2) * g * g, root;
        sqrt16(&root, &vv);
        *(kd_v16u *)(m + k) = mv;
        *(kd_v16u *)(v + k) = vv;
        *(kd_v16 *)(x + k) = xv + st.a * mv / (root + st.e2);
    }
}

/* 1 when a step would have a zero gradient (every record's coef 0, no decay).  Adam then
 * takes no step: its moments would still move the row (a zero-weight term is nothing, as
 * under SGD and Adagrad, so --lambda 0 --kd-decay 0 trains kd-train's model), and the row's
 * step count is that of the steps it took. */
static inline int adam_idle(const kd_rec *recs, uint32_t R, float decay)
{
    if (decay != 0) return 0;
    for (uint32_t k = 0; k < R; k++)
        if (recs[k].item != KD_NO_ITEM && recs[k].coef != 0) return 0;
    return 1;
}

/* The state a row update of model m reads: m is the master or its transposed view (the
 * stateful optimisers run blocks or hogwild only, never replicas' private item rows). */
static inline const opt_state *state_of(const struct sgd_run *r, const kd_model *m)
{
    return m->P == r->m->P ? &r->st : &r->st_t;
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
    if (r->stateful) {
        const opt_state *st = state_of(r, m);
        size_t o = (size_t)u * m->stride;
        if (r->p->optim == KD_OPT_ADAM) {
            if (adam_idle(recs, R, (float)r->p->reg)) return;
            adam_row16(pu, st->s1.P + o, st->s2.P + o, adam_begin(st->nP + u, r->lr), 1.0f, delta, (float)r->p->reg, m->stride);
        } else
            ada_row16(pu, st->s1.P + o, r->lr, 1.0f, delta, (float)r->p->reg, m->stride);
    } else
        kd_scale_axpy(pu, 1.0f - r->lr * (float)r->p->reg, r->lr, delta, m->stride);
}

static inline __attribute__((always_inline)) void apply_item(sgd_run *r, kd_model *m, const kd_rec *c, const float *pu_old)
{
    float *q = m->Q + (size_t)c->item * m->stride;
    float *bi = m->bi + c->item;
    if (r->stateful) {
        const opt_state *st = state_of(r, m);
        size_t o = (size_t)c->item * m->stride;
        float reg_b = (float)r->p->reg_bias;
        if (r->p->optim == KD_OPT_ADAM) {
            if (adam_idle(c, 1, (float)r->p->reg) && reg_b == 0) return;
            adam_step a = adam_begin(st->nQ + c->item, r->lr);
            adam_row16(q, st->s1.Q + o, st->s2.Q + o, a, c->coef, pu_old, (float)r->p->reg, m->stride);
            adam_one(bi, st->s1.bi + c->item, st->s2.bi + c->item, a, c->coef, 1.0f, reg_b);
        } else {
            ada_row16(q, st->s1.Q + o, r->lr, c->coef, pu_old, (float)r->p->reg, m->stride);
            ada_one(bi, st->s1.bi + c->item, r->lr, c->coef, 1.0f, reg_b);
        }
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
    if (R == 2 && !r->stateful && recs[0].item != KD_NO_ITEM && recs[1].item != KD_NO_ITEM && recs[0].item != recs[1].item) {
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
    kd_model *m = apply_model(r, task, r->m);
    uint32_t R = task->recs_per_unit, uT = (uint32_t)T;
    uint64_t magic = UINT64_MAX / uT + 1;
    unsigned long long lo, hi;
    /* A: produce records from the parameters as they stand */
    kd_par_range(r->nb, t, T, &lo, &hi);
    for (uint64_t s = lo; s < hi; s++)
        r->loss[s] = task->produce(task->ctx, r->m, r->epoch, r->b0 + s, &r->users[s], r->recs + s * R, scratch_of(r, (uint32_t)t));
    kd_barrier_wait(&r->bar);
    /* B1: users, by owner, in unit order */
    for (uint64_t s = 0; s < r->nb; s++) {
        uint32_t u = r->users[s];
        if (u == KD_NO_ITEM || (T > 1 && owner(u, magic, uT) != (uint32_t)t)) continue;
        apply_user(apply_run(r, task), m, u, r->recs + s * R, R, delta_of(r, (uint32_t)t), r->pu_old + s * m->stride);
    }
    kd_barrier_wait(&r->bar);
    /* B2: items, by owner, in record order */
    for (uint64_t s = 0; s < r->nb; s++) {
        if (r->users[s] == KD_NO_ITEM) continue;
        const kd_rec *c = r->recs + s * R;
        for (uint32_t k = 0; k < R; k++)
            if (c[k].item != KD_NO_ITEM && (T == 1 || owner(c[k].item, magic, uT) == (uint32_t)t))
                apply_item(apply_run(r, task), m, &c[k], r->pu_old + s * m->stride);
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
            loss += task->produce(task->ctx, m, r->epoch, s, &u, recs, scratch_of(r, (uint32_t)t));
            if (u == KD_NO_ITEM) continue;
            apply_unit(apply_run(r, task), apply_model(r, task, m), u, recs, R, delta_of(r, (uint32_t)t), save);
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
                if (task->transposed) continue; /* after the merge, below */
                uint32_t R = task->recs_per_unit, S = task->ids_per_unit;
                kd_rec *recs = r->recs + (size_t)w * r->rec_stride; /* workers may be on different tasks */
                uint64_t n = r->wunits[k][w], lo = n * q / r->rounds, hi = n * (q + 1) / r->rounds;
                double loss = 0;
                if (task->units_are_users) {
                    for (uint64_t x = lo; x < hi; x++) {
                        uint32_t u;
                        loss += task->produce(task->ctx, v, r->epoch, w + x * W, &u, recs, scratch_of(r, w));
                        if (u != KD_NO_ITEM) apply_unit(apply_run(r, task), v, u, recs, R, delta_of(r, w), save);
                    }
                } else {
                    /* sampled a batch ahead, into two halves: the draws do not depend on
                     * the model, and the rows a few units on (in this batch or the next)
                     * can be fetched while this one computes */
                    uint32_t *half[2] = { r->ids + (size_t)w * r->ids_stride,
                                          r->ids + (size_t)w * r->ids_stride + (size_t)KD_BATCH * S };
                    if (lo < hi)
                        task->part_sample(task->ctx, r->epoch, w, lo, hi - lo < KD_BATCH ? hi - lo : KD_BATCH, half[0]);
                    for (uint64_t b0 = lo, h = 0; b0 < hi; b0 += KD_BATCH, h ^= 1) {
                        uint32_t nb = hi - b0 < KD_BATCH ? (uint32_t)(hi - b0) : KD_BATCH;
                        uint64_t b1 = b0 + nb;
                        uint32_t nn = hi - b1 < KD_BATCH ? (uint32_t)(hi - b1) : KD_BATCH;
                        const uint32_t *ids = half[h], *next = half[h ^ 1];
                        if (nn) task->part_sample(task->ctx, r->epoch, w, b1, nn, half[h ^ 1]);
                        for (uint32_t x = 0; x < nb; x++) {
                            uint32_t y = x + KD_PREFETCH;
                            if (KD_PREFETCH && y < nb) prefetch_rows(v, ids + (size_t)y * S, S);
                            else if (KD_PREFETCH && y - nb < nn) prefetch_rows(v, next + (size_t)(y - nb) * S, S);
                            const uint32_t *row = ids + (size_t)x * S;
                            loss += task->produce_ids(task->ctx, v, row, recs, scratch_of(r, w));
                            apply_unit(apply_run(r, task), v, row[0], recs, R, delta_of(r, w), save);
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
                for (uint32_t w = 0; w < W; w++) acc += *(const kd_v16 *)(rep_of(r, w) + i * m->stride + c) - base;
                *(kd_v16 *)(qm + c) = acc;
                if (r->fused)
                    for (uint32_t w = 0; w < W; w++) *(kd_v16 *)(rep_of(r, w) + i * m->stride + c) = acc;
            }
            float bb = m->bi[i], accb = bb;
            for (uint32_t w = 0; w < W; w++) accb += r->view[w].bi[i] - bb;
            m->bi[i] = accb;
            if (r->fused)
                for (uint32_t w = 0; w < W; w++) r->view[w].bi[i] = accb;
        }
        kd_barrier_wait(&r->bar);
        if (r->fused)
            continue;
        /* transposed tasks: this round's units on the master, on one thread, in order */
        if (r->any_transposed) {
            if (t == 0)
                for (int k = 0; k < r->ntasks; k++) {
                    const kd_sgd_task *task = &r->tasks[k];
                    if (!task->transposed) continue;
                    uint64_t lo = task->units * q / r->rounds, hi = task->units * (q + 1) / r->rounds;
                    double loss = 0;
                    for (uint64_t x = lo; x < hi; x++) {
                        uint32_t u;
                        loss += task->produce(task->ctx, m, r->epoch, x, &u, r->recs, scratch_of(r, 0));
                        if (u != KD_NO_ITEM)
                            apply_unit(apply_run(r, task), &r->tview, u, r->recs, task->recs_per_unit, delta_of(r, 0),
                                       r->pu_old);
                    }
                    r->rep_loss[k] += loss;
                }
            kd_barrier_wait(&r->bar);
        }
        /* ... then (unless the merge wrote them there: fused) each worker's thread copies
         * the merged rows into its replica, so that the
         * next round finds them in its own core's cache (when other threads wrote them there,
         * the round's random row reads each missed to the other core) */
        for (uint32_t w = (uint32_t)t; w < W; w += uT) {
            memcpy(rep_of(r, w), m->Q, (size_t)m->n_items * m->stride * 4);
            memcpy(r->view[w].bi, m->bi, (size_t)m->n_items * 4);
        }
    }
    /* the caller reads the master and the losses once every thread is back */
}


/* ---------------------------------------------------------------- a run */

/* Step 1: what can be refused before anything is allocated. */
static int check_params(const kd_sgd_task *tasks, int ntasks, const kd_sgd_params *p, kd_err *e)
{
    if (!(p->lr > 0) || !isfinite(p->lr)) return kd_fail_usage(e, "--lr must be positive");
    if (ntasks < 1 || ntasks > KD_MAX_TASKS) return kd_fail(e, "bad number of training tasks");
    if (p->threads > 256) return kd_fail_usage(e, "--threads: at most 256");
    if (!p->hogwild && p->replicas) {
        if (p->replicas > 64) return kd_fail_usage(e, "--replicas: at most 64 workers");
        if (p->optim != KD_OPT_SGD) return kd_fail_usage(e, "--replicas works with --optim sgd only");
        for (int k = 0; k < ntasks; k++)
            if (!tasks[k].units_are_users && !tasks[k].transposed &&
                !(tasks[k].part_units && tasks[k].part_sample && tasks[k].produce_ids))
                return kd_fail_usage(e, "--replicas is not available for this loss");
    }
    return 0;
}

/* Step 2: the run's buffers as a table of sizes, then one allocation carved by it (llm.c's
 * malloc_and_point_parameters).  Every piece starts on a cache line (the kernels load
 * whole 64-byte vectors, and two threads' pieces never share a line). */
enum { B_USERS, B_RECS, B_LOSS, B_HOG_LOSS, B_PU_OLD, B_DELTA, B_SCRATCH, B_G, B_VIEW, B_REP, B_IDS, B_REP_LOSS, B_N };

static uint64_t line_up(uint64_t n) { return (n + 63) & ~(uint64_t)63; }

/* a * b and a + b, setting *bad on overflow */
static uint64_t mul_ok(uint64_t a, uint64_t b, int *bad)
{
    uint64_t x;
    if (kd_mul(a, b, &x)) { *bad = 1; return 0; }
    return x;
}

static uint64_t add_ok(uint64_t a, uint64_t b, int *bad)
{
    uint64_t x;
    if (kd_add(a, b, &x)) { *bad = 1; return 0; }
    return x;
}

/* Sizes in bytes of every buffer (0: not needed), and the run's strides; -1 if a size
 * overflows. */
static int plan_buffers(sgd_run *r, uint64_t bytes[B_N])
{
    const kd_model *m = r->m;
    const kd_sgd_task *tasks = r->tasks;
    uint64_t T = (uint64_t)r->T, W = r->W, max_units = 0, max_recs = 0, max_scratch = 0, S = 1, rl = 0;
    int bad = 0;
    r->samples = 0;
    for (int k = 0; k < r->ntasks; k++) {
        uint32_t R = tasks[k].recs_per_unit;
        r->upb[k] = KD_SGD_BLOCK / R ? KD_SGD_BLOCK / R : 1;
        uint64_t units = r->p->hogwild ? T : W ? W : r->upb[k];
        max_units = units > max_units ? units : max_units;
        /* hogwild and replica workers each keep their records on their own lines */
        uint64_t need = mul_ok(units, (r->p->hogwild || W) ? rec_lines(R) : R, &bad);
        max_recs = need > max_recs ? need : max_recs;
        max_scratch = tasks[k].scratch_bytes > max_scratch ? tasks[k].scratch_bytes : max_scratch;
        r->samples += (uint64_t)((double)tasks[k].units * tasks[k].samples_per_unit);
        rl = rec_lines(R) > rl ? rec_lines(R) : rl;
        if (!tasks[k].units_are_users) S = tasks[k].ids_per_unit > S ? tasks[k].ids_per_unit : S;
    }
    uint64_t row = (uint64_t)m->stride * 4;
    memset(bytes, 0, B_N * sizeof *bytes);
    r->scratch_stride = (size_t)line_up(max_scratch);
    r->rec_stride = (size_t)rl;
    bytes[B_USERS] = mul_ok(max_units, 4, &bad);
    bytes[B_RECS] = mul_ok(max_recs, sizeof(kd_rec), &bad);
    bytes[B_LOSS] = mul_ok(max_units, sizeof(double), &bad);
    bytes[B_HOG_LOSS] = mul_ok(T, KD_MAX_TASKS * sizeof(double), &bad);
    bytes[B_PU_OLD] = add_ok(mul_ok(max_units, row, &bad), 64, &bad);
    bytes[B_DELTA] = mul_ok(r->NB, row, &bad);
    bytes[B_SCRATCH] = mul_ok(r->NB, r->scratch_stride, &bad);
    if (opt_moments(r->p->optim)) { /* per moment: P | Q | bu | bi (floats), then Adam's counts */
        uint64_t rows = (uint64_t)m->n_users + m->n_items, k = (uint64_t)opt_moments(r->p->optim);
        bytes[B_G] = add_ok(mul_ok(mul_ok(opt_moment_floats(m), k, &bad), 4, &bad), k == 2 ? mul_ok(rows, 4, &bad) : 0, &bad);
    }
    if (W) {
        /* each replica starts on a cache line: Q, then bi, padded to 16 floats */
        uint64_t rs = add_ok(mul_ok(m->n_items, m->stride, &bad), (uint64_t)m->n_items + 16, &bad);
        r->rep_stride = (size_t)(line_up(mul_ok(rs, 4, &bad)) / 4);
        r->ids_stride = (size_t)mul_ok(2 * KD_BATCH, S, &bad);
        bytes[B_VIEW] = mul_ok(W, sizeof(kd_model), &bad);
        bytes[B_REP] = mul_ok(mul_ok(W, r->rep_stride, &bad), 4, &bad);
        bytes[B_IDS] = mul_ok(mul_ok(W, r->ids_stride, &bad), 4, &bad);
        bytes[B_REP_LOSS] = mul_ok(W, KD_MAX_TASKS * sizeof(double), &bad);
    }
    return bad ? -1 : 0;
}

static int alloc_buffers(sgd_run *r, kd_err *e)
{
    uint64_t bytes[B_N], off[B_N], total = 0;
    if (plan_buffers(r, bytes))
        return kd_fail(e, "out of memory (training buffers too large)");
    for (int b = 0; b < B_N; b++) {
        off[b] = total;
        if (kd_add(total, line_up(bytes[b]), &total))
            return kd_fail(e, "out of memory (training buffers too large)");
    }
    if (total > SIZE_MAX || !(r->mem = kd_alloc_big(64, total ? (size_t)total : 64))) {
        r->mem = NULL;
        return kd_fail(e, "out of memory (%llu bytes of training buffers)", (unsigned long long)total);
    }
    uint8_t *base = r->mem;
    /* the optimiser's state starts at zero; the loss slots are summed before all are written */
    if (bytes[B_G]) memset(base + off[B_G], 0, (size_t)bytes[B_G]);
    memset(base + off[B_HOG_LOSS], 0, (size_t)bytes[B_HOG_LOSS]);
    memset(base + off[B_REP_LOSS], 0, (size_t)bytes[B_REP_LOSS]);
    r->users = (uint32_t *)(base + off[B_USERS]);
    r->recs = (kd_rec *)(base + off[B_RECS]);
    r->loss = (double *)(base + off[B_LOSS]);
    r->hog_loss = (double *)(base + off[B_HOG_LOSS]);
    r->pu_old = (float *)(base + off[B_PU_OLD]);
    r->delta = (float *)(base + off[B_DELTA]);
    r->scratch = base + off[B_SCRATCH];
    if (bytes[B_G]) {
        kd_model *m = r->m;
        float *f = (float *)(base + off[B_G]);
        for (int k = 0; k < opt_moments(r->p->optim); k++, f += opt_moment_floats(m)) {
            kd_model *s = k ? &r->st.s2 : &r->st.s1;
            s->P = f, s->Q = f + (size_t)m->n_users * m->stride;
            s->bu = s->Q + (size_t)m->n_items * m->stride, s->bi = s->bu + m->n_users;
        }
        if (r->p->optim == KD_OPT_ADAM) r->st.nP = (uint32_t *)f, r->st.nQ = r->st.nP + m->n_users;
        r->st_t = opt_transposed(&r->st);
        r->stateful = 1;
    }
    r->view = bytes[B_VIEW] ? (kd_model *)(base + off[B_VIEW]) : NULL;
    r->rep = bytes[B_REP] ? (float *)(base + off[B_REP]) : NULL;
    r->ids = bytes[B_IDS] ? (uint32_t *)(base + off[B_IDS]) : NULL;
    r->rep_loss = bytes[B_REP_LOSS] ? (double *)(base + off[B_REP_LOSS]) : NULL;
    return 0;
}

/* Step 3, replica mode: the rounds, each worker's units of every task, and its replica
 * of the item rows (blocks and hogwild need nothing beyond the buffers). */
static int setup_replicas(sgd_run *r, kd_err *e)
{
    const kd_sgd_task *tasks = r->tasks;
    kd_model *m = r->m;
    uint64_t all = 0;
    for (int k = 0; k < r->ntasks; k++) all += tasks[k].units;
    uint64_t per = (uint64_t)KD_ROUND_PER_ITEM * m->n_items;
    per = r->p->round_units ? r->p->round_units : per > KD_ROUND_UNITS ? per : KD_ROUND_UNITS;
    r->rounds = (all + per - 1) / per;
    r->rounds = r->rounds ? r->rounds : 1;
    for (int k = 0; k < r->ntasks; k++) {
        if (tasks[k].transposed) continue; /* run on the master, not dealt to workers */
        if (tasks[k].units_are_users) {
            for (uint32_t w = 0; w < r->W; w++)
                r->wunits[k][w] = w < tasks[k].units ? (tasks[k].units - w + r->W - 1) / r->W : 0;
            continue;
        }
        if (tasks[k].part_init && tasks[k].part_init(tasks[k].ctx, r->W, e))
            return -1;
        uint64_t sum = 0;
        for (uint32_t w = 0; w < r->W; w++) sum += r->wunits[k][w] = tasks[k].part_units(tasks[k].ctx, w);
        if (sum != tasks[k].units)
            return kd_fail(e, "internal error: workers' units do not add up");
    }
    size_t qn = (size_t)m->n_items * m->stride;
    r->fused = !r->any_transposed && (uint64_t)qn * 4 >= KD_FUSE_BYTES;
    for (uint32_t w = 0; w < r->W; w++) {
        float *q = rep_of(r, w);
        memcpy(q, m->Q, qn * 4);
        memcpy(q + qn, m->bi, (size_t)m->n_items * 4);
        r->view[w] = *m;
        r->view[w].Q = q;
        r->view[w].bi = q + qn;
    }
    return 0;
}

/* The divergence check after an epoch, the model's rows split over the threads (a pass
 * over every parameter: on amazon-book at D = 64, 24 MB an epoch). */
typedef struct finite_job {
    const kd_model *m;
    int ok[256];
} finite_job;

static void finite_rows(void *ctx, int t, int T)
{
    finite_job *j = ctx;
    unsigned long long lo, hi;
    kd_par_range((unsigned long long)j->m->n_users + j->m->n_items, t, T, &lo, &hi);
    j->ok[t] = kd_model_finite_rows(j->m, lo, hi);
}

static int model_finite(const sgd_run *r, kd_pool *pool)
{
    finite_job j = { .m = r->m };
    kd_pool_run(pool, finite_rows, &j);
    for (int t = 0; t < r->T; t++)
        if (!j.ok[t]) return 0;
    return 1;
}

/* Step 4: the epochs, each followed by the hook. */
static int run_epochs(sgd_run *r, kd_pool *pool, kd_sgd_hook hook, void *hook_ctx, kd_err *e)
{
    const kd_sgd_params *p = r->p;
    const kd_sgd_task *tasks = r->tasks;
    void (*epoch_fn)(void *, int, int) = p->hogwild ? epoch_hogwild : r->W ? epoch_replicas : epoch_blocked;
    for (uint64_t ep = 0; ep < p->epochs; ep++) {
        r->epoch = ep;
        r->lr = (float)(p->lr * pow(p->lr_decay, (double)ep));
        if (r->nd) { /* the epoch's lr, everything else as set up, no decay */
            struct sgd_run *nd = r->nd;
            *nd = *r;
            nd->p = &r->p_nd;
        }
        for (int k = 0; k < r->ntasks; k++) {
            r->task_loss[k] = 0;
            if (tasks[k].epoch_begin && tasks[k].epoch_begin(tasks[k].ctx, r->m, ep, e))
                return -1;
        }
        double t0 = kd_now();
        if (r->W) memset(r->rep_loss, 0, (size_t)r->W * KD_MAX_TASKS * sizeof *r->rep_loss);
        kd_pool_run(pool, epoch_fn, r);
        double secs = kd_now() - t0, loss = 0;
        for (int k = 0; k < r->ntasks; k++) {
            if (p->hogwild)
                for (int t = 0; t < r->T; t++) r->task_loss[k] += r->hog_loss[(size_t)t * KD_MAX_TASKS + k];
            for (uint32_t w = 0; w < r->W; w++) r->task_loss[k] += r->rep_loss[(size_t)w * KD_MAX_TASKS + k];
            loss += r->task_loss[k] / (double)(tasks[k].units ? tasks[k].units : 1);
        }
        if (!isfinite(loss) || !model_finite(r, pool))
            return kd_fail(e, "training diverged at epoch %llu (loss %g); try a smaller --lr", (unsigned long long)ep + 1, loss);
        kd_sgd_epoch info = { .epoch = (uint32_t)ep + 1, .epochs = p->epochs, .loss = loss, .seconds = secs,
                              .samples_per_s = secs > 0 ? (double)r->samples / secs : 0 };
        int h = hook ? hook(hook_ctx, r->m, &info, e) : 0;
        if (h < 0) return -1;
        if (h > 0) break;
    }
    return 0;
}

int kd_sgd_train(kd_model *m, const kd_sgd_task *tasks, int ntasks, const kd_sgd_params *p,
                 kd_sgd_hook hook, void *hook_ctx, kd_err *e)
{
    if (check_params(tasks, ntasks, p, e))
        return -1;
    sgd_run r = { .m = m, .p = p, .tasks = tasks, .ntasks = ntasks, .T = p->threads < 1 ? 1 : p->threads,
                  .W = p->hogwild ? 0 : p->replicas };
    /* the per-worker buffers of replica mode are indexed by worker, not thread */
    r.NB = r.W ? r.W : (uint32_t)r.T;
    r.tview = (kd_model){ .n_users = m->n_items, .n_items = m->n_users, .dim = m->dim, .stride = m->stride,
                          .P = m->Q, .Q = m->P, .bu = m->bi, .bi = m->bu };
    sgd_run nd;
    for (int k = 0; k < ntasks; k++) {
        r.any_transposed |= tasks[k].transposed;
        if (tasks[k].no_decay) r.nd = &nd;
    }
    r.p_nd = *p;
    r.p_nd.reg = r.p_nd.reg_bias = 0;
    kd_pool *pool = NULL;
    int ret = -1;
    if (alloc_buffers(&r, e) || (r.W && setup_replicas(&r, e)))
        goto done;
    kd_barrier_init(&r.bar, (unsigned)r.T);
    if (!(pool = kd_pool_new(r.T, e)))
        goto done;
    ret = run_epochs(&r, pool, hook, hook_ctx, e);
done:
    kd_pool_free(pool);
    free(r.mem);
    return ret;
}
