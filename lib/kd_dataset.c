/* kd_dataset: splits, id maps, statistics; load/save as artifact sections. */
#include "kd_dataset.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "kd_prov.h"
#include "kd_rng.h"

void kd_dataset_free(kd_dataset *d)
{
    kd_csr_free(&d->train);
    kd_csr_free(&d->valid);
    kd_csr_free(&d->test);
    free(d->user_ids);
    free(d->item_ids);
    memset(d, 0, sizeof *d);
}

static int add_csr(kd_art *a, const char *name, const kd_csr *m, kd_err *e)
{
    return kd_art_add_csr(a, name, m->rows, m->cols, m->indptr, m->idx, e);
}

int kd_dataset_to_art(const kd_dataset *d, kd_art *a, kd_err *e)
{
    return add_csr(a, "train", &d->train, e) || add_csr(a, "valid", &d->valid, e) ||
           add_csr(a, "test", &d->test, e) || kd_art_add_u64(a, "user_ids", d->n_users, d->user_ids, e) ||
           kd_art_add_u64(a, "item_ids", d->n_items, d->item_ids, e) ? -1 : 0;
}

static int get_csr(kd_csr *m, const kd_art *a, const char *name, uint64_t rows, uint64_t cols, kd_err *e)
{
    const kd_section *s = kd_art_need(a, name, KD_CSR, e);
    if (!s)
        return -1;
    if (s->rows != rows || s->cols != cols)
        return kd_fail(e, "%s: split '%s' is %" PRIu64 " x %" PRIu64 ", expected %" PRIu64 " x %" PRIu64,
                       a->src, name, s->rows, s->cols, rows, cols);
    const uint64_t *ip = kd_csr_indptr(s);
    const uint32_t *ix = kd_csr_indices(s);
    for (uint64_t r = 0; r < rows; r++)
        for (uint64_t k = ip[r] + 1; k < ip[r + 1]; k++)
            if (ix[k] <= ix[k - 1])
                return kd_fail(e, "%s: split '%s': row %" PRIu64 " is not sorted and unique", a->src, name, r);
    m->rows = (uint32_t)rows;
    m->cols = (uint32_t)cols;
    m->indptr = kd_alloc_array(rows + 1, 8);
    m->idx = kd_alloc_array(s->nnz ? s->nnz : 1, 4);
    if (!m->indptr || !m->idx)
        return kd_fail(e, "out of memory");
    memcpy(m->indptr, ip, (rows + 1) * 8);
    memcpy(m->idx, ix, s->nnz * 4);
    return 0;
}

int kd_dataset_from_art(kd_dataset *d, const kd_art *a, kd_err *e)
{
    memset(d, 0, sizeof *d);
    if (a->kind != KD_KIND_DATASET)
        return kd_fail(e, "%s: is a %s, not a dataset", a->src, kd_kind_name(a->kind));
    const kd_section *u = kd_art_need(a, "user_ids", KD_U64, e), *i;
    if (!u || !(i = kd_art_need(a, "item_ids", KD_U64, e)))
        return -1;
    if (u->rows == 0 || i->rows == 0 || u->rows > UINT32_MAX - 1 || i->rows > UINT32_MAX - 1)
        return kd_fail(e, "%s: dataset has %" PRIu64 " users and %" PRIu64 " items", a->src, u->rows, i->rows);
    d->n_users = (uint32_t)u->rows;
    d->n_items = (uint32_t)i->rows;
    d->content_id = a->content_id;
    d->user_ids = kd_alloc_array(d->n_users, 8);
    d->item_ids = kd_alloc_array(d->n_items, 8);
    if (!d->user_ids || !d->item_ids) {
        kd_dataset_free(d);
        return kd_fail(e, "out of memory");
    }
    memcpy(d->user_ids, u->data, (size_t)u->bytes);
    memcpy(d->item_ids, i->data, (size_t)i->bytes);
    if (get_csr(&d->train, a, "train", d->n_users, d->n_items, e) ||
        get_csr(&d->valid, a, "valid", d->n_users, d->n_items, e) ||
        get_csr(&d->test, a, "test", d->n_users, d->n_items, e)) {
        kd_dataset_free(d);
        return -1;
    }
    return 0;
}

