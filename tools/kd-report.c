/* kd-report: turn a pipeline's evaluations and models into report.md, a self-contained
 * report.html (inline SVG) and the main table on stdout.
 *
 * DIR holds one directory per seed, s<N>/, each with eval-test.tsv, eval-valid.tsv and the
 * models: teacher.kd, student.kd, study.kd (the study's margin-MSE, optional) and
 * <method>_<tag>.kd, one per value of the method's knob; the value used for a method in
 * a seed is the one with the best validation Recall@10 (test is never used to choose). */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h" /* models' training records and provenance */
#include "kd_cli.h"      /* kd_cli_version */
#include "kd_io.h"       /* kd_buf, kd_out */
#include "kd_stats.h"    /* mean, sd, CI, t-test */
#include "kd_svg.h"      /* charts */
#include "kd_tsv.h"      /* evaluation tables */

static const char *prog = "kd-report";

#define MAXSEEDS 64
#define MAXMODELS 128
#define MAXMETHODS 16

typedef struct mrow {
    char   name[96];
    double recall, ndcg, lat_mean, lat_p50, lat_p90, lat_p99, params, valid;
} mrow;

typedef struct seedrun {
    long  id;
    char  dir[4096];
    mrow  m[MAXMODELS];
    int   n;
} seedrun;

typedef struct report {
    seedrun *s;
    int      ns;
    char     methods[MAXMETHODS][64];
    int      nmethods;
} report;

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [options] DIR -o REPORT.md\n"
               "Report a pipeline's results: DIR/s<N>/ per seed with eval-test.tsv, eval-valid.tsv and\n"
               "the models (teacher, student, study, <method>_<tag>).  The table is printed on stdout.\n"
               "  -o FILE        the Markdown report (charts are written beside it as .svg)\n"
               "  --html FILE    a self-contained HTML report (inline SVG, no scripts)\n"
               "  --stages FILE  a stage log (lines 'tool label: cached|ran ...') to summarise\n"
               "  --title TEXT   [kdrec study]\n"
               "  --sweep        the sweep's report (α x T heatmap, λ curves, accuracy against size)\n"
               "  -h, --help, --version\n", prog);
}

