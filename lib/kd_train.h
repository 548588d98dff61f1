/* kd_train: the command-line surface shared by kd-train and kd-distill: the training
 * flags, their defaults, their provenance lines, and the model artifact they write. */
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
    const char *select;   /* "ndcg@10" */
    const char *out;
    const char *cache, *label;  /* --cache DIR (stage caching), --label TEXT (its messages) */
    int level, no_timing;
} kd_train_opts;

/* long options every trainer accepts; values >= KD_TRAIN_OPT_BASE */
enum { KD_TRAIN_OPT_BASE = 1000 };
extern const struct option kd_train_options[];
#define KD_TRAIN_OPTION_COUNT 22

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
/* The help text of the shared flags. */
void kd_train_help(FILE *f, const kd_train_opts *defaults);
/* Provenance lines of every training parameter (no thread count). */
int  kd_train_prov(const kd_train_opts *o, kd_buf *b);
/* Provenance of how the training went: epochs run, best epoch, early stop. */
int  kd_train_prov_log(const kd_train_log *log, kd_buf *b);

/* The model artifact: model + training record + provenance (for kd_stage_commit); the
 * caller frees *out.  Fails when prov's sticky error is set. */
int  kd_train_art(const kd_train_opts *o, const kd_model *m, const kd_train_log *log, const kd_buf *prov,
                  kd_art **out, kd_err *e);


#endif
