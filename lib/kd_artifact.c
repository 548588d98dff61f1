/* kd_artifact: encode, decode and verify the kdrec container (format in kd_artifact.h). */
#include "kd_artifact.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>
#include <zlib.h>

static const uint8_t MAGIC[8] = { 0x89, 'K', 'D', 'R', '\r', '\n', 0x1a, '\n' };

/* deflate's best case is ~1032:1; anything claiming more is not a real stream */
#define KD_MAX_INFLATE 1040u

static const char *const KIND_NAMES[] = { NULL, "dataset", "model", "result", "ranking" };
static const char *const TYPE_NAMES[] = { NULL, "f32", "f64", "i32", "u32", "u64", "csr", "text", "u8" };

const char *kd_kind_name(uint32_t kind)
{
    return kind < sizeof KIND_NAMES / sizeof *KIND_NAMES ? KIND_NAMES[kind] : NULL;
}

int kd_kind_parse(const char *s)
{
    for (int k = 1; k < (int)(sizeof KIND_NAMES / sizeof *KIND_NAMES); k++)
        if (!strcmp(s, KIND_NAMES[k]))
            return k;
    return -1;
}

const char *kd_type_name(uint32_t type)
{
    return type < sizeof TYPE_NAMES / sizeof *TYPE_NAMES ? TYPE_NAMES[type] : NULL;
}

size_t kd_type_size(uint32_t type)
{
    switch (type) {
    case KD_F32: case KD_I32: case KD_U32: return 4;
    case KD_F64: case KD_U64: return 8;
    case KD_TEXT: case KD_U8: return 1;
    default: return 0;
    }
}

void kd_id_hex(uint64_t id, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, id >>= 4)
        out[i] = hex[id & 15];
    out[16] = 0;
}

void kd_shuffle(uint8_t *dst, const uint8_t *src, size_t n, size_t elem)
{
    size_t count = n / elem;
    for (size_t k = 0; k < elem; k++)
        for (size_t i = 0; i < count; i++)
            dst[k * count + i] = src[i * elem + k];
    memcpy(dst + count * elem, src + count * elem, n - count * elem);
}

void kd_unshuffle(uint8_t *dst, const uint8_t *src, size_t n, size_t elem)
{
    size_t count = n / elem;
    for (size_t k = 0; k < elem; k++)
        for (size_t i = 0; i < count; i++)
            dst[i * elem + k] = src[k * count + i];
    memcpy(dst + count * elem, src + count * elem, n - count * elem);
}

/* ---------------------------------------------------------------- building */

kd_art *kd_art_new(uint32_t kind)
{
    kd_art *a = calloc(1, sizeof *a);
    if (a)
        a->kind = kind;
    return a;
}

void kd_art_free(kd_art *a)
{
    if (!a)
        return;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->sec[i].owned)
            free(a->sec[i].data);
    free(a->sec);
    free(a);
}

/* Expected raw size of a section from its type and shape; -1 if inconsistent/overflow. */
static int expected_bytes(uint32_t type, uint64_t rows, uint64_t cols, uint64_t nnz, uint64_t *out)
{
    uint64_t n, m;
    switch (type) {
    case KD_F32: case KD_F64: case KD_U8:
        return kd_mul(rows, cols, &n) || kd_mul(n, kd_type_size(type), out) || nnz ? -1 : 0;
    case KD_I32: case KD_U32: case KD_U64: case KD_TEXT:
        return cols != 1 || nnz || kd_mul(rows, kd_type_size(type), out) ? -1 : 0;
    case KD_CSR:
        return kd_add(rows, 1, &n) || kd_mul(n, 8, &n) || kd_mul(nnz, 4, &m) || kd_add(n, m, out) ? -1 : 0;
    default:
        return -1;
    }
}

static int valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > KD_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < 0x21 || name[i] == 0x7f)
            return 0;
    return 1;
}

/* how add_section gets its bytes */
enum { ADD_COPY, ADD_TAKE, ADD_REF };

