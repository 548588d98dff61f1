/* kd_quant: row-wise int8/int4 quantisation of embedding tables (format in kd_quant.h). */
#include "kd_quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* a dim no model can have: a hostile "quant" section never sizes anything past this */
#define QUANT_MAX_DIM (1u << 20)

int kd_quant_check(uint32_t bits, uint32_t scheme, kd_err *e)
{
    if (bits != 8 && bits != 4)
        return kd_fail_usage(e, "--bits: %u is not 8 or 4", bits);
    if (scheme != KD_QUANT_SYM && scheme != KD_QUANT_ASYM)
        return kd_fail_usage(e, "--scheme: %u is not sym or asym", scheme);
    return 0;
}

const char *kd_quant_scheme_name(uint32_t scheme)
{
    return scheme == KD_QUANT_SYM ? "sym" : scheme == KD_QUANT_ASYM ? "asym" : NULL;
}

int kd_quant_scheme_parse(const char *s)
{
    return !strcmp(s, "sym") ? KD_QUANT_SYM : !strcmp(s, "asym") ? KD_QUANT_ASYM : -1;
}

uint64_t kd_quant_code_bytes(uint32_t dim, uint32_t bits)
{
    return bits == 4 ? ((uint64_t)dim + 1) / 2 : dim;
}

/* d > 0 rounded to the largest float <= d (never up: see the header); at least the
 * smallest subnormal, so a row with a nonzero range never gets scale 0 */
static float round_down(double d)
{
    float f = (float)d;
    if ((double)f > d)
        f = nextafterf(f, 0.0f);
    return f > 0.0f ? f : FLT_TRUE_MIN;
}

static void put_code(uint8_t *codes, uint32_t j, uint32_t bits, unsigned c)
{
    if (bits == 8)
        codes[j] = (uint8_t)c;
    else if (j & 1)
        codes[j / 2] = (uint8_t)(codes[j / 2] | (c << 4));
    else
        codes[j / 2] = (uint8_t)c;
}

static unsigned get_code(const uint8_t *codes, uint32_t j, uint32_t bits)
{
    return bits == 8 ? codes[j] : (codes[j / 2] >> (4 * (j & 1))) & 15u;
}

void kd_quant_row(const float *x, uint32_t dim, uint32_t bits, uint32_t scheme, uint8_t *codes, float *scale,
                  float *offset)
{
    memset(codes, 0, (size_t)kd_quant_code_bytes(dim, bits));
    *scale = 0.0f;
    *offset = 0.0f;
    if (scheme == KD_QUANT_SYM) {
        double Q = (double)((1u << (bits - 1)) - 1), m = 0;
        unsigned half = 1u << (bits - 1);
        for (uint32_t j = 0; j < dim; j++)
            m = fmax(m, fabs((double)x[j]));
        float s = m > 0 ? round_down(m / Q) : 0.0f;
        *scale = s;
        for (uint32_t j = 0; j < dim; j++) {
            double q = s > 0 ? rint((double)x[j] / s) : 0;
            q = q < -Q ? -Q : q > Q ? Q : q;
            put_code(codes, j, bits, (unsigned)((int)q + (int)half));
        }
    } else {
        double L = (double)((1u << bits) - 1), lo = dim ? x[0] : 0, hi = lo;
        for (uint32_t j = 1; j < dim; j++) {
            lo = fmin(lo, (double)x[j]);
            hi = fmax(hi, (double)x[j]);
        }
        float s = hi > lo ? round_down((hi - lo) / L) : 0.0f;
        *scale = s;
        *offset = (float)lo;
        for (uint32_t j = 0; j < dim; j++) {
            double c = s > 0 ? rint(((double)x[j] - lo) / s) : 0;
            c = c < 0 ? 0 : c > L ? L : c;
            put_code(codes, j, bits, (unsigned)c);
        }
    }
}

void kd_quant_dequant_row(const uint8_t *codes, uint32_t dim, uint32_t bits, uint32_t scheme, float scale,
                          float offset, float *out)
{
    int half = scheme == KD_QUANT_SYM ? 1 << (bits - 1) : 0;
    for (uint32_t j = 0; j < dim; j++)
        out[j] = (float)((double)scale * ((int)get_code(codes, j, bits) - half) + (double)offset);
}

