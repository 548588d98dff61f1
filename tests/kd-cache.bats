#!/usr/bin/env bats
# The stage cache as a cluster sees it (issue 15): publishing that stays atomic on NFS and
# leaves nothing behind on SIGTERM (scancel), restores that fall back to a copy where hard
# links are refused, a gc that leaves NFS's .nfsXXXX files alone, the stage log's Slurm
# field, and keys that keep machines whose CPUs give other bits apart (lib/kd_cache.h).
load test_helper

# shim: build the LD_PRELOAD link() shim (fixtures/kd-cache/link_shim.c) once per test
shim() {
    command -v "${CC:-cc}" >/dev/null || skip "no C compiler for the link() shim"
    "${CC:-cc}" -shared -fPIC -o shim.so "$FIXTURES/kd-cache/link_shim.c" -ldl
}
# with_shim CMD...: CMD with the shim preloaded (ASan tolerates a library before it)
with_shim() {
    LD_PRELOAD="$PWD/shim.so" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "$@"
}
train() { kd-train -q --no-timing --dim 8 --epochs 2 "$@"; }

teardown() {
    [ -z "${SHM:-}" ] || rm -rf "$SHM"
}

@test "a restored model is a hard link to its entry, with the entry's bytes and a fresh time" {
    small_dataset 1 s.kd
    train --cache cache s.kd -o m.kd
    cp m.kd want.kd
    rm m.kd
    touch -d '1 hour ago' s.kd
    touch -d '2 hours ago' "$(find cache -name '*.kd')"   # an old entry: the link must get a new time
    run --separate-stderr -0 train --cache cache s.kd -o m.kd
    [[ $stderr == "kd-train m.kd: cached (key "*")" ]]
    cmp want.kd m.kd
    [ "$(stat -c %h m.kd)" -eq 2 ]
    [ m.kd -nt s.kd ]
    no_temporaries .
}

@test "a cache on another filesystem: the restore copies (no hard link across filesystems)" {
    SHM=$(mktemp -d /dev/shm/kd-cache-test.XXXXXX) || skip "no /dev/shm"
    [ "$(stat -c %d "$SHM")" != "$(stat -c %d .)" ] || skip "/dev/shm is on the test directory's filesystem"
    small_dataset 1 s.kd
    train --cache "$SHM" s.kd -o m.kd
    cp m.kd want.kd
    rm m.kd
    run --separate-stderr -0 train --cache "$SHM" s.kd -o m.kd
    [[ $stderr == "kd-train m.kd: cached (key "*")" ]]
    cmp want.kd m.kd
    [ "$(stat -c %h m.kd)" -eq 1 ]
    no_temporaries .
}

@test "a refused hard link (EPERM: protected_hardlinks, another user's entry) falls back to a copy" {
    shim
    small_dataset 1 s.kd
    train --cache cache s.kd -o m.kd
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 2 --cache cache --truth t.kd -o d.kd
    cp m.kd want.kd && cp t.kd want-t.kd && cp d.kd want-d.kd
    rm m.kd t.kd d.kd
    SHIM_LINK=refuse SHIM_LOG=links.log run --separate-stderr -0 with_shim train --cache cache s.kd -o m.kd
    [[ $stderr == "kd-train m.kd: cached (key "*")" ]]
    SHIM_LINK=refuse SHIM_LOG=links.log run --separate-stderr -0 \
        with_shim kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 2 --cache cache --truth t.kd -o d.kd
    [[ $stderr == "kd-gen d.kd: cached (key "*")" ]]
    [ "$(grep -c '^restore ' links.log)" -eq 3 ]   # the link was tried for each, and refused
    cmp want.kd m.kd && cmp want-t.kd t.kd && cmp want-d.kd d.kd
    [ "$(stat -c %h m.kd)" -eq 1 ] && [ "$(stat -c %h t.kd)" -eq 1 ]
    no_temporaries .
}

@test "publishing links a closed temporary from the entry's own directory" {
    shim
    small_dataset 1 s.kd
    SHIM_LOG=links.log run --separate-stderr -0 with_shim train --cache cache s.kd -o m.kd
    [ "$(grep -c '^publish ' links.log)" -eq 1 ]
    read -r _ tmp entry open <links.log
    [ "$(dirname "$tmp")" = "$(dirname "$entry")" ]
    [[ $entry == cache/??/????????????????.kd ]]
    [[ $tmp == "$entry.tmp.$(hostname | tr ./ __)."[0-9]*.* ]]   # unique by host and pid, not O_EXCL
    [ "$open" = open=0 ]
    [ -z "$(find cache -name '*.tmp.*')" ]
    kd-cache --cache cache verify >v.out
    grep -qx $'verified\t1' v.out
}