static int cmp_long(const void *a, const void *b)
{
    const seedrun *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static const mrow *find(const seedrun *s, const char *name)
{
    for (int k = 0; k < s->n; k++)
        if (!strcmp(s->m[k].name, name)) return &s->m[k];
    return NULL;
}

/* the method's model chosen on validation in seed s */
static const mrow *selected(const seedrun *s, const char *method)
{
    const mrow *best = NULL;
    size_t len = strlen(method);
    for (int k = 0; k < s->n; k++)
        if (!strncmp(s->m[k].name, method, len) && s->m[k].name[len] == '_' &&
            (!best || s->m[k].valid > best->valid))
            best = &s->m[k];
    return best;
}

static int load_seed(seedrun *s, kd_err *e)
{
    char p[4200];
    kd_tsv t, v;
    snprintf(p, sizeof p, "%s/eval-test.tsv", s->dir);
    if (kd_tsv_read(&t, p, e)) return -1;
    snprintf(p, sizeof p, "%s/eval-valid.tsv", s->dir);
    if (kd_tsv_read(&v, p, e)) { kd_tsv_free(&t); return -1; }
    int cm = kd_tsv_col(&t, "model"), vm = kd_tsv_col(&v, "model");
    if (cm < 0 || vm < 0 || kd_tsv_col(&t, "recall@10") < 0 || kd_tsv_col(&v, "recall@10") < 0) {
        kd_tsv_free(&t); kd_tsv_free(&v);
        return kd_fail(e, "%s: evaluations need the columns model and recall@10", s->dir);
    }
    for (uint32_t r = 0; r < t.rows && s->n < MAXMODELS; r++) {
        mrow *m = &s->m[s->n++];
        snprintf(m->name, sizeof m->name, "%s", kd_tsv_cell(&t, r, cm));
        m->recall = kd_tsv_num(&t, r, "recall@10");
        m->ndcg = kd_tsv_num(&t, r, "ndcg@10");
        m->lat_mean = kd_tsv_num(&t, r, "lat_mean_us");
        m->lat_p50 = kd_tsv_num(&t, r, "lat_p50_us");
        m->lat_p90 = kd_tsv_num(&t, r, "lat_p90_us");
        m->lat_p99 = kd_tsv_num(&t, r, "lat_p99_us");
        m->params = kd_tsv_num(&t, r, "params");
        m->valid = NAN;
        for (uint32_t q = 0; q < v.rows; q++)
            if (!strcmp(kd_tsv_cell(&v, q, vm), m->name)) m->valid = kd_tsv_num(&v, q, "recall@10");
    }
    kd_tsv_free(&t);
    kd_tsv_free(&v);
    if (!find(s, "teacher") || !find(s, "student"))
        return kd_fail(e, "%s: the evaluation has no 'teacher' or no 'student' model", s->dir);
    return 0;
}

static int load_sweep_seed(seedrun *s, kd_err *e)
{
    char p[4200];
    kd_tsv t;
    snprintf(p, sizeof p, "%s/eval-test.tsv", s->dir);
    if (kd_tsv_read(&t, p, e)) return -1;
    int cm = kd_tsv_col(&t, "model");
    if (cm < 0) { kd_tsv_free(&t); return kd_fail(e, "%s: no model column", p); }
    for (uint32_t r = 0; r < t.rows && s->n < MAXMODELS; r++) {
        mrow *m = &s->m[s->n++];
        snprintf(m->name, sizeof m->name, "%s", kd_tsv_cell(&t, r, cm));
        m->recall = kd_tsv_num(&t, r, "recall@10");
        m->ndcg = kd_tsv_num(&t, r, "ndcg@10");
        m->params = kd_tsv_num(&t, r, "params");
        m->lat_mean = m->lat_p50 = m->lat_p90 = m->lat_p99 = m->valid = NAN;
    }
    kd_tsv_free(&t);
    return 0;
}

static int load(report *rp, const char *dir, int sweep, kd_err *e)
{
    DIR *d = opendir(dir);
    if (!d) return kd_fail(e, "%s: cannot open directory", dir);
    struct dirent *de;
    rp->s = calloc(MAXSEEDS, sizeof *rp->s);
    if (!rp->s) { closedir(d); return kd_fail(e, "out of memory"); }
    while ((de = readdir(d)) && rp->ns < MAXSEEDS) {
        char *end;
        if (de->d_name[0] != 's') continue;
        long id = strtol(de->d_name + 1, &end, 10);
        if (end == de->d_name + 1 || *end) continue;
        seedrun *s = &rp->s[rp->ns];
        s->id = id;
        snprintf(s->dir, sizeof s->dir, "%s/%s", dir, de->d_name);
        rp->ns++;
    }
    closedir(d);
    if (rp->ns == 0) return kd_fail(e, "%s: no seed directories (s1, s2, ...)", dir);
    qsort(rp->s, (size_t)rp->ns, sizeof *rp->s, cmp_long);
    for (int k = 0; k < rp->ns; k++)
        if (sweep ? load_sweep_seed(&rp->s[k], e) : load_seed(&rp->s[k], e)) return -1;
    if (sweep) return 0;
    /* methods: the prefixes before '_', in a fixed order, then any others */
    const char *order[] = { "margin-mse", "rd", "rrd", "ce", "dcd" };
    for (int o = 0; o < 5; o++)
        if (selected(&rp->s[0], order[o])) snprintf(rp->methods[rp->nmethods++], 64, "%s", order[o]);
    for (int k = 0; k < rp->s[0].n && rp->nmethods < MAXMETHODS; k++) {
        char *u = strchr(rp->s[0].m[k].name, '_');
        if (!u) continue;
        char mname[64];
        snprintf(mname, sizeof mname, "%.*s", (int)(u - rp->s[0].m[k].name), rp->s[0].m[k].name);
        int seen = 0;
        for (int j = 0; j < rp->nmethods; j++) seen |= !strcmp(rp->methods[j], mname);
        if (!seen) snprintf(rp->methods[rp->nmethods++], 64, "%s", mname);
    }
    return 0;
}

typedef double (*field)(const mrow *);
static double f_recall(const mrow *m) { return m->recall; }
static double f_ndcg(const mrow *m) { return m->ndcg; }
static double f_lat(const mrow *m) { return m->lat_mean; }
static double f_p50(const mrow *m) { return m->lat_p50; }
static double f_p90(const mrow *m) { return m->lat_p90; }
static double f_p99(const mrow *m) { return m->lat_p99; }

/* values of a field for a row key over seeds: "teacher", "student", "study" or method:<m> */
static int values(const report *rp, const char *key, field f, double *out)
{
    int n = 0;
    for (int k = 0; k < rp->ns; k++) {
        const mrow *m = !strncmp(key, "method:", 7) ? selected(&rp->s[k], key + 7) : find(&rp->s[k], key);
        if (m) out[n++] = f(m);
    }
    return n;
}

static void fmt_ms(char *b, size_t n, const double *x, int k, int digits)
{
    if (k == 0) { snprintf(b, n, "—"); return; }
    snprintf(b, n, "%.*f ± %.*f", digits, kd_mean(x, (uint32_t)k), digits, kd_sd(x, (uint32_t)k));
}

/* ---------------------------------------------------------------- tables */

typedef struct table {
    int rows, cols;
    char cell[40][10][96];
} table;

static void emit_md(kd_buf *b, const table *t)
{
    for (int r = 0; r < t->rows; r++) {
        kd_buf_printf(b, "|");
        for (int c = 0; c < t->cols; c++) kd_buf_printf(b, " %s |", t->cell[r][c]);
        kd_buf_printf(b, "\n");
        if (r == 0) {
            kd_buf_printf(b, "|");
            for (int c = 0; c < t->cols; c++) kd_buf_printf(b, "%s|", c ? "---:" : "---");
            kd_buf_printf(b, "\n");
        }
    }
    kd_buf_printf(b, "\n");
}

static void emit_html(kd_buf *b, const table *t)
{
    kd_buf_printf(b, "<table>\n");
    for (int r = 0; r < t->rows; r++) {
        kd_buf_printf(b, "<tr>");
        for (int c = 0; c < t->cols; c++) {
            kd_buf_printf(b, r ? "<td>" : "<th>");
            kd_xml_escape(b, t->cell[r][c]);
            kd_buf_printf(b, r ? "</td>" : "</th>");
        }
        kd_buf_printf(b, "</tr>\n");
    }
    kd_buf_printf(b, "</table>\n");
}

static void emit_text(kd_buf *b, const table *t)
{
    int w[10] = { 0 };
    for (int r = 0; r < t->rows; r++)
        for (int c = 0; c < t->cols; c++) {
            int len = 0;
            for (const unsigned char *p = (const unsigned char *)t->cell[r][c]; *p; p++) len += (*p & 0xc0) != 0x80;
            w[c] = len > w[c] ? len : w[c];
        }
    for (int r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->cols; c++) {
            int len = 0;
            for (const unsigned char *p = (const unsigned char *)t->cell[r][c]; *p; p++) len += (*p & 0xc0) != 0x80;
            kd_buf_printf(b, "%s%s%*s", c ? "  " : "", t->cell[r][c], w[c] - len, "");
        }
        kd_buf_printf(b, "\n");
    }
}

