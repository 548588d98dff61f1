/* kd_sgd: the training engine under kd-train and kd-distill: SGD (or Adagrad, Adam) on MF
 * parameters, reproducible for any thread count.  After every epoch it calls an epoch
 * hook, which may stop the run (kd_train's hook validates, keeps the best parameters,
 * stops early and reports progress); the engine itself never prints and knows nothing
 * of evaluation or of the command line.
 *
 * A loss is described by tasks.  A task turns a "unit" (one sampled positive with its
 * negatives, one user's distillation list, ...) into one user u and a fixed number of
 * records (item, coef): "move score(u, item) up by coef", i.e. coef = -dLoss/dscore(u,item).
 * From a unit the engine applies one user step and one step per record:
 *     p_u    += lr * (sum_k coef_k * q_k  - reg * p_u)
 *     q_k    += lr * (coef_k * p_u_old    - reg * q_k)
 *     b_k    += lr * (coef_k              - reg_bias * b_k)
 * (user biases get no gradient from any ranking loss, which is invariant to them).  For
 * BPR this is the classic update of a triple.  Several tasks (BPR plus a distillation
 * term) are interleaved in a fixed order within each epoch.
 *
 * Three schemes.  Each result depends on the data, the flags and the seed, never on the
 * number of threads, except --hogwild's.
 *
 * Replicas (the default with SGD, W = 2 workers): worker w owns the users u % W == w and
 * keeps a private copy of the item rows.  An epoch is cut into rounds of about 65,536
 * units, or 16 per item if more (KD_ROUND_UNITS, KD_ROUND_PER_ITEM; at least one round
 * an epoch); in a round each worker runs its share of every task's units in order --
 * plain sequential SGD on rows
 * no other worker writes -- then the item rows are merged, master += sum over workers of
 * (replica - master), in worker order, and copied back into every replica.  Threads run
 * whole workers (worker w on thread w % T), so T only decides who computes what.  BPR's
 * units are dealt by sampling: worker w visits its own users in an order shuffled for
 * (seed, epoch, w), each user's interactions in one run (kd_bpr.h), negatives from a
 * counter-based stream keyed by (seed, epoch, w, k), which is why the result depends on
 * W.  (Before, each positive was a uniform draw among the worker's interactions: on
 * amazon-book that fetched a cold user row per sample.)  Cost against sequential SGD: a
 * worker sees the others' item updates only at merges (once an epoch on the default
 * data).  Measured on 8 seeds of the default data (early stopping with patience 6), test
 * Recall@10 0.2170 vs 0.2193 for the block scheme (teacher, D=64) and 0.1707 vs 0.1726
 * (student, D=32): paired differences -0.0023 and -0.0019, t = -0.7, within seed noise.  Why this
 * and not the blocks below: no thread ever touches a row another thread wrote during a
 * round, so the rows stay in each core's cache; 2 threads ran 1.7-2.1x one (make bench).
 *
 * Blocks (--replicas 0, and Adagrad and Adam, whose state replicas would need to merge):
 * an epoch is cut into blocks of about KD_SGD_BLOCK records, a number independent of
 * threads.  For each block
 *   A. every unit's records are produced from the parameters as they stand at the start of
 *      the block (threads split the units; a unit's random numbers come from a counter-
 *      based stream keyed by (seed, epoch, unit), so it does not matter who computes it);
 *   B1. user rows are updated: thread t owns users u % T == t and applies their units in
 *      unit order, saving each p_u it read for B2;
 *   B2. item rows likewise, owner item % T, records in order, using the saved p_u.
 * Every row therefore sees the same updates, from the same values, in the same order for
 * any T; barriers separate the phases.  A gradient may be one block stale (measured: no
 * accuracy change between 2-record and 1024-record blocks on the default data).  It
 * scales on models larger than a core's cache, not on small ones: every block moves the
 * touched rows between cores.
 *
 * --hogwild lets threads update shared rows without any order: not reproducible, and
 * recorded in provenance.
 */
#ifndef KD_SGD_H
#define KD_SGD_H

#include <stdint.h>

#include "kd_err.h"
#include "kd_model.h"

#ifndef KD_SGD_BLOCK
#define KD_SGD_BLOCK  1024u         /* records per block: part of the algorithm */
#endif
/* Replica mode merges every KD_ROUND_UNITS units (all tasks), or every KD_ROUND_PER_ITEM
 * units per item row when that is more, and at least once an epoch: part of the
 * algorithm.  A merge streams every item row of every replica, so its cost is set against
 * the round's work: on the default data (21,666 units, 500 items), 2 threads ran at 20.2 M
 * samples/s with four merges an epoch and 22.9 with one (medians of 6 runs), and one cost
 * no accuracy (8 seeds, teacher test Recall@10 0.2170 vs 0.2166 with four).  On larger
 * catalogues the per-item floor keeps a merge (about 7 row transfers per item: read master
 * and W = 2 replicas, write master, copy into each replica) under 1/16 of the row traffic
 * of the round's units (about 6 row transfers each: three rows read and written): on
 * amazon-book (24,915 items) 65,536 units a round were 10 merges an epoch. */
#define KD_ROUND_UNITS 65536u
#define KD_ROUND_PER_ITEM 16u
#define KD_NO_ITEM    UINT32_MAX    /* an empty record slot, or a unit with no user */

