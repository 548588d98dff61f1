/* Unit tests of the distillation losses: analytic gradients against finite differences
 * (of the pure losses, and of whole units over every model parameter), the temperature
 * identity of margin-mse and its alpha = 0 reduction to BPR, rce's lists and reductions,
 * and the teacher ensemble. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_distill.h"
#include "kd_eval.h"
#include "kd_rng.h"
#include "kd_synth.h"
#include "kd_test.h"

static void test_rrd_gradient(void)
{
    kd_rng r = kd_rng_seed(8);
    for (int trial = 0; trial < 20; trial++) {
        uint32_t K = 1 + kd_rng_below(&r, 12), L = kd_rng_below(&r, 20);
        float s[64];
        double g[64], gd[64];
        for (uint32_t k = 0; k < K + L; k++) s[k] = (float)(3 * kd_rng_normal(&r));
        kd_rrd_loss(s, K, L, g);
        double worst = 0;
        for (uint32_t k = 0; k < K + L; k++) {
            float keep = s[k];
            s[k] = keep + 1e-2f;
            double lp = kd_rrd_loss(s, K, L, gd);
            s[k] = keep - 1e-2f;
            double lm = kd_rrd_loss(s, K, L, gd);
            s[k] = keep;
            double num = (lp - lm) / ((double)(keep + 1e-2f) - (double)(keep - 1e-2f));
            worst = fmax(worst, fabs(num - g[k]));
        }
        CHECK(worst < 1e-3);
    }
    /* the loss is the textbook Plackett-Luce negative log-likelihood */
    float s[3] = { 2, 1, 0.5f };
    double g[3], want = -(2 - log(exp(2) + exp(1) + exp(0.5))) - (1 - log(exp(1) + exp(0.5)));
    CHECK_NEAR(kd_rrd_loss(s, 2, 1, g), want, 1e-12);
}

static void test_ce_gradient(void)
{
    kd_rng r = kd_rng_seed(9);
    for (int trial = 0; trial < 10; trial++) {
        uint32_t n = 2 + kd_rng_below(&r, 30);
        double tau = 0.5 + kd_rng_unif(&r) * 3;
        float t[32], s[32];
        double g[32], gd[32], worst = 0, gsum = 0;
        for (uint32_t i = 0; i < n; i++) { t[i] = (float)(2 * kd_rng_normal(&r)); s[i] = (float)(2 * kd_rng_normal(&r)); }
        kd_ce_loss(t, s, n, tau, g);
        for (uint32_t i = 0; i < n; i++) {
            float keep = s[i];
            s[i] = keep + 1e-2f;
            double lp = kd_ce_loss(t, s, n, tau, gd);
            s[i] = keep - 1e-2f;
            double lm = kd_ce_loss(t, s, n, tau, gd);
            s[i] = keep;
            worst = fmax(worst, fabs((lp - lm) / ((double)(keep + 1e-2f) - (double)(keep - 1e-2f)) - g[i]));
            gsum += g[i];
        }
        CHECK(worst < 1e-3);
        CHECK(fabs(gsum) < 1e-12); /* softmax gradients sum to zero */
    }
    /* identical distributions: zero gradient, loss = entropy */
    float a[3] = { 1, 2, 3 };
    double g[3];
    kd_ce_loss(a, a, 3, 1, g);
    CHECK(fabs(g[0]) < 1e-15 && fabs(g[1]) < 1e-15 && fabs(g[2]) < 1e-15);
}

/* margin-mse's soft term alone (alpha 1): zero loss and gradient where the student's
 * margin is the teacher's; the gradient T·(σ(x/T) - σ(dt/T)), so bounded by T and of the
 * teacher's sign; the curvature (finite differences of the gradient) at most 1/4 like
 * BPR's; finite for margins of ±1e4; T²·KL -> (x - dt)²/8 as T grows (margin-MSE/8). */
