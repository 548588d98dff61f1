/* kd_dataset: an interaction dataset: train / valid / test splits over the same users and
 * items, plus the original ids of both.
 *
 * Artifact sections (kind "dataset"): train, valid, test (csr, users x items; valid and
 * test may be empty), user_ids and item_ids (u64: dense index -> original id), provenance
 * (generator or import parameters and statistics).
 */
#ifndef KD_DATASET_H
#define KD_DATASET_H

#include <stdint.h>

#include "kd_artifact.h"
#include "kd_csr.h"

typedef struct kd_dataset {
    uint32_t  n_users, n_items;
    kd_csr    train, valid, test;
    uint64_t *user_ids;   /* (n_users) original id of each dense user index */
    uint64_t *item_ids;   /* (n_items) */
    uint64_t  content_id; /* of the artifact it was loaded from (0 when built in memory) */
} kd_dataset;

void kd_dataset_free(kd_dataset *d);

/* Adds the five data sections (not provenance). */
int kd_dataset_to_art(const kd_dataset *d, kd_art *a, kd_err *e);
/* Loads the sections and checks them: consistent shapes, rows sorted and unique. */
int kd_dataset_from_art(kd_dataset *d, const kd_art *a, kd_err *e);
/* kd_art_load + kd_dataset_from_art. */
int kd_dataset_load(kd_dataset *d, const char *path, kd_err *e);

/* Summary statistics of the splits as provenance lines (stat.*=...). */
int kd_dataset_stats(const kd_dataset *d, kd_buf *prov);

/* Builds the three splits of d (n_users, n_items set) from pair lists (sorted in place). */
int kd_dataset_set_splits(kd_dataset *d, kd_pair *tr, uint64_t ntr, kd_pair *va, uint64_t nva, kd_pair *te,
                          uint64_t nte, kd_err *e);

/* Splits per-user interactions at random: of each user's n items, about test_ratio*n go
 * to test and valid_ratio of the rest to valid (stochastic rounding, so the ratios hold on
 * average), always leaving at least one in train.  `all` is consumed (freed). */
int kd_split_random(kd_dataset *d, kd_csr *all, double test_ratio, double valid_ratio,
                    uint64_t seed, kd_err *e);

/* Moves a share of each user's train interactions to valid (which must be empty): of a
 * user's n train items, round(n * fraction) with stochastic rounding (so the fraction
 * holds on average), at most n - 1, so a user keeps at least one.  Each user draws from
 * its own stream (seed, user): the split does not depend on how users are visited.
 * fraction in (0, 1). */
int kd_split_valid_fraction(kd_dataset *d, double fraction, uint64_t seed, kd_err *e);

#endif
