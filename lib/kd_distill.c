/* kd_distill: margin-MSE, RD, RRD, CE, DCD (user side, item side, both) and RCE-KD as kd_sgd
 * tasks (formulas in kd_distill.h). */
#include "kd_distill.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_eval.h"
#include "kd_train.h"   /* kd_train_run: --lambda auto's candidate runs */
#include "kd_par.h"
#include "kd_prov.h"
#include "kd_rank.h"
#include "kd_rng.h"
#include "kd_vec.h"

int kd_method_parse(const char *name)
{
    for (int m = 0; m < KD_N_METHODS; m++)
        if (!strcmp(name, kd_distill_methods[m].name)) return m;
    return -1;
}

kd_distill_params kd_distill_defaults(int method)
{
    kd_distill_params p = { .method = method, .alpha = 0.5, .temperature = 1, .lambda = 1, .K = 10,
                            .L = 40, .M = 100, .rank_temp = 10, .mu = 0.1, .tau = 1, .eps = 0.1,
                            .item_lambda = 0.5, .beta = 3, .kd_decay = 1, .refresh = 1 };
    if (kd_distill_methods[method].defaults) kd_distill_methods[method].defaults(&p);
    return p;
}

void kd_distill_set_auto(kd_distill_params *p)
{
    static const double lambdas[] = KD_AUTO_LAMBDAS, alphas[] = KD_AUTO_ALPHAS, soft[] = KD_AUTO_ALPHAS_SOFT;
    double v;
    int alpha = !strcmp(kd_distill_knob(p, &v), "alpha");
    p->auto_n = 4;
    memcpy(p->auto_grid, !alpha ? lambdas : p->margin_loss == KD_MLOSS_SOFT ? soft : alphas, sizeof lambdas);
}

void kd_distill_set_knob(kd_distill_params *p, double v)
{
    double old;
    if (!strcmp(kd_distill_knob(p, &old), "alpha")) p->alpha = v;
    else p->lambda = v;
}

/* The knob's line: its value, or "auto" and the grid (never both: under auto the value
 * chosen is a result, kd_distill_prov_choice). */
static int prov_knob(kd_buf *b, const char *key, double v, const kd_distill_params *p)
{
    if (!p->auto_n) return kd_prov_f64(b, key, v);
    char grid[8 * 32] = "";
    size_t n = 0;
    for (int c = 0; c < p->auto_n; c++) {
        int digits = 15; /* the shortest that reads back, as kd_prov_f64 */
        char txt[40];
        for (; digits < 17; digits++) {
            snprintf(txt, sizeof txt, "%.*g", digits, p->auto_grid[c]);
            if (strtod(txt, NULL) == p->auto_grid[c]) break;
        }
        n += (size_t)snprintf(grid + n, sizeof grid - n, "%s%.*g", c ? "," : "", digits, p->auto_grid[c]);
    }
    return kd_prov_str(b, key, "auto") || kd_prov_str(b, "auto_grid", grid);
}

int kd_distill_prov(const kd_distill_params *p, kd_buf *b)
{
    kd_prov_str(b, "method", kd_distill_methods[p->method].name);
    kd_distill_methods[p->method].prov(p, b);
    if (!p->kd_decay) kd_prov_u64(b, "kd_decay", 0);
    if (p->refresh > 1) kd_prov_u64(b, "refresh", p->refresh); /* at 1 the key and lines of before */
    return kd_buf_error(b) ? -1 : 0;
}

int kd_distill_check_refresh(const kd_distill_params *p, kd_err *e)
{
    if (p->refresh < 1 || p->refresh > KD_REFRESH_MAX)
        return kd_fail_usage(e, "--refresh: %u is out of range (1..%u)", p->refresh, KD_REFRESH_MAX);
    /* rd --dynamic estimates the student's ranks from fresh samples in each unit: it keeps
     * no ranking that could be stale */
    if (p->refresh > 1 && !kd_distill_methods[p->method].ranks_student)
        return kd_fail_usage(e, "--refresh: %s does not rank the student each epoch (only dcd, dcd-item, dcd2, rce and rce2 do)",
                             kd_distill_methods[p->method].name);
    return 0;
}

int kd_distill_prov_choice(const kd_distill_params *p, const kd_distill_choice *ch, kd_buf *b)
{
    double v;
    char key[64];
    snprintf(key, sizeof key, "result.%s", kd_distill_knob(p, &v));
    kd_prov_f64(b, key, v);
    for (int c = 0; c < ch->n; c++) {
        snprintf(key, sizeof key, "result.auto.%d", c + 1);
        if (isnan(ch->valid[c])) kd_prov_str(b, key, "diverged");
        else kd_prov_f64(b, key, ch->valid[c]);
    }
    return kd_buf_error(b) ? -1 : 0;
}

const char *kd_distill_knob(const kd_distill_params *p, double *value)
{
    const char *name = p->mix_add ? "lambda" : kd_distill_methods[p->method].knob;
    *value = !strcmp(name, "alpha") ? p->alpha : p->lambda;
    return name;
}

/* ---------------------------------------------------------------- shared pieces */

static inline float student_score(const kd_model *m, uint32_t u, uint32_t i)
{
    return kd_dot(m->P + (size_t)u * m->stride, m->Q + (size_t)i * m->stride, m->stride) + m->bi[i];
}

/* Asks for the cache lines of a row of n floats (64-aligned rows: one line per 16). */
static inline void prefetch_row(const float *row, uint32_t n)
{
    for (uint32_t k = 0; k < n; k += 16) __builtin_prefetch(row + k);
}

/* The per-thread scratch of a per-user unit with a list of n entries, laid out here only:
 * list_layout(n, NULL, NULL) is the size a task asks for, list_layout(n, scratch, &ls)
 * the pointers its producer uses.  Doubles first (the engine's scratch is 64-aligned). */
typedef struct list_scratch {
    double   *g;       /* (n) gradients, or rd's weights */
    float    *s, *t;   /* (n) student and teacher scores */
    uint32_t *items;   /* (n) */
} list_scratch;

static size_t list_layout(uint32_t n, void *base, list_scratch *ls)
{
    size_t n8 = (size_t)n * 8, n4 = ((size_t)n * 4 + 7) & ~(size_t)7;
    if (ls) {
        uint8_t *b = base;
        ls->g = (double *)b;
        ls->s = (float *)(b + n8);
        ls->t = (float *)(b + n8 + n4);
        ls->items = (uint32_t *)(b + n8 + 2 * n4);
    }
    return n8 + 3 * n4;
}

/* The key of user u's unit of `epoch` for the method's stream tag (kd_rng.h). */
static inline uint64_t unit_key(const kd_distill *k, uint64_t epoch, enum kd_unit_stream tag, uint32_t u)
{
    return kd_key(k->seed, epoch, ((uint64_t)tag << 40) | u);
}

/* A set of at most n items, built per unit in its scratch: open addressing on a
 * power-of-two table of >= 2n slots (UINT32_MAX = empty, never an item), so that a
 * rejection test costs one or two probes instead of a scan of the list (ce draws 256
 * items against a top-M of 100 per user).  It answers exactly as the scan did. */
typedef struct item_set {
    uint32_t *slot;
    uint32_t  mask, shift;
} item_set;

static size_t set_bytes(uint32_t n)
{
    size_t c = 16;
    while (c < 2 * (size_t)n) c <<= 1;
    return c * 4;
}

static inline uint32_t set_hash(const item_set *s, uint32_t x) { return (x * 2654435761u) >> s->shift; }

/* The set of a[0..n) in mem (set_bytes(n) bytes). */
static void set_build(item_set *s, void *mem, const uint32_t *a, uint32_t n)
{
    size_t c = set_bytes(n) / 4;
    s->slot = mem;
    s->mask = (uint32_t)(c - 1);
    s->shift = 32 - (uint32_t)__builtin_ctzll(c);
    memset(mem, 0xff, c * 4);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t h = set_hash(s, a[k]);
        while (s->slot[h] != UINT32_MAX && s->slot[h] != a[k]) h = (h + 1) & s->mask;
        s->slot[h] = a[k];
    }
}

/* x's slot, or -1 if x is not in the set. */
static inline int32_t set_find(const item_set *s, uint32_t x)
{
    for (uint32_t h = set_hash(s, x);; h = (h + 1) & s->mask) {
        if (s->slot[h] == x) return (int32_t)h;
        if (s->slot[h] == UINT32_MAX) return -1;
    }
}

