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

static int key_of(kd_stage *s, const void *params, size_t plen, const uint64_t *inputs, int ninputs, kd_err *e)
{
    if (!s->dir)
        return 0;
    if (kd_cache_key(s->tool, params, plen, inputs, ninputs, &s->key, e))
        return -1;
    return kd_cache_entry_path(s->dir, s->key, s->entry, sizeof s->entry, e);
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
    return kd_cache_get(s->dir, s->entry, s->tool, &s->hit, &s->promised, &s->promised_id, e);
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
    /* from here on a failure only costs the cache its entry: the output is complete, so
     * it is a warning, and nothing partial is left in the cache */
    (void)kd_cache_put(s->entry, s->tool, bytes, n);
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
        n = snprintf(line, sizeof line, "%s %s: cached (key %.8s)", s->tool, s->label, hex);
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

/* ---- the older pair ---- */

int kd_stage_begin(kd_stage *s, const char *tool, const char *label, const char *dir, const char *params,
                   size_t plen, const uint64_t *inputs, int ninputs, kd_err *e)
{
    kd_stage_init(s, tool, label, dir);
    return key_of(s, params, plen, inputs, ninputs, e);
}

int kd_stage_lookup(kd_stage *s, kd_buf *out, kd_err *e)
{
    if (!s->dir)
        return 0;
    return kd_cache_get(s->dir, s->entry, s->tool, out, &s->promised, &s->promised_id, e);
}
