/* kd-quant: post-training quantisation of a model's embeddings (int8 or int4, a scale per
 * row, an offset per row with asym), the equal-bytes baseline of distillation.
 * Reads a float model artifact, writes a quantised one that every model reader loads
 * (dequantised at load: kd-eval, kd-distill --teacher, kd-info); with --cache DIR a stage.
 *     kd-quant --bits 8 --scheme asym teacher.kd -o teacher-q8.kd */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h" /* kd_art_load, kd_art_add_f32 */
#include "kd_cli.h"      /* kd_cli_version, kd_cli_int */
#include "kd_model.h"    /* kd_model_from_art */
#include "kd_prov.h"     /* provenance */
#include "kd_quant.h"    /* kd_quant_table_to_art, kd_quant_serving_bytes */
#include "kd_stage.h"    /* the stage runner */

static const char *prog = "kd-quant";

static void usage(FILE *f)
{
    fprintf(f, "usage: %s --bits 8|4 [--scheme asym|sym] MODEL [-o OUT]\n"
               "Quantise MODEL's user and item embeddings row by row (a path or '-'): codes of\n"
               "--bits bits, one f32 scale per row and, with asym, one f32 offset (the row's\n"
               "minimum); biases stay f32.  4-bit codes go two per byte, low nibble first.\n"
               "Readers dequantise at load, so scoring stays float: bytes shrink, latency does\n"
               "not.  Prints the serving bytes (parameters, scales, offsets, biases) on stderr.\n"
               "Same input and flags give the same bytes.\n\n"
               "  --bits N         8 or 4 (required)\n"
               "  --scheme S       asym (min/max range) or sym (max|x|, zero exact) [asym]\n"
               "  -o, --output F   the quantised model ['-' = stdout]\n"
               "  --level N        zlib level [1];  -q/--quiet\n"
               "  --cache DIR      content-hashed stage cache: reuse an identical earlier run\n"
               "  --label TEXT     the stage's name in the one line printed with --cache [OUT's name]\n"
               "  -h, --help, --version\n"
               "Exit: 0 ok, 1 bad data (not a model, non-finite weights, already quantised,\n"
               "corrupt file) or I/O, 2 misuse.\n", prog);
}

struct opts {
    kd_quant_fmt f;
    const char  *model, *out, *cache, *label;
    int          level, quiet;
};

enum { O_BITS = 1000, O_SCHEME, O_LEVEL, O_CACHE, O_LABEL };

static void misuse(void)
{
    fprintf(stderr, "usage: %s --bits 8|4 [--scheme asym|sym] MODEL [-o OUT]\nTry '%s --help'.\n", prog, prog);
    exit(KD_EXIT_USAGE);
}

/* Exits 0 after --help/--version, 2 on misuse. */
static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        { "bits", 1, 0, O_BITS }, { "scheme", 1, 0, O_SCHEME }, { "output", 1, 0, 'o' },
        { "level", 1, 0, O_LEVEL }, { "cache", 1, 0, O_CACHE }, { "label", 1, 0, O_LABEL },
        { "quiet", 0, 0, 'q' }, { "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { 0, 0, 0, 0 } };
    memset(o, 0, sizeof *o);
    o->f.scheme = KD_QUANT_ASYM;
    o->out = "-";
    o->level = 1;
    kd_err e = { 0 };
    int c, bits = 0, s;
    while ((c = getopt_long(argc, argv, "ho:q", opts, NULL)) != -1) {
        switch (c) {
        case O_BITS:
            if (kd_cli_int("--bits", optarg, 1, 64, &bits, &e)) exit(kd_err_report(prog, &e));
            if (kd_quant_check((uint32_t)bits, o->f.scheme, &e)) exit(kd_err_report(prog, &e));
            break;
        case O_SCHEME:
            if ((s = kd_quant_scheme_parse(optarg)) < 0) {
                fprintf(stderr, "%s: --scheme: '%s' is not asym or sym\n", prog, optarg);
                exit(KD_EXIT_USAGE);
            }
            o->f.scheme = (uint32_t)s;
            break;
        case O_LEVEL:
            if (kd_cli_int("--level", optarg, 0, 9, &o->level, &e)) exit(kd_err_report(prog, &e));
            break;
        case O_CACHE: o->cache = optarg; break;
        case O_LABEL: o->label = optarg; break;
        case 'o': o->out = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': kd_cli_version(prog); exit(0);
        default: misuse();
        }
    }
    if (!bits) {
        fprintf(stderr, "%s: --bits is required (8 or 4)\n", prog);
        exit(KD_EXIT_USAGE);
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "%s: expected one MODEL (a path or '-')\n", prog);
        exit(KD_EXIT_USAGE);
    }
    o->f.bits = (uint32_t)bits;
    o->model = argv[optind];
}

/* The quantised model's provenance: what it is, what it came from, and the source's own
 * lines under "source." (so role, method and knob of what was quantised stay readable). */