static int add_section(kd_art *a, const char *name, uint32_t type, uint64_t rows, uint64_t cols,
                       uint64_t nnz, void *data, uint64_t bytes, int how, kd_err *e)
{
    uint64_t want;
    int take = how == ADD_TAKE;
    if (!valid_name(name) || kd_art_find(a, name)) {
        if (take) free(data);
        return kd_fail(e, "section '%s': bad or duplicate name", name);
    }
    if (expected_bytes(type, rows, cols, nnz, &want) || want != bytes || bytes > SIZE_MAX) {
        if (take) free(data);
        return kd_fail(e, "section '%s': shape does not match its size", name);
    }
    if (a->n == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : 8;
        kd_section *s = realloc(a->sec, cap * sizeof *s);
        if (!s) {
            if (take) free(data);
            return kd_fail(e, "out of memory");
        }
        a->sec = s;
        a->cap = cap;
    }
    kd_section *s = &a->sec[a->n];
    memset(s, 0, sizeof *s);
    strcpy(s->name, name);
    s->type = type;
    s->rows = rows;
    s->cols = cols;
    s->nnz = nnz;
    s->bytes = bytes;
    if (how != ADD_COPY) {
        s->data = data;
    } else {
        s->data = malloc(bytes ? (size_t)bytes : 1);
        if (!s->data)
            return kd_fail(e, "out of memory");
        if (bytes)
            memcpy(s->data, data, (size_t)bytes);
    }
    s->owned = how != ADD_REF;
    s->sum = XXH3_64bits(s->data, (size_t)bytes);
    a->n++;
    return 0;
}

int kd_art_add(kd_art *a, const char *name, uint32_t type, uint64_t rows, uint64_t cols,
               uint64_t nnz, void *data, uint64_t bytes, int take, kd_err *e)
{
    return add_section(a, name, type, rows, cols, nnz, data, bytes, take ? ADD_TAKE : ADD_COPY, e);
}

int kd_art_add_ref(kd_art *a, const char *name, uint32_t type, uint64_t rows, uint64_t cols,
                   const void *data, uint64_t bytes, kd_err *e)
{
    return add_section(a, name, type, rows, cols, 0, (void *)data, bytes, ADD_REF, e);
}

int kd_art_add_f32(kd_art *a, const char *name, uint64_t rows, uint64_t cols, const float *x, kd_err *e)
{
    return kd_art_add(a, name, KD_F32, rows, cols, 0, (void *)x, rows * cols * 4, 0, e);
}

int kd_art_add_f64(kd_art *a, const char *name, uint64_t rows, uint64_t cols, const double *x, kd_err *e)
{
    return kd_art_add(a, name, KD_F64, rows, cols, 0, (void *)x, rows * cols * 8, 0, e);
}

int kd_art_add_u32(kd_art *a, const char *name, uint64_t n, const uint32_t *x, kd_err *e)
{
    return kd_art_add(a, name, KD_U32, n, 1, 0, (void *)x, n * 4, 0, e);
}

int kd_art_add_u64(kd_art *a, const char *name, uint64_t n, const uint64_t *x, kd_err *e)
{
    return kd_art_add(a, name, KD_U64, n, 1, 0, (void *)x, n * 8, 0, e);
}

int kd_art_add_text(kd_art *a, const char *name, const char *text, size_t len, kd_err *e)
{
    return kd_art_add(a, name, KD_TEXT, len, 1, 0, (void *)text, len, 0, e);
}

int kd_art_add_buf(kd_art *a, const char *name, const kd_buf *b, kd_err *e)
{
    if (b->err)
        return kd_fail(e, "section '%s': out of memory", name);
    return kd_art_add_text(a, name, (const char *)b->p, b->len, e);
}

int kd_art_add_csr(kd_art *a, const char *name, uint64_t rows, uint64_t cols,
                   const uint64_t *indptr, const uint32_t *indices, kd_err *e)
{
    uint64_t nnz = indptr[rows], bytes;
    if (expected_bytes(KD_CSR, rows, cols, nnz, &bytes) || bytes > SIZE_MAX)
        return kd_fail(e, "section '%s': too large", name);
    uint8_t *buf = malloc(bytes ? (size_t)bytes : 1);
    if (!buf)
        return kd_fail(e, "out of memory");
    memcpy(buf, indptr, 8 * (rows + 1));
    if (nnz)
        memcpy(buf + 8 * (rows + 1), indices, 4 * nnz);
    return kd_art_add(a, name, KD_CSR, rows, cols, nnz, buf, bytes, 1, e);
}

const kd_section *kd_art_find(const kd_art *a, const char *name)
{
    for (uint32_t i = 0; i < a->n; i++)
        if (!strcmp(a->sec[i].name, name))
            return &a->sec[i];
    return NULL;
}

const kd_section *kd_art_need(const kd_art *a, const char *name, uint32_t type, kd_err *e)
{
    const kd_section *s = kd_art_find(a, name);
    if (!s || s->type != type) {
        kd_fail(e, "%s: no %s section '%s'", a->src[0] ? a->src : "artifact", kd_type_name(type), name);
        return NULL;
    }
    return s;
}

int kd_art_prov_get(const kd_art *a, const char *key, char *buf, size_t size)
{
    const kd_section *s = kd_art_find(a, "provenance");
    if (!s || s->type != KD_TEXT || size == 0)
        return -1;
    const char *p = s->data, *end = p + s->bytes;
    size_t klen = strlen(key);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if ((size_t)(eol - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
            size_t vlen = (size_t)(eol - p) - klen - 1;
            if (vlen >= size)
                vlen = size - 1;
            memcpy(buf, p + klen + 1, vlen);
            buf[vlen] = 0;
            return 0;
        }
        p = eol + 1;
    }
    return -1;
}

