#!/usr/bin/env bats
# kd-train: reproducible BPR training, its record, and its refusals.
load test_helper

setup() { small_dataset 1 small.kd; }

train_small() { kd-train -q --dim 16 --epochs 5 "$@" small.kd; }

@test "the same flags give the same model whatever --threads (content ID and bytes)" {
    for t in 1 2 8; do
        train_small --threads "$t" -o "m$t.kd"
        train_small --threads "$t" --no-timing -o "n$t.kd"
    done
    [ "$(content_id m1.kd)" = "$(content_id m2.kd)" ]
    [ "$(content_id m1.kd)" = "$(content_id m8.kd)" ]
    cmp m1.kd m2.kd
    cmp m1.kd m8.kd
    # --no-timing is still accepted, and changes nothing
    cmp m1.kd n1.kd
    cmp n1.kd n8.kd
}

@test "two trainings with default flags give the same bytes (no timing in a model)" {
    kd-train -q --dim 16 --epochs 5 small.kd -o a.kd
    kd-train -q --dim 16 --epochs 5 small.kd -o b.kd
    cmp a.kd b.kd
    kd-train -q --dim 16 --epochs 5 --valid-every 1 --patience 2 small.kd -o c.kd
    kd-train -q --dim 16 --epochs 5 --valid-every 1 --patience 2 small.kd -o d.kd
    cmp c.kd d.kd
    run --separate-stderr -1 kd-cat a.kd train.throughput
    [ -z "$output" ]
}

@test "--replicas: the same model whatever --threads, and recorded in provenance" {
    for t in 1 2 5; do train_small --replicas 4 --threads "$t" --no-timing -o "r$t.kd"; done
    cmp r1.kd r2.kd
    cmp r1.kd r5.kd
    kd-cat r1.kd provenance | grep -qx 'replicas=4'
    train_small --replicas 3 --no-timing -o r3.kd
    ! cmp -s r1.kd r3.kd || false
    run --separate-stderr -2 train_small --replicas 4 --optim adagrad -o x.kd
    [ "$stderr" = "kd-train: --replicas works with --optim sgd only" ]
    run --separate-stderr -2 train_small --replicas 2 --hogwild -o x.kd
    [ "$stderr" = "kd-train: --hogwild and --replicas exclude each other" ]
    [ ! -e x.kd ]
}

@test "the default scheme is 2 replicas with sgd, the block scheme with adagrad or --replicas 0" {
    train_small --no-timing -o d.kd
    kd-cat d.kd provenance | grep -qx 'replicas=2'
    train_small --replicas 2 --no-timing -o r2.kd
    cmp d.kd r2.kd
    for t in 1 2 3; do train_small --replicas 0 --threads "$t" --no-timing -o "b$t.kd"; done
    kd-cat b1.kd provenance | grep -qx 'replicas=0'
    cmp b1.kd b2.kd
    cmp b1.kd b3.kd
    ! cmp -s d.kd b1.kd || false
    kd-train -q --dim 16 --epochs 2 --optim adagrad small.kd -o a.kd
    kd-cat a.kd provenance | grep -qx 'replicas=0'
    train_small --hogwild -o h.kd
    kd-cat h.kd provenance | grep -qx 'replicas=0'
}

@test "another seed gives another model" {
    train_small --seed 1 -o a.kd
    train_small --seed 2 -o b.kd
    [ "$(content_id a.kd)" != "$(content_id b.kd)" ]
}

@test "the checkpoint records per-epoch loss and provenance; --verbose prints the throughput" {
    train_small -o m.kd
    run --separate-stderr -0 kd-cat m.kd train.loss
    [ "${#lines[@]}" -eq 5 ]
    run --separate-stderr -0 train_small --verbose -o v.kd
    [ -z "$output" ]
    # (early stopping is on by default: even epochs also show the valid metric)
    printf '%s\n' "$stderr" | sed -n 's/^kd-train: epoch [1-5]\/5 loss [0-9.]* \([^ ]*\) samples\/s\( valid recall@10 [0-9.]*\)\{0,1\}$/\1/p' >rates
    [ "$(wc -l <rates)" -eq 5 ]
    awk '!($1 > 0) { exit 1 }' rates
    cmp m.kd v.kd
    kd-cat m.kd provenance >prov
    grep -qx 'tool=kd-train' prov
    grep -qx 'dim=16' prov
    grep -qx "input.dataset=$(content_id small.kd)" prov
    grep -qx 'params=1700' prov
    ! grep -q thread prov || false
}

