/* kd-gen: make a dataset artifact: `synth` draws one from a known low-rank model,
 * `import` reads real interactions (tsv, csv, adj, triples) and splits them.  With
 * --cache DIR a stage (with --truth, two entries: the dataset and its generating model).
 *     kd-gen synth --users 1000 --items 500 --seed 1 -o data.kd
 *     kd-gen import --format tsv --kcore 5 ratings.tsv -o data.kd */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h"  /* kd_art_new */
#include "kd_cache.h"     /* kd_hash_bytes: import's inputs in the key */
#include "kd_cli.h"       /* checked option parsing */
#include "kd_dataset.h"   /* kd_dataset_to_art, kd_dataset_stats */
#include "kd_import.h"    /* kd_import_params, kd_import_run */
#include "kd_model.h"     /* the generating model (--truth) */
#include "kd_prov.h"      /* provenance lines */
#include "kd_stage.h"     /* --cache: content-hashed stages */
#include "kd_synth.h"     /* kd_synth_params, kd_synth_generate */

static const char *prog = "kd-gen";

static void usage(FILE *f)
{
    kd_synth_params s = kd_synth_defaults();
    fprintf(f,
        "usage: %s synth  [options] [-o OUT]\n"
        "       %s import --format tsv|csv|adj|triples [options] INPUT [-o OUT]\n"
        "Make a dataset artifact with train/valid/test splits (OUT defaults to stdout,\n"
        "which must not be a terminal; INPUT '-' is stdin).\n"
        "\nsynth options (defaults in brackets):\n"
        "  --users N [%u]  --items N [%u]  --mean X interactions per user [%g]\n"
        "  --spread S   sigma of log(interactions per user) [%g]\n"
        "  --rank R     true latent rank [%u]     --decay D  spectrum decay per dimension [%g]\n"
        "  --clusters K user/item clusters [%u]   --cluster-share S  variance from clusters [%g]\n"
        "  --beta B     affinity scale [%g]       --zipf Z   popularity exponent [%g]\n"
        "  --noise P    share of uniform-noise interactions [%g]\n"
        "  --truth FILE also write the generating model as a model artifact (dim = rank):\n"
        "               the ceiling of what a learned model can reach (kd-eval it)\n"
        "\nimport options:\n"
        "  --format F        tsv: 'user item rating timestamp' (tab/space); csv: header then\n"
        "                    userId,movieId,rating,timestamp; adj: 'user item item ...';\n"
        "                    triples: 'user item [weight]'\n"
        "  --min-rating R    keep ratings (weights) >= R as positives\n"
        "  --kcore K         repeatedly drop users/items with fewer than K interactions\n"
        "  --valid F --test F  given split files (same format, ids mapped through train)\n"
        "  --valid-fraction X  with --test and no --valid: move a share X in (0, 1) of each\n"
        "                    user's train interactions to valid (drawn with --seed; a user\n"
        "                    keeps at least one)\n"
        "  --leave-one-out   latest interaction (by timestamp, else random) to test, next to valid\n"
        "\nsplits (both commands):\n"
        "  --test-ratio X [%g]  --valid-ratio X of the rest [%g]   --seed N [%llu]\n"
        "common: -o OUT, --level N zlib level 0-9 [1: fast; 9 is ~10%% smaller], -h/--help, --version\n"
        "  --threads N   [number of CPUs]; the dataset is the same for any N\n"
        "  --cache DIR   reuse the dataset of an identical earlier run (same binary, parameters,\n"
        "                input bytes), else publish this one;  --label TEXT  its name in messages\n",
        prog, prog, s.users, s.items, s.mean, s.spread, s.rank, s.decay, s.clusters, s.cluster_share,
        s.beta, s.zipf, s.noise, s.test_ratio, s.valid_ratio, (unsigned long long)s.seed);
}

enum {
    O_USERS = 256, O_ITEMS, O_MEAN, O_SPREAD, O_RANK, O_DECAY, O_CLUSTERS, O_SHARE, O_BETA, O_ZIPF,
    O_NOISE, O_TEST_RATIO, O_VALID_RATIO, O_SEED, O_LEVEL, O_FORMAT, O_MIN_RATING, O_KCORE,
    O_VALID, O_TEST, O_LOO, O_VERSION, O_TRUTH, O_CACHE, O_LABEL, O_VALID_FRACTION, O_THREADS,
};

