#!/usr/bin/env bats
# kd-distill: the study's loss reproduced exactly, the ranking methods, and refusals.
load test_helper

setup() {
    small_dataset 1 small.kd
    kd-train -q --dim 16 --epochs 5 small.kd -o t.kd
}

params() { for s in user_emb item_emb item_bias; do kd-cat "$1" "$s"; done; }

# a method's flags on the 40-item test data (rce's default lists are longer than that)
margs() { case $1 in rce|rce2) echo "--method $1 --topk 5 --samples 8 --topm 30" ;; *) echo "--method $1" ;; esac; }

@test "margin-mse with alpha 0 trains exactly the plain BPR student" {
    kd-train -q --dim 8 --epochs 6 --seed 3 small.kd -o plain.kd
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0 --dim 8 --epochs 6 --seed 3 small.kd -o kd0.kd
    params plain.kd >a
    params kd0.kd >b
    cmp a b
}

@test "--lambda 0 with --kd-decay 0 trains exactly the plain BPR student, for every method, scheme and optimiser" {
    for rep in "" "--replicas 0" "--replicas 3" "--optim adagrad" "--optim adam"; do
        kd-train -q --dim 8 --epochs 4 --seed 3 $rep small.kd -o plain.kd
        params plain.kd >a
        for m in rd rrd ce dcd dcd-item dcd2 rce rce2; do
            kd-distill -q --teacher t.kd $(margs "$m") --lambda 0 --item-lambda 0 --kd-decay 0 --dim 8 --epochs 4 --seed 3 $rep small.kd -o z.kd
            params z.kd >b
            cmp a b
        done
    done
}

@test "with decay on its records (the older methods' default) a zero-weight term still regularises" {
    kd-train -q --dim 8 --epochs 4 --seed 3 small.kd -o plain.kd
    kd-distill -q --teacher t.kd --method rrd --lambda 0 --dim 8 --epochs 4 --seed 3 small.kd -o z.kd
    params plain.kd >a
    params z.kd >b
    ! cmp -s a b || false
    # rce, dcd-item, dcd2 default to no decay, and say so; the older methods say nothing
    kd-distill -q --teacher t.kd $(margs rce) --dim 8 --epochs 2 small.kd -o r.kd
    kd-cat r.kd provenance | grep -qx 'kd_decay=0'
    kd-distill -q --teacher t.kd $(margs rce) --kd-decay 1 --dim 8 --epochs 2 small.kd -o r1.kd
    ! kd-cat r1.kd provenance | grep -q '^kd_decay=' || false
    kd-cat z.kd provenance >p
    ! grep -q '^kd_decay=' p || false
}

@test "margin-mse --margin-loss mse: the temperature has no effect (T^2 * MSE(ds/T, dt/T) = MSE(ds, dt))" {
    M="--method margin-mse --margin-loss mse"
    kd-distill -q --teacher t.kd $M --alpha 0.2 --temperature 1 --dim 8 --epochs 4 small.kd -o t1.kd
    kd-distill -q --teacher t.kd $M --alpha 0.2 --temperature 4 --dim 8 --epochs 4 small.kd -o t4.kd
    kd-distill -q --teacher t.kd $M --alpha 0.2 --temperature 3 --dim 8 --epochs 4 small.kd -o t3.kd
    params t1.kd >a
    params t4.kd >b
    params t3.kd >c
    cmp a b                              # a power of two: not a bit differs
    paste a c | awk -F'\t' '{ n = NF / 2; for (i = 1; i <= n; i++) { d = $i - $(i + n); if (d < 0) d = -d; if (d > 1e-4) exit 1 } }'
}

@test "margin-mse's default soft loss: the temperature matters, it differs from mse, provenance says which ran" {
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0.5 --dim 8 --epochs 4 small.kd -o s1.kd
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0.5 --temperature 4 --dim 8 --epochs 4 small.kd -o s4.kd
    kd-distill -q --teacher t.kd --method margin-mse --margin-loss mse --alpha 0.5 --dim 8 --epochs 4 small.kd -o m.kd
    kd-distill -q --teacher t.kd --method margin-mse --margin-loss soft --alpha 0.5 --dim 8 --epochs 4 small.kd -o s.kd
    cmp s1.kd s.kd
    params s1.kd >a
    params s4.kd >b
    params m.kd >c
    ! cmp -s a b || false
    ! cmp -s a c || false
    kd-cat s1.kd provenance | grep -qx 'margin_loss=soft'
    kd-cat m.kd provenance | grep -qx 'margin_loss=mse'
}

