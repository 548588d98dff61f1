/* Unit tests of the buffer's sticky error, the one atomic file writer, hard-link
 * placement, the stage runner's refusal of a key built from a failed buffer, the
 * verification of entry bytes (local or remote) and what the key holds of the machine. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kd_artifact.h"
#include "kd_stage.h"
#include "kd_test.h"

static char dir[] = "/tmp/kd-test-stage.XXXXXX";

static char *path_in(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* A failed reserve marks the buffer; every later write is a no-op that fails. */
static void test_sticky_error(void)
{
    kd_buf b = { 0 };
    CHECK(kd_buf_append(&b, "ab", 2) == 0 && !kd_buf_error(&b));
    /* len + SIZE_MAX overflows: the failure path of a real allocation, without one */
    CHECK(kd_buf_reserve(&b, SIZE_MAX) == -1);
    CHECK(kd_buf_error(&b));
    CHECK(kd_buf_append(&b, "c", 1) == -1);
    CHECK(kd_buf_printf(&b, "%d", 42) == -1);
    CHECK(kd_buf_reserve(&b, 1) == -1);  /* even a reserve that would fit */
    CHECK(b.len == 2 && !memcmp(b.p, "ab", 2));
    CHECK(kd_buf_error(&b));
    kd_buf_free(&b);
    CHECK(!kd_buf_error(&b));
    CHECK(kd_buf_printf(&b, "x=%d", 1) == 0 && b.len == 3);
    kd_buf_free(&b);
}

/* Every user of a buffer checks the flag once. */
static void test_users_check_the_flag(void)
{
    kd_err e = { 0 };
    kd_buf bad = { 0 };
    kd_buf_printf(&bad, "tool=test\n");
    kd_buf_reserve(&bad, SIZE_MAX);
    CHECK(kd_write_buf(path_in("out.txt"), &bad, KD_OUT_TEXT, &e) == -1);
    CHECK(access(path_in("out.txt"), F_OK) != 0);
    CHECK(strstr(e.msg, "out of memory") != NULL);
    kd_art *a = kd_art_new(KD_KIND_RESULT);
    CHECK(kd_art_add_buf(a, "provenance", &bad, &e) == -1 && a->n == 0);
    CHECK(kd_art_add_text(a, "t", "x", 1, &e) == 0);
    CHECK(kd_art_encode(a, 1, &bad, &e) == -1);
    kd_art_free(a);
    /* a stage key from it fails, with caching on or off: never a wrong key */
    kd_stage s;
    uint64_t in = 7;
    kd_stage_init(&s, "kd-test", "t", path_in("cache"));
    e.msg[0] = 0;
    CHECK(kd_stage_start(&s, &bad, &in, 1, &e) == -1 && !strcmp(e.msg, "out of memory"));
    kd_stage_end(&s);
    kd_stage_init(&s, "kd-test", "t", NULL);
    CHECK(kd_stage_key(&s, &bad, &in, 1, &e) == -1);
    kd_stage_end(&s);
    kd_buf_free(&bad);
}

static void test_keys(void)
{
    kd_err e = { 0 };
    kd_buf p1 = { 0 }, p2 = { 0 };
    kd_buf_printf(&p1, "dim=8\n");
    kd_buf_printf(&p2, "dim=9\n");
    uint64_t in = 7;
    kd_stage a, b, c;
    kd_stage_init(&a, "kd-test", "a", path_in("cache"));
    kd_stage_init(&b, "kd-test", "b", path_in("cache"));
    kd_stage_init(&c, "kd-test", "c", path_in("cache"));
    CHECK(kd_stage_key(&a, &p1, &in, 1, &e) == 0 && kd_stage_key(&b, &p1, &in, 1, &e) == 0 &&
          kd_stage_key(&c, &p2, &in, 1, &e) == 0);
    CHECK(a.key == b.key && a.key != c.key);
    CHECK(!strcmp(a.entry, b.entry) && strstr(a.entry, "/cache/") != NULL);
    kd_buf_free(&p1);
    kd_buf_free(&p2);
}

