/* Unit tests of the artifact container: round trips of every section type, identity
 * rules, shuffle, and refusal of crafted files that only a checksum-resealing attacker
 * (or a bug) could make. */
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <zlib.h>

#include "kd_artifact.h"
#include "kd_test.h"

static kd_art *sample(void)
{
    kd_err e;
    kd_art *a = kd_art_new(KD_KIND_MODEL);
    float f[6] = { 1.5f, -2.25f, 3e-8f, 1e30f, 0.0f, -0.0f };
    double g[2] = { 3.141592653589793, -1e-300 };
    int32_t i[3] = { -7, 0, 2147483647 };
    uint32_t u[2] = { 0, 4294967295u };
    uint64_t w[2] = { 1, 18446744073709551615ull };
    uint64_t ip[4] = { 0, 2, 2, 3 };
    uint32_t ix[3] = { 1, 4, 0 };
    CHECK(kd_art_add_f32(a, "dense", 2, 3, f, &e) == 0);
    CHECK(kd_art_add_f64(a, "dbl", 2, 1, g, &e) == 0);
    CHECK(kd_art_add(a, "ints", KD_I32, 3, 1, 0, i, 12, 0, &e) == 0);
    CHECK(kd_art_add_u32(a, "u32s", 2, u, &e) == 0);
    CHECK(kd_art_add_u64(a, "u64s", 2, w, &e) == 0);
    CHECK(kd_art_add_csr(a, "sparse", 3, 5, ip, ix, &e) == 0);
    CHECK(kd_art_add_text(a, "provenance", "tool=test\nk=v\n", 14, &e) == 0);
    return a;
}

/* Recomputes the header checksum after a deliberate edit. */
static void reseal(uint8_t *p, size_t len)
{
    uint64_t n = kd_get_u32(p + 16);
    if (KD_HEADER_BYTES + n * KD_ENTRY_BYTES > len) /* a table past the end: hash what is there */
        n = (len - KD_HEADER_BYTES) / KD_ENTRY_BYTES;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, p, 40);
    XXH3_64bits_update(&st, p + KD_HEADER_BYTES, (size_t)n * KD_ENTRY_BYTES);
    kd_put_u64(p + 40, XXH3_64bits_digest(&st));
}

static void test_round_trip(void)
{
    kd_err e;
    kd_art *a = sample(), *b = NULL;
    kd_buf buf = { 0 };
    CHECK(kd_art_encode(a, 6, &buf, &e) == 0);
    CHECK(kd_art_parse(buf.p, buf.len, "mem", &b, &e) == 0);
    CHECK(b && b->n == a->n && b->kind == KD_KIND_MODEL && b->content_id == a->content_id);
    for (uint32_t k = 0; b && k < a->n; k++) {
        const kd_section *s = kd_art_find(b, a->sec[k].name);
        CHECK(s && s->type == a->sec[k].type && s->bytes == a->sec[k].bytes &&
              !memcmp(s->data, a->sec[k].data, s->bytes));
    }
    char v[16];
    CHECK(b && kd_art_prov_get(b, "k", v, sizeof v) == 0 && !strcmp(v, "v"));
    CHECK(b && kd_art_prov_get(b, "missing", v, sizeof v) == -1);
    kd_art_free(b);
    /* same content at another level: same content ID, different bytes */
    kd_buf buf0 = { 0 };
    uint64_t id = a->content_id;
    CHECK(kd_art_encode(a, 0, &buf0, &e) == 0);
    CHECK(a->content_id == id && kd_get_u64(buf0.p + 24) == id);
    CHECK(buf0.len != buf.len);
    kd_buf_free(&buf0);
    kd_buf_free(&buf);
    kd_art_free(a);
}

static void test_identity_changes_with_content(void)
{
    kd_art *a = sample(), *b = sample();
    CHECK(kd_art_content_id(a) == kd_art_content_id(b));
    ((float *)b->sec[0].data)[0] = 1.25f;
    b->sec[0].sum = XXH3_64bits(b->sec[0].data, b->sec[0].bytes);
    CHECK(kd_art_content_id(a) != kd_art_content_id(b));
    kd_art_free(a);
    kd_art_free(b);
}

