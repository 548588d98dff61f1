/* kd_csr: sparse 0/1 matrices in compressed sparse rows (users x items interactions).
 * Column indices in each row are sorted and unique once built by kd_csr_from_pairs. */
#ifndef KD_CSR_H
#define KD_CSR_H

#include <stdint.h>

#include "kd_err.h"

typedef struct kd_csr {
    uint32_t  rows, cols;
    uint64_t *indptr;  /* (rows + 1) */
    uint32_t *idx;     /* (nnz) column of each entry, sorted within a row */
} kd_csr;

typedef struct kd_pair {
    uint32_t row, col;
} kd_pair;

static inline uint64_t kd_csr_nnz(const kd_csr *m) { return m->indptr ? m->indptr[m->rows] : 0; }
static inline uint32_t kd_csr_len(const kd_csr *m, uint32_t r) { return (uint32_t)(m->indptr[r + 1] - m->indptr[r]); }

/* Builds a matrix from pairs (sorted in place; duplicates merged). */
int  kd_csr_from_pairs(kd_csr *m, uint32_t rows, uint32_t cols, kd_pair *pairs, uint64_t n, kd_err *e);
/* An empty rows x cols matrix. */
int  kd_csr_empty(kd_csr *m, uint32_t rows, uint32_t cols, kd_err *e);
void kd_csr_free(kd_csr *m);
/* 1 if x is in the sorted a[0..n) (binary search). */
int  kd_sorted_has(const uint32_t *a, uint32_t n, uint32_t x);
/* 1 if (r, c) is stored (binary search in row r). */
int  kd_csr_has(const kd_csr *m, uint32_t r, uint32_t c);
/* Sorts pairs by (row, col) and removes duplicates; returns the new count. */
uint64_t kd_pairs_sort_unique(kd_pair *p, uint64_t n);

#endif
