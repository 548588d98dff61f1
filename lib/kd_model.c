/* kd_model: MF parameters in one allocation; load/save as artifact sections. */
#include "kd_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kd_par.h"
#include "kd_quant.h"
#include "kd_rng.h"
#include "kd_vec.h"

int kd_model_alloc(kd_model *m, uint32_t n_users, uint32_t n_items, uint32_t dim, kd_err *e)
{
    memset(m, 0, sizeof *m);
    if (dim == 0 || dim > KD_MAX_DIM)
        return kd_fail_usage(e, "dimension %u is not in 1..%u", dim, KD_MAX_DIM);
    uint32_t stride = (dim + 15) & ~15u;
    uint64_t rows = (uint64_t)n_users + n_items, emb, total;
    if (kd_mul(rows, stride, &emb) || kd_add(emb, rows + 32, &total) || kd_mul(total, 4, &total) ||
        total > SIZE_MAX)
        return kd_fail(e, "model too large");
    void *mem = kd_alloc_big(64, (size_t)total);
    if (!mem)
        return kd_fail(e, "out of memory (%llu bytes of parameters)", (unsigned long long)total);
    memset(mem, 0, (size_t)total);
    m->n_users = n_users;
    m->n_items = n_items;
    m->dim = dim;
    m->stride = stride;
    m->mem = mem;
    m->P = mem;
    m->Q = m->P + (size_t)n_users * stride;
    m->bu = m->Q + (size_t)n_items * stride;
    m->bi = m->bu + n_users + 16; /* keep a gap: biases never share a line with P/Q tails */
    return 0;
}

void kd_model_free(kd_model *m)
{
    free(m->mem);
    memset(m, 0, sizeof *m);
}

/* The sequential stream of kd_rng_seed(seed), value by value (P's rows, then Q's, dim
 * values each), with two draws per value (kd_rng_normal's), so the stream stands before
 * value v after 2v steps: rows can be filled in any order, on any thread, with the same
 * bits. */
typedef struct init_job {
    kd_model *m;
    uint64_t s0;
    float std;
} init_job;

/* What kd_model_init_normal has always stored for draws a, b: (float)(std * kd_rng_normal),
 * through libm, the reference the fast path below must equal. */
static float normal_ref(uint64_t a, uint64_t b, float std)
{
    double u = 1.0 - (double)(a >> 11) * 0x1.0p-53, v = (double)(b >> 11) * 0x1.0p-53;
    return (float)(std * (sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v)));
}

/* The fast path: eight values at once, log and cos by polynomials in double precision,
 * then rounded to float.  Their results differ from libm's in the last bits of the double,
 * never in the float, except when the double lies within that difference of a float
 * rounding boundary: each lane brackets its value by a bound on the difference and takes
 * the float only when both ends of the bracket round to it; the others (about 20 in 6 M
 * values on amazon-book) are recomputed through libm.  The bound is 50-100x the errors:
 * log's relative error here is below 1e-15 and libm's below one ulp (2.2e-16); cos's
 * absolute error below 1e-16 and libm's below one ulp; the bracket allows 1e-13 relative
 * on sqrt(-2 log u) and 1e-14 absolute on cos.  libm's log and cos were 0.24 s of CPU on
 * amazon-book at D = 64 (6.1 M values), more than the whole rest of the set-up. */
typedef double kd_v8d __attribute__((vector_size(64)));
typedef int64_t kd_v8l __attribute__((vector_size(64)));
typedef uint64_t kd_v8u __attribute__((vector_size(64)));
typedef float kd_v8f __attribute__((vector_size(32)));

/* bit casts between the vector types (the values' bits, unchanged) */
#define V8_D(x) ((union { kd_v8u u; kd_v8d d; }){ .u = (x) }.d)
#define V8_U(x) ((union { kd_v8u u; kd_v8d d; }){ .d = (x) }.u)
/* an integer below 2^52 as a double, exactly */
#define V8_U52_D(n) (V8_D((n) | 0x4330000000000000ULL) - 0x1.0p52)
/* (double)(x >> 11) * 2^-53, exactly: its 53 bits as 21 + 32 */
#define V8_UNIF(x) ((V8_U52_D((x) >> 43) * 0x1.0p32 + V8_U52_D(((x) >> 11) & 0xffffffffULL)) * 0x1.0p-53)
#define V8_MIX64(z) do { \
        (z) = ((z) ^ ((z) >> 30)) * 0xbf58476d1ce4e5b9ULL; \
        (z) = ((z) ^ ((z) >> 27)) * 0x94d049bb133111ebULL; \
        (z) = (z) ^ ((z) >> 31); \
    } while (0)

