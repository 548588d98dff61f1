/* kd_rank: packed item panels, register-tiled FMA scoring per SIMD path, fused top-K. */
#include "kd_rank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define KD_RANK_X86 1
#include <immintrin.h>
#define KD_T512 __attribute__((target("avx512f,avx2,fma")))
#define KD_T256 __attribute__((target("avx2,fma")))
#endif
#define KD_INLINE static inline __attribute__((always_inline))

#define MR 6        /* users per register tile (AVX-512: 6 x 4 zmm = 24 accumulators) */
#define CHUNK 60u   /* users scored against one panel while it is in L1: their rows, 15 KB
                     * at d = 64, and the panel, 16.6 KB, fit a 48 KB L1 together */

/* ---------------------------------------------------------------- choosing the path */

static int forced_isa = -1;

int kd_rank_isa_supported(int isa)
{
#ifdef KD_RANK_X86
    __builtin_cpu_init();
    if (isa == KD_ISA_AVX512) return __builtin_cpu_supports("avx512f");
    if (isa == KD_ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == KD_ISA_GENERIC;
}

const char *kd_rank_isa_name(int isa)
{
    static const char *const names[KD_N_ISA] = { "generic", "avx2", "avx512" };
    return isa >= 0 && isa < KD_N_ISA ? names[isa] : "?";
}

int kd_rank_force_isa(int isa)
{
    if (isa >= KD_N_ISA || (isa >= 0 && !kd_rank_isa_supported(isa))) return -1;
    forced_isa = isa < 0 ? -1 : isa;
    return 0;
}

static int pick_isa(kd_err *e)
{
    if (forced_isa >= 0) return forced_isa;
    const char *env = getenv("KD_SIMD");
    if (env && *env) {
        for (int isa = 0; isa < KD_N_ISA; isa++)
            if (!strcmp(env, kd_rank_isa_name(isa))) {
                if (kd_rank_isa_supported(isa)) return isa;
                return kd_fail(e, "KD_SIMD=%s: this CPU cannot run that path", env);
            }
        return kd_fail(e, "KD_SIMD=%s: expected avx512, avx2 or generic", env);
    }
    for (int isa = KD_N_ISA - 1; isa > 0; isa--)
        if (kd_rank_isa_supported(isa)) return isa;
    return KD_ISA_GENERIC;
}

/* ---------------------------------------------------------------- packing */

int kd_ranker_init(kd_ranker *r, const kd_model *m, kd_err *e)
{
    memset(r, 0, sizeof *r);
    int isa = pick_isa(e);
    if (isa < 0) return -1;
    r->m = m;
    r->isa = isa;
    r->dim = m->dim;
    r->n_items = m->n_items;
    r->items_pad = (m->n_items + 31) & ~31u;
    r->n_panels = (m->n_items + KD_RANK_PANEL - 1) / KD_RANK_PANEL;
    r->panel_floats = (size_t)(1 + m->dim) * KD_RANK_PANEL;
    uint64_t n = (uint64_t)(r->n_panels ? r->n_panels : 1) * (1 + (uint64_t)m->dim) * KD_RANK_PANEL;
    void *mem;
    if (n > SIZE_MAX / 4 || posix_memalign(&mem, 64, (size_t)n * 4))
        return kd_fail(e, "out of memory");
    memset(mem, 0, (size_t)n * 4);
    r->panels = mem;
    for (uint32_t i = 0; i < m->n_items; i++) {
        float *p = r->panels + (size_t)(i / KD_RANK_PANEL) * r->panel_floats + i % KD_RANK_PANEL;
        const float *q = m->Q + (size_t)i * m->stride;
        p[0] = m->bi[i];
        for (uint32_t k = 0; k < m->dim; k++) p[(size_t)(1 + k) * KD_RANK_PANEL] = q[k];
    }
    return 0;
}

void kd_ranker_free(kd_ranker *r)
{
    free(r->panels);
    memset(r, 0, sizeof *r);
}

float kd_rank_score_ref(const kd_model *m, uint32_t u, uint32_t i)
{
    const float *p = m->P + (size_t)u * m->stride, *q = m->Q + (size_t)i * m->stride;
    float s = m->bi[i] + m->bu[u];
    for (uint32_t k = 0; k < m->dim; k++) s = fmaf(p[k], q[k], s);
    return s;
}

/* ---------------------------------------------------------------- selection */

/* "a ranks before b": higher score, or equal score and lower index */
static inline int before(float sa, uint32_t ia, float sb, uint32_t ib)
{
    return sa > sb || (sa == sb && ia < ib);
}

/* min-heap on "ranks before": the root is the worst of the current top K */
static void sift_down(float *hv, uint32_t *hi, uint32_t n, uint32_t k)
{
    for (;;) {
        uint32_t l = 2 * k + 1, w = k;
        if (l < n && before(hv[w], hi[w], hv[l], hi[l])) w = l;
        if (l + 1 < n && before(hv[w], hi[w], hv[l + 1], hi[l + 1])) w = l + 1;
        if (w == k) return;
        float tv = hv[k]; hv[k] = hv[w]; hv[w] = tv;
        uint32_t ti = hi[k]; hi[k] = hi[w]; hi[w] = ti;
        k = w;
    }
}

static void sift_up(float *hv, uint32_t *hi, uint32_t k)
{
    while (k > 0) {
        uint32_t p = (k - 1) / 2;
        if (!before(hv[p], hi[p], hv[k], hi[k])) return;
        float tv = hv[k]; hv[k] = hv[p]; hv[p] = tv;
        uint32_t ti = hi[k]; hi[k] = hi[p]; hi[p] = ti;
        k = p;
    }
}

/* heap -> rank order: pop the worst to the back */
static void heap_sort(float *vals, uint32_t *items, uint32_t h)
{
    for (uint32_t k = h; k > 1; k--) {
        float tv = vals[0]; vals[0] = vals[k - 1]; vals[k - 1] = tv;
        uint32_t ti = items[0]; items[0] = items[k - 1]; items[k - 1] = ti;
        sift_down(vals, items, k - 1, 0);
    }
}

/* One user's running top K.  Candidates arrive in increasing item order, so a tie never
 * beats a kept item: once K are in, only a strictly higher score enters, and the
 * exclusion rows are walked forward, each entry passed at most once. */
typedef struct topk_state {
    float    *v;
    uint32_t *it;
    uint32_t  n, K;
    float     thr; /* -inf until K candidates are in, then the K-th score */
    const uint32_t *ex[2];
    uint32_t  exl[2], pos[2];
} topk_state;

/* Offers the items base + b for each bit b of mask (set where s[b] > thr at tile time). */
static void offer(topk_state *t, const float *s, uint32_t base, uint64_t mask, uint32_t n_items)
{
    while (mask) {
        int b = __builtin_ctzll(mask);
        mask &= mask - 1;
        uint32_t i = base + (uint32_t)b;
        float v = s[b];
        if (i >= n_items) return; /* panel padding */
        if (!(v > t->thr)) continue; /* the threshold rose since the tile's compare */
        int excluded = 0;
        for (int x = 0; x < 2; x++) {
            while (t->pos[x] < t->exl[x] && t->ex[x][t->pos[x]] < i) t->pos[x]++;
            excluded |= t->pos[x] < t->exl[x] && t->ex[x][t->pos[x]] == i;
        }
        if (excluded) continue;
        if (t->n < t->K) {
            t->v[t->n] = v;
            t->it[t->n] = i;
            sift_up(t->v, t->it, t->n++);
            if (t->n == t->K) t->thr = t->v[0];
        } else {
            t->v[0] = v;
            t->it[0] = i;
            sift_down(t->v, t->it, t->K, 0);
            t->thr = t->v[0];
        }
    }
}

/* Where a tile's scores go: rows of a score matrix, or the users' running top K. */
typedef struct sink {
    float      *out;    /* score rows, user x at out + x * ostride, items < olim */
    size_t      ostride;
    uint32_t    olim;
    topk_state *tk;     /* else: state of user x */
    uint32_t    n_items;
} sink;

/* ---------------------------------------------------------------- baseline path */

static void drive_generic(const kd_ranker *r, const uint32_t *users, uint32_t nu, const sink *sk)
{
    const kd_model *m = r->m;
    float acc[KD_RANK_PANEL];
    for (uint32_t pi = 0; pi < r->n_panels; pi++) {
        const float *pan = r->panels + (size_t)pi * r->panel_floats;
        uint32_t base = pi * KD_RANK_PANEL;
        for (uint32_t x = 0; x < nu; x++) {
            const float *p = m->P + (size_t)users[x] * m->stride;
            float bu = m->bu[users[x]];
            for (uint32_t j = 0; j < KD_RANK_PANEL; j++) acc[j] = pan[j] + bu;
            for (uint32_t k = 0; k < r->dim; k++) {
                const float *q = pan + (size_t)(1 + k) * KD_RANK_PANEL;
                for (uint32_t j = 0; j < KD_RANK_PANEL; j++) acc[j] = fmaf(p[k], q[j], acc[j]);
            }
            if (sk->out) {
                for (uint32_t j = 0; j < KD_RANK_PANEL && base + j < sk->olim; j++)
                    sk->out[x * sk->ostride + base + j] = acc[j];
            } else {
                topk_state *t = &sk->tk[x];
                uint64_t mask = 0;
                for (uint32_t j = 0; j < KD_RANK_PANEL; j++) mask |= (uint64_t)(acc[j] > t->thr) << j;
                if (mask) offer(t, acc, base, mask, sk->n_items);
            }
        }
    }
}

#ifdef KD_RANK_X86
/* ---------------------------------------------------------------- AVX-512 path */

/* mr users x np consecutive panels (np * 4 zmm per user), the whole k loop in registers */
KD_INLINE KD_T512 void tile512(const int mr, const int np, const kd_ranker *r, const uint32_t *users, uint32_t x0,
                               uint32_t pi, const sink *sk)
{
    const kd_model *m = r->m;
    const size_t pf = r->panel_floats;
    const float *pan = r->panels + (size_t)pi * pf;
    const float *p[MR];
    __m512 c[MR][16];
    _Pragma("GCC unroll 16")
    for (int u = 0; u < mr; u++) {
        p[u] = m->P + (size_t)users[x0 + (uint32_t)u] * m->stride;
        __m512 bu = _mm512_set1_ps(m->bu[users[x0 + (uint32_t)u]]);
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 4 * np; j++) c[u][j] = _mm512_add_ps(_mm512_load_ps(pan + (size_t)(j / 4) * pf + (j % 4) * 16), bu);
    }
    const float *q = pan + KD_RANK_PANEL;
    for (uint32_t k = 0; k < r->dim; k++, q += KD_RANK_PANEL) {
        __m512 qv[16];
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 4 * np; j++) qv[j] = _mm512_load_ps(q + (size_t)(j / 4) * pf + (j % 4) * 16);
        _Pragma("GCC unroll 16")
        for (int u = 0; u < mr; u++) {
            __m512 pk = _mm512_set1_ps(p[u][k]);
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 4 * np; j++) c[u][j] = _mm512_fmadd_ps(pk, qv[j], c[u][j]);
        }
    }
    _Pragma("GCC unroll 16")
    for (int u = 0; u < mr; u++) {
        uint32_t x = x0 + (uint32_t)u;
        _Pragma("GCC unroll 16")
        for (int pp = 0; pp < np; pp++) {
            uint32_t base = (pi + (uint32_t)pp) * KD_RANK_PANEL;
            if (sk->out) {
                _Pragma("GCC unroll 16")
                for (int j = 0; j < 4; j++)
                    if (base + (uint32_t)j * 16 < sk->olim) _mm512_storeu_ps(sk->out + x * sk->ostride + base + j * 16, c[u][4 * pp + j]);
                continue;
            }
            topk_state *t = &sk->tk[x];
            __m512 thr = _mm512_set1_ps(t->thr);
            uint64_t mask = 0;
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 4; j++)
                mask |= (uint64_t)_mm512_cmp_ps_mask(c[u][4 * pp + j], thr, _CMP_GT_OQ) << (16 * j);
            if (__builtin_expect(mask != 0, 0)) {
                float s[KD_RANK_PANEL] __attribute__((aligned(64)));
                _Pragma("GCC unroll 16")
                for (int j = 0; j < 4; j++) _mm512_store_ps(s + 16 * j, c[u][4 * pp + j]);
                offer(t, s, base, mask, sk->n_items);
            }
        }
    }
}