static void write_prov(const struct opts *o, const kd_art *src, const kd_model *m, kd_buf *p)
{
    char role[64] = "unknown", ds[64];
    const char *scheme = kd_quant_scheme_name(o->f.scheme);
    kd_art_prov_get(src, "role", role, sizeof role);
    kd_prov_begin(p, prog);
    kd_prov_id(p, "input.model", src->content_id);
    /* the dataset the parameters were trained on: kd-distill checks it of a teacher */
    if (!kd_art_prov_get(src, "input.dataset", ds, sizeof ds)) kd_prov_str(p, "input.dataset", ds);
    kd_buf_printf(p, "role=%s+q%u%s\n", role, o->f.bits, scheme);
    kd_prov_u64(p, "quant.bits", o->f.bits);
    kd_prov_str(p, "quant.scheme", scheme);
    kd_prov_str(p, "quant.scale", "f32-per-row");
    kd_prov_str(p, "quant.biases", "f32");
    kd_prov_u64(p, "dim", m->dim);
    kd_prov_u64(p, "params", kd_model_params(m));
    kd_prov_u64(p, "serving_bytes", kd_quant_serving_bytes(m->n_users, m->n_items, m->dim, o->f.bits, o->f.scheme));
    kd_prov_u64(p, "serving_bytes.f32", kd_quant_serving_bytes(m->n_users, m->n_items, m->dim, 32, 0));
    const kd_section *s = kd_art_find(src, "provenance");
    if (!s || s->type != KD_TEXT) return;
    const char *t = s->data, *end = t + s->bytes;
    while (t < end) {
        const char *nl = memchr(t, '\n', (size_t)(end - t)), *eol = nl ? nl : end;
        if (eol > t) kd_buf_printf(p, "source.%.*s\n", (int)(eol - t), t);
        t = eol + 1;
    }
}

static int run(struct opts *o, kd_err *e)
{
    kd_stage st;
    kd_art *src = NULL, *a = NULL;
    kd_model m = { 0 };
    kd_buf prov = { 0 }, params = { 0 };
    int r = -1;
    kd_stage_init(&st, prog, kd_stage_label(o->label, o->out), o->cache);
    if (kd_stage_add_output(&st, o->out, NULL, e) || kd_art_load(o->model, KD_KIND_MODEL, &src, e)) goto done;
    /* re-quantising compounds two roundings and hides where the model came from */
    if (kd_art_find(src, "quant")) {
        char bits[16] = "?", scheme[16] = "?";
        kd_art_prov_get(src, "quant.bits", bits, sizeof bits);
        kd_art_prov_get(src, "quant.scheme", scheme, sizeof scheme);
        kd_fail(e, "%s: already quantised (%s-bit %s); quantise the float model it came from", src->src, bits, scheme);
        goto done;
    }
    if (kd_model_from_art(&m, src, e)) goto done;
    o->f.dim = m.dim;
    kd_prov_u64(&params, "bits", o->f.bits);
    kd_prov_str(&params, "scheme", kd_quant_scheme_name(o->f.scheme));
    if ((r = kd_stage_start(&st, &params, &src->content_id, 1, e)) != 0) goto done;
    r = -1;
    if (!(a = kd_art_new(KD_KIND_MODEL))) {
        kd_fail(e, "out of memory");
        goto done;
    }
    write_prov(o, src, &m, &prov);
    if (kd_quant_fmt_to_art(a, &o->f, e) || kd_quant_table_to_art(a, "user_emb", &o->f, m.P, m.n_users, m.stride, e) ||
        kd_quant_table_to_art(a, "item_emb", &o->f, m.Q, m.n_items, m.stride, e) ||
        kd_art_add_f32(a, "user_bias", m.n_users, 1, m.bu, e) || kd_art_add_f32(a, "item_bias", m.n_items, 1, m.bi, e) ||
        kd_art_add_buf(a, "provenance", &prov, e) || kd_stage_commit(&st, a, o->level, e))
        goto done;
    if (!o->quiet) {
        uint64_t qb = kd_quant_art_serving_bytes(a), fb = kd_quant_art_serving_bytes(src);
        fprintf(stderr, "%s: %s: %u-bit %s, serving bytes %" PRIu64 " (float %" PRIu64 ", %.2fx smaller)\n", prog,
                kd_out_name(o->out), o->f.bits, kd_quant_scheme_name(o->f.scheme), qb, fb, (double)fb / (double)qb);
    }
    r = 0;
done:
    kd_stage_end(&st);
    kd_art_free(a);
    kd_art_free(src);
    kd_model_free(&m);
    kd_buf_free(&prov);
    kd_buf_free(&params);
    return r < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    kd_err e = { 0 };
    parse_args(argc, argv, &o);
    return run(&o, &e) ? kd_err_report(prog, &e) : 0;
}