static inline int set_has(const item_set *s, uint32_t x) { return set_find(s, x) >= 0; }

/* Where a unit's item set starts: after its list scratch of n entries. */
static inline void *set_mem(void *scratch, uint32_t n) { return (uint8_t *)scratch + list_layout(n, NULL, NULL); }

/* A uniform item not in u's train row and not in `avoid` (the first entries of a list);
 * falls back to any non-train item after 32 tries. */
static uint32_t sample_outside(const kd_dataset *d, uint32_t u, const item_set *avoid, uint64_t key)
{
    const uint32_t *row = d->train.idx + d->train.indptr[u];
    uint32_t len = kd_csr_len(&d->train, u), j = 0;
    for (uint64_t t = 0; t < 32; t++) {
        j = kd_sample_negative(row, len, d->n_items, kd_key(key, t, KD_DRAW_PICK));
        if (!set_has(avoid, j)) return j;
    }
    return j;
}

double kd_rrd_loss(const float *s, uint32_t K, uint32_t L, double *g)
{
    double mx = -INFINITY, U = 0, loss = 0;
    for (uint32_t k = 0; k < K + L; k++) mx = s[k] > mx ? s[k] : mx;
    for (uint32_t j = K; j < K + L; j++) U += exp(s[j] - mx);
    /* Z_k = sum_{l>=k} e_l + U, from the back; the loss and the prefix sums of 1/Z_k */
    double Z[256], *Zp = K <= 256 ? Z : malloc(K * sizeof *Zp), acc = U;
    for (uint32_t k = K; k-- > 0;) {
        acc += exp(s[k] - mx);
        Zp[k] = acc;
    }
    double inv = 0;
    for (uint32_t k = 0; k < K; k++) {
        loss += log(Zp[k]) + mx - s[k];
        inv += 1 / Zp[k];
        g[k] = exp(s[k] - mx) * inv - 1;
    }
    for (uint32_t j = K; j < K + L; j++) g[j] = exp(s[j] - mx) * inv;
    if (Zp != Z) free(Zp);
    return loss;
}

/* 1/tau when multiplying by it is dividing by tau, bit for bit (tau a power of two, the
 * default 1 among them: both round the same exact quotient); else 0 */
static double exact_inverse(double tau)
{
    int e;
    return tau > 0 && frexp(tau, &e) == 0.5 && isfinite(1 / tau) ? 1 / tau : 0;
}

/* x / tau, by the multiplication when it is exact */
static inline double over_tau(double x, double tau, double it) { return it ? x * it : x / tau; }

double kd_ce_loss(const float *t, const float *s, uint32_t n, double tau, double *g)
{
    double mt = -INFINITY, ms = -INFINITY, zt = 0, zs = 0, loss = 0, it = exact_inverse(tau);
    for (uint32_t i = 0; i < n; i++) {
        mt = t[i] > mt ? t[i] : mt;
        ms = s[i] > ms ? s[i] : ms;
    }
    for (uint32_t i = 0; i < n; i++) { /* g holds the teacher's exp until the last loop */
        g[i] = exp(over_tau(t[i] - mt, tau, it));
        zt += g[i];
        zs += exp(over_tau(s[i] - ms, tau, it));
    }
    double lzs = log(zs);
    for (uint32_t i = 0; i < n; i++) {
        double pt = g[i] / zt, ls = over_tau(s[i] - ms, tau, it) - lzs;
        loss -= pt * ls;
        g[i] = over_tau(exp(ls) - pt, tau, it);
    }
    return loss;
}

/* kd_ce_loss with the teacher's probabilities given: pt[i] = softmax(t/tau)[i] as
 * kd_ce_loss computes it (ce_probs), so the two return the same bits; 2 exps an item. */
static double ce_loss_pt(const double *pt, const float *s, uint32_t n, double tau, double *g)
{
    double ms = -INFINITY, zs = 0, loss = 0, it = exact_inverse(tau);
    for (uint32_t i = 0; i < n; i++) ms = s[i] > ms ? s[i] : ms;
    for (uint32_t i = 0; i < n; i++) zs += exp(over_tau(s[i] - ms, tau, it));
    double lzs = log(zs);
    for (uint32_t i = 0; i < n; i++) {
        double ls = over_tau(s[i] - ms, tau, it) - lzs;
        loss -= pt[i] * ls;
        g[i] = over_tau(exp(ls) - pt[i], tau, it);
    }
    return loss;
}

/* The teacher's side of kd_ce_loss: pt[i] = exp((t[i] - max t) / tau) / Σ, the same
 * operations in the same order. */
static void ce_probs(const float *t, uint32_t n, double tau, double *pt)
{
    double mt = -INFINITY, zt = 0, it = exact_inverse(tau);
    for (uint32_t i = 0; i < n; i++) mt = t[i] > mt ? t[i] : mt;
    for (uint32_t i = 0; i < n; i++) {
        pt[i] = exp(over_tau(t[i] - mt, tau, it));
        zt += pt[i];
    }
    for (uint32_t i = 0; i < n; i++) pt[i] /= zt;
}

double kd_rce_loss(const float *tS, const float *sS, uint32_t nS, const float *tA, const float *sA, uint32_t nA,
                   double w, double tau, double *gS, double *gA)
{
    double lS = nS ? kd_ce_loss(tS, sS, nS, tau, gS) : 0, lA = nA ? kd_ce_loss(tA, sA, nA, tau, gA) : 0;
    for (uint32_t a = 0; a < nS; a++) gS[a] *= 1 - w;
    for (uint32_t a = 0; a < nA; a++) gA[a] *= w;
    return (1 - w) * lS + w * lA;
}

/* ---------------------------------------------------------------- margin-mse */

/* T²·KL(σ(a) || σ(b)), a = dt/T, b = x/T, and its derivative in x, T·(σ(b) - σ(a)); the
 * logs as softplus, log σ(z) = -softplus(-z) = -kd_softplus_neg(z), so no margin overflows
 * or cancels to 0/0 */
static double soft_term(double x, double dt, double T, double *dkd)
{
    double a = dt / T, b = x / T, y = 1 / (1 + exp(-a)), q = 1 / (1 + exp(-b));
    *dkd = T * (q - y);
    return T * T * (y * (kd_softplus_neg(b) - kd_softplus_neg(a)) + (1 - y) * (kd_softplus_neg(-b) - kd_softplus_neg(-a)));
}

double kd_margin_loss(const kd_distill_params *p, float x, double dt, double *dl)
{
    double T = p->temperature, diff = x / T - dt / T, kd, dkd;
    if (p->margin_loss == KD_MLOSS_SOFT) {
        kd = soft_term(x, dt, T, &dkd);
    } else {
        kd = T * T * diff * diff; /* computed as written, T and all */
        dkd = 2 * T * diff;
    }
    float bpr = 0, g = kd_bpr_grad(x, &bpr); /* g = -d softplus(-x) / dx */
    if (p->mix_add) {
        *dl = -(double)g + p->lambda * dkd;
        return bpr + p->lambda * kd;
    }
    *dl = -(1 - p->alpha) * g + p->alpha * dkd;
    return (1 - p->alpha) * bpr + p->alpha * kd;
}

/* The records of a BPR unit ids = (u, i, j_1..j_neg) under margin-mse: BPR's sampling,
 * partition and adapters do the rest (kd_bpr_task_with). */
KD_CLONES static double margin_records(void *ctx, const kd_model *m, const uint32_t *ids, kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    const kd_model *t = k->teacher;
    const kd_distill_params *p = &k->p;
    uint32_t u = ids[0], i = ids[1];
    const uint32_t *j = ids + 2;
    const float *pu = m->P + (size_t)u * m->stride, *tu = t->P + (size_t)u * t->stride;
    float si = kd_dot(pu, m->Q + (size_t)i * m->stride, m->stride) + m->bi[i];
    float ti = kd_dot(tu, t->Q + (size_t)i * t->stride, t->stride) + t->bi[i];
    double loss = 0;
    for (uint32_t n = 0; n < k->bpr->neg; n++) {
        float sj = kd_dot(pu, m->Q + (size_t)j[n] * m->stride, m->stride) + m->bi[j[n]];
        float tj = kd_dot(tu, t->Q + (size_t)j[n] * t->stride, t->stride) + t->bi[j[n]];
        double dl;
        loss += kd_margin_loss(p, si - sj, (double)ti - (double)tj, &dl);
        kd_bpr_records(recs + 2 * n, i, j[n], (float)-dl);
    }
    return loss;
}

