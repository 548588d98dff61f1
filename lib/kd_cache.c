/* kd_cache: stage keys, cache entries (read, verified, published), listing. */
#include "kd_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#if defined(__GLIBC__)
#include <gnu/libc-version.h>
#endif
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_include)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h> /* glibc >= 2.33: the CPU features glibc itself uses */
#define KD_GLIBC_X86_FEATURES 1
#endif
#endif

#include "kd_artifact.h"

/* glibc's own choice among its libm variants (sysdeps/x86_64/fpu/multiarch, ifunc-fma4.h
 * and ifunc-avx-fma4.h in 2.36): FMA and AVX2 usable -> the FMA variants, else FMA4, else
 * (sin, cos, tan, atan) AVX, else SSE2.  CPU_FEATURE_ACTIVE answers as glibc does, tunables
 * (GLIBC_TUNABLES=glibc.cpu.hwcaps=-FMA) included, so the class follows what libm runs. */
const char *kd_cache_math_class(void)
{
#if defined(KD_GLIBC_X86_FEATURES)
    if (CPU_FEATURE_ACTIVE(FMA) && CPU_FEATURE_ACTIVE(AVX2)) return "fma";
    if (CPU_FEATURE_ACTIVE(FMA4)) return "fma4";
    if (CPU_FEATURE_ACTIVE(AVX)) return "avx";
    return "sse2";
#elif defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2")) return "fma";
    if (__builtin_cpu_supports("fma4")) return "fma4";
    if (__builtin_cpu_supports("avx")) return "avx";
    return "sse2";
#else
    return "";
#endif
}

const char *kd_cache_platform(void)
{
    static char buf[96];
    if (!buf[0]) {
#if defined(__GLIBC__)
        const char *libc = gnu_get_libc_version();
#else
        const char *libc = "libc";
#endif
        snprintf(buf, sizeof buf, "%.60s/%s", libc, kd_cache_math_class());
    }
    return buf;
}

uint64_t kd_hash_bytes(const void *p, size_t n) { return XXH3_64bits(p, n); }

/* The running binary's hash: a rebuilt tool that is byte-identical keeps its keys. */
static int self_hash(uint64_t *h, kd_err *e)
{
    kd_buf b = { 0 };
    if (kd_read_all("/proc/self/exe", &b, e)) {
        kd_buf_free(&b);
        return -1;
    }
    *h = XXH3_64bits(b.p, b.len);
    kd_buf_free(&b);
    return 0;
}

int kd_input_id(const char *path, uint64_t *id, kd_err *e)
{
    uint32_t kind;
    return kd_art_peek(path, &kind, id, e);
}

int kd_cache_key(const char *tool, const void *params, size_t plen, const uint64_t *inputs, int ninputs,
                 uint64_t *key, kd_err *e)
{
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
    const char *plat = kd_cache_platform();
    XXH3_64bits_update(&st, plat, strlen(plat) + 1);
    XXH3_64bits_update(&st, tool, strlen(tool) + 1);
    XXH3_64bits_update(&st, params, plen);
    for (int k = 0; k < ninputs; k++) {
        kd_put_u64(b, inputs[k]);
        XXH3_64bits_update(&st, b, 8);
    }
    *key = XXH3_64bits_digest(&st);
    return 0;
}

int kd_cache_entry_path(const char *dir, uint64_t key, char *out, size_t size, kd_err *e)
{
    char hex[17];
    kd_id_hex(key, hex);
    if (snprintf(out, size, "%s/%.2s/%s.kd", dir, hex, hex) >= (int)size)
        return kd_fail(e, "%s: cache path too long", dir);
    return 0;
}

void kd_cache_entry_name(uint64_t key, char out[KD_CACHE_NAME_BYTES])
{
    char hex[17];
    kd_id_hex(key, hex);
    snprintf(out, KD_CACHE_NAME_BYTES, "%.2s/%s.kd", hex, hex);
}

