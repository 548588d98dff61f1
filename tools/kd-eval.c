/* kd-eval: accuracy (Recall, NDCG, ... at several K), size and speed of models on a
 * dataset's test (or valid) split, as TSV or JSON.  Every figure but the timings is
 * deterministic; --no-timing leaves the timings out. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kd_artifact.h"  /* kd_art_load */
#include "kd_cli.h"       /* option parsing */
#include "kd_dataset.h"   /* kd_dataset_load */
#include "kd_eval.h"      /* kd_evaluate, kd_eval_latency */
#include "kd_model.h"     /* kd_model_from_art */

static const char *prog = "kd-eval";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: %s [options] DATASET MODEL... [-o OUT]\n"
        "Rank all items for every user with held-out items (excluding the user's train items,\n"
        "and valid items on test), and report per model: name, kind, dim, params, bytes,\n"
        "compression, recall/ndcg/precision/hitrate/mrr/map at each K, users evaluated and\n"
        "skipped, single-user latency (mean, p50, p90, p99 in microseconds) and users/s.\n"
        "  -k LIST              cutoffs [10,20]\n"
        "  --split test|valid   held-out split [test]\n"
        "  --name NAME          name of the next model in the output (repeatable)\n"
        "  --reference TEACHER  report compression (params and bytes) against this model\n"
        "  --latency-users N    time N users chosen with --seed [all evaluated users]\n"
        "  --seed N             [1]      --threads N  [number of CPUs]\n"
        "  --no-timing          leave out latency and users/s (output is then reproducible)\n"
        "  --per-user FILE      per-user metrics: model, user (original id), metric@K...\n"
        "  --topk FILE          recommendations: model, user, rank, item, score (original ids)\n"
        "  --json               one JSON object per model instead of TSV\n"
        "  -o OUT               write the table to OUT [stdout];  -h/--help, --version\n", prog);
}

enum { O_SPLIT = 256, O_NAME, O_REF, O_LAT_USERS, O_SEED, O_THREADS, O_NO_TIMING, O_PER_USER, O_TOPK, O_JSON, O_VERSION };

typedef struct model_in {
    const char *path, *name;
} model_in;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(const double *sorted, uint32_t n, double q)
{
    if (n == 0) return NAN;
    double pos = q * (n - 1);
    uint32_t lo = (uint32_t)pos;
    double frac = pos - lo;
    return lo + 1 < n ? sorted[lo] * (1 - frac) + sorted[lo + 1] * frac : sorted[lo];
}

