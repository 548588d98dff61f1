/* kd_prov: the provenance text every tool writes into its artifact.
 *
 * Lines of key=value, in the order written: tool, version, then every parameter
 * (defaults included), input content IDs and seed.  Never the thread count, a time, a
 * host name or a path: two runs with the same inputs and parameters write the same bytes.
 * Floats are written with enough digits to round-trip ("%.17g").
 */
#ifndef KD_PROV_H
#define KD_PROV_H

#include "kd_io.h"

/* Starts a provenance block: "tool=<tool>\nversion=<KD_VERSION>\n". */
int kd_prov_begin(kd_buf *b, const char *tool);
int kd_prov_str(kd_buf *b, const char *key, const char *value);
int kd_prov_u64(kd_buf *b, const char *key, uint64_t value);
int kd_prov_f64(kd_buf *b, const char *key, double value);
int kd_prov_id(kd_buf *b, const char *key, uint64_t content_id);

/* The settings ID of provenance text[0..n): XXH3-64 over its lines except a method's
 * weight (lambda=, alpha=, auto_grid=) and the run's results (result.*), in order.  Two
 * models of one method with the same ID were trained alike but for their weight: what
 * lets a report choose among them as one method's knob values. */
uint64_t kd_prov_settings_id(const char *text, size_t n);

#endif
