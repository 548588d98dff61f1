/* kd_quant: post-training quantisation of embedding tables, row by row, and the exact
 * serving size of a model (the equal-bytes baseline of a distilled student).
 *
 * Per row x[0..dim) of a table, with b = bits (8 or 4) and one f32 scale s per row:
 *   sym   Q = 2^(b-1) - 1 (127, 7); s = max|x| / Q rounded down to a float;
 *         q_j = clamp(rint(x_j / s), -Q, Q), stored as the code c_j = q_j + 2^(b-1)
 *         (1..255, 1..15; code 0 is never written and refused on reading);
 *         x^_j = s * (c_j - 2^(b-1)).
 *   asym  L = 2^b - 1 (255, 15); lo = min x, hi = max x, s = (hi - lo) / L rounded down;
 *         c_j = clamp(rint((x_j - lo) / s), 0, L); x^_j = s * c_j + lo, with the row's
 *         offset lo (the zero point, kept as a float as FBGEMM's 8-bit rows do) stored
 *         next to the scale.
 * The arithmetic is in double, the result rounded once to float.  Rounding s down (never
 * up) keeps s*Q, s*L + lo inside the row's range, so extreme rows (|x| near FLT_MAX) never
 * dequantise to infinity.  A row whose range is 0 (all zeros, a constant row) gets s = 0
 * and is reproduced exactly; a range so small that s underflows to 0 gets the smallest
 * subnormal instead.  Every in-range element obeys |x_j - x^_j| <= s/2 up to the one
 * float rounding of x^_j (tests/unit/test_quant.c).  rint rounds half to even (the
 * default mode; nothing here changes it), so the codes are the same on every machine.
 *
 * Packing.  8-bit: one code per byte.  4-bit: two per byte, element 2k in the low nibble
 * and element 2k+1 in the high nibble of byte k (FBGEMM's order); an odd dim leaves the
 * last high nibble 0.  A row takes kd_quant_code_bytes(dim, bits) bytes.
 *
 * In a model artifact (kind model), in place of user_emb and item_emb:
 *   quant            u32 (3): bits, scheme (0 sym, 1 asym), dim
 *   user_emb_q       u8  (n_users, code bytes)   item_emb_q    u8 (n_items, code bytes)
 *   user_emb_scale   f32 (n_users, 1)            item_emb_scale f32 (n_items, 1)
 *   user_emb_offset  f32 (n_users, 1)            item_emb_offset f32 (n_items, 1)   asym only
 *   user_bias, item_bias f32 as in a float model: biases are kept in float, not quantised.
 * kd_model_from_art dequantises such an artifact into an ordinary float kd_model, so every
 * reader (kd-eval, kd-distill's teacher, kd-info) takes it unchanged.  Scoring is then
 * float scoring: PTQ here saves bytes, never latency.
 *
 * Serving bytes: what a server holds to score, i.e. the raw bytes of the parameter
 * sections (codes + scales + offsets + biases), uncompressed, without provenance or
 * training curves: per row code_bytes + 4 (scale) + 4 (offset, asym) + 4 (bias); a float
 * model's is (users + items) * (4 dim + 4).  The bias of a user, although BPR keeps it 0,
 * is counted as the parameter count (users + items) * (dim + 1) counts it.
 */
#ifndef KD_QUANT_H
#define KD_QUANT_H

#include <stdint.h>

#include "kd_artifact.h"
#include "kd_err.h"

enum kd_quant_scheme { KD_QUANT_SYM = 0, KD_QUANT_ASYM = 1 };

typedef struct kd_quant_fmt {
    uint32_t bits;      /* 8 or 4 */
    uint32_t scheme;    /* KD_QUANT_SYM or KD_QUANT_ASYM */
    uint32_t dim;       /* elements per row */
} kd_quant_fmt;

/* The parameter checks of a format: usage errors ("--bits: 3 is not 8 or 4"). */
int kd_quant_check(uint32_t bits, uint32_t scheme, kd_err *e);
/* "sym", "asym"; NULL for another value.  Parse: the scheme, or -1. */
const char *kd_quant_scheme_name(uint32_t scheme);
int         kd_quant_scheme_parse(const char *s);

/* Bytes of one row's codes: dim (8 bits) or ceil(dim / 2) (4 bits). */
uint64_t kd_quant_code_bytes(uint32_t dim, uint32_t bits);

/* Quantises one row of dim finite floats into codes[kd_quant_code_bytes], *scale and
 * *offset (0 for sym).  The caller checks finiteness (kd_quant_tables does). */
void kd_quant_row(const float *x, uint32_t dim, uint32_t bits, uint32_t scheme, uint8_t *codes, float *scale,
                  float *offset);
/* The inverse: out[0..dim) = the dequantised row.  Codes are not checked here. */
void kd_quant_dequant_row(const uint8_t *codes, uint32_t dim, uint32_t bits, uint32_t scheme, float scale,
                          float offset, float *out);

/* Adds the quantised sections of one table ("user_emb" -> user_emb_q, _scale, _offset)
 * for rows rows of f->dim floats that start `stride` floats apart.  Fails, adding
 * nothing it can avoid, on a non-finite value ("row 3 has a NaN or infinite value"). */
int kd_quant_table_to_art(kd_art *a, const char *name, const kd_quant_fmt *f, const float *x, uint32_t rows,
                          uint32_t stride, kd_err *e);
/* Adds the "quant" section describing f. */
int kd_quant_fmt_to_art(kd_art *a, const kd_quant_fmt *f, kd_err *e);

/* Reads a model artifact's format: 1 and *f filled (and *n_users, *n_items from the
 * tables) when it is quantised, 0 when it has no "quant" section, -1 when the quantised
 * sections are inconsistent ("x.kd: quantised sections have inconsistent shapes"). */
int kd_quant_read_fmt(const kd_art *a, kd_quant_fmt *f, uint32_t *n_users, uint32_t *n_items, kd_err *e);
/* Dequantises table `name` (rows as read by kd_quant_read_fmt) into out, rows `stride`
 * floats apart (padding untouched).  Fails on a code outside the scheme's range or a
 * scale/offset that is negative, NaN or infinite. */
int kd_quant_table_from_art(const kd_art *a, const char *name, const kd_quant_fmt *f, float *out, uint32_t stride,
                            kd_err *e);

/* Serving bytes of a model of this shape: bits 32 is the float model, 8 or 4 a
 * quantised one under scheme.  (users + items) * (per-row bytes), no overflow below
 * 2^64 for any shape kd_model allows. */
uint64_t kd_quant_serving_bytes(uint64_t n_users, uint64_t n_items, uint32_t dim, uint32_t bits, uint32_t scheme);
/* The same counted off a model artifact: the raw bytes of its parameter sections, float
 * or quantised (0 if it has none).  For kd-eval's serving_bytes column. */
uint64_t kd_quant_art_serving_bytes(const kd_art *a);

#endif