static void test_volatile_outside_identity(void)
{
    kd_err e;
    kd_art *a = sample(), *b = sample();
    double t1 = 1.5e7, t2 = 1.7e7;
    CHECK(kd_art_add_f64(a, "timing", 1, 1, &t1, &e) == 0 && kd_art_set_volatile(a, "timing") == 0);
    CHECK(kd_art_add_f64(b, "timing", 1, 1, &t2, &e) == 0 && kd_art_set_volatile(b, "timing") == 0);
    kd_art *c = sample();
    CHECK(kd_art_content_id(a) == kd_art_content_id(b));
    CHECK(kd_art_content_id(a) == kd_art_content_id(c));
    kd_buf buf = { 0 };
    kd_art *r = NULL;
    CHECK(kd_art_encode(a, 6, &buf, &e) == 0 && kd_art_parse(buf.p, buf.len, "v", &r, &e) == 0);
    CHECK(r && (kd_art_find(r, "timing")->flags & KD_FLAG_VOLATILE) && r->content_id == kd_art_content_id(c));
    kd_art_free(r);
    kd_buf_free(&buf);
    kd_art_free(a);
    kd_art_free(b);
    kd_art_free(c);
}

static void test_shuffle(void)
{
    uint8_t src[37], mid[37], back[37];
    for (int i = 0; i < 37; i++) src[i] = (uint8_t)(i * 7 + 3);
    kd_shuffle(mid, src, 37, 4);
    kd_unshuffle(back, mid, 37, 4);
    CHECK(!memcmp(src, back, 37));
    CHECK(mid[0] == src[0] && mid[1] == src[4] && mid[9] == src[1]);
}

/* Encodes sample(), lets `edit` change the bytes, reseals, parses, expects failure with
 * a message containing `want`. */
static void expect_refused(void (*edit)(uint8_t *, size_t *), const char *want)
{
    kd_err e = { 0 };
    kd_art *a = sample(), *b = NULL;
    kd_buf buf = { 0 };
    kd_art_encode(a, 6, &buf, &e);
    edit(buf.p, &buf.len);
    reseal(buf.p, buf.len);
    int r = kd_art_parse(buf.p, buf.len, "x", &b, &e);
    CHECK(r == -1 && b == NULL);
    if (!strstr(e.msg, want))
        fprintf(stderr, "  message was: %s (wanted '%s')\n", e.msg, want);
    CHECK(strstr(e.msg, want) != NULL);
    kd_buf_free(&buf);
    kd_art_free(a);
}

static uint8_t *entry(uint8_t *p, int k) { return p + KD_HEADER_BYTES + (size_t)k * KD_ENTRY_BYTES; }
static void edit_type(uint8_t *p, size_t *n) { (void)n; kd_put_u32(entry(p, 2) + 32, 99); }
static void edit_kind(uint8_t *p, size_t *n) { (void)n; kd_put_u32(p + 12, 77); }
static void edit_rows_overflow(uint8_t *p, size_t *n) { (void)n; kd_put_u64(entry(p, 0) + 40, 1ull << 62); kd_put_u64(entry(p, 0) + 48, 1ull << 62); }
static void edit_rows(uint8_t *p, size_t *n) { (void)n; kd_put_u64(entry(p, 0) + 40, 3); }
static void edit_huge_raw(uint8_t *p, size_t *n)
{
    (void)n; /* claims 4 GiB of floats behind a few compressed bytes */
    kd_put_u64(entry(p, 0) + 40, 1ull << 20);
    kd_put_u64(entry(p, 0) + 48, 1ull << 10);
    kd_put_u64(entry(p, 0) + 64, 1ull << 32);
}
static void edit_sections(uint8_t *p, size_t *n) { (void)n; kd_put_u32(p + 16, 4000); }
static void edit_comp(uint8_t *p, size_t *n) { (void)n; kd_put_u64(entry(p, 1) + 72, kd_get_u64(entry(p, 1) + 72) + 1); }
static void edit_sum(uint8_t *p, size_t *n) { (void)n; kd_put_u64(entry(p, 3) + 80, 12345); }
static void edit_flags(uint8_t *p, size_t *n) { (void)n; kd_put_u32(entry(p, 0) + 36, 5); }
static void edit_dup_name(uint8_t *p, size_t *n) { (void)n; memcpy(entry(p, 1), "dense\0\0", 7); }
static void edit_cid(uint8_t *p, size_t *n) { (void)n; kd_put_u64(p + 24, 42); }