/* ---------------------------------------------------------------- identity */

static void put_entry_identity(uint8_t *b, const kd_section *s)
{
    memset(b, 0, 32);
    memcpy(b, s->name, strlen(s->name));
    kd_put_u32(b + 32, s->type);
    kd_put_u64(b + 36, s->rows);
    kd_put_u64(b + 44, s->cols);
    kd_put_u64(b + 52, s->nnz);
    kd_put_u64(b + 60, s->bytes);
    kd_put_u64(b + 68, s->sum);
}

int kd_art_set_volatile(kd_art *a, const char *name)
{
    for (uint32_t i = 0; i < a->n; i++)
        if (!strcmp(a->sec[i].name, name)) {
            a->sec[i].flags |= KD_FLAG_VOLATILE;
            return 0;
        }
    return -1;
}

uint64_t kd_art_content_id(kd_art *a)
{
    XXH3_state_t st;
    uint8_t b[76];
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->n; i++)
        n += !(a->sec[i].flags & KD_FLAG_VOLATILE);
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, "kdrec-content-v1", 16);
    kd_put_u32(b, a->kind);
    kd_put_u32(b + 4, n);
    XXH3_64bits_update(&st, b, 8);
    for (uint32_t i = 0; i < a->n; i++) {
        if (a->sec[i].flags & KD_FLAG_VOLATILE)
            continue;
        put_entry_identity(b, &a->sec[i]);
        XXH3_64bits_update(&st, b, sizeof b);
    }
    a->content_id = XXH3_64bits_digest(&st);
    return a->content_id;
}

/* ---------------------------------------------------------------- encode */

/* the version that introduced a section type */
static uint32_t type_version(uint32_t type) { return type == KD_U8 ? 2u : 1u; }

uint32_t kd_art_min_version(const kd_art *a)
{
    uint32_t v = 1;
    for (uint32_t i = 0; i < a->n; i++)
        if (type_version(a->sec[i].type) > v)
            v = type_version(a->sec[i].type);
    return v;
}

int kd_art_encode(kd_art *a, int zlevel, kd_buf *out, kd_err *e)
{
    return kd_art_encode_ex(a, zlevel, 1, out, e);
}

/* ---- the writer's streams
 *
 * Each section is one zlib stream, as the format says, but made the way pigz makes one:
 * its bytes (shuffled, for floats) are cut into KD_CHUNK-byte chunks, each chunk is a raw
 * deflate of its own, primed with the 32 KiB before it as dictionary and ended on a byte
 * boundary (Z_SYNC_FLUSH; the section's last chunk with Z_FINISH), and the chunks are
 * joined between one zlib header and the Adler-32 of the whole.  A chunk's bytes depend
 * only on the section's bytes, the level and the chunk size, never on who compresses it
 * or when, so the chunks are compressed in parallel and the file is the same bytes for
 * any number of threads (and readers inflate it as any zlib stream).
 *
 * Float sections use deflate's run-length strategy (matches at distance 1 only) instead
 * of its LZ77 search: after the shuffle, the byte planes of trained embeddings are
 * sign/exponent runs and noise-like mantissas, which the search cannot exploit but pays
 * for.  On amazon-book's d = 64 model (24.9 MB) at level 1: ratio 1.207 in 0.21 s on one
 * core, against 1.175 in 0.58 s for the default strategy (1.186 in 1.6 s at level 6). */
#define KD_CHUNK (1u << 20)
#define KD_DICT  (32u << 10)

typedef struct enc_chunk {
    uint32_t sec;       /* section index */
    uint64_t lo, hi;    /* [lo, hi) of the section's (shuffled) byte stream */
    size_t   out, cap;  /* where its deflate goes in the output buffer, and room there */
    size_t   len;       /* bytes it produced */
    uint32_t adler;     /* Adler-32 of [lo, hi) */
} enc_chunk;

typedef struct enc_job {
    kd_art     *a;
    int         zlevel;
    enc_chunk  *c;
    uint32_t    nc;
    atomic_uint next;   /* next chunk to take: any worker may take any chunk (see above) */
    atomic_int  failed; /* 1 out of memory, 2 + s: deflate refused section s */
    uint8_t    *out;    /* the output buffer */
} enc_job;

/* Bytes [lo, hi) of the shuffled image of src (n bytes of elem-byte elements): plane k,
 * the k-th byte of every element, then the next plane, then the bytes of a partial last
 * element as they are (kd_shuffle's layout, a range of it at a time). */