static void test_margin_soft(void)
{
    kd_distill_params p = kd_distill_defaults(KD_MARGIN_MSE);
    p.alpha = 1;
    int ok = 1;
    double curv = 0, lim = 0;
    for (double T = 0.25; T <= 8; T *= 2) {
        p.temperature = T;
        for (double x = -9; x <= 9; x += 0.45)
            for (double dt = -7; dt <= 7; dt += 0.9) {
                double dl, dp, dm, l = kd_margin_loss(&p, (float)x, dt, &dl);
                double want = T * (1 / (1 + exp(-(double)(float)x / T)) - 1 / (1 + exp(-dt / T)));
                ok &= fabs(dl - want) < 1e-12 && fabs(dl) <= T && l >= -1e-12;
                kd_margin_loss(&p, (float)x + 1e-2f, dt, &dp);
                kd_margin_loss(&p, (float)x - 1e-2f, dt, &dm);
                curv = fmax(curv, (dp - dm) / ((double)((float)x + 1e-2f) - (double)((float)x - 1e-2f)));
            }
        double dl, l = kd_margin_loss(&p, 1.5f, 1.5, &dl);
        ok &= fabs(l) < 1e-12 && fabs(dl) < 1e-12;
    }
    CHECK(ok);
    CHECK(curv <= 0.25 + 1e-6 && curv > 0.2);
    p.temperature = 1;
    double dl, l = kd_margin_loss(&p, 1e4f, -1e4, &dl);
    CHECK(isfinite(l) && fabs(dl - 1) < 1e-12 && l > 9999);
    l = kd_margin_loss(&p, -1e4f, 1e4, &dl);
    CHECK(isfinite(l) && fabs(dl + 1) < 1e-12);
    for (double x = -2; x <= 2; x += 0.5) {
        p.temperature = 1e3;
        double soft = kd_margin_loss(&p, (float)x, 0.7, &dl);
        p.margin_loss = KD_MLOSS_MSE;
        double mse = kd_margin_loss(&p, (float)x, 0.7, &dl);
        p.margin_loss = KD_MLOSS_SOFT;
        lim = fmax(lim, fabs(soft - mse / 8));
    }
    CHECK(lim < 1e-4);
}

static void test_margin(void)
{
    kd_distill_params p = kd_distill_defaults(KD_MARGIN_MSE);
    CHECK(p.margin_loss == KD_MLOSS_SOFT); /* the default */
    double worst = 0;
    for (int loss = 0; loss < 2; loss++)
        for (double T = 0.5; T <= 4; T *= 2)
            for (int mix = 0; mix < 2; mix++)
                for (double x = -3; x <= 3; x += 0.7)
                    for (double dt = -2; dt <= 4; dt += 1.3) {
                        double dl, d2;
                        p.margin_loss = loss ? KD_MLOSS_MSE : KD_MLOSS_SOFT;
                        p.temperature = T;
                        p.mix_add = mix;
                        p.alpha = 0.3;
                        p.lambda = 0.7;
                        kd_margin_loss(&p, x, dt, &dl);
                        float xp = (float)x + 1e-2f, xm = (float)x - 1e-2f;
                        double num = (kd_margin_loss(&p, xp, dt, &d2) - kd_margin_loss(&p, xm, dt, &d2)) / ((double)xp - xm);
                        worst = fmax(worst, fabs(num - dl));
                    }
    CHECK(worst < 2e-3); /* the BPR part is single precision */
    test_margin_soft();
    /* T^2 * MSE(Δs/T, Δt/T) = MSE(Δs, Δt): the temperature has no effect */
    p.margin_loss = KD_MLOSS_MSE;
    int same = 1;
    for (double T = 0.25; T <= 64; T *= 2) /* powers of two: even the rounding cancels */
        for (double x = -3; x <= 3; x += 0.37) {
            double dl1, dlT, l1, lT;
            p.mix_add = 0;
            p.temperature = 1;
            l1 = kd_margin_loss(&p, x, 1.234, &dl1);
            p.temperature = T;
            lT = kd_margin_loss(&p, x, 1.234, &dlT);
            same &= l1 == lT && dl1 == dlT;
        }
    CHECK(same);
    double close = 0;
    for (double T = 0.3; T < 20; T *= 1.7) {
        double dl1, dlT;
        p.temperature = 1;
        double l1 = kd_margin_loss(&p, 0.9, -0.4, &dl1);
        p.temperature = T;
        double lT = kd_margin_loss(&p, 0.9, -0.4, &dlT);
        close = fmax(close, fmax(fabs(l1 - lT), fabs(dl1 - dlT)));
    }
    CHECK(close < 1e-12);
    /* alpha = 0: exactly BPR's gradient */
    p.alpha = 0;
    p.temperature = 3;
    int bpr = 1;
    for (double x = -5; x <= 5; x += 0.31) {
        double dl;
        float lb = 0, g = kd_bpr_grad((float)x, &lb);
        double l = kd_margin_loss(&p, (float)x, 7.5, &dl);
        bpr &= (float)-dl == g && (float)l == lb;
        bpr &= fabs(g - kd_sigmoid_neg(x)) < 1e-6; /* and BPR's gradient it is */
    }
    CHECK(bpr);
}

/* The method table: every row parses back to itself, has its functions, and writes
 * method= then its knob's line into provenance; the knob is alpha for margin-mse's convex
 * mix and lambda otherwise (also margin-mse under --mix add). */