static const struct option options[] = {
    { "users", 1, 0, O_USERS }, { "items", 1, 0, O_ITEMS }, { "mean", 1, 0, O_MEAN },
    { "spread", 1, 0, O_SPREAD }, { "rank", 1, 0, O_RANK }, { "decay", 1, 0, O_DECAY },
    { "clusters", 1, 0, O_CLUSTERS }, { "cluster-share", 1, 0, O_SHARE }, { "beta", 1, 0, O_BETA },
    { "zipf", 1, 0, O_ZIPF }, { "noise", 1, 0, O_NOISE }, { "test-ratio", 1, 0, O_TEST_RATIO },
    { "valid-ratio", 1, 0, O_VALID_RATIO }, { "seed", 1, 0, O_SEED }, { "level", 1, 0, O_LEVEL },
    { "format", 1, 0, O_FORMAT }, { "min-rating", 1, 0, O_MIN_RATING }, { "kcore", 1, 0, O_KCORE },
    { "valid", 1, 0, O_VALID }, { "test", 1, 0, O_TEST }, { "leave-one-out", 0, 0, O_LOO },
    { "truth", 1, 0, O_TRUTH }, { "cache", 1, 0, O_CACHE }, { "label", 1, 0, O_LABEL },
    { "valid-fraction", 1, 0, O_VALID_FRACTION }, { "threads", 1, 0, O_THREADS },
    { "help", 0, 0, 'h' }, { "version", 0, 0, O_VERSION }, { 0, 0, 0, 0 } };

struct opts {
    int               synth;   /* the command: synth (1) or import (0) */
    kd_synth_params   sp;
    kd_import_params  ip;
    const char       *out, *truth, *cache, *label, *input;
    int               level;
};

/* One option into o: 0, or -1 with e filled (usage class for a bad value). */
static int parse_option(struct opts *o, int c, const char *arg, kd_err *e)
{
    kd_synth_params *sp = &o->sp;
    kd_import_params *ip = &o->ip;
    uint64_t v = 0;
    int r = 0;
    switch (c) {
    case 'o': o->out = arg; break;
    case O_USERS: r = kd_cli_u64("--users", arg, 1, 100000000, &v, e); sp->users = (uint32_t)v; break;
    case O_ITEMS: r = kd_cli_u64("--items", arg, 2, 100000000, &v, e); sp->items = (uint32_t)v; break;
    case O_MEAN: r = kd_cli_double("--mean", arg, 1, 1e8, &sp->mean, e); break;
    case O_SPREAD: r = kd_cli_double("--spread", arg, 0, 3, &sp->spread, e); break;
    case O_RANK: r = kd_cli_u64("--rank", arg, 1, 1024, &v, e); sp->rank = (uint32_t)v; break;
    case O_DECAY: r = kd_cli_double("--decay", arg, 1e-9, 1, &sp->decay, e); break;
    case O_CLUSTERS: r = kd_cli_u64("--clusters", arg, 1, 1000000, &v, e); sp->clusters = (uint32_t)v; break;
    case O_SHARE: r = kd_cli_double("--cluster-share", arg, 0, 1, &sp->cluster_share, e); break;
    case O_BETA: r = kd_cli_double("--beta", arg, 0, 100, &sp->beta, e); break;
    case O_ZIPF: r = kd_cli_double("--zipf", arg, 0, 5, &sp->zipf, e); break;
    case O_NOISE: r = kd_cli_double("--noise", arg, 0, 1, &sp->noise, e); break;
    case O_TEST_RATIO: r = kd_cli_double("--test-ratio", arg, 1e-9, 1 - 1e-9, &sp->test_ratio, e);
        ip->test_ratio = sp->test_ratio; break;
    case O_VALID_RATIO: r = kd_cli_double("--valid-ratio", arg, 0, 1 - 1e-9, &sp->valid_ratio, e);
        ip->valid_ratio = sp->valid_ratio; break;
    case O_SEED: r = kd_cli_u64("--seed", arg, 0, UINT64_MAX, &sp->seed, e); ip->seed = sp->seed; break;
    case O_LEVEL: r = kd_cli_int("--level", arg, 0, 9, &o->level, e); break;
    case O_FORMAT:
        if ((ip->format = kd_import_format_parse(arg)) < 0)
            r = kd_fail_usage(e, "--format: unknown format '%s' (tsv, csv, adj, triples)", arg);
        break;
    case O_MIN_RATING: r = kd_cli_double("--min-rating", arg, -1e300, 1e300, &ip->min_rating, e);
        ip->use_min_rating = 1; break;
    case O_KCORE: r = kd_cli_u64("--kcore", arg, 0, 1000000, &v, e); ip->kcore = (uint32_t)v; break;
    case O_VALID: ip->valid_path = arg; break;
    case O_TEST: ip->test_path = arg; break;
    case O_VALID_FRACTION: r = kd_cli_double("--valid-fraction", arg, 0, 1, &ip->valid_fraction, e);
        if (!r && !(ip->valid_fraction > 0 && ip->valid_fraction < 1))
            r = kd_fail_usage(e, "--valid-fraction: %s is not in (0, 1)", arg);
        break;
    case O_THREADS: r = kd_cli_u64("--threads", arg, 1, 256, &v, e); sp->threads = (int)v; break;
    case O_LOO: ip->leave_one_out = 1; break;
    case O_TRUTH: o->truth = arg; break;
    case O_CACHE: o->cache = arg; break;
    case O_LABEL: o->label = arg; break;
    }
    return r;
}

