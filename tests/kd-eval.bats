#!/usr/bin/env bats
# kd-eval: the table, its determinism, timings, side outputs, and refusals.
load test_helper

setup() {
    small_dataset 1 small.kd
    kd-train -q --dim 16 --epochs 5 small.kd -o m.kd
}

col() { # col NAME FILE: the column NAME of the first data row
    awk -F'\t' -v n="$1" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == n) c = i } NR == 2 { print $c }' "$2"
}

@test "the table has one row per model, every metric at every K, and timings" {
    kd-train -q --dim 8 --epochs 5 small.kd -o s.kd
    kd-eval -k 5,10 small.kd m.kd s.kd >out.tsv
    [ "$(wc -l <out.tsv)" -eq 3 ]
    head -1 out.tsv | grep -q $'recall@5\trecall@10\tndcg@5\tndcg@10\tprecision@5'
    head -1 out.tsv | grep -q $'map@10\tusers\tskipped\tlat_mean_us\tlat_p50_us\tlat_p90_us\tlat_p99_us\tusers_per_s'
    for c in lat_mean_us lat_p50_us lat_p90_us lat_p99_us users_per_s; do
        awk -v v="$(col $c out.tsv)" 'BEGIN { exit !(v > 0) }'
    done
    [ "$(col model out.tsv)" = m ]
    [ "$(col dim out.tsv)" = 16 ]
    [ "$(col params out.tsv)" = $(( (60 + 40) * 17 )) ]
}

@test "--no-timing output is identical across runs and thread counts" {
    kd-eval --no-timing --threads 1 small.kd m.kd >a.tsv
    kd-eval --no-timing --threads 2 small.kd m.kd >b.tsv
    kd-eval --no-timing --threads 7 small.kd m.kd >c.tsv
    cmp a.tsv b.tsv
    cmp a.tsv c.tsv
    ! grep -q lat_ a.tsv || false
}

@test "--reference gives the compression ratio; the study's 97.5K / 49.5K = 1.97" {
    kd-gen synth -o d.kd
    kd-train -q --dim 64 --epochs 1 d.kd -o t.kd
    kd-train -q --dim 32 --epochs 1 d.kd -o s.kd
    kd-eval --no-timing --reference t.kd d.kd s.kd >out.tsv
    [ "$(col params out.tsv)" = 49500 ]
    [ "$(col compression out.tsv)" = 1.9697 ]
}

@test "--per-user writes one row per evaluated user whose mean is the table's" {
    kd-eval --no-timing -k 10 --per-user pu.tsv small.kd m.kd >out.tsv
    users=$(col users out.tsv)
    [ "$(($(wc -l <pu.tsv) - 1))" -eq "$users" ]
    mean=$(awk -F'\t' 'NR > 1 { s += $3 } END { printf "%.6f", s / (NR - 1) }' pu.tsv)
    [ "$mean" = "$(col recall@10 out.tsv)" ]
}

@test "--topk lists ranked recommendations in original ids, never a train item" {
    printf '10 100\n10 101\n10 102\n11 100\n11 103\n11 104\n12 101\n12 104\n12 105\n13 102\n13 103\n13 105\n' >t.txt
    kd-gen import --format triples --test-ratio 0.3 --valid-ratio 0 t.txt -o d.kd
    kd-train -q --dim 4 --epochs 3 d.kd -o x.kd
    kd-eval --no-timing -k 3 --topk top.tsv d.kd x.kd >/dev/null
    awk -F'\t' '$4 < 100 || $4 > 105 || $3 < 1 || $3 > 3 { exit 1 }' top.tsv
    kd-cat --original-ids d.kd train | sed 's/\t/ /' | sort >train.pairs
    awk -F'\t' '{ print $2 " " $4 }' top.tsv | sort >rec.pairs
    [ -z "$(comm -12 train.pairs rec.pairs)" ]
}

@test "--topk lists only users with items in the split (unranked users' rows are empty, not garbage)" {
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --clusters 4 -o d.kd
    kd-train -q --dim 8 --epochs 2 d.kd -o a.kd
    kd-train -q --dim 4 --epochs 2 d.kd -o b.kd
    run -0 kd-eval --no-timing -k 5 --topk top.tsv -o e.tsv d.kd a.kd b.kd
    kd-cat --original-ids d.kd test | cut -f1 | sort -u >tested
    cut -f2 top.tsv | sort -u >listed
    cmp tested listed
    awk -F'\t' '$3 < 1 || $3 > 5 || $5 != $5 + 0 { exit 1 }' top.tsv
}

