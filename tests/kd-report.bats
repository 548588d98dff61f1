#!/usr/bin/env bats
# kd-report: its numbers are the evaluation files' numbers, it tells models apart by
# provenance (never by file name), and its HTML/SVG are well-formed.
load test_helper

# models of one seed directory, named as the seed pipeline names them
models() { # models DIR SEED
    local d=$1 s=$2 tr="--epochs 2 --seed $2"
    small_dataset "$s" "$d/data.kd"
    kd-train -q --dim 8 $tr "$d/data.kd" -o "$d/teacher.kd"
    kd-train -q --dim 4 $tr "$d/data.kd" -o "$d/student.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method margin-mse --alpha 0.5 --lr 0.01 --dim 4 $tr "$d/data.kd" -o "$d/study.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method margin-mse --alpha 0.1 --dim 4 $tr "$d/data.kd" -o "$d/margin-mse_a0.1.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method rrd --lambda 0.1 --dim 4 $tr "$d/data.kd" -o "$d/rrd_l0.1.kd"
    kd-distill -q --teacher "$d/teacher.kd" --method rrd --lambda 1 --dim 4 $tr "$d/data.kd" -o "$d/rrd_l1.kd"
}
ORDER="teacher student study margin-mse_a0.1 rrd_l0.1 rrd_l1"

# id..teacher: the identity columns kd-eval writes, by name
ident() {
    awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i }
                { print $c["id"] "\t" $c["role"] "\t" $c["method"] "\t" $c["knob"] "\t" $c["knob_value"] "\t" $c["seed"] "\t" $c["teacher"] }' "$1"
}

# two seeds of real models, with hand-made numbers beside kd-eval's identity columns
setup() {
    for s in 1 2; do
        mkdir -p run/s$s
        models run/s$s $s
        kd-eval --no-timing -k 10 --reference run/s$s/teacher.kd run/s$s/data.kd $(for m in $ORDER; do echo run/s$s/$m.kd; done) >real.tsv
        ident real.tsv >id.tsv
        { printf 'model\tkind\tdim\tparams\tbytes\tcompression\tcompression_bytes\trecall@10\tndcg@10\tusers\tskipped\tlat_mean_us\tlat_p99_us\n'
          printf 'teacher\tbpr\t64\t97500\t1\t1\t1\t0.30%s\t0.20%s\t100\t0\t5\t9\n' $s $s
          printf 'student\tbpr\t32\t49500\t1\t1.9697\t1\t0.20%s\t0.10%s\t100\t0\t4\t8\n' $s $s
          printf 'study\tdistill-margin-mse\t32\t49500\t1\t1.9697\t1\t0.18%s\t0.09%s\t100\t0\t4\t8\n' $s $s
          printf 'margin-mse_a0.1\tdistill-margin-mse\t32\t49500\t1\t1.9697\t1\t0.19%s\t0.09%s\t100\t0\t4\t8\n' $s $s
          printf 'rrd_l0.1\tdistill-rrd\t32\t49500\t1\t1.9697\t1\t0.25%s\t0.15%s\t100\t0\t4\t8\n' $s $s
          printf 'rrd_l1\tdistill-rrd\t32\t49500\t1\t1.9697\t1\t0.29%s\t0.19%s\t100\t0\t4\t8\n' $s $s
        } >num.tsv
        paste num.tsv id.tsv >run/s$s/eval-test.tsv
        { printf 'model\trecall@10\n'
          printf 'teacher\t0.3\nstudent\t0.2\nstudy\t0.1\nmargin-mse_a0.1\t0.1\nrrd_l0.1\t%s\nrrd_l1\t%s\n' 0.5 0.4
        } >v.tsv
        paste v.tsv <(cut -f1 id.tsv) >run/s$s/eval-valid.tsv
    done
}

@test "the study's table holds the evaluations' means over seeds" {
    run --separate-stderr -0 kd-report --html run/report.html -o run/report.md run
    grep -q '| teacher | 0.3015 ± 0.0007 | 0.2015 ± 0.0007 |' run/report.md
    grep -q '| plain student | 0.2015 ± 0.0007 |' run/report.md
    [[ $output == *"teacher"*"0.3015 ± 0.0007"* ]]
}

@test "each method's knob is chosen on validation, not test, and its gap closed computed from it" {
    kd-report -o run/report.md run >/dev/null
    # valid prefers rrd_l0.1 (0.5 > 0.4) although rrd_l1 is better on test
    grep -q 'distilled: rrd (knob chosen on valid) | 0.2515 ± 0.0007' run/report.md
    # gap closed = (0.251 - 0.201) / (0.301 - 0.201) = 50% for both seeds
    grep -q '| l0.1 l0.1 | 50% (50% … 50%)' run/report.md
    # the study's margin-MSE is below the student in both seeds
    grep 'the study' run/report.md | grep -q -- '-20%'
}

