/* kd-eval: accuracy (Recall, NDCG, ... at several K), size and speed of models on a
 * dataset's test (or valid) split, as TSV or JSON, and what each model is (role, method,
 * knob, seed, teacher: read from its provenance, never from its file name).  Every figure
 * but the timings is deterministic; --no-timing leaves the timings out.
 *   kd-eval --reference teacher.kd -k 10,20 data.kd teacher.kd student.kd rrd.kd -o eval.tsv */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h"  /* kd_art_load */
#include "kd_stage.h"     /* --cache */
#include "kd_cli.h"       /* option parsing */
#include "kd_dataset.h"   /* kd_dataset_load */
#include "kd_eval.h"      /* kd_evaluate, kd_eval_latency */
#include "kd_model.h"     /* kd_model_from_art */
#include "kd_prov.h"      /* kd_prov_settings_id */
#include "kd_quant.h"     /* kd_quant_art_serving_bytes */

static const char *prog = "kd-eval";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: %s [options] DATASET MODEL... [-o OUT]\n"
        "Rank all items for every user with held-out items (excluding the user's train items,\n"
        "and valid items on test), and report per model: name, kind, dim, params, bytes (what\n"
        "serving it holds: 4 x params for a float model, codes + scales + offsets + biases for\n"
        "a kd-quant one), compression (params, bytes), recall/ndcg/precision/hitrate/mrr/map\n"
        "at each K, users evaluated and\n"
        "skipped, single-user latency (mean, p50, p90, p99 in microseconds) and users/s, then\n"
        "what the model is, from its provenance ('-' when it does not say):\n"
        "  id          the model's content ID\n"
        "  role        teacher (the --reference, or named as input.teacher by a model of this\n"
        "              evaluation), distilled (has a teacher), student (any other kd-train\n"
        "              model), quantised (a kd-quant model) or other\n"
        "  method      bpr for kd-train models, else the distillation method\n"
        "  knob        the method's weight: alpha (margin-mse, convex mix) or lambda\n"
        "  knob_value  its value (shortest text that reads back exactly)\n"
        "  seed        the training seed;  teacher  the teacher's content ID\n"
        "  quant       int8-sym, int4-asym, ... for a kd-quant model (its method, knob, seed\n"
        "              and teacher are then those of the model it quantises)\n"
        "  source      the content ID of the model a kd-quant model quantises\n"
        "  settings    its provenance but for the weight and results, hashed: models of one\n"
        "              method with the same settings differ only in their knob\n"
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
        "  --cache DIR          reuse the outputs of an identical earlier evaluation (same binary,\n"
        "                       options and input contents), else publish these;  --label TEXT\n"
        "  -o OUT               write the table to OUT [stdout];  -h/--help, --version\n", prog);
}

enum { O_SPLIT = 256, O_NAME, O_REF, O_LAT_USERS, O_SEED, O_THREADS, O_NO_TIMING, O_PER_USER, O_TOPK, O_JSON, O_VERSION,
       O_CACHE, O_LABEL };

/* the command line */
struct opts {
    kd_eval_opts eo;
    const char  *dataset, *out, *ref, *per_user, *topk, *cache, *label;
    char *const *models;     /* argv's model operands */
    int          nmodels;
    const char **names;      /* --name values, in order (grown as given) */
    size_t       nnames, cap_names;
    int          json, timing;
    uint64_t     lat_users, seed;
};
#define OPTS_INIT { .eo = { .ks = { 10, 20 }, .nk = 2, .split = KD_SPLIT_TEST }, .out = "-", .timing = 1, .seed = 1 }

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

/* What a model is, from its provenance (and the other models' and --reference's content
 * IDs, for the teacher).  Absent facts are "-" (null in JSON). */
typedef struct ident {
    char        id[17], knob_value[32], quant[32], settings[17];
    char       *teacher, *method, *seed, *source; /* owned, "-" when absent */
    const char *role, *knob;
} ident;

static void ident_free(ident *w)
{
    free(w->teacher); free(w->method); free(w->seed); free(w->source);
}

