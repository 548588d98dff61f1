/* kd-train: train a BPR matrix-factorisation model (teacher or plain student).
 * Reads a dataset artifact, writes a model artifact; with --cache DIR a stage.
 *     kd-train --dim 64 --epochs 50 --cache data/cache data.kd -o teacher.kd */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_bpr.h"     /* kd_bpr_init, kd_bpr_task */
#include "kd_cli.h"     /* kd_cli_version */
#include "kd_dataset.h" /* kd_dataset_load */
#include "kd_prov.h"    /* provenance */
#include "kd_rng.h"     /* kd_key */
#include "kd_stage.h"   /* the stage runner */
#include "kd_train.h"   /* shared trainer flags, kd_train_run, kd_train_art */

static const char *prog = "kd-train";

/* where kd_train_run's progress lines go */
static void say(void *ctx, const char *text) { (void)ctx; fputs(text, stderr); }

static void usage(FILE *f, const kd_train_opts *d)
{
    fprintf(f, "usage: %s [options] DATASET [-o OUT]\n"
               "Train score(u,i) = p_u.q_i + b_u + b_i with the BPR loss on DATASET's train split\n"
               "(a path or '-').  Same dataset, flags and seed give the same model, bit for bit,\n"
               "whatever --threads.\n\n", prog);
    kd_train_help(f, d);
    fprintf(f, "  -h, --help, --version\n");
}

struct opts {
    kd_train_opts t;
    const char   *dataset;
};

/* Exits 0 after --help/--version, 2 on misuse, 1 on a bad value. */
static void parse_args(int argc, char **argv, struct opts *o)
{
    kd_train_opts defaults;
    kd_train_defaults(&o->t, 64);
    defaults = o->t;
    struct option opts[KD_TRAIN_OPTION_COUNT + 3];
    kd_train_option_table(opts, NULL, 0);
    kd_err e = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "ho:qv", opts, NULL)) != -1) {
        if (c == 'h') { usage(stdout, &defaults); exit(0); }
        if (c == 'V') { kd_cli_version(prog); exit(0); }
        int r = kd_train_parse(&o->t, c, optarg, &e);
        if (r < 0) exit(kd_err_report(prog, &e));
        if (r == 0) { usage(stderr, &defaults); exit(KD_EXIT_USAGE); }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "%s: expected one DATASET (a path or '-')\n", prog);
        exit(KD_EXIT_USAGE);
    }
    if (kd_train_finish(&o->t, &e)) exit(kd_err_report(prog, &e));
    o->t.prog = prog;
    o->t.say = say;
    o->dataset = argv[optind];
}

static int run(struct opts *o, kd_err *e)
{
    kd_train_opts *t = &o->t;
    kd_stage st;
    kd_dataset d = { 0 };
    kd_model m = { 0 };
    kd_bpr b = { 0 };
    kd_train_log log = { 0 };
    kd_buf prov = { 0 }, params = { 0 };
    kd_art *a = NULL;
    int r = -1;
    kd_stage_init(&st, prog, kd_stage_label(t->label, t->out), t->cache);
    /* the output first: a bad path fails before any work */
    if (kd_stage_add_output(&st, t->out, NULL, e) || kd_dataset_load(&d, o->dataset, e)) goto done;
    /* the stage: every parameter (what provenance will say) and the input's content */
    if (kd_train_resolve(t, &d) && t->verbosity)
        fprintf(stderr, "%s: %s: " KD_TRAIN_NO_VALID_NOTE "\n", prog, kd_in_name(o->dataset), t->sgd.epochs);
    kd_prov_str(&params, "role", "bpr");
    kd_train_prov(t, &params);
    if ((r = kd_stage_start(&st, &params, &d.content_id, 1, e)) != 0) goto done;
    r = -1;
    if (kd_model_alloc(&m, d.n_users, d.n_items, t->dim, e) || kd_bpr_init(&b, &d, t->neg, kd_key(t->seed, 1, 0), e))
        goto done;
    kd_model_init_normal(&m, kd_key(t->seed, 0, 0), (float)t->init_std);
    t->sgd.threads = kd_train_threads(t, d.n_users, d.n_items);
    kd_sgd_task task = kd_bpr_task(&b);
    if (kd_train_run(t, &m, &d, &task, 1, &log, e)) goto done;
    kd_prov_begin(&prov, prog);
    kd_prov_id(&prov, "input.dataset", d.content_id);
    kd_buf_append(&prov, params.p, params.len);
    kd_train_prov_log(&log, &prov);
    kd_prov_u64(&prov, "params", kd_model_params(&m));
    r = kd_train_art(t, &m, &log, &prov, &a, e) || kd_stage_commit(&st, a, t->level, e) ? -1 : 0;
done:
    kd_stage_end(&st);
    kd_art_free(a);
    kd_buf_free(&params);
    kd_buf_free(&prov);
    kd_train_log_free(&log);
    kd_bpr_free(&b);
    kd_model_free(&m);
    kd_dataset_free(&d);
    return r < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    kd_err e = { 0 };
    parse_args(argc, argv, &o);
    return run(&o, &e) ? kd_err_report(prog, &e) : 0;
}