@test "a link whose reply was lost (NFS: error, yet linked) counts as published, without a warning" {
    shim
    small_dataset 1 s.kd
    SHIM_LINK=lost run --separate-stderr -0 with_shim train --cache cache s.kd -o m.kd
    [[ $stderr == "kd-train m.kd: ran in "* ]]
    one_line
    [ "$(find cache -name '*.kd' | wc -l)" -eq 1 ] && [ -z "$(find cache -name '*.tmp.*')" ]
    rm m.kd
    run --separate-stderr -0 train --cache cache s.kd -o m.kd
    [[ $stderr == "kd-train m.kd: cached (key "*")" ]]
}

@test "an entry another run published first (EEXIST) is kept, and is no warning" {
    shim
    small_dataset 1 s.kd
    SHIM_LINK=race run --separate-stderr -0 with_shim train --cache cache s.kd -o m.kd
    [[ $stderr == "kd-train m.kd: ran in "* ]]
    one_line
    entry=$(find cache -name '*.kd')
    [ "$(stat -c %h "$entry")" -eq 1 ]   # the other run's file, not ours linked over it
    [ -z "$(find cache -name '*.tmp.*')" ]
    cmp m.kd "$entry"
}

@test "gc leaves NFS's .nfsXXXX files (and anything not an entry) alone" {
    small_dataset 1 s.kd
    train --cache cache s.kd -o m.kd
    entry=$(find cache -name '*.kd')
    sub=$(dirname "$entry")
    echo open elsewhere >"$sub/.nfs000000000123abcd00000001"
    echo open elsewhere >cache/.nfs1234
    echo partial >"$entry.tmp.otherhost.99.0badc0de"
    run --separate-stderr -0 kd-cache --cache cache stats
    [ "$output" = $'entries\t1\nbytes\t'"$(stat -c %s "$entry")" ]
    run --separate-stderr -0 kd-cache --cache cache gc --max-bytes 0
    [ "$output" = $'removed\t1\nbytes\t0' ]
    [ ! -e "$entry" ]
    [ -e "$sub/.nfs000000000123abcd00000001" ] && [ -e cache/.nfs1234 ] && [ -e "$entry.tmp.otherhost.99.0badc0de" ]
    run --separate-stderr -0 kd-cache --cache cache verify
    [ "$output" = $'verified\t0\ncorrupt\t0' ]
}

@test "the stage log records the Slurm job and step when there is one, and only then" {
    small_dataset 1 s.kd
    SLURM_JOB_ID=4242 SLURM_STEP_ID=17 KD_STAGE_LOG=$PWD/stages.log run --separate-stderr -0 train --cache cache s.kd -o m.kd
    [[ $stderr =~ ^kd-train\ m\.kd:\ ran\ in\ [0-9]+\.[0-9][0-9]\ s\ \(key\ [0-9a-f]{8}\)$ ]]
    rm m.kd
    SLURM_JOB_ID=4242 KD_STAGE_LOG=$PWD/stages.log run --separate-stderr -0 env -u SLURM_STEP_ID kd-train -q --no-timing --dim 8 --epochs 2 --cache cache s.kd -o m.kd
    rm m.kd
    KD_STAGE_LOG=$PWD/stages.log run --separate-stderr -0 env -u SLURM_JOB_ID -u SLURM_STEP_ID kd-train -q --no-timing --dim 8 --epochs 2 --cache cache s.kd -o m.kd
    [ "$(wc -l <stages.log)" -eq 3 ]
    sed -n 1p stages.log | grep -Eqx 'kd-train m\.kd: ran in [0-9]+\.[0-9]{2} s \(key [0-9a-f]{8}\) slurm=4242\.17'
    sed -n 2p stages.log | grep -Eqx 'kd-train m\.kd: cached \(key [0-9a-f]{8}\) slurm=4242\.none'
    sed -n 3p stages.log | grep -Eqx 'kd-train m\.kd: cached \(key [0-9a-f]{8}\)'
}

@test "SIGTERM mid-publish (scancel) leaves no temporary and no entry; the next run publishes" {
    shim
    small_dataset 1 s.kd
    SHIM_LINK=term run -143 --separate-stderr with_shim train --cache cache s.kd -o m.kd
    [ -z "$(find cache -name '*.tmp.*')" ]
    [ -z "$(find cache -name '*.kd')" ]
    no_temporaries .
    [ ! -e m.kd ] || kd-info m.kd >/dev/null    # an output is whole or absent
    run --separate-stderr -0 train --cache cache s.kd -o m.kd
    [[ $stderr == "kd-train m.kd: ran in "* ]]
    [ "$(find cache -name '*.kd' | wc -l)" -eq 1 ]
}