typedef struct row {
    const char *name, *kind;
    const ident *who;
    uint32_t dim;
    uint64_t params, bytes;
    double comp, compb;
    const kd_eval_result *res;
    double lat_mean, p50, p90, p99, ups;
} row;

static void put_header(kd_buf *b, const kd_eval_opts *eo, int timing)
{
    kd_buf_printf(b, "model\tkind\tdim\tparams\tbytes\tcompression\tcompression_bytes");
    for (int mi = 0; mi < KD_N_METRICS; mi++)
        for (int x = 0; x < eo->nk; x++) kd_buf_printf(b, "\t%s@%u", kd_metric_names[mi], eo->ks[x]);
    kd_buf_printf(b, "\tusers\tskipped");
    if (timing) kd_buf_printf(b, "\tlat_mean_us\tlat_p50_us\tlat_p90_us\tlat_p99_us\tusers_per_s");
    kd_buf_printf(b, "\tid\trole\tmethod\tknob\tknob_value\tseed\tteacher\tquant\tsource\tsettings\n");
}

/* a JSON string, or null for an absent fact */
static void put_json_str(kd_buf *b, const char *key, const char *v)
{
    kd_buf_printf(b, strcmp(v, "-") ? ",\"%s\":\"%s\"" : ",\"%s\":null", key, v);
}

static void put_row(kd_buf *b, const kd_eval_opts *eo, const row *r, int timing, int json)
{
    const kd_eval_result *res = r->res;
    if (json) {
        kd_buf_printf(b, "{\"model\":\"%s\",\"kind\":\"%s\",\"dim\":%u,\"params\":%" PRIu64 ",\"bytes\":%" PRIu64
                      ",\"compression\":%.6g,\"compression_bytes\":%.6g", r->name, r->kind, r->dim, r->params, r->bytes,
                      r->comp, r->compb);
        for (int mi = 0; mi < KD_N_METRICS; mi++)
            for (int x = 0; x < eo->nk; x++)
                kd_buf_printf(b, ",\"%s@%u\":%.9g", kd_metric_names[mi], eo->ks[x], res->mean[mi][x]);
        kd_buf_printf(b, ",\"users\":%u,\"skipped\":%u", res->users_eval, res->users_skipped);
        if (timing)
            kd_buf_printf(b, ",\"lat_mean_us\":%.4g,\"lat_p50_us\":%.4g,\"lat_p90_us\":%.4g,\"lat_p99_us\":%.4g,\"users_per_s\":%.6g",
                          r->lat_mean, r->p50, r->p90, r->p99, r->ups);
        const ident *w = r->who;
        put_json_str(b, "id", w->id);
        put_json_str(b, "role", w->role);
        put_json_str(b, "method", w->method);
        put_json_str(b, "knob", w->knob);
        put_json_str(b, "knob_value", w->knob_value);
        if (w->seed[strspn(w->seed, "0123456789")] || !strcmp(w->seed, "-")) put_json_str(b, "seed", w->seed);
        else kd_buf_printf(b, ",\"seed\":%s", w->seed); /* digits only: a JSON number */
        put_json_str(b, "teacher", w->teacher);
        put_json_str(b, "quant", w->quant);
        put_json_str(b, "source", w->source);
        put_json_str(b, "settings", w->settings);
        kd_buf_printf(b, "}\n");
        return;
    }
    kd_buf_printf(b, "%s\t%s\t%u\t%" PRIu64 "\t%" PRIu64 "\t%.4f\t%.4f", r->name, r->kind, r->dim, r->params, r->bytes,
                  r->comp, r->compb);
    for (int mi = 0; mi < KD_N_METRICS; mi++)
        for (int x = 0; x < eo->nk; x++) kd_buf_printf(b, "\t%.6f", res->mean[mi][x]);
    kd_buf_printf(b, "\t%u\t%u", res->users_eval, res->users_skipped);
    if (timing)
        kd_buf_printf(b, "\t%.3f\t%.3f\t%.3f\t%.3f\t%.0f", r->lat_mean, r->p50, r->p90, r->p99, r->ups);
    const ident *w = r->who;
    kd_buf_printf(b, "\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w->id, w->role, w->method, w->knob, w->knob_value,
                  w->seed, w->teacher, w->quant, w->source, w->settings);
}

