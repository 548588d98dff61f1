/* kd_stats: the few statistics the report needs: mean, sample standard deviation, a
 * Student-t 95% confidence interval, and the two-sided p-value of a paired t-test. */
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

#endif
