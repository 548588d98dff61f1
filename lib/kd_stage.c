/* kd_stage: the stage runner: key, look up, restore or commit, publish, report. */
#include "kd_stage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kd_par.h"
#include "kd_remote.h"

/* The remote tier's one piece of process state: after a transfer failed (unreachable,
 * a time out, an HTTP error), no other stage of this process tries it again, so a dead
 * server costs one timeout and one warning, not one per stage or per GET and PUT.  Set
 * and read by the thread that runs stages (the tools' main thread). */
static int remote_down;

const char *kd_stage_label(const char *label, const char *out)
{
    if (label) return label;
    const char *s = strrchr(out, '/');
    return !strcmp(out, "-") ? "<stdout>" : s ? s + 1 : out;
}

void kd_stage_init(kd_stage *s, const char *tool, const char *label, const char *dir)
{
    memset(s, 0, sizeof *s);
    s->tool = tool;
    s->label = label;
    s->dir = dir;
    s->t0 = kd_now();
}

int kd_stage_add_output(kd_stage *s, const char *path, const char *section, kd_err *e)
{
    if (s->nout == KD_STAGE_MAX_OUTPUTS)
        return kd_fail(e, "%s: more than %d outputs in one stage", s->label, KD_STAGE_MAX_OUTPUTS);
    kd_stage_out *o = &s->out[s->nout];
    memset(o, 0, sizeof *o);
    o->path = path;
    o->section = section;
    if (!section) {
        if (kd_out_open(&o->out, path, KD_OUT_BINARY, e))
            return -1;
        o->open = 1;
    }
    s->nout++;
    return 0;
}

/* A time in seconds from the environment (decimals allowed) into *ms; unset leaves it. */
static int env_seconds(const char *name, long *ms, kd_err *e)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x > 0 && x <= 86400))
        return kd_fail_usage(e, "%s: '%.40s' is not a time in seconds (0 < s <= 86400)", name, v);
    *ms = (long)(x * 1000 + 0.999);
    return 0;
}

/* The remote tier of a caching stage, from KD_CACHE_REMOTE and its timeouts.  A value
 * that cannot be right is a usage error (a misconfiguration should not silently cost a
 * whole cluster its shared cache); a remote that fails later is only ever a warning. */
static int remote_of(kd_stage *s, kd_err *e)
{
    const char *url = getenv("KD_CACHE_REMOTE");
    s->remote = NULL;
    if (!url || !*url)
        return 0;
    kd_err ue = { 0 };
    if (kd_remote_check_url(url, &ue))
        return kd_fail_usage(e, "KD_CACHE_REMOTE: %s", ue.msg);
    kd_remote_opts o = KD_REMOTE_OPTS_DEFAULT;
    if (env_seconds("KD_CACHE_REMOTE_TIMEOUT", &o.total_ms, e) ||
        env_seconds("KD_CACHE_REMOTE_CONNECT_TIMEOUT", &o.connect_ms, e))
        return -1;
    s->remote = url;
    s->remote_opts = o;
    return 0;
}

static int key_of(kd_stage *s, const void *params, size_t plen, const uint64_t *inputs, int ninputs, kd_err *e)
{
    if (!s->dir)
        return 0;
    if (remote_of(s, e) || kd_cache_key(s->tool, params, plen, inputs, ninputs, &s->key, e))
        return -1;
    return kd_cache_entry_path(s->dir, s->key, s->entry, sizeof s->entry, e);
}

/* ---- the remote tier ---- */

/* A local miss: GET the entry; verified exactly as a local entry (kd_cache_verify), and
 * against what a corrupt local entry promised; then published into the local cache and
 * appended to out (1).  Everything else is a miss (0) with at most one warning: nothing
 * there (404), the remote failing (and then not tried again), an entry that fails
 * verification (never stored locally; the recomputation's PUT replaces it). */