static void test_crafted_files(void)
{
    expect_refused(edit_type, "unknown section type 99");
    expect_refused(edit_kind, "unknown artifact kind 77");
    expect_refused(edit_rows_overflow, "shape does not match its size");
    expect_refused(edit_rows, "shape does not match its size");
    expect_refused(edit_huge_raw, "more than its");
    expect_refused(edit_sections, "truncated section table");
    expect_refused(edit_comp, "truncated");
    expect_refused(edit_sum, "checksum mismatch");
    expect_refused(edit_flags, "unknown flags");
    expect_refused(edit_dup_name, "bad or duplicate name");
    expect_refused(edit_cid, "content ID mismatch");
}

static void test_bad_csr(void)
{
    kd_err e;
    kd_art *a = kd_art_new(KD_KIND_DATASET), *b = NULL;
    uint64_t ip[3] = { 0, 2, 1 }; /* decreasing */
    uint32_t ix[1] = { 0 };
    CHECK(kd_art_add_csr(a, "m", 2, 4, ip, ix, &e) == 0);
    kd_buf buf = { 0 };
    kd_art_encode(a, 1, &buf, &e);
    CHECK(kd_art_parse(buf.p, buf.len, "x", &b, &e) == -1 && strstr(e.msg, "decrease"));
    kd_buf_free(&buf);
    kd_art_free(a);
    a = kd_art_new(KD_KIND_DATASET);
    uint64_t ip2[2] = { 0, 1 };
    uint32_t ix2[1] = { 9 }; /* column out of range */
    CHECK(kd_art_add_csr(a, "m", 1, 4, ip2, ix2, &e) == 0);
    kd_art_encode(a, 1, &buf, &e);
    CHECK(kd_art_parse(buf.p, buf.len, "x", &b, &e) == -1 && strstr(e.msg, "out of range"));
    kd_buf_free(&buf);
    kd_art_free(a);
}

static void test_add_rejects(void)
{
    kd_err e;
    kd_art *a = kd_art_new(KD_KIND_RESULT);
    float f[2] = { 0 };
    CHECK(kd_art_add_f32(a, "x", 1, 2, f, &e) == 0);
    CHECK(kd_art_add_f32(a, "x", 1, 2, f, &e) == -1);              /* duplicate */
    CHECK(kd_art_add_f32(a, "", 1, 2, f, &e) == -1);               /* empty name */
    CHECK(kd_art_add_f32(a, "a name with spaces", 1, 2, f, &e) == -1);
    CHECK(kd_art_add(a, "y", KD_F32, 1, 2, 0, f, 7, 0, &e) == -1); /* size mismatch */
    CHECK(kd_art_add_text(a, "t", "bad\xff", 4, &e) == 0);          /* accepted here, refused on read */
    kd_buf buf = { 0 };
    kd_art *b = NULL;
    kd_art_encode(a, 1, &buf, &e);
    CHECK(kd_art_parse(buf.p, buf.len, "x", &b, &e) == -1 && strstr(e.msg, "UTF-8"));
    kd_buf_free(&buf);
    kd_art_free(a);
}

/* Sections of several writer chunks (1 MiB each): the bytes are the same for any number
 * of threads, every payload is one zlib stream that zlib itself inflates to the section's
 * (shuffled) bytes, and the file reads back. */
