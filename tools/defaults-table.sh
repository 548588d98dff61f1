#!/bin/sh
# The defaults' table (issue 14.4): on each dataset and seed, a teacher (kd-train --dim 64),
# a plain student (kd-train --dim 32) and every method (kd-distill --teacher T --method M
# --dim 32), all at the tools' defaults (early stopping on valid, --lambda auto); test
# Recall@10 from kd-eval; per method the mean, the mean delta vs the plain student and a
# paired t-test across seeds (two-sided p).  Every tool run goes through $KD_RUN (the
# shared CPU lock by default), one run at a time.
#     tools/defaults-table.sh OUTDIR "synth lastfm citeulike amazon-book" "1 2 3" [METHODS]
# Reads ../shared/data (or $SHARED_DATA); the binaries from $KD_BIN [build/bin].
set -eu
out=$1 sets=$2 seeds=$3
methods=${4:-margin-mse rd rrd ce dcd dcd-item dcd2 rce}
B=${KD_BIN:-build/bin}
S=${SHARED_DATA:-../shared/data}
R=${KD_RUN:-/tmp/kd-shared}
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
        [ -e "$d/teacher.kd" ] || $R "$B/kd-train" -q --dim 64 --seed "$s" "$d/data.kd" -o "$d/teacher.kd"
        [ -e "$d/plain.kd" ] || $R "$B/kd-train" -q --dim 32 --seed "$s" "$d/data.kd" -o "$d/plain.kd"
        for m in $methods; do
            [ -e "$d/$m.kd" ] || $R "$B/kd-distill" -q --teacher "$d/teacher.kd" --method "$m" --dim 32 --seed "$s" "$d/data.kd" -o "$d/$m.kd"
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
{ v[$1, $3, $2] = $4; if (!(($1, $3) in seen)) { seen[$1, $3] = 1; order[++n] = $1 SUBSEP $3 } ; sd[$1, $2] = 1 }
END {
    printf "%-12s %-11s %5s %9s %9s %8s %7s\n", "dataset", "model", "seeds", "R@10", "delta", "t", "p"
    for (i = 1; i <= n; i++) {
        split(order[i], k, SUBSEP); ds = k[1]; m = k[2]
        cnt = 0; sum = 0; sdl = 0; sdl2 = 0
        for (key in sd) { split(key, q, SUBSEP); if (q[1] != ds || !((ds, m, q[2]) in v)) continue
            cnt++; sum += v[ds, m, q[2]]; dl = v[ds, m, q[2]] - v[ds, "plain", q[2]]; sdl += dl; sdl2 += dl * dl }
        mean = sum / cnt; md = sdl / cnt
        if (m == "plain" || cnt < 2) { printf "%-12s %-11s %5d %9.4f %9s %8s %7s\n", ds, m, cnt, mean, "-", "-", "-"; continue }
        var = (sdl2 - cnt * md * md) / (cnt - 1); se = sqrt(var > 0 ? var / cnt : 0)
        t = se > 0 ? md / se : 0
        printf "%-12s %-11s %5d %9.4f %+9.4f %8.2f %7.3f\n", ds, m, cnt, mean, md, t, se > 0 ? tp(t, cnt - 1) : 1
    }
}' | tee "$out/table.txt"