/* ---------------------------------------------------------------- artifact */

static void sec_name(char *buf, size_t n, const char *table, const char *suffix)
{
    snprintf(buf, n, "%s_%s", table, suffix);
}

int kd_quant_fmt_to_art(kd_art *a, const kd_quant_fmt *f, kd_err *e)
{
    uint32_t v[3] = { f->bits, f->scheme, f->dim };
    return kd_art_add_u32(a, "quant", 3, v, e);
}

int kd_quant_table_to_art(kd_art *a, const char *name, const kd_quant_fmt *f, const float *x, uint32_t rows,
                          uint32_t stride, kd_err *e)
{
    if (kd_quant_check(f->bits, f->scheme, e))
        return -1;
    if (f->dim == 0 || f->dim > stride || strlen(name) + 7 > KD_NAME_MAX)
        return kd_fail(e, "%s: bad table shape", name);
    uint64_t cb = kd_quant_code_bytes(f->dim, f->bits), nbytes;
    if (kd_mul(rows, cb, &nbytes) || nbytes > SIZE_MAX)
        return kd_fail(e, "%s: table too large", name);
    uint8_t *codes = malloc(nbytes ? (size_t)nbytes : 1);
    float *scale = kd_alloc_array(rows ? rows : 1, sizeof(float));
    float *offset = kd_alloc_array(rows ? rows : 1, sizeof(float));
    if (!codes || !scale || !offset) {
        free(codes), free(scale), free(offset);
        return kd_fail(e, "out of memory");
    }
    for (uint32_t r = 0; r < rows; r++) {
        const float *row = x + (size_t)r * stride;
        for (uint32_t j = 0; j < f->dim; j++)
            if (!isfinite(row[j])) {
                free(codes), free(scale), free(offset);
                return kd_fail(e, "%s: row %u has a NaN or infinite value", name, r);
            }
        kd_quant_row(row, f->dim, f->bits, f->scheme, codes + (size_t)r * cb, &scale[r], &offset[r]);
    }
    char nq[KD_NAME_MAX + 1], ns[KD_NAME_MAX + 1], no[KD_NAME_MAX + 1];
    sec_name(nq, sizeof nq, name, "q");
    sec_name(ns, sizeof ns, name, "scale");
    sec_name(no, sizeof no, name, "offset");
    /* kd_art_add owns what it is given from the call on, even when it fails */
    int r = kd_art_add(a, nq, KD_U8, rows, cb, 0, codes, nbytes, 1, e);
    if (!r) {
        r = kd_art_add(a, ns, KD_F32, rows, 1, 0, scale, (uint64_t)rows * 4, 1, e);
        scale = NULL;
    }
    if (!r && f->scheme == KD_QUANT_ASYM) {
        r = kd_art_add(a, no, KD_F32, rows, 1, 0, offset, (uint64_t)rows * 4, 1, e);
        offset = NULL;
    }
    free(scale);
    free(offset);
    return r ? -1 : 0;
}

/* the rows of one quantised table, or -1 when its sections do not fit f */
static int64_t table_rows(const kd_art *a, const char *name, const kd_quant_fmt *f)
{
    char n[KD_NAME_MAX + 1];
    sec_name(n, sizeof n, name, "q");
    const kd_section *q = kd_art_find(a, n);
    sec_name(n, sizeof n, name, "scale");
    const kd_section *s = kd_art_find(a, n);
    sec_name(n, sizeof n, name, "offset");
    const kd_section *o = kd_art_find(a, n);
    if (!q || !s || q->type != KD_U8 || s->type != KD_F32 || q->cols != kd_quant_code_bytes(f->dim, f->bits) ||
        s->rows != q->rows || s->cols != 1 || q->rows > UINT32_MAX || kd_art_find(a, name))
        return -1;
    if (f->scheme == KD_QUANT_ASYM ? !o || o->type != KD_F32 || o->rows != q->rows || o->cols != 1 : o != NULL)
        return -1;
    return (int64_t)q->rows;
}