static void test_write_file(void)
{
    kd_err e = { 0 };
    const char *p = path_in("w.txt");
    struct stat s1, s2;
    CHECK(kd_write_file(p, "hello\n", 6, KD_OUT_TEXT, &e) == 0);
    CHECK(stat(p, &s1) == 0 && s1.st_size == 6);
    /* the same bytes with KEEP_SAME: the same file (inode), only its time refreshed */
    struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
    CHECK(utimensat(AT_FDCWD, p, old, 0) == 0);
    CHECK(kd_write_file(p, "hello\n", 6, KD_OUT_TEXT | KD_OUT_KEEP_SAME, &e) == 0);
    CHECK(stat(p, &s2) == 0 && s2.st_ino == s1.st_ino && s2.st_mtime > 1000000000);
    /* other bytes: replaced by rename (a new inode), never written in place */
    CHECK(kd_write_file(p, "bye\n", 4, KD_OUT_TEXT | KD_OUT_KEEP_SAME, &e) == 0);
    CHECK(stat(p, &s2) == 0 && s2.st_ino != s1.st_ino && s2.st_size == 4);
    /* a directory that does not exist: an error naming the path, nothing written */
    CHECK(kd_write_file(path_in("no/such/dir/x"), "x", 1, KD_OUT_TEXT, &e) == -1 && strstr(e.msg, "no/such/dir"));
}

static void test_link_file(void)
{
    kd_err e = { 0 };
    const char *src = path_in("src.kd"), *dst = path_in("dst.kd");
    struct stat st;
    CHECK(kd_write_file(src, "abc", 3, KD_OUT_BINARY, &e) == 0);
    CHECK(kd_write_file(dst, "old", 3, KD_OUT_BINARY, &e) == 0);
    CHECK(kd_link_file(src, dst) == 0);
    CHECK(stat(dst, &st) == 0 && st.st_nlink == 2);
    /* refused: the source does not exist; the old file stays */
    CHECK(kd_link_file(path_in("missing.kd"), path_in("other.kd")) == -1 && errno == ENOENT);
    CHECK(access(path_in("other.kd"), F_OK) != 0);
}

static char warned[2048];
static void collect(const char *prog, const char *msg)
{
    snprintf(warned, sizeof warned, "%s|%s", prog ? prog : "(status)", msg);
}

/* Library warnings go through kd_warn, which a handler can take over. */
static void test_warning_handler(void)
{
    kd_warn_handler(collect);
    CHECK(kd_cache_put("/proc/kd-no-such/ab/abcd.kd", "kd-test", (const uint8_t *)"x", 1) == -1);
    CHECK(!strncmp(warned, "kd-test|/proc/kd-no-such/ab/abcd.kd: cannot create the cache directory", 69));
    CHECK(strstr(warned, "the result is written, only not cached") != NULL);
    kd_warn_handler(NULL);
}

/* A published entry: mode 0444, no temporary left beside it, found again. */
static void test_publish_and_find(void)
{
    kd_err e = { 0 };
    kd_buf params = { 0 }, enc = { 0 };
    kd_buf_printf(&params, "k=v\n");
    kd_art *a = kd_art_new(KD_KIND_RESULT);
    CHECK(kd_art_add_text(a, "table", "a\tb\n", 4, &e) == 0);
    kd_stage s;
    uint64_t in = 1;
    kd_warn_handler(collect);
    warned[0] = 0;
    kd_stage_init(&s, "kd-test", "t", path_in("cache"));
    CHECK(kd_stage_add_output(&s, path_in("table.tsv"), "table", &e) == 0);
    CHECK(kd_stage_start(&s, &params, &in, 1, &e) == 0);
    CHECK(kd_stage_commit(&s, a, 1, &e) == 0);
    CHECK(!strncmp(warned, "(status)|kd-test t: ran in ", 27));
    struct stat st;
    CHECK(stat(s.entry, &st) == 0 && (st.st_mode & 0777) == 0444);
    kd_stage_end(&s);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s", s.entry);
    *strrchr(sub, '/') = 0;
    kd_cache_entry *v;
    uint64_t n;
    CHECK(kd_cache_list(path_in("cache"), &v, &n, &e) == 0 && n == 1);
    free(v);
    unlink(path_in("table.tsv"));
    kd_stage_init(&s, "kd-test", "t", path_in("cache"));
    CHECK(kd_stage_add_output(&s, path_in("table.tsv"), "table", &e) == 0);
    CHECK(kd_stage_start(&s, &params, &in, 1, &e) == 1);
    CHECK(!strncmp(warned, "(status)|kd-test t: cached (key ", 32));
    kd_stage_end(&s);
    kd_buf b = { 0 };
    CHECK(kd_read_all(path_in("table.tsv"), &b, &e) == 0 && b.len == 4 && !memcmp(b.p, "a\tb\n", 4));
    kd_buf_free(&b);
    kd_warn_handler(NULL);
    kd_art_free(a);
    kd_buf_free(&params);
    kd_buf_free(&enc);
}