static void test_method_table(void)
{
    int ok = 1;
    for (int m = 0; m < KD_N_METHODS; m++) {
        const kd_distill_method *row = &kd_distill_methods[m];
        ok &= row->name && row->knob && row->prov && row->tasks && kd_method_parse(row->name) == m;
        kd_distill_params p = kd_distill_defaults(m);
        double v = -1;
        const char *knob = kd_distill_knob(&p, &v);
        ok &= !strcmp(knob, m == KD_MARGIN_MSE ? "alpha" : "lambda") && v == (m == KD_MARGIN_MSE ? p.alpha : p.lambda);
        kd_buf b = { 0 };
        char want[64], first[64];
        ok &= kd_distill_prov(&p, &b) == 0;
        snprintf(first, sizeof first, "method=%s\n", row->name);
        snprintf(want, sizeof want, "\n%s=", knob);
        ok &= b.len > strlen(first) && !memcmp(b.p, first, strlen(first));
        ok &= kd_buf_printf(&b, "%c", 0) == 0 && strstr((const char *)b.p, want) != NULL;
        kd_buf_free(&b);
    }
    CHECK(ok);
    kd_distill_params p = kd_distill_defaults(KD_MARGIN_MSE);
    p.mix_add = 1;
    p.lambda = 0.25;
    double v = 0;
    CHECK(!strcmp(kd_distill_knob(&p, &v), "lambda") && v == 0.25);
    CHECK(kd_distill_defaults(KD_RD).lambda == 0.5 && kd_distill_defaults(KD_DCD).K == 20);
}

static void test_rce_loss(void)
{
    kd_rng r = kd_rng_seed(10);
    for (int trial = 0; trial < 20; trial++) {
        uint32_t nS = 1 + kd_rng_below(&r, 12), nA = 1 + kd_rng_below(&r, 20);
        double w = kd_rng_unif(&r), tau = 0.5 + 2 * kd_rng_unif(&r);
        float tS[32], sS[32], tA[32], sA[32];
        double gS[32], gA[32], dS[32], dA[32], worst = 0;
        for (uint32_t a = 0; a < nS; a++) tS[a] = (float)(2 * kd_rng_normal(&r)), sS[a] = (float)(2 * kd_rng_normal(&r));
        for (uint32_t a = 0; a < nA; a++) tA[a] = (float)(2 * kd_rng_normal(&r)), sA[a] = (float)(2 * kd_rng_normal(&r));
        kd_rce_loss(tS, sS, nS, tA, sA, nA, w, tau, gS, gA);
        for (uint32_t a = 0; a < nS + nA; a++) {
            float *x = a < nS ? &sS[a] : &sA[a - nS], keep = *x;
            *x = keep + 1e-2f;
            double lp = kd_rce_loss(tS, sS, nS, tA, sA, nA, w, tau, dS, dA);
            *x = keep - 1e-2f;
            double lm = kd_rce_loss(tS, sS, nS, tA, sA, nA, w, tau, dS, dA);
            *x = keep;
            double num = (lp - lm) / ((double)(keep + 1e-2f) - (double)(keep - 1e-2f));
            worst = fmax(worst, fabs(num - (a < nS ? gS[a] : gA[a - nS])));
        }
        CHECK(worst < 1e-3);
        /* w = 0 is the cross-entropy on S alone, w = 1 the one on A alone */
        double ce[32];
        CHECK(kd_rce_loss(tS, sS, nS, tA, sA, nA, 0, tau, gS, gA) == kd_ce_loss(tS, sS, nS, tau, ce));
        int zero = 1;
        for (uint32_t a = 0; a < nA; a++) zero &= gA[a] == 0;
        CHECK(zero);
        CHECK(kd_rce_loss(tS, sS, nS, tA, sA, nA, 1, tau, gS, gA) == kd_ce_loss(tA, sA, nA, tau, ce));
    }
}

/* A tiny distillation set-up: a synthetic dataset, a teacher and a student with spread
 * scores (random parameters, biases included). */
typedef struct tiny {
    kd_dataset d;
    kd_model t, m;
    kd_bpr b;
} tiny;

static void tiny_init(tiny *x)
{
    kd_err e = { 0 };
    kd_synth_params sp = kd_synth_defaults();
    sp.users = 14; sp.items = 30; sp.mean = 5; sp.rank = 3; sp.clusters = 2; sp.seed = 3;
    memset(x, 0, sizeof *x);
    int ok = kd_synth_generate(&x->d, &sp, NULL, &e) == 0 && kd_model_alloc(&x->t, 14, 30, 5, &e) == 0 &&
             kd_model_alloc(&x->m, 14, 30, 3, &e) == 0 && kd_bpr_init(&x->b, &x->d, 1, 7, &e) == 0;
    CHECK(ok);
    kd_model_init_normal(&x->t, 11, 1.0f);
    kd_model_init_normal(&x->m, 12, 0.7f);
    kd_rng r = kd_rng_seed(13);
    for (uint32_t i = 0; i < 30; i++) x->t.bi[i] = (float)kd_rng_normal(&r), x->m.bi[i] = (float)(0.5 * kd_rng_normal(&r));
    for (uint32_t u = 0; u < 14; u++) x->m.bu[u] = (float)(0.5 * kd_rng_normal(&r));
}

