/* kd_cache: content-hashed keys and the shared directory of artifacts named by them.
 *
 * A key is XXH3-64 of the tool's own binary, the artifact format version, the tool name,
 * its canonical parameter text (every parameter after defaults, never threads, paths or
 * times) and the content IDs of its inputs.  The cache is a directory of artifacts named
 * by key (DIR/ab/abcdef....kd), read-only once published; it can be shared between
 * checkouts, machines and concurrent runs, also over NFS:
 *
 *   publishing   the bytes go to a temporary in the entry's own directory whose name is
 *                unique per host, process and attempt (no reliance on O_EXCL, which old
 *                NFS does not honour), written and closed (NFS flushes on close), then
 *                link()ed to the entry name: a published entry is never replaced, EEXIST
 *                means another run published the same content first and counts as
 *                success, and a link whose reply was lost (an error, yet the temporary's
 *                link count is 2) counts as done, as open(2) advises for NFS lock files.
 *   reading      every byte is verified (kd_art_parse); an entry that vanished meanwhile
 *                (gc on another node, ESTALE) is a miss; one that fails verification is
 *                moved to DIR/corrupt/ with a warning.
 *   maintenance  only DIR/xx/<16 hex>.kd files are entries; names starting with '.'
 *                (NFS's .nfsXXXX "silly renames" of files deleted while open, which the
 *                client removes itself) and temporaries are never listed, so never
 *                removed by kd-cache gc.
 *
 * A cache shared by machines with different CPUs never mixes results.  What decides
 * the bits of an artifact besides the key's inputs, measured on main (issue 15):
 *   our SIMD clones  training's row kernels (kd_vec.h, KD_CLONES: target_clones avx512f /
 *                    avx2 / default) are IEEE mul then add per lane (-std=c11, so no
 *                    contraction: objdump finds no vfmadd in kd_sgd, kd_bpr, kd_distill,
 *                    kd_synth) with a fixed horizontal sum; ranking (kd_rank.h) is one
 *                    FMA chain on every path, fmaf() on the generic one.  Builds with
 *                    only the SSE2, only the AVX2 and the cloned (AVX-512 chosen) code gave
 *                    the same content IDs for kd-gen, kd-train (replicas and blocks),
 *                    kd-distill ce/rd/rrd/dcd/margin-mse and kd-eval; KD_SIMD's three
 *                    ranking paths do too (tests/kd-cache.bats).  So the clone is NOT in
 *                    the key: AVX-512 and AVX2 machines share entries.
 *   libm             glibc picks its own variant of exp, log, pow, sin/cos, ... by CPU
 *                    (an ifunc: FMA+AVX2, else FMA4, else AVX for some, else SSE2), and
 *                    those differ in the last bit: 677 of 1e6 exp() and 114 of 1e6 log()
 *                    results changed under GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA, and
 *                    kd-distill --method rd's train.loss section (a double sum of those)
 *                    took another content ID.  So the key holds the libm class glibc
 *                    itself reports (kd_cache_math_class: "fma", "fma4", "avx" or "sse2",
 *                    tunables honoured) and the C library's version.  A machine without
 *                    FMA (before Haswell / Piledriver) computes its own entries.
 *   other CPUs       another architecture runs another binary, whose hash is in the key.
 *
 * The stage sequence over these (key, look up, restore or compute, publish, report) is
 * kd_stage's; its remote tier (KD_CACHE_REMOTE) fetches entries that are verified here
 * with kd_cache_verify, exactly as a local one.
 */
#ifndef KD_CACHE_H
#define KD_CACHE_H

#include <stdint.h>

#include "kd_io.h"

enum { KD_CACHE_NAME_BYTES = 24 };

/* Hash of a whole input that is not an artifact (a text file): XXH3-64 of its bytes. */
uint64_t kd_hash_bytes(const void *p, size_t n);

/* The content ID of an artifact file from its header (checked), for keys. */
int kd_input_id(const char *path, uint64_t *id, kd_err *e);

/* The key of a stage: the running binary (/proc/self/exe: a rebuilt tool that is
 * byte-identical keeps its keys), the C library's version and libm class (above), the
 * tool, params[0..plen) and the input IDs. */
int kd_cache_key(const char *tool, const void *params, size_t plen, const uint64_t *inputs, int ninputs,
                 uint64_t *key, kd_err *e);

/* The libm variant class glibc selected on this machine ("fma", "fma4", "avx", "sse2";
 * "" off x86-64), and the string the key holds: "<libc version>/<class>". */
const char *kd_cache_math_class(void);
const char *kd_cache_platform(void);

/* DIR/ab/<key>.kd into out (size bytes); fails when too long. */
int kd_cache_entry_path(const char *dir, uint64_t key, char *out, size_t size, kd_err *e);
/* The entry's name relative to its cache, "ab/<key>.kd" (its name on a remote too). */
void kd_cache_entry_name(uint64_t key, char out[KD_CACHE_NAME_BYTES]);

/* Verifies the bytes of an entry as an entry is verified on read (kd_art_parse: magic,
 * version, header checksum, every size, each section's checksum, the content ID); name
 * is used in the message.  0 if valid; -1 with e if not, and then, when the header's own
 * checksum still holds, the content ID it promised in *promised_id with *promised set. */
int kd_cache_verify(const uint8_t *p, size_t n, const char *name, int *promised, uint64_t *promised_id, kd_err *e);

/* Reads and verifies an entry: 1 on a hit (its bytes appended to out), 0 on a miss, -1 on
 * error (out of memory).  A corrupt entry is a miss: it is moved aside with a warning
 * from `prog`, and when its header checksum still holds, the content ID it promised is
 * stored in *promised_id and *promised set (so a recomputation can be compared). */
int kd_cache_get(const char *dir, const char *entry, const char *prog, kd_buf *out, int *promised,
                 uint64_t *promised_id, kd_err *e);

/* Publishes bytes as entry (see above).  A cache that cannot be written (full disk,
 * read-only, no hard links) costs only the entry: a warning from `prog`, never a partial
 * entry.  0 if the entry is there afterwards, -1 if not (warned). */
int kd_cache_put(const char *entry, const char *prog, const uint8_t *bytes, size_t n);

/* Moves a bad entry to DIR/corrupt/<name>[.<tag>] (tag < 0: none) so it is never used
 * again; removes it when it cannot be moved. */
void kd_cache_quarantine(const char *dir, const char *entry, long tag);

/* ---- maintenance (kd-cache) ---- */
typedef struct kd_cache_entry {
    char     path[4096];
    uint64_t bytes;
    int64_t  mtime;
} kd_cache_entry;

/* Lists entries (malloc'd array). */
int kd_cache_list(const char *dir, kd_cache_entry **out, uint64_t *n, kd_err *e);

#endif
