/* kd_sgd: the training engine under kd-train and kd-distill: deterministic block-parallel
 * SGD (or Adagrad) on MF parameters, with validation-based early stopping.
 *
 * A loss is described by a task that turns a "unit" (a sampled positive, a user, ...)
 * into a fixed number of records (u, item, coef): "move score(u, item) up by coef", i.e.
 * coef = -dLoss/dscore(u, item).  From a record the engine applies
 *     p_u    += lr * (coef * q_item - [ureg] reg * p_u)
 *     q_item += lr * (coef * p_u    -        reg * q_item)
 *     b_item += lr * (coef          -   reg_bias * b_item)
 * (user biases get no gradient from any ranking loss, which is invariant to them).
 *
 * Determinism whatever the thread count: an epoch is cut into blocks of KD_SGD_BLOCK
 * records, a fixed number independent of threads.  For each block
 *   A. every unit's records are produced from the parameters as they stand at the start of
 *      the block (threads split the units; a unit's random numbers come from a counter-
 *      based stream keyed by (seed, epoch, unit), so it does not matter who computes it);
 *   B1. user rows are updated: thread t owns users u % T == t and applies their records in
 *      record order, saving each p_u it read for B2;
 *   B2. item rows likewise, owner item % T, using the saved p_u.
 * Every row therefore sees the same updates, from the same values, in the same order for
 * any T; barriers separate the phases.  The price against plain sequential SGD is that a
 * gradient may be up to one block stale (a few hundred samples; the effect on accuracy is
 * what make bench and the tests measure).  --hogwild instead lets threads update shared
 * rows without ordering: faster where barriers dominate, not reproducible, and recorded in
 * provenance.
 */
#ifndef KD_SGD_H
#define KD_SGD_H

#include <stdint.h>

#include "kd_dataset.h"
#include "kd_model.h"

#ifndef KD_SGD_BLOCK
#define KD_SGD_BLOCK  1024u         /* records per block: part of the algorithm */
#endif
#define KD_NO_ITEM    UINT32_MAX    /* an empty record slot */

enum kd_optim { KD_OPT_SGD, KD_OPT_ADAGRAD };

typedef struct kd_rec {
    uint32_t u, item;
    float    coef;
    uint32_t ureg;   /* 1: apply the user's L2 decay with this record */
} kd_rec;

typedef struct kd_sgd_task {
    uint64_t units;            /* per epoch */
    uint32_t recs_per_unit;
    double   samples_per_unit; /* for throughput: BPR triples a unit stands for */
    size_t   scratch_bytes;    /* per-thread scratch handed to produce() */
    /* Fills recs[0..recs_per_unit) (unused slots: item = KD_NO_ITEM) for `unit` of
     * `epoch`, reading the model only; returns the unit's loss. */
    double (*produce)(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, kd_rec *recs, void *scratch);
    /* Optional: called before each epoch on one thread (for per-epoch state). */
    int (*epoch_begin)(void *ctx, const kd_model *m, uint64_t epoch, kd_err *e);
    void *ctx;
} kd_sgd_task;

typedef struct kd_sgd_params {
    uint32_t epochs;
    double   lr, lr_decay;     /* lr at epoch e = lr * lr_decay^e */
    double   reg, reg_bias;
    int      optim;            /* enum kd_optim */
    int      threads, hogwild;
    int      verbosity;        /* 0 quiet, 1 progress on a terminal, 2 a line per epoch */
    const char *prog;          /* for progress lines */
    /* early stopping: evaluate on valid every valid_every epochs (0 = off) */
    uint32_t valid_every, patience;
    int      select_metric;
    uint32_t select_k;
} kd_sgd_params;

typedef struct kd_train_log {
    uint32_t epochs_run;
    double  *loss;         /* (epochs_run) mean loss per unit */
    double  *throughput;   /* (epochs_run) samples per second (measured) */
    uint32_t n_valid;
    double  *valid;        /* (n_valid, 2): epoch, metric */
    uint32_t best_epoch;   /* epoch whose parameters are returned (1-based; 0 = last) */
    int      stopped_early;
} kd_train_log;

/* Trains m in place.  On error (divergence, out of memory) m is unspecified. */
int  kd_sgd_train(kd_model *m, const kd_dataset *d, const kd_sgd_task *task, const kd_sgd_params *p,
                  kd_train_log *log, kd_err *e);
void kd_train_log_free(kd_train_log *log);

/* Adds train.loss, train.valid and (unless no_timing) the volatile train.throughput. */
int kd_train_log_to_art(const kd_train_log *log, kd_art *a, int no_timing, kd_err *e);

/* softplus(-x) = log(1 + e^-x) and sigmoid(-x) = 1/(1 + e^x), without overflow. */
double kd_softplus_neg(double x);
double kd_sigmoid_neg(double x);

#endif