@test "margin-mse at lr 0.05 on the synthetic default: mse at alpha 0.5 diverges, soft at alpha 1 does not" {
    kd-gen synth --seed 1 -o syn.kd
    kd-train -q --dim 64 --epochs 40 --no-early-stop syn.kd -o ts.kd
    F="--teacher ts.kd --method margin-mse --dim 32 --lr 0.05 --epochs 10 --no-early-stop syn.kd"
    run --separate-stderr -1 kd-distill -q $F --margin-loss mse --alpha 0.5 -o x.kd
    [[ $stderr == "kd-distill: training diverged at epoch "* ]]
    [ ! -e x.kd ]
    kd-distill -q $F --alpha 1 -o y.kd
    kd-distill -q $F --mix add --lambda 1 -o z.kd
}

@test "margin-mse, both losses: the same bytes for --threads 1, 2, 3 and with --replicas" {
    for l in soft mse; do
        for th in 1 2 3; do
            kd-distill -q --teacher t.kd --method margin-mse --margin-loss $l --alpha 0.4 --dim 8 --epochs 3 --threads $th small.kd -o $l$th.kd
        done
        cmp $l"1.kd" $l"2.kd"
        cmp $l"1.kd" $l"3.kd"
        kd-distill -q --teacher t.kd --method margin-mse --margin-loss $l --alpha 0.4 --dim 8 --epochs 3 --replicas 4 --threads 1 small.kd -o r1.kd
        kd-distill -q --teacher t.kd --method margin-mse --margin-loss $l --alpha 0.4 --dim 8 --epochs 3 --replicas 4 --threads 2 small.kd -o r2.kd
        cmp r1.kd r2.kd
    done
    ! cmp -s soft1.kd mse1.kd || false
}

@test "usage: --margin-loss takes soft or mse" {
    for bad in "" x MSE "soft " softer; do
        run --separate-stderr -2 kd-distill -q --teacher t.kd --method margin-mse --margin-loss "$bad" small.kd -o m.kd
        [ "$stderr" = "kd-distill: --margin-loss: '$bad' is not soft or mse" ]
        [ -z "$output" ] && [ ! -e m.kd ]
    done
}

@test "margin-mse with alpha > 0 differs from plain BPR (the term does something)" {
    kd-train -q --dim 8 --epochs 4 small.kd -o plain.kd
    kd-distill -q --teacher t.kd --method margin-mse --alpha 0.2 --dim 8 --epochs 4 small.kd -o m.kd
    params plain.kd >a
    params m.kd >b
    ! cmp -s a b || false
}

