/* kd_vec: the small dense kernels under training and ranking, on rows whose length is a
 * multiple of 16 floats and whose start is 64-byte aligned (kd_model guarantees both).
 *
 * Written with GCC vector extensions: one 16-float vector is 4 SSE, 2 AVX or 1 AVX-512
 * register, chosen by the target the calling function is compiled for (hot callers use
 * KD_CLONES for run-time dispatch).  Each lane does IEEE multiply then add, never a fused
 * multiply-add (we build with -std=c11, so -ffp-contract=off), and the final horizontal sum
 * has a fixed order: results are bit-identical on every x86-64 path, any thread count.
 * (Ranking scores use fused multiply-add instead, with their own dispatch: kd_rank.h.)
 */
#ifndef KD_VEC_H
#define KD_VEC_H

#include <stdint.h>

typedef float kd_v16 __attribute__((vector_size(64)));
typedef float kd_v16u __attribute__((vector_size(64), aligned(4), may_alias));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(KD_NO_CLONES)
#define KD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KD_CLONES
#endif

/* Sum of the 16 lanes of *v.  By pointer, not by value: a 64-byte vector argument has
 * no single calling convention across the clones (in zmm with AVX-512, in memory
 * without), which is what gcc's "ABI for passing parameters with 64-byte alignment"
 * note is about; through a pointer every clone agrees and the inlined code is the same. */
static inline float kd_hsum16(const kd_v16 *v)
{
    /* fixed tree: (v[i] + v[i+8]) then +4, +2, +1 */
    float a[8], b[4], c[2];
    for (int i = 0; i < 8; i++) a[i] = (*v)[i] + (*v)[i + 8];
    for (int i = 0; i < 4; i++) b[i] = a[i] + a[i + 4];
    for (int i = 0; i < 2; i++) c[i] = b[i] + b[i + 2];
    return c[0] + c[1];
}

/* a·b over n floats (n % 16 == 0, 64-byte aligned) */
static inline float kd_dot(const float *restrict a, const float *restrict b, uint32_t n)
{
    kd_v16 acc = { 0 };
    for (uint32_t k = 0; k < n; k += 16)
        acc += *(const kd_v16 *)(a + k) * *(const kd_v16 *)(b + k);
    return kd_hsum16(&acc);
}

/* y += s * x */
static inline void kd_axpy(float *restrict y, float s, const float *restrict x, uint32_t n)
{
    for (uint32_t k = 0; k < n; k += 16)
        *(kd_v16 *)(y + k) += s * *(const kd_v16 *)(x + k);
}

/* y = y * keep + s * x  (an SGD step with L2 decay: keep = 1 - lr * reg) */
static inline void kd_scale_axpy(float *restrict y, float keep, float s, const float *restrict x, uint32_t n)
{
    for (uint32_t k = 0; k < n; k += 16)
        *(kd_v16 *)(y + k) = keep * *(kd_v16 *)(y + k) + s * *(const kd_v16 *)(x + k);
}

static inline void kd_copy16(float *restrict y, const float *restrict x, uint32_t n)
{
    for (uint32_t k = 0; k < n; k += 16)
        *(kd_v16 *)(y + k) = *(const kd_v16 *)(x + k);
}

#endif
