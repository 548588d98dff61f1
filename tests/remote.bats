#!/usr/bin/env bats
# The remote cache tier (lib/kd_remote) against Debian's nginx with WebDAV PUT on 127.0.0.1:
# a private config in a temporary directory, a free port, started and stopped by this file.
# The module is driven through its unit binary (build/unit/test_remote get|put ...); the
# end-to-end tests through kd-train wait for KD_CACHE_REMOTE to be wired into kd_cache.
load test_helper

UNIT=$(dirname "$KD_BIN")/unit/test_remote
WWW=$BATS_FILE_TMPDIR/nginx/www

setup_file() {
    command -v nginx >/dev/null 2>&1 || { export KD_NGINX_SKIP="no nginx: apt-get install nginx-light (make deps does it as root)"; return 0; }
    nginx -V 2>&1 | grep -q -- --with-http_dav_module ||
        { export KD_NGINX_SKIP="this nginx has no WebDAV module (Debian's nginx-light has it)"; return 0; }
    [ -x "$UNIT" ] || { export KD_NGINX_SKIP="$UNIT not built (make check-unit builds it)"; return 0; }
    local d=$BATS_FILE_TMPDIR/nginx p try
    mkdir -p "$d/www/cache" "$d/www/ro" "$d/tmp"
    for try in 1 2 3 4 5; do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 20000))
        ss -Htln "sport = :$p" 2>/dev/null | grep -q . && continue
        cat >"$d/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 64; }
http {
    access_log $d/access.log;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    server {
        listen 127.0.0.1:$p;
        root $d/www;
        client_max_body_size 64m;
        location /cache/ { dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r; }
        location /ro/ { }
        location = /moved { return 301 /cache/; }
    }
}
EOF
        if nginx -p "$d" -c "$d/nginx.conf" 2>>"$d/start.log"; then
            export KD_NGINX_URL="http://127.0.0.1:$p"
            export KD_NGINX_SKIP=
            return 0
        fi
    done
    export KD_NGINX_SKIP="nginx did not start: $(tail -1 "$d/start.log")"
}

teardown_file() {
    local pid n=50
    pid=$(cat "$BATS_FILE_TMPDIR/nginx/nginx.pid" 2>/dev/null) || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    return 0
}

setup() {
    [ -z "${KD_NGINX_SKIP:-}" ] || skip "$KD_NGINX_SKIP"
    # each test its own prefix on the one server
    BASE=$KD_NGINX_URL/cache/$BATS_TEST_NUMBER
}

@test "an entry PUT to the server comes back byte for byte on GET, under a nested name" {
    small_dataset 1 a.kd
    run -0 "$UNIT" put "$BASE" ab/0123456789abcdef.kd a.kd
    cmp a.kd "$WWW/cache/$BATS_TEST_NUMBER/ab/0123456789abcdef.kd"
    run -0 "$UNIT" get "$BASE/" ab/0123456789abcdef.kd b.kd
    cmp a.kd b.kd
    kd-info b.kd >/dev/null
}

@test "an entry never stored is a miss, not an error" {
    run -3 --separate-stderr "$UNIT" get "$BASE" ab/0000000000000000.kd out.kd
    [ -z "$stderr" ]
    [ ! -e out.kd ]
}

@test "a corrupt or truncated entry on the server comes back as the server's bytes, which fail verification" {
    small_dataset 1 a.kd
    "$UNIT" put "$BASE" cd/c.kd a.kd
    f=$WWW/cache/$BATS_TEST_NUMBER/cd/c.kd
    flip_byte "$f" $(( $(stat -c %s "$f") - 10 ))
    run -0 "$UNIT" get "$BASE" cd/c.kd b.kd
    cmp "$f" b.kd
    run -1 kd-info b.kd
    head -c 100 a.kd >"$f"
    run -0 "$UNIT" get "$BASE" cd/c.kd t.kd
    [ "$(stat -c %s t.kd)" -eq 100 ]
    run -1 kd-info t.kd
}

