#!/usr/bin/env bats
# The remote cache tier (lib/kd_remote) against Debian's nginx with WebDAV PUT on 127.0.0.1:
# a private config in a temporary directory, a free port, started and stopped by this file.
# The module is driven through its unit binary (build/unit/test_remote get|put ...); the
# end-to-end tests run the tools with --cache and KD_CACHE_REMOTE (lib/kd_stage.h).
load test_helper

UNIT=$(dirname "$KD_BIN")/unit/test_remote
WWW=$BATS_FILE_TMPDIR/nginx/www

setup_file() {
    command -v nginx >/dev/null 2>&1 || { export KD_NGINX_SKIP="no nginx: apt-get install nginx-light (make deps does it as root)"; return 0; }
    nginx -V 2>&1 | grep -q -- --with-http_dav_module ||
        { export KD_NGINX_SKIP="this nginx has no WebDAV module (Debian's nginx-light has it)"; return 0; }
    [ -x "$UNIT" ] || { export KD_NGINX_SKIP="$UNIT not built (make check-unit builds it)"; return 0; }
    local d=$BATS_FILE_TMPDIR/nginx p try
    mkdir -p "$d/www/cache" "$d/www/ro" "$d/www/slow" "$d/tmp"
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
        # 20 bytes/s: an entry here takes minutes, so a transfer timeout must cut it
        location /slow/ { limit_rate 20; }
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

# ---- end to end through the stage cache (KD_CACHE_REMOTE, lib/kd_stage.h): "machines" are
# local cache directories that share nothing but the server

train() { # train CACHE OUT: a small teacher, the stage line on stderr
    kd-train --cache "$1" --dim 8 --epochs 3 --seed 1 data.kd -o "$2"
}
remote_entries() { find "$WWW/cache/$BATS_TEST_NUMBER" -name '*.kd' 2>/dev/null | wc -l; }
# lines of $stderr that are warnings
warnings() { printf '%s\n' "$stderr" | grep -c ': warning: ' || true; }

@test "a second machine with an empty local cache restores a stage from the remote" {
    small_dataset 1 data.kd
    export KD_CACHE_REMOTE=$BASE
    run -0 --separate-stderr train a a.kd
    [[ $stderr == "kd-train a.kd: ran in "*" (key "*")" ]]
    one_line
    [ "$(remote_entries)" -eq 1 ]
    cmp "$(find a -name '*.kd')" "$(find "$WWW/cache/$BATS_TEST_NUMBER" -name '*.kd')"   # PUT as published
    run -0 --separate-stderr train b b.kd
    [[ $stderr == "kd-train b.kd: cached (key "*") from remote" ]]
    one_line
    [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
    cmp a.kd b.kd
    [ "$(find b -name '*.kd' | wc -l)" -eq 1 ]    # and it is now in the local cache too
    [ "$(stat -c %h b.kd)" -eq 2 ]                # restored from there, by a hard link
    kd-cache --cache b verify >v.out
    grep -qx $'verified\t1' v.out
    # a third run on b is a local hit: no request reaches the server
    requests=$(grep -c '' "$BATS_FILE_TMPDIR/nginx/access.log")
    rm b.kd
    run -0 --separate-stderr train b b.kd
    [[ $stderr == "kd-train b.kd: cached (key "*")" ]]
    [ "$(grep -c '' "$BATS_FILE_TMPDIR/nginx/access.log")" -eq "$requests" ]
}

@test "two machines sharing one remote: every tool's stage of the second is restored, none computed" {
    export KD_CACHE_REMOTE=$BASE
    for m in a b; do
        mkdir "$m"
        (cd "$m" && kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 3 --cache cache --truth truth.kd -o d.kd &&
            kd-train --cache cache --dim 8 --epochs 3 d.kd -o t.kd &&
            kd-distill --cache cache --teacher t.kd --method rrd --dim 8 --epochs 2 d.kd -o s.kd &&
            kd-eval --cache cache -k 5 --per-user pu.tsv -o e.tsv d.kd t.kd s.kd) 2>"$m.err"
    done
    [ "$(grep -c ': ran in ' a.err)" -eq 4 ] && [ "$(grep -c ': cached ' a.err)" -eq 0 ]
    [ "$(grep -c ': ran in ' b.err)" -eq 0 ]
    [ "$(grep -c ': cached (key [0-9a-f]*) from remote$' b.err)" -eq 4 ]
    [ "$(grep -c ': warning: ' a.err b.err | awk -F: '{ n += $2 } END { print n }')" -eq 0 ]
    [ "$(remote_entries)" -eq 5 ]    # kd-gen's dataset and truth, teacher, student, evaluation
    for f in d.kd truth.kd t.kd s.kd e.tsv pu.tsv; do cmp "a/$f" "b/$f"; done
    [ "$(find b/cache -name '*.kd' | wc -l)" -eq 5 ]
}

@test "a corrupt remote entry is one warning and a recomputation, never a wrong result, never stored locally" {
    small_dataset 1 data.kd
    export KD_CACHE_REMOTE=$BASE
    train a a.kd 2>/dev/null
    f=$(find "$WWW/cache/$BATS_TEST_NUMBER" -name '*.kd')
    flip_byte "$f" $(( $(stat -c %s "$f") - 10 ))
    run -0 --separate-stderr train b b.kd
    [ "$(warnings)" -eq 1 ]
    [[ $stderr == "kd-train: warning: remote cache entry "??/????????????????".kd: "*"; recomputing (the remote entry is not used)"$'\n'"kd-train b.kd: ran in "* ]]
    cmp a.kd b.kd
    # b's cache holds the recomputed entry, which verifies; the remote is healed by the PUT
    kd-cache --cache b verify >v.out
    grep -qx $'verified\t1' v.out && grep -qx $'corrupt\t0' v.out
    cmp "$(find a -name '*.kd')" "$(find b -name '*.kd')"
    cmp "$(find a -name '*.kd')" "$f"
}

@test "a truncated remote entry, or one that is not an artifact, is one warning and a recomputation" {
    small_dataset 1 data.kd
    export KD_CACHE_REMOTE=$BASE
    train a a.kd 2>/dev/null
    f=$(find "$WWW/cache/$BATS_TEST_NUMBER" -name '*.kd')
    for bad in truncate html; do
        case $bad in
        truncate) head -c 100 "$(find a -name '*.kd')" >"$f" ;;
        html) echo '<html>not found</html>' >"$f" ;;
        esac
        rm -rf b
        run -0 --separate-stderr train b b.kd
        [ "$(warnings)" -eq 1 ]
        [[ $stderr == *"; recomputing (the remote entry is not used)"$'\n'"kd-train b.kd: ran in "* ]]
        cmp a.kd b.kd
        [ "$(find b -name '*.kd' | wc -l)" -eq 1 ] && [ -z "$(find b -name '*.tmp.*')" ]
    done
}