int kd_dataset_load(kd_dataset *d, const char *path, kd_err *e)
{
    kd_art *a;
    if (kd_art_load(path, KD_KIND_DATASET, &a, e))
        return -1;
    int r = kd_dataset_from_art(d, a, e);
    kd_art_free(a);
    return r;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void split_stats(const char *name, const kd_csr *m, kd_buf *b)
{
    uint32_t *len = kd_alloc_array(m->rows ? m->rows : 1, 4);
    if (!len) {
        b->err = 1; /* the provenance lost its lines: its one check (kd_art_add_buf) must see it */
        return;
    }
    uint32_t users = 0;
    for (uint32_t r = 0; r < m->rows; r++)
        if ((len[users] = kd_csr_len(m, r)) > 0)
            users++;
    qsort(len, users, 4, cmp_u32);
    char key[64];
    snprintf(key, sizeof key, "stat.%s.interactions", name);
    kd_prov_u64(b, key, kd_csr_nnz(m));
    snprintf(key, sizeof key, "stat.%s.users", name);
    kd_prov_u64(b, key, users);
    snprintf(key, sizeof key, "stat.%s.per_user_min_median_max", name);
    kd_buf_printf(b, "%s=%u/%u/%u\n", key, users ? len[0] : 0, users ? len[users / 2] : 0,
                  users ? len[users - 1] : 0);
    free(len);
}

int kd_dataset_stats(const kd_dataset *d, kd_buf *prov)
{
    uint64_t all = kd_csr_nnz(&d->train) + kd_csr_nnz(&d->valid) + kd_csr_nnz(&d->test);
    kd_prov_u64(prov, "stat.users", d->n_users);
    kd_prov_u64(prov, "stat.items", d->n_items);
    kd_buf_printf(prov, "stat.density=%.6g\n", (double)all / ((double)d->n_users * d->n_items));
    split_stats("train", &d->train, prov);
    split_stats("valid", &d->valid, prov);
    split_stats("test", &d->test, prov);
    return kd_buf_error(prov) ? -1 : 0;
}

int kd_dataset_set_splits(kd_dataset *d, kd_pair *tr, uint64_t ntr, kd_pair *va, uint64_t nva, kd_pair *te,
                          uint64_t nte, kd_err *e)
{
    return kd_csr_from_pairs(&d->train, d->n_users, d->n_items, tr, ntr, e) ||
           kd_csr_from_pairs(&d->valid, d->n_users, d->n_items, va, nva, e) ||
           kd_csr_from_pairs(&d->test, d->n_users, d->n_items, te, nte, e) ? -1 : 0;
}

/* floor(x + u) for u uniform in [0,1): an unbiased integer rounding of x */
static uint32_t stoch_round(double x, kd_rng *r)
{
    return (uint32_t)(x + kd_rng_unif(r));
}

int kd_split_random(kd_dataset *d, kd_csr *all, double test_ratio, double valid_ratio,
                    uint64_t seed, kd_err *e)
{
    /* pass 1 labels each interaction (0 test, 1 valid, 2 train) in the row's order; pass 2
     * writes the three matrices at their exact sizes: memory stays near one copy of the data */
    uint64_t nnz = kd_csr_nnz(all), count[3] = { 0, 0, 0 };
    uint8_t *label = kd_alloc_array(nnz ? nnz : 1, 1);
    uint32_t *perm = kd_alloc_array(all->cols ? all->cols : 1, 4);
    int ret = -1;
    if (!label || !perm) {
        kd_fail(e, "out of memory");
        goto done;
    }
    kd_rng rng = kd_rng_seed(kd_key(seed, 0x53504c4954ULL /* "SPLIT" */, 0));
    for (uint32_t u = 0; u < all->rows; u++) {
        uint32_t n = kd_csr_len(all, u);
        for (uint32_t k = 0; k < n; k++) perm[k] = k; /* positions in the row */
        for (uint32_t k = n; k > 1; k--) {             /* Fisher-Yates */
            uint32_t j = kd_rng_below(&rng, k), t = perm[k - 1];
            perm[k - 1] = perm[j];
            perm[j] = t;
        }
        uint32_t nt = stoch_round(n * test_ratio, &rng);
        if (nt >= n) nt = n ? n - 1 : 0;
        uint32_t nv = stoch_round((n - nt) * valid_ratio, &rng);
        if (nt + nv >= n) nv = n - nt ? n - nt - 1 : 0;
        uint8_t *lab = label + all->indptr[u];
        for (uint32_t k = 0; k < n; k++) {
            uint8_t l = k < nt ? 0 : k < nt + nv ? 1 : 2;
            lab[perm[k]] = l;
            count[l]++;
        }
    }
    /* the three matrices straight from the labels: rows stay sorted */
    kd_csr *split[3] = { &d->test, &d->valid, &d->train };
    for (int l = 0; l < 3; l++) {
        kd_csr *m = split[l];
        m->rows = all->rows;
        m->cols = all->cols;
        m->indptr = kd_calloc_array((uint64_t)all->rows + 1, sizeof *m->indptr);
        m->idx = kd_alloc_array(count[l] ? count[l] : 1, sizeof *m->idx);
        if (!m->indptr || !m->idx) {
            kd_fail(e, "out of memory");
            goto done;
        }
    }
    uint64_t fill[3] = { 0, 0, 0 };
    for (uint32_t u = 0; u < all->rows; u++) {
        for (uint64_t k = all->indptr[u]; k < all->indptr[u + 1]; k++)
            split[label[k]]->idx[fill[label[k]]++] = all->idx[k];
        for (int l = 0; l < 3; l++) split[l]->indptr[u + 1] = fill[l];
    }
    kd_csr_free(all);
    ret = 0;
done:
    free(label); free(perm);
    return ret;
}

int kd_split_valid_fraction(kd_dataset *d, double fraction, uint64_t seed, kd_err *e)
{
    if (!(fraction > 0 && fraction < 1))
        return kd_fail_usage(e, "--valid-fraction must be in (0, 1)");
    if (kd_csr_nnz(&d->valid))
        return kd_fail(e, "a valid split is already there");
    /* pass 1 marks the moved interactions, pass 2 writes both matrices at their sizes */
    kd_csr *tr = &d->train;
    uint64_t nnz = kd_csr_nnz(tr), nva = 0;
    uint8_t *moved = kd_calloc_array(nnz ? nnz : 1, 1);
    uint32_t *perm = kd_alloc_array(tr->cols ? tr->cols : 1, 4);
    kd_csr ntr = { tr->rows, tr->cols, NULL, NULL }, va = { tr->rows, tr->cols, NULL, NULL };
    int ret = -1;
    if (!moved || !perm) {
        kd_fail(e, "out of memory");
        goto done;
    }
    for (uint32_t u = 0; u < tr->rows; u++) {
        uint32_t n = kd_csr_len(tr, u);
        if (n < 2)
            continue;
        kd_rng rng = kd_rng_seed(kd_key(seed, 0x56414c4944ULL /* "VALID" */, u));
        uint32_t nv = stoch_round(n * fraction, &rng);
        if (nv >= n) nv = n - 1;
        /* the first nv of a Fisher-Yates shuffle of the row's positions */
        for (uint32_t k = 0; k < n; k++) perm[k] = k;
        for (uint32_t k = 0; k < nv; k++) {
            uint32_t j = k + kd_rng_below(&rng, n - k), t = perm[k];
            perm[k] = perm[j];
            perm[j] = t;
            moved[tr->indptr[u] + perm[k]] = 1;
        }
        nva += nv;
    }
    ntr.indptr = kd_calloc_array((uint64_t)tr->rows + 1, sizeof *ntr.indptr);
    va.indptr = kd_calloc_array((uint64_t)tr->rows + 1, sizeof *va.indptr);
    ntr.idx = kd_alloc_array(nnz - nva ? nnz - nva : 1, sizeof *ntr.idx);
    va.idx = kd_alloc_array(nva ? nva : 1, sizeof *va.idx);
    if (!ntr.indptr || !va.indptr || !ntr.idx || !va.idx) {
        kd_fail(e, "out of memory");
        goto done;
    }
    uint64_t ft = 0, fv = 0; /* rows stay sorted: both keep the row's order */
    for (uint32_t u = 0; u < tr->rows; u++) {
        for (uint64_t k = tr->indptr[u]; k < tr->indptr[u + 1]; k++) {
            if (moved[k]) va.idx[fv++] = tr->idx[k];
            else ntr.idx[ft++] = tr->idx[k];
        }
        ntr.indptr[u + 1] = ft;
        va.indptr[u + 1] = fv;
    }
    kd_csr_free(tr);
    kd_csr_free(&d->valid);
    *tr = ntr;
    d->valid = va;
    ntr.indptr = va.indptr = NULL;
    ntr.idx = va.idx = NULL;
    ret = 0;
done:
    kd_csr_free(&ntr);
    kd_csr_free(&va);
    free(moved); free(perm);
    return ret;
}