KD_T512 static void drive_avx512(const kd_ranker *r, const uint32_t *users, uint32_t nu, const sink *sk)
{
    uint32_t pi = 0;
    if (nu == 1) /* one user: 4 panels at a time, 16 independent chains to cover FMA latency */
        for (; pi + 4 <= r->n_panels; pi += 4) tile512(1, 4, r, users, 0, pi, sk);
    for (; pi < r->n_panels; pi++) {
        uint32_t x = 0;
        for (; x + MR <= nu; x += MR) tile512(MR, 1, r, users, x, pi, sk);
        switch (nu - x) {
        case 5: tile512(5, 1, r, users, x, pi, sk); break;
        case 4: tile512(4, 1, r, users, x, pi, sk); break;
        case 3: tile512(3, 1, r, users, x, pi, sk); break;
        case 2: tile512(2, 1, r, users, x, pi, sk); break;
        case 1: tile512(1, 1, r, users, x, pi, sk); break;
        }
    }
}

/* ---------------------------------------------------------------- AVX2 path */

/* mr users x ns 16-item slices of panel pi starting at slice s0 (2 ymm each) */
KD_INLINE KD_T256 void tile256(const int mr, const int ns, const kd_ranker *r, const uint32_t *users, uint32_t x0,
                               uint32_t pi, int s0, const sink *sk)
{
    const kd_model *m = r->m;
    const float *pan = r->panels + (size_t)pi * r->panel_floats + s0 * 16;
    const float *p[MR];
    __m256 c[MR][8];
    _Pragma("GCC unroll 16")
    for (int u = 0; u < mr; u++) {
        p[u] = m->P + (size_t)users[x0 + (uint32_t)u] * m->stride;
        __m256 bu = _mm256_set1_ps(m->bu[users[x0 + (uint32_t)u]]);
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 2 * ns; j++) c[u][j] = _mm256_add_ps(_mm256_load_ps(pan + j * 8), bu);
    }
    const float *q = pan + KD_RANK_PANEL;
    for (uint32_t k = 0; k < r->dim; k++, q += KD_RANK_PANEL) {
        __m256 qv[8];
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 2 * ns; j++) qv[j] = _mm256_load_ps(q + j * 8);
        _Pragma("GCC unroll 16")
        for (int u = 0; u < mr; u++) {
            __m256 pk = _mm256_broadcast_ss(p[u] + k);
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 2 * ns; j++) c[u][j] = _mm256_fmadd_ps(pk, qv[j], c[u][j]);
        }
    }
    _Pragma("GCC unroll 16")
    for (int u = 0; u < mr; u++) {
        uint32_t x = x0 + (uint32_t)u, base = pi * KD_RANK_PANEL + (uint32_t)s0 * 16;
        if (sk->out) {
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 2 * ns; j++)
                if (base + (uint32_t)j * 8 < sk->olim) _mm256_storeu_ps(sk->out + x * sk->ostride + base + j * 8, c[u][j]);
            continue;
        }
        topk_state *t = &sk->tk[x];
        __m256 thr = _mm256_set1_ps(t->thr);
        uint64_t mask = 0;
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 2 * ns; j++)
            mask |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(c[u][j], thr, _CMP_GT_OQ)) << (8 * j);
        if (__builtin_expect(mask != 0, 0)) {
            float s[KD_RANK_PANEL] __attribute__((aligned(32)));
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 2 * ns; j++) _mm256_store_ps(s + 8 * j, c[u][j]);
            offer(t, s, base, mask, sk->n_items);
        }
    }
}

