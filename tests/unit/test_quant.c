/* Unit tests of kd_quant: the error bound of every format, exact rows (zero, constant),
 * extreme rows, the 4-bit packing order, the artifact sections and their refusals, and
 * the serving-bytes count. */
#include <float.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "kd_model.h"
#include "kd_quant.h"
#include "kd_rng.h"
#include "kd_test.h"

static const uint32_t BITS[2] = { 8, 4 };
static const uint32_t SCHEMES[2] = { KD_QUANT_SYM, KD_QUANT_ASYM };

/* q then deq of one row; 1 if every element is within scale/2 plus the one float
 * rounding of the result (2^-24 relative, taken as 2^-23 for margin) */
static int within_bound(const float *x, uint32_t dim, uint32_t bits, uint32_t scheme, float *scale_out)
{
    uint8_t codes[128];
    float y[128], s, o;
    kd_quant_row(x, dim, bits, scheme, codes, &s, &o);
    kd_quant_dequant_row(codes, dim, bits, scheme, s, o, y);
    if (scale_out) *scale_out = s;
    for (uint32_t j = 0; j < dim; j++) {
        double err = fabs((double)x[j] - (double)y[j]);
        if (!isfinite(y[j]) || err > (double)s / 2 + fabs((double)x[j]) * 0x1p-23) {
            fprintf(stderr, "bits %u scheme %u j %u: x %.9g y %.9g s %.9g\n", bits, scheme, j, x[j], y[j], s);
            return 0;
        }
    }
    return 1;
}

static void test_bound_random(void)
{
    kd_rng r = kd_rng_seed(7);
    int ok = 1;
    for (int t = 0; t < 2000; t++) {
        uint32_t dim = 1 + (uint32_t)(kd_rng_next(&r) % 128);
        float x[128];
        double spread = pow(10.0, (double)(t % 9) - 4); /* 1e-4 .. 1e4 */
        double shift = t % 3 == 0 ? 3 * spread : 0;    /* some rows far from 0 */
        for (uint32_t j = 0; j < dim; j++)
            x[j] = (float)(shift + spread * kd_rng_normal(&r));
        for (int b = 0; b < 2; b++)
            for (int s = 0; s < 2; s++)
                ok &= within_bound(x, dim, BITS[b], SCHEMES[s], NULL);
    }
    CHECK(ok);
}

static void test_exact_rows(void)
{
    float zero[37] = { 0 }, c1[16], c2[5], y[37], s, o;
    uint8_t codes[64];
    for (int k = 0; k < 16; k++) c1[k] = 3.7f;
    for (int k = 0; k < 5; k++) c2[k] = -1e-3f;
    for (int b = 0; b < 2; b++)
        for (int sc = 0; sc < 2; sc++) {
            /* all zeros: scale 0, every element 0 again (+0, not -0) */
            kd_quant_row(zero, 37, BITS[b], SCHEMES[sc], codes, &s, &o);
            kd_quant_dequant_row(codes, 37, BITS[b], SCHEMES[sc], s, o, y);
            CHECK(s == 0.0f && o == 0.0f && !memcmp(zero, y, sizeof zero));
        }
    /* constant rows: exact with asym (scale 0, offset the value) */
    for (int b = 0; b < 2; b++) {
        kd_quant_row(c1, 16, BITS[b], KD_QUANT_ASYM, codes, &s, &o);
        kd_quant_dequant_row(codes, 16, BITS[b], KD_QUANT_ASYM, s, o, y);
        CHECK(s == 0.0f && !memcmp(c1, y, sizeof c1));
        kd_quant_row(c2, 5, BITS[b], KD_QUANT_ASYM, codes, &s, &o);
        kd_quant_dequant_row(codes, 5, BITS[b], KD_QUANT_ASYM, s, o, y);
        CHECK(s == 0.0f && !memcmp(c2, y, sizeof c2));
        /* with sym, every element takes the top code and lands within a float rounding
         * of the value (the scale is rounded down, never up) */
        kd_quant_row(c1, 16, BITS[b], KD_QUANT_SYM, codes, &s, &o);
        kd_quant_dequant_row(codes, 16, BITS[b], KD_QUANT_SYM, s, o, y);
        int near = 1;
        for (int k = 0; k < 16; k++) near &= y[k] <= c1[k] && c1[k] - y[k] <= c1[k] * 0x1p-21f && y[k] == y[0];
        CHECK(near);
    }
}

