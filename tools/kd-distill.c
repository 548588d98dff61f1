/* kd-distill: train a student MF model from a teacher: BPR on the dataset plus a
 * distillation term (margin-mse, rd, rrd, ce, dcd, dcd-item, dcd2, rce, rce2).  Reads the
 * dataset and the teacher (a model trained on it; several --teacher: their mean score, as
 * one concatenated model), writes the student; with --cache DIR a stage.
 *     kd-distill --teacher teacher.kd --method rrd --dim 16 data.kd -o student.kd */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_bpr.h"     /* the student's own BPR task */
#include "kd_cli.h"     /* option parsing */
#include "kd_dataset.h" /* kd_dataset_load */
#include "kd_distill.h" /* methods and their tasks */
#include "kd_prov.h"    /* provenance */
#include "kd_rng.h"     /* kd_key */
#include "kd_stage.h"   /* the stage runner */
#include "kd_train.h"   /* shared trainer flags, kd_train_run, kd_train_art */

static const char *prog = "kd-distill";

#define KD_MAX_TEACHERS 8   /* --teacher given at most this many times (an ensemble) */

/* where kd_train_run's progress lines go */
static void say(void *ctx, const char *text) { (void)ctx; fputs(text, stderr); }

static void usage(FILE *f, const kd_train_opts *d)
{
    kd_distill_params m = kd_distill_defaults(KD_MARGIN_MSE), r = kd_distill_defaults(KD_RRD),
                      rd = kd_distill_defaults(KD_RD), dcd = kd_distill_defaults(KD_DCD),
                      rce = kd_distill_defaults(KD_RCE);
    fprintf(f,
        "usage: %s --teacher T.kd [--teacher T2.kd ...] --method NAME [options] DATASET [-o OUT]\n"
        "Train a student (same form as kd-train's) on DATASET with BPR plus a distillation\n"
        "term from the teacher, which must have been trained on the same dataset.  Several\n"
        "--teacher (at most %d): their ensemble, the mean of their scores, as one model of\n"
        "the summed dimension (every method uses it as it would one teacher).\n\n"
        "methods (defaults in brackets):\n"
        "  margin-mse  (1-a)*BPR + a*T^2*KD on the pair margins s_ui - s_uj: --margin-loss soft|mse\n"
        "              [soft]: soft, KL of the teacher's pair probability sigmoid(dt/T) to the\n"
        "              student's (bounded gradient, never stiffer than BPR); mse, the study's\n"
        "              MSE(margins/T) (the notebook's loss; T cancels out; a = 0.5 diverges at\n"
        "              --lr 0.05, the study runs it at 0.01); --alpha A|auto [auto],\n"
        "              --temperature T [%g], --mix convex|add (add: BPR + lambda*KD)\n"
        "  rd          teacher's top-K as weighted extra positives: --topk K [%u], --rank-temp L [%g],\n"
        "              --dynamic (student-rank weights), --mu M [%g]\n"
        "  rrd         Plackett-Luce on the teacher's top-K order: --topk K [%u], --uninteresting L [%u],\n"
        "              --topm M [%u] (items never sampled as uninteresting)\n"
        "  ce          softmax cross-entropy over all unobserved items: --tau T [%g]; above 4096\n"
        "              items (or with --ce-sample S) the teacher's top-M plus S samples [256]\n"
        "  dcd         dual correction of under/over-ranked items: --topk K [%u], --uninteresting L [%u],\n"
        "              --topm M [%u], --eps E [%g]\n"
        "  dcd-item    dcd's item side: each item's ranking of users (teacher's top-M users of\n"
        "              the item, the student's, under/over-ranked users, L uniform users), with\n"
        "              dcd's flags and defaults\n"
        "  dcd2        both sides (DCD as published): dcd + --item-lambda X [%g] x dcd-item\n"
        "  rce         RCE-KD: cross-entropy on the student's top-K, mixed by w = exp(-beta *\n"
        "              overlap) with one on a closure-aware set (--samples L student top-M\n"
        "              positions drawn by rank weight, plus the teacher's top-K items left);\n"
        "              one unit per train interaction: --topk K [%u], --samples L [%u],\n"
        "              --topm M [%u] (<= %u), --rank-temp T [%g], --beta B [%g], --tau T [%g]\n"
        "  rce2        both sides: rce (its flags) + --item-lambda X [%g] x dcd-item at dcd's\n"
        "              default lists (K %u, L %u, M %u) and --eps\n"
        "  --lambda X|auto  weight of the distillation term [auto]: auto trains one early-stopped\n"
        "              student per value of the grid (--auto-grid V,V,... [0,0.1,0.3,1]; margin-mse's\n"
        "              --alpha auto [0,0.25,0.5,1; mse 0,0.03,0.1,0.3]) and keeps the best on valid (a\n"
        "              value that diverges is skipped; 0 is no distillation, kd-train's model, so a\n"
        "              method that validates below plain BPR is not used); X (or --alpha A) is the\n"
        "              literal loss at that weight.  Without a validation split: [1; rd 0.5; rce %g;\n"
        "              margin-mse alpha %g; mse %g]\n"
        "  --kd-decay 0|1  weight decay (--reg, --reg-bias) also on the rows the distillation\n"
        "              records touch [1; rce, rce2, dcd-item, dcd2 0].  With 1, longer lists or more\n"
        "              units regularise more, even at --lambda 0; with 0, --lambda 0 trains\n"
        "              kd-train's model bit for bit\n"
        "  --refresh R  dcd, dcd-item, dcd2, rce, rce2: each epoch re-rank only the student's rows\n"
        "              (users; items on the item side) r with r %% R == epoch %% R (epochs from\n"
        "              0), all of them at epoch 0 [dcd 4, measured better at its defaults on\n"
        "              Last.fm and CiteULike, equal on synthetic data; others 1: every row every\n"
        "              epoch, as the published code].  At scale that ranking is most of these\n"
        "              methods' epoch (dcd on amazon-book: 70-80%%), and R cuts it about R-fold;\n"
        "              a row's ranking is then up to R-1 epochs old (what is drawn from it is\n"
        "              drawn afresh each epoch).\n"
        "              1..%u; R > 1 is an error with the other methods, which keep no student\n"
        "              ranking (rd --dynamic samples its ranks in each unit); provenance says\n"
        "              refresh=R when R > 1\n\n",
        prog, KD_MAX_TEACHERS, m.temperature, rd.K, rd.rank_temp, rd.mu, r.K, r.L, r.M, m.tau, dcd.K, dcd.L,
        dcd.M, dcd.eps, dcd.item_lambda, rce.K, rce.L, rce.M, KD_PICK_MAX, rce.rank_temp, rce.beta, rce.tau, dcd.item_lambda, dcd.K, dcd.L, dcd.M, rce.lambda,
        KD_NO_VALID_ALPHA_SOFT, KD_NO_VALID_ALPHA, KD_REFRESH_MAX);
    kd_train_help(f, d);
    fprintf(f, "  -h, --help, --version\n");
}

