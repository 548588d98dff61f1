#!/bin/sh
# Check that no lib/ module includes a header from a layer above its own, and that the
# modules' includes have no cycle.  The layer map is read from README.md (the fenced block
# marked `layers` in its Layout section), so the README and this check cannot disagree:
#   study    kd_report kd_stage ...
#   engine   kd_sgd ...                  one line per layer, top to bottom
# A module is a lib/kd_<name>.c and its .h; it may include the headers of its own layer and
# of the layers below.  tools/*.c (the layer above all) may include any lib/ header.
#   sh tools/check-layers.sh [ROOT]      (ROOT: the source tree, default this script's)
# Exit 0 with one summary line, or 1 with one line per violation.
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 1
[ -f README.md ] || { echo "check-layers: README.md: no such file" >&2; exit 1; }

map=$(awk '/^```layers$/ { on = 1; next } on && /^```$/ { exit } on { sub(/#.*/, ""); if (NF) print }' README.md)
[ -n "$map" ] || { echo "check-layers: README.md: no \`\`\`layers block (the layer map)" >&2; exit 1; }

# every local include, as "file line module included-module" (lib/kd_x.c and kd_x.h are module
# kd_x), and one "file 0 module -" per file, so a module that includes nothing is seen too
edges=$(for f in lib/*.c lib/*.h tools/*.c; do
    [ -f "$f" ] && awk -v f="$f" 'BEGIN { m = f; sub(/^.*\//, "", m); sub(/\.[ch]$/, "", m); if (f ~ /^tools\//) m = "tools/" m
        print f, 0, m, "-" }
    /^[ \t]*#[ \t]*include[ \t]*"/ {
        h = $0; sub(/^[^"]*"/, "", h); sub(/".*/, "", h); sub(/\.h$/, "", h)
        m = f; sub(/^.*\//, "", m); sub(/\.[ch]$/, "", m); if (f ~ /^tools\//) m = "tools/" m
        print f, FNR, m, h }' "$f"
done)

# rank: 0 for the top layer of the map, 1 below it, ...; tools/ are above all (-1)
report=$(printf '%s\n' "$map" | awk -v edges="$edges" '
    { for (i = 2; i <= NF; i++) { if ($i in layer) dup = dup " " $i; layer[$i] = $1; rank[$i] = NR - 1 }; nl = NR }
    END {
        if (dup != "") { print "README.md: module in two layers:" dup; bad++ }
        n = split(edges, e, "\n")
        for (k = 1; k <= n; k++) {
            if (split(e[k], w, " ") != 4) continue
            f = w[1]; line = w[2]; m = w[3]; h = w[4]
            if (m ~ /^tools\//) { mr = -1; ml = "tools" } else if (m in rank) { mr = rank[m]; ml = layer[m] }
            else { if (!(m in told)) print f ": module " m " is in no layer of README.md'"'"'s layer map"; told[m] = 1; bad++; continue }
            if (h == "-") { if (m !~ /^tools\//) nmod += !(m in mods); mods[m] = 1; continue }
            if (h !~ /^kd_/) continue
            if (!(h in rank)) { print f ":" line ": includes " h ".h, which is in no layer of README.md'"'"'s layer map"; bad++; continue }
            if (rank[h] < mr) { print f ":" line ": " m " (" ml ") includes " h ".h (" layer[h] "): a layer up"; bad++ }
            if (m !~ /^tools\// && h != m) dep[m " " h] = 1
            nin++
        }
        for (d in dep) print "edge", d
        for (m in mods) if (m !~ /^tools\//) print "edge", m, m   # tsort: every module is a node
        printf "summary %d modules in %d layers, %d includes\n", nmod, nl, nin
        exit (bad > 0)
    }')
status=$?

printf '%s\n' "$report" | grep -v '^edge \|^summary ' >&2
# a cycle among the modules' includes (tsort names it on stderr)
cycle=$(printf '%s\n' "$report" | sed -n 's/^edge //p' | tsort 2>&1 >/dev/null | sed -n 's/^tsort: //p' |
    grep -v 'input contains a loop' | tr '\n' ' ')
if [ -n "$cycle" ]; then echo "check-layers: include cycle among: ${cycle% }" >&2; status=1; fi
[ "$status" -eq 0 ] || exit 1
echo "check-layers: $(printf '%s\n' "$report" | sed -n 's/^summary //p'), none reaching up, no cycle"
