/* kd_import: streaming text parsers, id remapping, filters and splits. */
#include "kd_import.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_prov.h"
#include "kd_rng.h"

static const char *const FORMAT_NAMES[] = { "tsv", "csv", "adj", "triples" };

kd_import_params kd_import_defaults(void)
{
    kd_import_params p = { .format = -1, .test_ratio = 0.2, .valid_ratio = 0.1, .seed = 1 };
    return p;
}

int kd_import_format_parse(const char *name)
{
    for (int f = 0; f < 4; f++)
        if (!strcmp(name, FORMAT_NAMES[f]))
            return f;
    return -1;
}

/* ---------------------------------------------------------------- id map */

/* Open addressing u64 -> u32 (dense id in order of first appearance). */
typedef struct idmap {
    uint64_t *keys;  /* (cap) */
    uint32_t *vals;  /* (cap) UINT32_MAX = empty */
    uint64_t  cap, n;
    uint64_t *order; /* (n) key of each dense id */
    uint64_t  order_cap;
} idmap;

static uint64_t hash64(uint64_t k) { return kd_mix64(k); }

static int idmap_grow(idmap *m)
{
    uint64_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *keys = kd_alloc_array(cap, 8);
    uint32_t *vals = kd_alloc_array(cap, 4);
    if (!keys || !vals) {
        free(keys); free(vals);
        return -1;
    }
    memset(vals, 0xff, cap * 4);
    for (uint64_t k = 0; k < m->cap; k++)
        if (m->vals[k] != UINT32_MAX) {
            uint64_t h = hash64(m->keys[k]) & (cap - 1);
            while (vals[h] != UINT32_MAX) h = (h + 1) & (cap - 1);
            keys[h] = m->keys[k];
            vals[h] = m->vals[k];
        }
    free(m->keys); free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return 0;
}

/* Dense id of key, inserting it if `insert`; UINT32_MAX if absent (or on failure: *err). */
static uint32_t idmap_get(idmap *m, uint64_t key, int insert, int *err)
{
    if (m->cap) {
        uint64_t h = hash64(key) & (m->cap - 1);
        while (m->vals[h] != UINT32_MAX) {
            if (m->keys[h] == key) return m->vals[h];
            h = (h + 1) & (m->cap - 1);
        }
    }
    if (!insert) return UINT32_MAX;
    if (m->n >= UINT32_MAX - 1 || ((m->n + 1) * 2 > m->cap && idmap_grow(m))) { *err = 1; return UINT32_MAX; }
    if (m->n == m->order_cap) {
        uint64_t oc = m->order_cap ? m->order_cap * 2 : 1024;
        uint64_t *o = realloc(m->order, oc * 8);
        if (!o) { *err = 1; return UINT32_MAX; }
        m->order = o;
        m->order_cap = oc;
    }
    uint64_t h = hash64(key) & (m->cap - 1);
    while (m->vals[h] != UINT32_MAX) h = (h + 1) & (m->cap - 1);
    m->keys[h] = key;
    m->vals[h] = (uint32_t)m->n;
    m->order[m->n] = key;
    return (uint32_t)m->n++;
}

static void idmap_free(idmap *m) { free(m->keys); free(m->vals); free(m->order); memset(m, 0, sizeof *m); }

/* ---------------------------------------------------------------- records */

typedef struct recs {
    kd_pair *p;    /* (n) temp user id, temp item id */
    int64_t *ts;   /* (n) when timestamps are kept */
    uint64_t n, cap;
    int keep_ts, all_ts;
} recs;

static int recs_push(recs *r, uint32_t u, uint32_t i, int has_ts, int64_t ts)
{
    if (r->n == r->cap) {
        uint64_t cap = r->cap ? r->cap * 2 : 4096;
        kd_pair *p = realloc(r->p, cap * sizeof *p);
        if (!p) return -1;
        r->p = p;
        if (r->keep_ts) {
            int64_t *t = realloc(r->ts, cap * 8);
            if (!t) return -1;
            r->ts = t;
        }
        r->cap = cap;
    }
    r->p[r->n].row = u;
    r->p[r->n].col = i;
    if (r->keep_ts) r->ts[r->n] = ts;
    r->all_ts &= has_ts;
    r->n++;
    return 0;
}