@test "every method is bit-identical whatever --threads" {
    for m in margin-mse rd rrd ce dcd dcd-item dcd2 rce rce2; do
        kd-distill -q --teacher t.kd $(margs "$m") --alpha 0.1 --dim 8 --epochs 3 --threads 1 small.kd -o a.kd
        kd-distill -q --teacher t.kd $(margs "$m") --alpha 0.1 --dim 8 --epochs 3 --threads 2 small.kd -o b.kd
        kd-distill -q --teacher t.kd $(margs "$m") --alpha 0.1 --dim 8 --epochs 3 --threads 3 small.kd -o c.kd
        [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
        [ "$(content_id a.kd)" = "$(content_id c.kd)" ]
    done
    # the block scheme, which runs item-side (transposed) units on every thread
    for m in dcd-item dcd2 rce rce2; do
        kd-distill -q --teacher t.kd $(margs "$m") --dim 8 --epochs 3 --replicas 0 --threads 1 small.kd -o a.kd
        kd-distill -q --teacher t.kd $(margs "$m") --dim 8 --epochs 3 --replicas 0 --threads 3 small.kd -o b.kd
        [ "$(content_id a.kd)" = "$(content_id b.kd)" ]
    done
}

@test "adagrad and adam: every method trains, the same bytes for any --threads, item side included (60 users, 40 items)" {
    # the item-side units step user rows with the users' state and item rows with the items':
    # with more users than items, a state indexed the other way round ran out of bounds
    for o in adagrad adam; do
        for m in rd dcd dcd-item dcd2 rce rce2; do
            kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.3 --optim "$o" --dim 8 --epochs 3 --no-early-stop --threads 1 small.kd -o a.kd
            kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.3 --optim "$o" --dim 8 --epochs 3 --no-early-stop --threads 3 small.kd -o b.kd
            cmp a.kd b.kd
            kd-cat a.kd provenance | grep -qx "optim=$o"
            kd-distill -q --teacher t.kd $(margs "$m") --lambda 0 --kd-decay 0 --optim "$o" --dim 8 --epochs 3 --no-early-stop small.kd -o z.kd
            ! cmp -s <(params a.kd) <(params z.kd) || false
        done
    done
}

@test "distillation with --replicas is bit-identical whatever --threads" {
    for m in rrd dcd margin-mse dcd-item dcd2 rce rce2; do
        kd-distill -q --teacher t.kd $(margs "$m") --alpha 0.1 --dim 8 --epochs 3 --replicas 4 --threads 1 small.kd -o a.kd
        kd-distill -q --teacher t.kd $(margs "$m") --alpha 0.1 --dim 8 --epochs 3 --replicas 4 --threads 2 small.kd -o b.kd
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

@test "rce, dcd-item, dcd2 and an ensemble: same seed same bytes, another seed other bytes" {
    kd-train -q --dim 16 --epochs 5 --seed 2 small.kd -o t2.kd
    for args in "$(margs rce)" "$(margs rce2)" "--method dcd-item" "--method dcd2" "--method dcd --teacher t2.kd"; do
        kd-distill -q --teacher t.kd $args --dim 8 --epochs 3 --seed 4 small.kd -o a.kd
        kd-distill -q --teacher t.kd $args --dim 8 --epochs 3 --seed 4 small.kd -o b.kd
        kd-distill -q --teacher t.kd $args --dim 8 --epochs 3 --seed 5 small.kd -o c.kd
        cmp a.kd b.kd
        ! cmp -s a.kd c.kd || false
    done
}

@test "the new terms do something: rce, dcd-item, dcd2 differ from plain BPR and from each other" {
    kd-train -q --dim 8 --epochs 4 small.kd -o plain.kd
    params plain.kd >p
    for m in rce dcd-item dcd2 dcd rce2; do
        # an explicit weight: at the default (auto) the grid's 0 may win, which is plain BPR
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --dim 8 --epochs 4 small.kd -o "$m.kd"
        params "$m.kd" >"$m.txt"
        ! cmp -s p "$m.txt" || false
    done
    ! cmp -s dcd.txt dcd2.txt || false
    ! cmp -s dcd-item.txt dcd2.txt || false
    ! cmp -s rce.txt rce2.txt || false
    ! cmp -s dcd-item.txt rce2.txt || false
}

@test "rce2 is rce plus dcd-item's item side: at --item-lambda 0 it trains rce's model bit for bit" {
    # no decay on the item side's records (kd-decay 0, rce's default): a zero weight moves nothing
    for rep in "" "--replicas 0"; do
        kd-distill -q --teacher t.kd $(margs rce) --lambda 0.5 --dim 8 --epochs 4 $rep small.kd -o r.kd
        kd-distill -q --teacher t.kd $(margs rce2) --lambda 0.5 --item-lambda 0 --dim 8 --epochs 4 $rep small.kd -o r2.kd
        cmp <(params r.kd) <(params r2.kd)
    done
    kd-distill -q --teacher t.kd $(margs rce2) --lambda 0.5 --item-lambda 0.5 --dim 8 --epochs 4 small.kd -o r3.kd
    ! cmp -s <(params r.kd) <(params r3.kd) || false
}

@test "provenance lists rce's, dcd2's and rce2's knobs" {
    kd-distill -q --teacher t.kd --method rce --topk 5 --samples 7 --topm 30 --beta 2 --rank-temp 4 --tau 0.5 --dim 8 --epochs 2 small.kd -o m.kd
    kd-cat m.kd provenance >p
    for l in role=distill-rce method=rce topk=5 samples=7 topm=30 beta=2 rank_temp=4 tau=0.5 lambda=auto; do grep -qx "$l" p; done
    kd-distill -q --teacher t.kd --method dcd2 --item-lambda 0.25 --dim 8 --epochs 2 small.kd -o m.kd
    kd-cat m.kd provenance >p
    for l in role=distill-dcd2 item_lambda=0.25 topk=20 eps=0.1; do grep -qx "$l" p; done
    # rce2: rce's lists, and the item side's (dcd-item's defaults, fixed) by their own names
    kd-distill -q --teacher t.kd $(margs rce2) --item-lambda 0.25 --dim 8 --epochs 2 small.kd -o m.kd
    kd-cat m.kd provenance >p
    for l in role=distill-rce2 method=rce2 topk=5 samples=8 topm=30 item_lambda=0.25 item_topk=20 item_uninteresting=20 \
             item_topm=100 eps=0.1 kd_decay=0; do grep -qx "$l" p; done
}

@test "an ensemble of teachers: every content ID in provenance and in the stage key" {
    kd-train -q --dim 16 --epochs 5 --seed 2 small.kd -o t2.kd
    kd-train -q --dim 8 --epochs 5 --seed 3 small.kd -o t3.kd
    kd-distill -q --teacher t.kd --teacher t2.kd --teacher t3.kd --method rrd --dim 8 --epochs 2 small.kd -o m.kd
    kd-cat m.kd provenance >p
    grep -qx "input.teacher=$(content_id t.kd)" p
    grep -qx "input.teacher.2=$(content_id t2.kd)" p
    grep -qx "input.teacher.3=$(content_id t3.kd)" p
    grep -qx 'teachers=3' p
    grep -qx 'ensemble=mean' p
    # the cache tells a different second teacher apart
    kd-distill -q --teacher t.kd --teacher t2.kd --method rrd --dim 8 --epochs 2 --cache cache small.kd -o a.kd
    run --separate-stderr -0 kd-distill --teacher t.kd --teacher t3.kd --method rrd --dim 8 --epochs 2 --cache cache small.kd -o b.kd
    [[ $stderr != *cached* ]]
    run --separate-stderr -0 kd-distill --teacher t.kd --teacher t2.kd --method rrd --dim 8 --epochs 2 --cache cache small.kd -o c.kd
    [[ $stderr == *cached* ]]
    cmp a.kd c.kd
    # one teacher: the same model and key as before ensembles existed (no teachers= line)
    kd-distill -q --teacher t.kd --method rrd --dim 8 --epochs 2 small.kd -o one.kd
    kd-cat one.kd provenance >p1
    ! grep -q '^teachers=' p1 || false
    ! grep -q '^input.teacher.2=' p1 || false
}

@test "an ensemble with a teacher trained on another dataset is refused" {
    small_dataset 2 other.kd
    kd-train -q --dim 16 --epochs 1 other.kd -o other-t.kd
    run --separate-stderr -1 kd-distill --teacher t.kd --teacher other-t.kd --method dcd small.kd -o m.kd
    [[ $stderr == "kd-distill: other-t.kd: teacher was trained on dataset $(content_id other.kd), not on small.kd ($(content_id small.kd))" ]]
    [ ! -e m.kd ]
}

@test "usage: rce's list sizes, the item side's, too many teachers" {
    kd-gen synth --users 20 --items 1100 --mean 5 --rank 2 --seed 1 -o wide.kd
    kd-train -q --dim 4 --epochs 1 wide.kd -o wt.kd
    run --separate-stderr -2 kd-distill --teacher wt.kd --method rce --topm 1025 wide.kd -o m.kd
    [ "$stderr" = "kd-distill: rce needs 1 <= --samples <= --topm <= 1024" ]
    run --separate-stderr -2 kd-distill --teacher t.kd --method rce --topk 5 --topm 10 --samples 11 small.kd -o m.kd
    [ "$stderr" = "kd-distill: rce needs 1 <= --samples <= --topm <= 1024" ]
    run --separate-stderr -2 kd-distill --teacher wt.kd --method dcd-item --topk 25 --topm 100 wide.kd -o m.kd
    [ "$stderr" = "kd-distill: need --topk <= users (20) for the item side" ]
    run --separate-stderr -2 kd-distill --teacher t.kd --method rce --samples 0 small.kd -o m.kd
    [[ $stderr == "kd-distill: --samples: 0 is out of range"* ]]
    run --separate-stderr -2 kd-distill --teacher t.kd --teacher t.kd --teacher t.kd --teacher t.kd \
        --teacher t.kd --teacher t.kd --teacher t.kd --teacher t.kd --teacher t.kd --method rrd small.kd -o m.kd
    [ "$stderr" = "kd-distill: --teacher: at most 8 teachers" ]
    [ ! -e m.kd ]
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

# ---- issue 14.4: the knob chosen on validation by default (--lambda auto)

@test "--lambda auto keeps the run of the grid's best valid value: that explicit value's model, bit for bit" {
    kd-gen synth --users 80 --items 40 --mean 8 --rank 4 --seed 2 -o v.kd
    kd-train -q --dim 16 --epochs 6 v.kd -o tv.kd
    for m in margin-mse rrd dcd rce dcd-item; do
        k=lambda; [ "$m" = margin-mse ] && k=alpha
        kd-distill -q --teacher tv.kd $(margs "$m") --auto-grid 0.5,0.05 --dim 8 --epochs 8 v.kd -o a.kd
        kd-cat a.kd provenance >p
        grep -qx "$k=auto" p
        grep -qx 'auto_grid=0.5,0.05' p
        v=$(sed -n "s/^result\.$k=//p" p)
        [ "$v" = 0.5 ] || [ "$v" = 0.05 ]
        grep -q '^result\.auto\.1=[0-9]' p
        grep -q '^result\.auto\.2=[0-9]' p
        kd-distill -q --teacher tv.kd $(margs "$m") --$k "$v" --dim 8 --epochs 8 v.kd -o x.kd
        params a.kd >a
        params x.kd >b
        cmp a b
        # the training record is the chosen run's
        cmp_section a.kd x.kd train.valid
    done
}

@test "--lambda auto's 0 is no distillation: kd-train's model for every method (decay and item side too), and stderr says so" {
    kd-gen synth --users 80 --items 40 --mean 8 --rank 4 --seed 2 -o v.kd
    kd-train -q --dim 16 --epochs 6 v.kd -o tv.kd
    kd-train -q --dim 8 --epochs 6 --seed 4 v.kd -o plain.kd
    params plain.kd >a
    for m in margin-mse rd rrd ce dcd dcd-item dcd2 rce rce2; do
        run --separate-stderr kd-distill --teacher tv.kd $(margs "$m") --auto-grid 0 --dim 8 --epochs 6 --seed 4 v.kd -o z.kd
        [ "$status" -eq 0 ]
        k=lambda; [ "$m" = margin-mse ] && k=alpha
        [ "$stderr" = "kd-distill: $m: no $k of the grid validated above 0 (no distillation): the student is plain BPR's" ]
        params z.kd >b
        cmp a b
        cmp_section plain.kd z.kd train.valid
        kd-cat z.kd provenance | grep -qx "result.$k=0"
    done
    # -q keeps it quiet
    run --separate-stderr kd-distill -q --teacher tv.kd --method rd --auto-grid 0 --dim 8 --epochs 6 --seed 4 v.kd -o z.kd
    [ -z "$stderr" ]
}

@test "--lambda auto is the default: the default grid includes 0, the same bytes twice and for any --threads" {
    kd-gen synth --users 80 --items 40 --mean 8 --rank 4 --seed 2 -o v.kd
    kd-train -q --dim 16 --epochs 6 v.kd -o tv.kd
    kd-distill -q --teacher tv.kd --method rrd --dim 8 --epochs 6 --threads 1 v.kd -o a.kd
    kd-distill -q --teacher tv.kd --method rrd --dim 8 --epochs 6 --threads 2 v.kd -o b.kd
    cmp a.kd b.kd
    kd-cat a.kd provenance >p
    grep -qx 'lambda=auto' p
    grep -qx 'auto_grid=0,0.1,0.3,1' p
    [ "$(grep -c '^result\.auto\.' p)" -eq 4 ]
    kd-distill -q --teacher tv.kd --method margin-mse --dim 8 --epochs 6 v.kd -o m.kd
    kd-cat m.kd provenance >p
    grep -qx 'alpha=auto' p
    grep -qx 'auto_grid=0,0.25,0.5,1' p
    kd-distill -q --teacher tv.kd --method margin-mse --margin-loss mse --dim 8 --epochs 6 v.kd -o m.kd
    kd-cat m.kd provenance | grep -qx 'auto_grid=0,0.03,0.1,0.3'
    # --mix add makes lambda the knob
    kd-distill -q --teacher tv.kd --method margin-mse --mix add --auto-grid 0.2 --dim 8 --epochs 4 v.kd -o n.kd
    kd-cat n.kd provenance | grep -qx 'result.lambda=0.2'
}

@test "--lambda auto skips a value that diverges; an explicit one that diverges says which flag to lower" {
    kd-gen synth --users 80 --items 40 --mean 8 --rank 4 --seed 2 -o v.kd
    kd-train -q --dim 16 --epochs 6 v.kd -o tv.kd
    kd-distill -q --teacher tv.kd --method margin-mse --mix add --auto-grid 1000000,0.1 --dim 8 --epochs 6 v.kd -o a.kd
    kd-cat a.kd provenance >p
    grep -qx 'result.auto.1=diverged' p
    grep -qx 'result.lambda=0.1' p
    run --separate-stderr -1 kd-distill -q --teacher tv.kd --method margin-mse --mix add --lambda 1000000 --dim 8 --epochs 6 v.kd -o b.kd
    [[ $stderr == "kd-distill: training diverged at epoch "*"; try a smaller --lr, or a smaller --lambda than 1e+06 (--lambda auto skips values that diverge)" ]]
    [ ! -e b.kd ]
    run --separate-stderr -1 kd-distill -q --teacher tv.kd --method margin-mse --mix add --auto-grid 1000000 --dim 8 --epochs 6 v.kd -o b.kd
    [ "$stderr" = "kd-distill: training diverged at every value of the --lambda auto grid; try a smaller --lr" ]
    [ ! -e b.kd ]
}

@test "without a validation split the knob is the method's fixed default, said in the one note" {
    kd-gen synth --users 60 --items 40 --mean 8 --valid-ratio 0 -o nv.kd
    kd-train -q --dim 16 --epochs 5 --no-early-stop nv.kd -o tn.kd
    run --separate-stderr -0 kd-distill --teacher tn.kd --method rrd --dim 8 nv.kd -o a.kd
    [ "$stderr" = "kd-distill: nv.kd: no validation split: no early stopping, a fixed 50 epochs (--valid-every needs one), --lambda 1" ]
    kd-distill -q --teacher tn.kd --method rrd --lambda 1 --no-early-stop --dim 8 nv.kd -o b.kd
    cmp a.kd b.kd
    run --separate-stderr -0 kd-distill --teacher tn.kd --method margin-mse --dim 8 --epochs 3 nv.kd -o c.kd
    [ "$stderr" = "kd-distill: nv.kd: no validation split: no early stopping, a fixed 3 epochs (--valid-every needs one), --alpha 0.5" ]
    kd-cat c.kd provenance | grep -qx 'alpha=0.5'
    # the notebook's mse: 0.5 diverges at the default rate, so its fixed default is smaller
    run --separate-stderr -0 kd-distill --teacher tn.kd --method margin-mse --margin-loss mse --dim 8 --epochs 3 nv.kd -o d.kd
    [ "$stderr" = "kd-distill: nv.kd: no validation split: no early stopping, a fixed 3 epochs (--valid-every needs one), --alpha 0.1" ]
    kd-cat d.kd provenance | grep -qx 'alpha=0.1'
}

@test "usage: --auto-grid's values, with an explicit knob, auto without early stopping" {
    for bad in "" "," "0.1," ",0.1" "0.1,,1" "x" "-1" "1,2,3,4,5,6,7,8,9"; do
        run --separate-stderr -2 kd-distill -q --teacher t.kd --method rrd --auto-grid "$bad" small.kd -o m.kd
        [[ $stderr == "kd-distill: --auto-grid"* ]]
        [ ! -e m.kd ]
    done
    run --separate-stderr -2 kd-distill -q --teacher t.kd --method margin-mse --auto-grid 0.1,2 small.kd -o m.kd
    [[ $stderr == "kd-distill: --auto-grid"* ]]
    run --separate-stderr -2 kd-distill -q --teacher t.kd --method rrd --lambda 0.3 --auto-grid 0.1 small.kd -o m.kd
    [ "$stderr" = "kd-distill: --auto-grid needs --lambda auto (the default), not --lambda 0.3" ]
    run --separate-stderr -2 kd-distill -q --teacher t.kd --method rrd --no-early-stop small.kd -o m.kd
    [ "$stderr" = "kd-distill: --lambda auto (the default) chooses on validation: give --lambda V with --no-early-stop" ]
    run --separate-stderr -2 kd-distill -q --teacher t.kd --method rrd --lambda autox small.kd -o m.kd
    [[ $stderr == "kd-distill: --lambda"* ]]
    [ ! -e m.kd ]
    # an explicit value with --no-early-stop is the old fixed-epoch run
    kd-distill -q --teacher t.kd --method rrd --lambda 0.3 --no-early-stop --epochs 2 small.kd -o m.kd
    [ "$(kd-cat m.kd train.loss | wc -l)" -eq 2 ]
}

# Pinned results: each ranking method's student on a fixed 200 x 300 dataset (from awk,
# not the generator), as main's a8d414b build made it.  Long experiments run with that
# build must stay reproducible, so a speed-up of a method may not move a bit of it.  A
# change of results on purpose (BPR's or the engine's too: the student includes them)
# updates these sums and says so in its commit.  dcd's default moved to --refresh 4 on
# purpose (kd_distill.c says why): its a8d414b bytes are pinned at --refresh 1, and the new
# default beside them.  margin-mse is not pinned here: its loss
# is being changed on purpose (its own tests pin what it must keep).
pinned_data() {
    awk 'BEGIN { s = 7; for (u = 0; u < 200; u++) for (k = 0; k < 12; k++) {
        s = (s * 69069 + 1) % 4294967296; c = u % 6
        print u, (c * 50 + int(s / 65536) % (k < 8 ? 60 : 300)) % 300 } }' >mid.txt
    kd-gen import --format triples mid.txt -o mid.kd
    kd-train -q --dim 16 --epochs 5 mid.kd -o tm.kd
}

@test "each ranking method trains the same bytes as the a8d414b build, at 1 and 3 threads" {
    pinned_data
    while IFS=: read -r spec sum; do
        for T in 1 3; do
            kd-distill -q --teacher tm.kd --method $spec --lambda 0.5 --dim 8 --epochs 3 --threads $T mid.kd -o o.kd
            got=$(params o.kd | cksum)
            [ "$got" = "$sum" ] || { echo "$spec --threads $T: cksum '$got', pinned '$sum'"; return 1; }
        done
    done <<'PINS'
rd:1291562480 56541
rd --dynamic:738339924 56520
rrd:3396192851 56479
ce:1848694028 56852
ce --ce-sample 32 --topm 20:1842355876 56544
dcd --refresh 1:2285327042 56518
dcd:2726680777 56672
dcd-item:1656207929 56610
dcd2:1314012447 56609
rce --topk 10 --samples 20 --topm 60:2614102936 56505
PINS
}

@test "rce2 trains the bytes of its first build (rce2's commit), at 1 and 3 threads" {
    # a guard against silent change, not a cross-check: the pins above are older than rce2
    pinned_data
    for T in 1 3; do
        kd-distill -q --teacher tm.kd --method rce2 --topk 10 --samples 20 --topm 60 --lambda 0.5 --dim 8 --epochs 3 --threads $T mid.kd -o o.kd
        [ "$(params o.kd | cksum)" = "4161176373 56636" ]
    done
}

# ---- issue 13.6/13.8: --refresh R, a share of the student's rows re-ranked each epoch

@test "--refresh's default: 4 for dcd, 1 for the others; the default given explicitly is the same bytes and stage key" {
    for m in dcd rce dcd-item dcd2 rce2; do
        r=$([ $m = dcd ] && echo 4 || echo 1)
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --dim 8 --epochs 3 small.kd -o a.kd
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --refresh $r --dim 8 --epochs 3 small.kd -o b.kd
        cmp a.kd b.kd
        if [ $r = 1 ]; then ! kd-cat a.kd provenance | grep -q '^refresh=' || false; else kd-cat a.kd provenance | grep -qx 'refresh=4'; fi
    done
    # dcd at --refresh 1 has the provenance of before dcd's default moved (no refresh line)
    kd-distill -q --teacher t.kd --method dcd --lambda 0.5 --refresh 1 --dim 8 --epochs 3 small.kd -o c.kd
    ! kd-cat c.kd provenance | grep -q '^refresh=' || false
    kd-distill -q --teacher t.kd --method dcd --lambda 0.5 --dim 8 --epochs 3 --cache cache small.kd -o c.kd
    run --separate-stderr -0 kd-distill --teacher t.kd --method dcd --lambda 0.5 --refresh 4 --dim 8 --epochs 3 --cache cache small.kd -o d.kd
    [[ $stderr == *cached* ]]
}

@test "--refresh 4: the same bytes for --threads 1, 2, 3 (and with --replicas 0), other bytes than 1, said in provenance" {
    for m in dcd rce dcd-item dcd2 rce2; do
        for th in 1 2 3; do
            kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --refresh 4 --dim 8 --epochs 6 --threads $th small.kd -o r$th.kd
        done
        cmp r1.kd r2.kd
        cmp r1.kd r3.kd
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --refresh 4 --dim 8 --epochs 6 --replicas 0 --threads 1 small.kd -o b1.kd
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --refresh 4 --dim 8 --epochs 6 --replicas 0 --threads 3 small.kd -o b3.kd
        cmp b1.kd b3.kd
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --refresh 1 --dim 8 --epochs 6 small.kd -o one.kd
        params r1.kd >a
        params one.kd >b
        ! cmp -s a b || { echo "$m: --refresh 4 trained the bytes of --refresh 1"; return 1; }
        kd-cat r1.kd provenance | grep -qx 'refresh=4'
    done
}

@test "--refresh: one epoch ranks every row, so it trains the bytes of --refresh 1; a new R a new stage key" {
    # epoch 0 ranks all rows whatever R: one epoch cannot tell R apart (but provenance can)
    for m in dcd rce dcd2 rce2; do
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --dim 8 --epochs 1 small.kd -o a.kd
        kd-distill -q --teacher t.kd $(margs "$m") --lambda 0.5 --refresh 7 --dim 8 --epochs 1 small.kd -o b.kd
        params a.kd >a
        params b.kd >b
        cmp a b
    done
    kd-distill -q --teacher t.kd --method dcd --lambda 0.5 --refresh 2 --dim 8 --epochs 3 --cache cache small.kd -o c.kd
    run --separate-stderr -0 kd-distill --teacher t.kd --method dcd --lambda 0.5 --refresh 3 --dim 8 --epochs 3 --cache cache small.kd -o d.kd
    [[ $stderr != *cached* ]]
    ! cmp -s c.kd d.kd || false
}

@test "--refresh with --lambda auto: each candidate starts from a full ranking, so the choice is its explicit run" {
    kd-gen synth --users 80 --items 40 --mean 8 --rank 4 --seed 2 -o v.kd
    kd-train -q --dim 16 --epochs 6 v.kd -o tv.kd
    # grids whose second value wins here: its run starts after the first's, whose lists
    # are stale for the new run
    for mg in dcd:0.05,0.5 rce:10,1; do
        m=${mg%:*} g=${mg#*:}
        kd-distill -q --teacher tv.kd $(margs "$m") --refresh 3 --auto-grid "$g" --dim 8 --epochs 8 v.kd -o a.kd
        v=$(kd-cat a.kd provenance | sed -n 's/^result\.lambda=//p')
        [ "$v" = "${g#*,}" ]
        kd-distill -q --teacher tv.kd $(margs "$m") --refresh 3 --lambda "$v" --dim 8 --epochs 8 v.kd -o x.kd
        params a.kd >a
        params x.kd >b
        cmp a b
    done
}

@test "usage: --refresh takes 1..64, and only with a method that ranks the student" {
    for bad in 0 65 -1 x 4x "" 1.5 99999999999 18446744073709551616; do
        run --separate-stderr -2 kd-distill -q --teacher t.kd --method dcd --refresh "$bad" small.kd -o m.kd
        [[ $stderr == "kd-distill: --refresh: "* ]]
        one_line
        [ -z "$output" ] && [ ! -e m.kd ]
    done
    for m in margin-mse rd "rd --dynamic" rrd ce; do
        run --separate-stderr -2 kd-distill -q --teacher t.kd --method $m --refresh 2 small.kd -o m.kd
        [ "$stderr" = "kd-distill: --refresh: ${m%% *} does not rank the student each epoch (only dcd, dcd-item, dcd2, rce and rce2 do)" ]
        [ ! -e m.kd ]
    done
    # 1, the default, is every method's (nothing to refresh is refreshed every epoch)
    kd-distill -q --teacher t.kd --method rrd --lambda 0.5 --refresh 1 --dim 8 --epochs 2 small.kd -o a.kd
    kd-distill -q --teacher t.kd --method rrd --lambda 0.5 --dim 8 --epochs 2 small.kd -o b.kd
    cmp a.kd b.kd
    kd-distill -q --teacher t.kd --method dcd --refresh 64 --lambda 0.5 --dim 8 --epochs 2 small.kd -o c.kd
}
