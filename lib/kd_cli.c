/* kd_cli: checked option parsing shared by the tools. */
#include "kd_cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int kd_cli_u64(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out, kd_err *e)
{
    char *end;
    if (!arg || !*arg || *arg == '-' || *arg == '+' || *arg == ' ')
        return kd_fail_usage(e, "%s: not a non-negative integer: '%s'", opt, arg ? arg : "");
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (*end || errno == ERANGE)
        return kd_fail_usage(e, "%s: not a non-negative integer: '%s'", opt, arg);
    if (v < min || v > max)
        return kd_fail_usage(e, "%s: %s is out of range [%llu, %llu]", opt, arg,
                             (unsigned long long)min, (unsigned long long)max);
    *out = v;
    return 0;
}

int kd_cli_int(const char *opt, const char *arg, int min, int max, int *out, kd_err *e)
{
    char *end;
    if (!arg || !*arg)
        return kd_fail_usage(e, "%s: not an integer: ''", opt);
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (*end || errno == ERANGE || v < min || v > max)
        return kd_fail_usage(e, "%s: '%s' is not an integer in [%d, %d]", opt, arg, min, max);
    *out = (int)v;
    return 0;
}

int kd_cli_double(const char *opt, const char *arg, double min, double max, double *out, kd_err *e)
{
    char *end;
    if (!arg || !*arg)
        return kd_fail_usage(e, "%s: not a number: ''", opt);
    errno = 0;
    double v = strtod(arg, &end);
    if (*end || errno == ERANGE || !isfinite(v))
        return kd_fail_usage(e, "%s: not a finite number: '%s'", opt, arg);
    if (v < min || v > max)
        return kd_fail_usage(e, "%s: %s is out of range [%g, %g]", opt, arg, min, max);
    *out = v;
    return 0;
}

int kd_cli_list(const char *opt, const char *arg, uint64_t min, uint64_t max, uint32_t *out, int cap,
                int *n, kd_err *e)
{
    char buf[256];
    if (strlen(arg) >= sizeof buf)
        return kd_fail_usage(e, "%s: list too long", opt);
    strcpy(buf, arg);
    *n = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint64_t v = 0;
        if (*n == cap)
            return kd_fail_usage(e, "%s: at most %d values", opt, cap);
        if (kd_cli_u64(opt, t, min, max, &v, e))
            return -1;
        out[(*n)++] = (uint32_t)v;
    }
    if (*n == 0)
        return kd_fail_usage(e, "%s: empty list", opt);
    return 0;
}

void kd_cli_version(const char *prog)
{
    printf("%s (kdrec) %s\n", prog, KD_VERSION);
}

int kd_cli_progress_ok(int verbosity)
{
    return verbosity >= 2 || (verbosity == 1 && isatty(STDERR_FILENO));
}

int kd_cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}
