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

/* Slot order: items by descending score for the mean user (p̄·q_i + b_i, ties by index).
 * Selection does not need items in index order (it compares score, then index), so
 * offering the likely winners first only raises each user's threshold early, and the
 * later panels, most of the catalogue, then admit almost nothing.  Scores and results
 * are the same for any order. */
typedef struct slot_key { double k; uint32_t i; } slot_key;

static int cmp_slot(const void *a, const void *b)
{
    const slot_key *x = a, *y = b;
    if (x->k != y->k) return x->k > y->k ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int kd_ranker_init(kd_ranker *r, const kd_model *m, kd_err *e)
{
    return kd_ranker_init_ex(r, m, 0, e);
}

int kd_ranker_init_ex(kd_ranker *r, const kd_model *m, int ordered, kd_err *e)
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
    uint64_t slots = (uint64_t)(r->n_panels ? r->n_panels : 1) * KD_RANK_PANEL;
    uint64_t n = slots * (1 + (uint64_t)m->dim);
    void *mem;
    double *mean = kd_alloc_array(m->dim ? m->dim : 1, 8);
    slot_key *key = kd_alloc_array(m->n_items ? m->n_items : 1, sizeof *key);
    r->slot_item = kd_alloc_array(slots, 4);
    r->ordered = ordered;
    if (n > SIZE_MAX / 4 || !mean || !key || !r->slot_item || posix_memalign(&mem, 64, (size_t)n * 4)) {
        free(mean); free(key); free(r->slot_item);
        r->slot_item = NULL;
        return kd_fail(e, "out of memory");
    }
    memset(mem, 0, (size_t)n * 4);
    r->panels = mem;
    for (uint32_t k = 0; k < m->dim; k++) mean[k] = 0;
    for (uint32_t u = 0; u < m->n_users; u++)
        for (uint32_t k = 0; k < m->dim; k++) mean[k] += m->P[(size_t)u * m->stride + k];
    for (uint32_t i = 0; i < m->n_items; i++) {
        double s = m->bi[i];
        for (uint32_t k = 0; k < m->dim; k++) s += mean[k] / (m->n_users ? m->n_users : 1) * m->Q[(size_t)i * m->stride + k];
        key[i] = (slot_key){ s, i };
    }
    if (ordered) qsort(key, m->n_items, sizeof *key, cmp_slot);
    for (uint64_t x = 0; x < slots; x++) r->slot_item[x] = x < m->n_items ? key[x].i : UINT32_MAX;
    for (uint32_t x = 0; x < m->n_items; x++) {
        uint32_t i = key[x].i;
        float *p = r->panels + (size_t)(x / KD_RANK_PANEL) * r->panel_floats + x % KD_RANK_PANEL;
        const float *q = m->Q + (size_t)i * m->stride;
        p[0] = m->bi[i];
        for (uint32_t k = 0; k < m->dim; k++) p[(size_t)(1 + k) * KD_RANK_PANEL] = q[k];
    }
    free(mean);
    free(key);
    return 0;
}

