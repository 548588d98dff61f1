/* kd_report: a pipeline's results as a report: the directory walk, what each model is,
 * selection of each method's knob on the validation split, statistics over seeds, the
 * tables, the charts and the study's reference numbers.  kd-report is a thin tool over it.
 *
 * Layout.  DIR holds one directory per seed, s<N>/ (N digits), each with eval-test.tsv,
 * eval-valid.tsv (not read by the sweep) and the model artifacts (*.kd) they evaluated.
 * File names of models are never read: a row of an evaluation is tied to its model file
 * by content ID (kd-eval's id column against each *.kd's header), and what a model is
 * comes from kd-eval's columns and the model's provenance.
 *
 * Which model is which (per seed directory):
 *   - role, method, knob, knob_value, seed, teacher: kd-eval's columns, read from the
 *     models' provenance.  kd-eval calls a model "teacher" when another model of the same
 *     evaluation names it as input.teacher (or it is the --reference): being distilled
 *     from is what makes a BPR model a teacher, whatever it is called.  Every teacher row
 *     of a directory must be the same model.
 *   - the plain student: chosen per seed on validation among the plain-student runs (role
 *     student, method bpr: an lr x reg grid), exactly as a method's knob is: the best
 *     validation Recall@10, the first in eval-test.tsv's order on a tie (a run without a
 *     validation figure is never preferred); the sweep has one per student dim.
 *   - quantised models (role quantised): each is shown beside the model it quantises (its
 *     source column), so "the teacher's int8" is the quantisation of that seed's teacher
 *     and "the plain student's int8" that of the seed's chosen plain student.
 *   - the study's own margin-MSE run versus the margin-MSE knob grid: the grid is "the
 *     plain student's training plus a distillation term", so a grid point is trained with
 *     exactly the plain student's settings; the study's run uses its own (STUDY_FLAGS:
 *     lr 0.01).  So the study's run is the margin-mse model whose provenance disagrees
 *     with the plain student's on a training setting: any key of the student's provenance
 *     other than tool, version, role, seed, params, input.* and result.*, present in both
 *     with different values.  This holds whatever alpha and temperature the study uses
 *     (ALPHA may equal a grid value) and however many grid values there are; it fails
 *     only when the study is trained exactly like a grid point, and then it is one.
 *     With an lr x reg grid of plain students, the study's run is the margin-mse model
 *     trained unlike every plain-student run (so no grid point may use the study's lr
 *     and the default reg: pipelines/study.mk's grid does not).
 *     Two such models with different content IDs are an error.
 *   - each method's candidates: the distilled models of that method other than the
 *     study's run; the one chosen in a seed has the best validation Recall@10 (the first
 *     in eval-test.tsv's order on a tie); test is never used to choose.
 *   - the seed: the seed column, which every model of a directory must share; seeds are
 *     ordered by it.
 *   - sweep: the α x T grid is the margin-mse models with an alpha knob, T from their
 *     provenance; the λ curves are the lambda-knob methods; both at the sweep's student
 *     dim, the dim holding the most distilled models in the first seed.  The frontier's
 *     dims are the plain students' dims; its methods are those distilled (with a lambda
 *     knob) at every one of them, each at the λ it has most often (SIZE_LAMBDA is used at
 *     every dim, a λ of the curves only at one).
 *
 * Everything grows with the input: no limit on seeds, models, methods or grid sizes.
 */
#ifndef KD_REPORT_H
#define KD_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "kd_err.h"
#include "kd_io.h"

enum { KD_ROLE_OTHER, KD_ROLE_TEACHER, KD_ROLE_STUDENT, KD_ROLE_DISTILLED, KD_ROLE_QUANT };

