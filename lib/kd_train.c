/* kd_train: shared trainer flags, defaults, the run's epoch hook (validation, early
 * stopping, progress), provenance and output. */
#include "kd_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_cli.h"     /* number parsing, kd_cli_progress_ok */
#include "kd_eval.h"    /* kd_evaluate: validation */
#include "kd_metrics.h" /* kd_metric_parse, kd_metric_names */
#include "kd_prov.h"    /* provenance lines */
#include "kd_rng.h"     /* KD_STREAM_VALID_USERS */

enum {
    O_DIM = KD_TRAIN_OPT_BASE, O_EPOCHS, O_LR, O_LR_DECAY, O_REG, O_REG_BIAS, O_NEG, O_OPTIM, O_THREADS,
    O_SEED, O_INIT_STD, O_VALID_EVERY, O_PATIENCE, O_SELECT, O_HOGWILD, O_NO_TIMING, O_LEVEL, O_QUIET, O_VERBOSE,
    O_CACHE, O_LABEL, O_REPLICAS, O_VALID_USERS, O_NO_EARLY,
};

const struct option kd_train_options[] = {
    { "dim", 1, 0, O_DIM }, { "epochs", 1, 0, O_EPOCHS }, { "lr", 1, 0, O_LR },
    { "lr-decay", 1, 0, O_LR_DECAY }, { "reg", 1, 0, O_REG }, { "reg-bias", 1, 0, O_REG_BIAS },
    { "neg", 1, 0, O_NEG }, { "optim", 1, 0, O_OPTIM }, { "threads", 1, 0, O_THREADS },
    { "seed", 1, 0, O_SEED }, { "init-std", 1, 0, O_INIT_STD }, { "valid-every", 1, 0, O_VALID_EVERY },
    { "patience", 1, 0, O_PATIENCE }, { "select-metric", 1, 0, O_SELECT }, { "hogwild", 0, 0, O_HOGWILD },
    { "no-timing", 0, 0, O_NO_TIMING }, { "level", 1, 0, O_LEVEL }, { "quiet", 0, 0, O_QUIET },
    { "verbose", 0, 0, O_VERBOSE }, { "cache", 1, 0, O_CACHE }, { "label", 1, 0, O_LABEL },
    { "replicas", 1, 0, O_REPLICAS }, { "valid-users", 1, 0, O_VALID_USERS },
    { "no-early-stop", 0, 0, O_NO_EARLY },
};
_Static_assert(sizeof kd_train_options / sizeof kd_train_options[0] == KD_TRAIN_OPTION_COUNT, "KD_TRAIN_OPTION_COUNT");

void kd_train_option_table(struct option *dst, const struct option *own, int nown)
{
    memcpy(dst, kd_train_options, sizeof(struct option) * KD_TRAIN_OPTION_COUNT);
    if (nown)
        memcpy(dst + KD_TRAIN_OPTION_COUNT, own, sizeof(struct option) * (size_t)nown);
    dst[KD_TRAIN_OPTION_COUNT + nown] = (struct option){ "help", 0, 0, 'h' };
    dst[KD_TRAIN_OPTION_COUNT + nown + 1] = (struct option){ "version", 0, 0, 'V' };
    dst[KD_TRAIN_OPTION_COUNT + nown + 2] = (struct option){ 0, 0, 0, 0 };
}

void kd_train_defaults(kd_train_opts *o, uint32_t dim)
{
    memset(o, 0, sizeof *o);
    o->dim = dim;
    o->neg = 1;
    o->seed = 1;
    o->init_std = 0.1;
    o->sgd = (kd_sgd_params){
        .epochs = KD_EPOCHS_CAP, .lr = 0.05, .lr_decay = 1.0, .reg = 0.01, .reg_bias = 0.01, .optim = KD_OPT_SGD,
        .threads = 0, .replicas = KD_REPLICAS_AUTO,
    };
    o->verbosity = 1;
    /* early stopping by default: training to a fixed epoch count over- or under-trains
     * depending on the dataset (the issue-14 measurements: every method's student below the
     * plain one with fixed epochs on MovieLens-100K); these are the pipelines' settings */
    o->valid_every = KD_VALID_EVERY_DEFAULT;
    o->patience = KD_PATIENCE_DEFAULT;
    o->valid_users = KD_VALID_USERS_DEFAULT;
    o->select = KD_SELECT_DEFAULT;
    o->out = "-";
    o->level = 1; /* measured: level 6 cost 60% of an import for files 11% smaller */
}

