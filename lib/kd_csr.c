/* kd_csr: building and querying sparse interaction matrices. */
#include "kd_csr.h"

#include <stdlib.h>
#include <string.h>

/* LSD radix sort on the 64-bit key (row << 32 | col): linear time, stable, no comparator
 * calls; pairs are sorted for every dataset import, so this is worth the 30 lines. */
uint64_t kd_pairs_sort_unique(kd_pair *p, uint64_t n)
{
    if (n == 0)
        return 0;
    kd_pair *tmp = kd_alloc_array(n, sizeof *tmp);
    size_t *count = kd_alloc_array(65537, sizeof *count);
    if (!tmp || !count) {
        free(tmp);
        free(count);
        return 0; /* out of memory: the caller reports it (n > 0 never sorts to 0) */
    }
    kd_pair *src = p, *dst = tmp;
    for (int pass = 0; pass < 4; pass++) {
        /* 16-bit digits: col low, col high, row low, row high */
        memset(count, 0, 65537 * sizeof *count);
        int shift = (pass & 1) * 16;
        for (uint64_t k = 0; k < n; k++) {
            uint32_t v = pass < 2 ? src[k].col : src[k].row;
            count[((v >> shift) & 0xffff) + 1]++;
        }
        for (int d = 0; d < 65536; d++)
            count[d + 1] += count[d];
        for (uint64_t k = 0; k < n; k++) {
            uint32_t v = pass < 2 ? src[k].col : src[k].row;
            dst[count[(v >> shift) & 0xffff]++] = src[k];
        }
        kd_pair *t = src; src = dst; dst = t;
    }
    /* after 4 passes the sorted data is back in p */
    free(tmp);
    free(count);
    uint64_t m = 1;
    for (uint64_t k = 1; k < n; k++)
        if (p[k].row != p[m - 1].row || p[k].col != p[m - 1].col)
            p[m++] = p[k];
    return m;
}

int kd_csr_empty(kd_csr *m, uint32_t rows, uint32_t cols, kd_err *e)
{
    m->rows = rows;
    m->cols = cols;
    m->indptr = kd_calloc_array((uint64_t)rows + 1, sizeof *m->indptr);
    m->idx = malloc(4);
    if (!m->indptr || !m->idx) {
        kd_csr_free(m);
        return kd_fail(e, "out of memory");
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* A counting sort by row straight into the index array, then each row sorted and
 * de-duplicated in place: 4 extra bytes per pair at the peak, not a second pair array. */
int kd_csr_from_pairs(kd_csr *m, uint32_t rows, uint32_t cols, kd_pair *pairs, uint64_t n, kd_err *e)
{
    memset(m, 0, sizeof *m);
    m->rows = rows;
    m->cols = cols;
    m->indptr = kd_calloc_array((uint64_t)rows + 1, sizeof *m->indptr);
    m->idx = kd_alloc_array(n ? n : 1, sizeof *m->idx);
    if (!m->indptr || !m->idx) {
        kd_csr_free(m);
        return kd_fail(e, "out of memory");
    }
    for (uint64_t k = 0; k < n; k++) {
        if (pairs[k].row >= rows || pairs[k].col >= cols) {
            kd_csr_free(m);
            return kd_fail(e, "pair (%u, %u) outside a %u x %u matrix", pairs[k].row, pairs[k].col, rows, cols);
        }
        m->indptr[pairs[k].row + 1]++;
    }
    for (uint32_t r = 0; r < rows; r++)
        m->indptr[r + 1] += m->indptr[r];
    /* place: indptr[r] walks through row r, then is restored from the row's end */
    for (uint64_t k = 0; k < n; k++)
        m->idx[m->indptr[pairs[k].row]++] = pairs[k].col;
    for (uint32_t r = rows; r > 0; r--)
        m->indptr[r] = m->indptr[r - 1];
    m->indptr[0] = 0;
    /* sort and de-duplicate each row, compacting as we go */
    uint64_t w = 0;
    for (uint32_t r = 0; r < rows; r++) {
        uint64_t a = m->indptr[r], b = m->indptr[r + 1];
        uint32_t *row = m->idx + a;
        size_t len = (size_t)(b - a);
        if (len > 1) qsort(row, len, sizeof *row, cmp_u32);
        m->indptr[r] = w;
        for (size_t k = 0; k < len; k++)
            if (k == 0 || row[k] != row[k - 1]) m->idx[w++] = row[k];
    }
    m->indptr[rows] = w;
    return 0;
}

void kd_csr_free(kd_csr *m)
{
    free(m->indptr);
    free(m->idx);
    m->indptr = NULL;
    m->idx = NULL;
}

int kd_sorted_has(const uint32_t *a, uint32_t n, uint32_t x)
{
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x) lo = mid + 1;
        else if (a[mid] > x) hi = mid;
        else return 1;
    }
    return 0;
}

int kd_csr_has(const kd_csr *m, uint32_t r, uint32_t c)
{
    return kd_sorted_has(m->idx + m->indptr[r], kd_csr_len(m, r), c);
}
