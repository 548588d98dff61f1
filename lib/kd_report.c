/* kd_report: load a pipeline's seed directories, tell its models apart by provenance, and
 * build the report's Markdown, HTML, text tables and SVG charts in memory. */
#include "kd_report.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h" /* peek, load, provenance sections, kd_id_hex */
#include "kd_cli.h"      /* KD_VERSION */
#include "kd_stats.h"    /* mean, sd, CI, t-test */
#include "kd_svg.h"      /* charts, kd_xml_escape */
#include "kd_table.h"    /* the tables */
#include "kd_tsv.h"      /* evaluation tables */

/* ---------------------------------------------------------------- small helpers */

/* Makes room for one more element of size `size` in *p (holding n of cap); 0 or -1. */
static int grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    uint64_t want = *cap ? 2 * (uint64_t)*cap : 8, bytes;
    if (kd_mul(want, size, &bytes) || bytes > SIZE_MAX) return -1;
    void *q = realloc(*(void **)p, (size_t)bytes);
    if (!q) return -1;
    *(void **)p = q;
    *cap = (size_t)want;
    return 0;
}

void kd_report_num(double x, char out[32])
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, 32, "%.*g", digits, x);
        if (strtod(out, NULL) == x) return;
    }
}

/* printf into a fresh allocation, or NULL */
static int parse_id(const char *s, uint64_t *id)
{
    char *end;
    if (strlen(s) != 16) return -1;
    *id = strtoull(s, &end, 16);
    return *end ? -1 : 0;
}

/* The value of key in provenance text (lines key=value): a pointer to it and its length,
 * or NULL. */
static const char *prov_value(const char *prov, const char *key, size_t *len)
{
    size_t kl = strlen(key);
    for (const char *p = prov; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == '=') {
            *len = strcspn(p + kl + 1, "\n");
            return p + kl + 1;
        }
    return NULL;
}

/* copies a provenance value into buf ("?" when absent, as the report has always shown) */
static void prov_copy(const char *prov, const char *key, char *buf, size_t n)
{
    size_t len;
    const char *v = prov ? prov_value(prov, key, &len) : NULL;
    if (!v) { snprintf(buf, n, "?"); return; }
    snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1), v);
}

static int is_bookkeeping(const char *key, size_t kl)
{
    static const char *const keys[] = { "tool", "version", "role", "seed", "params" };
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        if (kl == strlen(keys[k]) && !strncmp(key, keys[k], kl)) return 1;
    return (kl > 6 && !strncmp(key, "input.", 6)) || (kl > 7 && !strncmp(key, "result.", 7));
}

int kd_report_trained_like(const char *student_prov, const char *model_prov)
{
    for (const char *p = student_prov; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        size_t kl = strcspn(p, "=\n");
        if (p[kl] != '=' || is_bookkeeping(p, kl)) continue;
        char key[128];
        if (kl >= sizeof key) continue; /* not a key kdrec writes */
        memcpy(key, p, kl);
        key[kl] = 0;
        size_t sl = strcspn(p + kl + 1, "\n"), ml;
        const char *mv = prov_value(model_prov, key, &ml);
        if (mv && (ml != sl || strncmp(mv, p + kl + 1, sl))) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- loading */

typedef struct artifact {
    char    *path;
    uint64_t id;
    uint32_t kind;
} artifact;

static int cmp_artifact(const void *a, const void *b)
{
    return strcmp(((const artifact *)a)->path, ((const artifact *)b)->path);
}

static void free_artifacts(artifact *a, size_t n)
{
    for (size_t k = 0; k < n; k++) free(a[k].path);
    free(a);
}

/* every *.kd artifact of dir whose header reads, sorted by path (so a content ID held by
 * two files always resolves to the same one) */
static int scan(const char *dir, artifact **out, size_t *n, kd_err *e)
{
    DIR *d = opendir(dir);
    if (!d) return kd_fail(e, "%s: cannot open directory", dir);
    artifact *a = NULL;
    size_t cap = 0;
    *n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 3, ".kd") || de->d_name[0] == '.') continue;
        char *p = kd_str_printf("%s/%s", dir, de->d_name);
        uint32_t kind;
        uint64_t id;
        kd_err ignore;
        if (!p || grow(&a, &cap, *n, sizeof *a)) { free(p); closedir(d); free_artifacts(a, *n); return kd_fail(e, "out of memory"); }
        if (kd_art_peek(p, &kind, &id, &ignore)) { free(p); continue; }
        a[(*n)++] = (artifact){ p, id, kind };
    }
    closedir(d);
    if (*n) qsort(a, *n, sizeof *a, cmp_artifact);
    *out = a;
    return 0;
}

static const char *find_artifact(const artifact *a, size_t n, uint64_t id, uint32_t kind)
{
    for (size_t k = 0; k < n; k++)
        if (a[k].id == id && a[k].kind == kind) return a[k].path;
    return NULL;
}

/* the provenance text of an artifact, NUL-terminated, in a fresh allocation */
static int load_prov(const char *path, uint32_t kind, char **out, kd_err *e)
{
    kd_art *a;
    if (kd_art_load(path, kind, &a, e)) return -1;
    const kd_section *ps = kd_art_find(a, "provenance");
    size_t n = ps ? (size_t)ps->bytes : 0;
    char *p = malloc(n + 1);
    if (!p) { kd_art_free(a); return kd_fail(e, "out of memory"); }
    if (n) memcpy(p, ps->data, n);
    p[n] = 0;
    kd_art_free(a);
    *out = p;
    return 0;
}

static void free_model(kd_rep_model *m)
{
    free(m->name); free(m->method); free(m->knob); free(m->knob_text); free(m->path); free(m->prov); free(m->quant);
}

void kd_report_seed_free(kd_rep_seed *s)
{
    for (size_t k = 0; k < s->n; k++) free_model(&s->m[k]);
    free(s->m);
    free(s->dir);
    free(s->data);
    memset(s, 0, sizeof *s);
}

static int role_of(const char *s)
{
    return !strcmp(s, "teacher") ? KD_ROLE_TEACHER : !strcmp(s, "student") ? KD_ROLE_STUDENT
         : !strcmp(s, "distilled") ? KD_ROLE_DISTILLED : !strcmp(s, "quantised") ? KD_ROLE_QUANT : KD_ROLE_OTHER;
}

static const char *const needed[] = { "model", "recall@10", "id", "role", "method", "knob", "knob_value", "seed", "teacher",
                                      "bytes" };
enum { C_MODEL, C_RECALL, C_ID, C_ROLE, C_METHOD, C_KNOB, C_KNOB_VALUE, C_SEED, C_TEACHER, C_BYTES, C_N };

/* A method's line is chosen on valid among its models, so they must differ only in the
 * knob: two models of one method trained otherwise differently (--refresh, --topk, another
 * teacher) would make the choice a search over settings the table never names.  Rows
 * without a settings ID (an older kd-eval) are not checked. */
static int same_settings(const kd_rep_seed *s, kd_err *e)
{
    for (size_t a = 0; a < s->n; a++) {
        const kd_rep_model *x = &s->m[a];
        if (x->role != KD_ROLE_DISTILLED || x->study || !x->settings) continue;
        for (size_t b = a + 1; b < s->n; b++) {
            const kd_rep_model *y = &s->m[b];
            if (y->role != KD_ROLE_DISTILLED || y->study || !y->settings || strcmp(x->method, y->method) ||
                x->settings == y->settings)
                continue;
            return kd_fail(e, "%s: %s models '%s' and '%s' differ in settings other than %s (a method's line "
                           "chooses among knob values only: evaluate each configuration in a directory of its own)",
                           s->dir, x->method, x->name, y->name, strcmp(x->knob, "-") ? x->knob : "the knob");
        }
    }
    return 0;
}

