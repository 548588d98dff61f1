/* kd_cli: what every kd-* tool's command line shares: checked number parsing, the
 * version line, and the verbosity rule (progress only on a terminal). */
#ifndef KD_CLI_H
#define KD_CLI_H

#include <stdint.h>

#include "kd_err.h"

#define KD_VERSION "0.1.0"

/* Parses a whole decimal integer in [min, max]; usage error naming the option otherwise. */
int kd_cli_u64(const char *opt, const char *arg, uint64_t min, uint64_t max, uint64_t *out, kd_err *e);
int kd_cli_int(const char *opt, const char *arg, int min, int max, int *out, kd_err *e);
/* Parses a finite number in [min, max]. */
int kd_cli_double(const char *opt, const char *arg, double min, double max, double *out, kd_err *e);
/* Parses "10,20,50" into up to cap integers in [min, max]; returns the count via *n. */
int kd_cli_list(const char *opt, const char *arg, uint64_t min, uint64_t max, uint32_t *out, int cap,
                int *n, kd_err *e);

/* Prints "<prog> (kdrec) <version>" on stdout. */
void kd_cli_version(const char *prog);

/* Verbosity: 0 quiet, 1 progress on a terminal only (default), 2 a line per step. */
int kd_cli_progress_ok(int verbosity);

/* Number of threads to use by default: the online CPUs, at least 1. */
int kd_cli_default_threads(void);

#endif