/* Entry bytes as a remote returns them: valid, a payload byte flipped (its header still
 * promises the content), the header flipped (no promise), cut short, not an artifact. */
static void test_verify_bytes(void)
{
    kd_err e = { 0 };
    kd_buf enc = { 0 };
    kd_art *a = kd_art_new(KD_KIND_RESULT);
    CHECK(kd_art_add_text(a, "table", "a\tb\n1\t2\n", 8, &e) == 0 && kd_art_encode(a, 1, &enc, &e) == 0);
    int promised = 0;
    uint64_t id = 0;
    CHECK(kd_cache_verify(enc.p, enc.len, "r", &promised, &id, &e) == 0 && !promised);
    enc.p[enc.len - 3] ^= 1;
    CHECK(kd_cache_verify(enc.p, enc.len, "remote x", &promised, &id, &e) == -1);
    CHECK(promised && id == a->content_id && !strncmp(e.msg, "remote x: ", 10));
    enc.p[enc.len - 3] ^= 1;
    enc.p[30] ^= 1;   /* inside the content ID: the header checksum fails, no promise */
    promised = 0;
    CHECK(kd_cache_verify(enc.p, enc.len, "r", &promised, &id, &e) == -1 && !promised);
    enc.p[30] ^= 1;
    promised = 0;   /* cut short: the header still holds, so it still promises */
    CHECK(kd_cache_verify(enc.p, enc.len - 1, "r", &promised, &id, &e) == -1 && strstr(e.msg, "truncated") && promised);
    promised = 0;
    CHECK(kd_cache_verify(enc.p, 20, "r", &promised, &id, &e) == -1 && !promised);
    CHECK(kd_cache_verify((const uint8_t *)"<html>", 6, "r", &promised, &id, &e) == -1 && !promised);
    CHECK(kd_cache_verify(enc.p, 0, "r", &promised, &id, &e) == -1);
    kd_art_free(a);
    kd_buf_free(&enc);
}

/* An entry's relative name is its remote name; the key holds glibc's libm class. */
static void test_names_and_platform(void)
{
    char name[KD_CACHE_NAME_BYTES], path[4096];
    kd_err e = { 0 };
    kd_cache_entry_name(0x0123456789abcdefull, name);
    CHECK(!strcmp(name, "01/0123456789abcdef.kd"));
    CHECK(kd_cache_entry_path("/c", 0x0123456789abcdefull, path, sizeof path, &e) == 0 && !strcmp(path + 3, name));
    const char *c = kd_cache_math_class();
    CHECK(!strcmp(c, "fma") || !strcmp(c, "fma4") || !strcmp(c, "avx") || !strcmp(c, "sse2") || !strcmp(c, ""));
    const char *p = kd_cache_platform(), *slash = strrchr(p, '/');
    CHECK(slash != NULL && slash > p && !strcmp(slash + 1, c));
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    test_sticky_error();
    test_users_check_the_flag();
    test_keys();
    test_write_file();
    test_link_file();
    test_warning_handler();
    test_publish_and_find();
    test_verify_bytes();
    test_names_and_platform();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) return 1;
    return kd_test_done("test_stage");
}
