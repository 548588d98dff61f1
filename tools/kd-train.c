/* kd-train: train a BPR matrix-factorisation model (teacher or plain student). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "kd_bpr.h"     /* kd_bpr_init, kd_bpr_task */
#include "kd_cli.h"     /* kd_cli_version */
#include "kd_dataset.h" /* kd_dataset_load */
#include "kd_prov.h"    /* provenance */
#include "kd_rng.h"     /* kd_key */
#include "kd_train.h"   /* shared trainer flags, kd_train_run, kd_train_save */

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

int main(int argc, char **argv)
{
    kd_train_opts o, defaults;
    kd_train_defaults(&o, 64);
    defaults = o;
    struct option opts[KD_TRAIN_OPTION_COUNT + 3];
    kd_train_option_table(opts, NULL, 0);
    kd_err e = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "ho:qv", opts, NULL)) != -1) {
        if (c == 'h') { usage(stdout, &defaults); return 0; }
        if (c == 'V') { kd_cli_version(prog); return 0; }
        int r = kd_train_parse(&o, c, optarg, &e);
        if (r < 0) return kd_err_report(prog, &e);
        if (r == 0) { usage(stderr, &defaults); return KD_EXIT_USAGE; }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "%s: expected one DATASET (a path or '-')\n", prog);
        return KD_EXIT_USAGE;
    }
    if (kd_train_finish(&o, &e)) return kd_err_report(prog, &e);
    o.prog = prog;
    o.say = say;

    kd_out out;
    if (kd_out_open(&out, o.out, KD_OUT_BINARY, &e)) return kd_err_report(prog, &e);
    kd_dataset d;
    kd_model m = { 0 };
    kd_bpr b = { 0 };
    kd_train_log log = { 0 };
    kd_buf prov = { 0 }, params = { 0 }, hit = { 0 };
    kd_stage stage;
    if (kd_dataset_load(&d, argv[optind], &e)) goto fail_nodata;
    /* the stage: every parameter (what provenance will say) and the input's content */
    kd_prov_str(&params, "role", "bpr");
    kd_train_prov(&o, &params);
    if (kd_stage_begin(&stage, prog, kd_stage_label(o.label, o.out), o.cache, (const char *)params.p, params.len,
                       &d.content_id, 1, &e))
        goto fail;
    int r = kd_stage_lookup(&stage, &hit, &e);
    if (r < 0) goto fail;
    if (r == 1) {
        kd_out_abort(&out);
        if (kd_stage_restore(o.out, hit.p, hit.len, &e)) goto fail_nodata_restored;
        kd_stage_report(&stage, 1);
        kd_buf_free(&hit);
        kd_buf_free(&params);
        kd_dataset_free(&d);
        return 0;
    }
    if (kd_model_alloc(&m, d.n_users, d.n_items, o.dim, &e) || kd_bpr_init(&b, &d, o.neg, kd_key(o.seed, 1, 0), &e))
        goto fail;
    kd_model_init_normal(&m, kd_key(o.seed, 0, 0), (float)o.init_std);
    o.sgd.threads = kd_train_threads(&o, d.n_users, d.n_items);
    kd_sgd_task task = kd_bpr_task(&b);
    if (kd_train_run(&o, &m, &d, &task, 1, &log, &e)) goto fail;
    kd_prov_begin(&prov, prog);
    kd_prov_id(&prov, "input.dataset", d.content_id);
    kd_buf_append(&prov, params.p, params.len);
    kd_train_prov_log(&log, &prov);
    kd_prov_u64(&prov, "params", kd_model_params(&m));
    if (kd_train_save(&o, &m, &log, &prov, &out, &stage, &e)) goto fail;
    kd_stage_report(&stage, 0);
    kd_buf_free(&params);
    kd_buf_free(&prov);
    kd_train_log_free(&log);
    kd_bpr_free(&b);
    kd_model_free(&m);
    kd_dataset_free(&d);
    return 0;
fail:
    kd_buf_free(&params);
    kd_buf_free(&hit);
    kd_buf_free(&prov);
    kd_train_log_free(&log);
    kd_bpr_free(&b);
    kd_model_free(&m);
    kd_dataset_free(&d);
fail_nodata:
    kd_out_abort(&out);
    return kd_err_report(prog, &e);
fail_nodata_restored:
    kd_buf_free(&hit);
    kd_buf_free(&params);
    kd_dataset_free(&d);
    return kd_err_report(prog, &e);
}
