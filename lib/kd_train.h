/* kd_train: the study layer over the engine, shared by kd-train and kd-distill: the
 * training flags, their defaults and provenance lines, a training run with validation,
 * early stopping and progress (kd_sgd's epoch hook), and the model artifact they write.
 *
 * A model artifact holds only what the inputs, flags and seed decide: parameters, the
 * per-epoch loss and validation record, provenance.  Measured figures (samples/s) go to
 * progress lines only, so two runs give the same bytes. */
#ifndef KD_TRAIN_H
#define KD_TRAIN_H

#include <getopt.h>
#include <stdint.h>

#include "kd_artifact.h"
#include "kd_dataset.h"
#include "kd_io.h"
#include "kd_model.h"
#include "kd_sgd.h"

typedef struct kd_train_opts {
    uint32_t dim, neg;
    uint64_t seed;
    double   init_std;
    kd_sgd_params sgd;
    /* early stopping: evaluate on valid every valid_every epochs (0 = off).  On by default
     * (KD_VALID_EVERY_DEFAULT ...); epochs_given, early_given: --epochs, --valid-every on the
     * command line; no_early: --no-early-stop (kd_train_resolve reads the three) */
    uint32_t valid_every, patience;
    int      epochs_given, early_given, no_early, lr_given;
    /* validate on a seeded sample of this many users with valid items (0: all of them);
     * valid_users_given: --valid-users was on the command line (then it is a parameter in
     * provenance; the default is recorded only in the result lines) */
    uint32_t valid_users;
    int      valid_users_given;
    const char *select;   /* "ndcg@10", resolved by kd_train_finish into: */
    int      select_metric;
    uint32_t select_k;
    const char *out;
    const char *cache, *label;  /* --cache DIR (stage caching), --label TEXT (its messages) */
    int level;
    int no_timing;        /* --no-timing: accepted, no effect (models hold no timings) */
    /* progress: 0 quiet, 1 a live line on a terminal, 2 a line per epoch (--verbose).
     * Lines are "<prog>: epoch ..." handed whole (newline or \r included) to say(); no
     * say, no progress.  The tool gives it: library code never prints. */
    int      verbosity;
    const char *prog;
    void   (*say)(void *ctx, const char *text);
    void    *say_ctx;
} kd_train_opts;

/* How a training went: what a model artifact records of it. */
typedef struct kd_train_log {
    uint32_t epochs_run;
    double  *loss;         /* (epochs_run) mean loss per unit */
    uint32_t n_valid;
    double  *valid;        /* (n_valid, 2): epoch, metric */
    uint32_t best_epoch;   /* epoch whose parameters are returned (1-based; 0 = last) */
    uint32_t valid_users, valid_users_of; /* validated on valid_users of valid_users_of users */
    int      stopped_early;
} kd_train_log;

/* long options every trainer accepts; values >= KD_TRAIN_OPT_BASE */
enum { KD_TRAIN_OPT_BASE = 1000 };
extern const struct option kd_train_options[];
#define KD_TRAIN_OPTION_COUNT 24

/* --valid-users when not given: validation on a seeded sample of this many users, chosen by
 * measurement (64-dim teacher, the pipeline's early stopping, test Recall@10 of the selected
 * epoch against full validation, paired over seeds).  On amazon-book (43,116 validation
 * users) 5000 stopped too early on noise: -0.0023 on average over 5 seeds and -0.0073 on
 * one, where the seeds' own sd is 0.0006; 20000 matched full validation.  On CiteULike
 * (about 5,000 validation users) 1000 lost 0.009, 5000 is nearly all of them. */
#define KD_VALID_USERS_DEFAULT 20000u

/* The defaults: early stopping as the pipelines run it (common.mk's EARLY: valid Recall@10
 * every 2 epochs, patience 15) under a cap of KD_EPOCHS_CAP epochs; without early stopping
 * (no validation split, or --no-early-stop) KD_EPOCHS_FIXED epochs, the old default. */
#define KD_VALID_EVERY_DEFAULT 2u
#define KD_PATIENCE_DEFAULT    15u
#define KD_SELECT_DEFAULT      "recall@10"
#define KD_EPOCHS_CAP          300u
#define KD_ADAM_LR             0.001  /* --lr's default with --optim adam (kd_train_finish) */
#define KD_EPOCHS_FIXED        50u

void kd_train_defaults(kd_train_opts *o, uint32_t dim);
/* Fills dst with the trainer options, then own[0..nown), then --help ('h') and
 * --version ('V') and the terminator: dst needs KD_TRAIN_OPTION_COUNT + nown + 3 entries. */
void kd_train_option_table(struct option *dst, const struct option *own, int nown);
/* Handles one option of kd_train_options (or -o, -q, -v); 1 if it was one, 0 if not, -1 on error. */
int  kd_train_parse(kd_train_opts *o, int c, const char *arg, kd_err *e);
/* The thread count to use: --threads, or by default 1 when the model fits in a core's
 * L2 cache (where a second thread only adds cross-core traffic) and all CPUs otherwise. */
int  kd_train_threads(const kd_train_opts *o, uint32_t n_users, uint32_t n_items);
/* Checks and resolves the early-stopping selection (metric@K). */
int  kd_train_finish(kd_train_opts *o, kd_err *e);
/* Once the dataset is known, before kd_train_prov: early stopping by default needs d's
 * validation split; without one the run falls back to KD_EPOCHS_FIXED epochs (--epochs if
 * given) and no early stopping.  Returns 1 when it fell back that way (the tool says so:
 * KD_TRAIN_NO_VALID_NOTE), 0 otherwise.  An explicit --valid-every stays as given (and
 * kd_train_run refuses it without a validation split). */
int  kd_train_resolve(kd_train_opts *o, const kd_dataset *d);
#define KD_TRAIN_NO_VALID_NOTE "no validation split: no early stopping, a fixed %u epochs (--valid-every needs one)"
/* The help text of the shared flags. */
void kd_train_help(FILE *f, const kd_train_opts *defaults);
/* Trains m with the tasks (kd_sgd_train) under o: validation every o->valid_every epochs
 * on d's valid split, the best parameters kept and returned, a stop after o->patience
 * evaluations without improvement, progress through o->say.  Fills log (free it with
 * kd_train_log_free; on error it is freed already). */
int  kd_train_run(const kd_train_opts *o, kd_model *m, const kd_dataset *d, const kd_sgd_task *tasks, int ntasks,
                  kd_train_log *log, kd_err *e);
void kd_train_log_free(kd_train_log *log);

/* Provenance lines of every training parameter (no thread count). */
int  kd_train_prov(const kd_train_opts *o, kd_buf *b);
/* Provenance of how the training went: epochs run, best epoch, early stop, and the
 * number of users validated on. */
int  kd_train_prov_log(const kd_train_log *log, kd_buf *b);

/* The model artifact: model + training record + provenance (for kd_stage_commit); the
 * caller frees *out.  Fails when prov's sticky error is set. */
int  kd_train_art(const kd_train_opts *o, const kd_model *m, const kd_train_log *log, const kd_buf *prov,
                  kd_art **out, kd_err *e);


#endif