@test "SIGTERM during a long cached training leaves no temporary anywhere and no entry" {
    kd-gen synth -o d.kd
    kd-train -q --dim 32 --epochs 100000 --no-early-stop --cache cache d.kd -o m.kd &
    pid=$!
    sleep 1
    kill -TERM "$pid"    # fails the test if the run already ended: it must still be running
    st=0
    wait "$pid" || st=$?
    [ "$st" -eq 143 ]
    [ -z "$(find . -name '*.tmp.*' -o -name '.*.kdtmp.*')" ]
    [ -z "$(find cache -name '*.kd' 2>/dev/null)" ] && [ ! -e m.kd ]
}

# the SIMD paths this CPU can run, by the names of KD_SIMD
simd_paths() {
    echo generic
    grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && echo avx2
    grep -qw avx512f /proc/cpuinfo && echo avx512
    return 0
}
key_of() { sed -n 's/.*(key \([0-9a-f]*\)).*/\1/p' "$1"; }

@test "each ranking SIMD path (KD_SIMD) gives a stage the same key and the same content" {
    [ "$(simd_paths | wc -l)" -gt 1 ] || skip "this CPU runs only the generic path"
    small_dataset 1 s.kd
    train s.kd -o t.kd
    for isa in $(simd_paths); do
        mkdir "$isa"
        # rrd ranks with the teacher (kd_rank), kd-eval ranks every model
        KD_SIMD=$isa kd-distill --cache "$isa/c" --teacher t.kd --method rrd --dim 8 --epochs 2 s.kd -o "$isa/k.kd" 2>"$isa/err"
        KD_SIMD=$isa kd-eval --no-timing --cache "$isa/c" -k 5 --per-user "$isa/pu.tsv" -o "$isa/e.tsv" s.kd t.kd "$isa/k.kd" 2>>"$isa/err"
        [ "$(grep -c ': ran in ' "$isa/err")" -eq 2 ]
    done
    for isa in $(simd_paths); do
        [ "$(key_of "$isa/err")" = "$(key_of generic/err)" ]
        cmp generic/k.kd "$isa/k.kd"
        cmp generic/e.tsv "$isa/e.tsv" && cmp generic/pu.tsv "$isa/pu.tsv"
    done
}

@test "each training SIMD clone gives a stage the same key and the same content" {
    # kd_vec's callers are target_clones (avx512f, avx2, default), chosen by gcc's resolver
    # from cpuid; kd_cache.h records why they agree (three builds compared).  This test
    # runs itself once the tools can force a clone through KD_SIMD (a bad name is then an
    # error, as kd_rank's is)
    small_dataset 1 s.kd
    KD_SIMD=no-such-path run --separate-stderr kd-train -q --dim 8 --epochs 2 s.kd -o probe.kd
    [ "$status" -ne 0 ] || skip "kd-train does not read KD_SIMD yet: training's clones cannot be forced at run time"
    for isa in $(simd_paths); do
        KD_SIMD=$isa kd-train --dim 8 --epochs 3 --cache "c-$isa" s.kd -o "m-$isa.kd" 2>"err-$isa"
        KD_SIMD=$isa kd-distill --cache "c-$isa" --teacher "m-$isa.kd" --method rd --dim 8 --epochs 2 s.kd -o "k-$isa.kd" 2>>"err-$isa"
        [ "$(key_of "err-$isa")" = "$(key_of err-generic)" ]
        cmp m-generic.kd "m-$isa.kd" && cmp k-generic.kd "k-$isa.kd"
    done
}

@test "glibc's libm variant is part of the key: an FMA machine and an SSE2 one keep separate entries" {
    grep -qw fma /proc/cpuinfo && grep -qw avx2 /proc/cpuinfo || skip "this CPU has no FMA/AVX2: one libm class only"
    small_dataset 1 s.kd
    run --separate-stderr -0 train --cache cache s.kd -o m.kd
    fma=$(echo "$stderr" | key_of /dev/stdin)
    # the libm SSE2 variants (what a CPU without FMA runs): another key, so computed
    GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA run --separate-stderr -0 kd-train --dim 8 --epochs 2 --cache cache s.kd -o m2.kd
    [[ $stderr == "kd-train m2.kd: ran in "* ]]
    [ "$(echo "$stderr" | key_of /dev/stdin)" != "$fma" ]
    # without AVX-512 glibc still runs its FMA variants (and our clones agree): the same key
    GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F run --separate-stderr -0 kd-train --dim 8 --epochs 2 --cache cache s.kd -o m3.kd
    [[ $stderr == "kd-train m3.kd: cached (key $fma)" ]]
    [ "$(find cache -name '*.kd' | wc -l)" -eq 2 ]
}
