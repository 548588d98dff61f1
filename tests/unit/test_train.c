/* Unit tests of training: the BPR records against finite differences of the loss, the
 * negative sampler, the engine's thread-count independence, and the stateful optimisers
 * (Adam's first step, and the state a transposed task steps). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kd_bpr.h"
#include "kd_rng.h"
#include "kd_sgd.h"
#include "kd_synth.h"
#include "kd_test.h"

/* loss of one triple in double precision */
static double triple_loss(const kd_model *m, uint32_t u, uint32_t i, uint32_t j)
{
    double x = 0;
    for (uint32_t k = 0; k < m->dim; k++)
        x += (double)m->P[u * m->stride + k] * (m->Q[i * m->stride + k] - (double)m->Q[j * m->stride + k]);
    x += (double)m->bi[i] - m->bi[j];
    return kd_softplus_neg(x);
}

/* The records (u,i,+g), (u,j,-g) say dL/dscore(u,i) = -g, dL/dscore(u,j) = +g, so
 * dL/dp_u = -g (q_i - q_j), dL/dq_i = -g p_u, dL/dq_j = g p_u, dL/db_i = -g, dL/db_j = g. */
static void test_bpr_gradient(void)
{
    kd_err e;
    kd_model m;
    CHECK(kd_model_alloc(&m, 3, 5, 7, &e) == 0);
    kd_model_init_normal(&m, 11, 0.7f);
    for (uint32_t i = 0; i < 5; i++) m.bi[i] = 0.1f * (float)i - 0.2f;
    uint32_t u = 1, i = 2, j = 4;
    float si = kd_model_score(&m, u, i), sj = kd_model_score(&m, u, j);
    kd_rec r[2];
    kd_bpr_records(r, i, j, (float)kd_sigmoid_neg((double)si - sj));
    CHECK(r[0].item == i && r[1].item == j);
    CHECK(r[0].coef == -r[1].coef && r[0].coef > 0);
    const double h = 1e-3;
    double worst = 0;
    for (uint32_t k = 0; k < m.dim; k++) {
        float *params[3] = { &m.P[u * m.stride + k], &m.Q[i * m.stride + k], &m.Q[j * m.stride + k] };
        double analytic[3] = { -r[0].coef * (m.Q[i * m.stride + k] - m.Q[j * m.stride + k]),
                               -r[0].coef * m.P[u * m.stride + k], -r[1].coef * m.P[u * m.stride + k] };
        for (int p = 0; p < 3; p++) {
            float keep = *params[p];
            *params[p] = keep + (float)h;
            double lp = triple_loss(&m, u, i, j);
            *params[p] = keep - (float)h;
            double lm = triple_loss(&m, u, i, j);
            *params[p] = keep;
            double num = (lp - lm) / (2 * h), err = fabs(num - analytic[p]);
            worst = err > worst ? err : worst;
        }
    }
    for (int b = 0; b < 2; b++) {
        float *param = b ? &m.bi[j] : &m.bi[i];
        float keep = *param;
        *param = keep + (float)h;
        double lp = triple_loss(&m, u, i, j);
        *param = keep - (float)h;
        double lm = triple_loss(&m, u, i, j);
        *param = keep;
        double err = fabs((lp - lm) / (2 * h) - (-r[b].coef));
        worst = err > worst ? err : worst;
    }
    CHECK(worst < 1e-4);
    kd_model_free(&m);
}

static void test_negatives_never_positive(void)
{
    /* rows from almost empty to almost full, including the exact fallback path */
    uint32_t n_items = 50, row[50];
    int bad = 0;
    uint32_t hist[50] = { 0 };
    for (uint32_t len = 0; len < n_items; len++) {
        for (uint32_t k = 0; k < len; k++) row[k] = (k * 7 + len) % n_items;
        /* sort and dedupe the row */
        for (uint32_t a = 0; a < len; a++)
            for (uint32_t b = a + 1; b < len; b++)
                if (row[b] < row[a]) { uint32_t t = row[a]; row[a] = row[b]; row[b] = t; }
        uint32_t m = 0;
        for (uint32_t k = 0; k < len; k++) if (!m || row[k] != row[m - 1]) row[m++] = row[k];
        for (uint32_t draw = 0; draw < 2000; draw++) {
            uint32_t j = kd_sample_negative(row, m, n_items, kd_key(3, len, draw));
            for (uint32_t k = 0; k < m; k++) bad |= row[k] == j;
            bad |= j >= n_items;
            if (len == 40) hist[j]++;
        }
    }
    CHECK(!bad);
    /* with 40 draws-worth of a row, the 10 free items are hit about uniformly */
    uint32_t lo = 1u << 30, hi = 0, free_items = 0;
    for (uint32_t k = 0; k < n_items; k++)
        if (hist[k]) { free_items++; lo = hist[k] < lo ? hist[k] : lo; hi = hist[k] > hi ? hist[k] : hi; }
    CHECK(free_items > 0 && hi < 2 * lo);
}

