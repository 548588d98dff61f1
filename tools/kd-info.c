/* kd-info: what an artifact holds: kind, content ID, sections, sizes, provenance.
 * Reads and verifies every file given (a bad one is reported, the others still shown).
 *     kd-info --json data.kd teacher.kd */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kd_artifact.h"  /* kd_art_load, kd_kind_name, kd_type_name, kd_id_hex */
#include "kd_cli.h"       /* kd_cli_version */
#include "kd_model.h"     /* kd_model_param_count */

static const char *prog = "kd-info";

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [--json] FILE...\n"
               "Print kind, content ID, sections (type, shape, raw and compressed bytes) and\n"
               "provenance of kdrec artifacts.  FILE '-' reads stdin.\n"
               "  --json      one JSON object per file, one per line\n"
               "  -h, --help  this help;  --version  print the version\n", prog);
}

static void json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') fputs("\\n", stdout);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void shape(const kd_section *s, char *buf, size_t n)
{
    if (s->type == KD_CSR)
        snprintf(buf, n, "%" PRIu64 "x%" PRIu64 " nnz=%" PRIu64, s->rows, s->cols, s->nnz);
    else if (s->type == KD_F32 || s->type == KD_F64)
        snprintf(buf, n, "%" PRIu64 "x%" PRIu64, s->rows, s->cols);
    else
        snprintf(buf, n, "%" PRIu64, s->rows);
}

static void print_text(const kd_art *a, const char *path, uint64_t fbytes)
{
    char id[17];
    kd_id_hex(a->content_id, id);
    printf("file:        %s\n", path);
    printf("kind:        %s\n", kd_kind_name(a->kind));
    printf("content_id:  %s\n", id);
    printf("format:      %u\n", KD_FORMAT_VERSION);
    printf("zlevel:      %u\n", a->zlevel);
    printf("bytes:       %" PRIu64 "\n", fbytes);
    if (a->kind == KD_KIND_MODEL)
        printf("params:      %" PRIu64 "\n", kd_model_param_count(a));
    printf("sections:    %u\n", a->n);
    printf("  %-20s %-5s %-24s %12s %12s %7s\n", "name", "type", "shape", "raw", "compressed", "ratio");
    for (uint32_t i = 0; i < a->n; i++) {
        const kd_section *s = &a->sec[i];
        char sh[64];
        shape(s, sh, sizeof sh);
        printf("  %-20s %-5s %-24s %12" PRIu64 " %12" PRIu64 " %6.2fx\n", s->name, kd_type_name(s->type),
               sh, s->bytes, s->comp_bytes, s->comp_bytes ? (double)s->bytes / (double)s->comp_bytes : 0.0);
    }
    const kd_section *p = kd_art_find(a, "provenance");
    if (p && p->type == KD_TEXT) {
        printf("provenance:\n");
        const char *t = p->data, *end = t + p->bytes;
        while (t < end) {
            const char *nl = memchr(t, '\n', (size_t)(end - t));
            const char *eol = nl ? nl : end;
            printf("  %.*s\n", (int)(eol - t), t);
            t = eol + 1;
        }
    }
}

static void print_json(const kd_art *a, const char *path, uint64_t fbytes)
{
    char id[17];
    kd_id_hex(a->content_id, id);
    printf("{\"file\":");
    json_str(path, strlen(path));
    printf(",\"kind\":\"%s\",\"content_id\":\"%s\",\"format\":%u,\"zlevel\":%u,\"bytes\":%" PRIu64,
           kd_kind_name(a->kind), id, KD_FORMAT_VERSION, a->zlevel, fbytes);
    if (a->kind == KD_KIND_MODEL)
        printf(",\"params\":%" PRIu64, kd_model_param_count(a));
    printf(",\"sections\":[");
    for (uint32_t i = 0; i < a->n; i++) {
        const kd_section *s = &a->sec[i];
        printf("%s{\"name\":", i ? "," : "");
        json_str(s->name, strlen(s->name));
        printf(",\"type\":\"%s\",\"rows\":%" PRIu64 ",\"cols\":%" PRIu64 ",\"nnz\":%" PRIu64
               ",\"raw\":%" PRIu64 ",\"compressed\":%" PRIu64 "}",
               kd_type_name(s->type), s->rows, s->cols, s->nnz, s->bytes, s->comp_bytes);
    }
    printf("],\"provenance\":{");
    const kd_section *p = kd_art_find(a, "provenance");
    int first = 1;
    if (p && p->type == KD_TEXT) {
        const char *t = p->data, *end = t + p->bytes;
        while (t < end) {
            const char *nl = memchr(t, '\n', (size_t)(end - t));
            const char *eol = nl ? nl : end;
            const char *eq = memchr(t, '=', (size_t)(eol - t));
            if (eq) {
                printf("%s", first ? "" : ",");
                json_str(t, (size_t)(eq - t));
                putchar(':');
                json_str(eq + 1, (size_t)(eol - eq - 1));
                first = 0;
            }
            t = eol + 1;
        }
    }
    printf("}}\n");
}

struct opts {
    int          json;
    char *const *files;
    int          nfiles;
};

/* Exits 0 after --help/--version, 2 on misuse. */
static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        { "json", no_argument, 0, 'j' }, { "help", no_argument, 0, 'h' },
        { "version", no_argument, 0, 'V' }, { 0, 0, 0, 0 } };
    int c;
    o->json = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': o->json = 1; break;
        case 'h': usage(stdout); exit(0);
        case 'V': kd_cli_version(prog); exit(0);
        default: usage(stderr); exit(KD_EXIT_USAGE);
        }
    }
    if (optind == argc) {
        fprintf(stderr, "%s: no file given (use '-' for stdin)\n", prog);
        usage(stderr);
        exit(KD_EXIT_USAGE);
    }
    o->files = argv + optind;
    o->nfiles = argc - optind;
}

/* Every file, a bad one reported and skipped: 0, or the exit code of the last failure. */
static int run(const struct opts *o)
{
    int ret = 0;
    for (int i = 0; i < o->nfiles; i++) {
        const char *path = o->files[i];
        kd_err e = { 0 };
        kd_buf b = { 0 };
        kd_art *a = NULL;
        if (kd_read_all(path, &b, &e) || kd_art_parse(b.p, b.len, kd_in_name(path), &a, &e)) {
            fflush(stdout);
            ret = kd_err_report(prog, &e);
            kd_buf_free(&b);
            continue;
        }
        if (o->json)
            print_json(a, kd_in_name(path), b.len);
        else {
            if (i > 0) putchar('\n');
            print_text(a, kd_in_name(path), b.len);
        }
        kd_art_free(a);
        kd_buf_free(&b);
    }
    if (fflush(stdout) || ferror(stdout)) {
        fprintf(stderr, "%s: <stdout>: write error\n", prog);
        return KD_EXIT_DATA;
    }
    return ret;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_args(argc, argv, &o);
    return run(&o);
}