/* ---------------------------------------------------------------- rd */

#define RD_SAMPLES 32
#define RCE_LAMBDA 1.0   /* rce's default weight (see rce_defaults) */

KD_CLONES static double rd_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                                   kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    const kd_distill_params *p = &k->p;
    const kd_dataset *d = k->d;
    uint32_t u = (uint32_t)unit, K = p->K;
    const uint32_t *top = k->t_items + (size_t)u * p->M;
    list_scratch ls;
    list_layout(K, scratch, &ls);
    double *w = ls.g;
    uint64_t key = unit_key(k, epoch, KD_UNIT_RD, u);
    *user = u;
    for (uint32_t r = 0; r < 2 * K; r++) recs[r].item = KD_NO_ITEM;
    uint32_t n = 0;
    while (n < K && top[n] != UINT32_MAX) n++;
    if (n == 0) { *user = KD_NO_ITEM; return 0; }
    float s_top[1024];
    double wsum = 0;
    for (uint32_t r = 0; r < n; r++) {
        s_top[r] = student_score(m, u, top[r]);
        w[r] = exp(-(double)(r + 1) / p->rank_temp);
    }
    if (p->dynamic) { /* student's rank of each item, estimated from uniform samples */
        float samp[RD_SAMPLES];
        for (uint32_t s = 0; s < RD_SAMPLES; s++)
            samp[s] = student_score(m, u, kd_below(kd_rng_at(key, KD_RD_RANK_DRAWS + s), d->n_items));
        for (uint32_t r = 0; r < n; r++) {
            uint32_t above = 0;
            for (uint32_t s = 0; s < RD_SAMPLES; s++) above += samp[s] > s_top[r];
            double est = (double)above * d->n_items / RD_SAMPLES;
            w[r] *= tanh(fmax(p->mu * (est - r), 0));
        }
    }
    for (uint32_t r = 0; r < n; r++) wsum += w[r];
    if (!(wsum > 0)) { *user = KD_NO_ITEM; return 0; }
    double loss = 0;
    item_set avoid;
    set_build(&avoid, set_mem(scratch, K), top, n);
    for (uint32_t r = 0; r < n; r++) {
        uint32_t j = sample_outside(d, u, &avoid, kd_key(key, r, KD_DRAW_RD_NEG));
        double x = (double)s_top[r] - student_score(m, u, j), wr = p->lambda * w[r] / wsum;
        loss += wr * kd_softplus_neg(x);
        float c = (float)(wr * kd_sigmoid_neg(x));
        recs[2 * r] = (kd_rec){ top[r], c };
        recs[2 * r + 1] = (kd_rec){ j, -c };
    }
    return loss;
}

/* ---------------------------------------------------------------- rrd and dcd */

/* Records for a Plackett-Luce list: items[0..K) interesting in order, then L others. */
static double pl_records(const kd_model *m, uint32_t u, const uint32_t *items, uint32_t K, uint32_t L,
                         double lambda, kd_rec *recs, double *g, float *s)
{
    for (uint32_t k = 0; k < K + L; k++) s[k] = student_score(m, u, items[k]);
    double loss = kd_rrd_loss(s, K, L, g);
    for (uint32_t k = 0; k < K + L; k++) recs[k] = (kd_rec){ items[k], (float)(-lambda * g[k]) };
    return lambda * loss;
}

KD_CLONES static double rrd_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                                    kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    const kd_distill_params *p = &k->p;
    uint32_t u = (uint32_t)unit, K = p->K, L = p->L;
    const uint32_t *top = k->t_items + (size_t)u * p->M;
    uint64_t key = unit_key(k, epoch, KD_UNIT_RRD, u);
    list_scratch ls;
    list_layout(K + L, scratch, &ls);
    uint32_t *items = ls.items;
    uint32_t n = 0, ntop = 0;
    while (n < K && top[n] != UINT32_MAX) items[n] = top[n], n++;
    while (ntop < p->M && top[ntop] != UINT32_MAX) ntop++;
    *user = u;
    if (n == 0) {
        *user = KD_NO_ITEM;
        return 0;
    }
    item_set avoid;
    set_build(&avoid, set_mem(scratch, K + L), top, ntop);
    for (uint32_t j = 0; j < L; j++) items[n + j] = sample_outside(k->d, u, &avoid, kd_key(key, j, KD_DRAW_RRD_NEG));
    for (uint32_t r = n + L; r < K + L; r++) recs[r].item = KD_NO_ITEM;
    return pl_records(m, u, items, n, L, p->lambda, recs, ls.g, ls.s);
}

/* The value of rank `want` (1-based, descending) among a[0..n), want <= n; reorders a.
 * Quickselect on the middle element (a Hoare partition), O(n) expected. */
static double kth_largest(double *a, uint32_t n, uint32_t want)
{
    int64_t lo = 0, hi = (int64_t)n - 1, k = (int64_t)want - 1;
    while (lo < hi) {
        double piv = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > piv) i++;
            while (a[j] < piv) j--;
            if (i <= j) {
                double t = a[i]; a[i] = a[j]; a[j] = t;
                i++, j--;
            }
        }
        /* a[lo..j] >= piv >= a[i..hi], and a(j..i) == piv */
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k];
    }
    return a[k];
}

/* Samples up to `want` of n <= KD_PICK_MAX candidates without replacement with weights
 * exp(logw[]), by Gumbel-top-k; writes their indices in increasing order.  Returns how
 * many.  Callers keep n within KD_PICK_MAX (dcd: n <= --topk <= 1000; rce: --topm is
 * refused above it), so the guard below never drops a candidate.  The `want` largest
 * keys by a selection of the threshold, then one pass in index order (was a partial
 * selection sort, O(want·n): the same set, but for exact ties of two keys at the
 * threshold, which go to the lower index here). */
static uint32_t gumbel_pick(const double *logw, uint32_t n, uint32_t want, uint64_t key, uint32_t *out)
{
    double keyv[KD_PICK_MAX], tmp[KD_PICK_MAX];
    if (n > KD_PICK_MAX) n = KD_PICK_MAX;
    for (uint32_t c = 0; c < n; c++) {
        double uu = ((double)(kd_rng_at(key, c) >> 11) + 0.5) * 0x1.0p-53;
        keyv[c] = logw[c] - log(-log(uu));
    }
    if (want >= n) {
        for (uint32_t c = 0; c < n; c++) out[c] = c;
        return n;
    }
    if (want == 0) return 0;
    memcpy(tmp, keyv, n * sizeof *tmp);
    double thr = kth_largest(tmp, n, want);
    uint32_t above = 0, got = 0;
    for (uint32_t c = 0; c < n; c++) above += keyv[c] > thr;
    uint32_t ties = want - above; /* keys equal to the threshold to take, lowest index first */
    for (uint32_t c = 0; c < n; c++)
        if (keyv[c] > thr || (keyv[c] == thr && ties && ties--)) out[got++] = c;
    return got;
}

static uint32_t rank_in(const uint32_t *list, uint32_t M, uint32_t item)
{
    for (uint32_t r = 0; r < M && list[r] != UINT32_MAX; r++)
        if (list[r] == item) return r;
    return M;
}

/* One DCD list: row u of (m, d) -- a user of the model and dataset, or an item of their
 * transposes -- with the teacher's and student's top-M lists tt, st of that row. */
