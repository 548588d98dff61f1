/* kd-distill: train a student MF model from a teacher: BPR on the dataset plus a
 * distillation term (margin-mse, rd, rrd, ce, dcd). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "kd_bpr.h"     /* the student's own BPR task */
#include "kd_cli.h"     /* option parsing */
#include "kd_dataset.h" /* kd_dataset_load */
#include "kd_distill.h" /* methods and their tasks */
#include "kd_prov.h"    /* provenance */
#include "kd_rng.h"     /* kd_key */
#include "kd_train.h"   /* shared trainer flags, kd_train_run, kd_train_save */

static const char *prog = "kd-distill";

/* where kd_train_run's progress lines go */
static void say(void *ctx, const char *text) { (void)ctx; fputs(text, stderr); }

static void usage(FILE *f, const kd_train_opts *d)
{
    kd_distill_params m = kd_distill_defaults(KD_MARGIN_MSE), r = kd_distill_defaults(KD_RRD),
                      rd = kd_distill_defaults(KD_RD), dcd = kd_distill_defaults(KD_DCD);
    fprintf(f,
        "usage: %s --teacher T.kd --method NAME [options] DATASET [-o OUT]\n"
        "Train a student (same form as kd-train's) on DATASET with BPR plus a distillation\n"
        "term from the teacher, which must have been trained on the same dataset.\n\n"
        "methods (defaults in brackets):\n"
        "  margin-mse  the study's (1-a)*BPR + a*T^2*MSE(margins/T); --alpha A [%g],\n"
        "              --temperature T [%g] (it cancels out), --mix convex|add (add: BPR + lambda*KD)\n"
        "  rd          teacher's top-K as weighted extra positives: --topk K [%u], --rank-temp L [%g],\n"
        "              --dynamic (student-rank weights), --mu M [%g]\n"
        "  rrd         Plackett-Luce on the teacher's top-K order: --topk K [%u], --uninteresting L [%u],\n"
        "              --topm M [%u] (items never sampled as uninteresting)\n"
        "  ce          softmax cross-entropy over all unobserved items: --tau T [%g]; above 4096\n"
        "              items (or with --ce-sample S) the teacher's top-M plus S samples [256]\n"
        "  dcd         dual correction of under/over-ranked items: --topk K [%u], --uninteresting L [%u],\n"
        "              --topm M [%u], --eps E [%g]\n"
        "  --lambda X  weight of the distillation term [1; rd 0.5]\n\n",
        prog, m.alpha, m.temperature, rd.K, rd.rank_temp, rd.mu, r.K, r.L, r.M, m.tau, dcd.K, dcd.L, dcd.M, dcd.eps);
    kd_train_help(f, d);
    fprintf(f, "  -h, --help, --version\n");
}

enum { O_TEACHER = 2000, O_METHOD, O_ALPHA, O_TEMP, O_MIX, O_LAMBDA, O_TOPK, O_UNINT, O_TOPM, O_RANKT, O_DYN, O_MU, O_TAU, O_CES, O_EPS };