@test "an unreachable remote is one warning; every stage computes and is cached locally" {
    export KD_CACHE_REMOTE=http://127.0.0.1:9/cache
    # kd-gen --truth: two entries, still one warning (the process tries the server once)
    run -0 --separate-stderr kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --cache a --truth t.kd -o data.kd
    [ "$(warnings)" -eq 1 ]
    [[ $stderr == "kd-gen: warning: remote cache http://127.0.0.1:9/cache/"??/????????????????".kd: "*"; computing without the remote cache"$'\n'"kd-gen data.kd: ran in "* ]]
    run -0 --separate-stderr train a a.kd
    [ "$(warnings)" -eq 1 ]
    [[ $stderr == *": ran in "* ]]
    run -0 --separate-stderr train a a2.kd
    [[ $stderr == "kd-train a2.kd: cached (key "*")" ]]
    cmp a.kd a2.kd
    [ "$(find a -name '*.kd' | wc -l)" -eq 3 ]
}

@test "a remote that answers too slowly is cut by KD_CACHE_REMOTE_TIMEOUT: one warning, the stage computes" {
    small_dataset 1 data.kd
    KD_CACHE_REMOTE=$BASE train a a.kd 2>/dev/null
    entry=$(find a -name '*.kd')
    mkdir -p "$WWW/slow/$BATS_TEST_NUMBER/$(basename "$(dirname "$entry")")"
    cp "$entry" "$WWW/slow/$BATS_TEST_NUMBER/${entry#a/}"
    start=$(date +%s)
    KD_CACHE_REMOTE=$KD_NGINX_URL/slow/$BATS_TEST_NUMBER KD_CACHE_REMOTE_TIMEOUT=1 run -0 --separate-stderr train b b.kd
    [ $(( $(date +%s) - start )) -lt 30 ]   # 20 bytes/s would take minutes
    [ "$(warnings)" -eq 1 ]
    [[ $stderr == "kd-train: warning: remote cache $KD_NGINX_URL/slow/"*"imed out"*"; computing without the remote cache"$'\n'"kd-train b.kd: ran in "* ]]
    cmp a.kd b.kd
}

@test "a remote that refuses the PUT is one warning; the result is written and cached locally" {
    small_dataset 1 data.kd
    KD_CACHE_REMOTE=$KD_NGINX_URL/ro run -0 --separate-stderr train a a.kd
    [ "$(warnings)" -eq 1 ]
    [[ $stderr == "kd-train: warning: remote cache $KD_NGINX_URL/ro/"*"status 405; the result is written and cached locally, not remotely"$'\n'"kd-train a.kd: ran in "* ]]
    [ "$(find a -name '*.kd' | wc -l)" -eq 1 ]
}

@test "a remote setting that cannot be right is a usage error before any work; without --cache it is unused" {
    small_dataset 1 data.kd
    for bad in "KD_CACHE_REMOTE=ftp://127.0.0.1/x" "KD_CACHE_REMOTE=$BASE?x=1" \
        "KD_CACHE_REMOTE_TIMEOUT=abc" "KD_CACHE_REMOTE_TIMEOUT=0" "KD_CACHE_REMOTE_CONNECT_TIMEOUT=-1"; do
        run -2 --separate-stderr env KD_CACHE_REMOTE=$BASE "$bad" kd-train --cache a --dim 8 --epochs 3 data.kd -o m.kd
        one_line
        [[ $stderr == "kd-train: KD_CACHE_"* ]]
        [ ! -e m.kd ] && [ -z "$(find . -name '.*.kdtmp.*')" ]
    done
    [ "$(remote_entries)" -eq 0 ]
    requests=$(grep -c '' "$BATS_FILE_TMPDIR/nginx/access.log")
    KD_CACHE_REMOTE=$BASE run -0 --separate-stderr kd-train --dim 8 --epochs 3 data.kd -o m.kd
    [ -z "$stderr" ]
    [ "$(grep -c '' "$BATS_FILE_TMPDIR/nginx/access.log")" -eq "$requests" ]
}
