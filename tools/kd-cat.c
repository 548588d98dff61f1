/* kd-cat: one section of an artifact as text (or .npy), so artifacts compose with awk,
 * sort, join and NumPy.  Without a section name it lists the sections.
 *     kd-cat --original-ids data.kd train | sort -n | head */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h"  /* kd_art_load, sections */
#include "kd_cli.h"       /* kd_cli_version */
#include "kd_io.h"        /* kd_write_buf (atomic -o), kd_buf */

static const char *prog = "kd-cat";

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [options] FILE [SECTION]\n"
               "Print SECTION of a kdrec artifact as text: a dense matrix as tab-separated rows\n"
               "(floats with enough digits to round-trip), a vector one value per line, a CSR\n"
               "matrix as 'row<TAB>col' pairs, text as is.  Without SECTION, list the sections.\n"
               "  -o FILE          write to FILE (atomically) instead of stdout\n"
               "  --npy            write a dense or vector section as a NumPy .npy file\n"
               "  --original-ids   CSR sections of a dataset: print the original user/item ids\n"
               "  -h, --help       this help;  --version  print the version\n", prog);
}

/* Appends the .npy header (format 1.0) for dtype/shape. */
static int npy_header(kd_buf *b, const char *dtype, uint64_t rows, uint64_t cols, int matrix)
{
    char dict[160];
    if (matrix)
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%" PRIu64 ", %" PRIu64 "), }",
                 dtype, rows, cols);
    else
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%" PRIu64 ",), }", dtype, rows);
    size_t len = strlen(dict), total = 10 + len + 1;
    size_t pad = (64 - total % 64) % 64;
    uint8_t pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0 };
    pre[8] = (uint8_t)((len + pad + 1) & 0xff);
    pre[9] = (uint8_t)((len + pad + 1) >> 8);
    if (kd_buf_append(b, pre, 10) || kd_buf_append(b, dict, len))
        return -1;
    for (size_t i = 0; i < pad; i++)
        if (kd_buf_append(b, " ", 1))
            return -1;
    return kd_buf_append(b, "\n", 1);
}

static int emit_npy(const kd_section *s, kd_buf *b, kd_err *e)
{
    const char *dtype;
    switch (s->type) {
    case KD_F32: dtype = "<f4"; break;
    case KD_F64: dtype = "<f8"; break;
    case KD_I32: dtype = "<i4"; break;
    case KD_U32: dtype = "<u4"; break;
    case KD_U64: dtype = "<u8"; break;
    default: return kd_fail_usage(e, "section '%s': --npy takes a dense or vector section, not %s",
                                  s->name, kd_type_name(s->type));
    }
    int matrix = s->type == KD_F32 || s->type == KD_F64;
    /* the raw bytes are already little-endian, which is what '<' declares */
    if (npy_header(b, dtype, s->rows, s->cols, matrix) || kd_buf_append(b, s->data, (size_t)s->bytes))
        return kd_fail(e, "out of memory");
    return 0;
}

static const uint64_t *id_map(const kd_art *a, const char *name, uint64_t n, kd_err *e)
{
    const kd_section *s = kd_art_find(a, name);
    if (!s || s->type != KD_U64 || s->rows != n) {
        kd_fail_usage(e, "%s: --original-ids needs a dataset with a '%s' section of %" PRIu64 " ids",
                      a->src, name, n);
        return NULL;
    }
    return s->data;
}

