/* kd_sgd: deterministic block-parallel SGD with early stopping (design in kd_sgd.h). */
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
    const kd_sgd_task *task;
    const kd_sgd_params *p;
    kd_barrier bar;
    uint64_t epoch;
    float lr;
    kd_rec *recs;       /* (units_per_block * R) */
    double *loss;       /* (units_per_block) */
    float *pu_old;      /* (units_per_block * R, stride) user rows as B1 read them */
    uint8_t **scratch;  /* per thread */
    float *G;           /* Adagrad accumulators, same layout as the model's P|Q|...|bi, or NULL */
    uint64_t units_per_block;
    double epoch_loss;
    double *hog_loss;   /* per thread, hogwild */
} sgd_run;

/* Adagrad step on one row: x += lr * g / sqrt(G + eps), G += g^2, g = s*v - decay*x */
static inline void ada_row(float *x, float *G, float lr, float s, const float *v, float decay, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        float g = s * v[k] - decay * x[k];
        G[k] += g * g;
        x[k] += lr * g / (sqrtf(G[k]) + 1e-7f);
    }
}

static inline void apply_user(sgd_run *r, const kd_rec *c, float *save)
{
    kd_model *m = r->m;
    float *pu = m->P + (size_t)c->u * m->stride;
    const float *q = m->Q + (size_t)c->item * m->stride;
    kd_copy16(save, pu, m->stride);
    float reg = c->ureg ? (float)r->p->reg : 0.0f;
    if (r->G)
        ada_row(pu, r->G + (size_t)c->u * m->stride, r->lr, c->coef, q, reg, m->dim);
    else
        kd_scale_axpy(pu, 1.0f - r->lr * reg, r->lr * c->coef, q, m->stride);
}

static inline void apply_item(sgd_run *r, const kd_rec *c, const float *pu_old)
{
    kd_model *m = r->m;
    float *q = m->Q + (size_t)c->item * m->stride;
    float *bi = m->bi + c->item;
    if (r->G) {
        float *Gq = r->G + ((size_t)m->n_users + c->item) * m->stride;
        float *Gb = r->G + ((size_t)m->n_users + m->n_items) * m->stride + c->item;
        ada_row(q, Gq, r->lr, c->coef, pu_old, (float)r->p->reg, m->dim);
        float g = c->coef - (float)r->p->reg_bias * *bi;
        *Gb += g * g;
        *bi += r->lr * g / (sqrtf(*Gb) + 1e-7f);
    } else {
        kd_scale_axpy(q, 1.0f - r->lr * (float)r->p->reg, r->lr * c->coef, pu_old, m->stride);
        *bi = (1.0f - r->lr * (float)r->p->reg_bias) * *bi + r->lr * c->coef;
    }
}

KD_CLONES static void epoch_blocked(void *ctx, int t, int T)
{
    sgd_run *r = ctx;
    const kd_sgd_task *task = r->task;
    kd_model *m = r->m;
    uint32_t R = task->recs_per_unit;
    uint64_t units = task->units, B = r->units_per_block;
    for (uint64_t b0 = 0; b0 < units; b0 += B) {
        uint64_t nb = units - b0 < B ? units - b0 : B, lo, hi;
        /* A: produce records from the parameters as they stand */
        kd_par_range(nb, t, T, (unsigned long long *)&lo, (unsigned long long *)&hi);
        for (uint64_t s = lo; s < hi; s++)
            r->loss[s] = task->produce(task->ctx, m, r->epoch, b0 + s, r->recs + s * R, r->scratch[t]);
        kd_barrier_wait(&r->bar);
        /* B1: users, by owner, in record order */
        uint64_t nrec = nb * R;
        for (uint64_t k = 0; k < nrec; k++) {
            const kd_rec *c = &r->recs[k];
            if (c->item == KD_NO_ITEM || (int)(c->u % (uint32_t)T) != t) continue;
            apply_user(r, c, r->pu_old + k * m->stride);
        }
        kd_barrier_wait(&r->bar);
        /* B2: items, by owner, in record order */
        for (uint64_t k = 0; k < nrec; k++) {
            const kd_rec *c = &r->recs[k];
            if (c->item == KD_NO_ITEM || (int)(c->item % (uint32_t)T) != t) continue;
            apply_item(r, c, r->pu_old + k * m->stride);
        }
        if (t == 0)
            for (uint64_t s = 0; s < nb; s++) r->epoch_loss += r->loss[s];
        kd_barrier_wait(&r->bar);
    }
}

