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
#include <fcntl.h>
#include <sys/stat.h>

#include "kd_artifact.h"  /* kd_art_load */
#include "kd_stage.h"     /* --cache */
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
        "skipped, single-user latency (mean, p50, p90, p99 in microseconds) and users/s, then\n"
        "what the model is, from its provenance ('-' when it does not say):\n"
        "  id          the model's content ID\n"
        "  role        teacher (the --reference, or named as input.teacher by a model of this\n"
        "              evaluation), distilled (has a teacher), student (any other kd-train\n"
        "              model) or other\n"
        "  method      bpr for kd-train models, else the distillation method\n"
        "  knob        the method's weight: alpha (margin-mse, convex mix) or lambda\n"
        "  knob_value  its value (shortest text that reads back exactly)\n"
        "  seed        the training seed;  teacher  the teacher's content ID\n"
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
    char        id[17], knob_value[32];
    char       *teacher, *method, *seed; /* owned, "-" when absent */
    const char *role, *knob;
} ident;

static void ident_free(ident *w)
{
    free(w->teacher); free(w->method); free(w->seed);
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
    kd_buf_printf(b, "\tid\trole\tmethod\tknob\tknob_value\tseed\tteacher\n");
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
    kd_buf_printf(b, "\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", w->id, w->role, w->method, w->knob, w->knob_value, w->seed,
                  w->teacher);
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
 * when its content ID is the reference's or some model's input.teacher, "distilled" when
 * it has a teacher itself, "student" for any other BPR model (kd-train's role=bpr), else
 * "other". */
static int identify(kd_art *const *arts, int n, int k, const kd_art *ref, ident *w)
{
    const kd_art *a = arts[k];
    char role[16], t[18]; /* t: one more than an ID, so a longer value never equals one */
    kd_id_hex(a->content_id, w->id);
    w->teacher = prov_dup(a, "input.teacher");
    w->seed = prov_dup(a, "seed");
    w->method = prov_dup(a, "method");
    if (!w->teacher || !w->seed || !w->method) return -1;
    /* "bpr" fits role[16] exactly when it is "bpr"; a longer role is not bpr */
    int bpr = kd_art_prov_get(a, "role", role, sizeof role) == 0 && !strcmp(role, "bpr");
    if (!strcmp(w->method, "-") && bpr) {
        free(w->method);
        if (!(w->method = malloc(4))) return -1;
        memcpy(w->method, "bpr", 4);
    }
    int teacher = ref && ref->content_id == a->content_id;
    for (int j = 0; j < n && !teacher; j++)
        teacher = kd_art_prov_get(arts[j], "input.teacher", t, sizeof t) == 0 && !strcmp(t, w->id);
    w->role = teacher ? "teacher" : strcmp(w->teacher, "-") ? "distilled" : bpr ? "student" : "other";
    /* the knob: margin-mse's convex mix writes alpha, every other weight is lambda */
    w->knob = "-";
    snprintf(w->knob_value, sizeof w->knob_value, "-");
    if (strcmp(w->role, "distilled")) return 0;
    for (int q = 0; q < 2; q++) {
        const char *key = q ? "lambda" : "alpha";
        char v[64], *end;
        if (kd_art_prov_get(a, key, v, sizeof v)) continue;
        double x = strtod(v, &end);
        if (end == v || *end) continue; /* kd_prov writes a number in under 30 characters */
        w->knob = key;
        for (int digits = 1; digits <= 17; digits++) { /* "0.1", not "0.10000000000000001" */
            snprintf(w->knob_value, sizeof w->knob_value, "%.*g", digits, x);
            if (strtod(w->knob_value, NULL) == x) break;
        }
        break;
    }
    return 0;
}

/* Writes text to path atomically, unless it already holds exactly these bytes (then it
 * only refreshes the modification time, as a restored cache entry does). */
static int write_text(const char *path, const kd_buf *b, kd_err *e)
{
    if (strcmp(path, "-")) {
        kd_buf old = { 0 };
        kd_err ignore;
        int same = kd_read_all(path, &old, &ignore) == 0 && old.len == b->len && !memcmp(old.p, b->p, b->len);
        kd_buf_free(&old);
        if (same && utimensat(AT_FDCWD, path, NULL, 0) == 0)
            return 0;
    }
    kd_out o;
    if (kd_out_open(&o, path, KD_OUT_TEXT, e))
        return -1;
    if (kd_out_write(&o, b->p, b->len, e) || kd_out_commit(&o, e)) {
        kd_out_abort(&o);
        return -1;
    }
    return 0;
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

/* Evaluates every model; writes the outputs only once everything succeeded. */
static int run(const struct opts *o)
{
    kd_eval_opts eo = o->eo;
    const char *out_path = o->out, *ref = o->ref, *per_user = o->per_user, *topk = o->topk;
    const char *cache = o->cache, *label = o->label;
    int nmodels = o->nmodels, json = o->json, timing = o->timing;
    uint64_t lat_users = o->lat_users, seed = o->seed;
    kd_err e = { 0 };
    uint32_t topk_n = 0;
    for (int x = 0; x < eo.nk; x++) topk_n = eo.ks[x] > topk_n ? eo.ks[x] : topk_n;
    if (topk) eo.topk_keep = topk_n;
    eo.keep_per_user = per_user != NULL;

    kd_dataset d;
    kd_buf tab = { 0 }, stable = { 0 }, pu = { 0 }, tk = { 0 }, params = { 0 }, hit = { 0 };
    uint64_t ref_params = 0, ref_bytes = 0, *ids = NULL;
    kd_art **arts = NULL;
    uint64_t *sizes = NULL;
    char *namebuf = NULL;
    ident *who = NULL;
    kd_stage stage;
    if (kd_dataset_load(&d, o->dataset, &e)) return kd_err_report(prog, &e);
    /* read and verify every model first: the stage key needs their content IDs */
    arts = kd_calloc_array((uint64_t)nmodels + 1, sizeof *arts);
    sizes = kd_calloc_array((uint64_t)nmodels + 1, sizeof *sizes);
    ids = kd_calloc_array((uint64_t)nmodels + 2, sizeof *ids);
    who = kd_calloc_array((uint64_t)nmodels, sizeof *who);
    if (!arts || !sizes || !ids || !who) { kd_fail(&e, "out of memory"); goto fail; }
    ids[0] = d.content_id;
    for (int k = 0; k <= nmodels; k++) {
        const char *path = k < nmodels ? o->models[k] : ref;
        if (!path) break;
        kd_buf raw = { 0 };
        if (kd_read_all(path, &raw, &e) || kd_art_parse(raw.p, raw.len, kd_in_name(path), &arts[k], &e)) {
            kd_buf_free(&raw);
            goto fail;
        }
        sizes[k] = raw.len;
        kd_buf_free(&raw);
        if (arts[k]->kind != KD_KIND_MODEL) {
            kd_fail(&e, "%s: is a %s, not a model", kd_in_name(path), kd_kind_name(arts[k]->kind));
            goto fail;
        }
        ids[k + 1] = arts[k]->content_id;
    }
    if (ref) {
        ref_params = kd_model_param_count(arts[nmodels]);
        ref_bytes = sizes[nmodels];
    }
    for (int k = 0; k < nmodels; k++)
        if (identify(arts, nmodels, k, ref ? arts[nmodels] : NULL, &who[k])) { kd_fail(&e, "out of memory"); goto fail; }
    /* a base name is at most as long as its path */
    size_t longest = 1;
    for (int k = 0; k < nmodels; k++) {
        size_t len = strlen(o->models[k]) + 1;
        longest = len > longest ? len : longest;
    }
    if (!(namebuf = malloc(longest))) { kd_fail(&e, "out of memory"); goto fail; }
    kd_buf_printf(&params, "split=%d\nseed=%llu\nlatency_users=%llu\ntiming=%d\njson=%d\nper_user=%d\ntopk=%d\nref=%d\nks=",
                  eo.split, (unsigned long long)seed, (unsigned long long)lat_users, timing, json, per_user != NULL,
                  topk != NULL, ref != NULL);
    for (int x = 0; x < eo.nk; x++) kd_buf_printf(&params, "%u,", eo.ks[x]);
    for (int k = 0; k < nmodels; k++)
        kd_buf_printf(&params, "\nname=%s", model_name(o, k, namebuf, longest));
    if (kd_stage_begin(&stage, prog, kd_stage_label(label, out_path), cache, (const char *)params.p, params.len, ids,
                       nmodels + 1 + (ref != NULL), &e))
        goto fail;
    int h = kd_stage_lookup(&stage, &hit, &e);
    if (h < 0) goto fail;
    if (h == 1) { /* restore every output from the entry's sections */
        kd_art *a = NULL;
        if (kd_art_parse(hit.p, hit.len, stage.entry, &a, &e)) goto fail;
        const char *want[3][2] = { { "table", out_path }, { "per_user", per_user }, { "topk", topk } };
        for (int k = 2; k >= 0; k--) {
            if (!want[k][1]) continue;
            const kd_section *s = kd_art_find(a, want[k][0]);
            kd_buf b = { 0 };
            if (!s || kd_buf_append(&b, s->data, (size_t)s->bytes) || write_text(want[k][1], &b, &e)) {
                if (!e.code) kd_fail(&e, "%s: cache entry lacks '%s'", stage.entry, want[k][0]);
                kd_buf_free(&b);
                kd_art_free(a);
                goto fail;
            }
            kd_buf_free(&b);
        }
        kd_art_free(a);
        kd_stage_report(&stage, 1);
        goto done;
    }
    if (!json) {
        put_header(&tab, &eo, timing);
        put_header(&stable, &eo, 0);
    }
    if (per_user) {
        kd_buf_printf(&pu, "model\tuser");
        for (int mi = 0; mi < KD_N_METRICS; mi++)
            for (int x = 0; x < eo.nk; x++) kd_buf_printf(&pu, "\t%s@%u", kd_metric_names[mi], eo.ks[x]);
        kd_buf_printf(&pu, "\n");
    }
    for (int k = 0; k < nmodels; k++) {
        const char *path = o->models[k];
        char kind[64] = "bpr";
        row rw = { .name = model_name(o, k, namebuf, longest), .kind = kind, .who = &who[k], .bytes = sizes[k] };
        kd_model m;
        if (kd_art_prov_get(arts[k], "role", kind, sizeof kind)) strcpy(kind, "unknown");
        if (kd_model_from_art(&m, arts[k], &e)) goto fail;
        if (kd_eval_check(&m, &d, eo.split, kd_in_name(path), &e)) {
            kd_model_free(&m);
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
        for (uint32_t x = 0; x < nlat; x++) mean += lat[x];
        if (nlat) qsort(lat, nlat, 8, cmp_double);
        rw.res = &res;
        rw.dim = m.dim;
        rw.params = kd_model_params(&m);
        rw.comp = ref ? (double)ref_params / (double)rw.params : 1.0;
        rw.compb = ref ? (double)ref_bytes / (double)rw.bytes : 1.0;
        rw.lat_mean = nlat ? mean / nlat : NAN;
        rw.p50 = quantile(lat, nlat, 0.5);
        rw.p90 = quantile(lat, nlat, 0.9);
        rw.p99 = quantile(lat, nlat, 0.99);
        rw.ups = res.users_eval / res.seconds;
        put_row(&tab, &eo, &rw, timing, json);
        put_row(&stable, &eo, &rw, 0, json);
        int nm = KD_N_METRICS * eo.nk;
        if (per_user)
            for (uint32_t u = 0; u < d.n_users; u++) {
                const double *pv = res.per_user + (size_t)u * nm;
                if (isnan(pv[0])) continue;
                kd_buf_printf(&pu, "%s\t%" PRIu64, rw.name, d.user_ids[u]);
                for (int x = 0; x < nm; x++) kd_buf_printf(&pu, "\t%.6f", pv[x]);
                kd_buf_printf(&pu, "\n");
            }
        if (topk)
            for (uint32_t u = 0; u < d.n_users; u++)
                for (uint32_t rnk = 0; rnk < topk_n; rnk++) {
                    uint32_t it = res.top_items[(size_t)u * topk_n + rnk];
                    if (it == UINT32_MAX) break;
                    kd_buf_printf(&tk, "%s\t%" PRIu64 "\t%u\t%" PRIu64 "\t%.9g\n", rw.name, d.user_ids[u], rnk + 1,
                                  d.item_ids[it], res.top_scores[(size_t)u * topk_n + rnk]);
                }
        free(lat);
        kd_eval_result_free(&res);
        kd_model_free(&m);
    }
    /* outputs are written only once everything succeeded */
    if ((per_user && write_text(per_user, &pu, &e)) || (topk && write_text(topk, &tk, &e)) ||
        write_text(out_path, &tab, &e))
        goto fail;
    if (cache) { /* one result artifact holds every output; the timings are volatile */
        kd_art *a = kd_art_new(KD_KIND_RESULT);
        kd_buf enc = { 0 };
        int r = !a || kd_art_add_text(a, "table", (const char *)tab.p, tab.len, &e) ||
                (timing && kd_art_set_volatile(a, "table")) ||
                kd_art_add_text(a, "table.stable", (const char *)stable.p, stable.len, &e) ||
                (per_user && kd_art_add_text(a, "per_user", (const char *)pu.p, pu.len, &e)) ||
                (topk && kd_art_add_text(a, "topk", (const char *)tk.p, tk.len, &e)) ||
                kd_art_encode(a, 1, &enc, &e) || kd_stage_publish(&stage, enc.p, enc.len, a->content_id, &e);
        kd_art_free(a);
        kd_buf_free(&enc);
        if (r) { if (!e.code) kd_fail(&e, "out of memory"); goto fail; }
    }
    kd_stage_report(&stage, 0);
done:
    for (int k = 0; arts && k <= nmodels; k++) kd_art_free(arts[k]);
    for (int k = 0; who && k < nmodels; k++) ident_free(&who[k]);
    free(arts); free(sizes); free(ids); free(who); free(namebuf);
    kd_buf_free(&tab); kd_buf_free(&stable); kd_buf_free(&pu); kd_buf_free(&tk); kd_buf_free(&params); kd_buf_free(&hit);
    kd_dataset_free(&d);
    return 0;
fail:
    for (int k = 0; arts && k <= nmodels; k++) kd_art_free(arts[k]);
    for (int k = 0; who && k < nmodels; k++) ident_free(&who[k]);
    free(arts); free(sizes); free(ids); free(who); free(namebuf);
    kd_buf_free(&tab); kd_buf_free(&stable); kd_buf_free(&pu); kd_buf_free(&tk); kd_buf_free(&params); kd_buf_free(&hit);
    kd_dataset_free(&d);
    return kd_err_report(prog, &e);
}

int main(int argc, char **argv)
{
    struct opts o = OPTS_INIT;
    int rc = parse_args(argc, argv, &o);
    if (rc < 0) rc = run(&o);
    free(o.names);
    return rc;
}
