/* kd_stats: t-distribution via the regularized incomplete beta function (Lentz's
 * continued fraction, as in Numerical Recipes' betacf; our own implementation). */
#include "kd_stats.h"

#include <math.h>
#include <stdlib.h>

#include "kd_rng.h" /* kd_mix64: the bootstrap's stream */

double kd_mean(const double *x, uint32_t n)
{
    double s = 0;
    for (uint32_t i = 0; i < n; i++) s += x[i];
    return n ? s / n : NAN;
}

double kd_sd(const double *x, uint32_t n)
{
    if (n < 2) return 0;
    double m = kd_mean(x, n), s = 0;
    for (uint32_t i = 0; i < n; i++) s += (x[i] - m) * (x[i] - m);
    return sqrt(s / (n - 1));
}

/* continued fraction of the incomplete beta function */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d; if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c; if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d; if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c; if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return h;
}

static double ibeta(double a, double b, double x)
{
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double bt = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log(1 - x));
    return x < (a + 1) / (a + b + 2) ? bt * betacf(a, b, x) / a : 1 - bt * betacf(b, a, 1 - x) / b;
}

double kd_t_cdf(double t, double df)
{
    double p = 0.5 * ibeta(df / 2, 0.5, df / (df + t * t));
    return t > 0 ? 1 - p : p;
}

double kd_ci95(const double *x, uint32_t n)
{
    if (n < 2) return NAN;
    /* t quantile by bisection on the CDF */
    double lo = 0, hi = 100, df = n - 1;
    for (int k = 0; k < 100; k++) {
        double mid = (lo + hi) / 2;
        if (kd_t_cdf(mid, df) < 0.975) lo = mid; else hi = mid;
    }
    return (lo + hi) / 2 * kd_sd(x, n) / sqrt((double)n);
}

double kd_ttest_p(const double *d, uint32_t n)
{
    if (n < 2) return NAN;
    double m = kd_mean(d, n), s = kd_sd(d, n);
    if (s == 0) return m == 0 ? NAN : 0;
    double t = m / (s / sqrt((double)n));
    return 2 * kd_t_cdf(-fabs(t), n - 1);
}

double kd_quantile_sorted(const double *sorted, uint64_t n, double q)
{
    if (n == 0) return NAN;
    double pos = q * (double)(n - 1);
    uint64_t lo = (uint64_t)pos;
    if (lo >= n - 1) return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int kd_boot_mean_ci(const double *x, uint32_t n, double level, uint32_t draws, uint64_t seed, double *lo, double *hi)
{
    *lo = *hi = NAN;
    if (n < 2 || draws == 0) return -1;
    for (uint32_t i = 0; i < n; i++)
        if (isnan(x[i])) return -1;
    uint64_t nres = 1;
    int exact = n <= KD_BOOT_EXACT_N;
    if (exact) for (uint32_t i = 0; i < n; i++) nres *= n;  /* at most 6^6 = 46656 */
    else nres = draws;
    double *means = malloc(nres * sizeof *means);
    uint32_t *idx = calloc(n, sizeof *idx);
    if (!means || !idx) { free(means); free(idx); return -1; }
    uint64_t state = seed;
    for (uint64_t r = 0; r < nres; r++) {
        double s = 0;
        if (exact) {
            /* resample r: its base-n digits pick the seeds (idx counts like an odometer) */
            for (uint32_t i = 0; i < n; i++) s += x[idx[i]];
            for (uint32_t i = 0; i < n && ++idx[i] == n; i++) idx[i] = 0;
        } else {
            for (uint32_t i = 0; i < n; i++) {
                state += 0x9e3779b97f4a7c15ULL;
                /* the top 32 bits times n: an index in [0, n), bias below 2^-32 * n */
                s += x[(uint32_t)(((kd_mix64(state) >> 32) * n) >> 32)];
            }
        }
        means[r] = s / n;
    }
    qsort(means, nres, sizeof *means, cmp_dbl);
    *lo = kd_quantile_sorted(means, nres, (1 - level) / 2);
    *hi = kd_quantile_sorted(means, nres, (1 + level) / 2);
    free(means);
    free(idx);
    return 0;
}