static int emit_text(const kd_art *a, const kd_section *s, int orig, kd_buf *b, kd_err *e)
{
    int r = 0;
    const uint64_t *umap = NULL, *imap = NULL;
    if (orig && (s->type != KD_CSR))
        return kd_fail_usage(e, "--original-ids applies to CSR sections only");
    if (orig && (!(umap = id_map(a, "user_ids", s->rows, e)) || !(imap = id_map(a, "item_ids", s->cols, e))))
        return -1;
    switch (s->type) {
    case KD_F32: case KD_F64:
        for (uint64_t i = 0; i < s->rows && !r; i++)
            for (uint64_t j = 0; j < s->cols && !r; j++) {
                uint64_t k = i * s->cols + j;
                double v = s->type == KD_F32 ? ((const float *)s->data)[k] : ((const double *)s->data)[k];
                r = kd_buf_printf(b, s->type == KD_F32 ? "%.9g%c" : "%.17g%c", v, j + 1 < s->cols ? '\t' : '\n');
            }
        break;
    case KD_I32:
        for (uint64_t i = 0; i < s->rows && !r; i++)
            r = kd_buf_printf(b, "%" PRId32 "\n", ((const int32_t *)s->data)[i]);
        break;
    case KD_U32:
        for (uint64_t i = 0; i < s->rows && !r; i++)
            r = kd_buf_printf(b, "%" PRIu32 "\n", ((const uint32_t *)s->data)[i]);
        break;
    case KD_U64:
        for (uint64_t i = 0; i < s->rows && !r; i++)
            r = kd_buf_printf(b, "%" PRIu64 "\n", ((const uint64_t *)s->data)[i]);
        break;
    case KD_CSR: {
        const uint64_t *ip = kd_csr_indptr(s);
        const uint32_t *ix = kd_csr_indices(s);
        for (uint64_t row = 0; row < s->rows && !r; row++)
            for (uint64_t k = ip[row]; k < ip[row + 1] && !r; k++)
                r = orig ? kd_buf_printf(b, "%" PRIu64 "\t%" PRIu64 "\n", umap[row], imap[ix[k]])
                         : kd_buf_printf(b, "%" PRIu64 "\t%" PRIu32 "\n", row, ix[k]);
        break;
    }
    case KD_TEXT:
        r = kd_buf_append(b, s->data, (size_t)s->bytes);
        break;
    }
    return r ? kd_fail(e, "out of memory") : 0;
}

struct opts {
    const char *out, *path, *name;  /* name NULL: list the sections */
    int         npy, orig;
};

/* Exits 0 after --help/--version, 2 on misuse. */
static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        { "npy", no_argument, 0, 'n' }, { "original-ids", no_argument, 0, 'i' },
        { "help", no_argument, 0, 'h' }, { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 } };
    int c;
    o->out = "-";
    o->npy = o->orig = 0;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'n': o->npy = 1; break;
        case 'i': o->orig = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': kd_cli_version(prog); exit(0);
        default: usage(stderr); exit(KD_EXIT_USAGE);
        }
    }
    if (argc - optind < 1 || argc - optind > 2) {
        fprintf(stderr, "%s: expected FILE [SECTION]\n", prog);
        usage(stderr);
        exit(KD_EXIT_USAGE);
    }
    o->path = argv[optind];
    o->name = argc - optind == 2 ? argv[optind + 1] : NULL;
}

static int run(const struct opts *o, kd_err *e)
{
    kd_art *a = NULL;
    kd_buf b = { 0 };
    int r = -1;
    if (o->npy && !o->name)
        return kd_fail_usage(e, "--npy needs a SECTION");
    if (kd_art_load(o->path, 0, &a, e))
        return -1;
    if (!o->name) {
        for (uint32_t i = 0; i < a->n; i++)
            kd_buf_printf(&b, "%s\n", a->sec[i].name);
    } else {
        const kd_section *s = kd_art_find(a, o->name);
        if (!s) {
            kd_fail(e, "%s: no section '%s'", a->src, o->name);
            goto done;
        }
        if (o->npy ? emit_npy(s, &b, e) : emit_text(a, s, o->orig, &b, e))
            goto done;
    }
    r = kd_write_buf(o->out, &b, o->npy ? KD_OUT_BINARY : KD_OUT_TEXT, e);
done:
    kd_art_free(a);
    kd_buf_free(&b);
    return r;
}

int main(int argc, char **argv)
{
    struct opts o;
    kd_err e = { 0 };
    parse_args(argc, argv, &o);
    return run(&o, &e) ? kd_err_report(prog, &e) : 0;
}
