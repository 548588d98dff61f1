#!/usr/bin/env bats
# The content-hashed pipeline on a small configuration: the properties of issue 7, each
# checked on what the stages print ("ran in" = computed, "cached" = restored) and on the
# files they leave.
load test_helper

REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
BUILD_DIR=$(dirname "$KD_BIN")

# one plain-student run and no quantisation: the tests below count stages of that shape
# (the grid and the kd-quant stages have a test of their own)
SMALL="PLAIN_LRS=0.05 PLAIN_REGS=0.01 QUANT_BITS="

run_pipeline() { # run_pipeline [VAR=value...]: the seed pipeline in the current directory
    make --no-print-directory -f "$REPO/pipelines/seed.mk" pipeline-report BUILD="$BUILD_DIR" KD_CACHE=cache \
        SEEDS="1 2" GEN_FLAGS="--users 150 --items 80 --mean 12 --rank 16 --clusters 16" EPOCHS=8 \
        METHODS="margin-mse rrd" ALPHAS=0.1 LAMBDAS=0.3 $SMALL "$@" >out.log 2>err.log
}
ran() { grep -c ': ran in ' err.log || true; }
cached() { grep -c ': cached (key ' err.log || true; }
ids() { for f in data/seed/s*/*.kd; do echo "$f $(content_id "$f")"; done; }

@test "from nothing every stage runs once and the report is written" {
    run_pipeline
    # per seed: data, teacher, student, study, margin-mse_a0.1, rrd_l0.3, two evaluations
    [ "$(ran)" -eq 16 ]
    [ "$(cached)" -eq 0 ]
    [ -s data/seed/report.md ] && [ -s data/seed/report.html ]
    grep -q 'plain student' out.log
}

@test "a second run runs no stage and writes no file" {
    run_pipeline
    touch -d '1 minute ago' stamp
    find data -type f -newer stamp >before
    touch stamp
    run_pipeline
    [ -z "$(cat err.log)" ]
    [ -z "$(find data -type f -newer stamp ! -name stages.log)" ]
}

@test "touching inputs or an identical rebuild of a tool computes nothing" {
    run_pipeline
    touch data/seed/s1/data.kd
    run_pipeline
    [ "$(ran)" -eq 0 ]
    [ "$(cached)" -gt 0 ]
    mkdir bin2 && cp "$KD_BIN"/* bin2/ && mkdir -p b2 && ln -s "$PWD/bin2" b2/bin
    touch bin2/kd-train
    run_pipeline BUILD="$PWD/b2"
    [ "$(ran)" -eq 0 ]
}

@test "changing ALPHA reruns exactly its stages; changing it back computes nothing" {
    run_pipeline
    ids >before.ids
    run_pipeline ALPHA=0.3
    [ "$(ran)" -eq 6 ]   # per seed: the study's margin-MSE and the two evaluations
    ! grep -q 'teacher seed=' <(grep ': ran in ' err.log) || false
    grep -q 'study margin-mse seed=1: ran in' err.log
    run_pipeline
    [ "$(ran)" -eq 0 ]
    ids >after.ids
    cmp before.ids after.ids
}

@test "LATENCY_USERS reaches kd-eval's test stage, and changing it reruns exactly that stage" {
    run_pipeline
    grep -qx -- '-k 10,20 --latency-users 2000' data/seed/s1/.args/eval-test
    run_pipeline LATENCY_USERS=7
    [ "$(ran)" -eq 2 ]   # per seed: the test evaluation, nothing else
    grep -q 'eval test seed=1: ran in' err.log && grep -q 'eval test seed=2: ran in' err.log
    grep -qx -- '-k 10,20 --latency-users 7' data/seed/s1/.args/eval-test
    run_pipeline LATENCY_USERS=7
    [ "$(ran)" -eq 0 ]
}

@test "removing the outputs restores everything from the cache" {
    run_pipeline
    ids >before.ids
    rm -rf data/seed
    run_pipeline
    [ "$(ran)" -eq 0 ]
    [ "$(cached)" -eq 16 ]
    ids >after.ids
    cmp before.ids after.ids
}

@test "a corrupted cache entry is detected, moved aside, recomputed and warned about" {
    run_pipeline
    key=$(grep 'teacher seed=1' err.log | sed 's/.*key \([0-9a-f]*\).*/\1/')
    entry=$(ls cache/*/"$key"*.kd)
    chmod u+w "$entry"
    size=$(stat -c %s "$entry")
    flip_byte "$entry" $((size - 10))
    rm data/seed/s1/teacher.kd
    run_pipeline
    grep -q 'warning: corrupt cache entry moved aside and recomputed' err.log
    grep -q 'teacher seed=1: ran in' err.log
    ls cache/corrupt/ | grep -q "$key"
    kd-cache --cache cache verify >/dev/null
}

@test "an entry whose recomputation differs from its header's promise is non-determinism" {
    run_pipeline
    tkey=$(grep 'teacher seed=1' err.log | sed 's/.*key \([0-9a-f]*\).*/\1/')
    skey=$(grep 'student seed=1' err.log | sed 's/.*key \([0-9a-f]*\).*/\1/')
    tentry=$(ls cache/*/"$tkey"*.kd)
    sentry=$(ls cache/*/"$skey"*.kd)
    # the teacher's entry now holds the student's (intact header, other content), damaged
    chmod u+w "$tentry" && cp "$sentry" "$tentry" && chmod u+w "$tentry"
    flip_byte "$tentry" $(( $(stat -c %s "$tentry") - 10 ))
    rm data/seed/s1/teacher.kd
    run ! run_pipeline
    grep -q 'kd-train: non-determinism: stage teacher seed=1 recomputed content' err.log
}

@test "make -j2 gives the same content IDs, and two runs at once share one cache safely" {
    mkdir a b c
    (cd a && run_pipeline KD_CACHE=../cacheA)
    (cd a && ids) >a.ids
    (cd b && make --no-print-directory -j2 -f "$REPO/pipelines/seed.mk" pipeline-report BUILD="$BUILD_DIR" KD_CACHE=../cacheB \
        SEEDS="1 2" GEN_FLAGS="--users 150 --items 80 --mean 12 --rank 16 --clusters 16" EPOCHS=8 \
        METHODS="margin-mse rrd" ALPHAS=0.1 LAMBDAS=0.3 $SMALL >/dev/null 2>&1)
    (cd b && ids) >b.ids
    cmp a.ids b.ids
    (cd b && run_pipeline KD_CACHE=../shared) & p1=$!
    (cd c && run_pipeline KD_CACHE=../shared) & p2=$!
    wait $p1
    wait $p2
    kd-cache --cache shared verify >v.out
    grep -qx $'corrupt\t0' v.out
    (cd c && ids) >c.ids
    cmp a.ids c.ids
}

@test "an interrupted run leaves no partial artifact and the next run completes the same" {
    run_pipeline
    ids >want.ids
    rm -rf data cache
    for delay in 0.3 0.8; do
        env --default-signal=INT make --no-print-directory -f "$REPO/pipelines/seed.mk" pipeline-report BUILD="$BUILD_DIR" KD_CACHE=cache \
            SEEDS="1 2" GEN_FLAGS="--users 150 --items 80 --mean 12 --rank 16 --clusters 16" EPOCHS=8 \
            METHODS="margin-mse rrd" ALPHAS=0.1 LAMBDAS=0.3 $SMALL >/dev/null 2>&1 &
        pid=$!
        sleep "$delay"
        kill -INT "$pid" 2>/dev/null || true
        wait "$pid" || true
    done
    run_pipeline
    [ -z "$(find . -name '.*.kdtmp.*' -o -name '*.tmp.*')" ]
    ids >got.ids
    cmp want.ids got.ids
    kd-cache --cache cache verify >/dev/null
}

@test "the sweep pipeline runs; the temperature columns of its alpha x T table are equal" {
    make --no-print-directory -f "$REPO/pipelines/sweep.mk" pipeline-report BUILD="$BUILD_DIR" KD_CACHE=cache SEEDS=1 \
        GEN_FLAGS="--users 150 --items 80 --mean 12 --rank 16 --clusters 16" EPOCHS=8 SWEEP_ALPHAS="0.1 0.3" \
        SWEEP_TEMPS="1 2 4" SWEEP_METHODS=rrd SWEEP_LAMBDAS="0.1 1" DIMS="8 16" SIZE_METHODS=rrd >out.log 2>err.log
    grep -q '^α = 0.1 ' out.log
    # powers of two cancel exactly: the three T columns hold the same number
    awk '/^α = / { if ($4 != $5 || $5 != $6) exit 1; n++ } END { exit n != 2 }' out.log
    xmllint --noout data/sweep/report.html
    [ -s data/sweep/frontier.svg ] && [ -s data/sweep/alpha-temperature.svg ]
    # the size table says bytes (4 x params in float) and compression against the teacher
    grep -q '^| student dim | params | bytes | compression (bytes) | plain | rrd |' data/sweep/report.md
    awk -F' [|] ' '$1 == "| 8" && $3 == 4 * $2 { ok = 1 } END { exit !ok }' data/sweep/report.md
    grep -q '^| teacher | [0-9]* | [0-9]* | 1.00× |' data/sweep/report.md
}

@test "a cache on a full disk: the stage still writes its result, warns, and leaves no partial entry" {
    [ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
    mkdir full
    mount -t tmpfs -o size=12k tmpfs full 2>/dev/null || skip "cannot mount a tmpfs here"
    small_dataset 1 s.kd
    run --separate-stderr -0 kd-train -q --dim 64 --epochs 2 --cache full s.kd -o m.kd
    leftovers=$(find full -name '*.tmp.*' | wc -l)
    entries=$(find full -name '*.kd' | wc -l)
    umount full
    [[ $stderr == *"warning: "*"the result is written, only not cached"* ]]
    [ -s m.kd ] && kd-info m.kd >/dev/null
    [ "$leftovers" -eq 0 ] && [ "$entries" -eq 0 ]
}

@test "SIGKILL of make mid-run, then a rerun: same artifacts, and two runs at once in one directory" {
    run_pipeline
    ids >want.ids
    rm -rf data cache
    make --no-print-directory -f "$REPO/pipelines/seed.mk" pipeline-report BUILD="$BUILD_DIR" KD_CACHE=cache \
        SEEDS="1 2" GEN_FLAGS="--users 150 --items 80 --mean 12 --rank 16 --clusters 16" EPOCHS=8 \
        METHODS="margin-mse rrd" ALPHAS=0.1 LAMBDAS=0.3 $SMALL >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" || true
    sleep 1 # orphaned tools finish or die; their writes are atomic either way
    run_pipeline & p1=$!
    run_pipeline & p2=$!
    wait $p1
    wait $p2
    run_pipeline
    ids >got.ids
    cmp want.ids got.ids
    kd-cache --cache cache verify >v.out
    grep -qx $'corrupt\t0' v.out
}

@test "the plain-student grid and the kd-quant stages: chosen on valid, quantised, shown with bytes" {
    run_pipeline PLAIN_LRS="0.05 0.1" QUANT_BITS="8 4" QUANT_METHODS=rrd
    # per seed: data, teacher, 2 students, study, margin-mse_a0.1, rrd_l0.3, 2 x (teacher, 2
    # students, rrd_l0.3) quantised, two evaluations: 17
    [ "$(ran)" -eq 34 ]
    grep -q '^kd-train student seed=1: ran in' err.log
    grep -q 'student_lr0.1_reg0.01 seed=2: ran in' err.log
    grep -q 'student_lr0.1_reg0.01_q4 seed=1: ran in' err.log
    grep -q -- '--lr 0.1 --reg 0.01 ' data/seed/s1/.args/student_lr0.1_reg0.01
    grep -q -- '--lr 0.05 --reg 0.01 ' data/seed/s1/.args/student
    # quantised models are evaluated on test only, valid chooses among float runs
    [ "$(grep -c $'\tquantised\t' data/seed/s1/eval-test.tsv)" -eq 8 ]
    ! grep -q $'\tquantised\t' data/seed/s1/eval-valid.tsv || false
    grep -q '^| 1 | 2 | 0\.\(05\|1\) | 0\.01 |' data/seed/report.md
    grep -q '^| teacher, int8-asym | [0-9]* | 3.42× |' data/seed/report.md
    grep -q '^| plain student (chosen on valid), int4-asym | ' data/seed/report.md
    grep -q '^| distilled: rrd (knob chosen on valid), int8-asym | ' data/seed/report.md
    grep -q 'on the frontier' data/seed/report.md
    # the same again: nothing runs
    run_pipeline PLAIN_LRS="0.05 0.1" QUANT_BITS="8 4" QUANT_METHODS=rrd
    [ "$(ran)" -eq 0 ]
}

@test "a QUANT_METHODS method left out of METHODS is not quantised (it has no runs), the rest is" {
    # the default QUANT_METHODS is dcd, which METHODS="margin-mse rrd" leaves out: before, the
    # pipeline asked for dcd's quantised runs and stopped ("No rule to make target dcd_l0.3.kd")
    run_pipeline QUANT_BITS=8
    [ "$(grep -c $'\tquantised\t' data/seed/s1/eval-test.tsv)" -eq 2 ]
    ! ls data/seed/s1/dcd_* 2>/dev/null || false
    grep -q '^| teacher, int8-asym | ' data/seed/report.md
}

@test "make -n report on a fresh tree writes nothing, for every pipeline" {
    mkdir tree && cp -R "$REPO/Makefile" "$REPO/pipelines" "$REPO/lib" "$REPO/tools" tree/
    cd tree
    find . | sort >../before
    make -n report >/dev/null
    make -n report PIPELINE=sweep >/dev/null
    if [ -d "$SHARED_DATA/lastfm" ]; then make -n report PIPELINE=real DATASET=lastfm SHARED_DATA="$SHARED_DATA" >/dev/null; fi
    find . | sort >../after
    cmp ../before ../after
}

@test "RUN prefixes every tool run of the pipelines, and a second run runs nothing through it" {
    printf '#!/bin/sh\necho "$(basename "$1")" >>"%s/run.log"\nexec "$@"\n' "$PWD" >run.sh && chmod +x run.sh
    run_pipeline RUN="$PWD/run.sh"
    [ "$(ran)" -eq 16 ]
    # every stage and the report, each through the prefix, and no tool run without it
    [ "$(wc -l <run.log)" -eq 17 ]
    [ "$(grep -c '^kd-report$' run.log)" -eq 1 ] && [ "$(grep -c '^kd-eval$' run.log)" -eq 4 ]
    [ "$(grep -c "/bin/kd-" out.log)" -eq 17 ]
    [ "$(grep -c "^$PWD/run.sh .*/bin/kd-" out.log)" -eq 17 ]
    run_pipeline RUN="$PWD/run.sh"
    [ "$(wc -l <run.log)" -eq 17 ]
}

@test "a changed parameter rewrites its argument file and nothing else; an unchanged one is left alone" {
    run_pipeline
    touch -d '1 minute ago' data/seed/s1/.args/* && touch stamp
    run_pipeline LAMBDAS=1
    [ "$(find data/seed/s1/.args -type f -newer stamp)" = data/seed/s1/.args/rrd_l1 ]
    [ -s data/seed/s1/.args/rrd_l1 ] && grep -q -- '--lambda 1 ' data/seed/s1/.args/rrd_l1
    [ ! data/seed/s1/.args/teacher -nt stamp ]
}

@test "DATASET=amazon-book imports the given train/test and draws validation with the seed" {
    [ -f "$SHARED_DATA/amazon-book/train.txt" ] || skip "no $SHARED_DATA/amazon-book"
    make -n --no-print-directory -f "$REPO/pipelines/real.mk" pipeline-report BUILD="$BUILD_DIR" SHARED_DATA="$SHARED_DATA" \
        DATASET=amazon-book SEEDS="1 2" >out.log
    grep -q -- "kd-gen import --format adj --test $SHARED_DATA/amazon-book/test.txt --valid-fraction 0.1 --seed 2 $SHARED_DATA/amazon-book/train.txt .*-o data/real-amazon-book-t64-s32/s2/data.kd" out.log
    [ "$(grep -c -- 'kd-gen import .*--valid-fraction 0.1 --seed 1 ' out.log)" -eq 1 ]
    [ ! -e data ]
}

@test "DATASET=citeulike-8010 splits all of CiteULike per user 80/10/10 with the seed" {
    [ -f "$SHARED_DATA/citeulike/train.txt" ] || skip "no $SHARED_DATA/citeulike"
    make -n --no-print-directory -f "$REPO/pipelines/real.mk" pipeline-report BUILD="$BUILD_DIR" SHARED_DATA="$SHARED_DATA" \
        DATASET=citeulike-8010 TEACHER_DIM=300 STUDENT_DIM=20 SEEDS="1 2" >out.log
    grep -q -- "kd-gen import --format triples --test-ratio 0.1 --valid-ratio 0.1111 --seed 2 data/citeulike-all.txt .*-o data/real-citeulike-8010-t300-s20/s2/data.kd" out.log
    # the split is kept when IMPORT_FLAGS is given too
    make -n --no-print-directory -f "$REPO/pipelines/real.mk" pipeline-report BUILD="$BUILD_DIR" SHARED_DATA="$SHARED_DATA" \
        DATASET=citeulike-8010 IMPORT_FLAGS="--kcore 2" SEEDS=1 >out2.log
    grep -q -- "kd-gen import --format triples --kcore 2 --test-ratio 0.1 --valid-ratio 0.1111 --seed 1 data/citeulike-all.txt " out2.log
    [ ! -e data ]
    # the one file is the three given ones in order, and a seed's split holds 10% of each user's items in test
    make --no-print-directory -f "$REPO/pipelines/real.mk" data/citeulike-all.txt SHARED_DATA="$SHARED_DATA" DATASET=citeulike-8010 >/dev/null
    cat "$SHARED_DATA/citeulike/train.txt" "$SHARED_DATA/citeulike/valid.txt" "$SHARED_DATA/citeulike/test.txt" | cmp - data/citeulike-all.txt
    kd-gen import --format triples --test-ratio 0.1 --valid-ratio 0.1111 --seed 1 data/citeulike-all.txt -o d.kd
    kd-info d.kd >info.txt
    grep -q 'train .* nnz=168343' info.txt && grep -q 'valid .* nnz=21082' info.txt && grep -q 'test .* nnz=21079' info.txt
}

@test "make report's progress line: none when stderr is not a terminal" {
    sh "$REPO/tools/progress.sh" 2 pipeline-report make --no-print-directory -f "$REPO/pipelines/seed.mk" BUILD="$BUILD_DIR" \
        KD_CACHE=cache SEEDS=1 GEN_FLAGS="--users 150 --items 80 --mean 12 --rank 16 --clusters 16" EPOCHS=4 \
        METHODS=rrd LAMBDAS=0.3 $SMALL >out.log 2>err.log
    [ "$(ran)" -eq 7 ]   # data, teacher, student, study, rrd_l0.3, two evaluations
    ! grep -q 'stages' err.log || false
    grep -q 'plain student' out.log
    # the report target goes through it
    make --no-print-directory -C "$REPO" -n report | grep -q 'tools/progress.sh'
}

@test "make report's progress line on a terminal counts every stage, up-to-date ones included" {
    command -v script >/dev/null || skip "needs script (util-linux)"
    cmd="sh '$REPO/tools/progress.sh' 2 pipeline-report make --no-print-directory -j2 -f '$REPO/pipelines/seed.mk' BUILD='$BUILD_DIR' \
        KD_CACHE=cache SEEDS='1 2' GEN_FLAGS='--users 150 --items 80 --mean 12 --rank 16 --clusters 16' EPOCHS=4 \
        METHODS=rrd LAMBDAS=0.3 $SMALL"
    script -qfec "$cmd" /dev/null >tty.log
    # each redraw starts with a carriage return; the last one is the final count
    last() { tr '\r' '\n' <tty.log | grep -a '^\[report\] [0-9]*/[0-9]* stages, ' | tail -1; }
    first() { tr '\r' '\n' <tty.log | grep -a '^\[report\] [0-9]*/[0-9]* stages, ' | head -1; }
    # per seed: data, teacher, student, study, rrd_l0.3, two evaluations
    [[ "$(first)" == "[report] 0/14 stages, "* ]]
    [[ "$(last)" == "[report] 14/14 stages, "* ]]
    tr '\r' '\n' <tty.log | grep -aq 'stages, .* elapsed, ~[0-9ms]* left'
    grep -aq 'teacher seed=1: ran in' tty.log
    grep -aq 'plain student' tty.log
    # up to date: nothing runs, every stage is counted done from the start
    rm data/seed/s2/eval-valid.tsv
    script -qfec "$cmd" /dev/null >tty.log
    [[ "$(first)" == "[report] 13/14 stages, "* ]]
    [[ "$(last)" == "[report] 14/14 stages, "* ]]
    # make's exit status comes through, the line still closed
    run script -qfec "$cmd EPOCHS=x" /dev/null
    [ "$status" -ne 0 ]
}

@test "make report's progress line: a make around it (its long options in MAKEFLAGS) does not read as make -n" {
    command -v script >/dev/null || skip "needs script (util-linux)"
    cmd="sh '$REPO/tools/progress.sh' 2 pipeline-report make --no-print-directory -f '$REPO/pipelines/seed.mk' BUILD='$BUILD_DIR' \
        KD_CACHE=cache SEEDS=1 GEN_FLAGS='--users 150 --items 80 --mean 12 --rank 16 --clusters 16' EPOCHS=4 \
        METHODS=rrd LAMBDAS=0.3 $SMALL"
    MAKEFLAGS=' --no-print-directory -- DEVELOPER=1' script -qfec "$cmd" /dev/null >tty.log
    tr '\r' '\n' <tty.log | grep -aq '^\[report\] 7/7 stages, '
    # a real dry run: the commands are listed, nothing is drawn and nothing runs
    rm -rf data
    MAKEFLAGS='n --no-print-directory' script -qfec "$cmd" /dev/null >tty.log
    ! grep -aq '\[report\]' tty.log || false
    grep -aq 'kd-gen synth' tty.log
    [ ! -e data/seed/s1/data.kd ]
}

@test "after a complete run make -n lists no stage; a changed parameter lists exactly the stages it reaches" {
    m=(make --no-print-directory -f "$REPO/pipelines/seed.mk" BUILD="$BUILD_DIR" KD_CACHE=cache SEEDS="1 2" \
        GEN_FLAGS="--users 150 --items 80 --mean 12 --rank 16 --clusters 16" EPOCHS=4 METHODS=rrd LAMBDAS=0.3 $SMALL)
    "${m[@]}" pipeline-report >/dev/null 2>&1
    [ "$("${m[@]}" -n pipeline-report | grep -c -- '--label')" -eq 0 ]
    # EPOCHS reaches every training of both seeds and their evaluations, not the data
    [ "$("${m[@]}" -n pipeline-report EPOCHS=5 | grep -c -- '--label')" -eq 12 ]
    [ "$("${m[@]}" -n pipeline-report EPOCHS=5 | grep -c -- 'kd-gen')" -eq 0 ]
    # and -n still writes nothing
    before=$(find data -type f -newer data/seed/s1/data.kd | wc -l)
    "${m[@]}" -n pipeline-report EPOCHS=5 >/dev/null
    [ "$(find data -type f -newer data/seed/s1/data.kd | wc -l)" -eq "$before" ]
}
