/* kd_table: a small table of text cells emitted as Markdown, aligned plain text or HTML.
 *
 * A table is a grid of rows x cols owned strings; rows grow as they are added (no fixed
 * limit on rows, columns or cell length).  Row 0 is the header.  Allocation failures do
 * not stop the caller: they set a sticky error flag (like ferror, and kd_buf's), and an
 * emitter passes it on to the buffer it writes into, so a table is built with plain calls
 * and checked once, where that buffer is used (kd_write_buf).
 *
 *   kd_table t;
 *   kd_table_init(&t, 3);
 *   kd_table_add(&t); kd_table_set(&t, 0, 0, "model"); ...
 *   size_t r = kd_table_add(&t); kd_table_setf(&t, r, 1, "%.4f", x);
 *   kd_table_md(&t, &buf);                  // buf's sticky error is set if t's is
 *   if (kd_write_buf(path, &buf, KD_OUT_TEXT, &e)) ...
 *   kd_table_free(&t);
 */
#ifndef KD_TABLE_H
#define KD_TABLE_H

#include <stddef.h>

#include "kd_io.h"

typedef struct kd_table {
    char  **cell;       /* rows x cols, row-major; NULL is an empty cell */
    size_t  rows, cols; /* cols is fixed at init */
    size_t  cap;        /* rows allocated */
    int     err;        /* sticky: an allocation failed */
} kd_table;

void   kd_table_init(kd_table *t, size_t cols);
void   kd_table_free(kd_table *t);
/* Appends an empty row and returns its index (on failure sets err and returns the index
 * of a row that setters then ignore). */
size_t kd_table_add(kd_table *t);
/* Sets a cell of an existing row to a copy of s (out-of-range cells set err). */
void   kd_table_set(kd_table *t, size_t r, size_t c, const char *s);
/* Sets a cell to a buffer's bytes (without a NUL); a buffer whose sticky error is set
 * sets the table's instead: a cell is never a part of what was meant. */
void   kd_table_set_buf(kd_table *t, size_t r, size_t c, const kd_buf *b);
void   kd_table_setf(kd_table *t, size_t r, size_t c, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The cell's text ("" for an empty or absent cell). */
const char *kd_table_get(const kd_table *t, size_t r, size_t c);

/* Appends the table to b, or, when t's sticky error is set, sets b's instead (a table
 * that lost a cell is never emitted); each returns 0, or -1 when b's error is set.
 *   md:   "| a | b |" rows, a "|---|---:|" rule after the header, then a blank line
 *   text: columns padded to the widest cell (in UTF-8 characters), two spaces apart
 *   html: <table>, <th> header cells, <td> body cells, text XML-escaped */
int kd_table_md(const kd_table *t, kd_buf *b);
int kd_table_text(const kd_table *t, kd_buf *b);
int kd_table_html(const kd_table *t, kd_buf *b);

#endif
