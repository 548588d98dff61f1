#!/usr/bin/env bats
# kd-distill: the study's loss reproduced exactly, the ranking methods, and refusals.
load test_helper

setup() {
    small_dataset 1 small.kd
    kd-train -q --dim 16 --epochs 5 small.kd -o t.kd
}

params() { for s in user_emb item_emb item_bias; do kd-cat "$1" "$s"; done; }

@test "margin-mse with alpha 0 trains exactly the plain BPR student" {
    kd-train -q --dim 8 --epochs 6 --seed 3 small.kd -o plain.kd
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0 --dim 8 --epochs 6 --seed 3 small.kd -o kd0.kd
    params plain.kd >a
    params kd0.kd >b
    cmp a b
}

@test "margin-mse: the temperature has no effect (T^2 * MSE(ds/T, dt/T) = MSE(ds, dt))" {
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0.2 --temperature 1 --dim 8 --epochs 4 small.kd -o t1.kd
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0.2 --temperature 4 --dim 8 --epochs 4 small.kd -o t4.kd
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0.2 --temperature 3 --dim 8 --epochs 4 small.kd -o t3.kd
    params t1.kd >a
    params t4.kd >b
    params t3.kd >c
    cmp a b                              # a power of two: not a bit differs
    paste a c | awk -F'\t' '{ n = NF / 2; for (i = 1; i <= n; i++) { d = $i - $(i + n); if (d < 0) d = -d; if (d > 1e-4) exit 1 } }'
}

@test "margin-mse with alpha > 0 differs from plain BPR (the term does something)" {
    kd-train -q --dim 8 --epochs 4 small.kd -o plain.kd
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0.2 --dim 8 --epochs 4 small.kd -o m.kd
    params plain.kd >a
    params m.kd >b
    ! cmp -s a b
}

@test "every method is bit-identical whatever --threads" {
    for m in margin-mse rd rrd ce dcd; do
        kd-distill -q --teacher t.kd --method "$m" --alpha 0.1 --dim 8 --epochs 3 --threads 1 small.kd -o a.kd
        kd-distill -q --teacher t.kd --method "$m" --alpha 0.1 --dim 8 --epochs 3 --threads 3 small.kd -o b.kd
        [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
    done
}

@test "distillation with --replicas is bit-identical whatever --threads" {
    for m in rrd dcd margin-mse; do
        kd-distill -q --teacher t.kd --method "$m" --alpha 0.1 --dim 8 --epochs 3 --replicas 4 --threads 1 small.kd -o a.kd
        kd-distill -q --teacher t.kd --method "$m" --alpha 0.1 --dim 8 --epochs 3 --replicas 4 --threads 2 small.kd -o b.kd
        [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
    done
}

@test "provenance names the method, its parameters and the teacher" {
    kd-distill -q --teacher t.kd --method rrd --topk 5 --uninteresting 7 --dim 8 --epochs 2 small.kd -o m.kd
    kd-cat m.kd provenance >p
    grep -qx 'role=distill-rrd' p
    grep -qx 'topk=5' p
    grep -qx 'uninteresting=7' p
    grep -qx "input.teacher=$(content_id t.kd)" p
}

@test "a teacher trained on another dataset is refused" {
    small_dataset 2 other.kd
    kd-train -q --dim 16 --epochs 1 other.kd -o other-t.kd
    run --separate-stderr -1 kd-distill --teacher other-t.kd --method rrd small.kd -o m.kd
    [[ $stderr == "kd-distill: other-t.kd: teacher was trained on dataset $(content_id other.kd), not on small.kd ($(content_id small.kd))" ]]
    [ ! -e m.kd ]
}

@test "usage: missing teacher or method, unknown method, bad method flag" {
    run --separate-stderr -2 kd-distill --method rrd small.kd
    [ "$stderr" = "kd-distill: --teacher and --method are required" ]
    run --separate-stderr -2 kd-distill --teacher t.kd --method magic small.kd
    [[ $stderr == "kd-distill: --method: unknown method 'magic'"* ]]
    run --separate-stderr -2 kd-distill --teacher t.kd --method margin-mse --alpha 2 small.kd
    [[ $stderr == "kd-distill: --alpha: 2 is out of range"* ]]
    run --separate-stderr -2 kd-distill --teacher t.kd --method rrd --topk 50 small.kd -o m.kd
    [[ $stderr == "kd-distill: need 1 <= --topk <= --topm <= items (40)"* ]]
}

@test "rrd from a teacher that knows what the student cannot beats the plain student" {
    # the generator's own model is the teacher: rank 32, which a dim-4 student cannot hold
    kd-gen synth --users 400 --items 200 --mean 20 --rank 32 --clusters 32 --seed 5 --truth truth.kd -o d.kd
    ES="--dim 4 --epochs 60 --valid-every 2 --patience 5 --select-metric recall@10"
    kd-train -q $ES d.kd -o plain.kd
    kd-distill -q --teacher truth.kd --method rrd $ES d.kd -o rrd.kd
    kd-eval --no-timing -k 10 d.kd plain.kd rrd.kd >out.tsv
    plain=$(awk -F'\t' 'NR == 2 { print $8 }' out.tsv)
    rrd=$(awk -F'\t' 'NR == 3 { print $8 }' out.tsv)
    awk -v p="$plain" -v r="$rrd" 'BEGIN { exit !(r > 1.1 * p) }'
}
