/* Unit tests of kd_table (the three emitters, growth, the sticky error) and kd_report (the
 * choice on validation, the study's run against the grid, and inputs past the old fixed
 * limits: 70 seeds, 300 models in a seed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kd_artifact.h"
#include "kd_report.h"
#include "kd_table.h"
#include "kd_test.h"

static int buf_is(const kd_buf *b, const char *want)
{
    return b->len == strlen(want) && !memcmp(b->p, want, b->len);
}

static void test_table(void)
{
    kd_table t;
    kd_buf b = { 0 };
    kd_table_init(&t, 3);
    size_t r = kd_table_add(&t);
    kd_table_set(&t, r, 0, "model");
    kd_table_set(&t, r, 1, "α");
    kd_table_set(&t, r, 2, "<b>");
    r = kd_table_add(&t);
    kd_table_set(&t, r, 0, "rrd");
    kd_table_setf(&t, r, 1, "%.2f", 0.5);
    /* cell (1, 2) left empty */
    CHECK(kd_table_md(&t, &b) == 0);
    CHECK(buf_is(&b, "| model | α | <b> |\n|---|---:|---:|\n| rrd | 0.50 |  |\n\n"));
    b.len = 0;
    CHECK(kd_table_text(&t, &b) == 0);
    /* widths in characters: "α" is one, though two bytes */
    CHECK(buf_is(&b, "model  α     <b>\nrrd    0.50     \n"));
    b.len = 0;
    CHECK(kd_table_html(&t, &b) == 0);
    CHECK(buf_is(&b, "<table>\n<tr><th>model</th><th>α</th><th>&lt;b&gt;</th></tr>\n"
                     "<tr><td>rrd</td><td>0.50</td><td></td></tr>\n</table>\n"));
    /* a cell outside the table is an error each emitter passes on to its buffer, whose
     * one check where it is used (kd_write_buf) then sees it; nothing is appended */
    kd_table_set(&t, 5, 0, "x");
    CHECK(t.err);
    int (*const emit[3])(const kd_table *, kd_buf *) = { kd_table_md, kd_table_text, kd_table_html };
    for (int k = 0; k < 3; k++) {
        kd_buf_free(&b);
        CHECK(kd_buf_printf(&b, "before") == 0);
        CHECK(emit[k](&t, &b) == -1);
        CHECK(kd_buf_error(&b) && buf_is(&b, "before"));
    }
    kd_buf_free(&b);
    kd_table_free(&t);
    /* a cell from a buffer: its bytes, or the table's error when the buffer's is set */
    kd_buf cell = { 0 };
    kd_table_init(&t, 2);
    r = kd_table_add(&t);
    kd_table_set_buf(&t, r, 0, &cell);
    kd_buf_printf(&cell, "l0.1 a0.3");
    kd_table_set_buf(&t, r, 1, &cell);
    CHECK(!t.err && !strcmp(kd_table_get(&t, r, 0), "") && !strcmp(kd_table_get(&t, r, 1), "l0.1 a0.3"));
    cell.err = 1;
    kd_table_set_buf(&t, r, 1, &cell);
    CHECK(t.err && !strcmp(kd_table_get(&t, r, 1), "l0.1 a0.3"));
    kd_buf_free(&cell);
    kd_table_free(&t);
    /* growth: far past the old 40 x 10 cells of 96 bytes */
    char long_cell[300];
    memset(long_cell, 'x', sizeof long_cell - 1);
    long_cell[sizeof long_cell - 1] = 0;
    kd_table_init(&t, 20);
    for (int k = 0; k < 1000; k++) {
        r = kd_table_add(&t);
        for (int c = 0; c < 20; c++) kd_table_setf(&t, r, (size_t)c, "%d.%d", k, c);
    }
    kd_table_set(&t, 999, 19, long_cell);
    CHECK(!t.err && t.rows == 1000);
    CHECK(!strcmp(kd_table_get(&t, 998, 19), "998.19"));
    CHECK(!strcmp(kd_table_get(&t, 999, 19), long_cell));
    b.len = 0;
    CHECK(kd_table_md(&t, &b) == 0 && b.len > 1000 * 20 * 4);
    kd_table_free(&t);
    kd_buf_free(&b);
}

static kd_rep_model model(const char *method, int role, double valid)
{
    return (kd_rep_model){ .method = (char *)method, .knob = (char *)"lambda", .role = role, .valid = valid };
}