KD_T256 static void drive_avx2(const kd_ranker *r, const uint32_t *users, uint32_t nu, const sink *sk)
{
    for (uint32_t pi = 0; pi < r->n_panels; pi++) {
        if (nu == 1) { /* one user: the whole panel, 8 independent chains */
            tile256(1, 4, r, users, 0, pi, 0, sk);
            continue;
        }
        /* slices outer, users inner: each user still sees its items in increasing order */
        for (int s0 = 0; s0 < 4; s0++) {
            uint32_t x = 0;
            for (; x + MR <= nu; x += MR) tile256(MR, 1, r, users, x, pi, s0, sk);
            switch (nu - x) {
            case 5: tile256(5, 1, r, users, x, pi, s0, sk); break;
            case 4: tile256(4, 1, r, users, x, pi, s0, sk); break;
            case 3: tile256(3, 1, r, users, x, pi, s0, sk); break;
            case 2: tile256(2, 1, r, users, x, pi, s0, sk); break;
            case 1: tile256(1, 1, r, users, x, pi, s0, sk); break;
            }
        }
    }
}
#endif

static void drive(const kd_ranker *r, const uint32_t *users, uint32_t nu, const sink *sk)
{
#ifdef KD_RANK_X86
    if (r->isa == KD_ISA_AVX512) { drive_avx512(r, users, nu, sk); return; }
    if (r->isa == KD_ISA_AVX2) { drive_avx2(r, users, nu, sk); return; }
#endif
    drive_generic(r, users, nu, sk);
}

