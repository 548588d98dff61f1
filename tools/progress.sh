#!/bin/sh
# progress.sh JOBS GOAL MAKE ARGS...: run `MAKE ARGS... GOAL` (`make report`'s pipeline) and,
# when stderr is a terminal, keep one line on it saying how far the pipeline is:
#     [report] 37/106 stages, 1m12s elapsed, ~2m05s left
# Quiet otherwise: with stderr not a terminal (a log, a CI job, a test) this is an exec.
#
# The counts come from Make and from the stages' own lines, nothing is guessed:
#   total    the stage recipes of `MAKE ARGS... -n -B GOAL` (each stage's recipe has --label)
#   done     total minus the recipes `MAKE ARGS... -n GOAL` would run (those up to date), the
#            argument files first brought up to date and marked old (pipelines/common.mk),
#            plus each stage line the run prints (kd_stage.h: "<label>: ran in" / "cached")
#   left     the stages not done x the mean time of those that RAN in this run (cached ones
#            cost next to nothing and would make the estimate too low) / JOBS stages at once
# The stage lines are read from make's stderr, which passes through here unchanged: each is
# printed over the progress line, which is then drawn again under it, so the two never mix.
# When stdout is the same terminal, make's stdout comes through here too (the report's text
# would otherwise land after the progress line); redirected, it goes where it was sent.
# A ticker adds a private line each second, with the time, to redraw the clock (POSIX awk
# has no clock of its own).  make's exit status is ours.
set -u
jobs=$1 goal=$2; shift 2

# not a terminal, or a dry run (`make -n report` runs this recipe since it names $(MAKE)).
# Only MAKEFLAGS's first word holds make's one-letter flags ("ns"), and only when it does not
# start with '-': long options and variables follow ("--no-print-directory -- V=1"), and
# their letters must not read as -n (a `make test` around us would otherwise turn us off).
[ -t 2 ] || exec "$@" "$goal"
mflags=${MAKEFLAGS-}
case $mflags in ' '*|-*) mflags= ;; *) mflags=${mflags%% *} ;; esac
case $mflags in *n*) exec "$@" "$goal" ;; esac

count() { "$@" 2>/dev/null | grep -c -- '--label "' || true; }
total=$(count "$@" -n -B "$goal")
old=$("$@" -s pipeline-args 2>/dev/null | sed 's/^/-o /') || old=
# shellcheck disable=SC2086 # one -o per argument file (paths without blanks: under PDIR)
todo=$(count "$@" -n $old "$goal")
# no stage found (Make stopped on an error, or not a pipeline): run it bare, it says why
[ "$total" -gt 0 ] || exec "$@" "$goal"
tick=$(printf '\001tick')
t0=$(date +%s)
if [ -t 1 ]; then merge=1; else merge=0; fi

# Ctrl-C reaches the whole process group: make stops its stages and exits, the ticker dies,
# and the reader (which ignores it) sees the end of its input and closes the line.
interrupted=0
trap 'interrupted=1' INT
st=$(mktemp "${TMPDIR:-/tmp}/kd-progress.XXXXXX") || exit 1
trap 'rm -f "$st"' EXIT
{
    { while printf '%s %s\n' "$tick" "$(date +%s)"; do sleep 1; done; } &
    ticker=$!
    if [ "$merge" = 1 ]; then
        { "$@" "$goal"; echo $? >"$st"; } 2>&1 3>&-
    else
        { "$@" "$goal"; echo $? >"$st"; } 2>&1 >&3 3>&-
    fi
    kill "$ticker" 2>/dev/null
    printf '%s %s\n' "$tick" "$(date +%s)"
} 3>&1 | (trap '' INT; exec awk -v total="$total" -v todo="$todo" -v jobs="$jobs" -v tick="$tick" -v t0="$t0" '
function clock(s) { s = int(s + 0.5); return s >= 60 ? int(s / 60) "m" sprintf("%02d", s % 60) "s" : s "s" }
function line(  d, left, eta) {
    d = total - todo + seen
    left = total - d
    if (left <= 0)      eta = ""
    else if (ran == 0)  eta = ", estimating"
    else                eta = ", ~" clock(left * secs / ran / jobs) " left"
    return sprintf("[report] %d/%d stages, %s elapsed%s", d, total, clock(now - t0), eta)
}
function draw() { printf "\r%s\033[K", line() >"/dev/stderr"; fflush("/dev/stderr") }
BEGIN { if (jobs < 1) jobs = 1; now = t0; draw() }
$1 == tick { if ($2 > now) now = $2; draw(); next }
{
    if (match($0, /: ran in [0-9.]+ s \(key [0-9a-f]+\)/)) {
        seen++; ran++
        s = substr($0, RSTART + 9); sub(/ .*/, "", s); secs += s
    } else if ($0 ~ /: cached \(key [0-9a-f]+\)/) seen++
    printf "\r\033[K%s\n", $0 >"/dev/stderr"
    draw()
}
END { printf "\r%s\033[K\n", line() >"/dev/stderr" }')
rc=$(cat "$st" 2>/dev/null)
[ "$interrupted" = 1 ] && exit 130
exit "${rc:-1}"
