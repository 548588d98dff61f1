/* kd_tsv: split a small TSV file in place. */
#include "kd_tsv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_io.h"

int kd_tsv_read(kd_tsv *t, const char *path, kd_err *e)
{
    kd_buf b = { 0 };
    memset(t, 0, sizeof *t);
    if (kd_read_all(path, &b, e))
        return -1;
    if (kd_buf_append(&b, "", 1)) {
        kd_buf_free(&b);
        return kd_fail(e, "%s: out of memory", path);
    }
    t->text = (char *)b.p;
    uint32_t lines = 0, fields = 1;
    for (char *p = t->text; *p; p++) {
        if (*p == '\n' && ++lines == UINT32_MAX) {
            kd_tsv_free(t);
            return kd_fail(e, "%s: too many lines", path);
        }
        if (*p == '\t' && lines == 0 && ++fields == UINT32_MAX) {
            kd_tsv_free(t);
            return kd_fail(e, "%s: too many fields", path);
        }
    }
    if (lines == 0) {
        kd_tsv_free(t);
        return kd_fail(e, "%s: empty table", path);
    }
    t->cols = fields;
    t->cells = kd_calloc_array((uint64_t)lines * fields, sizeof *t->cells); /* both < 2^32: no overflow */
    if (!t->cells) {
        kd_tsv_free(t);
        return kd_fail(e, "%s: out of memory", path);
    }
    char *p = t->text;
    for (uint32_t r = 0; r < lines; r++) {
        for (uint32_t c = 0; c < fields; c++) {
            t->cells[(size_t)r * fields + c] = p;
            size_t n = strcspn(p, "\t\n");
            char end = p[n];
            if ((c + 1 < fields && end != '\t') || (c + 1 == fields && end != '\n')) {
                kd_tsv_free(t);
                return kd_fail(e, "%s:%u: expected %u fields", path, r + 1, fields);
            }
            p[n] = 0;
            p += n + 1;
        }
    }
    t->rows = lines - 1;
    return 0;
}

void kd_tsv_free(kd_tsv *t)
{
    free(t->text);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

int kd_tsv_col(const kd_tsv *t, const char *name)
{
    for (uint32_t c = 0; c < t->cols; c++)
        if (!strcmp(t->cells[c], name)) return (int)c;
    return -1;
}

double kd_tsv_num(const kd_tsv *t, uint32_t r, const char *col)
{
    int c = kd_tsv_col(t, col);
    if (c < 0) return NAN;
    char *end;
    const char *s = kd_tsv_cell(t, r, c);
    double v = strtod(s, &end);
    return end == s || *end ? NAN : v;
}