/* A provenance value in a fresh allocation, or "-" when absent (or when it holds a tab,
 * newline, quote or backslash, which would break the table or the JSON); NULL when out
 * of memory. */
static char *prov_dup(const kd_art *a, const char *key)
{
    const kd_section *s = kd_art_find(a, "provenance");
    const char *v = "-";
    size_t n = 1, klen = strlen(key);
    if (s && s->type == KD_TEXT)
        for (const char *p = s->data, *end = p + s->bytes; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl : end;
            if ((size_t)(eol - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
                v = p + klen + 1;
                n = (size_t)(eol - v);
                if (!n || memchr(v, '\t', n) || memchr(v, '"', n) || memchr(v, '\\', n)) { v = "-"; n = 1; }
                break;
            }
            p = eol + 1;
        }
    char *out = malloc(n + 1);
    if (out) { memcpy(out, v, n); out[n] = 0; }
    return out;
}

/* Fills w for model k of arts[0..n); 0, or -1 when out of memory.  Its role: "teacher"
 * when its content ID is the reference's or some model's input.teacher, "quantised" for
 * any other kd-quant model, "distilled" when it has a teacher itself, "student" for any
 * other BPR model (kd-train's role=bpr), else "other".  A kd-quant model's method, knob,
 * seed and teacher are those of the model it quantises (kd-quant keeps that model's
 * provenance under "source."), so the report can say what each quantised row is; its
 * quant column is int<bits>-<scheme> and its source column that model's content ID. */
static int identify(kd_art *const *arts, int n, int k, const kd_art *ref, ident *w)
{
    const kd_art *a = arts[k];
    char role[16], t[18], bits[8], scheme[8]; /* t: one more than an ID, so a longer value never equals one */
    kd_id_hex(a->content_id, w->id);
    const kd_section *ps = kd_art_find(a, "provenance");
    if (ps && ps->type == KD_TEXT) kd_id_hex(kd_prov_settings_id((const char *)ps->data, (size_t)ps->bytes), w->settings);
    else snprintf(w->settings, sizeof w->settings, "-");
    char tool[16];
    int quant = kd_art_prov_get(a, "tool", tool, sizeof tool) == 0 && !strcmp(tool, "kd-quant") &&
                kd_art_prov_get(a, "quant.bits", bits, sizeof bits) == 0 &&
                kd_art_prov_get(a, "quant.scheme", scheme, sizeof scheme) == 0;
    const char *pre = quant ? "source." : "";
    char key[32];
#define KEY(k) (snprintf(key, sizeof key, "%s%s", pre, k), key)
    if (quant) snprintf(w->quant, sizeof w->quant, "int%s-%s", bits, scheme);
    else snprintf(w->quant, sizeof w->quant, "-");
    w->source = quant ? prov_dup(a, "input.model") : strdup("-");
    w->teacher = prov_dup(a, KEY("input.teacher"));
    w->seed = prov_dup(a, KEY("seed"));
    w->method = prov_dup(a, KEY("method"));
    if (!w->source || !w->teacher || !w->seed || !w->method) return -1;
    /* "bpr" fits role[16] exactly when it is "bpr"; a longer role is not bpr */
    int bpr = kd_art_prov_get(a, KEY("role"), role, sizeof role) == 0 && !strcmp(role, "bpr");
    if (!strcmp(w->method, "-") && bpr) {
        free(w->method);
        if (!(w->method = malloc(4))) return -1;
        memcpy(w->method, "bpr", 4);
    }
    int teacher = ref && ref->content_id == a->content_id;
    for (int j = 0; j < n && !teacher; j++)
        teacher = kd_art_prov_get(arts[j], "input.teacher", t, sizeof t) == 0 && !strcmp(t, w->id);
    w->role = teacher ? "teacher" : quant ? "quantised" : strcmp(w->teacher, "-") ? "distilled" : bpr ? "student" : "other";
    /* the knob: margin-mse's convex mix writes alpha, every other weight is lambda */
    w->knob = "-";
    snprintf(w->knob_value, sizeof w->knob_value, "-");
    if (!strcmp(w->teacher, "-") || (strcmp(w->role, "distilled") && strcmp(w->role, "quantised"))) return 0;
    for (int q = 0; q < 2; q++) {
        const char *name = q ? "lambda" : "alpha";
        char v[64], *end;
        if (kd_art_prov_get(a, KEY(name), v, sizeof v)) continue;
        double x = strtod(v, &end);
        if (end == v || *end) continue; /* kd_prov writes a number in under 30 characters */
        w->knob = name;
        for (int digits = 1; digits <= 17; digits++) { /* "0.1", not "0.10000000000000001" */
            snprintf(w->knob_value, sizeof w->knob_value, "%.*g", digits, x);
            if (strtod(w->knob_value, NULL) == x) break;
        }
        break;
    }
    return 0;
#undef KEY
}

/* Parses the command line into o.  Returns -1 to go on, else the exit status (0 after
 * --help/--version, 2 on misuse). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        { "split", 1, 0, O_SPLIT }, { "name", 1, 0, O_NAME }, { "reference", 1, 0, O_REF },
        { "latency-users", 1, 0, O_LAT_USERS }, { "seed", 1, 0, O_SEED }, { "threads", 1, 0, O_THREADS },
        { "no-timing", 0, 0, O_NO_TIMING }, { "per-user", 1, 0, O_PER_USER }, { "topk", 1, 0, O_TOPK },
        { "json", 0, 0, O_JSON }, { "cache", 1, 0, O_CACHE }, { "label", 1, 0, O_LABEL },
        { "help", 0, 0, 'h' }, { "version", 0, 0, O_VERSION }, { 0, 0, 0, 0 } };
    kd_err e = { 0 };
    uint64_t v;
    int c;
    o->eo.threads = kd_cli_default_threads();
    while ((c = getopt_long(argc, argv, "hk:o:", opts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case O_VERSION: kd_cli_version(prog); return 0;
        case 'k': r = kd_cli_list("-k", optarg, 1, 1000000, o->eo.ks, KD_MAX_KS, &o->eo.nk, &e); break;
        case 'o': o->out = optarg; break;
        case O_SPLIT:
            if (!strcmp(optarg, "test")) o->eo.split = KD_SPLIT_TEST;
            else if (!strcmp(optarg, "valid")) o->eo.split = KD_SPLIT_VALID;
            else r = kd_fail_usage(&e, "--split: '%s' is not test or valid", optarg);
            break;
        case O_NAME:
            if (o->nnames == o->cap_names) { /* grows: as many names as the command line holds */
                size_t cap = o->cap_names ? 2 * o->cap_names : 16;
                const char **p = cap < SIZE_MAX / sizeof *p ? realloc(o->names, cap * sizeof *p) : NULL;
                if (!p) { r = kd_fail(&e, "out of memory"); break; }
                o->names = p;
                o->cap_names = cap;
            }
            o->names[o->nnames++] = optarg;
            break;
        case O_REF: o->ref = optarg; break;
        case O_LAT_USERS: r = kd_cli_u64("--latency-users", optarg, 1, UINT32_MAX, &o->lat_users, &e); break;
        case O_SEED: r = kd_cli_u64("--seed", optarg, 0, UINT64_MAX, &o->seed, &e); break;
        case O_THREADS: r = kd_cli_u64("--threads", optarg, 1, 256, &v, &e); o->eo.threads = (int)v; break;
        case O_NO_TIMING: o->timing = 0; break;
        case O_PER_USER: o->per_user = optarg; break;
        case O_TOPK: o->topk = optarg; break;
        case O_JSON: o->json = 1; break;
        case O_CACHE: o->cache = optarg; break;
        case O_LABEL: o->label = optarg; break;
        default: usage(stderr); return KD_EXIT_USAGE;
        }
        if (r) return kd_err_report(prog, &e);
    }
    if (argc - optind < 2) {
        fprintf(stderr, "%s: expected DATASET MODEL...\n", prog);
        return KD_EXIT_USAGE;
    }
    o->dataset = argv[optind];
    o->models = argv + optind + 1;
    o->nmodels = argc - optind - 1;
    if (o->nnames > (size_t)o->nmodels) {
        fprintf(stderr, "%s: more --name options (%zu) than models (%d)\n", prog, o->nnames, o->nmodels);
        return KD_EXIT_USAGE;
    }
    return -1;
}