static double dcd_list(const kd_distill *k, const kd_model *m, const kd_dataset *d, uint32_t u, const uint32_t *tt,
                       const uint32_t *st, uint32_t M, uint32_t K, uint32_t L, uint64_t key, double lambda,
                       uint32_t *user, kd_rec *recs, void *scratch)
{
    const kd_distill_params *p = &k->p;
    uint32_t half = K / 2 ? K / 2 : 1;
    list_scratch ls;
    list_layout(K + L, scratch, &ls);
    uint32_t *items = ls.items, pick[1024], nt = 0, ns = 0, ntop = 0;
    double logw[1024];
    *user = u;
    for (uint32_t r = 0; r < K + L; r++) recs[r].item = KD_NO_ITEM;
    while (nt < K && tt[nt] != UINT32_MAX) nt++;
    while (ns < K && st[ns] != UINT32_MAX) ns++;
    while (ntop < M && tt[ntop] != UINT32_MAX) ntop++;
    if (nt == 0) { *user = KD_NO_ITEM; return 0; }
    /* under-estimated: teacher's top-K items the student ranks lower than the teacher */
    for (uint32_t r = 0; r < nt; r++)
        logw[r] = tanh(p->eps * ((double)rank_in(st, M, tt[r]) - (double)r));
    uint32_t nu = gumbel_pick(logw, nt, half, kd_key(key, 1, KD_DRAW_PICK), pick), n = 0;
    for (uint32_t a = 0; a < nu; a++) items[n++] = tt[pick[a]];
    /* over-estimated: student's top-K items the teacher ranks lower, outside its top-K */
    uint32_t cand[1024], nc = 0;
    for (uint32_t r = 0; r < ns; r++) {
        uint32_t rt = rank_in(tt, M, st[r]);
        if (rt < nt) continue;
        cand[nc] = st[r];
        logw[nc++] = tanh(p->eps * ((double)rt - (double)r));
    }
    uint32_t no = gumbel_pick(logw, nc, half, kd_key(key, 2, KD_DRAW_PICK), pick);
    for (uint32_t a = 0; a < no; a++) items[n + a] = cand[pick[a]];
    uint32_t others = no + (L > no ? L - no : 0);
    item_set avoid;
    set_build(&avoid, set_mem(scratch, K + L), tt, ntop);
    for (uint32_t j = no; j < others; j++) items[n + j] = sample_outside(d, u, &avoid, kd_key(key, j, KD_DRAW_DCD_NEG));
    return pl_records(m, u, items, n, others, lambda, recs, ls.g, ls.s);
}

KD_CLONES static double dcd_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                                    kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    uint32_t u = (uint32_t)unit, M = k->p.M;
    return dcd_list(k, m, k->d, u, k->t_items + (size_t)u * M, k->s_items + (size_t)u * M, M, k->p.K, k->p.L,
                    unit_key(k, epoch, KD_UNIT_DCD, u), k->p.lambda, user, recs, scratch);
}

/* The student's top-M lists of `epoch`, into the arrays of the previous epoch (the first
 * epoch allocates them; kd_distill_free frees them).  Under --refresh R > 1 only the rows
 * r % R == epoch % R, except at epoch 0, which ranks every row: no row has a ranking yet,
 * or (--lambda auto's next candidate) only the previous run's. */
static int student_topm(const kd_model *m, const kd_dataset *d, uint32_t M, uint32_t R, uint64_t epoch, int threads,
                        uint32_t **items, float **scores, kd_err *e)
{
    if (!*items) return kd_rank_topm(m, d, M, threads, items, scores, e);
    if (R <= 1 || epoch == 0) return kd_rank_topm_into(m, d, M, threads, *items, *scores, e);
    uint32_t phase = (uint32_t)(epoch % R), n = phase < d->n_users ? (d->n_users - 1 - phase) / R + 1 : 0;
    uint32_t *rows = kd_alloc_array(n ? n : 1, 4);
    if (!rows) return kd_fail(e, "out of memory (--refresh rows of %u)", n);
    for (uint32_t x = 0; x < n; x++) rows[x] = phase + x * R;
    int r = kd_rank_topm_rows(m, d, M, rows, n, threads, *items, *scores, e);
    free(rows);
    return r;
}

/* m with users and items swapped: score(i, u) = q_i.p_u + b_u + b_i, the view in which an
 * item's ranking of users is a "user's" ranking of "items" (kd_sgd applies transposed
 * units to the same view). */
static kd_model transposed(const kd_model *m)
{
    return (kd_model){ .n_users = m->n_items, .n_items = m->n_users, .dim = m->dim, .stride = m->stride,
                       .P = m->Q, .Q = m->P, .bu = m->bi, .bi = m->bu };
}

/* The item side: unit i is item i's list over users, in the transposed view (its scores
 * are s_ui - b_i: the Plackett-Luce loss does not change under a common shift). */
KD_CLONES static double dcd_item_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                                         kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    uint32_t i = (uint32_t)unit, M = k->Mi;
    kd_model mt = transposed(m);
    /* read here, not at init: --lambda auto sets dcd-item's knob per trial */
    double lambda = kd_distill_methods[k->p.method].item_side == KD_ITEM_MAIN ? k->p.lambda : k->p.item_lambda;
    return dcd_list(k, &mt, &k->dT, i, k->ti_users + (size_t)i * M, k->si_users + (size_t)i * M, M, k->iK, k->iL,
                    unit_key(k, epoch, KD_UNIT_DCD_ITEM, i), lambda, user, recs, scratch);
}

static int dcd_item_epoch(void *ctx, const kd_model *m, uint64_t epoch, kd_err *e)
{
    kd_distill *k = ctx;
    kd_model mt = transposed(m);
    return student_topm(&mt, &k->dT, k->Mi, k->p.refresh, epoch, k->threads, &k->si_users, &k->si_scores, e);
}

/* ---------------------------------------------------------------- rce */

/* Each user's lists of the epoch (kd_distill.h): the student's top-M now, the sampled
 * set I from it, S, A and w; teacher scores of every entry, so that a unit costs only the
 * student's scores.  Users are independent (their keys are their own), so threads take
 * contiguous ranges and the lists do not depend on the thread count. */
#define RCE_PREFETCH 8 /* rows ahead */

typedef struct rce_job {
    kd_distill *k;
    uint64_t epoch;
} rce_job;

/* Model md's scores of user u's rce list items[0..n) (bias included), split by in[]'s bits
 * into S (bit 1) and A (bit 2), appended at *nS and *nA; the teacher's side (rce_lists) and
 * the student's (rce_records) both use it.  Inlined so each SIMD clone of a caller keeps its
 * own kd_dot (whose bits are the same on every path). */
static inline __attribute__((always_inline)) void rce_scores(const kd_model *md, uint32_t u, const uint32_t *items,
                                                             const uint8_t *in, uint32_t n, float *S, uint32_t *nS,
                                                             float *A, uint32_t *nA)
{
    const float *pu = md->P + (size_t)u * md->stride;
    for (uint32_t a = 0; a < n; a++) {
        if (a + RCE_PREFETCH < n) { /* the item rows are L3 hits in a random order */
            uint32_t f = items[a + RCE_PREFETCH];
            prefetch_row(md->Q + (size_t)f * md->stride, md->stride);
            __builtin_prefetch(md->bi + f);
        }
        float v = kd_dot(pu, md->Q + (size_t)items[a] * md->stride, md->stride) + md->bi[items[a]];
        if (in[a] & 1) S[(*nS)++] = v;
        if (in[a] & 2) A[(*nA)++] = v;
    }
}