@test "the loss falls on a small dataset (steadily, up to SGD noise)" {
    kd-train -q --dim 16 --epochs 12 small.kd -o m.kd
    kd-cat m.kd train.loss >loss
    # every epoch below the first, each third of the run below the one before, and the
    # last epoch at least 15% below the first
    awk '{ l[NR] = $1 } END {
        for (i = 2; i <= NR; i++) if (l[i] >= l[1]) exit 1
        a = (l[1] + l[2] + l[3] + l[4]) / 4; b = (l[5] + l[6] + l[7] + l[8]) / 4; c = (l[9] + l[10] + l[11] + l[12]) / 4
        exit !(b < a && c < b && l[12] < 0.85 * l[1]) }' loss
}

@test "a dim-64 model reaches a lower training loss than a dim-32 model (default data)" {
    kd-gen synth -o d.kd
    kd-train -q --dim 64 --epochs 20 d.kd -o t.kd
    kd-train -q --dim 32 --epochs 20 d.kd -o s.kd
    t=$(kd-cat t.kd train.loss | tail -1)
    s=$(kd-cat s.kd train.loss | tail -1)
    awk -v t="$t" -v s="$s" 'BEGIN { exit !(t < s) }'
}

@test "params: 97,500 at dim 64 and 49,500 at dim 32 on 1,000 users x 500 items" {
    kd-gen synth -o d.kd
    kd-train -q --dim 64 --epochs 1 d.kd -o t.kd
    kd-train -q --dim 32 --epochs 1 d.kd -o s.kd
    kd-info t.kd | grep -qx 'params:      97500'
    kd-info s.kd | grep -qx 'params:      49500'
}

@test "reads the dataset from a pipe" {
    train_small --no-timing -o a.kd
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 --seed 1 | kd-train -q --dim 16 --epochs 5 --no-timing - -o b.kd
    cmp a.kd b.kd
}

@test "divergence stops with a clear error and writes nothing" {
    run --separate-stderr -1 train_small --lr 900 -o m.kd
    [[ $stderr == "kd-train: training diverged at epoch "*"; try a smaller --lr" ]]
    [ ! -e m.kd ]
    no_temporaries
}

@test "bad flags are usage errors" {
    run --separate-stderr -2 train_small --dim 0 -o m.kd
    [[ $stderr == "kd-train: --dim: 0 is out of range"* ]]
    run --separate-stderr -2 train_small --dim 100000 -o m.kd
    [[ $stderr == "kd-train: --dim: 100000 is out of range"* ]]
    run --separate-stderr -2 train_small --lr -0.1 -o m.kd
    [[ $stderr == "kd-train: --lr: -0.1 is out of range"* ]]
    run --separate-stderr -2 train_small --optim adamw -o m.kd
    [ "$stderr" = "kd-train: --optim: 'adamw' is not sgd, adagrad or adam" ]
    run --separate-stderr -2 train_small --valid-every 1 --select-metric ndcg -o m.kd
    [[ $stderr == "kd-train: --select-metric: 'ndcg' is not METRIC@K"* ]]
    [ ! -e m.kd ]
}

@test "a dataset without train interactions is refused" {
    run --separate-stderr -1 kd-train -q "$FIXTURES/kd-train/empty-train.kd" -o m.kd
    [ "$stderr" = "kd-train: dataset has no train interactions" ]
    [ ! -e m.kd ]
}

@test "more negatives than a user has items left is refused" {
    printf '1 1\n1 2\n1 3\n2 1\n' >t.txt
    kd-gen import --format triples --test-ratio 0.01 --valid-ratio 0 t.txt -o d.kd
    run --separate-stderr -1 kd-train -q --neg 2 d.kd -o m.kd
    [[ $stderr == "kd-train: user 1 has 3 train items of 3: fewer than --neg 2 negatives are left" ]]
}