/* the rows of eval-test.tsv, each tied to its artifact */
static int read_rows(kd_rep_seed *s, const kd_tsv *t, const char *tp, const artifact *art, size_t nart, int sweep,
                     uint64_t *seed, int *has_seed, kd_err *e)
{
    int col[C_N];
    for (int c = 0; c < C_N; c++)
        if ((col[c] = kd_tsv_col(t, needed[c])) < 0)
            return kd_fail(e, "%s: evaluations need the columns model, recall@10, id, role, method, knob, knob_value, "
                           "seed, teacher and bytes (written by kd-eval)", tp);
    /* quant and source: optional (kd-eval before quantised models wrote neither) */
    int cq = kd_tsv_col(t, "quant"), cs = kd_tsv_col(t, "source");
    /* settings: optional too (kd-eval before it wrote none: then no method's models are
     * checked for being trained alike) */
    int cset = kd_tsv_col(t, "settings");
    *has_seed = 0;
    for (uint32_t r = 0; r < t->rows; r++) {
        if (grow(&s->m, &s->cap, s->n, sizeof *s->m)) return kd_fail(e, "out of memory");
        kd_rep_model *m = &s->m[s->n];
        memset(m, 0, sizeof *m);
        const char *id = kd_tsv_cell(t, r, col[C_ID]), *teacher = kd_tsv_cell(t, r, col[C_TEACHER]);
        const char *sd = kd_tsv_cell(t, r, col[C_SEED]), *name = kd_tsv_cell(t, r, col[C_MODEL]);
        if (parse_id(id, &m->id))
            return kd_fail(e, "%s:%u: '%s' is not a content ID", tp, r + 2, id);
        if (strcmp(teacher, "-") && parse_id(teacher, &m->teacher))
            return kd_fail(e, "%s:%u: '%s' is not a content ID", tp, r + 2, teacher);
        const char *quant = cq >= 0 ? kd_tsv_cell(t, r, cq) : "-", *source = cs >= 0 ? kd_tsv_cell(t, r, cs) : "-";
        if (strcmp(source, "-") && parse_id(source, &m->source))
            return kd_fail(e, "%s:%u: '%s' is not a content ID", tp, r + 2, source);
        const char *settings = cset >= 0 ? kd_tsv_cell(t, r, cset) : "-";
        if (strcmp(settings, "-") && parse_id(settings, &m->settings))
            return kd_fail(e, "%s:%u: '%s' is not a settings ID", tp, r + 2, settings);
        if (strcmp(sd, "-")) {
            char *end;
            uint64_t v = strtoull(sd, &end, 10);
            if (end == sd || *end) return kd_fail(e, "%s:%u: '%s' is not a seed", tp, r + 2, sd);
            if (*has_seed && v != *seed)
                return kd_fail(e, "%s: models of different seeds (%" PRIu64 " and %" PRIu64 ")", s->dir, *seed, v);
            *seed = v;
            *has_seed = 1;
        }
        const char *path = find_artifact(art, nart, m->id, KD_KIND_MODEL);
        if (!path) return kd_fail(e, "%s: model '%s' (%s): no model file with this content ID in %s", tp, name, id, s->dir);
        s->n++;
        m->name = strdup(name);
        m->method = strdup(kd_tsv_cell(t, r, col[C_METHOD]));
        m->knob = strdup(kd_tsv_cell(t, r, col[C_KNOB]));
        m->knob_text = strdup(kd_tsv_cell(t, r, col[C_KNOB_VALUE]));
        m->path = strdup(path);
        m->quant = strdup(quant);
        if (!m->name || !m->method || !m->knob || !m->knob_text || !m->path || !m->quant) return kd_fail(e, "out of memory");
        m->role = role_of(kd_tsv_cell(t, r, col[C_ROLE]));
        if (m->role == KD_ROLE_QUANT && !m->source)
            return kd_fail(e, "%s:%u: quantised model '%s' does not say which model it quantises (source)", tp, r + 2, name);
        m->bytes = kd_tsv_num(t, r, "bytes");
        m->knob_value = kd_tsv_num(t, r, "knob_value");
        m->temperature = NAN;
        m->dim = kd_tsv_num(t, r, "dim");
        m->recall = kd_tsv_num(t, r, "recall@10");
        m->ndcg = kd_tsv_num(t, r, "ndcg@10");
        m->params = kd_tsv_num(t, r, "params");
        m->valid = NAN;
        if (sweep) {
            m->lat_mean = m->lat_p50 = m->lat_p90 = m->lat_p99 = NAN;
        } else {
            m->lat_mean = kd_tsv_num(t, r, "lat_mean_us");
            m->lat_p50 = kd_tsv_num(t, r, "lat_p50_us");
            m->lat_p90 = kd_tsv_num(t, r, "lat_p90_us");
            m->lat_p99 = kd_tsv_num(t, r, "lat_p99_us");
        }
    }
    return 0;
}

/* validation Recall@10 of each row, matched by content ID */
static int read_valid(kd_rep_seed *s, kd_err *e)
{
    char *vp = kd_str_printf("%s/eval-valid.tsv", s->dir);
    kd_tsv v;
    if (!vp) return kd_fail(e, "out of memory");
    if (kd_tsv_read(&v, vp, e)) { free(vp); return -1; }
    int ci = kd_tsv_col(&v, "id");
    if (ci < 0 || kd_tsv_col(&v, "recall@10") < 0) {
        kd_tsv_free(&v);
        kd_fail(e, "%s: evaluations need the columns id and recall@10 (written by kd-eval)", vp);
        free(vp);
        return -1;
    }
    for (size_t k = 0; k < s->n; k++)
        for (uint32_t q = 0; q < v.rows; q++) {
            uint64_t id;
            if (!parse_id(kd_tsv_cell(&v, q, ci), &id) && id == s->m[k].id) s->m[k].valid = kd_tsv_num(&v, q, "recall@10");
        }
    kd_tsv_free(&v);
    free(vp);
    return 0;
}

/* the one model of a role: its first row, -1 if none; two different models are an error */
static int one_of(kd_rep_seed *s, int role, const char *what, long *out, kd_err *e)
{
    *out = -1;
    for (size_t k = 0; k < s->n; k++) {
        if (s->m[k].role != role) continue;
        if (*out < 0) { *out = (long)k; continue; }
        if (s->m[k].id != s->m[*out].id) {
            char a[17], b[17];
            kd_id_hex(s->m[*out].id, a);
            kd_id_hex(s->m[k].id, b);
            return kd_fail(e, "%s: two different %s models ('%s' %s and '%s' %s)", s->dir, what, s->m[*out].name, a,
                           s->m[k].name, b);
        }
    }
    return 0;
}

static int is_plain(const kd_rep_model *m)
{
    return m->role == KD_ROLE_STUDENT && !strcmp(m->method, "bpr");
}

/* a is preferred on validation to the best so far b: a validation figure beats none */
static int better_valid(const kd_rep_model *a, const kd_rep_model *b)
{
    return !b || (!isnan(a->valid) && (isnan(b->valid) || a->valid > b->valid));
}

long kd_report_choose_plain(const kd_rep_seed *s)
{
    long best = -1;
    for (size_t k = 0; k < s->n; k++)
        if (is_plain(&s->m[k]) && better_valid(&s->m[k], best >= 0 ? &s->m[best] : NULL)) best = (long)k;
    return best;
}

int kd_report_find_study(kd_rep_seed *s, kd_err *e)
{
    s->study = -1;
    if (s->student < 0) return 0;
    for (size_t k = 0; k < s->n; k++) {
        kd_rep_model *m = &s->m[k];
        m->study = 0;
        if (m->role != KD_ROLE_DISTILLED || strcmp(m->method, "margin-mse") || !m->prov) continue;
        /* trained like some plain-student run: a grid point, not the study's run */
        int like = 0, any = 0;
        for (size_t j = 0; j < s->n && !like; j++)
            if (is_plain(&s->m[j]) && s->m[j].prov) {
                any = 1;
                like = kd_report_trained_like(s->m[j].prov, m->prov);
            }
        if (!any || like) continue;
        if (s->study >= 0 && s->m[s->study].id != m->id)
            return kd_fail(e, "%s: two margin-mse models trained unlike the plain student ('%s' and '%s'): which is "
                           "the study's run?", s->dir, s->m[s->study].name, m->name);
        m->study = 1;
        if (s->study < 0) s->study = (long)k;
    }
    return 0;
}

int kd_report_load_seed(kd_rep_seed *s, int sweep, kd_err *e)
{
    artifact *art = NULL;
    size_t nart = 0;
    char *tp = kd_str_printf("%s/eval-test.tsv", s->dir);
    kd_tsv t = { 0 };
    uint64_t seed = 0;
    int has_seed = 0, rc = -1;
    s->teacher = s->student = s->study = -1;
    if (!tp) return kd_fail(e, "out of memory");
    if (kd_tsv_read(&t, tp, e) || scan(s->dir, &art, &nart, e) ||
        read_rows(s, &t, tp, art, nart, sweep, &seed, &has_seed, e) || (!sweep && read_valid(s, e)))
        goto done;
    if (!has_seed) { kd_fail(e, "%s: no model says its seed", tp); goto done; }
    s->seed = seed;
    if (one_of(s, KD_ROLE_TEACHER, "teacher", &s->teacher, e)) goto done;
    if (!sweep) {
        s->student = kd_report_choose_plain(s);
        s->nplain = 0;
        for (size_t k = 0; k < s->n; k++) s->nplain += is_plain(&s->m[k]);
    }
    if (!sweep && (s->teacher < 0 || s->student < 0)) {
        kd_fail(e, "%s: the evaluation has no 'teacher' or no 'student' model", s->dir);
        goto done;
    }
    /* provenance where it decides something: the teacher (its dataset), the student and
     * margin-mse models (the study's run, T) */
    for (size_t k = 0; k < s->n; k++) {
        kd_rep_model *m = &s->m[k];
        int want = (long)k == s->teacher || (!sweep && is_plain(m)) ||
                   (m->role == KD_ROLE_DISTILLED && !strcmp(m->method, "margin-mse"));
        if (!want || m->prov) continue;
        if (load_prov(m->path, KD_KIND_MODEL, &m->prov, e)) goto done;
        size_t len;
        const char *tv = prov_value(m->prov, "temperature", &len);
        if (tv && !strcmp(m->method, "margin-mse")) m->temperature = strtod(tv, NULL);
    }
    if (s->teacher >= 0) {
        size_t len;
        uint64_t did;
        char hex[17];
        const char *dv = prov_value(s->m[s->teacher].prov, "input.dataset", &len);
        if (dv && len == 16) {
            memcpy(hex, dv, 16);
            hex[16] = 0;
            const char *dp = parse_id(hex, &did) ? NULL : find_artifact(art, nart, did, KD_KIND_DATASET);
            if (dp && !(s->data = strdup(dp))) { kd_fail(e, "out of memory"); goto done; }
        }
    }
    if (!sweep && kd_report_find_study(s, e)) goto done;
    if (!sweep && same_settings(s, e)) goto done;
    rc = 0;
done:
    kd_tsv_free(&t);
    free_artifacts(art, nart);
    free(tp);
    return rc;
}

static int cmp_seed(const void *a, const void *b)
{
    const kd_rep_seed *x = a, *y = b;
    if (x->seed != y->seed) return (x->seed > y->seed) - (x->seed < y->seed);
    return (x->dirnum > y->dirnum) - (x->dirnum < y->dirnum);
}