KD_CLONES static void epoch_hogwild(void *ctx, int t, int T)
{
    sgd_run *r = ctx;
    const kd_sgd_task *task = r->task;
    uint32_t R = task->recs_per_unit;
    uint64_t lo, hi;
    kd_rec *recs = r->recs + (size_t)t * R;
    float *save = r->pu_old + (size_t)t * R * r->m->stride;
    kd_par_range(task->units, t, T, (unsigned long long *)&lo, (unsigned long long *)&hi);
    double loss = 0;
    for (uint64_t s = lo; s < hi; s++) {
        loss += task->produce(task->ctx, r->m, r->epoch, s, recs, r->scratch[t]);
        for (uint32_t k = 0; k < R; k++)
            if (recs[k].item != KD_NO_ITEM) apply_user(r, &recs[k], save + (size_t)k * r->m->stride);
        for (uint32_t k = 0; k < R; k++)
            if (recs[k].item != KD_NO_ITEM) apply_item(r, &recs[k], save + (size_t)k * r->m->stride);
    }
    r->hog_loss[t] = loss;
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

int kd_sgd_train(kd_model *m, const kd_dataset *d, const kd_sgd_task *task, const kd_sgd_params *p,
                 kd_train_log *log, kd_err *e)
{
    memset(log, 0, sizeof *log);
    if (!(p->lr > 0) || !isfinite(p->lr)) return kd_fail_usage(e, "--lr must be positive");
    if (p->valid_every && kd_csr_nnz(&d->valid) == 0)
        return kd_fail_usage(e, "early stopping needs a validation split, and this dataset has none");
    int T = p->threads < 1 ? 1 : p->threads;
    uint32_t R = task->recs_per_unit;
    sgd_run r = { .m = m, .task = task, .p = p };
    r.units_per_block = KD_SGD_BLOCK / R ? KD_SGD_BLOCK / R : 1;
    uint64_t slots = p->hogwild ? (uint64_t)T : r.units_per_block;
    r.recs = kd_alloc_array(slots * R, sizeof *r.recs);
    r.loss = kd_alloc_array(r.units_per_block, sizeof *r.loss);
    r.hog_loss = kd_calloc_array((uint64_t)T, sizeof *r.hog_loss);
    r.scratch = kd_calloc_array((uint64_t)T, sizeof *r.scratch);
    void *pu_old = NULL;
    kd_model best = { 0 };
    int ret = -1;
    log->loss = kd_alloc_array(p->epochs ? p->epochs : 1, 8);
    log->throughput = kd_alloc_array(p->epochs ? p->epochs : 1, 8);
    log->valid = kd_alloc_array(2 * (uint64_t)(p->epochs ? p->epochs : 1), 8);
    if (!r.recs || !r.loss || !r.hog_loss || !r.scratch || !log->loss || !log->throughput || !log->valid ||
        posix_memalign(&pu_old, 64, (size_t)(slots * R * m->stride * 4 + 64))) {
        kd_fail(e, "out of memory");
        goto done;
    }
    r.pu_old = pu_old;
    for (int t = 0; t < T; t++)
        if (task->scratch_bytes && !(r.scratch[t] = aligned_alloc(64, (task->scratch_bytes + 63) & ~(size_t)63))) {
            kd_fail(e, "out of memory");
            goto done;
        }
    if (p->optim == KD_OPT_ADAGRAD) {
        r.G = kd_calloc_array(((uint64_t)m->n_users + m->n_items + 1) * m->stride + m->n_items, 4);
        if (!r.G) { kd_fail(e, "out of memory"); goto done; }
    }
    if (p->valid_every && kd_model_alloc(&best, m->n_users, m->n_items, m->dim, e))
        goto done;
    kd_barrier_init(&r.bar, (unsigned)T);
    double best_value = -1;
    uint32_t since_best = 0;
    for (uint64_t ep = 0; ep < p->epochs; ep++) {
        r.epoch = ep;
        r.lr = (float)(p->lr * pow(p->lr_decay, (double)ep));
        r.epoch_loss = 0;
        if (task->epoch_begin && task->epoch_begin(task->ctx, m, ep, e))
            goto done;
        double t0 = kd_now();
        if (kd_par_run(T, p->hogwild ? epoch_hogwild : epoch_blocked, &r, e))
            goto done;
        double secs = kd_now() - t0;
        if (p->hogwild)
            for (int t = 0; t < T; t++) r.epoch_loss += r.hog_loss[t];
        double loss = r.epoch_loss / (double)(task->units ? task->units : 1);
        log->loss[ep] = loss;
        log->throughput[ep] = secs > 0 ? (double)task->units * task->samples_per_unit / secs : 0;
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
    if (ret) kd_train_log_free(log);
    kd_model_free(&best);
    for (int t = 0; r.scratch && t < T; t++) free(r.scratch[t]);
    free(r.scratch); free(r.recs); free(r.loss); free(r.hog_loss); free(pu_old); free(r.G);
    return ret;
}
