#!/usr/bin/env bats
# kd-gen: synthetic and imported datasets, splits, bad input, and safe output.
load test_helper

# stat KEY FILE: a provenance value
stat_of() { kd-cat "$2" provenance | sed -n "s/^$1=//p"; }
total() { echo $(( $(stat_of stat.train.interactions "$1") + $(stat_of stat.valid.interactions "$1") + $(stat_of stat.test.interactions "$1") )); }

@test "synth: the same seed gives a bit-identical artifact, another seed a different one" {
    small_dataset 7 a.kd
    small_dataset 7 b.kd
    small_dataset 8 c.kd
    cmp a.kd b.kd
    [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
    [ "$(content_id a.kd)" != "$(content_id c.kd)" ]
}

@test "synth: defaults are 1,000 users x 500 items at a few percent density" {
    kd-gen synth -o d.kd
    [ "$(stat_of stat.users d.kd)" = 1000 ]
    [ "$(stat_of stat.items d.kd)" = 500 ]
    awk -v d="$(stat_of stat.density d.kd)" 'BEGIN { exit !(d > 0.01 && d < 0.10) }'
}

@test "synth: split ratios hold within tolerance" {
    kd-gen synth --users 2000 --items 300 --mean 20 --test-ratio 0.25 --valid-ratio 0.2 -o d.kd
    all=$(total d.kd)
    te=$(stat_of stat.test.interactions d.kd)
    va=$(stat_of stat.valid.interactions d.kd)
    awk -v a="$all" -v t="$te" -v v="$va" 'BEGIN { rt = t / a; rv = v / (a - t);
        exit !(rt > 0.24 && rt < 0.26 && rv > 0.19 && rv < 0.21) }'
}

@test "synth: train, valid and test are disjoint per user" {
    small_dataset 3 d.kd
    kd-cat d.kd train >tr; kd-cat d.kd valid >va; kd-cat d.kd test >te
    [ "$(sort tr va te | uniq -d | wc -l)" -eq 0 ]
}

@test "synth: the same bytes for --threads 1, 2 and 3" {
    # 300 users: per thread, whole blocks of 64 users, a partial one and a partial group of 16
    for a in "--users 300 --items 700 --mean 12" "--users 97 --items 61 --rank 33 --mean 20 --seed 4"; do
        for t in 1 2 3; do kd-gen synth $a --threads $t -o t$t.kd; done
        cmp t1.kd t2.kd
        cmp t1.kd t3.kd
    done
    run --separate-stderr -2 kd-gen synth --threads 0 -o d.kd
    [[ $stderr == "kd-gen: --threads: "* ]]
    one_line
    [ ! -e d.kd ]
}

# an adjacency train file: user u has 1 + u % 9 items (users 0, 9, 18, ... have one), and a
# test file with one other item per user
adj_with_test() {
    awk 'BEGIN { for (u = 0; u < 400; u++) { s = u; for (k = 0; k <= u % 9; k++) s = s " " (u * 7 + k * 13) % 300; print s } }' >tr.adj
    awk 'BEGIN { for (u = 0; u < 400; u++) print u, (u * 7 + 200) % 300 + 0 }' >te.adj
}

@test "import --valid-fraction: a seeded share of each user's train moves to valid" {
    adj_with_test
    kd-gen import --format adj --test te.adj tr.adj -o plain.kd
    kd-gen import --format adj --test te.adj --valid-fraction 0.3 --seed 5 tr.adj -o v.kd
    [ "$(stat_of stat.valid.interactions plain.kd)" -eq 0 ]
    # counts add up: train + valid is the old train, test unchanged
    tr0=$(stat_of stat.train.interactions plain.kd)
    tr=$(stat_of stat.train.interactions v.kd)
    va=$(stat_of stat.valid.interactions v.kd)
    [ "$va" -gt 0 ]
    [ $(( tr + va )) -eq "$tr0" ]
    [ "$(stat_of stat.test.interactions v.kd)" -eq "$(stat_of stat.test.interactions plain.kd)" ]
    [ "$(stat_of split.valid_fraction v.kd)" = 0.3 ]
    # train and valid are disjoint and together are the old train
    kd-cat plain.kd train | sort >tr0; kd-cat v.kd train | sort >tr; kd-cat v.kd valid | sort >va
    [ "$(sort tr va | uniq -d | wc -l)" -eq 0 ]
    sort tr va | cmp - tr0
    # the fraction holds on average; every user keeps at least one train interaction
    awk -v v="$va" -v t="$tr0" 'BEGIN { exit !(v / t > 0.27 && v / t < 0.33) }'
    [ "$(stat_of stat.train.users v.kd)" -eq 400 ]
    [ "$(cut -f1 tr | sort -u | wc -l)" -eq 400 ]
}