static void test_chunked_streams(void)
{
    kd_err e;
    kd_art *a = kd_art_new(KD_KIND_MODEL);
    uint64_t nf = 14063 * 64, nu = 700000;   /* 3.4 and 2.7 MiB */
    float *f = malloc(nf * 4);
    uint32_t *u = malloc(nu * 4);
    uint64_t x = 88172645463325252ull;
    for (uint64_t i = 0; i < nf; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        f[i] = (float)((double)(x >> 11) / 9007199254740992.0 - 0.5) * 0.2f;
    }
    for (uint64_t i = 0; i < nu; i++)  /* a 40,000-word block, repeated: matches across chunks */
        u[i] = (uint32_t)((i % 40000) * 2654435761u);
    float tiny[3] = { 1, 2, 3 };
    CHECK(kd_art_add_f32(a, "emb", nf / 64, 64, f, &e) == 0);
    CHECK(kd_art_add_u32(a, "ids", nu, u, &e) == 0);
    CHECK(kd_art_add_ref(a, "ref", KD_F32, 3, 1, tiny, 12, &e) == 0);
    CHECK(kd_art_add(a, "empty", KD_TEXT, 0, 1, 0, "", 0, 0, &e) == 0);
    CHECK(kd_art_add_ref(a, "ref", KD_F32, 3, 1, tiny, 12, &e) == -1);   /* duplicate */
    CHECK(kd_art_add_ref(a, "bad", KD_F32, 3, 1, tiny, 8, &e) == -1);    /* shape */
    for (int level = 0; level <= 9; level += 3) {
        kd_buf one = { 0 };
        CHECK(kd_art_encode_par(a, level, 1, 1, &one, &e) == 0);
        for (int T = 2; T <= 7; T += 5) {
            kd_buf more = { 0 };
            CHECK(kd_art_encode_par(a, level, 1, T, &more, &e) == 0);
            CHECK(more.len == one.len && !memcmp(more.p, one.p, one.len));
            kd_buf_free(&more);
        }
        size_t off = KD_HEADER_BYTES + (size_t)a->n * KD_ENTRY_BYTES;
        for (uint32_t k = 0; k < a->n; k++) {
            const kd_section *s = &a->sec[k];
            uLongf n = (uLongf)s->bytes + 1;
            uint8_t *raw = malloc(n), *want = malloc(n);
            CHECK(uncompress(raw, &n, one.p + off, (uLong)s->comp_bytes) == Z_OK && n == s->bytes);
            if (s->flags & KD_FLAG_SHUFFLE)
                kd_shuffle(want, s->data, (size_t)s->bytes, 4);
            else
                memcpy(want, s->data, (size_t)s->bytes);
            CHECK(!memcmp(raw, want, (size_t)s->bytes));
            off += (size_t)s->comp_bytes;
            free(raw);
            free(want);
        }
        CHECK(off == one.len);
        kd_art *b = NULL;
        CHECK(kd_art_parse(one.p, one.len, "chunked", &b, &e) == 0);
        const kd_section *s = b ? kd_art_find(b, "emb") : NULL;
        CHECK(s && s->bytes == nf * 4 && !memcmp(s->data, f, nf * 4));
        s = b ? kd_art_find(b, "ids") : NULL;
        CHECK(s && s->bytes == nu * 4 && !memcmp(s->data, u, nu * 4));
        s = b ? kd_art_find(b, "ref") : NULL;
        CHECK(s && s->owned && !memcmp(s->data, tiny, 12));
        kd_art_free(b);
        kd_buf_free(&one);
    }
    kd_art_free(a);   /* leaves "ref" (the stack's) alone: ASan would see a bad free */
    free(f);
    free(u);
}

int main(void)
{
    test_chunked_streams();
    test_round_trip();
    test_identity_changes_with_content();
    test_shuffle();
    test_volatile_outside_identity();
    test_crafted_files();
    test_bad_csr();
    test_add_rejects();
    return kd_test_done("test_artifact");
}