/* the name of model k in the output: its --name, else its file name without extension
 * (a display label only: what the model is comes from its provenance) */
static const char *model_name(const struct opts *o, int k, char *buf, size_t n)
{
    return (size_t)k < o->nnames ? o->names[k] : base_name(o->models[k], buf, n);
}


/* ---------------------------------------------------------------- one run */

/* What a run reads: the dataset, the models (then --reference, last) and what each is. */
typedef struct inputs {
    kd_dataset d;
    kd_art   **arts;     /* nmodels + 1: the models, then the reference (NULL without) */
    uint64_t  *ids;      /* the stage's inputs: dataset, models, reference */
    int        nids;
    ident     *who;      /* (nmodels) */
    char      *namebuf;  /* room for any model's base name */
    size_t     namelen;
} inputs;

static void inputs_free(inputs *in, int nmodels)
{
    for (int k = 0; in->arts && k <= nmodels; k++) kd_art_free(in->arts[k]);
    for (int k = 0; in->who && k < nmodels; k++) ident_free(&in->who[k]);
    free(in->arts); free(in->ids); free(in->who); free(in->namebuf);
    kd_dataset_free(&in->d);
}

/* What a run writes: the table (and the same without timings, the cache's stable part),
 * the per-user metrics and the recommendations.  Written with unchecked appends: each
 * buffer's sticky error is checked once, when it becomes a section (kd_art_add_buf). */
