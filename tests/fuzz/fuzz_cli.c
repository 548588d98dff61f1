/* libFuzzer harness: the command-line number, list and metric parsers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kd_cli.h"
#include "kd_metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    kd_err e;
    uint64_t u;
    int i, m, n;
    double d;
    uint32_t k, list[8];
    kd_cli_u64("--x", s, 0, UINT64_MAX, &u, &e);
    kd_cli_int("--x", s, -5, 5, &i, &e);
    kd_cli_double("--x", s, -1e300, 1e300, &d, &e);
    kd_cli_list("-k", s, 1, 1000, list, 8, &n, &e);
    kd_metric_parse(s, &m, &k);
    free(s);
    return 0;
}
