/* kd_cache: stage keys, cache lookup, publication and verification. */
#include "kd_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "kd_artifact.h"
#include "kd_par.h"

const char *kd_stage_label(const char *label, const char *out)
{
    if (label) return label;
    const char *s = strrchr(out, '/');
    return !strcmp(out, "-") ? "<stdout>" : s ? s + 1 : out;
}

uint64_t kd_hash_bytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

/* The running binary's hash: a rebuilt tool that is byte-identical keeps its keys. */
static int self_hash(uint64_t *h, kd_err *e)
{
    kd_buf b = { 0 };
    if (kd_read_all("/proc/self/exe", &b, e))
        return -1;
    *h = XXH3_64bits(b.p, b.len);
    kd_buf_free(&b);
    return 0;
}

int kd_input_id(const char *path, uint64_t *id, kd_err *e)
{
    uint32_t kind;
    return kd_art_peek(path, &kind, id, e);
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return -1;
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0777) && errno != EEXIST ? -1 : 0;
}

int kd_stage_begin(kd_stage *s, const char *tool, const char *label, const char *dir, const char *params,
                   size_t plen, const uint64_t *inputs, int ninputs, kd_err *e)
{
    memset(s, 0, sizeof *s);
    s->tool = tool;
    s->label = label;
    s->dir = dir;
    s->t0 = kd_now();
    if (!dir)
        return 0;
    uint64_t self;
    if (self_hash(&self, e))
        return -1;
    XXH3_state_t st;
    uint8_t b[16];
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, "kdrec-stage-v1", 14);
    kd_put_u64(b, self);
    kd_put_u32(b + 8, KD_FORMAT_VERSION);
    kd_put_u32(b + 12, (uint32_t)ninputs);
    XXH3_64bits_update(&st, b, 16);
    XXH3_64bits_update(&st, tool, strlen(tool) + 1);
    XXH3_64bits_update(&st, params, plen);
    for (int k = 0; k < ninputs; k++) {
        kd_put_u64(b, inputs[k]);
        XXH3_64bits_update(&st, b, 8);
    }
    s->key = XXH3_64bits_digest(&st);
    char hex[17];
    kd_id_hex(s->key, hex);
    if (snprintf(s->entry, sizeof s->entry, "%s/%.2s/%s.kd", dir, hex, hex) >= (int)sizeof s->entry)
        return kd_fail(e, "%s: cache path too long", dir);
    return 0;
}

/* Moves a bad entry aside (DIR/corrupt/<name>.<pid>) so it is never used again. */
static void quarantine(const kd_stage *s)
{
    char q[4096], target[4200];
    snprintf(q, sizeof q, "%s/corrupt", s->dir);
    mkdir_p(q);
    const char *base = strrchr(s->entry, '/');
    snprintf(target, sizeof target, "%s%s.%ld", q, base ? base : "/entry", (long)getpid());
    if (rename(s->entry, target))
        unlink(s->entry);
}

int kd_stage_lookup(kd_stage *s, kd_buf *out, kd_err *e)
{
    if (!s->dir)
        return 0;
    kd_buf b = { 0 };
    kd_err re = { 0 };
    if (access(s->entry, F_OK))
        return 0;
    if (kd_read_all(s->entry, &b, &re)) {
        kd_buf_free(&b);
        return 0; /* vanished meanwhile (gc): a miss */
    }
    kd_art *a = NULL;
    if (kd_art_parse(b.p, b.len, s->entry, &a, &re)) {
        /* what did it promise?  Only trusted if its header checksum holds */
        uint32_t kind;
        uint64_t id;
        kd_err pe;
        if (kd_art_peek(s->entry, &kind, &id, &pe) == 0) {
            s->promised = 1;
            s->promised_id = id;
        }
        fprintf(stderr, "%s: warning: corrupt cache entry moved aside and recomputed: %s\n", s->tool, re.msg);
        quarantine(s);
        kd_buf_free(&b);
        return 0;
    }
    kd_art_free(a);
    if (kd_buf_append(out, b.p, b.len)) {
        kd_buf_free(&b);
        return kd_fail(e, "out of memory");
    }
    kd_buf_free(&b);
    return 1;
}