KD_CLONES static void rce_lists(void *ctx, int th, int T)
{
    const rce_job *job = ctx;
    kd_distill *k = job->k;
    const kd_distill_params *p = &k->p;
    const kd_model *t = k->teacher;
    uint32_t K = p->K, L = p->L, M = p->M, N = 2 * K + L;
    double logw[KD_PICK_MAX], cw[51];
    uint32_t pos[KD_PICK_MAX], rpos[1000]; /* rpos[q]: teacher item q's student position (K <= 1000) */
    uint32_t tslot[2048], tq[2048];        /* the teacher's top-K as a map item -> q: set_bytes(1000) / 4 */
    uint8_t mark[KD_PICK_MAX];
    float tS[KD_PICK_MAX], tA[2 * KD_PICK_MAX]; /* nS <= K <= M, nA <= L + K <= 2M */
    unsigned long long lo, hi;
    for (uint32_t c = 0; c <= 50; c++) cw[c] = (double)c / p->rank_temp;
    kd_par_range(k->d->n_users, th, T, &lo, &hi);
    for (uint32_t u = (uint32_t)lo; u < hi; u++) {
        const uint32_t *R = k->s_items + (size_t)u * M, *Qt = k->t_items + (size_t)u * M;
        uint32_t *items = k->rce_items + (size_t)u * N, nR = 0, nQ = 0, n = 0, overlap = 0;
        uint8_t *in = k->rce_in + (size_t)u * N;
        k->rce_n[u] = 0;
        while (nR < M && R[nR] != UINT32_MAX) nR++;
        while (nQ < K && Qt[nQ] != UINT32_MAX) nQ++;
        if (nR == 0 || nQ == 0) continue;
        item_set qs;
        set_build(&qs, tslot, Qt, nQ);
        for (uint32_t q = 0; q < nQ; q++) {
            tq[set_find(&qs, Qt[q])] = q;
            rpos[q] = nR; /* not among the student's */
        }
        /* c_j = teacher items at student positions >= j: sampling a position favours the
         * ones above many teacher items (code: min(c, 50), weight exp((c + 1)/T)) */
        uint32_t c = 0;
        for (uint32_t j = nR; j-- > 0;) {
            int32_t f = set_find(&qs, R[j]);
            if (f >= 0) {
                c++;
                rpos[tq[f]] = j;
            }
            logw[j] = cw[c < 50 ? c : 50];
            mark[j] = 0;
        }
        uint32_t nI = gumbel_pick(logw, nR, L, kd_key(unit_key(k, job->epoch, KD_UNIT_RCE, u), 0, KD_DRAW_PICK), pos);
        for (uint32_t a = 0; a < nI; a++) {
            mark[pos[a]] = 1;
            overlap += set_has(&qs, R[pos[a]]);
        }
        uint32_t nS = K < nR ? K : nR;
        for (uint32_t j = 0; j < nS; j++) items[n] = R[j], in[n++] = (uint8_t)(1 | (mark[j] << 1));
        for (uint32_t a = 0; a < nI; a++)
            if (pos[a] >= nS) items[n] = R[pos[a]], in[n++] = 2;
        for (uint32_t q = 0; q < nQ; q++) { /* teacher items neither sampled nor in S */
            uint32_t r = rpos[q];
            if (r < nS || (r < nR && mark[r])) continue;
            items[n] = Qt[q], in[n++] = 2;
        }
        /* the teacher's softmax over S, then over A, once an epoch: a unit (one per train
         * interaction) then costs only the student's scores and its side of the loss */
        uint32_t mS = 0, mA = 0;
        rce_scores(t, u, items, in, n, tS, &mS, tA, &mA);
        double *pt = k->rce_p + (size_t)u * N;
        ce_probs(tS, mS, p->tau, pt);
        ce_probs(tA, mA, p->tau, pt + mS);
        k->rce_n[u] = n;
        k->rce_w[u] = exp(-p->beta * (double)overlap / (double)nQ);
    }
}

static int rce_epoch(void *ctx, const kd_model *m, uint64_t epoch, kd_err *e)
{
    kd_distill *k = ((kd_bpr *)ctx)->records_ctx; /* the task is BPR's (rce_tasks) */
    /* every user's lists from the ranking its row holds, with this epoch's draws, also
     * when --refresh left that ranking as it was */
    if (student_topm(m, k->d, k->p.M, k->p.refresh, epoch, k->threads, &k->s_items, &k->s_scores, e))
        return -1;
    rce_job job = { k, epoch };
    return kd_par_run(k->threads < 1 ? 1 : k->threads, rce_lists, &job, e);
}

/* rce's scratch for N entries: gS, gA (doubles), sS, sA (floats). */
static size_t rce_layout(uint32_t N) { return 2 * (size_t)N * 8 + 2 * (((size_t)N * 4 + 7) & ~(size_t)7); }

/* The records of one BPR unit ids = (u, ...) under rce: user u's term (an item in both S
 * and A gets one record, with both gradients). */
KD_CLONES static double rce_records(void *ctx, const kd_model *m, const uint32_t *ids, kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    const kd_distill_params *p = &k->p;
    uint32_t u = ids[0], N = 2 * p->K + p->L, n = k->rce_n[u], nS = 0, nA = 0;
    const uint32_t *items = k->rce_items + (size_t)u * N;
    const uint8_t *in = k->rce_in + (size_t)u * N;
    const double *pt = k->rce_p + (size_t)u * N;
    size_t n4 = ((size_t)N * 4 + 7) & ~(size_t)7;
    uint8_t *b = (uint8_t *)scratch + k->rce_off;
    double *gS = (double *)b, *gA = gS + N;
    float *sS = (float *)(b + 2 * (size_t)N * 8), *sA = (float *)((uint8_t *)sS + n4);
    for (uint32_t a = 0; a < N; a++) recs[a].item = KD_NO_ITEM;
    if (n == 0) return 0;
    rce_scores(m, u, items, in, n, sS, &nS, sA, &nA);
    /* kd_rce_loss on the teacher's cached probabilities (the same bits) */
    double w = k->rce_w[u], lS = nS ? ce_loss_pt(pt, sS, nS, p->tau, gS) : 0,
           lA = nA ? ce_loss_pt(pt + nS, sA, nA, p->tau, gA) : 0;
    for (uint32_t a = 0; a < nS; a++) gS[a] *= 1 - w;
    for (uint32_t a = 0; a < nA; a++) gA[a] *= w;
    double loss = (1 - w) * lS + w * lA;
    nS = nA = 0;
    for (uint32_t a = 0; a < n; a++) {
        double g = 0;
        if (in[a] & 1) g += gS[nS++];
        if (in[a] & 2) g += gA[nA++];
        recs[a] = (kd_rec){ items[a], (float)(-p->lambda * g) };
    }
    return p->lambda * loss;
}

static int dcd_epoch(void *ctx, const kd_model *m, uint64_t epoch, kd_err *e)
{
    kd_distill *k = ctx; /* its units draw the under/over-estimated sets from the rows as they are */
    return student_topm(m, k->d, k->p.M, k->p.refresh, epoch, k->threads, &k->s_items, &k->s_scores, e);
}

/* ---------------------------------------------------------------- ce */

KD_CLONES static double ce_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user,
                                   kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    const kd_dataset *d = k->d;
    const kd_model *t = k->teacher;
    uint32_t u = (uint32_t)unit, I = d->n_items, n = 0;
    list_scratch ls;
    list_layout(I, scratch, &ls);
    float *ts = ls.t, *ss = ls.s;
    double *g = ls.g;
    uint32_t *items = ls.items;
    const uint32_t *row = d->train.idx + d->train.indptr[u];
    uint32_t len = kd_csr_len(&d->train, u), pos = 0;
    *user = u;
    const float *pu = m->P + (size_t)u * m->stride, *tu = t->P + (size_t)u * t->stride;
    const float *tall = k->t_all ? k->t_all + (size_t)u * k->t_all_stride : NULL;
    for (uint32_t i = 0; i < I; i++) {
        if (pos < len && row[pos] == i) { pos++; continue; }
        items[n] = i;
        ts[n] = tall ? tall[i] : kd_dot(tu, t->Q + (size_t)i * t->stride, t->stride) + t->bi[i];
        ss[n] = kd_dot(pu, m->Q + (size_t)i * m->stride, m->stride) + m->bi[i];
        n++;
    }
    (void)epoch;
    for (uint32_t r = 0; r < I; r++) recs[r].item = KD_NO_ITEM;
    if (n == 0) { *user = KD_NO_ITEM; return 0; }
    double tau = k->p.tau, loss = kd_ce_loss(ts, ss, n, tau, g), scale = k->p.lambda * tau * tau;
    for (uint32_t r = 0; r < n; r++) recs[r] = (kd_rec){ items[r], (float)(-scale * g[r]) };
    return scale * loss;
}

#define CE_PREFETCH 8 /* rows ahead */