@test "import --valid-fraction: reproducible by seed, any thread count; other seeds differ" {
    adj_with_test
    kd-gen import --format adj --test te.adj --valid-fraction 0.2 --seed 1 tr.adj -o a.kd
    kd-gen import --format adj --test te.adj --valid-fraction 0.2 --seed 1 --threads 1 tr.adj -o b.kd
    kd-gen import --format adj --test te.adj --valid-fraction 0.2 --seed 1 --threads 3 tr.adj -o c.kd
    kd-gen import --format adj --test te.adj --valid-fraction 0.2 --seed 2 tr.adj -o d.kd
    cmp a.kd b.kd
    cmp a.kd c.kd
    [ "$(content_id a.kd)" != "$(content_id d.kd)" ]
    run cmp_section a.kd d.kd valid
    [ "$status" -eq 1 ]
}

@test "import --valid-fraction: usage errors for a bad share, with --valid, without --test" {
    adj_with_test
    for f in 0 1 -0.1 1.5 abc ""; do
        run --separate-stderr -2 kd-gen import --format adj --test te.adj --valid-fraction "$f" tr.adj -o d.kd
        [[ $stderr == "kd-gen: --valid-fraction: "* ]]
        one_line
    done
    run --separate-stderr -2 kd-gen import --format adj --test te.adj --valid te.adj --valid-fraction 0.1 tr.adj -o d.kd
    [ "$stderr" = "kd-gen: --valid-fraction and --valid are exclusive" ]
    run --separate-stderr -2 kd-gen import --format adj --valid-fraction 0.1 tr.adj -o d.kd
    [[ $stderr == "kd-gen: --valid-fraction needs --test"* ]]
    one_line
    [ ! -e d.kd ]
    no_temporaries
}

@test "import tsv (MovieLens-100K) keeps every pair, --min-rating filters" {
    kd-gen import --format tsv "$FIXTURES/kd-gen/ml100k.tsv" -o d.kd
    [ "$(total d.kd)" -eq 13 ]
    [ "$(stat_of stat.users d.kd)" -eq 10 ]
    [ "$(stat_of stat.items d.kd)" -eq 10 ]
    kd-gen import --format tsv --min-rating 3 "$FIXTURES/kd-gen/ml100k.tsv" -o f.kd
    [ "$(total f.kd)" -eq 9 ]
    [ "$(stat_of import.below_min_rating f.kd)" -eq 4 ]
}

@test "import csv (MovieLens latest) skips the header and accepts CRLF" {
    kd-gen import --format csv "$FIXTURES/kd-gen/ml-latest.csv" -o d.kd
    [ "$(total d.kd)" -eq 7 ]
    kd-gen import --format csv --min-rating 3.5 "$FIXTURES/kd-gen/ml-latest.csv" -o f.kd
    [ "$(total f.kd)" -eq 5 ]
}

@test "import adj (LightGCN) and triples, merging duplicates" {
    kd-gen import --format adj "$FIXTURES/kd-gen/lightgcn.adj" -o a.kd
    [ "$(total a.kd)" -eq 9 ]
    [ "$(stat_of stat.users a.kd)" -eq 4 ]
    kd-gen import --format triples "$FIXTURES/kd-gen/triples.txt" -o t.kd
    [ "$(total t.kd)" -eq 6 ]
}

@test "import reads stdin, and line order does not change the dataset" {
    kd-gen import --format tsv "$FIXTURES/kd-gen/ml100k.tsv" -o a.kd
    sort -r "$FIXTURES/kd-gen/ml100k.tsv" | kd-gen import --format tsv - -o b.kd
    cmp a.kd b.kd
}

@test "import --kcore drops users and items below K until stable" {
    # item 9 and user 4 appear once; removing them leaves a 3x3 block with degree 2+
    printf '1 1\n1 2\n2 1\n2 3\n3 2\n3 3\n4 9\n' >k.txt
    kd-gen import --format triples --kcore 2 k.txt -o d.kd
    [ "$(total d.kd)" -eq 6 ]
    [ "$(stat_of stat.users d.kd)" -eq 3 ]
    [ "$(stat_of stat.items d.kd)" -eq 3 ]
}