static void shuffle_range(uint8_t *dst, const uint8_t *src, size_t n, size_t elem, size_t lo, size_t hi)
{
    size_t count = n / elem, body = count * elem;
    for (size_t x = lo; x < hi && x < body;) {
        size_t k = x / count, i = x % count, run = count - i;
        if (run > hi - x)
            run = hi - x;
        const uint8_t *s = src + i * elem + k;
        if (elem == 4)   /* the common case, with a constant stride */
            for (size_t j = 0; j < run; j++) dst[j] = s[4 * j];
        else
            for (size_t j = 0; j < run; j++) dst[j] = s[j * elem];
        dst += run;
        x += run;
    }
    if (hi > body) {
        size_t from = lo > body ? lo : body;
        memcpy(dst, src + from, hi - from);
    }
}

static int sec_shuffled(const kd_section *s) { return (s->flags & KD_FLAG_SHUFFLE) != 0; }

static void enc_worker(void *ctx, int t, int T)
{
    enc_job *j = ctx;
    z_stream z;
    int zinit = 0, zstrat = -1;
    uint8_t *scratch = NULL;  /* dictionary + chunk of a shuffled section */
    (void)t; (void)T;
    for (;;) {
        uint32_t ci = atomic_fetch_add(&j->next, 1);
        if (ci >= j->nc || atomic_load(&j->failed))
            break;
        enc_chunk *c = &j->c[ci];
        const kd_section *s = &j->a->sec[c->sec];
        int strat = sec_shuffled(s) ? Z_RLE : Z_DEFAULT_STRATEGY;
        if (zinit && strat != zstrat) {
            (void)deflateEnd(&z);
            zinit = 0;
        }
        if (!zinit) {
            memset(&z, 0, sizeof z);
            if (deflateInit2(&z, j->zlevel, Z_DEFLATED, -15, 8, strat) != Z_OK) {
                atomic_store(&j->failed, 1);
                break;
            }
            zinit = 1;
            zstrat = strat;
        } else if (deflateReset(&z) != Z_OK) {
            atomic_store(&j->failed, 2 + (int)c->sec);
            break;
        }
        uint64_t d0 = c->lo > KD_DICT ? c->lo - KD_DICT : 0;
        const uint8_t *in = (const uint8_t *)s->data + d0;
        if (sec_shuffled(s)) {
            if (!scratch && !(scratch = malloc(KD_DICT + KD_CHUNK))) {
                atomic_store(&j->failed, 1);
                break;
            }
            shuffle_range(scratch, s->data, (size_t)s->bytes, kd_type_size(s->type), (size_t)d0, (size_t)c->hi);
            in = scratch;
        }
        size_t dict = (size_t)(c->lo - d0), len = (size_t)(c->hi - c->lo);
        if (dict && deflateSetDictionary(&z, in, (uInt)dict) != Z_OK) {
            atomic_store(&j->failed, 2 + (int)c->sec);
            break;
        }
        c->adler = (uint32_t)adler32(1L, in + dict, (uInt)len);
        z.next_in = (Bytef *)(in + dict);
        z.avail_in = (uInt)len;
        z.next_out = j->out + c->out;
        z.avail_out = (uInt)c->cap;
        int last = c->hi == s->bytes;
        int zr = deflate(&z, last ? Z_FINISH : Z_SYNC_FLUSH);
        if (zr != (last ? Z_STREAM_END : Z_OK) || z.avail_in != 0 || z.avail_out == 0) {
            atomic_store(&j->failed, 2 + (int)c->sec);  /* the room is deflateBound's and more: never short */
            break;
        }
        c->len = c->cap - z.avail_out;
    }
    if (zinit)
        (void)deflateEnd(&z);
    free(scratch);
}

static void *enc_thread(void *ctx)
{
    enc_worker(ctx, 0, 1);
    return NULL;
}

/* Runs the workers: `threads`, or (0) the CPUs; at most 8 and one per KD_CHUNK of input (the bytes do not
 * depend on how many; the model initialisation chooses the same way).  Workers take
 * chunks from a shared counter, so a thread that cannot be started is simply one worker
 * fewer. */
static void enc_run(enc_job *j, uint64_t raw, int threads)
{
    pthread_t th[7];
    long cpus = threads > 0 ? threads : sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t T = cpus < 1 ? 1 : cpus > 8 ? 8 : (uint64_t)cpus;
    if (T > raw / KD_CHUNK)
        T = raw / KD_CHUNK ? raw / KD_CHUNK : 1;
    int started = 0;
    for (uint64_t t = 1; t < T; t++)
        if (pthread_create(&th[started], NULL, enc_thread, j) == 0)
            started++;
    enc_worker(j, 0, 1);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
}

