/* kd_import: real interaction files -> a dataset.
 *
 * Formats (fields separated by tabs/spaces, or commas for csv; CR before LF, a UTF-8 BOM,
 * blank lines and lines starting with '#' are accepted):
 *   tsv      user item [rating [timestamp]]              (MovieLens-100K u.data)
 *   csv      userId,movieId,rating,timestamp, header line (MovieLens latest ratings.csv)
 *   adj      user item item item ...                     (LightGCN train.txt)
 *   triples  user item [weight]
 * Ids are non-negative integers up to 2^64-1.  They are remapped to dense indices in
 * increasing order of the original id (so line order does not change the dataset), and
 * the originals are kept.  The input is streamed: memory is the interactions (8 bytes
 * each, 16 with timestamps for leave-one-out) plus the id maps, never the text.
 */
#ifndef KD_IMPORT_H
#define KD_IMPORT_H

#include <stdint.h>

#include "kd_dataset.h"

enum kd_format { KD_FMT_TSV, KD_FMT_CSV, KD_FMT_ADJ, KD_FMT_TRIPLES };

typedef struct kd_import_params {
    int         format;          /* enum kd_format, -1 if unset */
    const char *input_path;      /* "-" = stdin */
    const char *valid_path, *test_path; /* given splits, or NULL */
    /* optional: the main input's bytes already read (so stdin can be hashed for a
     * cache key and then parsed); NULL = stream input_path */
    const uint8_t *input_mem;
    size_t      input_len;
    int         use_min_rating;
    double      min_rating;
    uint32_t    kcore;           /* 0 = off */
    int         leave_one_out;
    double      test_ratio, valid_ratio;
    /* with --test and no --valid: the share of each user's train interactions moved to
     * valid (kd_split_valid_fraction), drawn with seed; 0 = no valid split */
    double      valid_fraction;
    uint64_t    seed;
    /* filled by kd_import_run: interactions of the given valid/test files that were
     * dropped because their user or item is not in train */
    uint64_t    dropped_valid, dropped_test;
} kd_import_params;

kd_import_params kd_import_defaults(void);
int kd_import_format_parse(const char *name); /* enum kd_format, or -1 */

/* Reads, filters, remaps and splits; appends parameters and counts to prov. */
int kd_import_run(kd_dataset *d, kd_import_params *p, kd_buf *prov, kd_err *e);

#endif