KD_CLONES static double ce_sampled_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit,
                                           uint32_t *user, kd_rec *recs, void *scratch)
{
    const kd_distill *k = ctx;
    const kd_dataset *d = k->d;
    const kd_model *t = k->teacher;
    uint32_t u = (uint32_t)unit, M = k->p.M, S = k->p.ce_sample, n = 0, ntop = 0;
    const uint32_t *top = k->t_items + (size_t)u * M;
    const float *tsc = k->t_scores + (size_t)u * M;
    list_scratch ls;
    list_layout(M + S, scratch, &ls);
    float *ts = ls.t, *ss = ls.s;
    double *g = ls.g;
    uint32_t *items = ls.items;
    uint64_t key = unit_key(k, epoch, KD_UNIT_CE, u);
    double tau = k->p.tau;
    *user = u;
    for (uint32_t r = 0; r < M + S; r++) recs[r].item = KD_NO_ITEM;
    while (ntop < M && top[ntop] != UINT32_MAX) ntop++;
    if (ntop == 0) { *user = KD_NO_ITEM; return 0; }
    const float *pu = m->P + (size_t)u * m->stride, *tu = t->P + (size_t)u * t->stride;
    for (; n < ntop; n++) {
        if (n + CE_PREFETCH < ntop) {
            uint32_t f = top[n + CE_PREFETCH];
            prefetch_row(m->Q + (size_t)f * m->stride, m->stride);
            __builtin_prefetch(m->bi + f);
        }
        items[n] = top[n];
        ts[n] = tsc[n];
        ss[n] = kd_dot(pu, m->Q + (size_t)top[n] * m->stride, m->stride) + m->bi[top[n]];
    }
    uint64_t rest = d->n_items - kd_csr_len(&d->train, u) - ntop;
    if (rest > 0) {
        float lw = (float)(tau * log((double)rest / S)); /* each sample stands for rest/S items */
        item_set avoid;
        set_build(&avoid, set_mem(scratch, M + S), top, ntop);
        for (uint32_t j = 0; j < S; j++)
            items[n + j] = sample_outside(d, u, &avoid, kd_key(key, j, KD_DRAW_CE_SAMPLE));
        /* the draws first, then their rows: random rows of a teacher larger than L2 are
         * cache misses, and prefetching a few ahead overlaps them */
        for (uint32_t j = 0; j < S; j++, n++) {
            if (j + CE_PREFETCH < S) {
                uint32_t f = items[n + CE_PREFETCH];
                prefetch_row(t->Q + (size_t)f * t->stride, t->stride);
                prefetch_row(m->Q + (size_t)f * m->stride, m->stride);
                __builtin_prefetch(t->bi + f);
                __builtin_prefetch(m->bi + f);
            }
            uint32_t i = items[n];
            ts[n] = kd_dot(tu, t->Q + (size_t)i * t->stride, t->stride) + t->bi[i] + lw;
            ss[n] = kd_dot(pu, m->Q + (size_t)i * m->stride, m->stride) + m->bi[i] + lw;
        }
    }
    double loss = kd_ce_loss(ts, ss, n, tau, g), scale = k->p.lambda * tau * tau;
    for (uint32_t r = 0; r < n; r++) recs[r] = (kd_rec){ items[r], (float)(-scale * g[r]) };
    return scale * loss;
}

/* ---------------------------------------------------------------- preparation */

/* The teacher's top-M unobserved items and scores of every user (rd, rrd, dcd, sampled ce). */
static int teacher_topm(kd_distill *k, kd_err *e)
{
    double t0 = kd_now();
    if (kd_rank_topm(k->teacher, k->d, k->p.M, k->threads, &k->t_items, &k->t_scores, e))
        return -1;
    k->rank_seconds = kd_now() - t0;
    return 0;
}

static int ce_prepare(kd_distill *k, kd_err *e)
{
    const kd_dataset *d = k->d;
    if (!k->p.ce_sample && d->n_items > KD_CE_EXACT_MAX)
        k->p.ce_sample = 256; /* exact would cost items x dim per user and epoch */
    if (k->p.ce_sample)
        return teacher_topm(k, e);
    /* the teacher's scores never change: compute them once with the ranking kernel when
     * they fit in 256 MiB (else per user and epoch with kd_dot; the two sum in different
     * orders, so the choice depends only on the data size, never on threads) */
    kd_ranker rk;
    uint64_t cells = (uint64_t)d->n_users * ((d->n_items + 31) & ~31u);
    if (cells * 4 > (256u << 20) || kd_ranker_init(&rk, k->teacher, e))
        return 0;
    k->t_all_stride = rk.items_pad;
    if (posix_memalign((void **)&k->t_all, 64, (size_t)cells * 4)) {
        k->t_all = NULL;
        kd_ranker_free(&rk);
        return 0;
    }
    for (uint32_t u0 = 0; u0 < d->n_users; u0 += KD_RANK_BLOCK) {
        uint32_t nu = d->n_users - u0 < KD_RANK_BLOCK ? d->n_users - u0 : KD_RANK_BLOCK;
        kd_rank_score_block(&rk, u0, nu, k->t_all + (size_t)u0 * rk.items_pad);
    }
    kd_ranker_free(&rk);
    return 0;
}

/* The item side: the transposed train split, and the teacher's top-M users of each item
 * (train users excluded) by the same ranker on the transposed teacher. */
static int item_prepare(kd_distill *k, kd_err *e)
{
    const kd_dataset *d = k->d;
    uint64_t nnz = kd_csr_nnz(&d->train);
    kd_pair *pairs = kd_alloc_array(nnz ? nnz : 1, sizeof *pairs);
    if (!pairs) return kd_fail(e, "out of memory");
    for (uint32_t u = 0, x = 0; u < d->n_users; u++)
        for (uint64_t q = d->train.indptr[u]; q < d->train.indptr[u + 1]; q++, x++)
            pairs[x] = (kd_pair){ d->train.idx[q], u };
    k->dT.n_users = d->n_items;
    k->dT.n_items = d->n_users;
    int r = kd_csr_from_pairs(&k->dT.train, d->n_items, d->n_users, pairs, nnz, e) ||
            kd_csr_empty(&k->dT.valid, d->n_items, d->n_users, e) || kd_csr_empty(&k->dT.test, d->n_items, d->n_users, e);
    free(pairs);
    if (r) return -1;
    kd_model tt = transposed(k->teacher);
    double t0 = kd_now();
    if (kd_rank_topm(&tt, &k->dT, k->Mi, k->threads, &k->ti_users, &k->ti_scores, e))
        return -1;
    k->rank_seconds += kd_now() - t0;
    return 0;
}

static int dcd_item_prepare(kd_distill *k, kd_err *e) { return item_prepare(k, e); }
static int dcd2_prepare(kd_distill *k, kd_err *e) { return teacher_topm(k, e) || item_prepare(k, e) ? -1 : 0; }
static int rce_prepare(kd_distill *k, kd_err *e);
static int rce2_prepare(kd_distill *k, kd_err *e) { return rce_prepare(k, e) || item_prepare(k, e) ? -1 : 0; }

static int rce_prepare(kd_distill *k, kd_err *e)
{
    uint64_t N = 2 * (uint64_t)k->p.K + k->p.L, cells;
    if (kd_mul(k->d->n_users, N, &cells)) return kd_fail(e, "out of memory");
    k->rce_items = kd_alloc_array(cells, 4);
    k->rce_p = kd_alloc_array(cells, 8);
    k->rce_in = kd_alloc_array(cells, 1);
    k->rce_n = kd_alloc_array(k->d->n_users, 4);
    k->rce_w = kd_alloc_array(k->d->n_users, 8);
    if (!k->rce_items || !k->rce_p || !k->rce_in || !k->rce_n || !k->rce_w)
        return kd_fail(e, "out of memory (rce lists of %u users)", k->d->n_users);
    /* BPR's sampling keeps a unit's ids at the start of the scratch when neg > 64 */
    k->rce_off = k->bpr->neg > 64 ? ((2 + (size_t)k->bpr->neg) * 4 + 63) & ~(size_t)63 : 0;
    return teacher_topm(k, e);
}

/* ---------------------------------------------------------------- tasks */

/* A per-user term as its own task: one unit per user an epoch, `recs` records of
 * `samples` samples, the scratch of a list of `entries`. */
static kd_sgd_task user_task(kd_distill *k, uint32_t recs, uint32_t samples, uint32_t entries,
                             double (*produce)(void *, const kd_model *, uint64_t, uint64_t, uint32_t *, kd_rec *, void *))
{
    return (kd_sgd_task){ .units = k->d->n_users, .recs_per_unit = recs, .samples_per_unit = samples,
                          .scratch_bytes = list_layout(entries, NULL, NULL) + set_bytes(k->p.M), .produce = produce,
                          .units_are_users = 1, .ctx = k };
}

static int margin_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    tasks[0] = kd_bpr_task_with(k->bpr, margin_records, k); /* margin-mse replaces BPR's records */
    return 1;
}

static int rd_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    tasks[1] = user_task(k, 2 * k->p.K, k->p.K, k->p.K, rd_produce);
    return 2;
}

static int rrd_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    uint32_t KL = k->p.K + k->p.L;
    tasks[1] = user_task(k, KL, KL, KL, rrd_produce);
    return 2;
}

static int dcd_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    uint32_t KL = k->p.K + k->p.L;
    tasks[1] = user_task(k, KL, KL, KL, dcd_produce);
    tasks[1].epoch_begin = dcd_epoch;
    return 2;
}

