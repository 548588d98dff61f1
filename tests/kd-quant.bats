#!/usr/bin/env bats
# kd-quant: post-training quantisation of a model, read back by every model reader.
load test_helper

setup() {
    small_dataset 1 small.kd
    kd-train -q --dim 12 --epochs 4 small.kd -o m.kd
}

# u32 at OFFSET of FILE
get_u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }

@test "every format gives a model that kd-eval reads, with its role and exact serving bytes" {
    for b in 8 4; do for s in asym sym; do
        run --separate-stderr -0 kd-quant --bits $b --scheme $s m.kd -o q$b$s.kd
        [ -z "$output" ]
        [[ $stderr == "kd-quant: q$b$s.kd: $b-bit $s, serving bytes "* ]]
    done; done
    # 100 rows (60 users + 40 items): float 4*12+4 = 52 B a row; int8 12 codes + scale
    # (+ offset) + bias; int4 6 codes + the same
    [[ $(kd-quant --bits 8 --scheme asym m.kd -o /dev/null 2>&1) == *"serving bytes 2400 (float 5200, 2.17x smaller)" ]]
    [[ $(kd-quant --bits 8 --scheme sym m.kd -o /dev/null 2>&1) == *"serving bytes 2000 (float 5200,"* ]]
    [[ $(kd-quant --bits 4 --scheme asym m.kd -o /dev/null 2>&1) == *"serving bytes 1800 (float 5200,"* ]]
    [[ $(kd-quant --bits 4 --scheme sym m.kd -o /dev/null 2>&1) == *"serving bytes 1400 (float 5200,"* ]]
    run --separate-stderr -0 kd-eval -k 5 small.kd m.kd q8asym.kd q8sym.kd q4asym.kd q4sym.kd
    [ "$(printf '%s\n' "$output" | cut -f1-4 | sed -n 3p)" = "$(printf 'q8asym\tbpr+q8asym\t12\t1300')" ]
    [ "$(printf '%s\n' "$output" | cut -f2 | sed -n 6p)" = "bpr+q4sym" ]
    run --separate-stderr -0 kd-info q4asym.kd
    [[ $output == *"params:      1300"* ]]
    [[ $output == *"user_emb_q           u8 "* ]]
    [[ $output == *"item_emb_offset      f32 "* ]]
    [[ $output != *" user_emb "* ]]
}

@test "provenance names the input model, the format, and keeps the source's lines" {
    kd-quant -q --bits 4 --scheme sym m.kd -o q.kd
    kd-cat q.kd provenance >p
    grep -qx "input.model=$(content_id m.kd)" p
    grep -qx "input.dataset=$(content_id small.kd)" p
    grep -qx 'quant.bits=4' p
    grep -qx 'quant.scheme=sym' p
    grep -qx 'quant.biases=f32' p
    grep -qx 'role=bpr+q4sym' p
    grep -qx 'serving_bytes=1400' p
    grep -qx 'serving_bytes.f32=5200' p
    grep -qx 'source.tool=kd-train' p
    grep -qx 'source.dim=12' p
    # the default scheme is asym
    kd-quant -q --bits 8 m.kd -o d.kd
    kd-cat d.kd provenance | grep -qx 'quant.scheme=asym'
}

@test "the same input and flags give the same bytes; '-' reads and writes the streams" {
    kd-quant -q --bits 4 m.kd -o a.kd
    kd-quant -q --bits 4 m.kd -o b.kd
    cmp a.kd b.kd
    kd-quant -q --bits 4 - <m.kd >c.kd
    cmp a.kd c.kd
    kd-quant -q --bits 8 m.kd -o d.kd
    ! cmp -s a.kd d.kd || false
}

@test "a quantised file is format version 2; a float model stays version 1" {
    kd-quant -q --bits 8 m.kd -o q.kd
    [ "$(get_u32 q.kd 8)" = 2 ]
    [ "$(get_u32 m.kd 8)" = 1 ]
}

@test "an int8 teacher works as kd-distill's teacher" {
    kd-quant -q --bits 8 m.kd -o q.kd
    run --separate-stderr -0 kd-distill -q --teacher q.kd --method dcd --dim 4 --epochs 2 small.kd -o s.kd
    kd-cat s.kd provenance | grep -qx "input.teacher=$(content_id q.kd)"
    run --separate-stderr -0 kd-eval -k 5 small.kd s.kd
    # and a distilled student quantises like any float model
    run --separate-stderr -0 kd-quant -q --bits 4 s.kd -o sq.kd
    kd-cat sq.kd provenance | grep -qx 'role=distill-dcd+q4asym'
}