/* a small synthetic dataset with the generator's other defaults */
static int small_synth(kd_dataset *d, uint32_t users, uint32_t items, double mean, uint32_t rank, uint32_t clusters,
                       kd_err *e)
{
    kd_synth_params sp = kd_synth_defaults();
    sp.users = users; sp.items = items; sp.mean = mean; sp.rank = rank; sp.clusters = clusters;
    return kd_synth_generate(d, &sp, NULL, e);
}

/* an epoch hook that records the losses */
typedef struct losses {
    uint32_t n;
    double loss[8];
} losses;

static int record_loss(void *ctx, const kd_model *m, const kd_sgd_epoch *ep, kd_err *e)
{
    losses *l = ctx;
    (void)m;
    (void)e;
    if (l->n < 8) l->loss[l->n++] = ep->loss;
    return 0;
}

static void test_threads_do_not_change_the_model(void)
{
    kd_err e;
    kd_dataset d;
    CHECK(small_synth(&d, 200, 120, 12, 8, 4, &e) == 0);
    /* the block scheme, replica mode with 2 and 3 workers, and with 2 workers merging
     * every 300 units (~8 rounds an epoch): each gives one model for every thread count
     * (and the models differ between schemes) */
    static const uint32_t schemes[] = { 0, 2, 3, 2 };
    kd_model first[4] = { { 0 } };
    for (int k = 0; k < 4; k++) {
        kd_model ref = { 0 };
        for (int T = 1; T <= 5; T += 2) {
            kd_model m;
            kd_bpr b;
            losses log = { 0 };
            kd_sgd_params p = { .epochs = 3, .lr = 0.05, .lr_decay = 1, .reg = 0.01, .reg_bias = 0.01, .threads = T,
                                .replicas = schemes[k], .round_units = k == 3 ? 300 : 0 };
            CHECK(kd_model_alloc(&m, d.n_users, d.n_items, 16, &e) == 0);
            kd_model_init_normal(&m, 5, 0.1f);
            CHECK(kd_bpr_init(&b, &d, 2, 9, &e) == 0);
            kd_sgd_task task = kd_bpr_task(&b);
            CHECK(kd_sgd_train(&m, &task, 1, &p, record_loss, &log, &e) == 0);
            CHECK(log.n == 3 && log.loss[2] < log.loss[0]);
            if (T == 1) {
                ref = m;
            } else {
                size_t n = ((size_t)m.n_users + m.n_items) * m.stride;
                CHECK(!memcmp(ref.P, m.P, n * 4) && !memcmp(ref.bi, m.bi, m.n_items * 4));
                kd_model_free(&m);
            }
            kd_bpr_free(&b);
        }
        first[k] = ref;
    }
    size_t n = ((size_t)first[0].n_users + first[0].n_items) * first[0].stride;
    CHECK(memcmp(first[0].P, first[1].P, n * 4) && memcmp(first[1].P, first[2].P, n * 4) &&
          memcmp(first[1].P, first[3].P, n * 4));
    for (int k = 0; k < 4; k++) kd_model_free(&first[k]);
    kd_dataset_free(&d);
}

/* Replica mode's sampling: worker w of 3 draws only its users' (u % 3 == w) train
 * interactions as positives, each exactly once an epoch, in runs of one user (a user's
 * units are consecutive), never a train item as negative, and the workers' units add up
 * to the epoch.  A unit is the same whether asked for in order (in batches, as the engine
 * does) or out of order. */
