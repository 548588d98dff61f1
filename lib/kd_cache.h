/* kd_cache: content-hashed stages and a shared artifact cache.
 *
 * A stage (one run of a tool) is identified by a key: XXH3-64 of the tool's own binary,
 * the artifact format version, the tool name, its canonical parameter text (every
 * parameter after defaults, never threads, paths or times) and the content IDs of its
 * inputs.  The cache is a directory of artifacts named by key (DIR/ab/abcdef....kd),
 * published atomically (temporary + link, so a published entry is never replaced) and
 * read-only once published; it can be shared between checkouts, machines and
 * concurrent runs.  Each tool given --cache DIR does, through this module:
 *     begin (compute the key) -> lookup: hit -> restore the output, done
 *                                         miss -> compute, write, publish
 * and prints one line on stderr: "kd-train teacher: cached (key 9f2c...)" or
 * "kd-train teacher: ran in 1.2 s (key 9f2c...)".
 *
 * An entry that fails verification is moved to DIR/corrupt/ with a warning and
 * recomputed; if its (intact) header promised another content than the recomputation
 * gives, that is reported as non-determinism, an error.
 */
#ifndef KD_CACHE_H
#define KD_CACHE_H

#include <stdint.h>

#include "kd_io.h"

typedef struct kd_stage {
    const char *tool, *label, *dir;  /* dir NULL: caching off (begin/lookup/publish are no-ops) */
    uint64_t key;
    char     entry[4096];            /* DIR/ab/<key>.kd */
    int      promised;               /* a corrupt entry's header content ID is known */
    uint64_t promised_id;
    double   t0;
} kd_stage;

/* Starts a stage: the key from the running binary, the tool, params and input IDs. */
int kd_stage_begin(kd_stage *s, const char *tool, const char *label, const char *dir, const char *params,
                   size_t plen, const uint64_t *inputs, int ninputs, kd_err *e);

/* 1 on a verified hit (the entry's bytes appended to out), 0 on a miss, -1 on error. */
int kd_stage_lookup(kd_stage *s, kd_buf *out, kd_err *e);

/* Publishes the bytes of an encoded artifact whose content ID is content_id.  Fails only
 * on non-determinism (see above); a cache that cannot be written (full disk, read-only)
 * is a warning, never a partial entry.  An entry published meanwhile by another run is kept. */
int kd_stage_publish(kd_stage *s, const uint8_t *bytes, size_t n, uint64_t content_id, kd_err *e);

/* Prints the stage's one line on stderr (only when caching is on), and appends it to the
 * file named by $KD_STAGE_LOG when set. */
void kd_stage_report(const kd_stage *s, int hit);

/* Writes artifact bytes to path ("-" = stdout) atomically, unless path already holds an
 * artifact with the same content ID, in which case only its modification time is
 * refreshed (so Make sees it up to date and nothing is rewritten). */
int kd_stage_restore(const char *path, const uint8_t *bytes, size_t n, kd_err *e);

/* The label of a stage for its messages: `label` if given, else the output's file name. */
const char *kd_stage_label(const char *label, const char *out);

/* Hash of a whole input that is not an artifact (a text file): XXH3-64 of its bytes. */
uint64_t kd_hash_bytes(const void *p, size_t n);

/* The content ID of an artifact file from its header (checked), for keys. */
int kd_input_id(const char *path, uint64_t *id, kd_err *e);

/* ---- maintenance (kd-cache) ---- */
typedef struct kd_cache_entry {
    char     path[4096];
    uint64_t bytes;
    int64_t  mtime;
} kd_cache_entry;

/* Lists entries (malloc'd array). */
int kd_cache_list(const char *dir, kd_cache_entry **out, uint64_t *n, kd_err *e);

#endif
