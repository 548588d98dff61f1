/* kd_stage: one run of a tool as a content-hashed stage, over kd_cache.
 *
 * Every tool given --cache DIR runs the same sequence: compute the key (binary, tool,
 * canonical parameters, input content IDs; see kd_cache.h), look it up, and on a hit
 * restore the outputs from the entry; on a miss compute the artifact, encode it, write
 * the outputs, publish the entry.  Either way one line goes to stderr:
 *     kd-train teacher: cached (key 9f2c1a07)
 *     kd-train teacher: ran in 1.23 s (key 9f2c1a07)
 * Without --cache (dir NULL) the same calls only write the outputs and print nothing.
 *
 * Outputs.  A stage has up to KD_STAGE_MAX_OUTPUTS files, written in the order added:
 *   section NULL   the encoded artifact itself (a model, a dataset).  Opened when added,
 *                  so a bad path or a terminal on stdout fails before any work.  Restored
 *                  by a hard link to the entry where the filesystem allows it, else by a
 *                  copy (another filesystem, fs.protected_hardlinks, another user's
 *                  entries); left alone but for its time when it already holds an
 *                  artifact with the same content ID.
 *   section "x"    the bytes of the artifact's section "x" (a text output, as kd-eval's
 *                  tables), written with kd_write_file(KD_OUT_KEEP_SAME) at the end.
 *
 * The runner, for a tool with one artifact:
 *
 *     kd_stage st;
 *     kd_stage_init(&st, prog, kd_stage_label(o->label, o->out), o->cache);
 *     if (kd_stage_add_output(&st, o->out, NULL, &e)) goto done;      // opened now
 *     ... load the inputs, write every parameter into params (a kd_buf) ...
 *     int r = kd_stage_start(&st, &params, ids, nids, &e);             // 1 restored
 *     if (r == 0) {
 *         ... compute, build kd_art *a with its provenance ...
 *         r = kd_stage_commit(&st, a, level, &e);                      // write, publish
 *     }
 *     kd_stage_end(&st);                                              // the one cleanup
 *     return r < 0 ? kd_err_report(prog, &e) : 0;
 *
 * kd-eval's form: its entry is a result artifact of text sections, each a file:
 *
 *     kd_stage_init(&st, prog, kd_stage_label(label, out_path), cache);
 *     if (per_user) kd_stage_add_output(&st, per_user, "per_user", &e);
 *     if (topk)     kd_stage_add_output(&st, topk, "topk", &e);
 *     kd_stage_add_output(&st, out_path, "table", &e);                 // last: newest file
 *     r = kd_stage_start(&st, &params, ids, nmodels + 1 + (ref != NULL), &e);
 *     if (r == 0) {   // evaluate, then one artifact holds every output
 *         a = kd_art_new(KD_KIND_RESULT); kd_art_add_buf(a, "table", &tab, &e); ...
 *         r = kd_stage_commit(&st, a, 1, &e);     // encodes only when caching
 *     }
 *     kd_stage_end(&st);
 *
 * A tool with two entries per run (kd-gen --truth: the dataset and its generating model)
 * uses the steps kd_stage_start is made of: kd_stage_key and kd_stage_find on both, then
 * kd_stage_restore on both or kd_stage_commit on both; `quiet` keeps the second silent.
 *
 * Remote tier.  With caching on and KD_CACHE_REMOTE=http://host/prefix (or https://), a
 * local miss GETs BASE/ab/<key>.kd (kd_remote.h).  Its bytes are verified exactly as a
 * local entry's (kd_cache_verify: checksums, sizes, content ID; and against the content a
 * corrupt local entry promised); a verified entry is published into the local cache
 * (atomically, kd_cache_put) and restored from there, and the line says so:
 *     kd-train teacher: cached (key 9f2c1a07) from remote
 * After a computation the entry is PUT to the remote.  The remote is an optimisation and
 * never decides a result: an entry that fails verification is never stored locally and
 * the stage recomputes (its PUT then replaces the bad entry); an unreachable server, a
 * time out or an HTTP error is one warning ("kd-train: warning: remote cache ...") and
 * the stage computes; after such a failure the process does not try the remote again.
 * A remote entry whose intact header promised another content than the recomputation
 * gives is a warning ("non-determinism: ... remote cache entry promised ..."), not an
 * error as it is for a local entry.  Environment, read with the key:
 *     KD_CACHE_REMOTE                  base URL; unset or empty: no remote tier
 *     KD_CACHE_REMOTE_TIMEOUT          seconds for one whole transfer (default 120)
 *     KD_CACHE_REMOTE_CONNECT_TIMEOUT  seconds to connect (default 2)
 * A value that cannot be right (ftp://, a query, "0", "abc") fails the stage as a usage
 * error before any work.  The remote is trusted to return, for a name, bytes that were
 * PUT under that name: verification catches corruption and truncation, not a server
 * that deliberately serves one valid entry under another's name.
 *
 * Stage log.  When $KD_STAGE_LOG names a file, the line is also appended to it with one
 * O_APPEND write (concurrent stages never interleave).  Its format:
 *     <tool> <label>: cached (key <8 hex>)[ from remote][ slurm=<job>.<step>]
 *     <tool> <label>: ran in <seconds, %.2f> s (key <8 hex>)[ slurm=<job>.<step>]
 * where the slurm field is present only when SLURM_JOB_ID is set, <step> is
 * SLURM_STEP_ID or "none", and characters outside [A-Za-z0-9_-] are written as '_'.
 *
 * Non-determinism.  An entry that fails verification is moved aside, warned about and
 * recomputed; if its (intact) header promised another content than the recomputation
 * gives, kd_stage_commit fails with "non-determinism: stage ... recomputed content ...".
 */
