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
 * The stage sequence over these (key, look up, restore or compute, publish, report) is
 * kd_stage's.
 */
#ifndef KD_CACHE_H
#define KD_CACHE_H

#include <stdint.h>

#include "kd_io.h"

/* Hash of a whole input that is not an artifact (a text file): XXH3-64 of its bytes. */
uint64_t kd_hash_bytes(const void *p, size_t n);

/* The content ID of an artifact file from its header (checked), for keys. */
int kd_input_id(const char *path, uint64_t *id, kd_err *e);

/* The key of a stage: the running binary (/proc/self/exe: a rebuilt tool that is
 * byte-identical keeps its keys), the tool, params[0..plen) and the input IDs. */
int kd_cache_key(const char *tool, const void *params, size_t plen, const uint64_t *inputs, int ninputs,
                 uint64_t *key, kd_err *e);

/* DIR/ab/<key>.kd into out (size bytes); fails when too long. */
int kd_cache_entry_path(const char *dir, uint64_t key, char *out, size_t size, kd_err *e);

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