int kd_train_parse(kd_train_opts *o, int c, const char *arg, kd_err *e)
{
    uint64_t v = 0;
    int r = 0;
    switch (c) {
    case 'o': o->out = arg; return 1;
    case 'q': o->verbosity = 0; return 1;
    case 'v': o->verbosity = 2; return 1;
    case O_QUIET: o->verbosity = 0; return 1;
    case O_VERBOSE: o->verbosity = 2; return 1;
    case O_DIM: r = kd_cli_u64("--dim", arg, 1, KD_MAX_DIM, &v, e); o->dim = (uint32_t)v; break;
    case O_EPOCHS:
        r = kd_cli_u64("--epochs", arg, 1, 100000, &v, e);
        o->sgd.epochs = (uint32_t)v;
        o->epochs_given = 1;
        break;
    case O_LR: r = kd_cli_double("--lr", arg, 1e-12, 1e3, &o->sgd.lr, e); o->lr_given = 1; break;
    case O_LR_DECAY: r = kd_cli_double("--lr-decay", arg, 1e-6, 1, &o->sgd.lr_decay, e); break;
    case O_REG: r = kd_cli_double("--reg", arg, 0, 1e3, &o->sgd.reg, e); break;
    case O_REG_BIAS: r = kd_cli_double("--reg-bias", arg, 0, 1e3, &o->sgd.reg_bias, e); break;
    case O_NEG: r = kd_cli_u64("--neg", arg, 1, 1000, &v, e); o->neg = (uint32_t)v; break;
    case O_OPTIM:
        if (!strcmp(arg, "sgd")) o->sgd.optim = KD_OPT_SGD;
        else if (!strcmp(arg, "adagrad")) o->sgd.optim = KD_OPT_ADAGRAD;
        else if (!strcmp(arg, "adam")) o->sgd.optim = KD_OPT_ADAM;
        else r = kd_fail_usage(e, "--optim: '%s' is not sgd, adagrad or adam", arg);
        break;
    case O_THREADS: r = kd_cli_u64("--threads", arg, 1, 256, &v, e); o->sgd.threads = (int)v; break;
    case O_SEED: r = kd_cli_u64("--seed", arg, 0, UINT64_MAX, &o->seed, e); break;
    case O_INIT_STD: r = kd_cli_double("--init-std", arg, 0, 10, &o->init_std, e); break;
    case O_VALID_EVERY:
        r = kd_cli_u64("--valid-every", arg, 1, 100000, &v, e);
        o->valid_every = (uint32_t)v;
        o->early_given = 1;
        break;
    case O_NO_EARLY: o->no_early = 1; return 1;
    case O_PATIENCE: r = kd_cli_u64("--patience", arg, 1, 100000, &v, e); o->patience = (uint32_t)v; break;
    case O_SELECT: o->select = arg; return 1;
    case O_HOGWILD: o->sgd.hogwild = 1; return 1;
    case O_NO_TIMING: o->no_timing = 1; return 1;
    case O_CACHE: o->cache = arg; return 1;
    case O_LABEL: o->label = arg; return 1;
    case O_REPLICAS: r = kd_cli_u64("--replicas", arg, 0, 64, &v, e); o->sgd.replicas = (uint32_t)v; break;
    case O_LEVEL: r = kd_cli_int("--level", arg, 0, 9, &o->level, e); break;
    case O_VALID_USERS:
        o->valid_users_given = 1;
        if (!strcmp(arg, "all")) { o->valid_users = 0; return 1; }
        r = kd_cli_u64("--valid-users", arg, 1, UINT32_MAX, &v, e);
        o->valid_users = (uint32_t)v;
        break;
    default: return 0;
    }
    return r ? -1 : 1;
}

int kd_train_threads(const kd_train_opts *o, uint32_t n_users, uint32_t n_items)
{
    if (o->sgd.threads > 0)
        return o->sgd.threads;
    int all = kd_cli_default_threads();
    /* replica mode: one thread per worker (more would only share the sampling) */
    if (!o->sgd.hogwild && o->sgd.replicas)
        return all < (int)o->sgd.replicas ? all : (int)o->sgd.replicas;
    /* block mode, measured (make bench): when the parameters fit in one core's L2 cache,
     * the second thread's cross-core row traffic costs more than it brings (1 thread 12M
     * samples/s, 2 threads 9-11M on the default data); larger models gain from every core */
    uint64_t bytes = ((uint64_t)n_users + n_items) * (((uint64_t)o->dim + 15) & ~15ull) * 4;
    return o->sgd.hogwild || bytes > (1u << 20) ? all : 1;
}