/* values g0 .. g0 + 7 of the stream (draws 2g + 1 and 2g + 2 from s0) into out.  One
 * function, its helpers macros: a 64-byte vector has no one calling convention across the
 * clones (kd_vec.h). */
KD_CLONES static void normal8(uint64_t s0, uint64_t g0, float std, float *out)
{
    const uint64_t G = 0x9e3779b97f4a7c15ULL;
    const kd_v8d zero = { 0 };
    kd_v8u g = { 0, 1, 2, 3, 4, 5, 6, 7 };
    g += g0;
    kd_v8u a = s0 + (2 * g + 1) * G, b = s0 + (2 * g + 2) * G;
    V8_MIX64(a);
    V8_MIX64(b);
    kd_v8d u = 1.0 - V8_UNIF(a), v = V8_UNIF(b);

    /* log(u) for u in (0, 1]: u = 2^e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s),
     * s = (m - 1) / (m + 1), |s| < 0.172, by its series to s^21 (truncation below 1e-17) */
    kd_v8u ub = V8_U(u), mant = ub & 0x000fffffffffffffULL;
    kd_v8u big = (kd_v8u)(mant > 0x6a09e667f3bcdULL) & 1;       /* m > sqrt(2): halve it */
    kd_v8d m = V8_D(mant | (0x3ff0000000000000ULL - (big << 52)));
    kd_v8d e = V8_U52_D((ub >> 52) + big) - 1023.0;
    kd_v8d f = m - 1.0, s = f / (2.0 + f), z = s * s;
    kd_v8d p = zero + 1.0 / 21;
    p = p * z + 1.0 / 19;
    p = p * z + 1.0 / 17;
    p = p * z + 1.0 / 15;
    p = p * z + 1.0 / 13;
    p = p * z + 1.0 / 11;
    p = p * z + 1.0 / 9;
    p = p * z + 1.0 / 7;
    p = p * z + 1.0 / 5;
    p = p * z + 1.0 / 3;
    kd_v8d logm = 2.0 * s + 2.0 * s * (z * p);
    /* ln 2 in two parts, the first with 32 bits so that e times it is exact */
    kd_v8d lg = e * 6.93147180369123816490e-01 + (e * 1.90821492927058770002e-10 + logm);
    kd_v8d rad = -2.0 * lg, sq;
    for (int l = 0; l < 8; l++) sq[l] = sqrt(rad[l]);  /* correctly rounded, like libm's */

    /* cos(x) for x in [0, 2 pi): x = k pi/2 + r, |r| <= pi/4 (pi/2 in two parts, the first
     * with 33 bits so that k times it is exact), then +-cos r or +-sin r by their Taylor
     * series to r^16 and r^17 (truncation below 1e-17) */
    kd_v8d x = 6.283185307179586 * v;
    kd_v8d t = x * 6.36619772367581382433e-01 + 0x1.8p52;
    kd_v8u q = V8_U(t) & 3;
    kd_v8d k = t - 0x1.8p52;
    kd_v8d r = (x - k * 1.57079632673412561417e+00) - k * 6.07710050650619224932e-11, rr = r * r;
    kd_v8d c = zero + 1.0 / 20922789888000.0;            /* 1/16! */
    c = c * rr - 1.0 / 87178291200.0;
    c = c * rr + 1.0 / 479001600.0;
    c = c * rr - 1.0 / 3628800.0;
    c = c * rr + 1.0 / 40320.0;
    c = c * rr - 1.0 / 720.0;
    c = c * rr + 1.0 / 24.0;
    c = c * rr - 0.5;
    c = c * rr + 1.0;
    kd_v8d sn = zero + 1.0 / 355687428096000.0;          /* 1/17! */
    sn = sn * rr - 1.0 / 1307674368000.0;
    sn = sn * rr + 1.0 / 6227020800.0;
    sn = sn * rr - 1.0 / 39916800.0;
    sn = sn * rr + 1.0 / 362880.0;
    sn = sn * rr - 1.0 / 5040.0;
    sn = sn * rr + 1.0 / 120.0;
    sn = sn * rr - 1.0 / 6.0;
    sn = r + r * (rr * sn);
    kd_v8u odd = (kd_v8u)((q & 1) != 0);                  /* q odd: sin */
    kd_v8u neg = (kd_v8u)(((q + 1) & 2) != 0);            /* q = 1, 2: negative */
    kd_v8d cs = V8_D(((V8_U(sn) & odd) | (V8_U(c) & ~odd)) ^ (neg & 0x8000000000000000ULL));

    kd_v8d y = (double)std * (sq * cs);
    kd_v8d ay = V8_D(V8_U(y) & 0x7fffffffffffffffULL), ac = V8_D(V8_U(cs) & 0x7fffffffffffffffULL);
    kd_v8d bound = (double)fabsf(std) * sq * (1e-14 + ac * 1e-13) + ay * 1e-15 + 1e-300;
    kd_v8f lo = __builtin_convertvector(y - bound, kd_v8f), hi = __builtin_convertvector(y + bound, kd_v8f);
    kd_v8f fy = __builtin_convertvector(y, kd_v8f);
    for (int l = 0; l < 8; l++)
        out[l] = lo[l] == hi[l] && y[l] != 0 && sq[l] > 0 ? fy[l] : normal_ref(a[l], b[l], std);
}