void kd_ranker_free(kd_ranker *r)
{
    free(r->panels);
    free(r->slot_item);
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

/* Reservoir selection (FAISS's scheme): candidates that reach the threshold are appended
 * to a buffer of `cap` > K entries; when it fills, a quickselect keeps the K best and the
 * threshold becomes the K-th best score.  Items arrive in slot order, not index order,
 * so a score equal to the threshold is admitted (it may have the lower index) and the
 * selection breaks the tie; only admitted candidates are looked up in the user's sorted
 * exclusion rows.  Far fewer moves than a heap insert per admitted candidate.
 *
 * An entry is one 64-bit key, (score in descending order, item): "ranks before" is then
 * one unsigned compare, and selection and the final sort move 8 bytes, not two arrays.
 * The key of -0 is that of +0 (they tie, as before() has it); a result's score is read
 * back from its key, and a zero is recomputed by kd_rank_score_ref (the kernel's chain,
 * so its sign comes out as the kernel's did).  NaN never enters (v >= thr is false). */
typedef struct topk_state {
    uint64_t *key;
    uint32_t  n, K, cap;
    float     thr; /* -inf until the buffer first fills, then the K-th best score so far */
    const uint32_t *ex[2];
    uint32_t  exl[2];
} topk_state;

static inline uint64_t rank_key(float v, uint32_t i)
{
    union { float f; uint32_t u; } b = { v == 0 ? 0.0f : v };
    uint32_t asc = b.u & 0x80000000u ? ~b.u : b.u | 0x80000000u; /* increasing in v */
    return (uint64_t)~asc << 32 | i;
}

static inline float key_score(uint64_t k)
{
    uint32_t asc = ~(uint32_t)(k >> 32);
    union { uint32_t u; float f; } b = { asc & 0x80000000u ? asc & 0x7fffffffu : ~asc };
    return b.f;
}

/* One Hoare partition of a[l..r] (l < r) around the median of its first, middle and last
 * keys: on return a[l..*j] <= pivot <= a[*i..r], and *j < *i. */
static inline void partition_keys(uint64_t *a, int64_t l, int64_t r, int64_t *pi, int64_t *pj)
{
    uint64_t x = a[l], y = a[l + (r - l) / 2], z = a[r];
    uint64_t pv = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    int64_t i = l, j = r;
    while (i <= j) {
        while (a[i] < pv) i++;
        while (pv < a[j]) j--;
        if (i <= j) {
            uint64_t t = a[i]; a[i] = a[j]; a[j] = t;
            i++;
            j--;
        }
    }
    *pi = i;
    *pj = j;
}

/* Reorders a[0..n) so that [0, k) hold the k smallest keys and position k-1 the k-th
 * (nth_element, median-of-three pivot; keys are distinct: rank_key carries the item id, and
 * on many equal keys this Lomuto scheme would degrade to O(n^2)).  The partition is Lomuto's
 * without a branch (every element is swapped, the boundary moves by the compare): the
 * keys are scores, so a branching partition mispredicts about every other compare, and on
 * a random model the reservoir's cuts were a third of fused scoring at d = 32. */
static void select_keys(uint64_t *a, uint32_t n, uint32_t k)
{
    uint32_t l = 0, r = n, target = k - 1; /* the k-th smallest is in a[l..r) */
    while (r - l > 1) {
        uint32_t mid = l + (r - l) / 2, j = l;
        uint64_t x = a[l], y = a[mid], z = a[r - 1];
        uint32_t m = x < y ? (y < z ? mid : x < z ? r - 1 : l) : (x < z ? l : y < z ? r - 1 : mid);
        uint64_t pv = a[m];
        a[m] = a[r - 1];
        a[r - 1] = pv;
        for (uint32_t i = l; i < r - 1; i++) {
            uint64_t v = a[i];
            a[i] = a[j];
            a[j] = v;
            j += v < pv;
        }
        a[r - 1] = a[j];
        a[j] = pv;
        if (target == j) return;
        if (target < j) r = j;
        else l = j + 1;
    }
}

/* Ascending sort of n distinct keys: quicksort down to runs of 16, then one insertion pass.
 * Always inline: kd_rank_topk keeps it inline although the test hook below calls it too. */
KD_INLINE void sort_keys(uint64_t *a, uint32_t n)
{
    int64_t stack[2 * 64], sp = 0, l = 0, r = (int64_t)n - 1;
    for (;;) {
        while (r - l > 16) {
            int64_t i, j;
            partition_keys(a, l, r, &i, &j);
            /* the smaller side first keeps the stack within log2(n) frames */
            if (j - l < r - i) { stack[sp++] = i; stack[sp++] = r; r = j; }
            else { stack[sp++] = l; stack[sp++] = j; l = i; }
        }
        if (!sp) break;
        r = stack[--sp];
        l = stack[--sp];
    }
    for (uint32_t x = 1; x < n; x++) {
        uint64_t v = a[x];
        uint32_t y = x;
        for (; y > 0 && a[y - 1] > v; y--) a[y] = a[y - 1];
        a[y] = v;
    }
}

/* the two above, exposed for the unit tests (kd_rank.h) */
void kd_rank_select_keys(uint64_t *a, uint32_t n, uint32_t k)
{
    select_keys(a, n, k);
}

void kd_rank_sort_keys(uint64_t *a, uint32_t n)
{
    sort_keys(a, n);
}

static inline int sorted_has(const uint32_t *a, uint32_t n, uint32_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && a[lo] == x;
}

/* Offers the slots base + b for each bit b of mask (set where s[b] >= thr at tile time). */
static void offer(topk_state *t, const float *s, const uint32_t *slot_item, uint32_t base, uint64_t mask)
{
    while (mask) {
        int b = __builtin_ctzll(mask);
        mask &= mask - 1;
        uint32_t i = slot_item[base + (uint32_t)b];
        float v = s[b];
        if (i == UINT32_MAX) return; /* padding: the last slots */
        if (!(v >= t->thr)) continue; /* the threshold rose since the tile's compare */
        if ((t->exl[0] && sorted_has(t->ex[0], t->exl[0], i)) || (t->exl[1] && sorted_has(t->ex[1], t->exl[1], i)))
            continue;
        t->key[t->n] = rank_key(v, i);
        if (++t->n == t->cap) {
            select_keys(t->key, t->n, t->K);
            t->n = t->K;
            t->thr = key_score(t->key[t->K - 1]);
        }
    }
}

/* Where a tile's scores go: rows of a score matrix, or the users' running top K. */
typedef struct sink {
    float      *out;    /* score rows, user x at out + x * ostride */
    size_t      ostride;
    topk_state *tk;     /* else: state of user x */
    const uint32_t *slot_item;
    int         ordered; /* slots hold items in mean-user order, else slot = item */
    int         direct;  /* slot = item: a whole panel's scores go straight into the rows */
} sink;

/* store mode: n scores of slots base.. into user x's row, each at its item's place */
static void store_slots(const sink *sk, uint32_t x, uint32_t base, const float *s, uint32_t n)
{
    float *row = sk->out + x * sk->ostride;
    if (!sk->ordered) { /* slot = item: a copy, cut at the row's end */
        if (base < sk->ostride) memcpy(row + base, s, (base + n <= sk->ostride ? n : sk->ostride - base) * 4);
        return;
    }
    for (uint32_t j = 0; j < n; j++) {
        uint32_t i = sk->slot_item[base + j];
        if (i != UINT32_MAX) row[i] = s[j];
    }
}

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
                store_slots(sk, x, base, acc, KD_RANK_PANEL);
            } else {
                topk_state *t = &sk->tk[x];
                uint64_t mask = 0;
                for (uint32_t j = 0; j < KD_RANK_PANEL; j++) mask |= (uint64_t)(acc[j] >= t->thr) << j;
                if (mask) offer(t, acc, sk->slot_item, base, mask);
            }
        }
    }
}

