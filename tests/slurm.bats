#!/usr/bin/env bats
# The pipelines on a real single-node Slurm cluster (tests/slurm_helper.bash): every stage a
# Slurm step or job, the same content IDs as a local run, the cache shared by allocations.
#
# Each stage's job and step are read from the srun environment by a wrapper in RUN
# ($STEPLOG: "job.step tool label" per stage).  Skipped under the sanitizers (make
# check-san): about 200 Slurm steps take a minute or more, and the tools' memory safety is
# the rest of the suite's business, not the scheduler's.
load test_helper
load slurm_helper

REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
BUILD_DIR=$(dirname "$KD_BIN")
STEPLOG=$BATS_FILE_TMPDIR/steplog

# 4 seeds x (data, teacher, 20 margin-MSE, 16 method x lambda, 4 dims, 8 size, eval) = 204 stages
BIG=(SEEDS="1 2 3 4" GEN_FLAGS="--users 60 --items 40 --mean 8 --rank 4 --clusters 4" EPOCHS=2)
BIG_STAGES=204
# 1 seed x (data, teacher, 4 margin-MSE, 4 method x lambda, 2 dims, 2 size, eval) = 15 stages
SMALL=(SEEDS=1 GEN_FLAGS="--users 60 --items 40 --mean 8 --rank 4 --clusters 4" EPOCHS=2
    SWEEP_ALPHAS="0.1 0.3" SWEEP_TEMPS="1 2" SWEEP_METHODS="rrd dcd" SWEEP_LAMBDAS="0.1 1" DIMS="8 16" SIZE_METHODS=rrd)
SMALL_STAGES=15

setup_file() {
    case $KD_BIN in
    */build-san/*) export KD_SLURM_SKIP="Slurm tests skipped under the sanitizers (slow; plain build covers them)"; return 0 ;;
    esac
    slurm_start
    [ -z "$KD_SLURM_SKIP" ] || return 0
    # RUN's last word: records the step, then becomes the tool
    cat >"$STEPLOG" <<'EOF'
#!/bin/sh
label= prev= tool=${1##*/}
for a in "$@"; do [ "$prev" = --label ] && label=$a; prev=$a; done
printf '%s.%s %s %s\n' "${SLURM_JOB_ID:-none}" "${SLURM_STEP_ID:-none}" "$tool" "$label" >>"$KD_STEP_LOG"
exec "$@"
EOF
    chmod +x "$STEPLOG"
    # the local runs every Slurm run is compared with
    local cfg
    for cfg in BIG SMALL; do
        mkdir -p "$BATS_FILE_TMPDIR/local-$cfg"
        (cd "$BATS_FILE_TMPDIR/local-$cfg" && eval "sweep pipeline-report KD_CACHE=cache -j2 \"\${$cfg[@]}\"" >out.log 2>err.log &&
            ids >"$BATS_FILE_TMPDIR/$cfg.ids") || { export KD_SLURM_SKIP="the local reference run failed"; return 0; }
    done
}

teardown_file() {
    slurm_stop
}

setup() {
    slurm_require
    export KD_STEP_LOG=$PWD/steps.log
}

sweep() { # sweep TARGET... [VAR=value...]: the sweep pipeline's make in the current directory
    make --no-print-directory -f "$REPO/pipelines/sweep.mk" BUILD="$BUILD_DIR" "$@"
}
evals() { # the evaluation TSVs of the seeds (every stage but the report)
    local s
    for s in $1; do echo "data/sweep/s$s/eval-test.tsv"; done
}
ids() { for f in data/sweep/s*/*.kd; do echo "$f $(content_id "$f")"; done; }
ran() { grep -c ': ran in ' "${1:-err.log}" || true; }
cached() { grep -c ': cached (key ' "${1:-err.log}" || true; }
STEP_RUN="srun --exact -n1 -c1 --quit-on-interrupt"

@test "a sweep of 204 stages runs each stage as its own step of one allocation, with the local content IDs; a rerun is all cache hits" {
    # shellcheck disable=SC2046
    salloc --quiet -N1 -n1 -c2 make --no-print-directory -f "$REPO/pipelines/sweep.mk" BUILD="$BUILD_DIR" -k -j2 \
        KD_CACHE=cache "${BIG[@]}" RUN="$STEP_RUN $STEPLOG" $(evals "1 2 3 4") >out.log 2>err.log
    [ "$(wc -l <steps.log)" -eq "$BIG_STAGES" ]
    [ "$(awk '{ split($1, j, "."); print j[1] }' steps.log | sort -u | wc -l)" -eq 1 ]   # one job
    [ -z "$(grep '^none\.\|\.none ' steps.log)" ]                                    # inside it
    [ "$(cut -d' ' -f1 steps.log | sort -u | wc -l)" -eq "$BIG_STAGES" ]                 # a step each
    # the steps are the stages: the same (tool, label) pairs the tools logged
    cut -d' ' -f2- steps.log | sort >step-labels
    sed 's/: \(ran in\|cached\).*//' data/sweep/stages.log | sort >stage-labels
    cmp step-labels stage-labels
    [ $(( $(ran) + $(cached) )) -eq "$BIG_STAGES" ]
    sweep pipeline-report KD_CACHE=cache "${BIG[@]}" >/dev/null 2>&1
    ids >slurm.ids
    cmp "$BATS_FILE_TMPDIR/BIG.ids" slurm.ids

    rm -rf data steps.log
    salloc --quiet -N1 -n1 -c2 make --no-print-directory -f "$REPO/pipelines/sweep.mk" BUILD="$BUILD_DIR" -k -j2 \
        KD_CACHE=cache "${BIG[@]}" RUN="$STEP_RUN $STEPLOG" $(evals "1 2 3 4") >out.log 2>err.log
    [ "$(ran)" -eq 0 ]
    [ "$(cached)" -eq "$BIG_STAGES" ]
    [ "$(wc -l <steps.log)" -eq "$BIG_STAGES" ]
    ids >again.ids
    cmp "$BATS_FILE_TMPDIR/BIG.ids" again.ids
}

