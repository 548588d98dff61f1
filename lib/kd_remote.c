/* kd_remote: HTTP GET/PUT of cache entries through libcurl (see kd_remote.h). */
#include "kd_remote.h"

#include <curl/curl.h>
#include <pthread.h>
#include <string.h>

/* ---------------------------------------------------------------- names and URLs */

/* The URL as shown in messages: user:password@ removed, so a credential in
 * KD_CACHE_REMOTE never reaches a log. */
static void shown_url(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://"), *at, *slash;
    if (p && (at = strchr(p + 3, '@')) && (!(slash = strchr(p + 3, '/')) || at < slash))
        snprintf(out, cap, "%.*s%s", (int)(p + 3 - url), url, at + 1);
    else
        snprintf(out, cap, "%s", url);
}

int kd_remote_check_url(const char *u, kd_err *e)
{
    size_t n = strlen(u), skip;
    if (!strncmp(u, "http://", 7))
        skip = 7;
    else if (!strncmp(u, "https://", 8))
        skip = 8;
    else
        return kd_fail_usage(e, "remote cache '%.200s': not an http:// or https:// URL", u);
    char shown[256];
    shown_url(u, shown, sizeof shown);
    if (n > KD_REMOTE_MAX_URL)
        return kd_fail_usage(e, "remote cache '%.200s': URL longer than %d bytes", shown, KD_REMOTE_MAX_URL);
    if (u[skip] == 0 || u[skip] == '/')
        return kd_fail_usage(e, "remote cache '%s': no host", shown);
    for (const char *p = u; *p; p++)
        if (*p == '?' || *p == '#' || (unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return kd_fail_usage(e, "remote cache '%s': a query, fragment, space or control byte", shown);
    return 0;
}

/* 0 when name is parts of [A-Za-z0-9._-] joined by single '/', none "." or ".." */
static int check_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > KD_REMOTE_MAX_NAME)
        return -1;
    const char *part = name;
    for (const char *p = name;; p++) {
        if (*p == '/' || *p == 0) {
            size_t len = (size_t)(p - part);
            if (len == 0 || (len == 1 && part[0] == '.') || (len == 2 && part[0] == '.' && part[1] == '.'))
                return -1;
            if (*p == 0)
                return 0;
            part = p + 1;
        } else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '.' || *p == '_' || *p == '-')) {
            return -1;
        }
    }
}

/* BASE (one trailing '/' dropped) + '/' + NAME into url; -1 (usage error) on a bad one */
static int make_url(const char *base, const char *name, char *url, size_t cap, kd_err *e)
{
    if (kd_remote_check_url(base, e))
        return -1;
    if (check_name(name))
        return kd_fail_usage(e, "remote cache: bad entry name '%.300s'", name);
    size_t bl = strlen(base);
    if (bl && base[bl - 1] == '/')
        bl--;
    int w = snprintf(url, cap, "%.*s/%s", (int)bl, base, name);
    if (w < 0 || (size_t)w >= cap)
        return kd_fail_usage(e, "remote cache: URL of '%.300s' too long", name);
    return 0;
}

/* ---------------------------------------------------------------- transfers */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A handle with the settings every transfer shares: the limits, no signals, no redirects,
 * http(s) only, no content decoding (we want the stored bytes, not a decoded variant). */
static CURL *new_handle(const char *url, const kd_remote_opts *o, char *errbuf, kd_err *e)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        kd_fail(e, "remote cache: libcurl: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        kd_fail(e, "remote cache: libcurl: cannot create a handle");
        return NULL;
    }
    errbuf[0] = 0;
    int bad = 0;
    bad |= curl_easy_setopt(h, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->connect_ms) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->total_ms) != CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
#endif
    if (bad) {
        curl_easy_cleanup(h);
        kd_fail(e, "remote cache: libcurl refused an option");
        return NULL;
    }
    return h;
}