static void init_rows(void *ctx, int t, int T)
{
    init_job *j = ctx;
    kd_model *m = j->m;
    unsigned long long lo, hi;
    kd_par_range((unsigned long long)m->n_users + m->n_items, t, T, &lo, &hi);
    const uint64_t G = 0x9e3779b97f4a7c15ULL;
    for (uint64_t row = lo; row < hi; row++) {   /* P and Q are contiguous */
        float *x = m->P + row * m->stride;
        uint64_t g = row * m->dim;
        uint32_t k = 0;
        for (; k + 8 <= m->dim; k += 8) normal8(j->s0, g + k, j->std, x + k);
        for (; k < m->dim; k++)
            x[k] = normal_ref(kd_mix64(j->s0 + (2 * (g + k) + 1) * G), kd_mix64(j->s0 + (2 * (g + k) + 2) * G), j->std);
    }
}

void kd_model_init_normal(kd_model *m, uint64_t seed, float std)
{
    init_job j = { m, kd_rng_seed(seed).s, std };
    /* a second thread halves it (the values do not depend on it) */
    uint64_t values = ((uint64_t)m->n_users + m->n_items) * m->dim;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int T = values < (1u << 20) || cpus < 2 ? 1 : cpus > 8 ? 8 : (int)cpus;
    kd_err e;
    if (kd_par_run(T, init_rows, &j, &e))
        init_rows(&j, 0, 1);
}

void kd_model_copy(kd_model *dst, const kd_model *src)
{
    size_t rows = (size_t)src->n_users + src->n_items;
    memcpy(dst->P, src->P, rows * src->stride * sizeof(float));
    memcpy(dst->bu, src->bu, src->n_users * sizeof(float));
    memcpy(dst->bi, src->bi, src->n_items * sizeof(float));
}

uint64_t kd_model_param_count(const kd_art *a)
{
    const char *names[] = { "user_emb", "item_emb", "user_bias", "item_bias" };
    uint64_t n = 0;
    kd_quant_fmt f;
    uint32_t nu, ni;
    kd_err ignore = { 0 };
    if (kd_quant_read_fmt(a, &f, &nu, &ni, &ignore) == 1) /* a quantised model counts its dims */
        n = ((uint64_t)nu + ni) * f.dim;
    for (int k = 0; k < 4; k++) {
        const kd_section *s = kd_art_find(a, names[k]);
        if (s && s->type == KD_F32)
            n += s->rows * s->cols;
    }
    return n;
}

/* An embedding table as a section: the model's own rows when they are unpadded (dim a
 * multiple of 16: the file's layout exactly, so no copy of tens of MB), else a packed copy. */
static int add_rows(kd_art *a, const char *name, const float *x, uint32_t rows, uint32_t dim,
                    uint32_t stride, kd_err *e)
{
    uint64_t bytes = (uint64_t)rows * dim * 4;
    if (stride == dim)
        return kd_art_add_ref(a, name, KD_F32, rows, dim, x, bytes, e);
    float *buf = kd_alloc_array((uint64_t)rows * dim, sizeof(float));
    if (!buf)
        return kd_fail(e, "out of memory");
    for (uint32_t r = 0; r < rows; r++)
        memcpy(buf + (size_t)r * dim, x + (size_t)r * stride, dim * sizeof(float));
    return kd_art_add(a, name, KD_F32, rows, dim, 0, buf, bytes, 1, e);
}

int kd_model_to_art(const kd_model *m, kd_art *a, kd_err *e)
{
    return add_rows(a, "user_emb", m->P, m->n_users, m->dim, m->stride, e) ||
           add_rows(a, "item_emb", m->Q, m->n_items, m->dim, m->stride, e) ||
           kd_art_add_ref(a, "user_bias", KD_F32, m->n_users, 1, m->bu, (uint64_t)m->n_users * 4, e) ||
           kd_art_add_ref(a, "item_bias", KD_F32, m->n_items, 1, m->bi, (uint64_t)m->n_items * 4, e) ? -1 : 0;
}

