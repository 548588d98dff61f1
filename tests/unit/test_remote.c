/* Unit tests of kd_remote against canned HTTP answers from a forked one-shot server on
 * 127.0.0.1 (no nginx needed): a hit gives the exact bytes, 404 a miss, and every other
 * answer -- a body cut short, too large, a redirect, a 500, silence, a closed port -- an
 * error with out untouched.
 *
 * Also a driver for tests/remote.bats (against nginx):
 *     test_remote get BASE NAME OUT [MAX]   exit 0 hit (OUT written), 3 miss, 1 error, 2 usage
 *     test_remote put BASE NAME IN          exit 0 stored, 1 error, 2 usage
 */
#include "kd_remote.h"
#include "kd_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* a listening socket on 127.0.0.1 at a port the kernel picks; its port in *port */
static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4) ||
        getsockname(fd, (struct sockaddr *)&a, &len))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* Serves one connection: reads the request head, answers with reply[0..n), closes.  The
 * child's pid; the caller reaps it with wait_child. */
static pid_t serve_once(int lfd, const char *reply, size_t n)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int c = accept(lfd, NULL, NULL);
    char req[8192];
    size_t got = 0;
    while (c >= 0 && got < sizeof req - 1) {
        ssize_t r = read(c, req + got, sizeof req - 1 - got);
        if (r <= 0) break;
        got += (size_t)r;
        req[got] = 0;
        if (strstr(req, "\r\n\r\n")) break;
    }
    for (size_t off = 0; c >= 0 && off < n;) {
        ssize_t w = write(c, reply + off, n - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    _exit(0);
}

static void wait_child(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* GET http://127.0.0.1:PORT/c/ab/x.kd answered with reply; the return value, out's bytes */
static int get_canned(const char *reply, size_t n, const kd_remote_opts *o, kd_buf *out, kd_err *e)
{
    int port, lfd = listen_any(&port);
    if (lfd < 0)
        return -9;
    pid_t pid = serve_once(lfd, reply, n);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/c/", port);
    int r = kd_remote_get(base, "ab/x.kd", o, out, e);
    wait_child(pid);
    close(lfd);
    return r;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int unit_tests(void)
{
    kd_err e = { 0 };
    kd_buf out = { 0 };
    kd_remote_opts quick = { 1000, 2000, 1 << 20 };

    /* URLs and names */
    CHECK(kd_remote_check_url("http://host/prefix", &e) == 0);
    CHECK(kd_remote_check_url("https://h:8080/", &e) == 0);
    CHECK(kd_remote_check_url("ftp://host/x", &e) == -1 && e.code == KD_EXIT_USAGE);
    CHECK(kd_remote_check_url("http:///x", &e) == -1);
    CHECK(kd_remote_check_url("http://h/x?y=1", &e) == -1);
    CHECK(kd_remote_check_url("http://u:secret@h/x?", &e) == -1 && !strstr(e.msg, "secret"));
    CHECK(kd_remote_get("http://127.0.0.1:1/c", "../etc/passwd", &quick, &out, &e) == -1 && e.code == KD_EXIT_USAGE);
    CHECK(kd_remote_get("http://127.0.0.1:1/c", "/ab/x.kd", &quick, &out, &e) == -1);
    CHECK(kd_remote_get("http://127.0.0.1:1/c", "ab//x.kd", &quick, &out, &e) == -1);
    CHECK(kd_remote_get("http://127.0.0.1:1/c", "ab/x y.kd", &quick, &out, &e) == -1);
    CHECK(kd_remote_get("http://127.0.0.1:1/c", "ab/./x.kd", &quick, &out, &e) == -1);
    CHECK(out.len == 0);

    /* a hit: exactly the body, appended */
    static const char body[] = "KDA\0binary\r\n\r\nbytes\xff";
    char reply[512];
    int hn = snprintf(reply, sizeof reply, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                      sizeof body - 1);
    memcpy(reply + hn, body, sizeof body - 1);
    kd_buf_append(&out, "pre", 3);
    CHECK(get_canned(reply, (size_t)hn + sizeof body - 1, &quick, &out, &e) == 1);
    CHECK(out.len == 3 + sizeof body - 1 && memcmp(out.p + 3, body, sizeof body - 1) == 0);
    out.len = 0;

    /* a body shorter than announced: an error, nothing appended */
    CHECK(get_canned(reply, (size_t)hn + 5, &quick, &out, &e) == -1 && out.len == 0);
    CHECK(e.code == KD_EXIT_DATA && strstr(e.msg, "127.0.0.1"));

    /* larger than the limit, announced or not */
    kd_remote_opts tiny = { 1000, 2000, 8 };
    CHECK(get_canned(reply, (size_t)hn + sizeof body - 1, &tiny, &out, &e) == -1 && out.len == 0);
    CHECK(strstr(e.msg, "larger than 8 bytes") != NULL);
    static const char chunked[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                  "10\r\n0123456789abcdef\r\n0\r\n\r\n";
    CHECK(get_canned(chunked, sizeof chunked - 1, &tiny, &out, &e) == -1 && out.len == 0);
    CHECK(get_canned(chunked, sizeof chunked - 1, &quick, &out, &e) == 1 && out.len == 16);
    out.len = 0;

    /* a miss, and the answers that are neither */
    static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
    CHECK(get_canned(nf, sizeof nf - 1, &quick, &out, &e) == 0 && out.len == 0);
    static const char moved[] = "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n";
    CHECK(get_canned(moved, sizeof moved - 1, &quick, &out, &e) == -1 && strstr(e.msg, "status 301"));
    static const char err[] = "HTTP/1.1 500 Oops\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!";
    CHECK(get_canned(err, sizeof err - 1, &quick, &out, &e) == -1 && strstr(e.msg, "status 500"));
    CHECK(get_canned("garbage\r\n\r\n", 11, &quick, &out, &e) == -1);
    CHECK(get_canned("", 0, &quick, &out, &e) == -1);
    CHECK(out.len == 0);

    /* a server that accepts and never answers: the transfer limit ends it */
    int port, lfd = listen_any(&port);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/c", port);
    kd_remote_opts slow = { 1000, 300, 1 << 20 };
    double t0 = now();
    CHECK(kd_remote_get(base, "ab/x.kd", &slow, &out, &e) == -1 && out.len == 0);
    CHECK(now() - t0 < 5);
    CHECK(kd_remote_put(base, "ab/x.kd", "abc", 3, &slow, &e) == -1);
    close(lfd);

    /* a closed port: refused at once */
    lfd = listen_any(&port);
    close(lfd);
    snprintf(base, sizeof base, "http://127.0.0.1:%d/c", port);
    CHECK(kd_remote_get(base, "ab/x.kd", &quick, &out, &e) == -1 && e.code == KD_EXIT_DATA);
    CHECK(kd_remote_put(base, "ab/x.kd", "abc", 3, &quick, &e) == -1 && e.code == KD_EXIT_DATA);

    /* PUT: success statuses, a refusal, and the size limit before any transfer */
    static const char created[] = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    lfd = listen_any(&port);
    pid_t pid = serve_once(lfd, created, sizeof created - 1);
    snprintf(base, sizeof base, "http://u:secret@127.0.0.1:%d/c", port);
    CHECK(kd_remote_put(base, "ab/x.kd", body, sizeof body - 1, &quick, &e) == 0);
    wait_child(pid);
    static const char forbidden[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    pid = serve_once(lfd, forbidden, sizeof forbidden - 1);
    CHECK(kd_remote_put(base, "ab/x.kd", body, sizeof body - 1, &quick, &e) == -1 && strstr(e.msg, "status 403"));
    CHECK(!strstr(e.msg, "secret"));
    wait_child(pid);
    close(lfd);
    CHECK(kd_remote_put(base, "ab/x.kd", body, sizeof body - 1, &tiny, &e) == -1 && strstr(e.msg, "larger than"));

    kd_buf_free(&out);
    return kd_test_done("test_remote");
}

static int driver(int argc, char **argv)
{
    kd_remote_opts o = KD_REMOTE_OPTS_DEFAULT;
    kd_err e = { 0 };
    kd_buf b = { 0 };
    int r;
    if (argc >= 5 && argc <= 6 && !strcmp(argv[1], "get")) {
        if (argc == 6)
            o.max_bytes = strtoull(argv[5], NULL, 10);
        r = kd_remote_get(argv[2], argv[3], &o, &b, &e);
        if (r == 1) {
            FILE *f = fopen(argv[4], "wb");
            if (!f || fwrite(b.p, 1, b.len, f) != b.len || fclose(f))
                r = kd_fail(&e, "%s: cannot write", argv[4]);
            else
                r = 0;
        } else if (r == 0) {
            r = 3;
        }
    } else if (argc == 5 && !strcmp(argv[1], "put")) {
        r = kd_read_all(argv[4], &b, &e) ? -1 : kd_remote_put(argv[2], argv[3], b.p, b.len, &o, &e);
    } else {
        fprintf(stderr, "usage: test_remote [get BASE NAME OUT [MAX] | put BASE NAME IN]\n");
        return 2;
    }
    kd_buf_free(&b);
    if (r < 0)
        return kd_err_report("test_remote", &e);
    return r;
}

int main(int argc, char **argv)
{
    return argc > 1 ? driver(argc, argv) : unit_tests();
}