typedef struct outputs {
    kd_buf tab, stable, pu, tk;
} outputs;

static void outputs_free(outputs *out)
{
    kd_buf_free(&out->tab); kd_buf_free(&out->stable); kd_buf_free(&out->pu); kd_buf_free(&out->tk);
}

/* Reads and verifies the dataset and every model (the stage key needs their content
 * IDs), and says what each model is. */
static int load_inputs(const struct opts *o, inputs *in, kd_err *e)
{
    int n = o->nmodels;
    if (kd_dataset_load(&in->d, o->dataset, e)) return -1;
    in->arts = kd_calloc_array((uint64_t)n + 1, sizeof *in->arts);
    in->ids = kd_calloc_array((uint64_t)n + 2, sizeof *in->ids);
    in->who = kd_calloc_array((uint64_t)n, sizeof *in->who);
    if (!in->arts || !in->ids || !in->who) return kd_fail(e, "out of memory");
    in->ids[0] = in->d.content_id;
    in->nids = n + 1 + (o->ref != NULL);
    for (int k = 0; k < n + (o->ref != NULL); k++) {
        const char *path = k < n ? o->models[k] : o->ref;
        kd_buf raw = { 0 };
        int r = kd_read_all(path, &raw, e) || kd_art_parse(raw.p, raw.len, kd_in_name(path), &in->arts[k], e);
        kd_buf_free(&raw);
        if (r) return -1;
        if (in->arts[k]->kind != KD_KIND_MODEL)
            return kd_fail(e, "%s: is a %s, not a model", kd_in_name(path), kd_kind_name(in->arts[k]->kind));
        in->ids[k + 1] = in->arts[k]->content_id;
    }
    for (int k = 0; k < n; k++)
        if (identify(in->arts, n, k, in->arts[n], &in->who[k])) return kd_fail(e, "out of memory");
    /* a base name is at most as long as its path */
    in->namelen = 1;
    for (int k = 0; k < n; k++) {
        size_t len = strlen(o->models[k]) + 1;
        in->namelen = len > in->namelen ? len : in->namelen;
    }
    if (!(in->namebuf = malloc(in->namelen))) return kd_fail(e, "out of memory");
    return 0;
}

