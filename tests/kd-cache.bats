#!/usr/bin/env bats
# The stage cache as a cluster sees it (issue 15): publishing that stays atomic on NFS,
# restores that fall back to a copy where hard links are refused, a gc that leaves NFS's
# .nfsXXXX files alone, and the stage log's Slurm field.
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