/* zlib's two-byte header (RFC 1950) for a 32 KiB window at this level and strategy, as
 * deflate writes it: FLEVEL 0 for levels 0-1 and the run-length strategy. */
static void zlib_header(uint8_t *h, int zlevel, int rle)
{
    unsigned flevel = rle || zlevel < 2 ? 0 : zlevel < 6 ? 1 : zlevel == 6 ? 2 : 3;
    unsigned v = 0x7800u | flevel << 6;
    v += 31 - v % 31;
    h[0] = (uint8_t)(v >> 8);
    h[1] = (uint8_t)v;
}

int kd_art_encode_ex(kd_art *a, int zlevel, int shuffle, kd_buf *out, kd_err *e)
{
    return kd_art_encode_par(a, zlevel, shuffle, 0, out, e);
}

int kd_art_encode_par(kd_art *a, int zlevel, int shuffle, int threads, kd_buf *out, kd_err *e)
{
    if (zlevel < 0 || zlevel > 9)
        return kd_fail_usage(e, "compression level %d is not in 0..9", zlevel);
    if (out->err)
        return kd_fail(e, "out of memory");
    size_t start = out->len;
    uint64_t table = (uint64_t)a->n * KD_ENTRY_BYTES;
    kd_art_content_id(a);

    /* the chunks, and room for each at a fixed place in the output (compacted below) */
    uint64_t nc = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        kd_section *s = &a->sec[i];
        size_t elem = (s->type == KD_F32 || s->type == KD_F64) ? kd_type_size(s->type) : 0;
        s->flags &= KD_FLAG_VOLATILE;
        if (shuffle && elem && s->bytes >= 2 * elem)
            s->flags |= KD_FLAG_SHUFFLE;
        nc += s->bytes ? (s->bytes + KD_CHUNK - 1) / KD_CHUNK : 1;
    }
    enc_chunk *c = nc <= UINT32_MAX ? kd_alloc_array(nc, sizeof *c) : NULL;
    if (!c)
        return kd_fail(e, "out of memory");
    uint64_t room = KD_HEADER_BYTES + table;
    uint32_t k = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        const kd_section *s = &a->sec[i];
        room += 2;  /* zlib header */
        uint64_t lo = 0;
        do {
            uint64_t hi = s->bytes - lo > KD_CHUNK ? lo + KD_CHUNK : s->bytes;
            /* a raw deflate's bound, plus the sync marker and stored-block slack */
            size_t cap = (size_t)(hi - lo) + ((size_t)(hi - lo) >> 8) + 64;
            c[k] = (enc_chunk){ .sec = i, .lo = lo, .hi = hi, .out = (size_t)room, .cap = cap };
            room += cap;
            lo = hi;
            k++;
        } while (lo < s->bytes);
        room += 4;  /* Adler-32 */
    }
    if (room > SIZE_MAX - start || kd_buf_reserve(out, (size_t)room)) {
        free(c);
        return kd_fail(e, "out of memory");
    }
    for (uint32_t x = 0; x < k; x++)
        c[x].out += start;

    enc_job j = { .a = a, .zlevel = zlevel, .c = c, .nc = k, .out = out->p };
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, 0);
    uint64_t raw = 0;
    for (uint32_t i = 0; i < a->n; i++)
        raw += a->sec[i].bytes;
    enc_run(&j, raw, threads);
    int failed = atomic_load(&j.failed);
    if (failed) {
        free(c);
        return failed == 1 ? kd_fail(e, "out of memory")
                           : kd_fail(e, "section '%s': compression failed", a->sec[failed - 2].name);
    }

    /* compact: header, then per section its zlib header, chunks in order, Adler-32 */
    uint8_t *p = out->p;
    size_t w = start + KD_HEADER_BYTES + (size_t)table;
    k = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        kd_section *s = &a->sec[i];
        size_t s0 = w;
        zlib_header(p + w, zlevel, sec_shuffled(s));
        w += 2;
        uint32_t adler = 1;
        do {
            memmove(p + w, p + c[k].out, c[k].len);  /* never forward: w <= c[k].out */
            w += c[k].len;
            adler = (uint32_t)adler32_combine(adler, c[k].adler, (z_off_t)(c[k].hi - c[k].lo));
            k++;
        } while (k < j.nc && c[k].sec == i);
        p[w] = (uint8_t)(adler >> 24);
        p[w + 1] = (uint8_t)(adler >> 16);
        p[w + 2] = (uint8_t)(adler >> 8);
        p[w + 3] = (uint8_t)adler;
        w += 4;
        s->comp_bytes = w - s0;
    }
    free(c);
    out->len = w;

    uint8_t *h = out->p + start;
    memcpy(h, MAGIC, 8);
    a->version = kd_art_min_version(a);
    kd_put_u32(h + 8, a->version);
    kd_put_u32(h + 12, a->kind);
    kd_put_u32(h + 16, a->n);
    kd_put_u32(h + 20, (uint32_t)zlevel);
    kd_put_u64(h + 24, a->content_id);
    kd_put_u64(h + 32, 0);
    for (uint32_t i = 0; i < a->n; i++) {
        const kd_section *s = &a->sec[i];
        uint8_t *t = h + KD_HEADER_BYTES + (size_t)i * KD_ENTRY_BYTES;
        memset(t, 0, KD_ENTRY_BYTES);
        memcpy(t, s->name, strlen(s->name));
        kd_put_u32(t + 32, s->type);
        kd_put_u32(t + 36, s->flags);
        kd_put_u64(t + 40, s->rows);
        kd_put_u64(t + 48, s->cols);
        kd_put_u64(t + 56, s->nnz);
        kd_put_u64(t + 64, s->bytes);
        kd_put_u64(t + 72, s->comp_bytes);
        kd_put_u64(t + 80, s->sum);
    }
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, h, 40);
    XXH3_64bits_update(&st, h + KD_HEADER_BYTES, (size_t)table);
    kd_put_u64(h + 40, XXH3_64bits_digest(&st));
    a->zlevel = (uint32_t)zlevel;
    return 0;
}

