#!/bin/sh
# The defaults' table (issue 14.4): what a new user gets from the tools' defaults alone.  On
# each dataset, for seeds 1..N: a teacher (kd-train, its defaults: dim 64), the plain student
# (kd-train --dim 32, its defaults otherwise) and every method (kd-distill --teacher T
# --method M: dim 32, early stopping on valid, the knob chosen on valid by --lambda/--alpha
# auto); the only other flag is --seed, so seeds differ on the fixed real splits too.  Test
# Recall@10 from kd-eval.  Per method: the mean, the mean paired delta against the plain
# student of the same seed, its 95% t interval and the two-sided paired t-test p over seeds,
# and a verdict at 5%.  Every tool run is prefixed by $KD_RUN (empty by default; e.g. "nice
# -n 10" or a lock wrapper), one run at a time; a finished run is kept and not redone.
#     tools/defaults-table.sh OUTDIR "synth lastfm citeulike amazon-book" [N [METHODS]]
# N seeds [3]; METHODS [margin-mse rd rrd ce dcd dcd-item dcd2 rce].  Reads ../shared/data
# (or $SHARED_DATA); the binaries from $KD_BIN [build/bin].  Prints the table and writes it
# to OUTDIR/table.txt.
set -eu
if [ $# -lt 2 ]; then
    echo "usage: tools/defaults-table.sh OUTDIR DATASETS [N [METHODS]]" >&2
    exit 2
fi
out=$1 sets=$2 n=${3:-3}
methods=${4:-margin-mse rd rrd ce dcd dcd-item dcd2 rce}
case $n in '' | *[!0-9]* | 0) echo "defaults-table.sh: N: '$n' is not a positive number of seeds" >&2; exit 2 ;; esac
B=${KD_BIN:-build/bin}
S=${SHARED_DATA:-../shared/data}
R=${KD_RUN-}
seeds=$(seq 1 "$n")
for ds in $sets; do
    case $ds in
    synth | lastfm | citeulike | amazon-book) ;;
    *) echo "defaults-table.sh: $ds: not one of synth lastfm citeulike amazon-book" >&2; exit 2 ;;
    esac
done
mkdir -p "$out"
for ds in $sets; do
    for s in $seeds; do
        d=$out/$ds/s$s
        mkdir -p "$d"
        if [ ! -e "$d/data.kd" ]; then
            case $ds in
            synth) $R "$B/kd-gen" synth --seed "$s" -o "$d/data.kd" ;;
            lastfm) $R "$B/kd-gen" import --format adj --test "$S/lastfm/test.txt" --valid "$S/lastfm/valid.txt" "$S/lastfm/train.txt" -o "$d/data.kd" 2>>"$d/import.log" ;;
            citeulike) $R "$B/kd-gen" import --format triples --test "$S/citeulike/test.txt" --valid "$S/citeulike/valid.txt" "$S/citeulike/train.txt" -o "$d/data.kd" 2>>"$d/import.log" ;;
            amazon-book) $R "$B/kd-gen" import --format adj --test "$S/amazon-book/test.txt" --valid-fraction 0.1 --seed "$s" "$S/amazon-book/train.txt" -o "$d/data.kd" 2>>"$d/import.log" ;;
            esac
        fi
        [ -e "$d/teacher.kd" ] || $R "$B/kd-train" -q --seed "$s" "$d/data.kd" -o "$d/teacher.kd"
        [ -e "$d/plain.kd" ] || $R "$B/kd-train" -q --dim 32 --seed "$s" "$d/data.kd" -o "$d/plain.kd"
        for m in $methods; do
            # a method that fails (e.g. diverges at every knob) is reported as missing, not fatal
            [ -e "$d/$m.kd" ] || $R "$B/kd-distill" -q --teacher "$d/teacher.kd" --method "$m" --seed "$s" "$d/data.kd" -o "$d/$m.kd" 2>"$d/$m.err" ||
                echo "defaults-table.sh: $ds seed $s $m: $(cat "$d/$m.err")" >&2
        done
        models=$(for m in teacher plain $methods; do [ -e "$d/$m.kd" ] && printf '%s ' "$d/$m.kd"; done)
        $R "$B/kd-eval" --no-timing --threads 1 -k 10 "$d/data.kd" $models -o "$d/eval.tsv"
    done
