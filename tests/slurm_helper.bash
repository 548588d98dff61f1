# A real single-node Slurm cluster for the tests, private to one .bats file.
#
#   load slurm_helper
#   setup_file()    { slurm_start; }      # skips every test of the file, with the reason,
#   teardown_file() { slurm_stop; }       # where a cluster cannot start
#
# slurm_start writes munge's key and a slurm.conf into a fresh directory (state, spool,
# logs, sockets and PID files all inside it, two TCP ports nobody listens on), starts
# munged, `slurmctld -i` and slurmd as root without systemd, and waits for the node to be
# idle.  It exports SLURM_CONF, so srun/sbatch/squeue/scancel in the tests talk to this
# cluster only.  slurm_stop kills the three daemons by the PIDs they were started with
# (never by name: other engineers' processes share the machine) and removes the directory.
#
# Cgroup-free on purpose (proctrack/linuxproc, task/none): the tests run in containers and
# CI machines where cgroups are not ours to configure.  One cluster at a time on a machine:
# the whole file holds an exclusive flock on /tmp/kdrec-slurm.lock (the daemons inherit no
# descriptor, so a crashed test cannot leave a lock held by a stray daemon).
#
# slurm_bench BUILD: the figures of docs/slurm.md and `make bench` (see there).

KD_SLURM_LOCK=${KD_SLURM_LOCK:-/tmp/kdrec-slurm.lock}

# daemon CMD...: CMD with every inherited descriptor above 2 closed (a daemon keeps what
# it inherits: an flock on /tmp/kdrec-cpu.lock or the test file's lock held by a stray
# daemon would block every other engineer)
daemon() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            fd=${fd##*/}
            [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
        done
        exec "$@"
    )
}

# slurm_why_not: prints why a cluster cannot start here, or nothing
slurm_why_not() {
    [ "$(id -u)" = 0 ] || { echo "the Slurm tests need root (munged, slurmd); run as root or skip"; return; }
    local c
    for c in munged slurmctld slurmd srun sbatch scontrol; do
        command -v "$c" >/dev/null 2>&1 ||
            { echo "no $c: apt-get install slurm-wlm munge (make deps does it as root)"; return; }
    done
    command -v flock >/dev/null 2>&1 || echo "no flock (util-linux)"
}

# free_port: a TCP port in 20000-39999 that nothing listens on (checked, not reserved)
free_port() {
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 20000))
        case " ${KD_SLURM_PORTS:-} " in *" $p "*) continue ;; esac
        if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then
            KD_SLURM_PORTS="${KD_SLURM_PORTS:-} $p"
            echo "$p"
            return 0
        fi
    done
    return 1
}

# slurm_wait_idle SECONDS: the node idle (not down, not drained) within the time
slurm_wait_idle() {
    local n=$(( ${1:-30} * 10 )) st
    while [ "$n" -gt 0 ]; do
        st=$(sinfo -h -N -o '%T' 2>/dev/null | head -1)
        [ "$st" = idle ] && return 0
        sleep 0.1
        n=$((n - 1))
    done
    echo "slurm: node not idle (state '${st:-?}'); logs in $KD_SLURM_DIR" >&2
    return 1
}

slurm_start() {
    local why
    why=$(slurm_why_not)
    if [ -n "$why" ]; then
        export KD_SLURM_SKIP="$why"
        return 0
    fi
    # the lock first: one cluster at a time (another engineer's run waits here)
    exec {KD_SLURM_LOCK_FD}>>"$KD_SLURM_LOCK"
    flock -x "$KD_SLURM_LOCK_FD"
    export KD_SLURM_LOCK_FD

    KD_SLURM_DIR=$(mktemp -d /tmp/kdrec-slurm.XXXXXX)
    export KD_SLURM_DIR
    local d=$KD_SLURM_DIR host cpus mem ctld_port d_port
    chmod 0755 "$d"
    mkdir -p "$d/munge" "$d/state" "$d/spool" "$d/log"
    chmod 0755 "$d/munge"     # munged refuses a socket directory others can write
    host=$(hostname -s)
    cpus=$(nproc --all)
    mem=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
    ctld_port=$(free_port) && d_port=$(free_port) || { export KD_SLURM_SKIP="no free TCP port"; return 0; }

    # munge: a private key and socket, so the system's munge (if any) is not involved
    dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$d/munge/munge.key"
    daemon munged --force --socket="$d/munge/socket" --key-file="$d/munge/munge.key" \
        --pid-file="$d/munge/munged.pid" --log-file="$d/log/munged.log" \
        --seed-file="$d/munge/seed" ||
        { export KD_SLURM_SKIP="munged did not start: $(tail -1 "$d/log/munged.log" 2>/dev/null)"; return 0; }

    cat >"$d/slurm.conf" <<EOF
ClusterName=kdrec
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/socket
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$d/log/jobcomp.txt
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=kd Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    export SLURM_CONF=$d/slurm.conf
    daemon slurmctld -i -f "$SLURM_CONF" &&
        daemon slurmd -f "$SLURM_CONF" ||
        { export KD_SLURM_SKIP="slurm did not start; logs in $d/log"; return 0; }
    slurm_wait_idle 30 ||
        { export KD_SLURM_SKIP="the node did not become idle: $(tail -2 "$d/log/slurmd.log" | tr '\n' ' ')"; return 0; }
    export KD_SLURM_SKIP=
}