#ifndef KD_STAGE_H
#define KD_STAGE_H

#include <stdint.h>

#include "kd_artifact.h"
#include "kd_cache.h"
#include "kd_io.h"
#include "kd_remote.h"

#define KD_STAGE_MAX_OUTPUTS 4

typedef struct kd_stage_out {
    const char *path;      /* '-' = stdout */
    const char *section;   /* NULL: the encoded artifact; else the bytes of this section */
    kd_out      out;       /* an artifact output's temporary, open from add to commit */
    int         open;
} kd_stage_out;

typedef struct kd_stage {
    const char  *tool, *label, *dir;  /* dir NULL: caching off */
    int          quiet;               /* no line (a second entry of the same run) */
    uint64_t     key;
    char         entry[4096];         /* DIR/ab/<key>.kd */
    int          promised;            /* a corrupt entry's header content ID is known */
    uint64_t     promised_id;
    double       t0;
    int          nout;
    kd_stage_out out[KD_STAGE_MAX_OUTPUTS];
    kd_buf       hit;                 /* the verified entry, after kd_stage_find's hit */
    /* the remote tier (KD_CACHE_REMOTE), read with the key when caching */
    const char    *remote;            /* base URL, NULL: none */
    kd_remote_opts remote_opts;       /* its timeouts */
    int            from_remote;       /* the hit came from it (its line says so) */
    int            remote_promised;   /* a corrupt remote entry's header content ID */
    uint64_t       remote_promised_id;
} kd_stage;

/* ---- the runner ---- */

/* Starts the clock; label is the stage's name in its line. */
void kd_stage_init(kd_stage *s, const char *tool, const char *label, const char *dir);
/* Adds an output (see above).  Fails on a path that cannot be written or a terminal. */
int  kd_stage_add_output(kd_stage *s, const char *path, const char *section, kd_err *e);
/* Key, look-up, and on a hit restore + report: 1 when the stage is done from the cache,
 * 0 when the caller must compute and commit, -1 on error.  A params buffer whose sticky
 * error is set fails the stage ("out of memory"): a wrong key is never used. */
int  kd_stage_start(kd_stage *s, const kd_buf *params, const uint64_t *inputs, int ninputs, kd_err *e);
/* Encodes a (when caching or for an artifact output), writes every output, publishes
 * and reports.  The artifact stays the caller's. */
int  kd_stage_commit(kd_stage *s, kd_art *a, int zlevel, kd_err *e);
/* Removes what an unfinished stage left open (temporaries) and frees its buffers; after
 * success or failure alike. */
void kd_stage_end(kd_stage *s);

/* ---- its steps ---- */

/* The key and the entry's path (only the params check without caching). */
int  kd_stage_key(kd_stage *s, const kd_buf *params, const uint64_t *inputs, int ninputs, kd_err *e);
/* 1 on a verified hit (bytes kept in s->hit), 0 on a miss, -1 on error. */
int  kd_stage_find(kd_stage *s, kd_err *e);
/* Writes every output from s->hit, then reports the hit. */
int  kd_stage_restore(kd_stage *s, kd_err *e);
/* Publishes encoded bytes whose content ID is content_id.  Fails only on non-determinism;
 * a cache that cannot be written is a warning (kd_cache_put). */
int  kd_stage_publish(kd_stage *s, const uint8_t *bytes, size_t n, uint64_t content_id, kd_err *e);
/* The stage's line on stderr and in $KD_STAGE_LOG (only when caching, never when quiet). */
void kd_stage_report(const kd_stage *s, int hit);

/* The label of a stage for its messages: `label` if given, else the output's file name. */
const char *kd_stage_label(const char *label, const char *out);

#endif