static void test_worker_sampling(void)
{
    kd_err e;
    kd_dataset d;
    CHECK(small_synth(&d, 90, 40, 10, 4, 3, &e) == 0);
    kd_bpr b;
    CHECK(kd_bpr_init(&b, &d, 3, 5, &e) == 0);
    CHECK(kd_bpr_partition(&b, 3, &e) == 0);
    uint64_t total = 0, bad = 0, not_once = 0, split_runs = 0, order_differs = 0, same_order = 0;
    uint64_t nnz = kd_csr_nnz(&d.train);
    uint8_t *seen = calloc(nnz, 1);
    uint32_t *rows = malloc(nnz * 5 * sizeof *rows), ids[5];
    uint32_t *first = malloc(nnz * sizeof *first);
    for (uint32_t w = 0; w < 3; w++) {
        uint64_t n = b.part_off[w + 1] - b.part_off[w];
        total += n;
        for (uint64_t epoch = 0; epoch < 4; epoch++) {
            memset(seen, 0, nnz);
            /* in order, in batches of 7 */
            for (uint64_t k = 0; k < n; k += 7)
                kd_bpr_sample_part(&b, epoch, w, k, n - k < 7 ? n - k : 7, rows + k * 5);
            uint8_t *done = calloc(d.n_users, 1);
            for (uint64_t k = 0; k < n; k++) {
                const uint32_t *x = rows + k * 5;
                const uint32_t *row = d.train.idx + d.train.indptr[x[0]];
                uint32_t len = kd_csr_len(&d.train, x[0]);
                bad += x[0] % 3 != w || !kd_sorted_has(row, len, x[1]);
                for (int j = 2; j < 5; j++) bad += x[j] >= d.n_items || kd_sorted_has(row, len, x[j]);
                for (uint32_t y = 0; y < len; y++)
                    if (row[y] == x[1]) seen[d.train.indptr[x[0]] + y]++;
                /* a user's run is never interrupted: once left, never seen again this epoch */
                if (k > 0 && x[0] != x[-5]) {
                    split_runs += done[x[0]];
                    done[x[-5]] = 1;
                }
            }
            free(done);
            for (uint32_t u = w; u < d.n_users; u += 3)
                for (uint64_t y = d.train.indptr[u]; y < d.train.indptr[u + 1]; y++) not_once += seen[y] != 1;
            /* out of order, one at a time, backwards: the same rows */
            for (uint64_t k = n; k-- > 0;) {
                kd_bpr_sample_part(&b, epoch, w, k, 1, ids);
                bad += memcmp(ids, rows + k * 5, sizeof ids) != 0;
            }
            /* the order of users differs between epochs */
            if (epoch == 0) {
                for (uint64_t k = 0; k < n; k++) first[k] = rows[k * 5];
            } else {
                uint64_t diff = 0;
                for (uint64_t k = 0; k < n; k++) diff += first[k] != rows[k * 5];
                order_differs += diff > 0;
                same_order += diff == 0;
            }
        }
    }
    CHECK(total == nnz);
    CHECK(bad == 0);
    CHECK(not_once == 0);
    CHECK(split_runs == 0);
    CHECK(order_differs == 9 && same_order == 0);
    free(seen);
    free(rows);
    free(first);
    kd_bpr_free(&b);
    kd_dataset_free(&d);
}

/* The inline exp and log1p of the BPR step against libm in double, over their whole
 * domain (a step of 1/1024 up to 90, plus the edges), and kd_bpr_grad's outputs. */