static int remote_find(kd_stage *s, kd_buf *out, kd_err *e)
{
    if (!s->remote || remote_down)
        return 0;
    char name[KD_CACHE_NAME_BYTES], shown[64], a[17], b[17];
    kd_cache_entry_name(s->key, name);
    snprintf(shown, sizeof shown, "remote cache entry %s", name);
    kd_buf got = { 0 };
    kd_err re = { 0 };
    int r = kd_remote_get(s->remote, name, &s->remote_opts, &got, &re);
    if (r < 0) {
        remote_down = 1;
        kd_warn(s->tool, "%s; computing without the remote cache", re.msg);
        r = 0;
    } else if (r > 0 && kd_cache_verify(got.p, got.len, shown, &s->remote_promised, &s->remote_promised_id, &re)) {
        kd_warn(s->tool, "%s; recomputing (the remote entry is not used)", re.msg);
        r = 0;
    } else if (r > 0 && s->promised && kd_get_u64(got.p + 24) != s->promised_id) {
        kd_id_hex(kd_get_u64(got.p + 24), a);
        kd_id_hex(s->promised_id, b);
        kd_warn(s->tool, "%s holds content %s, but the local entry promised %s; recomputing", shown, a, b);
        r = 0;
    } else if (r > 0) {
        /* a warning at most (kd_cache_put): the restore then copies from memory */
        (void)kd_cache_put(s->entry, s->tool, got.p, got.len);
        if (kd_buf_append(out, got.p, got.len))
            r = kd_fail(e, "out of memory");
        else
            s->from_remote = 1;
    }
    kd_buf_free(&got);
    return r;
}

/* After a computation: PUT the entry (unless it came from there), a warning at most. */
static void remote_store(kd_stage *s, const uint8_t *bytes, size_t n)
{
    if (!s->remote || remote_down || s->from_remote)
        return;
    char name[KD_CACHE_NAME_BYTES];
    kd_cache_entry_name(s->key, name);
    kd_err re = { 0 };
    if (kd_remote_put(s->remote, name, bytes, n, &s->remote_opts, &re)) {
        remote_down = 1;
        kd_warn(s->tool, "%s; the result is written and cached locally, not remotely", re.msg);
    }
}

/* Local look-up, then the remote on a miss. */
static int find_into(kd_stage *s, kd_buf *out, kd_err *e)
{
    int h = kd_cache_get(s->dir, s->entry, s->tool, out, &s->promised, &s->promised_id, e);
    return h != 0 ? h : remote_find(s, out, e);
}

int kd_stage_key(kd_stage *s, const kd_buf *params, const uint64_t *inputs, int ninputs, kd_err *e)
{
    /* checked with caching off too: the same text goes into the provenance */
    if (kd_buf_error(params))
        return kd_fail(e, "out of memory");
    return key_of(s, params->p, params->len, inputs, ninputs, e);
}

int kd_stage_find(kd_stage *s, kd_err *e)
{
    if (!s->dir)
        return 0;
    kd_buf_free(&s->hit);
    return find_into(s, &s->hit, e);
}

/* An artifact output from the entry: nothing if path already holds this content (only its
 * time refreshed), else a hard link to the entry, else a copy of the verified bytes. */
static int restore_artifact(const kd_stage *s, const char *path, kd_err *e)
{
    const uint8_t *bytes = s->hit.p;
    size_t n = s->hit.len;
    if (strcmp(path, "-")) {
        uint32_t kind;
        uint64_t id;
        kd_err pe;
        if (n >= KD_HEADER_BYTES && kd_art_peek(path, &kind, &id, &pe) == 0 && id == kd_get_u64(bytes + 24) &&
            utimensat(AT_FDCWD, path, NULL, 0) == 0)
            return 0;
        /* any refusal (EXDEV, EPERM, EACCES, EMLINK, no hard links at all) means a copy:
         * the bytes are in memory and verified */
        if (kd_link_file(s->entry, path) == 0)
            return 0;
    }
    return kd_write_file(path, bytes, n, KD_OUT_BINARY, e);
}

int kd_stage_restore(kd_stage *s, kd_err *e)
{
    kd_art *a = NULL;
    int r = 0;
    for (int k = 0; k < s->nout && !r; k++) {
        kd_stage_out *o = &s->out[k];
        if (!o->section) {
            if (o->open) kd_out_abort(&o->out);
            o->open = 0;
            r = restore_artifact(s, o->path, e);
            continue;
        }
        if (!a && kd_art_parse(s->hit.p, s->hit.len, s->entry, &a, e)) {
            r = -1;
            break;
        }
        const kd_section *sec = kd_art_find(a, o->section);
        if (!sec)
            r = kd_fail(e, "%s: cache entry lacks '%s'", s->entry, o->section);
        else
            r = kd_write_file(o->path, sec->data, (size_t)sec->bytes, KD_OUT_TEXT | KD_OUT_KEEP_SAME, e);
    }
    kd_art_free(a);
    if (!r)
        kd_stage_report(s, 1);
    return r;
}