/* Exits 0 after --help/--version, 2 on misuse or a bad value. */
static void parse_args(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof *o);
    o->sp = kd_synth_defaults();
    o->ip = kd_import_defaults();
    o->out = "-";
    o->level = 1;
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) { usage(stdout); exit(0); }
    if (argc >= 2 && !strcmp(argv[1], "--version")) { kd_cli_version(prog); exit(0); }
    if (argc < 2 || (strcmp(argv[1], "synth") && strcmp(argv[1], "import"))) {
        fprintf(stderr, "%s: expected a command: synth or import\n", prog);
        usage(stderr);
        exit(KD_EXIT_USAGE);
    }
    o->synth = !strcmp(argv[1], "synth");
    argv++;
    argc--;
    kd_err e = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "ho:", options, NULL)) != -1) {
        if (c == 'h') { usage(stdout); exit(0); }
        if (c == O_VERSION) { kd_cli_version(prog); exit(0); }
        if (c == '?' || c == ':') { usage(stderr); exit(KD_EXIT_USAGE); }
        if (parse_option(o, c, optarg, &e)) exit(kd_err_report(prog, &e));
    }
    if (o->synth && optind != argc) {
        fprintf(stderr, "%s: synth takes no operand ('%s')\n", prog, argv[optind]);
        exit(KD_EXIT_USAGE);
    }
    if (!o->synth && optind + 1 != argc) {
        fprintf(stderr, "%s: import takes one INPUT (a path or '-')\n", prog);
        exit(KD_EXIT_USAGE);
    }
    if (!o->synth && o->ip.format < 0) {
        fprintf(stderr, "%s: import needs --format tsv|csv|adj|triples\n", prog);
        exit(KD_EXIT_USAGE);
    }
    o->input = o->synth ? NULL : argv[optind];
}

/* The stage's parameters, and for import the bytes of every input file (read once: the
 * main input is kept in *inbuf for the import itself). */
static int stage_params(struct opts *o, kd_buf *params, kd_buf *inbuf, uint64_t *inputs, int *ninputs, kd_err *e)
{
    const kd_import_params *ip = &o->ip;
    *ninputs = 0;
    if (o->synth) {
        kd_synth_prov(&o->sp, params);
        return 0;
    }
    kd_buf_printf(params, "import.format=%d\nmin_rating=%d/%.17g\nkcore=%u\nloo=%d\nsplit=%.17g/%.17g/%llu\n",
                  ip->format, ip->use_min_rating, ip->min_rating, ip->kcore, ip->leave_one_out, ip->test_ratio,
                  ip->valid_ratio, (unsigned long long)ip->seed);
    if (ip->valid_fraction > 0) kd_buf_printf(params, "valid_fraction=%.17g\n", ip->valid_fraction);
    if (!o->cache)
        return 0;
    const char *paths[3] = { o->input, ip->test_path, ip->valid_path };
    for (int k = 0; k < 3; k++) {
        if (!paths[k]) { inputs[(*ninputs)++] = 0; continue; }
        kd_buf fb = { 0 };
        if (kd_read_all(paths[k], &fb, e)) { kd_buf_free(&fb); return -1; }
        inputs[(*ninputs)++] = kd_hash_bytes(fb.p, fb.len);
        if (k == 0) *inbuf = fb; else kd_buf_free(&fb);
    }
    o->ip.input_mem = inbuf->p;
    o->ip.input_len = inbuf->len;
    return 0;
}

