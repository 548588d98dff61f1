/* kd-gen: make a dataset artifact: `synth` draws one from a known low-rank model,
 * `import` reads real interactions (tsv, csv, adj, triples) and splits them. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "kd_artifact.h"  /* kd_art_new, kd_art_save */
#include "kd_cache.h"     /* --cache: content-hashed stages */
#include "kd_cli.h"       /* checked option parsing */
#include "kd_dataset.h"   /* kd_dataset_to_art, kd_dataset_stats */
#include "kd_import.h"    /* kd_import_params, kd_import_run */
#include "kd_model.h"     /* the generating model (--truth) */
#include "kd_prov.h"      /* provenance lines */
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

/* Writes the generating model (role=truth, input.dataset = the dataset it generated) to
 * path atomically and publishes it to its stage. */
static int write_truth(const kd_model *truth, const kd_synth_params *sp, uint64_t dataset_id, const char *path,
                       int level, kd_stage *st, kd_err *e)
{
    kd_buf tp = { 0 }, tenc = { 0 };
    kd_art *ta = kd_art_new(KD_KIND_MODEL);
    kd_out to;
    kd_prov_begin(&tp, "kd-gen");
    kd_prov_str(&tp, "role", "truth");
    kd_synth_prov(sp, &tp);
    kd_prov_id(&tp, "input.dataset", dataset_id);
    int r = !ta || kd_model_to_art(truth, ta, e) || kd_art_add_text(ta, "provenance", (const char *)tp.p, tp.len, e) ||
            kd_art_encode(ta, level, &tenc, e) || kd_out_open(&to, path, KD_OUT_BINARY, e);
    if (!r && (kd_out_write(&to, tenc.p, tenc.len, e) || kd_out_commit(&to, e))) {
        kd_out_abort(&to);
        r = 1;
    }
    if (!r) r = kd_stage_publish(st, tenc.p, tenc.len, ta->content_id, e);
    if (r && !e->code) kd_fail(e, "out of memory");
    kd_buf_free(&tenc);
    kd_buf_free(&tp);
    kd_art_free(ta);
    return r ? -1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "users", 1, 0, O_USERS }, { "items", 1, 0, O_ITEMS }, { "mean", 1, 0, O_MEAN },
        { "spread", 1, 0, O_SPREAD }, { "rank", 1, 0, O_RANK }, { "decay", 1, 0, O_DECAY },
        { "clusters", 1, 0, O_CLUSTERS }, { "cluster-share", 1, 0, O_SHARE }, { "beta", 1, 0, O_BETA },
        { "zipf", 1, 0, O_ZIPF }, { "noise", 1, 0, O_NOISE }, { "test-ratio", 1, 0, O_TEST_RATIO },
        { "valid-ratio", 1, 0, O_VALID_RATIO }, { "seed", 1, 0, O_SEED }, { "level", 1, 0, O_LEVEL },
        { "format", 1, 0, O_FORMAT }, { "min-rating", 1, 0, O_MIN_RATING }, { "kcore", 1, 0, O_KCORE },
        { "valid", 1, 0, O_VALID }, { "test", 1, 0, O_TEST }, { "leave-one-out", 0, 0, O_LOO }, { "truth", 1, 0, O_TRUTH }, { "cache", 1, 0, O_CACHE }, { "label", 1, 0, O_LABEL },
        { "valid-fraction", 1, 0, O_VALID_FRACTION }, { "threads", 1, 0, O_THREADS },
        { "help", 0, 0, 'h' }, { "version", 0, 0, O_VERSION }, { 0, 0, 0, 0 } };
    kd_synth_params sp = kd_synth_defaults();
    kd_import_params ip = kd_import_defaults();
    const char *out = "-", *truth_path = NULL, *cache = NULL, *label = NULL;
    int level = 1, c;
    uint64_t v = 0;
    kd_err e = { 0 };

    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) { usage(stdout); return 0; }
    if (argc >= 2 && !strcmp(argv[1], "--version")) { kd_cli_version(prog); return 0; }
    if (argc < 2 || (strcmp(argv[1], "synth") && strcmp(argv[1], "import"))) {
        fprintf(stderr, "%s: expected a command: synth or import\n", prog);
        usage(stderr);
        return KD_EXIT_USAGE;
    }
    int synth = !strcmp(argv[1], "synth");
    argv++;
    argc--;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        case O_VERSION: kd_cli_version(prog); return 0;
        case O_USERS: r = kd_cli_u64("--users", optarg, 1, 100000000, &v, &e); sp.users = (uint32_t)v; break;
        case O_ITEMS: r = kd_cli_u64("--items", optarg, 2, 100000000, &v, &e); sp.items = (uint32_t)v; break;
        case O_MEAN: r = kd_cli_double("--mean", optarg, 1, 1e8, &sp.mean, &e); break;
        case O_SPREAD: r = kd_cli_double("--spread", optarg, 0, 3, &sp.spread, &e); break;
        case O_RANK: r = kd_cli_u64("--rank", optarg, 1, 1024, &v, &e); sp.rank = (uint32_t)v; break;
        case O_DECAY: r = kd_cli_double("--decay", optarg, 1e-9, 1, &sp.decay, &e); break;
        case O_CLUSTERS: r = kd_cli_u64("--clusters", optarg, 1, 1000000, &v, &e); sp.clusters = (uint32_t)v; break;
        case O_SHARE: r = kd_cli_double("--cluster-share", optarg, 0, 1, &sp.cluster_share, &e); break;
        case O_BETA: r = kd_cli_double("--beta", optarg, 0, 100, &sp.beta, &e); break;
        case O_ZIPF: r = kd_cli_double("--zipf", optarg, 0, 5, &sp.zipf, &e); break;
        case O_NOISE: r = kd_cli_double("--noise", optarg, 0, 1, &sp.noise, &e); break;
        case O_TEST_RATIO: r = kd_cli_double("--test-ratio", optarg, 1e-9, 1 - 1e-9, &sp.test_ratio, &e);
            ip.test_ratio = sp.test_ratio; break;
        case O_VALID_RATIO: r = kd_cli_double("--valid-ratio", optarg, 0, 1 - 1e-9, &sp.valid_ratio, &e);
            ip.valid_ratio = sp.valid_ratio; break;
        case O_SEED: r = kd_cli_u64("--seed", optarg, 0, UINT64_MAX, &sp.seed, &e); ip.seed = sp.seed; break;
        case O_LEVEL: r = kd_cli_int("--level", optarg, 0, 9, &level, &e); break;
        case O_FORMAT:
            if ((ip.format = kd_import_format_parse(optarg)) < 0)
                r = kd_fail_usage(&e, "--format: unknown format '%s' (tsv, csv, adj, triples)", optarg);
            break;
        case O_MIN_RATING: r = kd_cli_double("--min-rating", optarg, -1e300, 1e300, &ip.min_rating, &e);
            ip.use_min_rating = 1; break;
        case O_KCORE: r = kd_cli_u64("--kcore", optarg, 0, 1000000, &v, &e); ip.kcore = (uint32_t)v; break;
        case O_VALID: ip.valid_path = optarg; break;
        case O_TEST: ip.test_path = optarg; break;
        case O_VALID_FRACTION: r = kd_cli_double("--valid-fraction", optarg, 0, 1, &ip.valid_fraction, &e);
            if (!r && !(ip.valid_fraction > 0 && ip.valid_fraction < 1))
                r = kd_fail_usage(&e, "--valid-fraction: %s is not in (0, 1)", optarg);
            break;
        case O_THREADS: r = kd_cli_u64("--threads", optarg, 1, 256, &v, &e); sp.threads = (int)v; break;
        case O_LOO: ip.leave_one_out = 1; break;
        case O_TRUTH: truth_path = optarg; break;
        case O_CACHE: cache = optarg; break;
        case O_LABEL: label = optarg; break;
        default: usage(stderr); return KD_EXIT_USAGE;
        }
        if (r)
            return kd_err_report(prog, &e);
    }
    if (synth && optind != argc) {
        fprintf(stderr, "%s: synth takes no operand ('%s')\n", prog, argv[optind]);
        return KD_EXIT_USAGE;
    }
    if (!synth && optind + 1 != argc) {
        fprintf(stderr, "%s: import takes one INPUT (a path or '-')\n", prog);
        return KD_EXIT_USAGE;
    }
    if (!synth && ip.format < 0) {
        fprintf(stderr, "%s: import needs --format tsv|csv|adj|triples\n", prog);
        return KD_EXIT_USAGE;
    }

    kd_dataset d;
    kd_model truth;
    int have_truth = 0;
    kd_buf prov = { 0 };
    kd_art *a = NULL;
    kd_out o;
    int opened = 0;
    /* open the output first: a bad path fails before any work, and binary is never
     * written to a terminal */
    if (kd_out_open(&o, out, KD_OUT_BINARY, &e))
        return kd_err_report(prog, &e);
    opened = 1;
    /* the stage: parameters, and for import the bytes of every input file */
    kd_buf params = { 0 }, inbuf = { 0 }, hit = { 0 }, thit = { 0 };
    kd_stage stage, tstage;
    uint64_t inputs[3];
    int ninputs = 0;
    if (synth) {
        kd_synth_prov(&sp, &params);
    } else {
        kd_import_params ip2 = ip;
        kd_buf_printf(&params, "import.format=%d\nmin_rating=%d/%.17g\nkcore=%u\nloo=%d\nsplit=%.17g/%.17g/%llu\n",
                      ip2.format, ip2.use_min_rating, ip2.min_rating, ip2.kcore, ip2.leave_one_out, ip2.test_ratio,
                      ip2.valid_ratio, (unsigned long long)ip2.seed);
        if (ip2.valid_fraction > 0) kd_buf_printf(&params, "valid_fraction=%.17g\n", ip2.valid_fraction);
        if (cache) {
            const char *paths[3] = { argv[optind], ip.test_path, ip.valid_path };
            for (int k = 0; k < 3; k++) {
                if (!paths[k]) { inputs[ninputs++] = 0; continue; }
                kd_buf fb = { 0 };
                if (kd_read_all(paths[k], &fb, &e)) { kd_buf_free(&fb); goto fail_stage; }
                inputs[ninputs++] = kd_hash_bytes(fb.p, fb.len);
                if (k == 0) inbuf = fb; else kd_buf_free(&fb);
            }
            ip.input_mem = inbuf.p;
            ip.input_len = inbuf.len;
        }
    }
    if (kd_stage_begin(&stage, "kd-gen", kd_stage_label(label, out), cache, (const char *)params.p, params.len,
                       inputs, ninputs, &e))
        goto fail_stage;
    if (truth_path) { /* the truth is a second output: its own entry */
        kd_buf_printf(&params, "output=truth\n");
        if (kd_stage_begin(&tstage, "kd-gen", kd_stage_label(NULL, truth_path), cache, (const char *)params.p,
                           params.len, inputs, ninputs, &e))
            goto fail_stage;
    }
    int h1 = kd_stage_lookup(&stage, &hit, &e), h2 = truth_path ? kd_stage_lookup(&tstage, &thit, &e) : 1;
    if (h1 < 0 || h2 < 0) goto fail_stage;
    if (h1 == 1 && h2 == 1) {
        kd_out_abort(&o);
        opened = 0;
        if (kd_stage_restore(out, hit.p, hit.len, &e) ||
            (truth_path && kd_stage_restore(truth_path, thit.p, thit.len, &e)))
            goto fail_stage;
        kd_stage_report(&stage, 1);
        kd_buf_free(&params); kd_buf_free(&inbuf); kd_buf_free(&hit); kd_buf_free(&thit);
        return 0;
    }
    kd_buf_free(&hit);
    kd_buf_free(&thit);
    kd_prov_begin(&prov, "kd-gen");
    if (synth) {
        if (kd_synth_generate(&d, &sp, truth_path ? &truth : NULL, &e))
            goto fail;
        have_truth = truth_path != NULL;
        kd_synth_prov(&sp, &prov);
    } else {
        ip.input_path = argv[optind];
        if (kd_import_run(&d, &ip, &prov, &e))
            goto fail;
        if (ip.dropped_valid)
            fprintf(stderr, "%s: warning: %s: %llu interactions with a user or item not in train were dropped\n",
                    prog, kd_in_name(ip.valid_path), (unsigned long long)ip.dropped_valid);
        if (ip.dropped_test)
            fprintf(stderr, "%s: warning: %s: %llu interactions with a user or item not in train were dropped\n",
                    prog, kd_in_name(ip.test_path), (unsigned long long)ip.dropped_test);
    }
    kd_dataset_stats(&d, &prov);
    a = kd_art_new(KD_KIND_DATASET);
    if (!a || kd_dataset_to_art(&d, a, &e) ||
        kd_art_add_text(a, "provenance", (const char *)prov.p, prov.len, &e)) {
        kd_dataset_free(&d);
        if (!a) kd_fail(&e, "out of memory");
        goto fail;
    }
    kd_dataset_free(&d);
    /* the truth names the dataset's content ID, so it can serve as a teacher for it */
    if (have_truth && write_truth(&truth, &sp, kd_art_content_id(a), truth_path, level, &tstage, &e))
        goto fail;
    kd_buf enc = { 0 };
    if (kd_art_encode(a, level, &enc, &e) || kd_out_write(&o, enc.p, enc.len, &e) || kd_out_commit(&o, &e)) {
        kd_buf_free(&enc);
        goto fail;
    }
    opened = 0;
    if (kd_stage_publish(&stage, enc.p, enc.len, a->content_id, &e)) {
        kd_buf_free(&enc);
        goto fail;
    }
    kd_stage_report(&stage, 0);
    if (have_truth) kd_model_free(&truth);
    kd_buf_free(&enc);
    kd_art_free(a);
    kd_buf_free(&prov);
    kd_buf_free(&params);
    kd_buf_free(&inbuf);
    return 0;
fail_stage:
    kd_buf_free(&hit);
    kd_buf_free(&thit);
fail:
    if (have_truth) kd_model_free(&truth);
    kd_buf_free(&params);
    kd_buf_free(&inbuf);
    if (opened)
        kd_out_abort(&o);
    kd_art_free(a);
    kd_buf_free(&prov);
    return kd_err_report(prog, &e);
}