@test "--split valid evaluates on the validation split" {
    kd-eval --no-timing --split valid small.kd m.kd >v.tsv
    kd-eval --no-timing small.kd m.kd >t.tsv
    ! cmp -s v.tsv t.tsv || false
}

@test "early stopping keeps the best epoch's parameters" {
    kd-train -q --dim 16 --epochs 40 --lr 0.3 --reg 0 --valid-every 1 --patience 40 --select-metric recall@10 small.kd -o es.kd
    best=$(kd-cat es.kd train.valid | sort -t$'\t' -k2,2g | tail -1 | cut -f2)
    last=$(kd-cat es.kd train.valid | tail -1 | cut -f2)
    kd-eval --no-timing -k 10 --split valid small.kd es.kd >v.tsv
    awk -v a="$best" -v b="$(col recall@10 v.tsv)" 'BEGIN { exit !(a - b < 1e-6 && b - a < 1e-6) }'
    # the learning rate overfits: the best epoch is not the last one
    awk -v a="$best" -v b="$last" 'BEGIN { exit !(a > b) }'
    kd-cat es.kd provenance | grep -q '^result.best_epoch='
}

@test "a model for another dataset is refused" {
    kd-gen synth --users 61 --items 40 --mean 8 -o other.kd
    run --separate-stderr -1 kd-eval other.kd m.kd
    [ "$stderr" = "kd-eval: m.kd: model is 60 users x 40 items, the dataset 61 x 40 (a model for another dataset?)" ]
}

@test "K out of range, a missing split and a dataset given as model are refused" {
    run --separate-stderr -2 kd-eval -k 0 small.kd m.kd
    [[ $stderr == "kd-eval: -k: 0 is out of range"* ]]
    run --separate-stderr -2 kd-eval -k 41 small.kd m.kd
    [ "$stderr" = "kd-eval: K = 41 is not in 1..40 (the number of items)" ]
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --valid-ratio 0 -o nv.kd
    kd-train -q --dim 4 --epochs 1 nv.kd -o nvm.kd
    run --separate-stderr -1 kd-eval --split valid nv.kd nvm.kd
    [ "$stderr" = "kd-eval: dataset has no valid split (no interactions in it)" ]
    run --separate-stderr -1 kd-eval small.kd small.kd
    [ "$stderr" = "kd-eval: small.kd: is a dataset, not a model" ]
}

@test "a failing model leaves no partial output" {
    echo old >out.tsv
    run --separate-stderr -1 kd-eval -o out.tsv small.kd m.kd nope.kd
    [ "$(cat out.tsv)" = old ]
    no_temporaries
}

# cols FILE NAME...: the named columns of every data row, space-separated
cols() {
    local f=$1; shift
    awk -F'\t' -v want="$*" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; n = split(want, w, " "); next }
        { line = ""; for (k = 1; k <= n; k++) line = line (k > 1 ? " " : "") $c[w[k]]; print line }' "$f"
}

@test "each model's role, method, knob and seed come from its provenance, not its file name" {
    kd-train -q --dim 16 --epochs 2 --seed 7 small.kd -o student.kd
    kd-distill -q --teacher m.kd --method rrd --lambda 0.3 --dim 4 --epochs 2 --seed 7 small.kd -o teacher.kd
    kd-distill -q --teacher m.kd --method margin-mse --alpha 0.1 --dim 4 --epochs 2 --seed 7 small.kd -o x.kd
    kd-eval --no-timing -k 10 small.kd student.kd teacher.kd x.kd m.kd >out.tsv
    # the older columns stay first and in place
    head -1 out.tsv | grep -q $'^model\tkind\tdim\tparams\tbytes\tcompression\tcompression_bytes\trecall@10'
    head -1 out.tsv | grep -q $'\tskipped\tid\trole\tmethod\tknob\tknob_value\tseed\tteacher\tquant\tsource\tsettings$'
    cols out.tsv model role method knob knob_value seed quant source >got
    printf '%s\n' 'student student bpr - - 7 - -' 'teacher distilled rrd lambda 0.3 7 - -' \
        'x distilled margin-mse alpha 0.1 7 - -' 'm teacher bpr - - 1 - -' >want
    diff want got
    tid=$(content_id m.kd)
    [ "$(cols out.tsv teacher | sed -n 2p)" = "$tid" ]
    [ "$(cols out.tsv id teacher | sed -n 4p)" = "$tid -" ]
    # alone, a BPR model is a student; as the --reference it is the teacher
    kd-eval --no-timing small.kd m.kd >a.tsv
    [ "$(cols a.tsv role)" = student ]
    kd-eval --no-timing --reference m.kd small.kd m.kd >b.tsv
    [ "$(cols b.tsv role)" = teacher ]
    kd-eval --no-timing --json small.kd m.kd >c.json
    grep -q '"role":"student","method":"bpr","knob":null,"knob_value":null,"seed":1,"teacher":null,"quant":null,"source":null,"settings":"[0-9a-f]\{16\}"}$' c.json
}

