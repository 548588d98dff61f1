/* kd_svg: a tiny writer of self-contained SVG charts (no scripts, no external files) for
 * kd-report: line charts, scatter plots and horizontal bars with axes and a legend. */
#ifndef KD_SVG_H
#define KD_SVG_H

#include <stdint.h>

#include "kd_io.h"

typedef struct kd_series {
    const char   *name;
    const double *x, *y;   /* n points; x may be NULL (then 1..n) */
    uint32_t      n;
    int           points;  /* 1: markers only (scatter), 0: a line */
} kd_series;

/* A chart of several series with linear axes (log x if logx). */
int kd_svg_chart(kd_buf *b, const char *title, const char *xlabel, const char *ylabel, const kd_series *s,
                 int ns, int logx);

/* Horizontal bars: for each label, values v[k][0..nv) drawn side by side (e.g. mean, p99). */
int kd_svg_bars(kd_buf *b, const char *title, const char *unit, const char *const *labels, int n,
                const double *v, int nv, const char *const *vnames);

/* A heatmap of v[r * nc + c] with row and column labels and the value in each cell. */
int kd_svg_heatmap(kd_buf *b, const char *title, const char *xlabel, const char *ylabel, const char *const *cols,
                   int nc, const char *const *rows, int nr, const double *v);

/* Appends s with <, >, & and quotes escaped. */
int kd_xml_escape(kd_buf *b, const char *s);

#endif