/* methods in the report's order: the study's five first, then any others as they appear */
static int add_method(kd_report *r, const char *name, size_t *cap)
{
    for (size_t k = 0; k < r->nmethods; k++)
        if (!strcmp(r->methods[k], name)) return 0;
    if (grow(&r->methods, cap, r->nmethods, sizeof *r->methods)) return -1;
    if (!(r->methods[r->nmethods] = strdup(name))) return -1;
    r->nmethods++;
    return 0;
}

static const char *const method_order[] = { "margin-mse", "rd", "rrd", "ce", "dcd" };

int kd_report_load(kd_report *r, const char *dir, int sweep, kd_err *e)
{
    memset(r, 0, sizeof *r);
    r->sweep = sweep;
    DIR *d = opendir(dir);
    if (!d) return kd_fail(e, "%s: cannot open directory", dir);
    for (struct dirent *de; (de = readdir(d));) {
        char *end;
        if (de->d_name[0] != 's') continue;
        long num = strtol(de->d_name + 1, &end, 10);
        if (end == de->d_name + 1 || *end) continue;
        if (grow(&r->s, &r->cap, r->ns, sizeof *r->s)) { closedir(d); return kd_fail(e, "out of memory"); }
        kd_rep_seed *s = &r->s[r->ns];
        memset(s, 0, sizeof *s);
        s->dirnum = num;
        if (!(s->dir = kd_str_printf("%s/%s", dir, de->d_name))) { closedir(d); return kd_fail(e, "out of memory"); }
        r->ns++;
    }
    closedir(d);
    if (r->ns == 0) return kd_fail(e, "%s: no seed directories (s1, s2, ...)", dir);
    if (r->ns > UINT32_MAX) return kd_fail(e, "%s: too many seed directories", dir);
    /* read in directory order so a failure names the same directory every time */
    qsort(r->s, r->ns, sizeof *r->s, cmp_seed);
    for (size_t k = 0; k < r->ns; k++)
        if (kd_report_load_seed(&r->s[k], sweep, e)) return -1;
    qsort(r->s, r->ns, sizeof *r->s, cmp_seed);
    if (sweep) return 0;
    size_t cap = 0;
    const kd_rep_seed *s0 = &r->s[0];
    for (size_t o = 0; o < sizeof method_order / sizeof *method_order; o++)
        if (kd_report_selected(s0, method_order[o]) && add_method(r, method_order[o], &cap))
            return kd_fail(e, "out of memory");
    for (size_t k = 0; k < s0->n; k++)
        if (s0->m[k].role == KD_ROLE_DISTILLED && !s0->m[k].study && add_method(r, s0->m[k].method, &cap))
            return kd_fail(e, "out of memory");
    return 0;
}

void kd_report_free(kd_report *r)
{
    for (size_t k = 0; k < r->ns; k++) kd_report_seed_free(&r->s[k]);
    free(r->s);
    for (size_t k = 0; k < r->nmethods; k++) free(r->methods[k]);
    free(r->methods);
    memset(r, 0, sizeof *r);
}

const kd_rep_model *kd_report_selected(const kd_rep_seed *s, const char *method)
{
    const kd_rep_model *best = NULL;
    for (size_t k = 0; k < s->n; k++) {
        const kd_rep_model *m = &s->m[k];
        if (m->role == KD_ROLE_DISTILLED && !m->study && !strcmp(m->method, method) && better_valid(m, best))
            best = m;
    }
    return best;
}

/* ---------------------------------------------------------------- the study's report */

/* a line of the study's tables: a model role, a method chosen on validation, or the
 * quantisation of another line's model */
enum { L_TEACHER, L_STUDENT, L_STUDY, L_METHOD, L_QUANT };
typedef struct line {
    int          kind;
    const char  *method;   /* L_METHOD */
    const char  *quant;    /* L_QUANT: "int8-asym", ... */
    const struct line *base; /* L_QUANT: the line whose model is quantised */
    char        *label;    /* owned: the tables' name */
    char        *key;      /* owned: the per-seed table's header */
    char        *shortlab; /* owned: the charts' legend */
} line;

static const kd_rep_model *pick(const kd_rep_seed *s, const line *l)
{
    if (l->kind == L_QUANT) {
        const kd_rep_model *b = pick(s, l->base);
        for (size_t k = 0; b && k < s->n; k++)
            if (s->m[k].role == KD_ROLE_QUANT && s->m[k].source == b->id && !strcmp(s->m[k].quant, l->quant))
                return &s->m[k];
        return NULL;
    }
    long k = l->kind == L_TEACHER ? s->teacher : l->kind == L_STUDENT ? s->student : l->kind == L_STUDY ? s->study : -1;
    return l->kind == L_METHOD ? kd_report_selected(s, l->method) : k >= 0 ? &s->m[k] : NULL;
}

typedef double (*field)(const kd_rep_model *);
static double f_recall(const kd_rep_model *m) { return m->recall; }
static double f_ndcg(const kd_rep_model *m) { return m->ndcg; }
static double f_lat(const kd_rep_model *m) { return m->lat_mean; }
static double f_p50(const kd_rep_model *m) { return m->lat_p50; }
static double f_p90(const kd_rep_model *m) { return m->lat_p90; }
static double f_p99(const kd_rep_model *m) { return m->lat_p99; }
static double f_bytes(const kd_rep_model *m) { return m->bytes; }

/* a field of a line's model over seeds, into out (room for r->ns) */
static uint32_t values(const kd_report *r, const line *l, field f, double *out)
{
    uint32_t n = 0;
    for (size_t k = 0; k < r->ns; k++) {
        const kd_rep_model *m = pick(&r->s[k], l);
        if (m) out[n++] = f(m);
    }
    return n;
}

/* (a - b) of a field over the seeds holding both lines' models, into out */
static uint32_t paired(const kd_report *r, const line *a, const line *b, field f, double *out)
{
    uint32_t n = 0;
    for (size_t k = 0; k < r->ns; k++) {
        const kd_rep_model *x = pick(&r->s[k], a), *y = pick(&r->s[k], b);
        if (x && y) out[n++] = f(x) - f(y);
    }
    return n;
}

static void set_ms(kd_table *t, size_t row, size_t col, const double *x, uint32_t n, int digits)
{
    if (n == 0) kd_table_set(t, row, col, "—");
    else kd_table_setf(t, row, col, "%.*f ± %.*f", digits, kd_mean(x, n), digits, kd_sd(x, n));
}

/* "mean (lo … hi)" with the Student-t 95% interval, signed when delta; the mean alone
 * below two values */
static void set_ci(kd_table *t, size_t row, size_t col, const double *x, uint32_t n, int delta)
{
    if (n == 0) { kd_table_set(t, row, col, "—"); return; }
    double m = kd_mean(x, n), h = kd_ci95(x, n);
    if (n < 2) kd_table_setf(t, row, col, delta ? "%+.4f (one seed: no interval)" : "%.4f (one seed: no interval)", m);
    else if (delta) kd_table_setf(t, row, col, "%+.4f (%+.4f … %+.4f)", m, m - h, m + h);
    else kd_table_setf(t, row, col, "%.4f (%.4f … %.4f)", m, m - h, m + h);
}

/* the bootstrap's resamples: the same stream for every interval of a report, so each
 * method's interval is drawn from the same resamples of seeds and the report is the
 * same bytes on every run */
enum { BOOT_DRAWS = 20000, BOOT_SEED = 20260 };

/* a gap-closed cell: mean, its t interval and its bootstrap interval, in percent */
static void set_gap(kd_table *t, size_t row, size_t col, const double *g, uint32_t n)
{
    double m = kd_mean(g, n), h = kd_ci95(g, n), lo, hi;
    if (n == 0) { kd_table_set(t, row, col, "—"); return; }
    if (n < 2) { kd_table_setf(t, row, col, "%.0f%% (one seed: no interval)", 100 * m); return; }
    if (kd_boot_mean_ci(g, n, 0.95, BOOT_DRAWS, BOOT_SEED, &lo, &hi))
        kd_table_setf(t, row, col, "%.0f%% (t %.0f%% … %.0f%%)", 100 * m, 100 * (m - h), 100 * (m + h));
    else
        kd_table_setf(t, row, col, "%.0f%% (t %.0f%% … %.0f%%; bootstrap %.0f%% … %.0f%%)", 100 * m, 100 * (m - h),
                      100 * (m + h), 100 * lo, 100 * hi);
}

/* a training record (train.valid: epoch, value; train.loss: value per epoch) as x, y */
static int read_record(const char *path, const char *section, double **x, double **y, uint32_t *n)
{
    kd_art *a;
    kd_err e;
    *n = 0;
    *x = *y = NULL;
    if (kd_art_load(path, KD_KIND_MODEL, &a, &e)) return -1;
    const kd_section *s = kd_art_find(a, section);
    if (!s || s->type != KD_F64 || s->rows > UINT32_MAX) { kd_art_free(a); return -1; }
    *n = (uint32_t)s->rows;
    *x = kd_calloc_array(*n ? *n : 1, 8);
    *y = kd_calloc_array(*n ? *n : 1, 8);
    if (!*x || !*y) { free(*x); free(*y); *x = *y = NULL; kd_art_free(a); return -1; }
    const double *v = s->data;
    for (uint32_t i = 0; i < *n; i++) {
        (*x)[i] = s->cols == 2 ? v[2 * i] : i + 1;
        (*y)[i] = s->cols == 2 ? v[2 * i + 1] : v[i];
    }
    kd_art_free(a);
    return 0;
}