/* ---------------------------------------------------------------- charts */

static int read_record(const char *dir, const char *name, const char *section, double **x, double **y, uint32_t *n)
{
    char p[4200];
    kd_art *a;
    kd_err e;
    snprintf(p, sizeof p, "%s/%s.kd", dir, name);
    *n = 0;
    if (kd_art_load(p, KD_KIND_MODEL, &a, &e)) return -1;
    const kd_section *s = kd_art_find(a, section);
    if (!s || s->type != KD_F64) { kd_art_free(a); return -1; }
    *n = (uint32_t)s->rows;
    *x = calloc(*n ? *n : 1, 8);
    *y = calloc(*n ? *n : 1, 8);
    const double *v = s->data;
    for (uint32_t i = 0; i < *n; i++) {
        (*x)[i] = s->cols == 2 ? v[2 * i] : i + 1;
        (*y)[i] = s->cols == 2 ? v[2 * i + 1] : v[i];
    }
    kd_art_free(a);
    return 0;
}

static int write_file(const char *path, const kd_buf *b, kd_err *e)
{
    kd_out o;
    if (kd_out_open(&o, path, KD_OUT_TEXT, e)) return -1;
    if (kd_out_write(&o, b->p, b->len, e) || kd_out_commit(&o, e)) { kd_out_abort(&o); return -1; }
    return 0;
}

/* mean over seeds of a model's Recall@10 (NaN when absent) */
static double mean_recall(const report *rp, const char *name, double *params)
{
    double x[MAXSEEDS];
    int n = 0;
    for (int k = 0; k < rp->ns; k++) {
        const mrow *m = find(&rp->s[k], name);
        if (m) { x[n++] = m->recall; if (params) *params = m->params; }
    }
    return n ? kd_mean(x, (uint32_t)n) : NAN;
}

static int cmp_num(const void *a, const void *b)
{
    double x = atof(*(const char *const *)a), y = atof(*(const char *const *)b);
    return (x > y) - (x < y);
}

/* distinct values of the text between `pre` and `post` in model names, sorted numerically */
static int distinct(const report *rp, const char *pre, const char *post, char out[][32], int cap)
{
    int n = 0;
    size_t lp = strlen(pre);
    for (int k = 0; k < rp->s[0].n; k++) {
        const char *nm = rp->s[0].m[k].name;
        if (strncmp(nm, pre, lp)) continue;
        const char *end = post[0] ? strstr(nm + lp, post) : nm + strlen(nm);
        if (!end || end == nm + lp) continue;
        char v[32];
        snprintf(v, sizeof v, "%.*s", (int)(end - nm - lp), nm + lp);
        int seen = 0;
        for (int j = 0; j < n; j++) seen |= !strcmp(out[j], v);
        if (!seen && n < cap) snprintf(out[n++], 32, "%s", v);
    }
    const char *ptr[64];
    for (int j = 0; j < n; j++) ptr[j] = out[j];
    qsort(ptr, (size_t)n, sizeof *ptr, cmp_num);
    char tmp[64][32];
    for (int j = 0; j < n; j++) snprintf(tmp[j], 32, "%s", ptr[j]);
    for (int j = 0; j < n; j++) snprintf(out[j], 32, "%.31s", tmp[j]);
    return n;
}