/* One row of a seed's eval-test.tsv and what it says about its model. */
typedef struct kd_rep_model {
    char    *name;        /* the evaluation's model column: a label for messages only */
    char    *method;      /* "bpr", "margin-mse", "rd", ... ("-" when unknown) */
    char    *knob;        /* "alpha", "lambda" or "-" */
    char    *knob_text;   /* the knob's value as kd-eval wrote it ("0.1"), "-" without */
    char    *path;        /* the model's artifact in the seed directory */
    char    *quant;       /* "int8-sym", ... for a quantised model, "-" for a float one */
    char    *prov;        /* its provenance text (NUL-terminated; loaded where needed, else NULL) */
    double   knob_value;  /* NaN without a knob */
    double   temperature; /* margin-mse's T from provenance (NaN otherwise) */
    uint64_t id, teacher; /* content IDs (teacher 0 when none) */
    uint64_t source;      /* a quantised model's source's content ID (0 for a float one) */
    uint64_t settings;    /* kd-eval's settings column (kd_prov_settings_id); 0 when absent */
    int      role;        /* KD_ROLE_* */
    int      study;       /* 1 for the study's own margin-MSE run */
    double   dim, recall, ndcg, lat_mean, lat_p50, lat_p90, lat_p99, params;
    double   bytes;       /* serving bytes (kd-eval's bytes column) */
    double   valid;       /* validation Recall@10 (NaN when absent or in a sweep) */
} kd_rep_model;

typedef struct kd_rep_seed {
    uint64_t      seed;      /* from provenance */
    char         *dir;       /* DIR/s<N> */
    long          dirnum;    /* N (orders seeds of equal seed number) */
    char         *data;      /* the teacher's dataset artifact in dir, or NULL */
    kd_rep_model *m;         /* n rows in eval-test.tsv's order */
    size_t        n, cap;
    long          teacher, student, study; /* row indices, -1 when absent; student: the one chosen on valid */
    size_t        nplain;    /* the plain-student runs it was chosen among */
} kd_rep_seed;

typedef struct kd_report {
    kd_rep_seed *s;          /* ns seeds, ordered by seed */
    size_t       ns, cap;
    char       **methods;    /* the study's methods with a knob grid, in report order */
    size_t       nmethods;
    int          sweep;
} kd_report;

/* Reads DIR (see above).  sweep selects the sweep's layout (eval-test.tsv only).  Errors:
 * no seed directory, a table without the needed columns (kd-eval older than the role
 * columns), a row whose model file is missing, no teacher or no student (study), two
 * teachers, two students, two study runs, mixed seeds. */
int  kd_report_load(kd_report *r, const char *dir, int sweep, kd_err *e);
void kd_report_free(kd_report *r);

/* Reads one seed directory into s (s->dir set by the caller). */
int  kd_report_load_seed(kd_rep_seed *s, int sweep, kd_err *e);
void kd_report_seed_free(kd_rep_seed *s);

/* The study's run: the margin-mse row whose training settings differ from the plain
 * student's (see above); sets study flags and s->study.  Needs the rows' prov. */
int  kd_report_find_study(kd_rep_seed *s, kd_err *e);
/* 1 when model_prov agrees with student_prov on every training setting both have. */
int  kd_report_trained_like(const char *student_prov, const char *model_prov);

/* The plain student chosen on validation in s (s->student), or -1 without one. */
long kd_report_choose_plain(const kd_rep_seed *s);
/* The row of `method` chosen on validation in seed s, or NULL. */
const kd_rep_model *kd_report_selected(const kd_rep_seed *s, const char *method);

/* The report's documents, built in memory; the tool writes them. */
typedef struct kd_report_doc {
    kd_buf      md, html, txt;  /* report.md, report.html, the main tables for stdout */
    kd_buf      svg[4];         /* the charts, written beside report.md */
    const char *svg_name[4];
    int         nsvg;
} kd_report_doc;

typedef struct kd_report_opts {
    const char *title;   /* the report's title */
    const char *stages;  /* a stage log to summarise, or NULL */
} kd_report_opts;

/* The study's report (or the sweep's when r->sweep). */
int  kd_report_build(const kd_report *r, const kd_report_opts *o, kd_report_doc *d, kd_err *e);
void kd_report_doc_free(kd_report_doc *d);

/* The shortest "%.*g" text of x that reads back as x ("0.1", not "0.10000000000000001"). */
void kd_report_num(double x, char out[32]);

#endif