/* ---------------------------------------------------------------- parsing */

typedef struct parse_ctx {
    const kd_import_params *p;
    const char *name;      /* file name for messages */
    idmap *users, *items;
    int insert;            /* train: add new ids; valid/test: look up only */
    recs *out;
    uint64_t dropped;      /* unknown ids (valid/test) */
    uint64_t lines, filtered;
} parse_ctx;

static int is_sep(char c, int csv) { return csv ? c == ',' : (c == ' ' || c == '\t'); }

/* Parses an unsigned id field [s, end). */
static int parse_id(const parse_ctx *c, uint64_t line, const char *s, const char *end, const char *what,
                    uint64_t *v, kd_err *e)
{
    while (s < end && *s == ' ') s++;
    while (end > s && end[-1] == ' ') end--;
    if (s == end) return kd_fail(e, "%s:%llu: empty %s id", c->name, (unsigned long long)line, what);
    if (*s == '-') return kd_fail(e, "%s:%llu: negative %s id '%.*s'", c->name, (unsigned long long)line, what,
                                  (int)(end - s > 40 ? 40 : end - s), s);
    uint64_t x = 0;
    for (const char *q = s; q < end; q++) {
        if (*q < '0' || *q > '9')
            return kd_fail(e, "%s:%llu: %s id is not a non-negative integer: '%.*s'", c->name,
                           (unsigned long long)line, what, (int)(end - s > 40 ? 40 : end - s), s);
        if (x > (UINT64_MAX - (uint64_t)(*q - '0')) / 10)
            return kd_fail(e, "%s:%llu: %s id out of range (above 2^64-1)", c->name, (unsigned long long)line, what);
        x = x * 10 + (uint64_t)(*q - '0');
    }
    *v = x;
    return 0;
}

static int parse_num(const parse_ctx *c, uint64_t line, const char *s, const char *end, const char *what,
                     double *v, kd_err *e)
{
    char buf[64];
    while (s < end && *s == ' ') s++;
    while (end > s && end[-1] == ' ') end--;
    size_t n = (size_t)(end - s);
    if (n == 0 || n >= sizeof buf)
        return kd_fail(e, "%s:%llu: bad %s '%.*s'", c->name, (unsigned long long)line, what, (int)(n > 40 ? 40 : n), s);
    memcpy(buf, s, n);
    buf[n] = 0;
    char *q;
    errno = 0;
    double x = strtod(buf, &q);
    if (*q || !isfinite(x))
        return kd_fail(e, "%s:%llu: %s is not a number: '%s'", c->name, (unsigned long long)line, what, buf);
    *v = x;
    return 0;
}

static int add_pair(parse_ctx *c, uint64_t line, uint64_t user, uint64_t item, int has_ts, int64_t ts, kd_err *e)
{
    int err = 0;
    uint32_t u = idmap_get(c->users, user, c->insert, &err);
    uint32_t i = u == UINT32_MAX ? UINT32_MAX : idmap_get(c->items, item, c->insert, &err);
    if (err) return kd_fail(e, "%s:%llu: out of memory (or more than 2^32-2 ids)", c->name, (unsigned long long)line);
    if (u == UINT32_MAX || i == UINT32_MAX) {
        c->dropped++;
        return 0;
    }
    if (recs_push(c->out, u, i, has_ts, ts)) return kd_fail(e, "%s: out of memory", c->name);
    return 0;
}

