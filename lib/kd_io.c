/* kd_io: byte buffers, whole-input reads and atomic output files. */
#include "kd_io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- memory */

#define KD_HUGE_PAGE ((size_t)2 << 20)

void kd_mem_advise_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    uintptr_t lo = ((uintptr_t)p + KD_HUGE_PAGE - 1) & ~(uintptr_t)(KD_HUGE_PAGE - 1);
    uintptr_t hi = ((uintptr_t)p + n) & ~(uintptr_t)(KD_HUGE_PAGE - 1);
    if (n >= KD_HUGE_MIN && hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p; (void)n;
#endif
}

void *kd_alloc_big(size_t align, size_t n)
{
    void *p;
    if (n >= KD_HUGE_MIN && align < KD_HUGE_PAGE)
        align = KD_HUGE_PAGE;
    if (posix_memalign(&p, align, n ? n : 1))
        return NULL;
    kd_mem_advise_huge(p, n);
    return p;
}

/* ---------------------------------------------------------------- buffers */

/* Grows b to hold extra more bytes; 0 or -1, the buffer unchanged on failure. */
static int grow(kd_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    size_t need;
    if (__builtin_add_overflow(b->len, extra, &need))
        return -1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    kd_mem_advise_huge(p, cap);  /* an encoded model, a file read whole */
    return 0;
}

int kd_buf_reserve(kd_buf *b, size_t extra)
{
    if (b->err || grow(b, extra)) {
        b->err = 1;
        return -1;
    }
    return 0;
}

int kd_buf_append(kd_buf *b, const void *data, size_t n)
{
    if (kd_buf_reserve(b, n))
        return -1;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

int kd_buf_printf(kd_buf *b, const char *fmt, ...)
{
    if (b->err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = 1;
        return -1;
    }
    if (kd_buf_reserve(b, (size_t)n + 1))
        return -1;
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *kd_str_vprintf(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *p = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (p) vsnprintf(p, (size_t)n + 1, fmt, again);
    va_end(again);
    return p;
}

char *kd_str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = kd_str_vprintf(fmt, ap);
    va_end(ap);
    return p;
}

void kd_buf_free(kd_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}

/* ---------------------------------------------------------------- input */

const char *kd_in_name(const char *path) { return strcmp(path, "-") ? path : "<stdin>"; }
const char *kd_out_name(const char *path) { return strcmp(path, "-") ? path : "<stdout>"; }

static int open_in_fd(const char *path, kd_err *e)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd < 0)
        return kd_fail(e, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (fd != STDIN_FILENO)
            close(fd);
        return kd_fail(e, "%s: is a directory", kd_in_name(path));
    }
    return fd;
}

int kd_read_all(const char *path, kd_buf *b, kd_err *e)
{
    if (b->err)
        return kd_fail(e, "%s: out of memory", kd_in_name(path));
    int fd = open_in_fd(path, e);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uint64_t)st.st_size < SIZE_MAX - 1)
        (void)grow(b, (size_t)st.st_size + 1); /* a hint, not sticky; growth below is checked */
    for (;;) {
        if (kd_buf_reserve(b, 1 << 16)) {
            if (fd != STDIN_FILENO) close(fd);
            return kd_fail(e, "%s: out of memory", kd_in_name(path));
        }
        ssize_t n = read(fd, b->p + b->len, b->cap - b->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            if (fd != STDIN_FILENO) close(fd);
            return kd_fail(e, "%s: %s", kd_in_name(path), strerror(err));
        }
        if (n == 0)
            break;
        b->len += (size_t)n;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    return 0;
}

FILE *kd_open_in(const char *path, kd_err *e)
{
    int fd = open_in_fd(path, e);
    if (fd < 0)
        return NULL;
    if (fd == STDIN_FILENO)
        return stdin;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        kd_fail(e, "%s: %s", path, strerror(errno));
    }
    return f;
}

void kd_close_in(FILE *f)
{
    if (f && f != stdin)
        fclose(f);
}

/* ---------------------------------------------------------------- output */

