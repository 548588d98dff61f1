#!/usr/bin/env bats
# kd-info, and through it every way the artifact reader must refuse a bad file.
load test_helper

setup() { small_dataset 1 small.kd; }

@test "kd-info shows kind, content ID, sections and provenance" {
    run --separate-stderr -0 kd-info small.kd
    [[ $output == *"kind:        dataset"* ]]
    [[ $output == *"content_id:  "[0-9a-f]* ]]
    [[ $output == *"train                csr   60x40 nnz="* ]]
    [[ $output == *"tool=kd-gen"* ]]
    [[ $output == *"synth.users=60"* ]]
    [ -z "$stderr" ]
}

@test "kd-info reads a pipe and gives the same content ID as the file" {
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 1 | kd-info --json - >pipe.json
    kd-info --json small.kd >file.json
    grep -o '"content_id":"[0-9a-f]*"' pipe.json >a
    grep -o '"content_id":"[0-9a-f]*"' file.json >b
    cmp a b
    grep -q '"file":"<stdin>"' pipe.json
}

@test "the content ID does not depend on the compression level" {
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 1 --level 0 -o l0.kd
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 1 --level 9 -o l9.kd
    [ "$(content_id l0.kd)" = "$(content_id small.kd)" ]
    [ "$(content_id l9.kd)" = "$(content_id small.kd)" ]
    ! cmp -s l0.kd l9.kd || false
}

@test "kd-info --json is one line per file" {
    cp small.kd b.kd
    run --separate-stderr -0 kd-info --json small.kd b.kd
    [ "${#lines[@]}" -eq 2 ]
    [[ ${lines[0]} == '{"file":"small.kd","kind":"dataset"'* ]]
}

@test "kd-info exits 1 on a missing file" {
    run --separate-stderr -1 kd-info nope.kd
    [ "$stderr" = "kd-info: nope.kd: No such file or directory" ]
}

@test "kd-info exits 1 on a directory" {
    mkdir d
    run --separate-stderr -1 kd-info d
    [ "$stderr" = "kd-info: d: is a directory" ]
}

@test "kd-info exits 1 on an empty file" {
    : >empty.kd
    run --separate-stderr -1 kd-info empty.kd
    [ "$stderr" = "kd-info: empty.kd: empty file" ]
}

@test "kd-info exits 1 on a file that is not an artifact" {
    echo "user item" >text.kd
    run --separate-stderr -1 kd-info text.kd
    [ "$stderr" = "kd-info: text.kd: not a kdrec artifact (bad magic)" ]
}

@test "kd-info refuses a file truncated at any point with one line" {
    size=$(stat -c %s small.kd)
    for n in 1 7 8 30 47 48 100 200 $((48 + 6 * 96)) $((48 + 6 * 96 + 1)) $((size / 2)) $((size - 1)); do
        head -c "$n" small.kd >cut.kd
        run --separate-stderr -1 kd-info cut.kd
        one_line
        [[ $stderr == "kd-info: cut.kd: "* ]]
        [[ $stderr == *truncated* || $stderr == *"bad magic"* ]]
    done
}

@test "kd-info refuses trailing bytes" {
    cp small.kd long.kd
    printf 'x' >>long.kd
    run --separate-stderr -1 kd-info long.kd
    [[ $stderr == "kd-info: long.kd: trailing bytes after the last section"* ]]
}

@test "a flipped bit in the header is a header checksum mismatch" {
    for off in 12 16 20 24 33; do
        cp small.kd bad.kd
        flip_byte bad.kd "$off"
        run --separate-stderr -1 kd-info bad.kd
        one_line
        [[ $stderr == "kd-info: bad.kd: "* ]]
    done
    cp small.kd bad.kd && flip_byte bad.kd 24
    run --separate-stderr -1 kd-info bad.kd
    [ "$stderr" = "kd-info: bad.kd: header checksum mismatch (corrupt file)" ]
}

@test "a flipped bit in the section table or a stored checksum is caught" {
    for off in 48 90 130 $((48 + 80)) $((48 + 96 + 85)); do
        cp small.kd bad.kd
        flip_byte bad.kd "$off"
        run --separate-stderr -1 kd-info bad.kd
        [ "$stderr" = "kd-info: bad.kd: header checksum mismatch (corrupt file)" ]
    done
}

@test "a flipped bit in the compressed payload is caught" {
    size=$(stat -c %s small.kd)
    for off in $((48 + 6 * 96 + 3)) $((48 + 6 * 96 + 500)) $((size / 2)) $((size - 2)); do
        cp small.kd bad.kd
        flip_byte bad.kd "$off"
        run --separate-stderr -1 kd-info bad.kd
        one_line
        [[ $stderr == *"corrupt compressed data"* || $stderr == *"checksum mismatch"* ]]
    done
}

@test "a future format version is refused with an upgrade hint" {
    cp small.kd future.kd
    put_u32 future.kd 8 3
    run --separate-stderr -1 kd-info future.kd
    [ "$stderr" = "kd-info: future.kd: format version 3 is newer than this kdrec reads (2); upgrade kdrec" ]
}

@test "kd-info reports a bad file and still shows the good ones" {
    run --separate-stderr -1 kd-info small.kd nope.kd
    [[ $output == *"kind:        dataset"* ]]
    [ "$stderr" = "kd-info: nope.kd: No such file or directory" ]
}

@test "kd-info without a file is a usage error" {
    run --separate-stderr -2 kd-info
    [[ $stderr == "kd-info: no file given"* ]]
}