/* the transfer's outcome as one error line; -1 */
static int transfer_failed(const char *url, CURLcode rc, const char *errbuf, kd_err *e)
{
    char shown[512];
    shown_url(url, shown, sizeof shown);
    return kd_fail(e, "remote cache %s: %s", shown, errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

typedef struct sink {
    kd_buf   body;
    uint64_t max;
    int      too_big, oom;
} sink;

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    sink *s = arg;
    size_t n = size * nmemb;   /* libcurl guarantees size == 1 */
    if (n > s->max - s->body.len) {
        s->too_big = 1;
        return 0;              /* aborts the transfer (CURLE_WRITE_ERROR) */
    }
    if (kd_buf_append(&s->body, p, n)) {
        s->oom = 1;
        return 0;
    }
    return n;
}

int kd_remote_get(const char *base_url, const char *entry_name, const kd_remote_opts *o, kd_buf *out, kd_err *e)
{
    static const kd_remote_opts dflt = KD_REMOTE_OPTS_DEFAULT;
    if (!o)
        o = &dflt;
    char url[KD_REMOTE_MAX_URL + KD_REMOTE_MAX_NAME + 2], errbuf[CURL_ERROR_SIZE];
    if (make_url(base_url, entry_name, url, sizeof url, e))
        return -1;
    CURL *h = new_handle(url, o, errbuf, e);
    if (!h)
        return -1;
    sink s = { { 0 }, o->max_bytes, 0, 0 };
    int bad = 0;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, &s) != CURLE_OK;
    /* refuses before the transfer when the server announces a larger body */
    bad |= curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)(o->max_bytes > INT64_MAX ? INT64_MAX : o->max_bytes)) != CURLE_OK;
    if (bad) {
        curl_easy_cleanup(h);
        return kd_fail(e, "remote cache: libcurl refused an option");
    }
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    int r;
    char shown[512];
    if (rc == CURLE_FILESIZE_EXCEEDED || s.too_big) {
        shown_url(url, shown, sizeof shown);
        r = kd_fail(e, "remote cache %s: entry larger than %llu bytes", shown, (unsigned long long)o->max_bytes);
    } else if (s.oom) {
        r = kd_fail(e, "out of memory");
    } else if (rc != CURLE_OK) {
        /* CURLE_PARTIAL_FILE included: a body shorter than its Content-Length */
        r = transfer_failed(url, rc, errbuf, e);
    } else if (status == 404 || status == 410) {
        r = 0;
    } else if (status != 200) {
        shown_url(url, shown, sizeof shown);
        r = kd_fail(e, "remote cache %s: HTTP status %ld", shown, status);
    } else if (kd_buf_append(out, s.body.p, s.body.len)) {
        r = kd_fail(e, "out of memory");
    } else {
        r = 1;
    }
    kd_buf_free(&s.body);
    return r;
}

typedef struct source {
    const uint8_t *p;
    size_t         left;
} source;

static size_t on_send(char *dst, size_t size, size_t nmemb, void *arg)
{
    source *s = arg;
    size_t n = size * nmemb < s->left ? size * nmemb : s->left;
    memcpy(dst, s->p, n);
    s->p += n;
    s->left -= n;
    return n;
}

/* the server's reply to a PUT is a short page we do not need */
static size_t on_discard(char *p, size_t size, size_t nmemb, void *arg)
{
    return size * nmemb;
}

int kd_remote_put(const char *base_url, const char *entry_name, const void *bytes, size_t n,
                  const kd_remote_opts *o, kd_err *e)
{
    static const kd_remote_opts dflt = KD_REMOTE_OPTS_DEFAULT;
    if (!o)
        o = &dflt;
    char url[KD_REMOTE_MAX_URL + KD_REMOTE_MAX_NAME + 2], errbuf[CURL_ERROR_SIZE], shown[512];
    if (make_url(base_url, entry_name, url, sizeof url, e))
        return -1;
    if ((uint64_t)n > o->max_bytes) {
        shown_url(url, shown, sizeof shown);
        return kd_fail(e, "remote cache %s: entry larger than %llu bytes", shown, (unsigned long long)o->max_bytes);
    }
    CURL *h = new_handle(url, o, errbuf, e);
    if (!h)
        return -1;
    source src = { bytes, n };
    /* no "Expect: 100-continue": it costs a round trip (or a 1 s wait) per entry */
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    int bad = !hdr;
    bad |= curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_READFUNCTION, on_send) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_READDATA, &src) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)n) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr) != CURLE_OK;
    bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_discard) != CURLE_OK;
    if (bad) {
        curl_easy_cleanup(h);
        curl_slist_free_all(hdr);
        return kd_fail(e, "remote cache: libcurl refused an option");
    }
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK)
        return transfer_failed(url, rc, errbuf, e);
    if (status != 200 && status != 201 && status != 204) {
        shown_url(url, shown, sizeof shown);
        return kd_fail(e, "remote cache %s: PUT answered HTTP status %ld", shown, status);
    }
    return 0;
}