int kd_cache_verify(const uint8_t *p, size_t n, const char *name, int *promised, uint64_t *promised_id, kd_err *e)
{
    kd_art *a = NULL;
    if (kd_art_parse(p, n, name, &a, e) == 0) {
        kd_art_free(a);
        return 0;
    }
    /* what did it promise?  Only trusted if the header's checksum (bytes 0..40, then the
     * section table: kd_artifact.h) holds, as kd_art_peek checks it on a file */
    if (n >= KD_HEADER_BYTES && kd_get_u32(p + 16) <= KD_MAX_SECTIONS) {
        size_t table = (size_t)kd_get_u32(p + 16) * KD_ENTRY_BYTES;
        if (n - KD_HEADER_BYTES >= table) {
            XXH3_state_t st;
            XXH3_64bits_reset(&st);
            XXH3_64bits_update(&st, p, 40);
            XXH3_64bits_update(&st, p + KD_HEADER_BYTES, table);
            if (XXH3_64bits_digest(&st) == kd_get_u64(p + 40)) {
                *promised = 1;
                *promised_id = kd_get_u64(p + 24);
            }
        }
    }
    return -1;
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

void kd_cache_quarantine(const char *dir, const char *entry, long tag)
{
    char q[4096], target[4200];
    snprintf(q, sizeof q, "%s/corrupt", dir);
    mkdir_p(q);
    const char *base = strrchr(entry, '/');
    if (tag >= 0)
        snprintf(target, sizeof target, "%s%s.%ld", q, base ? base : "/entry", tag);
    else
        snprintf(target, sizeof target, "%s%s", q, base ? base : "/entry");
    if (rename(entry, target))
        unlink(entry);
}

int kd_cache_get(const char *dir, const char *entry, const char *prog, kd_buf *out, int *promised,
                 uint64_t *promised_id, kd_err *e)
{
    kd_buf b = { 0 };
    kd_err re = { 0 };
    if (access(entry, F_OK))
        return 0;
    if (kd_read_all(entry, &b, &re)) {
        kd_buf_free(&b);
        return 0; /* vanished meanwhile (gc, ESTALE on another node): a miss */
    }
    if (kd_cache_verify(b.p, b.len, entry, promised, promised_id, &re)) {
        kd_warn(prog, "corrupt cache entry moved aside and recomputed: %s", re.msg);
        kd_cache_quarantine(dir, entry, (long)getpid());
        kd_buf_free(&b);
        return 0;
    }
    int r = kd_buf_append(out, b.p, b.len);
    kd_buf_free(&b);
    return r ? kd_fail(e, "out of memory") : 1;
}

/* A temporary name in the entry's own directory, unique without O_EXCL: host name, pid,
 * and a per-process counter mixed with the clock (a pid reused on another host of a
 * shared cache still gets another name). */
static void tmp_name(char *tmp, size_t size, const char *entry, unsigned attempt)
{
    static unsigned counter;
    char host[64] = "host";
    if (gethostname(host, sizeof host - 1) == 0)
        host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (*c == '/' || *c == '.') *c = '_';
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mix[3] = { (uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)counter++ << 8 | attempt };
    snprintf(tmp, size, "%s.tmp.%s.%ld.%08x", entry, host, (long)getpid(),
             (unsigned)XXH3_64bits(mix, sizeof mix));
}

int kd_cache_put(const char *entry, const char *prog, const uint8_t *bytes, size_t n)
{
    char sub[4096], tmp[4200];
    snprintf(sub, sizeof sub, "%s", entry);
    char *slash = strrchr(sub, '/');
    if (slash) *slash = 0;
    const char *why = NULL;
    int err = 0, fd = -1, slot = -1;
    if (mkdir_p(sub)) {
        why = "cannot create the cache directory";
        err = errno;
    } else {
        /* O_EXCL only as a second guard: the name is what makes it ours.  The name is
         * registered for the SIGINT/SIGTERM/SIGHUP cleanup before the file exists, so a
         * signal at any point of the publish (scancel sends SIGTERM) leaves no temporary;
         * unlinking a name not yet created is harmless.  tmp lives until untracked. */
        for (unsigned attempt = 0; attempt < 8; attempt++) {
            tmp_name(tmp, sizeof tmp, entry, attempt);   /* written while untracked */
            slot = kd_tmp_track(tmp);
            if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444)) >= 0 || errno != EEXIST)
                break;
            kd_tmp_untrack(slot);                        /* EEXIST: not ours to remove */
            slot = -1;
        }
        if (fd < 0) {
            why = "cannot write to the cache";
            err = errno;
            kd_tmp_untrack(slot);
        }
    }
    for (size_t off = 0; !why && off < n;) {
        ssize_t w = write(fd, bytes + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { why = "cache write failed"; err = w < 0 ? errno : ENOSPC; break; }
        off += (size_t)w;
    }
    if (fd >= 0) {
        (void)fchmod(fd, 0444);
        /* closed before the link: on NFS close() is what sends the last bytes */
        if (close(fd) && !why) { why = "cache write failed"; err = errno; }
        /* link, not rename: an entry another run published first is never replaced */
        if (!why && link(tmp, entry) && errno != EEXIST) {
            err = errno;
            struct stat st;
            if (stat(tmp, &st) || st.st_nlink != 2) why = "cannot publish";
        }
        unlink(tmp);
        kd_tmp_untrack(slot);
    }
    if (why) {
        kd_warn(prog, "%s: %s: %s; the result is written, only not cached", entry, why, strerror(err));
        return -1;
    }
    return 0;
}

/* Only <16 hex digits>.kd is an entry: never a temporary (<entry>.tmp.*), never a
 * dot-file such as NFS's .nfsXXXX silly rename of a file deleted while a reader still has
 * it open (its client removes it on close; deleting it ourselves would break that reader). */
static int is_entry_name(const char *name)
{
    for (int k = 0; k < 16; k++)
        if (!((name[k] >= '0' && name[k] <= '9') || (name[k] >= 'a' && name[k] <= 'f')))
            return 0;
    return !strcmp(name + 16, ".kd");
}

static int walk(const char *dir, int depth, kd_cache_entry **v, uint64_t *n, uint64_t *cap)
{
    DIR *d = opendir(dir);
    if (!d) return depth == 0 ? -1 : 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "corrupt")) continue; /* .nfsXXXX among them */
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (stat(p, &st)) continue;
        if (S_ISDIR(st.st_mode) && depth == 0) {
            walk(p, 1, v, n, cap);
        } else if (S_ISREG(st.st_mode) && depth == 1) {
            if (!is_entry_name(de->d_name)) continue;
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