@test "a model given as dataset is refused" {
    train_small -o m.kd
    run --separate-stderr -1 kd-train -q m.kd -o x.kd
    [ "$stderr" = "kd-train: m.kd: is a model, not a dataset" ]
}

@test "early stopping without a validation split is refused" {
    kd-gen synth --users 60 --items 40 --mean 8 --valid-ratio 0 -o nv.kd
    run --separate-stderr -2 kd-train -q --valid-every 1 nv.kd -o m.kd
    [ "$stderr" = "kd-train: early stopping needs a validation split, and this dataset has none" ]
}

@test "with no tuning flags it early-stops on valid, as the pipelines' explicit flags do (same model)" {
    kd-gen synth --users 200 --items 60 --mean 8 --rank 4 -o v.kd
    run --separate-stderr -0 kd-train --dim 8 v.kd -o a.kd
    [ -z "$stderr" ]
    kd-train -q --dim 8 --epochs 300 --valid-every 2 --patience 15 --select-metric recall@10 v.kd -o b.kd
    cmp a.kd b.kd
    kd-cat a.kd provenance >prov
    grep -qx 'valid_every=2' prov
    grep -qx 'patience=15' prov
    grep -qx 'select_metric=recall@10' prov
    grep -qx 'epochs=300' prov
    # it validated every 2 epochs and stopped well before the cap
    [ "$(kd-cat a.kd train.valid | wc -l)" -gt 0 ]
    grep -qx 'result.stopped_early=1' prov
    # --epochs N alone is the cap of the early-stopped run
    kd-train -q --dim 8 --epochs 6 v.kd -o c.kd
    kd-cat c.kd provenance | grep -qx 'valid_every=2'
    [ "$(kd-cat c.kd train.valid | wc -l)" -eq 3 ]
}

@test "--no-early-stop trains a fixed number of epochs (50 unless --epochs), and excludes --valid-every" {
    kd-gen synth --users 60 --items 40 --mean 8 --rank 4 -o v.kd
    kd-train -q --dim 8 --no-early-stop v.kd -o a.kd
    [ "$(kd-cat a.kd train.loss | wc -l)" -eq 50 ]
    kd-cat a.kd provenance >prov
    grep -qx 'valid_every=0' prov
    grep -qx 'select_metric=none' prov
    kd-train -q --dim 8 --no-early-stop --epochs 7 v.kd -o b.kd
    [ "$(kd-cat b.kd train.loss | wc -l)" -eq 7 ]
    run --separate-stderr -2 kd-train -q --no-early-stop --valid-every 2 v.kd -o c.kd
    [ "$stderr" = "kd-train: --no-early-stop and --valid-every exclude each other" ]
    [ ! -e c.kd ]
    run --separate-stderr -2 kd-train -q --no-early-stop=1 v.kd -o c.kd
    [ ! -e c.kd ]
}

@test "without a validation split the defaults train a fixed 50 epochs, with one note (none under -q)" {
    kd-gen synth --users 60 --items 40 --mean 8 --valid-ratio 0 -o nv.kd
    run --separate-stderr -0 kd-train --dim 8 nv.kd -o a.kd
    [ "$stderr" = "kd-train: nv.kd: no validation split: no early stopping, a fixed 50 epochs (--valid-every needs one)" ]
    [ "$(kd-cat a.kd train.loss | wc -l)" -eq 50 ]
    kd-cat a.kd provenance | grep -qx 'valid_every=0'
    # the same model as asking for it
    kd-train -q --dim 8 --no-early-stop nv.kd -o b.kd
    cmp a.kd b.kd
    run --separate-stderr -0 kd-train -q --dim 8 --epochs 3 nv.kd -o c.kd
    [ -z "$stderr" ]
    [ "$(kd-cat c.kd train.loss | wc -l)" -eq 3 ]
    # no note when nothing was lost: early stopping switched off
    run --separate-stderr -0 kd-train --dim 8 --no-early-stop nv.kd -o d.kd
    [ -z "$stderr" ]
}