static void test_selection(void)
{
    kd_rep_model m[6] = { model("bpr", KD_ROLE_TEACHER, 0.9), model("rrd", KD_ROLE_DISTILLED, 0.2),
                          model("rrd", KD_ROLE_DISTILLED, 0.4), model("rrd", KD_ROLE_DISTILLED, 0.4),
                          model("ce", KD_ROLE_DISTILLED, 0.8), model("margin-mse", KD_ROLE_DISTILLED, 0.7) };
    kd_rep_seed s = { .m = m, .n = 6, .teacher = 0, .student = -1, .study = -1 };
    /* the best on valid, the first of a tie; another method or the teacher never */
    CHECK(kd_report_selected(&s, "rrd") == &m[2]);
    CHECK(kd_report_selected(&s, "ce") == &m[4]);
    CHECK(kd_report_selected(&s, "dcd") == NULL);
    CHECK(kd_report_selected(&s, "bpr") == NULL);
    /* the study's run is not a candidate of its method's grid */
    m[5].study = 1;
    CHECK(kd_report_selected(&s, "margin-mse") == NULL);
}

static void test_trained_like(void)
{
    const char *st = "tool=kd-train\nversion=0.1.0\ninput.dataset=aa\nrole=bpr\ndim=32\nlr=0.05\nseed=1\n"
                     "result.epochs_run=9\nparams=10\n";
    const char *grid = "tool=kd-distill\nversion=0.1.0\ninput.dataset=aa\ninput.teacher=bb\nrole=distill-margin-mse\n"
                       "method=margin-mse\nalpha=0.3\ndim=32\nlr=0.05\nseed=1\nresult.epochs_run=12\nparams=10\n";
    const char *study = "tool=kd-distill\nrole=distill-margin-mse\nalpha=0.3\ndim=32\nlr=0.01\nseed=1\n";
    const char *other_seed = "tool=kd-distill\ndim=32\nlr=0.05\nseed=2\ninput.dataset=cc\n";
    CHECK(kd_report_trained_like(st, grid));
    CHECK(!kd_report_trained_like(st, study));   /* lr differs: the study's run, though alpha is a grid value */
    CHECK(kd_report_trained_like(st, other_seed)); /* seeds, inputs and results are not settings */
    CHECK(!kd_report_trained_like(st, "dim=16\n"));
    CHECK(kd_report_trained_like(st, "lr=0.05")); /* no newline at the end */
    CHECK(!kd_report_trained_like(st, "lr=0.050\n"));
}

/* ---- synthetic pipelines on disk: artifacts that hold only a provenance section ---- */

static char root[64];

static void put_model(const char *dir, const char *file, const char *prov, char hex[17])
{
    char p[512];
    kd_err e;
    kd_art *a = kd_art_new(KD_KIND_MODEL);
    snprintf(p, sizeof p, "%s/%s", dir, file);
    CHECK(a && kd_art_add_text(a, "provenance", prov, strlen(prov), &e) == 0 && kd_art_save(a, p, 1, &e) == 0);
    kd_id_hex(a ? a->content_id : 0, hex);
    kd_art_free(a);
}

static const char hdr[] = "model\tdim\tparams\trecall@10\tndcg@10\tlat_mean_us\tlat_p99_us\tid\trole\tmethod\tknob\tknob_value\tseed\tteacher\tbytes\n";

/* a seed directory with a teacher, a student and n rrd models at λ = (k+1)/1000, the
 * one with k = best scoring highest on valid (and lowest on test) */
static void put_seed(const char *dir, int seed, int n, int best)
{
    char prov[512], th[17], sh[17], mh[17], p[512];
    mkdir(dir, 0777);
    snprintf(p, sizeof p, "%s/eval-test.tsv", dir);
    FILE *t = fopen(p, "w");
    snprintf(p, sizeof p, "%s/eval-valid.tsv", dir);
    FILE *v = fopen(p, "w");
    CHECK(t && v);
    if (!t || !v) exit(1);
    fputs(hdr, t);
    fputs("id\trecall@10\n", v);
    snprintf(prov, sizeof prov, "tool=kd-train\nrole=bpr\ndim=8\nlr=0.05\nseed=%d\n", seed);
    put_model(dir, "a.kd", prov, th);
    snprintf(prov, sizeof prov, "tool=kd-train\nrole=bpr\ndim=4\nlr=0.05\nseed=%d\n", seed);
    put_model(dir, "b.kd", prov, sh);
    fprintf(t, "x\t8\t100\t0.3\t0.2\t5\t9\t%s\tteacher\tbpr\t-\t-\t%d\t-\t400\n", th, seed);
    fprintf(t, "y\t4\t50\t0.2\t0.1\t4\t8\t%s\tstudent\tbpr\t-\t-\t%d\t-\t200\n", sh, seed);
    fprintf(v, "%s\t0.3\n%s\t0.2\n", th, sh);
    for (int k = 0; k < n; k++) {
        char file[32], lam[32];
        snprintf(lam, sizeof lam, "%g", (k + 1) / 1000.0);
        snprintf(prov, sizeof prov, "tool=kd-distill\ninput.teacher=%s\nmethod=rrd\nlambda=%s\ndim=4\nlr=0.05\nseed=%d\n",
                 th, lam, seed);
        snprintf(file, sizeof file, "m%d.kd", k);
        put_model(dir, file, prov, mh);
        fprintf(t, "z\t4\t50\t%.4f\t0.15\t4\t8\t%s\tdistilled\trrd\tlambda\t%s\t%d\t%s\t200\n", k == best ? 0.21 : 0.25, mh,
                lam, seed, th);
        fprintf(v, "%s\t%.4f\n", mh, k == best ? 0.9 : 0.5);
    }
    fclose(t);
    fclose(v);
}

