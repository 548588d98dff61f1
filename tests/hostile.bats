#!/usr/bin/env bats
# Hostile and odd inputs: each is a clear error or a documented correct handling, never a
# crash (a signal would make `run -N` fail).  The README's table lists the same cases.
load test_helper

@test "ids near 2^31, 2^63 and 2^64-1 import and print back exactly" {
    printf '2147483647 9223372036854775807\n2147483648 9223372036854775808\n18446744073709551615 1\n2147483647 1\n' >big.txt
    kd-gen import --format triples --test-ratio 0.01 --valid-ratio 0 big.txt -o d.kd
    kd-cat --original-ids d.kd train | sort >got
    sort big.txt | tr ' ' '\t' >want
    cmp got want
}

@test "an id of 2^64 is out of range" {
    printf '18446744073709551616 1\n' >over.txt
    run --separate-stderr -1 kd-gen import --format triples over.txt -o d.kd
    [ "$stderr" = "kd-gen: over.txt:1: user id out of range (above 2^64-1)" ]
}

@test "a 1 MB line of items (adj) is read whole" {
    awk 'BEGIN { printf "7"; for (i = 0; i < 200000; i++) printf " %d", i; printf "\n8 1 2 3\n" }' >long.adj
    [ "$(stat -c %s long.adj)" -gt 1000000 ]
    kd-gen import --format adj --test-ratio 0.1 long.adj -o d.kd
    kd-info d.kd | grep -q 'stat.items=200000'
}

@test "CRLF line ends and a UTF-8 byte-order mark are accepted" {
    printf '\xef\xbb\xbf1\t2\t5\t100\r\n1\t3\t4\t101\r\n2\t2\t5\t102\r\n' >bom.tsv
    kd-gen import --format tsv --min-rating 4 --test-ratio 0.01 bom.tsv -o d.kd
    kd-info d.kd | grep -q 'stat.users=2'
}

@test "NUL bytes in a text input are refused" {
    printf '1 2\n3\0004\n' >nul.txt
    run --separate-stderr -1 kd-gen import --format triples nul.txt -o d.kd
    [ "$stderr" = "kd-gen: nul.txt:2: NUL byte (binary input?)" ]
}

@test "a user with every item in train cannot train, or be ranked" {
    printf '1 1\n1 2\n1 3\n2 1\n' >all.txt
    kd-gen import --format triples --test-ratio 0.01 --valid-ratio 0 all.txt -o d.kd
    run --separate-stderr -1 kd-train -q d.kd -o m.kd
    [[ $stderr == "kd-train: user 1 has 3 train items of 3: fewer than --neg 1 negatives are left" ]]
}

@test "zero users or zero items cannot reach a dataset" {
    printf '# only a comment\n\n' >none.txt
    run --separate-stderr -1 kd-gen import --format triples none.txt -o d.kd
    [ "$stderr" = "kd-gen: none.txt: no interactions (empty input)" ]
    run --separate-stderr -2 kd-gen synth --users 0 -o d.kd
    [[ $stderr == "kd-gen: --users: 0 is out of range"* ]]
}

@test "a model with NaN or infinite parameters is refused by every reader" {
    H=$FIXTURES/hostile
    run --separate-stderr -1 kd-eval -k 2 "$H/tiny.kd" "$H/nan-model.kd"
    [ "$stderr" = "kd-eval: $H/nan-model.kd: model has NaN or infinite parameters" ]
    run --separate-stderr -1 kd-distill --teacher "$H/inf-model.kd" --method rrd --topk 2 --topm 3 "$H/tiny.kd" -o x.kd
    [ "$stderr" = "kd-distill: $H/inf-model.kd: model has NaN or infinite parameters" ]
    [ ! -e x.kd ]
    # and training never writes one: a learning rate that overflows stops with an error
    small_dataset 1 s.kd
    run --separate-stderr -1 kd-train -q --dim 4 --epochs 3 --lr 1000 s.kd -o bad.kd
    [[ $stderr == *"diverged"* ]]
    [ ! -e bad.kd ]
}

@test "a model for another dataset is refused by kd-eval and kd-distill" {
    small_dataset 1 a.kd
    small_dataset 2 b.kd
    kd-train -q --dim 4 --epochs 1 a.kd -o ma.kd
    kd-gen synth --users 61 --items 40 --mean 8 --rank 4 -o c.kd
    run --separate-stderr -1 kd-eval c.kd ma.kd
    [[ $stderr == *"a model for another dataset?"* ]]
    run --separate-stderr -1 kd-distill --teacher ma.kd --method rrd b.kd -o x.kd
    [[ $stderr == *"teacher was trained on dataset"* ]]
}

@test "a FIFO that closes early is a clean truncation error, for artifacts and text" {
    small_dataset 1 s.kd
    mkfifo f1 f2
    (head -c 100 s.kd >f1) &
    run --separate-stderr -1 kd-info f1
    [ "$stderr" = "kd-info: f1: truncated section table" ]
    (printf '1 2\n3' >f2) &
    run --separate-stderr -1 kd-gen import --format triples f2 -o d.kd
    [ "$stderr" = "kd-gen: f2:2: expected at least 2 fields (user item), got 1" ]
    [ ! -e d.kd ]
}

@test "SIGKILL at any moment while writing leaves the old file or the new one, never a part" {
    small_dataset 1 s.kd
    kd-train -q --dim 8 --epochs 2 --no-timing s.kd -o m.kd
    old=$(md5sum <m.kd)
    kd-train -q --dim 8 --epochs 3 --no-timing s.kd -o new.kd
    new=$(md5sum <new.kd)
    for delay in 0 0.005 0.01 0.02 0.03 0.05 0.08 0.12; do
        env --default-signal=INT "$KD_BIN/kd-train" -q --dim 8 --epochs 3 --no-timing s.kd -o m.kd &
        pid=$!
        sleep "$delay"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        got=$(md5sum <m.kd)
        [ "$got" = "$old" ] || [ "$got" = "$new" ]
        old=$got
    done
    kd-train -q --dim 8 --epochs 3 --no-timing s.kd -o m.kd
    no_temporaries
}
