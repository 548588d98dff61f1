/* kd_remote: the remote tier of the stage cache, one HTTP GET or PUT of one entry (libcurl).
 *
 * For machines that share no filesystem, only an HTTP endpoint, like ccache's and Bazel's
 * HTTP caches: an entry DIR/ab/<key>.kd of the local cache lives at BASE/ab/<key>.kd on a
 * server that answers GET and PUT (nginx with WebDAV PUT and create_full_put_path, or any
 * plain object store).  Base URLs come from KD_CACHE_REMOTE=http://host/prefix.
 *
 * What this module owns: the transfer, its limits, and the promise that a GET returns the
 * exact bytes the server sent for that name, complete, or an error -- never a prefix, a
 * body of an error page, a redirect's target or a decoded variant.  What it does not own:
 * whether those bytes are a valid entry for the key (the caller verifies them exactly as it
 * verifies a local entry, so a corrupt or hostile remote costs a recomputation, never a
 * wrong result) and whether a failure is fatal (callers treat every -1 as a warning:
 * the remote is an optimisation).
 *
 * Calling sequence (kd_stage, on its look-up and publish paths; kd_stage.h):
 *     local miss -> kd_remote_get(): 1 -> kd_cache_verify -> publish locally, restore
 *                                          (fails: warn, compute, PUT replaces it)
 *                                    0 -> compute -> publish locally -> kd_remote_put()
 *                                   -1 -> warn once, compute; the remote is not tried again
 *
 * Thread-safe (no shared state besides libcurl's one-time global init); never prints;
 * no signal (CURLOPT_NOSIGNAL), so it is safe beside kd_io's signal cleanup.
 */
#ifndef KD_REMOTE_H
#define KD_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "kd_err.h"
#include "kd_io.h"

typedef struct kd_remote_opts {
    long     connect_ms;   /* connecting to the server, ms (a dead host costs this much) */
    long     total_ms;     /* the whole transfer, ms */
    uint64_t max_bytes;    /* largest body accepted on GET or sent on PUT */
} kd_remote_opts;

/* 2 s to connect, 120 s per transfer, 4 GiB per entry (the artifact format's own limit is
 * larger; an entry this big is better recomputed than trusted from a slow link) */
#define KD_REMOTE_OPTS_DEFAULT { 2000, 120000, (uint64_t)4 << 30 }

/* Longest base URL and entry name accepted. */
enum { KD_REMOTE_MAX_URL = 2048, KD_REMOTE_MAX_NAME = 256 };

/* Checks a base URL: http:// or https://, a host, no query or fragment, at most
 * KD_REMOTE_MAX_URL bytes.  0, or -1 with a usage error naming it. */
int kd_remote_check_url(const char *base_url, kd_err *e);

/* Fetches BASE/entry_name.  entry_name is relative, of [A-Za-z0-9._-] parts joined by '/',
 * no "." or ".." part (so it cannot climb out of the prefix).  o NULL = the defaults.
 * Returns 1 when the server answered 200 with the whole body (appended to out), 0 when it
 * answered 404 or 410 (a miss; out untouched), -1 on anything else -- unreachable, a time
 * out, another status (a redirect included: it is not followed), a body cut short or
 * longer than o->max_bytes, out of memory -- with e filled and out untouched. */
int kd_remote_get(const char *base_url, const char *entry_name, const kd_remote_opts *o, kd_buf *out, kd_err *e);

/* Stores n bytes at BASE/entry_name (PUT; 200, 201 or 204 is success).  0 or -1 with e.
 * The server is expected to replace an existing entry or keep it: both hold the same
 * bytes for the same key, since entries are content-addressed by the stage's key. */
int kd_remote_put(const char *base_url, const char *entry_name, const void *bytes, size_t n,
                  const kd_remote_opts *o, kd_err *e);

#endif