int main(int argc, char **argv)
{
    static const struct option own[] = {
        { "teacher", 1, 0, O_TEACHER }, { "method", 1, 0, O_METHOD }, { "alpha", 1, 0, O_ALPHA },
        { "temperature", 1, 0, O_TEMP }, { "mix", 1, 0, O_MIX }, { "lambda", 1, 0, O_LAMBDA },
        { "topk", 1, 0, O_TOPK }, { "uninteresting", 1, 0, O_UNINT }, { "topm", 1, 0, O_TOPM },
        { "rank-temp", 1, 0, O_RANKT }, { "dynamic", 0, 0, O_DYN }, { "mu", 1, 0, O_MU }, { "tau", 1, 0, O_TAU },
        { "ce-sample", 1, 0, O_CES }, { "eps", 1, 0, O_EPS } };
    enum { NOWN = sizeof own / sizeof *own };
    kd_train_opts o, defaults;
    kd_train_defaults(&o, 32);
    defaults = o;
    struct option opts[KD_TRAIN_OPTION_COUNT + NOWN + 3];
    kd_train_option_table(opts, own, NOWN);
    /* method flags are collected first, then applied over the method's defaults */
    const char *teacher_path = NULL, *method = NULL, *margs[16];
    int mcodes[16], nm = 0, c;
    kd_err e = { 0 };
    while ((c = getopt_long(argc, argv, "ho:qv", opts, NULL)) != -1) {
        if (c == 'h') { usage(stdout, &defaults); return 0; }
        if (c == 'V') { kd_cli_version(prog); return 0; }
        if (c == O_TEACHER) { teacher_path = optarg; continue; }
        if (c == O_METHOD) { method = optarg; continue; }
        if (c >= O_ALPHA && c <= O_EPS) {
            if (nm == 16) { fprintf(stderr, "%s: too many method options\n", prog); return KD_EXIT_USAGE; }
            mcodes[nm] = c;
            margs[nm++] = optarg;
            continue;
        }
        int r = kd_train_parse(&o, c, optarg, &e);
        if (r < 0) return kd_err_report(prog, &e);
        if (r == 0) { usage(stderr, &defaults); return KD_EXIT_USAGE; }
    }
    if (!teacher_path || !method) {
        fprintf(stderr, "%s: --teacher and --method are required\n", prog);
        return KD_EXIT_USAGE;
    }
    int mi = kd_method_parse(method);
    if (mi < 0) {
        fprintf(stderr, "%s: --method: unknown method '%s' (margin-mse, rd, rrd, ce, dcd)\n", prog, method);
        return KD_EXIT_USAGE;
    }
    kd_distill_params dp = kd_distill_defaults(mi);
    for (int k = 0; k < nm; k++) {
        uint64_t v = 0;
        int r = 0;
        const char *a = margs[k];
        switch (mcodes[k]) {
        case O_ALPHA: r = kd_cli_double("--alpha", a, 0, 1, &dp.alpha, &e); break;
        case O_TEMP: r = kd_cli_double("--temperature", a, 1e-6, 1e6, &dp.temperature, &e); break;
        case O_MIX:
            if (!strcmp(a, "add")) dp.mix_add = 1;
            else if (!strcmp(a, "convex")) dp.mix_add = 0;
            else r = kd_fail_usage(&e, "--mix: '%s' is not convex or add", a);
            break;
        case O_LAMBDA: r = kd_cli_double("--lambda", a, 0, 1e6, &dp.lambda, &e); break;
        case O_TOPK: r = kd_cli_u64("--topk", a, 1, 1000, &v, &e); dp.K = (uint32_t)v; break;
        case O_UNINT: r = kd_cli_u64("--uninteresting", a, 0, 1000, &v, &e); dp.L = (uint32_t)v; break;
        case O_TOPM: r = kd_cli_u64("--topm", a, 1, 100000, &v, &e); dp.M = (uint32_t)v; break;
        case O_RANKT: r = kd_cli_double("--rank-temp", a, 1e-6, 1e6, &dp.rank_temp, &e); break;
        case O_DYN: dp.dynamic = 1; break;
        case O_MU: r = kd_cli_double("--mu", a, 0, 1e6, &dp.mu, &e); break;
        case O_TAU: r = kd_cli_double("--tau", a, 1e-6, 1e6, &dp.tau, &e); break;
        case O_EPS: r = kd_cli_double("--eps", a, 0, 1e6, &dp.eps, &e); break;
        case O_CES: r = kd_cli_u64("--ce-sample", a, 1, 100000, &v, &e); dp.ce_sample = (uint32_t)v; break;
        }
        if (r) return kd_err_report(prog, &e);
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
    kd_dataset d = { 0 };
    kd_model m = { 0 }, t = { 0 };
    kd_bpr b = { 0 };
    kd_distill kd = { 0 };
    kd_train_log log = { 0 };
    kd_buf prov = { 0 }, params = { 0 }, hit = { 0 };
    kd_stage stage;
    kd_art *ta = NULL;
    int rc = KD_EXIT_DATA;
    char tid[64] = "", did[17];
    if (kd_dataset_load(&d, argv[optind], &e)) goto fail;
    if (kd_art_load(teacher_path, KD_KIND_MODEL, &ta, &e) || kd_model_from_art(&t, ta, &e)) goto fail;
    kd_id_hex(d.content_id, did);
    if (kd_art_prov_get(ta, "input.dataset", tid, sizeof tid) || strcmp(tid, did)) {
        kd_fail(&e, "%s: teacher was trained on dataset %s, not on %s (%s)", kd_in_name(teacher_path),
                tid[0] ? tid : "(unknown)", kd_in_name(argv[optind]), did);
        goto fail;
    }
    /* the stage key: every parameter and the contents of dataset and teacher */
    kd_distill_params used = dp;
    if (used.M > d.n_items) used.M = d.n_items; /* as kd_distill_init will use it */
    kd_buf_printf(&params, "role=distill-%s\n", kd_distill_methods[mi].name);
    kd_distill_prov(&used, &params);
    kd_train_prov(&o, &params);
    uint64_t inputs[2] = { d.content_id, ta->content_id };
    if (kd_stage_begin(&stage, prog, kd_stage_label(o.label, o.out), o.cache, (const char *)params.p, params.len,
                       inputs, 2, &e))
        goto fail;
    int hr = kd_stage_lookup(&stage, &hit, &e);
    if (hr < 0) goto fail;
    if (hr == 1) {
        kd_out_abort(&out);
        int rr = kd_stage_restore(o.out, hit.p, hit.len, &e);
        if (!rr) kd_stage_report(&stage, 1);
        kd_buf_free(&hit);
        kd_buf_free(&params);
        kd_model_free(&t);
        kd_art_free(ta);
        kd_dataset_free(&d);
        return rr ? kd_err_report(prog, &e) : 0;
    }
    o.sgd.threads = kd_train_threads(&o, d.n_users, d.n_items);
    if (kd_model_alloc(&m, d.n_users, d.n_items, o.dim, &e) || kd_bpr_init(&b, &d, o.neg, kd_key(o.seed, 1, 0), &e) ||
        kd_distill_init(&kd, &dp, &d, &t, &b, kd_key(o.seed, 2, 0), o.sgd.threads, &e))
        goto fail;
    /* the same initialisation and BPR stream as kd-train: at zero weight, the same model */
    kd_model_init_normal(&m, kd_key(o.seed, 0, 0), (float)o.init_std);
    if (o.verbosity >= 2 && kd.t_items)
        fprintf(stderr, "%s: teacher top-%u ranking of %u users: %.3f s\n", prog, kd.p.M, d.n_users, kd.rank_seconds);
    kd_sgd_task tasks[KD_MAX_TASKS];
    int ntasks;
    kd_distill_tasks(&kd, tasks, &ntasks);
    if (kd_train_run(&o, &m, &d, tasks, ntasks, &log, &e)) goto fail;
    kd_prov_begin(&prov, prog);
    kd_prov_id(&prov, "input.dataset", d.content_id);
    kd_prov_id(&prov, "input.teacher", ta->content_id);
    kd_buf_append(&prov, params.p, params.len);
    kd_train_prov_log(&log, &prov);
    kd_prov_u64(&prov, "params", kd_model_params(&m));
    if (kd_train_save(&o, &m, &log, &prov, &out, &stage, &e)) goto fail;
    kd_stage_report(&stage, 0);
    rc = 0;
    if (0) {
fail:
        kd_out_abort(&out);
        rc = kd_err_report(prog, &e);
    }
    kd_buf_free(&params);
    kd_buf_free(&hit);
    kd_buf_free(&prov);
    kd_train_log_free(&log);
    kd_distill_free(&kd);
    kd_bpr_free(&b);
    kd_model_free(&m);
    kd_model_free(&t);
    kd_art_free(ta);
    kd_dataset_free(&d);
    return rc;
}