static const char *base_name(const char *path, char *buf, size_t n)
{
    if (!strcmp(path, "-")) return "stdin";
    const char *s = strrchr(path, '/');
    snprintf(buf, n, "%s", s ? s + 1 : path);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "split", 1, 0, O_SPLIT }, { "name", 1, 0, O_NAME }, { "reference", 1, 0, O_REF },
        { "latency-users", 1, 0, O_LAT_USERS }, { "seed", 1, 0, O_SEED }, { "threads", 1, 0, O_THREADS },
        { "no-timing", 0, 0, O_NO_TIMING }, { "per-user", 1, 0, O_PER_USER }, { "topk", 1, 0, O_TOPK },
        { "json", 0, 0, O_JSON }, { "help", 0, 0, 'h' }, { "version", 0, 0, O_VERSION }, { 0, 0, 0, 0 } };
    kd_eval_opts eo = { .ks = { 10, 20 }, .nk = 2, .split = KD_SPLIT_TEST, .threads = kd_cli_default_threads() };
    const char *out_path = "-", *ref = NULL, *per_user = NULL, *topk = NULL, *names[256];
    int nnames = 0, json = 0, timing = 1, c;
    uint64_t lat_users = 0, seed = 1, v;
    kd_err e = { 0 };
    while ((c = getopt_long(argc, argv, "hk:o:", opts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case O_VERSION: kd_cli_version(prog); return 0;
        case 'k': r = kd_cli_list("-k", optarg, 1, 1000000, eo.ks, KD_MAX_KS, &eo.nk, &e); break;
        case 'o': out_path = optarg; break;
        case O_SPLIT:
            if (!strcmp(optarg, "test")) eo.split = KD_SPLIT_TEST;
            else if (!strcmp(optarg, "valid")) eo.split = KD_SPLIT_VALID;
            else r = kd_fail_usage(&e, "--split: '%s' is not test or valid", optarg);
            break;
        case O_NAME:
            if (nnames == 256) r = kd_fail_usage(&e, "--name: at most 256");
            else names[nnames++] = optarg;
            break;
        case O_REF: ref = optarg; break;
        case O_LAT_USERS: r = kd_cli_u64("--latency-users", optarg, 1, UINT32_MAX, &lat_users, &e); break;
        case O_SEED: r = kd_cli_u64("--seed", optarg, 0, UINT64_MAX, &seed, &e); break;
        case O_THREADS: r = kd_cli_u64("--threads", optarg, 1, 256, &v, &e); eo.threads = (int)v; break;
        case O_NO_TIMING: timing = 0; break;
        case O_PER_USER: per_user = optarg; break;
        case O_TOPK: topk = optarg; break;
        case O_JSON: json = 1; break;
        default: usage(stderr); return KD_EXIT_USAGE;
        }
        if (r) return kd_err_report(prog, &e);
    }
    if (argc - optind < 2) {
        fprintf(stderr, "%s: expected DATASET MODEL...\n", prog);
        return KD_EXIT_USAGE;
    }
    int nmodels = argc - optind - 1;
    if (nnames > nmodels) {
        fprintf(stderr, "%s: more --name options (%d) than models (%d)\n", prog, nnames, nmodels);
        return KD_EXIT_USAGE;
    }
    uint32_t topk_n = 0;
    for (int x = 0; x < eo.nk; x++) topk_n = eo.ks[x] > topk_n ? eo.ks[x] : topk_n;
    if (topk) eo.topk_keep = topk_n;
    eo.keep_per_user = per_user != NULL;

    kd_dataset d;
    kd_out out, pu_out, tk_out;
    int have_out = 0, have_pu = 0, have_tk = 0;
    kd_buf tab = { 0 }, pu = { 0 }, tk = { 0 };
    uint64_t ref_params = 0, ref_bytes = 0;
    if (kd_dataset_load(&d, argv[optind], &e)) return kd_err_report(prog, &e);
    if (ref) {
        kd_art *a;
        kd_buf raw = { 0 };
        if (kd_read_all(ref, &raw, &e) || kd_art_parse(raw.p, raw.len, kd_in_name(ref), &a, &e)) {
            kd_buf_free(&raw);
            goto fail;
        }
        ref_bytes = raw.len;
        kd_buf_free(&raw);
        if (a->kind != KD_KIND_MODEL) {
            kd_fail(&e, "%s: is a %s, not a model", kd_in_name(ref), kd_kind_name(a->kind));
            kd_art_free(a);
            goto fail;
        }
        ref_params = kd_model_param_count(a);
        kd_art_free(a);
    }
    /* header */
    if (!json) {
        kd_buf_printf(&tab, "model\tkind\tdim\tparams\tbytes\tcompression\tcompression_bytes");
        for (int mi = 0; mi < KD_N_METRICS; mi++)
            for (int x = 0; x < eo.nk; x++) kd_buf_printf(&tab, "\t%s@%u", kd_metric_names[mi], eo.ks[x]);
        kd_buf_printf(&tab, "\tusers\tskipped");
        if (timing) kd_buf_printf(&tab, "\tlat_mean_us\tlat_p50_us\tlat_p90_us\tlat_p99_us\tusers_per_s");
        kd_buf_printf(&tab, "\n");
    }
    if (per_user) {
        kd_buf_printf(&pu, "model\tuser");
        for (int mi = 0; mi < KD_N_METRICS; mi++)
            for (int x = 0; x < eo.nk; x++) kd_buf_printf(&pu, "\t%s@%u", kd_metric_names[mi], eo.ks[x]);
        kd_buf_printf(&pu, "\n");
    }
    for (int mi_ = 0; mi_ < nmodels; mi_++) {
        const char *path = argv[optind + 1 + mi_];
        char nb[256], kind[64] = "bpr", dimbuf[32];
        const char *name = mi_ < nnames ? names[mi_] : base_name(path, nb, sizeof nb);
        kd_buf raw = { 0 };
        kd_art *a = NULL;
        kd_model m;
        if (kd_read_all(path, &raw, &e) || kd_art_parse(raw.p, raw.len, kd_in_name(path), &a, &e)) {
            kd_buf_free(&raw);
            goto fail;
        }
        uint64_t bytes = raw.len;
        kd_buf_free(&raw);
        if (a->kind != KD_KIND_MODEL) {
            kd_fail(&e, "%s: is a %s, not a model", kd_in_name(path), kd_kind_name(a->kind));
            kd_art_free(a);
            goto fail;
        }
        if (kd_art_prov_get(a, "role", kind, sizeof kind)) strcpy(kind, "unknown");
        int r = kd_model_from_art(&m, a, &e);
        kd_art_free(a);
        if (r || kd_eval_check(&m, &d, eo.split, kd_in_name(path), &e)) {
            if (!r) kd_model_free(&m);
            goto fail;
        }
        kd_eval_result res;
        if (kd_evaluate(&m, &d, &eo, &res, &e)) {
            kd_model_free(&m);
            goto fail;
        }
        double *lat = NULL;
        uint32_t nlat = 0;
        if (timing && !(nlat = kd_eval_latency(&m, &d, eo.split, topk_n, (uint32_t)lat_users, seed, &lat, &e)) && e.code) {
            kd_eval_result_free(&res);
            kd_model_free(&m);
            goto fail;
        }
        double mean = 0;
        for (uint32_t k = 0; k < nlat; k++) mean += lat[k];
        mean = nlat ? mean / nlat : NAN;
        if (nlat) qsort(lat, nlat, 8, cmp_double);
        uint64_t params = kd_model_params(&m);
        double comp = ref ? (double)ref_params / (double)params : 1.0;
        double compb = ref ? (double)ref_bytes / (double)bytes : 1.0;
        snprintf(dimbuf, sizeof dimbuf, "%u", m.dim);
        if (json) {
            kd_buf_printf(&tab, "{\"model\":\"%s\",\"kind\":\"%s\",\"dim\":%s,\"params\":%" PRIu64 ",\"bytes\":%" PRIu64
                          ",\"compression\":%.6g,\"compression_bytes\":%.6g", name, kind, dimbuf, params, bytes, comp, compb);
            for (int mi = 0; mi < KD_N_METRICS; mi++)
                for (int x = 0; x < eo.nk; x++)
                    kd_buf_printf(&tab, ",\"%s@%u\":%.9g", kd_metric_names[mi], eo.ks[x], res.mean[mi][x]);
            kd_buf_printf(&tab, ",\"users\":%u,\"skipped\":%u", res.users_eval, res.users_skipped);
            if (timing)
                kd_buf_printf(&tab, ",\"lat_mean_us\":%.4g,\"lat_p50_us\":%.4g,\"lat_p90_us\":%.4g,\"lat_p99_us\":%.4g,\"users_per_s\":%.6g",
                              mean, quantile(lat, nlat, 0.5), quantile(lat, nlat, 0.9), quantile(lat, nlat, 0.99),
                              res.users_eval / res.seconds);
            kd_buf_printf(&tab, "}\n");
        } else {
            kd_buf_printf(&tab, "%s\t%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%.4f\t%.4f", name, kind, dimbuf, params, bytes, comp, compb);
            for (int mi = 0; mi < KD_N_METRICS; mi++)
                for (int x = 0; x < eo.nk; x++) kd_buf_printf(&tab, "\t%.6f", res.mean[mi][x]);
            kd_buf_printf(&tab, "\t%u\t%u", res.users_eval, res.users_skipped);
            if (timing)
                kd_buf_printf(&tab, "\t%.3f\t%.3f\t%.3f\t%.3f\t%.0f", mean, quantile(lat, nlat, 0.5), quantile(lat, nlat, 0.9),
                              quantile(lat, nlat, 0.99), res.users_eval / res.seconds);
            kd_buf_printf(&tab, "\n");
        }
        int nm = KD_N_METRICS * eo.nk;
        if (per_user)
            for (uint32_t u = 0; u < d.n_users; u++) {
                const double *pv = res.per_user + (size_t)u * nm;
                if (isnan(pv[0])) continue;
                kd_buf_printf(&pu, "%s\t%" PRIu64, name, d.user_ids[u]);
                for (int k = 0; k < nm; k++) kd_buf_printf(&pu, "\t%.6f", pv[k]);
                kd_buf_printf(&pu, "\n");
            }
        if (topk)
            for (uint32_t u = 0; u < d.n_users; u++)
                for (uint32_t rnk = 0; rnk < topk_n; rnk++) {
                    uint32_t it = res.top_items[(size_t)u * topk_n + rnk];
                    if (it == UINT32_MAX) break;
                    kd_buf_printf(&tk, "%s\t%" PRIu64 "\t%u\t%" PRIu64 "\t%.9g\n", name, d.user_ids[u], rnk + 1,
                                  d.item_ids[it], res.top_scores[(size_t)u * topk_n + rnk]);
                }
        free(lat);
        kd_eval_result_free(&res);
        kd_model_free(&m);
    }
    /* all outputs are written only once everything succeeded */
    if (kd_out_open(&out, out_path, KD_OUT_TEXT, &e)) goto fail;
    have_out = 1;
    if (per_user) { if (kd_out_open(&pu_out, per_user, KD_OUT_TEXT, &e)) goto fail; have_pu = 1; }
    if (topk) { if (kd_out_open(&tk_out, topk, KD_OUT_TEXT, &e)) goto fail; have_tk = 1; }
    if ((have_pu && (kd_out_write(&pu_out, pu.p, pu.len, &e) || kd_out_commit(&pu_out, &e))) ||
        (have_tk && (kd_out_write(&tk_out, tk.p, tk.len, &e) || kd_out_commit(&tk_out, &e))) ||
        kd_out_write(&out, tab.p, tab.len, &e) || kd_out_commit(&out, &e))
        goto fail;
    kd_buf_free(&tab); kd_buf_free(&pu); kd_buf_free(&tk);
    kd_dataset_free(&d);
    return 0;
fail:
    if (have_out) kd_out_abort(&out);
    if (have_pu) kd_out_abort(&pu_out);
    if (have_tk) kd_out_abort(&tk_out);
    kd_buf_free(&tab); kd_buf_free(&pu); kd_buf_free(&tk);
    kd_dataset_free(&d);
    return kd_err_report(prog, &e);
}
