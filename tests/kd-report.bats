#!/usr/bin/env bats
# kd-report: its numbers are the evaluation files' numbers, and its HTML/SVG are well-formed.
load test_helper

# two seeds of hand-made evaluations: teacher, student, study, and rrd at two λ
setup() {
    for s in 1 2; do
        mkdir -p run/s$s
        { printf 'model\tkind\tdim\tparams\tbytes\tcompression\tcompression_bytes\trecall@10\tndcg@10\tusers\tskipped\tlat_mean_us\tlat_p99_us\n'
          printf 'teacher\tbpr\t64\t97500\t1\t1\t1\t0.30%s\t0.20%s\t100\t0\t5\t9\n' $s $s
          printf 'student\tbpr\t32\t49500\t1\t1.9697\t1\t0.20%s\t0.10%s\t100\t0\t4\t8\n' $s $s
          printf 'study\tdistill-margin-mse\t32\t49500\t1\t1.9697\t1\t0.18%s\t0.09%s\t100\t0\t4\t8\n' $s $s
          printf 'rrd_l0.1\tdistill-rrd\t32\t49500\t1\t1.9697\t1\t0.25%s\t0.15%s\t100\t0\t4\t8\n' $s $s
          printf 'rrd_l1\tdistill-rrd\t32\t49500\t1\t1.9697\t1\t0.29%s\t0.19%s\t100\t0\t4\t8\n' $s $s
        } >run/s$s/eval-test.tsv
        { printf 'model\trecall@10\n'
          printf 'teacher\t0.3\nstudent\t0.2\nstudy\t0.1\nrrd_l0.1\t%s\nrrd_l1\t%s\n' 0.5 0.4
        } >run/s$s/eval-valid.tsv
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
}