@test "--cache: the second identical run is restored, with the same bytes" {
    run --separate-stderr -0 kd-quant --bits 8 --cache c m.kd -o a.kd
    [[ $stderr == "kd-quant a.kd: ran in "* ]]
    run --separate-stderr -0 kd-quant --bits 8 --cache c --label again m.kd -o b.kd
    [[ $stderr == "kd-quant again: cached (key "* ]]
    cmp a.kd b.kd
    run --separate-stderr -0 kd-quant --bits 4 --cache c m.kd -o d.kd
    [[ $stderr == "kd-quant d.kd: ran in "* ]]
}

@test "usage errors: bits, scheme, operands (exit 2, nothing written)" {
    run --separate-stderr -2 kd-quant --bits 3 m.kd -o x.kd
    [ "$stderr" = "kd-quant: --bits: 3 is not 8 or 4" ]
    run --separate-stderr -2 kd-quant --bits abc m.kd -o x.kd
    [[ $stderr == "kd-quant: --bits: "* ]]
    one_line
    run --separate-stderr -2 kd-quant --bits 16 m.kd -o x.kd
    [ "$stderr" = "kd-quant: --bits: 16 is not 8 or 4" ]
    run --separate-stderr -2 kd-quant --bits 8 --scheme affine m.kd -o x.kd
    [ "$stderr" = "kd-quant: --scheme: 'affine' is not asym or sym" ]
    run --separate-stderr -2 kd-quant m.kd -o x.kd
    [ "$stderr" = "kd-quant: --bits is required (8 or 4)" ]
    run --separate-stderr -2 kd-quant --bits 8 -o x.kd
    [ "$stderr" = "kd-quant: expected one MODEL (a path or '-')" ]
    run --separate-stderr -2 kd-quant --bits 8 m.kd m.kd -o x.kd
    run --separate-stderr -2 kd-quant --bits 8 --level 12 m.kd -o x.kd
    [ ! -e x.kd ]
}

@test "bad inputs: a dataset, NaN or infinite weights, a quantised model (exit 1, output untouched)" {
    H="$FIXTURES/hostile"
    echo keep >out.kd
    run --separate-stderr -1 kd-quant --bits 8 small.kd -o out.kd
    [ "$stderr" = "kd-quant: small.kd: is a dataset, not a model" ]
    run --separate-stderr -1 kd-quant --bits 8 "$H/nan-model.kd" -o out.kd
    [ "$stderr" = "kd-quant: $H/nan-model.kd: model has NaN or infinite parameters" ]
    run --separate-stderr -1 kd-quant --bits 4 "$H/inf-model.kd" -o out.kd
    [ "$stderr" = "kd-quant: $H/inf-model.kd: model has NaN or infinite parameters" ]
    kd-quant -q --bits 8 --scheme sym m.kd -o q.kd
    run --separate-stderr -1 kd-quant --bits 4 q.kd -o out.kd
    [ "$stderr" = "kd-quant: q.kd: already quantised (8-bit sym); quantise the float model it came from" ]
    run --separate-stderr -1 kd-quant --bits 8 nope.kd -o out.kd
    [ "$stderr" = "kd-quant: nope.kd: No such file or directory" ]
    [ "$(cat out.kd)" = keep ]
    no_temporaries
}

@test "a corrupt quantised model is refused by every reader" {
    kd-quant -q --bits 4 m.kd -o q.kd
    size=$(stat -c %s q.kd)
    # past the header and the 10-entry table: inside the payloads
    for off in $((48 + 10 * 96 + 30)) $((size / 2)) $((size - 3)); do
        cp q.kd bad.kd
        flip_byte bad.kd "$off"
        for cmd in "kd-eval -k 5 small.kd bad.kd" "kd-distill --teacher bad.kd --method dcd --epochs 1 small.kd -o s.kd" \
                   "kd-info bad.kd" "kd-quant --bits 8 bad.kd -o s.kd"; do
            run --separate-stderr -1 $cmd
            one_line
            [[ $stderr == *"bad.kd: "*"corrupt compressed data"* || $stderr == *"bad.kd: "*"checksum mismatch"* ]]
        done
    done
    head -c $((size - 10)) q.kd >short.kd
    run --separate-stderr -1 kd-eval -k 5 small.kd short.kd
    [[ $stderr == "kd-eval: short.kd: truncated ("* ]]
    [ ! -e s.kd ]
}