#ifdef KD_RANK_X86
/* ---------------------------------------------------------------- AVX-512 path */

/* mr users x np consecutive panels (np * 4 zmm per user), the whole k loop in registers;
 * pre, if not NULL, is the next panel, prefetched row by row along the k loop.  Score rows
 * with slot = item take the registers as they are (no copy through s[]): at d = 32 the
 * copy and its memcpy cost a fifth of the time. */
KD_INLINE KD_T512 void tile512(const int mr, const int np, const kd_ranker *r, const uint32_t *users, uint32_t x0,
                               uint32_t pi, const float *pre, const sink *sk)
{
    const kd_model *m = r->m;
    const size_t pf = r->panel_floats;
    const float *pan = r->panels + (size_t)pi * pf;
    const float *p[MR];
    __m512 c[MR][16];
    if (pre) _mm_prefetch((const char *)pre, _MM_HINT_T0);
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
        if (pre) {
            const float *n = pre + (size_t)(1 + k) * KD_RANK_PANEL;
            _Pragma("GCC unroll 4")
            for (int j = 0; j < 4; j++) _mm_prefetch((const char *)(n + 16 * j), _MM_HINT_T0);
        }
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
            float s[KD_RANK_PANEL] __attribute__((aligned(64)));
            if (sk->out) {
                if (sk->direct && base + KD_RANK_PANEL <= sk->ostride) {
                    float *row = sk->out + x * sk->ostride + base;
                    _Pragma("GCC unroll 16")
                    for (int j = 0; j < 4; j++) _mm512_storeu_ps(row + 16 * j, c[u][4 * pp + j]);
                    continue;
                }
                _Pragma("GCC unroll 16")
                for (int j = 0; j < 4; j++) _mm512_store_ps(s + 16 * j, c[u][4 * pp + j]);
                store_slots(sk, x, base, s, KD_RANK_PANEL);
                continue;
            }
            topk_state *t = &sk->tk[x];
            __m512 thr = _mm512_set1_ps(t->thr);
            uint64_t mask = 0;
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 4; j++)
                mask |= (uint64_t)_mm512_cmp_ps_mask(c[u][4 * pp + j], thr, _CMP_GE_OQ) << (16 * j);
            if (__builtin_expect(mask != 0, 0)) {
                _Pragma("GCC unroll 16")
                for (int j = 0; j < 4; j++) _mm512_store_ps(s + 16 * j, c[u][4 * pp + j]);
                offer(t, s, sk->slot_item, base, mask);
            }
        }
    }
}