int kd_train_finish(kd_train_opts *o, kd_err *e)
{
    if (kd_metric_parse(o->select, &o->select_metric, &o->select_k))
        return kd_fail_usage(e, "--select-metric: '%s' is not METRIC@K (recall, ndcg, precision, hitrate, mrr, map)",
                             o->select);
    if (o->no_early && o->early_given)
        return kd_fail_usage(e, "--no-early-stop and --valid-every exclude each other");
    if (o->no_early) {
        o->valid_every = 0;
        if (!o->epochs_given) o->sgd.epochs = KD_EPOCHS_FIXED;
    }
    if (o->sgd.hogwild && o->sgd.replicas != KD_REPLICAS_AUTO && o->sgd.replicas)
        return kd_fail_usage(e, "--hogwild and --replicas exclude each other");
    /* Adam's step is about lr per coordinate whatever the gradient's scale, so SGD's 0.05
     * would be a step of half the init's spread: its usual rate instead */
    if (o->sgd.optim == KD_OPT_ADAM && !o->lr_given) o->sgd.lr = KD_ADAM_LR;
    if (o->sgd.replicas == KD_REPLICAS_AUTO)
        o->sgd.replicas = o->sgd.hogwild || o->sgd.optim != KD_OPT_SGD ? 0 : KD_REPLICAS_DEFAULT;
    return 0;
}

int kd_train_resolve(kd_train_opts *o, const kd_dataset *d)
{
    if (!o->valid_every || o->early_given || kd_csr_nnz(&d->valid))
        return 0;
    o->valid_every = 0;
    if (!o->epochs_given) o->sgd.epochs = KD_EPOCHS_FIXED;
    return 1;
}

void kd_train_help(FILE *f, const kd_train_opts *d)
{
    fprintf(f,
        "training (defaults in brackets):\n"
        "  --dim D          embedding dimension [%u]\n"
        "  --epochs N       at most N epochs (an epoch = one positive per train interaction)\n"
        "                   [%u with early stopping, else %u]\n"
        "  --lr X           learning rate [%g; adam %g]  --lr-decay X  lr *= X each epoch [%g]\n"
        "  --reg X          L2 on embeddings [%g]    --reg-bias X  L2 on item biases [%g]\n"
        "  --neg N          negatives per positive [%u]\n"
        "  --optim sgd|adagrad|adam [sgd]           --init-std X  N(0, X^2) init [%g]\n"
        "                   adam: beta1 0.9, beta2 0.999, eps 1e-8, bias-corrected per row by\n"
        "                   the row's own steps (rows step only when a unit touches them)\n"
        "  --seed N         [%llu]\n"
        "  --threads N      never changes the result [auto: one per replica, at most the CPUs;\n"
        "                   block scheme: 1 when the model fits in a core's cache, else all]\n"
        "  --replicas W     W workers own users mod W and keep private item rows, merged in\n"
        "                   worker order every 65,536 units: scales with threads, and the result\n"
        "                   depends on W, never on --threads [2 with sgd; more workers suit more\n"
        "                   cores].  0: the block scheme (always used by adagrad and adam)\n"
        "  --hogwild        lock-free updates: faster, NOT reproducible (recorded in provenance)\n"
        "early stopping (on by default when the dataset has a validation split; without one,\n"
        "a fixed %u epochs and a note on stderr):\n"
        "  --valid-every N  evaluate on valid every N epochs, keep the best parameters [%u]\n"
        "  --no-early-stop  train all --epochs epochs [%u], keep the last parameters\n"
        "  --patience P     stop after P evaluations without improvement [%u]\n"
        "  --select-metric M@K  [%s] (recall, ndcg, precision, hitrate, mrr, map)\n"
        "  --valid-users N|all  validate on N users drawn with --seed among those with valid\n"
        "                   items, the same users every evaluation [%u]\n"
        "output:\n"
        "  -o OUT           the model artifact [stdout, never a terminal]\n"
        "  --no-timing      no effect, kept for old scripts: a model holds no timings, so two\n"
        "                   runs give the same bytes (--verbose prints samples/s per epoch)\n"
        "  --level N        zlib level [%d];  -q/--quiet, -v/--verbose (a line per epoch)\n"
        "  --cache DIR      content-hashed stage cache: reuse the model of an identical earlier\n"
        "                   run (same binary, parameters and input content), else publish this one\n"
        "  --label TEXT     the stage's name in the one line printed with --cache [OUT's name]\n",
        d->dim, d->sgd.epochs, KD_EPOCHS_FIXED, d->sgd.lr, KD_ADAM_LR, d->sgd.lr_decay, d->sgd.reg, d->sgd.reg_bias, d->neg,
        d->init_std, (unsigned long long)d->seed, KD_EPOCHS_FIXED, d->valid_every, KD_EPOCHS_FIXED, d->patience, d->select, d->valid_users, d->level);
}