static void tiny_free(tiny *x)
{
    kd_bpr_free(&x->b);
    kd_model_free(&x->t);
    kd_model_free(&x->m);
    kd_dataset_free(&x->d);
}

/* tn's data, then k distilled from tn's teacher with p (seed, threads) and its tasks: the
 * set-up of the task tests below */
static void tiny_distill(tiny *tn, kd_distill *k, const kd_distill_params *p, uint64_t seed, int threads,
                         kd_sgd_task *tasks, int *nt)
{
    kd_err e = { 0 };
    tiny_init(tn);
    CHECK(kd_distill_init(k, p, &tn->d, &tn->t, &tn->b, seed, threads, &e) == 0);
    *nt = 0;
    kd_distill_tasks(k, tasks, nt);
}

/* Parameter-level finite differences of one unit: the gradient its records imply (user
 * unit: dP_u = -sum coef_k q_k, dQ_k = -coef_k p_u, db_k = -coef_k; transposed unit of
 * item i: dQ_i = -sum coef_k p_k, dP_k = -coef_k q_i, dbu_k = -coef_k, nothing on b_i)
 * against central differences of the unit's loss over every coordinate of P, Q, bu, bi.
 * Returns the worst |numeric - implied|, or -1 for a skipped unit; *gmax = max |implied|. */
static double unit_fd(const kd_sgd_task *t, kd_model *m, uint64_t unit, double *gmax)
{
    uint32_t user, R = t->recs_per_unit, U = m->n_users, I = m->n_items, D = m->dim, S = m->stride;
    kd_rec *recs = malloc(R * sizeof *recs);
    void *scratch = NULL;
    if (posix_memalign(&scratch, 64, t->scratch_bytes + 64)) scratch = NULL;
    double *gP = calloc((size_t)U * S, 8), *gQ = calloc((size_t)I * S, 8), *gbu = calloc(U, 8), *gbi = calloc(I, 8);
    t->produce(t->ctx, m, 0, unit, &user, recs, scratch);
    double worst = -1;
    *gmax = 0;
    if (user != KD_NO_ITEM) {
        for (uint32_t k = 0; k < R; k++) {
            if (recs[k].item == KD_NO_ITEM) continue;
            uint32_t h = user, o = recs[k].item;
            double c = recs[k].coef;
            const float *ph = t->transposed ? m->Q + (size_t)h * S : m->P + (size_t)h * S;
            const float *po = t->transposed ? m->P + (size_t)o * S : m->Q + (size_t)o * S;
            double *gh = t->transposed ? gQ + (size_t)h * S : gP + (size_t)h * S;
            double *go = t->transposed ? gP + (size_t)o * S : gQ + (size_t)o * S;
            for (uint32_t c2 = 0; c2 < D; c2++) {
                gh[c2] -= c * po[c2];
                go[c2] -= c * ph[c2];
            }
            (t->transposed ? gbu : gbi)[o] -= c;
        }
        worst = 0;
        float *blocks[4] = { m->P, m->Q, m->bu, m->bi };
        double *grads[4] = { gP, gQ, gbu, gbi };
        uint32_t rows[4] = { U, I, U, I }, width[4] = { D, D, 1, 1 }, step[4] = { S, S, 1, 1 };
        for (int bl = 0; bl < 4; bl++)
            for (uint32_t rr = 0; rr < rows[bl]; rr++)
                for (uint32_t c2 = 0; c2 < width[bl]; c2++) {
                    float *x = blocks[bl] + (size_t)rr * step[bl] + c2, keep = *x;
                    uint32_t dummy;
                    *x = keep + 1e-2f;
                    double lp = t->produce(t->ctx, m, 0, unit, &dummy, recs, scratch);
                    *x = keep - 1e-2f;
                    double lm = t->produce(t->ctx, m, 0, unit, &dummy, recs, scratch);
                    *x = keep;
                    double num = (lp - lm) / ((double)(keep + 1e-2f) - (double)(keep - 1e-2f));
                    double g = grads[bl][(size_t)rr * step[bl] + c2];
                    worst = fmax(worst, fabs(num - g));
                    *gmax = fmax(*gmax, fabs(g));
                }
    }
    free(recs);
    free(scratch);
    free(gP); free(gQ); free(gbu); free(gbi);
    return worst;
}

/* Every distillation task of rce, dcd-item, dcd2 and rce2 (both sides), dcd and rrd: the records
 * are -dLoss/dscore, checked over whole units (lists frozen after epoch_begin). */