int kd_art_save(kd_art *a, const char *path, int zlevel, kd_err *e)
{
    kd_buf b = { 0 };
    int r = kd_art_encode(a, zlevel, &b, e) || kd_write_file(path, b.p, b.len, KD_OUT_BINARY, e) ? -1 : 0;
    kd_buf_free(&b);
    return r;
}

/* ---------------------------------------------------------------- decode */

static int valid_utf8(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n;) {
        uint8_t c = p[i];
        int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || c == 0 || c == 0xc0 || c == 0xc1 || n - i < (uint64_t)len)
            return 0;
        for (int k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
        i += (uint64_t)len;
    }
    return 1;
}

static int check_csr(const kd_section *s, const char *name, kd_err *e)
{
    const uint64_t *ip = kd_csr_indptr(s);
    const uint32_t *ix = kd_csr_indices(s);
    if (ip[0] != 0 || ip[s->rows] != s->nnz)
        return kd_fail(e, "%s: section '%s': bad CSR row offsets", name, s->name);
    for (uint64_t r = 0; r < s->rows; r++)
        if (ip[r + 1] < ip[r])
            return kd_fail(e, "%s: section '%s': CSR row offsets decrease at row %llu", name,
                           s->name, (unsigned long long)r);
    for (uint64_t k = 0; k < s->nnz; k++)
        if (ix[k] >= s->cols)
            return kd_fail(e, "%s: section '%s': CSR column %u out of range (%llu columns)", name,
                           s->name, ix[k], (unsigned long long)s->cols);
    return 0;
}

/* Parses and checks the header and table; fills a (without payloads).  `avail` is the
 * number of bytes present (for a peek, only header+table need to be). */