static void test_extreme_rows(void)
{
    float big[4] = { FLT_MAX, -FLT_MAX, 0.0f, 1.0f };
    float pos[3] = { FLT_MAX, FLT_MAX, 0.5f * FLT_MAX };
    float tiny[4] = { FLT_TRUE_MIN, -FLT_TRUE_MIN, 0.0f, 3 * FLT_TRUE_MIN };
    float sub[3] = { 1e-40f, -2e-40f, 5e-41f };
    float outlier[32];
    for (int k = 0; k < 32; k++) outlier[k] = 1e-3f * (float)(k - 16);
    outlier[5] = 1e6f;
    for (int b = 0; b < 2; b++)
        for (int s = 0; s < 2; s++) {
            float sc;
            CHECK(within_bound(big, 4, BITS[b], SCHEMES[s], &sc));     /* range 2*FLT_MAX: no inf */
            CHECK(within_bound(pos, 3, BITS[b], SCHEMES[s], NULL));
            CHECK(within_bound(tiny, 4, BITS[b], SCHEMES[s], &sc));    /* the scale underflows: */
            CHECK(sc > 0);                                            /* smallest subnormal */
            CHECK(within_bound(sub, 3, BITS[b], SCHEMES[s], NULL));
            CHECK(within_bound(outlier, 32, BITS[b], SCHEMES[s], NULL));
        }
}

/* 4-bit: element 2k in the low nibble of byte k, 2k+1 in the high one; an odd dim's last
 * high nibble is 0.  8-bit: one code per byte, sym codes offset by 128. */
static void test_packing(void)
{
    float x[16], s, o;
    uint8_t c[16];
    for (int k = 0; k < 16; k++) x[k] = (float)k / 15.0f; /* asym 4-bit: code k for element k */
    kd_quant_row(x, 16, 4, KD_QUANT_ASYM, c, &s, &o);
    int ok = 1;
    for (int k = 0; k < 8; k++) ok &= c[k] == (uint8_t)((2 * k) | (2 * k + 1) << 4);
    CHECK(ok && o == 0.0f);
    float odd[3] = { 0.0f, 1.0f, 0.5f };  /* codes 0, 15, 8 (0.5/s > 7.5: s rounds down) */
    kd_quant_row(odd, 3, 4, KD_QUANT_ASYM, c, &s, &o);
    CHECK(c[0] == 0xf0 && c[1] == 0x08);
    float sym[3] = { -1.0f, 1.0f, 0.0f }; /* sym 4-bit: q -7, 7, 0 -> codes 1, 15, 8 */
    kd_quant_row(sym, 3, 4, KD_QUANT_SYM, c, &s, &o);
    CHECK(c[0] == 0xf1 && c[1] == 0x08 && o == 0.0f);
    kd_quant_row(sym, 3, 8, KD_QUANT_SYM, c, &s, &o); /* sym 8-bit: 1, 255, 128 */
    CHECK(c[0] == 1 && c[1] == 255 && c[2] == 128);
    kd_quant_row(odd, 3, 8, KD_QUANT_ASYM, c, &s, &o); /* asym 8-bit: 0, 255, 128 */
    CHECK(c[0] == 0 && c[1] == 255 && c[2] == 128);
    CHECK(kd_quant_code_bytes(3, 4) == 2 && kd_quant_code_bytes(64, 4) == 32 && kd_quant_code_bytes(33, 8) == 33);
}

/* ---------------------------------------------------------------- artifacts */

static void small_model(kd_model *m, uint32_t dim)
{
    kd_err e;
    kd_model_alloc(m, 7, 5, dim, &e);
    kd_model_init_normal(m, 3, 0.3f);
    for (uint32_t i = 0; i < m->n_items; i++) m->bi[i] = 0.1f * (float)i;
}

static kd_art *quantised(const kd_model *m, uint32_t bits, uint32_t scheme)
{
    kd_err e;
    kd_quant_fmt f = { bits, scheme, m->dim };
    kd_art *a = kd_art_new(KD_KIND_MODEL);
    CHECK(kd_quant_fmt_to_art(a, &f, &e) == 0 && kd_quant_table_to_art(a, "user_emb", &f, m->P, m->n_users, m->stride, &e) == 0 &&
          kd_quant_table_to_art(a, "item_emb", &f, m->Q, m->n_items, m->stride, &e) == 0 &&
          kd_art_add_f32(a, "user_bias", m->n_users, 1, m->bu, &e) == 0 &&
          kd_art_add_f32(a, "item_bias", m->n_items, 1, m->bi, &e) == 0);
    return a;
}

/* encode, parse back */
static kd_art *reparse(kd_art *a, uint32_t *version)
{
    kd_err e;
    kd_buf b = { 0 };
    kd_art *r = NULL;
    CHECK(kd_art_encode(a, 1, &b, &e) == 0);
    if (version) *version = kd_get_u32(b.p + 8);
    CHECK(kd_art_parse(b.p, b.len, "q.kd", &r, &e) == 0);
    kd_buf_free(&b);
    return r;
}

