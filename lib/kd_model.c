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

static void init_rows(void *ctx, int t, int T)
{
    init_job *j = ctx;
    kd_model *m = j->m;
    unsigned long long lo, hi;
    kd_par_range((unsigned long long)m->n_users + m->n_items, t, T, &lo, &hi);
    kd_rng r = { j->s0 + 2 * (uint64_t)lo * m->dim * 0x9e3779b97f4a7c15ULL };
    for (uint64_t row = lo; row < hi; row++)   /* P and Q are contiguous */
        for (uint32_t k = 0; k < m->dim; k++)
            m->P[row * m->stride + k] = (float)(j->std * kd_rng_normal(&r));
}

void kd_model_init_normal(kd_model *m, uint64_t seed, float std)
{
    init_job j = { m, kd_rng_seed(seed).s, std };
    /* libm's log and cos for every parameter: 0.12 s on amazon-book at D = 64, halved by
     * a second thread (the values do not depend on it) */
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
