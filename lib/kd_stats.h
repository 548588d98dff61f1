/* kd_stats: the few statistics the report needs: mean, sample standard deviation, a
 * Student-t 95% confidence interval, the two-sided p-value of a paired t-test, and a
 * percentile bootstrap interval of a mean over seeds. */
#ifndef KD_STATS_H
#define KD_STATS_H

#include <stdint.h>

double kd_mean(const double *x, uint32_t n);
double kd_sd(const double *x, uint32_t n);            /* sample (n - 1); 0 for n < 2 */
/* Half-width of the 95% CI of the mean (t quantile with n - 1 degrees of freedom). */
double kd_ci95(const double *x, uint32_t n);
/* Two-sided p-value of H0: mean(d) = 0, t-test on the n values d (NaN for n < 2 or sd 0
 * with mean 0; 0 for sd 0 with mean != 0). */
double kd_ttest_p(const double *d, uint32_t n);
/* P(T <= t) for Student's t with df degrees of freedom. */
double kd_t_cdf(double t, double df);

/* The q-quantile (0 <= q <= 1) of n sorted values, interpolated linearly between order
 * statistics (Hyndman & Fan's type 7, R's default); NaN for n = 0. */
double kd_quantile_sorted(const double *sorted, uint64_t n, double q);

/* The percentile bootstrap interval of the mean of x[0..n) at level `level` (0.95): the
 * (1 - level)/2 and (1 + level)/2 quantiles of the means of resamples of x, n values
 * drawn with replacement.  The resamples are, for n <= KD_BOOT_EXACT_N, all n^n ordered
 * resamples (the exact bootstrap distribution: no Monte Carlo noise where it would be
 * largest), else `draws` resamples drawn from a SplitMix64 stream of `seed`; so the same
 * x, draws and seed give the same interval, bit for bit.  NaN values in x are refused.
 * Returns 0 with *lo, *hi set; -1 for n < 2 (no interval: one seed says nothing about
 * the spread), a NaN in x or out of memory (*lo = *hi = NaN).
 * For small n the percentile interval is narrower than the t interval (the resamples'
 * spread is the plug-in (n-1)/n of the variance, and few seeds give few distinct means):
 * report it beside the t interval, not instead of it. */
enum { KD_BOOT_EXACT_N = 6 };
int kd_boot_mean_ci(const double *x, uint32_t n, double level, uint32_t draws, uint64_t seed, double *lo, double *hi);

#endif
