/* kd_table: rows of owned cells, three emitters. */
#include "kd_table.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_svg.h" /* kd_xml_escape */

void kd_table_init(kd_table *t, size_t cols)
{
    memset(t, 0, sizeof *t);
    t->cols = cols;
}

void kd_table_free(kd_table *t)
{
    for (size_t k = 0; t->cell && k < t->rows * t->cols; k++) free(t->cell[k]);
    free(t->cell);
    memset(t, 0, sizeof *t);
}

size_t kd_table_add(kd_table *t)
{
    if (t->err) return t->rows;
    if (t->rows == t->cap) {
        uint64_t cap = t->cap ? 2 * (uint64_t)t->cap : 8, bytes;
        char **p = NULL;
        if (!kd_mul(cap, t->cols ? t->cols : 1, &bytes) && !kd_mul(bytes, sizeof *p, &bytes) && bytes <= SIZE_MAX)
            p = realloc(t->cell, (size_t)bytes);
        if (!p) { t->err = 1; return t->rows; }
        t->cell = p;
        t->cap = (size_t)cap;
    }
    memset(t->cell + t->rows * t->cols, 0, t->cols * sizeof *t->cell);
    return t->rows++;
}

static void put(kd_table *t, size_t r, size_t c, char *s)
{
    if (t->err || r >= t->rows || c >= t->cols || !s) {
        free(s);
        t->err = 1;
        return;
    }
    free(t->cell[r * t->cols + c]);
    t->cell[r * t->cols + c] = s;
}

void kd_table_set(kd_table *t, size_t r, size_t c, const char *s)
{
    put(t, r, c, strdup(s));
}

void kd_table_setf(kd_table *t, size_t r, size_t c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = kd_str_vprintf(fmt, ap);
    va_end(ap);
    put(t, r, c, p);
}

void kd_table_set_buf(kd_table *t, size_t r, size_t c, const kd_buf *b)
{
    if (kd_buf_error(b)) { t->err = 1; return; }
    char *p = malloc(b->len + 1);
    if (p) { if (b->len) memcpy(p, b->p, b->len); p[b->len] = 0; }
    put(t, r, c, p);
}

const char *kd_table_get(const kd_table *t, size_t r, size_t c)
{
    const char *s = r < t->rows && c < t->cols ? t->cell[r * t->cols + c] : NULL;
    return s ? s : "";
}

/* A table that lost a cell marks the buffer it is emitted into before anything is
 * appended (so every append is then a no-op), and the buffer's one check where it is
 * used (kd_write_buf) sees it.  Returns 1 when the table can be emitted. */
static int start(const kd_table *t, kd_buf *b)
{
    if (t->err) b->err = 1;
    return !kd_buf_error(b);
}

int kd_table_md(const kd_table *t, kd_buf *b)
{
    if (!start(t, b)) return -1;
    for (size_t r = 0; r < t->rows; r++) {
        kd_buf_printf(b, "|");
        for (size_t c = 0; c < t->cols; c++) kd_buf_printf(b, " %s |", kd_table_get(t, r, c));
        kd_buf_printf(b, "\n");
        if (r == 0) {
            kd_buf_printf(b, "|");
            for (size_t c = 0; c < t->cols; c++) kd_buf_printf(b, "%s|", c ? "---:" : "---");
            kd_buf_printf(b, "\n");
        }
    }
    kd_buf_printf(b, "\n");
    return kd_buf_error(b) ? -1 : 0;
}

int kd_table_html(const kd_table *t, kd_buf *b)
{
    if (!start(t, b)) return -1;
    kd_buf_printf(b, "<table>\n");
    for (size_t r = 0; r < t->rows; r++) {
        kd_buf_printf(b, "<tr>");
        for (size_t c = 0; c < t->cols; c++) {
            kd_buf_printf(b, r ? "<td>" : "<th>");
            kd_xml_escape(b, kd_table_get(t, r, c));
            kd_buf_printf(b, r ? "</td>" : "</th>");
        }
        kd_buf_printf(b, "</tr>\n");
    }
    kd_buf_printf(b, "</table>\n");
    return kd_buf_error(b) ? -1 : 0;
}

/* characters, not bytes: a UTF-8 continuation byte is 10xxxxxx */
static size_t width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xc0) != 0x80;
    return n;
}

int kd_table_text(const kd_table *t, kd_buf *b)
{
    if (!start(t, b)) return -1;
    size_t *w = calloc(t->cols ? t->cols : 1, sizeof *w);
    if (!w) {
        b->err = 1; /* the padding is part of the text */
        return -1;
    }
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            size_t len = width(kd_table_get(t, r, c));
            w[c] = len > w[c] ? len : w[c];
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = kd_table_get(t, r, c);
            kd_buf_printf(b, "%s%s", c ? "  " : "", s);
            for (size_t pad = width(s); pad < w[c]; pad++) kd_buf_append(b, " ", 1);
        }
        kd_buf_printf(b, "\n");
    }
    free(w);
    return kd_buf_error(b) ? -1 : 0;
}