done
# the table: one row per dataset and model, over the seeds evaluated
for ds in $sets; do
    for s in $seeds; do
        [ -e "$out/$ds/s$s/eval.tsv" ] && awk -v ds="$ds" -v s="$s" -F '\t' \
            'NR == 1 { for (c = 1; c <= NF; c++) if ($c == "recall@10") rc = c; next } { print ds, s, $1, $rc }' "$out/$ds/s$s/eval.tsv"
    done
done | awk '
# two-sided p of a t statistic with df degrees of freedom (Simpson on the density)
function tp(t, df,   n, h, x, a, k, c) {
    if (t < 0) t = -t
    if (t == 0) return 1
    n = 2000; h = t / n; a = 0
    c = exp(lgam((df + 1) / 2) - lgam(df / 2)) / sqrt(df * 3.141592653589793)
    for (k = 0; k <= n; k++) {
        x = k * h
        a += (k == 0 || k == n ? 1 : k % 2 ? 4 : 2) * c * (1 + x * x / df) ^ (-(df + 1) / 2)
    }
    return 1 - 2 * a * h / 3
}
function lgam(x) { # Stirling series, x >= 0.5
    if (x < 7) return lgam(x + 1) - log(x)
    return (x - 0.5) * log(x) - x + 0.9189385332046727 + 1 / (12 * x) - 1 / (360 * x ^ 3)
}
# the t quantile of a two-sided 95% interval: tp(t, df) = 0.05, by bisection
function tq(df,   lo, hi, mid, k) {
    lo = 0; hi = 1000
    for (k = 0; k < 60; k++) { mid = (lo + hi) / 2; if (tp(mid, df) > 0.05) lo = mid; else hi = mid }
    return (lo + hi) / 2
}
{ v[$1, $3, $2] = $4; if (!(($1, $3) in seen)) { seen[$1, $3] = 1; order[++n] = $1 SUBSEP $3 } ; sd[$1, $2] = 1 }
END {
    printf "%-12s %-11s %5s %8s %9s %21s %7s  %s\n", "dataset", "model", "seeds", "R@10", "delta", "95% interval", "p", "vs plain (5%)"
    for (i = 1; i <= n; i++) {
        split(order[i], k, SUBSEP); ds = k[1]; m = k[2]
        cnt = 0; sum = 0; sdl = 0; sdl2 = 0
        for (key in sd) { split(key, q, SUBSEP); if (q[1] != ds || !((ds, m, q[2]) in v) || !((ds, "plain", q[2]) in v)) continue
            cnt++; sum += v[ds, m, q[2]]; dl = v[ds, m, q[2]] - v[ds, "plain", q[2]]; sdl += dl; sdl2 += dl * dl }
        mean = sum / cnt; md = sdl / cnt
        if (m == "plain" || cnt < 2) { printf "%-12s %-11s %5d %8.4f %9s %21s %7s\n", ds, m, cnt, mean, "-", "-", "-"; continue }
        var = (sdl2 - cnt * md * md) / (cnt - 1); se = sqrt(var > 0 ? var / cnt : 0)
        p = se > 0 ? tp(md / se, cnt - 1) : (md == 0 ? 1 : 0)
        h = tq(cnt - 1) * se
        verdict = p >= 0.05 ? "not significant" : md > 0 ? "better" : "WORSE"
        printf "%-12s %-11s %5d %8.4f %+9.4f [%+9.4f, %+9.4f] %7.3f  %s\n", ds, m, cnt, mean, md, md - h, md + h, p, verdict
    }
}' | tee "$out/table.txt"