/* "computed, from the cache" counts of a stage log */
static void count_stages(const char *path, int *runs, int *hits)
{
    kd_buf sl = { 0 };
    kd_err se;
    *runs = *hits = 0;
    if (kd_read_all(path, &sl, &se) == 0 && kd_buf_append(&sl, "", 1) == 0)
        for (char *p = (char *)sl.p; (p = strstr(p, ": ")); p += 2) {
            if (!strncmp(p + 2, "cached", 6)) (*hits)++;
            else if (!strncmp(p + 2, "ran in", 6)) (*runs)++;
        }
    kd_buf_free(&sl);
}

/* the notebook's numbers (Recall / NDCG / latency µs) for teacher, student and its margin-MSE */
static const char *const study_numbers[3] = { "0.1400 / 0.0658 / 185", "0.0970 / 0.0500 / 224", "0.0910 / 0.0432 / 173" };

static const char notes[] =
    "Splits: every choice is made on the validation split (each method's knob α or λ, and the plain\n"
    "student's lr × reg, per seed: the best validation Recall@10); every number shown is measured on\n"
    "the test split, which is never used to choose.  Every figure is a mean over the seeds; ± is the\n"
    "standard deviation over seeds; intervals are 95%: Student-t over seeds, and for gap closed also a\n"
    "percentile bootstrap over seeds (resampling seeds; all n^n resamples for n ≤ 6 seeds, else 20000\n"
    "drawn from a fixed stream, so the report is the same bytes on every run; with few seeds it is\n"
    "narrower than the t interval).  p-values come from a paired t-test of (distilled − plain student)\n"
    "Recall@10 across seeds (one pair per seed, both on the same data).  Verdict: positive (negative)\n"
    "transfer when that difference is significant at 5% and above (below) zero, otherwise no\n"
    "significant difference.  Gap closed, (distilled − student) / (teacher − student) per seed, is\n"
    "given only for a metric where the teacher significantly beats the plain student (above).\n\n"
    "The study's margin-MSE loss (1−α)·BPR + α·T²·MSE(Δs/T, Δt/T) does not depend on the temperature:\n"
    "T²·(Δs/T − Δt/T)² = (Δs − Δt)².  kdrec computes it literally and its tests show that changing T\n"
    "changes no bit of the model (for T a power of two) or at most rounding (otherwise).\n\n";

/* The documents are written with plain appends: every kd_buf's error is sticky, and
 * kd_report_build checks the documents' once, at the end.  A buffer copied into another
 * passes its error on (put_buf, escape_buf, kd_table_set_buf), so that one check sees it. */
#define P kd_buf_printf
#define X kd_xml_escape

/* appends s's bytes to b, or marks b bad when s is */
static void put_buf(kd_buf *b, const kd_buf *s)
{
    if (kd_buf_error(s)) b->err = 1;
    else kd_buf_append(b, s->p, s->len);
}

/* appends s XML-escaped, with every '`' shown as a space when ticks (the HTML's list of
 * content IDs) and every '*' dropped when stars (Markdown's emphasis); marks b bad when s is */
static void escape_buf2(kd_buf *b, const kd_buf *s, int ticks, int stars)
{
    if (kd_buf_error(s)) b->err = 1;
    for (size_t k = 0; k < s->len && !kd_buf_error(b); k++) {
        char c[2] = { ticks && (char)s->p[k] == '`' ? ' ' : (char)s->p[k], 0 };
        if (!c[0] || (stars && c[0] == '*')) continue;
        X(b, c);
    }
}
static void escape_buf(kd_buf *b, const kd_buf *s, int ticks) { escape_buf2(b, s, ticks, 0); }

/* the seeds, space-separated */
static void put_seeds(kd_buf *b, const kd_report *r)
{
    for (size_t si = 0; si < r->ns; si++) P(b, "%s%" PRIu64, si ? " " : "", r->s[si].seed);
}

/* Does the teacher beat the plain student on a metric?  Paired t-test over seeds (two-
 * sided, 5%), written as one sentence into b; 1 when it does (significantly, above 0). */
static int gap_test(const kd_report *r, const line *teacher, const line *student, field f, const char *metric,
                    double *scratch, kd_buf *b)
{
    uint32_t n = paired(r, teacher, student, f, scratch);
    double m = kd_mean(scratch, n), h = kd_ci95(scratch, n), p = kd_ttest_p(scratch, n);
    int sig = p < 0.05 && m > 0;
    P(b, "- %s: teacher − plain student = %+.4f", metric, m);
    if (n >= 2) P(b, " (95%% CI %+.4f … %+.4f), paired t-test p = %.3g over %u seeds", m - h, m + h, p, n);
    else P(b, " (one seed: no test)");
    if (sig) P(b, ": the teacher is significantly better (5%%), so gap closed is given for %s.\n", metric);
    else
        P(b, ": **the teacher does not significantly beat the plain student** (5%%), so there is no gap-closed "
             "ratio for %s (a ratio over a gap that may be zero says nothing): read Δ %s vs the plain student "
             "instead.\n", metric, metric);
    return sig;
}