/* The one piece of global state outside option parsing: the temporaries a signal
 * handler must remove.  Slots are claimed and released by the main thread only. */
#define KD_MAX_TMP 8
static char *volatile tmp_slots[KD_MAX_TMP];

static void on_signal(int sig)
{
    for (int i = 0; i < KD_MAX_TMP; i++)
        if (tmp_slots[i])
            unlink(tmp_slots[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void kd_io_install_signals(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = { SIGINT, SIGTERM, SIGHUP };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction old;
        /* keep an inherited "ignore" (nohup, background jobs) */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGXFSZ, SIG_IGN);
}

static int claim_slot(char *tmp)
{
    for (int i = 0; i < KD_MAX_TMP; i++)
        if (!tmp_slots[i]) {
            tmp_slots[i] = tmp;
            return i;
        }
    return -1;
}

static void release_slot(kd_out *o)
{
    if (o->slot >= 0)
        tmp_slots[o->slot] = NULL;
    o->slot = -1;
}

int kd_tmp_track(const char *path)
{
    kd_io_install_signals();
    return claim_slot((char *)path);
}

void kd_tmp_untrack(int slot)
{
    if (slot >= 0 && slot < KD_MAX_TMP)
        tmp_slots[slot] = NULL;
}

/* Removes temporaries of `base` in `dir` left by processes that no longer exist. */
static void remove_stale_tmps(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t blen = strlen(base);
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (n[0] != '.' || strncmp(n + 1, base, blen) || strncmp(n + 1 + blen, ".kdtmp.", 7))
            continue;
        char *end;
        long pid = strtol(n + 1 + blen + 7, &end, 10);
        if (pid <= 0 || *end != '.' || pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        size_t len = strlen(dir) + strlen(n) + 2;
        char *p = malloc(len);
        if (p) {
            snprintf(p, len, "%s/%s", dir, n);
            unlink(p);
            free(p);
        }
    }
    closedir(d);
}

/* The directory (into dir, 4096 bytes) and the file name of a path. */
static int split_path(const char *path, char *dir, const char **base, kd_err *e)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    *base = slash ? slash + 1 : path;
    if (!**base)
        return kd_fail(e, "%s: is a directory", path);
    if (dlen >= 4096)
        return kd_fail(e, "%s: path too long", path);
    if (slash) {
        memcpy(dir, path, dlen ? dlen : 1);
        dir[dlen ? dlen : 1] = 0;
    } else {
        strcpy(dir, ".");
    }
    return 0;
}

int kd_out_open(kd_out *o, const char *path, int mode, kd_err *e)
{
    memset(o, 0, sizeof *o);
    o->slot = -1;
    kd_io_install_signals();
    if (!strcmp(path, "-")) {
        if ((mode & KD_OUT_BINARY) && isatty(STDOUT_FILENO))
            return kd_fail_usage(e, "<stdout>: refusing to write binary data to a terminal "
                                    "(use -o FILE or a pipe)");
        o->f = stdout;
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return kd_fail(e, "%s: is a directory", path);
    char dir[4096];
    const char *base;
    if (split_path(path, dir, &base, e))
        return -1;
    remove_stale_tmps(dir, base);
    size_t tlen = strlen(dir) + strlen(base) + 48;
    o->path = strdup(path);
    o->tmp = malloc(tlen);
    if (!o->path || !o->tmp) {
        free(o->path); free(o->tmp);
        return kd_fail(e, "%s: out of memory", path);
    }
    snprintf(o->tmp, tlen, "%s/.%s.kdtmp.%ld.XXXXXX", dir, base, (long)getpid());
    int fd = mkstemp(o->tmp);
    if (fd < 0) {
        int err = errno;
        free(o->path); free(o->tmp);
        o->path = o->tmp = NULL;
        return kd_fail(e, "%s: cannot create: %s", path, strerror(err));
    }
    o->slot = claim_slot(o->tmp);
    mode_t mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask); /* mkstemp makes 0600; give the file normal permissions */
    o->f = fdopen(fd, "wb");
    if (!o->f) {
        close(fd);
        kd_out_abort(o);
        return kd_fail(e, "%s: %s", path, strerror(errno));
    }
    return 0;
}

int kd_out_write(kd_out *o, const void *p, size_t n, kd_err *e)
{
    if (n && fwrite(p, 1, n, o->f) != n)
        return kd_fail(e, "%s: write failed: %s", o->path ? o->path : "<stdout>", strerror(errno));
    return 0;
}

int kd_out_commit(kd_out *o, kd_err *e)
{
    const char *name = o->path ? o->path : "<stdout>";
    if (!o->path) {
        if (fflush(o->f) || ferror(o->f))
            return kd_fail(e, "%s: write failed: %s", name, strerror(errno));
        return 0;
    }
    int bad = fflush(o->f) != 0 || ferror(o->f);
    int err = errno;
    if (fclose(o->f) && !bad) {
        bad = 1;
        err = errno;
    }
    o->f = NULL;
    if (bad) {
        kd_out_abort(o);
        return kd_fail(e, "%s: write failed: %s", name, strerror(err));
    }
    if (rename(o->tmp, o->path)) {
        err = errno;
        kd_out_abort(o);
        return kd_fail(e, "%s: cannot rename into place: %s", name, strerror(err));
    }
    release_slot(o);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    return 0;
}

void kd_out_abort(kd_out *o)
{
    if (o->f && o->f != stdout)
        fclose(o->f);
    o->f = NULL;
    if (o->tmp) {
        unlink(o->tmp);
        release_slot(o);
        free(o->tmp);
        o->tmp = NULL;
    }
    free(o->path);
    o->path = NULL;
}

/* ---------------------------------------------------------------- whole files */

int kd_write_file(const char *path, const void *p, size_t n, int mode, kd_err *e)
{
    if ((mode & KD_OUT_KEEP_SAME) && strcmp(path, "-")) {
        kd_buf old = { 0 };
        kd_err ignore;
        int same = kd_read_all(path, &old, &ignore) == 0 && old.len == n && (!n || !memcmp(old.p, p, n));
        kd_buf_free(&old);
        if (same && utimensat(AT_FDCWD, path, NULL, 0) == 0)
            return 0;
    }
    kd_out o;
    if (kd_out_open(&o, path, mode & KD_OUT_BINARY, e))
        return -1;
    if (kd_out_write(&o, p, n, e) || kd_out_commit(&o, e)) {
        kd_out_abort(&o);
        return -1;
    }
    return 0;
}

int kd_write_buf(const char *path, const kd_buf *b, int mode, kd_err *e)
{
    if (b->err)
        return kd_fail(e, "%s: out of memory", kd_out_name(path));
    return kd_write_file(path, b->p, b->len, mode, e);
}

int kd_link_file(const char *src, const char *path)
{
    char dir[4096];
    const char *base;
    kd_err ignore;
    if (split_path(path, dir, &base, &ignore)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    size_t tlen = strlen(dir) + strlen(base) + 48;
    char *tmp = malloc(tlen);
    if (!tmp) {
        errno = ENOMEM;
        return -1;
    }
    /* the same hidden name as kd_out's temporaries, so stale ones are found and removed;
     * link() creates it or fails with EEXIST, so no O_EXCL is needed */
    static unsigned counter;
    int r = -1;
    for (int attempt = 0; attempt < 16; attempt++) {
        snprintf(tmp, tlen, "%s/.%s.kdtmp.%ld.l%u", dir, base, (long)getpid(), counter++);
        if ((r = link(src, tmp)) == 0 || errno != EEXIST)
            break;
    }
    if (r) {
        int err = errno;
        free(tmp);
        errno = err;
        return -1;
    }
    int slot = kd_tmp_track(tmp);
    /* the shared inode's time: Make must see the output newer than its inputs */
    if (utimensat(AT_FDCWD, tmp, NULL, 0) || rename(tmp, path)) {
        int err = errno;
        unlink(tmp);
        kd_tmp_untrack(slot);
        free(tmp);
        errno = err;
        return -1;
    }
    kd_tmp_untrack(slot);
    free(tmp);
    return 0;
}