/* One line [s, end) without its newline. */
static int parse_line(parse_ctx *c, uint64_t line, const char *s, const char *end, kd_err *e)
{
    int fmt = c->p->format, csv = fmt == KD_FMT_CSV;
    if (end > s && end[-1] == '\r') end--;
    if (line == 1 && end - s >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) s += 3;
    const char *t = s;
    while (t < end && (*t == ' ' || *t == '\t')) t++;
    if (t == end || *t == '#') return 0;
    if (csv && c->lines == 0 && !(*t >= '0' && *t <= '9') && *t != '-') {
        c->lines++; /* the header line */
        return 0;
    }
    c->lines++;
    /* split into fields */
    const char *fs[8], *fe[8];
    int nf = 0;
    const char *q = csv ? s : t;
    if (fmt == KD_FMT_ADJ) {
        /* user item item ...: stream the items */
        const char *a = q;
        while (a < end && !is_sep(*a, 0)) a++;
        uint64_t user, item;
        if (parse_id(c, line, q, a, "user", &user, e)) return -1;
        if (c->p->use_min_rating)
            return kd_fail_usage(e, "--min-rating does not apply to --format adj (no ratings)");
        for (;;) {
            while (a < end && is_sep(*a, 0)) a++;
            if (a == end) break;
            const char *b = a;
            while (b < end && !is_sep(*b, 0)) b++;
            if (parse_id(c, line, a, b, "item", &item, e) || add_pair(c, line, user, item, 0, 0, e)) return -1;
            a = b;
        }
        return 0;
    }
    while (q <= end && nf < 8) {
        const char *b = q;
        while (b < end && !is_sep(*b, csv)) b++;
        fs[nf] = q;
        fe[nf++] = b;
        if (b == end) break;
        q = b + 1;
        if (!csv) {
            while (q < end && is_sep(*q, 0)) q++;
            if (q == end) break;
        }
    }
    if (nf < 2) return kd_fail(e, "%s:%llu: expected at least 2 fields (user item), got %d", c->name,
                               (unsigned long long)line, nf);
    uint64_t user, item;
    if (parse_id(c, line, fs[0], fe[0], "user", &user, e) || parse_id(c, line, fs[1], fe[1], "item", &item, e))
        return -1;
    if (c->p->use_min_rating) {
        double rating;
        if (nf < 3)
            return kd_fail(e, "%s:%llu: --min-rating needs a rating column, and this line has none", c->name,
                           (unsigned long long)line);
        if (parse_num(c, line, fs[2], fe[2], fmt == KD_FMT_TRIPLES ? "weight" : "rating", &rating, e)) return -1;
        if (rating < c->p->min_rating) {
            c->filtered++;
            return 0;
        }
    }
    int64_t ts = 0;
    int has_ts = 0;
    if (fmt != KD_FMT_TRIPLES && nf >= 4) {
        double x;
        if (parse_num(c, line, fs[3], fe[3], "timestamp", &x, e)) return -1;
        if (!(x > -9.2e18 && x < 9.2e18))
            return kd_fail(e, "%s:%llu: timestamp out of range", c->name, (unsigned long long)line);
        ts = (int64_t)x;
        has_ts = 1;
    }
    return add_pair(c, line, user, item, has_ts, ts, e);
}

/* Streams a file (or bytes already read) through parse_line in 1 MiB blocks; a line
 * longer than the block grows it. */