/* A quantised model (kd_quant.h): dequantised into float parameters, so that every
 * reader of a model reads it unchanged. */
static int from_quant_art(kd_model *m, const kd_art *a, kd_err *e)
{
    kd_quant_fmt f;
    uint32_t nu, ni;
    const kd_section *bu, *bi;
    if (kd_quant_read_fmt(a, &f, &nu, &ni, e) < 0 || !(bu = kd_art_need(a, "user_bias", KD_F32, e)) ||
        !(bi = kd_art_need(a, "item_bias", KD_F32, e)))
        return -1;
    if (bu->rows != nu || bi->rows != ni || bu->cols != 1 || bi->cols != 1 || f.dim > KD_MAX_DIM)
        return kd_fail(e, "%s: model sections have inconsistent shapes", a->src);
    if (kd_model_alloc(m, nu, ni, f.dim, e))
        return -1;
    if (kd_quant_table_from_art(a, "user_emb", &f, m->P, m->stride, e) ||
        kd_quant_table_from_art(a, "item_emb", &f, m->Q, m->stride, e)) {
        kd_model_free(m);
        return -1;
    }
    memcpy(m->bu, bu->data, m->n_users * sizeof(float));
    memcpy(m->bi, bi->data, m->n_items * sizeof(float));
    if (!kd_model_finite(m)) {
        kd_model_free(m);
        return kd_fail(e, "%s: model has NaN or infinite parameters", a->src);
    }
    return 0;
}

int kd_model_from_art(kd_model *m, const kd_art *a, kd_err *e)
{
    if (kd_art_find(a, "quant"))
        return from_quant_art(m, a, e);
    const kd_section *P = kd_art_need(a, "user_emb", KD_F32, e), *Q, *bu, *bi;
    if (!P || !(Q = kd_art_need(a, "item_emb", KD_F32, e)) || !(bu = kd_art_need(a, "user_bias", KD_F32, e)) ||
        !(bi = kd_art_need(a, "item_bias", KD_F32, e)))
        return -1;
    if (P->cols != Q->cols || bu->rows != P->rows || bi->rows != Q->rows || bu->cols != 1 ||
        bi->cols != 1 || P->rows > UINT32_MAX || Q->rows > UINT32_MAX || P->cols > KD_MAX_DIM)
        return kd_fail(e, "%s: model sections have inconsistent shapes", a->src);
    if (kd_model_alloc(m, (uint32_t)P->rows, (uint32_t)Q->rows, (uint32_t)P->cols, e))
        return -1;
    const float *p = P->data, *q = Q->data;
    for (uint32_t u = 0; u < m->n_users; u++)
        memcpy(m->P + (size_t)u * m->stride, p + (size_t)u * m->dim, m->dim * sizeof(float));
    for (uint32_t i = 0; i < m->n_items; i++)
        memcpy(m->Q + (size_t)i * m->stride, q + (size_t)i * m->dim, m->dim * sizeof(float));
    memcpy(m->bu, bu->data, m->n_users * sizeof(float));
    memcpy(m->bi, bi->data, m->n_items * sizeof(float));
    if (!kd_model_finite(m)) {
        kd_model_free(m);
        return kd_fail(e, "%s: model has NaN or infinite parameters", a->src);
    }
    return 0;
}

float kd_model_score(const kd_model *m, uint32_t u, uint32_t i)
{
    const float *p = m->P + (size_t)u * m->stride, *q = m->Q + (size_t)i * m->stride;
    float s = 0;
    for (uint32_t k = 0; k < m->dim; k++)
        s += p[k] * q[k];
    return s + m->bu[u] + m->bi[i];
}

int kd_model_finite_rows(const kd_model *m, uint64_t lo, uint64_t hi)
{
    /* NaN/Inf * 0 = NaN: one branch-free pass, 16 lanes at a time (rows are whole
     * multiples of 16 floats, aligned, and P and Q are contiguous; training calls this
     * every epoch) */
    kd_v16 acc16 = { 0 };
    for (size_t k = (size_t)lo * m->stride; k < (size_t)hi * m->stride; k += 16)
        acc16 += *(const kd_v16 *)(m->P + k) * 0.0f;
    float acc = kd_hsum16(&acc16);
    for (uint64_t r = lo; r < hi && r < m->n_users; r++)
        acc += m->bu[r] * 0.0f;
    for (uint64_t r = lo > m->n_users ? lo : m->n_users; r < hi; r++)
        acc += m->bi[r - m->n_users] * 0.0f;
    return acc == 0.0f;
}

int kd_model_finite(const kd_model *m)
{
    return kd_model_finite_rows(m, 0, (uint64_t)m->n_users + m->n_items);
}