/* ---------------------------------------------------------------- a run */

typedef struct trainer {
    const kd_train_opts *o;
    const kd_dataset *d;
    /* --valid-users: the sampled users (vu, NULL: all) as a dataset and model of their own */
    uint32_t *vu;          /* (vd.n_users) their indices in d */
    kd_dataset vd;
    kd_model vm;
    kd_train_log *log;
    kd_model best;         /* the parameters of the best validation so far */
    double best_value;
    uint32_t since_best;   /* evaluations since */
    int live;              /* a terminal's progress line is open */
} trainer;

/* Rows `users[0..n)` of a into out (n rows, the same columns). */
static int csr_rows(kd_csr *out, const kd_csr *a, const uint32_t *users, uint32_t n, kd_err *e)
{
    uint64_t nnz = 0;
    for (uint32_t x = 0; x < n; x++) nnz += kd_csr_len(a, users[x]);
    *out = (kd_csr){ .rows = n, .cols = a->cols };
    out->indptr = kd_alloc_array((uint64_t)n + 1, sizeof *out->indptr);
    out->idx = kd_alloc_array(nnz ? nnz : 1, sizeof *out->idx);
    if (!out->indptr || !out->idx) {
        kd_csr_free(out);
        return kd_fail(e, "out of memory");
    }
    out->indptr[0] = 0;
    for (uint32_t x = 0; x < n; x++) {
        uint32_t len = kd_csr_len(a, users[x]);
        memcpy(out->idx + out->indptr[x], a->idx + a->indptr[users[x]], (size_t)len * sizeof *out->idx);
        out->indptr[x + 1] = out->indptr[x] + len;
    }
    return 0;
}

static void free_view(trainer *t)
{
    kd_csr_free(&t->vd.train);
    kd_csr_free(&t->vd.valid);
    kd_csr_free(&t->vd.test);
    free(t->vd.user_ids);
    kd_model_free(&t->vm);
    free(t->vu);
    memset(&t->vd, 0, sizeof t->vd);
    t->vu = NULL;
}

/* --valid-users: n users drawn once among those with valid items (a partial Fisher-Yates
 * shuffle from the run's seed and KD_STREAM_VALID_USERS, then in user order), so every
 * evaluation of the run ranks the same users.  They are evaluated as a dataset of their
 * own (t->vd: their train and valid rows) and a model of their own (t->vm: their user
 * rows, copied before each evaluation, and the live item rows), so an evaluation costs
 * n / n_users of a full one (kd_evaluate scores every user of the dataset it is given).
 * All users (t->vu stays NULL) when n is 0 or at least their number. */
static int sample_valid_users(trainer *t, const kd_dataset *d, const kd_model *m, uint32_t n, kd_err *e)
{
    const kd_csr *va = &d->valid;
    uint32_t have = 0;
    for (uint32_t u = 0; u < d->n_users; u++) have += kd_csr_len(va, u) > 0;
    t->log->valid_users_of = have;
    t->log->valid_users = n && n < have ? n : have;
    if (!n || n >= have)
        return 0;
    uint32_t *users = kd_alloc_array(have, sizeof *users);
    uint8_t *pick = kd_calloc_array(d->n_users, 1);
    if (!users || !pick) {
        free(users);
        free(pick);
        return kd_fail(e, "out of memory");
    }
    have = 0;
    for (uint32_t u = 0; u < d->n_users; u++)
        if (kd_csr_len(va, u)) users[have++] = u;
    kd_rng r = kd_rng_seed(kd_key(t->o->seed, KD_STREAM_VALID_USERS, 0));
    for (uint32_t x = 0; x < n; x++) {
        uint32_t y = x + kd_rng_below(&r, have - x), tmp = users[x];
        users[x] = users[y];
        users[y] = tmp;
        pick[users[x]] = 1;
    }
    uint32_t k = 0;
    for (uint32_t u = 0; u < d->n_users; u++)
        if (pick[u]) users[k++] = u;
    free(pick);
    t->vu = users;
    t->vd = (kd_dataset){ .n_users = n, .n_items = d->n_items, .item_ids = d->item_ids, .content_id = d->content_id };
    if (!(t->vd.user_ids = kd_alloc_array(n, sizeof *t->vd.user_ids)) ||
        csr_rows(&t->vd.train, &d->train, users, n, e) || csr_rows(&t->vd.valid, va, users, n, e) ||
        kd_csr_empty(&t->vd.test, n, d->n_items, e) || kd_model_alloc(&t->vm, n, 0, m->dim, e)) {
        if (!e->code) kd_fail(e, "out of memory");
        free_view(t);
        return -1;
    }
    for (uint32_t x = 0; x < n; x++) t->vd.user_ids[x] = d->user_ids[users[x]];
    return 0;
}