enum { O_TEACHER = 2000, O_METHOD, O_ALPHA, O_TEMP, O_MIX, O_LAMBDA, O_TOPK, O_UNINT, O_TOPM, O_RANKT, O_DYN, O_MU, O_TAU, O_CES,
       O_ILAMBDA, O_SAMPLES, O_BETA, O_KDDECAY, O_GRID, O_MLOSS, O_REFRESH, O_EPS /* last method flag */ };

static const struct option own_options[] = {
    { "teacher", 1, 0, O_TEACHER }, { "method", 1, 0, O_METHOD }, { "alpha", 1, 0, O_ALPHA },
    { "temperature", 1, 0, O_TEMP }, { "mix", 1, 0, O_MIX }, { "lambda", 1, 0, O_LAMBDA },
    { "topk", 1, 0, O_TOPK }, { "uninteresting", 1, 0, O_UNINT }, { "topm", 1, 0, O_TOPM },
    { "rank-temp", 1, 0, O_RANKT }, { "dynamic", 0, 0, O_DYN }, { "mu", 1, 0, O_MU }, { "tau", 1, 0, O_TAU },
    { "ce-sample", 1, 0, O_CES }, { "eps", 1, 0, O_EPS }, { "item-lambda", 1, 0, O_ILAMBDA },
    { "samples", 1, 0, O_SAMPLES }, { "beta", 1, 0, O_BETA }, { "kd-decay", 1, 0, O_KDDECAY },
    { "auto-grid", 1, 0, O_GRID }, { "margin-loss", 1, 0, O_MLOSS }, { "refresh", 1, 0, O_REFRESH } };