static int parse_file(parse_ctx *c, const char *path, const uint8_t *mem, size_t mlen, kd_err *e)
{
    FILE *f = mem ? fmemopen((void *)mem, mlen ? mlen : 1, "rb") : kd_open_in(path, e);
    if (!f) return mem ? kd_fail(e, "%s: %s", c->name, strerror(errno)) : -1;
    if (mem && mlen == 0) fgetc(f); /* an empty buffer: fmemopen needs a size of at least 1 */
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    uint64_t line = 0;
    int ret = -1;
    if (!buf) {
        kd_fail(e, "%s: out of memory", c->name);
        goto done;
    }
    for (;;) {
        if (len == cap) {
            if (cap > (SIZE_MAX >> 2)) { kd_fail(e, "%s: line too long", c->name); goto done; }
            char *nb = realloc(buf, cap * 2);
            if (!nb) { kd_fail(e, "%s:%llu: line too long for memory", c->name, (unsigned long long)line + 1); goto done; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        if (got == 0 && ferror(f)) {
            kd_fail(e, "%s: read error: %s", c->name, strerror(errno));
            goto done;
        }
        int eof = got == 0;
        len += got;
        const char *s = buf, *end = buf + len;
        for (;;) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            if (!nl) {
                if (eof && s < end) { /* last line without newline */
                    if (parse_line(c, ++line, s, end, e)) goto done;
                    s = end;
                }
                break;
            }
            if (memchr(s, 0, (size_t)(nl - s))) {
                kd_fail(e, "%s:%llu: NUL byte (binary input?)", c->name, (unsigned long long)line + 1);
                goto done;
            }
            if (parse_line(c, ++line, s, nl, e)) goto done;
            s = nl + 1;
        }
        len = (size_t)(end - s);
        memmove(buf, s, len);
        if (eof) break;
    }
    ret = 0;
done:
    free(buf);
    if (mem) fclose(f);
    else kd_close_in(f);
    return ret;
}

/* ---------------------------------------------------------------- filters */

/* Drops interactions of users/items with fewer than k of them, until none is left to drop. */
static void kcore(recs *r, uint32_t nu, uint32_t ni, uint32_t k, uint32_t *du, uint32_t *di)
{
    for (;;) {
        memset(du, 0, (size_t)nu * 4);
        memset(di, 0, (size_t)ni * 4);
        for (uint64_t j = 0; j < r->n; j++) { du[r->p[j].row]++; di[r->p[j].col]++; }
        uint64_t m = 0;
        for (uint64_t j = 0; j < r->n; j++)
            if (du[r->p[j].row] >= k && di[r->p[j].col] >= k) {
                if (r->keep_ts) r->ts[m] = r->ts[j];
                r->p[m++] = r->p[j];
            }
        if (m == r->n) return;
        r->n = m;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* New dense ids for the temp ids still present, in increasing original id.  remap[t] is
 * the new id of temp id t (UINT32_MAX if gone); ids[] receives the originals. */
static int dense_ids(const idmap *m, const uint32_t *deg, uint32_t **remap, uint64_t **ids, uint32_t *count)
{
    uint64_t n = m->n, live = 0;
    uint64_t *pairs = kd_alloc_array(n ? n : 1, 16); /* (original id, temp id) */
    *remap = kd_alloc_array(n ? n : 1, 4);
    if (!pairs || !*remap) { free(pairs); return -1; }
    for (uint64_t t = 0; t < n; t++)
        if (deg[t]) { pairs[2 * live] = m->order[t]; pairs[2 * live + 1] = t; live++; }
    qsort(pairs, live, 16, cmp_u64);
    *ids = kd_alloc_array(live ? live : 1, 8);
    if (!*ids) { free(pairs); return -1; }
    memset(*remap, 0xff, (size_t)(n ? n : 1) * 4);
    for (uint64_t k = 0; k < live; k++) {
        (*ids)[k] = pairs[2 * k];
        (*remap)[pairs[2 * k + 1]] = (uint32_t)k;
    }
    *count = (uint32_t)live;
    free(pairs);
    return 0;
}

static void apply_remap(recs *r, const uint32_t *ru, const uint32_t *ri)
{
    uint64_t m = 0;
    for (uint64_t j = 0; j < r->n; j++) {
        uint32_t u = ru[r->p[j].row], i = ri[r->p[j].col];
        if (u == UINT32_MAX || i == UINT32_MAX) continue;
        if (r->keep_ts) r->ts[m] = r->ts[j];
        r->p[m].row = u;
        r->p[m++].col = i;
    }
    r->n = m;
}

/* Leave-one-out: the latest interaction of each user (by timestamp, ties by item id; at
 * random without timestamps) goes to test, the next latest to valid when asked. */
typedef struct loo_rec { uint32_t u, i; int64_t ts; uint64_t key; } loo_rec;

static int cmp_loo(const void *a, const void *b)
{
    const loo_rec *x = a, *y = b;
    if (x->u != y->u) return x->u < y->u ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int split_loo(kd_dataset *d, recs *r, int use_ts, int want_valid, uint64_t seed, kd_err *e)
{
    loo_rec *v = kd_alloc_array(r->n ? r->n : 1, sizeof *v);
    kd_pair *tr = kd_alloc_array(r->n ? r->n : 1, sizeof *tr), *va = kd_alloc_array(r->n ? r->n : 1, sizeof *va),
            *te = kd_alloc_array(r->n ? r->n : 1, sizeof *te);
    uint64_t ntr = 0, nva = 0, nte = 0;
    int ret = -1;
    if (!v || !tr || !va || !te) { kd_fail(e, "out of memory"); goto done; }
    uint64_t key = kd_key(seed, 0x4c4f4fULL /* "LOO" */, 0);
    for (uint64_t j = 0; j < r->n; j++) {
        v[j].u = r->p[j].row;
        v[j].i = r->p[j].col;
        v[j].ts = use_ts ? r->ts[j] : 0;
        v[j].key = use_ts ? 0 : kd_rng_at(key, ((uint64_t)v[j].u << 32) | v[j].i);
    }
    qsort(v, r->n, sizeof *v, cmp_loo);
    /* merge duplicates (same user and item): keep the latest, which sorts last */
    uint64_t m = 0;
    for (uint64_t j = 0; j < r->n; j++) {
        uint64_t k = j + 1;
        int dup = 0;
        for (; k < r->n && v[k].u == v[j].u; k++)
            if (v[k].i == v[j].i) { dup = 1; break; }
        if (!dup) v[m++] = v[j];
    }
    for (uint64_t j = 0; j < m;) {
        uint64_t k = j;
        while (k < m && v[k].u == v[j].u) k++;
        uint64_t n = k - j;
        for (uint64_t t = j; t < k; t++) {
            kd_pair p = { v[t].u, v[t].i };
            uint64_t from_end = k - 1 - t;
            if (n >= 2 && from_end == 0) te[nte++] = p;
            else if (n >= 3 && want_valid && from_end == 1) va[nva++] = p;
            else tr[ntr++] = p;
        }
        j = k;
    }
    if (kd_dataset_set_splits(d, tr, ntr, va, nva, te, nte, e))
        goto done;
    ret = 0;
done:
    free(v); free(tr); free(va); free(te);
    return ret;
}

/* ---------------------------------------------------------------- driver */

int kd_import_run(kd_dataset *d, kd_import_params *p, kd_buf *prov, kd_err *e)
{
    memset(d, 0, sizeof *d);
    if (p->format < 0 || p->format > KD_FMT_TRIPLES) return kd_fail_usage(e, "no --format given");
    if ((p->valid_path != NULL) != (p->test_path != NULL) && !p->test_path)
        return kd_fail_usage(e, "--valid needs --test as well");
    if (p->leave_one_out && p->test_path)
        return kd_fail_usage(e, "--leave-one-out and --test are exclusive");
    if (p->valid_fraction != 0) {
        if (!(p->valid_fraction > 0 && p->valid_fraction < 1))
            return kd_fail_usage(e, "--valid-fraction must be in (0, 1)");
        if (p->valid_path) return kd_fail_usage(e, "--valid-fraction and --valid are exclusive");
        if (!p->test_path)
            return kd_fail_usage(e, "--valid-fraction needs --test (a random split takes --valid-ratio)");
    }
    if (!(p->test_ratio > 0 && p->test_ratio < 1)) return kd_fail_usage(e, "--test-ratio must be in (0, 1)");
    if (!(p->valid_ratio >= 0 && p->valid_ratio < 1)) return kd_fail_usage(e, "--valid-ratio must be in [0, 1)");
    idmap users = { 0 }, items = { 0 };
    recs train = { .keep_ts = p->leave_one_out, .all_ts = 1 }, valid = { 0 }, test = { 0 };
    uint32_t *du = NULL, *di = NULL, *ru = NULL, *ri = NULL;
    int ret = -1;
    parse_ctx c = { .p = p, .name = kd_in_name(p->input_path), .users = &users, .items = &items, .insert = 1, .out = &train };
    if (parse_file(&c, p->input_path, p->input_mem, p->input_len, e)) goto done;
    uint64_t raw_lines = c.lines, filtered = c.filtered;
    if (train.n == 0) {
        kd_fail(e, "%s: no interactions%s", c.name, filtered ? " left after --min-rating" : " (empty input)");
        goto done;
    }
    du = kd_calloc_array(users.n, 4);
    di = kd_calloc_array(items.n, 4);
    if (!du || !di) { kd_fail(e, "out of memory"); goto done; }
    /* merge duplicates before counting degrees (leave-one-out merges later, by time) */
    if (!train.keep_ts) train.n = kd_pairs_sort_unique(train.p, train.n);
    if (p->kcore > 1) kcore(&train, (uint32_t)users.n, (uint32_t)items.n, p->kcore, du, di);
    memset(du, 0, users.n * 4);
    memset(di, 0, items.n * 4);
    for (uint64_t j = 0; j < train.n; j++) { du[train.p[j].row]++; di[train.p[j].col]++; }
    if (train.n == 0) {
        kd_fail(e, "%s: every user was filtered out (--kcore %u)", c.name, p->kcore);
        goto done;
    }
    if (dense_ids(&users, du, &ru, &d->user_ids, &d->n_users) ||
        dense_ids(&items, di, &ri, &d->item_ids, &d->n_items)) {
        kd_fail(e, "out of memory");
        goto done;
    }
    apply_remap(&train, ru, ri);

    if (p->test_path) {
        /* given splits: ids are looked up in the train mapping, unknown ones dropped */
        parse_ctx cv = c;
        cv.insert = 0;
        cv.lines = cv.filtered = cv.dropped = 0;
        cv.out = &test;
        cv.name = kd_in_name(p->test_path);
        if (parse_file(&cv, p->test_path, NULL, 0, e)) goto done;
        apply_remap(&test, ru, ri);
        p->dropped_test = cv.dropped;
        if (p->valid_path) {
            cv.lines = cv.filtered = cv.dropped = 0;
            cv.out = &valid;
            cv.name = kd_in_name(p->valid_path);
            if (parse_file(&cv, p->valid_path, NULL, 0, e)) goto done;
            apply_remap(&valid, ru, ri);
            p->dropped_valid = cv.dropped;
        }
        if (kd_dataset_set_splits(d, train.p, train.n, valid.p, valid.n, test.p, test.n, e))
            goto done;
        if (p->valid_fraction > 0 && kd_split_valid_fraction(d, p->valid_fraction, p->seed, e))
            goto done;
    } else if (p->leave_one_out) {
        if (split_loo(d, &train, train.all_ts, p->valid_ratio > 0, p->seed, e)) goto done;
    } else {
        kd_csr all;
        if (kd_csr_from_pairs(&all, d->n_users, d->n_items, train.p, train.n, e))
            goto done;
        free(train.p); /* the matrix holds them now */
        train.p = NULL;
        if (kd_split_random(d, &all, p->test_ratio, p->valid_ratio, p->seed, e))
            goto done;
    }
    kd_prov_str(prov, "source", "import");
    kd_prov_str(prov, "import.format", FORMAT_NAMES[p->format]);
    if (p->use_min_rating) kd_prov_f64(prov, "import.min_rating", p->min_rating);
    kd_prov_u64(prov, "import.kcore", p->kcore);
    kd_prov_u64(prov, "import.records", raw_lines);
    kd_prov_u64(prov, "import.below_min_rating", filtered);
    if (p->test_path) {
        kd_prov_str(prov, "split", "given");
        kd_prov_u64(prov, "split.dropped_valid", p->dropped_valid);
        kd_prov_u64(prov, "split.dropped_test", p->dropped_test);
        if (p->valid_fraction > 0) {
            kd_prov_f64(prov, "split.valid_fraction", p->valid_fraction);
            kd_prov_u64(prov, "seed", p->seed);
        }
    } else if (p->leave_one_out) {
        kd_prov_str(prov, "split", train.all_ts ? "leave-one-out-latest" : "leave-one-out-random");
        kd_prov_u64(prov, "seed", p->seed);
    } else {
        kd_prov_str(prov, "split", "random");
        kd_prov_f64(prov, "split.test_ratio", p->test_ratio);
        kd_prov_f64(prov, "split.valid_ratio", p->valid_ratio);
        kd_prov_u64(prov, "seed", p->seed);
    }
    ret = 0;
done:
    if (ret) kd_dataset_free(d);
    idmap_free(&users); idmap_free(&items);
    free(train.p); free(train.ts); free(valid.p); free(test.p);
    free(du); free(di); free(ru); free(ri);
    return ret;
}