/* The model validation ranks: m itself, or the sampled users' rows of it. */
static const kd_model *valid_model(trainer *t, const kd_model *m)
{
    if (!t->vu)
        return m;
    kd_model *v = &t->vm;
    for (uint32_t x = 0; x < t->vd.n_users; x++) {
        memcpy(v->P + (size_t)x * v->stride, m->P + (size_t)t->vu[x] * m->stride, m->stride * sizeof(float));
        v->bu[x] = m->bu[t->vu[x]];
    }
    v->n_items = m->n_items;
    v->Q = m->Q;
    v->bi = m->bi;
    return v;
}

static void say_epoch(trainer *t, const kd_sgd_epoch *ep, const char *extra)
{
    const kd_train_opts *o = t->o;
    const char *prog = o->prog ? o->prog : "kd-train";
    char line[512];
    if (!o->say)
        return;
    if (o->verbosity >= 2) {
        snprintf(line, sizeof line, "%s: epoch %u/%u loss %.5f %.3g samples/s%s\n", prog, ep->epoch, ep->epochs,
                 ep->loss, ep->samples_per_s, extra);
    } else if (kd_cli_progress_ok(o->verbosity)) {
        snprintf(line, sizeof line, "\r%s: epoch %u/%u loss %.5f %.3g samples/s%s\033[K", prog, ep->epoch, ep->epochs,
                 ep->loss, ep->samples_per_s, extra);
        t->live = 1;
    } else {
        return;
    }
    o->say(o->say_ctx, line);
}

/* The epoch hook: records the loss, validates every valid_every epochs, keeps the best
 * parameters, stops after `patience` evaluations without improvement, reports. */
static int on_epoch(void *ctx, const kd_model *m, const kd_sgd_epoch *ep, kd_err *e)
{
    trainer *t = ctx;
    const kd_train_opts *o = t->o;
    kd_train_log *log = t->log;
    int stop = 0;
    char extra[96] = "";
    log->loss[ep->epoch - 1] = ep->loss;
    log->epochs_run = ep->epoch;
    if (o->valid_every && ep->epoch % o->valid_every == 0) {
        kd_eval_opts eo = { .ks = { o->select_k }, .nk = 1, .split = KD_SPLIT_VALID,
                            .threads = o->sgd.threads < 1 ? 1 : o->sgd.threads };
        kd_eval_result res;
        if (kd_evaluate(valid_model(t, m), t->vu ? &t->vd : t->d, &eo, &res, e))
            return -1;
        double v = res.mean[o->select_metric][0];
        kd_eval_result_free(&res);
        log->valid[2 * log->n_valid] = (double)ep->epoch;
        log->valid[2 * log->n_valid + 1] = v;
        log->n_valid++;
        snprintf(extra, sizeof extra, " valid %s@%u %.5f", kd_metric_names[o->select_metric], o->select_k, v);
        if (v > t->best_value) {
            t->best_value = v;
            t->since_best = 0;
            log->best_epoch = ep->epoch;
            kd_model_copy(&t->best, m);
        } else if (++t->since_best >= o->patience) {
            log->stopped_early = 1;
            stop = 1;
        }
    }
    say_epoch(t, ep, extra);
    return stop;
}

