/* kd_stats: t-distribution via the regularized incomplete beta function (Lentz's
 * continued fraction, as in Numerical Recipes' betacf; our own implementation). */
#include "kd_stats.h"

#include <math.h>

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