/* The item side as a transposed task: one unit per item an epoch. */
static kd_sgd_task item_task(kd_distill *k)
{
    uint32_t KL = k->iK + k->iL;
    return (kd_sgd_task){ .units = k->d->n_items, .recs_per_unit = KL, .samples_per_unit = KL,
                          .scratch_bytes = list_layout(KL, NULL, NULL) + set_bytes(k->Mi), .produce = dcd_item_produce,
                          .epoch_begin = dcd_item_epoch, .transposed = 1, .ctx = k };
}

static int dcd_item_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    tasks[1] = item_task(k);
    return 2;
}

static int dcd2_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    dcd_tasks(k, tasks);
    tasks[2] = item_task(k);
    return 3;
}

static int rce_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    uint32_t N = 2 * k->p.K + k->p.L;
    tasks[1] = kd_bpr_task_with(k->bpr, rce_records, k); /* BPR's units: user u n_u times an epoch */
    tasks[1].recs_per_unit = N;
    tasks[1].samples_per_unit = N;
    tasks[1].scratch_bytes = k->rce_off + rce_layout(N);
    tasks[1].epoch_begin = rce_epoch;
    return 2;
}

static int rce2_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    rce_tasks(k, tasks);
    tasks[2] = item_task(k);
    return 3;
}

static int ce_tasks(kd_distill *k, kd_sgd_task *tasks)
{
    uint32_t I = k->p.ce_sample ? k->p.M + k->p.ce_sample : k->d->n_items;
    tasks[1] = user_task(k, I, I, I, k->p.ce_sample ? ce_sampled_produce : ce_produce);
    return 2;
}

/* ---------------------------------------------------------------- defaults and provenance */

static void rd_defaults(kd_distill_params *p) { p->lambda = 0.5; }
static void dcd_defaults(kd_distill_params *p) { p->K = 20; p->L = 20; }
/* dcd itself re-ranks a quarter of the users each epoch: at the tools' defaults (--lambda
 * auto), 5 seeds each, test Recall@10 rose on Last.fm (0.1726 -> 0.1860, paired t 5.9) and
 * CiteULike (0.1155 -> 0.1225, t 7.6) and stayed on the synthetic default (-0.0002, t -0.3);
 * --refresh 1 is the published code's every-epoch ranking and the bytes of before */
static void dcd_user_defaults(kd_distill_params *p) { dcd_defaults(p); p->refresh = 4; }
/* the item side and both sides: dcd's lists, no decay on their records (kd_distill.h) */
static void dcd_item_defaults(kd_distill_params *p) { dcd_defaults(p); p->kd_decay = 0; }
/* the authors' CiteULike configuration (woriazzc/KDs configs/citeulike/bpr/mkd.yaml) for
 * the lists; lambda for SGD with per-interaction units (their 500 is for Adam) */
static void rce_defaults(kd_distill_params *p) { p->K = 50; p->L = 50; p->M = 200; p->beta = 3; p->lambda = RCE_LAMBDA;
                                             p->kd_decay = 0; }

/* rce on the user side plus dcd-item on the item side: rce's lists and weight, the item
 * side's at item_lambda (dcd2's default) with dcd-item's default lists (kd_distill_init) */
static void rce2_defaults(kd_distill_params *p) { rce_defaults(p); }

static int margin_prov(const kd_distill_params *p, kd_buf *b)
{
    kd_prov_str(b, "mix", p->mix_add ? "add" : "convex");
    kd_prov_str(b, "margin_loss", p->margin_loss == KD_MLOSS_SOFT ? "soft" : "mse");
    if (p->mix_add) prov_knob(b, "lambda", p->lambda, p);
    else prov_knob(b, "alpha", p->alpha, p);
    kd_prov_f64(b, "temperature", p->temperature);
    return kd_buf_error(b) ? -1 : 0;
}

static int rd_prov(const kd_distill_params *p, kd_buf *b)
{
    prov_knob(b, "lambda", p->lambda, p);
    kd_prov_u64(b, "topk", p->K);
    kd_prov_f64(b, "rank_temp", p->rank_temp);
    kd_prov_u64(b, "dynamic", (uint64_t)p->dynamic);
    kd_prov_f64(b, "mu", p->mu);
    return kd_buf_error(b) ? -1 : 0;
}

static int rrd_prov(const kd_distill_params *p, kd_buf *b)
{
    prov_knob(b, "lambda", p->lambda, p);
    kd_prov_u64(b, "topk", p->K);
    kd_prov_u64(b, "uninteresting", p->L);
    kd_prov_u64(b, "topm", p->M);
    return kd_buf_error(b) ? -1 : 0;
}

static int ce_prov(const kd_distill_params *p, kd_buf *b)
{
    prov_knob(b, "lambda", p->lambda, p);
    kd_prov_f64(b, "tau", p->tau);
    kd_prov_u64(b, "ce_sample", p->ce_sample);
    if (p->ce_sample) kd_prov_u64(b, "topm", p->M);
    return kd_buf_error(b) ? -1 : 0;
}

static int dcd_prov(const kd_distill_params *p, kd_buf *b)
{
    prov_knob(b, "lambda", p->lambda, p);
    kd_prov_u64(b, "topk", p->K);
    kd_prov_u64(b, "uninteresting", p->L);
    kd_prov_u64(b, "topm", p->M);
    kd_prov_f64(b, "eps", p->eps);
    return kd_buf_error(b) ? -1 : 0;
}

static int dcd2_prov(const kd_distill_params *p, kd_buf *b)
{
    return dcd_prov(p, b) || kd_prov_f64(b, "item_lambda", p->item_lambda);
}

static int rce_prov(const kd_distill_params *p, kd_buf *b)
{
    return prov_knob(b, "lambda", p->lambda, p) || kd_prov_u64(b, "topk", p->K) ||
           kd_prov_u64(b, "samples", p->L) || kd_prov_u64(b, "topm", p->M) ||
           kd_prov_f64(b, "rank_temp", p->rank_temp) || kd_prov_f64(b, "beta", p->beta) ||
           kd_prov_f64(b, "tau", p->tau);
}

/* rce2's item side is dcd-item at dcd's list sizes and eps (fixed, named so the stage key
 * and a reader see them) */
static int rce2_prov(const kd_distill_params *p, kd_buf *b)
{
    kd_distill_params item = kd_distill_defaults(KD_DCD_ITEM);
    return rce_prov(p, b) || kd_prov_f64(b, "item_lambda", p->item_lambda) ||
           kd_prov_u64(b, "item_topk", item.K) || kd_prov_u64(b, "item_uninteresting", item.L) ||
           kd_prov_u64(b, "item_topm", item.M) || kd_prov_f64(b, "eps", p->eps);
}

/* ---------------------------------------------------------------- the table */

const kd_distill_method kd_distill_methods[KD_N_METHODS] = {
    [KD_MARGIN_MSE] = { "margin-mse", "alpha",  NULL,         margin_prov, NULL,         margin_tasks, 0, KD_ITEM_NONE, 0 },
    [KD_RD]         = { "rd",         "lambda", rd_defaults,  rd_prov,     teacher_topm, rd_tasks, 0, KD_ITEM_NONE, 0 },
    [KD_RRD]        = { "rrd",        "lambda", NULL,         rrd_prov,    teacher_topm, rrd_tasks, 0, KD_ITEM_NONE, 0 },
    [KD_CE]         = { "ce",         "lambda", NULL,         ce_prov,     ce_prepare,   ce_tasks, 0, KD_ITEM_NONE, 0 },
    [KD_DCD]        = { "dcd",        "lambda", dcd_user_defaults, dcd_prov, teacher_topm, dcd_tasks, 1, KD_ITEM_NONE, 0 },
    [KD_DCD_ITEM]   = { "dcd-item",   "lambda", dcd_item_defaults, dcd_prov,  dcd_item_prepare, dcd_item_tasks, 1,
                        KD_ITEM_MAIN, 0 },
    [KD_DCD2]       = { "dcd2",       "lambda", dcd_item_defaults, dcd2_prov, dcd2_prepare, dcd2_tasks, 1,
                        KD_ITEM_ADDED, 0 },
    [KD_RCE]        = { "rce",        "lambda", rce_defaults, rce_prov,    rce_prepare,  rce_tasks, 1, KD_ITEM_NONE, 1 },
    [KD_RCE2]       = { "rce2",       "lambda", rce2_defaults, rce2_prov,  rce2_prepare, rce2_tasks, 1,
                        KD_ITEM_DEFAULTS, 1 },
};