static void test_fast_math(void)
{
    double worst_exp = 0, worst_log = 0, worst_g = 0, worst_l = 0;
    for (int k = 0; k <= 90 * 1024; k++) {
        float a = (float)k / 1024;
        double want = exp(-(double)a), got = kd_exp_neg(a);
        if (want > 1e-37) {
            double rel = fabs(got - want) / want;
            worst_exp = rel > worst_exp ? rel : worst_exp;
        } else if (!(got >= 0 && got < 1e-36))
            worst_exp = 1; /* the underflow range must give (nearly) zero */
        if (a <= 1) {
            double err = fabs(kd_log1p_unit(a) - log1p((double)a));
            worst_log = err > worst_log ? err : worst_log;
        }
        for (int sign = -1; sign <= 1; sign += 2) {
            float x = (float)sign * a, l = 0, g = kd_bpr_grad(x, &l);
            double gw = 1 / (1 + exp((double)x)), lw = x > 0 ? log1p(exp(-(double)x)) : -(double)x + log1p(exp((double)x));
            worst_g = fabs(g - gw) > worst_g ? fabs(g - gw) : worst_g;
            worst_l = fabs(l - lw) / (lw > 1 ? lw : 1) > worst_l ? fabs(l - lw) / (lw > 1 ? lw : 1) : worst_l;
        }
    }
    CHECK(worst_exp < 3e-7);
    CHECK(worst_log < 2e-7);
    CHECK(worst_g < 2e-7);
    CHECK(worst_l < 3e-7);
    CHECK(kd_exp_neg(0) == 1.0f && kd_exp_neg(200) == 0.0f && kd_exp_neg(INFINITY) == 0.0f);
    CHECK(isnan(kd_exp_neg(NAN)));
    printf("# exp rel %.2g, log1p abs %.2g, sigmoid abs %.2g, softplus rel %.2g\n", worst_exp, worst_log, worst_g, worst_l);
}

/* The initialisation, split over threads on a model this large, gives the values of the
 * one sequential stream. */
/* The fast initialisation (polynomial log and cos, eight values at a time, libm only near
 * a float rounding boundary) stores exactly what the sequential libm stream gives: dims
 * with and without a tail of fewer than 8, one and several threads (1.26 M values and
 * more), small and large std. */
static void test_init_is_the_sequential_stream(void)
{
    struct { uint32_t nu, ni, dim; uint64_t seed; float std; } c[] = {
        { 15000, 2003, 70, 42, 0.1f }, { 9000, 7000, 64, 7, 1.0f }, { 300, 200, 5, 3, 0.01f },
        { 70000, 3000, 16, 99, 3.5f }, { 1000, 10, 1, 5, 0.1f },
    };
    for (size_t x = 0; x < sizeof c / sizeof c[0]; x++) {
        kd_err e;
        kd_model m;
        CHECK(kd_model_alloc(&m, c[x].nu, c[x].ni, c[x].dim, &e) == 0);
        kd_model_init_normal(&m, c[x].seed, c[x].std);
        kd_rng r = kd_rng_seed(c[x].seed);
        uint64_t bad = 0;
        for (uint64_t row = 0; row < (uint64_t)m.n_users + m.n_items; row++) {
            for (uint32_t k = 0; k < m.dim; k++) {
                float want = (float)(c[x].std * kd_rng_normal(&r));
                bad += memcmp(&want, &m.P[row * m.stride + k], 4) != 0;
            }
            for (uint32_t k = m.dim; k < m.stride; k++) bad += m.P[row * m.stride + k] != 0;
        }
        CHECK(bad == 0);
        kd_model_free(&m);
    }
}

/* Two units a unit-epoch: rows who and who + 1 each see a BPR triple on rows a, b (scores
 * read from the master as a transposed task's produce() reads them: score(a, who)). */
typedef struct fixed_task { uint32_t who, a, b; int transposed; } fixed_task;

/* score(u, i) in an order symmetric under transposition (so both sides see the same bits) */
static double sym_score(const kd_model *m, uint32_t u, uint32_t i)
{
    double x = 0;
    for (uint32_t k = 0; k < m->dim; k++) x += (double)m->P[(size_t)u * m->stride + k] * m->Q[(size_t)i * m->stride + k];
    return x + ((double)m->bu[u] + m->bi[i]);
}

static double fixed_produce(void *ctx, const kd_model *m, uint64_t epoch, uint64_t unit, uint32_t *user, kd_rec *recs,
                            void *scratch)
{
    const fixed_task *c = ctx;
    (void)epoch, (void)scratch;
    uint32_t w = c->who + (uint32_t)(unit % 2);
    double x = c->transposed ? sym_score(m, c->a, w) - sym_score(m, c->b, w) : sym_score(m, w, c->a) - sym_score(m, w, c->b);
    *user = w;
    kd_bpr_records(recs, c->a, c->b, (float)kd_sigmoid_neg(x));
    return kd_softplus_neg(x);
}

