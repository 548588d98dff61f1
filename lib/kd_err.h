/* kd_err: how library code reports a failure to the tool that called it.
 *
 * Library functions never print and never exit.  They fill a kd_err with one line of
 * text (lowercase, no full stop, the subject first: "data.kd: checksum mismatch in
 * section 'train'") and a class, then return -1.  The tool prints
 * "<prog>: <msg>" on stderr and exits with the class: 1 for bad data or I/O, 2 for misuse.
 */
#ifndef KD_ERR_H
#define KD_ERR_H

#include <stddef.h>
#include <stdint.h>

enum { KD_EXIT_DATA = 1, KD_EXIT_USAGE = 2 };

typedef struct kd_err {
    int  code;        /* KD_EXIT_DATA or KD_EXIT_USAGE; 0 while no error */
    char msg[512];    /* one line, no trailing newline */
} kd_err;

/* Sets a data/IO error and returns -1, so callers can write `return kd_fail(e, ...)`. */
int kd_fail(kd_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with the usage class (exit 2). */
int kd_fail_usage(kd_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "prog: msg" to stderr and returns the exit code to use (1 or 2). */
int kd_err_report(const char *prog, const kd_err *e);

/* The only places where lib/ prints, both to stderr unless a handler is set
 * (kd_warn_handler; NULL restores stderr), e.g. by a test collecting them:
 *   kd_warn    a failure that costs something but not the result (a cache entry not
 *              written, a corrupt one recomputed): "prog: warning: <msg>"
 *   kd_status  one line of status, as is (a stage's "kd-train x: cached (key ...)");
 *              the handler gets prog NULL */
void kd_warn(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kd_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
typedef void (*kd_warn_fn)(const char *prog, const char *msg);
void kd_warn_handler(kd_warn_fn fn);

/* Overflow-checked size arithmetic: return 0 and store the result, or -1 on overflow. */
static inline int kd_mul(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}
static inline int kd_add(uint64_t a, uint64_t b, uint64_t *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

/* malloc/calloc that refuse sizes whose product overflows; NULL on failure. */
void *kd_alloc_array(uint64_t n, uint64_t size);
void *kd_calloc_array(uint64_t n, uint64_t size);

#endif