@test "an entry larger than the limit is refused, the output untouched" {
    head -c 3000000 /dev/urandom >big
    run -0 "$UNIT" put "$BASE" ef/big.kd big
    run -0 "$UNIT" get "$BASE" ef/big.kd got
    cmp big got
    rm got
    run -1 --separate-stderr "$UNIT" get "$BASE" ef/big.kd got 1000000
    one_line
    [[ $stderr == *"larger than 1000000 bytes"* ]]
    [ ! -e got ]
}

@test "a PUT the server refuses, a redirect and a server not listening are errors of one line" {
    echo data >x
    run -1 --separate-stderr "$UNIT" put "$KD_NGINX_URL/ro" ab/x.kd x
    one_line
    [[ $stderr == *"status 405"* ]]
    run -1 --separate-stderr "$UNIT" get "$KD_NGINX_URL" moved x.out
    one_line
    [[ $stderr == *"status 301"* ]]
    # a port nothing listens on, next to the server's
    port=${KD_NGINX_URL##*:}
    for p in $((port + 1)) $((port + 2)) $((port + 3)); do
        ss -Htln "sport = :$p" | grep -q . || break
    done
    run -1 --separate-stderr "$UNIT" get "http://127.0.0.1:$p/cache" ab/x.kd x.out
    one_line
    [[ $stderr == "test_remote: remote cache http://127.0.0.1:$p/cache/ab/x.kd: "* ]]
    run -1 "$UNIT" put "http://127.0.0.1:$p/cache" ab/x.kd x
    [ ! -e x.out ]
}

@test "bad base URLs and entry names are usage errors" {
    echo data >x
    run -2 "$UNIT" get "ftp://127.0.0.1/cache" ab/x.kd out
    run -2 "$UNIT" get "$BASE" ../../etc/passwd out
    run -2 "$UNIT" put "$BASE" "ab/../../x.kd" x
    run -2 "$UNIT" put "$BASE?x=1" ab/x.kd x
    [ -z "$(find "$WWW" -name x.kd)" ]
}

# ---- end to end through the stage cache: KD_CACHE_REMOTE is read by kd_cache, which the
# lead wires to kd_remote (lookup: GET on a local miss, publish: PUT after a computation).
# LEAD: remove the skip line of these tests once it is wired; their bodies are complete.
remote_wired() {
    skip "KD_CACHE_REMOTE is not wired into kd_cache yet (kd_remote is; the lead wires lookup/publish)"
}

train() { # train CACHE [args]: a small teacher, the stage line on stderr
    local c=$1
    shift
    kd-train --cache "$c" --dim 8 --epochs 3 --seed 1 data.kd -o "$@"
}

@test "a second machine with an empty local cache restores a stage from the remote" {
    remote_wired
    small_dataset 1 data.kd
    export KD_CACHE_REMOTE=$BASE
    run -0 --separate-stderr train a a.kd
    [[ $stderr == *": ran in "* ]]
    [ "$(find "$WWW/cache/$BATS_TEST_NUMBER" -name '*.kd' | wc -l)" -eq 1 ]
    run -0 --separate-stderr train b b.kd
    [[ $stderr == *": cached (key "* ]]
    [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
    [ "$(find b -name '*.kd' | wc -l)" -eq 1 ]    # and it is now in the local cache too
}

@test "a corrupt remote entry is a warning and a recomputation, never a wrong result" {
    remote_wired
    small_dataset 1 data.kd
    export KD_CACHE_REMOTE=$BASE
    train a a.kd 2>/dev/null
    f=$(find "$WWW/cache/$BATS_TEST_NUMBER" -name '*.kd')
    flip_byte "$f" $(( $(stat -c %s "$f") - 10 ))
    run -0 --separate-stderr train b b.kd
    [[ $stderr == *warning* ]]
    [[ $stderr == *": ran in "* ]]
    [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
}

@test "an unreachable remote is a warning; the stage computes and is cached locally" {
    remote_wired
    small_dataset 1 data.kd
    export KD_CACHE_REMOTE=http://127.0.0.1:9/cache
    run -0 --separate-stderr train a a.kd
    [[ $stderr == *warning* ]]
    [[ $stderr == *": ran in "* ]]
    run -0 --separate-stderr train a a2.kd
    [[ $stderr == *": cached (key "* ]]
}