enum { NOWN = sizeof own_options / sizeof *own_options };

struct opts {
    kd_train_opts     t;
    const char       *teacher[KD_MAX_TEACHERS], *method, *dataset;
    int               nteachers;
    int               mi;   /* the method's index */
    kd_distill_params dp;   /* its parameters: defaults, then the flags given */
    int               knob_set; /* its knob (--alpha, or --lambda) was given a number */
};

/* --auto-grid V,V,...: 1 to KD_AUTO_MAX values of the knob, in its range */
static int grid_arg(kd_distill_params *dp, const char *a, double max, kd_err *e)
{
    char buf[256], *save = NULL;
    if (strlen(a) >= sizeof buf || !*a || a[strlen(a) - 1] == ',' || *a == ',' || strstr(a, ",,"))
        return kd_fail_usage(e, "--auto-grid: '%s' is not a list of 1 to %d numbers (V,V,...)", a, KD_AUTO_MAX);
    strcpy(buf, a);
    dp->auto_n = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (dp->auto_n == KD_AUTO_MAX)
            return kd_fail_usage(e, "--auto-grid: at most %d values", KD_AUTO_MAX);
        if (kd_cli_double("--auto-grid", t, 0, max, &dp->auto_grid[dp->auto_n++], e)) return -1;
    }
    return 0;
}

/* Applies one method flag over the method's defaults; *knob_set: the knob got a number. */
static int method_arg(kd_distill_params *dp, int code, const char *a, int *knob_set, kd_err *e)
{
    uint64_t v = 0;
    int r = 0;
    double kv;
    int is_alpha = !strcmp(kd_distill_knob(dp, &kv), "alpha");
    switch (code) {
    case O_ALPHA:
        if (!strcmp(a, "auto")) { if (is_alpha) *knob_set = 0; return 0; }
        if (is_alpha) *knob_set = 1;
        return kd_cli_double("--alpha", a, 0, 1, &dp->alpha, e);
    case O_TEMP: return kd_cli_double("--temperature", a, 1e-6, 1e6, &dp->temperature, e);
    case O_MIX:
        if (!strcmp(a, "add")) dp->mix_add = 1;
        else if (!strcmp(a, "convex")) dp->mix_add = 0;
        else return kd_fail_usage(e, "--mix: '%s' is not convex or add", a);
        return 0;
    case O_MLOSS:
        if (!strcmp(a, "soft")) dp->margin_loss = KD_MLOSS_SOFT;
        else if (!strcmp(a, "mse")) dp->margin_loss = KD_MLOSS_MSE;
        else return kd_fail_usage(e, "--margin-loss: '%s' is not soft or mse", a);
        return 0;
    case O_LAMBDA:
        if (!strcmp(a, "auto")) { if (!is_alpha) *knob_set = 0; return 0; }
        if (!is_alpha) *knob_set = 1;
        return kd_cli_double("--lambda", a, 0, 1e6, &dp->lambda, e);
    case O_GRID: return grid_arg(dp, a, is_alpha ? 1 : 1e6, e);
    case O_TOPK: r = kd_cli_u64("--topk", a, 1, 1000, &v, e); dp->K = (uint32_t)v; return r;
    case O_UNINT: r = kd_cli_u64("--uninteresting", a, 0, 1000, &v, e); dp->L = (uint32_t)v; return r;
    case O_TOPM: r = kd_cli_u64("--topm", a, 1, 100000, &v, e); dp->M = (uint32_t)v; return r;
    case O_RANKT: return kd_cli_double("--rank-temp", a, 1e-6, 1e6, &dp->rank_temp, e);
    case O_DYN: dp->dynamic = 1; return 0;
    case O_MU: return kd_cli_double("--mu", a, 0, 1e6, &dp->mu, e);
    case O_TAU: return kd_cli_double("--tau", a, 1e-6, 1e6, &dp->tau, e);
    case O_EPS: return kd_cli_double("--eps", a, 0, 1e6, &dp->eps, e);
    case O_CES: r = kd_cli_u64("--ce-sample", a, 1, 100000, &v, e); dp->ce_sample = (uint32_t)v; return r;
    case O_ILAMBDA: return kd_cli_double("--item-lambda", a, 0, 1e6, &dp->item_lambda, e);
    case O_SAMPLES: r = kd_cli_u64("--samples", a, 1, 1000, &v, e); dp->L = (uint32_t)v; return r;
    case O_BETA: return kd_cli_double("--beta", a, 0, 1e6, &dp->beta, e);
    case O_KDDECAY: r = kd_cli_u64("--kd-decay", a, 0, 1, &v, e); dp->kd_decay = (int)v; return r;
    case O_REFRESH: r = kd_cli_u64("--refresh", a, 1, KD_REFRESH_MAX, &v, e); dp->refresh = (uint32_t)v; return r;
    }
    return 0;
}