static void test_model_round_trip(void)
{
    kd_err e;
    for (uint32_t dim = 5; dim <= 16; dim += 11) /* odd and even */
        for (int b = 0; b < 2; b++)
            for (int s = 0; s < 2; s++) {
                kd_model m, d;
                small_model(&m, dim);
                kd_art *a = quantised(&m, BITS[b], SCHEMES[s]);
                uint32_t version;
                kd_art *r = reparse(a, &version);
                CHECK(version == 2 && r && r->version == 2);
                CHECK(r && kd_model_from_art(&d, r, &e) == 0);
                /* what the model holds is the rows' dequantisation, padding still zero */
                int same = 1, pad = 1;
                for (uint32_t u = 0; u < m.n_users + m.n_items; u++) {
                    const float *x = m.P + (size_t)u * m.stride, *y = d.P + (size_t)u * d.stride;
                    uint8_t codes[16];
                    float row[16], sc, of;
                    kd_quant_row(x, dim, BITS[b], SCHEMES[s], codes, &sc, &of);
                    kd_quant_dequant_row(codes, dim, BITS[b], SCHEMES[s], sc, of, row);
                    same &= !memcmp(row, y, dim * sizeof(float));
                    for (uint32_t k = dim; k < d.stride; k++) pad &= y[k] == 0.0f;
                }
                CHECK(same && pad);
                CHECK(!memcmp(m.bu, d.bu, m.n_users * 4) && !memcmp(m.bi, d.bi, m.n_items * 4));
                /* counts: parameters as a float model's, serving bytes exact */
                CHECK(kd_model_param_count(r) == kd_model_params(&m));
                uint64_t want = 12 * (kd_quant_code_bytes(dim, BITS[b]) + 4 + 4 * (SCHEMES[s] == KD_QUANT_ASYM) + 4);
                CHECK(kd_quant_art_serving_bytes(r) == want);
                CHECK(kd_quant_serving_bytes(7, 5, dim, BITS[b], SCHEMES[s]) == want);
                kd_model_free(&d);
                kd_art_free(r);
                kd_art_free(a);
                kd_model_free(&m);
            }
    /* a float model: version 1 still, and (U+I)(4d+4) serving bytes */
    kd_model m;
    small_model(&m, 16);
    kd_art *a = kd_art_new(KD_KIND_MODEL), *r;
    CHECK(kd_model_to_art(&m, a, &e) == 0);
    uint32_t version;
    r = reparse(a, &version);
    CHECK(version == 1 && kd_quant_art_serving_bytes(r) == 12 * (4 * 16 + 4));
    CHECK(kd_quant_serving_bytes(7, 5, 16, 32, 0) == 12 * 68);
    /* the study's sizes: CiteULike's 22,459 rows at dim 64 */
    CHECK(kd_quant_serving_bytes(5551, 16908, 64, 32, 0) == 22459ull * 260);
    CHECK(kd_quant_serving_bytes(5551, 16908, 64, 8, KD_QUANT_ASYM) == 22459ull * 76);
    CHECK(kd_quant_serving_bytes(5551, 16908, 64, 4, KD_QUANT_SYM) == 22459ull * 40);
    kd_art_free(r);
    kd_art_free(a);
    kd_model_free(&m);
}

/* a copy of a's sections with one edited through fn (after the copy is made) */
typedef void (*edit_fn)(kd_art *a);

static void expect_load_fails(edit_fn fn, uint32_t bits, uint32_t scheme, const char *msg)
{
    kd_err e = { 0 };
    kd_model m, d;
    small_model(&m, 5);
    kd_art *a = quantised(&m, bits, scheme);
    snprintf(a->src, sizeof a->src, "q.kd");
    fn(a);
    int r = kd_model_from_art(&d, a, &e);
    CHECK(r == -1 && strstr(e.msg, msg));
    if (r == 0) kd_model_free(&d);
    if (!strstr(e.msg, msg)) fprintf(stderr, "  got: %s (want %s)\n", e.msg, msg);
    kd_art_free(a);
    kd_model_free(&m);
}