@test "the stage log names each stage's Slurm job and step (slurm=<job>.<step>)" {
    salloc --quiet -N1 -n1 -c2 make --no-print-directory -f "$REPO/pipelines/sweep.mk" BUILD="$BUILD_DIR" -j2 \
        KD_CACHE=cache "${SMALL[@]}" RUN="$STEP_RUN $STEPLOG" $(evals 1) >out.log 2>err.log
    [ "$(wc -l <data/sweep/stages.log)" -eq "$SMALL_STAGES" ]
    # kd_stage's own record (lib/kd_stage.h) agrees with what srun gave each step
    [ "$(grep -c ' slurm=[0-9]*\.[0-9]*$' data/sweep/stages.log)" -eq "$SMALL_STAGES" ]
    sort steps.log >want    # job.step tool label (a label may hold spaces)
    sed 's/^\(.*\): \(ran in\|cached\).* slurm=\([0-9]*\.[0-9]*\).*/\3 \1/' data/sweep/stages.log | sort >got
    cmp want got
}

@test "make slurm-report runs the pipeline in one batch allocation, waits, and gives the local content IDs" {
    make --no-print-directory -f "$REPO/pipelines/slurm.mk" slurm-report PIPELINE=sweep BUILD="$BUILD_DIR" \
        SLURM_CPUS=2 SLURM_LOG="$PWD/job.log" KD_CACHE=cache "${SMALL[@]}" >out.log 2>err.log
    [ -s data/sweep/report.md ] && [ -s data/sweep/report.html ]
    [ "$(grep -c ': ran in ' job.log)" -eq "$SMALL_STAGES" ]
    grep -q '^srun --exact -n1 -c1 --quit-on-interrupt .*/kd-train ' job.log
    # every stage and the report were steps of that one job (slurmd logs each launch)
    job=$(sed -n 's/^JobId=\([0-9]*\) .* Name=kdrec-sweep .*JobState=COMPLETED.*/\1/p' "$KD_SLURM_DIR/log/jobcomp.txt" | tail -1)
    [ -n "$job" ]
    [ "$(grep -c "launch task StepId=$job\." "$KD_SLURM_DIR/log/slurmd.log")" -eq $((SMALL_STAGES + 1)) ]
    ids >slurm.ids
    cmp "$BATS_FILE_TMPDIR/SMALL.ids" slurm.ids
}

@test "make slurm-stages submits one job per stage" {
    before=$(grep -c '' "$KD_SLURM_DIR/log/jobcomp.txt" 2>/dev/null || true)
    make --no-print-directory -f "$REPO/pipelines/slurm.mk" slurm-stages PIPELINE=sweep BUILD="$BUILD_DIR" \
        SLURM_CPUS=2 KD_CACHE=cache "${SMALL[@]}" >out.log 2>err.log
    [ "$(ran)" -eq "$SMALL_STAGES" ]
    [ -s data/sweep/report.md ]
    # the controller writes a job's completion record as it cleans the job up: wait for them
    n=0
    until after=$(grep -c '' "$KD_SLURM_DIR/log/jobcomp.txt"); [ $((after - before)) -ge $((SMALL_STAGES + 1)) ] || [ $n -gt 100 ]; do
        sleep 0.1; n=$((n + 1)); done
    [ $((after - before)) -eq $((SMALL_STAGES + 1)) ]
    [ "$(tail -n $((after - before)) "$KD_SLURM_DIR/log/jobcomp.txt" | grep -c ' Name=kd-[a-z]* .*JobState=COMPLETED ')" -eq $((SMALL_STAGES + 1)) ]
    ids >slurm.ids
    cmp "$BATS_FILE_TMPDIR/SMALL.ids" slurm.ids
}