@test "--hogwild runs and says so in provenance" {
    train_small --hogwild -o m.kd
    kd-cat m.kd provenance | grep -qx 'hogwild=1'
}

@test "adagrad trains and lowers the loss" {
    kd-train -q --dim 16 --epochs 8 --optim adagrad --lr 0.1 small.kd -o m.kd
    kd-cat m.kd train.loss >loss
    [ "$(awk 'NR == 1 { a = $1 } END { print ($1 < a) }' loss)" = 1 ]
}

@test "adam: trains and lowers the loss, the same bytes for any --threads, lr 0.001 unless given" {
    for t in 1 2 3; do kd-train -q --dim 16 --epochs 8 --optim adam --threads "$t" small.kd -o "a$t.kd"; done
    cmp a1.kd a2.kd
    cmp a1.kd a3.kd
    kd-cat a1.kd train.loss >loss
    [ "$(awk 'NR == 1 { a = $1 } END { print ($1 < a) }' loss)" = 1 ]
    kd-cat a1.kd provenance | grep -qx 'optim=adam'
    kd-cat a1.kd provenance | grep -qx 'lr=0.001'
    kd-cat a1.kd provenance | grep -qx 'replicas=0'
    kd-train -q --dim 16 --epochs 8 --optim adam --lr 0.003 small.kd -o b.kd
    kd-cat b.kd provenance | grep -qx 'lr=0.003'
    ! cmp -s a1.kd b.kd || false
    kd-train -q --dim 16 --epochs 8 --optim adagrad small.kd -o g.kd
    kd-cat g.kd provenance | grep -qx 'lr=0.05'
    run --separate-stderr -2 train_small --replicas 2 --optim adam -o x.kd
    [ "$stderr" = "kd-train: --replicas works with --optim sgd only" ]
}

@test "progress: nothing on stderr when it is not a terminal, a line per epoch with --verbose" {
    run --separate-stderr -0 kd-train --dim 8 --epochs 3 small.kd -o m.kd
    [ -z "$stderr" ]
    run --separate-stderr -0 kd-train --verbose --dim 8 --epochs 3 small.kd -o m.kd
    [ "$(printf '%s\n' "$stderr" | grep -c '^kd-train: epoch [0-9]/3 loss ')" -eq 3 ]
}

@test "--valid-users: a seeded sample of validation users, a parameter in provenance only when given" {
    kd-gen synth --users 300 --items 60 --mean 8 --rank 4 -o v.kd
    train_v() { kd-train -q --dim 8 --epochs 4 --valid-every 1 --patience 9 "$@" v.kd; }
    train_v --valid-users 40 -o a.kd
    train_v --valid-users 40 --threads 2 -o b.kd
    cmp a.kd b.kd
    kd-cat a.kd provenance >a.prov
    grep -qx 'valid_users=40' a.prov
    grep -qx 'result.valid_users=40' a.prov
    users=$(sed -n 's/^result.valid_users_of=//p' a.prov)
    [ "$users" -gt 40 ]
    # another seed draws other users: another validation record
    train_v --valid-users 40 --seed 2 -o c.kd
    train_v --seed 2 --valid-users all -o d.kd
    run cmp_section c.kd d.kd train.valid
    [ "$status" -eq 1 ]
    # not given: no parameter line (the stage key of older runs), the default's sample
    # recorded among the results; here the default covers every user, as 'all' does
    train_v -o n.kd
    kd-cat n.kd provenance >n.prov
    run ! grep -q '^valid_users=' n.prov
    grep -qx "result.valid_users=$users" n.prov
    train_v --valid-users all -o all.kd
    train_v --valid-users 100000 -o big.kd
    for s in user_emb item_emb train.valid; do
        cmp_section n.kd all.kd $s
        cmp_section n.kd big.kd $s
    done
    grep -qx 'valid_users=0' <(kd-cat all.kd provenance)
}

@test "--valid-users: a count of at least 1 or 'all', else a usage error" {
    for bad in 0 -3 abc 1.5 ''; do
        run --separate-stderr -2 train_small --valid-every 1 --valid-users "$bad" -o m.kd
        [[ $stderr == "kd-train: --valid-users: "* ]]
        [ ! -e m.kd ]
    done
}
