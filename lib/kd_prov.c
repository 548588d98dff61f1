/* kd_prov: key=value provenance lines. */
#include "kd_prov.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "kd_artifact.h"
#include "kd_cli.h"

int kd_prov_begin(kd_buf *b, const char *tool)
{
    return kd_buf_printf(b, "tool=%s\nversion=%s\n", tool, KD_VERSION);
}

int kd_prov_str(kd_buf *b, const char *key, const char *value)
{
    return kd_buf_printf(b, "%s=%s\n", key, value);
}

int kd_prov_u64(kd_buf *b, const char *key, uint64_t value)
{
    return kd_buf_printf(b, "%s=%" PRIu64 "\n", key, value);
}

/* the shortest of %.15g/%.16g/%.17g that reads back as the same double: exact, and
 * "0.97" rather than "0.96999999999999997" */
int kd_prov_f64(kd_buf *b, const char *key, double value)
{
    char s[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(s, sizeof s, "%.*g", digits, value);
        if (strtod(s, NULL) == value)
            break;
    }
    return kd_buf_printf(b, "%s=%s\n", key, s);
}

int kd_prov_id(kd_buf *b, const char *key, uint64_t content_id)
{
    char hex[17];
    kd_id_hex(content_id, hex);
    return kd_buf_printf(b, "%s=%s\n", key, hex);
}

/* 1 when line[0..n) is "key=..." for a key that names the weight or a result */
static int knob_or_result(const char *line, size_t n)
{
    static const char *const keys[] = { "lambda=", "alpha=", "auto_grid=", "result." };
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        size_t kl = strlen(keys[k]);
        if (n >= kl && !memcmp(line, keys[k], kl)) return 1;
    }
    return 0;
}

uint64_t kd_prov_settings_id(const char *text, size_t n)
{
    /* chained line by line (each line's hash seeds the next): no copy of the kept lines */
    uint64_t h = 0;
    for (const char *p = text, *end = text + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eol = nl ? nl + 1 : end;
        if (!knob_or_result(p, (size_t)(eol - p))) h = XXH3_64bits_withSeed(p, (size_t)(eol - p), h);
        p = eol;
    }
    return h;
}