static kd_sgd_task fixed_sgd_task(fixed_task *c, uint64_t units)
{
    return (kd_sgd_task){ .units = units, .recs_per_unit = 2, .samples_per_unit = 1, .produce = fixed_produce,
                          .transposed = c->transposed, .ctx = c };
}

/* Adam's first step on a row is lr * sign(gradient) in every coordinate (bias correction
 * makes m^ = g and v^ = g^2), whatever the gradient's scale: one unit, one step of p_u. */
static void test_adam_first_step(void)
{
    kd_err e;
    kd_model m;
    CHECK(kd_model_alloc(&m, 4, 6, 16, &e) == 0);
    kd_model_init_normal(&m, 3, 0.5f);
    float before[16];
    memcpy(before, m.P + 1 * m.stride, sizeof before);
    float qa[16], qb[16];
    memcpy(qa, m.Q + 2 * m.stride, sizeof qa);
    memcpy(qb, m.Q + 5 * m.stride, sizeof qb);
    float coef = (float)kd_sigmoid_neg(sym_score(&m, 1, 2) - sym_score(&m, 1, 5));
    fixed_task c = { 1, 2, 5, 0 };
    kd_sgd_task task = fixed_sgd_task(&c, 1);
    kd_sgd_params p = { .epochs = 1, .lr = 0.01, .lr_decay = 1, .reg = 0.02, .reg_bias = 0, .optim = KD_OPT_ADAM, .threads = 1 };
    CHECK(kd_sgd_train(&m, &task, 1, &p, NULL, NULL, &e) == 0);
    int bad = 0;
    for (int k = 0; k < 16; k++) {
        double g = (double)coef * (qa[k] - qb[k]) - 0.02 * before[k], step = (double)m.P[1 * m.stride + k] - before[k];
        if (fabs(g) > 1e-4 && (fabs(fabs(step) - 0.01) > 1e-5 || (step > 0) != (g > 0))) bad++;
    }
    CHECK(bad == 0);
    kd_model_free(&m);
}

/* One step of Adagrad and of Adam is exactly the arithmetic their comments give, lane by
 * lane in float (the steps run 16 lanes at a time: vector square roots and divides must round
 * as scalar ones), and the padding of a row (dim 20, stride 32) stays zero: one BPR unit on
 * user 1, items 2 and 5, every coordinate compared bit for bit. */
static void test_stateful_step_exact(void)
{
    kd_err e;
    for (int opt = KD_OPT_ADAGRAD; opt <= KD_OPT_ADAM; opt++) {
        kd_model m;
        CHECK(kd_model_alloc(&m, 4, 6, 20, &e) == 0 && m.stride == 32);
        kd_model_init_normal(&m, 5, 0.002f); /* small rows: the step, not x, sets the last bits */
        const uint32_t S = m.stride;
        float p0[32], a0[32], b0[32], bi0[6];
        memcpy(p0, m.P + 1 * S, sizeof p0);
        memcpy(a0, m.Q + 2 * S, sizeof a0);
        memcpy(b0, m.Q + 5 * S, sizeof b0);
        memcpy(bi0, m.bi, sizeof bi0);
        float c = (float)kd_sigmoid_neg(sym_score(&m, 1, 2) - sym_score(&m, 1, 5));
        fixed_task ft = { 1, 2, 5, 0 };
        kd_sgd_task task = fixed_sgd_task(&ft, 1);
        kd_sgd_params p = { .epochs = 1, .lr = 0.01, .lr_decay = 1, .reg = 0.02, .reg_bias = 0, .optim = opt, .threads = 1 };
        CHECK(kd_sgd_train(&m, &task, 1, &p, NULL, NULL, &e) == 0);
        const float lr = (float)p.lr, reg = (float)p.reg, b1 = 0.9f, b2 = 0.999f;
        const double c2 = sqrt(1 - 0.999);
        const float a = (float)(lr * c2 / (1 - 0.9)), e2 = (float)(1e-8f * c2);
        /* x stepped with gradient g: the optimiser's rule at its first step (state 0) */
#define STEP(x, g) (opt == KD_OPT_ADAM ? (x) + a * ((1 - b1) * (g)) / (sqrtf((1 - b2) * (g) * (g)) + e2) \
                                       : (x) + lr * (g) / (sqrtf((g) * (g)) + 1e-7f))
        int bad = 0;
        for (uint32_t k = 0; k < S; k++) {
            float delta = c * a0[k] + -c * b0[k];
            float gu = 1.0f * delta - reg * p0[k], ga = c * p0[k] - reg * a0[k], gb = -c * p0[k] - reg * b0[k];
            float wu = STEP(p0[k], gu), wa = STEP(a0[k], ga), wb = STEP(b0[k], gb);
            if (k >= m.dim) wu = wa = wb = 0;
            bad += memcmp(&wu, m.P + 1 * S + k, 4) != 0;
            bad += memcmp(&wa, m.Q + 2 * S + k, 4) != 0;
            bad += memcmp(&wb, m.Q + 5 * S + k, 4) != 0;
        }
        float gi = c * 1.0f - 0.0f * bi0[2], gj = -c * 1.0f - 0.0f * bi0[5];
        float wi = STEP(bi0[2], gi), wj = STEP(bi0[5], gj);
#undef STEP
        CHECK(bad == 0 && !memcmp(&wi, m.bi + 2, 4) && !memcmp(&wj, m.bi + 5, 4));
        kd_model_free(&m);
    }
}