/* The stage's parameters: every option that changes an output, and the models' names. */
static void put_params(const struct opts *o, const inputs *in, kd_buf *p)
{
    kd_buf_printf(p, "split=%d\nseed=%llu\nlatency_users=%llu\ntiming=%d\njson=%d\nper_user=%d\ntopk=%d\nref=%d\nks=",
                  o->eo.split, (unsigned long long)o->seed, (unsigned long long)o->lat_users, o->timing, o->json,
                  o->per_user != NULL, o->topk != NULL, o->ref != NULL);
    for (int x = 0; x < o->eo.nk; x++) kd_buf_printf(p, "%u,", o->eo.ks[x]);
    for (int k = 0; k < o->nmodels; k++)
        kd_buf_printf(p, "\nname=%s", model_name(o, k, in->namebuf, in->namelen));
}

/* The single-user latency quantiles and users/s of rw (--no-timing leaves them out). */
static int time_model(const struct opts *o, const kd_model *m, const kd_dataset *d, uint32_t topk_n,
                      const kd_eval_result *res, row *rw, kd_err *e)
{
    double *lat = NULL, mean = 0;
    uint32_t nlat = kd_eval_latency(m, d, o->eo.split, topk_n, (uint32_t)o->lat_users, o->seed, &lat, e);
    if (!nlat && e->code) return -1;
    for (uint32_t x = 0; x < nlat; x++) mean += lat[x];
    if (nlat) qsort(lat, nlat, 8, cmp_double);
    rw->lat_mean = nlat ? mean / nlat : NAN;
    rw->p50 = quantile(lat, nlat, 0.5);
    rw->p90 = quantile(lat, nlat, 0.9);
    rw->p99 = quantile(lat, nlat, 0.99);
    rw->ups = res->users_eval / res->seconds;
    free(lat);
    return 0;
}

/* The model's per-user metrics and recommendations (original user and item ids). */
static void put_users(const struct opts *o, const kd_dataset *d, const kd_eval_result *res, const char *name,
                      uint32_t topk_n, outputs *out)
{
    int nm = KD_N_METRICS * o->eo.nk;
    if (o->per_user)
        for (uint32_t u = 0; u < d->n_users; u++) {
            const double *pv = res->per_user + (size_t)u * nm;
            if (isnan(pv[0])) continue;
            kd_buf_printf(&out->pu, "%s\t%" PRIu64, name, d->user_ids[u]);
            for (int x = 0; x < nm; x++) kd_buf_printf(&out->pu, "\t%.6f", pv[x]);
            kd_buf_printf(&out->pu, "\n");
        }
    if (o->topk)
        for (uint32_t u = 0; u < d->n_users; u++)
            for (uint32_t rnk = 0; rnk < topk_n; rnk++) {
                uint32_t it = res->top_items[(size_t)u * topk_n + rnk];
                if (it == UINT32_MAX) break;
                kd_buf_printf(&out->tk, "%s\t%" PRIu64 "\t%u\t%" PRIu64 "\t%.9g\n", name, d->user_ids[u], rnk + 1,
                              d->item_ids[it], res->top_scores[(size_t)u * topk_n + rnk]);
            }
}

/* Evaluates model k and appends its rows to every output. */
static int eval_model(const struct opts *o, const kd_eval_opts *eo, uint32_t topk_n, const inputs *in, int k,
                      outputs *out, kd_err *e)
{
    const int nmodels = o->nmodels;
    char kind[64] = "bpr";
    row rw = { .name = model_name(o, k, in->namebuf, in->namelen), .kind = kind, .who = &in->who[k],
               .bytes = kd_quant_art_serving_bytes(in->arts[k]) };
    kd_model m = { 0 };
    kd_eval_result res = { 0 };
    if (kd_art_prov_get(in->arts[k], "role", kind, sizeof kind)) strcpy(kind, "unknown");
    int r = kd_model_from_art(&m, in->arts[k], e) || kd_eval_check(&m, &in->d, eo->split, kd_in_name(o->models[k]), e) ||
            kd_evaluate(&m, &in->d, eo, &res, e) || (o->timing && time_model(o, &m, &in->d, topk_n, &res, &rw, e));
    if (!r) {
        const kd_art *ref = in->arts[nmodels];
        rw.res = &res;
        rw.dim = m.dim;
        rw.params = kd_model_params(&m);
        rw.comp = ref ? (double)kd_model_param_count(ref) / (double)rw.params : 1.0;
        rw.compb = ref ? (double)kd_quant_art_serving_bytes(ref) / (double)rw.bytes : 1.0;
        put_row(&out->tab, eo, &rw, o->timing, o->json);
        put_row(&out->stable, eo, &rw, 0, o->json);
        put_users(o, &in->d, &res, rw.name, topk_n, out);
    }
    kd_eval_result_free(&res);
    kd_model_free(&m);
    return r ? -1 : 0;
}