int kd_train_run(const kd_train_opts *o, kd_model *m, const kd_dataset *d, const kd_sgd_task *tasks, int ntasks,
                 kd_train_log *log, kd_err *e)
{
    memset(log, 0, sizeof *log);
    if (o->valid_every && kd_csr_nnz(&d->valid) == 0)
        return kd_fail_usage(e, "early stopping needs a validation split, and this dataset has none");
    trainer t = { .o = o, .d = d, .log = log, .best_value = -1 };
    uint64_t n = o->sgd.epochs ? o->sgd.epochs : 1;
    int r = -1;
    log->loss = kd_alloc_array(n, sizeof *log->loss);
    log->valid = kd_alloc_array(2 * n, sizeof *log->valid);
    if (!log->loss || !log->valid) {
        kd_fail(e, "out of memory");
        goto done;
    }
    if (o->valid_every && (sample_valid_users(&t, d, m, o->valid_users, e) ||
                           kd_model_alloc(&t.best, m->n_users, m->n_items, m->dim, e)))
        goto done;
    if (kd_sgd_train(m, tasks, ntasks, &o->sgd, on_epoch, &t, e))
        goto done;
    if (o->valid_every && log->best_epoch)
        kd_model_copy(m, &t.best);
    r = 0;
done:
    if (t.live)
        o->say(o->say_ctx, "\n");
    kd_model_free(&t.best);
    free_view(&t);
    if (r)
        kd_train_log_free(log);
    return r;
}

void kd_train_log_free(kd_train_log *log)
{
    free(log->loss);
    free(log->valid);
    memset(log, 0, sizeof *log);
}

/* ---------------------------------------------------------------- provenance and output */

int kd_train_prov(const kd_train_opts *o, kd_buf *b)
{
    kd_prov_u64(b, "dim", o->dim);
    kd_prov_u64(b, "epochs", o->sgd.epochs);
    kd_prov_f64(b, "lr", o->sgd.lr);
    kd_prov_f64(b, "lr_decay", o->sgd.lr_decay);
    kd_prov_f64(b, "reg", o->sgd.reg);
    kd_prov_f64(b, "reg_bias", o->sgd.reg_bias);
    kd_prov_u64(b, "neg", o->neg);
    kd_prov_str(b, "optim", o->sgd.optim == KD_OPT_ADAM ? "adam" : o->sgd.optim == KD_OPT_ADAGRAD ? "adagrad" : "sgd");
    kd_prov_f64(b, "init_std", o->init_std);
    kd_prov_u64(b, "seed", o->seed);
    kd_prov_u64(b, "sgd_block", KD_SGD_BLOCK);
    kd_prov_u64(b, "hogwild", (uint64_t)o->sgd.hogwild);
    kd_prov_u64(b, "replicas", o->sgd.replicas);
    kd_prov_u64(b, "replica_round_units", KD_ROUND_UNITS);
    kd_prov_u64(b, "replica_round_per_item", KD_ROUND_PER_ITEM);
    kd_prov_str(b, "replica_sampling", "user_runs");
    kd_prov_u64(b, "valid_every", o->valid_every);
    kd_prov_u64(b, "patience", o->valid_every ? o->patience : 0);
    if (o->valid_every && o->valid_users_given) kd_prov_u64(b, "valid_users", o->valid_users);
    kd_prov_str(b, "select_metric", o->valid_every ? o->select : "none");
    return kd_buf_error(b) ? -1 : 0;
}

int kd_train_prov_log(const kd_train_log *log, kd_buf *b)
{
    kd_prov_u64(b, "result.epochs_run", log->epochs_run);
    kd_prov_u64(b, "result.best_epoch", log->best_epoch ? log->best_epoch : log->epochs_run);
    kd_prov_u64(b, "result.stopped_early", (uint64_t)log->stopped_early);
    if (log->valid_users_of) {
        kd_prov_u64(b, "result.valid_users", log->valid_users);
        kd_prov_u64(b, "result.valid_users_of", log->valid_users_of);
    }
    return kd_buf_error(b) ? -1 : 0;
}

/* The training record: deterministic sections only (no timing: see kd_train.h). */
static int log_to_art(const kd_train_log *log, kd_art *a, kd_err *e)
{
    return kd_art_add_f64(a, "train.loss", log->epochs_run, 1, log->loss, e) ||
           kd_art_add_f64(a, "train.valid", log->n_valid, 2, log->valid, e) ? -1 : 0;
}

int kd_train_art(const kd_train_opts *o, const kd_model *m, const kd_train_log *log, const kd_buf *prov,
                 kd_art **out, kd_err *e)
{
    kd_art *a = kd_art_new(KD_KIND_MODEL);
    *out = NULL;
    if (!a) return kd_fail(e, "out of memory");
    if (kd_model_to_art(m, a, e) || log_to_art(log, a, e) || kd_art_add_buf(a, "provenance", prov, e)) {
        kd_art_free(a);
        return -1;
    }
    *out = a;
    return 0;
}