/* Exits 0 after --help/--version, 2 on misuse, 1 on a bad value.  Method flags are
 * collected first, then applied over the defaults of the method named. */
static void parse_args(int argc, char **argv, struct opts *o)
{
    kd_train_opts defaults;
    kd_train_defaults(&o->t, 32);
    defaults = o->t;
    struct option opts[KD_TRAIN_OPTION_COUNT + NOWN + 3];
    kd_train_option_table(opts, own_options, NOWN);
    const char *margs[16];
    int mcodes[16], nm = 0, c;
    kd_err e = { 0 };
    o->method = NULL;
    o->nteachers = 0;
    while ((c = getopt_long(argc, argv, "ho:qv", opts, NULL)) != -1) {
        if (c == 'h') { usage(stdout, &defaults); exit(0); }
        if (c == 'V') { kd_cli_version(prog); exit(0); }
        if (c == O_TEACHER) {
            if (o->nteachers == KD_MAX_TEACHERS) {
                fprintf(stderr, "%s: --teacher: at most %d teachers\n", prog, KD_MAX_TEACHERS);
                exit(KD_EXIT_USAGE);
            }
            o->teacher[o->nteachers++] = optarg;
            continue;
        }
        if (c == O_METHOD) { o->method = optarg; continue; }
        if (c >= O_ALPHA && c <= O_EPS) {
            if (nm == 16) { fprintf(stderr, "%s: too many method options\n", prog); exit(KD_EXIT_USAGE); }
            mcodes[nm] = c;
            margs[nm++] = optarg;
            continue;
        }
        int r = kd_train_parse(&o->t, c, optarg, &e);
        if (r < 0) exit(kd_err_report(prog, &e));
        if (r == 0) { usage(stderr, &defaults); exit(KD_EXIT_USAGE); }
    }
    if (!o->nteachers || !o->method) {
        fprintf(stderr, "%s: --teacher and --method are required\n", prog);
        exit(KD_EXIT_USAGE);
    }
    if ((o->mi = kd_method_parse(o->method)) < 0) {
        fprintf(stderr, "%s: --method: unknown method '%s' (margin-mse, rd, rrd, ce, dcd, dcd-item, dcd2, rce, rce2)\n", prog, o->method);
        exit(KD_EXIT_USAGE);
    }
    o->dp = kd_distill_defaults(o->mi);
    /* --mix and --margin-loss first: they decide which flag is the knob and its grid */
    for (int k = 0; k < nm; k++)
        if ((mcodes[k] == O_MIX || mcodes[k] == O_MLOSS) && method_arg(&o->dp, mcodes[k], margs[k], &o->knob_set, &e))
            exit(kd_err_report(prog, &e));
    kd_distill_set_auto(&o->dp);
    int grid = 0;
    o->knob_set = 0;
    for (int k = 0; k < nm; k++) {
        if (mcodes[k] == O_MIX || mcodes[k] == O_MLOSS) continue;
        grid |= mcodes[k] == O_GRID;
        if (method_arg(&o->dp, mcodes[k], margs[k], &o->knob_set, &e)) exit(kd_err_report(prog, &e));
    }
    /* before any data is read: a method without a student ranking has nothing to refresh */
    if (kd_distill_check_refresh(&o->dp, &e)) exit(kd_err_report(prog, &e));
    /* an explicit knob: the method's loss at that weight, as before auto existed (the
     * pipelines' runs, bit for bit); else the knob is chosen on validation */
    double kv;
    const char *knob = kd_distill_knob(&o->dp, &kv);
    if (o->knob_set && grid) {
        fprintf(stderr, "%s: --auto-grid needs --%s auto (the default), not --%s %g\n", prog, knob, knob, kv);
        exit(KD_EXIT_USAGE);
    }
    if (o->knob_set) o->dp.auto_n = 0;
    if (o->dp.auto_n && o->t.no_early) {
        fprintf(stderr, "%s: --%s auto (the default) chooses on validation: give --%s V with --no-early-stop\n", prog,
                knob, knob);
        exit(KD_EXIT_USAGE);
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

/* The teacher must have been trained on this dataset (its provenance says which). */
static int check_teacher(const struct opts *o, const char *path, const kd_art *ta, const kd_dataset *d, kd_err *e)
{
    char tid[64] = "", did[17];
    kd_id_hex(d->content_id, did);
    if (kd_art_prov_get(ta, "input.dataset", tid, sizeof tid) || strcmp(tid, did))
        return kd_fail(e, "%s: teacher was trained on dataset %s, not on %s (%s)", kd_in_name(path),
                       tid[0] ? tid : "(unknown)", kd_in_name(o->dataset), did);
    return 0;
}

/* Loads every teacher, checks each against the dataset, and leaves in *tm the one model
 * the method distills from: the teacher, or the ensemble of all of them. */
static int load_teachers(const struct opts *o, const kd_dataset *d, kd_art **ta, kd_model *tm, kd_err *e)
{
    kd_model each[KD_MAX_TEACHERS] = { { 0 } };
    int r = 0;
    for (int m = 0; m < o->nteachers && !r; m++)
        r = kd_art_load(o->teacher[m], KD_KIND_MODEL, &ta[m], e) || check_teacher(o, o->teacher[m], ta[m], d, e) ||
            kd_model_from_art(o->nteachers == 1 ? tm : &each[m], ta[m], e);
    if (!r && o->nteachers > 1)
        r = kd_distill_ensemble(tm, each, o->nteachers, e);
    for (int m = 0; m < o->nteachers; m++) kd_model_free(&each[m]);
    return r ? -1 : 0;
}

static int run(struct opts *o, kd_err *e)
{
    kd_train_opts *t = &o->t;
    kd_stage st;
    kd_dataset d = { 0 };
    kd_model m = { 0 }, tm = { 0 };
    kd_bpr b = { 0 };
    kd_distill kd = { 0 };
    kd_train_log log = { 0 };
    kd_buf prov = { 0 }, params = { 0 };
    kd_art *ta[KD_MAX_TEACHERS] = { 0 }, *a = NULL;
    int r = -1, nt = o->nteachers;
    kd_stage_init(&st, prog, kd_stage_label(t->label, t->out), t->cache);
    if (kd_stage_add_output(&st, t->out, NULL, e) || kd_dataset_load(&d, o->dataset, e) ||
        load_teachers(o, &d, ta, &tm, e))
        goto done;
    if (kd_train_resolve(t, &d)) {
        double kv;
        const char *knob = kd_distill_knob(&o->dp, &kv);
        if (o->dp.auto_n) { /* nothing to choose on: the method's fixed default */
            kd_distill_params df = kd_distill_defaults(o->mi);
            df.mix_add = o->dp.mix_add;
            kd_distill_knob(&df, &kv);
            if (!strcmp(knob, "alpha")) kv = o->dp.margin_loss == KD_MLOSS_SOFT ? KD_NO_VALID_ALPHA_SOFT : KD_NO_VALID_ALPHA;
            kd_distill_set_knob(&o->dp, kv);
            o->dp.auto_n = 0;
        }
        if (t->verbosity)
            fprintf(stderr, "%s: %s: " KD_TRAIN_NO_VALID_NOTE ", --%s %g\n", prog, kd_in_name(o->dataset),
                    t->sgd.epochs, knob, kv);
    }
    if (o->dp.auto_n && !t->valid_every) {
        kd_fail_usage(e, "--%s auto needs early stopping (--valid-every)", kd_distill_knob(&o->dp, &(double){ 0 }));
        goto done;
    }
    /* the stage key: every parameter and the contents of dataset and teachers (one teacher:
     * the same key as before ensembles existed) */
    kd_distill_params used = o->dp;
    if (used.M > d.n_items) used.M = d.n_items; /* as kd_distill_init will use it */
    kd_buf_printf(&params, "role=distill-%s\n", kd_distill_methods[o->mi].name);
    kd_distill_prov(&used, &params);
    if (nt > 1) kd_buf_printf(&params, "teachers=%d\nensemble=mean\n", nt);
    kd_train_prov(t, &params);
    uint64_t inputs[1 + KD_MAX_TEACHERS] = { d.content_id };
    for (int x = 0; x < nt; x++) inputs[1 + x] = ta[x]->content_id;
    if ((r = kd_stage_start(&st, &params, inputs, 1 + nt, e)) != 0) goto done;
    r = -1;
    t->sgd.threads = kd_train_threads(t, d.n_users, d.n_items);
    if (kd_model_alloc(&m, d.n_users, d.n_items, t->dim, e) || kd_bpr_init(&b, &d, t->neg, kd_key(t->seed, 1, 0), e) ||
        kd_distill_init(&kd, &o->dp, &d, &tm, &b, kd_key(t->seed, 2, 0), t->sgd.threads, e))
        goto done;
    /* the same initialisation and BPR stream as kd-train: at zero weight, the same model */
    kd_model_init_normal(&m, kd_key(t->seed, 0, 0), (float)t->init_std);
    if (t->verbosity >= 2 && (kd.t_items || kd.ti_users))
        fprintf(stderr, "%s: teacher top-%u ranking of %u users: %.3f s\n", prog, kd.p.M, d.n_users, kd.rank_seconds);
    kd_distill_choice ch = { 0 };
    if (kd.p.auto_n) {
        if (kd_distill_train_auto(&kd, t, &m, &d, &ch, &log, e)) goto done;
        if (kd.p.auto_grid[ch.chosen] == 0 && t->verbosity)
            fprintf(stderr, "%s: %s: no %s of the grid validated above 0 (no distillation): the student is plain BPR's\n",
                    prog, kd_distill_methods[o->mi].name, kd_distill_knob(&kd.p, &(double){ 0 }));
    } else {
        kd_sgd_task tasks[KD_MAX_TASKS];
        int ntasks;
        kd_distill_tasks(&kd, tasks, &ntasks);
        if (kd_train_run(t, &m, &d, tasks, ntasks, &log, e)) {
            double kv;
            const char *knob = kd_distill_knob(&kd.p, &kv);
            if (!strncmp(e->msg, "training diverged", 17) && strlen(e->msg) < sizeof e->msg - 96)
                snprintf(e->msg + strlen(e->msg), sizeof e->msg - strlen(e->msg),
                         ", or a smaller --%s than %g (--%s auto skips values that diverge)", knob, kv, knob);
            goto done;
        }
    }
    kd_prov_begin(&prov, prog);
    kd_prov_id(&prov, "input.dataset", d.content_id);
    kd_prov_id(&prov, "input.teacher", ta[0]->content_id);
    for (int x = 1; x < nt; x++) {
        char key[32];
        snprintf(key, sizeof key, "input.teacher.%d", x + 1);
        kd_prov_id(&prov, key, ta[x]->content_id);
    }
    kd_buf_append(&prov, params.p, params.len);
    kd_train_prov_log(&log, &prov);
    if (kd.p.auto_n) kd_distill_prov_choice(&kd.p, &ch, &prov);
    kd_prov_u64(&prov, "params", kd_model_params(&m));
    r = kd_train_art(t, &m, &log, &prov, &a, e) || kd_stage_commit(&st, a, t->level, e) ? -1 : 0;
done:
    kd_stage_end(&st);
    kd_art_free(a);
    kd_buf_free(&params);
    kd_buf_free(&prov);
    kd_train_log_free(&log);
    kd_distill_free(&kd);
    kd_bpr_free(&b);
    kd_model_free(&m);
    kd_model_free(&tm);
    for (int x = 0; x < nt; x++) kd_art_free(ta[x]);
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