static void test_unit_gradients(void)
{
    int methods[] = { KD_RCE, KD_DCD_ITEM, KD_DCD2, KD_DCD, KD_RRD, KD_RCE2 };
    for (unsigned x = 0; x < sizeof methods / sizeof *methods; x++) {
        tiny tn;
        kd_err e = { 0 };
        kd_distill k;
        kd_distill_params p = kd_distill_defaults(methods[x]);
        p.K = 6; p.L = 5; p.M = 12; p.lambda = 0.7; p.item_lambda = 0.4; p.tau = 0.8;
        kd_sgd_task tasks[KD_MAX_TASKS];
        int nt;
        tiny_distill(&tn, &k, &p, 99, 1, tasks, &nt);
        double worst = 0, gmax = 0;
        int units = 0, transposed = 0;
        for (int ti = 1; ti < nt; ti++) {
            const kd_sgd_task *t = &tasks[ti];
            transposed += t->transposed;
            CHECK(!t->epoch_begin || t->epoch_begin(t->ctx, &tn.m, 0, &e) == 0);
            for (uint64_t unit = 0; unit < t->units && unit < 12; unit++) {
                double g, w = unit_fd(t, &tn.m, unit, &g);
                if (w < 0) continue;
                units++;
                worst = fmax(worst, w);
                gmax = fmax(gmax, g);
            }
        }
        CHECK(units >= 10);
        CHECK(gmax > 1e-2);            /* the term does something */
        CHECK(worst < 5e-4);           /* measured ~2e-5 against gradients of 1-4 */
        if (worst >= 5e-4 || getenv("KD_TEST_VERBOSE")) fprintf(stderr, "  method %s: worst %g (max gradient %g)\n", kd_distill_methods[methods[x]].name, worst, gmax);
        CHECK(transposed == (methods[x] == KD_DCD_ITEM || methods[x] == KD_DCD2 || methods[x] == KD_RCE2));
        kd_distill_free(&k);
        tiny_free(&tn);
    }
}

/* margin-mse's task (BPR's units, their records replaced): both losses, both mixes, over
 * whole units; the records also carry the BPR part, which is single precision. */
static void test_margin_unit_gradients(void)
{
    for (int v = 0; v < 4; v++) {
        tiny tn;
        kd_distill k;
        kd_distill_params p = kd_distill_defaults(KD_MARGIN_MSE);
        p.margin_loss = v & 1 ? KD_MLOSS_MSE : KD_MLOSS_SOFT;
        p.mix_add = v >> 1;
        p.alpha = 0.6; p.lambda = 0.7; p.temperature = 1.5;
        kd_sgd_task tasks[KD_MAX_TASKS];
        int nt;
        tiny_distill(&tn, &k, &p, 99, 1, tasks, &nt);
        CHECK(nt == 1);
        double worst = 0, gmax = 0;
        int units = 0;
        for (uint64_t unit = 0; unit < tasks[0].units && unit < 12; unit++) {
            double g, w = unit_fd(&tasks[0], &tn.m, unit, &g);
            if (w < 0) continue;
            units++;
            worst = fmax(worst, w);
            gmax = fmax(gmax, g);
        }
        CHECK(units >= 10 && gmax > 1e-2);
        CHECK(worst < 5e-4); /* measured ~1e-5 (soft, gradients ~1) to ~7e-5 (mse, ~25) */
        if (worst >= 5e-4 || getenv("KD_TEST_VERBOSE")) fprintf(stderr, "  margin-mse %d: worst %g (max gradient %g)\n", v, worst, gmax);
        kd_distill_free(&k);
        tiny_free(&tn);
    }
}

/* rce's lists after epoch_begin, against the ranking each row of s_items holds: entries
 * distinct; S is the row's top-K; every teacher top-K item is in S or A; the sampled set
 * has min(L, candidates) entries, all from the row's top-M; w = exp(-beta * overlap / K)
 * in (0, 1]. */