/* ---------------------------------------------------------------- entry points */

void kd_rank_score_block(const kd_ranker *r, uint32_t u0, uint32_t nu, float *out)
{
    uint32_t users[KD_RANK_BLOCK];
    for (uint32_t x = 0; x < nu && x < KD_RANK_BLOCK; x++) users[x] = u0 + x;
    sink sk = { .out = out, .ostride = r->items_pad, .olim = r->items_pad, .n_items = r->n_items };
    drive(r, users, nu < KD_RANK_BLOCK ? nu : KD_RANK_BLOCK, &sk);
}

void kd_rank_score_user(const kd_ranker *r, uint32_t u, float *scores)
{
    kd_rank_score_block(r, u, 1, scores);
}

void kd_rank_topk(const kd_ranker *r, const uint32_t *users, uint32_t nu, const kd_csr *const *excl, int nx,
                  uint32_t K, uint32_t *items, float *vals, uint32_t *counts)
{
    topk_state st[CHUNK];
    for (uint32_t c0 = 0; c0 < nu; c0 += CHUNK) {
        uint32_t n = nu - c0 < CHUNK ? nu - c0 : CHUNK;
        for (uint32_t x = 0; x < n; x++) {
            uint32_t u = users[c0 + x];
            topk_state *t = &st[x];
            memset(t, 0, sizeof *t);
            t->v = vals + (size_t)(c0 + x) * K;
            t->it = items + (size_t)(c0 + x) * K;
            t->K = K;
            t->thr = -INFINITY;
            for (int e = 0; e < nx && e < 2; e++) {
                t->ex[e] = excl[e]->idx + excl[e]->indptr[u];
                t->exl[e] = kd_csr_len(excl[e], u);
            }
        }
        if (K > 0) {
            sink sk = { .tk = st, .n_items = r->n_items };
            drive(r, users + c0, n, &sk);
        }
        for (uint32_t x = 0; x < n; x++) {
            heap_sort(st[x].v, st[x].it, st[x].n);
            counts[c0 + x] = st[x].n;
        }
    }
}