/* A transposed task (an item-side loss) under Adagrad and Adam steps the item rows with the
 * items' state and the user rows with the users': training it on a model is bit for bit
 * training the same task, untransposed, on the transposed model.  With more users than
 * items, as here, a state indexed as if users were items reads and writes out of bounds
 * (the Adagrad state did so before this test; ASan and valgrind see it). */
static void test_transposed_state(void)
{
    kd_err e;
    for (int opt = KD_OPT_ADAGRAD; opt <= KD_OPT_ADAM; opt++) {
        kd_model m, t;
        CHECK(kd_model_alloc(&m, 9, 4, 16, &e) == 0 && kd_model_alloc(&t, 4, 9, 16, &e) == 0);
        kd_model_init_normal(&m, 8, 0.3f);
        for (uint32_t u = 0; u < 9; u++) m.bu[u] = 0.01f * (float)u;
        for (uint32_t i = 0; i < 4; i++) m.bi[i] = -0.02f * (float)i;
        memcpy(t.P, m.Q, (size_t)4 * m.stride * 4);
        memcpy(t.Q, m.P, (size_t)9 * m.stride * 4);
        memcpy(t.bu, m.bi, 4 * 4);
        memcpy(t.bi, m.bu, 9 * 4);
        /* item rows 1, 2 each rank users 7 over 8; then user 7 steps on BPR-like records too */
        fixed_task side = { 1, 7, 8, 1 }, plain = { 1, 7, 8, 0 };
        kd_sgd_task ts = fixed_sgd_task(&side, 6), tp = fixed_sgd_task(&plain, 6);
        kd_sgd_params p = { .epochs = 3, .lr = 0.05, .lr_decay = 1, .reg = 0.01, .reg_bias = 0.01, .optim = opt, .threads = 1 };
        float init[16];
        memcpy(init, m.Q + m.stride, sizeof init);
        CHECK(kd_sgd_train(&m, &ts, 1, &p, NULL, NULL, &e) == 0);
        CHECK(kd_sgd_train(&t, &tp, 1, &p, NULL, NULL, &e) == 0);
        CHECK(!memcmp(m.P, t.Q, (size_t)9 * m.stride * 4) && !memcmp(m.Q, t.P, (size_t)4 * m.stride * 4));
        CHECK(!memcmp(m.bu, t.bi, 9 * 4) && !memcmp(m.bi, t.bu, 4 * 4));
        CHECK(memcmp(m.Q + m.stride, init, sizeof init) != 0); /* it trained: item row 1 moved */
        kd_model_free(&m);
        kd_model_free(&t);
    }
}

int main(void)
{
    test_init_is_the_sequential_stream();
    test_fast_math();
    test_bpr_gradient();
    test_negatives_never_positive();
    test_worker_sampling();
    test_threads_do_not_change_the_model();
    test_adam_first_step();
    test_stateful_step_exact();
    test_transposed_state();
    return kd_test_done("test_train");
}
