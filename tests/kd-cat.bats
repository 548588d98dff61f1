#!/usr/bin/env bats
# kd-cat: sections as text or .npy, through files and pipes.
load test_helper

setup() { small_dataset 1 small.kd; }

@test "kd-cat without a section lists the sections" {
    run --separate-stderr -0 kd-cat small.kd
    [ "$output" = "$(printf 'train\nvalid\ntest\nuser_ids\nitem_ids\nprovenance')" ]
}

@test "kd-cat prints a CSR split as row<TAB>col pairs matching the stored count" {
    kd-cat small.kd train >train.tsv
    nnz=$(kd-info --json small.kd | grep -o '"name":"train","type":"csr","rows":60,"cols":40,"nnz":[0-9]*' | sed 's/.*://')
    [ "$(wc -l <train.tsv)" -eq "$nnz" ]
    awk -F'\t' 'NF != 2 || $1 < 0 || $1 >= 60 || $2 < 0 || $2 >= 40 { exit 1 }' train.tsv
    sort -c -k1,1n -k2,2n train.tsv
}

@test "kd-cat reads the artifact from a pipe" {
    kd-cat small.kd test >a.tsv
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 1 | kd-cat - test >b.tsv
    cmp a.tsv b.tsv
}

@test "kd-cat prints provenance text as is" {
    run --separate-stderr -0 kd-cat small.kd provenance
    [ "${lines[0]}" = "tool=kd-gen" ]
}

@test "kd-cat --original-ids maps dense ids back" {
    printf '10\t7\n10\t9\n10\t11\n20\t7\n20\t9\n20\t13\n30\t9\n30\t11\n30\t13\n' >in.tsv
    kd-gen import --format triples --test-ratio 0.3 --valid-ratio 0 in.tsv -o d.kd
    kd-cat --original-ids d.kd train >tr.tsv
    kd-cat --original-ids d.kd test >te.tsv
    sort tr.tsv te.tsv >all.tsv
    sort in.tsv >want.tsv
    cmp all.tsv want.tsv
}

@test "kd-cat --npy writes a NumPy file with the right header and size" {
    kd-cat --npy small.kd user_ids -o ids.npy
    head -c 6 ids.npy | od -c | grep -q 'N   U   M   P   Y'
    grep -a -q "'descr': '<u8', 'fortran_order': False, 'shape': (60,)" ids.npy
    size=$(stat -c %s ids.npy)
    [ $(( (size - 480) % 64 )) -eq 0 ]
}

@test "kd-cat --npy refuses a CSR or text section" {
    run --separate-stderr -2 kd-cat --npy small.kd train -o x.npy
    [[ $stderr == "kd-cat: section 'train': --npy takes a dense or vector section, not csr" ]]
    [ ! -e x.npy ]
}

@test "kd-cat names a missing section" {
    run --separate-stderr -1 kd-cat small.kd nope
    [ "$stderr" = "kd-cat: small.kd: no section 'nope'" ]
}

@test "kd-cat -o leaves an existing file untouched when the input is bad" {
    echo old >out.tsv
    : >empty.kd
    run --separate-stderr -1 kd-cat empty.kd train -o out.tsv
    [ "$(cat out.tsv)" = old ]
    no_temporaries
}