@test "a failing stage makes make slurm-report exit non-zero while -k finishes the others" {
    run -2 make --no-print-directory -f "$REPO/pipelines/slurm.mk" slurm-report PIPELINE=sweep BUILD="$BUILD_DIR" \
        SLURM_CPUS=2 SLURM_LOG="$PWD/job.log" KD_CACHE=cache "${SMALL[@]}" SWEEP_LAMBDAS="0.1 -1 1"
    grep -q 'kd-distill: --lambda: -1 is out of range' job.log
    # rrd_l-1 and dcd_l-1 fail; their seed's evaluation and the report cannot run; the rest did
    [ "$(grep -c ': ran in ' job.log)" -eq $((SMALL_STAGES - 1)) ]
    [ ! -e data/sweep/s1/rrd_l-1.kd ] && [ ! -e data/sweep/s1/dcd_l-1.kd ] && [ -s data/sweep/s1/dcd_l1.kd ]
    [ ! -e data/sweep/report.md ]
}

@test "scancel during a run leaves no partial artifact or cache entry, and the next run completes" {
    # each step waits half a second first (srun's prolog), so the cancel lands mid-run even on a
    # loaded machine: the small sweep's 15 stages take about a second without it
    printf '#!/bin/sh\nsleep 0.5\n' >slow.sh && chmod +x slow.sh
    make --no-print-directory -f "$REPO/pipelines/slurm.mk" slurm-report PIPELINE=sweep BUILD="$BUILD_DIR" \
        SLURM_CPUS=2 SLURM_LOG="$PWD/job.log" KD_CACHE=cache SRUN_FLAGS="--prolog=$PWD/slow.sh" "${SMALL[@]}" >out.log 2>err.log &
    pid=$!
    n=0
    lines() { if [ -f data/sweep/stages.log ]; then grep -c '' data/sweep/stages.log || true; else echo 0; fi; }
    until [ "$(lines)" -ge 2 ] || [ $n -gt 600 ]; do sleep 0.1; n=$((n + 1)); done
    # this run's job: running in this directory (the previous test's job can still be listed,
    # completing, under the same name)
    job=$(squeue -h -n kdrec-sweep -t RUNNING -o '%i %Z' | awk -v d="$PWD" '$2 == d { print $1 }')
    [ -n "$job" ]
    scancel "$job"
    st=0
    wait "$pid" || st=$?
    [ "$st" -ne 0 ]
    [ "$(grep -c '' data/sweep/stages.log)" -lt "$SMALL_STAGES" ]   # it was cut short
    [ -z "$(find . -name '.*.kdtmp.*' -o -name '*.tmp.*')" ]
    for f in data/sweep/s1/*.kd; do kd-info "$f" >/dev/null; done
    kd-cache --cache cache verify >v.out
    grep -qx $'corrupt\t0' v.out
    make --no-print-directory -f "$REPO/pipelines/slurm.mk" slurm-report PIPELINE=sweep BUILD="$BUILD_DIR" \
        SLURM_CPUS=2 SLURM_LOG="$PWD/job.log" KD_CACHE=cache "${SMALL[@]}" >out.log 2>err.log
    [ -s data/sweep/report.md ]
    ids >slurm.ids
    cmp "$BATS_FILE_TMPDIR/SMALL.ids" slurm.ids
}

@test "two allocations sharing one cache at once produce one entry per key" {
    mkdir a b
    pids=
    for d in a b; do
        (cd $d && KD_STEP_LOG=$PWD/steps.log salloc --quiet -N1 -n1 -c1 make --no-print-directory -f "$REPO/pipelines/sweep.mk" \
            BUILD="$BUILD_DIR" -j1 KD_CACHE=../shared "${SMALL[@]}" RUN="$STEP_RUN $STEPLOG" pipeline-report >out.log 2>err.log) &
        pids="$pids $!"
    done
    for p in $pids; do wait "$p"; done
    # two jobs, at once
    [ "$(cat a/steps.log b/steps.log | cut -d. -f1 | sort -u | wc -l)" -eq 2 ]
    [ "$(( $(ran a/err.log) + $(cached a/err.log) ))" -eq "$SMALL_STAGES" ]
    [ "$(( $(ran b/err.log) + $(cached b/err.log) ))" -eq "$SMALL_STAGES" ]
    keys=$(cat a/err.log b/err.log | sed -n 's/.*(key \([0-9a-f]*\)).*/\1/p' | sort -u | wc -l)
    [ "$(find shared -name '*.kd' ! -path '*/corrupt/*' | wc -l)" -eq "$keys" ]
    [ -z "$(find shared -name '*.tmp.*')" ]
    kd-cache --cache shared verify >v.out
    grep -qx $'corrupt\t0' v.out
    (cd a && ids) >a.ids
    (cd b && ids) >b.ids
    cmp "$BATS_FILE_TMPDIR/SMALL.ids" a.ids
    cmp "$BATS_FILE_TMPDIR/SMALL.ids" b.ids
}