static int study_report(const kd_report *r, const kd_report_opts *o, kd_report_doc *d, kd_err *e)
{
    const kd_rep_seed *s0 = &r->s[0];
    size_t ns = r->ns, nbase = 3 + r->nmethods;
    /* the quantisation schemes found, in the order first seen */
    const char **qs = NULL;
    size_t nq = 0, qcap = 0;
    for (size_t si = 0; si < ns; si++)
        for (size_t k = 0; k < r->s[si].n; k++) {
            const kd_rep_model *m = &r->s[si].m[k];
            size_t j = 0;
            if (m->role != KD_ROLE_QUANT) continue;
            while (j < nq && strcmp(qs[j], m->quant)) j++;
            if (j < nq) continue;
            if (grow(&qs, &qcap, nq, sizeof *qs)) { free(qs); return kd_fail(e, "out of memory"); }
            qs[nq++] = m->quant;
        }
    size_t nl = nbase * (1 + nq);
    line *lines = kd_calloc_array(nl, sizeof *lines);
    size_t *order = kd_calloc_array(nl, sizeof *order);
    double *x = kd_calloc_array(ns, sizeof *x), *gr = kd_calloc_array(ns, sizeof *gr);
    double *gn = kd_calloc_array(ns, sizeof *gn), *dr = kd_calloc_array(ns, sizeof *dr);
    double *dn = kd_calloc_array(ns, sizeof *dn);
    double *px = kd_calloc_array(nl, sizeof *px), *py = kd_calloc_array(nl, sizeof *py);
    double *lb = kd_calloc_array(nl, sizeof *lb), *lr = kd_calloc_array(nl, sizeof *lr);
    uint32_t *ln = kd_calloc_array(nl, sizeof *ln);
    long *dom = kd_calloc_array(nl, sizeof *dom);
    double *domp = kd_calloc_array(nl, sizeof *domp), *domd = kd_calloc_array(nl, sizeof *domd);
    double *lat = kd_calloc_array(nl, 4 * sizeof *lat);
    double **xs = kd_calloc_array(nl, sizeof *xs), **ys = kd_calloc_array(nl, sizeof *ys);
    kd_series *ser = kd_calloc_array(nl, sizeof *ser);
    const char **lab = kd_calloc_array(nl, sizeof *lab);
    kd_table t1, t2, t3, t4, t5;
    kd_buf prov = { 0 }, params = { 0 }, knobs = { 0 }, gaps = { 0 }, wins = { 0 };
    int rc = -1;
    kd_table_init(&t1, 9);
    kd_table_init(&t2, 9);
    kd_table_init(&t3, 1);
    kd_table_init(&t4, 7);
    kd_table_init(&t5, 6);
    if (!lines || !order || !x || !gr || !gn || !dr || !dn || !px || !py || !lb || !lr || !ln || !dom || !domp || !domd || !lat ||
        !xs || !ys || !ser || !lab)
        goto oom;

    /* ---- the lines: teacher, plain student, the study's run, each method; then each
     * one's quantisations ---- */
    size_t nk = 0;
    lines[nk++] = (line){ L_TEACHER, NULL, NULL, NULL, strdup("teacher"), strdup("teacher"), strdup("teacher") };
    lines[nk++] = (line){ L_STUDENT, NULL, NULL, NULL, strdup("plain student (lr × reg chosen on valid)"),
                          strdup("student"), strdup("student") };
    if (s0->study >= 0) {
        /* say which α and learning rate the study's loss was run with */
        char alpha[64], lrate[64];
        const char *sp = s0->m[s0->study].prov;
        prov_copy(sp, "alpha", alpha, sizeof alpha);
        prov_copy(sp, "lr", lrate, sizeof lrate);
        lines[nk++] = (line){ L_STUDY, NULL, NULL, NULL, kd_str_printf("distilled: the study's margin-MSE (α %s, lr %s)", alpha,
                              lrate), strdup("study"), strdup("study (margin-MSE)") };
    }
    for (size_t m = 0; m < r->nmethods; m++)
        lines[nk++] = (line){ L_METHOD, r->methods[m], NULL, NULL,
                              kd_str_printf("distilled: %s (knob chosen on valid)", r->methods[m]), strdup(r->methods[m]),
                              strdup(r->methods[m]) };
    nbase = nk;
    /* the bytes table's order: each line, then its quantisations (those some seed has) */
    size_t nord = 0;
    for (size_t k = 0; k < nbase; k++) {
        order[nord++] = k;
        for (size_t q = 0; q < nq; q++) {
            line ql = { L_QUANT, NULL, qs[q], &lines[k], NULL, NULL, NULL };
            int any = 0;
            for (size_t si = 0; si < ns && !any; si++) any = pick(&r->s[si], &ql) != NULL;
            if (!any) continue;
            const char *what = lines[k].kind == L_STUDENT ? "plain student (chosen on valid)" : lines[k].label;
            ql.label = kd_str_printf("%s, %s", what, qs[q]);
            ql.key = kd_str_printf("%s %s", lines[k].key, qs[q]);
            ql.shortlab = kd_str_printf("%s %s", lines[k].shortlab, qs[q]);
            order[nord++] = nk;
            lines[nk++] = ql;
        }
    }
    for (size_t k = 0; k < nk; k++)
        if (!lines[k].label || !lines[k].key || !lines[k].shortlab) goto oom;
    const line *lt = &lines[0], *lst = &lines[1];
    for (size_t k = 0; k < nk; k++) {
        ln[k] = values(r, &lines[k], f_recall, x);
        lr[k] = kd_mean(x, ln[k]);
        lb[k] = kd_mean(x, values(r, &lines[k], f_bytes, x));
    }
    double tbytes = lb[0];

    /* ---- the study's table ---- */
    static const char *const hdr1[] = { "model", "Recall@10 (test)", "NDCG@10 (test)", "latency mean (µs)",
                                         "latency p99 (µs)", "params", "bytes", "compression (bytes)",
                                         "study: Recall / NDCG / latency" };
    size_t row = kd_table_add(&t1);
    for (size_t c = 0; c < 9; c++) kd_table_set(&t1, row, c, hdr1[c]);
    for (size_t k = 0; k < nbase; k++) {
        const line *l = &lines[k];
        uint32_t n;
        row = kd_table_add(&t1);
        kd_table_set(&t1, row, 0, l->label);
        n = values(r, l, f_recall, x); set_ms(&t1, row, 1, x, n, 4);
        n = values(r, l, f_ndcg, x); set_ms(&t1, row, 2, x, n, 4);
        n = values(r, l, f_lat, x); set_ms(&t1, row, 3, x, n, 2);
        n = values(r, l, f_p99, x); set_ms(&t1, row, 4, x, n, 2);
        const kd_rep_model *m0 = pick(s0, l);
        kd_table_setf(&t1, row, 5, "%.0f", m0 ? m0->params : NAN);
        kd_table_setf(&t1, row, 6, "%.0f", lb[k]);
        kd_table_setf(&t1, row, 7, "%.2f×", tbytes / lb[k]);
        kd_table_set(&t1, row, 8, l->kind == L_TEACHER ? study_numbers[0] : l->kind == L_STUDENT ? study_numbers[1]
                                  : l->kind == L_STUDY ? study_numbers[2] : "");
    }

    /* ---- is there a gap to close?  Then gap closed (or Δ only) per method ---- */
    int gap_r = gap_test(r, lt, lst, f_recall, "Recall@10", x, &gaps);
    int gap_n = gap_test(r, lt, lst, f_ndcg, "NDCG@10", x, &gaps);
    static const char *const hdr2[] = { "method", "knob chosen per seed (on valid)", "bytes",
                                        "Δ Recall@10 vs plain student (test, 95% CI)",
                                        "Δ NDCG@10 vs plain student (test, 95% CI)", "gap closed, Recall@10 (test)",
                                        "gap closed, NDCG@10 (test)", "paired t-test p (Recall@10)", "verdict" };
    row = kd_table_add(&t2);
    for (size_t c = 0; c < 9; c++) kd_table_set(&t2, row, c, hdr2[c]);
    for (size_t k = 2; k < nbase; k++) {
        uint32_t n = 0;
        knobs.len = 0;
        for (size_t si = 0; si < ns; si++) {
            const kd_rep_seed *s = &r->s[si];
            const kd_rep_model *t = &s->m[s->teacher], *st = &s->m[s->student], *m = pick(s, &lines[k]);
            if (!m) continue;
            gr[n] = (m->recall - st->recall) / (t->recall - st->recall);
            gn[n] = (m->ndcg - st->ndcg) / (t->ndcg - st->ndcg);
            dr[n] = m->recall - st->recall;
            dn[n] = m->ndcg - st->ndcg;
            n++;
            /* the knob as its initial and value ("l0.1", "a0.03"); the study's run has none */
            if (lines[k].kind == L_METHOD && strcmp(m->knob, "-"))
                P(&knobs, "%s%c%s", knobs.len ? " " : "", m->knob[0], m->knob_text);
            else
                P(&knobs, "%s—", knobs.len ? " " : "");
        }
        double p = kd_ttest_p(dr, n), md = kd_mean(dr, n);
        row = kd_table_add(&t2);
        kd_table_set(&t2, row, 0, lines[k].label);
        kd_table_set_buf(&t2, row, 1, &knobs);
        kd_table_setf(&t2, row, 2, "%.0f", lb[k]);
        set_ci(&t2, row, 3, dr, n, 1);
        set_ci(&t2, row, 4, dn, n, 1);
        if (gap_r) set_gap(&t2, row, 5, gr, n);
        else kd_table_set(&t2, row, 5, "— (teacher not significantly better)");
        if (gap_n) set_gap(&t2, row, 6, gn, n);
        else kd_table_set(&t2, row, 6, "— (teacher not significantly better)");
        kd_table_setf(&t2, row, 7, "%.3g", p);
        kd_table_set(&t2, row, 8, !(p < 0.05) ? "no significant difference" : md > 0 ? "positive transfer"
                                                                                   : "negative transfer");
    }

    /* ---- the plain student: which lr × reg valid chose in each seed ---- */
    static const char *const hdr4[] = { "seed", "plain-student runs (lr × reg)", "chosen lr", "chosen reg",
                                        "valid Recall@10 (chose it)", "test Recall@10", "bytes" };
    row = kd_table_add(&t4);
    for (size_t c = 0; c < 7; c++) kd_table_set(&t4, row, c, hdr4[c]);
    for (size_t si = 0; si < ns; si++) {
        const kd_rep_seed *s = &r->s[si];
        const kd_rep_model *st = &s->m[s->student];
        char v[64];
        row = kd_table_add(&t4);
        kd_table_setf(&t4, row, 0, "%" PRIu64, s->seed);
        kd_table_setf(&t4, row, 1, "%zu", s->nplain);
        prov_copy(st->prov, "lr", v, sizeof v);
        kd_table_set(&t4, row, 2, v);
        prov_copy(st->prov, "reg", v, sizeof v);
        kd_table_set(&t4, row, 3, v);
        if (isnan(st->valid)) kd_table_set(&t4, row, 4, "—");
        else kd_table_setf(&t4, row, 4, "%.4f", st->valid);
        kd_table_setf(&t4, row, 5, "%.4f", st->recall);
        kd_table_setf(&t4, row, 6, "%.0f", st->bytes);
    }

    /* ---- Recall@10 against bytes, and the frontier: a model is dominated by another no
     * larger that it does not significantly beat (paired t-test over seeds, 5%); at equal
     * bytes the higher mean (then the earlier line) dominates ---- */
    for (size_t a = 0; a < nk; a++) {
        dom[a] = -1;
        domp[a] = NAN;
        if (!ln[a]) continue;
        for (size_t q = 0; q < nord; q++) {
            size_t b = order[q];
            if (b == a || !ln[b] || lb[b] > lb[a]) continue;
            if (lb[b] == lb[a] && !(lr[b] > lr[a] || (lr[b] == lr[a] && b < a))) continue;
            uint32_t n = paired(r, &lines[a], &lines[b], f_recall, x);
            double p = kd_ttest_p(x, n);
            if (p < 0.05 && kd_mean(x, n) > 0) continue; /* a is significantly better than b */
            /* the smallest dominating model, then the most accurate */
            if (dom[a] < 0 || lb[b] < lb[dom[a]] || (lb[b] == lb[dom[a]] && lr[b] > lr[dom[a]])) {
                dom[a] = (long)b;
                domp[a] = p;
                domd[a] = kd_mean(x, n);
            }
        }
    }
    static const char *const hdr5[] = { "model", "bytes", "compression vs fp32 teacher", "Recall@10 (test, 95% CI)",
                                        "NDCG@10 (test)", "frontier (test Recall@10, paired over seeds)" };
    row = kd_table_add(&t5);
    for (size_t c = 0; c < 6; c++) kd_table_set(&t5, row, c, hdr5[c]);
    for (size_t q = 0; q < nord; q++) {
        size_t k = order[q];
        uint32_t n = values(r, &lines[k], f_recall, x);
        row = kd_table_add(&t5);
        kd_table_set(&t5, row, 0, lines[k].label);
        kd_table_setf(&t5, row, 1, "%.0f", lb[k]);
        kd_table_setf(&t5, row, 2, "%.2f×", tbytes / lb[k]);
        set_ci(&t5, row, 3, x, n, 0);
        n = values(r, &lines[k], f_ndcg, x);
        set_ms(&t5, row, 4, x, n, 4);
        if (!ln[k]) kd_table_set(&t5, row, 5, "—");
        else if (dom[k] < 0) kd_table_set(&t5, row, 5, "on the frontier");
        else if (isnan(domp[k]))
            kd_table_setf(&t5, row, 5, "dominated by %s (no larger; Δ %+.4f, too few seeds to test)",
                          lines[dom[k]].shortlab, domd[k]);
        else
            kd_table_setf(&t5, row, 5, "dominated by %s (no larger; Δ %+.4f, %s: p = %.3g)",
                          lines[dom[k]].shortlab, domd[k],
                          domp[k] < 0.05 && domd[k] < 0 ? "significantly worse" : "not significantly better", domp[k]);
    }
    /* which model wins at each size: the frontier by bytes, ascending */
    {
        /* the frontier's indices sorted by bytes (insertion: a handful of lines) */
        size_t *fi = kd_calloc_array(nl, sizeof *fi), nf = 0;
        if (!fi) goto oom;
        for (size_t q = 0; q < nord; q++) {
            size_t k = order[q];
            if (!ln[k] || dom[k] >= 0) continue;
            size_t j = nf++;
            while (j > 0 && lb[fi[j - 1]] > lb[k]) { fi[j] = fi[j - 1]; j--; }
            fi[j] = k;
        }
        for (size_t j = 0; j < nf; j++) {
            size_t k = fi[j];
            P(&wins, "- %.0f bytes (%.2f× smaller than the teacher)", lb[k], tbytes / lb[k]);
            if (j + 1 < nf) P(&wins, " up to %.0f", lb[fi[j + 1]] - 1);
            else P(&wins, " and more");
            P(&wins, ": **%s**, test Recall@10 %.4f\n", lines[k].label, lr[k]);
        }
        free(fi);
    }

    /* ---- per-seed detail ---- */
    kd_table_free(&t3);
    kd_table_init(&t3, 1 + nbase);
    row = kd_table_add(&t3);
    kd_table_set(&t3, row, 0, "seed");
    for (size_t k = 0; k < nbase; k++) kd_table_set(&t3, row, k + 1, lines[k].key);
    row = kd_table_add(&t3);
    kd_table_set(&t3, row, 0, "bytes");
    for (size_t k = 0; k < nbase; k++) kd_table_setf(&t3, row, k + 1, "%.0f", lb[k]);
    row = kd_table_add(&t3);
    kd_table_set(&t3, row, 0, "compression");
    for (size_t k = 0; k < nbase; k++) kd_table_setf(&t3, row, k + 1, "%.2f×", tbytes / lb[k]);
    for (size_t si = 0; si < ns; si++) {
        row = kd_table_add(&t3);
        kd_table_setf(&t3, row, 0, "%" PRIu64, r->s[si].seed);
        for (size_t k = 0; k < nbase; k++) {
            const kd_rep_model *m = pick(&r->s[si], &lines[k]);
            if (m) kd_table_setf(&t3, row, k + 1, "%.4f", m->recall);
            else kd_table_set(&t3, row, k + 1, "—");
        }
    }

    /* ---- charts: legends use short names ---- */
    d->nsvg = 4;
    d->svg_name[0] = "recall-vs-bytes.svg";
    d->svg_name[1] = "valid-curves.svg";
    d->svg_name[2] = "loss-curves.svg";
    d->svg_name[3] = "latency.svg";
    int npts = 0;
    for (size_t q = 0; q < nord; q++) {
        size_t k = order[q];
        if (!ln[k]) continue;
        px[npts] = lb[k];
        py[npts] = lr[k];
        ser[npts] = (kd_series){ lines[k].shortlab, &px[npts], &py[npts], 1, 1 };
        npts++;
    }
    kd_svg_chart(&d->svg[0], "Recall@10 (test, mean over seeds) against serving bytes", "bytes (log)", "Recall@10",
                 ser, npts, 1);
    for (int which = 0; which < 2; which++) {
        int nser = 0;
        for (size_t k = 0; k < nbase; k++) {
            const kd_rep_model *m0 = pick(s0, &lines[k]);
            uint32_t n;
            if (!m0 || read_record(m0->path, which ? "train.loss" : "train.valid", &xs[nser], &ys[nser], &n)) continue;
            ser[nser] = (kd_series){ lines[k].shortlab, xs[nser], ys[nser], n, 0 };
            nser++;
        }
        char t[128];
        snprintf(t, sizeof t, which ? "Training loss per epoch (seed %" PRIu64 ")"
                                    : "Validation Recall@10 during training (seed %" PRIu64 ")", s0->seed);
        kd_svg_chart(&d->svg[1 + which], t, "epoch", which ? "loss (BPR + distillation term)" : "valid Recall@10",
                            ser, nser, 0);
        for (int k = 0; k < nser; k++) { free(xs[k]); free(ys[k]); xs[k] = ys[k] = NULL; }
    }
    {
        /* the distribution of single-user latency as its quantiles (mean over seeds) */
        static const char *const vn[4] = { "p50", "mean", "p90", "p99" };
        field fq[4] = { f_p50, f_lat, f_p90, f_p99 };
        for (size_t k = 0; k < nbase; k++) {
            for (int q = 0; q < 4; q++) lat[4 * k + q] = kd_mean(x, values(r, &lines[k], fq[q], x));
            lab[k] = lines[k].shortlab;
        }
        kd_svg_bars(&d->svg[3], "Single-user ranking latency: p50, mean, p90, p99 (mean over seeds)", "µs", lab,
                           (int)nbase, lat, 4, vn);
    }

    /* ---- provenance: content IDs per seed, the first seed's dataset and teacher ---- */
    for (size_t si = 0; si < ns; si++) {
        const kd_rep_seed *s = &r->s[si];
        P(&prov, "- seed %" PRIu64 ":", s->seed);
        uint32_t kind;
        uint64_t id;
        kd_err pe;
        char hex[17];
        if (s->data && kd_art_peek(s->data, &kind, &id, &pe) == 0) {
            kd_id_hex(id, hex);
            P(&prov, " data `%s`", hex);
        }
        kd_id_hex(s->m[s->teacher].id, hex);
        P(&prov, " teacher `%s`", hex);
        kd_id_hex(s->m[s->student].id, hex);
        P(&prov, " student `%s`", hex);
        P(&prov, "\n");
    }
    char *dprov = NULL;
    kd_err pe;
    if (s0->data && load_prov(s0->data, 0, &dprov, &pe) == 0) {
        P(&params, "Dataset (seed %" PRIu64 "):\n\n```\n%s```\n\n", s0->seed, dprov);
        free(dprov);
    }
    P(&params, "Teacher (seed %" PRIu64 "):\n\n```\n%s```\n\n", s0->seed, s0->m[s0->teacher].prov);
    int hits = 0, runs = 0;
    if (o->stages) count_stages(o->stages, &runs, &hits);

    /* ---- assemble ---- */
    static const char sec_gap[] = "Is there a gap to close?  Teacher against the plain student (test)";
    static const char sec_t2[] = "What distillation buys: Δ against the plain student and share of the teacher–student gap closed";
    static const char sec_t4[] = "The plain student: lr × reg chosen per seed on valid";
    static const char sec_t5[] = "Recall@10 against bytes: which model wins at each size";
    static const char note5[] = "Bytes: what serving holds (float: 4 × params; quantised: codes + per-row scales and "
                                "offsets + float biases).  A quantised line is the quantisation of that seed's model "
                                "of the line it names (chosen on valid where that line is chosen).";
    kd_buf *md = &d->md, *h = &d->html;
    P(md, "# %s\n\nSeeds: ", o->title);
    put_seeds(md, r);
    P(md, " (n = %zu).  Study numbers are the PyTorch notebook's (latency in µs).  Choices on valid, numbers on test.\n\n", ns);
    P(md, "## The study's table, reproduced\n\n");
    kd_table_md(&t1, md);
    P(md, "## %s\n\n", sec_gap);
    put_buf(md, &gaps);
    P(md, "\n## %s\n\n", sec_t2);
    kd_table_md(&t2, md);
    kd_buf_append(md, notes, strlen(notes));
    P(md, "## %s\n\n", sec_t4);
    kd_table_md(&t4, md);
    P(md, "## %s\n\n%s\n\n", sec_t5, note5);
    kd_table_md(&t5, md);
    P(md, "The frontier, by size (test Recall@10; each model on it significantly beats every smaller one):\n\n");
    put_buf(md, &wins);
    P(md, "\n## Recall@10 per seed (test)\n\n");
    kd_table_md(&t3, md);
    P(md, "## Charts\n\n");
    for (int k = 0; k < 4; k++) P(md, "![%s](%s)\n\n", d->svg_name[k], d->svg_name[k]);
    P(md, "## Provenance\n\nContent IDs:\n\n");
    put_buf(md, &prov);
    P(md, "\nTool: kdrec %s.", KD_VERSION);
    if (o->stages) P(md, "  Stages in the run that built this report: %d computed, %d from the cache.", runs, hits);
    P(md, "\n\n");
    put_buf(md, &params);

    P(h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>");
    X(h, o->title);
    P(h, "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}"
         "td:first-child,th:first-child{text-align:left}td+td{white-space:nowrap}th{background:#eee}pre{background:#f6f6f6;padding:8px}"
         "svg{margin:8px 0;border:1px solid #ddd}</style></head><body>\n<h1>");
    X(h, o->title);
    P(h, "</h1>\n<p>Seeds: ");
    put_seeds(h, r);
    P(h, " (n = %zu). Study numbers are the PyTorch notebook's (latency in µs). Choices on valid, numbers on test.</p>\n", ns);
    P(h, "<h2>The study's table, reproduced</h2>\n");
    kd_table_html(&t1, h);
    P(h, "<h2>");
    X(h, sec_gap);
    P(h, "</h2>\n<pre>");
    escape_buf2(h, &gaps, 0, 1);
    P(h, "</pre>\n<h2>");
    X(h, sec_t2);
    P(h, "</h2>\n");
    kd_table_html(&t2, h);
    P(h, "<p>");
    X(h, notes);
    P(h, "</p>\n<h2>");
    X(h, sec_t4);
    P(h, "</h2>\n");
    kd_table_html(&t4, h);
    P(h, "<h2>");
    X(h, sec_t5);
    P(h, "</h2>\n<p>");
    X(h, note5);
    P(h, "</p>\n");
    kd_table_html(&t5, h);
    P(h, "<p>The frontier, by size (test Recall@10; each model on it significantly beats every smaller one):</p>\n<pre>");
    escape_buf2(h, &wins, 0, 1);
    P(h, "</pre>\n<h2>Recall@10 per seed (test)</h2>\n");
    kd_table_html(&t3, h);
    P(h, "<h2>Charts</h2>\n");
    for (int k = 0; k < 4; k++) put_buf(h, &d->svg[k]);
    P(h, "<h2>Provenance</h2>\n<pre>");
    escape_buf(h, &prov, 1);
    P(h, "</pre>\n<p>Tool: kdrec %s.", KD_VERSION);
    if (o->stages) P(h, " Stages in the run that built this report: %d computed, %d from the cache.", runs, hits);
    P(h, "</p>\n<pre>");
    escape_buf(h, &params, 0);
    P(h, "</pre>\n</body></html>\n");

    kd_table_text(&t1, &d->txt);
    P(&d->txt, "\n");
    put_buf(&d->txt, &gaps);
    P(&d->txt, "\n");
    kd_table_text(&t2, &d->txt);
    P(&d->txt, "\n");
    kd_table_text(&t5, &d->txt);
    rc = 0;
    if (0) {
oom:
        kd_fail(e, "out of memory");
    }
    kd_table_free(&t1); kd_table_free(&t2); kd_table_free(&t3); kd_table_free(&t4); kd_table_free(&t5);
    kd_buf_free(&prov); kd_buf_free(&params); kd_buf_free(&knobs); kd_buf_free(&gaps); kd_buf_free(&wins);
    for (size_t k = 0; xs && k < nl; k++) { free(xs[k]); free(ys ? ys[k] : NULL); }
    for (size_t k = 0; lines && k < nl; k++) { free(lines[k].label); free(lines[k].key); free(lines[k].shortlab); }
    free(lines); free(order); free(x); free(gr); free(gn); free(dr); free(dn); free(px); free(py); free(lb); free(lr);
    free(ln); free(dom); free(domp); free(domd); free(lat); free(xs); free(ys); free(ser); free(lab); free(qs);
    return rc;
}

/* ---------------------------------------------------------------- the sweep's report */

typedef struct dvec {
    double *v;
    size_t  n, cap;
} dvec;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* adds x unless NaN or already there; 0 or -1 */
static int dvec_add(dvec *d, double x)
{
    if (isnan(x)) return 0;
    for (size_t k = 0; k < d->n; k++)
        if (d->v[k] == x) return 0;
    if (grow(&d->v, &d->cap, d->n, sizeof *d->v)) return -1;
    d->v[d->n++] = x;
    return 0;
}

typedef struct svec {
    const char **v;
    size_t       n, cap;
} svec;

static int svec_add(svec *d, const char *s)
{
    for (size_t k = 0; k < d->n; k++)
        if (!strcmp(d->v[k], s)) return 0;
    if (grow(&d->v, &d->cap, d->n, sizeof *d->v)) return -1;
    d->v[d->n++] = s;
    return 0;
}

/* the methods of a set in the report's order: the study's five first, then as found */
static int svec_order(svec *d)
{
    svec o = { 0 };
    int bad = 0;
    for (size_t k = 0; k < sizeof method_order / sizeof *method_order; k++)
        for (size_t j = 0; j < d->n; j++)
            if (!strcmp(d->v[j], method_order[k])) bad |= svec_add(&o, d->v[j]);
    for (size_t j = 0; j < d->n; j++) bad |= svec_add(&o, d->v[j]);
    free(d->v);
    *d = o;
    return bad;
}

/* a sweep model: role, method ("" any), knob ("" any), values (NaN any) */
typedef struct query {
    int         role;
    const char *method, *knob;
    double      value, temperature, dim;
} query;

static int matches(const kd_rep_model *m, const query *q)
{
    return m->role == q->role && (!q->method[0] || !strcmp(m->method, q->method)) &&
           (!q->knob[0] || !strcmp(m->knob, q->knob)) && (isnan(q->value) || m->knob_value == q->value) &&
           (isnan(q->temperature) || m->temperature == q->temperature) && (isnan(q->dim) || m->dim == q->dim);
}

static const kd_rep_model *find(const kd_rep_seed *s, const query *q)
{
    for (size_t k = 0; k < s->n; k++)
        if (matches(&s->m[k], q)) return &s->m[k];
    return NULL;
}

/* mean over seeds of the matching model's Recall@10 (NaN when absent); its params and
 * serving bytes too */
static double mean_recall(const kd_report *r, const query *q, double *params, double *bytes, double *scratch)
{
    uint32_t n = 0;
    for (size_t k = 0; k < r->ns; k++) {
        const kd_rep_model *m = q->role == KD_ROLE_TEACHER ? (r->s[k].teacher >= 0 ? &r->s[k].m[r->s[k].teacher] : NULL)
                                                           : find(&r->s[k], q);
        if (m) {
            scratch[n++] = m->recall;
            if (params) *params = m->params;
            if (bytes) *bytes = m->bytes;
        }
    }
    return n ? kd_mean(scratch, n) : NAN;
}

static int sweep_report(const kd_report *r, const kd_report_opts *o, kd_report_doc *d, kd_err *e)
{
    const kd_rep_seed *s0 = &r->s[0];
    dvec alphas = { 0 }, temps = { 0 }, lams = { 0 }, dims = { 0 }, dimcount = { 0 };
    svec meth = { 0 }, smeth = { 0 }, all = { 0 };
    kd_table th, tl, tf;
    int bad = 0, rc = -1;
    kd_table_init(&th, 1);
    kd_table_init(&tl, 1);
    kd_table_init(&tf, 1);
    double *scratch = kd_calloc_array(r->ns, sizeof *scratch), *hv = NULL, *lx = NULL, *ly = NULL, *fx = NULL;
    double *fy = NULL, *slam = NULL;
    char **tlab = NULL;
    const char **rl = NULL, **cl = NULL;
    kd_series *ser = NULL;
    if (!scratch) goto oom;

    /* the sweep's student dim: the dim holding the most distilled models (first seen on a tie) */
    double sdim = NAN;
    size_t best = 0;
    for (size_t k = 0; k < s0->n; k++)
        if (s0->m[k].role == KD_ROLE_DISTILLED) bad |= dvec_add(&dimcount, s0->m[k].dim);
    for (size_t j = 0; j < dimcount.n; j++) {
        size_t c = 0;
        for (size_t k = 0; k < s0->n; k++) c += s0->m[k].role == KD_ROLE_DISTILLED && s0->m[k].dim == dimcount.v[j];
        if (c > best) { best = c; sdim = dimcount.v[j]; }
    }
    /* the grids, from the first seed */
    for (size_t k = 0; k < s0->n; k++) {
        const kd_rep_model *m = &s0->m[k];
        if (m->role == KD_ROLE_STUDENT) bad |= dvec_add(&dims, m->dim);
        if (m->role != KD_ROLE_DISTILLED) continue;
        if (!strcmp(m->knob, "lambda")) bad |= svec_add(&all, m->method);
        if (m->dim != sdim) continue;
        if (!strcmp(m->method, "margin-mse") && !strcmp(m->knob, "alpha")) {
            bad |= dvec_add(&alphas, m->knob_value);
            bad |= dvec_add(&temps, m->temperature);
        } else if (!strcmp(m->knob, "lambda")) {
            bad |= svec_add(&meth, m->method);
        }
    }
    bad |= svec_order(&meth) | svec_order(&all);
    for (size_t k = 0; meth.n && k < s0->n; k++) {
        const kd_rep_model *m = &s0->m[k];
        if (m->role == KD_ROLE_DISTILLED && m->dim == sdim && !strcmp(m->knob, "lambda") && !strcmp(m->method, meth.v[0]))
            bad |= dvec_add(&lams, m->knob_value);
    }
    if (bad) goto oom;
    qsort(alphas.v, alphas.n, sizeof *alphas.v, cmp_double);
    qsort(temps.v, temps.n, sizeof *temps.v, cmp_double);
    qsort(lams.v, lams.n, sizeof *lams.v, cmp_double);
    qsort(dims.v, dims.n, sizeof *dims.v, cmp_double);
    /* the frontier's methods: distilled at every student dim, each at the λ it has most often */
    if (!(slam = kd_calloc_array(all.n ? all.n : 1, sizeof *slam))) goto oom;
    for (size_t j = 0; dims.n && j < all.n; j++) {
        int everywhere = 1;
        for (size_t q = 0; q < dims.n; q++) {
            query qq = { KD_ROLE_DISTILLED, all.v[j], "lambda", NAN, NAN, dims.v[q] };
            everywhere &= find(s0, &qq) != NULL;
        }
        if (!everywhere) continue;
        size_t most = 0;
        for (size_t k = 0; k < s0->n; k++) {
            const kd_rep_model *m = &s0->m[k];
            if (m->role != KD_ROLE_DISTILLED || strcmp(m->method, all.v[j]) || strcmp(m->knob, "lambda")) continue;
            size_t c = 0;
            for (size_t i = 0; i < s0->n; i++)
                c += s0->m[i].role == KD_ROLE_DISTILLED && !strcmp(s0->m[i].method, all.v[j]) &&
                     !strcmp(s0->m[i].knob, "lambda") && s0->m[i].knob_value == m->knob_value;
            if (c > most) { most = c; slam[smeth.n] = m->knob_value; }
        }
        if (svec_add(&smeth, all.v[j])) goto oom;
    }

    size_t na = alphas.n, nt = temps.n, nl = lams.n, nm = meth.n, nd = dims.n, ns = smeth.n;
    size_t nlab = na + nt + nl + nd + 1;
    hv = kd_calloc_array(na * nt + 1, sizeof *hv);
    lx = kd_calloc_array(nl + 1, sizeof *lx);
    ly = kd_calloc_array(nm * nl + 1, sizeof *ly);
    fx = kd_calloc_array(nd + 1, sizeof *fx);
    fy = kd_calloc_array((ns + 1) * nd + 1, sizeof *fy);
    tlab = kd_calloc_array(nlab, sizeof *tlab);
    rl = kd_calloc_array(na + 1, sizeof *rl);
    cl = kd_calloc_array(nt + 1, sizeof *cl);
    ser = kd_calloc_array(nm + ns + 2, sizeof *ser);
    if (!hv || !lx || !ly || !fx || !fy || !tlab || !rl || !cl || !ser) goto oom;
    size_t nlabs = 0;
#define LABEL(v) (tlab[nlabs] = malloc(32), tlab[nlabs] ? (kd_report_num(v, tlab[nlabs]), tlab[nlabs++]) : NULL)
    d->nsvg = 3;
    d->svg_name[0] = "alpha-temperature.svg";
    d->svg_name[1] = "lambda.svg";
    d->svg_name[2] = "frontier.svg";

    /* α x T */
    for (size_t c = 0; c < nt; c++) if (!(cl[c] = LABEL(temps.v[c]))) goto oom;
    for (size_t a = 0; a < na; a++) if (!(rl[a] = LABEL(alphas.v[a]))) goto oom;
    kd_table_free(&th);
    kd_table_init(&th, 1 + nt);
    size_t row = kd_table_add(&th);
    kd_table_set(&th, row, 0, "α \\ T");
    for (size_t c = 0; c < nt; c++) kd_table_setf(&th, row, c + 1, "T = %s", cl[c]);
    for (size_t a = 0; a < na; a++) {
        row = kd_table_add(&th);
        kd_table_setf(&th, row, 0, "α = %s", rl[a]);
        for (size_t c = 0; c < nt; c++) {
            query q = { KD_ROLE_DISTILLED, "margin-mse", "alpha", alphas.v[a], temps.v[c], sdim };
            hv[a * nt + c] = mean_recall(r, &q, NULL, NULL, scratch);
            kd_table_setf(&th, row, c + 1, "%.4f", hv[a * nt + c]);
        }
    }
    kd_svg_heatmap(&d->svg[0], "margin-MSE: Recall@10 over α x T (mean over seeds)", "temperature T", "α", cl,
                          (int)nt, rl, (int)na, hv);
    /* λ per method */
    kd_table_free(&tl);
    kd_table_init(&tl, 1 + nm);
    row = kd_table_add(&tl);
    kd_table_set(&tl, row, 0, "λ");
    for (size_t c = 0; c < nm; c++) kd_table_set(&tl, row, c + 1, meth.v[c]);
    for (size_t l = 0; l < nl; l++) {
        const char *lt = LABEL(lams.v[l]);
        if (!lt) goto oom;
        lx[l] = lams.v[l];
        row = kd_table_add(&tl);
        kd_table_set(&tl, row, 0, lt);
        for (size_t c = 0; c < nm; c++) {
            query q = { KD_ROLE_DISTILLED, meth.v[c], "lambda", lams.v[l], NAN, sdim };
            ly[c * nl + l] = mean_recall(r, &q, NULL, NULL, scratch);
            kd_table_setf(&tl, row, c + 1, "%.4f", ly[c * nl + l]);
        }
    }
    for (size_t c = 0; c < nm; c++) ser[c] = (kd_series){ meth.v[c], lx, ly + c * nl, (uint32_t)nl, 0 };
    kd_svg_chart(&d->svg[1], "Recall@10 against each method's weight λ (mean over seeds)", "λ", "Recall@10", ser,
                        (int)nm, 1);
    /* frontier */
    kd_table_free(&tf);
    kd_table_init(&tf, 5 + ns);
    row = kd_table_add(&tf);
    kd_table_set(&tf, row, 0, "student dim");
    kd_table_set(&tf, row, 1, "params");
    kd_table_set(&tf, row, 2, "bytes");
    kd_table_set(&tf, row, 3, "compression (bytes)");
    kd_table_set(&tf, row, 4, "plain");
    for (size_t c = 0; c < ns; c++) kd_table_set(&tf, row, 5 + c, smeth.v[c]);
    double tpar = NAN, tbytes = NAN;
    query tq = { KD_ROLE_TEACHER, "", "", NAN, NAN, NAN };
    double trec = mean_recall(r, &tq, &tpar, &tbytes, scratch);
    for (size_t i = 0; i < nd; i++) {
        double par = NAN, by = NAN;
        query q = { KD_ROLE_STUDENT, "", "", NAN, NAN, dims.v[i] };
        const char *dt = LABEL(dims.v[i]);
        if (!dt) goto oom;
        fy[i] = mean_recall(r, &q, &par, &by, scratch);
        fx[i] = par;
        row = kd_table_add(&tf);
        kd_table_set(&tf, row, 0, dt);
        kd_table_setf(&tf, row, 1, "%.0f", par);
        kd_table_setf(&tf, row, 2, "%.0f", by);
        kd_table_setf(&tf, row, 3, "%.2f×", tbytes / by);
        kd_table_setf(&tf, row, 4, "%.4f", fy[i]);
        for (size_t c = 0; c < ns; c++) {
            query qm = { KD_ROLE_DISTILLED, smeth.v[c], "lambda", slam[c], NAN, dims.v[i] };
            fy[(1 + c) * nd + i] = mean_recall(r, &qm, NULL, NULL, scratch);
            kd_table_setf(&tf, row, 5 + c, "%.4f", fy[(1 + c) * nd + i]);
        }
    }
    row = kd_table_add(&tf);
    kd_table_set(&tf, row, 0, "teacher");
    kd_table_setf(&tf, row, 1, "%.0f", tpar);
    kd_table_setf(&tf, row, 2, "%.0f", tbytes);
    kd_table_set(&tf, row, 3, "1.00×");
    kd_table_setf(&tf, row, 4, "%.4f", trec);
    ser[0] = (kd_series){ "plain student", fx, fy, (uint32_t)nd, 0 };
    for (size_t c = 0; c < ns; c++) ser[1 + c] = (kd_series){ smeth.v[c], fx, fy + (1 + c) * nd, (uint32_t)nd, 0 };
    ser[1 + ns] = (kd_series){ "teacher", &tpar, &trec, 1, 1 };
    kd_svg_chart(&d->svg[2], "Accuracy against size: Recall@10 by parameters (mean over seeds)", "parameters (log)",
                        "Recall@10", ser, (int)ns + 2, 1);
#undef LABEL

    kd_buf *md = &d->md, *h = &d->html, *txt = &d->txt;
    static const char *const sec[3] = { "margin-MSE over α and T", "Each method's weight λ", "Accuracy against size" };
    const kd_table *tabs[3] = { &th, &tl, &tf };
    static const char note[] = "The temperature cancels out of the study's loss (T²·(Δs/T − Δt/T)² = (Δs − Δt)²), "
                               "so every column of the α × T table is the same up to rounding.";
    P(md, "# %s\n\nSeeds: %zu; every figure is the mean test Recall@10 over seeds.\n\n", o->title, r->ns);
    P(h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>");
    X(h, o->title);
    P(h, "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
         "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}svg{margin:8px 0;border:1px solid #ddd}"
         "</style></head><body>\n<h1>");
    X(h, o->title);
    P(h, "</h1>\n<p>Seeds: %zu; every figure is the mean test Recall@10 over seeds.</p>\n", r->ns);
    for (int k = 0; k < 3; k++) {
        P(md, "## %s\n\n", sec[k]);
        kd_table_md(tabs[k], md);
        P(md, "![%s](%s)\n\n", d->svg_name[k], d->svg_name[k]);
        P(h, "<h2>%s</h2>\n", sec[k]);
        kd_table_html(tabs[k], h);
        put_buf(h, &d->svg[k]);
        if (k == 0) {
            P(md, "%s\n\n", note);
            P(h, "<p>%s</p>\n", note);
        }
        P(txt, "%s\n", sec[k]);
        kd_table_text(tabs[k], txt);
        P(txt, "\n");
    }
    P(h, "</body></html>\n");
    rc = 0;
    if (0) {
oom:
        kd_fail(e, "out of memory");
    }
    kd_table_free(&th); kd_table_free(&tl); kd_table_free(&tf);
    for (size_t k = 0; tlab && k < nlab; k++) free(tlab[k]);
    free(alphas.v); free(temps.v); free(lams.v); free(dims.v); free(dimcount.v); free(meth.v); free(smeth.v); free(all.v);
    free(scratch); free(hv); free(lx); free(ly); free(fx); free(fy); free(slam); free(tlab); free(rl); free(cl); free(ser);
    return rc;
}

/* ---------------------------------------------------------------- entry points */

int kd_report_build(const kd_report *r, const kd_report_opts *o, kd_report_doc *d, kd_err *e)
{
    memset(d, 0, sizeof *d);
    if (r->ns == 0) return kd_fail(e, "no seeds to report");
    if (r->sweep ? sweep_report(r, o, d, e) : study_report(r, o, d, e)) return -1;
    /* the one check of the documents' buffers: a report that lost a line is no report,
     * and the tool writes nothing */
    int bad = kd_buf_error(&d->md) || kd_buf_error(&d->html) || kd_buf_error(&d->txt);
    for (int k = 0; k < d->nsvg; k++) bad |= kd_buf_error(&d->svg[k]);
    return bad ? kd_fail(e, "out of memory") : 0;
}

void kd_report_doc_free(kd_report_doc *d)
{
    kd_buf_free(&d->md);
    kd_buf_free(&d->html);
    kd_buf_free(&d->txt);
    for (int k = 0; k < 4; k++) kd_buf_free(&d->svg[k]);
    memset(d, 0, sizeof *d);
}
