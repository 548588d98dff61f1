/* kd_tsv: read the tab-separated tables kdrec tools write (a header line, then rows). */
#ifndef KD_TSV_H
#define KD_TSV_H

#include <stdint.h>

#include "kd_err.h"

typedef struct kd_tsv {
    char   *text;       /* the file, with tabs and newlines replaced by NULs */
    char  **cells;      /* (rows + 1) x cols, row 0 is the header */
    uint32_t rows, cols;
} kd_tsv;

/* Reads path; every row must have as many fields as the header. */
int  kd_tsv_read(kd_tsv *t, const char *path, kd_err *e);
void kd_tsv_free(kd_tsv *t);
/* Column index of a header name, or -1. */
int  kd_tsv_col(const kd_tsv *t, const char *name);
/* Cell of data row r (0-based) and column c. */
static inline const char *kd_tsv_cell(const kd_tsv *t, uint32_t r, int c) { return t->cells[(size_t)(r + 1) * t->cols + (size_t)c]; }
/* The cell as a number (NaN if the column is absent or the text is not a number). */
double kd_tsv_num(const kd_tsv *t, uint32_t r, const char *col);

#endif