@test "settings: equal for models of one method that differ only in the knob, else not" {
    d="--teacher m.kd --method dcd --dim 4 --epochs 2 --seed 3 small.kd"
    kd-distill -q $d --lambda 0.1 -o a.kd
    kd-distill -q $d --lambda 1 -o b.kd
    kd-distill -q $d --lambda 0.1 --refresh 2 -o c.kd
    kd-distill -q $d --lambda 0.1 --topk 5 -o d.kd
    kd-distill -q --teacher m.kd --method dcd --dim 4 --epochs 2 --seed 4 --lambda 0.1 small.kd -o e.kd
    kd-eval --no-timing small.kd a.kd b.kd c.kd d.kd e.kd >out.tsv
    cols out.tsv settings >s
    [ "$(sed -n 1p s)" = "$(sed -n 2p s)" ]
    [ "$(sort -u s | wc -l)" = 4 ] # a = b; c, d (flags) and e (seed) each their own
    [ "$(grep -cx '[0-9a-f]\{16\}' s)" = 5 ]
}

@test "bytes are the serving bytes: 4 x params in float, codes + scales + offsets + biases quantised" {
    kd-distill -q --teacher m.kd --method rd --lambda 0.3 --dim 8 --epochs 2 --seed 3 small.kd -o d.kd
    kd-quant -q --bits 8 --scheme sym m.kd -o m8.kd
    kd-quant -q --bits 4 d.kd -o d4.kd
    kd-eval --no-timing -k 10 --reference m.kd small.kd m.kd d.kd m8.kd d4.kd >out.tsv
    rows=$(( 60 + 40 ))
    # float: (users + items) x (dim + 1) floats; int8 sym: dim codes + scale + bias per row;
    # int4 asym: dim/2 code bytes + scale + offset + bias per row
    printf '%s\n' "$(( rows * 17 * 4 )) 1.0000" "$(( rows * 9 * 4 )) 1.8889" "$(( rows * (16 + 8) )) 2.8333" \
        "$(( rows * (4 + 12) )) 4.2500" >want
    cols out.tsv bytes compression_bytes >got
    diff want got
    [ "$(cols out.tsv params | sort -n -u | tr '\n' ' ')" = "$(( rows * 9 )) $(( rows * 17 )) " ]
}

@test "a quantised model says which scheme and which model it quantises, and keeps that model's identity" {
    kd-distill -q --teacher m.kd --method rd --lambda 0.3 --dim 8 --epochs 2 --seed 3 small.kd -o d.kd
    kd-quant -q --bits 8 m.kd -o m8.kd
    kd-quant -q --bits 4 --scheme sym d.kd -o d4.kd
    # the quantised files named as each other: identity never comes from the name
    kd-eval --no-timing -k 10 --name d4 --name m8 small.kd m8.kd d4.kd m.kd d.kd >out.tsv
    cols out.tsv model role method knob knob_value seed teacher quant source >got
    mid=$(content_id m.kd) did=$(content_id d.kd)
    printf '%s\n' "d4 quantised bpr - - 1 - int8-asym $mid" "m8 quantised rd lambda 0.3 3 $mid int4-sym $did" \
        "m teacher bpr - - 1 - - -" "d distilled rd lambda 0.3 3 $mid - -" >want
    diff want got
    kd-eval --no-timing --json small.kd m8.kd >q.json
    grep -q "\"role\":\"quantised\",.*\"quant\":\"int8-asym\",\"source\":\"$mid\",\"settings\":\"[0-9a-f]\{16\}\"}\$" q.json
}

@test "--name is not limited in number" {
    args=()
    for k in $(seq 300); do args+=(--name "n$k"); done
    models=()
    for k in $(seq 300); do models+=(m.kd); done
    kd-eval --no-timing -k 10 "${args[@]}" small.kd "${models[@]}" >out.tsv
    [ "$(wc -l <out.tsv)" -eq 301 ]
    [ "$(tail -1 out.tsv | cut -f1)" = n300 ]
}