uint32_t kd_topk(float *scores, uint32_t n, const uint32_t *const *excl, const uint32_t *excl_len,
                 int nx, uint32_t K, uint32_t *items, float *vals)
{
    uint32_t h = 0, i = 0;
    if (K == 0) return 0;
    /* excluded items drop out of the race: a finite model never scores -inf */
    for (int x = 0; x < nx; x++)
        for (uint32_t k = 0; k < excl_len[x]; k++)
            if (excl[x][k] < n) scores[excl[x][k]] = -INFINITY;
    for (; i < n && h < K; i++) /* the first K candidates fill the heap */
        if (scores[i] != -INFINITY) {
            vals[h] = scores[i];
            items[h] = i;
            sift_up(vals, items, h++);
        }
    /* items come in increasing index, so a tie never beats an earlier item: only a
     * strictly higher score enters; the branch is almost never taken */
    for (; i < n; i++)
        if (scores[i] > vals[0]) {
            vals[0] = scores[i];
            items[0] = i;
            sift_down(vals, items, K, 0);
        }
    heap_sort(vals, items, h);
    return h;
}

typedef struct cand { float s; uint32_t i; } cand;

static int cmp_cand(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return before(x->s, x->i, y->s, y->i) ? -1 : before(y->s, y->i, x->s, x->i) ? 1 : 0;
}

uint32_t kd_topk_naive(const float *scores, uint32_t n, const uint32_t *const *excl,
                       const uint32_t *excl_len, int nx, uint32_t K, uint32_t *items, float *vals)
{
    cand *c = malloc((size_t)(n ? n : 1) * sizeof *c);
    uint32_t m = 0;
    if (!c) return 0;
    for (uint32_t i = 0; i < n; i++) {
        int skip = 0;
        for (int x = 0; x < nx; x++)
            for (uint32_t k = 0; k < excl_len[x]; k++)
                skip |= excl[x][k] == i;
        if (!skip) c[m++] = (cand){ scores[i], i };
    }
    qsort(c, m, sizeof *c, cmp_cand);
    uint32_t h = m < K ? m : K;
    for (uint32_t k = 0; k < h; k++) {
        items[k] = c[k].i;
        vals[k] = c[k].s;
    }
    free(c);
    return h;
}
