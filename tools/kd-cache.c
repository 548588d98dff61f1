/* kd-cache: look after a stage cache directory: sizes, listing, verification, clean-up.
 * Only entries (DIR/xx/<key>.kd) are touched: temporaries and NFS's .nfsXXXX files never.
 *     kd-cache --cache data/cache gc --max-bytes 2G --max-age 30 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kd_artifact.h" /* kd_art_load verifies an entry completely */
#include "kd_cache.h"    /* kd_cache_list, kd_cache_quarantine */
#include "kd_cli.h"      /* option parsing */

static const char *prog = "kd-cache";

static void usage(FILE *f)
{
    fprintf(f, "usage: %s [--cache DIR] stats|list|verify|gc [--max-bytes N] [--max-age DAYS]\n"
               "  stats   number of entries and bytes\n"
               "  list    one line per entry: key, kind, bytes, age in days\n"
               "  verify  read every entry completely (checksums, sizes); exit 1 if any is corrupt,\n"
               "          naming it; corrupt entries are moved to DIR/corrupt/\n"
               "  gc      delete entries older than --max-age days, then the oldest until the cache\n"
               "          holds at most --max-bytes (suffixes k, M, G)\n"
               "  --cache DIR   the cache [data/cache];  -h/--help, --version\n", prog);
}

static int by_mtime(const void *a, const void *b)
{
    const kd_cache_entry *x = a, *y = b;
    if (x->mtime != y->mtime) return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int parse_size(const char *s, uint64_t *out, kd_err *e)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (end == s) return kd_fail_usage(e, "--max-bytes: not a size: '%s'", s);
    if (*end == 'k' || *end == 'K') mul = 1ull << 10, end++;
    else if (*end == 'M') mul = 1ull << 20, end++;
    else if (*end == 'G') mul = 1ull << 30, end++;
    if (*end) return kd_fail_usage(e, "--max-bytes: not a size: '%s'", s);
    *out = v * mul;
    return 0;
}

struct opts {
    const char *dir, *cmd;
    uint64_t    max_bytes;
    double      max_age;   /* days; < 0: no limit */
};

/* Exits 0 after --help/--version, 2 on misuse. */
static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option opts[] = {
        { "cache", 1, 0, 'c' }, { "max-bytes", 1, 0, 'b' }, { "max-age", 1, 0, 'a' },
        { "help", 0, 0, 'h' }, { "version", 0, 0, 'V' }, { 0, 0, 0, 0 } };
    o->dir = "data/cache";
    o->max_bytes = UINT64_MAX;
    o->max_age = -1;
    kd_err e = { 0 };
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o->dir = optarg; break;
        case 'b': if (parse_size(optarg, &o->max_bytes, &e)) exit(kd_err_report(prog, &e)); break;
        case 'a': if (kd_cli_double("--max-age", optarg, 0, 1e6, &o->max_age, &e)) exit(kd_err_report(prog, &e)); break;
        case 'h': usage(stdout); exit(0);
        case 'V': kd_cli_version(prog); exit(0);
        default: usage(stderr); exit(KD_EXIT_USAGE);
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "%s: expected one command: stats, list, verify or gc\n", prog);
        exit(KD_EXIT_USAGE);
    }
    o->cmd = argv[optind];
    if (strcmp(o->cmd, "stats") && strcmp(o->cmd, "list") && strcmp(o->cmd, "verify") && strcmp(o->cmd, "gc")) {
        fprintf(stderr, "%s: unknown command '%s' (stats, list, verify, gc)\n", prog, o->cmd);
        exit(KD_EXIT_USAGE);
    }
}

static void cmd_list(kd_cache_entry *v, uint64_t n, time_t now)
{
    qsort(v, n, sizeof *v, by_mtime);
    for (uint64_t k = 0; k < n; k++) {
        uint32_t kind;
        uint64_t id;
        kd_err pe;
        const char *base = strrchr(v[k].path, '/') + 1;
        int ok = kd_art_peek(v[k].path, &kind, &id, &pe) == 0;
        printf("%.16s\t%s\t%" PRIu64 "\t%.1f\n", base, ok ? kd_kind_name(kind) : "corrupt", v[k].bytes,
               difftime(now, (time_t)v[k].mtime) / 86400);
    }
}

/* Reads every entry completely; a corrupt one is named and moved to DIR/corrupt/. */
static int cmd_verify(const struct opts *o, const kd_cache_entry *v, uint64_t n)
{
    uint64_t bad = 0;
    for (uint64_t k = 0; k < n; k++) {
        kd_art *a;
        kd_err ve = { 0 };
        if (kd_art_load(v[k].path, 0, &a, &ve)) {
            fprintf(stderr, "%s: %s\n", prog, ve.msg);
            bad++;
            kd_cache_quarantine(o->dir, v[k].path, -1);
            continue;
        }
        kd_art_free(a);
    }
    printf("verified\t%" PRIu64 "\ncorrupt\t%" PRIu64 "\n", n - bad, bad);
    return bad ? KD_EXIT_DATA : 0;
}

/* Deletes entries older than --max-age, then the oldest until at most --max-bytes. */
static void cmd_gc(const struct opts *o, kd_cache_entry *v, uint64_t n, uint64_t total, time_t now)
{
    qsort(v, n, sizeof *v, by_mtime);
    uint64_t removed = 0;
    for (uint64_t k = 0; k < n; k++) {
        int old = o->max_age >= 0 && difftime(now, (time_t)v[k].mtime) > o->max_age * 86400;
        if ((old || total > o->max_bytes) && unlink(v[k].path) == 0) {
            total -= v[k].bytes;
            removed++;
        }
    }
    printf("removed\t%" PRIu64 "\nbytes\t%" PRIu64 "\n", removed, total);
}

static int run(const struct opts *o)
{
    kd_cache_entry *v;
    uint64_t n, total = 0;
    kd_err e = { 0 };
    if (kd_cache_list(o->dir, &v, &n, &e)) return kd_err_report(prog, &e);
    for (uint64_t k = 0; k < n; k++) total += v[k].bytes;
    int ret = 0;
    time_t now = time(NULL);
    if (!strcmp(o->cmd, "stats"))
        printf("entries\t%" PRIu64 "\nbytes\t%" PRIu64 "\n", n, total);
    else if (!strcmp(o->cmd, "list"))
        cmd_list(v, n, now);
    else if (!strcmp(o->cmd, "verify"))
        ret = cmd_verify(o, v, n);
    else
        cmd_gc(o, v, n, total, now);
    free(v);
    return ret;
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_args(argc, argv, &o);
    return run(&o);
}