int kd_stage_publish(kd_stage *s, const uint8_t *bytes, size_t n, uint64_t content_id, kd_err *e)
{
    if (!s->dir)
        return 0;
    if (s->promised && s->promised_id != content_id) {
        char a[17], b[17];
        kd_id_hex(s->promised_id, a);
        kd_id_hex(content_id, b);
        return kd_fail(e, "non-determinism: stage %s recomputed content %s, but its cache entry promised %s",
                       s->label, b, a);
    }
    /* from here on a failure only costs the cache its entry: the output is complete, so
     * it is a warning, and nothing partial is left in the cache */
    char sub[4096], tmp[4200];
    snprintf(sub, sizeof sub, "%s", s->entry);
    *strrchr(sub, '/') = 0;
    const char *why = NULL;
    int err = 0, fd = -1;
    if (mkdir_p(sub)) {
        why = "cannot create the cache directory";
        err = errno;
    } else {
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld.XXXXXX", s->entry, (long)getpid());
        if ((fd = mkstemp(tmp)) < 0) {
            why = "cannot write to the cache";
            err = errno;
        }
    }
    for (size_t off = 0; !why && off < n;) {
        ssize_t w = write(fd, bytes + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { why = "cache write failed"; err = w < 0 ? errno : ENOSPC; break; }
        off += (size_t)w;
    }
    if (fd >= 0) {
        fchmod(fd, 0444);
        if (close(fd) && !why) { why = "cache write failed"; err = errno; }
        /* link, not rename: an entry another run published first is never replaced */
        if (!why && link(tmp, s->entry) && errno != EEXIST) { why = "cannot publish"; err = errno; }
        unlink(tmp);
    }
    if (why)
        fprintf(stderr, "%s: warning: %s: %s: %s; the result is written, only not cached\n", s->tool, s->entry, why,
                strerror(err));
    return 0;
}

void kd_stage_report(const kd_stage *s, int hit)
{
    if (!s->dir)
        return;
    char hex[17], line[512];
    kd_id_hex(s->key, hex);
    if (hit)
        snprintf(line, sizeof line, "%s %s: cached (key %.8s)\n", s->tool, s->label, hex);
    else
        snprintf(line, sizeof line, "%s %s: ran in %.2f s (key %.8s)\n", s->tool, s->label, kd_now() - s->t0, hex);
    fputs(line, stderr);
    /* a pipeline may collect the lines: one O_APPEND write per line never interleaves */
    const char *log = getenv("KD_STAGE_LOG");
    if (log && *log) {
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        if (fd >= 0) {
            ssize_t w = write(fd, line, strlen(line));
            (void)w;
            close(fd);
        }
    }
}

int kd_stage_restore(const char *path, const uint8_t *bytes, size_t n, kd_err *e)
{
    if (strcmp(path, "-") && n >= KD_HEADER_BYTES) {
        uint32_t kind;
        uint64_t id;
        kd_err pe;
        if (kd_art_peek(path, &kind, &id, &pe) == 0 && id == kd_get_u64(bytes + 24)) {
            /* the same content is already there: only say it is fresh */
            if (utimensat(AT_FDCWD, path, NULL, 0) == 0)
                return 0;
        }
    }
    kd_out o;
    if (kd_out_open(&o, path, KD_OUT_BINARY, e))
        return -1;
    if (kd_out_write(&o, bytes, n, e) || kd_out_commit(&o, e)) {
        kd_out_abort(&o);
        return -1;
    }
    return 0;
}

static int walk(const char *dir, int depth, kd_cache_entry **v, uint64_t *n, uint64_t *cap)
{
    DIR *d = opendir(dir);
    if (!d) return depth == 0 ? -1 : 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "corrupt")) continue;
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (stat(p, &st)) continue;
        if (S_ISDIR(st.st_mode) && depth == 0) {
            walk(p, 1, v, n, cap);
        } else if (S_ISREG(st.st_mode) && depth == 1) {
            size_t len = strlen(de->d_name);
            if (len < 4 || strcmp(de->d_name + len - 3, ".kd")) continue;
            if (*n == *cap) {
                *cap = *cap ? *cap * 2 : 64;
                kd_cache_entry *nv = realloc(*v, *cap * sizeof **v);
                if (!nv) { closedir(d); return -1; }
                *v = nv;
            }
            snprintf((*v)[*n].path, sizeof (*v)[*n].path, "%s", p);
            (*v)[*n].bytes = (uint64_t)st.st_size;
            (*v)[*n].mtime = (int64_t)st.st_mtime;
            (*n)++;
        }
    }
    closedir(d);
    return 0;
}

int kd_cache_list(const char *dir, kd_cache_entry **out, uint64_t *n, kd_err *e)
{
    uint64_t cap = 0;
    *out = NULL;
    *n = 0;
    if (walk(dir, 0, out, n, &cap))
        return kd_fail(e, "%s: cannot read the cache: %s", dir, strerror(errno));
    return 0;
}