static int rce_lists_ok(const kd_distill *k)
{
    const kd_distill_params *p = &k->p;
    int ok = 1;
    uint32_t N = 2 * p->K + p->L;
    for (uint32_t u = 0; u < k->d->n_users; u++) {
        const uint32_t *it = k->rce_items + (size_t)u * N, *R = k->s_items + (size_t)u * p->M, *Q = k->t_items + (size_t)u * p->M;
        const uint8_t *in = k->rce_in + (size_t)u * N;
        uint32_t n = k->rce_n[u], nS = 0, nA = 0;
        ok &= n > 0 && n <= N;
        for (uint32_t a = 0; a < n; a++) {
            for (uint32_t b = a + 1; b < n; b++) ok &= it[a] != it[b];
            if (in[a] & 1) ok &= it[a] == R[nS++];
            nA += (in[a] & 2) != 0;
            int inR = 0, inQ = 0;
            for (uint32_t j = 0; j < p->M; j++) inR |= R[j] == it[a];
            for (uint32_t j = 0; j < p->K; j++) inQ |= Q[j] == it[a];
            ok &= inR || inQ;
        }
        ok &= nS == p->K;
        for (uint32_t j = 0; j < p->K; j++) {
            int found = 0;
            for (uint32_t a = 0; a < n; a++) found |= it[a] == Q[j];
            ok &= found;
        }
        ok &= k->rce_w[u] > 0 && k->rce_w[u] <= 1 && nA >= p->L;
        /* w takes the values exp(-beta * c / K), c = 0..K */
        double c = -log(k->rce_w[u]) / p->beta * p->K;
        ok &= fabs(c - round(c)) < 1e-9;
    }
    return ok;
}

/* rce's lists at an epoch (rce_lists_ok) */
static void test_rce_lists(void)
{
    tiny tn;
    kd_err e = { 0 };
    kd_distill k;
    kd_distill_params p = kd_distill_defaults(KD_RCE);
    p.K = 4; p.L = 6; p.M = 10;
    kd_sgd_task tasks[KD_MAX_TASKS];
    int nt;
    tiny_distill(&tn, &k, &p, 5, 1, tasks, &nt);
    CHECK(nt == 2 && tasks[1].epoch_begin(tasks[1].ctx, &tn.m, 3, &e) == 0);
    CHECK(rce_lists_ok(&k));
    kd_distill_free(&k);
    tiny_free(&tn);
}

/* Row r of an (n, M) list array: `fresh`'s if r % R == phase, else `old`'s. */
static int rows_phase(const uint32_t *got, const uint32_t *fresh, const uint32_t *old, uint32_t n, uint32_t M,
                      uint32_t R, uint32_t phase)
{
    int ok = 1;
    for (uint32_t r = 0; r < n; r++)
        ok &= !memcmp(got + (size_t)r * M, (r % R == phase ? fresh : old) + (size_t)r * M, (size_t)M * 4);
    return ok;
}

/* --refresh over many epochs: with R = 3 the phases wrap (epoch 3 re-ranks rows 0, 3, ...
 * only, not all rows as epoch 0 does); with R = 16 above the 14 users, epochs 14 and 15
 * re-rank no row and 16 only row 0.  Each epoch the student moves, and every row must be
 * the fresh ranking on its phase and the previous epoch's bits elsewhere. */
static void test_refresh_phases(void)
{
    static const uint32_t Rs[2] = { 3, 16 };
    static const uint64_t epochs[2][8] = { { 0, 1, 2, 3, 4, 5, 6, 7 }, { 0, 1, 13, 14, 15, 16, 17, 32 } };
    for (unsigned x = 0; x < 2; x++) {
        tiny tn;
        kd_err e = { 0 };
        kd_distill k;
        kd_distill_params p = kd_distill_defaults(KD_DCD);
        p.K = 4; p.L = 6; p.M = 10; p.refresh = Rs[x];
        kd_sgd_task tasks[KD_MAX_TASKS];
        int nt;
        tiny_distill(&tn, &k, &p, 5, 2, tasks, &nt);
        uint32_t U = tn.d.n_users, M = p.M;
        uint32_t *prev = malloc((size_t)U * M * 4), *fresh = NULL;
        float *fs = NULL;
        int ok = 1, changed = 0;
        for (unsigned q = 0; q < 8; q++) {
            uint64_t ep = epochs[x][q];
            if (q) memcpy(prev, k.s_items, (size_t)U * M * 4);
            kd_model_init_normal(&tn.m, 40 + q, 0.7f); /* the student moved */
            for (int t = 1; t < nt; t++) ok &= tasks[t].epoch_begin(tasks[t].ctx, &tn.m, ep, &e) == 0;
            ok &= kd_rank_topm(&tn.m, &tn.d, M, 1, &fresh, &fs, &e) == 0;
            if (!q) ok &= !memcmp(k.s_items, fresh, (size_t)U * M * 4); /* epoch 0: every row */
            else ok &= rows_phase(k.s_items, fresh, prev, U, M, Rs[x], (uint32_t)(ep % Rs[x]));
            if (q) changed += memcmp(k.s_items, prev, (size_t)U * M * 4) != 0;
            free(fresh); free(fs);
            fresh = NULL; fs = NULL;
        }
        CHECK(ok);
        /* R 3: all 7 later epochs changed a row; R 16: all but epochs 14 and 15 (no row) */
        CHECK(changed == (x == 0 ? 7 : 5));
        free(prev);
        kd_distill_free(&k);
        tiny_free(&tn);
    }
}