/* Evaluates every model into out, in the order given. */
static int evaluate(const struct opts *o, const inputs *in, outputs *out, kd_err *e)
{
    kd_eval_opts eo = o->eo;
    uint32_t topk_n = 0;
    for (int x = 0; x < eo.nk; x++) topk_n = eo.ks[x] > topk_n ? eo.ks[x] : topk_n;
    if (o->topk) eo.topk_keep = topk_n;
    eo.keep_per_user = o->per_user != NULL;
    if (!o->json) {
        put_header(&out->tab, &eo, o->timing);
        put_header(&out->stable, &eo, 0);
    }
    if (o->per_user) {
        kd_buf_printf(&out->pu, "model\tuser");
        for (int mi = 0; mi < KD_N_METRICS; mi++)
            for (int x = 0; x < eo.nk; x++) kd_buf_printf(&out->pu, "\t%s@%u", kd_metric_names[mi], eo.ks[x]);
        kd_buf_printf(&out->pu, "\n");
    }
    for (int k = 0; k < o->nmodels; k++)
        if (eval_model(o, &eo, topk_n, in, k, out, e)) return -1;
    return 0;
}

/* The result artifact: one text section per output (the stage writes each to its file)
 * and the table without timings, which is what the content ID covers. */
static kd_art *emit(const struct opts *o, const outputs *out, kd_err *e)
{
    kd_art *a = kd_art_new(KD_KIND_RESULT);
    if (!a) { kd_fail(e, "out of memory"); return NULL; }
    if (kd_art_add_buf(a, "table", &out->tab, e) || (o->timing && kd_art_set_volatile(a, "table")) ||
        kd_art_add_buf(a, "table.stable", &out->stable, e) ||
        (o->per_user && kd_art_add_buf(a, "per_user", &out->pu, e)) ||
        (o->topk && kd_art_add_buf(a, "topk", &out->tk, e))) {
        if (!e->code) kd_fail(e, "out of memory");
        kd_art_free(a);
        return NULL;
    }
    return a;
}

/* Evaluates every model as one stage: from the cache when an identical evaluation ran
 * before, else computed; the outputs are written only once everything succeeded. */
static int run(const struct opts *o)
{
    kd_err e = { 0 };
    kd_stage st;
    inputs in = { 0 };
    outputs out = { 0 };
    kd_buf params = { 0 };
    kd_art *a = NULL;
    kd_stage_init(&st, prog, kd_stage_label(o->label, o->out), o->cache);
    int r = (o->per_user && kd_stage_add_output(&st, o->per_user, "per_user", &e)) ||
            (o->topk && kd_stage_add_output(&st, o->topk, "topk", &e)) ||
            kd_stage_add_output(&st, o->out, "table", &e) /* last: the newest file */ || load_inputs(o, &in, &e) ? -1 : 0;
    if (!r) {
        put_params(o, &in, &params);
        r = kd_stage_start(&st, &params, in.ids, in.nids, &e);  /* 1: restored */
    }
    if (!r) r = evaluate(o, &in, &out, &e) || !(a = emit(o, &out, &e)) || kd_stage_commit(&st, a, 1, &e) ? -1 : 0;
    kd_art_free(a);
    kd_stage_end(&st);
    kd_buf_free(&params);
    outputs_free(&out);
    inputs_free(&in, o->nmodels);
    return r < 0 ? kd_err_report(prog, &e) : 0;
}

int main(int argc, char **argv)
{
    struct opts o = OPTS_INIT;
    int rc = parse_args(argc, argv, &o);
    if (rc < 0) rc = run(&o);
    free(o.names);
    return rc;
}
