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
    return kd_test_done("test_stats");
}