/* --refresh 3, on 3 threads: epoch 0 ranks every row; epoch 1, after the student moved,
 * re-ranks the rows r % 3 == 1 (dcd2's users and items, rce's users) and leaves the others
 * as epoch 0 ranked them, bit for bit; rce's lists follow the rows as held. */
static void test_refresh(void)
{
    int methods[] = { KD_DCD2, KD_RCE, KD_RCE2 };
    for (unsigned x = 0; x < 3; x++) {
        tiny tn;
        kd_err e = { 0 };
        kd_distill k;
        kd_distill_params p = kd_distill_defaults(methods[x]);
        p.K = 4; p.L = 6; p.M = 10; p.refresh = 3;
        kd_sgd_task tasks[KD_MAX_TASKS];
        int nt;
        tiny_distill(&tn, &k, &p, 5, 3, tasks, &nt);
        for (int t = 1; t < nt; t++) CHECK(tasks[t].epoch_begin(tasks[t].ctx, &tn.m, 0, &e) == 0);
        uint32_t U = tn.d.n_users, I = tn.d.n_items, Mi = k.Mi;
        uint32_t *old_u = malloc((size_t)U * p.M * 4), *old_i = malloc((size_t)I * Mi * 4);
        memcpy(old_u, k.s_items, (size_t)U * p.M * 4);
        if (k.si_users) memcpy(old_i, k.si_users, (size_t)I * Mi * 4);
        kd_model_init_normal(&tn.m, 21, 0.7f); /* the student moved */
        for (int t = 1; t < nt; t++) CHECK(tasks[t].epoch_begin(tasks[t].ctx, &tn.m, 1, &e) == 0);
        uint32_t *fresh = NULL, *fresh_i = NULL;
        float *fs = NULL, *fsi = NULL;
        CHECK(kd_rank_topm(&tn.m, &tn.d, p.M, 1, &fresh, &fs, &e) == 0);
        CHECK(rows_phase(k.s_items, fresh, old_u, U, p.M, 3, 1));
        CHECK(memcmp(fresh, old_u, (size_t)U * p.M * 4) != 0); /* epoch 1's rankings differ */
        if (methods[x] != KD_DCD2) CHECK(rce_lists_ok(&k));
        if (k.si_users) { /* the item side: items of the transposed student */
            kd_model mt = { .n_users = I, .n_items = U, .dim = tn.m.dim, .stride = tn.m.stride, .P = tn.m.Q,
                            .Q = tn.m.P, .bu = tn.m.bi, .bi = tn.m.bu };
            CHECK(kd_rank_topm(&mt, &k.dT, Mi, 1, &fresh_i, &fsi, &e) == 0);
            CHECK(rows_phase(k.si_users, fresh_i, old_i, I, Mi, 3, 1));
        }
        CHECK(methods[x] == KD_RCE || k.si_users);
        free(old_u); free(old_i); free(fresh); free(fs); free(fresh_i); free(fsi);
        kd_distill_free(&k);
        tiny_free(&tn);
    }
    /* the range, and the methods that keep no student ranking */
    kd_err e = { 0 };
    kd_distill_params p = kd_distill_defaults(KD_DCD);
    p.refresh = 0;
    CHECK(kd_distill_check_refresh(&p, &e) == -1 && e.code == KD_EXIT_USAGE);
    p.refresh = KD_REFRESH_MAX + 1;
    CHECK(kd_distill_check_refresh(&p, &e) == -1);
    p.refresh = KD_REFRESH_MAX;
    CHECK(kd_distill_check_refresh(&p, &e) == 0);
    for (int m = 0; m < KD_N_METHODS; m++) {
        p = kd_distill_defaults(m);
        CHECK(p.refresh == (m == KD_DCD ? 4u : 1u) && kd_distill_check_refresh(&p, &e) == 0);
        p.refresh = 2;
        CHECK((kd_distill_check_refresh(&p, &e) == 0) == (m == KD_DCD || m == KD_DCD_ITEM || m == KD_DCD2 || m == KD_RCE || m == KD_RCE2));
        kd_buf b = { 0 };
        CHECK(kd_distill_prov(&p, &b) == 0 && kd_buf_printf(&b, "%c", 0) == 0 && strstr((const char *)b.p, "\nrefresh=2\n"));
        kd_buf_free(&b);
        p.refresh = 1;
        CHECK(kd_distill_prov(&p, &b) == 0 && kd_buf_printf(&b, "%c", 0) == 0 && !strstr((const char *)b.p, "refresh"));
        kd_buf_free(&b);
    }
}