# slurm_require: at the start of each test (skips with the reason slurm_start found)
slurm_require() {
    [ -z "${KD_SLURM_SKIP:-}" ] || skip "$KD_SLURM_SKIP"
    [ -n "${SLURM_CONF:-}" ] || skip "no cluster (slurm_start not called)"
}

# slurm_stop: cancels what is left, kills the daemons by PID and waits for them, unlocks
slurm_stop() {
    [ -n "${KD_SLURM_DIR:-}" ] && [ -d "$KD_SLURM_DIR" ] || return 0
    local f pid n
    [ -n "${SLURM_CONF:-}" ] && scancel --quiet --full --user=root 2>/dev/null || true
    for f in slurmd.pid slurmctld.pid munge/munged.pid; do
        pid=$(cat "$KD_SLURM_DIR/$f" 2>/dev/null) || continue
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || continue
        n=50
        while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    done
    # steps' slurmstepd die with their job; wait for any that linger on our spool directory
    if [ -n "${KD_SLURM_KEEP:-}" ]; then
        echo "# slurm: kept $KD_SLURM_DIR" >&3
    else
        rm -rf "$KD_SLURM_DIR"
    fi
    KD_SLURM_DIR=
    if [ -n "${KD_SLURM_LOCK_FD:-}" ]; then
        flock -u "$KD_SLURM_LOCK_FD" 2>/dev/null
        exec {KD_SLURM_LOCK_FD}>&-
    fi
}

# slurm_bench BUILD: what Slurm costs the pipelines here (docs/slurm.md; tools/bench.sh).
# Starts its own cluster (or says why it cannot) and prints, each a median of 3 runs:
#   make -f pipelines/slurm.mk slurm-overhead SLURM_N=200: one trivial step vs one local run
#   the sweep of 204 stages + its report from nothing: make -jN locally, and inside
#     salloc -cN with every stage a step (srun --exact -n1 -c1 --quit-on-interrupt)
#   the same with every stage a cache hit (outputs removed, cache kept)
# Take the timings under `flock -x -o /tmp/kdrec-cpu.lock` (-o: nothing started inherits it).
slurm_bench() {
    local B repo w n cpus t r mode
    B=$(cd "${1:-build}" && pwd)
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    slurm_start
    if [ -n "${KD_SLURM_SKIP:-}" ]; then
        echo "(no cluster: $KD_SLURM_SKIP)"
        slurm_stop
        return 0
    fi
    cpus=$(nproc)
    make --no-print-directory -f "$repo/pipelines/slurm.mk" slurm-overhead SLURM_N=200 BUILD="$B" |
        grep '^slurm-overhead:'
    w=$(mktemp -d)
    local big=(SEEDS="1 2 3 4" GEN_FLAGS="--users 60 --items 40 --mean 8 --rank 4 --clusters 4" EPOCHS=2)
    sweep() { make --no-print-directory -f "$repo/pipelines/sweep.mk" BUILD="$B" KD_CACHE=cache "${big[@]}" pipeline-report "$@"; }
    wall() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || echo "slurm_bench: failed: $*" >&2; t1=$(date +%s.%N); echo "$t0 $t1" | awk '{ print $2 - $1 }'; }
    for r in 1 2 3; do
        for mode in local slurm; do
            rm -rf "$w/$mode" && mkdir "$w/$mode" && cd "$w/$mode" || return 1
            if [ $mode = local ]; then
                echo "$mode fresh $(wall sweep -j"$cpus")"
                rm -rf data && echo "$mode cached $(wall sweep -j"$cpus")"
            else
                echo "$mode fresh $(wall salloc --quiet -N1 -n1 -c"$cpus" make --no-print-directory -f "$repo/pipelines/sweep.mk" \
                    BUILD="$B" KD_CACHE=cache "${big[@]}" -j"$cpus" RUN="srun --exact -n1 -c1 --quit-on-interrupt" pipeline-report)"
                # the report empties its stage log: the steps must publish what the local run did
                n=$(find cache -name '*.kd' | wc -l)
                [ "$n" -eq "$(find ../local/cache -name '*.kd' | wc -l)" ] || echo "slurm_bench: $n entries, not the local run's" >&2
                rm -rf data && echo "$mode cached $(wall salloc --quiet -N1 -n1 -c"$cpus" make --no-print-directory -f "$repo/pipelines/sweep.mk" \
                    BUILD="$B" KD_CACHE=cache "${big[@]}" -j"$cpus" RUN="srun --exact -n1 -c1 --quit-on-interrupt" pipeline-report)"
            fi
        done
    done >"$w/times"
    cd "$repo" || true
    awk -v cpus="$cpus" '{ t[$1 " " $2, ++n[$1 " " $2]] = $3 }
        function med(k,   a, i, j, x) { for (i = 1; i <= 3; i++) a[i] = t[k, i];
            for (i = 1; i <= 3; i++) for (j = i + 1; j <= 3; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
            return a[2] }
        END {
            lf = med("local fresh"); sf = med("slurm fresh")
            lc = med("local cached"); sc = med("slurm cached")
            printf "sweep, 204 stages + report, from nothing: local make -j%d %.1f s, as Slurm steps %.1f s: %.3f s more per stage\n", cpus, lf, sf, (sf - lf) / 205
            printf "sweep, 204 stages + report, all cache hits: local make -j%d %.1f s, as Slurm steps %.1f s: %.3f s more per stage\n", cpus, lc, sc, (sc - lc) / 205
        }' "$w/times"
    rm -rf "$w"
    slurm_stop
}