static void rm_tree(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "test_report: could not remove %s\n", root);
}

static void test_past_the_limits(void)
{
    snprintf(root, sizeof root, "/tmp/kd-test-report.XXXXXX");
    if (!mkdtemp(root)) { CHECK(0); return; }
    char dir[128];
    /* 70 seeds (the old limit: 64, the rest silently dropped), in an order readdir won't give */
    for (int s = 70; s >= 1; s--) {
        snprintf(dir, sizeof dir, "%s/s%d", root, s);
        put_seed(dir, s, 2, s % 2);
    }
    kd_report r;
    kd_err e = { 0 };
    CHECK(kd_report_load(&r, root, 0, &e) == 0);
    CHECK(r.ns == 70);
    CHECK(r.ns == 70 && r.s[0].seed == 1 && r.s[69].seed == 70);
    CHECK(r.nmethods == 1 && !strcmp(r.methods[0], "rrd"));
    /* seed s chose λ 0.00(1 + s % 2) on valid */
    const kd_rep_model *m = r.ns == 70 ? kd_report_selected(&r.s[68], "rrd") : NULL;
    CHECK(m && !strcmp(m->knob_text, "0.002"));
    kd_report_doc d;
    kd_report_opts o = { "t", NULL };
    CHECK(kd_report_build(&r, &o, &d, &e) == 0);
    kd_buf_printf(&d.md, "%c", 0);
    const char *md = (const char *)d.md.p;
    CHECK(md && strstr(md, "(n = 70)"));
    CHECK(md && strstr(md, "| 70 | 0.3000 | 0.2000 | 0.2100 |"));
    CHECK(md && strstr(md, " l0.002 l0.001 l0.002 ") && strstr(md, " l0.002 l0.001 |"));
    kd_report_doc_free(&d);
    kd_report_free(&r);
    rm_tree();

    /* 300 models in one seed (the old limit: 128); the best on valid is the 250th */
    snprintf(root, sizeof root, "/tmp/kd-test-report.XXXXXX");
    if (!mkdtemp(root)) { CHECK(0); return; }
    snprintf(dir, sizeof dir, "%s/s3", root);
    put_seed(dir, 3, 298, 249);
    CHECK(kd_report_load(&r, root, 0, &e) == 0);
    CHECK(r.ns == 1 && r.s[0].n == 300);
    m = r.ns == 1 ? kd_report_selected(&r.s[0], "rrd") : NULL;
    CHECK(m && !strcmp(m->knob_text, "0.25") && m->recall == 0.21);
    CHECK(kd_report_build(&r, &o, &d, &e) == 0);
    kd_buf_printf(&d.md, "%c", 0);
    CHECK(d.md.p && strstr((const char *)d.md.p, "| distilled: rrd (knob chosen on valid) | l0.25 | 200 |"));
    kd_report_doc_free(&d);
    kd_report_free(&r);

    /* two plain-student runs: the one valid prefers; one without a validation figure is
     * never preferred */
    snprintf(dir, sizeof dir, "%s/s3/eval-test.tsv", root);
    FILE *f = fopen(dir, "a");
    char sh[17];
    snprintf(dir, sizeof dir, "%s/s3", root);
    put_model(dir, "c.kd", "tool=kd-train\nrole=bpr\ndim=4\nlr=0.1\nseed=3\n", sh);
    if (f) { fprintf(f, "w\t4\t50\t0.1\t0.1\t1\t1\t%s\tstudent\tbpr\t-\t-\t3\t-\t200\n", sh); fclose(f); }
    e.code = 0;
    CHECK(kd_report_load(&r, root, 0, &e) == 0);
    CHECK(r.ns == 1 && r.s[0].nplain == 2 && r.s[0].student == 1 && kd_report_choose_plain(&r.s[0]) == 1);
    kd_report_free(&r);
    snprintf(dir, sizeof dir, "%s/s3/eval-valid.tsv", root);
    if ((f = fopen(dir, "a"))) { fprintf(f, "%s\t0.9\n", sh); fclose(f); }
    CHECK(kd_report_load(&r, root, 0, &e) == 0);
    CHECK(r.ns == 1 && r.s[0].student == 300 && !strcmp(r.s[0].m[300].name, "w"));
    /* the study's run is only the margin-mse model trained unlike every plain run: none here */
    CHECK(r.ns == 1 && r.s[0].study == -1);
    kd_report_free(&r);
    rm_tree();
}

int main(void)
{
    test_table();
    test_selection();
    test_trained_like();
    test_past_the_limits();
    return kd_test_done("test_report");
}