int kd_quant_read_fmt(const kd_art *a, kd_quant_fmt *f, uint32_t *n_users, uint32_t *n_items, kd_err *e)
{
    const kd_section *s = kd_art_find(a, "quant");
    if (!s)
        return 0;
    const char *src = a->src[0] ? a->src : "artifact";
    if (s->type != KD_U32 || s->rows != 3)
        return kd_fail(e, "%s: section 'quant' is not 3 u32 values", src);
    const uint32_t *v = s->data;
    f->bits = v[0];
    f->scheme = v[1];
    f->dim = v[2];
    kd_err ignore = { 0 };
    if (kd_quant_check(f->bits, f->scheme, &ignore) || f->dim == 0 || f->dim > QUANT_MAX_DIM)
        return kd_fail(e, "%s: section 'quant': unknown format (bits %u, scheme %u, dim %u)", src, f->bits, f->scheme,
                       f->dim);
    int64_t nu = table_rows(a, "user_emb", f), ni = table_rows(a, "item_emb", f);
    if (nu < 0 || ni < 0)
        return kd_fail(e, "%s: quantised sections have inconsistent shapes", src);
    *n_users = (uint32_t)nu;
    *n_items = (uint32_t)ni;
    return 1;
}

int kd_quant_table_from_art(const kd_art *a, const char *name, const kd_quant_fmt *f, float *out, uint32_t stride,
                            kd_err *e)
{
    const char *src = a->src[0] ? a->src : "artifact";
    int64_t rows = table_rows(a, name, f);
    if (rows < 0 || stride < f->dim)
        return kd_fail(e, "%s: quantised sections have inconsistent shapes", src);
    char n[KD_NAME_MAX + 1];
    sec_name(n, sizeof n, name, "q");
    const uint8_t *codes = kd_art_find(a, n)->data;
    sec_name(n, sizeof n, name, "scale");
    const float *scale = kd_art_find(a, n)->data;
    sec_name(n, sizeof n, name, "offset");
    const kd_section *os = kd_art_find(a, n);
    const float *offset = os ? os->data : NULL;
    uint64_t cb = kd_quant_code_bytes(f->dim, f->bits);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *c = codes + (size_t)r * cb;
        float s = scale[r], o = offset ? offset[r] : 0.0f;
        if (!isfinite(s) || s < 0 || !isfinite(o))
            return kd_fail(e, "%s: section '%s_scale': row %lld has a bad scale or offset", src, name, (long long)r);
        /* sym never writes code 0; 4-bit never writes a high nibble past an odd dim */
        for (uint32_t j = 0; j < f->dim; j++)
            if (f->scheme == KD_QUANT_SYM && get_code(c, j, f->bits) == 0)
                return kd_fail(e, "%s: section '%s_q': row %lld has a code outside the symmetric range", src, name,
                               (long long)r);
        if (f->bits == 4 && (f->dim & 1) && (c[cb - 1] >> 4))
            return kd_fail(e, "%s: section '%s_q': row %lld has a nonzero padding nibble", src, name, (long long)r);
        kd_quant_dequant_row(c, f->dim, f->bits, f->scheme, s, o, out + (size_t)r * stride);
    }
    return 0;
}

/* ---------------------------------------------------------------- bytes */

uint64_t kd_quant_serving_bytes(uint64_t n_users, uint64_t n_items, uint32_t dim, uint32_t bits, uint32_t scheme)
{
    uint64_t row = bits == 32 ? 4 * (uint64_t)dim + 4
                              : kd_quant_code_bytes(dim, bits) + 4 + (scheme == KD_QUANT_ASYM ? 4 : 0) + 4;
    return (n_users + n_items) * row;
}

uint64_t kd_quant_art_serving_bytes(const kd_art *a)
{
    static const char *const names[] = { "user_emb", "item_emb", "user_emb_q", "item_emb_q", "user_emb_scale",
                                         "item_emb_scale", "user_emb_offset", "item_emb_offset", "user_bias",
                                         "item_bias" };
    uint64_t n = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        const kd_section *s = kd_art_find(a, names[k]);
        if (s)
            n += s->bytes;
    }
    return n;
}