int kd_stage_start(kd_stage *s, const kd_buf *params, const uint64_t *inputs, int ninputs, kd_err *e)
{
    if (kd_stage_key(s, params, inputs, ninputs, e))
        return -1;
    int h = kd_stage_find(s, e);
    if (h <= 0)
        return h;
    return kd_stage_restore(s, e) ? -1 : 1;
}

int kd_stage_commit(kd_stage *s, kd_art *a, int zlevel, kd_err *e)
{
    kd_buf enc = { 0 };
    int need = s->dir != NULL, r = 0;
    for (int k = 0; k < s->nout; k++)
        need |= s->out[k].section == NULL;
    if (need && kd_art_encode(a, zlevel, &enc, e)) {
        kd_buf_free(&enc);
        return -1;
    }
    for (int k = 0; k < s->nout && !r; k++) {
        kd_stage_out *o = &s->out[k];
        if (!o->section) {
            r = kd_out_write(&o->out, enc.p, enc.len, e) || kd_out_commit(&o->out, e) ? -1 : 0;
            if (r) kd_out_abort(&o->out);
            o->open = 0;
            continue;
        }
        const kd_section *sec = kd_art_find(a, o->section);
        r = !sec ? kd_fail(e, "%s: no section '%s' for %s", s->label, o->section, kd_out_name(o->path))
                 : kd_write_file(o->path, sec->data, (size_t)sec->bytes, KD_OUT_TEXT | KD_OUT_KEEP_SAME, e);
    }
    if (!r)
        r = kd_stage_publish(s, enc.p, enc.len, a->content_id, e);
    kd_buf_free(&enc);
    if (!r)
        kd_stage_report(s, 0);
    return r;
}

void kd_stage_end(kd_stage *s)
{
    for (int k = 0; k < s->nout; k++)
        if (s->out[k].open) {
            kd_out_abort(&s->out[k].out);
            s->out[k].open = 0;
        }
    kd_buf_free(&s->hit);
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
    /* another machine computed this stage otherwise: the remote is only an optimisation,
     * so it is said, never fatal (the PUT below replaces the remote's entry) */
    if (s->remote_promised && s->remote_promised_id != content_id) {
        char a[17], b[17];
        kd_id_hex(s->remote_promised_id, a);
        kd_id_hex(content_id, b);
        kd_warn(s->tool, "non-determinism: stage %s recomputed content %s, but its remote cache entry promised %s",
                s->label, b, a);
    }
    /* from here on a failure only costs the cache its entry: the output is complete, so
     * it is a warning, and nothing partial is left in the cache */
    (void)kd_cache_put(s->entry, s->tool, bytes, n);
    remote_store(s, bytes, n);
    return 0;
}

/* Copies an environment value keeping [A-Za-z0-9_-] (others become '_'), at most 32. */
static void env_token(char *out, const char *v)
{
    int k = 0;
    for (; v[k] && k < 32; k++) {
        char c = v[k];
        out[k] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'
                     ? c : '_';
    }
    out[k] = 0;
}

/* " slurm=<job>.<step>" when running under Slurm, else "". */
static void slurm_field(char *out, size_t size)
{
    const char *job = getenv("SLURM_JOB_ID"), *step = getenv("SLURM_STEP_ID");
    char j[33], st[33];
    out[0] = 0;
    if (!job || !*job)
        return;
    env_token(j, job);
    env_token(st, step && *step ? step : "none");
    snprintf(out, size, " slurm=%s.%s", j, st);
}

void kd_stage_report(const kd_stage *s, int hit)
{
    if (!s->dir || s->quiet)
        return;
    char hex[17], line[512], slurm[80];
    kd_id_hex(s->key, hex);
    int n;
    if (hit)
        n = snprintf(line, sizeof line, "%s %s: cached (key %.8s)%s", s->tool, s->label, hex,
                     s->from_remote ? " from remote" : "");
    else
        n = snprintf(line, sizeof line, "%s %s: ran in %.2f s (key %.8s)", s->tool, s->label, kd_now() - s->t0, hex);
    if (n < 0 || n >= (int)sizeof line - 1)
        n = (int)sizeof line - 2;
    kd_status("%.*s", n, line);
    /* a pipeline may collect the lines: one O_APPEND write per line never interleaves */
    const char *log = getenv("KD_STAGE_LOG");
    if (log && *log) {
        char full[600];
        slurm_field(slurm, sizeof slurm);
        int m = snprintf(full, sizeof full, "%.*s%s\n", n, line, slurm);
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
        if (fd >= 0) {
            ssize_t w = write(fd, full, (size_t)m);
            (void)w;
            close(fd);
        }
    }
}
