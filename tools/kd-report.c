/* kd-report: turn a pipeline's evaluations and models into report.md, a self-contained
 * report.html (inline SVG) and the main tables on stdout.
 *   kd-report --title "kdrec study" --html data/seed/report.html -o data/seed/report.md data/seed
 *
 * DIR holds one directory per seed, s<N>/, with eval-test.tsv, eval-valid.tsv and the models
 * they evaluated; what each model is (teacher, plain student, the study's margin-MSE run, a
 * method at a knob value) comes from kd-eval's columns and the models' provenance, never
 * from file names (lib/kd_report.h says how).  Each method's knob and the plain student's
 * lr x reg are chosen per seed on the validation split; test is never used to choose, and
 * every number the report shows is measured on test. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "kd_cli.h"    /* kd_cli_version */
#include "kd_io.h"     /* kd_write_buf: atomic files and stdout */
#include "kd_report.h" /* load, build */

static const char *prog = "kd-report";

struct opts {
    const char *dir, *out, *html, *stages, *title;
    int         sweep;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [options] DIR -o REPORT.md\n"
               "Report a pipeline's results: DIR/s<N>/ per seed with eval-test.tsv, eval-valid.tsv and\n"
               "the models they evaluated (kd-eval's role, method and knob columns and the models'\n"
               "provenance say which is which).  The table is printed on stdout.\n"
               "  -o FILE        the Markdown report (charts are written beside it as .svg)\n"
               "  --html FILE    a self-contained HTML report (inline SVG, no scripts)\n"
               "  --stages FILE  a stage log (lines 'tool label: cached|ran ...') to summarise\n"
               "  --title TEXT   [kdrec study]\n"
               "  --sweep        the sweep's report (α x T heatmap, λ curves, accuracy against size)\n"
               "  -h, --help, --version\n", prog);
}

/* Returns -1 to go on, else the exit status (0 after --help/--version, 2 on misuse). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        { "html", 1, 0, 'H' }, { "stages", 1, 0, 'S' }, { "title", 1, 0, 'T' }, { "sweep", 0, 0, 'W' },
        { "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { 0, 0, 0, 0 } };
    int c;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'H': o->html = optarg; break;
        case 'S': o->stages = optarg; break;
        case 'T': o->title = optarg; break;
        case 'W': o->sweep = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': kd_cli_version(prog); return 0;
        default: usage(stderr); return KD_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc || !o->out) {
        fprintf(stderr, "%s: expected DIR and -o REPORT.md\n", prog);
        return KD_EXIT_USAGE;
    }
    o->dir = argv[optind];
    return -1;
}

/* the charts beside the Markdown, then the Markdown, the HTML and the tables on stdout;
 * each file is replaced atomically (kd_write_buf) */
static int write_doc(const struct opts *o, const kd_report_doc *d, kd_err *e)
{
    const char *slash = strrchr(o->out, '/');
    size_t base = slash ? (size_t)(slash - o->out) + 1 : 0;
    kd_buf p = { 0 };
    int bad = 0;
    for (int k = 0; k < d->nsvg && !bad; k++) {
        p.len = 0;
        kd_buf_append(&p, o->out, base);
        kd_buf_printf(&p, "%s%c", d->svg_name[k], 0);
        bad = kd_buf_error(&p) ? kd_fail(e, "out of memory") : kd_write_buf((const char *)p.p, &d->svg[k], KD_OUT_TEXT, e);
    }
    kd_buf_free(&p);
    if (!bad) bad = kd_write_buf(o->out, &d->md, KD_OUT_TEXT, e);
    if (!bad && o->html) bad = kd_write_buf(o->html, &d->html, KD_OUT_TEXT, e);
    if (!bad) bad = kd_write_buf("-", &d->txt, KD_OUT_TEXT, e);
    return bad;
}

static int run(const struct opts *o)
{
    kd_err e = { 0 };
    kd_report r;
    kd_report_doc d = { 0 };
    kd_report_opts ro = { o->title, o->stages };
    int bad = kd_report_load(&r, o->dir, o->sweep, &e) || kd_report_build(&r, &ro, &d, &e) || write_doc(o, &d, &e);
    kd_report_doc_free(&d);
    kd_report_free(&r);
    return bad ? kd_err_report(prog, &e) : 0;
}

int main(int argc, char **argv)
{
    struct opts o = { .title = "kdrec study" };
    int rc = parse_args(argc, argv, &o);
    return rc < 0 ? run(&o) : rc;
}