/* The ensemble: one teacher comes back bit for bit; two give the mean score. */
static void test_ensemble(void)
{
    tiny tn;
    tiny_init(&tn);
    kd_err e = { 0 };
    kd_model two[2] = { tn.t, tn.m }, one, ens;
    CHECK(kd_distill_ensemble(&one, &tn.t, 1, &e) == 0);
    int same = one.dim == tn.t.dim;
    for (uint32_t u = 0; u < 14; u++)
        for (uint32_t i = 0; i < 30; i++) same &= kd_model_score(&one, u, i) == kd_model_score(&tn.t, u, i);
    CHECK(same);
    CHECK(kd_distill_ensemble(&ens, two, 2, &e) == 0 && ens.dim == 8);
    double worst = 0;
    for (uint32_t u = 0; u < 14; u++)
        for (uint32_t i = 0; i < 30; i++)
            worst = fmax(worst, fabs(kd_model_score(&ens, u, i) -
                                     0.5 * ((double)kd_model_score(&tn.t, u, i) + kd_model_score(&tn.m, u, i))));
    CHECK(worst < 1e-5);
    kd_model bad = { 0 };
    CHECK(kd_model_alloc(&bad, 14, 29, 2, &e) == 0);
    kd_model mixed[2] = { tn.t, bad }, out;
    CHECK(kd_distill_ensemble(&out, mixed, 2, &e) == -1);
    kd_model_free(&bad);
    kd_model_free(&one);
    kd_model_free(&ens);
    tiny_free(&tn);
}

/* --lambda auto: every method's provenance says auto and the grid in place of the value,
 * the choice lines name the knob, and set_knob reaches the knob kd_distill_knob reads */
static void test_auto_prov(void)
{
    int ok = 1;
    for (int m = 0; m < KD_N_METHODS; m++) {
        kd_distill_params p = kd_distill_defaults(m);
        kd_distill_set_auto(&p);
        double v = 0;
        const char *knob = kd_distill_knob(&p, &v);
        kd_buf b = { 0 };
        char want[128];
        ok &= kd_distill_prov(&p, &b) == 0 && kd_buf_printf(&b, "%c", 0) == 0;
        snprintf(want, sizeof want, "\n%s=auto\nauto_grid=%s\n", knob,
                 m == KD_MARGIN_MSE ? "0,0.25,0.5,1" : "0,0.1,0.3,1");
        ok &= strstr((const char *)b.p, want) != NULL;
        kd_buf_free(&b);
        kd_distill_set_knob(&p, 0.125);
        ok &= kd_distill_knob(&p, &v) == knob && v == 0.125;
        kd_distill_choice ch = { .n = 2, .chosen = 1, .valid = { NAN, 0.5 } };
        snprintf(want, sizeof want, "result.%s=0.125\nresult.auto.1=diverged\nresult.auto.2=0.5\n", knob);
        ok &= kd_distill_prov_choice(&p, &ch, &b) == 0 && b.len == strlen(want) && !memcmp(b.p, want, b.len);
        kd_buf_free(&b);
    }
    CHECK(ok);
    /* margin-mse says which loss ran; the notebook's mse keeps its old grid */
    for (int loss = 0; loss < 2; loss++) {
        kd_distill_params p = kd_distill_defaults(KD_MARGIN_MSE);
        p.margin_loss = loss ? KD_MLOSS_MSE : KD_MLOSS_SOFT;
        kd_distill_set_auto(&p);
        kd_buf b = { 0 };
        CHECK(kd_distill_prov(&p, &b) == 0 && kd_buf_printf(&b, "%c", 0) == 0);
        CHECK(strstr((const char *)b.p, loss ? "\nmargin_loss=mse\n" : "\nmargin_loss=soft\n") != NULL);
        CHECK(strstr((const char *)b.p, loss ? "\nauto_grid=0,0.03,0.1,0.3\n" : "\nauto_grid=0,0.25,0.5,1\n") != NULL);
        kd_buf_free(&b);
    }
    /* an explicit knob keeps its old line */
    kd_distill_params p = kd_distill_defaults(KD_RRD);
    kd_buf b = { 0 };
    CHECK(kd_distill_prov(&p, &b) == 0 && kd_buf_printf(&b, "%c", 0) == 0 && strstr((const char *)b.p, "\nlambda=1\n") &&
          !strstr((const char *)b.p, "auto"));
    kd_buf_free(&b);
}

int main(void)
{
    test_method_table();
    test_auto_prov();
    test_rce_loss();
    test_unit_gradients();
    test_margin_unit_gradients();
    test_rce_lists();
    test_refresh();
    test_refresh_phases();
    test_ensemble();
    test_rrd_gradient();
    test_ce_gradient();
    test_margin();
    CHECK(kd_method_parse("rrd") == KD_RRD && kd_method_parse("nope") == -1);
    return kd_test_done("test_distill");
}