static int sweep_report(const report *rp, const char *out, const char *html, const char *title, kd_err *e)
{
    static table th, tl, tf;
    char alphas[64][32], temps[64][32], dims[64][32], lams[64][32], meth[16][32];
    int na = distinct(rp, "mm_a", "_t", alphas, 64), nd = distinct(rp, "dim", "_student", dims, 64);
    int nt = 0, nl = 0, nm = 0;
    if (na) {
        char pre[64];
        snprintf(pre, sizeof pre, "mm_a%s_t", alphas[0]);
        nt = distinct(rp, pre, "", temps, 64);
    }
    /* methods of the λ sweep: names <method>_l<λ> */
    for (int k = 0; k < rp->s[0].n; k++) {
        const char *nm0 = rp->s[0].m[k].name, *u = strstr(nm0, "_l");
        if (!u || !strncmp(nm0, "mm_", 3) || !strncmp(nm0, "dim", 3)) continue;
        char mname[32];
        snprintf(mname, sizeof mname, "%.*s", (int)(u - nm0), nm0);
        int seen = 0;
        for (int j = 0; j < nm; j++) seen |= !strcmp(meth[j], mname);
        if (!seen && nm < 16) snprintf(meth[nm++], 32, "%s", mname);
    }
    if (nm) {
        char pre[64];
        snprintf(pre, sizeof pre, "%s_l", meth[0]);
        nl = distinct(rp, pre, "", lams, 64);
    }
    kd_buf svg[3] = { { 0 } };
    const char *svgname[3] = { "alpha-temperature.svg", "lambda.svg", "frontier.svg" };
    /* α x T */
    double hv[64 * 64];
    const char *rl[64], *cl[64];
    th.cols = 1 + (nt < 9 ? nt : 9);
    snprintf(th.cell[0][0], 96, "α \\ T");
    for (int c = 0; c + 1 < th.cols; c++) snprintf(th.cell[0][c + 1], 96, "T = %s", temps[c]);
    th.rows = 1;
    for (int r = 0; r < na && th.rows < 40; r++) {
        snprintf(th.cell[th.rows][0], 96, "α = %s", alphas[r]);
        rl[r] = alphas[r];
        for (int c = 0; c < nt; c++) {
            char name[96];
            snprintf(name, sizeof name, "mm_a%.31s_t%.31s", alphas[r], temps[c]);
            hv[r * nt + c] = mean_recall(rp, name, NULL);
            if (c + 1 < th.cols) snprintf(th.cell[th.rows][c + 1], 96, "%.4f", hv[r * nt + c]);
            cl[c] = temps[c];
        }
        th.rows++;
    }
    kd_svg_heatmap(&svg[0], "margin-MSE: Recall@10 over α x T (mean over seeds)", "temperature T", "α", cl, nt, rl, na, hv);
    /* λ per method */
    tl.cols = 1 + (nm < 9 ? nm : 9);
    snprintf(tl.cell[0][0], 96, "λ");
    for (int c = 0; c + 1 < tl.cols; c++) snprintf(tl.cell[0][c + 1], 96, "%s", meth[c]);
    tl.rows = 1;
    double lx[64], ly[16][64];
    kd_series ls[16];
    for (int r = 0; r < nl && tl.rows < 40; r++) {
        lx[r] = atof(lams[r]);
        snprintf(tl.cell[tl.rows][0], 96, "%s", lams[r]);
        for (int c = 0; c < nm; c++) {
            char name[96];
            snprintf(name, sizeof name, "%.31s_l%.31s", meth[c], lams[r]);
            ly[c][r] = mean_recall(rp, name, NULL);
            if (c + 1 < tl.cols) snprintf(tl.cell[tl.rows][c + 1], 96, "%.4f", ly[c][r]);
        }
        tl.rows++;
    }
    for (int c = 0; c < nm; c++) ls[c] = (kd_series){ meth[c], lx, ly[c], (uint32_t)nl, 0 };
    kd_svg_chart(&svg[1], "Recall@10 against each method's weight λ (mean over seeds)", "λ", "Recall@10", ls, nm, 1);
    /* frontier */
    char smeth[16][32];
    int ns = 0;
    if (nd) {
        char pre[64];
        snprintf(pre, sizeof pre, "dim%s_", dims[0]);
        for (int k = 0; k < rp->s[0].n; k++) {
            const char *nm0 = rp->s[0].m[k].name;
            if (strncmp(nm0, pre, strlen(pre)) || !strcmp(nm0 + strlen(pre), "student")) continue;
            if (ns < 16) snprintf(smeth[ns++], 32, "%s", nm0 + strlen(pre));
        }
    }
    tf.cols = 3 + ns;
    snprintf(tf.cell[0][0], 96, "student dim");
    snprintf(tf.cell[0][1], 96, "params");
    snprintf(tf.cell[0][2], 96, "plain");
    for (int c = 0; c < ns; c++) snprintf(tf.cell[0][3 + c], 96, "%s", smeth[c]);
    tf.rows = 1;
    double fx[64], fy[17][64], tpar = NAN, trec = mean_recall(rp, "teacher", &tpar);
    kd_series fs[18];
    for (int r = 0; r < nd && tf.rows < 39; r++) {
        char name[96];
        double par = NAN;
        snprintf(name, sizeof name, "dim%s_student", dims[r]);
        fy[0][r] = mean_recall(rp, name, &par);
        fx[r] = par;
        snprintf(tf.cell[tf.rows][0], 96, "%s", dims[r]);
        snprintf(tf.cell[tf.rows][1], 96, "%.0f", par);
        snprintf(tf.cell[tf.rows][2], 96, "%.4f", fy[0][r]);
        for (int c = 0; c < ns; c++) {
            snprintf(name, sizeof name, "dim%s_%s", dims[r], smeth[c]);
            fy[1 + c][r] = mean_recall(rp, name, NULL);
            snprintf(tf.cell[tf.rows][3 + c], 96, "%.4f", fy[1 + c][r]);
        }
        tf.rows++;
    }
    snprintf(tf.cell[tf.rows][0], 96, "teacher");
    snprintf(tf.cell[tf.rows][1], 96, "%.0f", tpar);
    snprintf(tf.cell[tf.rows][2], 96, "%.4f", trec);
    for (int c = 0; c < ns; c++) tf.cell[tf.rows][3 + c][0] = 0;
    tf.rows++;
    fs[0] = (kd_series){ "plain student", fx, fy[0], (uint32_t)nd, 0 };
    for (int c = 0; c < ns; c++) fs[1 + c] = (kd_series){ smeth[c], fx, fy[1 + c], (uint32_t)nd, 0 };
    fs[1 + ns] = (kd_series){ "teacher", &tpar, &trec, 1, 1 };
    kd_svg_chart(&svg[2], "Accuracy against size: Recall@10 by parameters (mean over seeds)", "parameters (log)",
                 "Recall@10", fs, ns + 2, 1);

    kd_buf md = { 0 }, h = { 0 }, txt = { 0 };
    const char *sec[3] = { "margin-MSE over α and T", "Each method's weight λ", "Accuracy against size" };
    const table *tabs[3] = { &th, &tl, &tf };
    const char *note = "The temperature cancels out of the study's loss (T²·(Δs/T − Δt/T)² = (Δs − Δt)²), "
                       "so every column of the α × T table is the same up to rounding.";
    kd_buf_printf(&md, "# %s\n\nSeeds: %d; every figure is the mean test Recall@10 over seeds.\n\n", title, rp->ns);
    kd_buf_printf(&h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>");
    kd_xml_escape(&h, title);
    kd_buf_printf(&h, "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
                      "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}svg{margin:8px 0;border:1px solid #ddd}"
                      "</style></head><body>\n<h1>");
    kd_xml_escape(&h, title);
    kd_buf_printf(&h, "</h1>\n<p>Seeds: %d; every figure is the mean test Recall@10 over seeds.</p>\n", rp->ns);
    for (int k = 0; k < 3; k++) {
        kd_buf_printf(&md, "## %s\n\n", sec[k]);
        emit_md(&md, tabs[k]);
        kd_buf_printf(&md, "![%s](%s)\n\n", svgname[k], svgname[k]);
        kd_buf_printf(&h, "<h2>%s</h2>\n", sec[k]);
        emit_html(&h, tabs[k]);
        kd_buf_append(&h, svg[k].p, svg[k].len);
        if (k == 0) {
            kd_buf_printf(&md, "%s\n\n", note);
            kd_buf_printf(&h, "<p>%s</p>\n", note);
        }
        kd_buf_printf(&txt, "%s\n", sec[k]);
        emit_text(&txt, tabs[k]);
        kd_buf_printf(&txt, "\n");
    }
    kd_buf_printf(&h, "</body></html>\n");
    char base[4096];
    snprintf(base, sizeof base, "%s", out);
    char *slash = strrchr(base, '/');
    if (slash) slash[1] = 0; else base[0] = 0;
    int bad = 0;
    for (int k = 0; k < 3 && !bad; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", base, svgname[k]);
        bad = write_file(p, &svg[k], e);
    }
    if (!bad) bad = write_file(out, &md, e);
    if (!bad && html) bad = write_file(html, &h, e);
    if (!bad) { fwrite(txt.p, 1, txt.len, stdout); bad = fflush(stdout) != 0; }
    for (int k = 0; k < 3; k++) kd_buf_free(&svg[k]);
    kd_buf_free(&md); kd_buf_free(&h); kd_buf_free(&txt);
    return bad ? -1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "html", 1, 0, 'H' }, { "stages", 1, 0, 'S' }, { "title", 1, 0, 'T' }, { "sweep", 0, 0, 'W' },
        { "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { 0, 0, 0, 0 } };
    const char *out = NULL, *html = NULL, *stages = NULL, *title = "kdrec study";
    int c, sweep = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'H': html = optarg; break;
        case 'S': stages = optarg; break;
        case 'T': title = optarg; break;
        case 'W': sweep = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': kd_cli_version(prog); return 0;
        default: usage(stderr); return KD_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc || !out) {
        fprintf(stderr, "%s: expected DIR and -o REPORT.md\n", prog);
        return KD_EXIT_USAGE;
    }
    const char *dir = argv[optind];
    kd_err e = { 0 };
    report rp = { 0 };
    if (load(&rp, dir, sweep, &e)) { free(rp.s); return kd_err_report(prog, &e); }
    if (sweep) {
        int r = sweep_report(&rp, out, html, title, &e);
        free(rp.s);
        return r ? kd_err_report(prog, &e) : 0;
    }

    /* ---- the study's table ---- */
    static table t1, t2, t3;
    const char *hdr1[] = { "model", "Recall@10", "NDCG@10", "latency mean (µs)", "latency p99 (µs)", "params",
                           "compression", "study: Recall / NDCG / latency" };
    t1.cols = 8;
    for (int k = 0; k < 8; k++) snprintf(t1.cell[0][k], 96, "%s", hdr1[k]);
    t1.rows = 1;
    const char *keys[3 + MAXMETHODS];
    char labels[3 + MAXMETHODS][96], keybuf[MAXMETHODS][80];
    int nk = 0;
    keys[nk] = "teacher"; snprintf(labels[nk++], 96, "teacher");
    keys[nk] = "student"; snprintf(labels[nk++], 96, "plain student");
    if (find(&rp.s[0], "study")) {
        /* say which α and learning rate the study's loss was run with */
        char p[4200], alpha[32] = "?", lr[32] = "?";
        kd_art *a;
        kd_err pe;
        snprintf(p, sizeof p, "%s/study.kd", rp.s[0].dir);
        if (kd_art_load(p, KD_KIND_MODEL, &a, &pe) == 0) {
            kd_art_prov_get(a, "alpha", alpha, sizeof alpha);
            kd_art_prov_get(a, "lr", lr, sizeof lr);
            kd_art_free(a);
        }
        keys[nk] = "study";
        snprintf(labels[nk++], 96, "distilled: the study's margin-MSE (α %s, lr %s)", alpha, lr);
    }
    for (int m = 0; m < rp.nmethods; m++) {
        snprintf(keybuf[m], 80, "method:%s", rp.methods[m]);
        keys[nk] = keybuf[m];
        snprintf(labels[nk++], 96, "distilled: %s (knob chosen on valid)", rp.methods[m]);
    }
    const char *study[3] = { "0.1400 / 0.0658 / 185", "0.0970 / 0.0500 / 224", "0.0910 / 0.0432 / 173" };
    double tparams = find(&rp.s[0], "teacher")->params;
    for (int k = 0; k < nk; k++) {
        double x[MAXSEEDS];
        int n;
        char (*row)[96] = t1.cell[t1.rows++];
        snprintf(row[0], 96, "%s", labels[k]);
        n = values(&rp, keys[k], f_recall, x); fmt_ms(row[1], 96, x, n, 4);
        n = values(&rp, keys[k], f_ndcg, x); fmt_ms(row[2], 96, x, n, 4);
        n = values(&rp, keys[k], f_lat, x); fmt_ms(row[3], 96, x, n, 2);
        n = values(&rp, keys[k], f_p99, x); fmt_ms(row[4], 96, x, n, 2);
        const mrow *m0 = !strncmp(keys[k], "method:", 7) ? selected(&rp.s[0], keys[k] + 7) : find(&rp.s[0], keys[k]);
        snprintf(row[5], 96, "%.0f", m0 ? m0->params : NAN);
        snprintf(row[6], 96, "%.2f×", m0 ? tparams / m0->params : NAN);
        snprintf(row[7], 96, "%s", k < 2 ? study[k] : !strcmp(keys[k], "study") ? study[2] : "");
    }

    /* ---- gap closed per method ---- */
    const char *hdr2[] = { "method", "knob chosen per seed", "gap closed, Recall@10 (95% CI)",
                           "gap closed, NDCG@10 (95% CI)", "Δ Recall@10 vs student", "paired t-test p", "verdict" };
    t2.cols = 7;
    for (int k = 0; k < 7; k++) snprintf(t2.cell[0][k], 96, "%s", hdr2[k]);
    t2.rows = 1;
    for (int k = 2; k < nk; k++) {
        double gr[MAXSEEDS], gn[MAXSEEDS], dr[MAXSEEDS];
        int n = 0;
        char knobs[96] = "";
        for (int s = 0; s < rp.ns; s++) {
            const mrow *t = find(&rp.s[s], "teacher"), *st = find(&rp.s[s], "student");
            const mrow *m = !strncmp(keys[k], "method:", 7) ? selected(&rp.s[s], keys[k] + 7) : find(&rp.s[s], keys[k]);
            if (!m) continue;
            gr[n] = (m->recall - st->recall) / (t->recall - st->recall);
            gn[n] = (m->ndcg - st->ndcg) / (t->ndcg - st->ndcg);
            dr[n] = m->recall - st->recall;
            n++;
            const char *u = strchr(m->name, '_');
            size_t used = strlen(knobs);
            if (used < 80) snprintf(knobs + used, sizeof knobs - used, "%s%s", used ? " " : "", u ? u + 1 : "—");
        }
        char (*row)[96] = t2.cell[t2.rows++];
        double p = kd_ttest_p(dr, (uint32_t)n), md = kd_mean(dr, (uint32_t)n);
        snprintf(row[0], 96, "%s", labels[k]);
        snprintf(row[1], 96, "%s", knobs);
        snprintf(row[2], 96, "%.0f%% (%.0f%% … %.0f%%)", 100 * kd_mean(gr, (uint32_t)n),
                 100 * (kd_mean(gr, (uint32_t)n) - kd_ci95(gr, (uint32_t)n)), 100 * (kd_mean(gr, (uint32_t)n) + kd_ci95(gr, (uint32_t)n)));
        snprintf(row[3], 96, "%.0f%% (%.0f%% … %.0f%%)", 100 * kd_mean(gn, (uint32_t)n),
                 100 * (kd_mean(gn, (uint32_t)n) - kd_ci95(gn, (uint32_t)n)), 100 * (kd_mean(gn, (uint32_t)n) + kd_ci95(gn, (uint32_t)n)));
        snprintf(row[4], 96, "%+.4f", md);
        snprintf(row[5], 96, "%.3g", p);
        snprintf(row[6], 96, "%s", !(p < 0.05) ? "no significant difference" : md > 0 ? "positive transfer" : "negative transfer");
    }

    /* ---- per-seed detail ---- */
    t3.cols = 1 + (nk < 9 ? nk : 9);
    snprintf(t3.cell[0][0], 96, "seed");
    for (int k = 0; k + 1 < t3.cols; k++) snprintf(t3.cell[0][k + 1], 96, "%s", k < 2 ? keys[k] : keys[k] + (strncmp(keys[k], "method:", 7) ? 0 : 7));
    t3.rows = 1;
    for (int s = 0; s < rp.ns && t3.rows < 40; s++) {
        char (*row)[96] = t3.cell[t3.rows++];
        snprintf(row[0], 96, "%ld", rp.s[s].id);
        for (int k = 0; k + 1 < t3.cols; k++) {
            const mrow *m = !strncmp(keys[k], "method:", 7) ? selected(&rp.s[s], keys[k] + 7) : find(&rp.s[s], keys[k]);
            snprintf(row[k + 1], 96, m ? "%.4f" : "—", m ? m->recall : 0.0);
        }
    }

    /* ---- charts: legends use short names ---- */
    const char *shortlab[3 + MAXMETHODS];
    for (int k = 0; k < nk; k++)
        shortlab[k] = !strcmp(keys[k], "study") ? "study (margin-MSE)" : !strncmp(keys[k], "method:", 7) ? keys[k] + 7 : keys[k];
    kd_buf svg[4] = { { 0 } };
    const char *svgname[4] = { "recall-vs-params.svg", "valid-curves.svg", "loss-curves.svg", "latency.svg" };
    {
        double px[3 + MAXMETHODS], py[3 + MAXMETHODS];
        kd_series ser[3 + MAXMETHODS];
        for (int k = 0; k < nk; k++) {
            double x[MAXSEEDS];
            int n = values(&rp, keys[k], f_recall, x);
            const mrow *m0 = !strncmp(keys[k], "method:", 7) ? selected(&rp.s[0], keys[k] + 7) : find(&rp.s[0], keys[k]);
            px[k] = m0 ? m0->params : NAN;
            py[k] = kd_mean(x, (uint32_t)n);
            ser[k] = (kd_series){ shortlab[k], &px[k], &py[k], 1, 1 };
        }
        kd_svg_chart(&svg[0], "Recall@10 (mean over seeds) against parameters", "parameters", "Recall@10", ser, nk, 0);
    }
    for (int which = 0; which < 2; which++) {
        kd_series ser[3 + MAXMETHODS];
        double *xs[3 + MAXMETHODS] = { 0 }, *ys[3 + MAXMETHODS] = { 0 };
        int ns = 0;
        for (int k = 0; k < nk; k++) {
            const mrow *m0 = !strncmp(keys[k], "method:", 7) ? selected(&rp.s[0], keys[k] + 7) : find(&rp.s[0], keys[k]);
            uint32_t n;
            if (!m0 || read_record(rp.s[0].dir, m0->name, which ? "train.loss" : "train.valid", &xs[ns], &ys[ns], &n))
                continue;
            ser[ns] = (kd_series){ shortlab[k], xs[ns], ys[ns], n, 0 };
            ns++;
        }
        char t[128];
        snprintf(t, sizeof t, which ? "Training loss per epoch (seed %ld)" : "Validation Recall@10 during training (seed %ld)", rp.s[0].id);
        kd_svg_chart(&svg[1 + which], t, "epoch", which ? "loss (BPR + distillation term)" : "valid Recall@10", ser, ns, 0);
        for (int k = 0; k < ns; k++) { free(xs[k]); free(ys[k]); }
    }
    {
        /* the distribution of single-user latency as its quantiles (mean over seeds) */
        double v[4 * (3 + MAXMETHODS)];
        const char *lab[3 + MAXMETHODS], *vn[4] = { "p50", "mean", "p90", "p99" };
        field fq[4] = { f_p50, f_lat, f_p90, f_p99 };
        for (int k = 0; k < nk; k++) {
            for (int q = 0; q < 4; q++) {
                double x[MAXSEEDS];
                int n = values(&rp, keys[k], fq[q], x);
                v[4 * k + q] = kd_mean(x, (uint32_t)n);
            }
            lab[k] = shortlab[k];
        }
        kd_svg_bars(&svg[3], "Single-user ranking latency: p50, mean, p90, p99 (mean over seeds)", "µs", lab, nk, v, 4, vn);
    }

    /* ---- provenance ---- */
    kd_buf prov = { 0 };
    for (int s = 0; s < rp.ns; s++) {
        const char *files[3] = { "data", "teacher", "student" };
        kd_buf_printf(&prov, "- seed %ld:", rp.s[s].id);
        for (int f = 0; f < 3; f++) {
            char p[4200];
            uint32_t kind;
            uint64_t id;
            kd_err pe;
            snprintf(p, sizeof p, "%s/%s.kd", rp.s[s].dir, files[f]);
            if (kd_art_peek(p, &kind, &id, &pe) == 0) {
                char hex[17];
                kd_id_hex(id, hex);
                kd_buf_printf(&prov, " %s `%s`", files[f], hex);
            }
        }
        kd_buf_printf(&prov, "\n");
    }
    kd_buf params = { 0 };
    for (int f = 0; f < 2; f++) {
        char p[4200];
        kd_art *a;
        kd_err pe;
        snprintf(p, sizeof p, "%s/%s.kd", rp.s[0].dir, f ? "teacher" : "data");
        if (kd_art_load(p, 0, &a, &pe)) continue;
        const kd_section *ps = kd_art_find(a, "provenance");
        if (ps) {
            kd_buf_printf(&params, "%s (seed %ld):\n\n```\n", f ? "Teacher" : "Dataset", rp.s[0].id);
            kd_buf_append(&params, ps->data, (size_t)ps->bytes);
            kd_buf_printf(&params, "```\n\n");
        }
        kd_art_free(a);
    }
    int hits = 0, runs = 0;
    if (stages) {
        kd_buf sl = { 0 };
        kd_err se;
        if (kd_read_all(stages, &sl, &se) == 0 && kd_buf_append(&sl, "", 1) == 0)
            for (char *p = (char *)sl.p; (p = strstr(p, ": ")); p += 2) {
                if (!strncmp(p + 2, "cached", 6)) hits++;
                else if (!strncmp(p + 2, "ran in", 6)) runs++;
            }
        kd_buf_free(&sl);
    }

    /* ---- assemble ---- */
    kd_buf md = { 0 }, h = { 0 }, txt = { 0 };
    char seeds[256] = "";
    for (int s = 0; s < rp.ns; s++) {
        size_t used = strlen(seeds);
        snprintf(seeds + used, sizeof seeds - used, "%s%ld", s ? " " : "", rp.s[s].id);
    }
    const char *notes =
        "Every figure is a mean over the seeds; ± is the standard deviation over seeds, the confidence\n"
        "intervals are Student-t 95% intervals over seeds, and the p-values come from a paired t-test of\n"
        "(distilled − plain student) Recall@10 across seeds (one pair per seed, both on the same data).\n"
        "Verdict: positive (negative) transfer when that difference is significant at 5% and above (below)\n"
        "zero, otherwise no significant difference.  Each method's knob (α or λ) is chosen per seed on the\n"
        "validation split; test is only read for the numbers above.\n\n"
        "The study's margin-MSE loss (1−α)·BPR + α·T²·MSE(Δs/T, Δt/T) does not depend on the temperature:\n"
        "T²·(Δs/T − Δt/T)² = (Δs − Δt)².  kdrec computes it literally and its tests show that changing T\n"
        "changes no bit of the model (for T a power of two) or at most rounding (otherwise).\n\n";
    kd_buf_printf(&md, "# %s\n\nSeeds: %s (n = %d).  Study numbers are the PyTorch notebook's (latency in µs).\n\n", title, seeds, rp.ns);
    kd_buf_printf(&md, "## The study's table, reproduced\n\n");
    emit_md(&md, &t1);
    kd_buf_printf(&md, "## What distillation buys: share of the teacher–student gap closed\n\n");
    emit_md(&md, &t2);
    kd_buf_append(&md, notes, strlen(notes));
    kd_buf_printf(&md, "## Recall@10 per seed\n\n");
    emit_md(&md, &t3);
    kd_buf_printf(&md, "## Charts\n\n");
    for (int k = 0; k < 4; k++) kd_buf_printf(&md, "![%s](%s)\n\n", svgname[k], svgname[k]);
    kd_buf_printf(&md, "## Provenance\n\nContent IDs:\n\n");
    kd_buf_append(&md, prov.p, prov.len);
    kd_buf_printf(&md, "\nTool: kdrec %s.", KD_VERSION);
    if (stages) kd_buf_printf(&md, "  Stages in the run that built this report: %d computed, %d from the cache.", runs, hits);
    kd_buf_printf(&md, "\n\n");
    kd_buf_append(&md, params.p, params.len);

    kd_buf_printf(&h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/><title>");
    kd_xml_escape(&h, title);
    kd_buf_printf(&h, "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                      "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}"
                      "td:first-child,th:first-child{text-align:left}td+td{white-space:nowrap}th{background:#eee}pre{background:#f6f6f6;padding:8px}"
                      "svg{margin:8px 0;border:1px solid #ddd}</style></head><body>\n<h1>");
    kd_xml_escape(&h, title);
    kd_buf_printf(&h, "</h1>\n<p>Seeds: %s (n = %d). Study numbers are the PyTorch notebook's (latency in µs).</p>\n", seeds, rp.ns);
    kd_buf_printf(&h, "<h2>The study's table, reproduced</h2>\n");
    emit_html(&h, &t1);
    kd_buf_printf(&h, "<h2>What distillation buys: share of the teacher–student gap closed</h2>\n");
    emit_html(&h, &t2);
    kd_buf_printf(&h, "<p>");
    {
        kd_buf n2 = { 0 };
        kd_buf_append(&n2, notes, strlen(notes));
        kd_buf_append(&n2, "", 1);
        kd_xml_escape(&h, (const char *)n2.p);
        kd_buf_free(&n2);
    }
    kd_buf_printf(&h, "</p>\n<h2>Recall@10 per seed</h2>\n");
    emit_html(&h, &t3);
    kd_buf_printf(&h, "<h2>Charts</h2>\n");
    for (int k = 0; k < 4; k++) kd_buf_append(&h, svg[k].p, svg[k].len);
    kd_buf_printf(&h, "<h2>Provenance</h2>\n<pre>");
    kd_buf_append(&prov, "", 1);
    for (char *q = (char *)prov.p; *q; q++)
        if (*q == '`') *q = ' ';
    kd_xml_escape(&h, (const char *)prov.p);
    kd_buf_printf(&h, "</pre>\n<p>Tool: kdrec %s.", KD_VERSION);
    if (stages) kd_buf_printf(&h, " Stages in the run that built this report: %d computed, %d from the cache.", runs, hits);
    kd_buf_printf(&h, "</p>\n<pre>");
    kd_buf_append(&params, "", 1);
    kd_xml_escape(&h, (const char *)params.p);
    kd_buf_printf(&h, "</pre>\n</body></html>\n");

    emit_text(&txt, &t1);
    kd_buf_printf(&txt, "\n");
    emit_text(&txt, &t2);

    /* the charts beside the Markdown */
    char base[4096];
    snprintf(base, sizeof base, "%s", out);
    char *slash = strrchr(base, '/');
    if (slash) slash[1] = 0; else base[0] = 0;
    int bad = 0;
    for (int k = 0; k < 4 && !bad; k++) {
        char p[4200];
        snprintf(p, sizeof p, "%s%s", base, svgname[k]);
        bad = write_file(p, &svg[k], &e);
    }
    if (!bad) bad = write_file(out, &md, &e);
    if (!bad && html) bad = write_file(html, &h, &e);
    if (!bad) { fwrite(txt.p, 1, txt.len, stdout); bad = fflush(stdout) != 0; }
    for (int k = 0; k < 4; k++) kd_buf_free(&svg[k]);
    kd_buf_free(&md); kd_buf_free(&h); kd_buf_free(&txt); kd_buf_free(&prov); kd_buf_free(&params);
    free(rp.s);
    return bad ? kd_err_report(prog, &e) : 0;
}
