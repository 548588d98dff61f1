/* kd_err: one-line error messages and overflow-checked allocation. */
#include "kd_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int set(kd_err *e, int code, const char *fmt, va_list ap)
{
    if (e) {
        e->code = code;
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    }
    return -1;
}

int kd_fail(kd_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set(e, KD_EXIT_DATA, fmt, ap);
    va_end(ap);
    return -1;
}

int kd_fail_usage(kd_err *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set(e, KD_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return -1;
}

int kd_err_report(const char *prog, const kd_err *e)
{
    fprintf(stderr, "%s: %s\n", prog, e->msg[0] ? e->msg : "unknown error");
    return e->code == KD_EXIT_USAGE ? KD_EXIT_USAGE : KD_EXIT_DATA;
}

static kd_warn_fn warn_fn;

void kd_warn_handler(kd_warn_fn fn) { warn_fn = fn; }

void kd_warn(const char *prog, const char *fmt, ...)
{
    char msg[8448]; /* room for a 4096-byte path or two */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (warn_fn)
        warn_fn(prog, msg);
    else
        fprintf(stderr, "%s: warning: %s\n", prog, msg);
}

void kd_status(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (warn_fn)
        warn_fn(NULL, msg);
    else
        fprintf(stderr, "%s\n", msg);
}

void *kd_alloc_array(uint64_t n, uint64_t size)
{
    uint64_t bytes;
    if (kd_mul(n, size, &bytes) || bytes > SIZE_MAX)
        return NULL;
    return malloc(bytes ? (size_t)bytes : 1);
}

void *kd_calloc_array(uint64_t n, uint64_t size)
{
    uint64_t bytes;
    if (kd_mul(n, size, &bytes) || bytes > SIZE_MAX)
        return NULL;
    return calloc(n ? (size_t)n : 1, size ? (size_t)size : 1);
}