KD_T512 static void drive_avx512(const kd_ranker *r, const uint32_t *users, uint32_t nu, const sink *sk)
{
    uint32_t pi = 0;
    if (nu == 1) /* one user: 4 panels at a time, 16 independent chains to cover FMA latency */
        for (; pi + 4 <= r->n_panels; pi += 4) tile512(1, 4, r, users, 0, pi, NULL, sk);
    /* The panels (6.5 MB at d = 64) stream from L3 once per chunk of users; the middle
     * tile of each panel prefetches the next one, so that the first tiles of the next
     * panel do not wait for it (measured: a few % at 1 and 2 threads). */
    uint32_t pre_x = nu / MR / 2 * MR;
    for (; pi < r->n_panels; pi++) {
        const float *next = pi + 1 < r->n_panels ? r->panels + (size_t)(pi + 1) * r->panel_floats : NULL;
        uint32_t x = 0;
        for (; x + MR <= nu; x += MR) tile512(MR, 1, r, users, x, pi, x == pre_x ? next : NULL, sk);
        switch (nu - x) {
        case 5: tile512(5, 1, r, users, x, pi, NULL, sk); break;
        case 4: tile512(4, 1, r, users, x, pi, NULL, sk); break;
        case 3: tile512(3, 1, r, users, x, pi, NULL, sk); break;
        case 2: tile512(2, 1, r, users, x, pi, NULL, sk); break;
        case 1: tile512(1, 1, r, users, x, pi, NULL, sk); break;
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
        float s[KD_RANK_PANEL] __attribute__((aligned(32)));
        if (sk->out) {
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 2 * ns; j++) _mm256_store_ps(s + 8 * j, c[u][j]);
            store_slots(sk, x, base, s, 16 * (uint32_t)ns);
            continue;
        }
        topk_state *t = &sk->tk[x];
        __m256 thr = _mm256_set1_ps(t->thr);
        uint64_t mask = 0;
        _Pragma("GCC unroll 16")
        for (int j = 0; j < 2 * ns; j++)
            mask |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(c[u][j], thr, _CMP_GE_OQ)) << (8 * j);
        if (__builtin_expect(mask != 0, 0)) {
            _Pragma("GCC unroll 16")
            for (int j = 0; j < 2 * ns; j++) _mm256_store_ps(s + 8 * j, c[u][j]);
            offer(t, s, sk->slot_item, base, mask);
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
    sink sk = { .out = out, .ostride = r->items_pad, .slot_item = r->slot_item, .ordered = r->ordered,
                .direct = !r->ordered };
    drive(r, users, nu < KD_RANK_BLOCK ? nu : KD_RANK_BLOCK, &sk);
}

void kd_rank_score_user(const kd_ranker *r, uint32_t u, float *scores)
{
    kd_rank_score_block(r, u, 1, scores);
}

int kd_rank_topk(const kd_ranker *r, const uint32_t *users, uint32_t nu, const kd_csr *const *excl, int nx,
                 uint32_t K, uint32_t *items, float *vals, uint32_t *counts)
{
    topk_state st[CHUNK];
    uint32_t cap = K + (K > 32 ? K : 32), chunk = nu < CHUNK ? nu : CHUNK;
    uint64_t *keys = K && nu ? kd_alloc_array((uint64_t)chunk * cap, 8) : NULL;
    if (K && nu && !keys) return -1;
    for (uint32_t c0 = 0; c0 < nu; c0 += CHUNK) {
        uint32_t n = nu - c0 < CHUNK ? nu - c0 : CHUNK;
        for (uint32_t x = 0; x < n; x++) {
            uint32_t u = users[c0 + x];
            topk_state *t = &st[x];
            memset(t, 0, sizeof *t);
            t->key = keys + (size_t)x * cap;
            t->K = K;
            t->cap = cap;
            t->thr = -INFINITY;
            for (int e = 0; e < nx && e < 2; e++) {
                t->ex[e] = excl[e]->idx + excl[e]->indptr[u];
                t->exl[e] = kd_csr_len(excl[e], u);
            }
        }
        if (K > 0) {
            sink sk = { .tk = st, .slot_item = r->slot_item };
            drive(r, users + c0, n, &sk);
        }
        for (uint32_t x = 0; x < n; x++) {
            topk_state *t = &st[x];
            uint32_t h = t->n < K ? t->n : K;
            if (t->n > K) select_keys(t->key, t->n, K);
            sort_keys(t->key, h);
            float *ov = vals + (size_t)(c0 + x) * K;
            uint32_t *oi = items + (size_t)(c0 + x) * K;
            for (uint32_t k = 0; k < h; k++) {
                oi[k] = (uint32_t)t->key[k];
                ov[k] = key_score(t->key[k]);
                if (ov[k] == 0) ov[k] = kd_rank_score_ref(r->m, users[c0 + x], oi[k]); /* -0 or +0 */
            }
            counts[c0 + x] = h;
        }
    }
    free(keys);
    return 0;
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