/* The dataset artifact (and the generating model into *truth when asked). */
static int make_dataset(struct opts *o, kd_model *truth, int *have_truth, kd_art **out, kd_err *e)
{
    kd_dataset d;
    kd_buf prov = { 0 };
    *out = NULL;
    kd_prov_begin(&prov, "kd-gen");
    if (o->synth) {
        if (kd_synth_generate(&d, &o->sp, o->truth ? truth : NULL, e)) { kd_buf_free(&prov); return -1; }
        *have_truth = o->truth != NULL;
        kd_synth_prov(&o->sp, &prov);
    } else {
        o->ip.input_path = o->input;
        if (kd_import_run(&d, &o->ip, &prov, e)) { kd_buf_free(&prov); return -1; }
        if (o->ip.dropped_valid)
            fprintf(stderr, "%s: warning: %s: %llu interactions with a user or item not in train were dropped\n",
                    prog, kd_in_name(o->ip.valid_path), (unsigned long long)o->ip.dropped_valid);
        if (o->ip.dropped_test)
            fprintf(stderr, "%s: warning: %s: %llu interactions with a user or item not in train were dropped\n",
                    prog, kd_in_name(o->ip.test_path), (unsigned long long)o->ip.dropped_test);
    }
    kd_dataset_stats(&d, &prov);
    kd_art *a = kd_art_new(KD_KIND_DATASET);
    int r = !a ? kd_fail(e, "out of memory")
               : kd_dataset_to_art(&d, a, e) || kd_art_add_buf(a, "provenance", &prov, e) ? -1 : 0;
    kd_dataset_free(&d);
    kd_buf_free(&prov);
    if (r) { kd_art_free(a); return -1; }
    *out = a;
    return 0;
}

/* The generating model as an artifact: role=truth, input.dataset = the dataset it
 * generated, so it can serve as a teacher for it. */
static int make_truth(const kd_model *truth, const kd_synth_params *sp, uint64_t dataset_id, kd_art **out, kd_err *e)
{
    kd_buf tp = { 0 };
    kd_prov_begin(&tp, "kd-gen");
    kd_prov_str(&tp, "role", "truth");
    kd_synth_prov(sp, &tp);
    kd_prov_id(&tp, "input.dataset", dataset_id);
    kd_art *ta = kd_art_new(KD_KIND_MODEL);
    int r = !ta ? kd_fail(e, "out of memory")
                : kd_model_to_art(truth, ta, e) || kd_art_add_buf(ta, "provenance", &tp, e) ? -1 : 0;
    kd_buf_free(&tp);
    if (r) { kd_art_free(ta); ta = NULL; }
    *out = ta;
    return r;
}

static int run(struct opts *o, kd_err *e)
{
    kd_stage st, tst;  /* the dataset's stage, and the truth's (its own entry, no line) */
    kd_buf params = { 0 }, inbuf = { 0 };
    kd_art *a = NULL, *ta = NULL;
    kd_model truth;
    uint64_t inputs[3];
    int ninputs = 0, have_truth = 0, r = -1;
    kd_stage_init(&st, prog, kd_stage_label(o->label, o->out), o->cache);
    kd_stage_init(&tst, prog, o->truth ? kd_stage_label(NULL, o->truth) : "", o->cache);
    tst.quiet = 1;
    /* the output first: a bad path fails before any work, and binary is never written
     * to a terminal */
    if (kd_stage_add_output(&st, o->out, NULL, e) || stage_params(o, &params, &inbuf, inputs, &ninputs, e) ||
        kd_stage_key(&st, &params, inputs, ninputs, e))
        goto done;
    if (o->truth) { /* the truth is a second output: its own entry */
        kd_buf_printf(&params, "output=truth\n");
        if (kd_stage_key(&tst, &params, inputs, ninputs, e)) goto done;
    }
    int h1 = kd_stage_find(&st, e), h2 = o->truth ? kd_stage_find(&tst, e) : 1;
    if (h1 < 0 || h2 < 0) goto done;
    if (h1 == 1 && h2 == 1) {
        r = (o->truth && (kd_stage_add_output(&tst, o->truth, NULL, e) || kd_stage_restore(&tst, e))) ||
            kd_stage_restore(&st, e) ? -1 : 0;
        goto done;
    }
    if (make_dataset(o, &truth, &have_truth, &a, e)) goto done;
    if (have_truth && (make_truth(&truth, &o->sp, kd_art_content_id(a), &ta, e) ||
                       kd_stage_add_output(&tst, o->truth, NULL, e) || kd_stage_commit(&tst, ta, o->level, e)))
        goto done;
    r = kd_stage_commit(&st, a, o->level, e);
done:
    kd_stage_end(&tst);
    kd_stage_end(&st);
    if (have_truth) kd_model_free(&truth);
    kd_art_free(ta);
    kd_art_free(a);
    kd_buf_free(&params);
    kd_buf_free(&inbuf);
    return r;
}

int main(int argc, char **argv)
{
    struct opts o;
    kd_err e = { 0 };
    parse_args(argc, argv, &o);
    return run(&o, &e) ? kd_err_report(prog, &e) : 0;
}