static int parse_head(const uint8_t *p, size_t n, const char *name, kd_art *a, int whole, kd_err *e)
{
    if (n == 0)
        return kd_fail(e, "%s: empty file", name);
    if (n < 8 || memcmp(p, MAGIC, 8))
        return kd_fail(e, "%s: not a kdrec artifact (bad magic)", name);
    if (n < KD_HEADER_BYTES)
        return kd_fail(e, "%s: truncated header", name);
    uint32_t version = kd_get_u32(p + 8);
    if (version > KD_FORMAT_VERSION)
        return kd_fail(e, "%s: format version %u is newer than this kdrec reads (%u); upgrade kdrec",
                       name, version, KD_FORMAT_VERSION);
    if (version == 0)
        return kd_fail(e, "%s: bad format version 0", name);
    uint32_t nsec = kd_get_u32(p + 16);
    if (nsec > KD_MAX_SECTIONS)
        return kd_fail(e, "%s: header claims %u sections (corrupt header)", name, nsec);
    size_t table = (size_t)nsec * KD_ENTRY_BYTES;
    if (n - KD_HEADER_BYTES < table)
        return kd_fail(e, "%s: truncated section table", name);
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, p, 40);
    XXH3_64bits_update(&st, p + KD_HEADER_BYTES, table);
    if (XXH3_64bits_digest(&st) != kd_get_u64(p + 40))
        return kd_fail(e, "%s: header checksum mismatch (corrupt file)", name);
    a->version = version;
    a->kind = kd_get_u32(p + 12);
    if (!kd_kind_name(a->kind))
        return kd_fail(e, "%s: unknown artifact kind %u (written by a newer kdrec?)", name, a->kind);
    a->zlevel = kd_get_u32(p + 20);
    a->content_id = kd_get_u64(p + 24);
    if (a->zlevel > 9 || kd_get_u64(p + 32) != 0)
        return kd_fail(e, "%s: bad header fields", name);
    a->sec = calloc(nsec ? nsec : 1, sizeof *a->sec);
    if (!a->sec)
        return kd_fail(e, "%s: out of memory", name);
    a->cap = nsec;
    uint64_t total = KD_HEADER_BYTES + (uint64_t)table;
    for (uint32_t i = 0; i < nsec; i++) {
        const uint8_t *t = p + KD_HEADER_BYTES + (size_t)i * KD_ENTRY_BYTES;
        kd_section *s = &a->sec[i];
        if (memchr(t, 0, 32) == NULL)
            return kd_fail(e, "%s: section %u: name not terminated", name, i);
        memcpy(s->name, t, 32);
        if (!valid_name(s->name) || kd_art_find(a, s->name))
            return kd_fail(e, "%s: section %u: bad or duplicate name", name, i);
        s->type = kd_get_u32(t + 32);
        s->flags = kd_get_u32(t + 36);
        s->rows = kd_get_u64(t + 40);
        s->cols = kd_get_u64(t + 48);
        s->nnz = kd_get_u64(t + 56);
        s->bytes = kd_get_u64(t + 64);
        s->comp_bytes = kd_get_u64(t + 72);
        s->sum = kd_get_u64(t + 80);
        a->n = i + 1; /* counted now, so kd_art_find sees it; data stays NULL */
        if (!kd_type_name(s->type))
            return kd_fail(e, "%s: section '%s': unknown section type %u", name, s->name, s->type);
        if (type_version(s->type) > version)
            return kd_fail(e, "%s: section '%s': type %s needs format version %u, the file says %u (corrupt header)",
                           name, s->name, kd_type_name(s->type), type_version(s->type), version);
        uint64_t want, maxraw;
        if (expected_bytes(s->type, s->rows, s->cols, s->nnz, &want) || want != s->bytes)
            return kd_fail(e, "%s: section '%s': shape does not match its size (corrupt or absurd)",
                           name, s->name);
        if (s->flags & ~(KD_FLAG_SHUFFLE | KD_FLAG_VOLATILE) || kd_get_u64(t + 88) != 0)
            return kd_fail(e, "%s: section '%s': unknown flags", name, s->name);
        if (kd_mul(s->comp_bytes, KD_MAX_INFLATE, &maxraw) || kd_add(maxraw, 64, &maxraw) ||
            s->bytes > maxraw || s->bytes > SIZE_MAX)
            return kd_fail(e, "%s: section '%s': size %llu is more than its %llu compressed bytes can hold",
                           name, s->name, (unsigned long long)s->bytes, (unsigned long long)s->comp_bytes);
        if (kd_add(total, s->comp_bytes, &total))
            return kd_fail(e, "%s: section sizes overflow", name);
    }
    if (whole && total != n)
        return kd_fail(e, total > n ? "%s: truncated (%llu of %llu bytes)" : "%s: trailing bytes after the last section (%llu, expected %llu)",
                       name, (unsigned long long)n, (unsigned long long)total);
    return 0;
}

/* Inflates exactly `raw` bytes from src[0..comp) into a buffer that grows only as real
 * output appears, so a header that lies about the size costs nothing: memory follows the
 * bytes actually produced.  0 on success, -1 on corrupt data, -2 when out of memory. */
