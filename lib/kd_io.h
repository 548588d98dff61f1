/* kd_io: bytes in and out.  Little-endian fields, a growable buffer with a sticky error,
 * whole-input reads from a path or '-', and the one atomic output writer.
 *
 * Atomic output: kd_out_open("x.kd") creates a hidden temporary beside x.kd
 * (".x.kd.kdtmp.<pid>.XXXXXX"); kd_out_commit() flushes, closes and renames it over x.kd;
 * kd_out_abort() (and SIGINT/SIGTERM/SIGHUP) removes it.  So x.kd is always either the old
 * complete file or the new complete file.  A temporary left by a SIGKILLed process is
 * removed by the next kd_out_open of the same path once its pid is gone.
 */
#ifndef KD_IO_H
#define KD_IO_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kd_err.h"

/* ---- little-endian on disk, whatever the host ---- */
static inline void kd_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void kd_put_u64(uint8_t *p, uint64_t v)
{
    kd_put_u32(p, (uint32_t)v);
    kd_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t kd_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t kd_get_u64(const uint8_t *p)
{
    return (uint64_t)kd_get_u32(p) | (uint64_t)kd_get_u32(p + 4) << 32;
}

/* ---- growable byte buffer (owned memory in p[0..len)) ----
 *
 * The error is sticky, like ferror(): the first reserve/append/printf that fails (out of
 * memory, a size that overflows) sets `err`, and every later one is a no-op returning -1,
 * so a buffer is either everything written to it or marked bad.  Writers need not check
 * each call; whoever uses the buffer checks kd_buf_error() once: a stage key, a section,
 * an output (kd_write_buf, kd_art_add_buf and kd_stage_start do).  kd_buf_free clears it. */
typedef struct kd_buf {
    uint8_t *p;
    size_t   len, cap;
    int      err;    /* sticky: a write failed; p[0..len) is incomplete */
} kd_buf;

int  kd_buf_reserve(kd_buf *b, size_t extra);            /* 0, or -1 (and err set) */
int  kd_buf_append(kd_buf *b, const void *data, size_t n); /* 0 or -1 */
int  kd_buf_printf(kd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int kd_buf_error(const kd_buf *b) { return b->err; }
void kd_buf_free(kd_buf *b);

/* ---- strings in fresh allocations (the caller frees; NULL when out of memory) ---- */
char *kd_str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *kd_str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* ---- big allocations ----
 *
 * A model or an encoded artifact is tens of MB of fresh memory, and on a virtual machine
 * each 4 KiB page's first touch costs a fault of several microseconds: on amazon-book at
 * d = 64 a one-epoch kd-train took 28,000 of them (a third of its time in the kernel).
 * Transparent huge pages fault 2 MiB at a time.  Both calls are hints with no effect on
 * any value (the kernel's policy may ignore them). */
enum { KD_HUGE_MIN = 4u << 20 };   /* below this, 4 KiB pages are as good */
/* Advises huge pages for the whole 2 MiB-aligned pages inside [p, p + n). */
void  kd_mem_advise_huge(void *p, size_t n);
/* posix_memalign(align) that, for n >= KD_HUGE_MIN, aligns to 2 MiB and advises huge
 * pages.  NULL when out of memory; release with free(). */
void *kd_alloc_big(size_t align, size_t n);

/* The name to show in messages for a path: "<stdin>"/"<stdout>" for "-". */
const char *kd_in_name(const char *path);
const char *kd_out_name(const char *path);

/* Reads all of path ("-" = stdin) into b (appending).  Errors: missing file, a directory,
 * unreadable, I/O error.  Memory grows only with bytes actually read. */
int kd_read_all(const char *path, kd_buf *b, kd_err *e);

/* Opens path ("-" = stdin) for streaming reads; refuses directories.  Returns NULL and
 * fills e on error.  Close with kd_close_in(). */
FILE *kd_open_in(const char *path, kd_err *e);
void  kd_close_in(FILE *f);

/* ---- atomic output ---- */
typedef struct kd_out {
    FILE *f;
    char *path;   /* final path, or NULL for stdout */
    char *tmp;    /* temporary beside it */
    int   slot;   /* index in the signal-cleanup table, or -1 */
} kd_out;

/* mode bits: KD_OUT_BINARY refuses a terminal on stdout; KD_OUT_KEEP_SAME (kd_write_file
 * only) leaves a path that already holds exactly these bytes alone but for its time */
enum { KD_OUT_TEXT = 0, KD_OUT_BINARY = 1, KD_OUT_KEEP_SAME = 2 };

/* Opens "-" (stdout) or a temporary beside path.  With KD_OUT_BINARY, a terminal on
 * stdout is refused (usage error).  Errors: directory not writable, path is a directory. */
int  kd_out_open(kd_out *o, const char *path, int mode, kd_err *e);
int  kd_out_write(kd_out *o, const void *p, size_t n, kd_err *e);
/* Flushes and renames into place; on failure the temporary is removed. */
int  kd_out_commit(kd_out *o, kd_err *e);
/* Removes the temporary (no-op on stdout or after commit). */
void kd_out_abort(kd_out *o);

/* The one way to write a whole file: n bytes to path ("-" = stdout) atomically (open,
 * write, commit; nothing left behind on failure).  With KD_OUT_KEEP_SAME, a path that
 * already holds exactly these bytes only has its modification time refreshed, so Make
 * sees it up to date and nothing is rewritten.  kd_write_buf does the same with a buffer
 * and fails with "<path>: out of memory" when the buffer's sticky error is set. */
int kd_write_file(const char *path, const void *p, size_t n, int mode, kd_err *e);
int kd_write_buf(const char *path, const kd_buf *b, int mode, kd_err *e);

/* Puts a hard link to the existing file src at path, atomically: a link made beside path
 * under a temporary name, its modification time refreshed, then renamed over path.
 * 0, or -1 with errno when the link is refused (EXDEV another filesystem, EPERM
 * fs.protected_hardlinks or no hard links, EACCES, EMLINK) or the time cannot be set
 * (another user's file); nothing is left behind then and the caller copies instead. */
int kd_link_file(const char *src, const char *path);

/* A temporary the signal handler must remove (one the caller creates itself, such as a
 * cache entry being published): returns a slot for kd_tmp_untrack, or -1 when the table
 * is full.  path must stay valid until untracked. */
int  kd_tmp_track(const char *path);
void kd_tmp_untrack(int slot);

/* Installs the SIGINT/SIGTERM/SIGHUP cleanup of temporaries and ignores SIGXFSZ so that
 * a file-size limit shows up as a write error.  Called by kd_out_open; idempotent. */
void kd_io_install_signals(void);

#endif