@test "import --leave-one-out puts each user's latest interaction in test" {
    kd-gen import --format csv --leave-one-out "$FIXTURES/kd-gen/ml-latest.csv" -o d.kd
    kd-cat --original-ids d.kd test >te
    [ "$(cat te)" = "$(printf '1\t1\n2\t3\n3\t1')" ]
    kd-cat --original-ids d.kd valid >va
    [ "$(cat va)" = "$(printf '1\t6')" ]
}

@test "import with given split files maps ids through train and counts the unseen" {
    printf '0 0\n0 1\n1 1\n1 2\n' >tr.txt
    printf '0 2\n1 0\n7 0\n0 99\n' >te.txt
    printf '1 0\n' >va.txt
    run --separate-stderr -0 kd-gen import --format triples --test te.txt --valid va.txt tr.txt -o d.kd
    [ "$stderr" = "kd-gen: warning: te.txt: 2 interactions with a user or item not in train were dropped" ]
    [ "$(stat_of stat.test.interactions d.kd)" -eq 2 ]
    [ "$(stat_of stat.valid.interactions d.kd)" -eq 1 ]
    [ "$(stat_of split.dropped_test d.kd)" -eq 2 ]
}

@test "a malformed line names the file and line, and writes nothing" {
    printf '1 2\n3 x\n' >bad.txt
    run --separate-stderr -1 kd-gen import --format triples bad.txt -o d.kd
    [ "$stderr" = "kd-gen: bad.txt:2: item id is not a non-negative integer: 'x'" ]
    [ ! -e d.kd ]
    no_temporaries
}

@test "negative ids, a single field and a missing rating column are errors" {
    printf -- '-1 2\n' >neg.txt
    run --separate-stderr -1 kd-gen import --format triples neg.txt -o d.kd
    [ "$stderr" = "kd-gen: neg.txt:1: negative user id '-1'" ]
    printf '5\n' >one.txt
    run --separate-stderr -1 kd-gen import --format tsv one.txt -o d.kd
    [ "$stderr" = "kd-gen: one.txt:1: expected at least 2 fields (user item), got 1" ]
    printf '1 2\n' >norating.txt
    run --separate-stderr -1 kd-gen import --format tsv --min-rating 3 norating.txt -o d.kd
    [ "$stderr" = "kd-gen: norating.txt:1: --min-rating needs a rating column, and this line has none" ]
    [ ! -e d.kd ]
}

@test "empty input and everything filtered out are errors" {
    : >empty.txt
    run --separate-stderr -1 kd-gen import --format tsv empty.txt -o d.kd
    [ "$stderr" = "kd-gen: empty.txt: no interactions (empty input)" ]
    run --separate-stderr -1 kd-gen import --format triples --kcore 50 "$FIXTURES/kd-gen/triples.txt" -o d.kd
    [[ $stderr == *"every user was filtered out (--kcore 50)" ]]
    run --separate-stderr -1 kd-gen import --format tsv --min-rating 9 "$FIXTURES/kd-gen/ml100k.tsv" -o d.kd
    [[ $stderr == *"no interactions left after --min-rating" ]]
    [ ! -e d.kd ]
}

@test "usage errors: no format, unknown format, bad ratio" {
    run --separate-stderr -2 kd-gen import x.txt -o d.kd
    [[ $stderr == "kd-gen: import needs --format"* ]]
    run --separate-stderr -2 kd-gen import --format xml x.txt -o d.kd
    [[ $stderr == "kd-gen: --format: unknown format 'xml'"* ]]
    run --separate-stderr -2 kd-gen synth --test-ratio 0 -o d.kd
    [[ $stderr == "kd-gen: --test-ratio: 0 is out of range"* ]]
    run --separate-stderr -2 kd-gen
    [[ $stderr == "kd-gen: expected a command: synth or import"* ]]
}

@test "output: a failed run leaves an existing file untouched and no temporary" {
    echo old >d.kd
    printf '1 x\n' >bad.txt
    run --separate-stderr -1 kd-gen import --format triples bad.txt -o d.kd
    [ "$(cat d.kd)" = old ]
    no_temporaries
}

@test "output: a path that is a directory is an error" {
    mkdir out
    run --separate-stderr -1 kd-gen synth -o out
    [ "$stderr" = "kd-gen: out: is a directory" ]
}