enum kd_optim { KD_OPT_SGD, KD_OPT_ADAGRAD, KD_OPT_ADAM };

typedef struct kd_rec {
    uint32_t item;
    float    coef;
} kd_rec;

typedef struct kd_sgd_task {
    uint64_t units;            /* per epoch */
    uint32_t recs_per_unit;    /* the most records a unit produces */
    double   samples_per_unit; /* for throughput: BPR triples a unit stands for */
    size_t   scratch_bytes;    /* per-thread scratch handed to produce() */
    /* Sets *user (KD_NO_ITEM to skip the unit) and fills recs[0..recs_per_unit) (unused
     * slots: item = KD_NO_ITEM) for `unit` of `epoch`, reading the model only; returns
     * the unit's loss. */
    double (*produce)(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                      kd_rec *recs, void *scratch);
    /* Optional: called before each epoch on one thread (for per-epoch state). */
    int (*epoch_begin)(void *ctx, const kd_model *m, uint64_t epoch, kd_err *e);
    /* Replica mode deals the units to W workers, worker w owning the users u % W == w, and
     * needs one of two ways to do it.  units_are_users: unit u is user u's (the engine deals
     * them).  Otherwise the task samples each worker's units itself: part_init(W) once,
     * part_units(w) units of worker w an epoch (they sum to `units`), part_sample() writes
     * units k0..k0+n-1 of worker w as rows of ids_per_unit ids (ids[0] the user, the rest
     * items), and produce_ids() does what produce() does from such a row. */
    int      units_are_users;
    int      (*part_init)(void *ctx, uint32_t W, kd_err *e);
    uint64_t (*part_units)(void *ctx, uint32_t w);
    void     (*part_sample)(void *ctx, uint64_t epoch, uint32_t w, uint64_t k0, uint64_t n, uint32_t *ids);
    uint32_t ids_per_unit;
    double   (*produce_ids)(void *ctx, const kd_model *m, const uint32_t *ids, kd_rec *recs, void *scratch);
    /* Transposed (item-side losses): a unit is one item and records over users.  produce()
     * sets *user to the item and recs[].item to users; the engine applies the unit to the
     * transposed model (P <-> Q, bu <-> bi): one step on q_i, one per record on p_u and
     * b_u (b_i gets none: a ranking of users for one item is invariant to it).  Blocks and
     * hogwild run such units like any other; replica mode, where an item unit would write
     * every worker's user rows, runs them on the master after each round's merge, one
     * thread, in unit order (so the result still does not depend on threads). */
    int      transposed;
    /* 1: this task's records carry no weight decay (reg and reg_bias are BPR's: its units'
     * steps keep them).  0, the default, decays every row a record touches, so a loss with
     * longer lists or more units regularises more, even at zero weight. */
    int      no_decay;
    void *ctx;
} kd_sgd_task;

#define KD_MAX_TASKS 4

#define KD_REPLICAS_DEFAULT 2u          /* workers of the default scheme (with SGD) */
#define KD_REPLICAS_AUTO    UINT32_MAX  /* not given: the default for the optimiser */

typedef struct kd_sgd_params {
    uint32_t epochs;
    double   lr, lr_decay;     /* lr at epoch e = lr * lr_decay^e */
    double   reg, reg_bias;
    int      optim;            /* enum kd_optim */
    int      threads, hogwild;
    uint32_t replicas;         /* 0: blocks; W > 0: W workers with private item replicas,
                                * (KD_REPLICAS_AUTO until kd_train_finish resolves it)
                                * merged every KD_ROUND_UNITS units */
    uint32_t round_units;      /* replica mode's round, if not the rule above (tests) */
} kd_sgd_params;

/* What the engine tells the hook after an epoch.  The measured figures are for people
 * (progress lines, make bench), never for an artifact: they differ on every run. */
typedef struct kd_sgd_epoch {
    uint32_t epoch;            /* epochs done, 1-based */
    uint32_t epochs;           /* of p->epochs */
    double   loss;             /* sum over tasks of the mean unit loss of this epoch */
    double   seconds;          /* measured: wall time of the epoch's updates */
    double   samples_per_s;    /* measured: samples (units x samples_per_unit) per second */
} kd_sgd_epoch;

/* The epoch hook, called on the calling thread between epochs (the engine's threads are
 * idle, m is as the epoch left it).  Returns 0 to go on, 1 to end the run there (a
 * success), or -1 with e filled to fail it. */
typedef int (*kd_sgd_hook)(void *ctx, const kd_model *m, const kd_sgd_epoch *ep, kd_err *e);

/* Trains m in place for p->epochs epochs, or until the hook (NULL: none) ends the run,
 * with ntasks tasks interleaved.  Every buffer of the run comes from one allocation,
 * freed before it returns.  On error (bad parameters, divergence, out of memory, a task's
 * or the hook's error) m is unspecified.  Runs on p->threads threads of its own. */
int kd_sgd_train(kd_model *m, const kd_sgd_task *tasks, int ntasks, const kd_sgd_params *p,
                 kd_sgd_hook hook, void *hook_ctx, kd_err *e);

/* softplus(-x) = log(1 + e^-x) and sigmoid(-x) = 1/(1 + e^x), without overflow. */
double kd_softplus_neg(double x);
double kd_sigmoid_neg(double x);

#endif
