/* Unit tests of the distillation losses: analytic gradients against finite differences,
 * the temperature identity of margin-mse, and its alpha = 0 reduction to BPR. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kd_distill.h"
#include "kd_rng.h"
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

static void test_margin(void)
{
    kd_distill_params p = kd_distill_defaults(KD_MARGIN_MSE);
    double worst = 0;
    for (int mix = 0; mix < 2; mix++)
        for (double x = -3; x <= 3; x += 0.7)
            for (double dt = -2; dt <= 4; dt += 1.3) {
                double dl, d2;
                p.mix_add = mix;
                p.alpha = 0.3;
                p.lambda = 0.7;
                kd_margin_loss(&p, x, dt, &dl);
                float xp = (float)x + 1e-2f, xm = (float)x - 1e-2f;
                double num = (kd_margin_loss(&p, xp, dt, &d2) - kd_margin_loss(&p, xm, dt, &d2)) / ((double)xp - xm);
                worst = fmax(worst, fabs(num - dl));
            }
    CHECK(worst < 2e-3); /* the BPR part is single precision */
    /* T^2 * MSE(Δs/T, Δt/T) = MSE(Δs, Δt): the temperature has no effect */
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

int main(void)
{
    test_method_table();
    test_rrd_gradient();
    test_ce_gradient();
    test_margin();
    CHECK(kd_method_parse("rrd") == KD_RRD && kd_method_parse("nope") == -1);
    return kd_test_done("test_distill");
}