@test "the study's run is told from the margin-mse grid by its training settings" {
    kd-report -o run/report.md run >/dev/null
    # alpha and lr come from the study model's provenance
    grep -q "| distilled: the study's margin-MSE (α 0.5, lr 0.01) | 0.1815 ± 0.0007" run/report.md
    # the grid holds only the model trained like the plain student
    grep -q '| distilled: margin-mse (knob chosen on valid) | 0.1915 ± 0.0007' run/report.md
    grep 'distilled: margin-mse' run/report.md | tail -1 | grep -q '| a0.1 a0.1 |'
}

@test "the report is the same when every model file and label is swapped with another's" {
    kd-report --html run/report.html -o run/report.md run >run/report.txt
    # the same models under each other's names: teacher <-> student, study <-> grid, l0.1 <-> l1
    swap=(student teacher margin-mse_a0.1 study rrd_l1 rrd_l0.1)
    for s in 1 2; do
        mkdir -p swapped/s$s
        cp run/s$s/data.kd swapped/s$s/d0.kd
        i=0
        for m in $ORDER; do cp run/s$s/$m.kd swapped/s$s/${swap[$i]}.kd; i=$((i + 1)); done
        # the evaluations' labels follow the file names
        i=0
        for m in $ORDER; do echo "$m ${swap[$i]}"; i=$((i + 1)); done >map
        for t in eval-test eval-valid; do
            awk -F'\t' -v OFS='\t' 'NR == FNR { to[$1] = $2; next } FNR > 1 { $1 = to[$1] } 1' FS=' ' map FS='\t' \
                run/s$s/$t.tsv >swapped/s$s/$t.tsv
        done
    done
    ! cmp -s run/s1/eval-test.tsv swapped/s1/eval-test.tsv
    kd-report --html swapped/report.html -o swapped/report.md swapped >swapped/report.txt
    for f in report.md report.html report.txt recall-vs-params.svg valid-curves.svg loss-curves.svg latency.svg; do
        cmp run/$f swapped/$f
    done
}

@test "the verdict follows a paired test across seeds" {
    for s in 3 4 5; do cp -r run/s1 run/s$s; done
    kd-report -o run/report.md run >/dev/null
    grep 'distilled: rrd' run/report.md | tail -1 | grep -q 'positive transfer'
    grep 'the study' run/report.md | tail -1 | grep -q 'negative transfer'
}

@test "the HTML and every SVG are well-formed XML, with no script" {
    kd-report --html run/report.html -o run/report.md run >/dev/null
    xmllint --noout run/report.html
    for f in run/*.svg; do xmllint --noout "$f"; done
    ! grep -qi '<script' run/report.html
    [ "$(grep -c '<svg ' run/report.html)" -eq 4 ]
}

@test "a directory without seeds, or without a teacher, is a clear error" {
    mkdir empty
    run --separate-stderr -1 kd-report -o r.md empty
    [ "$stderr" = "kd-report: empty: no seed directories (s1, s2, ...)" ]
    sed -i '/^teacher/d' run/s1/eval-test.tsv
    run --separate-stderr -1 kd-report -o r.md run
    [ "$stderr" = "kd-report: run/s1: the evaluation has no 'teacher' or no 'student' model" ]
    [ ! -e r.md ]
}

@test "an evaluation without the identity columns, or a model that is not there, is refused" {
    cut -f1-13 run/s2/eval-test.tsv >t && mv t run/s2/eval-test.tsv
    run --separate-stderr -1 kd-report -o r.md run
    [[ $stderr == "kd-report: run/s2/eval-test.tsv: evaluations need the columns model, recall@10, id, role,"* ]]
    one_line
    rm -r run/s2 run/s1/rrd_l1.kd
    run --separate-stderr -1 kd-report -o r.md run
    [[ $stderr == "kd-report: run/s1/eval-test.tsv: model 'rrd_l1' ("*"): no model file with this content ID in run/s1" ]]
    [ ! -e r.md ]
}

@test "a failed write of stdout is reported with its reason" {
    [ -w /dev/full ] || skip "no /dev/full"
    run --separate-stderr -1 bash -c 'kd-report -o run/report.md run >/dev/full'
    [ "$stderr" = "kd-report: <stdout>: write failed: No space left on device" ]
}
