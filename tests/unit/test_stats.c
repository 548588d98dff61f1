/* Unit tests of kd_stats against values from statistical tables. */
#include "kd_stats.h"
#include "kd_test.h"

int main(void)
{
    /* t quantiles: 97.5% of t(4) = 2.776445, t(1) = 12.7062, t(30) = 2.042272 */
    CHECK_NEAR(kd_t_cdf(2.776445, 4), 0.975, 1e-6);
    CHECK_NEAR(kd_t_cdf(12.7062, 1), 0.975, 1e-5);
    CHECK_NEAR(kd_t_cdf(-2.042272, 30), 0.025, 1e-6);
    CHECK_NEAR(kd_t_cdf(0, 7), 0.5, 1e-12);
    double x[5] = { 1, 2, 3, 4, 5 };
    CHECK_NEAR(kd_mean(x, 5), 3, 1e-15);
    CHECK_NEAR(kd_sd(x, 5), 1.5811388300841898, 1e-12);
    CHECK_NEAR(kd_ci95(x, 5), 2.776445 * 1.5811388300841898 / 2.2360679774997898, 1e-5);
    /* paired differences with mean 1, sd sqrt(2/3), n 4: t = 2.44949, df 3, two-sided p = 0.091721 */
    double d[4] = { 0, 1, 2, 1 };
    CHECK_NEAR(kd_ttest_p(d, 4), 0.091721, 1e-5);

    /* type-7 quantiles: 1..5 at 0.1 is 1.4, at 0 and 1 the ends */
    CHECK(kd_quantile_sorted(x, 5, 0) == 1 && kd_quantile_sorted(x, 5, 1) == 5);
    CHECK_NEAR(kd_quantile_sorted(x, 5, 0.1), 1.4, 1e-15);
    CHECK(isnan(kd_quantile_sorted(x, 0, 0.5)));

    /* the bootstrap: no interval from one seed (or a NaN) */
    double lo, hi;
    CHECK(kd_boot_mean_ci(x, 1, 0.95, 1000, 1, &lo, &hi) == -1 && isnan(lo) && isnan(hi));
    double xn[3] = { 1, NAN, 2 };
    CHECK(kd_boot_mean_ci(xn, 3, 0.95, 1000, 1, &lo, &hi) == -1);
    /* n = 2, exact: the 4 resample means 0, .5, .5, 1; 2.5% at position 0.075, 97.5% at 2.925 */
    double two[2] = { 0, 1 };
    CHECK(kd_boot_mean_ci(two, 2, 0.95, 1000, 1, &lo, &hi) == 0);
    CHECK_NEAR(lo, 0.0375, 1e-15);
    CHECK_NEAR(hi, 0.9625, 1e-15);
    /* n = 3, exact: means 0 (8 of 27), 1 (12), 2 (6), 3 (1); 97.5% at position 25.35 */
    double three[3] = { 0, 0, 3 };
    CHECK(kd_boot_mean_ci(three, 3, 0.95, 1, 99, &lo, &hi) == 0);
    CHECK(lo == 0);
    CHECK_NEAR(hi, 2.35, 1e-12);
    /* a constant sample: the interval is the point */
    double c[8] = { 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25 };
    CHECK(kd_boot_mean_ci(c, 8, 0.95, 500, 3, &lo, &hi) == 0 && lo == 0.25 && hi == 0.25);
    /* n = 10, Monte Carlo: 1..10 has mean 5.5 and plug-in standard error sqrt(8.25 / 10), so
     * the interval is about 5.5 -+ 1.96 * 0.908; the same seed gives the same bits, another
     * seed other (close) ones */
    double ten[10] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, lo2, hi2, lo3, hi3;
    CHECK(kd_boot_mean_ci(ten, 10, 0.95, 20000, 1, &lo, &hi) == 0);
    CHECK(fabs(lo - (5.5 - 1.96 * sqrt(0.825))) < 0.15 && fabs(hi - (5.5 + 1.96 * sqrt(0.825))) < 0.15);
    CHECK(kd_boot_mean_ci(ten, 10, 0.95, 20000, 1, &lo2, &hi2) == 0 && lo2 == lo && hi2 == hi);
    CHECK(kd_boot_mean_ci(ten, 10, 0.95, 20000, 2, &lo3, &hi3) == 0);
    CHECK(fabs(lo3 - lo) < 0.1 && fabs(hi3 - hi) < 0.1);
    /* (1..10's means are tenths, so two seeds can give the same order statistics; square
     * roots cannot tie that way) */
    double root[10];
    for (int i = 0; i < 10; i++) root[i] = sqrt(i + 1.0);
    CHECK(kd_boot_mean_ci(root, 10, 0.95, 20000, 1, &lo2, &hi2) == 0);
    CHECK(kd_boot_mean_ci(root, 10, 0.95, 20000, 2, &lo3, &hi3) == 0 && (lo3 != lo2 || hi3 != hi2));
    /* the resamples are uniform over the seeds: a 0/1 sample's mean over many draws is the
     * share of ones (0.3 here), whatever n */
    double b[10] = { 1, 0, 0, 1, 0, 0, 0, 1, 0, 0 };
    CHECK(kd_boot_mean_ci(b, 10, 0.0, 20001, 5, &lo, &hi) == 0);
    CHECK_NEAR(lo, 0.3, 1e-12);
    return kd_test_done("test_stats");
}