static int inflate_grow(const uint8_t *src, size_t comp, size_t raw, uint8_t **out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    *out = NULL;
    if (inflateInit(&z) != Z_OK) return -2;
    size_t cap = raw < (64u << 10) ? (raw ? raw : 1) : (64u << 10);
    if (cap < raw && comp * 4 > cap) cap = comp * 4 < raw ? comp * 4 : raw;
    uint8_t *buf = malloc(cap);
    if (!buf) { inflateEnd(&z); return -2; }
    kd_mem_advise_huge(buf, cap);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)comp; /* sections are below 4 GiB of compressed bytes here */
    size_t done = 0;
    int zr = Z_OK;
    for (;;) {
        z.next_out = buf + done;
        z.avail_out = (uInt)(cap - done);
        zr = inflate(&z, Z_NO_FLUSH);
        done = cap - z.avail_out;
        if (zr == Z_STREAM_END || (zr != Z_OK && zr != Z_BUF_ERROR)) break;
        if (z.avail_out == 0) {
            if (cap >= raw) { zr = Z_DATA_ERROR; break; } /* more output than promised */
            size_t ncap = cap * 2 < raw ? cap * 2 : raw;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) { free(buf); inflateEnd(&z); return -2; }
            buf = nb;
            cap = ncap;
        } else if (zr == Z_BUF_ERROR) {
            break; /* input exhausted before the end of the stream */
        }
    }
    inflateEnd(&z);
    if (zr != Z_STREAM_END || done != raw || z.avail_in != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

int kd_art_parse(const uint8_t *p, size_t n, const char *name, kd_art **out, kd_err *e)
{
    *out = NULL;
    kd_art *a = kd_art_new(0);
    if (!a)
        return kd_fail(e, "%s: out of memory", name);
    snprintf(a->src, sizeof a->src, "%s", name);
    if (parse_head(p, n, name, a, 1, e))
        goto fail;
    size_t off = KD_HEADER_BYTES + (size_t)a->n * KD_ENTRY_BYTES;
    for (uint32_t i = 0; i < a->n; i++) {
        kd_section *s = &a->sec[i];
        uint8_t *raw;
        int zr = inflate_grow(p + off, (size_t)s->comp_bytes, (size_t)s->bytes, &raw);
        if (zr) {
            if (zr == -2) kd_fail(e, "%s: section '%s': out of memory", name, s->name);
            else kd_fail(e, "%s: section '%s': corrupt compressed data", name, s->name);
            goto fail;
        }
        off += (size_t)s->comp_bytes;
        size_t elem = kd_type_size(s->type);
        if ((s->flags & KD_FLAG_SHUFFLE) && elem > 1) {
            /* the bytes are real now, so this allocation is justified by them */
            uint8_t *plain = malloc(s->bytes ? (size_t)s->bytes : 1);
            if (!plain) {
                free(raw);
                kd_fail(e, "%s: out of memory", name);
                goto fail;
            }
            kd_unshuffle(plain, raw, (size_t)s->bytes, elem);
            free(raw);
            raw = plain;
        }
        s->data = raw;
        s->owned = 1;
        if (XXH3_64bits(s->data, (size_t)s->bytes) != s->sum) {
            kd_fail(e, "%s: section '%s': checksum mismatch", name, s->name);
            goto fail;
        }
        if ((s->type == KD_CSR && check_csr(s, name, e)) ||
            (s->type == KD_TEXT && !valid_utf8(s->data, s->bytes) &&
             kd_fail(e, "%s: section '%s': text is not valid UTF-8", name, s->name)))
            goto fail;
    }
    uint64_t claimed = a->content_id;
    if (kd_art_content_id(a) != claimed) {
        kd_fail(e, "%s: content ID mismatch (corrupt header)", name);
        goto fail;
    }
    *out = a;
    return 0;
fail:
    kd_art_free(a);
    return -1;
}

int kd_art_load(const char *path, uint32_t want_kind, kd_art **out, kd_err *e)
{
    kd_buf b = { 0 };
    *out = NULL;
    if (kd_read_all(path, &b, e))
        return -1;
    int r = kd_art_parse(b.p, b.len, kd_in_name(path), out, e);
    kd_buf_free(&b);
    if (r == 0 && want_kind && (*out)->kind != want_kind) {
        kd_fail(e, "%s: is a %s, not a %s", kd_in_name(path), kd_kind_name((*out)->kind),
                kd_kind_name(want_kind));
        kd_art_free(*out);
        *out = NULL;
        return -1;
    }
    return r;
}

int kd_art_peek(const char *path, uint32_t *kind, uint64_t *content_id, kd_err *e)
{
    FILE *f = kd_open_in(path, e);
    if (!f)
        return -1;
    uint8_t head[KD_HEADER_BYTES];
    size_t got = fread(head, 1, sizeof head, f);
    const char *name = kd_in_name(path);
    kd_art *a = kd_art_new(0);
    int r = -1;
    if (!a) {
        kd_fail(e, "%s: out of memory", name);
        goto done;
    }
    if (got < sizeof head) {
        parse_head(head, got, name, a, 0, e);
        goto done;
    }
    uint32_t nsec = kd_get_u32(head + 16);
    if (memcmp(head, MAGIC, 8) || nsec > KD_MAX_SECTIONS) {
        parse_head(head, got, name, a, 0, e);
        goto done;
    }
    size_t n = KD_HEADER_BYTES + (size_t)nsec * KD_ENTRY_BYTES;
    uint8_t *buf = malloc(n);
    if (!buf) {
        kd_fail(e, "%s: out of memory", name);
        goto done;
    }
    memcpy(buf, head, sizeof head);
    got += fread(buf + sizeof head, 1, n - sizeof head, f);
    r = parse_head(buf, got, name, a, 0, e);
    free(buf);
    if (r == 0) {
        *kind = a->kind;
        *content_id = a->content_id;
    }
done:
    kd_art_free(a);
    kd_close_in(f);
    return r;
}