/* ---------------------------------------------------------------- setup */

int kd_distill_init(kd_distill *k, const kd_distill_params *p, const kd_dataset *d, const kd_model *teacher,
                    kd_bpr *bpr, uint64_t seed, int threads, kd_err *e)
{
    memset(k, 0, sizeof *k);
    k->p = *p;
    k->d = d;
    k->teacher = teacher;
    k->bpr = bpr;
    k->seed = seed;
    k->threads = threads;
    if (teacher->n_users != d->n_users || teacher->n_items != d->n_items)
        return kd_fail(e, "teacher is %u users x %u items, the dataset %u x %u", teacher->n_users,
                       teacher->n_items, d->n_users, d->n_items);
    if (k->p.M > d->n_items) /* top-M is "at most M": small catalogues use all of it */
        k->p.M = d->n_items;
    p = &k->p;
    if (p->K == 0 || p->K > 1000 || p->L > 1000 || p->K > p->M)
        return kd_fail_usage(e, "need 1 <= --topk <= --topm <= items (%u), --topk and --uninteresting <= 1000",
                             d->n_items);
    const kd_distill_method *row = &kd_distill_methods[p->method];
    /* the item side's lists: KD_ITEM_DEFAULTS's are dcd-item's defaults, whose K is no flag
     * of the user's, so capped like M (at most all users) rather than refused */
    kd_distill_params item = row->item_side == KD_ITEM_DEFAULTS ? kd_distill_defaults(KD_DCD_ITEM) : *p;
    k->Mi = item.M < d->n_users ? item.M : d->n_users;
    k->iK = row->item_side == KD_ITEM_DEFAULTS && item.K > k->Mi ? k->Mi : item.K;
    k->iL = item.L;
    if (row->item_side != KD_ITEM_NONE && k->iK > k->Mi)
        return kd_fail_usage(e, "need --topk <= users (%u) for the item side", d->n_users);
    if (row->rce_lists && (p->M > KD_PICK_MAX || p->L == 0 || p->L > p->M))
        return kd_fail_usage(e, "rce needs 1 <= --samples <= --topm <= %u", KD_PICK_MAX);
    if (kd_distill_check_refresh(p, e)) return -1;
    return row->prepare ? row->prepare(k, e) : 0;
}

void kd_distill_free(kd_distill *k)
{
    free(k->t_items);
    free(k->t_scores);
    free(k->s_items);
    free(k->s_scores);
    free(k->t_all);
    free(k->ti_users);
    free(k->ti_scores);
    free(k->si_users);
    free(k->si_scores);
    kd_dataset_free(&k->dT);
    free(k->rce_items);
    free(k->rce_p);
    free(k->rce_in);
    free(k->rce_n);
    free(k->rce_w);
    memset(k, 0, sizeof *k);
}

int kd_distill_ensemble(kd_model *out, const kd_model *ts, int n, kd_err *e)
{
    uint64_t D = 0;
    memset(out, 0, sizeof *out);
    for (int m = 0; m < n; m++) {
        if (ts[m].n_users != ts[0].n_users || ts[m].n_items != ts[0].n_items)
            return kd_fail(e, "teachers differ in shape (%u x %u and %u x %u)", ts[0].n_users, ts[0].n_items,
                           ts[m].n_users, ts[m].n_items);
        D += ts[m].dim;
    }
    if (n < 1 || D > KD_MAX_DIM) return kd_fail_usage(e, "an ensemble of %d teachers needs dims summing to <= %u", n, KD_MAX_DIM);
    if (kd_model_alloc(out, ts[0].n_users, ts[0].n_items, (uint32_t)D, e)) return -1;
    float fn = (float)n;
    for (uint32_t u = 0; u < out->n_users; u++) {
        float *row = out->P + (size_t)u * out->stride, b = 0;
        for (int m = 0; m < n; m++) {
            for (uint32_t c = 0; c < ts[m].dim; c++) *row++ = ts[m].P[(size_t)u * ts[m].stride + c] / fn;
            b += ts[m].bu[u];
        }
        out->bu[u] = b / fn;
    }
    for (uint32_t i = 0; i < out->n_items; i++) {
        float *row = out->Q + (size_t)i * out->stride, b = 0;
        for (int m = 0; m < n; m++) {
            memcpy(row, ts[m].Q + (size_t)i * ts[m].stride, (size_t)ts[m].dim * 4);
            row += ts[m].dim;
            b += ts[m].bi[i];
        }
        out->bi[i] = b / fn;
    }
    return 0;
}

int kd_distill_tasks(kd_distill *k, kd_sgd_task *tasks, int *ntasks)
{
    tasks[0] = kd_bpr_task(k->bpr);
    *ntasks = kd_distill_methods[k->p.method].tasks(k, tasks);
    for (int t = 1; t < *ntasks; t++) tasks[t].no_decay = !k->p.kd_decay; /* tasks[0]: BPR's own */
    return 0;
}

/* ---------------------------------------------------------------- --lambda auto */

/* The run's best validation value (the epoch whose parameters it returns). */
static double best_valid(const kd_train_log *log)
{
    for (uint32_t v = 0; v < log->n_valid; v++)
        if ((uint32_t)log->valid[2 * v] == log->best_epoch) return log->valid[2 * v + 1];
    return -INFINITY;
}

int kd_distill_train_auto(kd_distill *k, const kd_train_opts *o, kd_model *m, const kd_dataset *d,
                          kd_distill_choice *ch, kd_train_log *log, kd_err *e)
{
    kd_model best = { 0 }, init = { 0 };
    kd_train_log got = { 0 };
    double top = -INFINITY;
    int r = -1;
    memset(ch, 0, sizeof *ch);
    memset(log, 0, sizeof *log);
    ch->n = k->p.auto_n;
    ch->chosen = -1;
    if (!o->valid_every || ch->n < 1 || ch->n > KD_AUTO_MAX)
        return kd_fail_usage(e, "--lambda auto needs early stopping on a validation split");
    if (kd_model_alloc(&best, m->n_users, m->n_items, m->dim, e) ||
        kd_model_alloc(&init, m->n_users, m->n_items, m->dim, e)) {
        kd_model_free(&best);
        return -1;
    }
    kd_model_copy(&init, m); /* every candidate starts from m as given (a diverged one leaves NaN) */
    for (int c = 0; c < ch->n; c++) {
        kd_sgd_task tasks[KD_MAX_TASKS];
        int ntasks;
        kd_err ce = { 0 };
        kd_distill_set_knob(&k->p, k->p.auto_grid[c]);
        kd_model_copy(m, &init);
        if (k->p.auto_grid[c] == 0) {
            /* zero weight is no distillation at all: BPR's task alone, kd-train's model bit
             * for bit (a zero-weight term would still decay the rows its records touch, and
             * dcd2's item side has a weight of its own), so the grid's floor is the plain
             * student, and a method that validates below it is not used */
            tasks[0] = kd_bpr_task(k->bpr);
            ntasks = 1;
        } else {
            kd_distill_tasks(k, tasks, &ntasks);
        }
        if (kd_train_run(o, m, d, tasks, ntasks, &got, &ce)) {
            /* the engine's divergence check (kd_sgd.c): that value is out, the others stay */
            if (ce.code == KD_EXIT_DATA && !strncmp(ce.msg, "training diverged", 17)) {
                ch->valid[c] = NAN;
                continue;
            }
            *e = ce;
            goto done;
        }
        ch->valid[c] = best_valid(&got);
        if (ch->valid[c] > top) {
            top = ch->valid[c];
            ch->chosen = c;
            kd_model_copy(&best, m);
            kd_train_log_free(log);
            *log = got;
        } else {
            kd_train_log_free(&got);
        }
        memset(&got, 0, sizeof got);
    }
    if (ch->chosen < 0) {
        kd_fail(e, "training diverged at every value of the --lambda auto grid; try a smaller --lr");
        goto done;
    }
    kd_distill_set_knob(&k->p, k->p.auto_grid[ch->chosen]);
    kd_model_copy(m, &best);
    r = 0;
done:
    if (r) kd_train_log_free(log);
    kd_model_free(&best);
    kd_model_free(&init);
    return r;
}
