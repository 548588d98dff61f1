/* kd_model: matrix-factorisation parameters: score(u,i) = P[u]·Q[i] + bu[u] + bi[i].
 *
 * All parameters sit in one aligned allocation.  Rows are padded to `stride` floats
 * (dim rounded up to 16, i.e. one 64-byte cache line) with zeros that stay zero under
 * every update, so kernels run whole SIMD vectors without tails.  On disk the padding
 * is dropped: sections user_emb (users x dim), item_emb (items x dim), user_bias and
 * item_bias (n x 1), all f32.
 */
#ifndef KD_MODEL_H
#define KD_MODEL_H

#include <stdint.h>

#include "kd_artifact.h"

typedef struct kd_model {
    uint32_t n_users, n_items;
    uint32_t dim, stride;  /* stride = dim rounded up to a multiple of 16 */
    float *P;              /* (n_users, stride) user embeddings */
    float *Q;              /* (n_items, stride) item embeddings */
    float *bu;             /* (n_users) user biases */
    float *bi;             /* (n_items) item biases */
    void  *mem;            /* the one allocation behind all four */
} kd_model;

#define KD_MAX_DIM 4096u

/* Allocates zeroed parameters.  Fails on dim 0 or > KD_MAX_DIM, or sizes that overflow. */
int  kd_model_alloc(kd_model *m, uint32_t n_users, uint32_t n_items, uint32_t dim, kd_err *e);
void kd_model_free(kd_model *m);
/* Embeddings ~ N(0, std^2) from `seed`; biases 0.  Value v of the stream is
 * (float)(std * kd_rng_normal) after 2v draws of kd_rng_seed(seed), bit for bit (computed
 * eight at a time without libm, checked against it: kd_model.c). */
void kd_model_init_normal(kd_model *m, uint64_t seed, float std);
/* Copies src's values into dst of the same shape. */
void kd_model_copy(kd_model *dst, const kd_model *src);

/* Parameters counted as the study counts them: (users + items) x (dim + 1). */
static inline uint64_t kd_model_params(const kd_model *m)
{
    return ((uint64_t)m->n_users + m->n_items) * ((uint64_t)m->dim + 1);
}
/* The same count read off a model artifact's sections, float or quantised (0 if it has none). */
uint64_t kd_model_param_count(const kd_art *a);

/* Adds the four parameter sections to an artifact.  They refer to m's memory where its
 * layout is the file's (the biases always, the embeddings when dim is a multiple of 16;
 * kd_art_add_ref), so m must stay valid and unchanged while the artifact is encoded. */
int kd_model_to_art(const kd_model *m, kd_art *a, kd_err *e);
/* Loads and checks the four sections (consistent shapes, all values finite).  A
 * quantised model (a "quant" section, kd_quant.h) is dequantised into float parameters. */
int kd_model_from_art(kd_model *m, const kd_art *a, kd_err *e);

/* Score of one pair. */
float kd_model_score(const kd_model *m, uint32_t u, uint32_t i);

/* 1 if every parameter is finite. */
int kd_model_finite(const kd_model *m);
/* 1 if rows [lo, hi) of the model are finite, counting the user rows 0..n_users-1, then
 * the item rows, each with its bias (threads can split the check by rows). */
int kd_model_finite_rows(const kd_model *m, uint64_t lo, uint64_t hi);

#endif