static kd_section *sec(kd_art *a, const char *name) { return (kd_section *)kd_art_find(a, name); }
static void zero_sym_code(kd_art *a) { ((uint8_t *)sec(a, "item_emb_q")->data)[0] &= 0xf0; }
static void neg_scale(kd_art *a) { ((float *)sec(a, "user_emb_scale")->data)[2] = -1.0f; }
static void nan_offset(kd_art *a) { ((float *)sec(a, "item_emb_offset")->data)[1] = NAN; }
static void inf_bias(kd_art *a) { ((float *)sec(a, "item_bias")->data)[1] = INFINITY; }
static void pad_nibble(kd_art *a) { ((uint8_t *)sec(a, "user_emb_q")->data)[2] |= 0x10; }
static void drop_offset(kd_art *a) { strcpy(sec(a, "user_emb_offset")->name, "user_emb_other"); }
static void wrong_dim(kd_art *a) { ((uint32_t *)sec(a, "quant")->data)[2] = 6; }
static void bad_bits(kd_art *a) { ((uint32_t *)sec(a, "quant")->data)[0] = 2; }
static void add_float(kd_art *a)
{
    kd_err e;
    float z[35] = { 0 };
    kd_art_add_f32(a, "user_emb", 7, 5, z, &e);
}

static void test_refusals(void)
{
    expect_load_fails(zero_sym_code, 4, KD_QUANT_SYM, "item_emb_q': row 0 has a code outside the symmetric range");
    expect_load_fails(neg_scale, 8, KD_QUANT_SYM, "user_emb_scale': row 2 has a bad scale or offset");
    expect_load_fails(nan_offset, 8, KD_QUANT_ASYM, "item_emb_scale': row 1 has a bad scale or offset");
    expect_load_fails(inf_bias, 8, KD_QUANT_ASYM, "q.kd: model has NaN or infinite parameters");
    expect_load_fails(pad_nibble, 4, KD_QUANT_ASYM, "user_emb_q': row 0 has a nonzero padding nibble");
    expect_load_fails(drop_offset, 4, KD_QUANT_ASYM, "q.kd: quantised sections have inconsistent shapes");
    expect_load_fails(wrong_dim, 8, KD_QUANT_ASYM, "q.kd: quantised sections have inconsistent shapes");
    expect_load_fails(bad_bits, 8, KD_QUANT_ASYM, "section 'quant': unknown format (bits 2, scheme 1, dim 5)");
    expect_load_fails(add_float, 8, KD_QUANT_SYM, "q.kd: quantised sections have inconsistent shapes");

    /* non-finite input is refused before anything is added */
    kd_err e;
    kd_model m;
    small_model(&m, 5);
    m.Q[3 * m.stride + 1] = NAN;
    kd_quant_fmt f = { 8, KD_QUANT_ASYM, 5 };
    kd_art *a = kd_art_new(KD_KIND_MODEL);
    CHECK(kd_quant_table_to_art(a, "item_emb", &f, m.Q, m.n_items, m.stride, &e) == -1 &&
          !strcmp(e.msg, "item_emb: row 3 has a NaN or infinite value") && a->n == 0);
    f.bits = 5;
    CHECK(kd_quant_table_to_art(a, "item_emb", &f, m.Q, m.n_items, m.stride, &e) == -1 && e.code == KD_EXIT_USAGE);
    kd_art_free(a);
    kd_model_free(&m);
}

/* a version-1 header that claims a u8 section is refused (after resealing the header) */
static void test_version_rule(void)
{
    kd_err e;
    kd_model m;
    small_model(&m, 5);
    kd_art *a = quantised(&m, 8, KD_QUANT_ASYM), *r = NULL;
    kd_buf b = { 0 };
    CHECK(kd_art_encode(a, 1, &b, &e) == 0);
    kd_put_u32(b.p + 8, 1);
    uint64_t n = kd_get_u32(b.p + 16);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, b.p, 40);
    XXH3_64bits_update(&st, b.p + KD_HEADER_BYTES, (size_t)n * KD_ENTRY_BYTES);
    kd_put_u64(b.p + 40, XXH3_64bits_digest(&st));
    CHECK(kd_art_parse(b.p, b.len, "old.kd", &r, &e) == -1 &&
          strstr(e.msg, "old.kd: section 'user_emb_q': type u8 needs format version 2, the file says 1"));
    /* and a newer version than this reader's is refused with the upgrade hint */
    kd_put_u32(b.p + 8, KD_FORMAT_VERSION + 1);
    CHECK(kd_art_parse(b.p, b.len, "new.kd", &r, &e) == -1 && strstr(e.msg, "is newer than this kdrec reads"));
    kd_buf_free(&b);
    kd_art_free(a);
    kd_model_free(&m);
}

int main(void)
{
    test_bound_random();
    test_exact_rows();
    test_extreme_rows();
    test_packing();
    test_model_round_trip();
    test_refusals();
    test_version_rule();
    return kd_test_done("test_quant");
}