@test "output: an unwritable directory is an error and nothing is left" {
    mkdir ro
    if [ "$(id -u)" -ne 0 ]; then
        chmod 555 ro
    elif ! mount -t tmpfs -o ro,size=64k tmpfs ro 2>/dev/null; then
        skip "cannot make a read-only directory as root here"
    fi
    run --separate-stderr -1 kd-gen synth -o ro/d.kd
    [[ $stderr == "kd-gen: ro/d.kd: cannot create: "* ]]
    [ "$(id -u)" -ne 0 ] || umount ro
}

@test "output: a full disk (file size limit) is a clean error with nothing left" {
    run --separate-stderr -1 bash -c 'ulimit -f 8; kd-gen synth -o d.kd'
    [ "$stderr" = "kd-gen: d.kd: write failed: File too large" ]
    [ ! -e d.kd ]
    no_temporaries
}

@test "output: a full tmpfs is a clean error with nothing left" {
    [ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
    mkdir small
    mount -t tmpfs -o size=16k tmpfs small 2>/dev/null || skip "cannot mount a tmpfs here"
    run --separate-stderr -1 kd-gen synth -o small/d.kd
    left=$(ls -A small)
    umount small
    [[ $stderr == "kd-gen: small/d.kd: write failed: No space left on device" ]]
    [ -z "$left" ]
}

@test "output: SIGTERM and SIGINT during a run leave no file and no temporary" {
    # a non-interactive shell starts background jobs with SIGINT ignored; undo that
    for sig in TERM INT; do
        env --default-signal=INT "$KD_BIN/kd-gen" synth --users 300000 --items 3000 --mean 20 -o big.kd &
        pid=$!
        sleep 0.3
        kill -s "$sig" "$pid"
        wait "$pid" || true
        [ ! -e big.kd ]
        no_temporaries
    done
}

@test "output: a temporary left by a killed run is removed by the next run" {
    kd-gen synth --users 300000 --items 3000 --mean 20 -o big.kd &
    pid=$!
    sleep 0.3
    kill -s KILL "$pid"
    wait "$pid" || true
    [ ! -e big.kd ]
    small_dataset 1 big.kd
    no_temporaries
}

@test "real data: Last.fm adjacency files import with the README's counts" {
    [ -d "$SHARED_DATA/lastfm" ] || skip "shared data not present ($SHARED_DATA)"
    L=$SHARED_DATA/lastfm
    run --separate-stderr -0 kd-gen import --format adj --test "$L/test.txt" --valid "$L/valid.txt" "$L/train.txt" -o d.kd
    [ "$(stat_of stat.users d.kd)" -eq 1885 ]
    [ "$(stat_of stat.items d.kd)" -eq 13973 ]
    [ "$(stat_of stat.train.interactions d.kd)" -eq 64315 ]
    [ $(( $(stat_of stat.valid.interactions d.kd) + $(stat_of split.dropped_valid d.kd) )) -eq 9143 ]
    [ $(( $(stat_of stat.test.interactions d.kd) + $(stat_of split.dropped_test d.kd) )) -eq 18321 ]
}

@test "real data: CiteULike triples import with the README's counts, duplicates merged" {
    [ -d "$SHARED_DATA/citeulike" ] || skip "shared data not present ($SHARED_DATA)"
    C=$SHARED_DATA/citeulike
    run --separate-stderr -0 kd-gen import --format triples --test "$C/test.txt" --valid "$C/valid.txt" "$C/train.txt" -o d.kd
    # the README's 151,918 lines hold 23 repeated pairs, and 16,908 distinct item ids
    # (its "16,907" is one short); the figures below are recounted from the files
    [ "$(stat_of import.records d.kd)" -eq 151918 ]
    [ "$(stat_of stat.train.interactions d.kd)" -eq "$(awk '{print $1, $2}' "$C/train.txt" | sort -u | wc -l)" ]
    [ "$(stat_of stat.users d.kd)" -eq 5551 ]
    [ "$(stat_of stat.items d.kd)" -eq "$(awk '{print $2}' "$C/train.txt" | sort -u | wc -l)" ]
    uniq_pairs() { awk '{print $1, $2}' "$1" | sort -u | wc -l; }
    [ $(( $(stat_of stat.valid.interactions d.kd) + $(stat_of split.dropped_valid d.kd) )) -eq "$(uniq_pairs "$C/valid.txt")" ]
    [ $(( $(stat_of stat.test.interactions d.kd) + $(stat_of split.dropped_test d.kd) )) -eq "$(uniq_pairs "$C/test.txt")" ]
    [ "$(wc -l <"$C/test.txt")" -eq 39883 ]
}
